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

/// Per-trap statistics, keyed by (site, device).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Traps {
    #[serde(with = "super::snapshot::pairs")]
    traps: HashMap<(String, String), TrapStats>,
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
        self.entry(site, device)
            .observe_volume(volume_l, at_ms, day_start_ms);
    }

    pub(crate) fn observe_fill_pct(&mut self, site: &str, device: &str, pct: f64) {
        self.entry(site, device).last_fill_pct = Some(pct);
    }

    fn entry(&mut self, site: &str, device: &str) -> &mut TrapStats {
        self.traps
            .entry((site.to_string(), device.to_string()))
            .or_default()
    }

    pub(crate) fn get(&self, site: &str, device: &str) -> Option<TrapStats> {
        self.traps
            .get(&(site.to_string(), device.to_string()))
            .copied()
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

    #[test]
    fn rules_pumpout_registry_matches_with_slack() {
        let reg = PumpoutRegistry::default();
        reg.register("r-1", "trap-1", 10_000_000, 11_000_000);
        assert!(reg.covers("r-1", "trap-1", 11_500_000, 12_000_000));
        assert!(!reg.covers("r-1", "trap-1", 20_000_000, 21_000_000));
        assert!(!reg.covers("r-2", "trap-1", 10_000_000, 11_000_000));
    }
}
