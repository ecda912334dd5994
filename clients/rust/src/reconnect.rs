//! The reconnect policy: exponential backoff with jitter and an optional attempt limit. Kept
//! apart from the driver so the arithmetic is tested on its own.

use std::time::Duration;

/// When to try again after a socket is lost: attempt *n* waits
/// `min(max_delay, initial_delay × factor^(n−1))`, of which the `jitter` fraction is random, so
/// clients dropped together do not all return at once. The count starts again after every
/// successful reconnect.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    pub(crate) enabled: bool,
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) factor: f64,
    pub(crate) jitter: f64,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 10 s, half of it random, without end.
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// Never reconnect: a lost socket ends the session with
    /// [`Event::Closed`](crate::Event::Closed) code 1006.
    pub fn never() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much each failed attempt multiplies the delay by (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The random fraction of each delay, from 0 (none) to 1 (all of it).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Gives up after this many failed attempts in a row, with
    /// [`Event::Closed`](crate::Event::Closed) code 1006.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The pause before attempt `attempt` (1 for the first after a loss).
    pub(crate) fn delay(&self, attempt: u32, random: &mut fastrand::Rng) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial_delay.as_secs_f64() * self.factor.powi(exponent);
        let base = grown.min(self.max_delay.as_secs_f64());
        let fixed = base * (1.0 - self.jitter);
        let random_part = base * self.jitter * random.f64();
        Duration::try_from_secs_f64(fixed + random_part).unwrap_or(self.max_delay)
    }

    /// Whether attempt `attempt` may be made.
    pub(crate) fn allows(&self, attempt: u32) -> bool {
        self.enabled && self.max_attempts.is_none_or(|max| attempt <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_maximum_within_their_jitter() {
        let policy = Reconnect::default()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1))
            .jitter(0.5);
        let mut random = fastrand::Rng::with_seed(7);
        for (attempt, base_ms) in [(1, 100.0), (2, 200.0), (3, 400.0), (4, 800.0), (5, 1000.0)] {
            for _ in 0..100 {
                let delay = policy.delay(attempt, &mut random).as_secs_f64() * 1000.0;
                assert!(
                    (base_ms / 2.0..=base_ms + 1e-6).contains(&delay),
                    "attempt {attempt}: {delay} ms"
                );
            }
        }
        assert_eq!(
            policy.jitter(0.0).delay(u32::MAX, &mut random),
            Duration::from_secs(1),
            "huge attempt numbers stay at the maximum"
        );
    }

    #[test]
    fn attempts_end_when_asked() {
        assert!(Reconnect::default().allows(1_000_000));
        assert!(!Reconnect::never().allows(1));
        let three = Reconnect::default().max_attempts(3);
        assert!(three.allows(3) && !three.allows(4));
    }
}
