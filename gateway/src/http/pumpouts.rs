//! Pump-out service records over HTTP, so a legitimate pump-out raises no "illegal discharge"
//! clue (issue: grease-trap analytics).
//!
//! - `POST /api/v1/pumpouts` `{"site","device","from_ms","to_ms","note"?}`: inspector,
//!   supervisor, platform or admin, within the token's sites. 201 with the stored record.
//!   The visit must be one a pump-out can be (`PumpoutRecord::check`: ended, within the
//!   clock tolerance, at most 12 hours, started within the last 7 days); the registration is
//!   written to the audit chain before it takes effect (`PumpoutJournal::register_audited`: an
//!   unauditable registration is refused, 500), because it silences "illegal discharge" clues.
//! - `GET  /api/v1/pumpouts?site=`: the records of the token's sites (any role that sees them).

use super::error::ApiError;
use crate::clue::auth::{Principal, Role};
use crate::clue::pool::PoolHandle;
use crate::rules::journal::{Journal, JournalRecord};
use crate::rules::pumpout_journal::{PumpoutJournal, PumpoutRecord};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPumpout {
    site: String,
    device: String,
    from_ms: i64,
    to_ms: i64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    pub(super) site: Option<String>,
}

/// The journal shared with the handlers (absent: the routes answer 503).
#[derive(Clone, Default)]
pub struct Pumpouts(pub Option<Arc<PumpoutJournal>>);

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn journal(p: &Pumpouts) -> Result<&Arc<PumpoutJournal>, ApiError> {
    p.0.as_ref()
        .ok_or_else(|| ApiError::Unavailable("pump-out records are not enabled".into()))
}

pub(super) async fn register(
    p: Principal,
    State(pumpouts): State<Pumpouts>,
    State(pool): State<PoolHandle>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_registrar(&p, "register pump-outs")?;
    let new: NewPumpout =
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad pump-out: {e}")))?;
    p.require_site(&new.site)?;
    let now = crate::clock::now_ms();
    let record = PumpoutRecord {
        site: new.site,
        device: new.device,
        from_ms: new.from_ms,
        to_ms: new.to_ms,
        by: p.actor(),
        at_ms: now,
        note: new.note,
    };
    record
        .check(now)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let j = journal(&pumpouts)?.clone();
    register_audited(j, &pool, p.actor(), record.clone()).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// Audits, then journals `record` ([`Journal::register_audited`]); both block, so off the
/// async workers. Shared by pump-outs and maintenance works (`super::maintenance`).
pub(super) async fn register_audited<R: JournalRecord + Send + 'static>(
    journal: Arc<Journal<R>>,
    pool: &PoolHandle,
    actor: String,
    record: R,
) -> Result<(), ApiError>
where
    Journal<R>: Send + Sync,
{
    let pool = pool.clone();
    let done = tokio::task::spawn_blocking(move || {
        journal.register_audited(record, |action, detail| {
            pool.record_blocking(&actor, action, detail)
        })
    })
    .await;
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, what = R::WHAT, "registration not recorded");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::error!(error = %e, what = R::WHAT, "registration task failed");
            Err(ApiError::Internal)
        }
    }
}

pub(super) async fn list(
    p: Principal,
    State(pumpouts): State<Pumpouts>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<PumpoutRecord>>, ApiError> {
    Ok(Json(scoped_list(
        &p,
        journal(&pumpouts)?,
        q.site.as_deref(),
    )?))
}

/// Who may register what excuses a device from clues (pump-outs, maintenance works).
pub(super) fn require_registrar(p: &Principal, action: &str) -> Result<(), ApiError> {
    p.require(
        matches!(
            p.role,
            Role::Inspector | Role::Supervisor | Role::Platform | Role::Admin
        ),
        action,
    )?;
    Ok(())
}

/// A journal's records of `site` (or of every site) that the token sees.
pub(super) fn scoped_list<R: JournalRecord>(
    p: &Principal,
    journal: &Journal<R>,
    site: Option<&str>,
) -> Result<Vec<R>, ApiError> {
    if let Some(site) = site {
        p.require_site(site)?;
    }
    Ok(journal
        .list(site)
        .into_iter()
        .filter(|r| p.sees(r.site()))
        .collect())
}
