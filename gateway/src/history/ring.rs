//! One metric's recent points for the dashboard, compressed in small sealed blocks.
//!
//! With 10,000 devices the dashboard history was the largest per-device structure (issue 24):
//! at the default 360 points a metric, 12 bytes a point were 8.6 KB a device for two metrics,
//! 86 MB for the fleet. Points are now coded as changes from the point before ([`codec`]: a
//! device reporting at a steady pace with a few decimals takes one or two bytes a point,
//! whatever does not compress still comes back bit for bit), in blocks of up to
//! [`MAX_BLOCK`] points. The newest block is open and takes points as they come; a full one
//! is sealed into an exact-size allocation. The oldest points leave by being hidden (a count
//! at the front), and a sealed block goes once all its points are hidden, so dropping the
//! oldest point never re-codes anything. That keeps at most one block's worth of hidden points
//! beyond the `keep` the dashboard sees, which is why blocks are small (a quarter of `keep`
//! at most).
//!
//! What the dashboard gets back is exactly the `(time, value)` pairs it was given, the newest
//! `keep` of them, in time order: a late point (a replay) is put in its place by decoding
//! the ring and coding it again, which is rare and costs a few microseconds at 360 points.

use super::codec::{BitReader, BitWriter, Cursor, scale_of};
use std::collections::VecDeque;

/// Points in a sealed block at most (the default 360 points are six blocks).
pub(crate) const MAX_BLOCK: u32 = 64;
/// Points in a sealed block at least (a ring keeping very few points).
const MIN_BLOCK: u32 = 4;

/// Points `(device_time_ms, value)` in time order, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// Full blocks of `block` points each, oldest first.
    sealed: VecDeque<Box<[u8]>>,
    /// The block taking new points.
    open: BitWriter,
    /// Points in the open block.
    open_points: u32,
    /// The newest point's coding state (its time is the newest time).
    cursor: Cursor,
    /// The largest decimal scale the open block's values needed: the next block's scale.
    scale_seen: u8,
    /// Points per sealed block, set when the ring starts from empty.
    block: u32,
    /// Points hidden at the front of the oldest block (dropped from the ring).
    hidden: u32,
    /// Points the ring answers with.
    len: u32,
}

impl Ring {
    /// Prefetch hint for the open block's end, where the next point is written (see
    /// [`crate::prefetch`]).
    pub(crate) fn prefetch(&self) {
        crate::prefetch::tail(&self.open.bytes, 64);
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The newest point's time.
    fn newest_t(&self) -> Option<i64> {
        (self.len > 0).then_some(self.cursor.t)
    }

    /// Points oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, f64)> + use<> {
        let mut out = Vec::with_capacity((self.len + self.hidden) as usize);
        let blocks = self.sealed.iter().map(|b| (&b[..], self.block));
        for (bytes, points) in
            blocks.chain(std::iter::once((&self.open.bytes[..], self.open_points)))
        {
            if points == 0 {
                continue;
            }
            let mut r = BitReader::new(bytes);
            let (mut c, v) = Cursor::read_start(&mut r);
            out.push((c.t, v));
            for _ in 1..points {
                out.push(c.get(&mut r));
            }
        }
        out.drain(..(self.hidden as usize).min(out.len()));
        out.into_iter()
    }

    /// Bytes held for points (the blocks' allocations and the list of blocks): what the
    /// tests bound.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        self.sealed.iter().map(|b| b.len()).sum::<usize>()
            + self.sealed.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.open.bytes.capacity()
    }

    /// Points coded, hidden ones included.
    #[cfg(test)]
    pub(crate) fn points_held(&self) -> usize {
        (self.len + self.hidden) as usize
    }

    /// Inserts `(t, v)` after every point at or before `t` (at the back when it is the newest,
    /// the usual case). `keep` is the most points the caller keeps (it drops the oldest with
    /// [`Ring::pop_front`] past that); it sizes the blocks.
    pub(crate) fn insert(&mut self, t: i64, v: f64, keep: usize) {
        if self.len == 0 {
            self.clear(keep);
        }
        if self.newest_t().is_none_or(|nt| nt <= t) {
            self.append(t, v);
            return;
        }
        // Replays arrive late: keep the ring ordered by device time.
        let mut points: Vec<(i64, f64)> = self.iter().collect();
        let pos = points.partition_point(|p| p.0 <= t);
        points.insert(pos, (t, v));
        self.clear(keep);
        for (t, v) in points {
            self.append(t, v);
        }
    }

    /// Drops the oldest point.
    pub(crate) fn pop_front(&mut self) {
        let Some(len) = self.len.checked_sub(1) else {
            return;
        };
        self.len = len;
        self.hidden += 1;
        if len == 0 {
            let block = self.block;
            *self = Ring::default();
            self.block = block;
        } else if !self.sealed.is_empty() && self.hidden >= self.block {
            self.sealed.pop_front();
            self.hidden = 0;
        }
    }

    /// Empties the ring, with blocks sized for keeping `keep` points.
    fn clear(&mut self, keep: usize) {
        let block = u32::try_from(keep / 4)
            .unwrap_or(MAX_BLOCK)
            .clamp(MIN_BLOCK, MAX_BLOCK);
        *self = Ring {
            block,
            ..Ring::default()
        };
    }

    fn append(&mut self, t: i64, v: f64) {
        if self.open_points == 0 {
            let k = scale_of(v).unwrap_or(0).max(self.scale_seen);
            self.scale_seen = k;
            self.open.clear();
            self.cursor = Cursor::start(&mut self.open, t, v, k);
        } else if !self.cursor.put(&mut self.open, t, v)
            && let Some(k) = scale_of(v)
        {
            // A value with more decimals than the block's scale: the next block takes them.
            self.scale_seen = self.scale_seen.max(k);
        }
        self.open_points += 1;
        self.len += 1;
        if self.open_points >= self.block {
            self.sealed.push_back(self.open.take().into_boxed_slice());
            self.open_points = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::decimal;
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The ring next to a plain ordered list of the same points: the same points back, bit
    /// for bit, in order, after every insert.
    fn check(points: &[(i64, f64)], keep: usize) {
        let mut ring = Ring::default();
        let mut want: Vec<(i64, f64)> = Vec::new();
        for &(t, v) in points {
            ring.insert(t, v, keep);
            let pos = want.partition_point(|p| p.0 <= t);
            want.insert(pos, (t, v));
            if ring.len() > keep {
                ring.pop_front();
                want.remove(0);
            }
            let got: Vec<(i64, u64)> = ring.iter().map(|(t, v)| (t, v.to_bits())).collect();
            let expected: Vec<(i64, u64)> = want.iter().map(|(t, v)| (*t, v.to_bits())).collect();
            assert_eq!(got, expected, "keep {keep}, after ({t}, {v})");
            assert_eq!(ring.len(), want.len());
            assert!(
                ring.points_held() < keep + ring.block as usize,
                "keep {keep}: {} held",
                ring.points_held()
            );
        }
    }

    fn with_values(times: &[i64]) -> Vec<(i64, f64)> {
        times
            .iter()
            .enumerate()
            .map(|(k, &t)| (t, k as f64 * 0.1 - 3.7))
            .collect()
    }

    #[test]
    fn points_come_back_exactly_whatever_their_spread() {
        let day = 86_400_000i64;
        check(&with_values(&[1000, 1001, 1003, 1002, 999, 5000, 1000]), 5);
        check(
            &with_values(&[10 * day, 10 * day + 5, day, 10 * day + 7]),
            10,
        );
        check(&with_values(&[0, 60 * day, 120 * day, 30 * day, -5]), 10);
        check(
            &with_values(&[i64::MIN, i64::MAX, 0, -1, 1, i64::MIN, i64::MAX]),
            10,
        );
        let times: Vec<i64> = (0..400).map(|i| i * day / 4).collect();
        check(&with_values(&times), 50);
        check(&with_values(&[-10, -20, -5, -30]), 3);
    }

    #[test]
    fn odd_values_come_back_bit_for_bit() {
        let odd = [
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            123.4,
            123.45,
            -9_007_199_254_740_993.0,
            1e300,
        ];
        let points: Vec<(i64, f64)> = (0..200)
            .map(|i| (i * 1000, odd[(i as usize * 7) % odd.len()]))
            .collect();
        for keep in [1, 5, 50, 360] {
            check(&points, keep);
        }
    }

    /// Random times (steady, jittered, far apart, the extremes, late) and values (decimals
    /// of any scale, noise, specials), against the plain list.
    #[test]
    fn random_series_match_a_plain_list() {
        let mut rng = StdRng::seed_from_u64(24);
        for round in 0..60 {
            let keep = [1usize, 2, 3, 7, 20, 50, 100, 360][round % 8];
            let mut t = rng.random_range(-1_000_000i64..2_000_000_000_000);
            let mut points = Vec::new();
            for _ in 0..rng.random_range(1..900) {
                t = match rng.random_range(0..20) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => rng.random(),
                    3..=5 => t.wrapping_sub(rng.random_range(0..500_000)),
                    6 => t,
                    7..=12 => t.wrapping_add(60_000),
                    _ => t.wrapping_add(rng.random_range(55_000..65_000)),
                };
                let v = match rng.random_range(0..12) {
                    0 => f64::from_bits(rng.random()),
                    1 => [f64::NAN, f64::INFINITY, -0.0, 0.0][rng.random_range(0..4)],
                    2 => rng.random::<f64>() * 1e6,
                    3 => 90.0,
                    k => {
                        let scale = 10f64.powi(k % 5);
                        f64::from(rng.random_range(-50_000..50_000)) / scale
                    }
                };
                points.push((t, v));
            }
            check(&points, keep);
        }
    }

    /// A level with a few decimals reported about once a minute, and a battery that rarely
    /// changes: a few bytes a point instead of 12.
    #[test]
    fn a_sensors_series_takes_a_few_bytes_a_point() {
        let mut rng = StdRng::seed_from_u64(7);
        let (mut level, mut battery, mut ring_l, mut ring_b) =
            (850.0f64, 98i64, Ring::default(), Ring::default());
        let mut t = 1_700_000_000_000i64;
        for i in 0..1000 {
            t += 60_000 + rng.random_range(-1500..1500);
            level = ((level + rng.random_range(-3.0..2.0)) * 10.0).round() / 10.0;
            if i % 97 == 0 {
                battery -= 1;
            }
            for (ring, v) in [(&mut ring_l, level), (&mut ring_b, battery as f64)] {
                ring.insert(t, v, 360);
                if ring.len() > 360 {
                    ring.pop_front();
                }
            }
        }
        assert!(decimal(level, 1).is_some());
        let (l, b) = (ring_l.bytes_held(), ring_b.bytes_held());
        eprintln!("360 points: level {l} bytes, battery {b} bytes (12 bytes a point: 4,320)");
        // Jittered times take 13-bit changes, tenths of a mm mostly 6-bit ones; up to a
        // block of hidden points comes on top.
        assert!(l <= 360 * 5, "level: {l} bytes for 360 points");
        assert!(b <= 360 * 3, "battery: {b} bytes for 360 points");
    }

    #[test]
    fn blocks_are_sized_by_what_is_kept() {
        for (keep, block) in [
            (1, MIN_BLOCK),
            (20, 5),
            (360, MAX_BLOCK),
            (10_000, MAX_BLOCK),
        ] {
            let mut ring = Ring::default();
            ring.insert(1, 1.0, keep);
            assert_eq!(ring.block, block, "keep {keep}");
        }
    }
}
