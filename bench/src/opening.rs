//! Opening thousands of connections with a bounded number of handshakes in flight, whatever
//! the client: a burst of ten thousand at once would measure the listen backlog instead.

use std::future::Future;

use anyhow::Result;

/// Runs `open(i)` for `i` in `0..count`, at most `concurrency` at a time; fails with the first
/// connection that fails.
pub async fn open_many<T, F, Fut>(count: usize, concurrency: usize, open: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut opened = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while opened.len() < count {
        while started < count && pending.len() < concurrency.max(1) {
            pending.spawn(open(started));
            started += 1;
        }
        match pending.join_next().await {
            Some(result) => opened.push(result??),
            None => break,
        }
    }
    Ok(opened)
}
