//! Pump-out service records over HTTP, so a legitimate pump-out raises no "illegal discharge"
//! clue (issue: grease-trap analytics).
//!
//! - `POST /api/v1/pumpouts` `{"site","device","from_ms","to_ms","note"?}`: inspector,
//!   supervisor, platform or admin, within the token's sites. 201 with the stored record.
//!   The visit must have ended (clock tolerance [`FUTURE_TOLERANCE_MS`]) and started within
//!   [`MAX_AGE_MS`]; the registration is written to the audit chain before it takes effect
//!   (an unauditable registration is refused), because it silences "illegal discharge" clues.
//! - `GET  /api/v1/pumpouts?site=`: the records of the token's sites (any role that sees them).

use super::error::ApiError;
use crate::clue::audit::AuditAction;
use crate::clue::auth::{Principal, Role};
use crate::clue::pool::PoolHandle;
use crate::rules::pumpout_journal::{PumpoutJournal, PumpoutRecord};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// A visit longer than this is a typo, not a pump-out (and would hide a week of dumping).
const MAX_VISIT_MS: i64 = 12 * 3600 * 1000;

/// How far past the gateway's clock a visit may end: device and phone clocks drift, but a
/// visit registered for later would excuse dumping that has not happened yet.
pub const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// How old a visit may be when registered: long enough for paperwork after a weekend, short
/// enough that nobody excuses last month's discharge after the fact.
pub const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

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
    site: Option<String>,
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
    let now = crate::clock::now_ms();
    check_window(new.from_ms, new.to_ms, now)?;
    let record = PumpoutRecord {
        site: new.site,
        device: new.device,
        from_ms: new.from_ms,
        to_ms: new.to_ms,
        by: p.actor(),
        at_ms: now,
        note: new.note,
    };
    let j = journal(&pumpouts)?.clone();
    let stored = record.clone();
    let actor = p.actor();
    // Audit first: a registration the chain does not hold must not silence any clue. The
    // audit write and the journal sync block: keep them off the async workers.
    let done = tokio::task::spawn_blocking(move || {
        let detail = serde_json::json!({"pumpout": &record});
        pool.record_blocking(&actor, AuditAction::PumpoutRegistered, &detail)
            .map_err(|e| format!("not audited: {e}"))?;
        j.record(record).map_err(|e| e.to_string())
    })
    .await;
    match done {
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

/// Refuses a visit that has not ended yet (beyond the clock tolerance) or began longer ago
/// than [`MAX_AGE_MS`].
fn check_window(from_ms: i64, to_ms: i64, now_ms: i64) -> Result<(), ApiError> {
    if to_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
        return Err(bad(
            "a pump-out is registered after the visit: to_ms is in the future",
        ));
    }
    if from_ms < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(bad(
            "a pump-out older than 7 days can no longer be registered",
        ));
    }
    Ok(())
}

pub(super) async fn list(
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_visit_must_have_ended_and_be_recent() {
        let ok = |f, t| check_window(f, t, NOW).is_ok();
        assert!(ok(NOW - 3_600_000, NOW - 600_000));
        assert!(
            ok(NOW - 600_000, NOW + FUTURE_TOLERANCE_MS),
            "clock drift tolerated"
        );
        assert!(
            !ok(NOW - 600_000, NOW + FUTURE_TOLERANCE_MS + 1),
            "in the future"
        );
        assert!(
            !ok(NOW + 3_600_000, NOW + 7_200_000),
            "a visit booked ahead"
        );
        assert!(ok(NOW - MAX_AGE_MS, NOW - MAX_AGE_MS + 600_000));
        assert!(
            !ok(NOW - MAX_AGE_MS - 1, NOW - MAX_AGE_MS + 600_000),
            "too old"
        );
    }
}
