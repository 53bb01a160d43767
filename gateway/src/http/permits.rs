//! Muck-truck permit routes (see `camera::permits` for which permit wins). Reading: inspector,
//! supervisor, platform, admin and auditor tokens that see a muck camera's site. Writing: admin,
//! or a platform token that sees every muck camera's site (a permit is judged on all of them).
//! Every change is written with its audit entry before it is in force; a permit is checked as a
//! configured one is, the error naming the field.
//!
//! - `GET    /api/v1/muck-trucks/permits`: configured and stored permits (`source`, `in_force`).
//! - `POST   /api/v1/muck-trucks/permits`: a new permit (JSON as in `[[muck_trucks.permits]]`);
//!   201, 409 when the plate has one.
//! - `GET    /api/v1/muck-trucks/permits/{plate}`
//! - `PUT    /api/v1/muck-trucks/permits/{plate}`: add or replace (`plate` may be left out);
//!   201 when new, 200 when replaced.
//! - `DELETE /api/v1/muck-trucks/permits/{plate}`: revoke; 200 with the permit revoked.
//!
//! A plate of `[[muck_trucks.permits]]` is refused by the writing routes (409): the file wins.
//!
//! Plates are personal data: every answer is masked as clues are (`京A*****`, also in
//! `holder` or any other text that repeats the plate) for roles without the personal-data
//! right (`clues.privacy.original_roles`, supervisors and admins by default).

use super::clues::for_role;
use super::error::ApiError;
use crate::camera::permits::{MuckPermits, PermitView};
use crate::clue::PoolHandle;
use crate::clue::auth::{Principal, Role};
use crate::vision::dwell::normalize_plate;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::Arc;

/// The permits as router state (absent: no muck camera, the routes answer 503).
#[derive(Clone, Default)]
pub struct PermitsHandle(pub Option<Arc<MuckPermits>>);

fn permits(h: &PermitsHandle) -> Result<&Arc<MuckPermits>, ApiError> {
    h.0.as_ref().ok_or_else(|| {
        ApiError::Unavailable("no camera checks muck trucks ([[muck_trucks.cameras]])".into())
    })
}

fn may_read(p: &Principal, m: &MuckPermits) -> Result<(), ApiError> {
    let role = matches!(
        p.role,
        Role::Inspector | Role::Supervisor | Role::Platform | Role::Admin | Role::Auditor
    );
    Ok(p.require(
        role && m.readable_by(|s| p.sees(s)),
        "read muck-truck permits",
    )?)
}

fn may_write(p: &Principal, m: &MuckPermits) -> Result<(), ApiError> {
    let role = matches!(p.role, Role::Admin | Role::Platform);
    Ok(p.require(
        role && m.writable_by(|s| p.sees(s)),
        "change muck-truck permits (admin, or platform seeing every muck camera's site)",
    )?)
}

/// Refuses a plate the configuration holds: its permit is changed in the file.
fn not_configured(m: &MuckPermits, plate: &str) -> Result<(), ApiError> {
    if m.configured(plate) {
        return Err(ApiError::Conflict(format!(
            "the permit of {plate} comes from [[muck_trucks.permits]] in the configuration, \
             which wins over the API: change it there"
        )));
    }
    Ok(())
}

/// Re-reads the stored permits so a change is in force when the answer is sent.
async fn reload(pool: &PoolHandle, m: &MuckPermits) -> Result<(), ApiError> {
    Ok(m.reload(pool).await?)
}

pub(super) async fn list(
    p: Principal,
    State(h): State<PermitsHandle>,
    State(pool): State<PoolHandle>,
) -> Result<Json<Value>, ApiError> {
    let m = permits(&h)?;
    may_read(&p, m)?;
    for_role(&p, &pool, &m.list(), &[])
}

pub(super) async fn one(
    p: Principal,
    State(h): State<PermitsHandle>,
    State(pool): State<PoolHandle>,
    Path(plate): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = permits(&h)?;
    may_read(&p, m)?;
    let plate = normalize_plate(&plate);
    let view = m.get(&plate).ok_or_else(|| {
        ApiError::NotFound(format!("{} has no permit", masked(&p, &pool, &plate)))
    })?;
    for_role(&p, &pool, &view, std::slice::from_ref(&plate))
}

/// `plate` as `p` may read it in a message.
fn masked(p: &Principal, pool: &PoolHandle, plate: &str) -> String {
    if pool.config().privacy.sees_originals(p.role) {
        plate.to_string()
    } else {
        crate::clue::privacy::masked_plate(plate)
    }
}

/// Parses, checks and stores `body` as the permit of its plate.
async fn store(
    p: &Principal,
    m: &MuckPermits,
    pool: &PoolHandle,
    body: Value,
    create: bool,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let permit = m.parse(body).map_err(ApiError::BadRequest)?;
    let plate = normalize_plate(&permit.plate);
    not_configured(m, &plate)?;
    let value = serde_json::to_value(&permit).map_err(|_| ApiError::Internal)?;
    let before = pool
        .put_muck_permit(plate.clone(), value, create, p.actor())
        .await?;
    reload(pool, m).await?;
    tracing::info!(%plate, actor = %p.actor(), "muck-truck permit saved");
    let view: PermitView = m.get(&plate).ok_or(ApiError::Internal)?;
    let view = for_role(p, pool, &view, std::slice::from_ref(&plate))?;
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, view))
}

pub(super) async fn create(
    p: Principal,
    State(h): State<PermitsHandle>,
    State(pool): State<PoolHandle>,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let m = permits(&h)?;
    may_write(&p, m)?;
    store(&p, m, &pool, body, true).await
}

pub(super) async fn put(
    p: Principal,
    State(h): State<PermitsHandle>,
    State(pool): State<PoolHandle>,
    Path(plate): Path<String>,
    Json(mut body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let m = permits(&h)?;
    may_write(&p, m)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::BadRequest("expected a JSON object".into()));
    };
    match obj.get("plate").and_then(Value::as_str) {
        None => {
            obj.insert("plate".into(), plate.clone().into());
        }
        Some(b) if normalize_plate(b) == normalize_plate(&plate) => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "plate: differs from the path (a permit is moved by revoking it and adding another)"
                    .into(),
            ));
        }
    }
    store(&p, m, &pool, body, false).await
}

pub(super) async fn revoke(
    p: Principal,
    State(h): State<PermitsHandle>,
    State(pool): State<PoolHandle>,
    Path(plate): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = permits(&h)?;
    may_write(&p, m)?;
    let plate = normalize_plate(&plate);
    not_configured(m, &plate)?;
    let removed = pool.delete_muck_permit(plate.clone(), p.actor()).await?;
    reload(&pool, m).await?;
    let removed = removed.ok_or_else(|| {
        ApiError::NotFound(format!(
            "{} has no stored permit",
            masked(&p, &pool, &plate)
        ))
    })?;
    tracing::info!(%plate, actor = %p.actor(), "muck-truck permit revoked");
    for_role(&p, &pool, &removed, std::slice::from_ref(&plate))
}
