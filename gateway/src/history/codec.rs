//! The bit-level encoding of a block of history points, in the manner of Gorilla (Facebook's
//! in-memory time-series store): each point after a block's first is written as the change
//! from the one before, in as few bits as that change needs.
//!
//! - Time: the delta-of-delta of the millisecond times (a device reporting at a steady pace
//!   costs one bit a point), zigzag-coded in one of six sizes (0, 6, 13, 20, 32 or 64 bits:
//!   13 covers a jitter of +-4 s in milliseconds, 6 a change of +-31 units of a decimal).
//!   Arithmetic wraps, so any `i64` times, in any order, come back exactly.
//! - Value: the same bits as before (one bit); or, when both this value and the previous one
//!   are decimals of the block's scale (`123.4` is 1234 tenths; sensors report a few decimals),
//!   the change of that integer, coded like a time; or else Gorilla's XOR of the two `f64`s'
//!   bits with its leading zeros and length. Sensors' decimals XOR badly (`123.4` and `123.5`
//!   differ in ~50 mantissa bits), hence the decimal form; the XOR form keeps every other
//!   `f64` (NaN payloads, infinities, `-0.0`, subnormals) bit for bit.
//!
//! Nothing here reads outside input: the bytes are the ring's own. The reader still never
//! panics on short or odd bytes (it reads zeros past the end).

/// Scales tried for the decimal form: `10^0 ..= 10^K_MAX`.
pub(super) const K_MAX: u8 = 6;
const POW10: [f64; K_MAX as usize + 1] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// Scaled integers stay within the `f64`'s exact integers.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `v` as an integer count of `10^-k`, when that integer divided by `10^k` gives back the very
/// same bits (so `-0.0`, NaN and values with more decimals never take this form).
pub(super) fn decimal(v: f64, k: u8) -> Option<i64> {
    let p = POW10[usize::from(k.min(K_MAX))];
    let n = round(v * p)?;
    ((n as f64 / p).to_bits() == v.to_bits()).then_some(n)
}

/// `x` rounded half away from zero, as `f64::round`, when that is at most [`EXACT`] in
/// magnitude (`None` beyond, and for NaN). Without a call: `f64::round` is a call into libm on
/// the baseline x86-64 target, once or twice per history point (issue 24).
fn round(x: f64) -> Option<i64> {
    // Beyond EXACT - 0.5 the nearest integer is x itself or past EXACT; NaN fails this too.
    if x.is_nan() || x.abs() > EXACT {
        return None;
    }
    // Both exact below 2^53: the integer part and what is left of x.
    let whole = x as i64;
    let rest = x - whole as f64;
    Some(if rest >= 0.5 {
        whole + 1
    } else if rest <= -0.5 {
        whole - 1
    } else {
        whole
    })
}

/// The smallest scale at which `v` is a decimal.
pub(super) fn scale_of(v: f64) -> Option<u8> {
    (0..=K_MAX).find(|&k| decimal(v, k).is_some())
}

/// Bits appended to a byte vector, most significant first.
#[derive(Debug, Default)]
pub(super) struct BitWriter {
    pub bytes: Vec<u8>,
    /// Bits written.
    len: u64,
}

impl BitWriter {
    /// Appends the low `n` bits of `value` (`n <= 64`).
    ///
    /// A partial byte is topped up and the rest written a whole byte at a time: a bit field
    /// at a time, this was most of the history's instructions per reading (issue 24).
    pub(super) fn push(&mut self, value: u64, n: u32) {
        let n = n.min(64);
        if n == 0 {
            return;
        }
        // The bits to write at the top of a word, everything below them zero.
        let mut bits = value << (64 - n);
        let mut left = n;
        let used = (self.len % 8) as u32;
        if used != 0 {
            if let Some(last) = self.bytes.last_mut() {
                *last |= (bits >> (56 + used)) as u8;
            }
            let took = (8 - used).min(left);
            left -= took;
            bits <<= took;
        }
        while left > 0 {
            self.bytes.push((bits >> 56) as u8);
            bits <<= 8;
            left = left.saturating_sub(8);
        }
        self.len += u64::from(n);
    }

    /// [`BitWriter::push`] as it was written first, a bit field at a time: the reference the
    /// faster one is checked against.
    #[cfg(test)]
    fn push_by_fields(&mut self, value: u64, n: u32) {
        let mut n = n.min(64);
        while n > 0 {
            let used = (self.len % 8) as u32;
            if used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - used;
            let take = free.min(n);
            let chunk = (value >> (n - take)) & ((1u64 << take) - 1);
            if let Some(last) = self.bytes.last_mut() {
                *last |= (chunk as u8) << (free - take);
            }
            n -= take;
            self.len += u64::from(take);
        }
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.len = 0;
    }

    /// The bytes, the writer left empty.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.len = 0;
        std::mem::take(&mut self.bytes)
    }
}

/// Reads what a [`BitWriter`] wrote; zeros past the end.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    pub(super) fn bit(&mut self) -> bool {
        self.read(1) == 1
    }

    /// The next `n` bits (`n <= 64`) as the low bits of the answer.
    pub(super) fn read(&mut self, n: u32) -> u64 {
        let mut out = 0u64;
        let mut n = n.min(64);
        while n > 0 {
            let byte = usize::try_from(self.pos / 8)
                .ok()
                .and_then(|i| self.bytes.get(i))
                .copied()
                .unwrap_or(0);
            let used = (self.pos % 8) as u32;
            let take = (8 - used).min(n);
            let chunk = (u64::from(byte) >> (8 - used - take)) & ((1u64 << take) - 1);
            out = (out << take) | chunk;
            n -= take;
            self.pos += u64::from(take);
        }
        out
    }
}

/// Sizes of a non-zero signed change after zigzag coding; bucket `i` is announced by `i + 1`
/// one bits and a zero (the last by its ones alone), zero by a single zero bit.
const WIDTHS: [u32; 5] = [6, 13, 20, 32, 64];

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_signed(w: &mut BitWriter, x: i64) {
    let u = zigzag(x);
    if u == 0 {
        w.push(0, 1);
        return;
    }
    let last = WIDTHS.len() - 1;
    let i = WIDTHS
        .iter()
        .position(|&width| width == 64 || u >> width == 0)
        .unwrap_or(last);
    let ones = i as u32 + 1;
    if i < last {
        w.push(((1u64 << ones) - 1) << 1, ones + 1);
    } else {
        w.push((1u64 << ones) - 1, ones);
    }
    w.push(u, WIDTHS[i]);
}

fn get_signed(r: &mut BitReader<'_>) -> i64 {
    let mut i = 0;
    while i < WIDTHS.len() && r.bit() {
        i += 1;
    }
    match i.checked_sub(1) {
        None => 0,
        Some(b) => unzigzag(r.read(WIDTHS[b])),
    }
}

/// Where a block's coding stands after a point: what the next point is written against.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cursor {
    pub t: i64,
    delta: i64,
    bits: u64,
    /// The value as a decimal of the block's scale, when it is one.
    n: Option<i64>,
    /// The block's decimal scale.
    k: u8,
}

/// Bits of a block's header: the first time and value whole, and the scale.
const K_BITS: u32 = 3;

impl Cursor {
    /// Starts a block with its first point, at scale `k`.
    pub(super) fn start(w: &mut BitWriter, t: i64, v: f64, k: u8) -> Cursor {
        let k = k.min(K_MAX);
        w.push(t as u64, 64);
        w.push(v.to_bits(), 64);
        w.push(u64::from(k), K_BITS);
        Cursor {
            t,
            delta: 0,
            bits: v.to_bits(),
            n: decimal(v, k),
            k,
        }
    }

    /// Reads a block's first point.
    pub(super) fn read_start(r: &mut BitReader<'_>) -> (Cursor, f64) {
        let t = r.read(64) as i64;
        let bits = r.read(64);
        let k = (r.read(K_BITS) as u8).min(K_MAX);
        let v = f64::from_bits(bits);
        let c = Cursor {
            t,
            delta: 0,
            bits,
            n: decimal(v, k),
            k,
        };
        (c, v)
    }

    /// Writes the next point; answers whether the value was a decimal of the block's scale.
    pub(super) fn put(&mut self, w: &mut BitWriter, t: i64, v: f64) -> bool {
        let delta = t.wrapping_sub(self.t);
        put_signed(w, delta.wrapping_sub(self.delta));
        self.t = t;
        self.delta = delta;
        let bits = v.to_bits();
        let n = decimal(v, self.k);
        if bits == self.bits {
            w.push(0, 1);
        } else if let (Some(n), Some(prev)) = (n, self.n) {
            w.push(0b10, 2);
            put_signed(w, n.wrapping_sub(prev));
        } else {
            let x = bits ^ self.bits;
            let lead = x.leading_zeros();
            let trail = x.trailing_zeros();
            let len = 64 - lead - trail;
            w.push(0b11, 2);
            w.push(u64::from(lead), 6);
            w.push(u64::from(len - 1), 6);
            w.push(x >> trail, len);
        }
        self.bits = bits;
        self.n = n;
        n.is_some()
    }

    /// Reads the next point.
    pub(super) fn get(&mut self, r: &mut BitReader<'_>) -> (i64, f64) {
        self.delta = self.delta.wrapping_add(get_signed(r));
        self.t = self.t.wrapping_add(self.delta);
        let bits = if !r.bit() {
            self.bits
        } else if !r.bit() {
            let n = self.n.unwrap_or(0).wrapping_add(get_signed(r));
            (n as f64 / POW10[usize::from(self.k)]).to_bits()
        } else {
            let lead = r.read(6) as u32;
            let len = r.read(6) as u32 + 1;
            let x = r.read(len);
            let shift = 64u32.saturating_sub(lead + len);
            self.bits ^ x.checked_shl(shift).unwrap_or(0)
        };
        let v = f64::from_bits(bits);
        self.bits = bits;
        self.n = decimal(v, self.k);
        (self.t, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(decimal(123.4, 1), Some(1234));
        assert_eq!(decimal(123.4, 0), None);
        assert_eq!(scale_of(123.45), Some(2));
        assert_eq!(scale_of(90.0), Some(0));
        assert_eq!(decimal(-0.0, 3), None, "the sign of zero would be lost");
        assert_eq!(decimal(0.0, 3), Some(0));
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            1e-300,
            0.1 + 0.2,
        ] {
            assert_eq!(scale_of(v), None, "{v}");
        }
    }

    /// [`round`] answers what `f64::round` answers within [`EXACT`], and `None` past it:
    /// halves, values next to halves and integers, the bound, random bit patterns.
    #[test]
    fn round_is_f64_round_within_exact() {
        let reference = |x: f64| {
            let n = x.round();
            (!n.is_nan() && n.abs() <= EXACT).then_some(n as i64)
        };
        let mut xs = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            EXACT,
            -EXACT,
            EXACT - 1.0,
            EXACT + 2.0,
            4503599627370495.5,
            -4503599627370495.5,
            4503599627370497.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for i in -3000..3000 {
            let h = f64::from(i) / 2.0;
            xs.extend([
                h,
                f64::from_bits(h.to_bits().wrapping_add(1)),
                f64::from_bits(h.to_bits().wrapping_sub(1)),
            ]);
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            xs.push(f64::from_bits(x));
            xs.push((x >> (i % 40)) as f64 / 8.0 * if i % 2 == 0 { 1.0 } else { -1.0 });
        }
        for v in xs {
            assert_eq!(round(v), reference(v), "{v:e}");
        }
    }

    #[test]
    fn signed_changes_of_every_size_come_back() {
        let xs = [
            0,
            1,
            -1,
            31,
            -32,
            32,
            4095,
            -4096,
            4096,
            1 << 19,
            -(1 << 30),
            i64::from(i32::MAX),
            i64::MAX,
            i64::MIN,
        ];
        let mut w = BitWriter::default();
        for &x in &xs {
            put_signed(&mut w, x);
        }
        let mut r = BitReader::new(&w.bytes);
        for &x in &xs {
            assert_eq!(get_signed(&mut r), x);
        }
    }

    #[test]
    fn a_steady_device_costs_two_bits_a_point() {
        let mut w = BitWriter::default();
        let mut c = Cursor::start(&mut w, 1_700_000_000_000, 90.0, 0);
        let header = w.len;
        for i in 1..100 {
            c.put(&mut w, 1_700_000_000_000 + i * 60_000, 90.0);
        }
        // The second point's delta is new; every later one repeats.
        assert!(w.len - header <= 99 * 2 + 30, "{} bits", w.len - header);
    }

    /// Any sequence of pushes (every width, values with bits above the width) writes the
    /// same bytes as the field-at-a-time writer.
    #[test]
    fn push_writes_what_pushing_by_fields_wrote() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let (mut fast, mut reference) = (BitWriter::default(), BitWriter::default());
            for _ in 0..(round % 40) {
                let r = next();
                let n = match r % 8 {
                    0 => 64,
                    1 => 0,
                    2 => 65 + (r >> 8) as u32 % 10,
                    _ => (r >> 8) as u32 % 64,
                };
                let value = next();
                fast.push(value, n);
                reference.push_by_fields(value, n);
                assert_eq!(fast.bytes, reference.bytes, "round {round}");
                assert_eq!(fast.len, reference.len);
            }
        }
    }

    #[test]
    fn the_reader_reads_zeros_past_the_end() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read(4), 0xf);
        assert_eq!(r.read(64), 0xf << 60);
        assert_eq!(r.read(64), 0);
    }
}
