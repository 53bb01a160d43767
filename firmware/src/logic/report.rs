//! When to send telemetry: on a change bigger than a deadband, or when the heartbeat is due.
//!
//! Sending every sample would drain a battery and flood the gateway with identical points;
//! sending only on change would make a dead device indistinguishable from a quiet one. The
//! heartbeat bounds how stale the gateway's picture can be.

#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    deadband: f32,
    heartbeat_ms: u64,
    last: Option<(f32, u64)>,
}

impl Reporter {
    pub const fn new(deadband: f32, heartbeat_ms: u64) -> Self {
        Reporter {
            deadband,
            heartbeat_ms,
            last: None,
        }
    }

    /// Whether `value` at `now_ms` should be reported. Does not record it: call
    /// [`Reporter::sent`] when the report is actually made (it may be forced by another cause).
    pub fn due(&self, value: f32, now_ms: u64) -> bool {
        match self.last {
            None => true,
            Some((v, t)) => {
                libm::fabsf(value - v) > self.deadband
                    || now_ms.saturating_sub(t) >= self.heartbeat_ms
            }
        }
    }

    pub fn sent(&mut self, value: f32, now_ms: u64) {
        self.last = Some((value, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadband_and_heartbeat() {
        let mut r = Reporter::new(5.0, 60_000);
        assert!(r.due(100.0, 0), "first value always goes out");
        r.sent(100.0, 0);
        assert!(!r.due(104.0, 1_000), "inside the deadband");
        assert!(
            !r.due(95.0, 2_000),
            "exactly at the deadband is not a change"
        );
        assert!(r.due(105.5, 3_000));
        r.sent(105.5, 3_000);
        assert!(!r.due(105.5, 62_999));
        assert!(r.due(105.5, 63_000), "heartbeat");
        r.sent(105.5, 63_000);
        assert!(!r.due(106.0, 64_000));
    }
}
