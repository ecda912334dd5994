//! The `wsfn-host` binary: parses the command line and runs the host.

mod cli;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use wsfn_host::config::Limits;
use wsfn_host::host::Host;

use cli::{CheckArgs, Cli, Command, RunArgs};

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Check(args) => runtime.block_on(check(args)),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let host = Arc::new(Host::new(args.limits.to_limits()).map_err(anyhow::Error::from)?);
    for function in &args.functions {
        let bytes = std::fs::read(&function.path).with_context(|| {
            format!(
                "cannot read function `{}` from {}",
                function.name,
                function.path.display()
            )
        })?;
        let started = std::time::Instant::now();
        host.deploy(&function.name, bytes).await.with_context(|| {
            format!(
                "cannot load function `{}` from {}",
                function.name,
                function.path.display()
            )
        })?;
        tracing::info!(function = %function.name, path = %function.path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "function loaded");
    }

    // Signal handlers are installed before readiness is announced, so a SIGTERM sent right
    // after the announcement already shuts down gracefully.
    let signals = [SignalKind::terminate(), SignalKind::interrupt()]
        .map(|kind| signal(kind).context("cannot install a signal handler"));
    let [terminate, interrupt] = signals;
    let (terminate, interrupt) = (terminate?, interrupt?);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("wsfn-host listening on ws://{address}");
    std::io::stdout().flush()?;
    for name in host.function_names() {
        tracing::info!("serving function `{name}` at ws://{address}/{name}");
    }

    let signals = tokio::spawn(stop_on_signal(host.clone(), terminate, interrupt));
    let still_open = wsfn_host::server::serve(host.clone(), listener)
        .await
        .context("the WebSocket listener failed")?;
    signals.abort();
    if still_open > 0 {
        tracing::warn!(
            "{still_open} connections did not finish closing before the shutdown timeout"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts a graceful shutdown on SIGINT or SIGTERM.
async fn stop_on_signal(host: Arc<Host>, mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("shutting down: closing every connection with 1001");
    host.shutdown.cancel();
}

async fn check(args: CheckArgs) -> Result<()> {
    let host = Host::new(Limits::default()).map_err(anyhow::Error::from)?;
    let mut failed = 0;
    for path in &args.files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("function");
        let name = if wsfn_host::host::is_valid_function_name(name) {
            name
        } else {
            "function"
        };
        let result = match std::fs::read(path) {
            Ok(bytes) => host.deploy(name, bytes).await.map_err(anyhow::Error::from),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        match result {
            Ok(function) => println!(
                "ok    {}  ({})",
                path.display(),
                function.describe_exports()
            ),
            Err(error) => {
                failed += 1;
                println!("FAIL  {}: {error:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} components are not valid wsfn functions",
            args.files.len()
        );
    }
    Ok(())
}
