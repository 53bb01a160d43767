//! Oversight routes, for supervisors and admins (auditors read the warnings, run nothing):
//!
//! - `GET  /api/v1/oversight/warnings?limit=`: supervision warnings of the token's sites (and
//!   the site-less ones about officers' outcomes), red first; plates and owners' phones masked
//!   for roles without the personal-data right (auditors by default), as on clues. Warnings about the caller
//!   themself are left out: a warning goes to the supervisor, not the person concerned.
//! - `POST /api/v1/oversight/run`: run the models now (they also run every
//!   `clues.oversight.every_s`); answers the warnings new or raised.
//! - `POST /api/v1/evidence/purge`: run the retention purge now (admin); answers the counts.

use super::error::ApiError;
use crate::clue::auth::{Principal, Role};
use crate::clue::oversight::concerns_actor;
use crate::clue::pool::PoolHandle;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

fn supervises(p: &Principal) -> Result<(), ApiError> {
    p.require(
        matches!(p.role, Role::Supervisor | Role::Admin),
        "run the oversight models",
    )
    .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WarningParams {
    #[serde(default)]
    limit: Option<u32>,
}

pub(super) async fn warnings(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<WarningParams>,
) -> Result<impl IntoResponse, ApiError> {
    p.require(p.role.may_read_warnings(), "read oversight warnings")?;
    let me = p.actor();
    let list: Vec<_> = pool
        .warnings(p.scope(), q.limit.unwrap_or(500))
        .await?
        .into_iter()
        .filter(|w| !concerns_actor(&w.finding, &me))
        .collect();
    super::clues::for_role(&p, &pool, &list, &[])
}

pub(super) async fn run(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> Result<impl IntoResponse, ApiError> {
    supervises(&p)?;
    let me = p.actor();
    let list: Vec<_> = pool
        .run_oversight()
        .await?
        .into_iter()
        .filter(|w| !concerns_actor(&w.finding, &me))
        .filter(|w| w.finding.site.as_deref().is_none_or(|s| p.sees(s)))
        .collect();
    super::clues::for_role(&p, &pool, &list, &[])
}

pub(super) async fn purge(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> Result<impl IntoResponse, ApiError> {
    p.require(p.role == Role::Admin, "purge evidence")?;
    Ok(Json(pool.run_retention().await?))
}
