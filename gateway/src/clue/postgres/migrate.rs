//! `gateway store migrate --from sqlite:PATH --to postgres:URL`: moves one gateway's clue pool
//! into the shared database, audit chain included.
//!
//! The chain's hashes cover every entry's fields and, through `clue_sha256`, every clue row,
//! so the rows are copied as they are (same ids, same sequence numbers, same text) and the
//! chain verifies unchanged. The order of work:
//! 1. the SQLite pool must verify (a broken chain is not carried over silently);
//! 2. the target must hold no clue, audit entry or token (pools are not merged: two chains
//!    cannot become one without rewriting one of them);
//! 3. every table (muck-truck permits included) is copied in one PostgreSQL transaction, identity counters and the chain
//!    head set past the copied rows, and the evidence files still cited are copied into
//!    `evidence_blobs` (each re-hashed on the way);
//! 4. the target must verify, with as many entries as the source.

use super::{PgBlobs, PgStore, begin};
use crate::clue::audit_key::AuditKeyring;
use crate::clue::evidence::{BlobStore, EvidenceStore};
use crate::clue::store::{AuditLog, SqliteStore, StoreError};
use postgres::types::{ToSql, Type};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the source pool does not verify, nothing was copied: {0}")]
    SourceBroken(String),
    #[error("the target database already holds a clue pool ({0}); migrate into an empty one")]
    TargetNotEmpty(String),
    #[error("evidence file {0}: {1}")]
    Evidence(String, String),
    #[error("the copied pool does not verify: {0}")]
    TargetBroken(String),
}

/// What was moved.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MigrateReport {
    pub rows: Vec<(String, u64)>,
    pub audit_entries: u64,
    pub evidence_files: u64,
    /// Files cited by live evidence rows but absent from the source folder.
    pub missing_files: Vec<String>,
}

/// Tables in copy order (parents first), with each column's PostgreSQL type.
const TABLES: &[(&str, &[(&str, Type)])] = &[
    (
        "clues",
        &[
            ("id", Type::INT8),
            ("dedup_key", Type::TEXT),
            ("rule", Type::TEXT),
            ("kind", Type::TEXT),
            ("level", Type::TEXT),
            ("status", Type::TEXT),
            ("open", Type::BOOL),
            ("site", Type::TEXT),
            ("device", Type::TEXT),
            ("plate", Type::TEXT),
            ("lat", Type::FLOAT8),
            ("lon", Type::FLOAT8),
            ("subject_key", Type::TEXT),
            ("title", Type::TEXT),
            ("detail", Type::TEXT),
            ("department", Type::TEXT),
            ("assignee", Type::TEXT),
            ("resolution", Type::TEXT),
            ("first_seen_ms", Type::INT8),
            ("last_seen_ms", Type::INT8),
            ("occurrences", Type::INT8),
            ("created_ms", Type::INT8),
            ("updated_ms", Type::INT8),
            ("deadline_ms", Type::INT8),
            ("escalation", Type::TEXT),
            ("claimed_ms", Type::INT8),
            ("resolved_ms", Type::INT8),
            ("closed_ms", Type::INT8),
            ("cleared_ms", Type::INT8),
            ("cleared_note", Type::TEXT),
            ("shop", Type::TEXT),
            ("owner", Type::TEXT),
            ("assisting", Type::TEXT),
        ],
    ),
    (
        "occurrences",
        &[
            ("id", Type::INT8),
            ("clue_id", Type::INT8),
            ("at_ms", Type::INT8),
            ("received_ms", Type::INT8),
            ("level", Type::TEXT),
            ("title", Type::TEXT),
            ("detail", Type::TEXT),
            ("count", Type::INT8),
            ("first_ms", Type::INT8),
        ],
    ),
    (
        "evidence",
        &[
            ("id", Type::INT8),
            ("clue_id", Type::INT8),
            ("occurrence_id", Type::INT8),
            ("kind", Type::TEXT),
            ("name", Type::TEXT),
            ("content_type", Type::TEXT),
            ("sha256", Type::TEXT),
            ("size", Type::INT8),
            ("body", Type::TEXT),
            ("at_ms", Type::INT8),
            ("regions", Type::TEXT),
            ("purged_ms", Type::INT8),
            ("purge_reason", Type::TEXT),
        ],
    ),
    (
        "audit",
        &[
            ("seq", Type::INT8),
            ("at_ms", Type::INT8),
            ("actor", Type::TEXT),
            ("action", Type::TEXT),
            ("clue_id", Type::INT8),
            ("detail", Type::TEXT),
            ("prev_hash", Type::TEXT),
            ("hash", Type::TEXT),
        ],
    ),
    (
        "tokens",
        &[
            ("id", Type::INT8),
            ("hash", Type::TEXT),
            ("role", Type::TEXT),
            ("sites", Type::TEXT),
            ("name", Type::TEXT),
            ("created_ms", Type::INT8),
            ("revoked_ms", Type::INT8),
            ("device", Type::TEXT),
            ("unit", Type::TEXT),
            ("department", Type::TEXT),
            ("relay", Type::BOOL),
            ("channel", Type::TEXT),
        ],
    ),
    (
        "outbound",
        &[
            ("id", Type::INT8),
            ("channel", Type::TEXT),
            ("topic", Type::TEXT),
            ("payload", Type::TEXT),
            ("created_ms", Type::INT8),
            ("attempts", Type::INT8),
            ("delivered_ms", Type::INT8),
            ("next_attempt_ms", Type::INT8),
        ],
    ),
    (
        "clue_links",
        &[
            ("linked_id", Type::INT8),
            ("lead_id", Type::INT8),
            ("reason", Type::TEXT),
            ("actor", Type::TEXT),
            ("at_ms", Type::INT8),
        ],
    ),
    (
        "oversight_warnings",
        &[
            ("id", Type::INT8),
            ("key", Type::TEXT),
            ("model", Type::TEXT),
            ("level", Type::TEXT),
            ("site", Type::TEXT),
            ("clue_id", Type::INT8),
            ("concerns", Type::TEXT),
            ("message", Type::TEXT),
            ("detail", Type::TEXT),
            ("first_ms", Type::INT8),
            ("updated_ms", Type::INT8),
        ],
    ),
    (
        "parking_stays",
        &[
            ("id", Type::INT8),
            ("key", Type::TEXT),
            ("site", Type::TEXT),
            ("camera", Type::TEXT),
            ("zone", Type::TEXT),
            ("plate", Type::TEXT),
            ("first_ms", Type::INT8),
            ("notice_ms", Type::INT8),
            ("dwell_s", Type::INT8),
            ("remaining_s", Type::INT8),
            ("outcome", Type::TEXT),
            ("outcome_ms", Type::INT8),
            ("clue_key", Type::TEXT),
            ("left_ms", Type::INT8),
            ("created_ms", Type::INT8),
            ("shop", Type::TEXT),
        ],
    ),
    (
        "decisions",
        &[
            ("id", Type::INT8),
            ("clue_id", Type::INT8),
            ("site", Type::TEXT),
            ("matter", Type::TEXT),
            ("catalogue_version", Type::TEXT),
            ("band", Type::TEXT),
            ("applicable_band", Type::TEXT),
            ("penalty", Type::INT8),
            ("outside_band", Type::BOOL),
            ("leniency_applied", Type::TEXT),
            ("actor", Type::TEXT),
            ("at_ms", Type::INT8),
        ],
    ),
    (
        "supervision_notices",
        &[
            ("id", Type::INT8),
            ("warning_id", Type::INT8),
            ("model", Type::TEXT),
            ("site", Type::TEXT),
            ("clue_id", Type::INT8),
            ("concerns", Type::TEXT),
            ("message", Type::TEXT),
            ("unit", Type::TEXT),
            ("escalated_to", Type::TEXT),
            ("state", Type::TEXT),
            ("level", Type::TEXT),
            ("note", Type::TEXT),
            ("statement", Type::TEXT),
            ("deadline_ms", Type::INT8),
            ("span_start_ms", Type::INT8),
            ("issued_by", Type::TEXT),
            ("issued_ms", Type::INT8),
            ("updated_ms", Type::INT8),
            ("plate", Type::TEXT),
        ],
    ),
    (
        "supervision_notice_audit",
        &[("notice_id", Type::INT8), ("seq", Type::INT8)],
    ),
    (
        "muck_permits",
        &[
            ("plate", Type::TEXT),
            ("permit", Type::TEXT),
            ("updated_ms", Type::INT8),
            ("updated_by", Type::TEXT),
        ],
    ),
    (
        "owner_notices",
        &[
            ("id", Type::INT8),
            ("clue_id", Type::INT8),
            ("site", Type::TEXT),
            ("channel", Type::TEXT),
            ("template", Type::TEXT),
            ("contact", Type::TEXT),
            ("state", Type::TEXT),
            ("attempts", Type::INT8),
            ("last_error", Type::TEXT),
            ("queued_ms", Type::INT8),
            ("queued_by", Type::TEXT),
            ("delivered_ms", Type::INT8),
            ("provider_id", Type::TEXT),
            ("failed_ms", Type::INT8),
            ("receipt_status", Type::TEXT),
            ("receipt_ms", Type::INT8),
            ("idempotency_key", Type::TEXT),
        ],
    ),
];

/// Tables whose `id` is a generated identity (its counter is moved past the copied rows).
const IDENTITY_TABLES: &[&str] = &[
    "clues",
    "occurrences",
    "evidence",
    "tokens",
    "outbound",
    "oversight_warnings",
    "parking_stays",
    "decisions",
    "supervision_notices",
    "owner_notices",
];

/// One SQLite value as the PostgreSQL column `ty` takes it.
fn convert(v: rusqlite::types::Value, ty: &Type) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    use rusqlite::types::Value as V;
    let wrong = |v: &V| StoreError::Corrupt(format!("value {v:?} does not fit a {ty} column"));
    Ok(match (v, ty) {
        (V::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (V::Null, t) if *t == Type::FLOAT8 => Box::new(None::<f64>),
        (V::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (V::Null, _) => Box::new(None::<String>),
        (V::Integer(i), t) if *t == Type::INT8 => Box::new(Some(i)),
        (V::Integer(i), t) if *t == Type::BOOL => Box::new(Some(i != 0)),
        (V::Integer(i), t) if *t == Type::FLOAT8 => Box::new(Some(i as f64)),
        (V::Real(f), t) if *t == Type::FLOAT8 => Box::new(Some(f)),
        (V::Text(s), t) if *t == Type::TEXT => Box::new(Some(s)),
        (v, _) => return Err(wrong(&v)),
    })
}

/// Moves the pool in SQLite file `from` (evidence files in `evidence_dir`) into the empty
/// PostgreSQL database `to_url`.
///
/// `keys` is the chain's keyring (`audit.key` beside the SQLite file, and the retired keys in
/// `audit-keys-retired` beside it): with it the sealed entries, across key rotations, are
/// verified before and after, and the copy must end at the very head the source ended at.
pub fn sqlite_to_postgres(
    from: &Path,
    evidence_dir: &Path,
    to_url: &str,
    keys: Option<Arc<AuditKeyring>>,
) -> Result<MigrateReport, MigrateError> {
    let key = keys.as_ref().map(|r| r.current().clone());
    if !from.is_file() {
        return Err(StoreError::Corrupt(format!("{} is not a file", from.display())).into());
    }
    let source = SqliteStore::open(from, vec![])?.with_audit_keyring(keys.clone());
    let before = source.verify_audit()?;
    let source_head = source.audit_head()?;
    if !before.ok {
        return Err(MigrateError::SourceBroken(before.to_string()));
    }
    let target = PgStore::open(to_url, 2, vec![])?.with_audit_keyring(keys.clone());
    let mut conn = target.conn()?;
    let (mut tx, chain) = begin(&mut conn, &key)?;
    let held: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM clues) + (SELECT count(*) FROM audit) \
             + (SELECT count(*) FROM tokens)",
            &[],
        )
        .map_err(StoreError::from)?
        .get(0);
    if held > 0 || chain.head.seq > 0 {
        return Err(MigrateError::TargetNotEmpty(format!(
            "{held} clues, audit entries and tokens"
        )));
    }
    let mut report = MigrateReport::default();
    for (table, cols) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let types: Vec<Type> = cols.iter().map(|(_, t)| t.clone()).collect();
        let stmt = tx
            .prepare_typed(&insert, &types)
            .map_err(StoreError::from)?;
        let n = source.with_conn(|c| -> Result<u64, StoreError> {
            let mut st = c.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {}",
                names.join(", "),
                names[0]
            ))?;
            let mut rows = st.query([])?;
            let mut n = 0u64;
            while let Some(r) = rows.next()? {
                let mut values = Vec::with_capacity(cols.len());
                for (i, (_, ty)) in cols.iter().enumerate() {
                    values.push(convert(r.get::<_, rusqlite::types::Value>(i)?, ty)?);
                }
                let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
                tx.execute(&stmt, &refs)?;
                n += 1;
            }
            Ok(n)
        })?;
        if *table == "audit" {
            report.audit_entries = n;
        }
        report.rows.push((table.to_string(), n));
    }
    for table in IDENTITY_TABLES {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .map_err(StoreError::from)?;
    }
    tx.execute(
        "UPDATE audit_head SET seq = a.seq, hash = a.hash \
         FROM (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) a WHERE audit_head.id = 1",
        &[],
    )
    .map_err(StoreError::from)?;
    // Evidence files still cited (a purged row's file is gone on purpose).
    let hashes: Vec<String> = source.with_conn(|c| -> Result<Vec<String>, StoreError> {
        let mut st = c.prepare(
            "SELECT DISTINCT sha256 FROM evidence WHERE kind = 'file' AND purged_ms IS NULL",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })?;
    tx.commit().map_err(StoreError::from)?;
    drop(conn);
    let files = EvidenceStore::open(evidence_dir)
        .map_err(|e| MigrateError::Evidence(evidence_dir.display().to_string(), e.to_string()))?;
    let blobs: PgBlobs = target.blobs();
    for h in hashes {
        match files.get(&h) {
            Ok(bytes) => {
                blobs
                    .put(&h, &bytes)
                    .map_err(|e| MigrateError::Evidence(h.clone(), e))?;
                report.evidence_files += 1;
            }
            Err(crate::clue::evidence::EvidenceError::NotFound(_)) => report.missing_files.push(h),
            Err(e) => return Err(MigrateError::Evidence(h, e.to_string())),
        }
    }
    let after = target.verify_audit_against(source_head.as_ref())?;
    if !after.ok || after.entries != before.entries {
        return Err(MigrateError::TargetBroken(format!(
            "{after} (source had {} entries)",
            before.entries
        )));
    }
    Ok(report)
}
