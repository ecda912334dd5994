//! The Rust client's resumable session against a network that keeps failing: a proxy cuts the
//! connection every 50–500 ms while the client sends 2,000 messages to `counter` and the host
//! pushes 2,000 to it, half through the admin API, half as group publishes from another
//! connection. Nothing may be lost or repeated, and the function must see one connection.
//!
//! The client keeps at most [`IN_FLIGHT`] messages unanswered, as an application waiting for
//! replies would, so its messages are spread over many cuts rather than sent in one burst.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use wsfn_client::{Event, Options, Reconnect, Sender, Session};

use crate::support::{Admin, Client, Host, LogStream, Proxy, Seed, TEXT, WAIT, poll_until, within};

pub(crate) const OWN_MESSAGES: u64 = 2_000;
const ADMIN_PUSHES: u64 = 1_000;
const PUBLISHES: u64 = 1_000;

/// How many of its messages the client lets go unanswered.
const IN_FLIGHT: u64 = 64;

/// Every so many of its messages the sender waits for the proxy to cut once more, so the
/// exchange spans cuts however fast the machine is.
const SENDS_BETWEEN_CUTS: u64 = 400;

/// The session client's counter, and the counter it watches, which the publisher increments.
pub(crate) const OWN_COUNTER: &str = "mine";
pub(crate) const WATCHED_COUNTER: &str = "theirs";

/// Options for a client that reconnects at once and never gives up while the test runs.
pub(crate) fn fast_options(options: Options) -> Options {
    options.reconnect(fast_reconnect()).close_timeout(WAIT)
}

fn fast_reconnect() -> Reconnect {
    Reconnect::default()
        .initial_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(50))
}

/// What the session client received, by source.
#[derive(Debug)]
pub(crate) struct Tally {
    /// How many of each are expected: replies, pushes, publishes.
    expected: (u64, u64, u64),
    /// The counter's replies to the client's own messages.
    pub(crate) replies: Vec<u64>,
    /// The numbers of the admin API's pushes.
    pub(crate) pushed: Vec<u64>,
    /// The values of the watched counter, published by the other connection.
    pub(crate) published: Vec<u64>,
    pub(crate) resumes: u64,
    /// Anything else: resets, a close, messages of no known source.
    pub(crate) unexpected: Vec<String>,
}

impl Tally {
    /// A tally waiting for `replies` replies, `pushes` pushes and `publishes` publishes.
    pub(crate) fn expecting(replies: u64, pushes: u64, publishes: u64) -> Self {
        Self {
            expected: (replies, pushes, publishes),
            replies: Vec::new(),
            pushed: Vec::new(),
            published: Vec::new(),
            resumes: 0,
            unexpected: Vec::new(),
        }
    }

    pub(crate) fn complete(&self) -> bool {
        let (replies, pushes, publishes) = self.expected;
        self.replies.len() as u64 >= replies
            && self.pushed.len() as u64 >= pushes
            && self.published.len() as u64 >= publishes
    }

    pub(crate) fn record(&mut self, event: Event) {
        let text = match event {
            Event::Text(text) => text,
            Event::Resumed { .. } => {
                self.resumes += 1;
                return;
            }
            other => return self.unexpected.push(format!("{other:?}")),
        };
        let watched = format!("{WATCHED_COUNTER}:");
        let (list, number) = if let Some(number) = text.strip_prefix("admin:") {
            (&mut self.pushed, number)
        } else if let Some(number) = text.strip_prefix(&watched) {
            (&mut self.published, number)
        } else {
            (&mut self.replies, text.as_str())
        };
        match number.parse() {
            Ok(number) => list.push(number),
            Err(_) => self.unexpected.push(format!("the text {text:?}")),
        }
    }

    pub(crate) fn assert_everything_arrived_once_in_order(&self) {
        assert!(self.unexpected.is_empty(), "{}", self.summary());
        let replies = "the replies to the client's messages";
        assert_counts_up(replies, &self.replies, OWN_MESSAGES);
        assert_counts_up("the admin API's pushes", &self.pushed, ADMIN_PUSHES);
        let published = "the watched counter's publishes";
        assert_counts_up(published, &self.published, PUBLISHES);
        assert!(
            self.resumes > 0,
            "the cuts made the client resume: {}",
            self.summary()
        );
    }

    fn summary(&self) -> String {
        let describe = |what: &str, received: &[u64]| match first_break(received) {
            Some(broken) => format!("{} {what}, {broken}", received.len()),
            None => format!("{} {what} in order", received.len()),
        };
        format!(
            "{}; {}; {}; {} resumes; unexpected: {:?}",
            describe("replies", &self.replies),
            describe("pushes", &self.pushed),
            describe("publishes", &self.published),
            self.resumes,
            self.unexpected
        )
    }
}

/// Where `received` first differs from 1, 2, 3, ..., described with what surrounds it.
fn first_break(received: &[u64]) -> Option<String> {
    let at = received
        .iter()
        .zip(1..)
        .position(|(got, expected)| *got != expected)?;
    let around = &received[at.saturating_sub(3)..(at + 4).min(received.len())];
    Some(format!(
        "number {} is {} (around it: {around:?})",
        at + 1,
        received[at]
    ))
}

/// Asserts that `received` is exactly 1, 2, ..., `count`, naming the first place it is not.
pub(crate) fn assert_counts_up(what: &str, received: &[u64], count: u64) {
    if let Some(broken) = first_break(received) {
        panic!("{what}: {broken}");
    }
    assert_eq!(received.len() as u64, count, "{what}: how many arrived");
}

async fn send_own_messages(
    sender: Sender,
    mut replies: watch::Receiver<u64>,
    proxy: Proxy,
    seed: &Seed,
) {
    let mut random = seed.random(1);
    for n in 1..=OWN_MESSAGES {
        let answered = n.saturating_sub(IN_FLIGHT + 1);
        within(
            &format!("{answered} replies before message {n}"),
            replies.wait_for(|count| *count >= answered),
        )
        .await
        .expect("the receiving side lives as long as the sending side");
        sender
            .send_text(format!("own {n}"))
            .unwrap_or_else(|error| panic!("sending message {n}: {error}"));
        if n % SENDS_BETWEEN_CUTS == 0 {
            let before = proxy.effective_cuts();
            poll_until("the proxy cuts once more", async || {
                (proxy.effective_cuts() > before).then_some(())
            })
            .await;
        }
        // Pauses of a few milliseconds now and then spread the messages over many cuts.
        if random.u8(..8) == 0 {
            tokio::time::sleep(Duration::from_millis(random.u64(1..=4))).await;
        }
    }
}

async fn push_through_admin(admin: Admin, id: String) {
    for n in 1..=ADMIN_PUSHES {
        let answer = admin
            .post(
                &format!("/v1/connections/{id}/send"),
                TEXT,
                format!("admin:{n}"),
            )
            .await
            .expect_json(200);
        assert_eq!(answer, json!({"delivered": 1}), "push {n} to a session");
    }
}

async fn publish_to_watchers(mut publisher: Client) {
    for n in 1..=PUBLISHES {
        assert_eq!(
            publisher.ask("increment").await,
            n.to_string(),
            "the publisher's counter"
        );
    }
}

/// Reads events until every message has arrived, telling the sender how many replies did.
/// Fails once no message has arrived for [`WAIT`] (resumes alone do not count as progress).
async fn receive_everything(session: &mut Session, replies: watch::Sender<u64>) -> Tally {
    let mut tally = Tally::expecting(OWN_MESSAGES, ADMIN_PUSHES, PUBLISHES);
    let mut last_progress = (Instant::now(), 0);
    while !tally.complete() {
        let event = tokio::time::timeout(WAIT, session.next_event()).await;
        match event {
            Ok(Some(event)) => tally.record(event),
            Ok(None) => panic!("the session ended early: {}", tally.summary()),
            Err(_) => {}
        }
        replies.send_replace(tally.replies.len() as u64);
        let arrived = tally.replies.len() + tally.pushed.len() + tally.published.len();
        if arrived > last_progress.1 {
            last_progress = (Instant::now(), arrived);
        }
        assert!(
            last_progress.0.elapsed() < WAIT,
            "no message arrived for {WAIT:?}: {}",
            tally.summary()
        );
    }
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_through_a_proxy_that_keeps_cutting_loses_and_repeats_nothing() {
    let seed = Seed::from_env_or_random();
    // In memory: the test is about the session, not about the disk of a busy machine.
    let host = Host::builder()
        .function("counter")
        .option("--store", "memory")
        .start()
        .await;
    let admin = host.admin();
    let mut log = LogStream::open(&admin, "counter").await;
    let proxy = Proxy::start(host.addr()).await;
    let publisher = host
        .connect(&format!("counter?name={WATCHED_COUNTER}"))
        .await;
    let (id, tally) = exchange_through_cuts(&proxy, admin.clone(), publisher, &seed).await;

    assert_counted_and_closed_once(&host, &mut log, &id).await;
    eprintln!(
        "seed {}: {} cuts, {} resumes",
        seed.value(),
        proxy.effective_cuts(),
        tally.resumes
    );
}

/// Starts a session of `counter` through `proxy` and, while the proxy cuts every 50–500 ms,
/// sends its own messages, pushes to it through `admin` and publishes to it from `publisher`.
/// Asserts that everything arrived once and in order to the same session, and that it then
/// closes with 1000 (a close lost with its socket is delivered by a resume). Returns its id
/// and what it received.
pub(crate) async fn exchange_through_cuts(
    proxy: &Proxy,
    admin: Admin,
    publisher: Client,
    seed: &Seed,
) -> (String, Tally) {
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

    let cuts = proxy.cut_randomly(seed.value(), 50..=500);
    let tally = {
        let (replies, replies_seen) = watch::channel(0);
        let sending = send_own_messages(session.sender(), replies_seen, proxy.clone(), seed);
        let pushing = push_through_admin(admin, id.clone());
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
    (id, tally)
}

/// Checks what the function saw of the session: it counted each of the client's messages
/// once (incrementing once more reads what the counter held), and its connection had one
/// on-connect and one on-close, with the client's 1000 (the log up to a later connection's
/// close shows every lifecycle line of the session's).
async fn assert_counted_and_closed_once(host: &Host, log: &mut LogStream, id: &str) {
    let admin = host.admin();
    let before: Vec<_> = connection_ids(&admin).await;
    let mut reader = host.connect(&format!("counter?name={OWN_COUNTER}")).await;
    assert_eq!(
        reader.ask("increment").await,
        (OWN_MESSAGES + 1).to_string(),
        "the counter counted each of the client's messages once"
    );
    let after = connection_ids(&admin).await;
    assert!(
        !after.iter().any(|other| other == id),
        "the session's connection is gone: {after:?}"
    );
    let reader_id = after
        .into_iter()
        .find(|other| !before.contains(other))
        .expect("the reader's connection is listed");
    reader.close(1000, "").await;
    let (connects, closes) = lifecycle_lines(log, id, &reader_id).await;
    assert_eq!(connects, 1, "on-connect ran once for the session");
    assert_eq!(
        closes,
        [json!(1000)],
        "on-close ran once, with the client's close code"
    );
}

pub(crate) async fn connection_ids(admin: &Admin) -> Vec<String> {
    admin
        .connections("counter")
        .await
        .iter()
        .filter_map(|connection| connection["id"].as_str().map(str::to_owned))
        .collect()
}

/// Reads the log until `last`'s close line and returns how many `connect` lines and which
/// close codes it had for `id`.
pub(crate) async fn lifecycle_lines(
    log: &mut LogStream,
    id: &str,
    last: &str,
) -> (usize, Vec<serde_json::Value>) {
    let (mut connects, mut closes) = (0, Vec::new());
    loop {
        let Some(line) = log.next().await else {
            panic!("the log ended before the close of {last}");
        };
        match (line["kind"].as_str(), line["connection"].as_str()) {
            (Some("connect"), Some(connection)) if connection == id => connects += 1,
            (Some("close"), Some(connection)) if connection == id => {
                closes.push(line["code"].clone())
            }
            (Some("close"), Some(connection)) if connection == last => return (connects, closes),
            (Some("lagged"), _) => panic!("the log lost lines: {line}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_resumes_with_the_subprotocol_on_connect_chose() {
    let host = Host::builder().function("lifecycle").start().await;
    let proxy = Proxy::start(host.addr()).await;
    // The fixture confirms the first offered subprotocol starting with `wsfn.`; a resume that
    // did not confirm it again would fail the client's handshake, attempt after attempt.
    let options = fast_options(Options::new(proxy.url("lifecycle")).protocol("wsfn.test"));
    let options = options.reconnect(fast_reconnect().max_attempts(20));
    let mut session = within("the session to start", Session::connect(options))
        .await
        .unwrap_or_else(|error| panic!("connecting with a subprotocol: {error}"));
    proxy.cut();
    let resumed = within("the resume", session.next_event()).await;
    assert_eq!(resumed, Some(Event::Resumed { resent: 0 }));
    session.send_text("id").expect("open");
    let id = within("the reply", session.next_event()).await;
    assert_eq!(id, Some(Event::Text(session.id().expect("a session id"))));
}
