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
//! Cloning shares the registry (like the pump-out registry), so the API
//! (`POST /api/v1/maintenance`) registers works through a [`MaintenanceJournal`]
//! (`{storage.dir}/maintenance.jsonl`, replayed at start) while the rules task reads them.

use super::journal::{Journal, JournalRecord};
use crate::clue::audit::AuditAction;
use serde::{Deserialize, Serialize};
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

    /// Records works on `device` at `site` between `from_ms` and `to_ms` (device time): in
    /// `gateway run` through the [`MaintenanceJournal`], in the scenario and the tests directly.
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

/// One registered period of works (a crew's permit), as the API takes it and the journal
/// keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MaintenanceRecord {
    pub site: String,
    pub device: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Who registered it (the API principal's actor name).
    pub by: String,
    /// When it was registered (gateway clock).
    pub at_ms: i64,
    /// The works permit's number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
    /// Crew, contractor or any free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Works longer than this are a typo or a blanket excuse (a week of unnoticed openings).
const MAX_WORKS_MS: i64 = 7 * 24 * 3600 * 1000;
/// How far ahead works may be registered: permits are filed before the crew comes, but not
/// for a season in advance.
const MAX_AHEAD_MS: i64 = 30 * 24 * 3600 * 1000;
/// Works that ended longer ago than this can no longer be registered (they could only excuse
/// readings that are still to arrive from a device's backlog).
const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a registration cannot be works (the API answers 400 with it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidMaintenance(&'static str);

impl MaintenanceRecord {
    /// Refuses what cannot be registered works, with the message the API answers (400): ids
    /// that are not plain segments, works that end before they start or last more than
    /// 7 days, start more than 30 days ahead or ended more than 7 days ago, a permit or
    /// note over 1000 bytes.
    pub(crate) fn check(&self, now_ms: i64) -> Result<(), InvalidMaintenance> {
        super::journal::check_span(&self.site, &self.device, self.from_ms, self.to_ms)
            .map_err(InvalidMaintenance)?;
        if self.to_ms - self.from_ms > MAX_WORKS_MS {
            return Err(InvalidMaintenance(
                "works are registered for at most 7 days at a time",
            ));
        }
        if self.from_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(InvalidMaintenance(
                "works can be registered at most 30 days ahead",
            ));
        }
        if self.to_ms < now_ms.saturating_sub(MAX_AGE_MS) {
            return Err(InvalidMaintenance(
                "works that ended more than 7 days ago can no longer be registered",
            ));
        }
        if [&self.permit, &self.note]
            .iter()
            .any(|t| t.as_ref().is_some_and(|t| t.len() > 1000))
        {
            return Err(InvalidMaintenance("permit and note: at most 1000 bytes"));
        }
        Ok(())
    }
}

impl JournalRecord for MaintenanceRecord {
    type Registry = MaintenanceRegistry;
    const WHAT: &'static str = "maintenance";
    const AUDIT: AuditAction = AuditAction::MaintenanceRegistered;
    const DETAIL_KEY: &'static str = "maintenance";
    fn site(&self) -> &str {
        &self.site
    }
    fn apply(&self, registry: &MaintenanceRegistry) {
        registry.register(&self.site, &self.device, self.from_ms, self.to_ms);
    }
}

/// The maintenance journal (`{storage.dir}/maintenance.jsonl`) in front of the rules'
/// registry.
pub(crate) type MaintenanceJournal = Journal<MaintenanceRecord>;

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

    const NOW: i64 = 1_800_000_000_000;
    const H: i64 = 3_600_000;

    fn works(from_ms: i64, to_ms: i64) -> MaintenanceRecord {
        MaintenanceRecord {
            site: "mh-1".into(),
            device: "cover-1".into(),
            from_ms,
            to_ms,
            by: "ann#1".into(),
            at_ms: NOW,
            permit: Some("WP-17".into()),
            note: None,
        }
    }

    #[test]
    fn works_must_be_a_plausible_window() {
        let ok = |r: MaintenanceRecord| r.check(NOW).map_err(|e| e.to_string());
        assert_eq!(ok(works(NOW + H, NOW + 3 * H)), Ok(()), "filed ahead");
        assert_eq!(ok(works(NOW - 2 * H, NOW - H)), Ok(()), "filed after");
        assert_eq!(ok(works(NOW, NOW + MAX_WORKS_MS)), Ok(()));
        assert_eq!(
            ok(works(NOW + H, NOW)),
            Err("to_ms is before from_ms".into())
        );
        assert!(ok(works(NOW, NOW + MAX_WORKS_MS + 1)).is_err_and(|e| e.contains("7 days")));
        assert!(ok(works(NOW + MAX_AHEAD_MS + 1, NOW + MAX_AHEAD_MS + H)).is_err());
        assert!(ok(works(NOW - MAX_AGE_MS - 2 * H, NOW - MAX_AGE_MS - 1)).is_err());
        let mut wild = works(NOW, NOW + H);
        wild.device = "cover/#".into();
        assert!(ok(wild).is_err());
        let mut long = works(NOW, NOW + H);
        long.permit = Some("x".repeat(1001));
        assert!(ok(long).is_err());
    }

    #[test]
    fn registered_works_are_audited_first_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maintenance.jsonl");
        let reg = MaintenanceRegistry::default();
        let j = MaintenanceJournal::open(&path, reg.clone()).unwrap();
        let refused = j.register_audited(works(NOW, NOW + H), |_, _| Err("disk full"));
        assert!(refused.is_err());
        assert!(reg.is_empty() && j.list(None).is_empty());
        let mut audited = None;
        j.register_audited(works(NOW, NOW + H), |action, detail| {
            audited = Some((action, detail.clone()));
            Ok::<_, String>(())
        })
        .unwrap();
        assert_eq!(
            audited,
            Some((
                AuditAction::MaintenanceRegistered,
                serde_json::json!({"maintenance": works(NOW, NOW + H)})
            ))
        );
        assert!(reg.covers("mh-1", "cover-1", NOW + H / 2));
        drop(j);

        let reg = MaintenanceRegistry::default();
        let j = MaintenanceJournal::open(&path, reg.clone()).unwrap();
        assert_eq!(j.list(Some("mh-1")), vec![works(NOW, NOW + H)]);
        assert!(j.list(Some("mh-2")).is_empty());
        assert!(reg.covers("mh-1", "cover-1", NOW + H / 2));
        assert!(!reg.covers("mh-1", "cover-2", NOW + H / 2));
    }
}
