//! Masked copies of evidence images kept in memory, least recently used out first.
//!
//! A masked copy is made on request (`privacy::masked_copy`): decode the JPEG, pixelate the
//! personal-data regions, encode again. On a street photo that is most of a second of CPU on
//! this class of machine, and inspectors page back and forth through the same clue's photos
//! (the list's thumbnails, the detail view, a colleague opening the same clue). The copy
//! depends only on the file's bytes (named by their SHA-256), the regions recorded with it
//! and the masking settings, so all three make the key and a hit is the same bytes a fresh
//! copy would be. Originals are never cached here (each access is audited and read from the
//! evidence store).
//!
//! Bounded by bytes (`[clues.privacy] masked_cache_mb`, 0: off); a copy larger than a quarter
//! of the budget is not kept. Memory only: nothing to purge on disk when retention removes the
//! original, and the cache is emptied when retention purged anything, so a masked copy does
//! not outlive its original.
//!
//! One copy is made at a time per key ([`MaskedCache::get_or_make`]): requests arriving while
//! it is being made wait for it instead of each decoding the same street photo (a clue opened
//! by its list's thumbnail and its detail view at once, or by two inspectors).

use super::audit::sha256_hex;
use super::privacy::PrivacyConfig;
use super::signal::Region;
use bytes::Bytes;
use hashlink::LruCache;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

struct Inner {
    copies: LruCache<String, Bytes>,
    bytes: usize,
}

/// How a request got its masked copy (the `reason` of `gateway_masked_copies_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Made for this request.
    Made,
    /// Kept from an earlier request, or made by a request that was already making it.
    Cached,
}

impl Served {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Served::Made => "made",
            Served::Cached => "cached",
        }
    }
}

/// Masked copies by (file, regions, settings), bounded by bytes (module doc).
pub(crate) struct MaskedCache {
    budget: usize,
    inner: Mutex<Inner>,
    /// Copies being made now, by key: later requests for the key wait on the same cell.
    making: Mutex<HashMap<String, Arc<OnceCell<Bytes>>>>,
}

impl MaskedCache {
    /// A cache holding at most `budget_mb` MiB of JPEG bytes (0: keeps nothing).
    pub(crate) fn new(budget_mb: u32) -> MaskedCache {
        MaskedCache {
            budget: usize::try_from(budget_mb)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            inner: Mutex::new(Inner {
                copies: LruCache::new_unbounded(),
                bytes: 0,
            }),
            making: Mutex::new(HashMap::new()),
        }
    }

    /// The copy under `key`: kept, being made by another request (waited for), or made now by
    /// `make` and kept. A failed `make` is not kept and not shared: the next waiter tries
    /// itself (a corrupt file fails fast). A request dropped while making hands the work to
    /// the next waiter. With a zero budget every request makes its own copy.
    pub(crate) async fn get_or_make<F, Fut, E>(
        &self,
        key: String,
        make: F,
    ) -> Result<(Bytes, Served), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if let Some(copy) = self.get(&key) {
            return Ok((copy, Served::Cached));
        }
        if self.budget == 0 {
            return make().await.map(|copy| (copy, Served::Made));
        }
        let cell = self.lock_making().entry(key.clone()).or_default().clone();
        let _leave = Leave {
            cache: self,
            key: &key,
            cell: &cell,
        };
        let made_here = AtomicBool::new(false);
        let result = cell
            .get_or_try_init(|| async {
                // Made by a request that finished between our look and our turn.
                if let Some(copy) = self.get(&key) {
                    return Ok(copy);
                }
                made_here.store(true, Ordering::Relaxed);
                let copy = make().await?;
                // Kept before the cell is let go, so a request arriving after that finds it.
                self.put(key.clone(), copy.clone());
                Ok(copy)
            })
            .await
            .cloned();
        let served = if made_here.load(Ordering::Relaxed) {
            Served::Made
        } else {
            Served::Cached
        };
        result.map(|copy| (copy, served))
    }

    fn lock_making(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Bytes>>>> {
        self.making.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of the masked copy of file `sha256` with `regions` under `cfg`: every input of
    /// `masked_copy` but the bytes, which `sha256` names.
    pub(crate) fn key(
        sha256: &str,
        content_type: &str,
        regions: Option<&[Region]>,
        cfg: &PrivacyConfig,
    ) -> String {
        // Serialising our own types cannot fail; an empty text would only make a distinct key.
        let regions = serde_json::to_string(&regions).unwrap_or_default();
        let settings = serde_json::to_string(&(
            cfg.mask,
            cfg.block_px,
            cfg.person_head_fraction,
            cfg.vehicle_plate_fraction,
            cfg.whole_image_cells,
            cfg.jpeg_quality,
        ))
        .unwrap_or_default();
        sha256_hex(&[
            sha256.as_bytes(),
            b"\n",
            content_type.as_bytes(),
            b"\n",
            regions.as_bytes(),
            b"\n",
            settings.as_bytes(),
        ])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The copy kept under `key`, marked as the most recently used.
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        self.lock().copies.get(key).cloned()
    }

    /// Keeps `copy` under `key`, dropping the least recently used copies beyond the budget.
    pub(crate) fn put(&self, key: String, copy: Bytes) {
        if copy.len() > self.budget / 4 {
            return;
        }
        let mut inner = self.lock();
        let len = copy.len();
        if let Some(old) = inner.copies.insert(key, copy) {
            inner.bytes -= old.len();
        }
        inner.bytes += len;
        while inner.bytes > self.budget {
            match inner.copies.remove_lru() {
                Some((_, gone)) => inner.bytes -= gone.len(),
                None => break,
            }
        }
    }

    /// Forgets every copy (retention purged originals).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.copies.clear();
        inner.bytes = 0;
    }

    /// Copies kept and their bytes.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.copies.len(), inner.bytes)
    }
}

/// Takes a key's cell out of `making` when a request leaves it (done, failed or dropped), unless
/// it failed or was dropped while others still wait on it: one of them makes the copy then.
struct Leave<'a> {
    cache: &'a MaskedCache,
    key: &'a str,
    cell: &'a Arc<OnceCell<Bytes>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut making = self.cache.lock_making();
        let ours = making
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell));
        // Holders: the map, this request, and one per waiting request (cloned under this lock).
        if ours && (self.cell.initialized() || Arc::strong_count(self.cell) <= 2) {
            making.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(kind: &str, x0: f32) -> Region {
        Region {
            kind: kind.into(),
            x0,
            y0: 0.0,
            x1: x0 + 10.0,
            y1: 10.0,
        }
    }

    #[test]
    fn the_key_changes_with_every_input_of_the_copy() {
        let cfg = PrivacyConfig::default();
        let r = [region("plate", 1.0)];
        let base = MaskedCache::key("abc", "image/jpeg", Some(&r), &cfg);
        assert_eq!(base, MaskedCache::key("abc", "image/jpeg", Some(&r), &cfg));
        assert_ne!(base, MaskedCache::key("abd", "image/jpeg", Some(&r), &cfg));
        assert_ne!(base, MaskedCache::key("abc", "image/png", Some(&r), &cfg));
        assert_ne!(base, MaskedCache::key("abc", "image/jpeg", None, &cfg));
        let moved = [region("plate", 2.0)];
        assert_ne!(
            base,
            MaskedCache::key("abc", "image/jpeg", Some(&moved), &cfg)
        );
        let person = [region("person", 1.0)];
        assert_ne!(
            base,
            MaskedCache::key("abc", "image/jpeg", Some(&person), &cfg)
        );
        let coarser = PrivacyConfig {
            block_px: 24,
            ..PrivacyConfig::default()
        };
        assert_ne!(
            base,
            MaskedCache::key("abc", "image/jpeg", Some(&r), &coarser)
        );
        let quality = PrivacyConfig {
            jpeg_quality: 60,
            ..PrivacyConfig::default()
        };
        assert_ne!(
            base,
            MaskedCache::key("abc", "image/jpeg", Some(&r), &quality)
        );
        // Who sees originals does not change a masked copy.
        let roles = PrivacyConfig {
            original_roles: Vec::new(),
            ..PrivacyConfig::default()
        };
        assert_eq!(
            base,
            MaskedCache::key("abc", "image/jpeg", Some(&r), &roles)
        );
    }

    #[test]
    fn the_least_recently_used_copies_go_first_and_the_budget_holds() {
        let cache = MaskedCache::new(1);
        let chunk = Bytes::from(vec![7u8; 200 << 10]); // 200 KiB: five fit in 1 MiB
        for k in ["a", "b", "c", "d", "e"] {
            cache.put(k.into(), chunk.clone());
        }
        assert_eq!(cache.size(), (5, 5 * (200 << 10)));
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.put("f".into(), chunk.clone());
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some());
        let (n, bytes) = cache.size();
        assert_eq!(n, 5);
        assert!(bytes <= 1 << 20);
        // The same key again replaces, not adds.
        cache.put("f".into(), Bytes::from(vec![1u8; 10]));
        assert_eq!(cache.size(), (5, 4 * (200 << 10) + 10));
        assert_eq!(cache.get("f").as_deref(), Some(&[1u8; 10][..]));
    }

    #[test]
    fn a_copy_over_a_quarter_of_the_budget_or_a_zero_budget_keeps_nothing() {
        let cache = MaskedCache::new(1);
        cache.put("big".into(), Bytes::from(vec![0u8; (1 << 20) / 4 + 1]));
        assert_eq!(cache.size(), (0, 0));
        let off = MaskedCache::new(0);
        off.put("x".into(), Bytes::from_static(b"jpeg"));
        assert!(off.get("x").is_none());
        assert_eq!(off.size(), (0, 0));
    }

    /// Asks `cache` for key "k" with a making that would give `made` (`Err` for a failure).
    async fn ask(
        cache: &MaskedCache,
        made: Result<&'static [u8], &str>,
    ) -> Result<(Bytes, Served), String> {
        let made = made.map(Bytes::from_static).map_err(str::to_string);
        cache.get_or_make("k".into(), || async { made }).await
    }

    /// Requests for one key arriving while its copy is made: made once, all get it.
    #[tokio::test]
    async fn a_copy_being_made_is_waited_for_not_made_again() {
        use std::sync::atomic::AtomicUsize;
        let cache = Arc::new(MaskedCache::new(1));
        let makes = Arc::new(AtomicUsize::new(0));
        let (go, gate) = tokio::sync::watch::channel(false);
        let mut requests = Vec::new();
        for _ in 0..4 {
            let (cache, makes, mut gate) = (cache.clone(), makes.clone(), gate.clone());
            requests.push(tokio::spawn(async move {
                cache
                    .get_or_make("k".into(), || async move {
                        makes.fetch_add(1, Ordering::SeqCst);
                        // Held until every request has asked.
                        let _ = gate.wait_for(|open| *open).await;
                        Ok::<_, String>(Bytes::from_static(b"masked"))
                    })
                    .await
            }));
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        go.send(true).expect("the requests hold the gate");
        let mut served = Vec::new();
        for r in requests {
            let (copy, how) = r.await.expect("no panic").expect("made");
            assert_eq!(&copy[..], b"masked");
            served.push(how);
        }
        assert_eq!(
            makes.load(Ordering::SeqCst),
            1,
            "made once for four requests"
        );
        assert_eq!(served.iter().filter(|s| **s == Served::Made).count(), 1);
        assert!(cache.lock_making().is_empty(), "nothing left in flight");
        let (copy, how) = ask(&cache, Err("not asked")).await.expect("kept");
        assert_eq!((&copy[..], how), (&b"masked"[..], Served::Cached));
    }

    #[tokio::test]
    async fn a_failed_copy_is_not_kept_and_the_next_request_tries_again() {
        let cache = MaskedCache::new(1);
        let failed = ask(&cache, Err("corrupt")).await;
        assert_eq!(failed.err().as_deref(), Some("corrupt"));
        assert!(cache.lock_making().is_empty());
        let (copy, how) = ask(&cache, Ok(b"fixed")).await.expect("made");
        assert_eq!((&copy[..], how), (&b"fixed"[..], Served::Made));
    }

    /// A request dropped while making (the inspector closed the page) leaves nothing behind,
    /// and the next request makes the copy.
    #[tokio::test]
    async fn a_request_dropped_while_making_leaves_nothing_in_flight() {
        let cache = MaskedCache::new(1);
        let stuck = cache.get_or_make("k".into(), || async {
            std::future::pending::<Result<Bytes, String>>().await
        });
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), stuck).await;
        assert!(timed_out.is_err());
        assert!(cache.lock_making().is_empty());
        let (_, how) = ask(&cache, Ok(b"made")).await.expect("made");
        assert_eq!(how, Served::Made);
    }

    #[tokio::test]
    async fn with_a_zero_budget_every_request_makes_its_own() {
        let cache = MaskedCache::new(0);
        for _ in 0..2 {
            let (_, how) = ask(&cache, Ok(b"made")).await.expect("made");
            assert_eq!(how, Served::Made);
        }
    }

    #[test]
    fn clear_forgets_everything() {
        let cache = MaskedCache::new(1);
        cache.put("a".into(), Bytes::from_static(b"jpeg"));
        cache.clear();
        assert!(cache.get("a").is_none());
        assert_eq!(cache.size(), (0, 0));
    }
}

/// What the cache saves per request on real photos: `cargo test --release -p gateway --lib
/// masked_cache_bench -- --ignored --nocapture`. Photos: every `.jpg` in `MASKED_BENCH_DIR`
/// (default: the Debian `darknet` samples the test harness fetches), each masked with a plate
/// and a person box; rounds alternate making the copy and serving it from the cache; medians.
#[cfg(test)]
mod bench {
    use super::*;
    use std::time::Instant;

    fn photos() -> Vec<(String, Vec<u8>)> {
        let dir = std::env::var("MASKED_BENCH_DIR").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!(
                "{home}/.cache/enforcement-gateway/test-data/darknet/root/usr/share/darknet/data"
            )
        });
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                    .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    #[ignore = "benchmark: run with --release --ignored --nocapture"]
    fn masked_cache_bench() {
        let photos = photos();
        assert!(!photos.is_empty(), "no .jpg photos (set MASKED_BENCH_DIR)");
        let cfg = PrivacyConfig::default();
        let regions = [
            Region {
                kind: "plate".into(),
                x0: 40.0,
                y0: 60.0,
                x1: 180.0,
                y1: 100.0,
            },
            Region {
                kind: "person".into(),
                x0: 200.0,
                y0: 20.0,
                x1: 320.0,
                y1: 400.0,
            },
        ];
        let cache = MaskedCache::new(64);
        let (mut made, mut served) = (Vec::new(), Vec::new());
        let rounds = 5;
        for round in 0..rounds {
            eprintln!("round {}/{rounds}: {} photos", round + 1, photos.len());
            for (name, bytes) in &photos {
                let key = MaskedCache::key(name, "image/jpeg", Some(&regions), &cfg);
                let t = Instant::now();
                let copy =
                    crate::clue::privacy::masked_copy(bytes, "image/jpeg", Some(&regions), &cfg)
                        .expect("a real photo masks");
                made.push(t.elapsed().as_secs_f64() * 1e3);
                cache.put(key.clone(), Bytes::from(copy));
                let t = Instant::now();
                let hit = cache.get(&key).expect("just kept");
                served.push(t.elapsed().as_secs_f64() * 1e3);
                assert!(!hit.is_empty());
            }
        }
        let (m, s) = (median(made), median(served));
        println!(
            "masked copy of {} real photos x {rounds} rounds: made {m:.2} ms, served from the \
             cache {s:.4} ms (medians; ratio {:.5})",
            photos.len(),
            s / m
        );
    }
}
