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

/// A point whose time is an offset from the ring's base: 12 bytes (`f64` at 4-byte alignment;
/// its fields are only ever copied out, never borrowed).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Near {
    offset: u32,
    value: f64,
}

/// The points, in one deque so a new point touches one place (two columns cost a second cache
/// miss per reading with 10,000 devices): offsets from the ring's base while they fit, else
/// full times.
#[derive(Debug)]
enum Points {
    Near(VecDeque<Near>),
    Full(VecDeque<(i64, f64)>),
}

/// Points `(device_time_ms, value)` in time order, oldest first.
#[derive(Debug)]
pub(crate) struct Ring {
    /// What the offsets count from (unused once the times are full).
    base: i64,
    points: Points,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            base: 0,
            points: Points::Near(VecDeque::new()),
        }
    }
}

impl Ring {
    pub(crate) fn len(&self) -> usize {
        match &self.points {
            Points::Near(d) => d.len(),
            Points::Full(d) => d.len(),
        }
    }

    /// The point at `i` (`i < len`).
    fn at(&self, i: usize) -> (i64, f64) {
        match &self.points {
            Points::Near(d) => {
                let p = d[i];
                (self.base + i64::from(p.offset), p.value)
            }
            Points::Full(d) => d[i],
        }
    }

    /// The time of the point at `i` (`i < len`).
    fn t(&self, i: usize) -> i64 {
        self.at(i).0
    }

    /// The newest point's time.
    pub(crate) fn newest_t(&self) -> Option<i64> {
        self.len().checked_sub(1).map(|i| self.t(i))
    }

    /// Points oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }

    /// Bytes held for points (the deque's capacity): what the tests bound.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        match &self.points {
            Points::Near(d) => d.capacity() * std::mem::size_of::<Near>(),
            Points::Full(d) => d.capacity() * 16,
        }
    }

    /// Slots held for points.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        match &self.points {
            Points::Near(d) => d.capacity(),
            Points::Full(d) => d.capacity(),
        }
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
        // `make_room_for` made `t` fit the offsets, unless the ring holds full times.
        if let (Points::Near(d), Some(offset)) = (&mut self.points, offset(self.base, t)) {
            grow_within(d, most);
            d.insert(pos, Near { offset, value: v });
        } else {
            self.widen();
            if let Points::Full(d) = &mut self.points {
                grow_within(d, most);
                d.insert(pos, (t, v));
            }
        }
    }

    pub(crate) fn pop_front(&mut self) {
        match &mut self.points {
            Points::Near(d) => {
                d.pop_front();
            }
            Points::Full(d) => {
                d.pop_front();
            }
        }
    }

    /// Makes `t` expressible as an offset: the first point sets the base; a point before the
    /// base, or past the range of the offsets, moves the base to the oldest time held (or `t`)
    /// when all then fit, else the ring holds full times from then on.
    fn make_room_for(&mut self, t: i64) {
        let Points::Near(d) = &mut self.points else {
            return;
        };
        let (Some(first), Some(last)) = (d.front().copied(), d.back().copied()) else {
            self.base = t;
            return;
        };
        if offset(self.base, t).is_some() {
            return;
        }
        let oldest = self.base + i64::from(first.offset);
        let newest = self.base + i64::from(last.offset);
        let (lo, hi) = (oldest.min(t), newest.max(t));
        if offset(lo, hi).is_none() {
            self.widen();
            return;
        }
        // Every time held lies within `lo ..= hi`, so each new offset fits.
        let shift = self.base - lo;
        for p in d.iter_mut() {
            let o = i64::from(p.offset) + shift;
            p.offset = u32::try_from(o).unwrap_or(u32::MAX);
        }
        self.base = lo;
    }

    /// Holds full times from now on.
    fn widen(&mut self) {
        if let Points::Near(d) = &self.points {
            let mut full = VecDeque::with_capacity(d.capacity());
            full.extend(d.iter().map(|p| (self.base + i64::from(p.offset), p.value)));
            self.points = Points::Full(full);
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
        assert_eq!(std::mem::size_of::<Near>(), 12);
        let mut ring = Ring::default();
        for i in 0..100 {
            ring.insert(1_700_000_000_000 + i * 60_000, 1.0, 361);
        }
        assert!(matches!(ring.points, Points::Near(_)));
        assert_eq!(ring.bytes_held(), ring.capacity() * 12);
        ring.insert(1_700_000_000_000 + 60 * 86_400_000, 1.0, 361);
        assert!(matches!(ring.points, Points::Full(_)));
    }
}
