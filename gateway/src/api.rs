//! The HTTP API: health, Prometheus metrics, and the live device table.
//!
//! Authentication and roles arrive with the clue pool; until then the API binds to loopback by
//! default (`http.listen = 127.0.0.1:8080`) and serves only read-only operational data.

use crate::devices::{DeviceTable, DeviceView};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use axum::extract::{Query, State};
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

async fn devices(State(s): State<AppState>, Query(q): Query<DeviceQuery>) -> Json<Vec<DeviceView>> {
    let rows = s
        .devices
        .snapshot(crate::clock::now_ms())
        .into_iter()
        .filter(|d| q.site.as_ref().is_none_or(|site| &d.site == site))
        .filter(|d| q.online.is_none_or(|o| d.online == o))
        .collect();
    Json(rows)
}
