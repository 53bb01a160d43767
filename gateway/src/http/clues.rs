//! Clue routes of the HTTP API. Every route needs a bearer token ([`Principal`]); the role
//! decides what may be done (403) and the token's sites what may be seen: the site scope is
//! passed to the store, so other sites' rows are never read, and a clue of another site is 404,
//! exactly like a missing one.
//!
//! - `GET  /api/v1/clues?status=&level=&site=&kind=&limit=&offset=`: ranked list.
//! - `POST /api/v1/clues`: a `ClueEvent` (JSON) from the central platform (platform/admin).
//! - `GET  /api/v1/clues/stream`: SSE, event `clue`, data = change JSON, id = event id.
//! - `GET  /api/v1/clues/{id}`: detail with occurrences, evidence and subject history.
//! - `POST /api/v1/clues/{id}/actions`: `{"action": "claim"|"assign"|..., ...}`.
//! - `GET  /api/v1/clues/{id}/audit`: the clue's audit entries.
//! - `GET  /api/v1/clues/{id}/evidence/{sha256}?variant=original|masked`: an evidence file,
//!   verified against its hash. Roles without the personal-data right (`clues.privacy`) get a
//!   masked copy (plates, heads); an original is served only to roles with the right, and each
//!   time it is, the audit log records who. Purged evidence answers 410.
//! - `GET  /api/v1/stats`, `GET /api/v1/audit/verify`.
//! - `GET  /api/v1/decisions/stats`: the latest decision of each clue, by matter and band
//!   (see `clue::decision`).
//! - `GET  /api/v1/clues/export?from_ms=&to_ms=&format=csv|json` (clues created in range) and
//!   `GET /api/v1/audit/export?from_ms=&to_ms=&format=csv|json` (entries in range).

use super::error::{ApiError, ApiResult};
use crate::clue::auth::{AuthError, Principal};
use crate::clue::lifecycle::{Action, Status};
use crate::clue::masked_cache::MaskedCache;
use crate::clue::model::{ClueQuery, parse_level};
use crate::clue::pool::PoolHandle;
use crate::clue::signal::ClueEvent;
use crate::metrics::Reason;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

pub use crate::clue::explanations::Explanations;

/// The explanations as router state (absent: the detail has none).
#[derive(Clone, Default)]
pub struct ClueExplanations(pub Option<std::sync::Arc<dyn Explanations>>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    status: Option<String>,
    level: Option<String>,
    site: Option<String>,
    kind: Option<String>,
    /// Only clues in this unit's scope (its sites and those of the units below it).
    unit: Option<String>,
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    offset: u32,
}

/// `value` as JSON for `p`: plates masked everywhere (titles, keys, details, audit entries)
/// unless the role has the personal-data right (`clues.privacy.original_roles`).
pub(super) fn for_role<T: serde::Serialize>(
    p: &Principal,
    pool: &PoolHandle,
    value: &T,
    known_plates: &[String],
) -> ApiResult<Json<serde_json::Value>> {
    let mut v = serde_json::to_value(value).map_err(|_| ApiError::Internal)?;
    if !pool.config().privacy.sees_originals(p.role) {
        crate::clue::privacy::mask_personal_data(&mut v, known_plates);
    }
    Ok(Json(v))
}

fn plate_of(c: &crate::clue::model::Clue) -> Vec<String> {
    c.subject.plate.iter().cloned().collect()
}

pub(super) fn can_read(p: &Principal) -> ApiResult<()> {
    Ok(p.require(p.role.may_read_clues(), "read clues")?)
}

pub(super) async fn list(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<ListParams>,
) -> ApiResult<impl IntoResponse> {
    can_read(&p)?;
    if let Some(site) = &q.site {
        p.require_site(site)?;
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            Status::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown status {s}")))?,
        ),
    };
    let level = match q.level.as_deref() {
        None => None,
        Some(l) => {
            Some(parse_level(l).ok_or_else(|| ApiError::BadRequest(format!("unknown level {l}")))?)
        }
    };
    let scope = match q.unit.as_deref() {
        None => p.scope(),
        Some(u) => Some(unit_filter(&p, &pool, u)?),
    };
    let clues = pool
        .list(ClueQuery {
            status,
            level,
            site: q.site,
            kind: q.kind,
            scope,
            department: p.department.clone(),
            from_ms: None,
            to_ms: None,
            limit: q.limit.min(1000),
            offset: q.offset,
        })
        .await?;
    for_role(&p, &pool, &clues, &[])
}

/// The sites of unit `unit`'s scope the caller sees (`?unit=` of the list). A unit that is not
/// configured is a bad request; one outside the caller's scope simply holds nothing it sees.
fn unit_filter(p: &Principal, pool: &PoolHandle, unit: &str) -> ApiResult<Vec<String>> {
    let org = pool.org();
    if org.unit(unit).is_none() {
        return Err(ApiError::BadRequest(format!("no unit {unit} in [org]")));
    }
    Ok(org
        .scope_sites(unit)
        .into_iter()
        .filter(|s| p.sees(s))
        .collect())
}

pub(super) async fn create(
    p: Principal,
    State(pool): State<PoolHandle>,
    Json(ev): Json<ClueEvent>,
) -> ApiResult<impl IntoResponse> {
    p.require(p.role.may_create_clues(), "create clues")?;
    p.require_site(&ev.subject.site)?;
    let change = pool.ingest(ev).await?;
    let status = if change.event == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if !p.sees_clue(&change.clue) {
        // Taken, but the clue is not the caller's to read (dispatched to another department):
        // its id only, as the list and detail would not show it either.
        return Ok((
            status,
            Json(serde_json::json!({"event": change.event, "clue": {"id": change.clue.id}})),
        ));
    }
    Ok((status, for_role(&p, &pool, &change, &[])?))
}

/// Loads a clue the caller may see. A clue of another site (or unit, or of a department the
/// caller's is neither lead nor assisting of) answers exactly like a missing one (404, same
/// body): the answer must not tell whether another site has clue `id`.
async fn visible(
    p: &Principal,
    pool: &PoolHandle,
    id: i64,
) -> ApiResult<crate::clue::model::ClueDetail> {
    can_read(p)?;
    let not_found = || ApiError::NotFound(format!("clue {id} not found"));
    let d = pool.get(id).await?.ok_or_else(not_found)?;
    if !p.sees_clue(&d.clue) {
        return Err(not_found());
    }
    Ok(d)
}

/// The clue with its history, occurrences, evidence and links, plus the records that explain
/// it ([`Explanations`]: the pump-outs of its trap), masked like everything else.
pub(super) async fn detail(
    p: Principal,
    State(pool): State<PoolHandle>,
    State(explanations): State<ClueExplanations>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let d = visible(&p, &pool, id).await?;
    let mut v = serde_json::to_value(&d).map_err(|_| ApiError::Internal)?;
    if let (Some(ex), Some(fields)) = (&explanations.0, v.as_object_mut()) {
        fields.extend(ex.explaining(&d.clue));
    }
    if let (Some(unit), Some(fields)) = (
        pool.org().unit_of_site(&d.clue.subject.site),
        v.as_object_mut(),
    ) {
        // The unit that handles the clue's site, with the units above it (lowest first).
        let org = pool.org();
        let chain: Vec<_> = org
            .chain(&unit.id)
            .map(|u| serde_json::json!({"id": u.id, "name": u.name, "level": u.level}))
            .collect();
        fields.insert("unit".into(), chain[0].clone());
        fields.insert("unit_chain".into(), serde_json::json!(chain));
    }
    for_role(&p, &pool, &v, &plate_of(&d.clue))
}

pub(super) async fn act(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let d = visible(&p, &pool, id).await?;
    let action: Action = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad action: {e}")))?;
    p.require(p.role.may_act(&action), action.name())?;
    if p.blocked_by_assignee(&action, d.clue.assignee.as_deref()) {
        return Err(AuthError::Forbidden("the clue is assigned to someone else".into()).into());
    }
    let change = pool.act(id, action, p.actor()).await?;
    tracing::info!(clue = id, action = %change.event, actor = %change.actor, "clue action");
    for_role(&p, &pool, &change, &plate_of(&d.clue))
}

pub(super) async fn audit(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let d = visible(&p, &pool, id).await?;
    for_role(&p, &pool, &pool.audit_of(id).await?, &plate_of(&d.clue))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvidenceParams {
    #[serde(default)]
    variant: Option<String>,
}

pub(super) async fn evidence(
    p: Principal,
    State(pool): State<PoolHandle>,
    Path((id, sha256)): Path<(i64, String)>,
    Query(q): Query<EvidenceParams>,
) -> ApiResult<Response> {
    let d = visible(&p, &pool, id).await?;
    let Some(item) = d.evidence.iter().find(|e| e.sha256 == sha256) else {
        return Err(ApiError::NotFound(format!(
            "clue {id} has no evidence {sha256}"
        )));
    };
    if let Some(at) = item.purged_ms {
        return Err(ApiError::Gone {
            message: format!("evidence {sha256} was purged at {at} ms (retention)"),
            purged_ms: at,
        });
    }
    if let Some(body) = &item.body {
        return Ok(Json(body.clone()).into_response());
    }
    let privacy = &pool.config().privacy;
    let privileged = privacy.sees_originals(p.role);
    let original = match q.variant.as_deref() {
        None => privileged,
        Some("masked") => false,
        Some("original") => {
            p.require(privileged, "see personal data in evidence originals")?;
            true
        }
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "unknown variant {v} (original, masked)"
            )));
        }
    };
    let ct = item
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    if original {
        // Recorded before the bytes leave: no audit entry, no original.
        pool.record_original_access(id, sha256.clone(), p.actor(), p.role.as_str())
            .await?;
        let bytes = pool.evidence_file(sha256.clone()).await?;
        return Ok((
            [
                (header::CONTENT_TYPE, ct),
                (header::ETAG, format!("\"{sha256}\"")),
                (
                    header::HeaderName::from_static("x-evidence-variant"),
                    "original".to_string(),
                ),
            ],
            bytes,
        )
            .into_response());
    }
    let key = MaskedCache::key(&sha256, &ct, item.regions.as_deref(), privacy);
    let masked = pool
        .masked_copies()
        .get_or_make(key, || async {
            let bytes = pool.evidence_file(sha256.clone()).await?;
            let regions = item.regions.clone();
            let cfg = privacy.clone();
            tokio::task::spawn_blocking(move || {
                crate::clue::privacy::masked_copy(&bytes, &ct, regions.as_deref(), &cfg)
            })
            .await
            .map_err(|_| ApiError::Internal)?
            .map(Bytes::from)
            .map_err(|e| ApiError::from(AuthError::Forbidden(e.to_string())))
        })
        .await
        .map(|(jpeg, served)| {
            pool.metrics()
                .masked_copies_total
                .get_or_create(&Reason::of(served.reason()))
                .inc();
            jpeg
        });
    match masked {
        Ok(jpeg) => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (
                    header::HeaderName::from_static("x-evidence-variant"),
                    "masked".to_string(),
                ),
                (
                    header::HeaderName::from_static("x-original-sha256"),
                    sha256.clone(),
                ),
            ],
            jpeg,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

pub(super) async fn stats(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> ApiResult<impl IntoResponse> {
    can_read(&p)?;
    Ok(Json(pool.stats(p.scope()).await?))
}

/// The latest decision of each clue in the token's sites, by matter and band.
pub(super) async fn decision_stats(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> ApiResult<impl IntoResponse> {
    can_read(&p)?;
    let only = department_clues(&p, &pool).await?;
    let mut v = serde_json::to_value(pool.decision_stats(p.scope(), only).await?)
        .map_err(|_| ApiError::Internal)?;
    v["catalogue_version"] = serde_json::json!(pool.config().matters.version);
    Ok(Json(v))
}

/// `?head_seq=&head_hash=`: the last head the platform received (both or neither).
#[derive(Debug, Deserialize)]
pub(super) struct VerifyQuery {
    head_seq: Option<i64>,
    head_hash: Option<String>,
}

pub(super) async fn verify(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<VerifyQuery>,
) -> ApiResult<Response> {
    p.require(p.role.may_verify_audit(), "verify the audit log")?;
    let head = match (q.head_seq, q.head_hash) {
        (Some(seq), Some(hash)) => Some(crate::clue::audit::Head { seq, hash }),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give both head_seq and head_hash, or neither".into(),
            ));
        }
    };
    let report = pool.verify(head).await?;
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, Json(report)).into_response())
}

/// SSE of clue changes the token may see. Ends when the gateway shuts down.
pub(super) async fn stream(
    p: Principal,
    State(pool): State<PoolHandle>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    can_read(&p)?;
    let masked = !pool.config().privacy.sees_originals(p.role);
    let rx = pool.subscribe();
    let closing = pool.closing();
    let s =
        futures_util::stream::unfold((rx, p, closing), move |(mut rx, p, closing)| async move {
            loop {
                let got = tokio::select! {
                    _ = closing.cancelled() => return None,
                    r = rx.recv() => r,
                };
                match got {
                    Ok(change) if p.sees_clue(&change.clue) => {
                        let mut data = serde_json::to_value(&change).unwrap_or_default();
                        if masked {
                            crate::clue::privacy::mask_personal_data(&mut data, &[]);
                        }
                        let ev = Event::default()
                            .event("clue")
                            .id(change.event_id.to_string())
                            .json_data(&data)
                            .unwrap_or_else(|_| Event::default().event("error"));
                        return Some((Ok(ev), (rx, p, closing)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        let ev = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), (rx, p, closing)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportParams {
    #[serde(default)]
    from_ms: i64,
    to_ms: Option<i64>,
    #[serde(default)]
    format: Option<String>,
    /// At most this many rows (default and ceiling [`EXPORT_MAX_ROWS`]).
    #[serde(default)]
    limit: Option<usize>,
}

/// Rows in one export; a longer range is exported in several calls (`x-export-next-from-ms`).
const EXPORT_MAX_ROWS: usize = 100_000;

/// An export that stopped at its row limit says so in headers (the body keeps its shape):
/// `x-export-truncated: true`, and for the audit (in chain order) `x-export-next-from-ms`,
/// the `from_ms` of the next call.
fn export_limited(mut r: Response, truncated: bool, next_from_ms: Option<i64>) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::HeaderName::from_static("x-export-truncated"),
        header::HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    if let Some(next) = next_from_ms {
        h.insert(
            header::HeaderName::from_static("x-export-next-from-ms"),
            header::HeaderValue::from(next),
        );
    }
    r
}

enum Format {
    Csv,
    Json,
}

impl ExportParams {
    fn format(&self) -> ApiResult<Format> {
        match self.format.as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(f) => Err(ApiError::BadRequest(format!(
                "unknown format {f} (csv, json)"
            ))),
        }
    }

    fn limit(&self) -> usize {
        self.limit
            .unwrap_or(EXPORT_MAX_ROWS)
            .clamp(1, EXPORT_MAX_ROWS)
    }
}

/// One CSV field, quoted when needed (RFC 4180). A field that a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or carriage return: titles, comments and
/// plates come from outside) gets a leading `'`, so it is shown as text (OWASP CSV injection).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

fn csv_response(header: &[&str], rows: Vec<Vec<String>>, name: &str) -> Response {
    let mut out = header.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        out,
    )
        .into_response()
}

/// The clue's title rendered in `lang` (see `clue::text`), or its own title.
fn rendered(c: &crate::clue::model::Clue, lang: &str) -> String {
    c.detail["text"][lang]["title"]
        .as_str()
        .map_or_else(|| c.title.clone(), str::to_string)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

pub(super) async fn export_clues(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    can_read(&p)?;
    let format = q.format()?;
    let limit = q.limit();
    let mut clues = pool
        .list(ClueQuery {
            scope: p.scope(),
            department: p.department.clone(),
            from_ms: Some(q.from_ms),
            to_ms: q.to_ms,
            limit: (limit + 1) as u32,
            ..Default::default()
        })
        .await?;
    // One row more than asked tells whether the range holds more. The list is ranked, not in
    // time order, so there is no "next from" here: the caller narrows the range.
    let truncated = clues.len() > limit;
    clues.truncate(limit);
    // Exports follow the evidence rule: plates only for roles with the personal-data right.
    if !pool.config().privacy.sees_originals(p.role) {
        let mut v = serde_json::to_value(&clues).map_err(|_| ApiError::Internal)?;
        crate::clue::privacy::mask_personal_data(&mut v, &[]);
        clues = serde_json::from_value(v).map_err(|_| ApiError::Internal)?;
    }
    if let Format::Json = format {
        return Ok(export_limited(Json(clues).into_response(), truncated, None));
    }
    let rows = clues
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.rule.clone(),
                c.kind.clone(),
                c.level.as_str().into(),
                c.status.as_str().into(),
                c.subject.site.clone(),
                opt(&c.subject.device),
                opt(&c.subject.plate),
                c.title.clone(),
                opt(&c.department),
                opt(&c.assignee),
                opt(&c.resolution),
                c.occurrences.to_string(),
                c.first_seen_ms.to_string(),
                c.last_seen_ms.to_string(),
                c.created_ms.to_string(),
                c.deadline_ms.to_string(),
                c.escalation.as_str().into(),
                opt(&c.claimed_ms),
                opt(&c.resolved_ms),
                opt(&c.closed_ms),
                rendered(c, "zh"),
                rendered(c, "en"),
            ]
        })
        .collect();
    let csv = csv_response(
        &[
            "id",
            "rule",
            "kind",
            "level",
            "status",
            "site",
            "device",
            "plate",
            "title",
            "department",
            "assignee",
            "resolution",
            "occurrences",
            "first_seen_ms",
            "last_seen_ms",
            "created_ms",
            "deadline_ms",
            "escalation",
            "claimed_ms",
            "resolved_ms",
            "closed_ms",
            "title_zh",
            "title_en",
        ],
        rows,
        "clues",
    );
    Ok(export_limited(csv, truncated, None))
}

/// For a department token, the ids of the clues it sees (its department leads or assists):
/// what its audit export and decision statistics are narrowed to. `None` for other tokens
/// (their site scope is applied by the store).
async fn department_clues(
    p: &Principal,
    pool: &PoolHandle,
) -> ApiResult<Option<std::collections::HashSet<i64>>> {
    if p.department.is_none() {
        return Ok(None);
    }
    let clues = pool
        .list(ClueQuery {
            scope: p.scope(),
            department: p.department.clone(),
            limit: 100_000,
            ..Default::default()
        })
        .await?;
    Ok(Some(clues.into_iter().map(|c| c.id).collect()))
}

pub(super) async fn export_audit(
    p: Principal,
    State(pool): State<PoolHandle>,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    p.require(p.role.may_verify_audit(), "export the audit log")?;
    let format = q.format()?;
    let limit = q.limit();
    let mut entries = pool
        .audit_range(q.from_ms, q.to_ms.unwrap_or(i64::MAX), p.scope())
        .await?;
    if let Some(only) = department_clues(&p, &pool).await? {
        entries.retain(|e| e.clue_id.is_some_and(|c| only.contains(&c)));
    }
    if !pool.config().privacy.sees_originals(p.role) {
        let mut v = serde_json::to_value(&entries).map_err(|_| ApiError::Internal)?;
        crate::clue::privacy::mask_personal_data(&mut v, &[]);
        entries = serde_json::from_value(v).map_err(|_| ApiError::Internal)?;
    }
    // Entries are in chain order; the next call starts after the last millisecond returned
    // (entries of that millisecond beyond the limit are kept whole for the next call).
    let next_from_ms = (entries.len() > limit).then(|| {
        let last_ms = entries[limit - 1].at_ms;
        let whole = entries[..limit]
            .iter()
            .rposition(|e| e.at_ms < last_ms)
            .map(|i| i + 1)
            .unwrap_or(limit);
        entries.truncate(whole);
        entries.last().map(|e| e.at_ms + 1).unwrap_or(last_ms)
    });
    if let Format::Json = format {
        return Ok(export_limited(
            Json(entries).into_response(),
            next_from_ms.is_some(),
            next_from_ms,
        ));
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                e.at_ms.to_string(),
                e.actor.clone(),
                e.action.clone(),
                opt(&e.clue_id),
                crate::clue::audit::canonical_json(&e.detail),
                e.prev_hash.clone(),
                e.hash.clone(),
            ]
        })
        .collect();
    let csv = csv_response(
        &[
            "seq",
            "at_ms",
            "actor",
            "action",
            "clue_id",
            "detail",
            "prev_hash",
            "hash",
        ],
        rows,
        "audit",
    );
    Ok(export_limited(csv, next_from_ms.is_some(), next_from_ms))
}
