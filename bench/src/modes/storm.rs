//! `storm`: N sessions (members of one group) all lose their sockets at once — each client
//! drops its TCP connection without a close, as a network failure would —, the host is made
//! to publish M messages to the group while they are away, all of them resume together after
//! a pause, and the time until every session has received all M messages is reported. The
//! host must replay what each missed; the resumes arrive as one burst of N handshakes.
//!
//! The clients cut their own sockets rather than going through a cutting proxy: a proxy
//! would hold three descriptors per session in the load generator, and 30,000 is past the
//! open-file limit of many machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use wsfn_client::{Event, Reconnect, Sender, Session};

use crate::client::{self, ClientFlags};
use crate::fast;

#[derive(Args)]
pub struct Storm {
    /// Where the sessions connect (they must all join one group).
    pub member_url: String,
    /// Where the publisher connects.
    pub publisher_url: String,
    /// The text the publisher sends to make the function publish one message to the group.
    #[arg(long)]
    pub trigger: String,
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Messages published while the sessions are away.
    #[arg(long, default_value_t = 10)]
    pub messages: usize,
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Milliseconds between losing its socket and resuming, the same for every session.
    #[arg(long, default_value_t = 1000)]
    pub resume_after_ms: u64,
    /// Seconds the storm may take before the run fails.
    #[arg(long, default_value_t = 120)]
    pub limit: u64,
    /// Offer permessage-deflate on the sessions.
    #[arg(long)]
    pub deflate: bool,
}

impl Storm {
    /// Sessions always; compression as asked.
    fn client(&self) -> ClientFlags {
        ClientFlags {
            session: true,
            deflate: self.deflate,
            ..ClientFlags::default()
        }
    }
}

/// What the members have seen, shared by their readers.
#[derive(Default)]
struct Progress {
    caught_up: AtomicUsize,
    /// Sessions that received more than was published: a message repeated.
    repeated: AtomicUsize,
    resumed: AtomicUsize,
    resent: AtomicU64,
    resets: AtomicUsize,
    closed: AtomicUsize,
    all_caught_up: Notify,
}

pub async fn run(storm: Storm) -> Result<()> {
    if storm.messages == 0 || storm.sessions == 0 {
        bail!("a storm needs at least one session and one message");
    }
    let progress = Arc::new(Progress::default());
    let senders = open_members(&storm, &progress).await?;
    let mut publisher = fast::connect(&fast::parse_url(&storm.publisher_url)?).await?;
    eprintln!("storm: {} sessions open; cutting them", storm.sessions);

    let cut_at = Instant::now();
    let cut = senders
        .iter()
        .filter(|sender| sender.drop_socket().is_ok())
        .count();
    // Each session's task drops its socket when it next runs: let them all run before the
    // publishes go out.
    tokio::task::yield_now().await;
    let waiting = progress.all_caught_up.notified();
    tokio::pin!(waiting);
    publish(&mut publisher, &storm.trigger, storm.messages).await?;
    let published = cut_at.elapsed();
    let finished = tokio::time::timeout(Duration::from_secs(storm.limit), waiting).await;
    let caught_up = cut_at.elapsed();
    report(&storm, &progress, cut, published, caught_up)?;
    if finished.is_err() {
        bail!("not every session caught up within {} s", storm.limit);
    }
    Ok(())
}

/// Opens the sessions and starts reading their events; returns their senders, to cut them.
async fn open_members(storm: &Storm, progress: &Arc<Progress>) -> Result<Vec<Sender>> {
    let resume_after = Duration::from_millis(storm.resume_after_ms);
    let reconnect = Reconnect::default().initial_delay(resume_after).jitter(0.0);
    let client = storm.client();
    let sessions = client::open_sessions(storm.sessions, storm.concurrency, |_| {
        client
            .options(&storm.member_url)
            .reconnect(reconnect.clone())
    })
    .await?;
    let mut senders = Vec::with_capacity(sessions.len());
    for session in sessions {
        senders.push(session.sender());
        let (messages, sessions) = (storm.messages, storm.sessions);
        tokio::spawn(member(session, messages, sessions, progress.clone()));
    }
    Ok(senders)
}

/// Sends `messages` triggers at once, then reads the function's answer to each.
async fn publish(
    publisher: &mut WebSocket<TcpStream>,
    trigger: &str,
    messages: usize,
) -> Result<()> {
    for _ in 0..messages {
        let trigger = trigger.as_bytes().to_vec();
        publisher
            .write_frame(Frame::text(Payload::Owned(trigger)))
            .await?;
    }
    let mut answers = 0;
    while answers < messages {
        let frame = publisher.read_frame().await?;
        if matches!(frame.opcode, OpCode::Text | OpCode::Binary) {
            answers += 1;
        }
    }
    Ok(())
}

/// Prints what happened; fails if a session lost continuity or received a message twice.
fn report(
    storm: &Storm,
    progress: &Progress,
    cut: usize,
    published: Duration,
    caught_up: Duration,
) -> Result<()> {
    let count = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
    let caught = count(&progress.caught_up);
    let (resumed, resets) = (count(&progress.resumed), count(&progress.resets));
    let (closed, repeated) = (count(&progress.closed), count(&progress.repeated));
    let resent = progress.resent.load(Ordering::Relaxed);
    let resume_after = Duration::from_millis(storm.resume_after_ms);
    let after_resume = caught_up.saturating_sub(resume_after);
    let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
    eprintln!(
        "storm: {cut} cut; {} messages published in {:.0} ms; {caught} of {} sessions caught up \
         {:.0} ms after the cut ({:.0} ms after resuming began); {resumed} resumed, {resets} \
         reset, {closed} closed, {repeated} with a message twice, {resent} of theirs sent again",
        storm.messages,
        millis(published),
        storm.sessions,
        millis(caught_up),
        millis(after_resume),
    );
    println!(
        "{}",
        json!({
            "mode": "storm", "client": storm.client().label(), "sessions": storm.sessions,
            "messages": storm.messages, "cut": cut, "resume_after_ms": millis(resume_after),
            "published_ms": millis(published), "caught_up_ms": millis(caught_up),
            "after_resume_ms": millis(after_resume), "caught_up": caught, "resumed": resumed,
            "resets": resets, "closed": closed, "repeated": repeated,
        })
    );
    if repeated > 0 {
        bail!("{repeated} sessions received a message more than once");
    }
    if resets > 0 {
        bail!("{resets} sessions lost continuity instead of resuming");
    }
    Ok(())
}

/// Reads one member's events: counts the messages (all of which are published after the
/// cut) and the resumes.
async fn member(mut session: Session, messages: usize, sessions: usize, progress: Arc<Progress>) {
    let mut received = 0;
    while let Some(event) = session.next_event().await {
        match event {
            Event::Text(_) | Event::Binary(_) => {
                received += 1;
                if received == messages
                    && progress.caught_up.fetch_add(1, Ordering::AcqRel) + 1 == sessions
                {
                    progress.all_caught_up.notify_one();
                }
                if received == messages + 1 {
                    progress.repeated.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Resumed { resent } => {
                progress.resumed.fetch_add(1, Ordering::Relaxed);
                progress.resent.fetch_add(resent, Ordering::Relaxed);
            }
            Event::Reset { .. } => {
                progress.resets.fetch_add(1, Ordering::Relaxed);
            }
            Event::Closed { .. } => {
                progress.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ => {}
        }
    }
}
