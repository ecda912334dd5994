//! `wsfn-host run`: starts a host with the library's `launch::start`, announces on stdout
//! where it listens, and shuts it down gracefully on SIGINT or SIGTERM.
//!
//! The two announcement lines are an interface: scripts and the end-to-end tests read the
//! bound addresses from them, so their wording stays as it is.

use std::io::Write;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use wsfn_host::launch::{self, RunningHost};
use wsfn_host::options::RunOptions;

pub async fn run(options: RunOptions) -> Result<()> {
    if let Some(path) = &options.config {
        tracing::info!("read the config file {}", path.display());
    }
    // Installed before readiness is announced, so a SIGTERM sent right after the
    // announcement already shuts down gracefully.
    let signals = Signals::install()?;
    let running = launch::start(options.into_settings()).await?;
    announce(&running)?;
    hint_at_activity();
    let trigger = running.shutdown_trigger();
    let waiting = tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutting down: closing every connection with 1001");
        trigger.shut_down();
    });
    let stopped = running.stopped().await;
    waiting.abort();
    stopped.context("the WebSocket listener failed")?;
    Ok(())
}

/// Prints the bound addresses, the sign that the host is ready.
fn announce(running: &RunningHost) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "wsfn-host listening on ws://{}", running.address())?;
    writeln!(
        stdout,
        "wsfn-host admin API on http://{}",
        running.admin_address()
    )?;
    stdout.flush()?;
    Ok(())
}

/// Connections are logged at debug level, so at the default level a new user would see no
/// sign of them: say once where to look.
fn hint_at_activity() {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        tracing::info!(
            "connections are not logged at this level: RUST_LOG=wsfn_host=debug logs each one, \
             and `wsfn-host logs NAME` follows what one function does"
        );
    }
}

/// SIGTERM (service managers) and SIGINT (Ctrl-C).
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of the two.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
