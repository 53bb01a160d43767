//! The append-only, hash-chained audit log: every action and every clue change.
//!
//! Entry `n` stores a hash of `prev_hash || canonical JSON of {seq, at_ms, actor, action,
//! clue_id, detail}` with `prev_hash` = entry `n-1`'s hash (64 zeros for the first). Editing,
//! deleting or reordering any row breaks the chain at that row, which [`verify`] names. The
//! store adds SQLite triggers that refuse UPDATE and DELETE, so only someone going around the
//! gateway can change a row, and then verify finds it.
//!
//! **Two entry formats, told apart by the stored hash** (the chain is verified as written):
//! - *plain*: 64 hex digits, SHA-256. Chains written before the key existed, and stores
//!   opened without a key (tests, the scenario harness).
//! - *sealed*: `hmac-sha256:{key id}:{64 hex}`, HMAC-SHA256 under the key of
//!   [`super::audit_key`], which is not in the database. Whoever can write the database but
//!   lacks the key can no longer recompute the chain after an edit.
//!
//! **Switch-over.** A gateway with a key seals every entry it writes; at its first start with
//! the key on a chain that ends plain, it appends a sealed `chain_sealed` entry naming the
//! last plain entry. So a chain verified *with the key* must be plain up to some entry and
//! sealed from there to its end: a plain entry after a sealed one, or a chain that ends plain,
//! is an entry rewritten without the key (a "downgrade"), and is named.
//!
//! **Key rotation.** The entry `audit_key_rotated` is sealed with the key the chain was under
//! and names the next one (`new_key_id`); from the entry after it, verify accepts only that
//! key. So the keys form one chain of custody: entries are checked with the key whose id they
//! carry, current or retired (`AuditKeyring`), an entry sealed with the old key after the
//! rotation is named (the old key may have been rotated because it leaked), and a chain that
//! ends under a key other than the current one is named (a tail cut to drop the rotation).
//! The id is in each sealed hash, so entries need no other column for it; plain entries have
//! none.
//!
//! **Truncation.** Cutting off the tail leaves a shorter chain that is still valid. So the
//! head (`seq`, `hash`) is published at intervals to the central platform and written to the
//! log (`pool.rs`); verified against a published head ([`Head`]), the chain must reach that
//! entry with exactly that hash. That also pins everything before it, sealed or plain.

use super::audit_key::{AuditKey, AuditKeyring};
use super::lifecycle::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    /// `token:{id}:{role}`, `pool` (the gateway itself), or `cli`.
    pub actor: String,
    /// The [`AuditAction`] spelling (kept as text: a chain is verified as it was written, and
    /// an older or newer gateway may have written actions this one does not know).
    pub action: String,
    pub clue_id: Option<i64>,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What an audit entry records. The spellings are stored and hashed: never change one, or
/// every chain that holds it stops verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// The pool opened a clue.
    Created,
    /// The pool attached a repeat to an open clue.
    Occurrence,
    /// The pool attached a run of plain repeats, held in memory for up to a window
    /// (`clue::repeats`), to an open clue at once: the detail carries `count` and `first_ms`.
    Repeat,
    /// A worse stage of the same problem raised the level (and may take over the kind).
    LevelRaised,
    /// The rule saw the condition clear (the clue stays open for a person to confirm).
    Cleared,
    /// The fault reported its own end and the clue's kind is resolved automatically.
    Recovered,
    /// An open clue passed its deadline (yellow, then red).
    Supervision,
    /// Two clues about the same act were linked (one entry on each).
    Linked,
    /// A lifecycle action by a person or the platform.
    Lifecycle(LifecycleAction),
    /// Oversight raised or raised again a warning for supervisors.
    OversightWarning,
    /// Someone received an unmasked evidence original.
    EvidenceOriginalAccess,
    /// Someone received an unmasked camera frame (`latest.jpg`; no clue).
    FrameOriginalAccess,
    /// Retention purged an evidence item.
    EvidencePurged,
    TokenCreated,
    TokenRevoked,
    /// A device registry entry was added or changed through the API.
    RegistryPut,
    /// A device registry entry was removed through the API.
    RegistryDelete,
    /// A pump-out visit was registered: it suppresses "illegal discharge" clues, so who
    /// excused which trap for which window belongs to the chain.
    PumpoutRegistered,
    /// Maintenance works were registered (`POST /api/v1/maintenance`): they suppress clues
    /// of rules with `unless_maintenance` (an opened manhole), so who excused which device for
    /// which window belongs to the chain.
    MaintenanceRegistered,
    /// The first entry sealed with the key on a chain that was plain until then.
    ChainSealed,
    /// A step of a supervision notice (`clue::supervision`); no clue id on the entry.
    Notice(NoticeEvent),
    /// A muck-truck permit was added or replaced through the API: it excuses a truck from
    /// clues, so who permitted which plate belongs to the chain.
    MuckPermitPut,
    /// A muck-truck permit was revoked through the API.
    MuckPermitDelete,
    /// The chain's key was rotated: sealed with the old key, the entry names the new key's id
    /// (`new_key_id`), and every entry after it must be sealed with that key.
    KeyRotated,
    /// A notice to the owner (`send_owner_notice`) was accepted by its channel's provider
    /// (detail: `notice`, `channel`, `provider_id`, `at`); the owner's time to answer starts.
    OwnerNoticeDelivered,
    /// A notice to the owner was given up after its channel's attempts (detail: `notice`,
    /// `channel`, `reason`, `attempts`).
    OwnerNoticeFailed,
    /// The provider's later receipt for a notice (detail: `notice`, `receipt`, `note`, `at`).
    OwnerNoticeReceipt,
}

/// The steps of a supervision notice as audit records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeEvent {
    Issued,
    Acknowledged,
    Fixed,
    Closed,
    Reopened,
    Escalated,
    /// The pool's tick found the notice past its deadline (yellow), or far past it (red).
    Overdue,
}

impl NoticeEvent {
    /// The stored spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::Issued => "notice_issued",
            NoticeEvent::Acknowledged => "notice_acknowledged",
            NoticeEvent::Fixed => "notice_fixed",
            NoticeEvent::Closed => "notice_closed",
            NoticeEvent::Reopened => "notice_reopened",
            NoticeEvent::Escalated => "notice_escalated",
            NoticeEvent::Overdue => "notice_overdue",
        }
    }
}

/// The lifecycle actions as audit records them: [`Action`] without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    Claim,
    Assign,
    Transfer,
    Resolve,
    Dismiss,
    Close,
    Reopen,
    Comment,
    NotifyOwner,
    OwnerResponse,
    Decide,
    Dispatch,
    SendOwnerNotice,
}

impl AuditAction {
    #[cfg(test)]
    /// Every action, for parsing and tests.
    pub(crate) const ALL: [AuditAction; 45] = [
        AuditAction::Created,
        AuditAction::Occurrence,
        AuditAction::LevelRaised,
        AuditAction::Cleared,
        AuditAction::Recovered,
        AuditAction::Supervision,
        AuditAction::Linked,
        AuditAction::Lifecycle(LifecycleAction::Claim),
        AuditAction::Lifecycle(LifecycleAction::Assign),
        AuditAction::Lifecycle(LifecycleAction::Transfer),
        AuditAction::Lifecycle(LifecycleAction::Resolve),
        AuditAction::Lifecycle(LifecycleAction::Dismiss),
        AuditAction::Lifecycle(LifecycleAction::Close),
        AuditAction::Lifecycle(LifecycleAction::Reopen),
        AuditAction::Lifecycle(LifecycleAction::Comment),
        AuditAction::Lifecycle(LifecycleAction::NotifyOwner),
        AuditAction::Lifecycle(LifecycleAction::OwnerResponse),
        AuditAction::Lifecycle(LifecycleAction::Decide),
        AuditAction::Lifecycle(LifecycleAction::Dispatch),
        AuditAction::Lifecycle(LifecycleAction::SendOwnerNotice),
        AuditAction::OversightWarning,
        AuditAction::EvidenceOriginalAccess,
        AuditAction::FrameOriginalAccess,
        AuditAction::EvidencePurged,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::RegistryPut,
        AuditAction::RegistryDelete,
        AuditAction::PumpoutRegistered,
        AuditAction::ChainSealed,
        AuditAction::Notice(NoticeEvent::Issued),
        AuditAction::Notice(NoticeEvent::Acknowledged),
        AuditAction::Notice(NoticeEvent::Fixed),
        AuditAction::Notice(NoticeEvent::Closed),
        AuditAction::Notice(NoticeEvent::Reopened),
        AuditAction::Notice(NoticeEvent::Escalated),
        AuditAction::Notice(NoticeEvent::Overdue),
        AuditAction::MuckPermitPut,
        AuditAction::MuckPermitDelete,
        AuditAction::KeyRotated,
        AuditAction::OwnerNoticeDelivered,
        AuditAction::OwnerNoticeFailed,
        AuditAction::OwnerNoticeReceipt,
        AuditAction::MaintenanceRegistered,
        AuditAction::Repeat,
    ];

    /// The stored spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Occurrence => "occurrence",
            AuditAction::Repeat => "repeat",
            AuditAction::LevelRaised => "level_raised",
            AuditAction::Cleared => "cleared",
            AuditAction::Recovered => "recovered",
            AuditAction::Supervision => "supervision",
            AuditAction::Linked => "linked",
            AuditAction::Lifecycle(a) => a.as_str(),
            AuditAction::OversightWarning => "oversight_warning",
            AuditAction::EvidenceOriginalAccess => "evidence_original_access",
            AuditAction::FrameOriginalAccess => "frame_original_access",
            AuditAction::EvidencePurged => "evidence_purged",
            AuditAction::TokenCreated => "token_created",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::RegistryPut => "registry_put",
            AuditAction::RegistryDelete => "registry_delete",
            AuditAction::PumpoutRegistered => "pumpout_registered",
            AuditAction::ChainSealed => "chain_sealed",
            AuditAction::Notice(n) => n.as_str(),
            AuditAction::MuckPermitPut => "muck_permit_put",
            AuditAction::MuckPermitDelete => "muck_permit_delete",
            AuditAction::KeyRotated => "audit_key_rotated",
            AuditAction::OwnerNoticeDelivered => "owner_notice_delivered",
            AuditAction::OwnerNoticeFailed => "owner_notice_failed",
            AuditAction::OwnerNoticeReceipt => "owner_notice_receipt",
            AuditAction::MaintenanceRegistered => "maintenance_registered",
        }
    }

    #[cfg(test)]
    /// The action a stored spelling names (none: written by another version).
    pub(crate) fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl LifecycleAction {
    /// The stored spelling, the same as the API's `action` tag.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Claim => "claim",
            LifecycleAction::Assign => "assign",
            LifecycleAction::Transfer => "transfer",
            LifecycleAction::Resolve => "resolve",
            LifecycleAction::Dismiss => "dismiss",
            LifecycleAction::Close => "close",
            LifecycleAction::Reopen => "reopen",
            LifecycleAction::Comment => "comment",
            LifecycleAction::NotifyOwner => "notify_owner",
            LifecycleAction::OwnerResponse => "owner_response",
            LifecycleAction::Decide => "decide",
            LifecycleAction::Dispatch => "dispatch",
            LifecycleAction::SendOwnerNotice => "send_owner_notice",
        }
    }
}

impl From<&Action> for AuditAction {
    fn from(a: &Action) -> AuditAction {
        AuditAction::Lifecycle(match a {
            Action::Claim { .. } => LifecycleAction::Claim,
            Action::Assign { .. } => LifecycleAction::Assign,
            Action::Transfer { .. } => LifecycleAction::Transfer,
            Action::Resolve { .. } => LifecycleAction::Resolve,
            Action::Dismiss { .. } => LifecycleAction::Dismiss,
            Action::Close { .. } => LifecycleAction::Close,
            Action::Reopen { .. } => LifecycleAction::Reopen,
            Action::Comment { .. } => LifecycleAction::Comment,
            Action::NotifyOwner { .. } => LifecycleAction::NotifyOwner,
            Action::OwnerResponse { .. } => LifecycleAction::OwnerResponse,
            Action::Decide { .. } => LifecycleAction::Decide,
            Action::Dispatch { .. } => LifecycleAction::Dispatch,
            Action::SendOwnerNotice { .. } => LifecycleAction::SendOwnerNotice,
        })
    }
}

impl PartialEq<AuditAction> for String {
    fn eq(&self, other: &AuditAction) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<AuditAction> for str {
    fn eq(&self, other: &AuditAction) -> bool {
        self == other.as_str()
    }
}

/// The fields of an entry that its hash covers: everything but the chain links. One value
/// instead of six arguments, so [`entry_hash`], [`seal`] and [`Head::append`] cannot pass
/// them in a different order; serialized (then canonicalized) as the hashed text.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fields<'a> {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub clue_id: Option<i64>,
    pub detail: &'a Value,
}

impl AuditEntry {
    /// The fields this entry's hash covers.
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            seq: self.seq,
            at_ms: self.at_ms,
            actor: &self.actor,
            action: &self.action,
            clue_id: self.clue_id,
            detail: &self.detail,
        }
    }
}

/// JSON with object keys sorted at every level, so the same entry always hashes the same way
/// regardless of how the detail was built or read back. Written straight into one buffer
/// (no sorted copy of the value): every clue event hashes several of these.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    match write_canonical(v, &mut out).map(|()| String::from_utf8(out)) {
        Ok(Ok(text)) => text,
        // Unreachable (writing to a Vec cannot fail, serde_json writes UTF-8); the slow path
        // gives the same text should it ever be reached.
        _ => sorted_copy(v).to_string(),
    }
}

/// Appends the canonical text of `v` (see [`canonical_json`]) to `out`.
pub(crate) fn write_canonical(v: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_canonical(x, out)?;
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

/// The value with keys sorted, as a new value: the reference [`canonical_json`] must match.
fn sorted_copy(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                if let Some(x) = m.get(k) {
                    out.insert(k.clone(), sorted_copy(x));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_copy).collect()),
        other => other.clone(),
    }
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    hex(ctx.finish().as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The canonical text of an entry's hashed fields.
fn hashed_text(f: &Fields<'_>) -> String {
    // The canonical form of `serde_json::to_value(f)` (keys in sorted order), written without
    // building that value; `hashed_text_is_the_canonical_form_of_the_fields` pins the two.
    let mut out = Vec::with_capacity(256);
    let written = (|| -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"action\":");
        serde_json::to_writer(&mut out, f.action)?;
        out.extend_from_slice(b",\"actor\":");
        serde_json::to_writer(&mut out, f.actor)?;
        out.extend_from_slice(format!(",\"at_ms\":{},\"clue_id\":", f.at_ms).as_bytes());
        serde_json::to_writer(&mut out, &f.clue_id)?;
        out.extend_from_slice(b",\"detail\":");
        write_canonical(f.detail, &mut out)?;
        out.extend_from_slice(format!(",\"seq\":{}}}", f.seq).as_bytes());
        Ok(())
    })();
    match written.map(|()| String::from_utf8(out)) {
        Ok(Ok(text)) => text,
        _ => canonical_json(&serde_json::to_value(f).unwrap_or(Value::Null)),
    }
}

/// The plain hash an entry must carry given its predecessor's hash (the format before the
/// key, kept for chains written then).
pub(crate) fn entry_hash(prev_hash: &str, f: &Fields<'_>) -> String {
    sha256_hex(&[prev_hash.as_bytes(), hashed_text(f).as_bytes()])
}

/// The prefix of a sealed entry's hash: `hmac-sha256:{key id}:{hex}`.
pub(crate) const SEALED: &str = "hmac-sha256:";

/// The hash a new entry gets: sealed with `key`, plain without one.
pub fn seal(key: Option<&AuditKey>, prev_hash: &str, f: &Fields<'_>) -> String {
    match key {
        None => entry_hash(prev_hash, f),
        Some(k) => {
            let mac = k.sign_hex(&[prev_hash.as_bytes(), hashed_text(f).as_bytes()]);
            format!("{SEALED}{}:{mac}", k.id())
        }
    }
}

/// The id of the key that sealed `hash` (none: a plain entry).
pub(crate) fn sealed_by(hash: &str) -> Option<&str> {
    hash.strip_prefix(SEALED)
        .map(|rest| rest.split_once(':').map_or(rest, |(id, _)| id))
}

/// The end of the chain: what the gateway publishes (`audit/v1/head`) and the platform keeps,
/// and what a writer holds inside its writing transaction. Every backend appends through
/// [`Head::append`], in memory, and then writes the entries it got, so how an entry is chained
/// and sealed is decided here, in [`seal`], only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The last entry's sequence number (0: empty chain).
    pub seq: i64,
    /// The last entry's hash ([`GENESIS`] for an empty chain).
    pub hash: String,
}

impl Head {
    /// The head of an empty chain.
    pub(crate) fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// The entry that follows this head, sealed with `key` (plain without one); the head
    /// moves onto it.
    pub(crate) fn append(
        &mut self,
        key: Option<&AuditKey>,
        at_ms: i64,
        actor: &str,
        action: &str,
        clue_id: Option<i64>,
        detail: Value,
    ) -> AuditEntry {
        let seq = self.seq + 1;
        let fields = Fields {
            seq,
            at_ms,
            actor,
            action,
            clue_id,
            detail: &detail,
        };
        let hash = seal(key, &self.hash, &fields);
        let prev_hash = std::mem::replace(&mut self.hash, hash.clone());
        self.seq = seq;
        AuditEntry {
            seq,
            at_ms,
            actor: actor.to_string(),
            action: action.to_string(),
            clue_id,
            detail,
            prev_hash,
            hash,
        }
    }
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: u64,
    /// The first entry sealed with the key (none: the chain is plain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed_from: Option<i64>,
    /// The keys the chain is sealed with, in order (one more after each key rotation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpan>,
    /// The published head's entry the chain was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<i64>,
    /// The first entry that does not fit the chain (or the first clue row that differs from
    /// what the log last recorded for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Broken {
    /// Audit sequence number of the first bad entry (the clue id for `clue_row` breaks).
    pub seq: i64,
    pub what: String,
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broken {
            None => {
                write!(f, "audit chain ok: {} entries", self.entries)?;
                match self.sealed_from {
                    Some(s) => write!(f, ", sealed with the key from entry {s}")?,
                    None => write!(f, ", plain (no sealed entry)")?,
                }
                if self.keys.len() > 1 {
                    let keys: Vec<String> = self
                        .keys
                        .iter()
                        .map(|k| format!("{} from entry {}", k.key_id, k.from))
                        .collect();
                    write!(f, ", keys: {}", keys.join(", "))?;
                }
                if let Some(h) = self.head_seq {
                    write!(f, ", matches the published head at entry {h}")?;
                }
                Ok(())
            }
            Some(b) => write!(
                f,
                "audit chain broken at entry {}: {} ({} entries checked)",
                b.seq, b.what, self.entries
            ),
        }
    }
}

#[cfg(test)]
/// Walks entries in sequence order and stops at the first broken link, checking plain
/// entries only (no key, no published head): the check of stores opened without a key.
pub(crate) fn verify<I: IntoIterator<Item = AuditEntry>>(entries: I) -> VerifyReport {
    verify_with(entries, None, None)
}

/// Walks entries in sequence order and stops at the first broken link. With `keys`, sealed
/// entries are checked with the key whose id they carry, current or retired, and the chain
/// must be sealed from some entry to its end (see the module doc) under one key at a time: the
/// key of its first sealed entry until an `audit_key_rotated` entry names the next one. With
/// `head`, the chain must reach that entry with that hash.
pub(crate) fn verify_with<I: IntoIterator<Item = AuditEntry>>(
    entries: I,
    keys: Option<&AuditKeyring>,
    head: Option<&Head>,
) -> VerifyReport {
    let mut prev = GENESIS.to_string();
    let mut expected_seq: Option<i64> = None;
    let mut n = 0u64;
    let mut sealed_from: Option<i64> = None;
    // The key the next sealed entry must carry, and the entry from which it holds.
    let mut under: Option<KeySpan> = None;
    let mut spans: Vec<KeySpan> = Vec::new();
    let mut last: Option<(i64, bool)> = None;
    let report = |n: u64, sealed_from, spans: &[KeySpan], broken: Option<Broken>| VerifyReport {
        ok: broken.is_none(),
        entries: n,
        sealed_from,
        keys: spans.to_vec(),
        head_seq: head.map(|h| h.seq),
        broken,
    };
    for e in entries {
        let broken = |what: String| Some(Broken { seq: e.seq, what });
        if let Some(s) = expected_seq
            && e.seq != s
        {
            let what = format!("expected entry {s} next (entries missing)");
            return report(n, sealed_from, &spans, broken(what));
        }
        if e.prev_hash != prev {
            let what = "prev_hash does not match the previous entry's hash".to_string();
            return report(n, sealed_from, &spans, broken(what));
        }
        let sealed = sealed_by(&e.hash);
        let expected = match (sealed, keys) {
            (None, _) if sealed_from.is_some() => {
                let what = format!(
                    "a plain entry after the chain was sealed from entry {}: rewritten \
                     without the key",
                    sealed_from.unwrap_or_default()
                );
                return report(n, sealed_from, &spans, broken(what));
            }
            (None, _) => entry_hash(&e.prev_hash, &e.fields()),
            (Some(id), None) => {
                let what = format!(
                    "the entry is sealed with key {id}, and no key was given \
                     ([clues.audit] key_file or key_env)"
                );
                return report(n, sealed_from, &spans, broken(what));
            }
            (Some(id), Some(_)) if under.as_ref().is_some_and(|u| u.key_id != id) => {
                let u = under.as_ref().map_or_else(KeySpan::default, Clone::clone);
                let what = format!(
                    "the entry is sealed with key {id}, but the chain is sealed with key {} \
                     from entry {} on{}",
                    u.key_id,
                    u.from,
                    if spans.len() > 1 {
                        " (after a key rotation, an entry sealed with the old key is forged)"
                    } else {
                        ""
                    }
                );
                return report(n, sealed_from, &spans, broken(what));
            }
            (Some(id), Some(ring)) => match ring.get(id) {
                Some(k) => seal(Some(k), &e.prev_hash, &e.fields()),
                None => {
                    let retired = ring.retired_ids();
                    let what = format!(
                        "the entry is sealed with key {id}, which is not in the keyring \
                         (current key {}, retired keys: {}): add that key's file to \
                         [clues.audit] retired_dir or retired_key_files",
                        ring.current().id(),
                        if retired.is_empty() {
                            "none".to_string()
                        } else {
                            retired.join(", ")
                        }
                    );
                    return report(n, sealed_from, &spans, broken(what));
                }
            },
        };
        if expected != e.hash {
            let what = "content does not match its hash (entry edited)".to_string();
            return report(n, sealed_from, &spans, broken(what));
        }
        if let Some(h) = head
            && h.seq == e.seq
            && h.hash != e.hash
        {
            let what =
                "the entry differs from the published head: the chain was rewritten".to_string();
            return report(n, sealed_from, &spans, broken(what));
        }
        if let Some(id) = sealed {
            if sealed_from.is_none() {
                sealed_from = Some(e.seq);
                let span = KeySpan {
                    key_id: id.to_string(),
                    from: e.seq,
                };
                spans.push(span.clone());
                under = Some(span);
            }
            if e.action == AuditAction::KeyRotated.as_str() {
                let Some(next) = e.detail.get("new_key_id").and_then(Value::as_str) else {
                    let what = "a key rotation that names no new_key_id".to_string();
                    return report(n, sealed_from, &spans, broken(what));
                };
                let span = KeySpan {
                    key_id: next.to_string(),
                    from: e.seq + 1,
                };
                spans.push(span.clone());
                under = Some(span);
            }
        }
        n += 1;
        last = Some((e.seq, sealed.is_some()));
        prev = e.hash;
        expected_seq = Some(e.seq + 1);
    }
    if let (Some(_), Some((seq, false))) = (keys, last) {
        let what = "the chain ends with a plain entry although a key is configured: the \
                    gateway seals every entry it writes (and the switch-over at its first start \
                    with the key), so entries were rewritten without the key; or no gateway has \
                    started with this key yet"
            .to_string();
        return report(n, sealed_from, &spans, Some(Broken { seq, what }));
    }
    if let (Some(ring), Some(u), Some((seq, true))) = (keys, &under, last)
        && u.key_id != ring.current().id()
    {
        let what = format!(
            "the chain ends sealed with key {}, and the current key is {}: no rotation to the \
             current key is recorded (start the gateway once, or `gateway audit rotate-key`), \
             or the entries after it were cut off",
            u.key_id,
            ring.current().id()
        );
        return report(n, sealed_from, &spans, Some(Broken { seq, what }));
    }
    if let Some(h) = head {
        let end = last.map_or(0, |l| l.0);
        if end < h.seq {
            let what = format!(
                "the chain ends at entry {end}, before the published head (entry {}): \
                 entries were cut off",
                h.seq
            );
            return report(n, sealed_from, &spans, Some(Broken { seq: h.seq, what }));
        }
    }
    report(n, sealed_from, &spans, None)
}

/// A key the chain is sealed with, from an entry on (until the next span).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeySpan {
    pub key_id: String,
    /// The first entry the key seals.
    pub from: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_actions_keep_their_stored_spellings_and_parse_back() {
        let spelled: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "created",
                "occurrence",
                "level_raised",
                "cleared",
                "recovered",
                "supervision",
                "linked",
                "claim",
                "assign",
                "transfer",
                "resolve",
                "dismiss",
                "close",
                "reopen",
                "comment",
                "notify_owner",
                "owner_response",
                "decide",
                "dispatch",
                "send_owner_notice",
                "oversight_warning",
                "evidence_original_access",
                "frame_original_access",
                "evidence_purged",
                "token_created",
                "token_revoked",
                "registry_put",
                "registry_delete",
                "pumpout_registered",
                "chain_sealed",
                "notice_issued",
                "notice_acknowledged",
                "notice_fixed",
                "notice_closed",
                "notice_reopened",
                "notice_escalated",
                "notice_overdue",
                "muck_permit_put",
                "muck_permit_delete",
                "audit_key_rotated",
                "owner_notice_delivered",
                "owner_notice_failed",
                "owner_notice_receipt",
                "maintenance_registered",
                "repeat",
            ]
        );
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(AuditAction::parse("unknown"), None);
        let lifecycle: Vec<Action> = serde_json::from_value(json!([
            {"action": "claim"}, {"action": "assign", "to": "x"},
            {"action": "transfer", "department": "d", "reason": "r"}, {"action": "resolve"},
            {"action": "dismiss", "reason": "r"}, {"action": "close"},
            {"action": "reopen", "reason": "r"}, {"action": "comment", "text": "t"},
            {"action": "notify_owner", "channel": "sms"},
            {"action": "owner_response", "statement": "s"},
            {"action": "send_owner_notice", "channel": "sms"}
        ]))
        .expect("actions");
        for a in &lifecycle {
            assert_eq!(AuditAction::from(a).as_str(), a.name());
        }
    }

    /// Entries 1..=n, sealed with `key` from entry `sealed_from` on (plain before).
    fn chain_sealed(n: i64, key: Option<&AuditKey>, sealed_from: i64) -> Vec<AuditEntry> {
        let mut c: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let k = key.filter(|_| seq >= sealed_from);
            c.push(next_entry(c.last(), seq, k, json!({"b": seq, "a": "x"})));
        }
        c
    }

    fn next_entry(
        prev: Option<&AuditEntry>,
        seq: i64,
        key: Option<&AuditKey>,
        detail: Value,
    ) -> AuditEntry {
        let mut head = prev.map_or_else(Head::genesis, |p| Head {
            seq: p.seq,
            hash: p.hash.clone(),
        });
        assert_eq!(head.seq + 1, seq);
        head.append(key, seq * 10, "pool", "created", Some(seq), detail)
    }

    /// Rewrites `c` from index `from` on as whoever holds the database but not the key would:
    /// every hash recomputed, plain.
    fn recompute_plain(c: &mut [AuditEntry], from: usize) {
        for i in from..c.len() {
            let prev = if i == 0 {
                GENESIS.to_string()
            } else {
                c[i - 1].hash.clone()
            };
            let e = &mut c[i];
            e.prev_hash = prev.clone();
            e.hash = entry_hash(&prev, &e.fields());
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        chain_sealed(n, None, 0)
    }

    fn key() -> AuditKey {
        AuditKey::from_bytes(&[7u8; 32])
    }

    fn ring(k: &AuditKey) -> AuditKeyring {
        AuditKeyring::single(std::sync::Arc::new(k.clone()))
    }

    /// Entries 1..=n sealed with `old`, the rotation to `new` as entry `at`, and entries
    /// after it sealed with `new`.
    fn chain_rotated(n: i64, at: i64, old: &AuditKey, new: &AuditKey) -> Vec<AuditEntry> {
        let mut head = Head::genesis();
        (1..=n)
            .map(|seq| {
                if seq == at {
                    let detail = json!({"old_key_id": old.id(), "new_key_id": new.id()});
                    head.append(
                        Some(old),
                        seq * 10,
                        "cli",
                        "audit_key_rotated",
                        None,
                        detail,
                    )
                } else {
                    let k = if seq < at { old } else { new };
                    head.append(
                        Some(k),
                        seq * 10,
                        "pool",
                        "created",
                        Some(seq),
                        json!({"n": seq}),
                    )
                }
            })
            .collect()
    }

    #[test]
    fn a_chain_across_a_key_rotation_verifies_with_the_keyring() {
        let (old, new) = (key(), AuditKey::from_bytes(&[9u8; 32]));
        let c = chain_rotated(8, 4, &old, &new);
        let keys = AuditKeyring::new(std::sync::Arc::new(new.clone()), vec![old.clone()]);
        let r = verify_with(c.clone(), Some(&keys), None);
        assert!(r.ok, "{r}");
        assert_eq!(r.entries, 8);
        assert_eq!(
            r.keys,
            [
                KeySpan {
                    key_id: old.id().into(),
                    from: 1
                },
                KeySpan {
                    key_id: new.id().into(),
                    from: 5
                }
            ]
        );
        assert!(r.to_string().contains(new.id()), "{r}");
        // The old key as the current one: the chain moved on to a key the ring lacks.
        let r = verify_with(c, Some(&ring(&old)), None);
        let b = r.broken.expect("new key missing");
        assert_eq!(b.seq, 5);
        assert!(
            b.what.contains(new.id()) && b.what.contains("not in the keyring"),
            "{}",
            b.what
        );
    }

    #[test]
    fn an_entry_forged_with_the_old_key_after_the_rotation_is_named() {
        let (old, new) = (key(), AuditKey::from_bytes(&[9u8; 32]));
        let keys = AuditKeyring::new(std::sync::Arc::new(new.clone()), vec![old.clone()]);
        // Whoever kept the old key edits entry 6 and recomputes it (and all after) with it.
        let mut c = chain_rotated(8, 4, &old, &new);
        c[5].actor = "mallory".into();
        let mut head = Head {
            seq: 5,
            hash: c[4].hash.clone(),
        };
        for e in c.iter_mut().skip(5) {
            *e = head.append(
                Some(&old),
                e.at_ms,
                &e.actor,
                &e.action,
                e.clue_id,
                e.detail.clone(),
            );
        }
        let r = verify_with(c, Some(&keys), None);
        let b = r.broken.expect("forged");
        assert_eq!(b.seq, 6);
        assert!(
            b.what.contains(old.id()) && b.what.contains("rotation"),
            "{}",
            b.what
        );
        // Or the whole tail from the rotation on, dropping the rotation entry: the chain then
        // ends under the retired key.
        let mut c = chain_rotated(8, 4, &old, &new);
        let mut head = Head {
            seq: 3,
            hash: c[2].hash.clone(),
        };
        for e in c.iter_mut().skip(3) {
            *e = head.append(Some(&old), e.at_ms, "pool", "created", e.clue_id, json!({}));
        }
        let r = verify_with(c, Some(&keys), None);
        assert!(!r.ok, "{r}");
        assert!(
            r.to_string().contains("no rotation to the current key"),
            "{r}"
        );
    }

    #[test]
    fn without_the_retired_key_verify_names_the_missing_key_id() {
        let (old, new) = (key(), AuditKey::from_bytes(&[9u8; 32]));
        let c = chain_rotated(6, 3, &old, &new);
        let r = verify_with(c, Some(&ring(&new)), None);
        let b = r.broken.expect("old key missing");
        assert_eq!(b.seq, 1);
        assert!(
            b.what.contains(&format!("sealed with key {}", old.id()))
                && b.what.contains("not in the keyring")
                && b.what.contains("retired_dir"),
            "{}",
            b.what
        );
    }

    /// A chain written by the gateway before key rotation existed (main `73893b6`, three
    /// `token create`, key file beside it) keeps verifying, with its key alone or in a ring.
    #[test]
    fn a_chain_written_before_key_rotation_still_verifies() {
        let pin: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/audit_chain_before_rotation.json"
        ))
        .expect("fixture");
        let k = AuditKey::from_hex(pin["key_hex"].as_str().expect("key"), "fixture").expect("key");
        let entries: Vec<AuditEntry> = pin["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| AuditEntry {
                seq: e["seq"].as_i64().expect("seq"),
                at_ms: e["at_ms"].as_i64().expect("at_ms"),
                actor: e["actor"].as_str().expect("actor").into(),
                action: e["action"].as_str().expect("action").into(),
                clue_id: e["clue_id"].as_i64(),
                detail: e["detail"].clone(),
                prev_hash: e["prev_hash"].as_str().expect("prev").into(),
                hash: e["hash"].as_str().expect("hash").into(),
            })
            .collect();
        assert_eq!(entries.len(), 3);
        let r = verify_with(entries.clone(), Some(&ring(&k)), None);
        assert!(r.ok, "{r}");
        assert_eq!(r.sealed_from, Some(1));
        let later = AuditKey::from_bytes(&[1u8; 32]);
        let mut c = entries;
        let mut head = Head {
            seq: 3,
            hash: c[2].hash.clone(),
        };
        let detail = json!({"old_key_id": k.id(), "new_key_id": later.id()});
        c.push(head.append(Some(&k), 40, "cli", "audit_key_rotated", None, detail));
        c.push(head.append(Some(&later), 50, "cli", "token_created", None, json!({})));
        let keys = AuditKeyring::new(std::sync::Arc::new(later), vec![k]);
        let r = verify_with(c, Some(&keys), None);
        assert!(r.ok, "{r}");
    }

    #[test]
    fn a_sealed_chain_after_a_plain_one_verifies_with_its_key_only() {
        let k = key();
        let c = chain_sealed(6, Some(&k), 4);
        assert!(c[2].hash.len() == 64 && sealed_by(&c[3].hash) == Some(k.id()));
        let r = verify_with(c.clone(), Some(&ring(&k)), None);
        assert!(r.ok, "{r}");
        assert_eq!((r.entries, r.sealed_from), (6, Some(4)));
        let r = verify(c.clone());
        assert_eq!(
            r.broken.map(|b| b.seq),
            Some(4),
            "no key: sealed entries unchecked"
        );
        let other = AuditKey::from_bytes(&[8u8; 32]);
        let r = verify_with(c, Some(&ring(&other)), None);
        assert!(r.broken.expect("broken").what.contains(k.id()));
    }

    #[test]
    fn an_edited_entry_with_its_plain_hashes_recomputed_fails_against_the_key() {
        let k = key();
        for edit in [0usize, 2, 4] {
            let mut c = chain_sealed(6, Some(&k), 3);
            c[edit].actor = "mallory".into();
            recompute_plain(&mut c, edit);
            // Plain SHA-256 alone (today's check) is fooled ...
            assert!(verify(c.clone()).ok || edit >= 2);
            // ... the key is not.
            let r = verify_with(c, Some(&ring(&k)), None);
            assert!(!r.ok, "edit at index {edit}: {r}");
        }
    }

    #[test]
    fn a_cut_off_tail_fails_against_the_published_head_and_a_rewrite_too() {
        let k = key();
        let c = chain_sealed(8, Some(&k), 1);
        let head = Head {
            seq: 8,
            hash: c[7].hash.clone(),
        };
        assert!(verify_with(c.clone(), Some(&ring(&k)), Some(&head)).ok);
        let cut: Vec<AuditEntry> = c[..5].to_vec();
        assert!(
            verify_with(cut.clone(), Some(&ring(&k)), None).ok,
            "a cut is a valid chain"
        );
        let r = verify_with(cut, Some(&ring(&k)), Some(&head));
        let b = r.broken.expect("cut off");
        assert_eq!(b.seq, 8);
        assert!(b.what.contains("cut off"), "{}", b.what);
        // A plain chain pinned by a published plain head: rewriting before it fails too.
        let mut p = chain(5);
        let plain_head = Head {
            seq: 5,
            hash: p[4].hash.clone(),
        };
        p[1].actor = "mallory".into();
        recompute_plain(&mut p, 1);
        assert!(verify(p.clone()).ok);
        assert!(!verify_with(p, None, Some(&plain_head)).ok);
    }

    #[test]
    fn intact_chain_verifies() {
        let r = verify(chain(5));
        assert!(r.ok, "{r}");
        assert_eq!(r.entries, 5);
    }

    #[test]
    fn edited_entry_is_named() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        let r = verify(c);
        assert!(!r.ok);
        assert_eq!(r.broken.map(|b| b.seq), Some(3));
    }

    #[test]
    fn deleted_entry_is_named() {
        let mut c = chain(5);
        c.remove(1);
        let r = verify(c);
        assert_eq!(r.broken.map(|b| b.seq), Some(3));
    }

    #[test]
    fn hashed_text_is_the_canonical_form_of_the_fields() {
        let detail = json!({"z": [1, 2.5, {"b": "é\"\n", "a": null}], "a": {"y": true}});
        for (clue_id, actor) in [(Some(7), "pool"), (None, "ann \"the\" admin")] {
            let f = Fields {
                seq: 42,
                at_ms: -3,
                actor,
                action: "created",
                clue_id,
                detail: &detail,
            };
            let reference = sorted_copy(&serde_json::to_value(f).expect("value")).to_string();
            assert_eq!(hashed_text(&f), reference);
        }
    }

    #[test]
    fn canonical_json_matches_the_sorted_copy() {
        let v = json!({"k": [{"z": 1, "y": [3, {"d": 1e300, "c": -0.5}]}], "": "\u{1}\u{7f}中", "A": {}});
        assert_eq!(canonical_json(&v), sorted_copy(&v).to_string());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"z": 1, "a": {"y": [ {"b": 1, "a": 2} ], "x": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[{"a":2,"b":1}]},"z":1}"#
        );
    }
}
