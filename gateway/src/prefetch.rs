//! Cache-prefetch hints for state the ingest path is about to touch.
//!
//! Why (issue 24): with 10,000 devices a message's device state (its slot in the device
//! table, its rule states) was last touched ten thousand messages ago and is no longer in
//! cache, so each message waits for several memory loads one after the other. A batch knows
//! its devices before it handles them: asking for the state of a message a few places ahead
//! lets those loads overlap the work on the current one.

/// Asks the CPU to bring the `lines` cache lines from `p` on into its caches. A hint only: it
/// never faults (any address will do), changes no result and is nothing on architectures
/// other than x86-64.
#[inline(always)]
pub(crate) fn lines<T: ?Sized>(p: *const T, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in 0..lines {
        let at = (p as *const u8).wrapping_add(i * 64) as *const i8;
        // SAFETY: `prefetcht0` reads nothing the program can observe and cannot fault, even
        // on an invalid address; SSE is part of the x86-64 baseline.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}

/// Most lines one hint asks for: the newest part of a window or a device's few metrics, not
/// a whole buffer.
const MOST_LINES: usize = 8;

/// [`lines`] for the `len` bytes at `p` (at most [`MOST_LINES`] lines from `p` on).
#[inline(always)]
pub(crate) fn bytes<T>(p: *const T, len: usize) {
    if len == 0 {
        return;
    }
    let skew = (p as *const u8 as usize) % 64;
    lines(p, (skew + len).div_ceil(64).min(MOST_LINES));
}

/// [`bytes`] for the last `len` bytes of `slice` (a deque's newest entries).
#[inline(always)]
pub(crate) fn tail<T>(slice: &[T], len: usize) {
    let len = len.min(std::mem::size_of_val(slice));
    let end = slice.as_ptr_range().end as *const u8;
    bytes(end.wrapping_sub(len), len);
}

/// Bytes asked for at a deque's newest end: the entries a new reading joins and the rules
/// read back first.
const NEWEST_BYTES: usize = 256;

/// Hints for the newest entries of `d` and the line the next entry goes to.
#[inline(always)]
pub(crate) fn deque_newest<T>(d: &std::collections::VecDeque<T>) {
    let (a, b) = d.as_slices();
    let newest = if b.is_empty() { a } else { b };
    tail(newest, NEWEST_BYTES);
    lines(newest.as_ptr_range().end, 1);
}

#[cfg(test)]
mod tests {
    /// Any address is accepted, null and dangling included (a hint never faults).
    #[test]
    fn a_hint_on_any_address_is_harmless() {
        let v = vec![1u64; 64];
        super::lines(v.as_ptr(), 8);
        super::lines(std::ptr::null::<u8>(), 4);
        super::lines(usize::MAX as *const u8, 2);
        super::bytes(v.as_ptr(), 1 << 20);
        super::tail(&v, 1 << 20);
        super::tail::<u64>(&[], 64);
        let mut d: std::collections::VecDeque<u64> = (0..100).collect();
        d.rotate_left(30);
        super::deque_newest(&d);
        super::deque_newest(&std::collections::VecDeque::<u8>::new());
        assert_eq!(v.iter().sum::<u64>(), 64);
    }
}
