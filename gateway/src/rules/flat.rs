//! The flat-line judgement's run, kept as a summary that outlives the readings window.
//!
//! A flat-line rule asks: the run of numbers ending at the newest reading whose highest and
//! lowest stay within a tolerance, how many readings, since when. A business-hours rule of six
//! hours must see back over nights and closed days, so the window used to keep `for_s` plus
//! three days of readings: 2,048 readings a trap level at one a minute, 16 KB a device, 164 MB
//! for 10,000 devices (issue 24). The run is now this summary, kept up reading by reading; the
//! window keeps only what the other rules and the evidence read (an hour).
//!
//! The summary is the two-pointer run of `running::FlatRun`, with the readings the run could
//! still break at (those higher, or lower, than every later one) held by value and time instead
//! of as positions in the window, and with the time of the reading after each: a run that
//! breaks at such a reading starts at the next. It answers what
//! `running::flat_run_by_scan` of every reading would, to the reading, NaN and infinities
//! included (a NaN fits any run and moves neither extreme). A run of one value (a stuck
//! sensor with tolerance 0) holds one mark each side; noise holds a few.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Marks kept each side at most: a value drifting one way within the tolerance marks every
/// reading. Past this the run counts from after its oldest mark, as the old window (2,048
/// readings at most) forgot readings past its length.
const MAX_MARKS: usize = 2048;

/// A reading of the run higher (or lower) than every later one: where the run breaks when a
/// later reading strays too far from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Mark {
    /// Position among the series' numbers (counts readings).
    #[serde(rename = "p")]
    pos: u64,
    t: i64,
    /// The value's bits: JSON has no infinities.
    #[serde(rename = "x")]
    bits: u64,
    /// Time of the reading after it (`i64::MAX` until that comes).
    #[serde(rename = "n")]
    next_t: i64,
}

impl Mark {
    fn x(&self) -> f64 {
        f64::from_bits(self.bits)
    }
}

/// Where a late reading lands among the readings the window holds: how many numbers come
/// after it, and the time of the first of them. `None` when the window no longer holds every
/// reading at or after its time.
pub(crate) type LateView = Option<(u64, i64)>;

/// What [`FlatSummary::late`] did with a late number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Late {
    /// In the run (or before it, where the run does not reach): as the scan would have it.
    Placed,
    /// Among readings the window no longer holds, fitting every reading of the run: left
    /// out (the run's count is one short of the scan's; its start and extremes are right).
    LeftOut,
    /// Among readings the window no longer holds, and the run breaks at it: where the run
    /// then starts is not known. The caller starts it again from the window.
    Unplaced,
}

/// Makes room for one more mark: one slot at a time while few (a flat run of one value holds
/// one mark each side), then by a quarter.
fn grow(q: &mut VecDeque<Mark>) {
    if q.len() == q.capacity() {
        q.reserve_exact((q.capacity() / 4).max(1));
    }
}

/// The flat run ending at the newest reading of one series, for one tolerance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlatSummary {
    /// The tolerance's bits (a rule's figure, compared exactly).
    tol: u64,
    /// Position of the next number.
    next: u64,
    /// Position of the run's oldest reading.
    start: u64,
    start_t: i64,
    /// Time of the reading just before the run (the one it broke at): a late reading at or
    /// before it lands outside the run. `None`: the run reaches back to the first reading.
    before_t: Option<i64>,
    hi: VecDeque<Mark>,
    lo: VecDeque<Mark>,
}

impl FlatSummary {
    pub(crate) fn new(tolerance: f64) -> Self {
        FlatSummary {
            tol: tolerance.to_bits(),
            next: 0,
            start: 0,
            start_t: 0,
            before_t: None,
            hi: VecDeque::new(),
            lo: VecDeque::new(),
        }
    }

    /// Prefetch hint for the newest marks, which a new number compares and pops (see
    /// [`crate::prefetch`]).
    pub(crate) fn prefetch(&self) {
        crate::prefetch::deque_newest(&self.hi);
        crate::prefetch::deque_newest(&self.lo);
    }

    pub(crate) fn is_for(&self, tolerance: f64) -> bool {
        self.tol == tolerance.to_bits()
    }

    pub(crate) fn tolerance(&self) -> f64 {
        f64::from_bits(self.tol)
    }

    /// The run: its length and the time of its oldest reading (`to` when there is none), as
    /// `Window::flat_run` answered over every reading.
    pub(crate) fn run(&self, to: i64) -> (usize, i64) {
        let n = self.next.saturating_sub(self.start) as usize;
        if n == 0 { (0, to) } else { (n, self.start_t) }
    }

    /// The run's lowest and highest numbers (NaN when it holds only NaNs).
    pub(crate) fn extremes(&self) -> (f64, f64) {
        match (self.lo.front(), self.hi.front()) {
            (Some(l), Some(h)) => (l.x(), h.x()),
            _ => (f64::NAN, f64::NAN),
        }
    }

    /// Whether `x` fits with every reading of the run (the scan's test, NaN fitting).
    fn fits_all(&self, x: f64) -> bool {
        let (lo, hi) = match (self.lo.front(), self.hi.front()) {
            (Some(l), Some(h)) => (l.x(), h.x()),
            _ => (f64::INFINITY, f64::NEG_INFINITY),
        };
        // The scan's test (`spread > tolerance` breaks), for the same answer with infinities:
        // a NaN spread (two equal infinities) fits.
        let spread = hi.max(x) - lo.min(x);
        spread.is_nan() || spread <= self.tolerance()
    }

    /// A number at or after the newest.
    pub(crate) fn append(&mut self, t: i64, x: f64) {
        let pos = self.next;
        for q in [&mut self.hi, &mut self.lo] {
            if let Some(m) = q.back_mut()
                && m.pos + 1 == pos
            {
                m.next_t = t;
            }
        }
        if self.start == self.next {
            self.start_t = t;
        }
        self.next += 1;
        if x.is_nan() {
            return;
        }
        let mark = Mark {
            pos,
            t,
            bits: x.to_bits(),
            next_t: i64::MAX,
        };
        while self.hi.back().is_some_and(|m| m.x() <= x) {
            self.hi.pop_back();
        }
        grow(&mut self.hi);
        self.hi.push_back(mark.clone());
        while self.lo.back().is_some_and(|m| m.x() >= x) {
            self.lo.pop_back();
        }
        grow(&mut self.lo);
        self.lo.push_back(mark);
        self.settle();
    }

    /// Moves the start past the readings the run breaks at, then past marks over the cap.
    fn settle(&mut self) {
        loop {
            let cut = match (self.hi.front(), self.lo.front()) {
                (Some(h), Some(l)) if h.x() - l.x() > self.tolerance() => {
                    if h.pos < l.pos {
                        h.clone()
                    } else {
                        l.clone()
                    }
                }
                (Some(h), _) if self.hi.len() > MAX_MARKS => h.clone(),
                (_, Some(l)) if self.lo.len() > MAX_MARKS => l.clone(),
                _ => return,
            };
            self.start = cut.pos + 1;
            self.start_t = cut.next_t;
            self.before_t = Some(cut.t);
            // Marks are in position order: the ones before the start are a prefix (popped,
            // not a `retain` scanning every mark on each break; issue 24).
            for q in [&mut self.hi, &mut self.lo] {
                while q.front().is_some_and(|m| m.pos < self.start) {
                    q.pop_front();
                }
            }
        }
    }

    /// A number older than the newest (a late reading): it lands before the first reading at
    /// or after its time. `after` says where, from the window.
    pub(crate) fn late(&mut self, t: i64, x: f64, after: impl FnOnce() -> LateView) -> Late {
        if self.next == 0 {
            self.append(t, x);
            return Late::Placed;
        }
        if self.before_t.is_some_and(|b| t <= b) {
            // Before the reading the run broke at: the run does not reach it.
            return Late::Placed;
        }
        if t <= self.start_t {
            // Just before the run's oldest reading.
            if self.fits_all(x) {
                if after().is_none() {
                    // Among readings gone: maybe a redelivery of one (the window can no
                    // longer tell), so not counted.
                    return Late::LeftOut;
                }
                self.insert(self.start, t, x, self.start_t);
                self.start_t = t;
            } else {
                self.before_t = Some(t);
            }
            return Late::Placed;
        }
        match after() {
            Some((k, next_t)) if self.next.saturating_sub(k) > self.start => {
                let at = self.next - k;
                self.insert(at, t, x, next_t);
                self.settle();
                Late::Placed
            }
            // Among readings gone from the window.
            _ if self.fits_all(x) => Late::LeftOut,
            _ => Late::Unplaced,
        }
    }

    /// Puts the number `x` at position `at` (inside the run or at its start), the readings
    /// from `at` on moving up one; `next_t` is the time of the reading after it.
    fn insert(&mut self, at: u64, t: i64, x: f64, next_t: i64) {
        for m in self.hi.iter_mut().chain(self.lo.iter_mut()) {
            if m.pos >= at {
                m.pos += 1;
            } else if m.pos + 1 == at {
                m.next_t = t;
            }
        }
        self.next += 1;
        if x.is_nan() {
            return;
        }
        let mark = Mark {
            pos: at,
            t,
            bits: x.to_bits(),
            next_t,
        };
        // Higher than every later reading: a mark; earlier marks no higher than it are not.
        let i = self.hi.partition_point(|m| m.pos < at);
        if self.hi.get(i).is_none_or(|m| m.x() < x) {
            let j = self.hi.range(..i).take_while(|m| m.x() > x).count();
            self.hi.drain(j..i);
            self.hi.insert(j, mark.clone());
        }
        let i = self.lo.partition_point(|m| m.pos < at);
        if self.lo.get(i).is_none_or(|m| m.x() > x) {
            let j = self.lo.range(..i).take_while(|m| m.x() < x).count();
            self.lo.drain(j..i);
            self.lo.insert(j, mark);
        }
    }

    /// The run over the readings `w` holds (a rule added by a reload, a snapshot written
    /// before summaries were kept, a late reading placed among readings gone): the run as the
    /// old judgement saw it in that window. Readings the window let go are before the run.
    pub(crate) fn of_window(w: &super::window::Window, tolerance: f64) -> Self {
        let mut s = FlatSummary::new(tolerance);
        for (t, x) in w.range(i64::MIN, i64::MAX).numbers() {
            s.append(t, x);
        }
        if s.before_t.is_none() {
            s.before_t = w.evicted_to();
        }
        s
    }

    /// Heap bytes of the marks (their capacity).
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        (self.hi.capacity() + self.lo.capacity()) * std::mem::size_of::<Mark>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Value;
    use crate::rules::running::flat_run_by_scan;
    use crate::rules::window::{Push, Window};

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The summary answers what the scan of every reading answers (the old judgement over a
    /// window that never forgets), on random sequences: runs, noise, steps, late readings,
    /// redeliveries, same times, NaN and infinities, text; while a short window (what the
    /// engine now keeps) evicts. A late reading among readings the short window no longer
    /// holds is not placed (see [`FlatSummary::late`]): those are counted, and the comparison
    /// goes on from the run of every reading.
    #[test]
    fn the_summary_answers_what_scanning_every_reading_answers() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut asked = 0usize;
        let mut restarted = 0usize;
        let mut long_runs = 0usize;
        for case in 0..400 {
            let tol = [0.0, 0.5, 1.0, 2.5, 4.0][rng.below(5) as usize];
            let keep_ms = [20, 200, 2_000][rng.below(3) as usize];
            let mut all = Window::new(i64::MAX, 1 << 30);
            let mut short = Window::new(keep_ms, 64);
            let mut s = FlatSummary::new(tol);
            let mut t = 0i64;
            let mut level = 0.0f64;
            let mut log: Vec<String> = Vec::new();
            for step in 0..(50 + rng.below(600)) {
                let late = rng.below(12) == 0;
                let at = if late {
                    let far = rng.below(4) == 0;
                    t - rng.below(if far { 400 } else { 30 }) as i64
                } else {
                    t + [0, 1, 1, 2, 5, 40][rng.below(6) as usize]
                };
                level = match rng.below(if case % 2 == 0 { 10 } else { 60 }) {
                    0 => level + rng.below(9) as f64 - 4.0,
                    1 => level + (rng.below(5) as f64 - 2.0) * 0.5,
                    _ => level,
                };
                let v = match rng.below(60) {
                    0 => Value::Float(f64::NAN),
                    1 => Value::Float([f64::INFINITY, f64::NEG_INFINITY][rng.below(2) as usize]),
                    2 => Value::Text("x".into()),
                    // Integers for whole cases: a window tells an integer from the same
                    // number as a float by its column's kind, so a window that holds other
                    // readings could call one a redelivery of the other.
                    _ if case % 4 == 0 => Value::Int(level as i64),
                    _ => Value::Float(level),
                };
                let pushed = all.push(at, &v);
                // The engine knows what its (short) window says: a redelivery of a reading
                // it let go is late to it.
                let x = v.as_f64();
                let ps = short.push(at, &v);
                log.push(format!(
                    "{at} {v:?} all {pushed:?} short {ps:?} ev {:?}",
                    short.evicted_to()
                ));
                match (ps, x) {
                    (Push::Appended, Some(x)) => s.append(at, x),
                    // Not placed: counted, and the comparison goes on from the run of
                    // every reading.
                    (Push::Late, Some(x))
                        if s.late(at, x, || short.late_view(at)) != Late::Placed =>
                    {
                        s = FlatSummary::of_window(&all, tol);
                        restarted += 1;
                    }
                    _ => {}
                }
                if pushed != Push::Late {
                    t = t.max(at);
                }
                let to = all.newest_t().unwrap_or(0);
                let newest_first: Vec<(i64, f64)> = {
                    let mut p: Vec<_> = all.range(i64::MIN, to).numbers().collect();
                    p.reverse();
                    p
                };
                let want = flat_run_by_scan(newest_first.into_iter(), tol, to);
                assert_eq!(
                    s.run(to),
                    want,
                    "case {case} step {step}: tolerance {tol}, {s:?} {:#?}",
                    &log[log.len().saturating_sub(25)..]
                );
                asked += 1;
                long_runs += usize::from(want.0 > short.len());
            }
        }
        eprintln!(
            "{asked} asked, {long_runs} with runs longer than the short window, {restarted} restarts"
        );
        assert!(long_runs > asked / 10, "{long_runs} of {asked}");
        assert!(restarted < asked / 50, "{restarted} of {asked}");
    }

    /// A snapshot of the summary reads back the same, infinities included.
    #[test]
    fn the_summary_survives_json() {
        let mut s = FlatSummary::new(0.5);
        for (t, x) in [
            (1, f64::INFINITY),
            (2, 3.0),
            (3, 3.5),
            (4, f64::NAN),
            (5, 3.2),
        ] {
            s.append(t, x);
        }
        let back: FlatSummary =
            serde_json::from_str(&serde_json::to_string(&s).expect("serializes"))
                .expect("reads back");
        assert_eq!(format!("{back:?}"), format!("{s:?}"));
        assert_eq!(back.run(5), (4, 2));
    }
}
