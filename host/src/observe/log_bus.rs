//! The live log of one function: guest output and lifecycle events, for whoever follows it
//! (`GET /v1/functions/{name}/logs`, `wsfn-host logs`).
//!
//! A bounded broadcast channel per function. Publishing never waits: a follower that reads
//! too slowly loses the oldest lines and is told how many (see [`Received::Lagged`]). With
//! nobody following, publishing is one relaxed atomic load — the event is not even built —
//! which is why followers are counted here rather than asked of the channel (that takes its
//! lock).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// Lines a follower may fall behind by before it loses some.
const CAPACITY: usize = 1024;

/// Something that happened to a function, as one line of its log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogEvent {
    /// A line the guest printed on stdout.
    Stdout {
        #[serde(skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        text: String,
    },
    /// A line the guest printed on stderr.
    Stderr {
        #[serde(skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        text: String,
    },
    /// A handshake accepted.
    Connect { connection: String, remote: String },
    /// A handshake refused, by on-connect or by a host limit.
    Reject {
        status: u16,
        remote: String,
        reason: String,
    },
    /// A connection ended; what on-close is told.
    Close {
        connection: String,
        code: u16,
        reason: String,
    },
    /// A handler faulted.
    Fault {
        fault: &'static str,
        event: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        message: String,
    },
    /// A new version is being served.
    Deploy { version: u64 },
    /// An earlier version is being served again.
    Rollback { version: u64, from: u64 },
    /// The function was removed; the close lines of its connections may still follow.
    Removed,
    /// This follower fell behind and lost `missed` lines.
    Lagged { missed: u64 },
}

/// A log event and when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// UTC, RFC 3339 with milliseconds.
    pub ts: String,
    #[serde(flatten)]
    pub event: LogEvent,
}

impl LogLine {
    pub fn now(event: LogEvent) -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            ts: rfc3339_millis(ms),
            event,
        }
    }

    /// The line as sent to followers: JSON and a newline.
    pub fn to_ndjson(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// One function's log channel.
#[derive(Debug)]
pub struct LogBus {
    sender: broadcast::Sender<Arc<LogLine>>,
    followers: Arc<AtomicUsize>,
}

impl Default for LogBus {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
            followers: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl LogBus {
    /// Whether anyone follows this log; callers with costly events may check first.
    pub fn is_followed(&self) -> bool {
        self.followers.load(Ordering::Relaxed) > 0
    }

    /// Sends the event to every follower; `event` is only called if there is one.
    pub fn publish(&self, event: impl FnOnce() -> LogEvent) {
        if !self.is_followed() {
            return;
        }
        // Fails only when the last follower left in the meantime.
        let _ = self.sender.send(Arc::new(LogLine::now(event())));
    }

    /// Starts following: every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        let receiver = self.sender.subscribe();
        self.followers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            receiver,
            followers: self.followers.clone(),
        }
    }
}

/// What a follower gets next.
#[derive(Debug)]
pub enum Received {
    Line(Arc<LogLine>),
    /// The follower fell behind; this many lines are lost.
    Lagged(u64),
}

/// A follower of one function's log; stops counting as one when dropped.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<LogLine>>,
    followers: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next event. `None` only if the channel is gone (the host dropped the function).
    pub async fn next(&mut self) -> Option<Received> {
        match self.receiver.recv().await {
            Ok(line) => Some(Received::Line(line)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Received::Lagged(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is already waiting.
    pub fn try_next(&mut self) -> Option<Received> {
        match self.receiver.try_recv() {
            Ok(line) => Some(Received::Line(line)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(Received::Lagged(missed)),
            Err(_) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(ms: u64) -> String {
    let (seconds, millis) = (ms / 1000, ms % 1000);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_795_000_000_123),
            "2026-11-18T11:06:40.123Z"
        );
    }

    #[test]
    fn lines_are_one_json_object_with_a_kind() {
        let line = LogLine {
            ts: "t".into(),
            event: LogEvent::Close {
                connection: "c1".into(),
                code: 1000,
                reason: "bye".into(),
            },
        };
        assert_eq!(
            line.to_ndjson(),
            "{\"ts\":\"t\",\"kind\":\"close\",\"connection\":\"c1\",\"code\":1000,\"reason\":\"bye\"}\n"
        );
    }

    #[tokio::test]
    async fn nothing_is_built_without_followers_and_a_slow_follower_is_told_what_it_lost() {
        let bus = LogBus::default();
        bus.publish(|| unreachable!("no follower, so the event is never built"));
        let mut follower = bus.subscribe();
        assert!(bus.is_followed());
        for version in 0..(CAPACITY as u64 + 5) {
            bus.publish(|| LogEvent::Deploy { version });
        }
        assert!(matches!(follower.next().await, Some(Received::Lagged(5))));
        match follower.next().await {
            Some(Received::Line(line)) => assert_eq!(line.event, LogEvent::Deploy { version: 5 }),
            other => panic!("expected the oldest kept line, got {other:?}"),
        }
        drop(follower);
        assert!(!bus.is_followed());
    }
}
