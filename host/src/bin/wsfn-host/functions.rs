//! The client commands that change or list a running host's functions: `deploy`,
//! `functions`, `rollback` and `remove`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use wsfn_host::options::FunctionArg;

use crate::admin_client::{AdminClient, ClientArgs, format_time, segment};

#[derive(Args)]
pub struct DeployArgs {
    /// What to deploy: `file.wasm` (named after the file stem), `name=file.wasm`, or the
    /// function's name followed by FILE.
    #[arg(value_name = "FUNCTION")]
    pub function: String,
    /// The component file, when FUNCTION is only the name.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl DeployArgs {
    /// The function's name and file, read as `run` reads its FUNCTION arguments.
    fn target(&self) -> Result<FunctionArg> {
        match &self.file {
            Some(file) => Ok(FunctionArg {
                name: self.function.clone(),
                path: file.clone(),
            }),
            None => self
                .function
                .parse()
                .map_err(|error: String| anyhow!(error)),
        }
    }
}

/// A command about one function.
#[derive(Args)]
pub struct FunctionArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// Function name.
    pub name: String,
    /// The version to serve; by default the one before the current version.
    #[arg(long)]
    pub version: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn deploy(args: DeployArgs) -> Result<()> {
    let target = args.target()?;
    let bytes = std::fs::read(&target.path).with_context(|| {
        let forms = if args.file.is_none() {
            " (deploy takes FILE.wasm, NAME=FILE.wasm, or NAME FILE.wasm)"
        } else {
            ""
        };
        format!("cannot read {}{forms}", target.path.display())
    })?;
    let name = &target.name;
    let client = AdminClient::new(&args.client)?;
    let result = client
        .call(
            Method::PUT,
            &format!("/v1/functions/{}", segment(name)),
            "application/wasm",
            Bytes::from(bytes),
        )
        .await
        .with_context(|| format!("deploying `{name}` failed"))?;
    let version = &result["version"];
    if result["unchanged"].as_bool() == Some(true) {
        println!(
            "`{name}` already serves this component as version {}; nothing changed",
            version["version"]
        );
    } else {
        println!(
            "`{name}` now serves version {} ({} bytes, compiled in {} ms)",
            version["version"], version["size"], version["compile_ms"]
        );
    }
    Ok(())
}

pub async fn list(args: ClientArgs) -> Result<()> {
    let client = AdminClient::new(&args)?;
    let list = client
        .call(
            Method::GET,
            "/v1/functions",
            "application/json",
            Bytes::new(),
        )
        .await?;
    let functions = list.as_array().cloned().unwrap_or_default();
    if functions.is_empty() {
        println!("no functions deployed");
        return Ok(());
    }
    println!(
        "{:<24} {:>7}  {:<19}  {:>11}",
        "NAME", "VERSION", "DEPLOYED (UTC)", "CONNECTIONS"
    );
    for function in functions {
        let current = &function["current"];
        println!(
            "{:<24} {:>7}  {:<19}  {:>11}",
            function["name"].as_str().unwrap_or("?"),
            current["version"].to_string(),
            format_time(current["deployed_at_ms"].as_u64().unwrap_or(0)),
            function["connections"].to_string()
        );
    }
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> Result<()> {
    let client = AdminClient::new(&args.client)?;
    let body = match args.version {
        Some(version) => serde_json::json!({ "version": version }).to_string(),
        None => String::new(),
    };
    let version = client
        .call(
            Method::POST,
            &format!("/v1/functions/{}/rollback", segment(&args.name)),
            "application/json",
            Bytes::from(body),
        )
        .await
        .with_context(|| format!("rolling back `{}` failed", args.name))?;
    println!(
        "`{}` now serves version {} again",
        args.name, version["version"]
    );
    Ok(())
}

pub async fn remove(args: FunctionArgs) -> Result<()> {
    let client = AdminClient::new(&args.client)?;
    let removed = client
        .call(
            Method::DELETE,
            &format!("/v1/functions/{}", segment(&args.name)),
            "application/json",
            Bytes::new(),
        )
        .await
        .with_context(|| format!("removing `{}` failed", args.name))?;
    println!(
        "`{}` removed with all its versions; {} connections closed",
        args.name, removed["closed_connections"]
    );
    Ok(())
}
