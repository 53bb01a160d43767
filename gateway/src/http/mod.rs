//! The HTTP layer: every route of the gateway, the state its handlers share, the one error
//! they answer with and the extractor that says who is asking. Domain modules expose services
//! (the clue pool, the registry, the camera service, the drone stores); nothing outside this
//! folder knows axum routes.
//!
//! - [`router`] below is the whole route table, one entry per path; [`openapi`] documents the
//!   same set (the e2e test `http_routes` fails when they differ).
//! - [`error`]: [`ApiError`](error::ApiError), the one error every handler returns
//!   (`{"error": ...}` and its status).
//! - [`auth`]: the [`Principal`](crate::clue::auth::Principal) extractor (tokens, roles and
//!   scopes are `clue::auth`) and `whoami`.
//! - One file of handlers per resource: [`health`] (`/healthz`, `/metrics`), [`devices`],
//!   [`cameras`], [`clues`] (and the audit, stats and exports), [`oversight`] (warnings,
//!   retention purge), [`supervision`] (notices from warnings), [`org`] (the units of
//!   `[org]`), [`owner_notices`] (notices to owners, provider receipts), [`stays`] (parking
//!   stays),
//!   [`permits`] (muck-truck permits), [`pumpouts`], [`maintenance`] (works), [`registry`], [`drone`] (flights and
//!   tasks); [`web`]: the dashboard's static files.
//!
//! `/healthz`, `/metrics`, `/api/v1/openapi.json` and the static files are open. Everything
//! else under `/api/v1` needs `Authorization: Bearer <token>`: 401 without a valid token, 403
//! outside the role or sites, and data of other sites is never returned (a clue, flight or
//! notice of another site is 404, like a missing one).

pub mod auth;
pub mod cameras;
pub mod clues;
pub mod devices;
pub mod drone;
pub mod error;
pub mod health;
pub mod maintenance;
pub mod openapi;
pub mod org;
pub mod oversight;
pub mod owner_notices;
pub mod permits;
pub mod pumpouts;
pub mod registry;
pub mod stays;
pub mod supervision;
pub mod web;

use crate::clue::PoolHandle;
use crate::clue::auth::Authenticator;
use crate::dashboard::DashboardConfig;
use crate::devices::DeviceTable;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) devices: Arc<DeviceTable>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) outbox: Option<Arc<Outbox>>,
    pub(crate) started_ms: i64,
    /// The clue pool (also holds the token store used by authentication).
    pub(crate) clues: PoolHandle,
    /// Camera health (frames and reference views).
    pub(crate) cameras: crate::camera::service::CameraService,
    /// Pump-out service records (journal shared with the rules).
    pub(crate) pumpouts: pumpouts::Pumpouts,
    /// Maintenance works (journal shared with the rules: `unless_maintenance`).
    pub(crate) maintenance: maintenance::Maintenance,
    /// The device registry (site, location, owner of each device; DevEUI lookup).
    pub(crate) registry: registry::RegistryHandle,
    /// Drone flights and inspection tasks (`drone::start`).
    pub(crate) drone: crate::drone::DroneState,
    /// Free space camera frames must leave on the storage file system (`storage.min_free_mb`):
    /// a frame can become evidence, so none is taken in below it.
    pub(crate) storage_floor: crate::disk::Floor,
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

impl FromRef<AppState> for maintenance::Maintenance {
    fn from_ref(s: &AppState) -> Self {
        s.maintenance.clone()
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

impl FromRef<AppState> for crate::drone::DroneState {
    fn from_ref(s: &AppState) -> Self {
        s.drone.clone()
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

/// Every route of the gateway, and the dashboard's files when `dashboard` serves them.
pub(crate) fn router(state: AppState, dashboard: &DashboardConfig) -> Router {
    // Only the camera uploads take bodies past axum's default limit (2 MB).
    let frame_limit = || DefaultBodyLimit::max(cameras::MAX_FRAME_BYTES);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .route("/api/v1/whoami", get(auth::whoami))
        // devices
        .route("/api/v1/devices", get(devices::list))
        .route(
            "/api/v1/devices/{site}/{device}/readings",
            get(devices::readings),
        )
        .route(
            "/api/v1/devices/{site}/{device}/events",
            get(devices::events),
        )
        // cameras
        .route("/api/v1/cameras", get(cameras::list))
        .route(
            "/api/v1/cameras/{id}/frames",
            post(cameras::frame).layer(frame_limit()),
        )
        .route(
            "/api/v1/cameras/{id}/reference",
            post(cameras::reference).layer(frame_limit()),
        )
        .route("/api/v1/cameras/{id}/latest.jpg", get(cameras::latest_jpeg))
        // clues, the audit log, statistics
        .route("/api/v1/clues", get(clues::list).post(clues::create))
        .route("/api/v1/clues/stream", get(clues::stream))
        .route("/api/v1/clues/export", get(clues::export_clues))
        .route("/api/v1/audit/export", get(clues::export_audit))
        .route("/api/v1/clues/{id}", get(clues::detail))
        .route("/api/v1/clues/{id}/actions", post(clues::act))
        .route("/api/v1/clues/{id}/audit", get(clues::audit))
        .route("/api/v1/clues/{id}/evidence/{sha256}", get(clues::evidence))
        .route("/api/v1/stats", get(clues::stats))
        .route("/api/v1/decisions/stats", get(clues::decision_stats))
        .route("/api/v1/audit/verify", get(clues::verify))
        // oversight: warnings, supervision notices, the retention purge
        .route("/api/v1/oversight/warnings", get(oversight::warnings))
        .route("/api/v1/oversight/run", post(oversight::run))
        .route("/api/v1/evidence/purge", post(oversight::purge))
        .route(
            "/api/v1/oversight/warnings/{id}/notice",
            post(supervision::issue),
        )
        .route("/api/v1/oversight/notices", get(supervision::list))
        .route("/api/v1/oversight/notices/{id}", get(supervision::detail))
        .route(
            "/api/v1/oversight/notices/{id}/actions",
            post(supervision::act),
        )
        // notices to owners (sent with the clue action send_owner_notice)
        .route(
            "/api/v1/owner-notify/channels",
            get(owner_notices::channels),
        )
        .route("/api/v1/owner-notices/{id}", get(owner_notices::one))
        .route(
            "/api/v1/owner-notices/{id}/receipt",
            post(owner_notices::receipt),
        )
        // the organisation's units
        .route("/api/v1/org/units", get(org::units))
        // parking stays, muck-truck permits, pump-outs, the device registry
        .route("/api/v1/parking/stays", get(stays::list))
        .route(
            "/api/v1/muck-trucks/permits",
            get(permits::list).post(permits::create),
        )
        .route(
            "/api/v1/muck-trucks/permits/{plate}",
            get(permits::one).put(permits::put).delete(permits::revoke),
        )
        .route(
            "/api/v1/pumpouts",
            get(pumpouts::list).post(pumpouts::register),
        )
        .route(
            "/api/v1/maintenance",
            get(maintenance::list).post(maintenance::register),
        )
        .route("/api/v1/registry/devices", get(registry::list))
        .route(
            "/api/v1/registry/devices/{site}/{device}",
            get(registry::one)
                .put(registry::put)
                .delete(registry::delete),
        )
        // drone flights and inspection tasks
        .route(
            "/api/v1/flights",
            post(drone::create_flight).get(drone::list_flights),
        )
        .route("/api/v1/flights/{id}", get(drone::get_flight))
        .route("/api/v1/flights/{id}/events", get(drone::events))
        .route("/api/v1/flights/{id}/process", post(drone::process))
        .route(
            "/api/v1/flights/{id}/files/{name}",
            get(drone::file_state).put(drone::put_file),
        )
        .route(
            "/api/v1/tasks",
            post(drone::create_task).get(drone::list_tasks),
        )
        .with_state(state)
        .merge(web::static_routes(dashboard))
}
