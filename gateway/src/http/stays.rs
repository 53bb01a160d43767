//! `GET /api/v1/parking/stays`: the warned parking stays and their outcomes, for the roles
//! that read clues, within the token's sites; plates masked as in clues for roles without
//! the personal-data right. Query: `site`, `camera`, `outcome` (`pending`,
//! `left_after_notice`, `clue`), `from_ms`, `to_ms` (notice time), `limit` (default 100,
//! at most 1000). Newest notice first.

use super::clues::{can_read, for_role};
use super::error::ApiError;
use crate::clue::PoolHandle;
use crate::clue::auth::Principal;
use crate::clue::stays::{Outcome, StayQuery};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StayParams {
    site: Option<String>,
    camera: Option<String>,
    outcome: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<u32>,
}

pub(super) async fn list(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<StayParams>,
) -> Result<impl IntoResponse, ApiError> {
    can_read(&p)?;
    if let Some(site) = &q.site {
        p.require_site(site)?;
    }
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some(o) => Some(
            Outcome::parse(o)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown outcome {o}")))?,
        ),
    };
    let stays = pool
        .stays(StayQuery {
            site: q.site,
            camera: q.camera,
            outcome,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            scope: p.scope(),
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?;
    for_role(&p, &pool, &stays, &[])
}
