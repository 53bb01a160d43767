//! Supervision notices through the real binary, on SQLite and on a real PostgreSQL: a warning
//! becomes a notice to a named unit; the unit's officer acknowledges and reports it fixed, the
//! supervisor reopens (fix not accepted), then closes; a notice escalated to a higher unit and
//! left past its deadline turns yellow, then red at twice its span, in the pool's tick (one
//! second here); an auditor reads everything and gets 403 on every step; a token of another
//! site never sees the notice. One gateway per store for all of it.

use crate::common;

use crate::common::{GatewayProcess, TestStore, call};
use anyhow::{Context, Result, bail};
use e2e::free_port;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_stores!(a_warning_becomes_a_notice_that_is_answered_reopened_closed_and_escalates_overdue);

/// No broker in reach and no MQTT delivery; the models only when asked; the tick every second.
fn config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"notices-test\"\n\
         [clues]\nmqtt_publish = false\ntick_s = 1\n\
         [clues.oversight]\nevery_s = 3600\n\
         [clues.oversight.notices]\ndefault_due_days = 10\n",
        free_port()
    )
}

fn get(gw: &GatewayProcess, path: &str, token: &str) -> Result<Value> {
    call(gw, "GET", path, token, None)?.ok()?.json()
}

/// A clue of `site` dismissed by `officer` with a reason that says nothing: a red
/// `dismissal_without_basis` warning about them once the models run.
fn dismissed_clue(
    gw: &GatewayProcess,
    admin: &str,
    officer: &str,
    site: &str,
    device: &str,
) -> Result<i64> {
    let ev = json!({
        "rule": "cover-open", "kind": "manhole.cover_open", "level": "medium",
        "subject": {"site": site, "device": device},
        "dedup_key": format!("cover-open/{site}/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at {site}/{device}"),
        "evidence": [{"type": "note", "text": "tilt above 30 degrees"}],
        "department": "water"
    });
    let id = call(gw, "POST", "/api/v1/clues", admin, Some(&ev))?
        .ok()?
        .json()?["clue"]["id"]
        .as_i64()
        .context("clue id")?;
    call(
        gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        officer,
        Some(&json!({"action": "dismiss", "reason": "ok"})),
    )?
    .ok()?;
    Ok(id)
}

fn warning_of(warnings: &Value, clue: i64) -> Result<i64> {
    warnings
        .as_array()
        .and_then(|w| {
            w.iter().find(|w| {
                w["model"] == json!("dismissal_without_basis") && w["clue_id"] == json!(clue)
            })
        })
        .and_then(|w| w["id"].as_i64())
        .with_context(|| format!("no warning for clue {clue}: {warnings:#}"))
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .map(|l| l.iter().filter_map(|n| n["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn a_warning_becomes_a_notice_that_is_answered_reopened_closed_and_escalates_overdue(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = store.gateway(dir.path(), &config())?;
    let admin = gw.token_named("admin", "", "root")?;
    let ann = gw.token_named("inspector", "a", "ann")?;
    let bob = gw.token_named("inspector", "a", "bob")?;
    let dan = gw.token_named("inspector", "a", "dan")?;
    let cy = gw.token_named("inspector", "b", "cy")?;
    let sue = gw.token_named("supervisor", "a", "sue")?;
    let ben = gw.token_named("supervisor", "b", "ben")?;
    let eve = gw.token_named("auditor", "a", "eve")?;

    let c1 = dismissed_clue(&gw, &admin, &ann, "a", "m1")?;
    let c2 = dismissed_clue(&gw, &admin, &bob, "a", "m2")?;
    let c3 = dismissed_clue(&gw, &admin, &cy, "b", "m3")?;
    call(&gw, "POST", "/api/v1/oversight/run", &sue, None)?.ok()?;
    let seen_by_sue = get(&gw, "/api/v1/oversight/warnings", &sue)?;
    let (w1, w2) = (warning_of(&seen_by_sue, c1)?, warning_of(&seen_by_sue, c2)?);
    let w3 = warning_of(&get(&gw, "/api/v1/oversight/warnings", &ben)?, c3)?;

    // Issue: supervisors only, a warning they see, one open notice per warning.
    let unit = "county:xihu/urban-management";
    let body =
        json!({"unit": unit, "due_days": 3, "note": "dismissed without a basis: look again"});
    let path = |w: i64| format!("/api/v1/oversight/warnings/{w}/notice");
    for (who, tok) in [("inspector", &dan), ("auditor", &eve)] {
        let r = call(&gw, "POST", &path(w1), tok, Some(&body))?;
        assert_eq!(r.status, 403, "{who} issues: {}", r.text());
    }
    assert_eq!(
        call(&gw, "POST", &path(w3), &sue, Some(&body))?.status,
        404,
        "another site's warning"
    );
    let r = call(&gw, "POST", &path(w1), &sue, Some(&json!({"unit": " "})))?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(&gw, "POST", &path(w1), &sue, Some(&body))?;
    assert_eq!(r.status, 201, "{}", r.text());
    let n1 = r.json()?;
    let id1 = n1["id"].as_i64().context("notice id")?;
    assert_eq!(n1["state"], json!("issued"));
    assert_eq!(n1["unit"], json!(unit));
    assert_eq!(n1["site"], json!("a"));
    assert_eq!(n1["level"], json!("none"));
    let due = n1["deadline_ms"].as_i64().context("deadline")?
        - n1["issued_ms"].as_i64().context("issued")?;
    assert_eq!(due, 3 * 86_400_000);
    assert_eq!(
        call(&gw, "POST", &path(w1), &sue, Some(&body))?.status,
        409,
        "one open notice per warning"
    );

    // The unit's officer sees it; the officer it is about does not.
    assert!(ids(&get(&gw, "/api/v1/oversight/notices", &dan)?).contains(&id1));
    assert!(!ids(&get(&gw, "/api/v1/oversight/notices", &ann)?).contains(&id1));
    let n = format!("/api/v1/oversight/notices/{id1}");
    assert_eq!(call(&gw, "GET", &n, &ann, None)?.status, 404);
    let act = |tok: &str, b: Value| call(&gw, "POST", &format!("{n}/actions"), tok, Some(&b));

    // Acknowledge, report fixed (officer); the supervisor may not answer for the unit.
    assert_eq!(act(&sue, json!({"action": "acknowledge"}))?.status, 403);
    let r = act(&dan, json!({"action": "report_fixed", "statement": "done"}))?;
    assert_eq!(r.status, 409, "fixed before acknowledged: {}", r.text());
    act(&dan, json!({"action": "acknowledge", "note": "received"}))?.ok()?;
    let r = act(
        &dan,
        json!({"action": "report_fixed", "statement": "clue reopened and handled"}),
    )?
    .ok()?
    .json()?;
    assert_eq!(
        (&r["state"], &r["statement"]),
        (&json!("fixed"), &json!("clue reopened and handled"))
    );
    // Reopen (the fix is not accepted), answered again, closed.
    assert_eq!(act(&dan, json!({"action": "close"}))?.status, 403);
    let r = act(
        &sue,
        json!({"action": "reopen", "note": "the owner was never heard"}),
    )?
    .ok()?
    .json()?;
    assert_eq!(r["state"], json!("issued"));
    act(&dan, json!({"action": "acknowledge"}))?.ok()?;
    act(
        &dan,
        json!({"action": "report_fixed", "statement": "owner heard, decision recorded"}),
    )?
    .ok()?;
    let r = act(&sue, json!({"action": "close", "note": "accepted"}))?
        .ok()?
        .json()?;
    assert_eq!(r["state"], json!("closed"));
    assert_eq!(
        act(&sue, json!({"action": "reopen", "note": "x"}))?.status,
        409
    );
    let d = get(&gw, &n, &sue)?;
    let steps: Vec<&str> = d["history"]
        .as_array()
        .context("history")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "notice_issued",
            "notice_acknowledged",
            "notice_fixed",
            "notice_reopened",
            "notice_acknowledged",
            "notice_fixed",
            "notice_closed"
        ],
        "{d:#}"
    );
    assert!(
        d["history"][0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("sue#"))
    );
    assert!(
        d["history"][1]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("dan#"))
    );
    assert!(
        !ids(&get(&gw, "/api/v1/oversight/notices", &sue)?).contains(&id1),
        "closed: not open"
    );
    assert!(ids(&get(&gw, "/api/v1/oversight/notices?state=closed", &sue)?).contains(&id1));

    // Escalated, then overdue: deadline 2.5 s from now, so yellow after it and red 2.5 s later.
    let deadline = now_ms() + 2_500;
    let r = call(
        &gw,
        "POST",
        &path(w2),
        &sue,
        Some(&json!({"unit": unit, "deadline_ms": deadline})),
    )?;
    assert_eq!(r.status, 201, "{}", r.text());
    let id2 = r.json()?["id"].as_i64().context("id")?;
    let n2 = format!("/api/v1/oversight/notices/{id2}");
    let r = call(
        &gw,
        "POST",
        &format!("{n2}/actions"),
        &sue,
        Some(&json!({"action": "escalate", "to": "city:hangzhou/urban-management", "note": "county silent"})),
    )?
    .ok()?
    .json()?;
    assert_eq!(r["escalated_to"], json!("city:hangzhou/urban-management"));
    assert_eq!(r["state"], json!("issued"), "escalation keeps the step");
    let mut levels = Vec::new();
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let level = get(&gw, &n2, &sue)?["level"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if levels.last() != Some(&level) {
            levels.push(level.clone());
        }
        if level == "red" {
            break;
        }
        if Instant::now() > limit {
            bail!("notice {id2} not red in 30 s: {levels:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(levels, ["none", "yellow", "red"], "each level seen in turn");
    assert!(
        now_ms() > deadline + 2_500,
        "red no earlier than twice the span"
    );
    let d = get(&gw, &n2, &sue)?;
    let overdue: Vec<&Value> = d["history"]
        .as_array()
        .context("history")?
        .iter()
        .filter(|e| e["action"] == json!("notice_overdue"))
        .collect();
    assert_eq!(overdue.len(), 2, "{d:#}");
    assert_eq!(
        (
            &overdue[0]["detail"]["level"],
            &overdue[1]["detail"]["level"]
        ),
        (&json!("yellow"), &json!("red"))
    );
    assert_eq!(overdue[0]["actor"], json!("pool"));
    // Red first in the list.
    let all = get(&gw, "/api/v1/oversight/notices?state=all", &sue)?;
    assert_eq!(ids(&all).first(), Some(&id2), "{all:#}");

    // The auditor reads all of it and acts on nothing.
    assert!(ids(&get(&gw, "/api/v1/oversight/notices?state=all", &eve)?).contains(&id1));
    let before = get(&gw, &n2, &eve)?;
    for b in [
        json!({"action": "acknowledge"}),
        json!({"action": "report_fixed", "statement": "s"}),
        json!({"action": "close", "note": "n"}),
        json!({"action": "reopen", "note": "n"}),
        json!({"action": "escalate", "to": "province:zj"}),
    ] {
        let r = call(&gw, "POST", &format!("{n2}/actions"), &eve, Some(&b))?;
        assert_eq!(r.status, 403, "auditor {b}: {}", r.text());
    }
    assert_eq!(
        get(&gw, &n2, &eve)?["history"],
        before["history"],
        "nothing recorded"
    );

    // Another site: ben's notice on site b is invisible to site a's tokens, and theirs to him.
    let r = call(&gw, "POST", &path(w3), &ben, Some(&body))?;
    assert_eq!(r.status, 201, "{}", r.text());
    let id3 = r.json()?["id"].as_i64().context("id")?;
    for tok in [&sue, &dan, &eve] {
        assert!(!ids(&get(&gw, "/api/v1/oversight/notices?state=all", tok)?).contains(&id3));
        let path = format!("/api/v1/oversight/notices/{id3}");
        assert_eq!(call(&gw, "GET", &path, tok, None)?.status, 404);
        assert_eq!(
            call(
                &gw,
                "POST",
                &format!("{path}/actions"),
                tok,
                Some(&json!({"action": "acknowledge"}))
            )?
            .status,
            404,
            "out of scope before any role check"
        );
    }
    assert_eq!(
        ids(&get(&gw, "/api/v1/oversight/notices?state=all", &ben)?),
        [id3]
    );
    assert_eq!(
        ids(&get(&gw, "/api/v1/oversight/notices", &cy)?),
        Vec::<i64>::new(),
        "about cy"
    );
    call(&gw, "GET", "/api/v1/audit/verify", &sue, None)?.ok()?;
    Ok(())
}
