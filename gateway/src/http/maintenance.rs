//! Maintenance works over HTTP, so a registered crew opening a manhole raises no "cover open"
//! clue (rules with `unless_maintenance`; issue 17). Works as pump-outs are (`super::pumpouts`):
//!
//! - `POST /api/v1/maintenance` `{"site","device","from_ms","to_ms","permit"?,"note"?}`:
//!   inspector, supervisor, platform or admin, within the token's sites. 201 with the stored
//!   record. The window must be plausible (`MaintenanceRecord::check`: at most 7 days, starting
//!   at most 30 days ahead, not ended more than 7 days ago); the registration is written to
//!   the audit chain before it takes effect (an unauditable one is refused, 500), because it
//!   silences clues.
//! - `GET  /api/v1/maintenance?site=`: the records of the token's sites.

use super::error::ApiError;
use super::pumpouts::{ListQuery, register_audited, require_registrar, scoped_list};
use crate::clue::auth::Principal;
use crate::clue::pool::PoolHandle;
use crate::rules::maintenance::{MaintenanceJournal, MaintenanceRecord};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWorks {
    site: String,
    device: String,
    from_ms: i64,
    to_ms: i64,
    #[serde(default)]
    permit: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// The journal shared with the handlers (absent: the routes answer 503).
#[derive(Clone, Default)]
pub struct Maintenance(pub Option<Arc<MaintenanceJournal>>);

fn journal(m: &Maintenance) -> Result<&Arc<MaintenanceJournal>, ApiError> {
    m.0.as_ref()
        .ok_or_else(|| ApiError::Unavailable("maintenance records are not enabled".into()))
}

pub(super) async fn register(
    p: Principal,
    State(works): State<Maintenance>,
    State(pool): State<PoolHandle>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_registrar(&p, "register maintenance works")?;
    let new: NewWorks = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad maintenance works: {e}")))?;
    p.require_site(&new.site)?;
    let now = crate::clock::now_ms();
    let record = MaintenanceRecord {
        site: new.site,
        device: new.device,
        from_ms: new.from_ms,
        to_ms: new.to_ms,
        by: p.actor(),
        at_ms: now,
        permit: new.permit,
        note: new.note,
    };
    record
        .check(now)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let j = journal(&works)?.clone();
    register_audited(j, &pool, p.actor(), record.clone()).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

pub(super) async fn list(
    p: Principal,
    State(works): State<Maintenance>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<MaintenanceRecord>>, ApiError> {
    Ok(Json(scoped_list(&p, journal(&works)?, q.site.as_deref())?))
}
