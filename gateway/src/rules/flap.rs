//! Flap control: hysteresis on values, minimum duration before a condition counts, and a
//! cool-down between occurrences. A sensor that flaps across a threshold raises one occurrence
//! per cool-down; activations inside the cool-down are counted, not sent.
//!
//! One exception: a condition with a minimum duration whose end was reported (`Cleared`: the
//! clue shows "recovered") and that then held again for that whole duration is sent even
//! inside the cool-down. Holding it back left the clue saying "recovered" while the fault was
//! back (a loop cable cut twice within three hours, the second cut for almost two hours,
//! never reached a person). Such a condition is already damped by its duration; sent, it lands
//! on the same open clue as another occurrence and undoes the recovery mark.

/// What one update did to a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed (or the condition is still waiting for its minimum duration).
    None,
    /// The condition became active and an occurrence should be sent.
    Raised,
    /// The condition became active inside the cool-down: counted, not sent.
    Suppressed,
    /// A condition whose occurrence was sent has ended.
    Cleared,
    /// The condition held for its minimum duration, but that became known only with its end
    /// (both arrived together, e.g. replayed after a link outage): an occurrence to send, then
    /// its end.
    RaisedEnded,
}

/// Per (rule, subject) activation state.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Flap {
    /// When the raw condition last became true (for the minimum duration).
    since: Option<i64>,
    active: bool,
    /// Whether the current activation was sent (only sent activations are cleared).
    emitted: bool,
    last_raised: Option<i64>,
    suppressed: u32,
    /// The last sent activation ended (`Cleared` was returned): the next one that held for a
    /// minimum duration is news.
    #[serde(default)]
    ended: bool,
}

impl Flap {
    /// Feeds the raw condition at `at_ms`. The condition must hold for `min_ms` before it
    /// counts; a new occurrence is sent at most once per `cooldown_ms`.
    pub(crate) fn update(
        &mut self,
        raw: bool,
        at_ms: i64,
        min_ms: i64,
        cooldown_ms: i64,
    ) -> Transition {
        if !raw {
            self.since = None;
            if self.active {
                self.active = false;
                if std::mem::take(&mut self.emitted) {
                    self.ended = true;
                    return Transition::Cleared;
                }
            }
            return Transition::None;
        }
        let since = *self.since.get_or_insert(at_ms);
        if self.active || at_ms.saturating_sub(since) < min_ms {
            return Transition::None;
        }
        self.active = true;
        let news = std::mem::take(&mut self.ended) && min_ms > 0;
        self.raise(at_ms, if news { 0 } else { cooldown_ms })
    }

    /// The condition's end as the device reported it (an event's recovery), at `at_ms` of the
    /// device's clock. Like `update(false, ..)`, except that a condition that had held for its
    /// minimum duration without being raised (nobody could hear it end: the link was down) is
    /// raised and ended at once ([`Transition::RaisedEnded`]). Only for reported ends: a
    /// threshold judged from samples keeps `update`, where one sample past the line followed by
    /// one back is no proof that the line was held in between.
    pub(crate) fn end_reported(&mut self, at_ms: i64, min_ms: i64, cooldown_ms: i64) -> Transition {
        if !self.active
            && min_ms > 0
            && let Some(since) = self.since
            && at_ms.saturating_sub(since) >= min_ms
        {
            self.since = None;
            let news = std::mem::take(&mut self.ended);
            let tr = self.raise(
                since.saturating_add(min_ms),
                if news { 0 } else { cooldown_ms },
            );
            if tr != Transition::Raised {
                return tr;
            }
            self.emitted = false;
            self.ended = true;
            return Transition::RaisedEnded;
        }
        self.update(false, at_ms, min_ms, cooldown_ms)
    }

    /// A one-off event (a drop, a composite match): raised unless inside the cool-down.
    pub(crate) fn pulse(&mut self, at_ms: i64, cooldown_ms: i64) -> Transition {
        self.raise(at_ms, cooldown_ms)
    }

    fn raise(&mut self, at_ms: i64, cooldown_ms: i64) -> Transition {
        self.ended = false;
        match self.last_raised {
            Some(last) if at_ms.saturating_sub(last) < cooldown_ms && at_ms >= last => {
                self.emitted = false;
                self.suppressed = self.suppressed.saturating_add(1);
                Transition::Suppressed
            }
            _ => {
                self.emitted = true;
                self.last_raised = Some(at_ms);
                Transition::Raised
            }
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// Activations suppressed since the last sent occurrence (reported in its detail).
    pub(crate) fn take_suppressed(&mut self) -> u32 {
        std::mem::take(&mut self.suppressed)
    }
}

/// Threshold with hysteresis: active at or beyond `above` / `below`; once active, stays active
/// until the value passes back over `clear_at` (defaults to the threshold itself).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hysteresis {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub clear_at: Option<f64>,
}

impl Hysteresis {
    pub(crate) fn next(&self, active: bool, v: f64) -> bool {
        let high = self.above.is_some_and(|a| v >= a);
        let low = self.below.is_some_and(|b| v <= b);
        if high || low {
            return true;
        }
        if !active {
            return false;
        }
        match (self.clear_at, self.above) {
            (Some(c), Some(_)) => v >= c,
            (Some(c), None) => v <= c,
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flap_rules_min_duration_then_cooldown() {
        let mut f = Flap::default();
        assert_eq!(f.update(true, 0, 10, 100), Transition::None);
        assert_eq!(f.update(true, 10, 10, 100), Transition::Raised);
        assert_eq!(f.update(true, 20, 10, 100), Transition::None);
        assert_eq!(f.update(false, 30, 10, 100), Transition::Cleared);
        // No minimum duration: a flap inside the cool-down is counted, not sent.
        assert_eq!(f.update(true, 40, 0, 100), Transition::Suppressed);
        assert_eq!(f.update(false, 50, 0, 100), Transition::None);
        assert_eq!(f.update(true, 120, 0, 100), Transition::Raised);
        assert_eq!(f.take_suppressed(), 1);
    }

    #[test]
    fn a_condition_that_recovered_and_held_again_for_its_duration_is_sent_inside_the_cooldown() {
        let mut f = Flap::default();
        assert_eq!(f.update(true, 0, 10, 100), Transition::None);
        assert_eq!(f.update(true, 10, 10, 100), Transition::Raised);
        assert_eq!(f.update(false, 30, 10, 100), Transition::Cleared);
        // Back for less than the duration: nothing; for the whole duration: news, although
        // inside the cool-down (the clue said "recovered").
        assert_eq!(f.update(true, 40, 10, 100), Transition::None);
        assert_eq!(f.update(true, 50, 10, 100), Transition::Raised);
        assert_eq!(f.take_suppressed(), 0);
        // One-off events keep their cool-down (from the last sent occurrence, at 50).
        assert_eq!(f.update(false, 60, 10, 100), Transition::Cleared);
        assert_eq!(f.pulse(70, 100), Transition::Suppressed);
        assert_eq!(f.pulse(150, 100), Transition::Raised);
    }

    #[test]
    fn a_condition_whose_end_arrives_after_its_duration_unseen_is_raised_and_ended() {
        let mut f = Flap::default();
        // Began at 0, heard of again only at 15 (its end), minimum 10: it held, unseen.
        assert_eq!(f.update(true, 0, 10, 100), Transition::None);
        assert_eq!(f.end_reported(15, 10, 100), Transition::RaisedEnded);
        // Shorter than the minimum: nothing.
        assert_eq!(f.update(true, 200, 10, 100), Transition::None);
        assert_eq!(f.end_reported(205, 10, 100), Transition::None);
        // Without a minimum duration an end is just an end.
        assert_eq!(f.update(true, 300, 0, 100), Transition::Raised);
        assert_eq!(f.end_reported(400, 0, 100), Transition::Cleared);
        assert_eq!(f.update(true, 500, 0, 0), Transition::Raised);
        let mut g = Flap::default();
        assert_eq!(g.end_reported(0, 10, 100), Transition::None);
        // A sampled condition (a threshold) is not raised by its end: two samples prove
        // nothing about the time between them.
        let mut h = Flap::default();
        assert_eq!(h.update(true, 0, 10, 100), Transition::None);
        assert_eq!(h.update(false, 15, 10, 100), Transition::None);
    }

    #[test]
    fn rules_hysteresis_holds_inside_the_dead_band() {
        let h = Hysteresis {
            above: Some(25.0),
            below: None,
            clear_at: Some(20.0),
        };
        assert!(!h.next(false, 24.0));
        assert!(h.next(false, 25.0));
        assert!(h.next(true, 21.0));
        assert!(!h.next(true, 19.9));
    }
}
