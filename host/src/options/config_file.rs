//! The config file of `wsfn-host run` (`wsfn.toml`; see `wsfn.example.toml`).
//!
//! The file has no list of options of its own. A key is the long name of an option of `run`
//! (the limits in `[limits]`, the section named after their help heading); its value is
//! written as that option's argument and parsed by the option's own value parser, on a copy
//! of the `run` command. What passes becomes extra arguments, for every option that was not
//! given as a flag or `WSFN_*` variable, placed before the real arguments and parsed with
//! them: flags and variables win over the file, the file wins over the defaults, and a value
//! means the same in the file as on the command line.
//!
//! Only the `[functions.NAME]` sections have a shape of their own, a function's component and
//! its settings ([`FunctionSettings`]), read with serde.
//!
//! Every error names the file and the line. Relative paths, in options whose value is a path
//! and in `[functions.NAME]`, are relative to the file's directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, ValueHint};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::{LIMITS_HEADING, OptionsError};
use crate::launch::FunctionSettings;

/// Read when neither `--config` nor `WSFN_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "wsfn.toml";

/// The sections of the file and the help heading of the options each holds; every other
/// option is a key at the top of the file.
const SECTIONS: &[(&str, &str)] = &[("limits", LIMITS_HEADING)];

/// The section of functions, read apart from the options.
const FUNCTIONS: &str = "functions";

/// Options of `run` that the file cannot set.
const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

/// What a config file adds to the command line.
pub(super) struct FileOptions {
    /// Arguments for the options the file sets and the command line did not.
    pub args: Vec<OsString>,
    pub functions: BTreeMap<String, FileFunction>,
}

/// A `[functions.NAME]` section.
pub(super) struct FileFunction {
    /// The component to deploy at start, if the section names one.
    pub path: Option<PathBuf>,
    pub settings: FunctionSettings,
}

#[derive(Deserialize)]
struct Functions {
    #[serde(default)]
    functions: BTreeMap<String, FunctionSection>,
}

/// `[functions.NAME]`: a new per-function setting is a field here and in [`FunctionSettings`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FunctionSection {
    path: Option<PathBuf>,
    /// Accept only signed URLs (as `--require-signed NAME`).
    #[serde(default)]
    require_signed_url: bool,
    /// What one of its resumable sessions may hold (`--session-retention` for it alone).
    #[serde(default, deserialize_with = "optional_size")]
    session_retention: Option<usize>,
    /// Whether its clients may negotiate permessage-deflate (`--deflate` for it alone).
    deflate: Option<bool>,
    /// Its smallest compressed message (`--deflate-threshold` for it alone).
    #[serde(default, deserialize_with = "optional_size")]
    deflate_threshold: Option<usize>,
}

/// A size in a function's section, as `--session-retention` takes it: bytes, or a text with
/// KiB or MiB.
fn optional_size<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(Some(bytes)),
        Size::Text(text) => super::values::size(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Reads the file at `path` into arguments of `command` (already built by a first parse
/// whose result is `given`).
pub(super) fn read(
    path: &Path,
    command: &Command,
    given: &ArgMatches,
) -> Result<FileOptions, OptionsError> {
    let text = std::fs::read_to_string(path).map_err(|cause| OptionsError::ReadFile {
        path: path.to_owned(),
        cause,
    })?;
    let file = File {
        path,
        text: &text,
        base: path.parent().unwrap_or(Path::new("")),
        command,
        // Checks values alone: no variable can fail or fill in anything there.
        checker: command.clone().mut_args(|arg| arg.env(None)),
        given,
    };
    let table = DeTable::parse(&text).map_err(|error| file.toml_error(&error))?;
    let mut args = Vec::new();
    for (key, value) in table.get_ref() {
        let name: &str = key.get_ref();
        if name == FUNCTIONS {
            continue;
        }
        match SECTIONS.iter().find(|(section, _)| *section == name) {
            Some((section, _)) => {
                let DeValue::Table(entries) = value.get_ref() else {
                    return Err(file.error(
                        key.span(),
                        format!("`{name}` is a section: write [{name}] and its keys below it"),
                    ));
                };
                for (key, value) in entries {
                    args.extend(file.option(key, value, Some(section))?);
                }
            }
            None => args.extend(file.option(key, value, None)?),
        }
    }
    Ok(FileOptions {
        args,
        functions: file.functions()?,
    })
}

/// A config file being read.
struct File<'a> {
    path: &'a Path,
    text: &'a str,
    /// The file's directory, for relative paths.
    base: &'a Path,
    command: &'a Command,
    checker: Command,
    given: &'a ArgMatches,
}

impl File<'_> {
    /// The arguments for one key, or none if the command line gave the option already.
    fn option(
        &self,
        key: &Spanned<DeString>,
        value: &Spanned<DeValue>,
        section: Option<&str>,
    ) -> Result<Vec<OsString>, OptionsError> {
        let name: &str = key.get_ref();
        let arg = self
            .find(name)
            .ok_or_else(|| self.error(key.span(), unknown(name)))?;
        let home = arg
            .get_help_heading()
            .and_then(|heading| SECTIONS.iter().find(|(_, h)| *h == heading))
            .map(|(section, _)| *section);
        if home != section {
            let place = match home {
                Some(home) => format!("in the [{home}] section"),
                None => "at the top of the file, before any section".to_owned(),
            };
            return Err(self.error(key.span(), format!("`{name}` belongs {place}")));
        }
        let args = self.arguments(arg, name, value)?;
        let mut checker = self.checker.clone();
        let program = OsString::from("wsfn-host run");
        if let Err(error) =
            checker.try_get_matches_from_mut(std::iter::once(program).chain(args.clone()))
        {
            return Err(self.error(value.span(), format!("`{name}`: {}", clap_message(&error))));
        }
        let given = matches!(
            self.given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        Ok(if given { Vec::new() } else { args })
    }

    /// The option whose long name (or alias) is `name`.
    fn find(&self, name: &str) -> Option<&Arg> {
        self.command.get_arguments().find(|arg| {
            !arg.is_positional()
                && !NOT_IN_FILE.contains(&arg.get_id().as_str())
                && (arg.get_long() == Some(name)
                    || arg
                        .get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&name)))
        })
    }

    /// The command-line arguments that say what `value` says for the option `arg`.
    fn arguments(
        &self,
        arg: &Arg,
        name: &str,
        value: &Spanned<DeValue>,
    ) -> Result<Vec<OsString>, OptionsError> {
        let long = arg.get_long().unwrap_or(name);
        if !arg.get_action().takes_values() {
            return match value.get_ref() {
                DeValue::Boolean(true) => Ok(vec![format!("--{long}").into()]),
                DeValue::Boolean(false) => Ok(Vec::new()),
                other => Err(self.error(
                    value.span(),
                    format!("`{name}` is true or false, not {}", other.type_str()),
                )),
            };
        }
        let values: Vec<&Spanned<DeValue>> = match value.get_ref() {
            DeValue::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                items.iter().collect()
            }
            DeValue::Array(_) => {
                return Err(self.error(
                    value.span(),
                    format!("`{name}` takes one value, not a list"),
                ));
            }
            _ => vec![value],
        };
        values
            .into_iter()
            .map(|item| {
                let mut argument = OsString::from(format!("--{long}="));
                argument.push(self.text_of(arg, name, item)?);
                Ok(argument)
            })
            .collect()
    }

    /// A value as the text the option's parser reads.
    fn text_of(
        &self,
        arg: &Arg,
        name: &str,
        value: &Spanned<DeValue>,
    ) -> Result<OsString, OptionsError> {
        match value.get_ref() {
            DeValue::String(text) if is_path(arg) => Ok(self.base.join(text.as_ref()).into()),
            DeValue::String(text) => Ok(text.as_ref().into()),
            DeValue::Integer(number) => i128::from_str_radix(number.as_str(), number.radix())
                .map(|n| n.to_string().into())
                .map_err(|_| {
                    self.error(value.span(), format!("`{name}`: the number is too large"))
                }),
            other => Err(self.error(
                value.span(),
                format!(
                    "`{name}` takes a string or a number, not {}",
                    other.type_str()
                ),
            )),
        }
    }

    /// The `[functions.NAME]` sections.
    fn functions(&self) -> Result<BTreeMap<String, FileFunction>, OptionsError> {
        let sections = toml::from_str::<Functions>(self.text)
            .map_err(|error| self.toml_error(&error))?
            .functions;
        Ok(sections
            .into_iter()
            .map(|(name, section)| {
                let function = FileFunction {
                    path: section.path.map(|path| self.base.join(path)),
                    settings: FunctionSettings {
                        require_signed_url: section.require_signed_url,
                        session_retention: section.session_retention,
                        deflate: section.deflate,
                        deflate_threshold: section.deflate_threshold,
                    },
                };
                (name, function)
            })
            .collect())
    }

    fn error(&self, span: Range<usize>, message: String) -> OptionsError {
        OptionsError::InFile {
            path: self.path.to_owned(),
            line: line_of(self.text, span.start),
            message,
        }
    }

    fn toml_error(&self, error: &toml::de::Error) -> OptionsError {
        let span = error.span().unwrap_or(0..0);
        self.error(span, error.message().trim().to_owned())
    }
}

/// Whether the option's value is a path, resolved against the file's directory.
fn is_path(arg: &Arg) -> bool {
    matches!(
        arg.get_value_hint(),
        ValueHint::FilePath | ValueHint::DirPath | ValueHint::AnyPath
    )
}

fn unknown(name: &str) -> String {
    let hint = if name.contains('_') {
        format!(
            " (keys are written with `-`: `{}`?)",
            name.replace('_', "-")
        )
    } else if NOT_IN_FILE.contains(&name) {
        " (a config file cannot name another config file)".to_owned()
    } else {
        String::new()
    };
    format!(
        "unknown field `{name}`{hint}: the keys are the long options of `wsfn-host run --help` \
         without their dashes, the limits in [limits], and [functions.NAME] sections"
    )
}

/// What a clap error says about one value, without its usage lines.
fn clap_message(error: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(error) {
        return source.to_string();
    }
    if let (Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) = (
        error.get(ContextKind::InvalidValue),
        error.get(ContextKind::ValidValue),
    ) {
        let valid: Vec<String> = valid.iter().map(|v| format!("`{v}`")).collect();
        return format!("unknown value `{value}`: use one of {}", valid.join(", "));
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
