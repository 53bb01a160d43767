//! One metric's recent points for the dashboard, in 12 bytes a point instead of 16.
//!
//! With 10,000 devices the dashboard history was the largest per-device structure (issue 24,
//! measured with heaptrack: 4.1 KB of 12.4 KB per device at 100 readings per device). The times
//! of one ring lie close together (360 points a minute apart are 6 hours), so they are held as
//! `u32` millisecond offsets from a base time of the ring: exact within 49.7 days of each other.
//! A ring whose points lie further apart holds full `i64` times instead, so nothing is ever
//! rounded or dropped: what the dashboard gets back is the `(time, value)` it was given.
//! Values stay `f64` (the API serves them as they came).
//!
//! Capacity grows by a quarter rather than doubling, up to the most the ring may hold
//! ([`grow_within`]).

use crate::growth::grow_within;
use std::collections::VecDeque;

/// The points' times: offsets from the ring's base while they fit, else full times.
#[derive(Debug)]
enum Times {
    Offsets(VecDeque<u32>),
    Full(VecDeque<i64>),
}

/// Points `(device_time_ms, value)` in time order, oldest first.
#[derive(Debug)]
pub(crate) struct Ring {
    /// What the offsets count from (unused once the times are full).
    base: i64,
    times: Times,
    values: VecDeque<f64>,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            base: 0,
            times: Times::Offsets(VecDeque::new()),
            values: VecDeque::new(),
        }
    }
}

impl Ring {
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The time of the point at `i` (`i < len`).
    fn t(&self, i: usize) -> i64 {
        match &self.times {
            Times::Offsets(d) => self.base + i64::from(d[i]),
            Times::Full(d) => d[i],
        }
    }

    /// The newest point's time.
    pub(crate) fn newest_t(&self) -> Option<i64> {
        self.len().checked_sub(1).map(|i| self.t(i))
    }

    /// Points oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        (0..self.len()).map(|i| (self.t(i), self.values[i]))
    }

    /// Bytes held for points (the capacity of both columns): what the tests bound.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        let times = match &self.times {
            Times::Offsets(d) => d.capacity() * 4,
            Times::Full(d) => d.capacity() * 8,
        };
        times + self.values.capacity() * 8
    }

    /// Slots held for points.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.values.capacity()
    }

    /// Inserts `(t, v)` after every point at or before `t` (at the back when it is the
    /// newest, the usual case), holding room for at most `most` points.
    pub(crate) fn insert(&mut self, t: i64, v: f64, most: usize) {
        self.make_room_for(t);
        let n = self.len();
        let pos = if self.newest_t().is_none_or(|nt| nt <= t) {
            n
        } else {
            // Replays arrive late: keep the ring ordered by device time.
            let (mut a, mut b) = (0, n);
            while a < b {
                let m = a + (b - a) / 2;
                if self.t(m) <= t {
                    a = m + 1;
                } else {
                    b = m;
                }
            }
            a
        };
        grow_within(&mut self.values, most);
        // `make_room_for` made `t` fit the offsets, unless the ring holds full times.
        if let (Times::Offsets(d), Some(o)) = (&mut self.times, offset(self.base, t)) {
            grow_within(d, most);
            d.insert(pos, o);
        } else {
            self.widen();
            if let Times::Full(d) = &mut self.times {
                grow_within(d, most);
                d.insert(pos, t);
            }
        }
        self.values.insert(pos, v);
    }

    pub(crate) fn pop_front(&mut self) {
        match &mut self.times {
            Times::Offsets(d) => {
                d.pop_front();
            }
            Times::Full(d) => {
                d.pop_front();
            }
        }
        self.values.pop_front();
    }

    /// Makes `t` expressible as an offset: the first point sets the base; a point before the
    /// base, or past the range of the offsets, moves the base to the oldest time held (or `t`)
    /// when all then fit, else the ring holds full times from then on.
    fn make_room_for(&mut self, t: i64) {
        let Times::Offsets(d) = &mut self.times else {
            return;
        };
        if d.is_empty() {
            self.base = t;
            return;
        }
        if offset(self.base, t).is_some() {
            return;
        }
        let oldest = self.base + i64::from(d[0]);
        let newest = self.base + i64::from(d[d.len() - 1]);
        let (lo, hi) = (oldest.min(t), newest.max(t));
        if offset(lo, hi).is_none() {
            self.widen();
            return;
        }
        let shift = self.base - lo;
        for o in d.iter_mut() {
            // In range: every time held lies within `lo ..= hi`.
            *o = u32::try_from(i64::from(*o) + shift).unwrap_or(u32::MAX);
        }
        self.base = lo;
    }

    /// Holds full times from now on.
    fn widen(&mut self) {
        if let Times::Offsets(d) = &self.times {
            let mut full = VecDeque::with_capacity(d.capacity());
            full.extend(d.iter().map(|&o| self.base + i64::from(o)));
            self.times = Times::Full(full);
        }
    }
}

/// `t` as an offset from `base`, when it is one (at or after it, within `u32`).
fn offset(base: i64, t: i64) -> Option<u32> {
    t.checked_sub(base).and_then(|d| u32::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring next to a plain ordered list of the same points: same points back, in order.
    fn check(times: &[i64], most: usize) {
        let mut ring = Ring::default();
        let mut want: Vec<(i64, f64)> = Vec::new();
        for (k, &t) in times.iter().enumerate() {
            let v = k as f64 * 0.1 - 3.7;
            ring.insert(t, v, most + 1);
            let pos = want.partition_point(|p| p.0 <= t);
            want.insert(pos, (t, v));
            if ring.len() > most {
                ring.pop_front();
                want.remove(0);
            }
            assert_eq!(ring.iter().collect::<Vec<_>>(), want, "after {t}");
            assert!(ring.capacity() <= most + 1);
        }
    }

    #[test]
    fn points_come_back_exactly_whatever_their_spread() {
        let day = 86_400_000i64;
        // Close together, in order and late.
        check(&[1000, 1001, 1003, 1002, 999, 5000, 1000], 5);
        // A point far before the base moves the base.
        check(&[10 * day, 10 * day + 5, day, 10 * day + 7], 10);
        // Points further apart than the offsets reach: full times.
        check(&[0, 60 * day, 120 * day, 30 * day, -5], 10);
        check(&[i64::MIN, i64::MAX, 0, -1, 1], 10);
        // A long-running ring: the base moves forward as old points leave.
        let times: Vec<i64> = (0..400).map(|i| i * day / 4).collect();
        check(&times, 50);
        // Negative times.
        check(&[-10, -20, -5, -30], 3);
    }

    #[test]
    fn offsets_are_kept_while_they_fit() {
        let mut ring = Ring::default();
        for i in 0..100 {
            ring.insert(1_700_000_000_000 + i * 60_000, 1.0, 361);
        }
        assert!(matches!(ring.times, Times::Offsets(_)));
        assert_eq!(ring.bytes_held(), ring.capacity() * 12);
        ring.insert(1_700_000_000_000 + 60 * 86_400_000, 1.0, 361);
        assert!(matches!(ring.times, Times::Full(_)));
    }
}
