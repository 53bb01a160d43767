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
//! | [`StayRecords`]   | parking stays that got a notice, the notice's delivery, outcome |
//! | [`DecisionRecords`]| decisions on clues (band, penalty, leniency, catalogue check)  |
//! | [`NoticeRecords`] | supervision notices made from warnings, their steps, overdue    |
//! | [`PermitRecords`] | muck-truck permits written through the API, each change audited |
//! | [`OwnerNoticeRecords`] | notices to owners through configured channels, their outcome |
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

#[cfg(test)]
pub(crate) mod audit_contract;
pub(crate) mod intake;
#[cfg(test)]
pub(crate) mod notices_contract;
#[cfg(test)]
pub(crate) mod permits_contract;
mod sqlite;
#[cfg(test)]
pub(crate) mod stays_contract;
#[cfg(test)]
pub(crate) mod tokens_contract;

pub use sqlite::{SqliteStore, TokenInfo};

use super::audit::{self, AuditEntry, Broken, VerifyReport};
use super::audit_key::{AuditKey, AuditKeyring};
pub(crate) use super::auth::TokenStore;
use super::decision::{DecisionCheck, DecisionRow};
use super::lifecycle::{Action, LifecycleError, State};
use super::model::*;
use super::oversight::{ClueRecord, Finding, LinkProposal, Warning};
use super::owner_notify::{Outcome, OwnerNotice, OwnerNoticeDraft, Receipt};
use super::retention::{Expired, RetentionConfig};
use super::signal::{ClueEvent, Level, Subject};
use super::stays::{StayCountRow, StayNotice, StayQuery, StayRecord, StayUpdate};
use super::supervision::{
    NewNotice, Notice, NoticeAction, NoticeDetail, NoticeError, NoticeFilter,
    SupervisionNoticeConfig,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
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
    #[error("clue database: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("clue database connection pool: {0}")]
    Pool(String),
    #[error("clue database holds bad data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Notice(#[from] NoticeError),
}

/// The delivery channels a change is queued for.
pub(crate) const CHANNEL_MQTT: &str = "mqtt";
pub(crate) const CHANNEL_WEBHOOK: &str = "webhook";

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
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError> {
        self.ingest_runs(items, &[], now_ms)
    }
    /// [`ClueRecords::ingest_batch`] where item `i` stands for `runs[i]`: a run of plain
    /// repeats (`clue::repeats`) written as one occurrence row and one audit entry, the clue
    /// planned as if its events came one by one. `runs` empty: every item one event.
    fn ingest_runs(
        &self,
        items: &[(ClueEvent, Vec<NewEvidence>, i64)],
        runs: &[crate::clue::repeats::Run],
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
    /// Checks the whole chain (with the store's key, if it has one) and that every clue row
    /// matches its last audit entry.
    fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        self.verify_audit_against(None)
    }
    /// [`AuditLog::verify_audit`], and the chain must reach the published `head` (the entry
    /// and its hash): what catches a cut-off tail.
    fn verify_audit_against(&self, head: Option<&audit::Head>) -> Result<VerifyReport, StoreError>;
    /// The chain's last entry (`seq`, `hash`), none when it is empty.
    fn audit_head(&self) -> Result<Option<audit::Head>, StoreError>;
    /// Queues the chain's head on every delivery channel (topic [`AUDIT_HEAD_TOPIC`]) and
    /// returns it; none when the chain is empty.
    fn publish_audit_head(&self, now_ms: i64) -> Result<Option<audit::Head>, StoreError>;
    /// Appends an entry about no clue (e.g. a device registry edit); admin-only to read.
    fn record(
        &self,
        actor: &str,
        action: audit::AuditAction,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The id of the key the next entry must be sealed with: the one a key rotation at the
    /// head names, else the head's own; none for a plain or empty chain.
    fn audit_next_key(&self) -> Result<Option<String>, StoreError>;
    /// Appends the key rotation `audit_key_rotated` (detail: `old_key_id`, `new_key_id`),
    /// sealed with `old`, which must be the key the chain continues under (or the chain plain).
    /// Returns its sequence number; none when the chain already continues under `new_key_id`.
    fn record_key_rotation(
        &self,
        old: &AuditKey,
        new_key_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError>;
}

/// The id of the key the entry after this one must be sealed with (see
/// [`AuditLog::audit_next_key`]).
pub(crate) fn next_key_id(hash: &str, action: &str, detail: &Value) -> Option<String> {
    if action == audit::AuditAction::KeyRotated.as_str()
        && let Some(next) = detail.get("new_key_id").and_then(Value::as_str)
    {
        return Some(next.to_string());
    }
    audit::sealed_by(hash).map(str::to_string)
}

/// Refuses to seal an entry with `key` unless the chain continues under `key`: the head is
/// sealed with it and is no rotation away from it, or the head hands the chain over to it (a
/// rotation). Such an entry would not verify: a gateway still running with a key rotated away,
/// or given another gateway's key. `head_entry` reads the head's action and detail (one
/// indexed read per writing transaction, only for a sealed chain and a writer with a key).
pub(crate) fn check_writer_key(
    head: &audit::Head,
    key: Option<&AuditKey>,
    head_entry: impl FnOnce() -> Result<(String, Value), StoreError>,
) -> Result<(), StoreError> {
    let (Some(k), Some(id)) = (key, audit::sealed_by(&head.hash)) else {
        return Ok(());
    };
    let (action, detail) = head_entry()?;
    match next_key_id(&head.hash, &action, &detail) {
        Some(next) if next == k.id() => Ok(()),
        next => Err(StoreError::Conflict(format!(
            "the audit chain continues under key {}, and this gateway's key is {}: the key was \
             rotated (give this gateway the new key) or this gateway has another gateway's key",
            next.as_deref().unwrap_or(id),
            k.id()
        ))),
    }
}

/// Whether a rotation from `old` to `new_key_id` is still to be written, given the key the
/// chain continues under (`next`): no when it already continues under the new key.
pub(crate) fn rotation_due(
    next: Option<&str>,
    old: &AuditKey,
    new_key_id: &str,
) -> Result<bool, StoreError> {
    match next {
        Some(n) if n == new_key_id => Ok(false),
        None => Ok(true),
        Some(n) if n == old.id() => Ok(true),
        Some(n) => Err(StoreError::Conflict(format!(
            "the audit chain continues under key {n}, not under the key being rotated ({})",
            old.id()
        ))),
    }
}

/// The detail of a key rotation entry.
pub(crate) fn rotation_detail(old: &AuditKey, new_key_id: &str) -> Value {
    json!({"old_key_id": old.id(), "new_key_id": new_key_id})
}

/// At a gateway's start with `keys`: a chain that ends with a plain entry (written before the
/// key existed) gets a sealed `chain_sealed` entry naming the last plain one, the documented
/// switch-over point (see `clue::audit`). A chain that continues under a retired key of the
/// ring gets the key rotation `audit_key_rotated` to the current key, sealed with the retired
/// one (the rotation done by configuration, see `clue::audit_key`). A chain sealed with a key
/// the ring lacks is refused: this gateway's entries would make it unverifiable (every gateway
/// on one database needs the same key). Returns the predecessor of the entry written, if one
/// was.
///
/// The rotation at start is done only when `rotate_at_start` (the key is in `key_env`, where
/// configuration is the way to rotate). With `key_file`, `gateway audit rotate-key` writes the
/// rotation before it installs the new key, so a chain found continuing under a retired key
/// has had its tail cut back past the rotation: the start is refused, naming the retired key,
/// instead of papering over the cut with a fresh rotation entry.
pub(crate) fn seal_chain(
    log: &dyn AuditLog,
    keys: &AuditKeyring,
    rotate_at_start: bool,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let key = keys.current();
    let Some(head) = log.audit_head()? else {
        return Ok(None);
    };
    match log.audit_next_key()? {
        Some(id) if id == key.id() => Ok(None),
        Some(id) => match keys.get(&id) {
            Some(_) if !rotate_at_start => Err(StoreError::Conflict(format!(
                "the audit chain continues under the retired key {id}, but `gateway audit \
                 rotate-key` records the rotation before installing key {}: the chain's tail \
                 was cut back past the rotation (check it against the last published head); \
                 the gateway does not start",
                key.id()
            ))),
            Some(old) => {
                log.record_key_rotation(old, key.id(), "pool", now_ms)?;
                tracing::info!(
                    old_key_id = %id,
                    new_key_id = %key.id(),
                    "audit key rotated: the retired key handed the chain to the current one"
                );
                Ok(Some(head.seq))
            }
            None => Err(StoreError::Conflict(format!(
                "the audit chain is sealed with key {id}, and this gateway's key is {}: every \
                 gateway on one clue store needs the same key ([clues.audit] key_file or \
                 key_env); after a rotation, the old key belongs in retired_dir",
                key.id()
            ))),
        },
        None => {
            let detail = json!({"key_id": key.id(), "plain_until": head.seq});
            log.record("pool", audit::AuditAction::ChainSealed, &detail, now_ms)?;
            Ok(Some(head.seq))
        }
    }
}

/// Where the chain's head is published (MQTT topic; the webhook body says `"type":
/// "audit_head"`).
pub(crate) const AUDIT_HEAD_TOPIC: &str = "audit/v1/head";

/// The body of a published head.
pub(crate) fn head_message(head: &audit::Head, key_id: Option<&str>, at_ms: i64) -> Value {
    serde_json::json!({
        "type": "audit_head",
        "seq": head.seq,
        "hash": head.hash,
        "key_id": key_id,
        "at_ms": at_ms,
    })
}

/// The transactional outbox: rows queued with each change, delivered by `publish`.
pub trait DeliveryQueue: Send + Sync {
    /// Queued deliveries of `channel` that are due (no `next_attempt_ms`, or one passed by
    /// `crate::clock`), oldest first.
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
    /// Whether this gateway should run `job` (`oversight`, `retention`) now. Several
    /// gateways on one shared store elect one leader per job; a store of its own (SQLite)
    /// always leads.
    fn lead(&self, job: &str) -> Result<bool, StoreError> {
        let _ = job;
        Ok(true)
    }
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
    /// Audits that `actor` received an unmasked camera frame (`latest.jpg`), which belongs
    /// to no clue. A store that cannot audit it refuses, and so the original is withheld.
    fn record_frame_access(
        &self,
        site: &str,
        camera: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _ = (site, camera, actor, role, now_ms);
        Err(StoreError::Conflict(
            "this clue store cannot audit frame access".into(),
        ))
    }
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

/// Parking stays that got a "please move" notice (see `clue::stays`): the record, the notice's
/// delivery rows, and the outcome the persuasion statistics count.
pub trait StayRecords: Send + Sync {
    /// Records the stay of `n` (outcome `pending`) and queues its notice on each of `channels`
    /// (topic `notices/v1/{site}/{camera}`), in one transaction. A key already recorded
    /// changes nothing and returns `None`.
    fn record_notice(
        &self,
        n: &StayNotice,
        channels: &[String],
        now_ms: i64,
    ) -> Result<Option<StayRecord>, StoreError>;
    /// Moves a recorded stay's outcome (see `clue::stays`); false when no recorded stay has
    /// that key or the update changes nothing.
    fn record_outcome(&self, u: &StayUpdate) -> Result<bool, StoreError>;
    /// Recorded stays, newest notice first.
    fn stays(&self, q: &StayQuery) -> Result<Vec<StayRecord>, StoreError>;
    /// Warned stays by site, camera, zone and outcome, within the scope's sites.
    fn stay_counts(&self, scope: Option<&[String]>) -> Result<Vec<StayCountRow>, StoreError>;
}

/// Decisions (`decide` actions): each is written by [`ClueRecords::act`] in the action's
/// transaction, with the catalogue check the pool made (see `clue::decision`).
pub trait DecisionRecords: Send + Sync {
    /// Every recorded decision about clues of the scope's sites, oldest first.
    fn decisions(&self, scope: Option<&[String]>) -> Result<Vec<DecisionRow>, StoreError>;
}

/// Supervision notices (see `clue::supervision`): every step is written with its audit
/// entry (no clue id: like warnings, notices are not on clue trails) and its delivery rows in
/// one transaction, and linked to that entry for the notice's history.
pub trait NoticeRecords: Send + Sync {
    /// The stored warning `id`.
    fn warning(&self, id: i64) -> Result<Option<Warning>, StoreError>;
    /// Makes warning `warning_id` a notice (state `issued`, level `none`); a conflict when the
    /// warning already has an open notice, not found when there is no such warning.
    fn issue_notice(
        &self,
        warning_id: i64,
        n: &NewNotice,
        actor: &str,
        now_ms: i64,
    ) -> Result<Notice, StoreError>;
    /// Applies `action` to notice `id` as it is inside the transaction
    /// (`supervision::apply`); a refused step changes nothing.
    fn act_on_notice(
        &self,
        id: i64,
        action: &NoticeAction,
        actor: &str,
        cfg: &SupervisionNoticeConfig,
        now_ms: i64,
    ) -> Result<Notice, StoreError>;
    /// Raises the notices overdue now (`supervision::overdue_level`); returns those raised.
    fn escalate_notices(
        &self,
        cfg: &SupervisionNoticeConfig,
        now_ms: i64,
    ) -> Result<Vec<Notice>, StoreError>;
    /// Notices of the scope's sites and the site-less ones, in `supervision::LIST_ORDER`.
    fn notices(
        &self,
        scope: Option<&[String]>,
        filter: NoticeFilter,
        limit: u32,
    ) -> Result<Vec<Notice>, StoreError>;
    /// One notice with its audit entries, oldest first.
    fn notice(&self, id: i64) -> Result<Option<NoticeDetail>, StoreError>;
}

/// A muck-truck permit as stored: the permit itself is kept as its JSON (the camera module
/// owns its shape and checks it before it is written), keyed by its normalised plate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PermitRow {
    pub plate: String,
    pub permit: Value,
    pub updated_ms: i64,
    pub updated_by: String,
}

/// Muck-truck permits written through the API (`camera::permits`): each change is written
/// with its audit entry (`muck_permit_put` / `muck_permit_delete`, no clue id; detail: the
/// plate, the permit before and after) in one transaction, so a permit that excuses trucks
/// is never on the list without the chain saying who put it there.
pub trait PermitRecords: Send + Sync {
    /// Every stored permit, by plate.
    fn muck_permits(&self) -> Result<Vec<PermitRow>, StoreError>;
    /// Stores `permit` under `plate` (normalised by the caller); with `create`, a plate
    /// already stored is a conflict and nothing changes. Returns the permit it replaced.
    fn put_muck_permit(
        &self,
        plate: &str,
        permit: &Value,
        create: bool,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError>;
    /// Removes the permit of `plate`; the one removed, `None` (and no audit entry) when there
    /// was none.
    fn delete_muck_permit(
        &self,
        plate: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError>;
}

/// The audit detail of a permit change, the same in every backend.
pub(crate) fn permit_detail(plate: &str, before: Option<&Value>, after: Option<&Value>) -> Value {
    json!({"plate": plate, "before": before, "after": after})
}

/// Notices to owners (`clue::owner_notify`): queued by [`ClueRecords::act`] with the
/// `send_owner_notice` action (a row here and one in the outbox, in the action's transaction),
/// settled by the channel's worker: the outcome on the notice, the outbox row done and the
/// audit entry on the clue in one transaction.
pub trait OwnerNoticeRecords: Send + Sync {
    /// The notices of clue `clue_id`, oldest first.
    fn owner_notices(&self, clue_id: i64) -> Result<Vec<OwnerNotice>, StoreError>;
    fn owner_notice(&self, id: i64) -> Result<Option<OwnerNotice>, StoreError>;
    /// One attempt of notice `id` (outbox row `outbox_id`) failed and will be retried at
    /// `next_attempt_ms` (`crate::clock`); until then `pending` skips the row, so the
    /// channel's later notices go first.
    fn owner_notice_attempt_failed(
        &self,
        id: i64,
        outbox_id: i64,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError>;
    /// Settles notice `id` (delivered or given up), marks outbox row `outbox_id` done and
    /// audits the outcome on its clue. `None` when the notice was already settled (the row is
    /// marked done all the same).
    fn settle_owner_notice(
        &self,
        id: i64,
        outbox_id: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError>;
    /// Records the provider's receipt for notice `id` on it and on its clue's trail.
    fn owner_notice_receipt(
        &self,
        id: i64,
        receipt: &Receipt,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError>;
}

/// A notice as a store queues it: channel name, template, the pool's draft.
pub(crate) type NoticeToQueue<'a> = (&'a str, Option<&'a str>, &'a OwnerNoticeDraft);

/// The notice a `send_owner_notice` action queues: channel name, template and the pool's
/// draft. `None` for every other action; `Err` for one the pool did not prepare.
pub(crate) fn owner_notice_of(action: &Action) -> Result<Option<NoticeToQueue<'_>>, StoreError> {
    match action {
        Action::SendOwnerNotice {
            channel,
            template,
            draft,
        } => match draft {
            Some(d) => Ok(Some((channel.trim(), template.as_deref(), d))),
            None => Err(StoreError::Conflict(
                "a notice to the owner must be prepared by the pool first".into(),
            )),
        },
        _ => Ok(None),
    }
}

/// The outbox topic and body of notice `id` (the draft's payload with its id).
pub(crate) fn owner_notice_message(
    id: i64,
    d: &OwnerNoticeDraft,
) -> Result<(String, String), StoreError> {
    let mut p = d.payload.clone();
    p["notice_id"] = json!(id);
    let body = serde_json::to_string(&p)
        .map_err(|e| StoreError::Corrupt(format!("encoding owner notice: {e}")))?;
    Ok((format!("owner-notices/v1/{}", d.site), body))
}

/// The actor of a notice's outcome: the channel's worker.
pub(crate) fn owner_notify_actor(channel: &str) -> String {
    format!("owner-notify:{channel}")
}

/// Every concern of one backend: what the pool holds.
pub trait ClueStore:
    ClueRecords
    + AuditLog
    + DeliveryQueue
    + OversightStore
    + RetentionStore
    + TokenStore
    + StayRecords
    + DecisionRecords
    + NoticeRecords
    + PermitRecords
    + OwnerNoticeRecords
{
}

impl<T> ClueStore for T where
    T: ClueRecords
        + AuditLog
        + DeliveryQueue
        + OversightStore
        + RetentionStore
        + TokenStore
        + StayRecords
        + DecisionRecords
        + NoticeRecords
        + PermitRecords
        + OwnerNoticeRecords
{
}

/// The columns of a decision row in the order every backend's row reader expects.
pub(crate) const DECISION_COLS: &str = "id, clue_id, site, matter, catalogue_version, band, \
     applicable_band, penalty, outside_band, leniency_applied, actor, at_ms";

/// A decision as a store writes it: band, penalty, leniency entries applied, the pool's check.
pub(crate) type DecisionToRecord<'a> = (&'a str, u64, &'a [String], &'a DecisionCheck);

/// The decision a `decide` action records: its band, penalty, applied leniency and the pool's
/// check. `None` for every other action; `Err` for a decision the pool did not check (a store
/// must not record a decision it cannot judge).
pub(crate) fn decision_of(action: &Action) -> Result<Option<DecisionToRecord<'_>>, StoreError> {
    match action {
        Action::Decide {
            band,
            penalty,
            leniency_applied,
            check,
            ..
        } => match check {
            Some(c) => Ok(Some((band, *penalty, leniency_applied, c))),
            None => Err(StoreError::Conflict(
                "a decision must be checked against the matter catalogue first".into(),
            )),
        },
        _ => Ok(None),
    }
}

/// The audit detail of a token's creation, the same in every backend: the sites as their JSON
/// text (as stored), for a bound device token its device, and the unit and department it is
/// scoped to.
pub(crate) fn token_created_detail(id: i64, grant: &super::auth::TokenGrant<'_>) -> Value {
    let sites = serde_json::to_string(grant.sites).unwrap_or_default();
    let mut d = json!({"token_id": id, "role": grant.role, "sites": sites, "name": grant.name});
    if let Some(device) = grant.device {
        d["device"] = json!(device);
    }
    if grant.relay {
        d["relay"] = json!(true);
    }
    // Only when set, so the entries of tokens without them read as before.
    if let Some(unit) = grant.unit {
        d["unit"] = json!(unit);
    }
    if let Some(department) = grant.department {
        d["department"] = json!(department);
    }
    if let Some(channel) = grant.channel {
        d["channel"] = json!(channel);
    }
    d
}

/// The columns of a stay record in the order every backend's row reader expects.
pub(crate) const STAY_COLS: &str = "id, key, site, camera, zone, plate, first_ms, notice_ms, \
     dwell_s, remaining_s, outcome, outcome_ms, clue_key, left_ms, shop";

/// The clue row's columns in the order every backend's row reader expects.
pub(crate) const CLUE_COLS: &str = "id, rule, kind, level, status, site, device, plate, lat, lon, \
     dedup_key, title, detail, department, assignee, resolution, first_seen_ms, last_seen_ms, \
     occurrences, created_ms, updated_ms, deadline_ms, escalation, claimed_ms, resolved_ms, \
     closed_ms, cleared_ms, cleared_note, shop, owner, assisting";

pub(crate) const AUDIT_COLS: &str = "seq, at_ms, actor, action, clue_id, detail, prev_hash, hash";

pub(crate) const WARNING_COLS: &str =
    "id, model, level, key, site, clue_id, concerns, message, detail, first_ms, updated_ms";

/// A JSON text column (a plain string when it is not JSON).
pub(crate) fn json_col(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::String(s))
}

/// The audit detail of a clue change: what the caller says plus the clue's new digest, status
/// and level (what verify later compares the row with).
pub(crate) fn change_detail(clue: &Clue, mut detail: Value) -> Value {
    if let Value::Object(m) = &mut detail {
        m.insert("clue_sha256".into(), Value::String(clue_digest(clue)));
        m.insert("status".into(), json!(clue.status));
        m.insert("level".into(), json!(clue.level));
    }
    detail
}

/// Topic and JSON body under which a clue change is delivered to the central platform.
pub(crate) fn change_message(change: &ClueChange) -> Result<(String, String), StoreError> {
    let payload = serde_json::to_string(change)
        .map_err(|e| StoreError::Corrupt(format!("encoding change: {e}")))?;
    let topic = format!(
        "clues/v1/{}/{}",
        change.clue.subject.site,
        change.clue.level.as_str()
    );
    Ok((topic, payload))
}

/// Topic and JSON body of a new or raised oversight warning (audit entry `seq`), for the
/// platform's supervisors: `oversight/v1/{site|all}/{level}`.
pub(crate) fn warning_message(
    w: &Warning,
    seq: i64,
    now_ms: i64,
) -> Result<(String, String), StoreError> {
    let payload = serde_json::to_string(&json!({
        "event_id": seq, "event": "oversight_warning", "at_ms": now_ms, "warning": w,
    }))
    .map_err(|e| StoreError::Corrupt(format!("encoding warning: {e}")))?;
    let topic = format!(
        "oversight/v1/{}/{}",
        w.finding.site.as_deref().unwrap_or("all"),
        w.finding.level.as_str()
    );
    Ok((topic, payload))
}

/// The audit detail of a warning that is new or raised (no clue id on the entry: clue trails
/// are visible to the officers concerned, warnings are not).
pub(crate) fn warning_detail(f: &Finding, level: Escalation) -> Value {
    json!({"key": f.key, "model": f.model, "level": level, "clue": f.clue_id, "site": f.site})
}

/// The lifecycle state of a clue row.
pub(crate) fn state_of(clue: &Clue) -> State {
    State {
        status: clue.status,
        assignee: clue.assignee.clone(),
        department: clue.department.clone(),
        assisting: clue.assisting.clone(),
        claimed_ms: clue.claimed_ms,
        resolved_ms: clue.resolved_ms,
        closed_ms: clue.closed_ms,
        resolution: clue.resolution.clone(),
    }
}

/// The audit detail of a lifecycle action from `before` to `next`.
pub(crate) fn act_detail(action: &Action, before: &State, next: &State) -> Value {
    let mut detail = serde_json::to_value(action).unwrap_or(json!({}));
    if let Value::Object(m) = &mut detail {
        m.insert("from".into(), json!(before.status));
        m.insert("to".into(), json!(next.status));
        if next.department != before.department {
            // Lets oversight see a clue handed back to where it came from.
            m.insert("from_department".into(), json!(before.department));
        }
        if next.assisting != before.assisting {
            m.insert("from_assisting".into(), json!(before.assisting));
        }
    }
    detail
}

/// The escalation an open clue past `deadline_ms` should have now (yellow, or red
/// `red_after_ms` later), when that is above `current`.
pub(crate) fn escalation_due(
    current: &str,
    deadline_ms: i64,
    now_ms: i64,
    red_after_ms: i64,
) -> Option<Escalation> {
    let target = if now_ms > deadline_ms.saturating_add(red_after_ms) {
        Escalation::Red
    } else {
        Escalation::Yellow
    };
    (Escalation::parse(current).unwrap_or(Escalation::None) < target).then_some(target)
}

/// The audit detail of an escalation.
pub(crate) fn escalation_detail(target: Escalation, deadline_ms: i64, now_ms: i64) -> Value {
    json!({"escalation": target, "deadline_ms": deadline_ms,
           "overdue_s": (now_ms - deadline_ms) / 1000})
}

/// One clue row as the statistics read it.
pub(crate) struct StatsRow {
    pub level: String,
    pub status: String,
    pub kind: String,
    pub department: Option<String>,
    pub created_ms: i64,
    pub claimed_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub escalation: String,
    pub open: bool,
    pub deadline_ms: i64,
}

/// Folds clue rows into [`Stats`].
pub(crate) fn stats_of(
    rows: impl Iterator<Item = Result<StatsRow, StoreError>>,
    now_ms: i64,
) -> Result<Stats, StoreError> {
    let mut s = Stats::default();
    let (mut claim, mut resolve) = (Vec::new(), Vec::new());
    let mut disposed = 0u64;
    for r in rows {
        let r = r?;
        s.total += 1;
        *s.by_level.entry(r.level).or_default() += 1;
        *s.by_kind.entry(r.kind).or_default() += 1;
        *s.by_department
            .entry(r.department.unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        if !r.open {
            disposed += 1;
        } else if r.deadline_ms < now_ms {
            match r.escalation.as_str() {
                "red" => s.overdue_red += 1,
                _ => s.overdue_yellow += 1,
            }
        }
        *s.by_status.entry(r.status).or_default() += 1;
        if let Some(c) = r.claimed_ms {
            claim.push(c - r.created_ms);
        }
        if let Some(x) = r.resolved_ms {
            resolve.push(x - r.created_ms);
        }
    }
    s.disposal_rate = if s.total == 0 {
        0.0
    } else {
        disposed as f64 / s.total as f64
    };
    s.median_time_to_claim_s = median_s(claim);
    s.median_time_to_resolve_s = median_s(resolve);
    Ok(s)
}

/// The last clue digest each clue's audit trail records (clue id -> (seq, digest)).
pub(crate) fn last_digests(entries: &[AuditEntry]) -> BTreeMap<i64, (i64, String)> {
    let mut last = BTreeMap::new();
    for e in entries {
        if let (Some(c), Some(d)) = (e.clue_id, e.detail.get("clue_sha256")) {
            last.insert(c, (e.seq, d.as_str().unwrap_or("").to_string()));
        }
    }
    last
}

/// Verify's second half: with the chain intact (`report.ok`), every clue row must be what its
/// last audit entry says it became.
pub(crate) fn check_clue_rows(
    report: VerifyReport,
    last_digest: &BTreeMap<i64, (i64, String)>,
    clues: impl Iterator<Item = Result<Clue, String>>,
) -> VerifyReport {
    let broken = |seq, what| VerifyReport {
        ok: false,
        broken: Some(Broken { seq, what }),
        ..report.clone()
    };
    for c in clues {
        let c = match c {
            Ok(c) => c,
            Err(e) => return broken(0, format!("a clue row is unreadable: {e}")),
        };
        match last_digest.get(&c.id) {
            None => return broken(0, format!("clue {} has no audit entry", c.id)),
            Some((seq, d)) if *d != clue_digest(&c) => {
                return broken(
                    *seq,
                    format!(
                        "clue {} was changed outside the gateway (row differs from this entry)",
                        c.id
                    ),
                );
            }
            Some(_) => {}
        }
    }
    report
}

/// Whether `kind` is named by one of `patterns` (exact, or a prefix with a trailing `*`).
pub(crate) fn kind_matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => p == kind,
    })
}

/// Hash of a clue row as the audit log records it after each change.
pub(crate) fn clue_digest(c: &Clue) -> String {
    let mut out = Vec::with_capacity(512);
    match write_clue_canonical(c, &mut out) {
        Ok(()) => audit::sha256_hex(&[&out]),
        // Unreachable (writing to a Vec cannot fail); the reference form gives the same digest.
        Err(_) => clue_digest_by_value(c),
    }
}

/// The digest as defined: the canonical form of the clue's JSON value. [`clue_digest`] writes
/// the same text without building the value (intake computes one per event, and building the
/// value was a quarter of intake's CPU); `clue_digest_is_the_canonical_form_of_the_clue` pins
/// the two together.
fn clue_digest_by_value(c: &Clue) -> String {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    audit::sha256_hex(&[audit::canonical_json(&v).as_bytes()])
}

/// The canonical JSON of `c` (keys in byte order at every level, no spaces), as
/// `audit::canonical_json(&serde_json::to_value(c))` writes it.
fn write_clue_canonical(c: &Clue, out: &mut Vec<u8>) -> serde_json::Result<()> {
    fn key(out: &mut Vec<u8>, first: bool, name: &str) {
        if !first {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    }
    fn put<T: serde::Serialize + ?Sized>(
        out: &mut Vec<u8>,
        first: bool,
        name: &str,
        v: &T,
    ) -> serde_json::Result<()> {
        key(out, first, name);
        serde_json::to_writer(&mut *out, v)
    }
    out.push(b'{');
    put(out, true, "assignee", &c.assignee)?;
    if !c.assisting.is_empty() {
        put(out, false, "assisting", &c.assisting)?;
    }
    put(out, false, "claimed_ms", &c.claimed_ms)?;
    put(out, false, "cleared_ms", &c.cleared_ms)?;
    put(out, false, "cleared_note", &c.cleared_note)?;
    put(out, false, "closed_ms", &c.closed_ms)?;
    put(out, false, "created_ms", &c.created_ms)?;
    put(out, false, "deadline_ms", &c.deadline_ms)?;
    put(out, false, "dedup_key", &c.dedup_key)?;
    put(out, false, "department", &c.department)?;
    key(out, false, "detail");
    audit::write_canonical(&c.detail, out)?;
    put(out, false, "escalation", &c.escalation)?;
    put(out, false, "first_seen_ms", &c.first_seen_ms)?;
    put(out, false, "id", &c.id)?;
    put(out, false, "kind", &c.kind)?;
    put(out, false, "last_seen_ms", &c.last_seen_ms)?;
    put(out, false, "level", &c.level)?;
    put(out, false, "occurrences", &c.occurrences)?;
    put(out, false, "resolution", &c.resolution)?;
    put(out, false, "resolved_ms", &c.resolved_ms)?;
    put(out, false, "rule", &c.rule)?;
    put(out, false, "status", &c.status)?;
    key(out, false, "subject");
    let s = &c.subject;
    out.push(b'{');
    let mut first = true;
    if let Some(d) = &s.device {
        put(out, first, "device", d)?;
        first = false;
    }
    if let Some(l) = &s.location {
        key(out, first, "location");
        out.push(b'{');
        put(out, true, "lat", &l.lat)?;
        put(out, false, "lon", &l.lon)?;
        out.push(b'}');
        first = false;
    }
    for (name, v) in [("owner", &s.owner), ("plate", &s.plate), ("shop", &s.shop)] {
        if let Some(v) = v {
            put(out, first, name, v)?;
            first = false;
        }
    }
    put(out, first, "site", &s.site)?;
    out.push(b'}');
    put(out, false, "title", &c.title)?;
    put(out, false, "updated_ms", &c.updated_ms)?;
    out.push(b'}');
    Ok(())
}

/// Who, at what level of subject detail: history is kept per site/device/plate. A subject
/// named by neither device nor plate but by its shop (shop-front trading) is kept per shop;
/// the shop is left out otherwise, so the keys of device clues stamped with their registered
/// shop stay as they were.
pub(crate) fn subject_key(s: &Subject) -> String {
    let mut k = format!(
        "{}/{}/{}",
        s.site,
        s.device.as_deref().unwrap_or(""),
        s.plate.as_deref().unwrap_or("")
    );
    if let (None, None, Some(shop)) = (&s.device, &s.plate, &s.shop) {
        k.push_str("/shop:");
        k.push_str(shop);
    }
    k
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

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn a_shop_alone_keys_the_history_and_a_device_or_plate_keeps_its_old_key() {
        let shop = |s: &str| Subject {
            site: "s1".into(),
            shop: Some(s.into()),
            ..Default::default()
        };
        assert_eq!(subject_key(&shop("a")), "s1///shop:a");
        assert_ne!(subject_key(&shop("a")), subject_key(&shop("b")));
        let trap = Subject {
            device: Some("trap-1".into()),
            ..shop("a")
        };
        assert_eq!(subject_key(&trap), "s1/trap-1/");
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;
    use crate::clue::lifecycle::Status;
    use crate::clue::signal::GeoPoint;

    /// Every field set, then each optional one cleared: the fast writer must give the text the
    /// definition (`canonical_json(to_value(clue))`) gives. A field added to `Clue` or
    /// `Subject` must be added to this literal, and the digests then differ until the writer
    /// writes it too.
    #[test]
    fn clue_digest_is_the_canonical_form_of_the_clue() {
        let full = Clue {
            id: 7,
            rule: "r\"1".into(),
            kind: "grease_trap.überlauf".into(),
            level: Level::High,
            status: Status::Claimed,
            subject: Subject {
                site: "s1".into(),
                device: Some("d/1".into()),
                plate: Some("AB 123".into()),
                location: Some(GeoPoint {
                    lat: 31.2304,
                    lon: -121.4737,
                }),
                shop: Some("noodles".into()),
                owner: Some("Mr \\ Li".into()),
            },
            dedup_key: "r1:s1:d/1".into(),
            title: "t\n".into(),
            detail: json!({"z": 1, "a": [{"y": 2.5, "b": null}], "m": "x"}),
            department: Some("water".into()),
            assisting: vec!["police".into(), "city".into()],
            assignee: Some("ann".into()),
            resolution: Some("done".into()),
            first_seen_ms: -1,
            last_seen_ms: i64::MAX,
            occurrences: 3,
            created_ms: 4,
            updated_ms: 5,
            deadline_ms: 6,
            escalation: Escalation::Yellow,
            claimed_ms: Some(8),
            resolved_ms: Some(9),
            closed_ms: Some(10),
            cleared_ms: Some(11),
            cleared_note: Some("ok".into()),
        };
        let mut sparse = full.clone();
        sparse.subject = Subject {
            site: "s2".into(),
            ..Default::default()
        };
        sparse.assisting.clear();
        sparse.assignee = None;
        sparse.resolution = None;
        sparse.department = None;
        sparse.claimed_ms = None;
        sparse.resolved_ms = None;
        sparse.closed_ms = None;
        sparse.cleared_ms = None;
        sparse.cleared_note = None;
        sparse.detail = Value::Null;
        let mut only_plate = sparse.clone();
        only_plate.subject.plate = Some("P".into());
        only_plate.subject.shop = Some("S".into());
        for c in [&full, &sparse, &only_plate] {
            let mut out = Vec::new();
            write_clue_canonical(c, &mut out).expect("write");
            let reference = audit::canonical_json(&serde_json::to_value(c).expect("value"));
            assert_eq!(String::from_utf8(out).expect("utf8"), reference);
            assert_eq!(clue_digest(c), clue_digest_by_value(c));
        }
    }
}
