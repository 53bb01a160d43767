//! Per-camera upload rate: a token bucket per (site, camera id), so one camera (or whoever
//! holds its token) cannot keep the decoder and the checks busy for every other camera.
//!
//! Each camera may send `burst` frames at once and then `per_minute` frames a minute; a frame
//! over that gets 429 with `Retry-After` (the whole seconds until the next frame is allowed),
//! counted in `camera_frames_refused_total{reason="rate_limit"}`. Frames and reference
//! enrolments share the bucket. Pulled cameras (`[[cameras.sources]]`) have their own
//! interval and are not limited here.
//!
//! Bounds: at most [`MAX_BUCKETS`] buckets. When full, buckets that have refilled completely
//! (idle cameras, which lose nothing by being forgotten) are dropped; if none has, a new
//! camera id is refused like an over-rate frame until one does. Plain state with the time
//! passed in, tested with a fake clock.

use std::collections::HashMap;

/// Buckets kept at most (well above `max_per_site` times the sites of one gateway).
pub(crate) const MAX_BUCKETS: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Frames that may be sent now (fractional while refilling).
    tokens: f64,
    at_ms: i64,
}

/// The buckets of every camera.
#[derive(Debug)]
pub(crate) struct UploadRate {
    per_minute: u32,
    burst: u32,
    buckets: HashMap<(String, String), Bucket>,
}

impl UploadRate {
    /// `per_minute == 0` turns the limit off.
    pub(crate) fn new(per_minute: u32, burst: u32) -> UploadRate {
        UploadRate {
            per_minute,
            burst: burst.max(1),
            buckets: HashMap::new(),
        }
    }

    fn per_ms(&self) -> f64 {
        f64::from(self.per_minute) / 60_000.0
    }

    fn refilled(&self, b: Bucket, now_ms: i64) -> f64 {
        let elapsed = now_ms.saturating_sub(b.at_ms).max(0) as f64;
        (b.tokens + elapsed * self.per_ms()).min(f64::from(self.burst))
    }

    /// Takes one frame from the bucket of `(site, camera)`: `Err(seconds)` to wait when it is
    /// empty (at least 1).
    pub(crate) fn admit(&mut self, site: &str, camera: &str, now_ms: i64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let key = (site.to_string(), camera.to_string());
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_BUCKETS {
            self.forget_idle(now_ms);
            if self.buckets.len() >= MAX_BUCKETS {
                return Err(60);
            }
        }
        let full = Bucket {
            tokens: f64::from(self.burst),
            at_ms: now_ms,
        };
        let b = self.buckets.get(&key).copied().unwrap_or(full);
        let tokens = self.refilled(b, now_ms);
        if tokens >= 1.0 {
            self.buckets.insert(
                key,
                Bucket {
                    tokens: tokens - 1.0,
                    at_ms: now_ms,
                },
            );
            Ok(())
        } else {
            let wait_ms = (1.0 - tokens) / self.per_ms();
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }

    /// Drops the buckets that have refilled completely.
    fn forget_idle(&mut self, now_ms: i64) {
        let burst = f64::from(self.burst);
        let per_ms = self.per_ms();
        self.buckets.retain(|_, b| {
            let elapsed = now_ms.saturating_sub(b.at_ms).max(0) as f64;
            b.tokens + elapsed * per_ms < burst
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_gets_its_burst_then_its_rate_and_others_are_not_slowed() {
        let mut r = UploadRate::new(60, 3);
        for _ in 0..3 {
            assert_eq!(r.admit("s", "k1", 0), Ok(()));
        }
        assert_eq!(r.admit("s", "k1", 0), Err(1), "one frame a second");
        assert_eq!(
            r.admit("s", "k2", 0),
            Ok(()),
            "another camera has its own bucket"
        );
        assert_eq!(
            r.admit("t", "k1", 0),
            Ok(()),
            "the same id on another site too"
        );
        assert_eq!(r.admit("s", "k1", 500), Err(1));
        assert_eq!(r.admit("s", "k1", 1_000), Ok(()));
        assert_eq!(r.admit("s", "k1", 1_000), Err(1));
        // Idle for a long time: back to the burst, never more.
        for _ in 0..3 {
            assert_eq!(r.admit("s", "k1", 3_600_000), Ok(()));
        }
        assert!(r.admit("s", "k1", 3_600_000).is_err());
    }

    #[test]
    fn retry_after_is_the_wait_for_the_next_frame_in_whole_seconds() {
        let mut r = UploadRate::new(2, 1);
        assert_eq!(r.admit("s", "k", 0), Ok(()));
        assert_eq!(r.admit("s", "k", 0), Err(30));
        assert_eq!(r.admit("s", "k", 29_500), Err(1));
        assert_eq!(r.admit("s", "k", 30_000), Ok(()));
    }

    #[test]
    fn zero_per_minute_turns_the_limit_off() {
        let mut r = UploadRate::new(0, 1);
        for _ in 0..1000 {
            assert_eq!(r.admit("s", "k", 0), Ok(()));
        }
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn buckets_stay_bounded_idle_ones_are_forgotten_busy_ones_kept() {
        let mut r = UploadRate::new(60, 2);
        for i in 0..MAX_BUCKETS {
            assert_eq!(r.admit("s", &format!("k{i}"), 0), Ok(()));
        }
        assert_eq!(r.len(), MAX_BUCKETS);
        assert_eq!(r.admit("s", "new", 0), Err(60), "full of busy buckets");
        // A second later every bucket has refilled: they are forgotten to make room.
        assert_eq!(r.admit("s", "new", 1_000), Ok(()));
        assert!(r.len() <= 1, "{}", r.len());
    }
}
