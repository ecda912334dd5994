//! `idle`: open N connections and hold them, so the server's memory per connection can be
//! read; through fastwebsockets, or wsfn-client with or without sessions and compression.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::client::{self, ClientFlags};
use crate::fast;

#[derive(Args)]
pub struct Idle {
    pub url: String,
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Handshakes in progress at once while opening.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// How long to hold the connections once all are open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    #[command(flatten)]
    pub client: ClientFlags,
}

pub async fn run(idle: Idle) -> Result<()> {
    let Idle {
        url,
        connections,
        concurrency,
        hold,
        client,
    } = idle;
    let url = url.as_str();
    let started = Instant::now();
    let held: Box<dyn Send> = if client.uses_wsfn_client() {
        let sessions = client::open_sessions(connections, concurrency, |_| client.options(url));
        Box::new(sessions.await?)
    } else {
        let target = fast::parse_url(url)?;
        Box::new(fast::open_many(&target, connections, concurrency).await?)
    };
    let opened_in = started.elapsed().as_secs_f64();
    eprintln!(
        "idle ({}): {connections} connections open in {opened_in:.2} s",
        client.label()
    );
    println!(
        "{}",
        json!({"mode": "idle", "client": client.label(), "connections": connections, "open_seconds": opened_in, "state": "holding"})
    );
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    drop(held);
    Ok(())
}
