//! The clue lifecycle as a pure state machine: statuses, actions, and the one function that
//! applies an action to a state. No I/O and no clock: the caller passes who and when, the
//! store persists the result and the audit log records it.
//!
//! ```text
//! new/reopened ─claim──> claimed ─resolve──> resolved ─close─> closed
//!      │  ─assign─> assigned ─resolve─┘          │               │
//!      │  ─transfer─> transferred (department)   └──reopen───────┴─> reopened
//!      └──────────── dismiss (reason) ─> dismissed ─close─> closed
//! ```
//!
//! `decide` (band, penalty, leniency applied, basis) records the decision on a clue someone
//! holds (claimed, assigned) or has resolved; like a comment it changes no status, and a later
//! decision supersedes an earlier one (see `clue::decision`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Claimed,
    Assigned,
    Transferred,
    Resolved,
    Dismissed,
    Closed,
    Reopened,
}

impl Status {
    pub(crate) const ALL: [Status; 8] = [
        Status::New,
        Status::Claimed,
        Status::Assigned,
        Status::Transferred,
        Status::Resolved,
        Status::Dismissed,
        Status::Closed,
        Status::Reopened,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Claimed => "claimed",
            Status::Assigned => "assigned",
            Status::Transferred => "transferred",
            Status::Resolved => "resolved",
            Status::Dismissed => "dismissed",
            Status::Closed => "closed",
            Status::Reopened => "reopened",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Open clues absorb repeats (dedup) and can become overdue.
    pub(crate) fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Dismissed | Status::Closed)
    }
}

/// What a person (or the central platform) does to a clue. `why` texts are trimmed; the ones
/// marked required must not be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Take the clue yourself.
    Claim {
        #[serde(default)]
        note: Option<String>,
    },
    /// Give the clue to someone (a supervisor's decision).
    Assign {
        to: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Hand the clue to another department; reason required.
    Transfer { department: String, reason: String },
    /// The problem was handled (warning given, owner fixed it, ...).
    Resolve {
        #[serde(default)]
        note: Option<String>,
    },
    /// Not a problem (false alarm, permitted work); reason required.
    Dismiss { reason: String },
    /// Final: the disposal was reviewed.
    Close {
        #[serde(default)]
        note: Option<String>,
    },
    /// Back to work; reason required.
    Reopen { reason: String },
    /// A note on the record; no status change.
    Comment { text: String },
    /// The owner was told about the clue (by `channel`: sms, letter, phone, in_person...);
    /// no status change. Starts the owner's time to answer.
    NotifyOwner {
        channel: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Send the owner a notice through a configured channel (`[[clues.owner_notify.channels]]`,
    /// e.g. a webhook to an SMS or letter service), optionally with a named template; no status
    /// change. Queued in the outbox with the action; the delivery (or its failure) is recorded
    /// later as `owner_notice_delivered` / `owner_notice_failed`, and the owner's time to answer
    /// starts at delivery, not here (see `clue::owner_notify`).
    SendOwnerNotice {
        channel: String,
        #[serde(default)]
        template: Option<String>,
        /// Filled in by the pool (contact, payload, idempotency key), never by the caller (a
        /// request that sends it is refused as an unknown field) and never written to the
        /// audit (it holds the owner's full contact).
        #[serde(default, skip)]
        draft: Option<super::owner_notify::OwnerNoticeDraft>,
    },
    /// What the owner answered, recorded by whoever received it; no status change.
    OwnerResponse {
        statement: String,
        #[serde(default)]
        channel: Option<String>,
    },
    /// The decision: the discretion band, the penalty (whole units of the catalogue's
    /// currency, 0 for none), the leniency entries applied and the basis (required: the facts
    /// and findings it rests on). No status change; a later decision supersedes this one.
    Decide {
        band: String,
        penalty: u64,
        #[serde(default)]
        leniency_applied: Vec<String>,
        basis: String,
        /// Filled in by the pool from the matter catalogue, never by the caller (a request
        /// that sends it is refused as an unknown field).
        #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
        check: Option<super::decision::DecisionCheck>,
    },
    /// A supervisor changes who handles the clue: the lead department, the assisting ones
    /// (the whole list; `[]` for none), or both; reason required. No status change: the
    /// people already on it stay on it (a `transfer` hands it over instead).
    Dispatch {
        #[serde(default)]
        lead: Option<String>,
        #[serde(default)]
        assisting: Option<Vec<String>>,
        reason: String,
    },
}

impl Action {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Action::Claim { .. } => "claim",
            Action::Assign { .. } => "assign",
            Action::Transfer { .. } => "transfer",
            Action::Resolve { .. } => "resolve",
            Action::Dismiss { .. } => "dismiss",
            Action::Close { .. } => "close",
            Action::Reopen { .. } => "reopen",
            Action::Comment { .. } => "comment",
            Action::NotifyOwner { .. } => "notify_owner",
            Action::SendOwnerNotice { .. } => "send_owner_notice",
            Action::OwnerResponse { .. } => "owner_response",
            Action::Decide { .. } => "decide",
            Action::Dispatch { .. } => "dispatch",
        }
    }
}

/// The part of a clue the lifecycle owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub status: Status,
    pub assignee: Option<String>,
    pub department: Option<String>,
    /// Departments assisting the lead.
    #[serde(default)]
    pub assisting: Vec<String>,
    /// First time someone took the clue (claim or assign): "time to claim".
    pub claimed_ms: Option<i64>,
    /// Last resolve or dismiss: "time to resolve".
    pub resolved_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// Resolution note or dismissal reason.
    pub resolution: Option<String>,
}

impl State {
    #[cfg(test)]
    pub(crate) fn new(department: Option<String>) -> State {
        State {
            status: Status::New,
            assignee: None,
            department,
            assisting: Vec::new(),
            claimed_ms: None,
            resolved_ms: None,
            closed_ms: None,
            resolution: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LifecycleError {
    #[error("cannot {action} a clue that is {from}")]
    Illegal {
        action: &'static str,
        from: &'static str,
    },
    #[error("{action} requires a non-empty `{field}`")]
    Missing {
        action: &'static str,
        field: &'static str,
    },
}

fn required(action: &'static str, field: &'static str, v: &str) -> Result<String, LifecycleError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(LifecycleError::Missing { action, field });
    }
    Ok(t.to_string())
}

fn optional(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Applies `action` by `actor` at `at_ms`; returns the next state or why it is refused.
pub(crate) fn apply(
    state: &State,
    action: &Action,
    actor: &str,
    at_ms: i64,
) -> Result<State, LifecycleError> {
    use Status::*;
    let name = action.name();
    let illegal = || LifecycleError::Illegal {
        action: name,
        from: state.status.as_str(),
    };
    let mut next = state.clone();
    match action {
        Action::Claim { .. } => {
            if !matches!(state.status, New | Reopened | Transferred) {
                return Err(illegal());
            }
            next.status = Claimed;
            next.assignee = Some(actor.to_string());
            next.claimed_ms = state.claimed_ms.or(Some(at_ms));
        }
        Action::Assign { to, .. } => {
            if !state.status.is_open() {
                return Err(illegal());
            }
            next.status = Assigned;
            next.assignee = Some(required(name, "to", to)?);
            next.claimed_ms = state.claimed_ms.or(Some(at_ms));
        }
        Action::Transfer { department, reason } => {
            if !state.status.is_open() {
                return Err(illegal());
            }
            let dept = required(name, "department", department)?;
            required(name, "reason", reason)?;
            if state.department.as_deref() == Some(dept.as_str()) {
                return Err(LifecycleError::Missing {
                    action: name,
                    field: "department (a different one)",
                });
            }
            next.status = Transferred;
            next.department = Some(dept);
            next.assignee = None;
        }
        Action::Dispatch {
            lead,
            assisting,
            reason,
        } => {
            if !state.status.is_open() {
                return Err(illegal());
            }
            required(name, "reason", reason)?;
            if let Some(lead) = lead {
                next.department = Some(required(name, "lead", lead)?);
            }
            if let Some(list) = assisting {
                let mut out: Vec<String> = Vec::new();
                for a in list {
                    let a = required(name, "assisting", a)?;
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                next.assisting = out;
            }
            if let Some(lead) = &next.department {
                next.assisting.retain(|a| a != lead);
            }
            if next.department == state.department && next.assisting == state.assisting {
                return Err(LifecycleError::Missing {
                    action: name,
                    field: "lead or assisting (a change)",
                });
            }
        }
        Action::Resolve { note } => {
            if !matches!(state.status, Claimed | Assigned) {
                return Err(illegal());
            }
            next.status = Resolved;
            next.resolved_ms = Some(at_ms);
            next.resolution = optional(note);
        }
        Action::Dismiss { reason } => {
            if !state.status.is_open() {
                return Err(illegal());
            }
            next.status = Dismissed;
            next.resolved_ms = Some(at_ms);
            next.resolution = Some(required(name, "reason", reason)?);
        }
        Action::Close { .. } => {
            if !matches!(state.status, Resolved | Dismissed) {
                return Err(illegal());
            }
            next.status = Closed;
            next.closed_ms = Some(at_ms);
        }
        Action::Reopen { reason } => {
            if state.status.is_open() {
                return Err(illegal());
            }
            required(name, "reason", reason)?;
            next.status = Reopened;
            next.assignee = None;
            next.resolved_ms = None;
            next.closed_ms = None;
            next.resolution = None;
        }
        Action::Comment { text } => {
            required(name, "text", text)?;
        }
        Action::NotifyOwner { channel, .. } => {
            if state.status == Closed {
                return Err(illegal());
            }
            required(name, "channel", channel)?;
        }
        Action::SendOwnerNotice { channel, .. } => {
            if state.status == Closed {
                return Err(illegal());
            }
            required(name, "channel", channel)?;
        }
        Action::OwnerResponse { statement, .. } => {
            if state.status == Closed {
                return Err(illegal());
            }
            required(name, "statement", statement)?;
        }
        Action::Decide { band, basis, .. } => {
            if !matches!(state.status, Claimed | Assigned | Resolved) {
                return Err(illegal());
            }
            required(name, "band", band)?;
            required(name, "basis", basis)?;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Action {
        Action::Claim { note: None }
    }
    fn resolve() -> Action {
        Action::Resolve {
            note: Some("owner warned".into()),
        }
    }

    #[test]
    fn claim_resolve_close_is_the_happy_path() {
        let s = State::new(Some("water".into()));
        let s = apply(&s, &claim(), "ann", 10).expect("claim");
        assert_eq!(s.status, Status::Claimed);
        assert_eq!(s.assignee.as_deref(), Some("ann"));
        assert_eq!(s.claimed_ms, Some(10));
        let s = apply(&s, &resolve(), "ann", 20).expect("resolve");
        assert_eq!(s.status, Status::Resolved);
        assert_eq!(s.resolution.as_deref(), Some("owner warned"));
        let s = apply(&s, &Action::Close { note: None }, "sup", 30).expect("close");
        assert_eq!(s.status, Status::Closed);
        assert_eq!(s.closed_ms, Some(30));
    }

    #[test]
    fn a_claimed_clue_cannot_be_claimed_again() {
        let s = apply(&State::new(None), &claim(), "ann", 1).expect("claim");
        let err = apply(&s, &claim(), "bob", 2).expect_err("second claim");
        assert_eq!(err.to_string(), "cannot claim a clue that is claimed");
    }

    #[test]
    fn dismiss_requires_a_reason() {
        let err = apply(
            &State::new(None),
            &Action::Dismiss {
                reason: "  ".into(),
            },
            "ann",
            1,
        )
        .expect_err("no reason");
        assert!(matches!(
            err,
            LifecycleError::Missing {
                field: "reason",
                ..
            }
        ));
    }

    #[test]
    fn new_clue_cannot_be_resolved_or_closed_or_reopened() {
        let s = State::new(None);
        assert!(apply(&s, &resolve(), "a", 1).is_err());
        assert!(apply(&s, &Action::Close { note: None }, "a", 1).is_err());
        assert!(apply(&s, &Action::Reopen { reason: "x".into() }, "a", 1).is_err());
    }

    #[test]
    fn dispatch_changes_lead_and_assisting_but_not_the_status() {
        let s = apply(
            &State::new(Some("water".into())),
            &Action::Claim { note: None },
            "ann",
            1,
        )
        .expect("claim");
        let d = |lead: Option<&str>, assisting: Option<&[&str]>| Action::Dispatch {
            lead: lead.map(Into::into),
            assisting: assisting.map(|a| a.iter().map(|x| x.to_string()).collect()),
            reason: "township team is closer".into(),
        };
        let n = apply(
            &s,
            &d(Some("market"), Some(&["water", "market", "water"])),
            "sup",
            2,
        )
        .expect("dispatch");
        assert_eq!(n.status, Status::Claimed);
        assert_eq!(n.assignee.as_deref(), Some("ann"));
        assert_eq!(n.department.as_deref(), Some("market"));
        assert_eq!(n.assisting, ["water"], "deduplicated, never the lead");
        assert!(
            apply(&n, &d(Some("market"), None), "sup", 3).is_err(),
            "no change"
        );
        let none = apply(&n, &d(None, Some(&[])), "sup", 3).expect("no assisting");
        assert!(none.assisting.is_empty());
        let no_reason = Action::Dispatch {
            lead: Some("water".into()),
            assisting: None,
            reason: " ".into(),
        };
        assert!(apply(&n, &no_reason, "sup", 3).is_err());
        let closed = State {
            status: Status::Closed,
            ..n.clone()
        };
        assert!(apply(&closed, &d(Some("water"), None), "sup", 3).is_err());
    }

    #[test]
    fn transfer_changes_department_and_frees_the_clue() {
        let s = apply(&State::new(Some("water".into())), &claim(), "ann", 1).expect("claim");
        let t = Action::Transfer {
            department: "market".into(),
            reason: "food licence".into(),
        };
        let s = apply(&s, &t, "ann", 2).expect("transfer");
        assert_eq!(s.status, Status::Transferred);
        assert_eq!(s.department.as_deref(), Some("market"));
        assert_eq!(s.assignee, None);
        // The receiving department claims it.
        let s = apply(&s, &claim(), "mo", 3).expect("claim after transfer");
        assert_eq!(
            s.claimed_ms,
            Some(1),
            "time to claim counts the first claim"
        );
        assert!(apply(&s, &t, "mo", 4).is_err(), "same department again");
    }

    #[test]
    fn reopen_clears_the_disposal() {
        let s = State::new(None);
        let s = apply(
            &s,
            &Action::Dismiss {
                reason: "ok".into(),
            },
            "a",
            1,
        )
        .expect("dismiss");
        let s = apply(
            &s,
            &Action::Reopen {
                reason: "it happened again".into(),
            },
            "sup",
            2,
        )
        .expect("reopen");
        assert_eq!(s.status, Status::Reopened);
        assert_eq!(s.resolution, None);
        assert_eq!(s.resolved_ms, None);
        apply(&s, &claim(), "a", 3).expect("reopened clue can be claimed");
    }

    #[test]
    fn owner_notice_and_answer_are_recorded_without_changing_the_status() {
        let s = apply(&State::new(Some("water".into())), &claim(), "ann", 1).expect("claim");
        let n = Action::NotifyOwner {
            channel: "sms".into(),
            note: None,
        };
        assert_eq!(apply(&s, &n, "ann", 2).expect("notify"), s);
        let empty = Action::OwnerResponse {
            statement: " ".into(),
            channel: None,
        };
        assert!(apply(&s, &empty, "ann", 3).is_err());
        let closed = State {
            status: Status::Closed,
            ..s
        };
        assert!(apply(&closed, &n, "ann", 4).is_err(), "too late to notify");
        let a: Action =
            serde_json::from_str(r#"{"action":"owner_response","statement":"pump broke"}"#)
                .expect("parse");
        assert_eq!(a.name(), "owner_response");
    }

    fn decide(band: &str, basis: &str) -> Action {
        Action::Decide {
            band: band.into(),
            penalty: 500,
            leniency_applied: vec![],
            basis: basis.into(),
            check: None,
        }
    }

    #[test]
    fn a_decision_needs_a_holder_a_band_and_a_basis_and_changes_no_status() {
        let s = State::new(Some("water".into()));
        assert!(
            apply(&s, &decide("first", "seen twice"), "ann", 1).is_err(),
            "nobody holds it"
        );
        let s = apply(&s, &claim(), "ann", 1).expect("claim");
        assert_eq!(
            apply(&s, &decide("first", "seen twice"), "ann", 2).expect("decide"),
            s
        );
        let err = apply(&s, &decide("first", " "), "ann", 2).expect_err("no basis");
        assert!(matches!(
            err,
            LifecycleError::Missing { field: "basis", .. }
        ));
        let s = apply(&s, &resolve(), "ann", 3).expect("resolve");
        apply(&s, &decide("first", "after the owner's answer"), "ann", 4).expect("decide resolved");
        let a: Action = serde_json::from_str(
            r#"{"action":"decide","band":"first","penalty":0,"leniency_applied":["first_violation"],"basis":"b"}"#,
        )
        .expect("parse");
        assert_eq!(a.name(), "decide");
        assert!(
            serde_json::from_str::<Action>(
                r#"{"action":"decide","band":"first","penalty":0,"basis":"b","check":{}}"#
            )
            .is_err(),
            "the check is the pool's, never the caller's"
        );
        assert!(
            serde_json::from_str::<Action>(
                r#"{"action":"decide","band":"first","penalty":-5,"basis":"b"}"#
            )
            .is_err(),
            "no negative penalty"
        );
    }

    #[test]
    fn actions_parse_from_api_json() {
        let a: Action =
            serde_json::from_str(r#"{"action":"transfer","department":"market","reason":"r"}"#)
                .expect("parse");
        assert_eq!(a.name(), "transfer");
        assert!(serde_json::from_str::<Action>(r#"{"action":"dismiss"}"#).is_err());
        assert!(serde_json::from_str::<Action>(r#"{"action":"fly"}"#).is_err());
    }

    /// Every action sequence up to depth 6 from a new clue only reaches consistent states
    /// (exhaustive, in place of a property test: the action alphabet is small).
    #[test]
    fn no_sequence_of_actions_reaches_an_inconsistent_state() {
        let alphabet = [
            claim(),
            Action::Assign {
                to: "bob".into(),
                note: None,
            },
            Action::Transfer {
                department: "market".into(),
                reason: "r".into(),
            },
            Action::Transfer {
                department: "water".into(),
                reason: "r".into(),
            },
            resolve(),
            Action::Dismiss { reason: "r".into() },
            Action::Close { note: None },
            Action::Reopen { reason: "r".into() },
            Action::Comment { text: "c".into() },
            Action::NotifyOwner {
                channel: "sms".into(),
                note: None,
            },
            Action::OwnerResponse {
                statement: "s".into(),
                channel: None,
            },
            decide("first", "b"),
        ];
        let mut frontier = vec![State::new(Some("water".into()))];
        let mut checked = 0usize;
        for depth in 0..6 {
            let mut next = Vec::new();
            for s in &frontier {
                for a in &alphabet {
                    if let Ok(n) = apply(s, a, "ann", depth) {
                        check_consistent(&n);
                        checked += 1;
                        next.push(n);
                    }
                }
            }
            frontier = next;
        }
        assert!(checked > 1000, "explored {checked}");
    }

    fn check_consistent(s: &State) {
        match s.status {
            Status::Claimed | Status::Assigned => {
                assert!(s.assignee.is_some() && s.claimed_ms.is_some(), "{s:?}")
            }
            Status::Resolved => assert!(s.resolved_ms.is_some() && s.claimed_ms.is_some(), "{s:?}"),
            Status::Dismissed => {
                assert!(s.resolved_ms.is_some() && s.resolution.is_some(), "{s:?}")
            }
            Status::Closed => assert!(s.resolved_ms.is_some() && s.closed_ms.is_some(), "{s:?}"),
            Status::New | Status::Reopened | Status::Transferred => {
                assert!(s.assignee.is_none() && s.resolved_ms.is_none(), "{s:?}")
            }
        }
        assert!(s.department.is_some());
    }
}
