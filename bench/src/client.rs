//! The wsfn-client side of the load generator: the flags that choose it (`--session`,
//! `--deflate`, `--wsfn-client`) and the options every benchmark connection gets.
//!
//! Comparisons of a feature on and off (sessions, compression) run both sides through this
//! client, so the difference measured is the feature's, not that of two client libraries.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use wsfn_client::{Options, Reconnect, Session};

/// Which client a mode's connections use.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct ClientFlags {
    /// Connect through the wsfn-client crate (plain WebSocket, no compression) instead of
    /// fastwebsockets; the "off" side of a session or deflate comparison.
    #[arg(long)]
    pub wsfn_client: bool,
    /// Ask for resumable sessions (through wsfn-client).
    #[arg(long)]
    pub session: bool,
    /// Offer permessage-deflate (through wsfn-client).
    #[arg(long)]
    pub deflate: bool,
}

impl ClientFlags {
    pub fn uses_wsfn_client(&self) -> bool {
        self.wsfn_client || self.session || self.deflate
    }

    /// Options for a benchmark connection: no pings (the host pings after 30 s of silence, as
    /// it does for the fastwebsockets connections), no reconnects (a lost connection is a
    /// failure to report, not to hide), and a patient handshake (thousands open at once).
    pub fn options(&self, url: &str) -> Options {
        let options = Options::new(url)
            .deflate(self.deflate)
            .ping(None)
            .reconnect(Reconnect::never())
            .connect_timeout(Duration::from_secs(30));
        if self.session {
            options
        } else {
            options.plain()
        }
    }

    /// What the JSON lines call this client.
    pub fn label(&self) -> &'static str {
        match (self.uses_wsfn_client(), self.session, self.deflate) {
            (false, ..) => "fastwebsockets",
            (true, false, false) => "wsfn-client",
            (true, true, false) => "wsfn-client session",
            (true, false, true) => "wsfn-client deflate",
            (true, true, true) => "wsfn-client session deflate",
        }
    }
}

/// Opens `count` sessions, `options(i)` for the `i`-th, at most `concurrency` at a time.
pub async fn open_sessions(
    count: usize,
    concurrency: usize,
    options: impl Fn(usize) -> Options,
) -> Result<Vec<Session>> {
    crate::opening::open_many(count, concurrency, |i| {
        let options = options(i);
        async move { Ok(Session::connect(options).await?) }
    })
    .await
}
