//! The harness: starting and stopping hosts (in the test process, or as `wsfn-host` processes),
//! WebSocket and admin API clients, a proxy that cuts connections, real Redis servers (one
//! server, a Redis Cluster, a Sentinel setup), seeds for randomised tests, and bounded waiting.

mod admin;
mod backplane;
mod client;
mod command;
mod host;
mod host_process;
mod in_process;
mod languages;
mod lifecycle;
mod log_stream;
mod metrics;
mod on_error;
mod precompiled;
mod probe;
mod proxy;
mod raw_http;
mod raw_ws;
mod redis;
mod redis_cluster;
mod redis_sentinel;
mod seed;
mod silent_client;
mod test_dir;

use std::future::Future;
use std::time::{Duration, Instant};

pub use admin::{Admin, JSON, OCTET_STREAM, TEXT};
pub(crate) use backplane::on_every_backplane;
pub use backplane::{Backplane, SharedRedis};
pub use client::{Client, CloseInfo, binary_fragments, text_fragments};
pub use command::{run_wsfn_host, spawn_wsfn_host};
pub use host::Host;
pub(crate) use languages::in_every_language;
pub use log_stream::LogStream;
pub use metrics::Exposition;
pub use probe::OnCloseRun;
pub use proxy::Proxy;
pub use raw_http::{raw_request, raw_upgrade};
pub use raw_ws::{
    LengthForm, RSV1, RSV2, RSV3, RawFrame, RawSocket, assert_same_payload, fragmented, op,
};
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use redis_sentinel::RedisSentinel;
pub use seed::Seed;
pub use silent_client::{RSV1_BIT, SilentClient, kernel_send_buffer_max};
pub use test_dir::{TestDir, function_bytes, function_wasm};

/// The longest any single wait may take. Only there so a broken host fails a test instead of
/// hanging it; no test relies on anything being fast.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long to pause between two attempts while waiting for something the host does
/// asynchronously (for example `on-close`, which runs after the close handshake).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Awaits `future`, panicking with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Calls `attempt` until it returns `Some`, for at most [`WAIT`].
pub async fn poll_until<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {WAIT:?} waiting until {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
