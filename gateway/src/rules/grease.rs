//! Grease-trap analytics: daily inflow (the restaurant's discharge into the trap) and fill rate
//! per trap, and the registry of pump-out service records that make a level drop legitimate.
//!
//! The drop detection itself is the `discharge` rule condition (see `engine`); this module
//! holds the figures it reports and the records it checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A pump-out registered up to this long before or after a drop still explains it (service
/// crews log their visit by hand, minutes off either way).
pub(crate) const PUMPOUT_SLACK_MS: i64 = 30 * 60 * 1000;
/// Records older than this are forgotten.
const PUMPOUT_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Figures for one trap (one restaurant's `grease_trap` device).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct TrapStats {
    /// Start of the current local day (UTC ms).
    pub day_start_ms: i64,
    /// Contents added today (L): the restaurant's discharge into the trap.
    pub inflow_today_l: f64,
    /// Contents removed today (L): pump-outs and drops.
    pub removed_today_l: f64,
    /// Average inflow today, L per hour since the first reading of the day.
    pub fill_rate_l_per_h: f64,
    pub last_volume_l: f64,
    pub last_fill_pct: Option<f64>,
    pub last_at_ms: i64,
    /// First reading of the current day (for the fill rate).
    #[serde(default)]
    first_today_ms: i64,
}

impl TrapStats {
    fn observe_volume(&mut self, volume_l: f64, at_ms: i64, day_start_ms: i64) {
        if at_ms < self.last_at_ms {
            return; // late reading: the running totals already moved on
        }
        let first = self.last_at_ms == 0;
        if first {
            self.last_volume_l = volume_l;
        }
        if first || day_start_ms != self.day_start_ms {
            self.day_start_ms = day_start_ms;
            self.inflow_today_l = 0.0;
            self.removed_today_l = 0.0;
            self.first_today_ms = at_ms;
        }
        let delta = volume_l - self.last_volume_l;
        if delta > 0.0 {
            self.inflow_today_l += delta;
        } else {
            self.removed_today_l -= delta;
        }
        self.last_volume_l = volume_l;
        self.last_at_ms = at_ms;
        let hours = (at_ms - self.first_today_ms) as f64 / 3_600_000.0;
        self.fill_rate_l_per_h = if hours > 0.0 {
            self.inflow_today_l / hours
        } else {
            0.0
        };
    }
}

/// Per-trap statistics, keyed by site, then device.
///
/// Two levels so a lookup borrows the reading's texts: keyed by a `(String, String)` pair,
/// every lookup built both strings first, two allocations per reading the flat-line rule
/// judged (`full_at_pct`; issue 24: 2 of the gateway's ~10 allocations per message). Stored in
/// snapshots as before, a list of `[[site, device], stats]` pairs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Traps {
    #[serde(with = "by_site")]
    traps: HashMap<String, HashMap<String, TrapStats>>,
}

impl Traps {
    pub(crate) fn observe_volume(
        &mut self,
        site: &str,
        device: &str,
        volume_l: f64,
        at_ms: i64,
        day_start_ms: i64,
    ) {
        self.update(site, device, |s| {
            s.observe_volume(volume_l, at_ms, day_start_ms)
        });
    }

    pub(crate) fn observe_fill_pct(&mut self, site: &str, device: &str, pct: f64) {
        self.update(site, device, |s| s.last_fill_pct = Some(pct));
    }

    /// Runs `f` on the trap's figures, made on first sight: a known trap costs no allocation.
    fn update(&mut self, site: &str, device: &str, f: impl FnOnce(&mut TrapStats)) {
        if let Some(stats) = self.traps.get_mut(site).and_then(|d| d.get_mut(device)) {
            f(stats);
            return;
        }
        let mut stats = TrapStats::default();
        f(&mut stats);
        self.traps
            .entry(site.to_string())
            .or_default()
            .insert(device.to_string(), stats);
    }

    pub(crate) fn get(&self, site: &str, device: &str) -> Option<TrapStats> {
        self.traps.get(site)?.get(device).copied()
    }
}

/// The snapshot form of [`Traps`]: `[[site, device], stats]` pairs, as when the map was keyed
/// by the pair (snapshots written before load unchanged).
mod by_site {
    use super::{HashMap, TrapStats};
    use serde::{Deserialize, Deserializer, Serializer};

    type Nested = HashMap<String, HashMap<String, TrapStats>>;

    pub(super) fn serialize<S: Serializer>(m: &Nested, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().flat_map(|(site, devices)| {
            devices
                .iter()
                .map(move |(device, stats)| ((site, device), stats))
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
        let mut out = Nested::new();
        for ((site, device), stats) in Vec::<((String, String), TrapStats)>::deserialize(d)? {
            out.entry(site).or_default().insert(device, stats);
        }
        Ok(out)
    }
}

/// (site, device) -> registered visits as (from_ms, to_ms).
type Visits = HashMap<(String, String), Vec<(i64, i64)>>;

/// Registered pump-out service visits. Cloning shares the registry, so the HTTP API can
/// register visits while the rules task reads them.
#[derive(Debug, Clone, Default)]
pub(crate) struct PumpoutRegistry {
    inner: Arc<Mutex<Visits>>,
}

impl PumpoutRegistry {
    /// Records a pump-out of `device` at `site` between `from_ms` and `to_ms` (device time).
    pub(crate) fn register(&self, site: &str, device: &str, from_ms: i64, to_ms: i64) {
        let (from, to) = (from_ms.min(to_ms), from_ms.max(to_ms));
        let mut map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let list = map
            .entry((site.to_string(), device.to_string()))
            .or_default();
        list.retain(|(_, t)| *t >= to.saturating_sub(PUMPOUT_KEEP_MS));
        if list.contains(&(from, to)) {
            return; // replayed from the journal or registered twice
        }
        list.push((from, to));
        tracing::info!(
            site,
            device,
            from_ms = from,
            to_ms = to,
            "pump-out registered"
        );
    }

    /// Registered visits of `site` (every site when `None`) as (site, device, from_ms, to_ms),
    /// oldest first.
    #[cfg(test)]
    pub(crate) fn list(&self, site: Option<&str>) -> Vec<(String, String, i64, i64)> {
        let map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<_> = map
            .iter()
            .filter(|((s, _), _)| site.is_none_or(|want| s == want))
            .flat_map(|((s, d), v)| v.iter().map(move |(f, t)| (s.clone(), d.clone(), *f, *t)))
            .collect();
        out.sort_by_key(|(s, d, f, _)| (*f, s.clone(), d.clone()));
        out
    }

    /// Whether a registered pump-out overlaps `[from_ms, to_ms]` (with [`PUMPOUT_SLACK_MS`]).
    pub(crate) fn covers(&self, site: &str, device: &str, from_ms: i64, to_ms: i64) -> bool {
        let map = match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(&(site.to_string(), device.to_string()))
            .is_some_and(|list| {
                list.iter().any(|(f, t)| {
                    f.saturating_sub(PUMPOUT_SLACK_MS) <= to_ms
                        && t.saturating_add(PUMPOUT_SLACK_MS) >= from_ms
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_trap_stats_count_daily_inflow_and_fill_rate() {
        let mut traps = Traps::default();
        let h = 3_600_000;
        traps.observe_volume("r-1", "trap-1", 100.0, h, 0);
        traps.observe_volume("r-1", "trap-1", 110.0, 2 * h, 0);
        traps.observe_volume("r-1", "trap-1", 130.0, 3 * h, 0);
        traps.observe_volume("r-1", "trap-1", 30.0, 4 * h, 0);
        let s = traps.get("r-1", "trap-1").unwrap_or_default();
        assert_eq!(s.inflow_today_l, 30.0);
        assert_eq!(s.removed_today_l, 100.0);
        assert!((s.fill_rate_l_per_h - 10.0).abs() < 1e-9);
        // A new local day starts the totals again.
        traps.observe_volume("r-1", "trap-1", 40.0, 25 * h, 24 * h);
        let s = traps.get("r-1", "trap-1").unwrap_or_default();
        assert_eq!(s.inflow_today_l, 10.0);
    }

    /// Traps are told apart by site and device together (a nested map mixing the two up
    /// answers the wrong trap), and snapshots keep the `[[site, device], stats]` form.
    #[test]
    fn trap_stats_are_kept_per_site_and_device_in_the_pairs_form() {
        let mut traps = Traps::default();
        traps.observe_fill_pct("a", "b", 10.0);
        traps.observe_fill_pct("b", "a", 20.0);
        traps.observe_fill_pct("a", "c", 30.0);
        traps.observe_volume("a", "b", 5.0, 1_000, 0);
        let fill = |t: &Traps, s: &str, d: &str| t.get(s, d).and_then(|x| x.last_fill_pct);
        assert_eq!(fill(&traps, "a", "b"), Some(10.0));
        assert_eq!(fill(&traps, "b", "a"), Some(20.0));
        assert_eq!(fill(&traps, "a", "c"), Some(30.0));
        assert_eq!(traps.get("a", "b").map(|x| x.last_volume_l), Some(5.0));
        assert!(traps.get("b", "b").is_none() && traps.get("c", "a").is_none());
        let json = serde_json::to_value(&traps).expect("json");
        let mut pairs: Vec<(String, String, Option<f64>)> = json["traps"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|p| {
                (
                    p[0][0].as_str().unwrap_or_default().to_string(),
                    p[0][1].as_str().unwrap_or_default().to_string(),
                    p[1]["last_fill_pct"].as_f64(),
                )
            })
            .collect();
        pairs.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        let want = |s: &str, d: &str, f: f64| (s.to_string(), d.to_string(), Some(f));
        assert_eq!(
            pairs,
            vec![
                want("a", "b", 10.0),
                want("a", "c", 30.0),
                want("b", "a", 20.0)
            ]
        );
        let back: Traps = serde_json::from_value(json).expect("load");
        for (s, d) in [("a", "b"), ("b", "a"), ("a", "c")] {
            assert_eq!(back.get(s, d), traps.get(s, d));
        }
        // A snapshot written by the pair-keyed map loads.
        let old = r#"{"traps":[[["r-1","trap-1"],{"day_start_ms":0,"inflow_today_l":1.0,
            "removed_today_l":0.0,"fill_rate_l_per_h":0.0,"last_volume_l":7.0,
            "last_fill_pct":null,"last_at_ms":5,"first_today_ms":0}]]}"#;
        let old: Traps = serde_json::from_str(old).expect("old form");
        assert_eq!(old.get("r-1", "trap-1").map(|x| x.last_volume_l), Some(7.0));
    }

    #[test]
    fn rules_pumpout_registry_matches_with_slack() {
        let reg = PumpoutRegistry::default();
        reg.register("r-1", "trap-1", 10_000_000, 11_000_000);
        assert!(reg.covers("r-1", "trap-1", 11_500_000, 12_000_000));
        assert!(!reg.covers("r-1", "trap-1", 20_000_000, 21_000_000));
        assert!(!reg.covers("r-2", "trap-1", 10_000_000, 11_000_000));
    }
}
