//! Supervision notices (督办): an oversight warning made into a notice to a named unit with a
//! deadline, and what happens to it until a supervisor accepts the fix.
//!
//! ```text
//!  issue ──> issued ──acknowledge──> acknowledged ──report_fixed{statement}──> fixed ──close──> closed
//!              ^                                                                 │
//!              └──────────────────── reopen{note} (the fix is not accepted) ─────┘
//!  escalate{to} at any open step: the notice goes up to a named higher unit, same step
//! ```
//!
//! Who: supervisors and admins issue, close, reopen and escalate; the unit's officers
//! (inspectors and the platform of the notice's site, and admins) acknowledge and report the
//! fix; auditors read, act on nothing ([`may`]). A notice inherits its warning's site: a token
//! sees the notices of its sites and the site-less ones (warnings about an officer's outcomes),
//! never one about itself.
//!
//! Overdue: a notice the unit still owes (issued or acknowledged) turns yellow when its
//! deadline passes and red at twice the span it was given (deadline minus when it was set), or
//! `red_after_s` past the deadline when configured ([`overdue_level`]); the pool's tick records
//! the change in the audit and queues it for the platform, as warnings are. A level never goes
//! down except when a new deadline is set (reopen or escalate with one).
//!
//! Everything here is pure (state, action, time, config in; next state out): the stores write
//! what [`apply`] returns together with its audit entry in one transaction.

use super::auth::Role;
use super::model::Escalation;
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use thiserror::Error;

const DAY_MS: i64 = 86_400_000;
/// Longest free text (unit names, notes, statements), in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 2000;
const MAX_UNIT_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    Issued,
    Acknowledged,
    Fixed,
    Closed,
}

impl NoticeState {
    pub(crate) const ALL: [NoticeState; 4] = [
        NoticeState::Issued,
        NoticeState::Acknowledged,
        NoticeState::Fixed,
        NoticeState::Closed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeState::Issued => "issued",
            NoticeState::Acknowledged => "acknowledged",
            NoticeState::Fixed => "fixed",
            NoticeState::Closed => "closed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<NoticeState> {
        NoticeState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub(crate) fn is_open(self) -> bool {
        self != NoticeState::Closed
    }

    /// Whether the unit still owes the fix (what overdue escalation watches).
    pub(crate) fn owed(self) -> bool {
        matches!(self, NoticeState::Issued | NoticeState::Acknowledged)
    }
}

/// A new deadline: an instant, or days from now; neither: the configured default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Due {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_days: Option<u32>,
}

/// `POST /api/v1/oversight/warnings/{id}/notice`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueRequest {
    pub unit: String,
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub due_days: Option<u32>,
    #[serde(default)]
    pub note: String,
}

/// What a person does to a notice (`POST /api/v1/oversight/notices/{id}/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoticeAction {
    /// The unit has the notice.
    Acknowledge {
        #[serde(default)]
        note: String,
    },
    /// The unit says it is fixed, and how.
    ReportFixed { statement: String },
    /// The supervisor accepts the fix (or, with a note, withdraws an open notice).
    Close {
        #[serde(default)]
        note: String,
    },
    /// The fix is not accepted: back to the unit, optionally with a new deadline.
    Reopen {
        note: String,
        #[serde(default)]
        deadline_ms: Option<i64>,
        #[serde(default)]
        due_days: Option<u32>,
    },
    /// Up to a named higher unit, optionally with a new deadline; the step stays.
    Escalate {
        to: String,
        #[serde(default)]
        note: String,
        #[serde(default)]
        deadline_ms: Option<i64>,
        #[serde(default)]
        due_days: Option<u32>,
    },
}

/// Every step, for permissions and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Issue,
    Acknowledge,
    ReportFixed,
    Close,
    Reopen,
    Escalate,
}

impl NoticeAction {
    pub(crate) fn step(&self) -> Step {
        match self {
            NoticeAction::Acknowledge { .. } => Step::Acknowledge,
            NoticeAction::ReportFixed { .. } => Step::ReportFixed,
            NoticeAction::Close { .. } => Step::Close,
            NoticeAction::Reopen { .. } => Step::Reopen,
            NoticeAction::Escalate { .. } => Step::Escalate,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self.step() {
            Step::Issue => "issue",
            Step::Acknowledge => "acknowledge",
            Step::ReportFixed => "report_fixed",
            Step::Close => "close",
            Step::Reopen => "reopen",
            Step::Escalate => "escalate",
        }
    }

    /// The audit spelling of this step.
    pub(crate) fn event(&self) -> super::audit::NoticeEvent {
        use super::audit::NoticeEvent as E;
        match self.step() {
            Step::Issue => E::Issued,
            Step::Acknowledge => E::Acknowledged,
            Step::ReportFixed => E::Fixed,
            Step::Close => E::Closed,
            Step::Reopen => E::Reopened,
            Step::Escalate => E::Escalated,
        }
    }
}

/// Who may take `step`: supervisors and admins direct, the unit's officers (inspectors, the
/// platform) answer; auditors and devices nothing. Admins may do everything.
pub(crate) fn may(role: Role, step: Step) -> bool {
    match step {
        Step::Issue | Step::Close | Step::Reopen | Step::Escalate => {
            matches!(role, Role::Supervisor | Role::Admin)
        }
        Step::Acknowledge | Step::ReportFixed => {
            matches!(role, Role::Inspector | Role::Platform | Role::Admin)
        }
    }
}

/// Who reads notices: whoever reads clues (officers need theirs; auditors read everything).
pub(crate) fn may_read(role: Role) -> bool {
    role.may_read_clues()
}

/// Which notices a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeFilter {
    /// Not closed (the default).
    Open,
    All,
    State(NoticeState),
}

impl NoticeFilter {
    /// `?state=`: `open` (or none), `all`, or a state's name.
    pub(crate) fn parse(s: Option<&str>) -> Option<NoticeFilter> {
        match s {
            None | Some("open") => Some(NoticeFilter::Open),
            Some("all") => Some(NoticeFilter::All),
            Some(x) => NoticeState::parse(x).map(NoticeFilter::State),
        }
    }

    /// The SQL condition on `state` (no user text: the names are ours).
    pub(crate) fn condition(self) -> String {
        match self {
            NoticeFilter::Open => "state <> 'closed'".into(),
            NoticeFilter::All => "1 = 1".into(),
            NoticeFilter::State(s) => format!("state = '{}'", s.as_str()),
        }
    }
}

/// A stored notice, as `GET /api/v1/oversight/notices` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: i64,
    pub warning_id: i64,
    /// The warning's model, site, clue, the people it is about and its message when issued.
    pub model: String,
    pub site: Option<String>,
    pub clue_id: Option<i64>,
    pub concerns: Vec<String>,
    pub message: String,
    /// The unit the notice is addressed to (free text, e.g. `county:xihu/urban-management`).
    pub unit: String,
    /// The higher unit it was escalated to last, if any.
    pub escalated_to: Option<String>,
    pub state: NoticeState,
    /// Overdue escalation: none, yellow (past the deadline), red.
    pub level: Escalation,
    /// The issuing supervisor's note.
    pub note: String,
    /// The unit's last "fixed" statement.
    pub statement: Option<String>,
    pub deadline_ms: i64,
    /// When the current deadline was set (the span red is measured with).
    pub span_start_ms: i64,
    pub issued_by: String,
    pub issued_ms: i64,
    pub updated_ms: i64,
    /// The plate the warning names (officer_outlier, same subject), so that roles without
    /// the personal-data right get it masked in the message too, as on warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
}

/// A notice with its audit entries, oldest first (`GET /api/v1/oversight/notices/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoticeDetail {
    #[serde(flatten)]
    pub notice: Notice,
    pub history: Vec<super::audit::AuditEntry>,
}

#[derive(Debug, Error, PartialEq)]
pub enum NoticeError {
    #[error("cannot {action} a notice that is {from}")]
    Illegal {
        action: &'static str,
        from: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
}

/// `[clues.oversight.notices]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionNoticeConfig {
    /// Overdue escalation of notices in the pool's tick.
    pub escalate: bool,
    /// Deadline when a request gives none, in days.
    pub default_due_days: u32,
    /// Longest deadline a notice may be given, in days.
    pub max_due_days: u32,
    /// Red this many seconds past the deadline; 0: at twice the span the notice was given.
    pub red_after_s: u64,
}

impl Default for SupervisionNoticeConfig {
    fn default() -> Self {
        SupervisionNoticeConfig {
            escalate: true,
            default_due_days: 15,
            max_due_days: 365,
            red_after_s: 0,
        }
    }
}

impl SupervisionNoticeConfig {
    /// `prefix` is the section's key (`clues.oversight.notices`).
    pub(crate) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.max_due_days == 0 || self.max_due_days > 3650 {
            return Err(invalid(
                format!("{prefix}.max_due_days"),
                "must be between 1 and 3650",
            ));
        }
        if self.default_due_days == 0 || self.default_due_days > self.max_due_days {
            return Err(invalid(
                format!("{prefix}.default_due_days"),
                format!("must be between 1 and max_due_days ({})", self.max_due_days),
            ));
        }
        if self.red_after_s > 3650 * 86_400 {
            return Err(invalid(
                format!("{prefix}.red_after_s"),
                "at most ten years (0: twice the notice's span)",
            ));
        }
        Ok(())
    }
}

fn text(field: &str, v: &str, required: bool, max: usize) -> Result<String, NoticeError> {
    let t = v.trim();
    if required && t.is_empty() {
        return Err(NoticeError::Invalid(format!("`{field}` must not be empty")));
    }
    if t.chars().count() > max {
        return Err(NoticeError::Invalid(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoticeError::Invalid(format!(
            "`{field}` holds control characters"
        )));
    }
    Ok(t.to_string())
}

/// A unit's name: 1 to 128 printable characters.
pub(crate) fn unit_name(field: &str, v: &str) -> Result<String, NoticeError> {
    let t = text(field, v, true, MAX_UNIT_CHARS)?;
    if t.contains('\n') {
        return Err(NoticeError::Invalid(format!("`{field}` is one line")));
    }
    Ok(t)
}

/// The deadline `due` asks for, checked against the configuration; none when it asks nothing
/// (`default`: then the configured default applies).
pub(crate) fn deadline(
    due: &Due,
    now_ms: i64,
    cfg: &SupervisionNoticeConfig,
    default: bool,
) -> Result<Option<i64>, NoticeError> {
    let max_ms = now_ms.saturating_add(cfg.max_due_days as i64 * DAY_MS);
    let at = match (due.deadline_ms, due.due_days) {
        (Some(_), Some(_)) => {
            return Err(NoticeError::Invalid(
                "give `deadline_ms` or `due_days`, not both".into(),
            ));
        }
        (Some(ms), None) => ms,
        (None, Some(0)) => {
            return Err(NoticeError::Invalid("`due_days` must be at least 1".into()));
        }
        (None, Some(d)) => now_ms.saturating_add(d as i64 * DAY_MS),
        (None, None) if default => now_ms.saturating_add(cfg.default_due_days as i64 * DAY_MS),
        (None, None) => return Ok(None),
    };
    if at <= now_ms {
        return Err(NoticeError::Invalid(format!(
            "the deadline {at} ms is not in the future (now {now_ms} ms)"
        )));
    }
    if at > max_ms {
        return Err(NoticeError::Invalid(format!(
            "the deadline is more than {} days away (clues.oversight.notices.max_due_days)",
            cfg.max_due_days
        )));
    }
    Ok(Some(at))
}

/// The fields of a new notice from its request (the store adds the warning's own).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub unit: String,
    pub note: String,
    pub deadline_ms: i64,
}

/// Checks an issue request.
pub(crate) fn issue(
    req: &IssueRequest,
    now_ms: i64,
    cfg: &SupervisionNoticeConfig,
) -> Result<NewNotice, NoticeError> {
    let due = Due {
        deadline_ms: req.deadline_ms,
        due_days: req.due_days,
    };
    Ok(NewNotice {
        unit: unit_name("unit", &req.unit)?,
        note: text("note", &req.note, false, MAX_TEXT_CHARS)?,
        deadline_ms: deadline(&due, now_ms, cfg, true)?.unwrap_or(now_ms),
    })
}

/// Applies `action` at `now_ms`: the notice as it becomes, or why it is refused. Texts are
/// trimmed in the returned action (what the audit records).
pub(crate) fn apply(
    n: &Notice,
    action: &NoticeAction,
    now_ms: i64,
    cfg: &SupervisionNoticeConfig,
) -> Result<(Notice, NoticeAction), NoticeError> {
    use NoticeState as S;
    let illegal = || NoticeError::Illegal {
        action: action.name(),
        from: n.state.as_str(),
    };
    let mut next = n.clone();
    next.updated_ms = now_ms;
    let new_deadline = |next: &mut Notice, due: &Due| -> Result<(), NoticeError> {
        if let Some(at) = deadline(due, now_ms, cfg, false)? {
            next.deadline_ms = at;
            next.span_start_ms = now_ms;
            // A new deadline is a new chance: lateness is judged against it from now on.
            next.level = Escalation::None;
        }
        Ok(())
    };
    let clean = match action {
        NoticeAction::Acknowledge { note } => {
            if n.state != S::Issued {
                return Err(illegal());
            }
            next.state = S::Acknowledged;
            NoticeAction::Acknowledge {
                note: text("note", note, false, MAX_TEXT_CHARS)?,
            }
        }
        NoticeAction::ReportFixed { statement } => {
            if n.state != S::Acknowledged {
                return Err(illegal());
            }
            let statement = text("statement", statement, true, MAX_TEXT_CHARS)?;
            next.state = S::Fixed;
            next.statement = Some(statement.clone());
            NoticeAction::ReportFixed { statement }
        }
        NoticeAction::Close { note } => {
            if !n.state.is_open() {
                return Err(illegal());
            }
            // Closing what the unit has not reported fixed is a withdrawal: say why.
            let note = text("note", note, n.state != S::Fixed, MAX_TEXT_CHARS)?;
            next.state = S::Closed;
            NoticeAction::Close { note }
        }
        NoticeAction::Reopen {
            note,
            deadline_ms,
            due_days,
        } => {
            if n.state != S::Fixed {
                return Err(illegal());
            }
            let note = text("note", note, true, MAX_TEXT_CHARS)?;
            let due = Due {
                deadline_ms: *deadline_ms,
                due_days: *due_days,
            };
            next.state = S::Issued;
            new_deadline(&mut next, &due)?;
            NoticeAction::Reopen {
                note,
                deadline_ms: (next.deadline_ms != n.deadline_ms).then_some(next.deadline_ms),
                due_days: None,
            }
        }
        NoticeAction::Escalate {
            to,
            note,
            deadline_ms,
            due_days,
        } => {
            if !n.state.is_open() {
                return Err(illegal());
            }
            let to = unit_name("to", to)?;
            if to == n.unit || n.escalated_to.as_deref() == Some(to.as_str()) {
                return Err(NoticeError::Invalid(format!(
                    "the notice is already with `{to}`"
                )));
            }
            let due = Due {
                deadline_ms: *deadline_ms,
                due_days: *due_days,
            };
            next.escalated_to = Some(to.clone());
            new_deadline(&mut next, &due)?;
            NoticeAction::Escalate {
                to,
                note: text("note", note, false, MAX_TEXT_CHARS)?,
                deadline_ms: (next.deadline_ms != n.deadline_ms).then_some(next.deadline_ms),
                due_days: None,
            }
        }
    };
    Ok((next, clean))
}

/// The overdue level `n` should have at `now_ms` when that is above its current one: yellow
/// past the deadline, red at twice its span (or `red_after_s` past the deadline). Only while
/// the unit owes the fix.
pub(crate) fn overdue_level(
    n: &Notice,
    now_ms: i64,
    cfg: &SupervisionNoticeConfig,
) -> Option<Escalation> {
    if !n.state.owed() || now_ms <= n.deadline_ms {
        return None;
    }
    let red_after = if cfg.red_after_s > 0 {
        (cfg.red_after_s as i64).saturating_mul(1000)
    } else {
        (n.deadline_ms - n.span_start_ms).max(0)
    };
    let target = if now_ms > n.deadline_ms.saturating_add(red_after) {
        Escalation::Red
    } else {
        Escalation::Yellow
    };
    (target > n.level).then_some(target)
}

/// The audit detail of a notice step: the notice, its warning, the step's own fields and the
/// states before and after.
pub(crate) fn step_detail(
    before: &Notice,
    after: &Notice,
    action: &NoticeAction,
) -> serde_json::Value {
    let mut d = serde_json::to_value(action).unwrap_or(serde_json::json!({}));
    if let serde_json::Value::Object(m) = &mut d {
        m.remove("action");
        m.insert("notice".into(), after.id.into());
        m.insert("warning".into(), after.warning_id.into());
        m.insert("site".into(), serde_json::json!(after.site));
        m.insert("unit".into(), after.unit.clone().into());
        m.insert("from".into(), before.state.as_str().into());
        m.insert("to".into(), after.state.as_str().into());
    }
    d
}

/// The plate a warning names in its detail, if any (kept on its notices for masking).
pub(crate) fn plate_of(w: &super::oversight::Warning) -> Option<String> {
    w.finding
        .detail
        .get("plate")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .map(String::from)
}

/// The audit detail of a new notice.
pub(crate) fn issued_detail(n: &Notice) -> serde_json::Value {
    serde_json::json!({"notice": n.id, "warning": n.warning_id, "site": n.site, "unit": n.unit,
        "deadline_ms": n.deadline_ms, "note": n.note, "model": n.model, "clue": n.clue_id,
        "to": n.state.as_str()})
}

/// The audit detail of an overdue escalation.
pub(crate) fn overdue_detail(n: &Notice, level: Escalation, now_ms: i64) -> serde_json::Value {
    serde_json::json!({"notice": n.id, "warning": n.warning_id, "site": n.site, "unit": n.unit,
        "level": level, "deadline_ms": n.deadline_ms, "overdue_s": (now_ms - n.deadline_ms) / 1000,
        "state": n.state.as_str()})
}

/// Topic and body under which a notice event (audit entry `seq`) goes to the platform:
/// `oversight/v1/{site|all}/notice/{level}`, beside the warnings.
pub(crate) fn message(
    n: &Notice,
    event: &str,
    seq: i64,
    now_ms: i64,
) -> (String, serde_json::Value) {
    (
        format!(
            "oversight/v1/{}/notice/{}",
            n.site.as_deref().unwrap_or("all"),
            n.level.as_str()
        ),
        serde_json::json!({"event_id": seq, "event": event, "at_ms": now_ms, "notice": n}),
    )
}

/// The list's order: red first, then yellow, then the nearest deadline, then the newest.
pub(crate) const LIST_ORDER: &str = "CASE level WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END DESC, \
     deadline_ms ASC, id DESC";

/// The stored columns of a notice, in the order every backend's row reader expects.
pub(crate) const NOTICE_COLS: &str = "id, warning_id, model, site, clue_id, concerns, message, unit, \
     escalated_to, state, level, note, statement, deadline_ms, span_start_ms, issued_by, \
     issued_ms, updated_ms, plate";

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SupervisionNoticeConfig {
        SupervisionNoticeConfig::default()
    }

    fn notice(state: NoticeState) -> Notice {
        Notice {
            id: 7,
            warning_id: 3,
            model: "untouched_claim".into(),
            site: Some("s1".into()),
            clue_id: Some(11),
            concerns: vec!["ann#2".into()],
            message: "m".into(),
            unit: "county:xihu/urban-management".into(),
            escalated_to: None,
            state,
            level: Escalation::None,
            note: String::new(),
            statement: None,
            deadline_ms: 10_000,
            span_start_ms: 2_000,
            issued_by: "sue#1".into(),
            issued_ms: 2_000,
            updated_ms: 2_000,
            plate: None,
        }
    }

    fn act(v: serde_json::Value) -> NoticeAction {
        serde_json::from_value(v).expect("action")
    }

    #[test]
    fn the_life_of_a_notice_is_issued_acknowledged_fixed_closed() {
        let n = notice(NoticeState::Issued);
        let (n, _) = apply(
            &n,
            &act(serde_json::json!({"action": "acknowledge"})),
            3_000,
            &cfg(),
        )
        .expect("ack");
        assert_eq!(n.state, NoticeState::Acknowledged);
        let (n, clean) = apply(
            &n,
            &act(serde_json::json!({"action": "report_fixed", "statement": "  swept  "})),
            4_000,
            &cfg(),
        )
        .expect("fixed");
        assert_eq!(n.state, NoticeState::Fixed);
        assert_eq!(n.statement.as_deref(), Some("swept"));
        assert_eq!(
            clean,
            NoticeAction::ReportFixed {
                statement: "swept".into()
            }
        );
        let (n, _) = apply(
            &n,
            &act(serde_json::json!({"action": "close"})),
            5_000,
            &cfg(),
        )
        .expect("close");
        assert_eq!((n.state, n.updated_ms), (NoticeState::Closed, 5_000));
        // Closed is final: every action is refused.
        for a in [
            serde_json::json!({"action": "acknowledge"}),
            serde_json::json!({"action": "close", "note": "again"}),
            serde_json::json!({"action": "reopen", "note": "n"}),
            serde_json::json!({"action": "escalate", "to": "city:hz"}),
        ] {
            let e = apply(&n, &act(a.clone()), 6_000, &cfg()).expect_err("closed");
            assert!(
                matches!(e, NoticeError::Illegal { from: "closed", .. }),
                "{a}"
            );
        }
    }

    #[test]
    fn steps_out_of_order_are_refused_and_texts_are_required_where_it_matters() {
        let issued = notice(NoticeState::Issued);
        let fixed = act(serde_json::json!({"action": "report_fixed", "statement": "s"}));
        assert_eq!(
            apply(&issued, &fixed, 3_000, &cfg()),
            Err(NoticeError::Illegal {
                action: "report_fixed",
                from: "issued"
            })
        );
        let reopen = act(serde_json::json!({"action": "reopen", "note": "not clean"}));
        assert!(matches!(
            apply(&issued, &reopen, 3_000, &cfg()),
            Err(NoticeError::Illegal { .. })
        ));
        let acked = notice(NoticeState::Acknowledged);
        let empty = act(serde_json::json!({"action": "report_fixed", "statement": "  "}));
        assert!(matches!(
            apply(&acked, &empty, 3_000, &cfg()),
            Err(NoticeError::Invalid(_))
        ));
        // Withdrawing a notice the unit has not reported fixed needs a reason.
        let bare_close = act(serde_json::json!({"action": "close"}));
        assert!(matches!(
            apply(&acked, &bare_close, 3_000, &cfg()),
            Err(NoticeError::Invalid(_))
        ));
        let why = act(serde_json::json!({"action": "close", "note": "issued to the wrong unit"}));
        assert_eq!(
            apply(&acked, &why, 3_000, &cfg())
                .expect("withdrawn")
                .0
                .state,
            NoticeState::Closed
        );
        assert!(
            serde_json::from_value::<NoticeAction>(serde_json::json!({"action": "approve"}))
                .is_err()
        );
    }

    #[test]
    fn reopen_sends_the_notice_back_with_an_optional_new_deadline_and_a_fresh_level() {
        let mut fixed = notice(NoticeState::Fixed);
        fixed.level = Escalation::Red;
        let (n, clean) = apply(
            &fixed,
            &act(serde_json::json!({"action": "reopen", "note": "still dirty", "due_days": 2})),
            50_000,
            &cfg(),
        )
        .expect("reopen");
        assert_eq!(n.state, NoticeState::Issued);
        assert_eq!(n.deadline_ms, 50_000 + 2 * DAY_MS);
        assert_eq!((n.span_start_ms, n.level), (50_000, Escalation::None));
        assert!(
            matches!(clean, NoticeAction::Reopen { deadline_ms: Some(d), .. } if d == n.deadline_ms)
        );
        // Without a deadline the old one (and its level) stays.
        let (n, _) = apply(
            &fixed,
            &act(serde_json::json!({"action": "reopen", "note": "still dirty"})),
            50_000,
            &cfg(),
        )
        .expect("reopen");
        assert_eq!((n.deadline_ms, n.level), (10_000, Escalation::Red));
    }

    #[test]
    fn escalate_names_a_higher_unit_at_any_open_step_and_keeps_the_step() {
        for s in [
            NoticeState::Issued,
            NoticeState::Acknowledged,
            NoticeState::Fixed,
        ] {
            let (n, _) = apply(
                &notice(s),
                &act(serde_json::json!({"action": "escalate", "to": "city:hangzhou/urban-management"})),
                3_000,
                &cfg(),
            )
            .expect("escalate");
            assert_eq!(n.state, s);
            assert_eq!(
                n.escalated_to.as_deref(),
                Some("city:hangzhou/urban-management")
            );
        }
        let same =
            act(serde_json::json!({"action": "escalate", "to": "county:xihu/urban-management"}));
        assert!(matches!(
            apply(&notice(NoticeState::Issued), &same, 3_000, &cfg()),
            Err(NoticeError::Invalid(_))
        ));
        let blank = act(serde_json::json!({"action": "escalate", "to": " "}));
        assert!(apply(&notice(NoticeState::Issued), &blank, 3_000, &cfg()).is_err());
    }

    #[test]
    fn overdue_is_yellow_past_the_deadline_and_red_at_twice_the_span() {
        // Span 8 s (2 s -> 10 s): yellow after 10 s, red after 18 s.
        let n = notice(NoticeState::Issued);
        assert_eq!(overdue_level(&n, 10_000, &cfg()), None);
        assert_eq!(overdue_level(&n, 10_001, &cfg()), Some(Escalation::Yellow));
        assert_eq!(overdue_level(&n, 18_000, &cfg()), Some(Escalation::Yellow));
        assert_eq!(overdue_level(&n, 18_001, &cfg()), Some(Escalation::Red));
        let yellow = Notice {
            level: Escalation::Yellow,
            ..n.clone()
        };
        assert_eq!(overdue_level(&yellow, 12_000, &cfg()), None, "no repeat");
        assert_eq!(
            overdue_level(&yellow, 20_000, &cfg()),
            Some(Escalation::Red)
        );
        // A configured rule: red 1 s past the deadline.
        let rule = SupervisionNoticeConfig {
            red_after_s: 1,
            ..cfg()
        };
        assert_eq!(overdue_level(&n, 11_001, &rule), Some(Escalation::Red));
        // What the unit no longer owes does not escalate.
        for s in [NoticeState::Fixed, NoticeState::Closed] {
            assert_eq!(overdue_level(&notice(s), 99_000, &cfg()), None);
        }
        assert_eq!(
            overdue_level(&notice(NoticeState::Acknowledged), 99_000, &cfg()),
            Some(Escalation::Red)
        );
    }

    #[test]
    fn deadlines_are_in_the_future_within_the_limit_and_given_one_way() {
        let c = cfg();
        let req =
            |v: serde_json::Value| -> IssueRequest { serde_json::from_value(v).expect("req") };
        let n = issue(
            &req(serde_json::json!({"unit": " county:xihu "})),
            1_000,
            &c,
        )
        .expect("ok");
        assert_eq!(n.unit, "county:xihu");
        assert_eq!(n.deadline_ms, 1_000 + 15 * DAY_MS);
        let n = issue(
            &req(serde_json::json!({"unit": "u", "due_days": 3})),
            1_000,
            &c,
        )
        .expect("ok");
        assert_eq!(n.deadline_ms, 1_000 + 3 * DAY_MS);
        for bad in [
            serde_json::json!({"unit": "u", "deadline_ms": 500}),
            serde_json::json!({"unit": "u", "deadline_ms": 5_000, "due_days": 1}),
            serde_json::json!({"unit": "u", "due_days": 0}),
            serde_json::json!({"unit": "u", "due_days": 400}),
            serde_json::json!({"unit": ""}),
            serde_json::json!({"unit": "a\nb"}),
        ] {
            assert!(issue(&req(bad.clone()), 1_000, &c).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_value::<IssueRequest>(serde_json::json!({"unit": "u", "days": 3}))
                .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn supervisors_direct_officers_answer_auditors_only_read() {
        use Step::*;
        for s in [Issue, Close, Reopen, Escalate] {
            assert!(may(Role::Supervisor, s) && may(Role::Admin, s));
            assert!(!may(Role::Inspector, s) && !may(Role::Platform, s));
        }
        for s in [Acknowledge, ReportFixed] {
            assert!(may(Role::Inspector, s) && may(Role::Platform, s) && may(Role::Admin, s));
            assert!(!may(Role::Supervisor, s));
        }
        for s in [Issue, Acknowledge, ReportFixed, Close, Reopen, Escalate] {
            assert!(!may(Role::Auditor, s) && !may(Role::Device, s));
        }
        assert!(may_read(Role::Auditor) && may_read(Role::Inspector) && !may_read(Role::Device));
    }

    #[test]
    fn a_bad_notices_section_names_its_key() {
        let bad = SupervisionNoticeConfig {
            default_due_days: 400,
            ..cfg()
        };
        let e = bad.validate("clues.oversight.notices").expect_err("bad");
        assert!(
            e.to_string()
                .contains("clues.oversight.notices.default_due_days"),
            "{e}"
        );
        let bad = SupervisionNoticeConfig {
            max_due_days: 0,
            ..cfg()
        };
        assert!(
            bad.validate("clues.oversight.notices")
                .expect_err("bad")
                .to_string()
                .contains("max_due_days")
        );
        cfg().validate("clues.oversight.notices").expect("default");
    }
}
