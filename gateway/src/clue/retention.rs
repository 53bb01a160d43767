//! Evidence retention: evidence older than its class's period is deleted, and the deletion is
//! recorded, not the content.
//!
//! Classes: `image` (files with an `image/*` type), `file` (other files), `readings`, `note`.
//! For each expired item the store marks the row purged (time, reason; inline bodies are
//! cleared, the SHA-256 stays as a tombstone) and appends an `evidence_purged` audit entry in
//! the same transaction; only then is the file removed from disk, once no live row cites it.
//! A crash between the two leaves a purged row whose file is still there, and the next run
//! removes it. The audit chain only grows, so it keeps verifying.

use super::evidence::{EvidenceError, EvidenceStore};
use super::store::{RetentionStore, StoreError};
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `[clues.retention]`: periods in seconds; 0 keeps that class forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub enabled: bool,
    /// How often the purge job runs.
    pub every_s: u64,
    pub image_s: u64,
    pub file_s: u64,
    pub readings_s: u64,
    pub note_s: u64,
    /// Evidence of a clue still open is kept whatever its age (the case needs it).
    pub keep_while_open: bool,
}

const DAY: u64 = 86_400;

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            every_s: 3600,
            image_s: 180 * DAY,
            file_s: 365 * DAY,
            readings_s: 2 * 365 * DAY,
            note_s: 0,
            keep_while_open: true,
        }
    }
}

impl RetentionConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.every_s == 0 {
            return Err(invalid("clues.retention.every_s", "must be at least 1"));
        }
        Ok(())
    }

    /// Retention of a class in seconds (0: forever).
    pub(crate) fn period_s(&self, class: &str) -> u64 {
        match class {
            "image" => self.image_s,
            "file" => self.file_s,
            "readings" => self.readings_s,
            "note" => self.note_s,
            _ => 0,
        }
    }
}

/// The retention class of an evidence row.
pub(crate) fn class_of(kind: &str, content_type: Option<&str>) -> &'static str {
    match kind {
        "file" if content_type.is_some_and(|c| c.starts_with("image/")) => "image",
        "file" => "file",
        "readings" => "readings",
        _ => "note",
    }
}

/// An evidence row past its retention.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired {
    pub evidence_id: i64,
    pub clue_id: i64,
    pub kind: String,
    pub class: &'static str,
    pub sha256: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct PurgeReport {
    /// Evidence rows marked purged (each with its audit entry).
    pub purged: usize,
    /// Files removed from disk.
    pub files_deleted: usize,
}

#[derive(Debug, Error)]
pub(crate) enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] EvidenceError),
}

/// Rows handled per run (the next run continues).
const BATCH: u32 = 10_000;

/// One purge run at `now_ms`: marks and audits expired evidence, then deletes unreferenced
/// files.
pub(crate) fn purge(
    store: &dyn RetentionStore,
    files: &EvidenceStore,
    cfg: &RetentionConfig,
    now_ms: i64,
) -> Result<PurgeReport, RetentionError> {
    let mut report = PurgeReport::default();
    if !cfg.enabled {
        return Ok(report);
    }
    for e in store.expired_evidence(now_ms, cfg, BATCH)? {
        let period = cfg.period_s(e.class);
        if store.purge_evidence(&e, "retention", period, now_ms)? {
            report.purged += 1;
        }
    }
    for sha in store.unreferenced_files()? {
        if files.remove(&sha)? {
            report.files_deleted += 1;
        }
    }
    if report.purged > 0 || report.files_deleted > 0 {
        tracing::info!(
            purged = report.purged,
            files_deleted = report.files_deleted,
            "evidence past retention purged"
        );
    }
    Ok(report)
}
