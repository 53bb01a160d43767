//! Operations without a restart, in the real binary with a real mosquitto: SIGHUP reloads the
//! rules (a bad file is refused and the running rules stay), and pump-out service records are
//! registered over the API, scoped by role and site, and survive a restart, as does the rule
//! state saved at a graceful stop.

use crate::common::*;
use e2e::{Mosquitto, http, now_ms, wait_until};
use std::time::Duration;

const SIGHUP: i32 = 1;

fn config(broker: &Mosquitto, above: f64) -> String {
    format!(
        r#"
[mqtt]
url = "{}"
client_id = "gw-reload"

[[rules]]
id = "trap-level"
kind = "grease_trap.level_high"
level = "medium"
department = "water"
title = "Trap {{device}} at {{site}} level {{value}}"
select = {{ stream = "grease_trap", metric = "level" }}
condition = {{ type = "threshold", above = {above:.1} }}
cooldown_s = 0
"#,
        broker.url()
    )
}

fn clues(gw: &GatewayProcess, token: &str) -> Vec<serde_json::Value> {
    let v = gw
        .get_with_token("/api/v1/clues?site=r-hup", token)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("clue list: {e:#}\n{}", gw.diagnostics()));
    v.as_array()
        .or_else(|| v["clues"].as_array())
        .cloned()
        .unwrap_or_default()
}

fn publish_level(broker: &Mosquitto, level: f64, ts: i64) {
    let payload = format!(r#"{{"ts":{ts},"stream":"grease_trap","metrics":{{"level":{level}}}}}"#);
    broker
        .publish("v1/r-hup/trap-1/telemetry", &payload, 1, false)
        .unwrap();
}

fn reloads(gw: &GatewayProcess, result: &str) -> f64 {
    gw.metric(&format!(
        "gateway_config_reloads_total{{reason=\"{result}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn sighup_reloads_the_rules_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let gw = GatewayProcess::start(dir.path(), &config(&broker, 1000.0)).unwrap();
    let token = gw.token("supervisor", "r-hup").unwrap();
    let path = dir.path().join("gateway.toml");
    let t0 = now_ms() - 60_000;

    // Below the running threshold: nothing.
    publish_level(&broker, 500.0, t0);
    wait_until("the reading", Duration::from_secs(20), || {
        Ok((gw.metric("gateway_readings_in_total")? >= 1.0).then_some(()))
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(clues(&gw, &token).is_empty());

    // A broken file: refused, logged with the key, the running rules stay.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("above = 1000.0", "above = \"high\"")).unwrap();
    gw.proc.signal(SIGHUP);
    wait_until("a rejected reload", Duration::from_secs(10), || {
        Ok((reloads(&gw, "rejected") >= 1.0).then_some(()))
    })
    .unwrap();
    assert!(
        gw.proc.log_tail(50).contains("rules"),
        "{}",
        gw.diagnostics()
    );

    // The threshold lowered: the same level now raises, without a restart.
    std::fs::write(&path, good.replace("above = 1000.0", "above = 100.0")).unwrap();
    gw.proc.signal(SIGHUP);
    wait_until("a reload", Duration::from_secs(10), || {
        Ok((reloads(&gw, "ok") >= 1.0).then_some(()))
    })
    .unwrap();
    publish_level(&broker, 500.0, t0 + 1000);
    let raised = wait_until(
        "a clue from the reloaded rule",
        Duration::from_secs(20),
        || Ok(Some(clues(&gw, &token)).filter(|c| !c.is_empty())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0]["kind"], "grease_trap.level_high");
    assert_eq!(reloads(&gw, "rejected"), 1.0);
}

fn post(gw: &GatewayProcess, token: &str, body: &str) -> http::Response {
    let auth = format!("Bearer {token}");
    http::request(
        "POST",
        &format!("{}/api/v1/pumpouts", gw.http),
        Some(("application/json", body.as_bytes())),
        &[("Authorization", &auth)],
        Duration::from_secs(10),
    )
    .unwrap()
}

#[test]
fn pumpouts_are_registered_by_entitled_roles_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let mut gw = GatewayProcess::start(dir.path(), &config(&broker, 1000.0)).unwrap();
    let inspector = gw.token("inspector", "r-hup").unwrap();
    let other_site = gw.token("inspector", "r-other").unwrap();
    let device = gw.relay_token("r-hup").unwrap();
    // Visits must be recent and over (issue 19, item 7).
    let t = now_ms() - 3_600_000;
    let visit = &format!(
        r#"{{"site":"r-hup","device":"trap-1","from_ms":{t},"to_ms":{},"note":"manifest 17"}}"#,
        t + 600_000
    );

    let r = post(&gw, &inspector, visit);
    assert_eq!(r.status, 201, "{}", r.text());
    let stored = r.json().unwrap();
    assert_eq!(stored["device"], "trap-1");
    assert!(stored["by"].as_str().unwrap().starts_with("inspector#"));

    assert_eq!(
        post(&gw, &device, visit).status,
        403,
        "devices do not register visits"
    );
    assert_eq!(
        post(&gw, &other_site, visit).status,
        403,
        "outside the token's sites"
    );
    for bad in [
        "not json",
        r#"{"site":"r-hup","device":"trap-1","from_ms":5,"to_ms":1}"#,
        r#"{"site":"r-hup","device":"trap-1","from_ms":0,"to_ms":86400000}"#,
        r#"{"site":"r-hup","device":"t/#","from_ms":0,"to_ms":1}"#,
        r#"{"site":"r-hup","device":"trap-1","from_ms":0,"to_ms":1,"extra":1}"#,
    ] {
        let r = post(&gw, &inspector, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    let list = |gw: &GatewayProcess, token: &str| {
        gw.get_with_token("/api/v1/pumpouts", token)
            .and_then(|r| r.ok())
            .and_then(|r| r.json())
            .unwrap()
    };
    assert_eq!(list(&gw, &inspector).as_array().unwrap().len(), 1);
    assert!(list(&gw, &other_site).as_array().unwrap().is_empty());

    // A graceful stop saves the rule state, and the next start continues from it.
    gw.proc.stop().unwrap();
    assert!(
        dir.path().join("storage/rules-state.json").is_file(),
        "{}",
        gw.proc.log_tail(30)
    );
    gw.start_again().unwrap();
    assert!(
        gw.proc.log_tail(200).contains("rule state restored"),
        "{}",
        gw.proc.log_tail(30)
    );
    let after = list(&gw, &inspector);
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after[0]["note"], "manifest 17");
}
