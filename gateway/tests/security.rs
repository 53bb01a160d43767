//! The promises of `SECURITY.md`, each pinned through the real binary: who may see what, what
//! a role without the personal-data right gets, and that tokens and clue ids reveal nothing.
//! Every test here failed on the code before its fix (issue 19).

mod common;

use anyhow::{Context, Result};
use common::GatewayProcess;
use e2e::{free_port, http};
use serde_json::{Value, json};

/// No broker in reach and no MQTT delivery: the API needs neither.
fn offline_config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"security-test\"\n[clues]\nmqtt_publish = false\n",
        free_port()
    )
}

fn call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<http::Response> {
    let auth = format!("Bearer {token}");
    let text = body.map(|b| b.to_string());
    http::request(
        method,
        &format!("{}{path}", gw.http),
        text.as_deref().map(|t| ("application/json", t.as_bytes())),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )
}

fn clue_event(site: &str, device: &str) -> Value {
    json!({
        "rule": "cover-open",
        "kind": "manhole.cover_open",
        "level": "high",
        "subject": {"site": site, "device": device},
        "dedup_key": format!("cover-open/{site}/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at {site}/{device}"),
        "detail": {},
        "evidence": [],
    })
}

fn create(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<i64> {
    let v = call(gw, "POST", "/api/v1/clues", token, Some(ev))?
        .ok()?
        .json()?;
    v["clue"]["id"].as_i64().context("clue id")
}

#[test]
fn another_sites_clue_answers_exactly_like_a_missing_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    let insp_a = gw.token("inspector", "a")?;
    let b = create(&gw, &admin, &clue_event("b", "m9"))?;
    let missing = b + 1000;
    for (suffix, method, body) in [
        ("", "GET", None),
        ("/audit", "GET", None),
        ("/actions", "POST", Some(json!({"action": "claim"}))),
        ("/evidence/00", "GET", None),
    ] {
        let theirs = call(
            &gw,
            method,
            &format!("/api/v1/clues/{b}{suffix}"),
            &insp_a,
            body.as_ref(),
        )?;
        let none = call(
            &gw,
            method,
            &format!("/api/v1/clues/{missing}{suffix}"),
            &insp_a,
            body.as_ref(),
        )?;
        assert_eq!(theirs.status, 404, "{suffix}: {}", theirs.text());
        assert_eq!(none.status, 404, "{suffix}: {}", none.text());
        assert_eq!(
            theirs.text().replace(&b.to_string(), "ID"),
            none.text().replace(&missing.to_string(), "ID"),
            "{suffix}: same body"
        );
    }
    Ok(())
}

#[test]
fn failed_logins_from_one_address_never_lock_out_a_valid_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let insp = gw.token("inspector", "a")?;
    // Another client behind the same address (a proxy) keeps presenting a wrong token.
    for i in 0..40 {
        let r = call(
            &gw,
            "GET",
            "/api/v1/clues",
            &format!("gwt_badbadbadbadbad{i:02}"),
            None,
        )?;
        assert!(r.status == 401 || r.status == 429, "{}", r.status);
    }
    let repeated: Vec<u16> = (0..25)
        .map(|_| {
            call(
                &gw,
                "GET",
                "/api/v1/clues",
                "gwt_0000000000000000dead",
                None,
            )
            .map(|r| r.status)
            .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        repeated.last(),
        Some(&429),
        "one wrong token repeated is limited"
    );
    let r = call(&gw, "GET", "/api/v1/clues", &insp, None)?;
    assert_eq!(r.status, 200, "the valid token still works: {}", r.text());
    Ok(())
}
