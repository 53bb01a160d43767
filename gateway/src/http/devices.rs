//! Devices, for any valid token, within its sites (403 for a named site outside them; lists
//! leave other sites out):
//!
//! - `GET /api/v1/devices?site=&online=&unregistered=`: the live device table with each
//!   device's registry entry; `unregistered=true`: the devices that send but are not registered.
//! - `GET /api/v1/devices/{site}/{device}/readings?metric=&since_ms=`: recent points per metric
//!   (the dashboard's charts).
//! - `GET /api/v1/devices/{site}/{device}/events?since_ms=`: recent device events (pump-outs).

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::clue::auth::Principal;
use crate::devices::DeviceView;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Filters for `GET /api/v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceQuery {
    site: Option<String>,
    online: Option<bool>,
    /// `true`: the devices that send but are not in the registry instead.
    #[serde(default)]
    unregistered: bool,
}

/// A live device with its registry entry (absent: not registered).
#[derive(serde::Serialize)]
struct DeviceRow {
    #[serde(flatten)]
    live: DeviceView,
    registry: Option<crate::registry::DeviceEntry>,
}

/// Any valid token; only devices of the token's sites (all for admin). With
/// `?unregistered=true`, the unregistered devices: a row stored under a site is seen by that
/// site's tokens, a refused DevEUI (no site) by admin only.
pub(super) async fn list(
    p: Principal,
    State(s): State<AppState>,
    Query(q): Query<DeviceQuery>,
) -> ApiResult<Response> {
    if let Some(site) = &q.site {
        p.require_site(site)?;
    }
    let registry = &s.registry.0;
    if q.unregistered {
        let rows: Vec<crate::registry::unknown::UnknownView> = registry
            .unknown()
            .into_iter()
            .filter(|u| match &u.site {
                Some(site) => p.sees(site),
                None => p.role == crate::clue::auth::Role::Admin,
            })
            .filter(|u| q.site.is_none() || u.site == q.site)
            .collect();
        return Ok(Json(rows).into_response());
    }
    let snap = registry.snapshot();
    let rows: Vec<DeviceRow> = s
        .devices
        .snapshot(crate::clock::now_ms())
        .into_iter()
        .filter(|d| p.sees(&d.site))
        .filter(|d| q.site.as_ref().is_none_or(|site| &d.site == site))
        .filter(|d| q.online.is_none_or(|o| d.online == o))
        .map(|d| DeviceRow {
            registry: snap.get(&d.site, &d.device).cloned(),
            live: d,
        })
        .collect();
    Ok(Json(rows).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadingsQuery {
    metric: Option<String>,
    #[serde(default)]
    since_ms: i64,
}

pub(super) async fn readings(
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
pub(super) struct EventsQuery {
    #[serde(default)]
    since_ms: i64,
}

pub(super) async fn events(
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
