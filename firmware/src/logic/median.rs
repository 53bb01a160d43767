//! Sliding-window median: ultrasonic echoes off foam and ripples give short outliers that a
//! mean would smear into the level; a median drops them.

/// Median of the last `N` samples (fewer until the window fills).
#[derive(Debug, Clone, Copy)]
pub struct MedianFilter<const N: usize> {
    window: [f32; N],
    len: usize,
    next: usize,
}

impl<const N: usize> Default for MedianFilter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MedianFilter<N> {
    pub const fn new() -> Self {
        MedianFilter {
            window: [0.0; N],
            len: 0,
            next: 0,
        }
    }

    /// Adds a sample and returns the current median. Non-finite samples are ignored.
    pub fn push(&mut self, x: f32) -> Option<f32> {
        if N == 0 {
            return None;
        }
        if x.is_finite() {
            self.window[self.next] = x;
            self.next = (self.next + 1) % N;
            self.len = (self.len + 1).min(N);
        }
        self.median()
    }

    pub fn median(&self) -> Option<f32> {
        if self.len == 0 {
            return None;
        }
        let mut sorted = self.window;
        let s = &mut sorted[..self.len];
        // Insertion sort: N is a handful of samples.
        for i in 1..s.len() {
            let mut j = i;
            while j > 0 && s[j - 1] > s[j] {
                s.swap(j - 1, j);
                j -= 1;
            }
        }
        let mid = s.len() / 2;
        Some(if s.len() % 2 == 1 {
            s[mid]
        } else {
            (s[mid - 1] + s[mid]) / 2.0
        })
    }

    /// Whether most of the window is filled: from then on a single spike (a foam echo, a stray
    /// byte) can no longer be the median. Before, the first sample alone is the "median", and a
    /// device that booted on a foam echo reported a level 150 mm too high, then the true one:
    /// a fall that reads like a discharge.
    pub fn is_settled(&self) -> bool {
        N > 0 && self.len * 2 > N
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foam_spikes_are_removed() {
        let mut m = MedianFilter::<5>::new();
        let samples = [500.0, 502.0, 350.0, 501.0, 499.0, 120.0, 500.0];
        let mut last = None;
        for s in samples {
            last = m.push(s);
        }
        let m = last.unwrap();
        assert!((499.0..=501.0).contains(&m), "{m}");
    }

    #[test]
    fn partial_window_and_even_count() {
        let mut m = MedianFilter::<5>::new();
        assert_eq!(m.median(), None);
        assert_eq!(m.push(10.0), Some(10.0));
        assert_eq!(m.push(20.0), Some(15.0));
        assert_eq!(m.push(f32::NAN), Some(15.0));
    }

    #[test]
    fn settled_once_a_spike_can_no_longer_be_the_median() {
        let mut m = MedianFilter::<9>::new();
        // A foam echo first: not settled until five of nine samples are in.
        for (i, s) in [297.0, 147.0, 148.0, 146.0].into_iter().enumerate() {
            m.push(s);
            assert!(!m.is_settled(), "after {} samples", i + 1);
        }
        assert_eq!(m.push(147.0), Some(147.0));
        assert!(m.is_settled());
    }
}
