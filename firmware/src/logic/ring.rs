//! Bounded store-and-forward buffer: a fixed-capacity FIFO that, when full, drops the oldest
//! entry and counts it. No allocation; the capacity is a const generic.
//!
//! Why drop the oldest: on a long outage the newest state (is the cover open *now*?) matters more
//! than an hour-old heartbeat, and the count of dropped records is itself reported.

#[derive(Debug)]
pub struct Ring<T, const N: usize> {
    items: [Option<T>; N],
    head: usize,
    len: usize,
    dropped: u32,
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Ring<T, N> {
    pub const fn new() -> Self {
        Ring {
            items: [const { None }; N],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    /// Appends `item`; when full, the oldest entry is dropped (and returned) to make room.
    pub fn push(&mut self, item: T) -> Option<T> {
        if N == 0 {
            self.dropped = self.dropped.saturating_add(1);
            return Some(item);
        }
        let mut evicted = None;
        if self.len == N {
            evicted = self.pop();
            self.dropped = self.dropped.saturating_add(1);
        }
        let tail = (self.head + self.len) % N;
        self.items[tail] = Some(item);
        self.len += 1;
        evicted
    }

    /// The oldest entry, without removing it (send, then [`Ring::pop`] once acknowledged).
    pub fn peek(&self) -> Option<&T> {
        if self.len == 0 {
            None
        } else {
            self.items[self.head].as_ref()
        }
    }

    pub fn peek_mut(&mut self) -> Option<&mut T> {
        if self.len == 0 {
            None
        } else {
            self.items[self.head].as_mut()
        }
    }

    /// Removes and returns the oldest entry.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    /// How many entries were dropped since the last call, resetting the count.
    pub fn take_dropped(&mut self) -> u32 {
        core::mem::take(&mut self.dropped)
    }

    pub const fn dropped(&self) -> u32 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order() {
        let mut r = Ring::<u32, 4>::new();
        for i in 0..3 {
            assert_eq!(r.push(i), None);
        }
        assert_eq!(r.peek(), Some(&0));
        assert_eq!(r.pop(), Some(0));
        r.push(3);
        r.push(4);
        assert!(r.is_full());
        let mut out = [0; 4];
        for o in &mut out {
            *o = r.pop().unwrap();
        }
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(r.is_empty());
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut r = Ring::<u32, 3>::new();
        for i in 0..10 {
            r.push(i);
        }
        assert_eq!(r.dropped(), 7);
        assert_eq!(r.take_dropped(), 7);
        assert_eq!(r.take_dropped(), 0);
        assert_eq!(
            (r.pop(), r.pop(), r.pop(), r.pop()),
            (Some(7), Some(8), Some(9), None)
        );
    }
}
