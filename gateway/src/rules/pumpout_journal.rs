//! Pump-out service records survive restarts: kept in a [`Journal`] at
//! `{storage.dir}/pumpouts.jsonl` and replayed into the rules' [`PumpoutRegistry`] at start.
//! A record suppresses "illegal discharge" clues, so who registered it and when is kept with
//! it.

use super::PumpoutRegistry;
use super::journal::{Journal, JournalRecord};
use crate::clue::audit::AuditAction;
use serde::{Deserialize, Serialize};

/// One registered pump-out visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PumpoutRecord {
    pub site: String,
    pub device: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Who registered it (the API principal's actor name).
    pub by: String,
    /// When it was registered (gateway clock).
    pub at_ms: i64,
    /// Contractor, manifest number or any free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A visit longer than this is a typo, not a pump-out (and would hide a week of dumping).
const MAX_VISIT_MS: i64 = 12 * 3600 * 1000;

/// How far past the gateway's clock a visit may end: device and phone clocks drift, but a
/// visit registered for later would excuse dumping that has not happened yet.
pub(crate) const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// How old a visit may be when registered: long enough for paperwork after a weekend, short
/// enough that nobody excuses last month's discharge after the fact.
pub(crate) const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a registration cannot be a pump-out visit (the API answers 400 with it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidPumpout(&'static str);

impl PumpoutRecord {
    /// Refuses what cannot be a pump-out visit, with the message the API answers (400): ids
    /// that are not plain segments, a visit that ends before it starts or lasts more than
    /// [`MAX_VISIT_MS`], a note over 1000 bytes, and (`check_window`) one that has not ended
    /// or is too old to register now.
    pub(crate) fn check(&self, now_ms: i64) -> Result<(), InvalidPumpout> {
        super::journal::check_span(&self.site, &self.device, self.from_ms, self.to_ms)
            .map_err(InvalidPumpout)?;
        if self.to_ms - self.from_ms > MAX_VISIT_MS {
            return Err(InvalidPumpout("a pump-out visit lasts at most 12 hours"));
        }
        if self.note.as_ref().is_some_and(|n| n.len() > 1000) {
            return Err(InvalidPumpout("note: at most 1000 bytes"));
        }
        check_window(self.from_ms, self.to_ms, now_ms)
    }
}

/// Refuses a visit that has not ended yet (beyond the clock tolerance) or began longer ago
/// than [`MAX_AGE_MS`].
fn check_window(from_ms: i64, to_ms: i64, now_ms: i64) -> Result<(), InvalidPumpout> {
    if to_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
        return Err(InvalidPumpout(
            "a pump-out is registered after the visit: to_ms is in the future",
        ));
    }
    if from_ms < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(InvalidPumpout(
            "a pump-out older than 7 days can no longer be registered",
        ));
    }
    Ok(())
}

impl JournalRecord for PumpoutRecord {
    type Registry = PumpoutRegistry;
    const WHAT: &'static str = "pump-out";
    const AUDIT: AuditAction = AuditAction::PumpoutRegistered;
    const DETAIL_KEY: &'static str = "pumpout";
    fn site(&self) -> &str {
        &self.site
    }
    fn apply(&self, registry: &PumpoutRegistry) {
        registry.register(&self.site, &self.device, self.from_ms, self.to_ms);
    }
}

/// The pump-out journal (`{storage.dir}/pumpouts.jsonl`) in front of the rules' registry.
pub(crate) type PumpoutJournal = Journal<PumpoutRecord>;

/// A clue about a trap is explained by the visits to that trap that overlap the clue: its
/// drop window (`detail.from_ms`..`detail.to_ms`) and the time it was seen, widened by
/// [`PUMPOUT_SLACK_MS`](super::grease::PUMPOUT_SLACK_MS) as when the rules silence a drop.
/// Shown on the clue's detail as `pumpouts`, so a reviewer sees the visit registered after the
/// clue opened (or why a later drop raised nothing).
impl crate::clue::explanations::Explanations for PumpoutJournal {
    fn explaining(
        &self,
        clue: &crate::clue::model::Clue,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(device) = clue.subject.device.as_deref() else {
            return out;
        };
        let at = |k: &str| clue.detail.get(k).and_then(serde_json::Value::as_i64);
        let slack = super::grease::PUMPOUT_SLACK_MS;
        let from = at("from_ms")
            .map_or(clue.first_seen_ms, |f| f.min(clue.first_seen_ms))
            .saturating_sub(slack);
        let to = at("to_ms")
            .map_or(clue.last_seen_ms, |t| t.max(clue.last_seen_ms))
            .saturating_add(slack);
        let found: Vec<serde_json::Value> = self
            .list(Some(&clue.subject.site))
            .into_iter()
            .filter(|r| r.device == device && r.from_ms <= to && r.to_ms >= from)
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        if !found.is_empty() {
            out.insert("pumpouts".into(), serde_json::Value::Array(found));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::journal::RegisterError;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn rec(device: &str, from_ms: i64) -> PumpoutRecord {
        PumpoutRecord {
            site: "r-1".into(),
            device: device.into(),
            from_ms,
            to_ms: from_ms + 600_000,
            by: "ann#1".into(),
            at_ms: 5,
            note: Some("manifest 42".into()),
        }
    }

    #[test]
    fn records_survive_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pumpouts.jsonl");
        let j = PumpoutJournal::open(&path, PumpoutRegistry::default()).unwrap();
        j.record(rec("trap-1", 1_000_000)).unwrap();
        j.record(rec("trap-2", 2_000_000)).unwrap();
        drop(j);
        // A crash mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"site":"r-1","dev"#).unwrap();
        drop(f);

        let registry = PumpoutRegistry::default();
        let j = PumpoutJournal::open(&path, registry.clone()).unwrap();
        assert_eq!(
            j.list(Some("r-1")),
            vec![rec("trap-1", 1_000_000), rec("trap-2", 2_000_000)]
        );
        assert!(j.list(Some("r-2")).is_empty());
        assert!(registry.covers("r-1", "trap-2", 2_100_000, 2_200_000));
        assert!(!registry.covers("r-1", "trap-1", 9_000_000, 9_100_000));
        assert_eq!(registry.list(None).len(), 2);
        // A record appended after the torn line is read back on the next start.
        j.record(rec("trap-3", 3_000_000)).unwrap();
        drop(j);
        let j = PumpoutJournal::open(&path, PumpoutRegistry::default()).unwrap();
        assert_eq!(j.list(None).len(), 3);
    }

    #[test]
    fn a_registration_is_audited_before_it_takes_effect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pumpouts.jsonl");
        let registry = PumpoutRegistry::default();
        let j = PumpoutJournal::open(&path, registry.clone()).unwrap();
        // The audit chain refuses: nothing journalled, no clue silenced.
        let e = j
            .register_audited(rec("trap-1", 1_000_000), |_, _| Err("disk full"))
            .unwrap_err();
        assert!(
            matches!(&e, RegisterError::NotAudited(m) if m == "disk full"),
            "{e}"
        );
        assert!(j.list(None).is_empty());
        assert!(!registry.covers("r-1", "trap-1", 1_100_000, 1_200_000));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // The chain takes it: audited (with the record as detail) while not yet in effect,
        // then journalled and seen by the rules.
        let mut audited = None;
        j.register_audited(rec("trap-1", 1_000_000), |action, detail| {
            assert!(j.list(None).is_empty(), "audit comes first");
            audited = Some((action, detail.clone()));
            Ok::<_, String>(())
        })
        .unwrap();
        let (action, detail) = audited.unwrap();
        assert_eq!(action, AuditAction::PumpoutRegistered);
        assert_eq!(
            detail,
            serde_json::json!({"pumpout": rec("trap-1", 1_000_000)})
        );
        assert_eq!(j.list(None), vec![rec("trap-1", 1_000_000)]);
        assert!(registry.covers("r-1", "trap-1", 1_100_000, 1_200_000));
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_visit_must_have_ended_and_be_recent() {
        let ok = |f, t| check_window(f, t, NOW).is_ok();
        assert!(ok(NOW - 3_600_000, NOW - 600_000));
        assert!(
            ok(NOW - 600_000, NOW + FUTURE_TOLERANCE_MS),
            "clock drift tolerated"
        );
        assert!(
            !ok(NOW - 600_000, NOW + FUTURE_TOLERANCE_MS + 1),
            "in the future"
        );
        assert!(
            !ok(NOW + 3_600_000, NOW + 7_200_000),
            "a visit booked ahead"
        );
        assert!(ok(NOW - MAX_AGE_MS, NOW - MAX_AGE_MS + 600_000));
        assert!(
            !ok(NOW - MAX_AGE_MS - 1, NOW - MAX_AGE_MS + 600_000),
            "too old"
        );
    }
}
