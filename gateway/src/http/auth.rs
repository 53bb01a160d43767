//! Who is asking: the [`Principal`] extractor every `/api/v1` handler takes first, and
//! `GET /api/v1/whoami` (the token's role, sites and audit name: what the dashboard may show). The tokens,
//! roles and scopes themselves are the clue domain's (`clue::auth`); this only reads the
//! `Authorization` header and answers a refusal as every other error (401 with
//! `WWW-Authenticate: Bearer`, 429 past the failed-login limit; see `super::error`).
//!
//! A `notifier` token (an owner-notice provider's) is refused here, before any handler, on
//! every route but the receipt route and `whoami`: a route that checks only the token's
//! sites (devices, stays, the registry) would otherwise read for it, and a route added later
//! must not open to it by forgetting a role check.

use super::error::ApiError;
use crate::clue::auth::{AuthError, Authenticator, Principal, Role};
use axum::Json;
use axum::extract::{FromRef, FromRequestParts, MatchedPath};
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
        let p = auth
            .principal(parts.headers.get(header::AUTHORIZATION))
            .await?;
        if p.role == Role::Notifier {
            let path = parts
                .extensions
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            if !path.is_some_and(|r| NOTIFIER_ROUTES.contains(&r)) {
                return Err(AuthError::Forbidden(
                    "a notifier token only posts owner-notice receipts".into(),
                )
                .into());
            }
        }
        Ok(p)
    }
}

/// The routes a notifier token may use (see the module doc).
const NOTIFIER_ROUTES: &[&str] = &["/api/v1/owner-notices/{id}/receipt", "/api/v1/whoami"];

pub(super) async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "role": p.role,
        "sites": p.sites,
        "all_sites": p.scope().is_none(),
        "device": p.device,
        "unit": p.unit,
        "department": p.department,
        "channel": p.channel,
        "actor": p.actor(),
        "may_read_clues": p.role.may_read_clues(),
        "may_work_clues": p.role.may_work_clues(),
        "may_supervise": p.role.may_verify_audit(),
        "may_read_warnings": p.role.may_read_warnings(),
    }))
}
