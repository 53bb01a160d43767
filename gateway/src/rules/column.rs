//! A rule window's readings in as few bytes as give them back exactly (issue 24: with 10,000
//! devices the windows were most of the rules' memory, and a level sensor reporting once a
//! minute fills its window to 2,048 readings: 32 KB a device at 16 bytes a reading).
//!
//! Two savings, each exact (a reading reads back as the same time and the same value, to the
//! bit), each given up for the general form when a reading does not fit it:
//!
//! - Times as `u32` millisecond offsets from a base time of the column, as the dashboard
//!   history does (`history::ring`): exact while the readings held lie within 49.7 days of
//!   each other; a column whose readings do not holds full `i64` times from then on.
//! - Numbers with one decimal (what the gateway derives for a trap's level, fill and volume:
//!   rounded to a tenth) as `i32` tenths: `x` is held as `k` when `k as f64 / 10.0` is `x`
//!   to the bit, which a division of two exact integers gives for every decimal with one
//!   digit after the point that `x` was parsed or rounded from. Any other number widens the
//!   column to `f64`s.
//!
//! So a level window takes 8 bytes a reading (4 of time, 4 of tenths), a series of other
//! numbers 12, and a series of text or booleans 32 plus the text.

use super::running::Points;
use crate::growth::grow_within;
use crate::reading::Value;
use std::collections::VecDeque;

/// Integers up to this magnitude are exact as `f64`, so a number series may mix them.
const EXACT_INT: i64 = 1 << 53;

/// Integers up to this magnitude fit a column of tenths (`10 * x` fits an `i32`).
const TENTHS_INT: i64 = (i32::MAX / 10) as i64;

/// `x` in tenths, when `tenths_value` gives back `x` to the bit (not for -0.0, NaN, infinities
/// or numbers with more decimals).
fn tenths(x: f64) -> Option<i32> {
    let m = (x * 10.0).round();
    // `as` saturates; the check below rejects a saturated or NaN `m` (its value differs).
    let k = m as i32;
    (tenths_value(k).to_bits() == x.to_bits()).then_some(k)
}

/// Whether `|x| <= most` (`i64::MIN` included, whose `abs` overflows).
fn within(x: i64, most: i64) -> bool {
    x.unsigned_abs() <= most.unsigned_abs()
}

fn tenths_value(k: i32) -> f64 {
    f64::from(k) / 10.0
}

/// A reading whose time is an offset from its column's base: 12 bytes with an 8-byte value,
/// 8 with a 4-byte one (packed: fields are only ever copied out, never borrowed).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub(super) struct Near<T: Copy> {
    offset: u32,
    value: T,
}

/// Readings of one kind in time order, in one deque (a new reading touches one place): times
/// as offsets from `base` while every time held fits, else full times.
#[derive(Debug, Clone)]
pub(super) enum Rows<T: Copy> {
    Near { base: i64, d: VecDeque<Near<T>> },
    Full(VecDeque<(i64, T)>),
}

/// `t` as an offset from `base`, when it is one (at or after it, within `u32`).
fn offset(base: i64, t: i64) -> Option<u32> {
    t.checked_sub(base).and_then(|d| u32::try_from(d).ok())
}

impl<T: Copy> Rows<T> {
    fn prefetch_newest(&self) {
        match self {
            Rows::Near { d, .. } => crate::prefetch::deque_newest(d),
            Rows::Full(d) => crate::prefetch::deque_newest(d),
        }
    }

    fn new() -> Self {
        Rows::Near {
            base: 0,
            d: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Rows::Near { d, .. } => d.len(),
            Rows::Full(d) => d.len(),
        }
    }

    fn t(&self, i: usize) -> i64 {
        match self {
            Rows::Near { base, d } => base + i64::from(d[i].offset),
            Rows::Full(d) => d[i].0,
        }
    }

    fn v(&self, i: usize) -> T {
        match self {
            Rows::Near { d, .. } => d[i].value,
            Rows::Full(d) => d[i].1,
        }
    }

    fn iter(&self) -> impl Iterator<Item = (i64, T)> + '_ {
        (0..self.len()).map(|i| (self.t(i), self.v(i)))
    }

    fn pop_front(&mut self) {
        match self {
            Rows::Near { d, .. } => {
                d.pop_front();
            }
            Rows::Full(d) => {
                d.pop_front();
            }
        }
    }

    #[cfg(test)]
    fn bytes_held(&self) -> usize {
        match self {
            Rows::Near { d, .. } => d.capacity() * std::mem::size_of::<Near<T>>(),
            Rows::Full(d) => d.capacity() * std::mem::size_of::<(i64, T)>(),
        }
    }

    /// Whether the readings hold full times (tests: the fallback is taken).
    #[cfg(test)]
    fn is_full(&self) -> bool {
        matches!(self, Rows::Full(_))
    }

    /// Inserts `(t, v)` at `i`, holding room for at most `most` readings ([`grow_within`]).
    fn insert(&mut self, i: usize, t: i64, v: T, most: usize) {
        self.make_room_for(t);
        match self {
            Rows::Near { base, d } => {
                // `make_room_for` made `t` fit, or the rows hold full times.
                let offset = offset(*base, t).unwrap_or(0);
                grow_within(d, most);
                let p = Near { offset, value: v };
                if i == d.len() {
                    d.push_back(p);
                } else {
                    d.insert(i, p);
                }
            }
            Rows::Full(d) => {
                grow_within(d, most);
                d.insert(i, (t, v));
            }
        }
    }

    /// Makes `t` expressible as an offset: the first reading sets the base; a reading before
    /// the base, or past the offsets' range, moves the base to the oldest time held (or `t`)
    /// when every time then fits, else the rows hold full times from then on.
    fn make_room_for(&mut self, t: i64) {
        let Rows::Near { base, d } = self else {
            return;
        };
        let (Some(first), Some(last)) = (d.front().copied(), d.back().copied()) else {
            *base = t;
            return;
        };
        if offset(*base, t).is_some() {
            return;
        }
        let oldest = *base + i64::from(first.offset);
        let newest = *base + i64::from(last.offset);
        let (lo, hi) = (oldest.min(t), newest.max(t));
        if offset(lo, hi).is_none() {
            let mut full = VecDeque::with_capacity(d.capacity());
            full.extend(d.iter().map(|p| (*base + i64::from(p.offset), p.value)));
            *self = Rows::Full(full);
            return;
        }
        // Every time held lies within `lo ..= hi`, so each new offset fits.
        let shift = *base - lo;
        for p in d.iter_mut() {
            p.offset = u32::try_from(i64::from(p.offset) + shift).unwrap_or(u32::MAX);
        }
        *base = lo;
    }

    /// The same times with each value mapped.
    fn map<U: Copy>(&self, f: impl Fn(T) -> U) -> Rows<U> {
        match self {
            Rows::Near { base, d } => Rows::Near {
                base: *base,
                d: d.iter()
                    .map(|p| Near {
                        offset: p.offset,
                        value: f(p.value),
                    })
                    .collect(),
            },
            Rows::Full(d) => Rows::Full(d.iter().map(|&(t, v)| (t, f(v))).collect()),
        }
    }
}

/// The readings of one series, stored by the kind of their values. A column starts with
/// the narrowest kind that holds its first reading; a reading that does not fit widens it
/// (integers into tenths or numbers, tenths into numbers, anything into a column of
/// `Value`s), never the other way.
#[derive(Debug, Clone)]
pub(super) enum Column {
    /// Integer readings only: read back as `Value::Int`.
    Ints(Rows<i64>),
    /// Numbers with at most one decimal, in tenths: read back as `Value::Float` (an integer
    /// that joined them reads back as the same number in float form, as in `Floats`).
    Tenths(Rows<i32>),
    /// Numbers: read back as `Value::Float` (an integer that joined a series of floats reads
    /// back as the same number in float form).
    Floats(Rows<f64>),
    /// Anything else: booleans, text, or integers too large for an exact `f64`.
    Values(VecDeque<(i64, Value)>),
}

/// `d.partition_point(|i| before(i))` over indices `0..n` (`before` holds for a prefix), found
/// from the ends: rules ask about the readings since some time before the newest, which is all
/// of a short window or a few of the newest of a long one. Both ends are tried first, then the
/// search gallops from the newest reading back, so the cost grows with the log of the readings
/// after the boundary, not of the window (a binary search over 1,000 readings was 15% of the
/// gateway's CPU in the backlog run, each probe a cache miss).
pub(super) fn boundary(n: usize, before: impl Fn(usize) -> bool) -> usize {
    if n == 0 || !before(0) {
        return 0;
    }
    if before(n - 1) {
        return n;
    }
    // Now `before` holds at 0 and not at `n - 1`: gallop back from `n - 1` until it holds.
    let (mut hi, mut step) = (n - 1, 1);
    let lo = loop {
        let lo = hi.saturating_sub(step);
        if before(lo) {
            break lo;
        }
        hi = lo;
        step *= 2;
    };
    // The boundary is in `lo + 1 ..= hi`: `before` holds at `lo`, not at `hi`.
    let (mut a, mut b) = (lo + 1, hi);
    while a < b {
        let m = a + (b - a) / 2;
        if before(m) {
            a = m + 1;
        } else {
            b = m;
        }
    }
    a
}

/// Runs `$body` with `$t` bound to a function of the index giving the reading's time, and
/// `$n` to the number of readings, whatever the column's kind.
macro_rules! with_times {
    ($col:expr, |$n:ident, $t:ident| $body:expr) => {
        match $col {
            Column::Ints(d) => {
                let ($n, $t) = (d.len(), |i| d.t(i));
                $body
            }
            Column::Tenths(d) => {
                let ($n, $t) = (d.len(), |i| d.t(i));
                $body
            }
            Column::Floats(d) => {
                let ($n, $t) = (d.len(), |i| d.t(i));
                $body
            }
            Column::Values(d) => {
                let ($n, $t) = (d.len(), |i: usize| d[i].0);
                $body
            }
        }
    };
}

impl Column {
    /// Prefetch hint for the newest readings (see [`crate::prefetch`]).
    pub(super) fn prefetch_newest(&self) {
        match self {
            Column::Ints(d) => d.prefetch_newest(),
            Column::Tenths(d) => d.prefetch_newest(),
            Column::Floats(d) => d.prefetch_newest(),
            Column::Values(d) => crate::prefetch::deque_newest(d),
        }
    }

    /// An empty column of the kind that holds `v`.
    pub(super) fn for_value(v: &Value) -> Column {
        match v {
            Value::Int(_) => Column::Ints(Rows::new()),
            Value::Float(x) if tenths(*x).is_some() => Column::Tenths(Rows::new()),
            Value::Float(_) => Column::Floats(Rows::new()),
            _ => Column::Values(VecDeque::new()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Column::Ints(d) => d.len(),
            Column::Tenths(d) => d.len(),
            Column::Floats(d) => d.len(),
            Column::Values(d) => d.len(),
        }
    }

    pub(super) fn t(&self, i: usize) -> i64 {
        match self {
            Column::Ints(d) => d.t(i),
            Column::Tenths(d) => d.t(i),
            Column::Floats(d) => d.t(i),
            Column::Values(d) => d[i].0,
        }
    }

    pub(super) fn value(&self, i: usize) -> Value {
        match self {
            Column::Ints(d) => Value::Int(d.v(i)),
            Column::Tenths(d) => Value::Float(tenths_value(d.v(i))),
            Column::Floats(d) => Value::Float(d.v(i)),
            Column::Values(d) => d[i].1.clone(),
        }
    }

    pub(super) fn number(&self, i: usize) -> Option<f64> {
        match self {
            Column::Values(d) => d[i].1.as_f64(),
            _ => Some(self.x(i)),
        }
    }

    /// Whether the reading at `i` holds `v` (a redelivery).
    pub(super) fn holds(&self, i: usize, v: &Value) -> bool {
        match (self, v) {
            (Column::Ints(d), Value::Int(x)) => d.v(i) == *x,
            (Column::Tenths(_) | Column::Floats(_), Value::Float(x)) => self.x(i) == *x,
            (Column::Tenths(_) | Column::Floats(_), Value::Int(x)) => self.x(i) == *x as f64,
            (Column::Values(d), v) => d[i].1 == *v,
            _ => false,
        }
    }

    /// The first index whose time is not `< t` (the readings are in time order).
    pub(super) fn first_at_or_after(&self, t: i64) -> usize {
        with_times!(self, |n, time| boundary(n, |i| time(i) < t))
    }

    /// The first index whose time is `> t`.
    pub(super) fn first_after(&self, t: i64) -> usize {
        with_times!(self, |n, time| boundary(n, |i| time(i) <= t))
    }

    pub(super) fn pop_front(&mut self) {
        match self {
            Column::Ints(d) => d.pop_front(),
            Column::Tenths(d) => d.pop_front(),
            Column::Floats(d) => d.pop_front(),
            Column::Values(d) => {
                d.pop_front();
            }
        }
    }

    /// Whether every reading is a number read without a `Value` (what running judgements need).
    pub(super) fn is_numbers(&self) -> bool {
        !matches!(self, Column::Values(_))
    }

    /// Bytes held for readings (the deque's capacity; a text's own bytes not counted).
    #[cfg(test)]
    pub(super) fn bytes_held(&self) -> usize {
        match self {
            Column::Ints(d) => d.bytes_held(),
            Column::Tenths(d) => d.bytes_held(),
            Column::Floats(d) => d.bytes_held(),
            Column::Values(d) => d.capacity() * std::mem::size_of::<(i64, Value)>(),
        }
    }

    /// Tests: whether the readings hold full times (the offsets' fallback).
    #[cfg(test)]
    pub(super) fn full_times(&self) -> bool {
        match self {
            Column::Ints(d) => d.is_full(),
            Column::Tenths(d) => d.is_full(),
            Column::Floats(d) => d.is_full(),
            Column::Values(_) => true,
        }
    }

    /// Whether the column holds `v` as it is.
    fn fits(&self, v: &Value) -> bool {
        match (self, v) {
            (Column::Ints(_), Value::Int(_)) | (Column::Floats(_), Value::Float(_)) => true,
            (Column::Tenths(_), Value::Int(x)) => within(*x, TENTHS_INT),
            (Column::Tenths(_), Value::Float(x)) => tenths(*x).is_some(),
            (Column::Floats(_), Value::Int(x)) => within(*x, EXACT_INT),
            (Column::Values(_), _) => true,
            _ => false,
        }
    }

    /// Every reading as `(time, Value)`.
    fn values(&self) -> VecDeque<(i64, Value)> {
        (0..self.len())
            .map(|i| (self.t(i), self.value(i)))
            .collect()
    }

    /// Widens the column so it can hold `v`, copying what it holds.
    fn widen_for(&mut self, v: &Value) {
        if self.fits(v) {
            return;
        }
        *self = match (&*self, v) {
            (Column::Ints(d), Value::Float(x))
                if tenths(*x).is_some() && d.iter().all(|(_, k)| within(k, TENTHS_INT)) =>
            {
                // Each `k` fits: `10 * k` is within `i32`.
                Column::Tenths(d.map(|k| i32::try_from(k * 10).unwrap_or(i32::MAX)))
            }
            (Column::Ints(d), Value::Float(_)) if d.iter().all(|(_, k)| within(k, EXACT_INT)) => {
                Column::Floats(d.map(|k| k as f64))
            }
            (Column::Tenths(d), Value::Float(_)) => Column::Floats(d.map(tenths_value)),
            (Column::Tenths(d), Value::Int(x)) if within(*x, EXACT_INT) => {
                Column::Floats(d.map(tenths_value))
            }
            _ => Column::Values(self.values()),
        };
    }

    /// Inserts at `i`, holding room for at most `most` readings ([`grow_within`]), widening
    /// the column first when `v` does not fit it.
    pub(super) fn insert(&mut self, i: usize, t: i64, v: &Value, most: usize) {
        if self.insert_as_is(i, t, v, most) {
            return;
        }
        self.widen_for(v);
        if !self.insert_as_is(i, t, v, most) {
            // widen_for makes every value fit; should a kind ever be missed, a column of
            // `Value`s holds anything.
            let mut d = self.values();
            grow_within(&mut d, most);
            d.insert(i, (t, v.clone()));
            *self = Column::Values(d);
        }
    }

    /// Inserts `v` at `i` when the column holds it as it is (the usual case: one check of
    /// the value, not one to widen and another to store it).
    fn insert_as_is(&mut self, i: usize, t: i64, v: &Value, most: usize) -> bool {
        match (self, v) {
            (Column::Ints(d), Value::Int(x)) => d.insert(i, t, *x, most),
            (Column::Tenths(d), Value::Int(x)) if within(*x, TENTHS_INT) => {
                // Fits: `10 * x` is within `i32`.
                d.insert(i, t, i32::try_from(x * 10).unwrap_or(i32::MAX), most)
            }
            (Column::Tenths(d), Value::Float(x)) => match tenths(*x) {
                Some(k) => d.insert(i, t, k, most),
                None => return false,
            },
            (Column::Floats(d), Value::Float(x)) => d.insert(i, t, *x, most),
            (Column::Floats(d), Value::Int(x)) if within(*x, EXACT_INT) => {
                d.insert(i, t, *x as f64, most)
            }
            (Column::Values(d), v) => {
                grow_within(d, most);
                d.insert(i, (t, v.clone()));
            }
            _ => return false,
        }
        true
    }
}

/// A question to a column of numbers put to [`Column::with_points`]: answered with the column
/// seen as one kind and one time layout ([`Points`]), so a running judgement's loop reads its
/// readings without matching on the column twice per reading read.
pub(super) trait WithPoints {
    type Out;
    fn run(self, p: &impl Points) -> Self::Out;
}

/// Readings with times as offsets from `base`, numbers by `f`.
struct NearPoints<'a, T: Copy, F> {
    base: i64,
    d: &'a VecDeque<Near<T>>,
    f: F,
}

impl<T: Copy, F: Fn(T) -> f64> Points for NearPoints<'_, T, F> {
    fn len(&self) -> usize {
        self.d.len()
    }

    fn t(&self, i: usize) -> i64 {
        self.base + i64::from(self.d[i].offset)
    }

    fn x(&self, i: usize) -> f64 {
        (self.f)(self.d[i].value)
    }

    fn range(&self, a: usize, b: usize) -> impl Iterator<Item = (i64, f64)> + '_ {
        let (base, f) = (self.base, &self.f);
        let r = self.d.range(a.min(b)..b);
        // Fields copied out of the packed reading, never borrowed.
        r.map(move |n| {
            let (offset, value) = (n.offset, n.value);
            (base + i64::from(offset), f(value))
        })
    }
}

/// Readings with full times, numbers by `f`.
struct FullPoints<'a, T: Copy, F> {
    d: &'a VecDeque<(i64, T)>,
    f: F,
}

impl<T: Copy, F: Fn(T) -> f64> Points for FullPoints<'_, T, F> {
    fn len(&self) -> usize {
        self.d.len()
    }

    fn t(&self, i: usize) -> i64 {
        self.d[i].0
    }

    fn x(&self, i: usize) -> f64 {
        (self.f)(self.d[i].1)
    }

    fn range(&self, a: usize, b: usize) -> impl Iterator<Item = (i64, f64)> + '_ {
        let f = &self.f;
        self.d.range(a.min(b)..b).map(move |&(t, v)| (t, f(v)))
    }
}

impl<T: Copy> Rows<T> {
    fn with_points<W: WithPoints>(&self, w: W, f: impl Fn(T) -> f64) -> W::Out {
        match self {
            Rows::Near { base, d } => w.run(&NearPoints { base: *base, d, f }),
            Rows::Full(d) => w.run(&FullPoints { d, f }),
        }
    }
}

impl Column {
    /// `w` answered over the readings as numbers (the same numbers as [`Points`] for
    /// `Column` reads); `None` for a column of `Value`s.
    pub(super) fn with_points<W: WithPoints>(&self, w: W) -> Option<W::Out> {
        Some(match self {
            Column::Ints(d) => d.with_points(w, |k| k as f64),
            Column::Tenths(d) => d.with_points(w, tenths_value),
            Column::Floats(d) => d.with_points(w, |x| x),
            Column::Values(_) => return None,
        })
    }
}

/// Only asked of a column of numbers (see `running_set_of` in `window`).
impl Points for Column {
    fn len(&self) -> usize {
        Column::len(self)
    }

    fn t(&self, i: usize) -> i64 {
        Column::t(self, i)
    }

    fn x(&self, i: usize) -> f64 {
        match self {
            Column::Ints(d) => d.v(i) as f64,
            Column::Tenths(d) => tenths_value(d.v(i)),
            Column::Floats(d) => d.v(i),
            Column::Values(d) => d[i].1.as_f64().unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_is_the_partition_point() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..3_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 40) as usize;
            let d: Vec<i64> = (0..n).map(|i| (i as i64) / 3).collect();
            let t = (seed >> 20) as i64 % 16 - 1;
            assert_eq!(boundary(n, |i| d[i] < t), d.partition_point(|&e| e < t));
            assert_eq!(boundary(n, |i| d[i] <= t), d.partition_point(|&e| e <= t));
        }
    }

    /// Tenths give back exactly the number they hold, and refuse what they would not.
    #[test]
    fn tenths_hold_one_decimal_exactly_and_nothing_else() {
        for k in (-100_000..100_000)
            .step_by(7)
            .chain([i32::MAX, i32::MIN + 1, 0, 1, -1])
        {
            let x = tenths_value(k);
            assert_eq!(tenths(x), Some(k), "{x}");
            // What a decoder parses from the decimal text, and what the trap figures round to.
            let text = format!(
                "{}{}.{}",
                if k < 0 { "-" } else { "" },
                k.abs() / 10,
                k.abs() % 10
            );
            let parsed: f64 = text.parse().expect("a number");
            assert_eq!(tenths(parsed), Some(k), "{text}");
            assert_eq!(tenths((parsed * 10.0).round() / 10.0), Some(k), "{text}");
        }
        for x in [
            0.05,
            1.0 / 3.0,
            0.1 + 0.2,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            3e9,
            -3e9,
        ] {
            assert_eq!(tenths(x), None, "{x}");
        }
    }

    /// The column reads back every reading as it came (time and value to the bit, or the
    /// float form of an integer that joined numbers), whatever the times' spread and the
    /// values' kinds, against a plain ordered list.
    #[test]
    fn readings_come_back_exactly_whatever_their_kind_and_spread() {
        const DAY: i64 = 86_400_000;
        let mut next = crate::rules::xorshift(0x0bad_cafe_1234_5678);
        let (mut full_seen, mut kinds_seen) = (false, [false; 4]);
        for case in 0..400 {
            let mut col = Column::Ints(Rows::new());
            let mut want: Vec<(i64, Value)> = Vec::new();
            let mut t = [0, -5 * DAY, i64::MIN / 2, i64::MAX - 400 * DAY][case % 4];
            for _ in 0..(1 + next() % 60) {
                t = match next() % 12 {
                    0 => t.saturating_sub((next() % (3 * DAY as u64)) as i64), // late
                    1 => t.saturating_add(20 * DAY + (next() % (40 * DAY as u64)) as i64),
                    _ => t.saturating_add((next() % 120_000) as i64),
                };
                let v = match next() % 40 {
                    0 => Value::Float(0.05 * (next() % 100) as f64),
                    1 => Value::Float(-0.0),
                    2 => Value::Int((next() % 7) as i64 * 1_000_000_000),
                    3 => Value::Int([(1 << 60) + 1, i64::MIN, i64::MAX][(next() % 3) as usize]),
                    4 => Value::Text("x".into()),
                    5..=12 => Value::Int((next() % 2_000) as i64 - 1_000),
                    _ => Value::Float(((next() % 20_000) as f64 - 10_000.0) / 10.0),
                };
                if col.len() == 0 {
                    col = Column::for_value(&v);
                }
                let i = want.partition_point(|e| e.0 <= t);
                col.insert(i, t, &v, 100);
                want.insert(i, (t, v));
                // Integers that join numbers read back in float form, from then on.
                if matches!(col, Column::Tenths(_) | Column::Floats(_)) {
                    for e in &mut want {
                        if let Value::Int(x) = e.1 {
                            e.1 = Value::Float(x as f64);
                        }
                    }
                }
                for (k, (wt, wv)) in want.iter().enumerate() {
                    assert_eq!(col.t(k), *wt, "case {case}: time {k}");
                    match (col.value(k), wv) {
                        (Value::Float(a), Value::Float(b)) => {
                            assert_eq!(a.to_bits(), b.to_bits(), "case {case}: value {k}")
                        }
                        (got, wv) => assert_eq!(&got, wv, "case {case}: value {k}"),
                    }
                }
                if want.len() > 60 {
                    col.pop_front();
                    want.remove(0);
                }
            }
            full_seen |= col.full_times() && col.is_numbers();
            kinds_seen[match col {
                Column::Ints(_) => 0,
                Column::Tenths(_) => 1,
                Column::Floats(_) => 2,
                Column::Values(_) => 3,
            }] = true;
        }
        assert!(
            full_seen && kinds_seen.iter().all(|&k| k),
            "{full_seen} {kinds_seen:?}"
        );
    }
}
