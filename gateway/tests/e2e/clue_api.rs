//! The clue pool through the real binary: tokens and site scopes on every endpoint, the full
//! lifecycle over HTTP, SSE, MQTT delivery to a real mosquitto, and `gateway audit verify`.

use crate::common;

use crate::common::hook::Hook;
use crate::common::{GatewayProcess, TestStore};
use anyhow::{Context, Result, bail};
use e2e::{free_port, http};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

on_both_stores!(
    every_clue_endpoint_checks_token_role_and_site,
    a_clue_goes_through_its_lifecycle_over_http,
    sse_streams_changes_of_the_tokens_sites_only,
    clue_changes_are_published_to_mqtt,
    webhook_gets_each_change_once_despite_failures_and_a_restart,
    a_platform_that_stays_down_gets_every_change_later_and_the_stuck_lane_shows,
    a_device_reading_becomes_a_clue_end_to_end,
    mqtt_delivery_survives_a_broker_outage_and_a_gateway_restart
);

/// Config with no broker in reach and no MQTT delivery (the clue API needs neither).
fn offline_config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"clue-test\"\n[clues]\nmqtt_publish = false\n",
        free_port()
    )
}

fn token(gw: &GatewayProcess, role: &str, sites: &str, name: &str) -> Result<String> {
    let t = gw.token_named(role, sites, name)?;
    assert!(
        t.starts_with("gwt_") && t.len() > 40,
        "token looks random: {t}"
    );
    Ok(t)
}

fn call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<http::Response> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let text = body.map(|b| b.to_string());
    http::request(
        method,
        &format!("{}{path}", gw.http),
        text.as_deref().map(|t| ("application/json", t.as_bytes())),
        &headers,
        http::TIMEOUT,
    )
}

fn clue_event(site: &str, device: &str, level: &str) -> Value {
    json!({
        "rule": "cover-open",
        "kind": "manhole.cover_open",
        "level": level,
        "subject": {"site": site, "device": device},
        "dedup_key": format!("cover-open/{site}/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at {site}/{device}"),
        "detail": {"tilt_deg": 40},
        "evidence": [{"type": "note", "text": "tilt above 30 degrees for 2 min"},
                     {"type": "file", "name": "f.jpg", "content_type": "image/jpeg",
                      "bytes": [255, 216, 255, 224, 1, 2, 3]}],
        "department": "water"
    })
}

fn create(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<i64> {
    let r = call(gw, "POST", "/api/v1/clues", Some(token), Some(ev))?;
    let v = r.ok()?.json()?;
    v["clue"]["id"].as_i64().context("clue id")
}

fn status(r: Result<http::Response>) -> u16 {
    r.map(|r| r.status).unwrap_or(0)
}

fn every_clue_endpoint_checks_token_role_and_site(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &offline_config())?;
    let admin = token(&gw, "admin", "", "root")?;
    let platform_a = token(&gw, "platform", "a", "platform-a")?;
    let insp_a = token(&gw, "inspector", "a", "ann")?;
    let insp_b = token(&gw, "inspector", "b", "bob")?;
    let device_a = gw.token_with("device", "a", &["--name", "dev", "--relay"])?;
    let sup_a = token(&gw, "supervisor", "a", "sue")?;

    let a = create(&gw, &platform_a, &clue_event("a", "m1", "high"))?;
    let b = create(&gw, &admin, &clue_event("b", "m9", "low"))?;
    assert_eq!(
        status(call(
            &gw,
            "POST",
            "/api/v1/clues",
            Some(&platform_a),
            Some(&clue_event("b", "x", "low"))
        )),
        403,
        "platform of site a cannot raise clues for site b"
    );
    assert_eq!(
        status(call(
            &gw,
            "POST",
            "/api/v1/clues",
            Some(&insp_a),
            Some(&clue_event("a", "x", "low"))
        )),
        403,
        "inspectors do not inject clues"
    );

    // No token, or a wrong one: 401 everywhere under /api/v1.
    for path in [
        "/api/v1/clues".to_string(),
        format!("/api/v1/clues/{a}"),
        format!("/api/v1/clues/{a}/audit"),
        "/api/v1/stats".into(),
        "/api/v1/audit/verify".into(),
        "/api/v1/devices".into(),
    ] {
        assert_eq!(status(call(&gw, "GET", &path, None, None)), 401, "{path}");
        assert_eq!(
            status(call(&gw, "GET", &path, Some("gwt_wrong"), None)),
            401,
            "{path}"
        );
    }
    assert_eq!(status(call(&gw, "GET", "/healthz", None, None)), 200);
    assert_eq!(status(call(&gw, "GET", "/metrics", None, None)), 200);
    let doc = call(&gw, "GET", "/api/v1/openapi.json", None, None)?
        .ok()?
        .json()?;
    assert!(doc["paths"]["/api/v1/clues/{id}/actions"].is_object());

    // The inspector of site a sees site a only: list, detail, audit, actions, stats.
    let list = call(&gw, "GET", "/api/v1/clues", Some(&insp_a), None)?
        .ok()?
        .json()?;
    let ids: Vec<i64> = list
        .as_array()
        .context("list")?
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![a]);
    let list_b = call(&gw, "GET", "/api/v1/clues", Some(&insp_b), None)?
        .ok()?
        .json()?;
    assert_eq!(list_b.as_array().map(|l| l.len()), Some(1));
    assert_eq!(list_b[0]["id"].as_i64(), Some(b));
    // Another site's clue answers like a missing one (404); a foreign site filter is 403.
    for (path, want) in [
        (format!("/api/v1/clues/{b}"), 404),
        (format!("/api/v1/clues/{b}/audit"), 404),
        ("/api/v1/clues?site=b".into(), 403),
    ] {
        let r = call(&gw, "GET", &path, Some(&insp_a), None)?;
        assert_eq!(r.status, want, "{path}");
        assert!(
            !r.text().contains("m9"),
            "nothing of site b leaks: {}",
            r.text()
        );
    }
    assert_eq!(
        status(call(
            &gw,
            "POST",
            &format!("/api/v1/clues/{b}/actions"),
            Some(&insp_a),
            Some(&json!({"action": "claim"}))
        )),
        404
    );
    let stats = call(&gw, "GET", "/api/v1/stats", Some(&insp_a), None)?
        .ok()?
        .json()?;
    assert_eq!(stats["total"].as_u64(), Some(1), "{stats}");
    let all = call(&gw, "GET", "/api/v1/stats", Some(&admin), None)?
        .ok()?
        .json()?;
    assert_eq!(all["total"].as_u64(), Some(2), "{all}");

    // A device token reads the device table (its sites) but no clues.
    assert_eq!(
        status(call(&gw, "GET", "/api/v1/devices", Some(&device_a), None)),
        200
    );
    assert_eq!(
        status(call(
            &gw,
            "GET",
            "/api/v1/devices?site=b",
            Some(&device_a),
            None
        )),
        403
    );
    assert_eq!(
        status(call(&gw, "GET", "/api/v1/clues", Some(&device_a), None)),
        403
    );
    assert_eq!(
        status(call(
            &gw,
            "GET",
            &format!("/api/v1/clues/{a}"),
            Some(&device_a),
            None
        )),
        403
    );

    // Audit verification: supervisors yes, inspectors no.
    assert_eq!(
        status(call(
            &gw,
            "GET",
            "/api/v1/audit/verify",
            Some(&insp_a),
            None
        )),
        403
    );
    let v = call(&gw, "GET", "/api/v1/audit/verify", Some(&sup_a), None)?
        .ok()?
        .json()?;
    assert_eq!(v["ok"], json!(true), "{v}");

    // Exports (CSV and JSON) are scoped like everything else.
    let csv = call(
        &gw,
        "GET",
        "/api/v1/clues/export?format=csv",
        Some(&insp_a),
        None,
    )?
    .ok()?;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text();
    assert_eq!(text.lines().count(), 2, "header and site a's clue: {text}");
    assert!(
        text.starts_with("id,rule,kind,level,status,site") && !text.contains("m9"),
        "{text}"
    );
    let audit = call(&gw, "GET", "/api/v1/audit/export", Some(&sup_a), None)?
        .ok()?
        .json()?;
    let clue_ids: Vec<i64> = audit
        .as_array()
        .context("audit export")?
        .iter()
        .map(|e| e["clue_id"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(clue_ids, vec![a], "only site a's entries, no token entries");
    assert_eq!(
        status(call(
            &gw,
            "GET",
            "/api/v1/audit/export",
            Some(&insp_a),
            None
        )),
        403
    );

    // Detail carries evidence (verified file download) and the subject history hint.
    let d = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{a}"),
        Some(&insp_a),
        None,
    )?
    .ok()?
    .json()?;
    assert_eq!(d["history"]["first_violation"], json!(true), "{d}");
    let file = d["evidence"]
        .as_array()
        .context("evidence")?
        .iter()
        .find(|e| e["kind"] == "file")
        .context("file evidence")?;
    let sha = file["sha256"].as_str().context("sha")?;
    // The supervisor has the personal-data right: the original (audited). The inspector
    // would get a masked copy, but these bytes are no decodable image: withheld, never raw.
    let r = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{a}/evidence/{sha}"),
        Some(&sup_a),
        None,
    )?
    .ok()?;
    assert_eq!(r.body, vec![255, 216, 255, 224, 1, 2, 3]);
    let withheld = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{a}/evidence/{sha}"),
        Some(&insp_a),
        None,
    )?;
    assert_eq!(withheld.status, 403, "{}", withheld.text());
    assert!(withheld.text().contains("withheld"), "{}", withheld.text());
    assert_eq!(
        status(call(
            &gw,
            "GET",
            &format!("/api/v1/clues/{a}/evidence/{sha}"),
            Some(&insp_b),
            None
        )),
        404
    );
    // A revoked token stops working at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .envs(gw.env.iter().map(|(k, v)| (k, v)))
        .args(["token", "revoke", "--config"])
        .arg(gw.dir.join("gateway.toml"))
        .args(["--id", "4"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status(call(&gw, "GET", "/api/v1/clues", Some(&insp_b), None)),
        401
    );
    Ok(())
}

fn a_clue_goes_through_its_lifecycle_over_http(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &offline_config())?;
    let platform = token(&gw, "platform", "a", "central")?;
    let ann = token(&gw, "inspector", "a", "ann")?;
    let bob = token(&gw, "inspector", "a", "bob")?;
    let sue = token(&gw, "supervisor", "a", "sue")?;
    let id = create(&gw, &platform, &clue_event("a", "m1", "medium"))?;
    // A repeat is an occurrence of the same clue.
    let again = call(
        &gw,
        "POST",
        "/api/v1/clues",
        Some(&platform),
        Some(&clue_event("a", "m1", "high")),
    )?;
    assert_eq!(again.status, 200);
    let again = again.json()?;
    assert_eq!(again["clue"]["id"].as_i64(), Some(id));
    assert_eq!(again["clue"]["occurrences"].as_i64(), Some(2));
    assert_eq!(
        again["clue"]["level"],
        json!("high"),
        "repetition raises, never lowers"
    );

    let act = |tok: &str, body: Value| {
        call(
            &gw,
            "POST",
            &format!("/api/v1/clues/{id}/actions"),
            Some(tok),
            Some(&body),
        )
    };
    let r = act(&ann, json!({"action": "claim"}))?.ok()?.json()?;
    assert_eq!(r["clue"]["status"], json!("claimed"));
    assert_eq!(r["clue"]["assignee"], json!("ann#2"));
    let second = act(&bob, json!({"action": "claim"}))?;
    assert_eq!(second.status, 409, "{}", second.text());
    assert!(
        second
            .text()
            .contains("cannot claim a clue that is claimed")
    );
    assert_eq!(
        status(act(&ann, json!({"action": "close"}))),
        403,
        "inspectors cannot close"
    );
    assert_eq!(
        status(act(&ann, json!({"action": "dismiss", "reason": ""}))),
        400
    );
    assert_eq!(status(act(&ann, json!({"action": "fly"}))), 400);
    act(
        &ann,
        json!({"action": "comment", "text": "owner says pump-out was scheduled"}),
    )?
    .ok()?;
    let r = act(
        &ann,
        json!({"action": "resolve", "note": "first violation: warning given"}),
    )?
    .ok()?
    .json()?;
    assert_eq!(r["clue"]["status"], json!("resolved"));
    act(&sue, json!({"action": "close"}))?.ok()?;
    let r = act(
        &sue,
        json!({"action": "reopen", "reason": "owner complaint"}),
    )?
    .ok()?
    .json()?;
    assert_eq!(r["clue"]["status"], json!("reopened"));
    let r = act(&sue, json!({"action": "assign", "to": "bob#3"}))?
        .ok()?
        .json()?;
    assert_eq!(r["clue"]["status"], json!("assigned"));
    let r = act(
        &bob,
        json!({"action": "transfer", "department": "market", "reason": "food licence"}),
    )?
    .ok()?
    .json()?;
    assert_eq!(r["clue"]["department"], json!("market"));
    act(
        &bob,
        json!({"action": "dismiss", "reason": "licensed event"}),
    )?
    .ok()?;

    let audit = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{id}/audit"),
        Some(&sue),
        None,
    )?
    .ok()?
    .json()?;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .context("audit")?
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = [
        ("created", "pool"),
        // The repeat came at a worse level (medium -> high): recorded as a re-level.
        ("level_raised", "pool"),
        ("claim", "ann#2"),
        ("comment", "ann#2"),
        ("resolve", "ann#2"),
        ("close", "sue#4"),
        ("reopen", "sue#4"),
        ("assign", "sue#4"),
        ("transfer", "bob#3"),
        ("dismiss", "bob#3"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(actions, expect);
    let stats = call(&gw, "GET", "/api/v1/stats", Some(&sue), None)?
        .ok()?
        .json()?;
    assert_eq!(stats["disposal_rate"].as_f64(), Some(1.0), "{stats}");
    assert_eq!(
        stats["by_department"]["market"].as_u64(),
        Some(1),
        "{stats}"
    );
    Ok(())
}

/// Reads an SSE response until `until` matches the text so far (or the timeout).
fn sse_read(
    gw: &GatewayProcess,
    token: &str,
    trigger: impl FnOnce() -> Result<()>,
    until: impl Fn(&str) -> bool,
) -> Result<String> {
    let addr = gw.http.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        s,
        "GET /api/v1/clues/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let mut trigger = Some(trigger);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        if text.contains("\r\n\r\n")
            && let Some(t) = trigger.take()
        {
            t()?;
        }
        if until(&text) {
            return Ok(text);
        }
    }
    bail!("SSE did not deliver in time; got:\n{text}")
}

fn sse_streams_changes_of_the_tokens_sites_only(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &offline_config())?;
    let admin = token(&gw, "admin", "", "root")?;
    let insp_a = token(&gw, "inspector", "a", "ann")?;
    assert_eq!(
        status(call(&gw, "GET", "/api/v1/clues/stream", None, None)),
        401
    );
    let text = sse_read(
        &gw,
        &insp_a,
        || {
            // Site b first: if it leaked, it would arrive before site a's.
            create(&gw, &admin, &clue_event("b", "secret-b", "high"))?;
            create(&gw, &admin, &clue_event("a", "m1", "high"))?;
            Ok(())
        },
        |t| t.contains("Cover open at a/m1"),
    )?;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("event: clue"), "{text}");
    assert!(
        !text.contains("secret-b"),
        "site b leaked into site a's stream:\n{text}"
    );
    Ok(())
}

fn clue_changes_are_published_to_mqtt(store: &TestStore) -> Result<()> {
    let broker = e2e::Mosquitto::start()?;
    let sub = broker.subscribe("clues/v1/#")?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"clue-mqtt-test\"\n",
        broker.url()
    );
    let gw = store.gateway(dir.path(), &config)?;
    let platform = token(&gw, "platform", "a", "central")?;
    let id = create(&gw, &platform, &clue_event("a", "m1", "high"))?;
    let insp = token(&gw, "inspector", "a", "ann")?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        Some(&insp),
        Some(&json!({"action": "claim"})),
    )?
    .ok()?;
    let msgs = sub
        .wait_for(2, Duration::from_secs(20))
        .with_context(|| gw.diagnostics())?;
    assert_eq!(msgs[0].0, "clues/v1/a/high");
    let first: Value = serde_json::from_str(&msgs[0].1)?;
    assert_eq!(first["event"], json!("created"));
    assert_eq!(first["clue"]["id"].as_i64(), Some(id));
    let second: Value = serde_json::from_str(&msgs[1].1)?;
    assert_eq!(second["event"], json!("claim"));
    assert!(second["event_id"].as_i64() > first["event_id"].as_i64());
    Ok(())
}

fn verify_cli(config: &Path) -> Result<(bool, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn audit_verify_names_an_entry_edited_behind_the_gateways_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = token(&gw, "admin", "", "root")?;
    let id = create(&gw, &admin, &clue_event("a", "m1", "high"))?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        Some(&admin),
        Some(&json!({"action": "dismiss", "reason": "permitted works"})),
    )?
    .ok()?;
    let config = gw.dir.join("gateway.toml");
    let (ok, out) = verify_cli(&config)?;
    assert!(ok, "{out}");
    assert!(out.contains("audit chain ok"), "{out}");

    // Entry 3 is the clue's creation (1 and 2 are the token creations... only one token here).
    let db = gw.dir.join("storage/clues.sqlite");
    let conn = rusqlite::Connection::open(&db)?;
    let seq: i64 = conn.query_row("SELECT seq FROM audit WHERE action = 'dismiss'", [], |r| {
        r.get(0)
    })?;
    assert!(
        conn.execute("UPDATE audit SET actor = 'nobody' WHERE seq = ?1", [seq])
            .is_err(),
        "the database itself refuses edits to the log"
    );
    conn.execute_batch("DROP TRIGGER audit_no_update;")?;
    conn.execute(
        "UPDATE audit SET detail = replace(detail, 'permitted works', 'bribe') WHERE seq = ?1",
        [seq],
    )?;
    drop(conn);
    let (ok, out) = verify_cli(&config)?;
    assert!(!ok, "verify must fail: {out}");
    assert!(out.contains(&format!("entry {seq}")), "{out}");

    let sup = token(&gw, "supervisor", "a", "sue")?;
    let r = call(&gw, "GET", "/api/v1/audit/verify", Some(&sup), None)?;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()?["broken"]["seq"].as_i64(), Some(seq));
    Ok(())
}

fn webhook_gets_each_change_once_despite_failures_and_a_restart(store: &TestStore) -> Result<()> {
    let hook_port = free_port();
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}webhook_url = \"http://127.0.0.1:{hook_port}/clues\"\nwebhook_secret = \"s3cret\"\n\
         retry_min_ms = 50\nretry_max_ms = 200\n",
        offline_config()
    );
    let mut gw = store.gateway(dir.path(), &config)?;
    let admin = token(&gw, "admin", "", "root")?;
    let id = create(&gw, &admin, &clue_event("a", "m1", "high"))?;
    // The platform is down: the change waits in the outbox. Kill the gateway without goodbye.
    std::thread::sleep(Duration::from_millis(300));
    gw.kill();
    let hook = Hook::start(hook_port, 2)?;
    gw.start_again()?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        Some(&admin),
        Some(&json!({"action": "claim"})),
    )?
    .ok()?;
    let got = e2e::wait_until(
        "two acknowledged webhook calls",
        Duration::from_secs(20),
        || {
            let a = hook.acknowledged();
            Ok((a.len() >= 2).then_some(a))
        },
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let got_later = hook.acknowledged();
    assert_eq!(
        got_later.len(),
        2,
        "nothing is delivered twice once acknowledged"
    );
    assert_eq!(got[0]["event"], json!("created"));
    assert_eq!(got[1]["event"], json!("claim"));
    let seen = hook.seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        seen.iter().filter(|s| s.0 == 500).count() == 2,
        "retried after failures"
    );
    for (_, sig, body) in &seen {
        assert_eq!(
            sig,
            &gateway::clue::publish::signature("s3cret", body.as_bytes())
        );
    }
    Ok(())
}

/// The webhook has no attempt limit (see `clue::publish`): with the platform down, the first
/// change is retried far past any limit a notice channel would have, the lane's head-failure
/// gauge counts the attempts, and once the platform is back it gets every change, in order,
/// and the gauge falls to 0.
fn a_platform_that_stays_down_gets_every_change_later_and_the_stuck_lane_shows(
    store: &TestStore,
) -> Result<()> {
    let hook_port = free_port();
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}webhook_url = \"http://127.0.0.1:{hook_port}/clues\"\n\
         retry_min_ms = 20\nretry_max_ms = 40\n",
        offline_config()
    );
    let gw = store.gateway(dir.path(), &config)?;
    let admin = token(&gw, "admin", "", "root")?;
    let id = create(&gw, &admin, &clue_event("a", "m1", "high"))?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        Some(&admin),
        Some(&json!({"action": "claim"})),
    )?
    .ok()?;
    let gauge = "gateway_delivery_head_failures{reason=\"webhook\"}";
    e2e::wait_until(
        "30 failed attempts in a row",
        Duration::from_secs(30),
        || Ok((gw.metric(gauge)? >= 30.0).then_some(())),
    )
    .with_context(|| gw.diagnostics())?;
    let hook = Hook::start(hook_port, 0)?;
    let got = e2e::wait_until("both changes delivered", Duration::from_secs(20), || {
        let a = hook.acknowledged();
        Ok((a.len() >= 2).then_some(a))
    })?;
    assert_eq!(got[0]["event"], json!("created"));
    assert_eq!(got[1]["event"], json!("claim"));
    e2e::wait_until("the gauge back to 0", Duration::from_secs(10), || {
        Ok((gw.metric(gauge)? == 0.0).then_some(()))
    })?;
    assert!(
        gw.proc.log_tail(200).contains("delivery still failing"),
        "the stuck lane was logged"
    );
    Ok(())
}

fn a_device_reading_becomes_a_clue_end_to_end(store: &TestStore) -> Result<()> {
    let broker = e2e::Mosquitto::start()?;
    let sub = broker.subscribe("clues/v1/#")?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"clue-e2e\"\n",
        broker.url()
    );
    let gw = store.gateway(dir.path(), &config)?;
    let insp = token(&gw, "inspector", "s1", "ann")?;
    let payload = format!(
        r#"{{"ts":{},"seq":1,"stream":"manhole_cover","metrics":{{"open":true}}}}"#,
        e2e::now_ms()
    );
    broker.publish("v1/s1/cover-7/telemetry", &payload, 1, false)?;
    // `cover-open` raises once the cover has read open for 30 s (reed flicker is no lift).
    let clues = e2e::wait_until("the rules engine's clue", Duration::from_secs(60), || {
        let v = call(
            &gw,
            "GET",
            "/api/v1/clues?kind=manhole.cover_open",
            Some(&insp),
            None,
        )?
        .ok()?
        .json()?;
        Ok(v.as_array().filter(|a| !a.is_empty()).cloned())
    })
    .with_context(|| gw.diagnostics())?;
    assert_eq!(clues[0]["subject"]["device"], json!("cover-7"));
    assert_eq!(clues[0]["department"], json!("city-management"));
    let msgs = sub.wait_for(1, Duration::from_secs(20))?;
    assert!(msgs[0].0.starts_with("clues/v1/s1/"), "{msgs:?}");
    Ok(())
}

fn mqtt_delivery_survives_a_broker_outage_and_a_gateway_restart(store: &TestStore) -> Result<()> {
    let mut broker = e2e::Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"clue-restart\"\n[clues]\nretry_min_ms = 50\nretry_max_ms = 500\n",
        broker.url()
    );
    let mut gw = store.gateway(dir.path(), &config)?;
    let admin = token(&gw, "admin", "", "root")?;
    broker.stop()?;
    let id = create(&gw, &admin, &clue_event("a", "m1", "high"))?;
    std::thread::sleep(Duration::from_millis(300));
    gw.kill();
    broker.start_again()?;
    let sub = broker.subscribe("clues/v1/#")?;
    gw.start_again()?;
    let msgs = sub
        .wait_for(1, Duration::from_secs(30))
        .with_context(|| gw.diagnostics())?;
    std::thread::sleep(Duration::from_secs(1));
    let msgs_later = sub.messages();
    assert_eq!(msgs_later.len(), 1, "delivered once: {msgs_later:?}");
    let v: Value = serde_json::from_str(&msgs[0].1)?;
    assert_eq!(v["event"], json!("created"));
    assert_eq!(v["clue"]["id"].as_i64(), Some(id));
    Ok(())
}
