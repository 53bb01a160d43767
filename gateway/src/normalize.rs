//! Normalization between decoding and storage: device clocks and per-device sequence numbers.
//!
//! Pure state, no I/O: fed with readings and the current time, it says what to keep. Losses are
//! counted from sequence gaps; duplicates (QoS 1 redelivery, device retries) are dropped; a
//! device clock that is far off is replaced by the receive time and flagged.

use crate::reading::Reading;
/// foldhash, not SipHash: looked up once per message on the intake path (issue 24); still
/// seeded per map, so crafted device ids cannot force collisions cheaply.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How many sequence numbers behind the newest one we remember as seen.
const WINDOW: u64 = 1024;

/// What the sequence check says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqVerdict {
    /// First sight of this number; `lost` numbers were skipped since the newest one.
    New { lost: u64 },
    /// A number inside the window that arrived late; it fills an earlier gap.
    Late,
    /// Already seen: drop it.
    Duplicate,
    /// Far behind the newest: the device restarted its counter.
    Reset,
}

/// Sequence window of one device: the newest number and a bitmap of the `WINDOW` numbers up
/// to it. The intake path keeps it in the device's slot ([`crate::devices::DeviceSlot`]); the
/// [`Normalizer`] keeps its own per device for callers without a device table.
///
/// The bitmap is a ring indexed by the number itself (`seq % WINDOW`), so a new number
/// touches one word: shifting the whole bitmap by one place per message read and wrote its
/// 128 bytes every time (issue 24: 225 instructions and up to two cache misses a message).
#[derive(Debug, Clone)]
pub(crate) struct SeqWindow {
    newest: u64,
    /// Bit `s % WINDOW` set = number `s` seen, for `s` in `newest - WINDOW + 1 ..= newest`.
    seen: [u64; (WINDOW / 64) as usize],
}

impl SeqWindow {
    pub(crate) fn new(seq: u64) -> SeqWindow {
        let mut w = SeqWindow {
            newest: seq,
            seen: [0; (WINDOW / 64) as usize],
        };
        w.set(seq);
        w
    }

    /// The word and the bit of `seq` in the ring.
    fn place(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn bit(&self, seq: u64) -> bool {
        let (w, b) = Self::place(seq);
        self.seen[w] & b != 0
    }

    fn set(&mut self, seq: u64) {
        let (w, b) = Self::place(seq);
        self.seen[w] |= b;
    }

    fn clear(&mut self, seq: u64) {
        let (w, b) = Self::place(seq);
        self.seen[w] &= !b;
    }

    /// Makes `to` (newer than `newest`) the newest number: the places of the numbers passed
    /// over, which held numbers now too old for the window, are cleared.
    fn advance(&mut self, to: u64) {
        if to - self.newest >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
        } else {
            // At most WINDOW - 1 places; one for a device counting up.
            for seq in self.newest + 1..=to {
                self.clear(seq);
            }
        }
        self.newest = to;
    }

    /// Marks `seq` as not seen again (when newer than the window's oldest).
    pub(crate) fn unset(&mut self, seq: u64) {
        if self.newest.checked_sub(seq).is_some_and(|b| b < WINDOW) {
            self.clear(seq);
        }
    }

    pub(crate) fn check(&mut self, seq: u64) -> SeqVerdict {
        if seq > self.newest {
            let jump = seq - self.newest;
            self.advance(seq);
            self.set(seq);
            return SeqVerdict::New { lost: jump - 1 };
        }
        let back = self.newest - seq;
        if back >= WINDOW {
            *self = SeqWindow::new(seq);
            return SeqVerdict::Reset;
        }
        if self.bit(seq) {
            SeqVerdict::Duplicate
        } else {
            self.set(seq);
            SeqVerdict::Late
        }
    }
}

/// Clock policy, from `[devices]` config.
#[derive(Debug, Clone, Copy)]
pub struct ClockPolicy {
    /// A device time further than this from the receive time is replaced.
    pub max_skew_ms: i64,
    /// Store-and-forward replays may be this old and still keep their device time.
    pub max_replay_age_ms: i64,
}

/// Tracks every device's sequence window (site -> device -> window, so lookups by `&str`
/// do not allocate on the hot path).
#[derive(Default)]
pub(crate) struct Normalizer {
    /// Sequence windows for callers without a device table (the demo's scenario; the gateway
    /// keeps them in its device slots), so only built where such a caller is.
    #[cfg(any(test, feature = "demo"))]
    windows: HashMap<String, HashMap<String, SeqWindow>>,
    /// Last time handed out by [`Normalizer::replaced_time`], per site and device.
    last_replaced: HashMap<String, HashMap<String, i64>>,
}

impl Normalizer {
    /// Checks the sequence number of one message (all readings of a message share it).
    #[cfg(any(test, feature = "demo"))]
    pub(crate) fn check_sequence(&mut self, site: &str, device: &str, seq: u64) -> SeqVerdict {
        if let Some(w) = self.windows.get_mut(site).and_then(|m| m.get_mut(device)) {
            return w.check(seq);
        }
        self.windows
            .entry(site.to_string())
            .or_default()
            .insert(device.to_string(), SeqWindow::new(seq));
        SeqVerdict::New { lost: 0 }
    }

    /// The time for a message whose device time [`fix_clock`] replaced by `received_ms`:
    /// strictly after the last one given to the same device. Several messages of one device
    /// received in the same millisecond (a burst, or every message while our own clock is off
    /// and so judges good device clocks wrong) would otherwise become one point in the
    /// database, each overwriting the last.
    pub(crate) fn replaced_time(&mut self, site: &str, device: &str, received_ms: i64) -> i64 {
        if let Some(last) = self
            .last_replaced
            .get_mut(site)
            .and_then(|m| m.get_mut(device))
        {
            *last = received_ms.max(*last + 1);
            return *last;
        }
        self.last_replaced
            .entry(site.to_string())
            .or_default()
            .insert(device.to_string(), received_ms);
        received_ms
    }
}

/// Replaces an implausible device time with the receive time; returns whether it did.
pub(crate) fn fix_clock(r: &mut Reading, policy: &ClockPolicy) -> bool {
    let skew = r.device_time_ms - r.received_time_ms;
    let too_new = skew > policy.max_skew_ms;
    let max_age = if r.quality.replayed {
        policy.max_replay_age_ms.max(policy.max_skew_ms)
    } else {
        policy.max_skew_ms
    };
    let too_old = -skew > max_age;
    if too_new || too_old {
        r.device_time_ms = r.received_time_ms;
        r.quality.clock_replaced = true;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Quality, Source, Value};

    #[test]
    fn counts_gaps_drops_duplicates_and_accepts_late_arrivals() {
        let mut n = Normalizer::default();
        assert_eq!(n.check_sequence("s", "d", 1), SeqVerdict::New { lost: 0 });
        assert_eq!(n.check_sequence("s", "d", 2), SeqVerdict::New { lost: 0 });
        assert_eq!(n.check_sequence("s", "d", 2), SeqVerdict::Duplicate);
        assert_eq!(n.check_sequence("s", "d", 5), SeqVerdict::New { lost: 2 });
        assert_eq!(n.check_sequence("s", "d", 4), SeqVerdict::Late);
        assert_eq!(n.check_sequence("s", "d", 4), SeqVerdict::Duplicate);
        assert_eq!(n.check_sequence("s", "d", 1), SeqVerdict::Duplicate);
        // Another device has its own window.
        assert_eq!(n.check_sequence("s", "e", 1), SeqVerdict::New { lost: 0 });
    }

    #[test]
    fn window_survives_large_and_word_crossing_jumps() {
        let mut n = Normalizer::default();
        for s in 0..300u64 {
            assert_eq!(
                n.check_sequence("s", "d", s * 3),
                SeqVerdict::New {
                    lost: if s == 0 { 0 } else { 2 }
                }
            );
        }
        for s in 0..300u64 {
            let seq = s * 3;
            if 897 - seq < WINDOW {
                assert_eq!(
                    n.check_sequence("s", "d", seq),
                    SeqVerdict::Duplicate,
                    "{seq}"
                );
            }
        }
        assert_eq!(n.check_sequence("s", "d", 896), SeqVerdict::Late);
        assert_eq!(
            n.check_sequence("s", "d", 100_000),
            SeqVerdict::New {
                lost: 100_000 - 897 - 1
            }
        );
        assert_eq!(n.check_sequence("s", "d", 897), SeqVerdict::Reset);
        assert_eq!(n.check_sequence("s", "d", 898), SeqVerdict::New { lost: 0 });
    }

    /// The ring bitmap answers what a plain set of every number seen answers, over long runs
    /// of forward jumps (small and past the window), late and repeated numbers, counter
    /// restarts and numbers forgotten again (`unset`).
    #[test]
    fn the_ring_agrees_with_a_set_of_every_number_seen() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut w = SeqWindow::new(5);
        let (mut newest, mut seen) = (5u64, std::collections::BTreeSet::from([5u64]));
        for step in 0..200_000 {
            let seq = match next(20) {
                0..=9 => newest + 1,
                10 => newest + 1 + next(200),
                11 => newest + WINDOW - 1 + next(3),
                12..=16 => newest.saturating_sub(next(WINDOW + 2)),
                17 => newest.saturating_sub(next(5)),
                18 => next(50),
                _ => {
                    let seq = newest.saturating_sub(next(WINDOW));
                    w.unset(seq);
                    seen.remove(&seq);
                    continue;
                }
            };
            let want = if seq > newest {
                let lost = seq - newest - 1;
                newest = seq;
                seen.insert(seq);
                SeqVerdict::New { lost }
            } else if newest - seq >= WINDOW {
                newest = seq;
                seen = std::collections::BTreeSet::from([seq]);
                SeqVerdict::Reset
            } else if seen.insert(seq) {
                SeqVerdict::Late
            } else {
                SeqVerdict::Duplicate
            };
            assert_eq!(w.check(seq), want, "step {step}: seq {seq}");
        }
    }

    fn reading(device_ms: i64, replayed: bool) -> Reading {
        Reading {
            site: "s".into(),
            device: "d".into(),
            stream: "x".into(),
            metric: "m".into(),
            value: Value::Float(1.0),
            unit: Default::default(),
            device_time_ms: device_ms,
            received_time_ms: 1_000_000,
            source: Source::Mqtt,
            sequence: None,
            quality: Quality {
                clock_replaced: false,
                replayed,
            },
        }
    }

    #[test]
    fn far_off_clock_is_replaced_and_flagged_but_replays_may_be_old() {
        let p = ClockPolicy {
            max_skew_ms: 1000,
            max_replay_age_ms: 500_000,
        };
        let mut r = reading(999_500, false);
        assert!(!fix_clock(&mut r, &p));
        let mut r = reading(1_002_000, false);
        assert!(fix_clock(&mut r, &p));
        assert_eq!(r.device_time_ms, 1_000_000);
        assert!(r.quality.clock_replaced);
        let mut r = reading(600_000, true);
        assert!(!fix_clock(&mut r, &p));
        let mut r = reading(600_000, false);
        assert!(fix_clock(&mut r, &p));
    }

    /// Regression (resilience suite, clock jump): a burst of messages whose device times were
    /// replaced within one millisecond must stay distinct points.
    #[test]
    fn replaced_times_stay_distinct_per_device() {
        let mut n = Normalizer::default();
        assert_eq!(n.replaced_time("s", "d", 1_000), 1_000);
        assert_eq!(n.replaced_time("s", "d", 1_000), 1_001);
        assert_eq!(n.replaced_time("s", "d", 1_000), 1_002);
        assert_eq!(n.replaced_time("s", "other", 1_000), 1_000);
        assert_eq!(n.replaced_time("s", "d", 5_000), 5_000);
        // Our clock stepped back: still after the last one given out.
        assert_eq!(n.replaced_time("s", "d", 10), 5_001);
    }
}
