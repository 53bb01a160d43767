//! Read-only routes the dashboard needs beyond the clue API. Same rules as every `/api/v1`
//! route: a bearer token (401), the role (403), and only the token's sites (403 for a named
//! site outside them; lists leave other sites out).
//!
//! - `GET /api/v1/whoami`: the token's role, sites and audit name (what the page may show).
//! - `GET /api/v1/devices/{site}/{device}/readings?metric=&since_ms=`: recent points per metric.
//! - `GET /api/v1/devices/{site}/{device}/events?since_ms=`: recent device events (pump-outs).
//! - `GET /api/v1/cameras`: every camera's health state (any role, site-scoped).
//! - `GET /api/v1/cameras/{id}/latest.jpg?site=`: its last frame (roles that read clues: frames show
//!   people and kitchens), masked for roles without the personal-data right; originals audited.

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::clue::auth::{AuthError, Principal};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/devices/{site}/{device}/readings", get(readings))
        .route("/api/v1/devices/{site}/{device}/events", get(events))
        .route("/api/v1/cameras", get(cameras))
        .route("/api/v1/cameras/{id}/latest.jpg", get(latest_frame))
}

async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "role": p.role,
        "sites": p.sites,
        "all_sites": p.scope().is_none(),
        "device": p.device,
        "unit": p.unit,
        "department": p.department,
        "actor": p.actor(),
        "may_read_clues": p.role.may_read_clues(),
        "may_work_clues": p.role.may_work_clues(),
        "may_supervise": p.role.may_verify_audit(),
        "may_read_warnings": p.role.may_read_warnings(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteQuery {
    site: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingsQuery {
    metric: Option<String>,
    #[serde(default)]
    since_ms: i64,
}

async fn readings(
    p: Principal,
    State(s): State<AppState>,
    Path((site, device)): Path<(String, String)>,
    Query(q): Query<ReadingsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    p.require_site(&site)?;
    match s
        .devices
        .history()
        .series(&site, &device, q.metric.as_deref(), q.since_ms)
    {
        Some(series) => Ok(Json(serde_json::json!({
            "site": site, "device": device, "series": series,
        }))),
        None => Err(ApiError::NotFound(format!(
            "no readings from {site}/{device}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    since_ms: i64,
}

async fn events(
    p: Principal,
    State(s): State<AppState>,
    Path((site, device)): Path<(String, String)>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    p.require_site(&site)?;
    match s.devices.history().events(&site, &device, q.since_ms) {
        Some(ev) => Ok(Json(ev).into_response()),
        None => Err(ApiError::NotFound(format!(
            "no readings from {site}/{device}"
        ))),
    }
}

async fn cameras(
    p: Principal,
    State(s): State<AppState>,
) -> Json<Vec<crate::camera::CameraSummary>> {
    Json(
        s.cameras
            .snapshot()
            .into_iter()
            .filter(|c| p.sees(&c.site))
            .collect(),
    )
}

/// The last frame of a camera. Frames show people and plates: roles without the personal-data
/// right get a masked copy (no detections are known for a live frame, so the whole image is
/// coarsely pixelated); the original goes only to roles with the right, and each time it does,
/// the audit log records who (before the bytes leave, like evidence originals).
async fn latest_frame(
    p: Principal,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SiteQuery>,
) -> ApiResult<Response> {
    p.require(p.role.may_read_clues(), "view camera frames")?;
    // The site first: a camera id alone is not unique, and a refusal reveals nothing.
    p.require_site(&q.site)?;
    let Some(jpeg) = s.cameras.latest_jpeg(&q.site, &id) else {
        return Err(ApiError::NotFound(format!(
            "no frame from camera {id} at {}",
            q.site
        )));
    };
    let privacy = s.clues.config().privacy.clone();
    let (body, variant) = if privacy.sees_originals(p.role) {
        if let Err(e) = s
            .clues
            .record_frame_access(q.site.clone(), id.clone(), p.actor(), p.role.as_str())
            .await
        {
            tracing::error!(error = %e, "frame access could not be audited; original withheld");
            // An empty 503, as this route has always answered (the one error without a body).
            return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        (jpeg, "original")
    } else {
        let masked = tokio::task::spawn_blocking(move || {
            crate::clue::privacy::masked_copy(&jpeg, "image/jpeg", None, &privacy)
        })
        .await;
        match masked {
            Ok(Ok(m)) => (m, "masked"),
            _ => {
                return Err(AuthError::Forbidden("frame withheld from this role".into()).into());
            }
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-frame-variant"), variant),
        ],
        body,
    )
        .into_response())
}

/// This module's routes in the OpenAPI document (`http::openapi`).
pub fn add_openapi_paths(paths: &mut serde_json::Value) {
    use super::openapi::op;
    let dev = [("site", "path"), ("device", "path")];
    let entries = [
        (
            "/api/v1/whoami",
            op("The token's role, sites and audit name", &[], false),
        ),
        (
            "/api/v1/devices/{site}/{device}/readings",
            op(
                "Recent numeric readings per metric (in-memory ring): {series: {metric: {stream, unit, points: [[ms, value]]}}}",
                &[dev[0], dev[1], ("metric", "query"), ("since_ms", "query")],
                false,
            ),
        ),
        (
            "/api/v1/devices/{site}/{device}/events",
            op(
                "Recent device events (alarms, level drops = pump-outs or discharges)",
                &[dev[0], dev[1], ("since_ms", "query")],
                false,
            ),
        ),
        (
            "/api/v1/cameras",
            op(
                "Every camera's health state of the token's sites; `source` (kind, URL without credentials, state, last frame, frames, errors, last error, reconnects) for cameras the gateway pulls ([[cameras.sources]])",
                &[],
                false,
            ),
        ),
        (
            "/api/v1/cameras/{id}/latest.jpg",
            op(
                "The camera's last frame (roles that read clues); ?site= required",
                &[("id", "path"), ("site", "query")],
                false,
            ),
        ),
    ];
    for (path, get) in entries {
        paths[path] = serde_json::json!({ "get": get });
    }
}
