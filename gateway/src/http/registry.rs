//! Registry routes. Reading: any token, entries of its sites only, owners' phones masked for
//! roles without the personal-data right (`clues.privacy.original_roles`). Editing: admin only; each
//! edit is audited in the clue audit chain (`registry_put` / `registry_delete`, detail = the
//! entry before and after) before it is written to the file and applied, so an edit that
//! could not be audited does not happen.
//!
//! - `GET    /api/v1/registry/devices`: the entries the token sees.
//! - `GET    /api/v1/registry/devices/{site}/{device}`
//! - `PUT    /api/v1/registry/devices/{site}/{device}`: add or replace (JSON entry; `site`
//!   and `device` may be left out, they come from the path). 201 when new, 200 when replaced.
//! - `DELETE /api/v1/registry/devices/{site}/{device}`
//!
//! The unregistered devices are served by `GET /api/v1/devices?unregistered=true` (`http/mod.rs`).

use super::error::ApiError;
use crate::clue::PoolHandle;
use crate::clue::audit::AuditAction;
use crate::clue::auth::{Principal, Role};
use crate::registry::{DeviceEntry, Registry, RegistryError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::Arc;

/// The registry as router state.
#[derive(Clone)]
pub struct RegistryHandle(pub Arc<Registry>);

pub(super) async fn list(
    p: Principal,
    State(RegistryHandle(r)): State<RegistryHandle>,
    State(pool): State<PoolHandle>,
) -> Result<Json<Value>, ApiError> {
    let snap = r.snapshot();
    let seen: Vec<&DeviceEntry> = snap.entries().iter().filter(|e| p.sees(&e.site)).collect();
    super::clues::for_role(&p, &pool, &seen, &[])
}

/// Owners' phones are masked for roles without the personal-data right, as on clues.
pub(super) async fn one(
    p: Principal,
    State(RegistryHandle(r)): State<RegistryHandle>,
    State(pool): State<PoolHandle>,
    Path((site, device)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    p.require_site(&site)?;
    let e = r
        .get(&site, &device)
        .ok_or_else(|| ApiError::NotFound(format!("{site}/{device} is not registered")))?;
    super::clues::for_role(&p, &pool, &e, &[])
}

fn require_admin(p: &Principal) -> Result<(), ApiError> {
    Ok(p.require(p.role == Role::Admin, "edit the device registry")?)
}

/// Runs a registry edit on the blocking pool with its audit entry.
async fn edit<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
}

fn auditor(
    pool: PoolHandle,
    actor: String,
    action: AuditAction,
    id: String,
) -> impl FnOnce(Option<&DeviceEntry>, Option<&DeviceEntry>) -> Result<(), RegistryError> {
    move |before, after| {
        let detail: Value = json!({"device": id, "before": before, "after": after});
        pool.record_blocking(&actor, action, &detail)
            .map_err(|e| RegistryError::File {
                path: "audit log".into(),
                reason: e.to_string(),
            })
    }
}

pub(super) async fn put(
    p: Principal,
    State(RegistryHandle(r)): State<RegistryHandle>,
    State(pool): State<PoolHandle>,
    Path((site, device)): Path<(String, String)>,
    Json(mut body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&p)?;
    // An admin scoped to a unit edits its unit's sites only; another site answers as a read
    // of it does, so a delete does not tell whether the entry exists.
    p.require_site(&site)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::BadRequest("expected a JSON object".into()));
    };
    for (key, want) in [("site", &site), ("device", &device)] {
        match obj.get(key) {
            None => {
                obj.insert(key.into(), want.clone().into());
            }
            Some(v) if v == want.as_str() => {}
            Some(_) => {
                return Err(ApiError::BadRequest(format!(
                    "`{key}` differs from the path (move a device by deleting and adding it)"
                )));
            }
        }
    }
    let entry: DeviceEntry =
        serde_json::from_value(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let audit = auditor(
        pool,
        p.actor(),
        AuditAction::RegistryPut,
        format!("{site}/{device}"),
    );
    let before = edit(move || r.put(entry, audit).map(|b| (b, r))).await?;
    let (before, r) = before;
    let now = r.get(&site, &device);
    tracing::info!(device = %format!("{site}/{device}"), actor = %p.actor(), "registry entry saved");
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(now)))
}

pub(super) async fn delete(
    p: Principal,
    State(RegistryHandle(r)): State<RegistryHandle>,
    State(pool): State<PoolHandle>,
    Path((site, device)): Path<(String, String)>,
) -> Result<Json<DeviceEntry>, ApiError> {
    require_admin(&p)?;
    // An admin scoped to a unit edits its unit's sites only; another site answers as a read
    // of it does, so a delete does not tell whether the entry exists.
    p.require_site(&site)?;
    let audit = auditor(
        pool,
        p.actor(),
        AuditAction::RegistryDelete,
        format!("{site}/{device}"),
    );
    let removed = edit(move || r.remove(&site, &device, audit)).await?;
    tracing::info!(device = %removed.id(), actor = %p.actor(), "registry entry removed");
    Ok(Json(removed))
}
