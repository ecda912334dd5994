//! The journal that lets a resumable session outlive the node serving it: a real Redis (one
//! server, and a three-primary Redis Cluster), two nodes' links to it, and a third connection
//! listening on the session's channel as its home does. What one node writes, another takes
//! over: positions, what the client acknowledged and what the function handled, the retention
//! limit, group publishes taken once, and which node may end the session.

use bytes::Bytes;
use wsfn_host::backplane::{Heard, RedisConnection, Subscriber};
use wsfn_host::cluster::{
    AckRefusal, Appended, ClaimRefusal, ClusterLink, ClusterSettings, SessionNotice, SessionStart,
};
use wsfn_host::connections::{ConnectionId, NodeId, Outbound, PublishMark};
use wsfn_host::observe::ClusterMetrics;

use crate::support::{Backplane, SharedRedis, TestDir, WAIT, on_every_backplane};

on_every_backplane!(
    a_session_moves_to_another_node_with_what_its_client_has_not_received,
    a_session_refuses_what_does_not_fit_and_resumes_that_do_not_prove_it,
    each_group_publish_is_taken_once_however_many_nodes_deliver_it,
);

const SECRET: &str = "00112233445566778899aabbccddeeff";
const FUNCTION: &str = "counter";

/// A Redis and the links of two nodes to it.
struct Nodes {
    redis: SharedRedis,
    a: ClusterLink,
    b: ClusterLink,
    _dir: std::sync::Arc<TestDir>,
}

impl Nodes {
    async fn start(backplane: Backplane) -> Self {
        let dir = TestDir::new();
        let redis = backplane.start(&dir);
        let a = link(&redis, 0).await;
        let b = link(&redis, 1).await;
        Self {
            redis,
            a,
            b,
            _dir: dir,
        }
    }

    /// Opens a session of `a` with the given retention limit.
    async fn open(&self, retention: usize) -> ConnectionId {
        let id = ConnectionId::random_on(self.a.node);
        let start = SessionStart {
            id,
            function: FUNCTION,
            secret: SECRET,
            retention,
            subprotocol: Some("chat.v1"),
        };
        self.a
            .open_session(&start)
            .await
            .expect("the journal opens");
        id
    }

    /// Listens on the session's channel, as its home does.
    async fn listen(&self, id: ConnectionId) -> Subscriber {
        let redis = RedisConnection::open(&self.redis.url_for_host(0))
            .await
            .expect("Redis answers");
        let mut subscriber = Subscriber::open(&redis).await.expect("subscriber opens");
        subscriber
            .subscribe(&format!("wsfn:{{s:{id}}}:to"))
            .await
            .expect("subscribed");
        subscriber
    }
}

async fn link(redis: &SharedRedis, host: usize) -> ClusterLink {
    ClusterLink::connect(
        &redis.url_for_host(host),
        NodeId::random(),
        ClusterSettings::default(),
        ClusterMetrics::default(),
    )
    .await
    .expect("the node connects to Redis")
}

fn text(s: &'static str) -> Outbound {
    Outbound::Text(Bytes::from_static(s.as_bytes()))
}

fn binary(bytes: &'static [u8]) -> Outbound {
    Outbound::Binary(Bytes::from_static(bytes))
}

async fn heard(subscriber: &mut Subscriber) -> SessionNotice {
    let heard = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .expect("a notice on the session's channel");
    match heard {
        Some(Heard::Message { payload, .. }) => {
            SessionNotice::decode(Bytes::from(payload)).expect("a well-formed notice")
        }
        other => panic!("expected a notice, heard {other:?}"),
    }
}

fn message(position: u64, frame: Outbound) -> SessionNotice {
    SessionNotice::Message { position, frame }
}

async fn a_session_moves_to_another_node_with_what_its_client_has_not_received(
    backplane: Backplane,
) {
    let nodes = Nodes::start(backplane).await;
    let id = nodes.open(1 << 20).await;
    let mut home = nodes.listen(id).await;

    let sent = [text("one"), binary(&[0, 1, 2]), text("three")];
    for (position, frame) in (1..).zip(&sent) {
        // Either node appends; Redis numbers them in one order.
        let appender = if position == 2 { &nodes.b } else { &nodes.a };
        let appended = appender.append_to_session(id, frame, None, None).await;
        assert_eq!(appended.expect("Redis answers"), Appended::At(position));
        assert_eq!(heard(&mut home).await, message(position, frame.clone()));
    }
    assert_eq!(nodes.a.acknowledge_session(id, 1).await.unwrap(), Ok(3));
    nodes.a.note_session_handled(id, 7).await.unwrap();
    nodes.a.note_session_handled(id, 5).await.unwrap();

    // The client resumes on b, having received two of the three.
    let claimed = nodes.b.claim_session(id, FUNCTION, SECRET, 2).await;
    let claimed = claimed.expect("Redis answers").expect("the claim is taken");
    assert_eq!(claimed.previous_home, Some(nodes.a.node));
    assert_eq!(claimed.claim, 1, "the session's first claim");
    assert_eq!(claimed.handled, 7, "the highest count handled is kept");
    assert_eq!(claimed.subprotocol.as_deref(), Some("chat.v1"));
    assert_eq!(claimed.replay, vec![(3, text("three"))]);
    assert_eq!(
        heard(&mut home).await,
        SessionNotice::Moved {
            to: nodes.b.node,
            claim: 1
        },
        "the node it left hears that it moved"
    );
    assert_eq!(
        nodes
            .a
            .append_to_session(id, &text("four"), None, Some(FUNCTION))
            .await
            .unwrap(),
        Appended::At(4),
        "numbering goes on where it was"
    );
    assert_eq!(heard(&mut home).await, message(4, text("four")));
    let other_function = nodes
        .a
        .append_to_session(id, &text("x"), None, Some("echo"))
        .await;
    assert_eq!(
        other_function.unwrap(),
        Appended::Gone,
        "another function's sends are refused"
    );

    // Only the new home may end it.
    assert!(
        !nodes
            .a
            .release_session(id, Some(nodes.a.node))
            .await
            .unwrap()
    );
    assert!(
        nodes
            .b
            .release_session(id, Some(nodes.b.node))
            .await
            .unwrap()
    );
    assert!(
        !nodes
            .b
            .release_session(id, Some(nodes.b.node))
            .await
            .unwrap()
    );
    assert_eq!(
        nodes
            .a
            .append_to_session(id, &text("five"), None, None)
            .await
            .unwrap(),
        Appended::Gone
    );
    assert_eq!(
        nodes
            .a
            .claim_session(id, FUNCTION, SECRET, 4)
            .await
            .unwrap(),
        Err(ClaimRefusal::Unknown)
    );
    let left = nodes
        .redis
        .cli(&["EXISTS", &format!("wsfn:{{s:{id}}}:log")]);
    assert_eq!(left.trim(), "0", "an ended session leaves nothing in Redis");
}

async fn a_session_refuses_what_does_not_fit_and_resumes_that_do_not_prove_it(
    backplane: Backplane,
) {
    let nodes = Nodes::start(backplane).await;
    let id = nodes.open(10).await;
    let b = &nodes.b;

    let unknown = ConnectionId::random_on(nodes.a.node);
    let claim = |id, function, secret, received| b.claim_session(id, function, secret, received);
    assert_eq!(
        claim(unknown, FUNCTION, SECRET, 0).await.unwrap(),
        Err(ClaimRefusal::Unknown)
    );
    assert_eq!(
        claim(id, "echo", SECRET, 0).await.unwrap(),
        Err(ClaimRefusal::Function)
    );
    let wrong = "00112233445566778899aabbccddeefe";
    assert_eq!(
        claim(id, FUNCTION, wrong, 0).await.unwrap(),
        Err(ClaimRefusal::Secret)
    );

    // One message larger than the limit fits an empty session, as on one node.
    let large = text("a message of twenty!");
    assert_eq!(
        b.append_to_session(id, &large, None, None).await.unwrap(),
        Appended::At(1)
    );
    assert_eq!(
        claim(id, FUNCTION, SECRET, 2).await.unwrap(),
        Err(ClaimRefusal::Gap)
    );
    assert_eq!(
        b.acknowledge_session(id, 2).await.unwrap(),
        Err(AckRefusal::TooMany)
    );
    assert_eq!(b.acknowledge_session(id, 1).await.unwrap(), Ok(20));
    assert_eq!(
        claim(id, FUNCTION, SECRET, 0).await.unwrap(),
        Err(ClaimRefusal::Gap)
    );
    assert_eq!(
        b.acknowledge_session(unknown, 0).await.unwrap(),
        Err(AckRefusal::Unknown)
    );

    let mut home = nodes.listen(id).await;
    assert_eq!(
        b.append_to_session(id, &text("six b!"), None, None)
            .await
            .unwrap(),
        Appended::At(2)
    );
    assert_eq!(heard(&mut home).await, message(2, text("six b!")));
    // Six and five bytes are more than ten: the session overflows and its home hears it.
    assert_eq!(
        b.append_to_session(id, &text("five!"), None, None)
            .await
            .unwrap(),
        Appended::Full
    );
    assert_eq!(heard(&mut home).await, SessionNotice::Overflowed);
    assert_eq!(
        b.append_to_session(id, &text("1"), None, None)
            .await
            .unwrap(),
        Appended::Full
    );
    assert_eq!(
        claim(id, FUNCTION, SECRET, 1).await.unwrap(),
        Err(ClaimRefusal::Unknown),
        "an overflowed session cannot be resumed"
    );
    assert!(
        nodes
            .a
            .release_session(id, Some(nodes.a.node))
            .await
            .unwrap()
    );
}

async fn each_group_publish_is_taken_once_however_many_nodes_deliver_it(backplane: Backplane) {
    let nodes = Nodes::start(backplane).await;
    let id = nodes.open(1 << 20).await;
    // Ids in a group's history: milliseconds and a sequence within them.
    let mark =
        |group: &'static str, millis, sequence| Some((group, PublishMark { millis, sequence }));

    // a delivers the room's first two publishes; b, listening to the room since the session
    // started moving to it, delivers the second and third.
    assert_eq!(
        append(&nodes.a, id, "p1", mark("room", 1000, 0)).await,
        Appended::At(1)
    );
    assert_eq!(
        append(&nodes.a, id, "p2", mark("room", 1000, 1)).await,
        Appended::At(2)
    );
    assert_eq!(
        append(&nodes.b, id, "p2", mark("room", 1000, 1)).await,
        Appended::Duplicate
    );
    assert_eq!(
        append(&nodes.b, id, "p3", mark("room", 1001, 0)).await,
        Appended::At(3)
    );
    assert_eq!(
        append(&nodes.a, id, "p3", mark("room", 1001, 0)).await,
        Appended::Duplicate
    );
    // Ids compare as numbers, and each group's history has its own.
    assert_eq!(
        append(&nodes.b, id, "q1", mark("room", 10000, 0)).await,
        Appended::At(4)
    );
    assert_eq!(
        append(&nodes.a, id, "q0", mark("room", 9999, 7)).await,
        Appended::Duplicate
    );
    assert_eq!(
        append(&nodes.b, id, "r2", mark("lobby", 5, 0)).await,
        Appended::At(5)
    );
    assert_eq!(append(&nodes.a, id, "direct", None).await, Appended::At(6));

    // a dies: a survivor parks its session, which then resumes on b.
    assert!(
        !nodes.b.park_session(id, nodes.b.node).await.unwrap(),
        "not b's"
    );
    assert!(nodes.b.park_session(id, nodes.a.node).await.unwrap());
    let claimed = nodes
        .b
        .claim_session(id, FUNCTION, SECRET, 4)
        .await
        .unwrap();
    let claimed = claimed.expect("a parked session resumes");
    assert_eq!(claimed.previous_home, None);
    assert_eq!(claimed.replay, vec![(5, text("r2")), (6, text("direct"))]);
    assert!(
        !nodes.b.release_session(id, None).await.unwrap(),
        "the expiry of the parked session does not end it once it resumed"
    );
    assert!(
        nodes
            .b
            .release_session(id, Some(nodes.b.node))
            .await
            .unwrap()
    );
}

async fn append(
    node: &ClusterLink,
    id: ConnectionId,
    body: &'static str,
    mark: Option<(&str, PublishMark)>,
) -> Appended {
    let appended = node.append_to_session(id, &text(body), mark, None).await;
    appended.expect("Redis answers")
}
