//! Nodes that die or restart under resumable sessions: three node processes on one Redis,
//! clients spread over them through a proxy (as a load balancer would), each counting its own
//! messages, receiving pushes through the admin API and a watched counter's publishes. One
//! node is killed (`SIGKILL`) and another restarted (`SIGTERM`, then started again): every
//! client ends with every push and publish once and in order, its own messages handled (at
//! least once: a killed node may have handled one it had not recorded yet), and each session
//! has one on-connect and one on-close, with the client's own close at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use wsfn_client::{Options, Sender, Session};

use crate::session_resume::{Tally, WATCHED_COUNTER, assert_counts_up, fast_options};
use crate::support::{
    Admin, Backplane, Client, Host, LogStream, Proxy, SharedRedis, TEXT, TestDir, WAIT, poll_until,
    within,
};

/// Clients, their own messages each, pushes to each, publishes to all.
const CLIENTS: usize = 6;
const OWN: u64 = 300;
const PUSHES: u64 = 100;
const PUBLISHES: u64 = 300;
/// How many of its messages a client lets go unanswered.
const IN_FLIGHT: u64 = 16;
const NODE_TIMEOUT_MS: &str = "1000";

async fn node(redis: &SharedRedis) -> Host {
    Host::builder()
        .option("--redis", &redis.url_for_host(0))
        .option("--node-timeout-ms", NODE_TIMEOUT_MS)
        .function("counter")
        .start_process()
        .await
}

/// How many of a client's messages were handled twice (the counter's last reply beyond the
/// number of messages).
fn handled_again(tally: &Tally) -> u64 {
    tally
        .replies
        .last()
        .map_or(0, |last| last.saturating_sub(OWN))
}

/// Checks what client `client` received.
fn check(tally: &Tally, client: usize) {
    assert!(
        tally.unexpected.is_empty(),
        "client {client}: {:?}",
        tally.unexpected
    );
    // The client's own messages are handled at least once: exactly once, unless their node
    // was killed between the function handling one and the journal recording it (the
    // README says so); the client then sends it again. So the counter's replies only
    // grow, from 1, and every message got one.
    assert!(
        tally.replies.first() == Some(&1)
            && tally.replies.windows(2).all(|pair| pair[0] < pair[1])
            && tally.replies.len() as u64 >= OWN,
        "client {client}: the replies to its own messages: {:?}",
        tally.replies
    );
    let pushes = format!("client {client}: the admin API's pushes");
    assert_counts_up(&pushes, &tally.pushed, PUSHES);
    let publishes = format!("client {client}: the watched counter's publishes");
    assert_counts_up(&publishes, &tally.published, PUBLISHES);
}

/// Replies received by all clients together: what the pushes, the publishes and the
/// disruptions pace themselves by, so all of them happen while the clients are busy.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Waits until the clients together have this share (in thousandths) of their replies.
async fn progress(thousandths: u64) {
    let wanted = CLIENTS as u64 * OWN * thousandths / 1000;
    poll_until(&format!("the clients have {wanted} replies"), async || {
        (PROGRESS.load(Ordering::SeqCst) >= wanted).then_some(())
    })
    .await;
}

/// Sends a client's own messages, at most [`IN_FLIGHT`] unanswered.
async fn send_own(sender: Sender, mut replies: watch::Receiver<u64>, client: usize) {
    for n in 1..=OWN {
        let answered = n.saturating_sub(IN_FLIGHT + 1);
        within(
            &format!("client {client}: {answered} replies before message {n}"),
            replies.wait_for(|count| *count >= answered),
        )
        .await
        .expect("the receiving side lives as long as the sending side");
        sender
            .send_text(format!("own {n}"))
            .unwrap_or_else(|error| panic!("client {client}: sending {n}: {error}"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn receive(session: &mut Session, replies: watch::Sender<u64>, client: usize) -> Tally {
    let mut tally = Tally::expecting(OWN, PUSHES, PUBLISHES);
    let mut last = (Instant::now(), 0);
    while !tally.complete() {
        if let Ok(event) = tokio::time::timeout(WAIT, session.next_event()).await {
            match event {
                Some(event) => tally.record(event),
                None => panic!("client {client}: the session ended early: {tally:?}"),
            }
        }
        let before = replies.send_replace(tally.replies.len() as u64);
        PROGRESS.fetch_add(tally.replies.len() as u64 - before, Ordering::SeqCst);
        let arrived = tally.replies.len() + tally.pushed.len() + tally.published.len();
        if arrived > last.1 {
            last = (Instant::now(), arrived);
        }
        if last.0.elapsed() >= WAIT {
            // Nothing more is coming: `Tally::check` says what is missing.
            break;
        }
    }
    tally
}

async fn push(admin: Admin, ids: Vec<String>) {
    for n in 1..=PUSHES {
        progress(900 * (n - 1) / PUSHES).await;
        for id in &ids {
            let answer = admin
                .post(
                    &format!("/v1/connections/{id}/send"),
                    TEXT,
                    format!("admin:{n}"),
                )
                .await
                .expect_json(200);
            assert_eq!(answer["delivered"], 1, "push {n} to {id}");
        }
    }
}

async fn publish(mut publisher: Client) {
    for n in 1..=PUBLISHES {
        progress(900 * (n - 1) / PUBLISHES).await;
        assert_eq!(publisher.ask("increment").await, n.to_string());
    }
}

/// The session connection ids of `counter` the cluster lists (read through `admin`).
async fn listed(admin: &Admin) -> Vec<String> {
    admin
        .connections("counter")
        .await
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

/// Reads a log until it ends or goes quiet, counting connect lines and close codes of `ids`.
async fn lifecycle(log: &mut LogStream, ids: &[String], counts: &mut [(usize, Vec<Value>)]) {
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_secs(2), log.next_until_cut()).await
    {
        let Some(at) = ids
            .iter()
            .position(|id| line["connection"].as_str() == Some(id))
        else {
            continue;
        };
        match line["kind"].as_str() {
            Some("connect") => counts[at].0 += 1,
            Some("close") => counts[at].1.push(line["code"].clone()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_a_killed_node_and_a_rolling_restart_losing_nothing() {
    let dir = TestDir::new();
    let redis = Backplane::OneRedis.start(&dir);
    let a = node(&redis).await;
    let mut b = node(&redis).await;
    let c = node(&redis).await;
    let mut logs = vec![
        LogStream::open(&a.admin(), "counter").await,
        LogStream::open(&b.admin(), "counter").await,
        LogStream::open(&c.admin(), "counter").await,
    ];
    let proxy = Proxy::start_alternating(&[a.addr(), b.addr(), c.addr()]).await;

    let mut sessions = Vec::new();
    for client in 0..CLIENTS {
        let url = proxy.url(&format!(
            "counter?name=mine-{client}&watch={WATCHED_COUNTER}"
        ));
        let session = within(
            "a session to start",
            Session::connect(fast_options(Options::new(url))),
        )
        .await
        .unwrap_or_else(|error| panic!("client {client} connecting: {error}"));
        sessions.push(session);
    }
    let ids: Vec<String> = sessions
        .iter()
        .map(|s| s.id().expect("a session has an id"))
        .collect();
    poll_until("every session is listed", async || {
        let listed = listed(&c.admin()).await;
        ids.iter().all(|id| listed.contains(id)).then_some(())
    })
    .await;
    let publisher = c.connect(&format!("counter?name={WATCHED_COUNTER}")).await;

    let traffic = async {
        let mut clients = Vec::new();
        for (client, session) in sessions.iter_mut().enumerate() {
            let (replies, seen) = watch::channel(0);
            let sender = session.sender();
            clients.push(async move {
                let ((), tally) = tokio::join!(
                    send_own(sender, seen, client),
                    receive(session, replies, client)
                );
                tally
            });
        }
        let (tallies, (), ()) = tokio::join!(
            futures_util::future::join_all(clients),
            push(c.admin(), ids.clone()),
            publish(publisher),
        );
        tallies
    };
    let disruption = async {
        progress(300).await;
        let a_pid = a.pid();
        // SAFETY: kill(2) has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(a_pid as libc::pid_t, libc::SIGKILL) },
            0
        );
        proxy.retarget(&[b.addr(), c.addr()]);
        progress(600).await;
        b.send_sigterm();
        proxy.retarget(&[c.addr()]);
        let status = within("the restarted node to exit", b.wait_for_exit()).await;
        assert!(status.success(), "SIGTERM ends a node cleanly: {status:?}");
        let b_again = node(&redis).await;
        let log = LogStream::open(&b_again.admin(), "counter").await;
        proxy.retarget(&[b_again.addr(), c.addr()]);
        (b_again, log)
    };
    let (tallies, (_b_again, b_log)) = tokio::join!(traffic, disruption);
    logs.push(b_log);
    for (client, tally) in tallies.iter().enumerate() {
        check(tally, client);
    }
    let resumes: u64 = tallies.iter().map(|t| t.resumes).sum();
    // The proxy spread the clients over the nodes in turn: two on each.
    assert!(
        resumes >= 4,
        "the clients of the node that died and of the one that restarted resumed: {resumes}"
    );

    for (client, session) in sessions.into_iter().enumerate() {
        let (code, reason) = within("a session to close", session.close()).await;
        assert_eq!(code, 1000, "client {client} closed normally ({reason})");
    }
    poll_until("no session is listed", async || {
        let listed = listed(&c.admin()).await;
        ids.iter().all(|id| !listed.contains(id)).then_some(())
    })
    .await;

    let mut counts = vec![(0, Vec::new()); CLIENTS];
    for log in &mut logs {
        lifecycle(log, &ids, &mut counts).await;
    }
    for (client, (connects, closes)) in counts.iter().enumerate() {
        assert_eq!(*connects, 1, "client {client}: one on-connect");
        assert_eq!(
            closes,
            &[serde_json::json!(1000)],
            "client {client}: one on-close, the client's"
        );
    }
    let again: u64 = tallies.iter().map(handled_again).sum();
    eprintln!("{resumes} resumes; {again} client messages handled twice (a killed node)");
}
