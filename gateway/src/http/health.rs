//! Operations, without a token: `GET /healthz` (liveness and status, for load balancers) and
//! `GET /metrics` (Prometheus, OpenMetrics text).

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(super) async fn healthz(State(s): State<AppState>) -> Json<serde_json::Value> {
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

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    refresh_gauges(&s);
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

/// Refreshes gauges that are computed on demand rather than on every update.
fn refresh_gauges(s: &AppState) {
    let (known, online) = s.devices.gauge_counts(crate::clock::now_ms());
    s.metrics.devices_known.set(known);
    s.metrics.devices_online.set(online);
    if let Some(o) = &s.outbox {
        let st = o.stats();
        s.metrics.outbox_depth_records.set(st.records as i64);
        s.metrics.outbox_bytes.set(st.bytes);
    }
}
