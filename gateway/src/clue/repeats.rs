//! Plain repeats held in memory, written once per window: the database stays the record,
//! but not of every repeat one by one.
//!
//! What intake costs is the database writing, per event, an occurrence row, an audit entry
//! and a clue update with their indexes; batching alone does not help when a batch spreads
//! over thousands of keys. Most events, though, are repeats of an open clue that change
//! nothing but its counters and times. [`RepeatBuffer`] holds such a *plain repeat* per dedup
//! key and hands the key's run out once its window (`[clues] repeat_window_ms`) has passed,
//! to be written as one clue update, one occurrence row with the count and the first and
//! last time, and one audit entry `repeat` (`store::intake` plans it as that many events, so
//! the clue ends as the events one by one would have left it).
//!
//! A repeat is *plain* when the buffer knows, from the changes the pool itself wrote or
//! announced ([`RepeatBuffer::learn`]), that its key's clue is open, of the same site, at the
//! event's level or above, not marked cleared, and the event carries no evidence. Nothing is
//! read from the database to decide: on a PostgreSQL shared by several gateways another one
//! may have changed the clue meanwhile, but the run is planned at write time from the stored
//! clue, so a stale guess only makes the run land as ordinary events would (a new clue, a
//! raised level), never a wrong clue. Everything else (the first event of a key, a worse
//! level, an event with evidence, any event of a key whose last change was not learned yet)
//! goes through at once, and first hands out its key's held run, so a key's events are
//! written in the order they came. A clearance of the key, a person's action and the end of
//! intake hand held runs out first too (`clue::pool`).
//!
//! What this gives up: a held run is in memory only, so at most one window of plain repeats
//! is lost if the process is killed (a clean stop writes them); no clue opening, level change
//! or evidence is ever held. A rise from repetition (`raise_after_occurrences`) is applied
//! when the run is written, up to one window late. Window 0 holds nothing: every event is
//! written on its own, as before.

use crate::clue::model::ClueChange;
use crate::clue::signal::{ClueEvent, Level};
use std::collections::{HashMap, VecDeque};

/// How many events one written item stands for: 1, or a run of plain repeats whose last
/// event is the item's event and whose first was at `first_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub count: i64,
    pub first_ms: i64,
}

impl Run {
    /// A single event at `at_ms`.
    pub fn one(at_ms: i64) -> Run {
        Run {
            count: 1,
            first_ms: at_ms,
        }
    }
}

/// Keys whose open clue is remembered, beyond which the buffer forgets them all (they are
/// learnt again from the next write of each).
const KNOWN_MAX: usize = 200_000;
/// Keys held at once, beyond which a further key's repeats go through at once.
const HELD_MAX: usize = 100_000;

/// What the pool last wrote or announced of a key's open clue.
struct Known {
    level: Level,
    site: String,
}

/// A key's run: its last event so far (at the run's latest time), the count and first time.
struct Held {
    event: ClueEvent,
    run: Run,
    due_ms: i64,
}

/// Plain repeats per dedup key, each key's run handed out once per window (module doc).
/// Times are the caller's monotonic milliseconds (the pool's and the benchmark's clock).
pub struct RepeatBuffer {
    window_ms: i64,
    known: HashMap<String, Known>,
    held: HashMap<String, Held>,
    /// Held keys by due time: the window is fixed and time only moves on, so in the order
    /// they were first held. An entry whose key was handed out early is skipped.
    queue: VecDeque<(i64, String)>,
    /// Events in `held`, kept as it changes (read per intake round for the metrics).
    held_total: i64,
}

impl RepeatBuffer {
    /// A buffer holding runs for `window_ms` (0: none, every event goes through).
    pub fn new(window_ms: u64) -> RepeatBuffer {
        RepeatBuffer {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            known: HashMap::new(),
            held: HashMap::new(),
            queue: VecDeque::new(),
            held_total: 0,
        }
    }

    /// Events held now (across keys).
    pub fn held_events(&self) -> i64 {
        self.held_total
    }

    /// Whether `ev` changes nothing but counters and times of its key's open clue, as far as
    /// the buffer knows.
    fn plain(&self, ev: &ClueEvent) -> bool {
        self.window_ms > 0
            && ev.evidence.is_empty()
            && !ev.rule.trim().is_empty()
            && !ev.kind.trim().is_empty()
            && self
                .known
                .get(&ev.dedup_key)
                .is_some_and(|k| k.site == ev.subject.site && ev.level <= k.level)
    }

    /// Takes one event (its `dedup_key` filled in): held as a plain repeat, or appended to
    /// `out` to be written now, after its key's held run. A repeat whose level or kind
    /// differs from its key's held run ends that run (appended to `out`) and starts another.
    pub fn offer(&mut self, ev: ClueEvent, now_ms: i64, out: &mut Vec<(ClueEvent, Run)>) {
        if !self.plain(&ev) {
            if let Some(run) = self.take(&ev.dedup_key) {
                out.push(run);
            }
            // Not known again until its write is learnt: the next events go through too.
            self.known.remove(&ev.dedup_key);
            let at = ev.at_ms;
            out.push((ev, Run::one(at)));
            return;
        }
        if let Some(h) = self.held.get_mut(&ev.dedup_key) {
            if h.event.level == ev.level && h.event.kind == ev.kind {
                let last = h.event.at_ms.max(ev.at_ms);
                h.run.count += 1;
                self.held_total += 1;
                h.run.first_ms = h.run.first_ms.min(ev.at_ms);
                h.event = ev;
                h.event.at_ms = last;
                return;
            }
            if let Some(run) = self.take(&ev.dedup_key) {
                out.push(run);
            }
        }
        if self.held.len() >= HELD_MAX {
            let at = ev.at_ms;
            out.push((ev, Run::one(at)));
            return;
        }
        let due_ms = now_ms.saturating_add(self.window_ms);
        self.queue.push_back((due_ms, ev.dedup_key.clone()));
        self.held_total += 1;
        self.held.insert(
            ev.dedup_key.clone(),
            Held {
                run: Run::one(ev.at_ms),
                event: ev,
                due_ms,
            },
        );
    }

    /// The held run of `key`, if any, to be written before something else of that key.
    pub fn take(&mut self, key: &str) -> Option<(ClueEvent, Run)> {
        let held = self.held.remove(key)?;
        self.held_total -= held.run.count;
        Some((held.event, held.run))
    }

    /// Appends the runs whose window ended by `now_ms` to `out`, oldest first.
    pub fn due(&mut self, now_ms: i64, out: &mut Vec<(ClueEvent, Run)>) {
        while let Some((due_ms, _)) = self.queue.front() {
            if *due_ms > now_ms {
                break;
            }
            if let Some((due_ms, key)) = self.queue.pop_front()
                && self.held.get(&key).is_some_and(|h| h.due_ms == due_ms)
                && let Some(run) = self.take(&key)
            {
                out.push(run);
            }
        }
    }

    /// When the next held run is due (none held: none).
    pub fn next_due_ms(&mut self) -> Option<i64> {
        while let Some((due_ms, key)) = self.queue.front() {
            if self.held.get(key).is_some_and(|h| h.due_ms == *due_ms) {
                return Some(*due_ms);
            }
            self.queue.pop_front();
        }
        None
    }

    /// Appends every held run to `out`, oldest first (a stop, or a person's action).
    pub fn drain(&mut self, out: &mut Vec<(ClueEvent, Run)>) {
        while let Some((due_ms, key)) = self.queue.pop_front() {
            if self.held.get(&key).is_some_and(|h| h.due_ms == due_ms)
                && let Some(run) = self.take(&key)
            {
                out.push(run);
            }
        }
        self.held.clear();
        self.held_total = 0;
    }

    /// Learns what a written or announced change left of its clue: open and not cleared,
    /// its level and site; otherwise the key is not known (its next event goes through).
    pub fn learn(&mut self, change: &ClueChange) {
        if self.window_ms == 0 {
            return;
        }
        let c = &change.clue;
        if c.status.is_open() && c.cleared_ms.is_none() {
            if self.known.len() >= KNOWN_MAX && !self.known.contains_key(&c.dedup_key) {
                self.known.clear();
            }
            self.known.insert(
                c.dedup_key.clone(),
                Known {
                    level: c.level,
                    site: c.subject.site.clone(),
                },
            );
        } else {
            self.known.remove(&c.dedup_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_count_is_the_sum_of_the_held_runs_whatever_happens() {
        let mut b = RepeatBuffer::new(1_000);
        let mut out = Vec::new();
        let levels = [Level::Low, Level::Medium, Level::High];
        // Teach every device's clue as open at High, so repeats at any level are plain.
        for d in 0..7 {
            let e = ev(&format!("d{d}"), Level::High, 0);
            b.learn(&written(&e, Level::High, Status::New));
        }
        let mut x: u64 = 18;
        for step in 0..3_000i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let device = format!("d{}", (x >> 33) % 7);
            match (x >> 40) % 10 {
                0 => {
                    b.take(&ClueEvent::default_key(
                        "r",
                        &ev(&device, Level::Low, 0).subject,
                    ));
                }
                1 => b.due(step, &mut out),
                2 if step % 500 == 0 => b.drain(&mut out),
                _ => {
                    let level = levels[((x >> 50) % 3) as usize];
                    b.offer(ev(&device, level, step), step, &mut out);
                }
            }
            let sum: i64 = b.held.values().map(|h| h.run.count).sum();
            assert_eq!(b.held_events(), sum, "step {step}");
        }
    }
    use crate::clue::lifecycle::Status;
    use crate::clue::signal::{Evidence, Subject};

    fn ev(device: &str, level: Level, at_ms: i64) -> ClueEvent {
        let subject = Subject {
            site: "s1".into(),
            device: Some(device.into()),
            ..Default::default()
        };
        ClueEvent {
            rule: "r".into(),
            kind: "k".into(),
            level,
            dedup_key: ClueEvent::default_key("r", &subject),
            subject,
            at_ms,
            title: format!("t{at_ms}"),
            detail: serde_json::json!({}),
            evidence: vec![],
            department: None,
            assisting: Vec::new(),
        }
    }

    /// The change a write of `e` would have announced: its clue open at `level`.
    fn written(e: &ClueEvent, level: Level, status: Status) -> ClueChange {
        let mut clue = crate::clue::model::tests::clue(&e.subject.site);
        clue.rule = e.rule.clone();
        clue.kind = e.kind.clone();
        clue.level = level;
        clue.status = status;
        clue.subject = e.subject.clone();
        clue.dedup_key = e.dedup_key.clone();
        ClueChange {
            event_id: 1,
            event: "created".into(),
            at_ms: 0,
            actor: "pool".into(),
            count: 1,
            clue,
        }
    }

    fn counts(out: &[(ClueEvent, Run)]) -> Vec<(String, i64)> {
        out.iter()
            .map(|(e, r)| (e.subject.device.clone().unwrap_or_default(), r.count))
            .collect()
    }

    #[test]
    fn a_run_of_plain_repeats_is_handed_out_once_per_window() {
        let mut b = RepeatBuffer::new(1_000);
        let mut out = Vec::new();
        let first = ev("a", Level::Medium, 10);
        b.offer(first.clone(), 0, &mut out);
        assert_eq!(
            counts(&out),
            [("a".into(), 1)],
            "the first event goes through"
        );
        b.learn(&written(&first, Level::Medium, Status::New));
        out.clear();
        for i in 0..5 {
            b.offer(ev("a", Level::Medium, 20 + i), 100 + i, &mut out);
        }
        // A lower level on a medium clue changes nothing either, but is a run of its own.
        assert!(out.is_empty(), "held");
        assert_eq!(b.held_events(), 5);
        b.due(1_099, &mut out);
        assert!(out.is_empty(), "not before the window ends");
        assert_eq!(b.next_due_ms(), Some(1_100));
        b.due(1_100, &mut out);
        assert_eq!(counts(&out), [("a".into(), 5)]);
        let (e, run) = &out[0];
        assert_eq!((run.first_ms, e.at_ms, e.title.as_str()), (20, 24, "t24"));
        assert_eq!(b.held_events(), 0);
        assert_eq!(b.next_due_ms(), None);
    }

    #[test]
    fn anything_else_of_the_key_goes_through_after_its_held_run() {
        let mut b = RepeatBuffer::new(1_000);
        let mut out = Vec::new();
        for d in ["a", "b"] {
            b.learn(&written(&ev(d, Level::Low, 0), Level::Low, Status::New));
        }
        b.offer(ev("a", Level::Low, 1), 0, &mut out);
        b.offer(ev("b", Level::Low, 2), 0, &mut out);
        b.offer(ev("a", Level::Low, 3), 0, &mut out);
        assert!(out.is_empty());
        // A worse level of a: a's run first, then the event; b stays held.
        b.offer(ev("a", Level::High, 4), 0, &mut out);
        assert_eq!(counts(&out), [("a".into(), 2), ("a".into(), 1)]);
        assert_eq!(out[1].0.level, Level::High);
        out.clear();
        // a is not known until that write is learnt: its next repeat goes through too.
        b.offer(ev("a", Level::Low, 5), 0, &mut out);
        assert_eq!(counts(&out), [("a".into(), 1)]);
        out.clear();
        // Evidence is never held.
        let mut with = ev("b", Level::Low, 6);
        with.evidence.push(Evidence::Note { text: "n".into() });
        b.offer(with, 0, &mut out);
        assert_eq!(counts(&out), [("b".into(), 1), ("b".into(), 1)]);
        assert!(!out[1].0.evidence.is_empty());
    }

    #[test]
    fn a_clearance_or_a_closed_clue_ends_the_knowledge_and_take_hands_the_run_out() {
        let mut b = RepeatBuffer::new(1_000);
        let mut out = Vec::new();
        let a = ev("a", Level::Low, 0);
        b.learn(&written(&a, Level::Low, Status::New));
        b.offer(ev("a", Level::Low, 1), 0, &mut out);
        // What the pool does before recording a clearance of the key.
        let run = b.take(&a.dedup_key).expect("held run");
        assert_eq!(run.1.count, 1);
        let mut cleared = written(&a, Level::Low, Status::New);
        cleared.clue.cleared_ms = Some(5);
        b.learn(&cleared);
        b.offer(ev("a", Level::Low, 6), 0, &mut out);
        assert_eq!(
            out.len(),
            1,
            "a repeat after a clearance undoes it: written at once"
        );
        out.clear();
        b.learn(&written(&a, Level::Low, Status::Dismissed));
        b.offer(ev("a", Level::Low, 7), 0, &mut out);
        assert_eq!(
            out.len(),
            1,
            "a dismissed clue: the repeat opens a new one at once"
        );
        // The run's queue entry of the early take is skipped.
        assert_eq!(b.next_due_ms(), None);
    }

    #[test]
    fn window_zero_holds_nothing() {
        let mut b = RepeatBuffer::new(0);
        let mut out = Vec::new();
        let a = ev("a", Level::Low, 0);
        b.learn(&written(&a, Level::Low, Status::New));
        for i in 0..3 {
            b.offer(ev("a", Level::Low, i), 0, &mut out);
        }
        assert_eq!(counts(&out), vec![("a".to_string(), 1); 3]);
        assert_eq!(b.next_due_ms(), None);
    }

    #[test]
    fn drain_hands_out_every_run_oldest_first_and_another_site_is_never_held() {
        let mut b = RepeatBuffer::new(1_000);
        let mut out = Vec::new();
        for d in ["a", "b"] {
            b.learn(&written(&ev(d, Level::Low, 0), Level::Low, Status::New));
        }
        b.offer(ev("b", Level::Low, 1), 0, &mut out);
        b.offer(ev("a", Level::Low, 2), 5, &mut out);
        let mut other = ev("a", Level::Low, 3);
        other.subject.site = "s9".into();
        b.offer(other, 6, &mut out);
        assert_eq!(counts(&out), [("a".into(), 1), ("a".into(), 1)]);
        assert_eq!(out[1].0.subject.site, "s9");
        out.clear();
        b.offer(ev("b", Level::Low, 4), 7, &mut out);
        b.drain(&mut out);
        assert_eq!(counts(&out), [("b".into(), 2)]);
        assert_eq!(b.held_events(), 0);
    }
}
