//! What the pool stores and serves: a clue, its occurrences and evidence, a change event, the
//! list query and the statistics. Plain data shared by the store, the API and delivery.

use super::lifecycle::Status;
use super::signal::{Level, Region, Subject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Two-colour supervision of overdue open clues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Escalation {
    None,
    /// Past its deadline.
    Yellow,
    /// Past its deadline by `clues.red_after_s` as well.
    Red,
}

impl Escalation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Escalation::None => "none",
            Escalation::Yellow => "yellow",
            Escalation::Red => "red",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Escalation> {
        [Escalation::None, Escalation::Yellow, Escalation::Red]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

pub(crate) fn parse_level(s: &str) -> Option<Level> {
    [Level::Low, Level::Medium, Level::High]
        .into_iter()
        .find(|l| l.as_str() == s)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clue {
    pub id: i64,
    pub rule: String,
    pub kind: String,
    pub level: Level,
    pub status: Status,
    pub subject: Subject,
    pub dedup_key: String,
    pub title: String,
    pub detail: Value,
    /// The department that leads the handling (from dispatch, the producer, or a transfer).
    pub department: Option<String>,
    /// Departments assisting the lead (from dispatch or a supervisor's `dispatch` action).
    /// Left out when empty, so the digest of a clue without any stays what it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assisting: Vec<String>,
    pub assignee: Option<String>,
    /// Resolution note or dismissal reason.
    pub resolution: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub occurrences: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deadline_ms: i64,
    pub escalation: Escalation,
    pub claimed_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// The producer reported the condition over (recorded; never closes the clue).
    pub cleared_ms: Option<i64>,
    pub cleared_note: Option<String>,
}

/// Prior record of the same subject and kind: a hint for first-violation leniency, nothing more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Earlier clues of this kind about this subject (any status).
    pub prior_clues: i64,
    pub first_seen_ms: Option<i64>,
    pub first_violation: bool,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub id: i64,
    /// When it was seen; for a run of repeats (`count` > 1), the last of them.
    pub at_ms: i64,
    pub received_ms: i64,
    pub level: Level,
    pub title: String,
    pub detail: Value,
    /// How many events this row stands for: 1, or a run of plain repeats held in memory and
    /// written once per `[clues] repeat_window_ms` (`clue::repeats`).
    #[serde(default = "one")]
    pub count: i64,
    /// The first event of the run (`at_ms` is its last); the same as `at_ms` for one event.
    #[serde(default)]
    pub first_ms: Option<i64>,
}

fn one() -> i64 {
    1
}

fn is_one(n: &i64) -> bool {
    *n == 1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    pub id: i64,
    pub occurrence_id: i64,
    /// `readings`, `file` or `note`.
    pub kind: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    /// Of the file bytes, or of the canonical JSON body for readings and notes.
    pub sha256: String,
    pub size: i64,
    /// Readings window or note, inline; files are fetched by hash. `None` once purged.
    pub body: Option<Value>,
    pub at_ms: i64,
    /// Personal-data boxes of an image (`None`: unknown, masked whole for lesser roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<Region>>,
    /// Deleted by the retention job at this time (the row stays as a tombstone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_ms: Option<i64>,
}

/// Evidence ready to be recorded (files already written to the evidence store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvidence {
    pub kind: &'static str,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub body: Option<Value>,
    pub regions: Option<Vec<Region>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClueDetail {
    #[serde(flatten)]
    pub clue: Clue,
    pub history: History,
    /// The latest occurrences (newest first, at most 50).
    pub recent_occurrences: Vec<Occurrence>,
    pub evidence: Vec<EvidenceItem>,
    /// Duplicate-act links: the lead of this clue, or the clues linked to it.
    #[serde(default)]
    pub links: Links,
    /// Owner notification and answers (filled by the pool from the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<super::owner::OwnerRecord>,
    /// First-minor-violation leniency recommendation and the rule behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leniency: Option<super::owner::Leniency>,
    /// The enforcement matter of the clue's kind, the band its facts put it in and the
    /// leniency entries they meet (`None`: the kind belongs to no matter in the catalogue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matter: Option<super::matters::MatterAssessment>,
}

/// One violation, one case: two departments' clues about the same act are linked, one leads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// Set on a linked clue: the clue that leads the case.
    pub lead: Option<ClueLink>,
    /// Set on a lead: the clues linked to it.
    pub linked: Vec<ClueLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClueLink {
    /// The other clue.
    pub clue_id: i64,
    pub department: Option<String>,
    pub reason: String,
    pub actor: String,
    pub at_ms: i64,
}

/// One change of one clue, as delivered to SSE, MQTT and the webhook. `event_id` is the audit
/// sequence number: unique and increasing, so consumers can drop a redelivered event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClueChange {
    pub event_id: i64,
    /// `created`, `occurrence`, `cleared`, `supervision`, or the lifecycle action.
    pub event: String,
    pub at_ms: i64,
    pub actor: String,
    pub clue: Clue,
    /// Events this change stands for: more than 1 for a run of plain repeats written at once
    /// (`clue::repeats`; then `event` is `occurrence` and `clue.occurrences` already counts
    /// them all). Left out of the JSON when 1, so single events read as before.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: i64,
}

/// `GET /api/v1/clues` filters plus the caller's site scope.
#[derive(Debug, Clone, Default)]
pub struct ClueQuery {
    pub status: Option<Status>,
    pub level: Option<Level>,
    pub site: Option<String>,
    pub kind: Option<String>,
    /// `None`: every site (admin). `Some(list)`: only these.
    pub scope: Option<Vec<String>>,
    /// Only clues this department leads or assists (a department token's scope).
    pub department: Option<String>,
    /// Created at or after / before (ms), for exports.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total: u64,
    pub by_level: std::collections::BTreeMap<String, u64>,
    pub by_status: std::collections::BTreeMap<String, u64>,
    pub by_kind: std::collections::BTreeMap<String, u64>,
    pub by_department: std::collections::BTreeMap<String, u64>,
    /// Resolved, dismissed or closed over all clues (0 when there are none).
    pub disposal_rate: f64,
    pub median_time_to_claim_s: Option<f64>,
    pub median_time_to_resolve_s: Option<f64>,
    pub overdue_yellow: u64,
    pub overdue_red: u64,
    /// Parking persuasion: warned stays and what became of them, per camera and zone.
    #[serde(default)]
    pub parking: super::stays::ParkingStats,
}

/// One queued delivery (transactional outbox row).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub attempts: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new clue at `site`, for tests of what reads clues.
    pub(crate) fn clue(site: &str) -> Clue {
        Clue {
            id: 1,
            rule: "r".into(),
            kind: "k".into(),
            level: Level::Low,
            status: Status::New,
            subject: Subject {
                site: site.into(),
                ..Default::default()
            },
            dedup_key: "r/s".into(),
            title: "t".into(),
            detail: Value::Null,
            department: None,
            assisting: Vec::new(),
            assignee: None,
            resolution: None,
            first_seen_ms: 0,
            last_seen_ms: 0,
            occurrences: 1,
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

    /// A detail of [`clue`] with nothing else on record.
    pub(crate) fn detail_for_test() -> ClueDetail {
        ClueDetail {
            clue: clue("s"),
            history: History {
                prior_clues: 0,
                first_seen_ms: None,
                first_violation: true,
                hint: String::new(),
            },
            recent_occurrences: Vec::new(),
            evidence: Vec::new(),
            links: Links::default(),
            owner: None,
            leniency: None,
            matter: None,
        }
    }

    #[test]
    fn a_clue_without_assisting_departments_serializes_as_before() {
        let v = serde_json::to_value(clue("s")).expect("json");
        assert!(v.get("assisting").is_none());
        let with = Clue {
            assisting: vec!["market".into()],
            ..clue("s")
        };
        let v = serde_json::to_value(with).expect("json");
        assert_eq!(v["assisting"], serde_json::json!(["market"]));
    }
}
