//! When to ping a quiet peer, when to give up on a silent one, and when a connection is idle.
//!
//! Kept apart from the session as plain arithmetic on instants, so the rules can be tested
//! without sockets or sleeping. The session arms one timer at [`Liveness::next_check`] and
//! re-arms it only when it fires, so busy connections pay nothing per message for it.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Limits;

/// What the session should do when the timer fires.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet; re-arm the timer.
    Nothing,
    /// Send a ping: the peer has been quiet for a ping interval.
    Ping,
    /// Close with 1001: no message for the idle timeout.
    Idle,
    /// The peer answered nothing since the last ping: it is gone.
    Gone,
}

#[derive(Debug)]
pub struct Liveness {
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    /// Any frame at all from the peer.
    last_heard: Instant,
    /// A data message from the peer.
    last_message: Instant,
    ping_sent: Option<Instant>,
    idle_reported: bool,
}

fn enabled(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// Far enough away to mean "never" without overflowing instant arithmetic.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Liveness {
    pub fn new(limits: &Limits, now: Instant) -> Self {
        Self {
            ping_interval: enabled(limits.ping_interval),
            pong_timeout: limits.pong_timeout,
            idle_timeout: enabled(limits.idle_timeout),
            last_heard: now,
            last_message: now,
            ping_sent: None,
            idle_reported: false,
        }
    }

    /// Any frame arrived (a pong, a ping, data): the peer is alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping_sent = None;
    }

    /// A data message arrived: the connection is in use.
    pub fn message(&mut self, now: Instant) {
        self.heard(now);
        self.last_message = now;
    }

    /// The earliest instant at which [`check`](Self::check) may have something to do.
    pub fn next_check(&self) -> Instant {
        let liveness = match (self.ping_sent, self.ping_interval) {
            (Some(sent), _) => sent + self.pong_timeout,
            (None, Some(interval)) => self.last_heard + interval,
            (None, None) => self.last_heard + NEVER,
        };
        match self.idle_timeout {
            Some(idle) if !self.idle_reported => liveness.min(self.last_message + idle),
            _ => liveness,
        }
    }

    /// What is due at `now`; records a ping as sent when it says [`Due::Ping`].
    pub fn check(&mut self, now: Instant) -> Due {
        if let Some(sent) = self.ping_sent
            && now >= sent + self.pong_timeout
        {
            return Due::Gone;
        }
        if let Some(idle) = self.idle_timeout
            && !self.idle_reported
            && now >= self.last_message + idle
        {
            self.idle_reported = true;
            return Due::Idle;
        }
        if let Some(interval) = self.ping_interval
            && self.ping_sent.is_none()
            && now >= self.last_heard + interval
        {
            self.ping_sent = Some(now);
            return Due::Ping;
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ping: u64, pong: u64, idle: u64) -> Limits {
        Limits {
            ping_interval: Duration::from_secs(ping),
            pong_timeout: Duration::from_secs(pong),
            idle_timeout: Duration::from_secs(idle),
            ..Limits::default()
        }
    }

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn pings_a_quiet_peer_then_gives_up_on_a_silent_one() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(&limits(30, 10, 0), t0);
        assert_eq!(liveness.next_check(), at(t0, 30));
        assert_eq!(liveness.check(at(t0, 29)), Due::Nothing);
        assert_eq!(liveness.check(at(t0, 30)), Due::Ping);
        assert_eq!(liveness.next_check(), at(t0, 40));
        assert_eq!(liveness.check(at(t0, 39)), Due::Nothing);
        assert_eq!(liveness.check(at(t0, 40)), Due::Gone);
    }

    #[test]
    fn an_answer_to_the_ping_keeps_the_connection() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(&limits(30, 10, 0), t0);
        assert_eq!(liveness.check(at(t0, 30)), Due::Ping);
        liveness.heard(at(t0, 31));
        assert_eq!(liveness.check(at(t0, 45)), Due::Nothing);
        assert_eq!(liveness.next_check(), at(t0, 61));
    }

    #[test]
    fn pongs_do_not_count_as_use() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(&limits(30, 10, 100), t0);
        liveness.heard(at(t0, 90));
        assert_eq!(liveness.check(at(t0, 100)), Due::Idle);
        // Reported once; after that only liveness matters.
        assert_eq!(liveness.check(at(t0, 101)), Due::Nothing);
    }

    #[test]
    fn messages_reset_the_idle_timer() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(&limits(0, 10, 100), t0);
        liveness.message(at(t0, 50));
        assert_eq!(liveness.next_check(), at(t0, 150));
        assert_eq!(liveness.check(at(t0, 149)), Due::Nothing);
        assert_eq!(liveness.check(at(t0, 150)), Due::Idle);
    }
}
