//! Oversight in SQLite: the history the supervision models read, duplicate-act links
//! (audited on both clues), and warnings that only ever rise.

use super::audit::{AUDIT_COLS, append_audit, audit_from_row};
use super::{CLUE_COLS, SqliteStore, clue_from_row, corrupt, json_col, read_clue};
use crate::clue::audit::{self, AuditAction};
use crate::clue::model::*;
use crate::clue::oversight::{ClueRecord, Finding, LinkProposal, Warning};
use crate::clue::store::{OversightStore, StoreError, subject_key, warning_detail};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;

pub(super) fn warning_from_row(r: &Row) -> rusqlite::Result<Warning> {
    let level: String = r.get(2)?;
    Ok(Warning {
        id: r.get(0)?,
        finding: Finding {
            model: r.get(1)?,
            key: r.get(3)?,
            level: Escalation::parse(&level)
                .ok_or_else(|| corrupt(format!("warning level {level}")))?,
            site: r.get(4)?,
            clue_id: r.get(5)?,
            concerns: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
            message: r.get(7)?,
            detail: json_col(r.get(8)?),
        },
        first_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

use crate::clue::store::WARNING_COLS;

impl OversightStore for SqliteStore {
    fn oversight_history(&self, since_ms: i64) -> Result<Vec<ClueRecord>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {CLUE_COLS} FROM clues WHERE updated_ms >= ?1 \
             OR id IN (SELECT lead_id FROM clue_links l JOIN clues c ON c.id = l.linked_id \
                       WHERE c.updated_ms >= ?1) \
             OR id IN (SELECT linked_id FROM clue_links l JOIN clues c ON c.id = l.lead_id \
                       WHERE c.updated_ms >= ?1) \
             ORDER BY id LIMIT 200000"
        ))?;
        let clues = st
            .query_map([since_ms], clue_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut audit_st = conn.prepare(&format!(
            "SELECT {AUDIT_COLS} FROM audit WHERE clue_id = ?1 ORDER BY seq"
        ))?;
        let mut out = Vec::with_capacity(clues.len());
        for clue in clues {
            let audit = audit_st
                .query_map([clue.id], audit_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let evidence: i64 = conn.query_row(
                "SELECT COUNT(*) FROM evidence WHERE clue_id = ?1",
                [clue.id],
                |r| r.get(0),
            )?;
            let linked_to: Option<i64> = conn
                .query_row(
                    "SELECT lead_id FROM clue_links WHERE linked_id = ?1",
                    [clue.id],
                    |r| r.get(0),
                )
                .optional()?;
            out.push(ClueRecord {
                clue,
                audit,
                evidence,
                linked_to,
            });
        }
        Ok(out)
    }

    fn link(
        &self,
        p: &LinkProposal,
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in [p.lead, p.linked] {
            read_clue(&tx, id)?.ok_or(StoreError::NotFound(id))?;
        }
        let already: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM clue_links WHERE linked_id IN (?1, ?2))",
            params![p.lead, p.linked],
            |r| r.get(0),
        )?;
        if already || p.lead == p.linked {
            return Ok(Vec::new());
        }
        tx.execute(
            "INSERT INTO clue_links (linked_id, lead_id, reason, actor, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.linked, p.lead, p.reason, actor, now_ms],
        )?;
        // Both clues' trails say so; both are delivered as changes (`linked`).
        let changes = vec![
            self.record(
                &tx,
                now_ms,
                actor,
                AuditAction::Linked,
                p.linked,
                json!({"lead": p.lead, "reason": p.reason}),
            )?,
            self.record(
                &tx,
                now_ms,
                actor,
                AuditAction::Linked,
                p.lead,
                json!({"linked": p.linked, "reason": p.reason}),
            )?,
        ];
        tx.commit()?;
        Ok(changes)
    }

    fn raise_warnings(&self, found: &[Finding], now_ms: i64) -> Result<Vec<Warning>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut changed = Vec::new();
        for f in found {
            let current: Option<String> = tx
                .query_row(
                    "SELECT level FROM oversight_warnings WHERE key = ?1",
                    [&f.key],
                    |r| r.get(0),
                )
                .optional()?;
            let concerns = serde_json::to_string(&f.concerns)
                .map_err(|e| StoreError::Corrupt(format!("encoding warning: {e}")))?;
            let detail = audit::canonical_json(&f.detail);
            let old = current.as_deref().and_then(Escalation::parse);
            let level = old.map_or(f.level, |o| o.max(f.level));
            match old {
                None => {
                    tx.execute(
                        "INSERT INTO oversight_warnings (key, model, level, site, clue_id, \
                         concerns, message, detail, first_ms, updated_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                        params![
                            f.key,
                            f.model,
                            level.as_str(),
                            f.site,
                            f.clue_id,
                            concerns,
                            f.message,
                            detail,
                            now_ms
                        ],
                    )?;
                }
                Some(o) => {
                    tx.execute(
                        "UPDATE oversight_warnings SET level = ?2, concerns = ?3, message = ?4, \
                         detail = ?5, updated_ms = CASE WHEN ?2 != ?7 THEN ?6 ELSE updated_ms END \
                         WHERE key = ?1",
                        params![
                            f.key,
                            level.as_str(),
                            concerns,
                            f.message,
                            detail,
                            now_ms,
                            o.as_str()
                        ],
                    )?;
                    if o == level {
                        continue;
                    }
                }
            }
            // New or raised: on the audit chain (no clue id: clue trails are visible to the
            // officers concerned, warnings are not).
            let seq = append_audit(
                &tx,
                self.key(),
                now_ms,
                "oversight",
                AuditAction::OversightWarning,
                None,
                &warning_detail(f, level),
            )?;
            let w = tx.query_row(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE key = ?1"),
                [&f.key],
                warning_from_row,
            )?;
            // To the central platform, for its supervisors: `oversight/v1/{site|all}/{level}`.
            let topic = format!(
                "oversight/v1/{}/{}",
                w.finding.site.as_deref().unwrap_or("all"),
                level.as_str()
            );
            let event = json!({
                "event_id": seq, "event": AuditAction::OversightWarning.as_str(),
                "at_ms": now_ms, "warning": w,
            });
            self.enqueue(&tx, &topic, &event, now_ms)?;
            changed.push(w);
        }
        tx.commit()?;
        Ok(changed)
    }

    fn warnings(&self, scope: Option<&[String]>, limit: u32) -> Result<Vec<Warning>, StoreError> {
        let mut sql = format!("SELECT {WARNING_COLS} FROM oversight_warnings");
        let args: Vec<String> = scope.map(|s| s.to_vec()).unwrap_or_default();
        if scope.is_some() {
            let marks: Vec<String> = (1..=args.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(
                " WHERE site IS NULL OR site IN ({})",
                marks.join(", ")
            ));
        }
        sql.push_str(&format!(
            " ORDER BY CASE level WHEN 'red' THEN 2 ELSE 1 END DESC, updated_ms DESC, id DESC \
             LIMIT {}",
            limit.clamp(1, 10_000)
        ));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), warning_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn prior_clues_since(&self, id: i64, since_ms: i64) -> Result<i64, StoreError> {
        let conn = self.conn();
        let clue = read_clue(&conn, id)?.ok_or(StoreError::NotFound(id))?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM clues WHERE subject_key = ?1 AND kind = ?2 AND id < ?3 \
             AND created_ms >= ?4",
            params![subject_key(&clue.subject), clue.kind, id, since_ms],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use crate::clue::lifecycle::Action;
    use crate::clue::model::{Escalation, NewEvidence};
    use crate::clue::signal::{ClueEvent, Level};
    use crate::clue::store::SqliteStore;
    use crate::clue::store::{AuditLog, CHANNEL_MQTT, ClueRecords, DeliveryQueue, OversightStore};
    use serde_json::json;

    #[test]
    fn warnings_are_kept_once_raised_never_lowered_and_queued_for_the_platform() {
        use crate::clue::oversight::Finding;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("clues.sqlite"), vec![CHANNEL_MQTT]).expect("open");
        let f = |level| Finding {
            model: "untouched_claim".into(),
            key: "untouched_claim/7".into(),
            level,
            site: Some("s1".into()),
            clue_id: Some(7),
            concerns: vec!["ann#1".into()],
            message: "m".into(),
            detail: json!({}),
        };
        assert_eq!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 1)
                .expect("new")
                .len(),
            1
        );
        assert!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 2)
                .expect("same")
                .is_empty()
        );
        let red = store
            .raise_warnings(&[f(Escalation::Red)], 3)
            .expect("raised");
        assert_eq!(red[0].finding.level, Escalation::Red);
        assert!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 4)
                .expect("lower")
                .is_empty()
        );
        let all = store.warnings(Some(&["s1".into()]), 10).expect("list");
        assert_eq!((all.len(), all[0].finding.level), (1, Escalation::Red));
        assert_eq!((all[0].first_ms, all[0].updated_ms), (1, 3));
        assert!(
            store
                .warnings(Some(&["s2".into()]), 10)
                .expect("other site")
                .is_empty()
        );
        let queued = store.pending(CHANNEL_MQTT, 10).expect("pending");
        let topics: Vec<&str> = queued.iter().map(|d| d.topic.as_str()).collect();
        assert_eq!(topics, ["oversight/v1/s1/yellow", "oversight/v1/s1/red"]);
        assert!(store.verify_audit().expect("verify").ok);
    }

    /// Benchmark: `cargo test -p gateway --release --lib oversight_history_speed -- --ignored
    /// --nocapture`. What one oversight run reads: 10,000 clues with 3 audit entries each.
    #[test]
    #[ignore = "benchmark: cargo test -p gateway --release --lib oversight_history_speed -- --ignored --nocapture"]
    fn oversight_history_speed() {
        use crate::clue::signal::Subject;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("clues.sqlite"), vec![]).expect("open");
        let n = 10_000;
        let items: Vec<(ClueEvent, Vec<NewEvidence>, i64)> = (0..n)
            .map(|i| {
                let subject = Subject {
                    site: format!("s{}", i % 10),
                    device: Some(format!("d{i}")),
                    ..Default::default()
                };
                let ev = ClueEvent {
                    rule: "r".into(),
                    kind: "k".into(),
                    level: Level::Medium,
                    dedup_key: ClueEvent::default_key("r", &subject),
                    subject,
                    at_ms: i,
                    title: "t".into(),
                    detail: json!({}),
                    evidence: vec![],
                    department: Some(["water", "market"][(i % 2) as usize].into()),
                    assisting: Vec::new(),
                };
                (ev, vec![], 1_000_000)
            })
            .collect();
        store.ingest_batch(&items, 1).expect("ingest");
        for id in 1..=n {
            store
                .act(
                    id,
                    &Action::Claim { note: None },
                    &format!("o{}#1", id % 30),
                    2,
                )
                .expect("claim");
            store
                .act(
                    id,
                    &Action::Resolve { note: None },
                    &format!("o{}#1", id % 30),
                    3,
                )
                .expect("resolve");
        }
        let t = std::time::Instant::now();
        let h = store.oversight_history(0).expect("history");
        let read_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = std::time::Instant::now();
        let cfg = crate::clue::oversight::OversightConfig::default();
        let (f, _) = crate::clue::oversight::run_models(&h, 10, &cfg);
        let model_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "oversight run over {} clues: history read {read_ms:.0} ms, models {model_ms:.0} ms ({} findings)",
            h.len(),
            f.len()
        );
    }
}
