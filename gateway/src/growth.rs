//! Capacity growth for the per-device rings that fill up and then stay full (dashboard history,
//! rule windows): by a quarter instead of doubling, and never past the most a ring may hold.
//!
//! With 10,000 devices these rings are most of the gateway's memory (issue 24). Doubling left a
//! ring of 100 readings in 128 slots, and a ring of 260 in 512; growing by a quarter wastes at
//! most a fifth of the slots held, at the cost of more (small, once per ring) copies while it
//! fills.

use std::collections::VecDeque;

/// Makes room in `ring` for one more element without ever holding room for more than `most`:
/// growing by a quarter of its capacity (at least 4 slots) while it fills, then exactly up to
/// `most`. Does nothing while there is room.
pub(crate) fn grow_within<T>(ring: &mut VecDeque<T>, most: usize) {
    let (len, cap) = (ring.len(), ring.capacity());
    if len < cap || cap >= most {
        return;
    }
    ring.reserve_exact((cap / 4).max(4).min(most.saturating_sub(len).max(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_by_a_quarter_and_stops_at_the_most() {
        for keep in [1, 3, 4, 5, 50, 100, 360, 2048] {
            // A ring keeping `keep`: one more goes in before the oldest leaves.
            let most = keep + 1;
            let mut ring = VecDeque::new();
            for i in 0..most * 2 {
                grow_within(&mut ring, most);
                ring.push_back(i);
                let (len, cap) = (ring.len(), ring.capacity());
                assert!(
                    cap <= (len + (len / 4).max(4)).min(most),
                    "keep {keep}: len {len} cap {cap}"
                );
                if len > keep {
                    ring.pop_front();
                }
            }
            assert_eq!(ring.capacity(), most, "a full ring holds exactly its most");
        }
    }
}
