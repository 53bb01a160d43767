//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//! Hand-written (no code generation dependency); `openapi_lists_every_clue_route` and the e2e test
//! `http_routes` (every routed path documented, every documented one routed) keep it honest.

use serde_json::{Value, json};

pub(crate) fn op(summary: &str, params: &[(&str, &str)], body: bool) -> Value {
    let mut o = json!({
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK"},
            "401": {"description": "missing or invalid token"},
            "403": {"description": "outside the token's role or sites"}
        }
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(
            params
                .iter()
                .map(|(name, place)| {
                    json!({"name": name, "in": place, "required": *place == "path",
                           "schema": {"type": "string"}})
                })
                .collect(),
        );
    }
    if body {
        o["requestBody"] = json!({"required": true,
            "content": {"application/json": {"schema": {"type": "object"}}}});
    }
    o
}

pub fn document() -> Value {
    let list = [
        ("status", "query"),
        ("level", "query"),
        ("site", "query"),
        ("kind", "query"),
        ("unit", "query"),
        ("limit", "query"),
        ("offset", "query"),
    ];
    let range = [
        ("from_ms", "query"),
        ("to_ms", "query"),
        ("format", "query"),
    ];
    let id = [("id", "path")];
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "Enforcement sensor gateway", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/healthz": {"get": {"summary": "Liveness and status (no token)",
                                 "responses": {"200": {"description": "OK"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (no token)",
                                 "responses": {"200": {"description": "OK"}}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document (no token)",
                                 "responses": {"200": {"description": "OK"}}}},
            "/api/v1/devices": {"get": op("Live device table of the token's sites",
                                          &[("site", "query"), ("online", "query")], false)},
            "/api/v1/org/units": {"get": op("Units of [org] the token sees {id, name, level, parent, departments, sites of its scope the token sees}: a unit token its unit and those below it", &[], false)},
            "/api/v1/clues": {
                "get": op("Ranked clue list (filters; ?unit= the clues of a unit's scope, 400 for a unit not configured); a unit token sees its unit's scope, a department token the clues its department leads or assists", &list, false),
                "post": op("Raise a clue from a ClueEvent (platform, admin)", &[], true)
            },
            "/api/v1/clues/stream": {"get": op("SSE of clue changes of the token's sites", &[], false)},
            "/api/v1/clues/export": {"get": op("Clues created in a range, CSV or JSON", &range, false)},
            "/api/v1/clues/{id}": {"get": op("Clue detail (department: the lead, assisting: the assisting departments, unit and unit_chain: the unit handling its site and those above it), evidence, subject history, duplicate-act links, owner notification and answers, leniency recommendation with its rule, matter (catalogue version, provisions, facts, applicable band, every band and leniency entry with reasons)", &id, false)},
            "/api/v1/clues/{id}/actions": {"post": op(
                "claim | assign{to} | transfer{department,reason} | resolve{note} | dismiss{reason} | close | reopen{reason} | comment{text} | notify_owner{channel,note} (a person told the owner) | send_owner_notice{channel, template?} (queue a notice on a configured [[clues.owner_notify.channels]] channel; the registry's owner_phone/owner_address is the contact; 400 for an unknown channel or template or no contact; delivered with retries, recorded as owner_notice_delivered / owner_notice_failed; the answer window starts at delivery) | owner_response{statement,channel} | dispatch{lead?, assisting?: [departments], reason} (supervisor, platform, admin: who leads and assists; departments of the clue's unit or above when [org] has units) | decide{band, penalty (whole currency units, 0 for none), leniency_applied: [entry ids], basis} (on a claimed, assigned or resolved clue whose kind has a matter; 400 for a band or entry the matter lacks; recorded with the catalogue check, a penalty outside the band raises the oversight warning decision_outside_band)",
                &id, true)},
            "/api/v1/clues/{id}/audit": {"get": op("The clue's audit entries", &id, false)},
            "/api/v1/clues/{id}/evidence/{sha256}": {"get": op(
                "Evidence file, verified against its SHA-256; roles without the personal-data right (clues.privacy.original_roles) get a masked JPEG (X-Evidence-Variant: masked), originals are audited; 410 once purged",
                &[("id", "path"), ("sha256", "path"), ("variant", "query")], false)},
            "/api/v1/oversight/warnings": {"get": op(
                "Supervision warnings (yellow/red) of the token's sites, supervisor and admin only; never those about the caller",
                &[("limit", "query")], false)},
            "/api/v1/oversight/run": {"post": op("Run the supervision models now (supervisor, admin)", &[], false)},
            "/api/v1/oversight/warnings/{id}/notice": {"post": op(
                "Make a warning a supervision notice {unit (with [[org.units]]: a configured unit, stored as unit or unit/department by id, e.g. xihu/urban-management, county:xihu/urban-management accepted, 400 otherwise; free text without units), deadline_ms | due_days (default clues.oversight.notices.default_due_days), note} -> 201 notice (supervisor, admin; 409 while the warning has an open notice; audited as notice_issued)",
                &id, true)},
            "/api/v1/oversight/notices": {"get": op(
                "Supervision notices of the token's sites (officers: of their own sites; supervisors, admins, auditors also the site-less ones), never those about the caller; ?state=open (default) | all | issued | acknowledged | fixed | closed; red first, then yellow, then the nearest deadline",
                &[("state", "query"), ("limit", "query")], false)},
            "/api/v1/oversight/notices/{id}": {"get": op(
                "A supervision notice {unit, escalated_to, state, level (none | yellow past the deadline | red at twice its span), deadline_ms, statement, ...} with its history (audit entries)",
                &id, false)},
            "/api/v1/oversight/notices/{id}/actions": {"post": op(
                "acknowledge{note?} | report_fixed{statement} (inspector, platform, admin: the unit) | close{note, required unless fixed} | reopen{note, deadline_ms | due_days?} (from fixed, back to issued) | escalate{to, note?, deadline_ms | due_days?} (supervisor, admin); 409 for a step the notice's state refuses; each step audited (notice_*) and published on oversight/v1/{site|all}/notice/{level}",
                &id, true)},
            "/api/v1/evidence/purge": {"post": op("Run the evidence retention purge now (admin)", &[], false)},
            "/api/v1/decisions/stats": {"get": op("Latest decision of each clue in the token's sites by matter and band: decisions, outside_band, band_differs_from_facts, no_penalty, penalty min/median/max, leniency entries applied; catalogue_version in force", &[], false)},
            "/api/v1/stats": {"get": op("Counts, disposal rate, median times, overdue, parking persuasion", &[], false)},
            "/api/v1/parking/stays": {"get": op("Warned parking stays and their outcome",
                &[("site", "query"), ("camera", "query"), ("outcome", "query"), ("from_ms", "query"), ("to_ms", "query"), ("limit", "query")], false)},
            "/api/v1/audit/verify": {"get": op("Verify the audit chain (409 when broken)", &[], false)},
            "/api/v1/audit/export": {"get": op("Audit entries in a range, CSV or JSON", &range, false)},
            "/api/v1/cameras/{id}/frames": {"post": op(
                "One camera frame (image/jpeg): health checks, plus parking enforcement (`parking` in the answer) for cameras under [[parking.cameras]], shop-front trading (`shopfront`) under [[shopfront.cameras]] and muck-truck permits (`muck_trucks`) under [[muck_trucks.cameras]]; ?site= required (device, platform, admin; a device token bound to another camera: 403); 429 with Retry-After over the camera's upload rate; 507 below storage.min_free_mb",
                &[("id", "path"), ("site", "query")], true)},
            "/api/v1/cameras/{id}/reference": {"post": op(
                "Enrol the view a camera should keep (image/jpeg); ?site= required; same refusals as frames (403 bound to another camera, 429, 507)",
                &[("id", "path"), ("site", "query")], true)},
            "/api/v1/pumpouts": {
                "get": op("Registered grease-trap pump-outs of the token's sites", &[("site", "query")], false),
                "post": op(
                    "Register a pump-out {site, device, from_ms, to_ms, note?} so its level drop raises no clue (inspector, supervisor, platform, admin; audited; the visit must be over and at most 7 days old)",
                    &[], true)
            },
            "/api/v1/flights": {
                "get": op("Flights of the token's sites (summaries)", &[], false),
                "post": op("Create a flight {site?, name?} -> 202 {id, status: uploading, ...} (drone_operator, admin)", &[], true)
            },
            "/api/v1/flights/{id}": {"get": op(
                "Flight: status uploading|queued|processing|done|failed, progress 0..1, frames_total, frames_done, files, findings [{id, task_id, class, confidence, lat, lon, error_m, time_ms, frame, clue_id, bbox}], changes (candidates), errors",
                &id, false)},
            "/api/v1/flights/{id}/events": {"get": op(
                "SSE `progress` events {id, status, progress, frames_total, frames_done, findings, errors}; ends after done or failed",
                &id, false)},
            "/api/v1/flights/{id}/process": {"post": op(
                "Queue the flight's complete files for processing -> 202", &id, false)},
            "/api/v1/flights/{id}/files/{name}": {
                "get": op("Upload state of a file {name, kind, received, total, complete, sha256} (offset to resume from)",
                          &[("id", "path"), ("name", "path")], false),
                "put": op("Raw file body (image/jpeg .jpg, video/mp4|video/quicktime .mp4/.mov, application/x-subrip|text/plain .srt); optional Content-Range: bytes START-END/TOTAL for resumable chunks (409 {received} when START is not the stored length); 201 when complete, 413 too large, 415 wrong type, 422 rejected content",
                          &[("id", "path"), ("name", "path"), ("Content-Range", "header")], false)
            },
            "/api/v1/registry/devices": {"get": op(
                "Registered devices (installation, location, shop, owner; admin)", &[], false)},
            "/api/v1/registry/devices/{site}/{device}": {
                "get": op("One registered device (admin)", &[("site", "path"), ("device", "path")], false),
                "put": op("Register or replace a device {installation, location?, shop?, owner?} (admin; audited as registry_put, applied without a restart)", &[("site", "path"), ("device", "path")], true),
                "delete": op("Remove a device from the registry (admin; audited as registry_delete)", &[("site", "path"), ("device", "path")], false)
            },
            "/api/v1/tasks": {
                "get": op("Inspection tasks visible to the token", &[], false),
                "post": op("Register a task {name, department, area: GeoJSON Polygon|MultiPolygon, targets: [COCO class names | vehicle], contact, site?} (supervisor, platform, admin)", &[], true)
            }
        }
    });
    add_dashboard_paths(&mut doc["paths"]);
    add_permit_paths(&mut doc["paths"]);
    add_owner_notice_paths(&mut doc["paths"]);
    add_maintenance_paths(&mut doc["paths"]);
    doc
}

/// Maintenance works (`http::maintenance`); apart for the macro's recursion limit.
fn add_maintenance_paths(paths: &mut Value) {
    paths["/api/v1/maintenance"] = json!({
        "get": op("Registered maintenance works of the token's sites", &[("site", "query")], false),
        "post": op(
            "Register works {site, device, from_ms, to_ms, permit?, note?} so rules with unless_maintenance (an opened manhole cover) raise nothing meanwhile, and dismiss the open clues of those rules on that device first seen inside the window (answer: the record and dismissed_clues) (inspector, supervisor, platform, admin; audited; at most 7 days, starting at most 30 days ahead, not ended more than 7 days ago)",
            &[], true)
    });
}

/// Notices to owners (`http::owner_notices`); apart for the macro's recursion limit.
fn add_owner_notice_paths(paths: &mut Value) {
    let id = [("id", "path")];
    paths["/api/v1/owner-notify/channels"] = json!({"get": op(
        "The configured owner-notice channels [{name, kind (webhook), contact (phone | address: the registry contact it needs), templates (empty: any)}], for the send_owner_notice form; never a channel's URL or token (readers of clues)",
        &[], false)});
    paths["/api/v1/owner-notices/{id}"] = json!({"get": op(
        "A notice to the owner {clue_id, channel, template, contact (masked), state queued|delivered|failed, attempts, last_error, queued_ms, delivered_ms, provider_id, failed_ms, receipt_status, receipt_ms, idempotency_key} (readers of its clue)",
        &id, false)});
    paths["/api/v1/owner-notices/{id}/receipt"] = json!({"post": op(
        "The provider's receipt {status (delivered | read | undeliverable | ...: a lower-case word), at_ms?, note?} (a notifier token of the notice's channel and site, which answers {id, channel, receipt_status, receipt_ms} only and may use no other route; platform, admin of the notice's site, answered the notice; 403 for other roles and other channels, 404 outside the token's sites); audited on the clue as owner_notice_receipt",
        &id, true)});
}

/// The routes the dashboard reads beyond the clues (whoami, device readings and events, camera
/// states and frames); apart, as one `json!` of every path is past the macro's recursion limit.
fn add_dashboard_paths(paths: &mut Value) {
    let dev = [("site", "path"), ("device", "path")];
    let entries = [
        (
            "/api/v1/whoami",
            op("The token's role, sites and audit name", &[], false),
        ),
        (
            "/api/v1/devices/{site}/{device}/readings",
            op(
                "Recent numeric readings per metric (in-memory ring): {series: {metric: {stream, unit, points: [[ms, value]]}}}",
                &[dev[0], dev[1], ("metric", "query"), ("since_ms", "query")],
                false,
            ),
        ),
        (
            "/api/v1/devices/{site}/{device}/events",
            op(
                "Recent device events (alarms, level drops = pump-outs or discharges)",
                &[dev[0], dev[1], ("since_ms", "query")],
                false,
            ),
        ),
        (
            "/api/v1/cameras",
            op(
                "Every camera's health state of the token's sites; `source` (kind, URL without credentials, state, last frame, frames, errors, last error, reconnects) for cameras the gateway pulls ([[cameras.sources]])",
                &[],
                false,
            ),
        ),
        (
            "/api/v1/cameras/{id}/latest.jpg",
            op(
                "The camera's last frame (roles that read clues); ?site= required",
                &[("id", "path"), ("site", "query")],
                false,
            ),
        ),
    ];
    for (path, get) in entries {
        paths[path] = json!({ "get": get });
    }
}

/// The muck-truck permit routes (`http::permits`); apart, as one `json!` of every path
/// is past the macro's recursion limit.
fn add_permit_paths(paths: &mut Value) {
    let plate = [("plate", "path")];
    paths["/api/v1/muck-trucks/permits"] = json!({
        "get": op("Muck-truck permits: configured ([[muck_trucks.permits]], source config) and stored (source api, updated_ms, updated_by); in_force false for a stored permit whose plate the configuration also lists (the configuration wins). Inspector, supervisor, platform, admin, auditor seeing a muck camera's site", &[], false),
        "post": op("Add a permit {plate, hours?, cameras?, holder?} (admin, or platform seeing every muck camera's site; audited muck_permit_put; checked as the configuration's, 400 naming the field; 409 when the plate has a permit or is configured)", &[], true)
    });
    paths["/api/v1/muck-trucks/permits/{plate}"] = json!({
        "get": op("One permit (the one in force)", &plate, false),
        "put": op("Add or replace the stored permit of the plate (201 new, 200 replaced; audited; 409 for a configured plate)", &plate, true),
        "delete": op("Revoke the stored permit of the plate, in force at once (audited muck_permit_delete; 404 none stored, 409 configured)", &plate, false)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_lists_every_clue_route() {
        let doc = super::document();
        for p in [
            "/api/v1/clues",
            "/api/v1/clues/{id}/actions",
            "/api/v1/clues/stream",
            "/api/v1/stats",
            "/api/v1/decisions/stats",
            "/api/v1/parking/stays",
            "/api/v1/audit/verify",
            "/api/v1/oversight/warnings",
            "/api/v1/oversight/run",
            "/api/v1/oversight/warnings/{id}/notice",
            "/api/v1/oversight/notices",
            "/api/v1/oversight/notices/{id}",
            "/api/v1/oversight/notices/{id}/actions",
            "/api/v1/evidence/purge",
            "/api/v1/whoami",
            "/api/v1/org/units",
            "/api/v1/cameras",
            "/api/v1/devices/{site}/{device}/readings",
            "/api/v1/flights",
            "/api/v1/flights/{id}/files/{name}",
            "/api/v1/tasks",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p}");
        }
    }
}
