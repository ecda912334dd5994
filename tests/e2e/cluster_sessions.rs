//! Resumable sessions in a cluster: a session moves to whichever node its client reconnects
//! to, with every message once and in order, and one on-connect and one on-close in all.
//!
//! The proxy test of `session_resume`, with the proxy sending each reconnect to the other of
//! two nodes on one Redis (and on a Redis Cluster): 2,000 of the client's messages counted by
//! the function, 1,000 pushes through one node's admin API and 1,000 publishes from a
//! connection on the other node, while the proxy cuts every 50–500 ms.

use tokio::sync::watch;
use wsfn_client::{Options, Session};

use crate::session_resume::{
    OWN_COUNTER, OWN_MESSAGES, WATCHED_COUNTER, connection_ids, fast_options, lifecycle_lines,
    publish_to_watchers, push_through_admin, receive_everything, send_own_messages,
};
use crate::support::{
    Backplane, Host, LogStream, Proxy, Seed, TestDir, on_every_backplane, within,
};

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
    let url = proxy.url(&format!(
        "counter?name={OWN_COUNTER}&watch={WATCHED_COUNTER}"
    ));
    let mut session = within(
        "the session to start",
        Session::connect(fast_options(Options::new(url))),
    )
    .await
    .unwrap_or_else(|error| panic!("connecting through the proxy: {error}"));
    let id = session.id().expect("a session has an id");
    let publisher = b.connect(&format!("counter?name={WATCHED_COUNTER}")).await;

    let cuts = proxy.cut_randomly(seed.value(), 50..=500);
    let tally = {
        let (replies, replies_seen) = watch::channel(0);
        let sending = send_own_messages(session.sender(), replies_seen, proxy.clone(), &seed);
        let pushing = push_through_admin(a.admin(), id.clone());
        let publishing = publish_to_watchers(publisher);
        let receiving = receive_everything(&mut session, replies);
        let ((), (), (), tally) = tokio::join!(sending, pushing, publishing, receiving);
        tally
    };
    tally.assert_everything_arrived_once_in_order();
    assert_eq!(
        session.id().as_deref(),
        Some(id.as_str()),
        "still the first session"
    );

    let (code, reason) = within("the session to close", session.close()).await;
    assert_eq!(code, 1000, "the session closed normally ({reason})");
    drop(cuts);

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
