//! Flight and task routes.
//!
//! - `POST /api/v1/flights` `{site?, name?}` -> 202 flight (drone_operator, admin)
//! - `PUT  /api/v1/flights/{id}/files/{name}` raw body, optional `Content-Range: bytes a-b/n`
//!   for resumable chunks -> 200 (partial) / 201 (complete) file state; 409 with `received`
//!   when the range does not start where the stored file ends
//! - `GET  /api/v1/flights/{id}/files/{name}` -> file state (the offset to resume from)
//! - `POST /api/v1/flights/{id}/process` -> 202 (queued)
//! - `GET  /api/v1/flights`, `GET /api/v1/flights/{id}`, `GET /api/v1/flights/{id}/events` (SSE
//!   `progress` events; the stream ends after `done` or `failed`)
//! - `POST /api/v1/tasks`, `GET /api/v1/tasks`
//!
//! Everything is scoped to the token's sites like the clue routes.

use super::error::{ApiError, ApiResult};
use crate::clue::auth::{Principal, Role};
use crate::drone::DroneState;
use crate::drone::flight::{FileState, Flight, Progress, Status};
use crate::drone::receive::{Put, Received};
use crate::drone::tasks::NewTask;
use crate::drone::upload;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

fn may_upload(p: &Principal) -> ApiResult<()> {
    Ok(p.require(
        matches!(p.role, Role::DroneOperator | Role::Admin),
        "upload drone footage",
    )?)
}

fn may_read(p: &Principal) -> ApiResult<()> {
    Ok(p.require(
        !matches!(p.role, Role::Device | Role::Notifier),
        "read flights and tasks",
    )?)
}

/// The flight, when it exists and the token sees its site (404 otherwise: another site's
/// flight ids are not confirmed).
fn visible(s: &DroneState, p: &Principal, id: u64) -> ApiResult<Flight> {
    match s.flights.get(id) {
        Some(f) if p.sees(&f.site) => Ok(f),
        _ => Err(ApiError::NotFound(format!("flight {id} not found"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewFlight {
    site: Option<String>,
    name: Option<String>,
}

pub(super) async fn create_flight(
    p: Principal,
    State(s): State<DroneState>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    may_upload(&p)?;
    let req: NewFlight = if body.iter().all(u8::is_ascii_whitespace) {
        NewFlight::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("flight: {e}")))?
    };
    let site = match (req.site, p.sites.as_slice()) {
        (Some(site), _) => site,
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(ApiError::BadRequest(
                "site: required (the token has more than one site)".into(),
            ));
        }
    };
    p.require_site(&site)?;
    if req.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::BadRequest("name: at most 200 characters".into()));
    }
    let f = s
        .flights
        .create(site, req.name, p.actor(), crate::clock::now_ms());
    std::fs::create_dir_all(s.flights.dir(f.id))
        .map_err(|e| ApiError::Failed(format!("storage: {e}")))?;
    Ok((StatusCode::ACCEPTED, Json(f)).into_response())
}

pub(super) async fn list_flights(
    p: Principal,
    State(s): State<DroneState>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    may_read(&p)?;
    let rows: Vec<serde_json::Value> = s
        .flights
        .list()
        .into_iter()
        .filter(|f| p.sees(&f.site))
        .map(|f| {
            serde_json::json!({
                "id": f.id, "site": f.site, "name": f.name, "status": f.status,
                "progress": f.progress, "frames_total": f.frames_total,
                "frames_done": f.frames_done, "findings": f.findings.len(),
                "changes": f.changes.len(), "errors": f.errors.len(),
                "files": f.files.len(), "created_ms": f.created_ms,
            })
        })
        .collect();
    Ok(Json(rows))
}

pub(super) async fn get_flight(
    p: Principal,
    State(s): State<DroneState>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Flight>> {
    may_read(&p)?;
    Ok(Json(visible(&s, &p, id)?))
}

pub(super) async fn file_state(
    p: Principal,
    State(s): State<DroneState>,
    Path((id, name)): Path<(u64, String)>,
) -> ApiResult<Json<FileState>> {
    may_read(&p)?;
    let f = visible(&s, &p, id)?;
    // A name an upload would refuse is a 400 here (an unknown type is a 415 on upload).
    upload::kind_of(&name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match f.files.into_iter().find(|x| x.name == name) {
        Some(st) => Ok(Json(st)),
        None => Err(ApiError::NotFound(format!("{name}: nothing received"))),
    }
}

/// Parses the request into the drone domain's [`Put`] and answers its outcome: 200 with the
/// file state while bytes are missing, 201 once complete; every refusal (and its status) comes
/// from [`DroneState::receive`] through `From<UploadError> for ApiError`.
pub(super) async fn put_file(
    p: Principal,
    State(s): State<DroneState>,
    Path((id, name)): Path<(u64, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    may_upload(&p)?;
    let flight = visible(&s, &p, id)?;
    let put = Put {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        content_length: headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
        content_range: headers.get(header::CONTENT_RANGE).map(|v| v.as_bytes()),
    };
    match s
        .receive(&flight, &name, put, body.into_data_stream())
        .await?
    {
        Received::Partial(st) => Ok((StatusCode::OK, Json(st)).into_response()),
        Received::Complete(st) => Ok((StatusCode::CREATED, Json(st)).into_response()),
    }
}

pub(super) async fn process(
    p: Principal,
    State(s): State<DroneState>,
    Path(id): Path<u64>,
) -> ApiResult<Response> {
    may_upload(&p)?;
    let f = visible(&s, &p, id)?;
    if matches!(f.status, Status::Queued | Status::Processing) {
        return Err(ApiError::Conflict(format!(
            "flight {id} is already {:?}",
            f.status
        )));
    }
    if !f.files.iter().any(|x| x.complete) {
        return Err(ApiError::Conflict(format!(
            "flight {id} has no complete file"
        )));
    }
    s.flights.update(id, true, |f| {
        f.status = Status::Queued;
        f.progress = 0.0;
    });
    if s.queue.try_send(id).is_err() {
        s.flights.update(id, true, |f| f.status = Status::Uploading);
        return Err(ApiError::Unavailable(
            "processing queue is full; try later".into(),
        ));
    }
    match s.flights.get(id) {
        Some(f) => Ok((StatusCode::ACCEPTED, Json(f)).into_response()),
        None => Err(ApiError::NotFound("flight vanished".into())),
    }
}

pub(super) async fn events(
    p: Principal,
    State(s): State<DroneState>,
    Path(id): Path<u64>,
) -> ApiResult<Response> {
    may_read(&p)?;
    let f = visible(&s, &p, id)?;
    let rx = s.flights.subscribe();
    let first = f.progress();
    let closing = s.closing.clone();
    let ev = |p: &Progress| {
        Event::default()
            .event("progress")
            .json_data(p)
            .unwrap_or_else(|_| Event::default().event("error"))
    };
    let finished = |p: &Progress| matches!(p.status, Status::Done | Status::Failed);
    // State: (receiver, first event still to send, stream ended).
    let stream =
        futures_util::stream::unfold((rx, Some(first), false), move |(mut rx, first, ended)| {
            let closing = closing.clone();
            async move {
                if ended {
                    return None;
                }
                if let Some(p) = first {
                    let end = finished(&p);
                    return Some((Ok::<_, Infallible>(ev(&p)), (rx, None, end)));
                }
                loop {
                    let got = tokio::select! {
                        _ = closing.cancelled() => return None,
                        r = rx.recv() => r,
                    };
                    match got {
                        Ok(p) if p.id == id => {
                            let end = finished(&p);
                            return Some((Ok(ev(&p)), (rx, None, end)));
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

pub(super) async fn create_task(
    p: Principal,
    State(s): State<DroneState>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    p.require(
        matches!(p.role, Role::Supervisor | Role::Platform | Role::Admin),
        "register inspection tasks",
    )?;
    let t: NewTask =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("task: {e}")))?;
    match &t.site {
        Some(site) => p.require_site(site)?,
        None if p.role != Role::Admin && p.role != Role::Platform => {
            return Err(ApiError::BadRequest("site: required for this token".into()));
        }
        None => {}
    }
    let tasks = s.tasks.clone();
    let now = crate::clock::now_ms();
    let task = tokio::task::spawn_blocking(move || tasks.add(t, now))
        .await
        .map_err(|e| ApiError::Failed(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

pub(super) async fn list_tasks(
    p: Principal,
    State(s): State<DroneState>,
) -> ApiResult<Json<Vec<crate::drone::tasks::Task>>> {
    may_read(&p)?;
    let rows: Vec<_> = s
        .tasks
        .list()
        .into_iter()
        .filter(|t| t.site.as_ref().is_none_or(|site| p.sees(site)))
        .collect();
    Ok(Json(rows))
}
