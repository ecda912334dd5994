//! Key-value state that outlives the host: the default durable store keeps every increment
//! the function acknowledged through `kill -9`, and hosts on one Redis share their state
//! (on one `redis-server` and on a Redis Cluster alike).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    Backplane, Client, Host, RedisServer, TestDir, on_every_backplane, poll_until, run_wsfn_host,
    within,
};

on_every_backplane!(hosts_on_the_same_redis_share_state);

async fn increment(client: &mut Client) -> u64 {
    let reply = client.ask("increment").await;
    reply
        .parse()
        .unwrap_or_else(|error| panic!("the counter replies with a number, got {reply:?}: {error}"))
}

/// What the clients of a host that is about to be killed heard back.
#[derive(Default)]
struct Acknowledged {
    /// The highest value any reply carried.
    highest: AtomicU64,
    /// How many replies arrived.
    replies: AtomicU64,
    /// How many increments were sent.
    sent: AtomicU64,
}

/// Increments over one connection, one at a time, until the connection breaks.
async fn increment_until_the_host_dies(url: String, acknowledged: Arc<Acknowledged>) {
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
        return;
    };
    loop {
        if socket.send(Message::text("increment")).await.is_err() {
            return;
        }
        acknowledged.sent.fetch_add(1, Ordering::SeqCst);
        let value = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.parse::<u64>().unwrap_or_else(|error| {
                panic!("the counter replies with a number, got {text:?}: {error}")
            }),
            _ => return,
        };
        acknowledged.highest.fetch_max(value, Ordering::SeqCst);
        acknowledged.replies.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn increments_acknowledged_before_kill_9_survive_it() {
    const CONNECTIONS: usize = 4;
    let host = Host::builder().function("counter").start_process().await;
    let acknowledged = Arc::new(Acknowledged::default());
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(increment_until_the_host_dies(
                host.url("counter"),
                acknowledged.clone(),
            ))
        })
        .collect();
    poll_until(
        "the clients have had 100 increments acknowledged",
        async || (acknowledged.replies.load(Ordering::SeqCst) >= 100).then_some(()),
    )
    .await;

    // Killed while increments are in flight on every connection.
    let stopped = host.kill_hard();
    for client in clients {
        within("a client notices the host is gone", client)
            .await
            .expect("the client task ends cleanly");
    }
    let highest = acknowledged.highest.load(Ordering::SeqCst);
    let sent = acknowledged.sent.load(Ordering::SeqCst);

    let host = Host::builder()
        .function("counter")
        .data_dir_of(stopped)
        .start_process()
        .await;
    let mut client = host.connect("counter").await;
    let count_before = increment(&mut client).await - 1;
    assert!(
        count_before >= highest,
        "the count after the crash ({count_before}) lost acknowledged increments (up to {highest})"
    );
    assert!(
        count_before <= sent,
        "the count after the crash ({count_before}) exceeds the {sent} increments sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_count_after_kill_9_is_exactly_what_was_acknowledged() {
    let host = Host::builder().function("counter").start_process().await;
    let mut client = host.connect("counter").await;
    for expected in 1..=25 {
        assert_eq!(increment(&mut client).await, expected);
    }
    let stopped = host.kill_hard();

    let host = Host::builder()
        .function("counter")
        .data_dir_of(stopped)
        .start_process()
        .await;
    let mut client = host.connect("counter").await;
    assert_eq!(increment(&mut client).await, 26);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_store_starts_empty_after_a_restart() {
    let host = Host::builder()
        .function("counter")
        .option("--store", "memory")
        .start_process()
        .await;
    let mut client = host.connect("counter").await;
    assert_eq!(increment(&mut client).await, 1);
    assert_eq!(increment(&mut client).await, 2);
    let stopped = host.stop().await;

    let host = Host::builder()
        .function("counter")
        .option("--store", "memory")
        .data_dir_of(stopped)
        .start_process()
        .await;
    let mut client = host.connect("counter").await;
    assert_eq!(increment(&mut client).await, 1);
}

async fn hosts_on_the_same_redis_share_state(backplane: Backplane) {
    const INCREMENTS_EACH: u64 = 40;
    let dir = TestDir::new();
    let redis = backplane.start(&dir);
    let first = Host::builder()
        .function("counter")
        .option("--redis", &redis.url_for_host(0))
        .start()
        .await;
    let second = Host::builder()
        .function("counter")
        .option("--redis", &redis.url_for_host(1))
        .start()
        .await;
    let mut a = first.connect("counter").await;
    let mut b = second.connect("counter").await;
    assert_eq!(increment(&mut a).await, 1);
    assert_eq!(increment(&mut b).await, 2);
    assert_eq!(increment(&mut a).await, 3);

    // Both hosts increment at once; every value is handed out exactly once.
    let runs = [a, b].map(|mut client| {
        tokio::spawn(async move {
            let increments = (0..INCREMENTS_EACH).map(|_| Message::text("increment"));
            client.exchange_pipelined(increments.collect()).await
        })
    });
    let mut values = BTreeSet::new();
    for replies in futures_util::future::join_all(runs).await {
        for reply in replies.expect("every connection gets its replies") {
            let value: u64 = reply
                .to_text()
                .expect("a text reply")
                .parse()
                .expect("a number");
            assert!(
                values.insert(value),
                "the value {value} was handed out twice"
            );
        }
    }
    let expected: BTreeSet<u64> = (4..=3 + 2 * INCREMENTS_EACH).collect();
    assert_eq!(values, expected, "increments from both hosts sum up");

    // A host started later sees the same state.
    let third = Host::builder()
        .function("counter")
        .option("--redis", &redis.url_for_host(2))
        .start()
        .await;
    let mut c = third.connect("counter").await;
    assert_eq!(increment(&mut c).await, 4 + 2 * INCREMENTS_EACH);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_does_not_start_without_its_redis() {
    let dir = TestDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("redis://127.0.0.1:{port}/");
    let data_dir = dir.data_dir();
    let output = run_wsfn_host(
        dir.path(),
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--redis",
            &url,
        ],
        &[("WSFN_DATA_DIR", data_dir.to_str().expect("a UTF-8 path"))],
    )
    .await;
    let message = output.expect_failure();
    assert!(
        message.contains("cannot connect to Redis at 127.0.0.1"),
        "the error names Redis and its address: {message}"
    );
}

/// Sends `signal` to a process.
fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a process id fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_redis_fails_the_call_after_the_key_value_timeout() {
    let dir = TestDir::new();
    let redis = RedisServer::start(&dir);
    let host = Host::builder()
        .function("counter")
        .option("--redis", &redis.url())
        .option("--kv-timeout", "300ms")
        .start()
        .await;
    let mut client = host.connect("counter").await;
    assert_eq!(increment(&mut client).await, 1);

    // A paused server accepts nothing and answers nothing, like one stuck or cut off.
    signal(redis.pid(), libc::SIGSTOP);
    let reply = client.ask("increment").await;
    signal(redis.pid(), libc::SIGCONT);
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap_or_else(|error| {
        panic!("the counter reports an error as JSON, got {reply:?}: {error}")
    });
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("timed out after 300ms"),
        "the guest hears that the store timed out: {reply}"
    );

    // The connection and the host carry on once Redis answers again.
    let value = poll_until("Redis answers again", async || {
        let reply = client.ask("increment").await;
        reply.parse::<u64>().ok()
    })
    .await;
    assert!(value >= 2, "counting goes on from where it was: {value}");
}
