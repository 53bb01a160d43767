//! Evidence retention in SQLite: which rows expired by class, their audited purge (the row
//! stays as a tombstone, the body goes), files no live row cites, audited originals.

use super::SqliteStore;
use super::audit::append_audit;
use crate::clue::audit::AuditAction;
use crate::clue::retention::{Expired, RetentionConfig, class_of};
use crate::clue::store::{AuditLog, RetentionStore, StoreError};
use rusqlite::params;
use serde_json::json;

impl RetentionStore for SqliteStore {
    fn record_original_access(
        &self,
        clue_id: i64,
        sha256: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        append_audit(
            &tx,
            self.key(),
            now_ms,
            actor,
            AuditAction::EvidenceOriginalAccess,
            Some(clue_id),
            &json!({"sha256": sha256, "role": role}),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn record_frame_access(
        &self,
        site: &str,
        camera: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        // An entry about no clue: the audit log's own `record`, as the PostgreSQL store does.
        AuditLog::record(
            self,
            actor,
            AuditAction::FrameOriginalAccess,
            &json!({"site": site, "camera": camera, "role": role}),
            now_ms,
        )
    }

    fn expired_evidence(
        &self,
        now_ms: i64,
        cfg: &RetentionConfig,
        limit: u32,
    ) -> Result<Vec<Expired>, StoreError> {
        let conn = self.conn();
        let mut out = Vec::new();
        let class_sql = [
            ("image", "e.kind = 'file' AND e.content_type LIKE 'image/%'"),
            (
                "file",
                "e.kind = 'file' AND (e.content_type IS NULL OR e.content_type NOT LIKE 'image/%')",
            ),
            ("readings", "e.kind = 'readings'"),
            ("note", "e.kind NOT IN ('file', 'readings')"),
        ];
        for (class, cond) in class_sql {
            let period = cfg.period_s(class);
            if period == 0 {
                continue;
            }
            let cutoff = now_ms.saturating_sub((period as i64).saturating_mul(1000));
            let open_cond = if cfg.keep_while_open {
                " AND c.open = 0"
            } else {
                ""
            };
            let mut st = conn.prepare(&format!(
                "SELECT e.id, e.clue_id, e.kind, e.content_type, e.sha256, e.at_ms \
                 FROM evidence e JOIN clues c ON c.id = e.clue_id \
                 WHERE e.purged_ms IS NULL AND e.at_ms < ?1 AND {cond}{open_cond} \
                 ORDER BY e.id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![cutoff, limit], |r| {
                let kind: String = r.get(2)?;
                let ct: Option<String> = r.get(3)?;
                Ok(Expired {
                    evidence_id: r.get(0)?,
                    clue_id: r.get(1)?,
                    class: class_of(&kind, ct.as_deref()),
                    kind,
                    sha256: r.get(4)?,
                    at_ms: r.get(5)?,
                })
            })?;
            out.extend(rows.collect::<Result<Vec<_>, _>>()?);
        }
        Ok(out)
    }

    fn purge_evidence(
        &self,
        e: &Expired,
        reason: &str,
        retention_s: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE evidence SET purged_ms = ?2, purge_reason = ?3, body = NULL \
             WHERE id = ?1 AND purged_ms IS NULL",
            params![e.evidence_id, now_ms, reason],
        )?;
        if n == 1 {
            append_audit(
                &tx,
                self.key(),
                now_ms,
                "retention",
                AuditAction::EvidencePurged,
                Some(e.clue_id),
                &json!({"evidence_id": e.evidence_id, "sha256": e.sha256, "kind": e.kind,
                        "class": e.class, "reason": reason, "retention_s": retention_s,
                        "evidence_at_ms": e.at_ms}),
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn unreferenced_files(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT DISTINCT sha256 FROM evidence p WHERE p.kind = 'file' \
             AND p.purged_ms IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evidence l \
             WHERE l.sha256 = p.sha256 AND l.purged_ms IS NULL) LIMIT 100000",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
