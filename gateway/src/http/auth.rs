//! Who is asking: the [`Principal`] extractor every `/api/v1` handler takes first, and
//! `GET /api/v1/whoami` (the token's role, sites and audit name: what the dashboard may show). The tokens,
//! roles and scopes themselves are the clue domain's (`clue::auth`); this only reads the
//! `Authorization` header and answers a refusal as every other error (401 with
//! `WWW-Authenticate: Bearer`, 429 past the failed-login limit; see `super::error`).

use super::error::ApiError;
use crate::clue::auth::{Authenticator, Principal};
use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        Ok(auth
            .principal(parts.headers.get(header::AUTHORIZATION))
            .await?)
    }
}

pub(super) async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "role": p.role,
        "sites": p.sites,
        "all_sites": p.scope().is_none(),
        "device": p.device,
        "unit": p.unit,
        "department": p.department,
        "actor": p.actor(),
        "may_read_clues": p.role.may_read_clues(),
        "may_work_clues": p.role.may_work_clues(),
        "may_supervise": p.role.may_verify_audit(),
        "may_read_warnings": p.role.may_read_warnings(),
    }))
}
