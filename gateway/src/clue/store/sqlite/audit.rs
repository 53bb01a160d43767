//! The audit chain in SQLite: appending inside a change's transaction, reading, verifying.
//! Triggers in the schema refuse UPDATE and DELETE on the `audit` table.

use super::{CLUE_COLS, SqliteStore, clue_from_row, json_col, read_clue};
use crate::clue::audit::{self, AuditAction, AuditEntry, Head, VerifyReport};
use crate::clue::audit_key::AuditKey;
use crate::clue::model::ClueChange;
use crate::clue::store::{
    AUDIT_HEAD_TOPIC, AuditLog, StoreError, change_detail, check_clue_rows, check_writer_key,
    head_message, last_digests, next_key_id, rotation_detail, rotation_due,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

pub(super) fn audit_from_row(r: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        clue_id: r.get(4)?,
        detail: json_col(r.get(5)?),
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

pub(super) use crate::clue::store::AUDIT_COLS;

/// The chain's head as stored (read inside the writing transaction): its last entry, or
/// [`Head::genesis`] for an empty chain. Refused when the entry after it may not be sealed
/// with `key` (see [`check_writer_key`]).
pub(super) fn head(tx: &Connection, key: Option<&AuditKey>) -> Result<Head, StoreError> {
    let head = last_entry(tx)?.unwrap_or_else(Head::genesis);
    check_writer_key(&head, key, || head_entry(tx, head.seq))?;
    Ok(head)
}

/// The action and detail of entry `seq`.
fn head_entry(conn: &Connection, seq: i64) -> Result<(String, Value), StoreError> {
    Ok(conn
        .prepare_cached("SELECT action, detail FROM audit WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, json_col(r.get(1)?))))?)
}

/// The key the entry after the head must be sealed with (see [`AuditLog::audit_next_key`]).
fn next_key(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT hash, action, detail FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok(next_key_id(
                &r.get::<_, String>(0)?,
                &r.get::<_, String>(1)?,
                &json_col(r.get(2)?),
            ))
        })
        .optional()?
        .flatten())
}

/// The chain's last entry.
fn last_entry(conn: &Connection) -> Result<Option<Head>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok(Head {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        })
        .optional()?)
}

/// Writes an entry chained (and sealed) by [`Head::append`]. Must run inside the transaction
/// of what it records.
pub(super) fn write_entry(tx: &Connection, e: &AuditEntry) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit (seq, at_ms, actor, action, clue_id, detail, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.seq,
        e.at_ms,
        e.actor,
        e.action,
        e.clue_id,
        audit::canonical_json(&e.detail),
        e.prev_hash,
        e.hash
    ])?;
    Ok(())
}

/// Appends one entry to the chain, sealed with `key` if there is one. Must run inside the
/// transaction of what it records.
pub(super) fn append_audit(
    tx: &Connection,
    key: Option<&AuditKey>,
    at_ms: i64,
    actor: &str,
    action: AuditAction,
    clue_id: Option<i64>,
    detail: &Value,
) -> Result<i64, StoreError> {
    let e = head(tx, key)?.append(key, at_ms, actor, action.as_str(), clue_id, detail.clone());
    write_entry(tx, &e)?;
    Ok(e.seq)
}

impl SqliteStore {
    /// Appends the audit entry for a change of `clue_id` (with the clue's new digest) and
    /// queues the change for delivery. Must run inside the change's transaction.
    pub(super) fn record(
        &self,
        tx: &Connection,
        at_ms: i64,
        actor: &str,
        action: AuditAction,
        clue_id: i64,
        detail: Value,
    ) -> Result<ClueChange, StoreError> {
        let clue = read_clue(tx, clue_id)?.ok_or(StoreError::NotFound(clue_id))?;
        let detail = change_detail(&clue, detail);
        let seq = append_audit(tx, self.key(), at_ms, actor, action, Some(clue_id), &detail)?;
        let change = ClueChange {
            event_id: seq,
            event: action.as_str().to_string(),
            at_ms,
            actor: actor.to_string(),
            clue,
            count: 1,
        };
        let topic = format!(
            "clues/v1/{}/{}",
            change.clue.subject.site,
            change.clue.level.as_str()
        );
        self.enqueue(tx, &topic, &change, at_ms)?;
        Ok(change)
    }

    /// Every audit entry in order (for verify and export).
    pub(crate) fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"))?;
        let rows = st.query_map([], audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl AuditLog for SqliteStore {
    fn record(
        &self,
        actor: &str,
        action: AuditAction,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        append_audit(&tx, self.key(), now_ms, actor, action, None, detail)?;
        tx.commit()?;
        Ok(())
    }

    fn audit_next_key(&self) -> Result<Option<String>, StoreError> {
        next_key(&self.conn())
    }

    fn record_key_rotation(
        &self,
        old: &AuditKey,
        new_key_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !rotation_due(next_key(&tx)?.as_deref(), old, new_key_id)? {
            return Ok(None);
        }
        let detail = rotation_detail(old, new_key_id);
        let seq = append_audit(
            &tx,
            Some(old),
            now_ms,
            actor,
            AuditAction::KeyRotated,
            None,
            &detail,
        )?;
        tx.commit()?;
        Ok(Some(seq))
    }

    fn audit_of(&self, id: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {AUDIT_COLS} FROM audit WHERE clue_id = ?1 ORDER BY seq"
        ))?;
        let rows = st.query_map([id], audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn audit_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: Option<&[String]>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let cols = AUDIT_COLS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!(
            "SELECT {cols} FROM audit a LEFT JOIN clues c ON c.id = a.clue_id \
             WHERE a.at_ms >= ?1 AND a.at_ms < ?2"
        );
        let mut args: Vec<rusqlite::types::Value> = vec![from_ms.into(), to_ms.into()];
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for s in scope {
                args.push(s.clone().into());
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND c.site IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY a.seq LIMIT 1000000");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        last_entry(&self.conn())
    }

    fn publish_audit_head(&self, now_ms: i64) -> Result<Option<Head>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(head) = last_entry(&tx)? else {
            return Ok(None);
        };
        let body = head_message(&head, self.key().map(|k| k.id()), now_ms);
        self.enqueue(&tx, AUDIT_HEAD_TOPIC, &body, now_ms)?;
        tx.commit()?;
        Ok(Some(head))
    }

    fn verify_audit_against(&self, head: Option<&Head>) -> Result<VerifyReport, StoreError> {
        let entries = self.audit_all()?;
        let last_digest = last_digests(&entries);
        let report = audit::verify_with(entries, self.keyring(), head);
        if !report.ok {
            return Ok(report);
        }
        // The chain is intact; now every clue row must be what its last entry says it became.
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {CLUE_COLS} FROM clues ORDER BY id"))?;
        let clues = st.query_map([], clue_from_row)?;
        Ok(check_clue_rows(
            report,
            &last_digest,
            clues.map(|c| c.map_err(|e| e.to_string())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::audit_key::AuditKeyring;
    use crate::clue::store::seal_chain;
    use std::sync::Arc;

    #[test]
    fn a_plain_chain_is_sealed_at_the_first_start_with_a_key_and_keeps_verifying() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clues.sqlite");
        let plain = SqliteStore::open(&path, vec![]).expect("open");
        for n in 0..2 {
            AuditLog::record(
                &plain,
                "cli",
                AuditAction::TokenCreated,
                &serde_json::json!({"n": n}),
                n,
            )
            .expect("record");
        }
        drop(plain);
        let key = Arc::new(AuditKey::from_bytes(&[3u8; 32]));
        let store = SqliteStore::open(&path, vec![])
            .expect("reopen")
            .with_audit_key(Some(key.clone()));
        let r = store.verify_audit().expect("verify");
        assert!(
            !r.ok,
            "a key and a chain that ends plain: not yet switched over"
        );
        let keys = AuditKeyring::single(key.clone());
        assert_eq!(seal_chain(&store, &keys, false, 10).expect("seal"), Some(2));
        assert_eq!(seal_chain(&store, &keys, false, 11).expect("again"), None);
        AuditLog::record(
            &store,
            "cli",
            AuditAction::TokenRevoked,
            &serde_json::json!({}),
            12,
        )
        .expect("record");
        // Batched intake seals its entries as well.
        let subject = crate::clue::signal::Subject {
            site: "s1".into(),
            device: Some("m1".into()),
            ..Default::default()
        };
        let ev = crate::clue::signal::ClueEvent {
            rule: "r".into(),
            kind: "k".into(),
            level: crate::clue::signal::Level::Low,
            dedup_key: crate::clue::signal::ClueEvent::default_key("r", &subject),
            subject,
            at_ms: 13,
            title: "t".into(),
            detail: serde_json::json!({}),
            evidence: vec![],
            department: None,
            assisting: Vec::new(),
        };
        let batch = vec![(ev.clone(), vec![], 100), (ev, vec![], 100)];
        let out = crate::clue::store::ClueRecords::ingest_batch(&store, &batch, 14).expect("batch");
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        let r = store.verify_audit().expect("verify");
        assert!(r.ok, "{r}");
        assert_eq!((r.entries, r.sealed_from), (6, Some(3)));
        let all = store.audit_all().expect("all");
        assert_eq!(all[2].action, AuditAction::ChainSealed);
        assert!(
            all[2..]
                .iter()
                .all(|e| audit::sealed_by(&e.hash) == Some(key.id()))
        );
        // A gateway with another key would fork the chain.
        let other = AuditKeyring::single(Arc::new(AuditKey::from_bytes(&[4u8; 32])));
        assert!(seal_chain(&store, &other, false, 13).is_err());
    }

    #[test]
    fn a_chain_across_key_rotations_verifies_and_the_old_key_writes_no_more() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clues.sqlite");
        crate::clue::store::audit_contract::a_chain_across_key_rotations_verifies_and_the_old_key_writes_no_more(
            &|keys| Arc::new(SqliteStore::open(&path, vec![]).expect("open").with_audit_keyring(keys)),
        );
    }
}
