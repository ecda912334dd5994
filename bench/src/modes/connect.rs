//! `connect`: open connections as fast as possible (each is closed right after its
//! handshake); the rate includes the handshake and the function's on-connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use fastwebsockets::Frame;
use serde_json::json;

use crate::fast;

#[derive(Args)]
pub struct Connect {
    pub url: String,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

pub async fn run(connect: Connect) -> Result<()> {
    let Connect {
        url,
        concurrency,
        seconds,
    } = connect;
    let target = fast::parse_url(&url)?;
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (target, opened, failed) = (target.clone(), opened.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match fast::connect(&target).await {
                        Ok(mut ws) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            let _ = ws.write_frame(Frame::close(1000, b"")).await;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let opened = opened.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let rate = opened as f64 / elapsed;
    eprintln!("connect: {rate:.0} connections/s ({opened} opened, {failed} failed)");
    println!(
        "{}",
        json!({"mode": "connect", "opened": opened, "failed": failed, "seconds": elapsed, "per_second": rate})
    );
    Ok(())
}
