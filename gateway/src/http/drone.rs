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
use crate::drone::tasks::NewTask;
use crate::drone::upload::{self, UploadError};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;

fn may_upload(p: &Principal) -> ApiResult<()> {
    Ok(p.require(
        matches!(p.role, Role::DroneOperator | Role::Admin),
        "upload drone footage",
    )?)
}

fn may_read(p: &Principal) -> ApiResult<()> {
    Ok(p.require(p.role != Role::Device, "read flights and tasks")?)
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

/// Refuses an upload of `incoming` bytes (507 Insufficient Storage) when it would leave less
/// than `min_free` bytes on the file system of `dir`: footage must not fill the disk that
/// holds the evidence, the outbox and the audit chain. Each refusal is logged.
fn disk_guard(dir: &std::path::Path, incoming: u64, min_free: u64) -> ApiResult<()> {
    crate::disk::check_floor(dir, incoming, min_free, "drone.min_free_mb")
        .map_err(|e| ApiError::InsufficientStorage(e.to_string()))
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

pub(super) async fn put_file(
    p: Principal,
    State(s): State<DroneState>,
    Path((id, name)): Path<(u64, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    may_upload(&p)?;
    let flight = visible(&s, &p, id)?;
    if flight.status != Status::Uploading {
        return Err(ApiError::Conflict(format!(
            "flight {id} is {:?}: uploads are closed",
            flight.status
        )));
    }
    let kind = upload::kind_of(&name)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    upload::check_content_type(kind, ct)?;
    let limits = s.cfg.limits();
    let existing = flight.files.iter().find(|f| f.name == name).cloned();
    if existing.as_ref().is_some_and(|f| f.complete) {
        return Err(ApiError::Conflict(format!("{name} is already complete")));
    }
    if existing.is_none() && flight.files.len() >= limits.max_files {
        return Err(ApiError::PayloadTooLarge(format!(
            "a flight holds at most {} files",
            limits.max_files
        )));
    }
    let key = (id, name.clone());
    if !s
        .busy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return Err(ApiError::Conflict(format!("{name} is being uploaded now")));
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
    disk_guard(&dir, incoming, limits.min_free_bytes)?;
    let range = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => match v
            .to_str()
            .map_err(|_| ())
            .and_then(|v| upload::parse_content_range(v).map_err(|_| ()))
        {
            Ok(r) => Some(r),
            Err(()) => {
                return Err(UploadError::BadRange(
                    "Content-Range: expected bytes START-END/TOTAL".into(),
                )
                .into());
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
        return Err(UploadError::TooLarge(if max < limits.max_bytes(kind) {
            format!(
                "{name}: over the flight's byte limit ({} bytes for all its files, {flight_left} left)",
                limits.max_flight_bytes
            )
        } else {
            format!("{name}: over the {max} byte limit for this kind of file")
        })
        .into());
    }
    match range {
        Some(r) if r.start != received => {
            return Err(UploadError::Offset {
                start: r.start,
                received,
            }
            .into());
        }
        Some(_) => {}
        // A plain PUT replaces whatever partial file was there.
        None => {
            if let Err(e) = tokio::fs::remove_file(&part).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(UploadError::from(e).into());
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
        return Err(e.into());
    }
    let done = match range {
        None => true,
        Some(r) => r.total.is_some_and(|t| received == t),
    };
    if !done {
        record(&s, id, state.clone());
        return Ok((StatusCode::OK, Json(state)).into_response());
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
                return Err(UploadError::from(e).into());
            }
            state.complete = true;
            state.total = Some(received);
            state.sha256 = Some(sha);
            record(&s, id, state.clone());
            Ok((StatusCode::CREATED, Json(state)).into_response())
        }
        Ok(Err(e)) => {
            let _ = tokio::fs::remove_file(&part).await;
            state.received = 0;
            record(&s, id, state);
            tracing::warn!(flight = id, file = %name, error = %e, "upload rejected");
            Err(e.into())
        }
        Err(e) => Err(ApiError::Failed(format!("check: {e}"))),
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
