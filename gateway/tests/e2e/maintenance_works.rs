//! Maintenance works registered over the API reach the running rules (issue 17): with the
//! example rules (the default set), a cover opened on a manhole with registered works raises
//! no "cover open" clue, while one opened beside it without works does; the registration is
//! scoped by role and site, validated, and kept across a restart.

use crate::common::*;
use e2e::{Mosquitto, http, now_ms, wait_until};
use std::time::Duration;

const SITE: &str = "mh-works";

fn post(gw: &GatewayProcess, token: &str, body: &str) -> http::Response {
    let auth = format!("Bearer {token}");
    http::request(
        "POST",
        &format!("{}/api/v1/maintenance", gw.http),
        Some(("application/json", body.as_bytes())),
        &[("Authorization", &auth)],
        Duration::from_secs(10),
    )
    .unwrap()
}

fn list(gw: &GatewayProcess, token: &str) -> serde_json::Value {
    gw.get_with_token("/api/v1/maintenance", token)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("maintenance list: {e:#}\n{}", gw.diagnostics()))
}

fn cover_clues(gw: &GatewayProcess, token: &str) -> Vec<serde_json::Value> {
    let v = gw
        .get_with_token(
            &format!("/api/v1/clues?site={SITE}&kind=manhole.cover_open"),
            token,
        )
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("clue list: {e:#}\n{}", gw.diagnostics()));
    v.as_array()
        .or_else(|| v["clues"].as_array())
        .cloned()
        .unwrap_or_default()
}

fn open_cover(broker: &Mosquitto, device: &str) {
    let payload = format!(
        r#"{{"ts":{},"seq":1,"stream":"manhole_cover","metrics":{{"open":true}}}}"#,
        now_ms()
    );
    broker
        .publish(&format!("v1/{SITE}/{device}/telemetry"), &payload, 1, false)
        .unwrap();
}

#[test]
fn a_cover_opened_under_registered_works_raises_no_clue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"gw-works\"\n",
        broker.url()
    );
    let mut gw = GatewayProcess::start(dir.path(), &config).unwrap();
    let inspector = gw.token("inspector", SITE).unwrap();
    let other_site = gw.token("inspector", "mh-other").unwrap();
    let device = gw.relay_token(SITE).unwrap();
    let now = now_ms();
    let works = format!(
        r#"{{"site":"{SITE}","device":"cover-works","from_ms":{},"to_ms":{},"permit":"WP-17","note":"sewer clearing"}}"#,
        now - 600_000,
        now + 3_600_000
    );

    let r = post(&gw, &inspector, &works);
    assert_eq!(r.status, 201, "{}", r.text());
    let stored = r.json().unwrap();
    assert_eq!(stored["permit"], "WP-17");
    assert_eq!(stored["dismissed_clues"], serde_json::json!([]), "{stored}");
    assert!(stored["by"].as_str().unwrap().starts_with("inspector#"));
    assert_eq!(post(&gw, &device, &works).status, 403, "devices do not");
    assert_eq!(post(&gw, &other_site, &works).status, 403, "other sites");
    for bad in [
        "not json",
        &format!(
            r#"{{"site":"{SITE}","device":"c","from_ms":{now},"to_ms":{}}}"#,
            now - 1
        ),
        &format!(
            r#"{{"site":"{SITE}","device":"c","from_ms":{now},"to_ms":{}}}"#,
            now + 8 * 86_400_000
        ),
        &format!(r#"{{"site":"{SITE}","device":"c","from_ms":{now},"to_ms":{now},"crew":"x"}}"#),
    ] {
        let r = post(&gw, &inspector, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(list(&gw, &inspector).as_array().unwrap().len(), 1);
    assert!(list(&gw, &other_site).as_array().unwrap().is_empty());

    // The excused cover opens first, so by the time the other one's 30 s are up, its own
    // would have raised long before.
    open_cover(&broker, "cover-works");
    std::thread::sleep(Duration::from_secs(3));
    open_cover(&broker, "cover-plain");
    wait_until(
        "the clue about the cover without works",
        Duration::from_secs(90),
        || Ok(Some(cover_clues(&gw, &inspector)).filter(|c| !c.is_empty())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    std::thread::sleep(Duration::from_secs(3));
    let raised_now = cover_clues(&gw, &inspector);
    let devices: Vec<&str> = raised_now
        .iter()
        .filter_map(|c| c["subject"]["device"].as_str())
        .collect();
    assert_eq!(devices, ["cover-plain"], "{raised_now:?}");

    // Works on that cover registered late, covering when it opened: its clue is explained
    // and dismissed (audited, the reason naming the works); the answer says which.
    let id = raised_now[0]["id"].as_i64().unwrap();
    let late = format!(
        r#"{{"site":"{SITE}","device":"cover-plain","from_ms":{},"to_ms":{},"permit":"WP-18"}}"#,
        now - 600_000,
        now + 3_600_000
    );
    let r = post(&gw, &inspector, &late);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json().unwrap()["dismissed_clues"],
        serde_json::json!([id])
    );
    let d = gw
        .get_with_token(&format!("/api/v1/clues/{id}"), &inspector)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("clue detail: {e:#}"));
    assert_eq!(d["status"], "dismissed", "{d}");
    assert!(
        d["resolution"]
            .as_str()
            .unwrap_or_default()
            .contains("WP-18"),
        "{d}"
    );

    // The works survive a restart.
    gw.proc.stop().unwrap();
    gw.start_again().unwrap();
    let after = list(&gw, &inspector);
    assert_eq!(after.as_array().unwrap().len(), 2, "{after}");
    assert_eq!(after[0]["note"], "sewer clearing");
}
