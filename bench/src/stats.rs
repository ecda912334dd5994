//! Measuring a load: a warm-up, then a measured window during which every connection records
//! its round trips in its own HDR histogram, merged at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s with 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What one connection (or pair) measured.
pub struct Tally {
    pub messages: u64,
    pub latencies: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Self {
            messages: 0,
            latencies: histogram(),
        }
    }

    /// Records a round trip that started at `started`, if the window is open.
    pub fn record(&mut self, started: Instant, measuring: &AtomicBool) {
        if measuring.load(Ordering::Relaxed) {
            let micros = started.elapsed().as_micros().max(1) as u64;
            self.latencies.saturating_record(micros);
            self.messages += 1;
        }
    }
}

/// Lets the load run `warmup` seconds, then measures for `seconds`, then tells the tasks to
/// stop; returns the measured time in seconds. `on_edge` runs as the window opens and again
/// as it closes, to read counters at its edges.
pub async fn measure(
    warmup: f64,
    seconds: f64,
    measuring: &AtomicBool,
    stop: &AtomicBool,
    mut on_edge: impl FnMut(),
) -> f64 {
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    on_edge();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    on_edge();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    elapsed
}

/// Waits for every task and adds up their messages and latencies; returns the sum and how
/// many tasks failed (each failure is printed, naming the task as `what`).
pub async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<Tally>>>,
    what: &str,
) -> Result<(Tally, usize)> {
    let mut total = Tally::new();
    let mut failures = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(result))) => {
                total.messages += result.messages;
                total
                    .latencies
                    .add(&result.latencies)
                    .context("merging histograms")?;
            }
            Ok(Ok(Err(error))) => {
                failures += 1;
                eprintln!("{what} failed: {error:#}");
            }
            _ => failures += 1,
        }
    }
    Ok((total, failures))
}
