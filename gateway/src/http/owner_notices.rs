//! Notices to owners (`clue::owner_notify`). Sending is the clue action `send_owner_notice`
//! (`POST /api/v1/clues/{id}/actions`); each notice with its delivery state is on the clue's
//! detail (`owner.notices`). Here:
//!
//! - `GET  /api/v1/owner-notify/channels`: the configured channels (`name`, `kind`,
//!   `contact`, `templates`), what the dashboard's send form offers; never a channel's URL
//!   (it may carry a provider's key) or its token variable (readers of clues).
//! - `GET  /api/v1/owner-notices/{id}`: one notice (readers of its clue).
//! - `POST /api/v1/owner-notices/{id}/receipt`: the provider's later word on it
//!   (`{status, at_ms?, note?}`); audited on the clue as `owner_notice_receipt`. The provider
//!   posts it with a `notifier` token (`gateway token create --role notifier --channel sms
//!   --sites ...`): that token may post receipts for the notices of its channel and sites and
//!   do nothing else (it reads no clue, no notice, and its answer is the receipt alone), so a
//!   provider's leaked token cannot read the owners' data or speak for another channel.
//!   Platform and admin tokens of the notice's site may post receipts too (a platform that
//!   relays them). A notifier of another channel, and every other role: 403; no valid token:
//!   401; a notice outside the token's sites: 404, like a missing one.

use super::error::{ApiError, ApiResult};
use crate::clue::PoolHandle;
use crate::clue::auth::{Principal, Role};
use crate::clue::owner_notify::{OwnerNotice, Receipt};
use axum::extract::{Path, State};
use axum::response::IntoResponse;

pub(super) async fn channels(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    super::clues::can_read(&p)?;
    let list: Vec<serde_json::Value> = pool
        .config()
        .owner_notify
        .channels
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "kind": c.kind,
                "contact": c.contact,
                "templates": c.templates,
            })
        })
        .collect();
    Ok(axum::Json(serde_json::Value::Array(list)))
}

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
        matches!(p.role, Role::Platform | Role::Admin | Role::Notifier),
        "record owner-notice receipts",
    )?;
    let r: Receipt = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad receipt: {e}")))?;
    r.check().map_err(ApiError::BadRequest)?;
    let notice = visible_notice(&p, &pool, id).await?;
    if p.role == Role::Notifier && p.channel.as_deref() != Some(notice.channel.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "this token posts receipts for channel `{}` only",
            p.channel.as_deref().unwrap_or("none")
        )));
    }
    let change = pool.owner_notice_receipt(id, r, p.actor()).await?;
    tracing::info!(notice = id, clue = change.clue.id, actor = %change.actor, "owner notice receipt");
    let n = pool
        .owner_notice(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("owner notice {id} not found")))?;
    if p.role == Role::Notifier {
        // The provider learns that its receipt was taken, nothing of the clue or the owner.
        return Ok(axum::Json(serde_json::json!({
            "id": n.id,
            "channel": n.channel,
            "receipt_status": n.receipt_status,
            "receipt_ms": n.receipt_ms,
        })));
    }
    super::clues::for_role(&p, &pool, &n, &[])
}
