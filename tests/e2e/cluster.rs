//! Three `wsfn-host` nodes on one real Redis act as one host: rooms span nodes, sends and
//! admin calls reach connections on other nodes, deploys reach every node, and the
//! connections of a node that dies are closed (on-close, group removal) by a survivor.
//! Every test runs twice: on one `redis-server` (`on_one_redis::NAME`) and on a Redis Cluster
//! of three primaries (`on_a_redis_cluster::NAME`).
//!
//! Messages from one node to another travel in order (one writer per node, one subscription
//! per node), so a marker sent after a batch arrives after every copy of that batch: that is
//! how these tests show "exactly once" without waiting for a silence.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{
    Backplane, Client, Exposition, Host, RedisServer, SharedRedis, TestDir, function_bytes,
    on_every_backplane, poll_until,
};

on_every_backplane!(
    a_room_spanning_three_nodes_delivers_every_message_to_every_member_exactly_once,
    notify_reaches_a_user_connected_to_another_node,
    admin_send_and_close_on_one_node_reach_a_connection_on_another,
    a_deploy_on_one_node_is_served_by_the_others,
    a_killed_node_s_connections_get_on_close_on_a_survivor_and_leave_their_groups,
    a_node_that_stalled_past_the_timeout_closes_the_connections_the_cluster_closed_for_it,
    when_redis_loses_its_data_the_nodes_write_their_connections_again,
    an_unresponsive_redis_gets_a_503_within_the_cluster_timeout_and_the_node_keeps_serving,
    a_publish_reaches_only_the_nodes_with_members,
    a_redis_outage_longer_than_the_node_timeout_declares_no_node_dead,
);

/// The default: long enough that a node of a test run on a busy machine is never taken for
/// dead by mistake; the tests that kill or stall a node wait for what follows without a bound
/// of their own (see `support::WAIT`).
const NODE_TIMEOUT_MS: &str = "3000";

struct Cluster {
    redis: SharedRedis,
    nodes: Vec<Host>,
}

/// Where the nodes run: in the test process, or as processes, for the tests that kill or
/// stall a node with a signal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nodes {
    InProcess,
    Processes,
}

async fn cluster(backplane: Backplane, size: usize, serve: &[(&str, &str)]) -> Cluster {
    cluster_of(backplane, Nodes::InProcess, size, serve).await
}

async fn cluster_of(
    backplane: Backplane,
    nodes_run: Nodes,
    size: usize,
    serve: &[(&str, &str)],
) -> Cluster {
    let dir = TestDir::new();
    let redis = backplane.start(&dir);
    let mut nodes = Vec::new();
    for i in 0..size {
        let mut builder = Host::builder()
            .option("--redis", &redis.url_for_host(i))
            .option("--node-timeout-ms", NODE_TIMEOUT_MS);
        for (served_as, file_stem) in serve {
            builder = builder.function_served_as(served_as, file_stem);
        }
        nodes.push(match nodes_run {
            Nodes::InProcess => builder.start().await,
            Nodes::Processes => builder.start_process().await,
        });
    }
    Cluster { redis, nodes }
}

/// Sends `signal` to a process this test started.
fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a process id fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

/// Waits until `count` chat connections are listed. A node queues what a connection's
/// on-connect published before the directory writes for it, so once it is listed, its
/// announcement has reached Redis: a member who joins after that cannot receive it, however
/// the nodes' writes are timed.
async fn settled(node: &Host, count: usize) {
    await_connections(node, "chat", count).await;
}

/// Waits until the cluster-wide connection list of `function` (read on `node`) has `count`
/// entries, so every node's directory writes for them have landed.
async fn await_connections(node: &Host, function: &str, count: usize) -> Vec<Value> {
    let admin = node.admin();
    poll_until(
        &format!("{count} `{function}` connections are listed"),
        async || {
            let list = admin.connections(function).await;
            (list.len() == count).then_some(list)
        },
    )
    .await
}

async fn a_room_spanning_three_nodes_delivers_every_message_to_every_member_exactly_once(
    backplane: Backplane,
) {
    let cluster = cluster(backplane, 3, &[("chat", "chat")]).await;
    let users = ["ann", "bob", "cy"];
    let mut clients: Vec<Client> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let client = cluster.nodes[i]
            .connect(&format!("chat?room=r&user={user}"))
            .await;
        // Everyone already in the room hears the join, whichever node they are on.
        for earlier in clients.iter_mut() {
            assert_eq!(
                earlier.receive_json().await,
                json!({"type": "join", "user": user})
            );
        }
        clients.push(client);
        settled(&cluster.nodes[0], clients.len()).await;
    }

    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send_text(&format!("{}-{round}", users[i])).await;
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("done-{}", users[i])).await;
    }

    for (i, client) in clients.iter_mut().enumerate() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut done = 0;
        while done < users.len() {
            let message = client.receive_json().await;
            assert_eq!(message["type"], "message", "{}: {message}", users[i]);
            let text = message["text"].as_str().unwrap_or_default().to_owned();
            if text.starts_with("done-") {
                done += 1;
            }
            *seen.entry(text).or_default() += 1;
        }
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for user in users {
            for round in 0..ROUNDS {
                expected.insert(format!("{user}-{round}"), 1);
            }
            expected.insert(format!("done-{user}"), 1);
        }
        assert_eq!(
            seen, expected,
            "{} got every message of every member exactly once before the last marker",
            users[i]
        );
    }
}

async fn notify_reaches_a_user_connected_to_another_node(backplane: Backplane) {
    let cluster = cluster(backplane, 3, &[("notify", "notify")]).await;
    let mut alice = cluster.nodes[0].connect("notify?user=alice").await;
    let mut bob_phone = cluster.nodes[1].connect("notify?user=bob").await;
    let mut bob_laptop = cluster.nodes[2].connect("notify?user=bob").await;
    await_connections(&cluster.nodes[0], "notify", 3).await;

    alice.send_text(r#"{"to":"bob","text":"lunch?"}"#).await;
    let expected = json!({"from": "alice", "text": "lunch?"});
    assert_eq!(bob_phone.receive_json().await, expected);
    assert_eq!(bob_laptop.receive_json().await, expected);
    assert_eq!(
        alice.receive_json().await,
        json!({"delivered": 2}),
        "both of bob's connections, on two other nodes, are counted"
    );
}

async fn admin_send_and_close_on_one_node_reach_a_connection_on_another(backplane: Backplane) {
    let cluster = cluster(backplane, 2, &[("echo", "echo")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut client = b.connect("echo").await;
    let listed = await_connections(a, "echo", 1).await;
    let id = listed[0]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        listed[0]["node"].as_str(),
        id.get(..8),
        "node A lists node B's connection, and its id names its node: {listed:?}"
    );

    let admin = a.admin();
    let sent = admin
        .post(
            &format!("/v1/connections/{id}/send"),
            "text/plain",
            "from A",
        )
        .await
        .expect_json(200);
    assert_eq!(sent["delivered"], 1);
    assert_eq!(client.receive_text().await, "from A");

    admin
        .delete(&format!("/v1/connections/{id}?code=4001&reason=bye"))
        .await
        .expect_status(202);
    let close = client.expect_close().await;
    assert_eq!((close.code, close.reason.as_str()), (4001, "bye"));
    await_connections(a, "echo", 0).await;

    // An id of no open connection is still a 404, wherever it would have been.
    admin
        .post(&format!("/v1/connections/{id}/send"), "text/plain", "x")
        .await
        .expect_status(404);
}

async fn a_deploy_on_one_node_is_served_by_the_others(backplane: Backplane) {
    let cluster = cluster(backplane, 3, &[("swap", "swap-a")]).await;
    for node in &cluster.nodes {
        let mut client = node.connect("swap").await;
        assert_eq!(client.ask("x").await, "a:x");
    }
    let version = cluster.nodes[0]
        .admin()
        .deploy("swap", function_bytes("swap-b"))
        .await;
    for node in &cluster.nodes[1..] {
        let answer = poll_until("the new version is served", async || {
            let mut client = node.connect("swap").await;
            let answer = client.ask("x").await;
            (answer == "b:x").then_some(answer)
        })
        .await;
        assert_eq!(answer, "b:x");
        assert_eq!(node.admin().current_version("swap").await, version);
    }

    // A rollback on another node goes back everywhere.
    cluster.nodes[2]
        .admin()
        .rollback("swap", "")
        .await
        .expect_status(200);
    for node in &cluster.nodes {
        poll_until("the old version is served again", async || {
            let mut client = node.connect("swap").await;
            (client.ask("x").await == "a:x").then_some(())
        })
        .await;
    }
}

async fn a_killed_node_s_connections_get_on_close_on_a_survivor_and_leave_their_groups(
    backplane: Backplane,
) {
    let cluster = cluster_of(backplane, Nodes::Processes, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    let bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    // SIGKILL: no close frames, no on-close, no goodbye to Redis.
    signal(b.pid(), libc::SIGKILL);
    bob.drop_without_close();

    assert_eq!(
        ann.receive_json().await,
        json!({"type": "leave", "user": "bob"}),
        "a survivor ran bob's on-close, which told the room (with bob's attachment)"
    );
    let remaining = await_connections(a, "chat", 1).await;
    assert_eq!(remaining[0]["groups"], json!(["r"]), "{remaining:?}");

    // The room now has ann only: her message reaches her and nobody else is counted.
    ann.send_text("anyone?").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "message", "user": "ann", "text": "anyone?"})
    );
    let log = a.log();
    assert!(
        log.contains("node declared dead"),
        "the survivor says what it did:\n{log}"
    );
}

async fn a_node_that_stalled_past_the_timeout_closes_the_connections_the_cluster_closed_for_it(
    backplane: Backplane,
) {
    let cluster = cluster_of(backplane, Nodes::Processes, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    // Ann's own join announcement has gone out before bob joins (see `settled`).
    settled(a, 1).await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    // SIGSTOP: the node misses its heartbeats, but its sockets stay open.
    signal(b.pid(), libc::SIGSTOP);
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "leave", "user": "bob"}),
        "the cluster declared the stalled node dead and ran bob's on-close"
    );
    signal(b.pid(), libc::SIGCONT);
    // The room's leave message for bob may reach bob's node before it learns it was declared
    // dead; anything else would be a bug.
    let (before, close) = bob.expect_close_after_data().await;
    for message in &before {
        assert_eq!(
            message.to_text().ok(),
            Some(r#"{"type":"leave","user":"bob"}"#),
            "only the leave can race the close"
        );
    }
    assert_eq!(
        close.code, 1001,
        "the node learns it was declared dead and closes what the cluster already closed"
    );
    await_connections(a, "chat", 1).await;
}

async fn when_redis_loses_its_data_the_nodes_write_their_connections_again(backplane: Backplane) {
    let cluster = cluster(backplane, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    // Ann's own join announcement has gone out before bob joins (see `settled`).
    settled(a, 1).await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    cluster.redis.flushall();
    let listed = await_connections(a, "chat", 2).await;
    assert!(
        listed.iter().all(|c| c["groups"] == json!(["r"])),
        "the connections and their groups are back: {listed:?}"
    );
    // The functions are known to the cluster again: a new node gets chat from Redis.
    let c = Host::builder()
        .option("--redis", &cluster.redis.url_for_host(2))
        .option("--node-timeout-ms", NODE_TIMEOUT_MS)
        .start()
        .await;
    let admin = c.admin();
    poll_until("a new node serves chat", async || {
        (admin.get("/v1/functions/chat").await.status == 200).then_some(())
    })
    .await;
    let _cy = c.connect("chat?room=r&user=cy").await;
    hear_join(&mut [&mut ann, &mut bob], "cy").await;
    // Nobody was closed, and the room still spans both nodes.
    bob.send_text("still here").await;
    let message = json!({"type": "message", "user": "bob", "text": "still here"});
    assert_eq!(bob.receive_json().await, message);
    assert_eq!(ann.receive_json().await, message);
}

async fn an_unresponsive_redis_gets_a_503_within_the_cluster_timeout_and_the_node_keeps_serving(
    backplane: Backplane,
) {
    let dir = TestDir::new();
    let redis = backplane.start(&dir);
    let node = Host::builder()
        .option("--redis", &redis.url_for_host(0))
        .option("--cluster-timeout-ms", "300")
        .function("echo")
        .start()
        .await;
    let mut client = node.connect("echo").await;
    await_connections(&node, "echo", 1).await;

    // SIGSTOP: Redis (every primary of a cluster) holds its connections open but answers
    // nothing.
    for pid in redis.pids() {
        signal(pid, libc::SIGSTOP);
    }
    let answer = node.admin().get("/v1/functions/echo/connections").await;
    for pid in redis.pids() {
        signal(pid, libc::SIGCONT);
    }
    let error = answer.expect_error(503);
    assert!(error.contains("did not answer within 300ms"), "{error}");
    assert_eq!(
        client.ask("still here").await,
        "still here",
        "the node's own connections do not wait on Redis"
    );
    // The node's metrics say so: the request that timed out is counted, and the
    // subscription (whose connection stayed open) is still up.
    let text = node.admin().get("/metrics").await.expect_status(200).text();
    let exposition = Exposition::parse(&text);
    assert!(
        exposition.value("wsfn_cluster_redis_failures_total", &[]) >= 1.0,
        "the failed request is counted:\n{text}"
    );
    assert_eq!(
        exposition.value("wsfn_cluster_subscribed", &[]),
        1.0,
        "{text}"
    );
}

/// Group publishes a node received from the cluster (for the members it holds).
const PUBLISHES_RECEIVED: &str = "wsfn_cluster_group_publishes_received_total";

/// How many group publishes `node` has received from the cluster, from its `/metrics`.
async fn publishes_received(node: &Host) -> f64 {
    let text = node.admin().get("/metrics").await.expect_status(200).text();
    let exposition = Exposition::parse(&text);
    // A counter without labels is exposed from the start, so a 0 read below is a count and
    // not a missing series.
    assert!(
        exposition.has(PUBLISHES_RECEIVED),
        "the node exposes {PUBLISHES_RECEIVED}:\n{text}"
    );
    exposition.value(PUBLISHES_RECEIVED, &[])
}

/// Reads `count` chat messages and returns the texts of each sender, in the order received.
async fn messages_by_sender(client: &mut Client, count: usize) -> BTreeMap<String, Vec<String>> {
    let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..count {
        let message = client.receive_json().await;
        assert_eq!(message["type"], "message", "{message}");
        let user = message["user"].as_str().unwrap_or_default().to_owned();
        let text = message["text"].as_str().unwrap_or_default().to_owned();
        by_sender.entry(user).or_default().push(text);
    }
    by_sender
}

async fn a_publish_reaches_only_the_nodes_with_members(backplane: Backplane) {
    let cluster = cluster(backplane, 3, &[("chat", "chat")]).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    // Ann's own join announcement has gone out before bob joins (see `settled`).
    settled(a, 1).await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );

    const MESSAGES: usize = 50;
    for i in 0..MESSAGES {
        ann.send_text(&format!("ann-{i}")).await;
        bob.send_text(&format!("bob-{i}")).await;
    }
    let sent =
        |user: &str| -> Vec<String> { (0..MESSAGES).map(|i| format!("{user}-{i}")).collect() };
    let expected = BTreeMap::from([
        ("ann".to_owned(), sent("ann")),
        ("bob".to_owned(), sent("bob")),
    ]);
    for member in [&mut ann, &mut bob] {
        assert_eq!(
            messages_by_sender(member, 2 * MESSAGES).await,
            expected,
            "every member got every message once, in the order each sender sent them"
        );
    }

    // Every publish has reached every member, so whatever reached C has too.
    assert!(
        publishes_received(b).await > 0.0,
        "B received A's publishes from the cluster"
    );
    assert_eq!(
        publishes_received(c).await,
        0.0,
        "no publish to room r reached C, which holds none of its members"
    );

    // Once C holds a member, it gets the room's publishes: cy's handshake has completed (cy is
    // in the room) and the others heard of it before ann publishes.
    let mut cy = c.connect("chat?room=r&user=cy").await;
    hear_join(&mut [&mut ann, &mut bob], "cy").await;
    ann.send_text("welcome").await;
    let welcome = json!({"type": "message", "user": "ann", "text": "welcome"});
    assert_eq!(
        cy.receive_json().await,
        welcome,
        "C delivers to its new member"
    );
    assert_eq!(bob.receive_json().await, welcome);
    assert!(
        publishes_received(c).await > 0.0,
        "C counts the publish it received for cy"
    );
}

/// The node set's stamps (Redis clock, ms) of every listed node.
fn heartbeat_stamps(redis: &SharedRedis) -> Vec<u64> {
    redis
        .cli(&["ZRANGE", "wsfn:{c}:nodes", "0", "-1", "WITHSCORES"])
        .lines()
        .skip(1)
        .step_by(2)
        .filter_map(|score| score.trim().parse().ok())
        .collect()
}

/// Redis's clock, in ms.
fn redis_now_ms(redis: &SharedRedis) -> u64 {
    let time = redis.cli(&["TIME"]);
    let mut parts = time
        .lines()
        .filter_map(|part| part.trim().parse::<u64>().ok());
    let (Some(seconds), Some(micros)) = (parts.next(), parts.next()) else {
        panic!("TIME answered {time:?}");
    };
    seconds * 1000 + micros / 1000
}

async fn a_redis_outage_longer_than_the_node_timeout_declares_no_node_dead(backplane: Backplane) {
    let cluster = cluster_of(backplane, Nodes::Processes, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    settled(a, 1).await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    settled(a, 2).await;

    // Longer than the node timeout: when Redis answers again, every stamp is older than it.
    let outage =
        std::time::Duration::from_millis(NODE_TIMEOUT_MS.parse::<u64>().unwrap_or(3000) + 1500);
    for pid in cluster.redis.pids() {
        signal(pid, libc::SIGSTOP);
    }
    tokio::time::sleep(outage).await;
    for pid in cluster.redis.pids() {
        signal(pid, libc::SIGCONT);
    }
    let back_at = redis_now_ms(&cluster.redis);
    // Both nodes have beaten since Redis came back: a node declared dead by the other's
    // first heartbeat would have closed bob by its own next one.
    poll_until("both nodes beat after the outage", async || {
        let stamps = heartbeat_stamps(&cluster.redis);
        (stamps.len() == 2 && stamps.iter().all(|&stamp| stamp > back_at)).then_some(())
    })
    .await;

    bob.send_text("still here").await;
    let message = json!({"type": "message", "user": "bob", "text": "still here"});
    assert_eq!(
        bob.receive_json().await,
        message,
        "bob's connection was not closed"
    );
    assert_eq!(
        ann.receive_json().await,
        message,
        "no on-close ran for bob (it would have told the room he left)"
    );
    for node in [a, b] {
        assert!(
            !node.log().contains("declared dead"),
            "no node was declared dead:\n{}",
            node.log()
        );
    }
}

/// The node's `wsfn_cluster_subscribed` gauge.
async fn subscribed(node: &Host) -> f64 {
    let text = node.admin().get("/metrics").await.expect_status(200).text();
    Exposition::parse(&text).value("wsfn_cluster_subscribed", &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_loses_redis_says_so_and_restores_its_subscription_and_directory() {
    let dir = TestDir::new();
    let mut redis = RedisServer::start(&dir);
    let node = Host::builder()
        .option("--redis", &redis.url())
        .option("--node-timeout-ms", NODE_TIMEOUT_MS)
        .function("echo")
        .start()
        .await;
    let mut client = node.connect("echo").await;
    let before = await_connections(&node, "echo", 1).await;
    assert_eq!(subscribed(&node).await, 1.0);

    redis.kill();
    poll_until("the node reports its subscription lost", async || {
        (subscribed(&node).await == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        client.ask("still here").await,
        "still here",
        "the node's own connections do not wait on Redis"
    );

    redis.start_again();
    poll_until("the node reports its subscription restored", async || {
        (subscribed(&node).await == 1.0).then_some(())
    })
    .await;
    // The restarted Redis is empty: the node writes its connection into the directory again.
    let listed = await_connections(&node, "echo", 1).await;
    assert_eq!(listed[0]["id"], before[0]["id"], "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_user_denied_info_still_clusters() {
    let dir = TestDir::new();
    let redis = RedisServer::start(&dir);
    // What production ACLs often look like: everything but the @dangerous commands, INFO
    // among them.
    assert_eq!(
        redis.cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-secret",
            "~*",
            "&*",
            "+@all",
            "-@dangerous"
        ]),
        "OK"
    );
    assert!(
        redis
            .cli(&[
                "--user",
                "app",
                "--pass",
                "app-secret",
                "--no-auth-warning",
                "INFO"
            ])
            .contains("NOPERM"),
        "the user may not run INFO"
    );
    let port = redis
        .url()
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/')
        .to_owned();
    let url = format!("redis://app:app-secret@127.0.0.1:{port}/");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            Host::builder()
                .option("--redis", &url)
                .option("--node-timeout-ms", NODE_TIMEOUT_MS)
                .function_served_as("chat", "chat")
                .start()
                .await,
        );
    }
    let mut ann = nodes[0].connect("chat?room=r&user=ann").await;
    settled(&nodes[0], 1).await;
    let mut bob = nodes[1].connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"}),
        "the room spans the two nodes"
    );
    bob.send_text("hello").await;
    let message = json!({"type": "message", "user": "bob", "text": "hello"});
    assert_eq!(bob.receive_json().await, message);
    assert_eq!(ann.receive_json().await, message);
}

/// Each of `members` receives the room's announcement that `user` joined, next.
async fn hear_join(members: &mut [&mut Client], user: &str) {
    for member in members.iter_mut() {
        assert_eq!(
            member.receive_json().await,
            json!({"type": "join", "user": user})
        );
    }
}
