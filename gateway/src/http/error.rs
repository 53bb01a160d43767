//! The one error every HTTP handler returns, and the answer it becomes.
//!
//! The body is always `{"error": "<message>"}` with the status of the variant; two refusals add
//! the one field a client acts on: a resumable upload that does not start where the stored file
//! ends (409, `received`: resume from there) and purged evidence (410, `purged_ms`). A 401 also
//! carries `WWW-Authenticate: Bearer`, and a camera over its upload rate `Retry-After`.
//!
//! | variant | status |
//! |---|---|
//! | `Auth`: `AuthError` | 401 missing or invalid token, 403 forbidden, 429 too many failed logins, 500 token store |
//! | `BadRequest` | 400 |
//! | `Forbidden` | 403 (a camera refused by the gateway's own limits, not by the token) |
//! | `NotFound` | 404 (also for what exists but another site's token must not learn of) |
//! | `Conflict`, `UploadOffset` | 409 |
//! | `Gone` | 410 |
//! | `PayloadTooLarge` | 413 |
//! | `UnsupportedMediaType` | 415 |
//! | `Unprocessable` | 422 |
//! | `TooManyRequests` | 429 with `Retry-After` |
//! | `Internal` | 500, "internal error (see the gateway log)": the cause is logged, not shown |
//! | `Failed` | 500 with its message (drone storage: nothing secret in it) |
//! | `Unavailable` | 503 (a feature this gateway runs without) |
//! | `InsufficientStorage` | 507 (below a storage floor) |
//!
//! The domain errors a handler meets convert here (`?`), each to the status the API has always
//! answered for it: [`PoolError`] (and the store, lifecycle, notice and evidence errors in it),
//! [`RegistryError`], [`UploadError`], [`TaskError`].

use crate::clue::auth::AuthError;
use crate::clue::evidence::EvidenceError;
use crate::clue::lifecycle::LifecycleError;
use crate::clue::pool::PoolError;
use crate::clue::store::StoreError;
use crate::clue::supervision::NoticeError;
use crate::drone::tasks::TaskError;
use crate::drone::upload::UploadError;
use crate::registry::RegistryError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    BadRequest(String),
    /// 403 with the message as given (an `AuthError::Forbidden` says `forbidden: ` first).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A resumable upload's range does not start at the `received` bytes already stored.
    #[error("{message}")]
    UploadOffset { message: String, received: u64 },
    /// Evidence deleted by the retention purge at `purged_ms`.
    #[error("{message}")]
    Gone { message: String, purged_ms: i64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Over a rate: try again in `retry_after_s`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u64 },
    /// A failure the client cannot act on; log the cause where it is known.
    #[error("internal error (see the gateway log)")]
    Internal,
    /// A server-side failure whose message is safe to show.
    #[error("{0}")]
    Failed(String),
    /// A feature this gateway runs without.
    #[error("{0}")]
    Unavailable(String),
    /// Storing it would leave less than the storage floor free.
    #[error("{0}")]
    InsufficientStorage(String),
}

/// What the handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(a) => match a {
                AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
                AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
                AuthError::Backend => StatusCode::INTERNAL_SERVER_ERROR,
                AuthError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::UploadOffset { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal | ApiError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({ "error": self.to_string() });
        match &self {
            ApiError::UploadOffset { received, .. } => body["received"] = (*received).into(),
            ApiError::Gone { purged_ms, .. } => body["purged_ms"] = (*purged_ms).into(),
            _ => {}
        }
        let mut r = (status, Json(body)).into_response();
        match self {
            ApiError::Auth(AuthError::Missing | AuthError::Invalid) => {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_s, .. } => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            _ => {}
        }
        r
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Store(StoreError::NotFound(id)) => {
                ApiError::NotFound(format!("clue {id} not found"))
            }
            PoolError::Store(StoreError::Lifecycle(l @ LifecycleError::Illegal { .. })) => {
                ApiError::Conflict(l.to_string())
            }
            PoolError::Store(StoreError::Lifecycle(l)) => ApiError::BadRequest(l.to_string()),
            PoolError::Store(StoreError::Conflict(c)) => ApiError::Conflict(c),
            PoolError::Store(StoreError::Notice(n)) => match n {
                NoticeError::Illegal { .. } => ApiError::Conflict(n.to_string()),
                NoticeError::Invalid(m) => ApiError::BadRequest(m),
                NoticeError::NotFound(m) => ApiError::NotFound(format!("{m} not found")),
            },
            PoolError::Invalid(m) => ApiError::BadRequest(m),
            PoolError::Evidence(EvidenceError::NotFound(h)) => {
                ApiError::NotFound(format!("evidence {h} not found"))
            }
            PoolError::Evidence(EvidenceError::BadHash(h)) => {
                ApiError::BadRequest(format!("{h}: not a SHA-256"))
            }
            PoolError::Evidence(e @ EvidenceError::NoSpace(_)) => {
                ApiError::InsufficientStorage(e.to_string())
            }
            other => {
                tracing::error!(error = %other, "clue API failure");
                ApiError::Internal
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(e) => ApiError::BadRequest(e.to_string()),
            RegistryError::NotFound(id) => ApiError::NotFound(format!("{id} is not registered")),
            RegistryError::NoFile => ApiError::Unavailable(e.to_string()),
            RegistryError::File { .. } => {
                tracing::error!(error = %e, "registry edit failed");
                ApiError::Internal
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::BadName(_) | UploadError::BadRange(_) | UploadError::Body(_) => {
                ApiError::BadRequest(message)
            }
            UploadError::Offset { received, .. } => ApiError::UploadOffset { message, received },
            UploadError::UnsupportedType(_) => ApiError::UnsupportedMediaType(message),
            UploadError::TooLarge(_) => ApiError::PayloadTooLarge(message),
            UploadError::Rejected(_) => ApiError::Unprocessable(message),
            UploadError::Io(_) | UploadError::Failed(_) => ApiError::Failed(message),
            UploadError::Conflict(_) => ApiError::Conflict(message),
            UploadError::DiskFloor(_) => ApiError::InsufficientStorage(message),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid(m) => ApiError::BadRequest(m),
            e => ApiError::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let extra = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .or(r.headers().get(header::RETRY_AFTER))
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, extra, serde_json::from_slice(&body).expect("JSON"))
    }

    #[tokio::test]
    async fn every_refusal_is_an_error_message_with_its_status() {
        let (s, h, b) = answer(AuthError::Missing.into()).await;
        assert_eq!(
            (s, h.as_deref()),
            (StatusCode::UNAUTHORIZED, Some("Bearer"))
        );
        assert_eq!(b, serde_json::json!({"error": "missing bearer token"}));
        let (s, h, b) = answer(AuthError::Forbidden("role x may not y".into()).into()).await;
        assert_eq!((s, h), (StatusCode::FORBIDDEN, None));
        assert_eq!(
            b,
            serde_json::json!({"error": "forbidden: role x may not y"})
        );
        let (s, _, b) = answer(ApiError::Internal).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            b,
            serde_json::json!({"error": "internal error (see the gateway log)"})
        );
    }

    #[tokio::test]
    async fn two_refusals_say_what_the_client_does_next() {
        let (s, _, b) = answer(
            UploadError::Offset {
                start: 5,
                received: 3,
            }
            .into(),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(b["received"], 3);
        assert_eq!(
            b["error"],
            "range starts at 5 but 3 bytes are already stored"
        );
        let (s, _, b) = answer(ApiError::Gone {
            message: "purged".into(),
            purged_ms: 7,
        })
        .await;
        assert_eq!(s, StatusCode::GONE);
        assert_eq!(b, serde_json::json!({"error": "purged", "purged_ms": 7}));
        let (s, h, _) = answer(ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_s: 12,
        })
        .await;
        assert_eq!(
            (s, h.as_deref()),
            (StatusCode::TOO_MANY_REQUESTS, Some("12"))
        );
    }
}
