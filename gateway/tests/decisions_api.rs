//! From clue to lawful decision through the real binary, on SQLite and on a real PostgreSQL:
//! the clue detail shows the enforcement matter of its kind, the discretion band its facts put
//! it in and the leniency entries they meet, with reasons.

mod common;

use anyhow::{Context, Result};
use common::{GatewayProcess, TestStore};
use e2e::{free_port, http};
use serde_json::{Value, json};

on_both_stores!(the_clue_detail_shows_matter_band_and_leniency_with_reasons);

/// A two-band catalogue for cover clues; no broker in reach and no MQTT delivery.
fn config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"decisions-test\"\n\
         [clues]\nmqtt_publish = false\n\
         [clues.oversight]\nevery_s = 3600\n\
         [clues.matters]\nversion = \"test-v1\"\n\
         [[clues.matters.matter]]\nid = \"manhole_cover\"\nname = \"Cover opened\"\n\
         kinds = [\"manhole.*\"]\nviolated_provision = \"<fill in: article A>\"\n\
         penalty_provision = \"<fill in: article B>\"\n\
         [[clues.matters.matter.bands]]\nid = \"low_risk\"\nlabel = \"low risk\"\n\
         penalty_min = 0\npenalty_max = 5000\nwhen = {{ level_at_most = \"medium\" }}\n\
         [[clues.matters.matter.bands]]\nid = \"hazard\"\nlabel = \"hazard\"\n\
         penalty_min = 5000\npenalty_max = 50000\n\
         [[clues.matters.matter.leniency]]\nid = \"first_violation\"\neffect = \"no_penalty\"\n\
         description = \"first time\"\nprovision = \"<fill in: article C>\"\n\
         when = {{ prior_at_most = 0, occurrences_at_most = 1 }}\n\
         [[clues.matters.matter.leniency]]\nid = \"no_fault\"\neffect = \"no_penalty\"\n\
         description = \"not at fault\"\nprovision = \"<fill in: article D>\"\n\
         needs_finding = \"a work permit for the time\"\n",
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

fn cover_event(device: &str, level: &str) -> Value {
    json!({
        "rule": "cover-open",
        "kind": "manhole.cover_open",
        "level": level,
        "subject": {"site": "a", "device": device},
        "dedup_key": format!("cover-open/a/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at a/{device}"),
        "detail": {"tilt_deg": 40},
        "evidence": [{"type": "note", "text": "tilt above 30 degrees for 2 min"}],
        "department": "water"
    })
}

fn create(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<i64> {
    let r = call(gw, "POST", "/api/v1/clues", token, Some(ev))?;
    r.ok()?.json()?["clue"]["id"].as_i64().context("clue id")
}

fn entry<'a>(matter: &'a Value, id: &str) -> &'a Value {
    matter["leniency"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["id"] == json!(id)))
        .unwrap_or(&Value::Null)
}

fn the_clue_detail_shows_matter_band_and_leniency_with_reasons(store: &TestStore) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &config())?;
    let platform = gw.token_named("platform", "a", "central")?;
    let ann = gw.token_named("inspector", "a", "ann")?;

    let low = create(&gw, &platform, &cover_event("m1", "medium"))?;
    let d = call(&gw, "GET", &format!("/api/v1/clues/{low}"), &ann, None)?
        .ok()?
        .json()?;
    let m = &d["matter"];
    assert_eq!(m["matter"], json!("manhole_cover"), "{d:#}");
    assert_eq!(m["catalogue_version"], json!("test-v1"));
    assert_eq!(m["violated_provision"], json!("<fill in: article A>"));
    assert_eq!(m["band"], json!("low_risk"), "{m:#}");
    assert_eq!(m["bands"][0]["holds"], json!(true));
    assert_eq!(
        m["bands"][0]["reasons"][0],
        json!("holds: level medium (at most medium)")
    );
    assert_eq!(entry(m, "first_violation")["status"], json!("met"), "{m:#}");
    assert_eq!(entry(m, "no_fault")["status"], json!("to_establish"));

    // A second cover, high level and seen twice: the hazard band, and not a first violation
    // of this clue's record (two occurrences), with the reason.
    let high = create(&gw, &platform, &cover_event("m2", "high"))?;
    assert_eq!(create(&gw, &platform, &cover_event("m2", "high"))?, high);
    let d = call(&gw, "GET", &format!("/api/v1/clues/{high}"), &ann, None)?
        .ok()?
        .json()?;
    let m = &d["matter"];
    assert_eq!(m["band"], json!("hazard"), "{m:#}");
    assert_eq!(
        m["bands"][0]["reasons"][0],
        json!("fails: level high (at most medium)")
    );
    let first = entry(m, "first_violation");
    assert_eq!(first["status"], json!("not_met"), "{m:#}");
    assert!(
        first["reasons"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("fails: occurrences 2 (at most 1)"))),
        "{first:#}"
    );
    Ok(())
}
