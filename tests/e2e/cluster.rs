//! Three `wsfn-host` nodes on one real Redis act as one host: rooms span nodes, sends and
//! admin calls reach connections on other nodes, deploys reach every node, and the
//! connections of a node that dies are closed (on-close, group removal) by a survivor.
//!
//! Messages from one node to another travel in order (one writer per node, one subscription
//! per node), so a marker sent after a batch arrives after every copy of that batch: that is
//! how these tests show "exactly once" without waiting for a silence.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Client, Host, RedisServer, TestDir, function_bytes, poll_until};

/// The default: long enough that a node of a test run on a busy machine is never taken for
/// dead by mistake; the tests that kill or stall a node wait for what follows without a bound
/// of their own (see `support::WAIT`).
const NODE_TIMEOUT_MS: &str = "3000";

struct Cluster {
    redis: RedisServer,
    nodes: Vec<Host>,
}

/// Where the nodes run: in the test process, or as processes, for the tests that kill or
/// stall a node with a signal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nodes {
    InProcess,
    Processes,
}

async fn cluster(size: usize, serve: &[(&str, &str)]) -> Cluster {
    cluster_of(Nodes::InProcess, size, serve).await
}

async fn cluster_of(nodes_run: Nodes, size: usize, serve: &[(&str, &str)]) -> Cluster {
    let dir = TestDir::new();
    let redis = RedisServer::start(&dir);
    let mut nodes = Vec::new();
    for _ in 0..size {
        let mut builder = Host::builder()
            .option("--redis", &redis.url())
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

#[tokio::test(flavor = "multi_thread")]
async fn a_room_spanning_three_nodes_delivers_every_message_to_every_member_exactly_once() {
    let cluster = cluster(3, &[("chat", "chat")]).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn notify_reaches_a_user_connected_to_another_node() {
    let cluster = cluster(3, &[("notify", "notify")]).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn admin_send_and_close_on_one_node_reach_a_connection_on_another() {
    let cluster = cluster(2, &[("echo", "echo")]).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_on_one_node_is_served_by_the_others() {
    let cluster = cluster(3, &[("swap", "swap-a")]).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_s_connections_get_on_close_on_a_survivor_and_leave_their_groups() {
    let cluster = cluster_of(Nodes::Processes, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    let bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    // SIGKILL: no close frames, no on-close, no goodbye to Redis.
    // SAFETY: kill(2) on the pid of a child process this test started.
    let killed = unsafe { libc::kill(b.pid() as i32, libc::SIGKILL) };
    assert_eq!(killed, 0, "the node could be killed");
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

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_stalled_past_the_timeout_closes_the_connections_the_cluster_closed_for_it() {
    let cluster = cluster_of(Nodes::Processes, 2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    // SIGSTOP: the node misses its heartbeats, but its sockets stay open.
    // SAFETY: kill(2) on the pid of a child process this test started.
    assert_eq!(unsafe { libc::kill(b.pid() as i32, libc::SIGSTOP) }, 0);
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "leave", "user": "bob"}),
        "the cluster declared the stalled node dead and ran bob's on-close"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(b.pid() as i32, libc::SIGCONT) }, 0);
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

#[tokio::test(flavor = "multi_thread")]
async fn when_redis_loses_its_data_the_nodes_write_their_connections_again() {
    let cluster = cluster(2, &[("chat", "chat")]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut ann = a.connect("chat?room=r&user=ann").await;
    let mut bob = b.connect("chat?room=r&user=bob").await;
    assert_eq!(
        ann.receive_json().await,
        json!({"type": "join", "user": "bob"})
    );
    await_connections(a, "chat", 2).await;

    assert_eq!(cluster.redis.cli(&["FLUSHALL"]), "OK");
    let listed = await_connections(a, "chat", 2).await;
    assert!(
        listed.iter().all(|c| c["groups"] == json!(["r"])),
        "the connections and their groups are back: {listed:?}"
    );
    // The functions are known to the cluster again: a new node gets chat from Redis.
    let c = Host::builder()
        .option("--redis", &cluster.redis.url())
        .option("--node-timeout-ms", NODE_TIMEOUT_MS)
        .start()
        .await;
    let admin = c.admin();
    poll_until("a new node serves chat", async || {
        (admin.get("/v1/functions/chat").await.status == 200).then_some(())
    })
    .await;
    let _cy = c.connect("chat?room=r&user=cy").await;
    for member in [&mut ann, &mut bob] {
        assert_eq!(
            member.receive_json().await,
            json!({"type": "join", "user": "cy"})
        );
    }
    // Nobody was closed, and the room still spans both nodes.
    bob.send_text("still here").await;
    let message = json!({"type": "message", "user": "bob", "text": "still here"});
    assert_eq!(bob.receive_json().await, message);
    assert_eq!(ann.receive_json().await, message);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unresponsive_redis_gets_a_503_within_the_cluster_timeout_and_the_node_keeps_serving() {
    let dir = TestDir::new();
    let redis = RedisServer::start(&dir);
    let node = Host::builder()
        .option("--redis", &redis.url())
        .option("--cluster-timeout-ms", "300")
        .function("echo")
        .start()
        .await;
    let mut client = node.connect("echo").await;
    await_connections(&node, "echo", 1).await;

    // SIGSTOP: Redis holds its connections open but answers nothing.
    // SAFETY: kill(2) on the pid of a child process this test started.
    assert_eq!(unsafe { libc::kill(redis.pid() as i32, libc::SIGSTOP) }, 0);
    let answer = node.admin().get("/v1/functions/echo/connections").await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(redis.pid() as i32, libc::SIGCONT) }, 0);
    let error = answer.expect_error(503);
    assert!(error.contains("did not answer within 300ms"), "{error}");
    assert_eq!(
        client.ask("still here").await,
        "still here",
        "the node's own connections do not wait on Redis"
    );
}
