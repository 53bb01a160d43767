//! Registered maintenance: works on a street device (a utility crew lifting a manhole cover to
//! clear the sewer) that are on record, so what the device reports meanwhile is no violation.
//!
//! A rule opts in with `unless_maintenance = true` (the cover rules of
//! `deploy/rules.example.toml` do): while a registered window covers the reading's device time,
//! the rule's condition does not count, as outside its time window, so nothing is raised and
//! no cool-down is spent on the works (a real opening right after them still raises at once).
//! A crew files its permit before it starts; [`MAINTENANCE_SLACK_MS`] covers a crew that starts
//! a little early or closes up a little late.
//!
//! Cloning shares the registry (like the pump-out registry), so an API or a journal can
//! register works while the rules task reads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registered works still cover this long before their start and after their end.
pub(crate) const MAINTENANCE_SLACK_MS: i64 = 15 * 60 * 1000;
/// Works that ended longer ago than this are forgotten (bounds memory).
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// At most this many registered works are kept per device (oldest dropped first).
const MAX_PER_DEVICE: usize = 256;

/// (site, device) -> registered works as (from_ms, to_ms), device time.
type Works = HashMap<(String, String), Vec<(i64, i64)>>;

/// Registered maintenance works per device.
#[derive(Debug, Clone, Default)]
pub(crate) struct MaintenanceRegistry {
    inner: Arc<Mutex<Works>>,
}

impl MaintenanceRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Works> {
        match self.inner.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records works on `device` at `site` between `from_ms` and `to_ms` (device time). Only
    /// the scenario and the tests call it: no API or journal registers works yet, so in
    /// `gateway run` the registry stays empty and `unless_maintenance` never applies.
    #[cfg_attr(
        not(any(test, feature = "demo")),
        expect(dead_code, reason = "no API or journal registers works yet")
    )]
    pub(crate) fn register(&self, site: &str, device: &str, from_ms: i64, to_ms: i64) {
        let (from, to) = (from_ms.min(to_ms), from_ms.max(to_ms));
        let mut map = self.lock();
        let list = map
            .entry((site.to_string(), device.to_string()))
            .or_default();
        list.retain(|(_, t)| *t >= to.saturating_sub(KEEP_MS));
        if list.contains(&(from, to)) {
            return; // registered twice
        }
        if list.len() >= MAX_PER_DEVICE {
            list.remove(0);
        }
        list.push((from, to));
        tracing::info!(
            site,
            device,
            from_ms = from,
            to_ms = to,
            "maintenance registered"
        );
    }

    /// Whether registered works on the device cover `at_ms` (with [`MAINTENANCE_SLACK_MS`]).
    pub(crate) fn covers(&self, site: &str, device: &str, at_ms: i64) -> bool {
        let map = self.lock();
        map.get(&(site.to_string(), device.to_string()))
            .is_some_and(|list| {
                list.iter().any(|(f, t)| {
                    f.saturating_sub(MAINTENANCE_SLACK_MS) <= at_ms
                        && t.saturating_add(MAINTENANCE_SLACK_MS) >= at_ms
                })
            })
    }

    /// Whether anything is registered at all (the engine skips the lookup when not).
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_covers_its_window_with_slack_and_only_its_device() {
        let reg = MaintenanceRegistry::default();
        assert!(reg.is_empty());
        let h = 3_600_000;
        reg.register("mh-1", "cover-1", 10 * h, 12 * h);
        reg.register("mh-1", "cover-1", 10 * h, 12 * h);
        assert!(!reg.is_empty());
        assert!(reg.covers("mh-1", "cover-1", 11 * h));
        assert!(reg.covers("mh-1", "cover-1", 10 * h - MAINTENANCE_SLACK_MS));
        assert!(reg.covers("mh-1", "cover-1", 12 * h + MAINTENANCE_SLACK_MS));
        assert!(!reg.covers("mh-1", "cover-1", 13 * h));
        assert!(!reg.covers("mh-2", "cover-1", 11 * h));
    }
}
