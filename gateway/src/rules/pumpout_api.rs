//! Pump-out service records over HTTP, so a legitimate pump-out raises no "illegal discharge"
//! clue (issue: grease-trap analytics).
//!
//! - `POST /api/v1/pumpouts` `{"site","device","from_ms","to_ms","note"?}`: inspector,
//!   supervisor, platform or admin, within the token's sites. 201 with the stored record.
//! - `GET  /api/v1/pumpouts?site=`: the records of the token's sites (any role that sees them).

use super::pumpout_journal::{PumpoutJournal, PumpoutRecord};
use crate::clue::api::ApiError;
use crate::clue::auth::{Authenticator, Principal, Role};
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// A visit longer than this is a typo, not a pump-out (and would hide a week of dumping).
const MAX_VISIT_MS: i64 = 12 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPumpout {
    site: String,
    device: String,
    from_ms: i64,
    to_ms: i64,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    site: Option<String>,
}

/// The journal shared with the handlers (absent: the routes answer 503).
#[derive(Clone, Default)]
pub struct Pumpouts(pub Option<Arc<PumpoutJournal>>);

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Pumpouts: FromRef<S>,
    Authenticator: FromRef<S>,
{
    Router::new().route("/api/v1/pumpouts", get(list).post(register))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn journal(p: &Pumpouts) -> Result<&Arc<PumpoutJournal>, ApiError> {
    p.0.as_ref()
        .ok_or_else(|| ApiError::Unavailable("pump-out records are not enabled".into()))
}

async fn register(
    p: Principal,
    State(pumpouts): State<Pumpouts>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    p.require(
        matches!(
            p.role,
            Role::Inspector | Role::Supervisor | Role::Platform | Role::Admin
        ),
        "register pump-outs",
    )?;
    let new: NewPumpout =
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad pump-out: {e}")))?;
    p.require_site(&new.site)?;
    if !firmware::protocol::valid_segment(&new.site)
        || !firmware::protocol::valid_segment(&new.device)
    {
        return Err(bad(
            "site and device must be non-empty ids without wildcards",
        ));
    }
    if new.to_ms < new.from_ms {
        return Err(bad("to_ms is before from_ms"));
    }
    if new.to_ms - new.from_ms > MAX_VISIT_MS {
        return Err(bad("a pump-out visit lasts at most 12 hours"));
    }
    if new.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(bad("note: at most 1000 bytes"));
    }
    let record = PumpoutRecord {
        site: new.site,
        device: new.device,
        from_ms: new.from_ms,
        to_ms: new.to_ms,
        by: p.actor(),
        at_ms: crate::clock::now_ms(),
        note: new.note,
    };
    let j = journal(&pumpouts)?.clone();
    let stored = record.clone();
    // The journal syncs to disk: keep that off the async workers.
    match tokio::task::spawn_blocking(move || j.record(record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "pump-out not recorded");
            return Err(ApiError::Internal);
        }
        Err(e) => {
            tracing::error!(error = %e, "pump-out task failed");
            return Err(ApiError::Internal);
        }
    }
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

async fn list(
    p: Principal,
    State(pumpouts): State<Pumpouts>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<PumpoutRecord>>, ApiError> {
    if let Some(site) = &q.site {
        p.require_site(site)?;
    }
    let j = journal(&pumpouts)?;
    let rows = j
        .list(q.site.as_deref())
        .into_iter()
        .filter(|r| p.sees(&r.site))
        .collect();
    Ok(Json(rows))
}
