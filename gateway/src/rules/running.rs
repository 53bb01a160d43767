//! Judgements over a series' window kept up reading by reading instead of rescanning the
//! window for every reading (issue 24: with 1,000 readings per device in a backlog, rescanning
//! was two thirds of the gateway's CPU).
//!
//! Each judgement here answers exactly what its rescanning definition answers (the functions
//! [`supported_extreme`] and [`flat_run_by_scan`], kept as the fallback and as the tests'
//! oracle) for the readings from some index to the newest one. They work on absolute positions
//! (the window's count of readings evicted from its front plus the index), so evicting old
//! readings costs nothing; a reading inserted before the newest one (a late reading) shifts
//! positions, and the window then drops these states and they are rebuilt from its readings on
//! the next question.

use crate::growth::grow_within;
use std::collections::VecDeque;

/// The highest reading that a neighbour confirms (within `band` of the one before or after
/// it): one echo off foam or a ripple is no peak, so its fall back is no discharge.
pub(crate) fn supported_peak(points: &[(i64, f64)], band: f64) -> Option<(i64, f64)> {
    supported_extreme(points, band, 1.0)
}

/// [`supported_peak`] of the readings negated (`sign` -1: the lowest confirmed reading,
/// answered negated), without copying them. Negation is exact, so this is the peak of a
/// negated copy to the bit.
pub(crate) fn supported_extreme(points: &[(i64, f64)], band: f64, sign: f64) -> Option<(i64, f64)> {
    let x = |i: usize| sign * points[i].1;
    let confirmed = |i: usize| {
        points.len() == 1
            || (i > 0 && (x(i) - x(i - 1)).abs() <= band)
            || (i + 1 < points.len() && (x(i) - x(i + 1)).abs() <= band)
    };
    (0..points.len())
        .filter(|&i| confirmed(i))
        .map(|i| (points[i].0, x(i)))
        .fold(None, |best: Option<(i64, f64)>, p| match best {
            Some(b) if b.1 >= p.1 => Some(b),
            _ => Some(p),
        })
}

/// [`supported_extreme`] of the readings `a..b` of `p`, read where they are: a short
/// window's rescan (see `Window::confirmed_extreme`) copied them into a buffer first, which
/// cost as much as judging them (issue 24). The same comparisons in the same order as the
/// slice version, so the same answer to the bit (its tests use that one as the oracle).
pub(crate) fn supported_extreme_in(
    p: &impl Points,
    a: usize,
    b: usize,
    band: f64,
    sign: f64,
) -> Option<(i64, f64)> {
    let mut it = p.range(a, b).map(|(t, x)| (t, sign * x));
    let (mut t, mut cur) = it.next()?;
    let mut prev: Option<f64> = None;
    let mut best: Option<(i64, f64)> = None;
    // Each reading read once: the one before, this one and the one after slide along.
    loop {
        let next = it.next();
        if prev.is_none() && next.is_none() {
            // A lone reading is its own confirmation.
            return Some((t, cur));
        }
        let confirmed = prev.is_some_and(|x| (cur - x).abs() <= band)
            || next.is_some_and(|(_, x)| (cur - x).abs() <= band);
        if confirmed {
            match best {
                Some(bb) if bb.1 >= cur => {}
                _ => best = Some((t, cur)),
            }
        }
        let Some(n) = next else { return best };
        prev = Some(cur);
        (t, cur) = n;
    }
}

/// The flat run ending at the newest of `newest_first` (readings newest first): how many
/// readings, from the newest back, stay within `tolerance` of each other, and the time of the
/// oldest of them (`to` when there are none).
pub(crate) fn flat_run_by_scan(
    newest_first: impl Iterator<Item = (i64, f64)>,
    tolerance: f64,
    to: i64,
) -> (usize, i64) {
    let (mut n, mut lo, mut hi, mut start) = (0usize, f64::INFINITY, f64::NEG_INFINITY, to);
    for (pt, x) in newest_first {
        if hi.max(x) - lo.min(x) > tolerance {
            break;
        }
        n += 1;
        lo = lo.min(x);
        hi = hi.max(x);
        start = pt;
    }
    (n, start)
}

/// Reads a window's readings by index: times, and numbers (all finite, see `Running`).
pub(crate) trait Points {
    fn len(&self) -> usize;
    fn t(&self, i: usize) -> i64;
    fn x(&self, i: usize) -> f64;

    /// The readings `a..b` in order (a deque walks its two halves instead of locating
    /// every index).
    fn range(&self, a: usize, b: usize) -> impl Iterator<Item = (i64, f64)> + '_ {
        (a..b.max(a)).map(|i| (self.t(i), self.x(i)))
    }
}

/// One running judgement of a window.
#[derive(Debug, Clone)]
pub(crate) enum Running {
    Extreme(Extreme),
    Flat(FlatRun),
}

impl Running {
    /// Heap bytes of the judgement's queues (their capacity).
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        fn of<T>(d: &VecDeque<T>) -> usize {
            d.capacity() * std::mem::size_of::<T>()
        }
        match self {
            Running::Extreme(e) => of(&e.best),
            Running::Flat(f) => of(&f.hi) + of(&f.lo),
        }
    }
}

/// [`supported_extreme`] over the readings from any index to the newest, for one `band` and
/// `sign`. A reading's confirmation depends on both its neighbours, so a reading is settled
/// (judged for good) once the reading after it has come; the newest reading and the first
/// one asked about (whose older neighbour is outside the readings judged) are judged at the
/// question.
#[derive(Debug, Clone)]
pub(crate) struct Extreme {
    band: f64,
    sign: f64,
    /// The next position to settle.
    next: u64,
    /// Positions of settled, confirmed readings each at least as high (signed) as every
    /// settled confirmed reading after it: the highest reading from any position on (the
    /// oldest of equals) is the first of these at or after that position. Positions only,
    /// the values read from the window: a monotone series keeps every reading here, and a
    /// copy of each value doubled its bytes (issue 24).
    best: VecDeque<u64>,
}

impl Extreme {
    pub(crate) fn new(band: f64, sign: f64) -> Self {
        Extreme {
            band,
            sign,
            next: 0,
            best: VecDeque::new(),
        }
    }

    /// Whether this answers for `band` and `sign` (compared by bits: a band is a rule's figure).
    pub(crate) fn is_for(&self, band: f64, sign: f64) -> bool {
        self.band.to_bits() == band.to_bits() && self.sign.to_bits() == sign.to_bits()
    }

    fn settle(&mut self, p: &impl Points, base: u64) {
        let n = p.len();
        while self.best.front().is_some_and(|&q| q < base) {
            self.best.pop_front();
        }
        self.next = self.next.max(base);
        let sign = self.sign;
        let x = |i: usize| sign * p.x(i);
        // Every reading but the newest has both of its neighbours (or is the oldest held).
        while n >= 2 && self.next < base + (n as u64 - 1) {
            let i = (self.next - base) as usize;
            let xi = x(i);
            let confirmed =
                (i > 0 && (xi - x(i - 1)).abs() <= self.band) || (xi - x(i + 1)).abs() <= self.band;
            if confirmed {
                // Every position held is at or after `base` (older ones left above).
                while self
                    .best
                    .back()
                    .is_some_and(|&q| x((q - base) as usize) < xi)
                {
                    self.best.pop_back();
                }
                // Capacity only: a monotone series keeps every reading here (issue 24).
                grow_within(&mut self.best, usize::MAX);
                self.best.push_back(self.next);
            }
            self.next += 1;
        }
    }

    /// `supported_extreme` of the readings from index `s` to the newest.
    pub(crate) fn of_suffix(&mut self, p: &impl Points, base: u64, s: usize) -> Option<(i64, f64)> {
        let n = p.len();
        if s >= n {
            return None;
        }
        let sign = self.sign;
        let x = |i: usize| sign * p.x(i);
        if n - s == 1 {
            return Some((p.t(s), x(s)));
        }
        self.settle(p, base);
        let mut best: Option<(i64, f64)> = None;
        let mut offer = |c: (i64, f64)| match best {
            Some(b) if b.1 >= c.1 => {}
            _ => best = Some(c),
        };
        // The first reading judged has no older neighbour among the readings judged.
        if (x(s) - x(s + 1)).abs() <= self.band {
            offer((p.t(s), x(s)));
        }
        // Readings between the first and the newest are settled.
        let from = base + s as u64 + 1;
        let k = first_from(&self.best, from);
        if let Some(&pos) = self.best.get(k) {
            let i = (pos - base) as usize;
            offer((p.t(i), x(i)));
        }
        // The newest has no newer neighbour.
        if (x(n - 1) - x(n - 2)).abs() <= self.band {
            offer((p.t(n - 1), x(n - 1)));
        }
        best
    }
}

/// The first index of `q` (ascending positions) holding a position at or after `from`:
/// `q.partition_point(|&p| p < from)`, searched from the front, where rules' questions about
/// the readings since some time start in a window of around a hundred readings (the
/// queue's first few), then by halving.
fn first_from(q: &VecDeque<u64>, from: u64) -> usize {
    let n = q.len();
    let mut k = 0;
    while k < n.min(4) {
        if q[k] >= from {
            return k;
        }
        k += 1;
    }
    q.partition_point(|&p| p < from)
}

/// [`flat_run_by_scan`] of every reading, newest first: the longest run of readings up to the
/// newest whose highest and lowest are within `tolerance`. A longer run that holds stays
/// within it without its oldest readings, and a run that broke stays broken by newer readings
/// (the difference of the highest and lowest only grows with more readings, rounding
/// included), so the run's start only moves forward: two pointers, with the highest and lowest
/// of the run in monotonic queues.
#[derive(Debug, Clone)]
pub(crate) struct FlatRun {
    tolerance: f64,
    /// The next position to take in.
    next: u64,
    /// Where the run ending at the newest reading taken in starts.
    start: u64,
    /// Positions of the run's readings that are above every later one: the run's highest is
    /// the first (positions only, the values read from the window, as in [`Extreme`]).
    hi: VecDeque<u64>,
    /// The same for the lowest.
    lo: VecDeque<u64>,
}

impl FlatRun {
    pub(crate) fn new(tolerance: f64) -> Self {
        FlatRun {
            tolerance,
            next: 0,
            start: 0,
            hi: VecDeque::new(),
            lo: VecDeque::new(),
        }
    }

    pub(crate) fn is_for(&self, tolerance: f64) -> bool {
        self.tolerance.to_bits() == tolerance.to_bits()
    }

    fn drop_before(&mut self, pos: u64) {
        self.start = self.start.max(pos);
        while self.hi.front().is_some_and(|&q| q < self.start) {
            self.hi.pop_front();
        }
        while self.lo.front().is_some_and(|&q| q < self.start) {
            self.lo.pop_front();
        }
    }

    /// The run ending at the newest reading: its length and the time of its oldest reading
    /// (`to` when it is empty).
    pub(crate) fn newest(&mut self, p: &impl Points, base: u64, to: i64) -> (usize, i64) {
        let n = p.len() as u64;
        self.drop_before(base);
        self.next = self.next.max(base);
        while self.next < base + n {
            let pos = self.next;
            // Every position held is at or after `start`, so at or after `base`.
            let at = |q: u64| p.x((q - base) as usize);
            let x = at(pos);
            while self.hi.back().is_some_and(|&q| at(q) <= x) {
                self.hi.pop_back();
            }
            grow_within(&mut self.hi, usize::MAX);
            self.hi.push_back(pos);
            while self.lo.back().is_some_and(|&q| at(q) >= x) {
                self.lo.pop_back();
            }
            grow_within(&mut self.lo, usize::MAX);
            self.lo.push_back(pos);
            while self.start <= pos {
                match (self.hi.front(), self.lo.front()) {
                    (Some(&h), Some(&l)) if at(h) - at(l) > self.tolerance => {
                        let next_start = self.start + 1;
                        self.drop_before(next_start);
                    }
                    _ => break,
                }
            }
            self.next += 1;
        }
        let len = (base + n).saturating_sub(self.start) as usize;
        if len == 0 {
            (0, to)
        } else {
            (len, p.t((self.start - base) as usize))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Value;
    use crate::rules::window::{Push, RUNNING_FROM_TEST, Window};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A reading's value: mostly small numbers (so ties and confirmations are common), some
    /// with two decimals, some integers, rarely text, a boolean or a number that is not finite.
    fn value(rng: &mut Rng, kinds: u64) -> Value {
        let x = rng.below(12) as f64 * 0.5 - 2.0;
        match rng.below(kinds) {
            0..=84 => Value::Float(x),
            // Not in tenths: the window's column widens to `f64`s.
            85..=89 => Value::Float(x + 0.25),
            90..=97 => Value::Int(x as i64),
            98 => Value::Float(
                [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][rng.below(4) as usize],
            ),
            99 => Value::Bool(rng.below(2) == 1),
            _ => Value::Text("x".into()),
        }
    }

    fn bits(r: Option<(i64, f64)>) -> Option<(i64, u64)> {
        r.map(|(t, x)| (t, x.to_bits()))
    }

    /// Every running judgement answers what rescanning the window answers, to the bit, on
    /// random sequences: late and out-of-order readings, redeliveries, gaps, eviction by age
    /// and by count, widening columns, numbers that are not finite, text.
    #[test]
    fn running_judgements_agree_with_rescanning_the_window() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let bands = [0.0, 0.5, 1.0, 2.5];
        let mut asked = 0usize;
        let mut running = 0usize;
        for case in 0..600 {
            let retention = [50, 200, 1_000, i64::MAX][rng.below(4) as usize];
            let max_len = [3, 8, 40, 2048][rng.below(4) as usize];
            // Most cases hold only finite numbers (the running path); some mix everything.
            let kinds = if case % 3 == 0 { 101 } else { 98 };
            // From how many readings judgements run: from the first, a few, or the default.
            let from_n = [Some(0), Some(2), Some(5), None][case % 4];
            RUNNING_FROM_TEST.with(|r| r.set(from_n));
            let mut w = Window::new(retention, max_len);
            let mut t = 0i64;
            for step in 0..(20 + rng.below(200)) {
                let at = match rng.below(20) {
                    0 => t - rng.below(60) as i64, // late (or a redelivery's time)
                    // A gap; rarely one of months, past what the column's time offsets
                    // hold (its rows then keep full times).
                    1 if rng.below(40) == 0 => t + (1 << 33),
                    1 => t + 300 + rng.below(2_000) as i64, // a gap
                    2 => t,                                 // the same time again
                    _ => t + 1 + rng.below(20) as i64,
                };
                let v = value(&mut rng, kinds);
                if w.push(at, &v) != Push::Late {
                    t = t.max(at);
                }
                let newest = w.newest_t().unwrap_or(0);
                for _ in 0..3 {
                    // Mostly up to the newest reading (what rules ask); sometimes not.
                    let to = if rng.below(8) == 0 {
                        newest - rng.below(100) as i64
                    } else {
                        newest
                    };
                    let from = to - rng.below(400) as i64;
                    let before = rng.below(4) as usize;
                    let band = bands[rng.below(4) as usize];
                    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                    let points: Vec<(i64, f64)> =
                        w.range_with_previous(from, to, before).numbers().collect();
                    let want = supported_extreme(&points, band, sign);
                    let mut scratch = Vec::new();
                    let got = w.confirmed_extreme((from, to, before), band, sign, &mut scratch);
                    assert_eq!(
                        bits(got),
                        bits(want),
                        "case {case} step {step}: extreme of {points:?} band {band} sign {sign}"
                    );
                    let tolerance = bands[rng.below(4) as usize] - 0.25 * rng.below(2) as f64;
                    let want =
                        flat_run_by_scan(points_newest_first(&w, to).into_iter(), tolerance, to);
                    assert_eq!(
                        w.flat_run(to, tolerance),
                        want,
                        "case {case} step {step}: flat run up to {to} tolerance {tolerance}"
                    );
                    let range: Vec<f64> = w.range(from, to).numbers().map(|p| p.1).collect();
                    let second = (range.len() >= 2).then(|| range[range.len() - 2]);
                    let (n, got) = w.count_and_second_newest(from, to);
                    assert_eq!(
                        (n, got.map(f64::to_bits)),
                        (range.len(), second.map(f64::to_bits))
                    );
                    asked += 1;
                    running += usize::from(w.answers_running(to));
                }
            }
        }
        RUNNING_FROM_TEST.with(|r| r.set(None));
        // Both paths were taken (the running one for 44% of the questions with this seed).
        assert!(
            running > asked / 3 && running < asked,
            "{running} of {asked}"
        );
    }

    /// The in-place rescan answers what the slice version answers for any sub-range, to the
    /// bit: ties (the oldest wins), -0.0, numbers that are not finite, one or no reading.
    #[test]
    fn the_in_place_rescan_agrees_with_the_slice_one() {
        struct Slice<'a>(&'a [(i64, f64)]);
        impl Points for Slice<'_> {
            fn len(&self) -> usize {
                self.0.len()
            }
            fn t(&self, i: usize) -> i64 {
                self.0[i].0
            }
            fn x(&self, i: usize) -> f64 {
                self.0[i].1
            }
        }
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
        let mut found = 0;
        for _ in 0..20_000 {
            let n = rng.below(12) as usize;
            let points: Vec<(i64, f64)> = (0..n)
                .map(|i| {
                    let x = match rng.below(20) {
                        0 => specials[rng.below(5) as usize],
                        _ => rng.below(8) as f64 * 0.5,
                    };
                    (i as i64 * 10, x)
                })
                .collect();
            let a = rng.below(n as u64 + 1) as usize;
            let b = a + rng.below((n - a) as u64 + 1) as usize;
            let band = [0.0, 0.5, 1.0][rng.below(3) as usize];
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            let want = supported_extreme(&points[a..b], band, sign);
            let got = supported_extreme_in(&Slice(&points), a, b, band, sign);
            assert_eq!(
                bits(got),
                bits(want),
                "{points:?} {a}..{b} band {band} sign {sign}"
            );
            found += usize::from(want.is_some());
        }
        assert!(found > 5_000, "{found}");
    }

    fn points_newest_first(w: &Window, to: i64) -> Vec<(i64, f64)> {
        let mut p: Vec<(i64, f64)> = w.range(i64::MIN, to).numbers().collect();
        p.reverse();
        p
    }

    /// The switch the engine-level agreement test uses really routes to the rescan.
    #[test]
    fn the_rescan_switch_turns_the_running_judgements_off() {
        let mut w = Window::new(i64::MAX, 100);
        for t in 0..70 {
            w.push(t, &Value::Float(t as f64));
        }
        assert!(w.answers_running(69));
        RUNNING_FROM_TEST.with(|r| r.set(Some(usize::MAX)));
        assert!(!w.answers_running(69));
        RUNNING_FROM_TEST.with(|r| r.set(None));
        // Fewer readings than the default rescan.
        let mut w = Window::new(i64::MAX, 100);
        for t in 0..10 {
            w.push(t, &Value::Float(t as f64));
        }
        assert!(!w.answers_running(9));
    }
}
