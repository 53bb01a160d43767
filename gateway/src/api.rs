//! The HTTP API: health, Prometheus metrics, the live device table and the clue routes.
//!
//! `/healthz` and `/metrics` are open (operations, load balancers). Everything under `/api/v1`
//! needs `Authorization: Bearer <token>` (see `clue::auth`): 401 without a valid token, 403
//! outside the role or sites, and data of other sites is never returned.

use crate::clue::PoolHandle;
use crate::clue::auth::{Authenticator, Principal};
use crate::devices::{DeviceTable, DeviceView};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use axum::extract::{FromRef, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
            get(|| async { Json(crate::clue::openapi::document()) }),
        )
        .merge(crate::clue::api::routes())
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
}

/// Any valid token; only devices of the token's sites (all for admin).
async fn devices(
    p: Principal,
    State(s): State<AppState>,
    Query(q): Query<DeviceQuery>,
) -> Result<Json<Vec<DeviceView>>, crate::clue::auth::AuthError> {
    if let Some(site) = &q.site {
        p.require_site(site)?;
    }
    let rows = s
        .devices
        .snapshot(crate::clock::now_ms())
        .into_iter()
        .filter(|d| p.sees(&d.site))
        .filter(|d| q.site.as_ref().is_none_or(|site| &d.site == site))
        .filter(|d| q.online.is_none_or(|o| d.online == o))
        .collect();
    Ok(Json(rows))
}
