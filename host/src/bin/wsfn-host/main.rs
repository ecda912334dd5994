//! The `wsfn-host` binary: runs a host (`run`), works on component files (`check`, `new`), or
//! talks to a running host's admin API (the client commands).
//!
//! Starting a host is the library's (`wsfn_host::launch`), from options the library defines
//! (`wsfn_host::options`); this binary adds what only a process has: its stdout
//! announcements, its signals, its log on stderr, and its exit status.

mod admin_client;
mod check;
mod cli;
mod functions;
mod logging;
mod logs;
mod new;
mod run;
mod send;
mod signed_url;

use anyhow::{Context, Result};
use clap::Parser;
use wsfn_host::options::{LogFormat, RunOptions, Sources};

use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run_command(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes is the message; a backtrace is for debugging the host itself.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if !matches!(cli.command, Command::Run(_)) {
        logging::init(LogFormat::Text);
    }
    match cli.command {
        Command::Run(_) => {
            let options = run_options()?;
            logging::init(options.log_format);
            runtime.block_on(run::run(options))
        }
        Command::Check(args) => runtime.block_on(check::check(args)),
        Command::Deploy(args) => runtime.block_on(functions::deploy(args)),
        Command::Functions(args) => runtime.block_on(functions::list(args)),
        Command::Rollback(args) => runtime.block_on(functions::rollback(args)),
        Command::Remove(args) => runtime.block_on(functions::remove(args)),
        Command::Send(args) => runtime.block_on(send::send(args)),
        Command::SignedUrl(args) => runtime.block_on(signed_url::print(args)),
        Command::Logs(args) => runtime.block_on(logs::follow(args)),
        Command::New(args) => new::new_function(&args),
    }
}

/// The options of `run`, with its config file. They were parsed once already, without the
/// file, to choose the command; they are parsed again from the same arguments (those after
/// `run`, the only thing that can precede them) so the file's values go through the same
/// parsers.
fn run_options() -> Result<RunOptions> {
    let args = std::env::args_os().skip(2);
    match RunOptions::parse_from(args, Sources::ArgumentsAndEnvironment) {
        Ok(options) => Ok(options),
        Err(wsfn_host::options::OptionsError::Arguments(error)) => error.exit(),
        Err(error) => Err(error.into()),
    }
}
