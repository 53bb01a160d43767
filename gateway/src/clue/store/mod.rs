//! Clue storage behind small traits, one per concern, so a shared PostgreSQL can stand beside
//! the per-instance SQLite.
//!
//! | trait             | concern                                                        |
//! |-------------------|----------------------------------------------------------------|
//! | [`ClueRecords`]   | dedup intake, lifecycle actions, escalation, reading clues     |
//! | [`AuditLog`]      | reading and verifying the hash chain                           |
//! | [`DeliveryQueue`] | the transactional outbox toward the central platform           |
//! | [`OversightStore`]| supervision history, duplicate-act links, warnings              |
//! | [`RetentionStore`]| evidence retention, purges, audited access to originals        |
//! | [`TokenStore`]    | API tokens (declared in `auth`)                                 |
//!
//! [`ClueStore`] is all of them together: what the pool holds. A consumer that needs one
//! concern takes that trait (`publish` takes a [`DeliveryQueue`], `retention` a
//! [`RetentionStore`]); an `Arc<dyn ClueStore>` coerces to any of them.
//!
//! The contract every backend keeps: each change of a clue happens in one transaction
//! together with its audit entry and its delivery rows, so the log, the clue and what the
//! platform is told can never disagree, even across a crash. The pure parts of that contract
//! (the clue digest the audit records, the subject key history is kept by, the level raised
//! by repetition, the reviewer's hint, the stats medians) live here so backends share them.
//! Calls are blocking: async callers use `spawn_blocking` (see `pool.rs`).
//!
//! [`SqliteStore`] (in `sqlite/`) keeps everything in `{storage.dir}/clues.sqlite`.

mod sqlite;

pub use sqlite::{SqliteStore, TokenInfo};

use super::audit::{self, AuditEntry, VerifyReport};
pub use super::auth::TokenStore;
use super::lifecycle::{Action, LifecycleError};
use super::model::*;
use super::oversight::{ClueRecord, Finding, LinkProposal, Warning};
use super::retention::{Expired, RetentionConfig};
use super::signal::{ClueEvent, Level, Subject};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("clue {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("clue database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("clue database holds bad data: {0}")]
    Corrupt(String),
}

/// The delivery channels a change is queued for.
pub const CHANNEL_MQTT: &str = "mqtt";
pub const CHANNEL_WEBHOOK: &str = "webhook";

/// Clues themselves: intake with dedup, lifecycle, escalation, and reads.
pub trait ClueRecords: Send + Sync {
    /// Dedup: attaches to the open clue with the same key or opens a new one with
    /// `deadline_ms`. Records the occurrence, its evidence and the audit entry.
    fn ingest(
        &self,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError>;
    /// [`ClueRecords::ingest`] for many events in one transaction (each isolated by a
    /// savepoint: one bad event does not undo the others). Results are in input order.
    fn ingest_batch(
        &self,
        items: &[(ClueEvent, Vec<NewEvidence>, i64)],
        now_ms: i64,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError>;
    /// Records a clearance on the open clue of `dedup_key` (none: nothing to record).
    fn clear(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError>;
    /// Records a fault's recovery on its open clue: a clue whose kind is one of
    /// `resolve_kinds` (see [`kind_matches`]) is resolved (actor `pool`, event `recovered`),
    /// any other only marked (event `cleared`: recovered, to be confirmed by a person).
    /// A store that cannot resolve by itself only marks it.
    fn recover(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        resolve_kinds: &[String],
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError> {
        let _ = resolve_kinds;
        self.clear(dedup_key, at_ms, note, now_ms)
    }
    /// Applies a lifecycle action; refused transitions change nothing.
    fn act(
        &self,
        id: i64,
        action: &Action,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError>;
    /// Marks open clues past their deadline yellow, and red `red_after_ms` later.
    fn escalate(&self, now_ms: i64, red_after_ms: i64) -> Result<Vec<ClueChange>, StoreError>;
    fn get(&self, id: i64) -> Result<Option<ClueDetail>, StoreError>;
    fn list(&self, q: &ClueQuery) -> Result<Vec<Clue>, StoreError>;
    fn stats(&self, scope: Option<&[String]>, now_ms: i64) -> Result<Stats, StoreError>;
}

/// The append-only hash chain (entries are written by the other concerns, inside their
/// transactions).
pub trait AuditLog: Send + Sync {
    fn audit_of(&self, id: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// Audit entries in `[from_ms, to_ms)`; with a scope, only entries about clues of those
    /// sites (entries about no clue, such as token creation, are admin-only).
    fn audit_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: Option<&[String]>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// Checks the whole chain and that every clue row matches its last audit entry.
    fn verify_audit(&self) -> Result<VerifyReport, StoreError>;
    /// Appends an entry about no clue (e.g. a device registry edit); admin-only to read.
    fn record(
        &self,
        actor: &str,
        action: audit::AuditAction,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// The transactional outbox: rows queued with each change, delivered by `publish`.
pub trait DeliveryQueue: Send + Sync {
    /// Queued deliveries of `channel`, oldest first.
    fn pending(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    fn delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;
    fn attempt_failed(&self, id: i64) -> Result<(), StoreError>;
    /// Forgets deliveries acknowledged before `before_ms`.
    fn purge_delivered(&self, before_ms: i64) -> Result<usize, StoreError>;
}

/// What the supervision models read and write.
pub trait OversightStore: Send + Sync {
    /// Clues changed since `since_ms` (and the clues they are linked with), each with its audit
    /// entries, for the supervision models.
    fn oversight_history(&self, since_ms: i64) -> Result<Vec<ClueRecord>, StoreError>;
    /// Links `p.linked` to the case led by `p.lead` (audited on both clues); returns the two
    /// `linked` changes, none when either clue was already linked.
    fn link(
        &self,
        p: &LinkProposal,
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError>;
    /// Stores findings as warnings: new ones are inserted, known ones updated and raised (a
    /// warning never goes from red back to yellow). Returns the warnings new or raised now.
    fn raise_warnings(&self, found: &[Finding], now_ms: i64) -> Result<Vec<Warning>, StoreError>;
    /// Warnings of the scope's sites (warnings about no site, e.g. an officer's outcomes, are
    /// for every supervisor), newest first.
    fn warnings(&self, scope: Option<&[String]>, limit: u32) -> Result<Vec<Warning>, StoreError>;
    /// Earlier clues of the same kind about the same subject opened after `since_ms`.
    fn prior_clues_since(&self, id: i64, since_ms: i64) -> Result<i64, StoreError>;
}

/// Evidence retention and privacy: what expires, its audited purge, audited originals.
pub trait RetentionStore: Send + Sync {
    /// Audits that `actor` received the original of evidence `sha256` of clue `clue_id`.
    fn record_original_access(
        &self,
        clue_id: i64,
        sha256: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Live evidence rows past their class's retention (at most `limit`).
    fn expired_evidence(
        &self,
        now_ms: i64,
        cfg: &RetentionConfig,
        limit: u32,
    ) -> Result<Vec<Expired>, StoreError>;
    /// Marks `e` purged and audits it (one transaction); false when it already was.
    fn purge_evidence(
        &self,
        e: &Expired,
        reason: &str,
        retention_s: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Hashes of evidence files that no live row cites any more (to delete from disk).
    fn unreferenced_files(&self) -> Result<Vec<String>, StoreError>;
}

/// Every concern of one backend: what the pool holds.
pub trait ClueStore:
    ClueRecords + AuditLog + DeliveryQueue + OversightStore + RetentionStore + TokenStore
{
}

impl<T> ClueStore for T where
    T: ClueRecords + AuditLog + DeliveryQueue + OversightStore + RetentionStore + TokenStore
{
}

/// Whether `kind` is named by one of `patterns` (exact, or a prefix with a trailing `*`).
pub fn kind_matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => p == kind,
    })
}

/// Hash of a clue row as the audit log records it after each change.
pub(crate) fn clue_digest(c: &Clue) -> String {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    audit::sha256_hex(&[audit::canonical_json(&v).as_bytes()])
}

/// Who, at what level of subject detail: history is kept per site/device/plate.
pub(crate) fn subject_key(s: &Subject) -> String {
    format!(
        "{}/{}/{}",
        s.site,
        s.device.as_deref().unwrap_or(""),
        s.plate.as_deref().unwrap_or("")
    )
}

/// The level of an open clue after one more occurrence of `ev_level`: repetition never lowers
/// it, and from `raise_after` occurrences on (0: never) it is one above the rule's level.
pub(crate) fn level_after_repeat(
    stored: Level,
    ev_level: Level,
    occurrences: i64,
    raise_after: i64,
) -> Level {
    let mut level = stored.max(ev_level);
    if raise_after > 0 && occurrences + 1 >= raise_after {
        level = level.max(match ev_level {
            Level::Low => Level::Medium,
            Level::Medium | Level::High => Level::High,
        });
    }
    level
}

/// The reviewer's leniency hint from the subject's record.
pub(crate) fn history_of(prior: i64, first_seen_ms: Option<i64>, occurrences: i64) -> History {
    let hint = match (prior, occurrences) {
        (0, 1) => "first violation on record for this subject".to_string(),
        (0, n) => format!("first clue for this subject; seen {n} times"),
        (p, _) => format!("repeated: {p} earlier clue(s) of this kind for this subject"),
    };
    History {
        prior_clues: prior,
        first_seen_ms,
        first_violation: prior == 0,
        hint,
    }
}

/// Median of millisecond durations, in seconds.
pub(crate) fn median_s(mut v: Vec<i64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    Some(m / 1000.0)
}
