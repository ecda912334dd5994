//! Resumable sessions in a cluster: a session moves to whichever node its client reconnects
//! to, with every message once and in order, and one on-connect and one on-close in all.
//!
//! The proxy test of `session_resume`, with the proxy sending each reconnect to the other of
//! two nodes on one Redis (and on a Redis Cluster): 2,000 of the client's messages counted by
//! the function, 1,000 pushes through one node's admin API and 1,000 publishes from a
//! connection on the other node, while the proxy cuts every 50–500 ms.

use crate::session_resume::{
    OWN_COUNTER, OWN_MESSAGES, WATCHED_COUNTER, connection_ids, exchange_through_cuts,
    lifecycle_lines,
};
use crate::support::{Backplane, Host, LogStream, Proxy, Seed, TestDir, on_every_backplane};

on_every_backplane!(
    a_session_resuming_on_alternate_nodes_through_a_cutting_proxy_loses_and_repeats_nothing,
);

async fn a_session_resuming_on_alternate_nodes_through_a_cutting_proxy_loses_and_repeats_nothing(
    backplane: Backplane,
) {
    let seed = Seed::from_env_or_random();
    let dir = TestDir::new();
    let redis = backplane.start(&dir);
    let mut nodes = Vec::new();
    for i in 0..2 {
        let node = Host::builder()
            .option("--redis", &redis.url_for_host(i))
            .function("counter")
            .start()
            .await;
        nodes.push(node);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut logs = [
        LogStream::open(&a.admin(), "counter").await,
        LogStream::open(&b.admin(), "counter").await,
    ];
    let proxy = Proxy::start_alternating(&[a.addr(), b.addr()]).await;
    let publisher = b.connect(&format!("counter?name={WATCHED_COUNTER}")).await;
    let (id, tally) = exchange_through_cuts(&proxy, a.admin(), publisher, &seed).await;

    // The function counted each of the client's messages once, wherever it ran.
    let mut reader = a.connect(&format!("counter?name={OWN_COUNTER}")).await;
    assert_eq!(
        reader.ask("increment").await,
        (OWN_MESSAGES + 1).to_string(),
        "the counter counted each of the client's messages once"
    );
    reader.close(1000, "").await;
    let listed = connection_ids(&a.admin()).await;
    assert!(!listed.contains(&id), "the session is gone: {listed:?}");

    // One on-connect and one on-close in all, on whichever nodes ran them: each node's log is
    // read up to the close of a connection made on it after the session ended.
    let (mut connects, mut closes) = (0, Vec::new());
    for (node, log) in nodes.iter().zip(&mut logs) {
        let before = connection_ids(&node.admin()).await;
        let marker = node.connect("counter?name=marker").await;
        let after = connection_ids(&node.admin()).await;
        let marker_id = after
            .into_iter()
            .find(|other| !before.contains(other))
            .expect("the marker connection is listed");
        marker.close(1000, "").await;
        let (node_connects, node_closes) = lifecycle_lines(log, &id, &marker_id).await;
        connects += node_connects;
        closes.extend(node_closes);
    }
    assert_eq!(connects, 1, "on-connect ran once for the session");
    assert_eq!(
        closes,
        [serde_json::json!(1000)],
        "on-close ran once, with the client's code"
    );
    eprintln!(
        "seed {}: {} cuts, {} resumes",
        seed.value(),
        proxy.effective_cuts(),
        tally.resumes
    );
}
