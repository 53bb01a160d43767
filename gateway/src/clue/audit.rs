//! The append-only, hash-chained audit log: every action and every clue change.
//!
//! Entry `n` stores `hash = SHA-256(prev_hash || canonical JSON of {seq, at_ms, actor, action,
//! clue_id, detail})` with `prev_hash` = entry `n-1`'s hash (64 zeros for the first). Editing,
//! deleting or reordering any row breaks the chain at that row, which [`verify`] names. The
//! store adds SQLite triggers that refuse UPDATE and DELETE, so only someone going around the
//! gateway can change a row, and then verify finds it.

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
}

impl AuditAction {
    /// Every action, for parsing and tests.
    pub const ALL: [AuditAction; 27] = [
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
        AuditAction::OversightWarning,
        AuditAction::EvidenceOriginalAccess,
        AuditAction::FrameOriginalAccess,
        AuditAction::EvidencePurged,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::RegistryPut,
        AuditAction::RegistryDelete,
        AuditAction::PumpoutRegistered,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Occurrence => "occurrence",
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
        }
    }

    /// The action a stored spelling names (none: written by another version).
    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl LifecycleAction {
    /// The stored spelling, the same as the API's `action` tag.
    pub fn as_str(self) -> &'static str {
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

/// The fields that are hashed, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at_ms: i64,
    actor: &'a str,
    action: &'a str,
    clue_id: Option<i64>,
    detail: Value,
}

/// JSON with object keys sorted at every level, so the same entry always hashes the same way
/// regardless of how the detail was built or read back.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    if let Some(x) = m.get(k) {
                        out.insert(k.clone(), sorted(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json keeps the order we inserted (sorted) whether or not `preserve_order` is on.
    sorted(v).to_string()
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    hex(ctx.finish().as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The hash an entry must carry given its predecessor's hash.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    clue_id: Option<i64>,
    detail: &Value,
) -> String {
    let body = serde_json::to_value(Hashed {
        seq,
        at_ms,
        actor,
        action,
        clue_id,
        detail: detail.clone(),
    })
    .unwrap_or(Value::Null);
    sha256_hex(&[prev_hash.as_bytes(), canonical_json(&body).as_bytes()])
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: u64,
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
            None => write!(f, "audit chain ok: {} entries", self.entries),
            Some(b) => write!(
                f,
                "audit chain broken at entry {}: {} ({} entries checked)",
                b.seq, b.what, self.entries
            ),
        }
    }
}

/// Walks entries in sequence order and stops at the first broken link.
pub fn verify<I: IntoIterator<Item = AuditEntry>>(entries: I) -> VerifyReport {
    let mut prev = GENESIS.to_string();
    let mut expected_seq: Option<i64> = None;
    let mut n = 0u64;
    for e in entries {
        let broken = |what: String| VerifyReport {
            ok: false,
            entries: n,
            broken: Some(Broken { seq: e.seq, what }),
        };
        if let Some(s) = expected_seq
            && e.seq != s
        {
            return broken(format!("expected entry {s} next (entries missing)"));
        }
        if e.prev_hash != prev {
            return broken("prev_hash does not match the previous entry's hash".into());
        }
        let h = entry_hash(
            &e.prev_hash,
            e.seq,
            e.at_ms,
            &e.actor,
            &e.action,
            e.clue_id,
            &e.detail,
        );
        if h != e.hash {
            return broken("content does not match its hash (entry edited)".into());
        }
        n += 1;
        prev = e.hash;
        expected_seq = Some(e.seq + 1);
    }
    VerifyReport {
        ok: true,
        entries: n,
        broken: None,
    }
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
                "oversight_warning",
                "evidence_original_access",
                "frame_original_access",
                "evidence_purged",
                "token_created",
                "token_revoked",
                "registry_put",
                "registry_delete",
                "pumpout_registered",
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
            {"action": "owner_response", "statement": "s"}
        ]))
        .expect("actions");
        for a in &lifecycle {
            assert_eq!(AuditAction::from(a).as_str(), a.name());
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let detail = json!({"b": seq, "a": "x"});
                let hash = entry_hash(&prev, seq, seq * 10, "pool", "created", Some(seq), &detail);
                let e = AuditEntry {
                    seq,
                    at_ms: seq * 10,
                    actor: "pool".into(),
                    action: "created".into(),
                    clue_id: Some(seq),
                    detail,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
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
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"z": 1, "a": {"y": [ {"b": 1, "a": 2} ], "x": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[{"a":2,"b":1}]},"z":1}"#
        );
    }
}
