//! From clue to lawful decision through the real binary, on SQLite and on a real PostgreSQL:
//! the clue detail shows the enforcement matter of its kind, the discretion band its facts put
//! it in and the leniency entries they meet, with reasons; a decision is recorded in the audit
//! chain and the statistics by matter and band, and one outside its band raises a red
//! oversight warning; a read-only auditor reads all of it in its sites and can act on nothing.
//! One gateway per store for all of it (a PostgreSQL start is not free).

use crate::common;

use crate::common::{GatewayProcess, TestStore, call};
use anyhow::{Context, Result};
use e2e::free_port;
use serde_json::{Value, json};

on_both_stores!(a_clue_shows_its_matter_and_band_and_a_decision_outside_the_band_warns);

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
         label_zh = \"低风险\"\n\
         penalty_min = 0\npenalty_max = 5000\nwhen = {{ level_at_most = \"medium\" }}\n\
         [[clues.matters.matter.bands]]\nid = \"hazard\"\nlabel = \"hazard\"\n\
         penalty_min = 5000\npenalty_max = 50000\n\
         [[clues.matters.matter.leniency]]\nid = \"first_violation\"\neffect = \"no_penalty\"\n\
         description = \"first time\"\nprovision = \"<fill in: article C>\"\n\
         when = {{ prior_at_most = 0, occurrences_at_most = 1 }}\n\
         [[clues.matters.matter.leniency]]\nid = \"no_fault\"\neffect = \"no_penalty\"\n\
         description = \"not at fault\"\nprovision = \"<fill in: article D>\"\n\
         needs_finding = \"a work permit for the time\"\n\
         [[clues.matters.matter.leniency]]\nid = \"minor\"\neffect = \"light_penalty\"\n\
         description = \"barely lifted\"\ndescription_zh = \"轻微移位\"\n\
         provision = \"<fill in: article E>\"\n\
         when = {{ figure_at_most = {{ tilt_deg = 45 }}, figure_is = {{ \"crew.permit\" = false }} }}\n",
        free_port()
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
        "detail": {"tilt_deg": 40, "crew": {"permit": false}},
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

fn a_clue_shows_its_matter_and_band_and_a_decision_outside_the_band_warns(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &config())?;
    // The example's placeholders are not law: the gateway says so at start, naming the keys.
    let log = gw.proc.log_tail(200);
    assert!(
        log.contains("placeholder legal bases")
            && log.contains("clues.matters.matter[0].violated_provision"),
        "{log}"
    );
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
    assert_eq!(
        m["bands"][0]["reasons_zh"][0],
        json!("符合：等级 中（至多 中）")
    );
    assert_eq!(m["bands"][0]["label_zh"], json!("低风险"));
    assert_eq!(entry(m, "first_violation")["status"], json!("met"), "{m:#}");
    assert_eq!(entry(m, "no_fault")["status"], json!("to_establish"));
    // The clue's own figures (a nested one too) decide the figure conditions.
    let minor = entry(m, "minor");
    assert_eq!(minor["status"], json!("met"), "{minor:#}");
    assert_eq!(
        minor["reasons"],
        json!([
            "holds: figure tilt_deg 40 (at most 45)",
            "holds: figure crew.permit false (must be false)"
        ])
    );
    assert_eq!(minor["description_zh"], json!("轻微移位"));
    assert_eq!(m["facts"]["figures"]["tilt_deg"], json!(40), "{m:#}");

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

    // Decisions.
    let sue = gw.token_named("supervisor", "a", "sue")?;
    let act = |tok: &str, id: i64, body: Value| {
        call(
            &gw,
            "POST",
            &format!("/api/v1/clues/{id}/actions"),
            tok,
            Some(&body),
        )
    };
    let fair = json!({"action": "decide", "band": "low_risk", "penalty": 0,
                      "leniency_applied": ["first_violation"],
                      "basis": "first time, cover closed by the owner's crew at once"});
    let r = act(&ann, low, fair.clone())?;
    assert_eq!(r.status, 409, "nobody holds the clue yet: {}", r.text());
    act(&ann, low, json!({"action": "claim"}))?.ok()?;
    let r = act(
        &ann,
        low,
        json!({"action": "decide", "band": "severe", "penalty": 0, "basis": "b"}),
    )?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("low_risk, hazard"), "{}", r.text());
    let mut forged = fair.clone();
    forged["check"] = json!({"outside_band": false, "findings": []});
    assert_eq!(
        act(&ann, low, forged)?.status,
        400,
        "the check is the gateway's"
    );
    let r = act(&ann, low, fair)?.ok()?.json()?;
    assert_eq!(r["event"], json!("decide"));

    // The high clue decided in the low band with a penalty outside it.
    act(&ann, high, json!({"action": "claim"}))?.ok()?;
    act(
        &ann,
        high,
        json!({"action": "decide", "band": "low_risk", "penalty": 9000,
               "basis": "the owner says a lorry lifted it"}),
    )?
    .ok()?;
    let audit = call(
        &gw,
        "GET",
        &format!("/api/v1/clues/{high}/audit"),
        &ann,
        None,
    )?
    .ok()?
    .json()?;
    let last = audit
        .as_array()
        .and_then(|a| a.last())
        .context("audit entries")?;
    assert_eq!(last["action"], json!("decide"));
    assert_eq!(
        last["detail"]["check"]["outside_band"],
        json!(true),
        "{last:#}"
    );
    assert_eq!(last["detail"]["check"]["applicable_band"], json!("hazard"));
    assert_eq!(
        last["detail"]["check"]["catalogue_version"],
        json!("test-v1")
    );

    let stats = call(&gw, "GET", "/api/v1/decisions/stats", &ann, None)?
        .ok()?
        .json()?;
    assert_eq!(stats["catalogue_version"], json!("test-v1"));
    assert_eq!(stats["decisions"], json!(2), "{stats:#}");
    assert_eq!(stats["outside_band"], json!(1));
    let band = &stats["by_matter"]["manhole_cover"]["by_band"]["low_risk"];
    assert_eq!(band["decisions"], json!(2), "{stats:#}");
    assert_eq!(band["band_differs_from_facts"], json!(1));
    assert_eq!(band["no_penalty"], json!(1));
    assert_eq!(band["penalty_max"], json!(9000));
    assert_eq!(band["leniency"]["first_violation"], json!(1));
    let other_site = gw.token_named("inspector", "b", "bob")?;
    let none = call(&gw, "GET", "/api/v1/decisions/stats", &other_site, None)?
        .ok()?
        .json()?;
    assert_eq!(
        none["decisions"],
        json!(0),
        "another site's decisions: {none:#}"
    );

    call(&gw, "POST", "/api/v1/oversight/run", &sue, None)?.ok()?;
    let warnings = call(&gw, "GET", "/api/v1/oversight/warnings", &sue, None)?
        .ok()?
        .json()?;
    let found: Vec<&Value> = warnings
        .as_array()
        .context("warnings")?
        .iter()
        .filter(|w| w["model"] == json!("decision_outside_band"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "only the decision outside its band: {warnings:#}"
    );
    assert_eq!(found[0]["clue_id"], json!(high));
    assert_eq!(found[0]["level"], json!("red"));
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("outside band `low_risk`")),
        "{warnings:#}"
    );
    call(&gw, "GET", "/api/v1/audit/verify", &sue, None)?.ok()?;
    an_auditor_reads_everything_in_scope_and_acts_on_nothing(&gw, high)?;
    the_same_facts_with_a_penalty_far_from_colleagues_warn(&gw, &platform, &sue)
}

/// Same act, different penalty (同事不同罚): five inspectors fine medium covers (the same
/// facts: band `low_risk`, no leniency) about 1,000; a sixth fines one 4,500, inside the band
/// but 4.5 times the colleagues' median: a red `peer_penalty_gap` warning naming them, and none
/// for the five.
fn the_same_facts_with_a_penalty_far_from_colleagues_warn(
    gw: &GatewayProcess,
    platform: &str,
    sue: &str,
) -> Result<()> {
    let mut far = 0;
    for (i, (name, penalty)) in [
        ("pia", 900),
        ("quin", 1000),
        ("rex", 1000),
        ("sam", 1100),
        ("tia", 1000),
        ("zed", 4500),
    ]
    .into_iter()
    .enumerate()
    {
        let tok = gw.token_named("inspector", "a", name)?;
        let id = create(gw, platform, &cover_event(&format!("p{i}"), "medium"))?;
        let path = format!("/api/v1/clues/{id}/actions");
        call(gw, "POST", &path, &tok, Some(&json!({"action": "claim"})))?.ok()?;
        let decide = json!({"action": "decide", "band": "low_risk", "penalty": penalty,
                            "basis": "cover left open"});
        call(gw, "POST", &path, &tok, Some(&decide))?.ok()?;
        if name == "zed" {
            far = id;
        }
    }
    call(gw, "POST", "/api/v1/oversight/run", sue, None)?.ok()?;
    let warnings = call(gw, "GET", "/api/v1/oversight/warnings", sue, None)?
        .ok()?
        .json()?;
    let found: Vec<&Value> = warnings
        .as_array()
        .context("warnings")?
        .iter()
        .filter(|w| w["model"] == json!("peer_penalty_gap"))
        .collect();
    assert_eq!(found.len(), 1, "only the far penalty: {warnings:#}");
    assert_eq!(found[0]["clue_id"], json!(far));
    assert_eq!(found[0]["level"], json!("red"), "{warnings:#}");
    assert!(
        found[0]["concerns"].as_array().is_some_and(|c| c
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.starts_with("zed")))),
        "{warnings:#}"
    );
    assert_eq!(
        found[0]["detail"]["peer_median"],
        json!(1000),
        "{warnings:#}"
    );
    Ok(())
}

/// An auditor of site `a` (`high` is a clue there with a decision and a warning): every read
/// answers, every write is 403 and changes nothing; another site's clue is 404 as for anyone.
fn an_auditor_reads_everything_in_scope_and_acts_on_nothing(
    gw: &GatewayProcess,
    high: i64,
) -> Result<()> {
    let eve = gw.token_named("auditor", "a", "eve")?;
    let trail_before = call(
        gw,
        "GET",
        &format!("/api/v1/clues/{high}/audit"),
        &eve,
        None,
    )?
    .ok()?
    .json()?;
    for path in [
        "/api/v1/clues".to_string(),
        format!("/api/v1/clues/{high}"),
        "/api/v1/stats".to_string(),
        "/api/v1/decisions/stats".to_string(),
        "/api/v1/audit/verify".to_string(),
        "/api/v1/audit/export?format=csv".to_string(),
        "/api/v1/clues/export".to_string(),
        "/api/v1/devices".to_string(),
        "/api/v1/pumpouts".to_string(),
    ] {
        let r = call(gw, "GET", &path, &eve, None)?;
        assert_eq!(r.status, 200, "auditor reads {path}: {}", r.text());
    }
    let warnings = call(gw, "GET", "/api/v1/oversight/warnings", &eve, None)?
        .ok()?
        .json()?;
    assert!(
        warnings.as_array().is_some_and(|w| w
            .iter()
            .any(|w| w["model"] == json!("decision_outside_band"))),
        "the auditor sees the warning: {warnings:#}"
    );
    let me = call(gw, "GET", "/api/v1/whoami", &eve, None)?
        .ok()?
        .json()?;
    assert_eq!(
        (&me["may_read_clues"], &me["may_work_clues"]),
        (&json!(true), &json!(false))
    );
    for body in [
        json!({"action": "claim"}),
        json!({"action": "comment", "text": "looked at it"}),
        json!({"action": "decide", "band": "hazard", "penalty": 6000, "basis": "b"}),
        json!({"action": "close"}),
    ] {
        let r = call(
            gw,
            "POST",
            &format!("/api/v1/clues/{high}/actions"),
            &eve,
            Some(&body),
        )?;
        assert_eq!(r.status, 403, "auditor {body}: {}", r.text());
    }
    let writes = [
        ("/api/v1/clues", cover_event("m7", "low")),
        ("/api/v1/oversight/run", json!({})),
        (
            "/api/v1/pumpouts",
            json!({"site": "a", "device": "t1", "from_ms": 1, "to_ms": 2}),
        ),
        ("/api/v1/flights", json!({"site": "a"})),
    ];
    for (path, body) in writes {
        let r = call(gw, "POST", path, &eve, Some(&body))?;
        assert_eq!(r.status, 403, "auditor POST {path}: {}", r.text());
    }
    let trail_after = call(
        gw,
        "GET",
        &format!("/api/v1/clues/{high}/audit"),
        &eve,
        None,
    )?
    .ok()?
    .json()?;
    assert_eq!(trail_before, trail_after, "nothing was recorded");
    // Another site's clue is not found, exactly as for any other role.
    let mut b = cover_event("m9", "low");
    b["subject"]["site"] = json!("b");
    b["dedup_key"] = json!("cover-open/b/m9");
    let admin = gw.token_named("admin", "", "root")?;
    let other = create(gw, &admin, &b)?;
    assert_eq!(
        call(gw, "GET", &format!("/api/v1/clues/{other}"), &eve, None)?.status,
        404
    );
    Ok(())
}
