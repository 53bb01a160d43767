//! The HTTP API: health, Prometheus metrics, the live device table and the clue routes.
//!
//! `/healthz` and `/metrics` are open (operations, load balancers). Everything under `/api/v1`
//! needs `Authorization: Bearer <token>` (see `clue::auth`): 401 without a valid token, 403
//! outside the role or sites, and data of other sites is never returned.
//!
//! [`dashboard`] holds the read-only routes the dashboard pages need; [`openapi`] the API
//! document of every route.

pub mod clues;
pub mod dashboard;
pub mod drone;
pub mod error;
pub mod openapi;
pub mod org;
pub mod oversight;
pub mod permits;
pub mod pumpouts;
pub mod registry;
pub mod stays;
pub mod supervision;

use crate::clue::PoolHandle;
use crate::clue::auth::{Authenticator, Principal};
use crate::devices::{DeviceTable, DeviceView};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use axum::extract::{DefaultBodyLimit, Path};
use axum::extract::{FromRef, Query, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::{ApiError, ApiResult};
use serde::Deserialize;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub devices: Arc<DeviceTable>,
    pub metrics: Arc<Metrics>,
    pub outbox: Option<Arc<Outbox>>,
    pub started_ms: i64,
    /// The clue pool (also holds the token store used by authentication).
    pub clues: PoolHandle,
    /// Camera health (frames and reference views).
    pub cameras: crate::camera::service::CameraService,
    /// Pump-out service records (journal shared with the rules).
    pub pumpouts: pumpouts::Pumpouts,
    /// The device registry (site, location, owner of each device; DevEUI lookup).
    pub registry: registry::RegistryHandle,
    /// Free space camera frames must leave on the storage file system (`storage.min_free_mb`):
    /// a frame can become evidence, so none is taken in below it.
    pub storage_floor: crate::disk::Floor,
}

impl FromRef<AppState> for registry::RegistryHandle {
    fn from_ref(s: &AppState) -> Self {
        s.registry.clone()
    }
}

impl FromRef<AppState> for permits::PermitsHandle {
    fn from_ref(s: &AppState) -> Self {
        permits::PermitsHandle(s.cameras.muck_permits())
    }
}

impl FromRef<AppState> for pumpouts::Pumpouts {
    fn from_ref(s: &AppState) -> Self {
        s.pumpouts.clone()
    }
}

impl FromRef<AppState> for clues::ClueExplanations {
    fn from_ref(s: &AppState) -> Self {
        clues::ClueExplanations(
            s.pumpouts
                .0
                .clone()
                .map(|j| j as Arc<dyn clues::Explanations>),
        )
    }
}

impl FromRef<AppState> for PoolHandle {
    fn from_ref(s: &AppState) -> PoolHandle {
        s.clues.clone()
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(s: &AppState) -> Authenticator {
        s.clues.authenticator()
    }
}

impl AppState {
    /// Refreshes gauges that are computed on demand rather than on every update.
    fn refresh_gauges(&self) {
        let (known, online) = self.devices.counts(crate::clock::now_ms());
        self.metrics.devices_known.set(known);
        self.metrics.devices_online.set(online);
        if let Some(o) = &self.outbox {
            let s = o.stats();
            self.metrics.outbox_depth_records.set(s.records as i64);
            self.metrics.outbox_bytes.set(s.bytes);
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/devices", get(devices))
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .route("/api/v1/cameras/{id}/frames", post(camera_frame))
        .route("/api/v1/cameras/{id}/reference", post(camera_reference))
        .layer(DefaultBodyLimit::max(MAX_FRAME_BYTES))
        .merge(clues::routes())
        .merge(stays::routes())
        .merge(pumpouts::routes())
        .merge(registry::routes())
        .merge(permits::routes())
        .merge(dashboard::routes())
        .with_state(state)
}

async fn healthz(State(s): State<AppState>) -> Json<serde_json::Value> {
    let outbox = s.outbox.as_ref().map(|o| {
        let st = o.stats();
        serde_json::json!({"records": st.records, "bytes": st.bytes})
    });
    Json(serde_json::json!({
        "status": "ok",
        "mqtt_connected": s.metrics.mqtt_connected.get() == 1,
        "outbox": outbox,
        "uptime_s": (crate::clock::now_ms() - s.started_ms) / 1000,
    }))
}

async fn metrics(State(s): State<AppState>) -> Response {
    s.refresh_gauges();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// Filters for `GET /api/v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
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
async fn devices(
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

/// Largest camera frame accepted (a 4K JPEG is a few MB).
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// `?site=` of the camera routes: a frame carries no site, and the token must cover it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraQuery {
    site: String,
}

/// Checks role, site, device binding, free space and content type shared by the camera
/// routes. A token bound to another camera gets 403, counted as
/// `other_device`: a camera that leaks its token cannot speak for its neighbours. A camera over
/// its upload rate gets 429 with `Retry-After`, counted as `rate_limit`. Below the storage
/// floor a frame gets 507, counted as `disk_full`.
fn camera_upload_refusal(
    s: &AppState,
    p: &Principal,
    camera: &str,
    site: &str,
    headers: &HeaderMap,
    body_len: u64,
) -> ApiResult<()> {
    use crate::clue::auth::Role;
    p.require(
        matches!(p.role, Role::Device | Role::Platform | Role::Admin),
        "upload camera frames",
    )?;
    p.require_site(site)?;
    if p.role == Role::Device && p.device.is_none() && s.cameras.requires_device_binding() {
        count_refusal(s, "unbound_token");
        return Err(ApiError::Forbidden(
            "device tokens must be bound to their camera here (cameras.require_device_binding): \
             issue one with `token create --role device --device CAMERA`"
                .into(),
        ));
    }
    if let Err(e) = p.require_device(camera) {
        tracing::warn!(
            token = p.token_id,
            camera,
            "camera upload with another device's token"
        );
        count_refusal(s, "other_device");
        return Err(e.into());
    }
    if let Err(wait_s) = s.cameras.admit_upload(site, camera, crate::clock::now_ms()) {
        count_refusal(s, "rate_limit");
        let message = format!(
            "camera {camera} is over its upload rate (cameras.max_frames_per_minute); \
             retry in {wait_s} s"
        );
        return Err(ApiError::TooManyRequests {
            message,
            retry_after_s: wait_s,
        });
    }
    if let Err(e) = s.storage_floor.check(body_len) {
        count_refusal(s, "disk_full");
        return Err(ApiError::InsufficientStorage(e.to_string()));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("image/jpeg") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type image/jpeg, got `{ct}`"
        )));
    }
    Ok(())
}

/// A frame or reference the camera service refused: a camera over its site's limit is 403,
/// anything else (not a usable JPEG) 422; each counted by reason.
fn frame_refused(s: &AppState, e: crate::camera::frame::FrameError) -> ApiError {
    use crate::camera::frame::FrameError;
    let message = e.to_string();
    let (error, reason) = match &e {
        FrameError::TooManyCameras { .. } => (ApiError::Forbidden(message), "camera_limit"),
        _ => (ApiError::Unprocessable(message), "bad_frame"),
    };
    count_refusal(s, reason);
    error
}

/// Counts a refused camera frame or reference in `camera_frames_refused_total{reason}`.
fn count_refusal(s: &AppState, reason: &'static str) {
    s.metrics
        .camera_frames_refused_total
        .get_or_create(&crate::metrics::Reason::of(reason))
        .inc();
}

/// `POST /api/v1/cameras/{id}/frames?site=S` (image/jpeg): camera health checks on one frame.
async fn camera_frame(
    p: Principal,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CameraQuery>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    camera_upload_refusal(&s, &p, &id, &q.site, &headers, body.len() as u64)?;
    match s
        .cameras
        .frame(id, q.site, body, crate::clock::now_ms())
        .await
    {
        Ok(report) => Ok(Json(report).into_response()),
        Err(e) => Err(frame_refused(&s, e)),
    }
}

/// `POST /api/v1/cameras/{id}/reference?site=S` (image/jpeg): enrols the expected view.
async fn camera_reference(
    p: Principal,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CameraQuery>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    camera_upload_refusal(&s, &p, &id, &q.site, &headers, body.len() as u64)?;
    match s.cameras.reference(id, q.site, body).await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(e) => Err(frame_refused(&s, e)),
    }
}
