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

// The guards below return the refusal itself so handlers can `return` it; a boxed response
// would only add an allocation on the refusal path.
#![allow(clippy::result_large_err)]

use crate::clue::auth::{AuthError, Principal, Role};
use crate::drone::DroneState;
use crate::drone::flight::{FileState, Flight, Progress, Status};
use crate::drone::tasks::NewTask;
use crate::drone::upload::{self, UploadError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;

pub fn router(state: DroneState) -> Router {
    Router::new()
        .route("/api/v1/flights", post(create_flight).get(list_flights))
        .route("/api/v1/flights/{id}", get(get_flight))
        .route("/api/v1/flights/{id}/events", get(events))
        .route("/api/v1/flights/{id}/process", post(process))
        .route(
            "/api/v1/flights/{id}/files/{name}",
            get(file_state).put(put_file),
        )
        .route("/api/v1/tasks", post(create_task).get(list_tasks))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn auth_error(e: AuthError) -> Response {
    e.into_response()
}

fn may_upload(p: &Principal) -> Result<(), Response> {
    p.require(
        matches!(p.role, Role::DroneOperator | Role::Admin),
        "upload drone footage",
    )
    .map_err(auth_error)
}

fn may_read(p: &Principal) -> Result<(), Response> {
    p.require(p.role != Role::Device, "read flights and tasks")
        .map_err(auth_error)
}

/// The flight, when it exists and the token sees its site (404 otherwise: another site's
/// flight ids are not confirmed).
fn visible(s: &DroneState, p: &Principal, id: u64) -> Result<Flight, Response> {
    match s.flights.get(id) {
        Some(f) if p.sees(&f.site) => Ok(f),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            format!("flight {id} not found"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFlight {
    site: Option<String>,
    name: Option<String>,
}

async fn create_flight(
    p: Principal,
    State(s): State<DroneState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = may_upload(&p) {
        return r;
    }
    let req: NewFlight = if body.iter().all(u8::is_ascii_whitespace) {
        NewFlight::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("flight: {e}")),
        }
    };
    let site = match (req.site, p.sites.as_slice()) {
        (Some(site), _) => site,
        (None, [only]) => only.clone(),
        (None, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "site: required (the token has more than one site)",
            );
        }
    };
    if let Err(e) = p.require_site(&site) {
        return auth_error(e);
    }
    if req.name.as_ref().is_some_and(|n| n.len() > 200) {
        return error(StatusCode::BAD_REQUEST, "name: at most 200 characters");
    }
    let f = s
        .flights
        .create(site, req.name, p.actor(), crate::clock::now_ms());
    if let Err(e) = std::fs::create_dir_all(s.flights.dir(f.id)) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("storage: {e}"));
    }
    (StatusCode::ACCEPTED, Json(f)).into_response()
}

async fn list_flights(p: Principal, State(s): State<DroneState>) -> Response {
    if let Err(r) = may_read(&p) {
        return r;
    }
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
    Json(rows).into_response()
}

async fn get_flight(p: Principal, State(s): State<DroneState>, Path(id): Path<u64>) -> Response {
    if let Err(r) = may_read(&p) {
        return r;
    }
    match visible(&s, &p, id) {
        Ok(f) => Json(f).into_response(),
        Err(r) => r,
    }
}

async fn file_state(
    p: Principal,
    State(s): State<DroneState>,
    Path((id, name)): Path<(u64, String)>,
) -> Response {
    if let Err(r) = may_read(&p) {
        return r;
    }
    let f = match visible(&s, &p, id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(e) = upload::kind_of(&name) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    match f.files.into_iter().find(|x| x.name == name) {
        Some(st) => Json(st).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("{name}: nothing received")),
    }
}

fn upload_error(e: UploadError) -> Response {
    let status = match &e {
        UploadError::BadName(_) | UploadError::BadRange(_) => StatusCode::BAD_REQUEST,
        UploadError::Offset { received, .. } => {
            return (
                StatusCode::CONFLICT,
                Json(serde_json::json!({"error": e.to_string(), "received": received})),
            )
                .into_response();
        }
        UploadError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        UploadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        UploadError::Body(_) => StatusCode::BAD_REQUEST,
        UploadError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Refuses an upload of `incoming` bytes (507 Insufficient Storage) when it would leave less
/// than `min_free` bytes on the file system of `dir`: footage must not fill the disk that
/// holds the evidence, the outbox and the audit chain. Each refusal is logged.
fn disk_guard(dir: &std::path::Path, incoming: u64, min_free: u64) -> Result<(), Response> {
    crate::disk::check_floor(dir, incoming, min_free, "drone.min_free_mb")
        .map_err(|e| error(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))
}

/// Removes the busy mark when the upload handler returns (even early).
struct BusyGuard(Arc<Mutex<HashSet<(u64, String)>>>, (u64, String));

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

async fn put_file(
    p: Principal,
    State(s): State<DroneState>,
    Path((id, name)): Path<(u64, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = may_upload(&p) {
        return r;
    }
    let flight = match visible(&s, &p, id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if flight.status != Status::Uploading {
        return error(
            StatusCode::CONFLICT,
            format!("flight {id} is {:?}: uploads are closed", flight.status),
        );
    }
    let kind = match upload::kind_of(&name) {
        Ok(k) => k,
        Err(e) => return upload_error(e),
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = upload::check_content_type(kind, ct) {
        return upload_error(e);
    }
    let limits = s.cfg.limits();
    let existing = flight.files.iter().find(|f| f.name == name).cloned();
    if existing.as_ref().is_some_and(|f| f.complete) {
        return error(StatusCode::CONFLICT, format!("{name} is already complete"));
    }
    if existing.is_none() && flight.files.len() >= limits.max_files {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a flight holds at most {} files", limits.max_files),
        );
    }
    let key = (id, name.clone());
    if !s
        .busy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return error(
            StatusCode::CONFLICT,
            format!("{name} is being uploaded now"),
        );
    }
    let _guard = BusyGuard(s.busy.clone(), key);
    let dir = s.flights.dir(id);
    let part = upload::part_path(&dir, &name);
    // The flight's other files count against its byte limit: this file gets what is left.
    let others: u64 = flight
        .files
        .iter()
        .filter(|f| f.name != name)
        .map(|f| f.received)
        .sum();
    let flight_left = limits.max_flight_bytes.saturating_sub(others);
    let max = limits.max_bytes(kind).min(flight_left);
    let incoming = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if let Err(r) = disk_guard(&dir, incoming, limits.min_free_bytes) {
        return r;
    }
    let range = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => match v
            .to_str()
            .map_err(|_| ())
            .and_then(|v| upload::parse_content_range(v).map_err(|_| ()))
        {
            Ok(r) => Some(r),
            Err(()) => {
                return upload_error(UploadError::BadRange(
                    "Content-Range: expected bytes START-END/TOTAL".into(),
                ));
            }
        },
    };
    let received = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let declared_total = range.and_then(|r| r.total);
    if declared_total.is_some_and(|t| t > max)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|l| l > max)
    {
        return upload_error(UploadError::TooLarge(if max < limits.max_bytes(kind) {
            format!(
                "{name}: over the flight's byte limit ({} bytes for all its files, {flight_left} left)",
                limits.max_flight_bytes
            )
        } else {
            format!("{name}: over the {max} byte limit for this kind of file")
        }));
    }
    match range {
        Some(r) if r.start != received => {
            return upload_error(UploadError::Offset {
                start: r.start,
                received,
            });
        }
        Some(_) => {}
        // A plain PUT replaces whatever partial file was there.
        None => {
            if let Err(e) = tokio::fs::remove_file(&part).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return upload_error(e.into());
            }
        }
    }
    let expect = range.map(|r| r.end - r.start + 1);
    let written = upload::append(&part, body.into_data_stream(), max, expect).await;
    let received = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let mut state = FileState {
        name: name.clone(),
        kind,
        received,
        total: declared_total.or(existing.and_then(|e| e.total)),
        complete: false,
        sha256: None,
        expired_ms: None,
    };
    if let Err(e) = written {
        if matches!(e, UploadError::TooLarge(_) | UploadError::BadRange(_)) {
            let _ = tokio::fs::remove_file(&part).await;
            state.received = 0;
        }
        record(&s, id, state);
        return upload_error(e);
    }
    let done = match range {
        None => true,
        Some(r) => r.total.is_some_and(|t| received == t),
    };
    if !done {
        record(&s, id, state.clone());
        return (StatusCode::OK, Json(state)).into_response();
    }
    let final_path = dir.join(&name);
    let check = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || {
            upload::verify(&part, kind, &limits)?;
            Ok::<_, UploadError>(upload::sha256_file(&part)?)
        })
        .await
    };
    match check {
        Ok(Ok(sha)) => {
            if let Err(e) = tokio::fs::rename(&part, &final_path).await {
                return upload_error(e.into());
            }
            state.complete = true;
            state.total = Some(received);
            state.sha256 = Some(sha);
            record(&s, id, state.clone());
            (StatusCode::CREATED, Json(state)).into_response()
        }
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&part).await;
            state.received = 0;
            record(&s, id, state);
            tracing::warn!(flight = id, file = %name, error = %e, "upload rejected");
            upload_error(e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("check: {e}")),
    }
}

/// Records a file's state in the flight (a rejected empty file is dropped from the list).
fn record(s: &DroneState, id: u64, st: FileState) {
    s.flights.update(id, true, |f| {
        f.files.retain(|x| x.name != st.name);
        if st.received > 0 || st.complete {
            f.files.push(st);
        }
    });
}

async fn process(p: Principal, State(s): State<DroneState>, Path(id): Path<u64>) -> Response {
    if let Err(r) = may_upload(&p) {
        return r;
    }
    let f = match visible(&s, &p, id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if matches!(f.status, Status::Queued | Status::Processing) {
        return error(
            StatusCode::CONFLICT,
            format!("flight {id} is already {:?}", f.status),
        );
    }
    if !f.files.iter().any(|x| x.complete) {
        return error(
            StatusCode::CONFLICT,
            format!("flight {id} has no complete file"),
        );
    }
    s.flights.update(id, true, |f| {
        f.status = Status::Queued;
        f.progress = 0.0;
    });
    if s.queue.try_send(id).is_err() {
        s.flights.update(id, true, |f| f.status = Status::Uploading);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "processing queue is full; try later",
        );
    }
    match s.flights.get(id) {
        Some(f) => (StatusCode::ACCEPTED, Json(f)).into_response(),
        None => error(StatusCode::NOT_FOUND, "flight vanished"),
    }
}

async fn events(p: Principal, State(s): State<DroneState>, Path(id): Path<u64>) -> Response {
    if let Err(r) = may_read(&p) {
        return r;
    }
    let f = match visible(&s, &p, id) {
        Ok(f) => f,
        Err(r) => return r,
    };
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
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn create_task(
    p: Principal,
    State(s): State<DroneState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = p
        .require(
            matches!(p.role, Role::Supervisor | Role::Platform | Role::Admin),
            "register inspection tasks",
        )
        .map_err(auth_error)
    {
        return r;
    }
    let t: NewTask = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("task: {e}")),
    };
    match &t.site {
        Some(site) => {
            if let Err(e) = p.require_site(site) {
                return auth_error(e);
            }
        }
        None if p.role != Role::Admin && p.role != Role::Platform => {
            return error(StatusCode::BAD_REQUEST, "site: required for this token");
        }
        None => {}
    }
    let tasks = s.tasks.clone();
    let now = crate::clock::now_ms();
    match tokio::task::spawn_blocking(move || tasks.add(t, now)).await {
        Ok(Ok(task)) => (StatusCode::CREATED, Json(task)).into_response(),
        Ok(Err(crate::drone::tasks::TaskError::Invalid(m))) => error(StatusCode::BAD_REQUEST, m),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_tasks(p: Principal, State(s): State<DroneState>) -> Response {
    if let Err(r) = may_read(&p) {
        return r;
    }
    let rows: Vec<_> = s
        .tasks
        .list()
        .into_iter()
        .filter(|t| t.site.as_ref().is_none_or(|site| p.sees(site)))
        .collect();
    Json(rows).into_response()
}
