//! Exponential back-off: the one delay policy of every retry loop (the InfluxDB sink, clue and
//! notice delivery, the MQTT source's reconnects, the outbox append, Modbus presence).
//!
//! Retry number `attempt` (0 = the first retry) waits up to `min * 2^attempt`, never more than
//! `max`. [`Jitter`] spreads the waits of many clients that failed together, so they do not all
//! come back at the same instant; loops that talk to one local resource need none. A loop
//! either keeps the count itself ([`Backoff::next_delay`], [`Backoff::reset`] on success) or passes
//! its own count ([`Backoff::delay`], e.g. the attempts of one batch).

use rand::Rng;
use std::time::Duration;

/// How a wait is drawn below its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Uniform in `[min, ceiling]` ("full jitter", bounded below so a failing server is never
    /// hammered).
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`: spread, but at least half the nominal wait.
    Half,
}

/// Exponential back-off between `min` and `max`; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    jitter: Jitter,
    /// Retries since the last [`Backoff::reset`], for [`Backoff::next_delay`].
    attempt: u32,
}

impl Backoff {
    /// Bounds, without jitter; `min` is at least 1 ms and `max` at least `min`.
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            jitter: Jitter::None,
            attempt: 0,
        }
    }

    /// [`Backoff::new`] from milliseconds (the unit of every `*_min_ms`/`*_max_ms` config key).
    pub(crate) fn from_millis(min_ms: u64, max_ms: u64) -> Backoff {
        Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
    }

    /// The same bounds with `jitter`.
    pub(crate) fn with_jitter(self, jitter: Jitter) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The shortest wait.
    pub(crate) fn min(&self) -> Duration {
        self.min
    }

    /// The longest wait.
    #[cfg(test)]
    pub(crate) fn max(&self) -> Duration {
        self.max
    }

    /// The ceiling for retry number `attempt` (0 = first retry): `min * 2^attempt`, at most `max`.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry number `attempt`, drawn by the jitter policy.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let lo = self.min.as_millis() as u64;
                let hi = ceiling.as_millis() as u64;
                Duration::from_millis(rand::random_range(lo..=hi.max(lo)))
            }
            Jitter::Half => ceiling.mul_f64(rand::rng().random_range(0.5..=1.0)),
        }
    }

    /// The wait before the next retry; counts it.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to the shortest wait (after a success).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn ceiling_doubles_up_to_max() {
        let b = Backoff::from_millis(200, 30_000);
        assert_eq!(b.ceiling(0), ms(200));
        assert_eq!(b.ceiling(1), ms(400));
        assert_eq!(b.ceiling(5), ms(6_400));
        assert_eq!(b.ceiling(8), ms(30_000));
        assert_eq!(b.ceiling(u32::MAX), ms(30_000));
    }

    #[test]
    fn next_doubles_up_to_the_cap_and_reset_starts_over() {
        let mut b = Backoff::from_millis(100, 350);
        let got: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(350), ms(350)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        // Thousands of failures neither overflow nor exceed the cap.
        for _ in 0..10_000 {
            assert!(b.next_delay() <= ms(350));
        }
    }

    #[test]
    fn full_jitter_stays_within_min_and_the_ceiling_and_varies() {
        let b = Backoff::from_millis(100, 1_000).with_jitter(Jitter::Full);
        let mut seen = std::collections::HashSet::new();
        for attempt in 0..40 {
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(
                    d >= b.min() && d <= b.ceiling(attempt),
                    "{d:?} at {attempt}"
                );
                seen.insert(d);
            }
        }
        assert!(seen.len() > 50, "delays are not jittered: {seen:?}");
        let fixed = Backoff::from_millis(100, 100).with_jitter(Jitter::Full);
        assert_eq!(fixed.delay(3), ms(100));
    }

    #[test]
    fn half_jitter_stays_within_half_and_the_whole_ceiling() {
        let mut b = Backoff::from_millis(1_000, 8_000).with_jitter(Jitter::Half);
        let mut seen = std::collections::HashSet::new();
        for attempt in 0..6 {
            let ceiling = b.ceiling(attempt);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} at {attempt}");
            for _ in 0..20 {
                seen.insert(b.delay(attempt));
            }
        }
        assert!(seen.len() > 20, "delays are not jittered: {seen:?}");
    }

    #[test]
    fn bounds_are_sane() {
        let b = Backoff::from_millis(0, 0);
        assert_eq!((b.min(), b.max()), (ms(1), ms(1)));
        let b = Backoff::from_millis(500, 100);
        assert_eq!((b.min(), b.max()), (ms(500), ms(500)));
        assert_eq!(Backoff::from_millis(50, 5_000).delay(0), ms(50));
    }
}
