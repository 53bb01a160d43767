//! Supervision notice routes (see `crate::clue::supervision` for the life of a notice):
//!
//! - `POST /api/v1/oversight/warnings/{id}/notice` {unit, deadline_ms | due_days, note}:
//!   supervisors and admins make a warning they see a notice; 409 while it has an open one.
//! - `GET  /api/v1/oversight/notices?state=&limit=`: `state` is `open` (default), `all` or a
//!   state; red first, then yellow, then the nearest deadline.
//! - `GET  /api/v1/oversight/notices/{id}`: the notice with its audit entries.
//! - `POST /api/v1/oversight/notices/{id}/actions` {action: acknowledge | report_fixed |
//!   close | reopen | escalate, ...}.
//!
//! Scope: a notice has its warning's site. Supervisors, admins and auditors see the notices of
//! their sites and the site-less ones (about officers' outcomes); officers (inspectors, the
//! platform) see and answer only those of their own sites. Nobody sees a notice about
//! themself (404, as for anything out of scope). Auditors read and get 403 on every action.
//!
//! Direction: with `[[org.units]]` configured, a token with a unit issues, closes, reopens and
//! escalates only notices addressed to a unit strictly below its own ([`directs`]): the unit
//! that owes a reply (a major clue's handling unit) may acknowledge and report it fixed, but
//! not close it or stop its escalation. Tokens without a unit keep their role's steps.

use super::error::ApiError;
use crate::clue::auth::{AuthError, Principal, Role};
use crate::clue::pool::PoolHandle;
use crate::clue::supervision::{self, IssueRequest, Notice, NoticeAction, NoticeFilter, Step};
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

/// Whether the people a notice (or its warning) is about include `actor` (same token or name).
fn about(concerns: &[String], actor: &str) -> bool {
    let name = |a: &str| a.rsplit_once('#').map(|(n, _)| n.to_string());
    concerns
        .iter()
        .any(|c| c == actor || (name(c).is_some() && name(c) == name(actor)))
}

/// Supervisors, admins and auditors oversee; the rest are the units' officers.
fn oversees(role: Role) -> bool {
    role.may_read_warnings()
}

/// Whether `p` may see notice `n` at all.
fn sees(p: &Principal, site: Option<&str>, concerns: &[String]) -> bool {
    supervision::may_read(p.role)
        && match site {
            Some(s) => p.sees(s),
            None => oversees(p.role),
        }
        && !about(concerns, &p.actor())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub(super) async fn list(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    p.require(supervision::may_read(p.role), "read supervision notices")?;
    let filter = NoticeFilter::parse(q.state.as_deref()).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown state {:?} (open, all, issued, acknowledged, fixed, closed)",
            q.state
        ))
    })?;
    let list: Vec<Notice> = pool
        .notices(p.scope(), filter, q.limit.unwrap_or(500))
        .await?
        .into_iter()
        .filter(|n| sees(&p, n.site.as_deref(), &n.concerns))
        .collect();
    super::clues::for_role(&p, &pool, &list, &[])
}

async fn visible(p: &Principal, pool: &PoolHandle, id: i64) -> Result<Notice, ApiError> {
    p.require(supervision::may_read(p.role), "read supervision notices")?;
    let missing = || ApiError::NotFound(format!("notice {id} not found"));
    let d = pool.notice(id).await?.ok_or_else(missing)?;
    if !sees(p, d.notice.site.as_deref(), &d.notice.concerns) {
        return Err(missing());
    }
    Ok(d.notice)
}

pub(super) async fn detail(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    visible(&p, &pool, id).await?;
    let d = pool
        .notice(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("notice {id} not found")))?;
    super::clues::for_role(&p, &pool, &d, &[])
}

pub(super) async fn issue(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    p.require(supervision::may(p.role, Step::Issue), "issue a notice")?;
    let missing = || ApiError::NotFound(format!("warning {id} not found"));
    let w = pool.warning(id).await?.ok_or_else(missing)?;
    if !sees(&p, w.finding.site.as_deref(), &w.finding.concerns) {
        return Err(missing());
    }
    let mut req: IssueRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad notice: {e}")))?;
    req.unit = address(&pool, "unit", &req.unit)?;
    directs(&p, &pool, &req.unit, "issue")?;
    let n = pool.issue_notice(id, req, p.actor()).await?;
    tracing::info!(notice = n.id, warning = id, unit = %n.unit, actor = %n.issued_by,
                   "supervision notice issued");
    Ok((
        axum::http::StatusCode::CREATED,
        super::clues::for_role(&p, &pool, &n, &[])?,
    ))
}

pub(super) async fn act(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // In scope (officers: a notice of their own sites) or 404.
    let notice = visible(&p, &pool, id).await?;
    let steps = [
        Step::Acknowledge,
        Step::ReportFixed,
        Step::Close,
        Step::Reopen,
        Step::Escalate,
    ];
    p.require(
        steps.iter().any(|s| supervision::may(p.role, *s)),
        "act on supervision notices",
    )?;
    let mut action: NoticeAction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad notice action: {e}")))?;
    if let NoticeAction::Escalate { to, .. } = &mut action {
        *to = address(&pool, "to", to)?;
    }
    p.require(supervision::may(p.role, action.step()), action.name())?;
    if matches!(action.step(), Step::Close | Step::Reopen | Step::Escalate) {
        directs(&p, &pool, &notice.unit, action.name())?;
    }
    let n = pool.act_on_notice(id, action, p.actor()).await?;
    tracing::info!(notice = id, state = n.state.as_str(), actor = %p.actor(),
                   "supervision notice step");
    super::clues::for_role(&p, &pool, &n, &[])
}

/// A notice's addressee (`field`: `unit` or `to`) as stored: with `[[org.units]]` configured,
/// a configured unit (and department), `unit/department` by id; free text otherwise (see
/// `clue::org::address`).
fn address(pool: &PoolHandle, field: &str, text: &str) -> Result<String, ApiError> {
    pool.org()
        .resolve_address(text)
        .map_err(|why| ApiError::BadRequest(format!("bad notice: `{field}`: {why}")))
}

/// Whether `p` directs a notice addressed to `addressee` (`unit` or `unit/department`): with
/// `[[org.units]]` configured and a unit on the token, only when the addressee's unit lies
/// strictly below the token's, so the unit that owes the answer cannot close, reopen or
/// escalate (nor issue) its own notice. Without units, or for a token without a unit, the
/// role alone decides (checked before).
fn directs(p: &Principal, pool: &PoolHandle, addressee: &str, what: &str) -> Result<(), ApiError> {
    let org = pool.org();
    let Some(own) = p.unit.as_deref().filter(|_| !org.is_empty()) else {
        return Ok(());
    };
    let target = addressee.split_once('/').map_or(addressee, |(u, _)| u);
    if target != own && org.unit(target).is_some() && org.within(target, own) {
        return Ok(());
    }
    Err(AuthError::Forbidden(format!(
        "unit {own} may not {what} a notice addressed to {addressee}: only to a unit below it"
    ))
    .into())
}
