//! Time-based debounce of a two-state input (reed or hall switch).

/// Accepts a new level only once the raw input has held it for `stable_ms`.
///
/// Time-based rather than count-based so the result does not depend on the poll rate: a
/// bouncing reed contact settles within a few ms, a cover rattled by traffic within a second.
#[derive(Debug, Clone, Copy)]
pub struct Debouncer {
    stable_ms: u64,
    state: bool,
    candidate: bool,
    since_ms: u64,
}

impl Debouncer {
    pub const fn new(initial: bool, stable_ms: u64) -> Self {
        Debouncer {
            stable_ms,
            state: initial,
            candidate: initial,
            since_ms: 0,
        }
    }

    /// The debounced level.
    pub const fn state(&self) -> bool {
        self.state
    }

    /// Feeds one raw sample; returns the new level when it changes.
    pub fn update(&mut self, raw: bool, now_ms: u64) -> Option<bool> {
        if raw == self.state {
            self.candidate = raw;
            return None;
        }
        if raw != self.candidate {
            self.candidate = raw;
            self.since_ms = now_ms;
        }
        if now_ms.saturating_sub(self.since_ms) >= self.stable_ms {
            self.state = raw;
            return Some(raw);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_shorter_than_the_window_are_ignored() {
        let mut d = Debouncer::new(false, 50);
        assert_eq!(d.update(true, 0), None);
        assert_eq!(d.update(false, 10), None);
        assert_eq!(d.update(true, 20), None);
        assert_eq!(d.update(true, 60), None, "only 40 ms stable");
        assert_eq!(d.update(true, 70), Some(true));
        assert_eq!(d.update(true, 80), None, "reported once");
        assert!(d.state());
    }

    #[test]
    fn a_single_glitch_does_not_change_state() {
        let mut d = Debouncer::new(true, 50);
        for t in (0..1000).step_by(10) {
            let raw = t != 500;
            assert_eq!(d.update(raw, t), None);
        }
        assert!(d.state());
    }

    #[test]
    fn zero_window_follows_the_input() {
        let mut d = Debouncer::new(false, 0);
        assert_eq!(d.update(true, 0), Some(true));
        assert_eq!(d.update(false, 1), Some(false));
    }
}
