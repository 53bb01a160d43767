//! Notices to owners (`clue::owner_notify`). Sending is the clue action `send_owner_notice`
//! (`POST /api/v1/clues/{id}/actions`); each notice with its delivery state is on the clue's
//! detail (`owner.notices`). Here:
//!
//! - `GET  /api/v1/owner-notices/{id}`: one notice (readers of its clue).
//! - `POST /api/v1/owner-notices/{id}/receipt`: the provider's later word on it
//!   (`{status, at_ms?, note?}`), with a platform or admin token of the notice's site (the
//!   provider is given a platform token scoped to the sites it serves); audited on the clue as
//!   `owner_notice_receipt`. Any other role: 403; no valid token: 401.

use super::error::{ApiError, ApiResult};
use crate::clue::PoolHandle;
use crate::clue::auth::{Principal, Role};
use crate::clue::owner_notify::{OwnerNotice, Receipt};
use axum::extract::{Path, State};
use axum::response::IntoResponse;

/// The notice `id` when the token sees its clue (404 otherwise, like a missing one).
async fn visible_notice(p: &Principal, pool: &PoolHandle, id: i64) -> ApiResult<OwnerNotice> {
    let missing = || ApiError::NotFound(format!("owner notice {id} not found"));
    let n = pool.owner_notice(id).await?.ok_or_else(missing)?;
    let clue = pool.get(n.clue_id).await?.ok_or_else(missing)?;
    if !p.sees_clue(&clue.clue) {
        return Err(missing());
    }
    Ok(n)
}

pub(super) async fn one(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    super::clues::can_read(&p)?;
    let n = visible_notice(&p, &pool, id).await?;
    super::clues::for_role(&p, &pool, &n, &[])
}

pub(super) async fn receipt(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    p.require(
        matches!(p.role, Role::Platform | Role::Admin),
        "record owner-notice receipts",
    )?;
    let r: Receipt = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad receipt: {e}")))?;
    r.check().map_err(ApiError::BadRequest)?;
    visible_notice(&p, &pool, id).await?;
    let change = pool.owner_notice_receipt(id, r, p.actor()).await?;
    tracing::info!(notice = id, clue = change.clue.id, actor = %change.actor, "owner notice receipt");
    let n = pool
        .owner_notice(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("owner notice {id} not found")))?;
    super::clues::for_role(&p, &pool, &n, &[])
}
