//! Cameras:
//!
//! - `POST /api/v1/cameras/{id}/frames?site=` (image/jpeg): one frame for the health checks and
//!   the camera features (parking, shop fronts, muck trucks); device, platform and admin tokens.
//! - `POST /api/v1/cameras/{id}/reference?site=` (image/jpeg): enrols the expected view.
//! - `GET  /api/v1/cameras`: every camera's health state (any role, site-scoped).
//! - `GET  /api/v1/cameras/{id}/latest.jpg?site=`: its last frame (roles that read clues: frames
//!   show people and kitchens), masked for roles without the personal-data right; originals
//!   audited.

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::clue::auth::{AuthError, Principal};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Largest camera frame accepted (a 4K JPEG is a few MB).
pub(super) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// `?site=` of the camera routes: a frame carries no site, and the token must cover it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CameraQuery {
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
pub(super) async fn frame(
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
pub(super) async fn reference(
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

pub(super) async fn list(
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
pub(super) async fn latest_jpeg(
    p: Principal,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CameraQuery>,
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
