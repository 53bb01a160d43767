//! Per-series ring of recent readings: evidence around a trigger, rate of change, flat-line.
//!
//! Bounded by age (relative to the newest reading) and by count, so a chatty sensor cannot
//! grow memory. Late readings are inserted in time order; exact duplicates are dropped.
//!
//! The readings are held by kind ([`Column`]): a series of numbers, which is almost every
//! series, takes 16 bytes a reading instead of 40 for `(i64, Value)`. With ten thousand
//! devices these windows were most of the gateway's memory per device (issue 24).

use super::column::{Column, WithPoints};
use super::running::{
    Extreme, FlatRun, Points, Running, flat_run_by_scan, supported_extreme, supported_extreme_in,
};
use crate::reading::Value;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What [`Window::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// At or after the newest reading: rules evaluate it.
    Appended,
    /// Older than the newest reading: kept as evidence, not evaluated (state moved on).
    Late,
    /// Same time and value as a reading already held (a redelivery): ignored.
    Duplicate,
}

/// Readings of a window between two indices, oldest first (`.rev()` for newest first).
pub(crate) struct Readings<'a> {
    col: &'a Column,
    front: usize,
    back: usize,
}

impl<'a> Readings<'a> {
    /// The numeric readings only, as `(time, number)`, without building a `Value` each.
    pub(crate) fn numbers(self) -> impl DoubleEndedIterator<Item = (i64, f64)> + 'a {
        let col = self.col;
        (self.front..self.back).filter_map(move |i| col.number(i).map(|x| (col.t(i), x)))
    }
}

impl Iterator for Readings<'_> {
    type Item = (i64, Value);

    fn next(&mut self) -> Option<(i64, Value)> {
        (self.front < self.back).then(|| {
            self.front += 1;
            (self.col.t(self.front - 1), self.col.value(self.front - 1))
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Readings<'_> {
    fn next_back(&mut self) -> Option<(i64, Value)> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            (self.col.t(self.back), self.col.value(self.back))
        })
    }
}

/// Judgements over fewer readings than this rescan them: a fleet of many devices with short
/// windows then carries no running state (its memory: a box and a queue a judgement). Was 64,
/// on the reasoning that a short rescan costs about what keeping running state up costs; but a
/// rescan costs ~45 instructions a reading (callgrind, 2026-12-07), so a 64-reading one
/// cost ~3,000 while a running judgement's upkeep is a few hundred: every device's first 64
/// readings were judged the dear way (issue 24). 16 keeps the memory argument for devices
/// that report little. Chosen by that arithmetic, then checked by instruction counts.
const RUNNING_FROM: usize = 16;

#[cfg(test)]
thread_local! {
    /// Tests: the number of readings from which judgements run (`None`: [`RUNNING_FROM`];
    /// `usize::MAX`: always rescan, the definition the running judgements must match).
    pub(crate) static RUNNING_FROM_TEST: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}

fn running_from() -> usize {
    #[cfg(test)]
    if let Some(n) = RUNNING_FROM_TEST.with(|r| r.get()) {
        return n;
    }
    RUNNING_FROM
}

#[derive(Debug, Clone)]
pub(crate) struct Window {
    col: Column,
    retention_ms: i64,
    max_len: usize,
    /// How many of the newest readings stay even when older than `retention_ms`, while
    /// younger than `floor_ms`: a trap reporting every hour or two still has the readings
    /// before a drop that its discharge rule reads (see `Window::with_floor`).
    keep: usize,
    floor_ms: i64,
    /// Time of the newest reading evicted (`i64::MIN`: none): every reading after it is held.
    evicted_to: i64,
    /// Readings from this time on stay while younger than `floor_ms` (`i64::MAX`: none):
    /// a drop waiting for its judgement reads them (`Engine`'s pending discharges). Not
    /// stored: set again from the pending discharges on a restore.
    pin: i64,
    /// Read from a snapshot written before `keep` and `floor_ms` were stored: the window
    /// kept what the rules of then asked (see `Engine::restore`).
    old_form: bool,
    /// Judgements kept up with the readings, made on the first question about a long enough
    /// run of readings; dropped when a late reading shifts positions or the column widens.
    /// Boxed: most windows never have any. Not stored in snapshots: rebuilt from the readings.
    running: Option<Box<RunningSet>>,
}

/// A window's running judgements (rules' bands and tolerances) and what they need to know
/// of the window.
#[derive(Debug, Clone)]
struct RunningSet {
    /// Readings evicted from the front since the set was made: the absolute position of
    /// index 0.
    base: u64,
    /// Readings held whose number is not finite (NaN, infinities): while there are any, the
    /// judgements rescan (their comparisons are not the ordered ones the running ones use).
    non_finite: usize,
    list: Vec<Running>,
}

impl RunningSet {
    fn of(col: &Column) -> Box<RunningSet> {
        Box::new(RunningSet {
            base: 0,
            non_finite: (0..col.len())
                .filter(|&i| col.number(i).is_some_and(|x| !x.is_finite()))
                .count(),
            list: Vec::new(),
        })
    }

    /// The position in `list` of the judgement `is` recognises, made by `make` when absent.
    fn find_or(&mut self, is: impl Fn(&Running) -> bool, make: impl FnOnce() -> Running) -> usize {
        match self.list.iter().position(is) {
            Some(k) => k,
            None => {
                self.list.push(make());
                self.list.len() - 1
            }
        }
    }
}

/// A window's running judgements, when they can answer for the readings from index `s` up
/// to `to`: at least [`RUNNING_FROM`] readings up to the newest, in a column of finite
/// numbers. Made on the first such question.
fn running_set_of<'a>(
    running: &'a mut Option<Box<RunningSet>>,
    col: &Column,
    s: usize,
    to: i64,
) -> Option<&'a mut RunningSet> {
    let n = col.len();
    if n.saturating_sub(s) < running_from() || !col.is_numbers() || col.first_after(to) != n {
        return None;
    }
    let set = running.get_or_insert_with(|| RunningSet::of(col));
    (set.non_finite == 0).then_some(&mut **set)
}

fn non_finite(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| !x.is_finite())
}

impl Window {
    /// Prefetch hints for what a new reading touches: the newest readings and the running
    /// judgements (see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self) {
        self.col.prefetch_newest();
        if let Some(r) = &self.running {
            crate::prefetch::bytes(&**r, std::mem::size_of::<RunningSet>());
        }
    }

    /// The stage after [`Window::prefetch`]: the running judgements' list.
    pub(crate) fn prefetch_running(&self) {
        if let Some(r) = &self.running {
            crate::prefetch::bytes(r.list.as_ptr(), std::mem::size_of_val(r.list.as_slice()));
        }
    }

    pub(crate) fn new(retention_ms: i64, max_len: usize) -> Self {
        Window {
            col: Column::for_value(&Value::Int(0)),
            retention_ms,
            max_len: max_len.max(1),
            keep: 0,
            floor_ms: retention_ms,
            evicted_to: i64::MIN,
            pin: i64::MAX,
            old_form: false,
            running: None,
        }
    }

    /// Keeps the newest `keep` readings even when older than the retention, while younger
    /// than `floor_ms`. The level window kept three days for the flat-line rule; the discharge
    /// rule reads the two readings before its span and the peak's neighbour at judging time
    /// whatever their age, which a sparse reporter (one an hour) had only in those three days.
    /// With `floor_ms` the old retention, the window holds nothing the old one did not.
    pub(crate) fn with_floor(mut self, keep: usize, floor_ms: i64) -> Self {
        self.keep = keep;
        self.floor_ms = floor_ms.max(self.retention_ms);
        self
    }

    /// Sets what the window keeps (from the next reading on).
    pub(crate) fn set_policy(&mut self, retention_ms: i64, keep: usize, floor_ms: i64) {
        self.retention_ms = retention_ms;
        self.keep = keep;
        self.floor_ms = floor_ms.max(retention_ms);
        self.old_form = false;
    }

    /// Keeps the readings from `t` on (within the floor) until [`Window::set_pin`] moves it.
    pub(crate) fn pin_from(&mut self, t: i64) {
        self.pin = self.pin.min(t);
    }

    pub(crate) fn set_pin(&mut self, t: i64) {
        self.pin = t;
    }

    /// Whether it was read from a snapshot that did not store its policy.
    pub(crate) fn is_old_form(&self) -> bool {
        self.old_form
    }

    /// The time of the newest reading let go, if any (readings after it are all held).
    pub(crate) fn evicted_to(&self) -> Option<i64> {
        (self.evicted_to != i64::MIN).then_some(self.evicted_to)
    }

    /// For a late number just pushed at `t`: how many numbers come after it and the time of
    /// the first, when the window holds every reading at or after `t` (`flat::LateView`).
    pub(crate) fn late_view(&self, t: i64) -> super::flat::LateView {
        if self.evicted_to >= t {
            return None;
        }
        let idx = self.col.first_at_or_after(t);
        let mut after = (idx + 1..self.col.len()).filter(|&i| self.col.number(i).is_some());
        let first = after.next()?;
        Some((1 + after.count() as u64, self.col.t(first)))
    }

    pub(crate) fn push(&mut self, t: i64, v: &Value) -> Push {
        if self.col.len() == 0 {
            self.col = Column::for_value(v);
        }
        let kind = std::mem::discriminant(&self.col);
        let n = self.col.len();
        let newest = n.checked_sub(1).map(|last| self.col.t(last));
        let result = match newest {
            Some(nt) if t <= nt => {
                let idx = self.col.first_at_or_after(t);
                let dup = (idx..n)
                    .take_while(|&i| self.col.t(i) == t)
                    .any(|i| self.col.holds(i, v));
                if dup {
                    return Push::Duplicate;
                }
                if t == nt {
                    self.col.insert(n, t, v, self.max_len + 1);
                    Push::Appended
                } else {
                    self.col.insert(idx, t, v, self.max_len + 1);
                    Push::Late
                }
            }
            _ => {
                self.col.insert(n, t, v, self.max_len + 1);
                Push::Appended
            }
        };
        if result == Push::Late || std::mem::discriminant(&self.col) != kind {
            self.running = None;
        }
        if let Some(set) = self.running.as_deref_mut()
            && non_finite(v)
        {
            set.non_finite += 1;
        }
        let newest = newest.map_or(t, |n| n.max(t));
        let cutoff = newest.saturating_sub(self.retention_ms);
        let floor = newest.saturating_sub(self.floor_ms);
        while self.col.len() > 0
            && (self.col.t(0) < floor
                || self.col.len() > self.max_len
                || (self.col.t(0) < cutoff
                    && self.col.len() > self.keep
                    && self.col.t(0) < self.pin))
        {
            self.evicted_to = self.evicted_to.max(self.col.t(0));
            if let Some(set) = self.running.as_deref_mut() {
                if self.col.number(0).is_some_and(|x| !x.is_finite()) {
                    set.non_finite -= 1;
                }
                set.base += 1;
            }
            self.col.pop_front();
        }
        result
    }

    /// Tests: whether the flat run up to `to` is answered by the running judgements.
    #[cfg(test)]
    pub(crate) fn answers_running(&mut self, to: i64) -> bool {
        running_set_of(&mut self.running, &self.col, 0, to).is_some()
    }

    /// `supported_extreme` of [`Window::range_with_previous`]`(from, to, before)`'s numbers
    /// (the confirmed peak, or with `sign` -1 the confirmed low negated), kept up reading by
    /// reading when `to` is the newest reading's time. `scratch` holds the numbers when they
    /// are rescanned.
    pub(crate) fn confirmed_extreme(
        &mut self,
        (from, to, before): (i64, i64, usize),
        band: f64,
        sign: f64,
        scratch: &mut Vec<(i64, f64)>,
    ) -> Option<(i64, f64)> {
        let s = self.col.first_at_or_after(from).saturating_sub(before);
        // `running_set` borrows the window; the column is read beside it.
        let col = &self.col;
        if let Some(set) = running_set_of(&mut self.running, col, s, to) {
            let k = set.find_or(
                |r| matches!(r, Running::Extreme(e) if e.is_for(band, sign)),
                || Running::Extreme(Extreme::new(band, sign)),
            );
            if let Running::Extreme(e) = &mut set.list[k] {
                /// `of_suffix` over the column seen as one kind (see `WithPoints`).
                struct Q<'a>(&'a mut Extreme, u64, usize);
                impl WithPoints for Q<'_> {
                    type Out = Option<(i64, f64)>;
                    fn run(self, p: &impl Points) -> Self::Out {
                        self.0.of_suffix(p, self.1, self.2)
                    }
                }
                return match col.with_points(Q(&mut *e, set.base, s)) {
                    Some(answer) => answer,
                    // Not asked: running judgements are only made for numbers.
                    None => e.of_suffix(col, set.base, s),
                };
            }
        }
        /// The rescan over the column seen as one kind, in place.
        struct Rescan(usize, usize, f64, f64);
        impl WithPoints for Rescan {
            type Out = Option<(i64, f64)>;
            fn run(self, p: &impl Points) -> Self::Out {
                supported_extreme_in(p, self.0, self.1, self.2, self.3)
            }
        }
        let end = self.col.first_after(to);
        if let Some(answer) = self.col.with_points(Rescan(s, end, band, sign)) {
            return answer;
        }
        scratch.clear();
        self.numbers_into(s, end, scratch);
        supported_extreme(scratch, band, sign)
    }

    /// How many numbers [`Window::range`]`(from, to)` holds, and the one before its newest.
    pub(crate) fn count_and_second_newest(&self, from: i64, to: i64) -> (usize, Option<f64>) {
        let (a, b) = (self.col.first_at_or_after(from), self.col.first_after(to));
        if self.col.is_numbers() {
            let n = b.saturating_sub(a);
            return (n, (n >= 2).then(|| self.col.x(b - 2)));
        }
        let (mut n, mut newest, mut second) = (0, None, None);
        for (_, x) in self.range(from, to).numbers() {
            n += 1;
            second = newest;
            newest = Some(x);
        }
        (n, second)
    }

    /// The flat run ending at the newest reading up to `to` (numbers only): how many readings
    /// stay within `tolerance` of each other from it back, and the time of the oldest of them
    /// (`to` when there are none). Kept up reading by reading when `to` is the newest time.
    pub(crate) fn flat_run(&mut self, to: i64, tolerance: f64) -> (usize, i64) {
        let col = &self.col;
        if let Some(set) = running_set_of(&mut self.running, col, 0, to) {
            let k = set.find_or(
                |r| matches!(r, Running::Flat(f) if f.is_for(tolerance)),
                || Running::Flat(FlatRun::new(tolerance)),
            );
            if let Running::Flat(f) = &mut set.list[k] {
                /// `newest` over the column seen as one kind (see `WithPoints`).
                struct Q<'a>(&'a mut FlatRun, u64, i64);
                impl WithPoints for Q<'_> {
                    type Out = (usize, i64);
                    fn run(self, p: &impl Points) -> Self::Out {
                        self.0.newest(p, self.1, self.2)
                    }
                }
                return match col.with_points(Q(&mut *f, set.base, to)) {
                    Some(answer) => answer,
                    // Not asked: running judgements are only made for numbers.
                    None => f.newest(col, set.base, to),
                };
            }
        }
        /// The rescan over the column seen as one kind (see `WithPoints`).
        struct Scan(usize, f64, i64);
        impl WithPoints for Scan {
            type Out = (usize, i64);
            fn run(self, p: &impl Points) -> Self::Out {
                let newest_first = (0..self.0).rev().map(|i| (p.t(i), p.x(i)));
                flat_run_by_scan(newest_first, self.1, self.2)
            }
        }
        let end = self.col.first_after(to);
        self.col
            .with_points(Scan(end, tolerance, to))
            .unwrap_or_else(|| flat_run_by_scan(self.numbers_newest_first(to), tolerance, to))
    }

    /// Appends the numbers of the readings from index `a` to `b` (not including it) to `out`,
    /// as [`Readings::numbers`] gives them: over the column seen as one kind when it holds
    /// numbers only (see `WithPoints`), the short windows' rescans being most of the rules'
    /// work with many devices of few readings.
    fn numbers_into(&self, a: usize, b: usize, out: &mut Vec<(i64, f64)>) {
        struct Fill<'a>(&'a mut Vec<(i64, f64)>, usize, usize);
        impl WithPoints for Fill<'_> {
            type Out = ();
            fn run(self, p: &impl Points) {
                self.0.extend((self.1..self.2).map(|i| (p.t(i), p.x(i))));
            }
        }
        if self.col.with_points(Fill(&mut *out, a, b)).is_none() {
            out.extend(self.between(a, b).numbers());
        }
    }

    fn between(&self, front: usize, back: usize) -> Readings<'_> {
        Readings {
            col: &self.col,
            front,
            back: back.max(front),
        }
    }

    /// Readings with `from <= t <= to`, oldest first.
    pub(crate) fn range(&self, from: i64, to: i64) -> Readings<'_> {
        self.between(self.col.first_at_or_after(from), self.col.first_after(to))
    }

    /// Readings with `from <= t <= to` plus up to `before` readings just older than `from`
    /// (when the window still holds them), oldest first. A series whose device went quiet
    /// (a link outage, a lost report) still shows what it read last before `from`: a change
    /// across such a gap is a change between consecutive readings, however long the gap.
    pub(crate) fn range_with_previous(&self, from: i64, to: i64, before: usize) -> Readings<'_> {
        let start = self.col.first_at_or_after(from);
        self.between(start.saturating_sub(before), self.col.first_after(to))
    }

    /// Readings with `t <= to` as numbers, newest first (text readings skipped).
    fn numbers_newest_first(&self, to: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.between(0, self.col.first_after(to)).numbers().rev()
    }

    pub(crate) fn newest_t(&self) -> Option<i64> {
        self.col.len().checked_sub(1).map(|i| self.col.t(i))
    }

    pub(crate) fn oldest_t(&self) -> Option<i64> {
        (self.col.len() > 0).then(|| self.col.t(0))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.col.len()
    }

    /// Heap bytes of the readings and of the running judgements (what a device's windows cost
    /// beyond the fixed size of the struct): what the memory tests bound (issue 24).
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> (usize, usize) {
        let running = self.running.as_deref().map_or(0, |set| {
            std::mem::size_of::<RunningSet>()
                + set.list.capacity() * std::mem::size_of::<Running>()
                + set.list.iter().map(Running::bytes_held).sum::<usize>()
        });
        (self.col.bytes_held(), running)
    }
}

/// The stored form of a window (rules snapshot), unchanged by the columns: the readings as
/// `[time, value]` pairs, so snapshots written before still load.
#[derive(Serialize)]
struct WindowRef<'a> {
    entries: Entries<'a>,
    retention_ms: i64,
    max_len: usize,
    keep: usize,
    floor_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    evicted_to: Option<i64>,
}

struct Entries<'a>(&'a Window);

impl Serialize for Entries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.between(0, self.0.col.len()))
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WindowRef {
            entries: Entries(self),
            retention_ms: self.retention_ms,
            max_len: self.max_len,
            keep: self.keep,
            floor_ms: self.floor_ms,
            evicted_to: self.evicted_to(),
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
struct StoredWindow {
    entries: VecDeque<(i64, Value)>,
    retention_ms: i64,
    max_len: usize,
    /// Absent from snapshots written before the level window stopped keeping the flat-line
    /// rule's days (then `old_form`).
    #[serde(default)]
    keep: Option<usize>,
    #[serde(default)]
    floor_ms: Option<i64>,
    #[serde(default)]
    evicted_to: Option<i64>,
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredWindow::deserialize(d)?;
        let mut w = Window::new(stored.retention_ms, stored.max_len);
        if let (Some(keep), Some(floor_ms)) = (stored.keep, stored.floor_ms) {
            w = w.with_floor(keep, floor_ms);
        } else {
            w.old_form = true;
        }
        for (t, v) in &stored.entries {
            w.push(*t, v);
        }
        // What was let go before the snapshot: when not stored, anything up to the oldest
        // reading held may have been (a late reading there is not placed in a flat run).
        w.evicted_to = match (stored.evicted_to, w.oldest_t()) {
            (Some(e), _) => w.evicted_to.max(e),
            (None, Some(oldest)) if w.old_form => w.evicted_to.max(oldest),
            _ => w.evicted_to,
        };
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_window_orders_late_readings_and_drops_duplicates() {
        let mut w = Window::new(1_000, 10);
        assert_eq!(w.push(100, &Value::Int(1)), Push::Appended);
        assert_eq!(w.push(300, &Value::Int(3)), Push::Appended);
        assert_eq!(w.push(200, &Value::Int(2)), Push::Late);
        assert_eq!(w.push(300, &Value::Int(3)), Push::Duplicate);
        let ts: Vec<i64> = w.range(0, 1_000).map(|(t, _)| t).collect();
        assert_eq!(ts, vec![100, 200, 300]);
        w.push(1_250, &Value::Int(4));
        assert_eq!(w.oldest_t(), Some(300));
    }

    #[test]
    fn range_with_previous_reaches_back_over_a_gap() {
        let mut w = Window::new(i64::MAX, 10);
        for t in [0, 100, 200, 5_000, 5_100] {
            w.push(t, &Value::Int(t));
        }
        let ts = |n| {
            w.range_with_previous(4_000, 6_000, n)
                .map(|(t, _)| t)
                .collect::<Vec<_>>()
        };
        assert_eq!(ts(0), vec![5_000, 5_100]);
        assert_eq!(ts(2), vec![100, 200, 5_000, 5_100]);
        assert_eq!(ts(9), vec![0, 100, 200, 5_000, 5_100]);
    }

    #[test]
    fn rules_window_is_bounded_by_count() {
        let mut w = Window::new(i64::MAX, 3);
        for t in 0..10 {
            w.push(t, &Value::Int(t));
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.oldest_t(), Some(7));
    }

    #[test]
    fn a_window_keeps_each_value_as_it_came_while_kinds_agree_and_widens_when_they_do_not() {
        let mut w = Window::new(i64::MAX, 10);
        w.push(1, &Value::Int(7));
        w.push(2, &Value::Int(8));
        assert!(matches!(w.col, Column::Ints(_)));
        assert_eq!(w.push(2, &Value::Int(8)), Push::Duplicate);
        w.push(3, &Value::Float(8.5));
        // One decimal: held in tenths.
        assert!(matches!(w.col, Column::Tenths(_)));
        let all: Vec<(i64, Value)> = w.range(0, 10).collect();
        assert_eq!(
            all,
            vec![
                (1, Value::Float(7.0)),
                (2, Value::Float(8.0)),
                (3, Value::Float(8.5))
            ]
        );
        // An integer joins a number column as its number and is still a duplicate of itself.
        w.push(4, &Value::Int(9));
        assert_eq!(w.push(4, &Value::Int(9)), Push::Duplicate);
        assert!(matches!(w.col, Column::Tenths(_)));
        // A number with more decimals widens tenths to numbers; an integer is still a
        // duplicate of itself there.
        w.push(5, &Value::Float(9.25));
        assert!(matches!(w.col, Column::Floats(_)));
        assert_eq!(w.push(4, &Value::Int(9)), Push::Duplicate);
        assert_eq!(w.push(3, &Value::Float(8.5)), Push::Duplicate);
        // Text (or a boolean) turns the column into one of values: nothing is lost.
        assert_eq!(w.push(2, &Value::Text("reset".into())), Push::Late);
        assert!(matches!(w.col, Column::Values(_)));
        let all: Vec<(i64, Value)> = w.range(0, 10).collect();
        // A late reading goes before the readings of its own time, as before.
        assert_eq!(all[1], (2, Value::Text("reset".into())));
        assert_eq!(all.len(), 6);
        let numbers: Vec<(i64, f64)> = w.range(0, 10).numbers().collect();
        assert_eq!(
            numbers,
            vec![(1, 7.0), (2, 8.0), (3, 8.5), (4, 9.0), (5, 9.25)]
        );
        let newest: Vec<i64> = w.numbers_newest_first(3).map(|(t, _)| t).collect();
        assert_eq!(newest, vec![3, 2, 1]);
    }

    #[test]
    fn a_huge_integer_is_not_rounded_into_a_number_column() {
        let mut w = Window::new(i64::MAX, 10);
        w.push(1, &Value::Float(1.5));
        let big = (1i64 << 60) + 1;
        w.push(2, &Value::Int(big));
        assert!(matches!(w.col, Column::Values(_)));
        assert_eq!(w.range(2, 2).next(), Some((2, Value::Int(big))));
    }

    #[test]
    fn the_stored_form_is_the_one_snapshots_had_before_the_columns() {
        let old = r#"{"entries":[[1,7],[2,7.5],[3,"x"]],"retention_ms":60000,"max_len":5}"#;
        let w: Window = serde_json::from_str(old).expect("old snapshot form");
        assert_eq!(w.len(), 3);
        // The integer that shared a column with a float comes back in float form.
        assert_eq!(
            serde_json::to_string(&w).expect("json"),
            r#"{"entries":[[1,7.0],[2,7.5],[3,"x"]],"retention_ms":60000,"max_len":5,"keep":0,"floor_ms":60000,"evicted_to":1}"#
        );
        let mut n = Window::new(60_000, 5);
        n.push(1, &Value::Int(7));
        n.push(2, &Value::Int(9));
        assert_eq!(
            serde_json::to_string(&n).expect("json"),
            r#"{"entries":[[1,7],[2,9]],"retention_ms":60000,"max_len":5,"keep":0,"floor_ms":60000}"#
        );
    }
}
