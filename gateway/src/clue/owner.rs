//! The owner's side of a clue: when and how they were told, what they answered, and whether a
//! first minor violation should be met with a warning rather than a penalty.
//!
//! Notification and answer are lifecycle actions (`notify_owner`, `owner_response`) so they
//! land in the audit log like every other step; [`owner_record`] reads them back from there.
//! A notice sent through a configured channel (`send_owner_notice`, see `clue::owner_notify`)
//! counts as a notification when its provider accepted it (`owner_notice_delivered`), not
//! when it was queued: the owner's time to answer starts when they could have read it.
//! The leniency recommendation is advice with the rule that produced it: people decide, the
//! system records and reminds.

use super::audit::AuditEntry;
use super::model::Clue;
use super::oversight::LeniencyConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub at_ms: i64,
    /// `sms`, `letter`, `phone`, `in_person`, ...
    pub channel: String,
    pub by: String,
    pub note: Option<String>,
    /// The notice (`owner_notices` id) whose delivery this is; none for a person's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerStatement {
    pub at_ms: i64,
    pub statement: String,
    pub channel: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
}

/// What the clue's record says about the owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub notified: Vec<Notification>,
    pub responses: Vec<OwnerStatement>,
    /// First notification plus the answer window: the earliest fair time to decide.
    pub answer_due_ms: Option<i64>,
    /// Notices sent through configured channels, oldest first, with their delivery state
    /// (filled in by the pool from the store).
    #[serde(default)]
    pub notices: Vec<super::owner_notify::OwnerNotice>,
}

fn text(d: &Value, key: &str) -> Option<String> {
    d.get(key).and_then(Value::as_str).map(String::from)
}

/// Reads notifications and answers from the clue's audit entries.
pub(crate) fn owner_record(audit: &[AuditEntry], answer_window_s: u64) -> OwnerRecord {
    let mut r = OwnerRecord::default();
    for e in audit {
        match e.action.as_str() {
            "notify_owner" => r.notified.push(Notification {
                at_ms: e.at_ms,
                channel: text(&e.detail, "channel").unwrap_or_default(),
                by: e.actor.clone(),
                note: text(&e.detail, "note"),
                notice: None,
            }),
            "owner_notice_delivered" => r.notified.push(Notification {
                at_ms: e
                    .detail
                    .get("at")
                    .and_then(Value::as_i64)
                    .unwrap_or(e.at_ms),
                channel: text(&e.detail, "channel").unwrap_or_default(),
                by: e.actor.clone(),
                note: text(&e.detail, "provider_id").map(|p| format!("provider id {p}")),
                notice: e.detail.get("notice").and_then(Value::as_i64),
            }),
            "owner_response" => r.responses.push(OwnerStatement {
                at_ms: e.at_ms,
                statement: text(&e.detail, "statement").unwrap_or_default(),
                channel: text(&e.detail, "channel"),
                recorded_by: e.actor.clone(),
            }),
            _ => {}
        }
    }
    r.answer_due_ms = r
        .notified
        .iter()
        .map(|n| n.at_ms)
        .min()
        .map(|at| at.saturating_add(answer_window_s as i64 * 1000));
    r
}

/// The recommendation shown in the clue detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leniency {
    /// A warning instead of a penalty is recommended.
    pub recommended: bool,
    /// The rule, stated in full with its configured figures.
    pub rule: String,
    /// Why it does or does not apply to this clue.
    pub reasons: Vec<String>,
}

/// First minor violation: level at most `max_level`, at most `max_occurrences` occurrences,
/// and no earlier clue of the same kind about the same subject within `lookback_s`
/// (`prior_in_lookback`, counted by the store).
pub(crate) fn leniency(clue: &Clue, prior_in_lookback: i64, cfg: &LeniencyConfig) -> Leniency {
    let rule = format!(
        "first-minor-violation: level at most {}, at most {} occurrence(s), no earlier clue of \
         this kind about this subject in {} days => recommend a warning, not a penalty",
        cfg.max_level.as_str(),
        cfg.max_occurrences,
        cfg.lookback_s / 86_400
    );
    let mut reasons = Vec::new();
    let mut ok = cfg.enabled;
    if !cfg.enabled {
        reasons.push("leniency recommendations are switched off".to_string());
    }
    if clue.level > cfg.max_level {
        ok = false;
        reasons.push(format!("level {} is not minor", clue.level.as_str()));
    }
    if clue.occurrences > cfg.max_occurrences {
        ok = false;
        reasons.push(format!("seen {} times", clue.occurrences));
    }
    if prior_in_lookback > 0 {
        ok = false;
        reasons.push(format!(
            "{prior_in_lookback} earlier clue(s) of this kind about this subject"
        ));
    }
    if ok {
        reasons.push(format!(
            "level {}, seen {} time(s), nothing earlier on record",
            clue.level.as_str(),
            clue.occurrences
        ));
    }
    Leniency {
        recommended: ok,
        rule,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::model::Escalation;
    use crate::clue::signal::{Level, Subject};
    use serde_json::json;

    fn clue(level: Level, occurrences: i64) -> Clue {
        Clue {
            id: 1,
            rule: "r".into(),
            kind: "parking.overstay".into(),
            level,
            status: crate::clue::lifecycle::Status::New,
            subject: Subject {
                site: "s".into(),
                ..Default::default()
            },
            dedup_key: "k".into(),
            title: "t".into(),
            detail: json!({}),
            department: None,
            assisting: Vec::new(),
            assignee: None,
            resolution: None,
            first_seen_ms: 0,
            last_seen_ms: 0,
            occurrences,
            created_ms: 0,
            updated_ms: 0,
            deadline_ms: 0,
            escalation: Escalation::None,
            claimed_ms: None,
            resolved_ms: None,
            closed_ms: None,
            cleared_ms: None,
            cleared_note: None,
        }
    }

    #[test]
    fn a_first_minor_violation_is_recommended_a_warning_with_the_rule() {
        let cfg = LeniencyConfig::default();
        let l = leniency(&clue(Level::Medium, 1), 0, &cfg);
        assert!(l.recommended);
        assert!(l.rule.starts_with("first-minor-violation"), "{}", l.rule);
        assert!(!leniency(&clue(Level::High, 1), 0, &cfg).recommended);
        assert!(!leniency(&clue(Level::Low, 9), 0, &cfg).recommended);
        let repeat = leniency(&clue(Level::Low, 1), 2, &cfg);
        assert!(!repeat.recommended);
        assert!(
            repeat.reasons[0].contains("2 earlier"),
            "{:?}",
            repeat.reasons
        );
    }

    #[test]
    fn notifications_and_answers_are_read_from_the_audit() {
        let entry = |seq, at_ms, action: &str, detail| AuditEntry {
            seq,
            at_ms,
            actor: "ann#1".into(),
            action: action.into(),
            clue_id: Some(1),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let r = owner_record(
            &[
                entry(1, 10, "claim", json!({})),
                entry(
                    2,
                    20,
                    "notify_owner",
                    json!({"channel": "sms", "note": "text sent"}),
                ),
                entry(
                    3,
                    30,
                    "owner_response",
                    json!({"statement": "pump broke", "channel": "phone"}),
                ),
            ],
            60,
        );
        assert_eq!(r.notified[0].channel, "sms");
        assert_eq!(r.responses[0].statement, "pump broke");
        assert_eq!(r.answer_due_ms, Some(60_020));
    }

    #[test]
    fn a_sent_notice_starts_the_answer_window_at_delivery_not_at_queueing() {
        let entry = |seq, at_ms, action: &str, detail| AuditEntry {
            seq,
            at_ms,
            actor: "owner-notify:sms".into(),
            action: action.into(),
            clue_id: Some(1),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let queued = entry(
            1,
            100,
            "send_owner_notice",
            json!({"channel": "sms", "notice": 7}),
        );
        let r = owner_record(std::slice::from_ref(&queued), 60);
        assert!(r.notified.is_empty(), "queued is not told");
        assert_eq!(r.answer_due_ms, None);
        let r = owner_record(
            &[
                queued,
                entry(
                    2,
                    5_000,
                    "owner_notice_delivered",
                    json!({"channel": "sms", "notice": 7, "provider_id": "m-1", "at": 4_900}),
                ),
            ],
            60,
        );
        assert_eq!(r.notified[0].notice, Some(7));
        assert_eq!(r.notified[0].channel, "sms");
        assert_eq!(r.answer_due_ms, Some(64_900));
    }
}
