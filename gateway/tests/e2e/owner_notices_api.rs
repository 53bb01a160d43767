//! Telling the owner through a configured channel, through the real binary on SQLite and on a
//! real PostgreSQL: `send_owner_notice` queues a notice that a worker POSTs to a provider on
//! loopback (a real HTTP server in this test), retried after a 500 until accepted exactly once,
//! recorded as `owner_notice_delivered` in the audit chain (which verifies) with the answer
//! window counted from delivery; a provider that is down leaves the notice queued and then
//! `owner_notice_failed` after the channel's attempts; a notice queued when the gateway is
//! killed is delivered after its restart; an auditor reads it all and can send nothing; the
//! provider's receipt needs its channel's notifier token (or a platform or admin one), and a
//! notifier token reads nothing. A notice in back-off does not hold up the next one of its
//! channel, and two gateways on one PostgreSQL settle every notice once. The owner's phone is
//! never in the audit, the API answers or the log in full.

use crate::common;

use crate::common::{GatewayProcess, TestStore, call};
use anyhow::{Context, Result, bail};
use e2e::{free_port, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_stores!(
    owner_notices_are_delivered_once_retried_given_up_and_survive_a_restart,
    a_notice_in_back_off_does_not_hold_up_the_next_one_of_its_channel,
);

const PHONE: &str = "13800138000";
const ADDRESS: &str = "12 Beijing Road, Unit 3";
const SMS_TOKEN: &str = "sms-provider-secret";

/// One request the provider received: its headers (lower-case names), its body, the status
/// it answered.
#[derive(Debug, Clone)]
struct Seen {
    headers: BTreeMap<String, String>,
    body: Value,
    status: u16,
}

/// A provider on loopback: answers `fail_status` to the first `fail_first` requests, then 200
/// with `{"id": "<prefix>-<n>"}`; records every request.
struct Provider {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Provider {
    fn start(port: u16, fail_first: usize, prefix: &'static str) -> Result<Provider> {
        Self::start_failing_with(port, fail_first, 500, prefix)
    }

    fn start_failing_with(
        port: u16,
        fail_first: usize,
        fail_status: u16,
        prefix: &'static str,
    ) -> Result<Provider> {
        Self::start_answering(
            port,
            prefix,
            move |n, _| {
                if n < fail_first { fail_status } else { 200 }
            },
        )
    }

    /// A provider whose answer to request `n` with `headers` is `status(n, headers)`.
    fn start_answering(
        port: u16,
        prefix: &'static str,
        mut status: impl FnMut(usize, &BTreeMap<String, String>) -> u16 + Send + 'static,
    ) -> Result<Provider> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut s) = stream else { continue };
                let Ok((headers, body)) = read_request(&mut s) else {
                    continue;
                };
                let status = status(n, &headers);
                let answer = if status == 200 {
                    format!("{{\"id\":\"{prefix}-{n}\"}}")
                } else {
                    "{\"error\":\"busy\"}".to_string()
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                if let Ok(mut v) = rec.lock() {
                    v.push(Seen {
                        headers,
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                        status,
                    });
                }
            }
        });
        Ok(Provider { seen })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status == 200)
            .collect()
    }
}

fn read_request(s: &mut std::net::TcpStream) -> Result<(BTreeMap<String, String>, String)> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("closed");
        }
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        let headers: BTreeMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if data.len() >= end + 4 + len {
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).to_string();
            return Ok((headers, body));
        }
    }
}

/// Four channels: `sms` (bearer token, 5 attempts), `letter` (the postal address, 3
/// attempts), `post` (patient: the restart case) and `fax` (a provider that rejects the
/// notice itself). The registry gives site `a` an owner.
fn config(registry: &std::path::Path, sms: u16, letter: u16, post: u16, fax: u16) -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"owner-notices-test\"\n\
         [clues]\nmqtt_publish = false\n\
         [clues.oversight]\nevery_s = 3600\n\
         [clues.oversight.closed_without_owner]\nanswer_window_s = 3600\n\
         [registry]\nfile = \"{}\"\n\
         [[clues.owner_notify.channels]]\nname = \"sms\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{sms}/send\"\ntoken_env = \"E2E_SMS_TOKEN\"\n\
         max_attempts = 5\nretry_min_ms = 100\nretry_max_ms = 200\ntimeout_ms = 2000\n\
         templates = [\"first_notice\"]\n\
         [[clues.owner_notify.channels]]\nname = \"letter\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{letter}/letters\"\ncontact = \"address\"\n\
         max_attempts = 3\nretry_min_ms = 400\nretry_max_ms = 400\ntimeout_ms = 1000\n\
         [[clues.owner_notify.channels]]\nname = \"post\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{post}/post\"\n\
         max_attempts = 1000\nretry_min_ms = 100\nretry_max_ms = 300\ntimeout_ms = 1000\n\
         [[clues.owner_notify.channels]]\nname = \"fax\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{fax}/fax\"\nmax_attempts = 5\nretry_min_ms = 100\n",
        free_port(),
        registry.display()
    )
}

const REGISTRY: &str = r#"
[[devices]]
site = "a"
device = "m1"
kind = "manhole_cover"
owner = "Wang Wei"
owner_phone = "13800138000"
owner_address = "12 Beijing Road, Unit 3"
"#;

fn cover_event(site: &str, device: &str) -> Value {
    json!({
        "rule": "cover-open",
        "kind": "manhole.cover_open",
        "level": "medium",
        "subject": {"site": site, "device": device},
        "dedup_key": format!("cover-open/{site}/{device}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("Cover open at {site}/{device}"),
        "detail": {"tilt_deg": 40},
        "evidence": [{"type": "note", "text": "tilt above 30 degrees"}],
        "department": "water"
    })
}

fn create(gw: &GatewayProcess, token: &str, ev: &Value) -> Result<i64> {
    let r = call(gw, "POST", "/api/v1/clues", token, Some(ev))?;
    r.ok()?.json()?["clue"]["id"].as_i64().context("clue id")
}

fn send(gw: &GatewayProcess, token: &str, clue: i64, body: Value) -> Result<e2e::http::Response> {
    call(
        gw,
        "POST",
        &format!("/api/v1/clues/{clue}/actions"),
        token,
        Some(&body),
    )
}

fn detail(gw: &GatewayProcess, token: &str, clue: i64) -> Result<Value> {
    call(gw, "GET", &format!("/api/v1/clues/{clue}"), token, None)?
        .ok()?
        .json()
}

/// Waits until the clue's notice `n` (0-based) is in `state`; returns the notice.
fn wait_notice(
    gw: &GatewayProcess,
    token: &str,
    clue: i64,
    n: usize,
    state: &str,
) -> Result<Value> {
    wait_until(
        &format!("clue {clue} notice {n} {state}"),
        Duration::from_secs(30),
        || {
            let d = detail(gw, token, clue)?;
            let notice = d["owner"]["notices"][n].clone();
            Ok((notice["state"] == json!(state)).then_some(notice))
        },
    )
    .with_context(|| gw.diagnostics())
}

fn audit(gw: &GatewayProcess, token: &str, clue: i64) -> Result<Vec<Value>> {
    let v = call(
        gw,
        "GET",
        &format!("/api/v1/clues/{clue}/audit"),
        token,
        None,
    )?
    .ok()?
    .json()?;
    v.as_array().cloned().context("audit entries")
}

fn verify(gw: &GatewayProcess, token: &str) -> Result<()> {
    let r = call(gw, "GET", "/api/v1/audit/verify", token, None)?;
    anyhow::ensure!(r.status == 200, "verify: {} {}", r.status, r.text());
    Ok(())
}

fn owner_notices_are_delivered_once_retried_given_up_and_survive_a_restart(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, REGISTRY)?;
    let (sms_port, letter_port, post_port, fax_port) =
        (free_port(), free_port(), free_port(), free_port());
    // The SMS provider is busy once, then accepts; nothing listens on the letter port.
    let sms = Provider::start(sms_port, 1, "sms")?;
    let mut env = store.env();
    env.push(("E2E_SMS_TOKEN", SMS_TOKEN));
    let mut gw = GatewayProcess::start_with_env(
        dir.path(),
        &config(&registry, sms_port, letter_port, post_port, fax_port),
        &env,
    )?;
    let platform = gw.token_named("platform", "a,b", "central")?;
    let ann = gw.token_named("inspector", "a,b", "ann")?;
    let auditor = gw.token_named("auditor", "a,b", "prosecutor")?;
    let supervisor = gw.token_named("supervisor", "a,b", "sue")?;

    let clue = create(&gw, &platform, &cover_event("a", "m1"))?;

    // The channels the send form offers: names, kinds, contacts, templates; no URL, no token.
    let r = call(&gw, "GET", "/api/v1/owner-notify/channels", &ann, None)?;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let channels = r.json()?;
    let names: Vec<&str> = channels
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["sms", "letter", "post", "fax"], "{channels:#}");
    assert_eq!(
        channels[0],
        json!({"name": "sms", "kind": "webhook", "contact": "phone", "templates": ["first_notice"]})
    );
    assert_eq!(channels[1]["contact"], json!("address"));
    assert!(
        !text.contains("127.0.0.1") && !text.contains("E2E_SMS_TOKEN") && !text.contains("url"),
        "{text}"
    );
    let device = gw.relay_token("a")?;
    let r = call(&gw, "GET", "/api/v1/owner-notify/channels", &device, None)?;
    assert_eq!(r.status, 403, "{}", r.text());

    // Refusals name what is wrong, and queue nothing.
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "pigeon"}),
    )?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("sms, letter, post, fax"), "{}", r.text());
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "sms", "template": "threat"}),
    )?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "sms", "draft": {"contact": "x"}}),
    )?;
    assert_eq!(r.status, 400, "the draft is the pool's: {}", r.text());
    let nobody = create(&gw, &platform, &cover_event("b", "m9"))?;
    let r = send(
        &gw,
        &ann,
        nobody,
        json!({"action": "send_owner_notice", "channel": "sms"}),
    )?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("owner_phone"), "{}", r.text());
    // The auditor reads and cannot send.
    let r = send(
        &gw,
        &auditor,
        clue,
        json!({"action": "send_owner_notice", "channel": "sms"}),
    )?;
    assert_eq!(r.status, 403, "{}", r.text());

    // Sent by the inspector: retried after the 500, accepted once.
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "sms", "template": "first_notice"}),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let n = wait_notice(&gw, &ann, clue, 0, "delivered")?;
    assert_eq!(n["channel"], json!("sms"));
    assert_eq!(n["contact"], json!("138****8000"), "{n:#}");
    assert_eq!(n["attempts"], json!(2), "{n:#}");
    assert_eq!(n["provider_id"], json!("sms-1"), "{n:#}");
    // Nothing more arrives after the acceptance.
    std::thread::sleep(Duration::from_millis(800));
    let seen = sms.seen();
    assert_eq!(seen.len(), 2, "one refused, one accepted: {seen:#?}");
    assert_eq!(sms.accepted().len(), 1);
    let key = &seen[0].headers["idempotency-key"];
    assert_eq!(
        &seen[1].headers["idempotency-key"], key,
        "the same key on a retry"
    );
    assert_eq!(n["idempotency_key"], json!(key));
    assert_eq!(
        seen[1].headers["authorization"],
        format!("Bearer {SMS_TOKEN}")
    );
    let body = &seen[1].body;
    assert_eq!(body["clue_id"], json!(clue));
    assert_eq!(body["notice_id"], n["id"]);
    assert_eq!(body["template"], json!("first_notice"));
    assert_eq!(body["to"], json!({"kind": "phone", "value": PHONE}));
    assert_eq!(body["facts"]["kind"], json!("manhole.cover_open"));
    assert_eq!(
        body["answer_due_ms"].as_i64(),
        body["sent_ms"].as_i64().map(|s| s + 3_600_000)
    );

    // The record: queued by ann, delivered by the channel's worker; the window from delivery.
    let d = detail(&gw, &ann, clue)?;
    let delivered_ms = n["delivered_ms"].as_i64().context("delivered_ms")?;
    assert!(delivered_ms >= n["queued_ms"].as_i64().unwrap_or(i64::MAX));
    assert_eq!(d["owner"]["notified"][0]["notice"], n["id"], "{d:#}");
    assert_eq!(
        d["owner"]["answer_due_ms"].as_i64(),
        Some(delivered_ms + 3_600_000)
    );
    let trail = audit(&gw, &supervisor, clue)?;
    let actions: Vec<&str> = trail.iter().filter_map(|e| e["action"].as_str()).collect();
    let queued = trail
        .iter()
        .find(|e| e["action"] == json!("send_owner_notice"))
        .context("send_owner_notice entry")?;
    assert_eq!(queued["detail"]["contact"], json!("138****8000"));
    assert_eq!(queued["detail"]["notice"], n["id"]);
    let done = trail
        .iter()
        .find(|e| e["action"] == json!("owner_notice_delivered"))
        .with_context(|| format!("delivered entry in {actions:?}"))?;
    assert_eq!(done["actor"], json!("owner-notify:sms"));
    assert_eq!(done["detail"]["provider_id"], json!("sms-1"));
    assert_eq!(done["detail"]["at"], json!(delivered_ms));
    verify(&gw, &supervisor)?;

    // A letter service that is down: queued, retried, given up after its 3 attempts.
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "letter"}),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let early = detail(&gw, &ann, clue)?["owner"]["notices"][1].clone();
    assert_eq!(early["state"], json!("queued"), "{early:#}");
    assert_eq!(early["contact"], json!("12 Be…"));
    let failed = wait_notice(&gw, &ann, clue, 1, "failed")?;
    assert_eq!(failed["attempts"], json!(3), "{failed:#}");
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{failed:#}"
    );
    let trail = audit(&gw, &supervisor, clue)?;
    let gave_up = trail
        .iter()
        .find(|e| e["action"] == json!("owner_notice_failed"))
        .context("owner_notice_failed entry")?;
    assert_eq!(gave_up["detail"]["attempts"], json!(3));
    assert_eq!(gave_up["detail"]["channel"], json!("letter"));
    // A failed notice told nobody: the window still runs from the SMS.
    let d = detail(&gw, &ann, clue)?;
    assert_eq!(
        d["owner"]["answer_due_ms"].as_i64(),
        Some(delivered_ms + 3_600_000)
    );
    assert_eq!(d["owner"]["notified"].as_array().map(Vec::len), Some(1));

    // A provider that rejects the notice itself (422: not retried, the same POST would be
    // rejected again): given up after one attempt, the queue not held up for the back-off.
    let fax = Provider::start_failing_with(fax_port, usize::MAX, 422, "fax")?;
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "fax"}),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    let rejected = wait_notice(&gw, &ann, clue, 2, "failed")?;
    assert_eq!(rejected["attempts"], json!(1), "{rejected:#}");
    assert!(
        rejected["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("rejected") && e.contains("422")),
        "{rejected:#}"
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(fax.seen().len(), 1, "not retried: {:#?}", fax.seen());

    // The provider's receipt: 401 without a valid token, 403 for other roles, platform ok.
    let id = n["id"].as_i64().context("notice id")?;
    let receipt = format!("/api/v1/owner-notices/{id}/receipt");
    let body = json!({"status": "delivered", "note": "handset reached"});
    let r = call(&gw, "POST", &receipt, "not-a-token", Some(&body))?;
    assert_eq!(r.status, 401, "{}", r.text());
    for t in [&ann, &auditor, &supervisor] {
        let r = call(&gw, "POST", &receipt, t, Some(&body))?;
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let r = call(
        &gw,
        "POST",
        &receipt,
        &platform,
        Some(&json!({"status": "Read!"})),
    )?;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(&gw, "POST", &receipt, &platform, Some(&body))?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()?["receipt_status"], json!("delivered"));
    notifier_tokens_post_receipts_of_their_channel_only(&gw, id, clue)?;
    let trail = audit(&gw, &auditor, clue)?;
    assert!(
        trail
            .iter()
            .any(|e| e["action"] == json!("owner_notice_receipt")
                && e["detail"]["receipt"] == json!("delivered")),
        "{trail:#?}"
    );
    // The auditor reads the notice and the clue's record.
    let r = call(
        &gw,
        "GET",
        &format!("/api/v1/owner-notices/{id}"),
        &auditor,
        None,
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        detail(&gw, &auditor, clue)?["owner"]["notices"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    // Durable: queued while the post office is closed, the gateway killed, delivered by the
    // restarted gateway once the post office opens.
    let r = send(
        &gw,
        &ann,
        clue,
        json!({"action": "send_owner_notice", "channel": "post"}),
    )?;
    assert_eq!(r.status, 200, "{}", r.text());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        detail(&gw, &ann, clue)?["owner"]["notices"][3]["state"],
        json!("queued")
    );
    gw.kill();
    let post = Provider::start(post_port, 0, "post")?;
    gw.start_again()?;
    let n3 = wait_notice(&gw, &ann, clue, 3, "delivered")?;
    assert_eq!(n3["provider_id"], json!("post-0"), "{n3:#}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post.seen().len(), 1, "{:#?}", post.seen());
    assert_eq!(post.seen()[0].body["to"]["value"], json!(PHONE));
    verify(&gw, &supervisor)?;

    // The full phone is in no answer, no audit entry and no log line; an inspector reads the
    // registry's contacts masked too.
    let everything = format!(
        "{}{}{}{}",
        detail(&gw, &ann, clue)?,
        call(&gw, "GET", "/api/v1/registry/devices", &ann, None)?
            .ok()?
            .text(),
        serde_json::to_string(&audit(&gw, &supervisor, clue)?)?,
        gw.proc.log_tail(400)
    );
    assert!(!everything.contains(PHONE), "the phone leaked");
    assert!(!everything.contains(ADDRESS), "the address leaked");
    Ok(())
}

/// The provider's own token (`--role notifier --channel sms`): posts receipts for the `sms`
/// notices of its sites and nothing else. `sms_notice` is an `sms` notice of site `a`.
fn notifier_tokens_post_receipts_of_their_channel_only(
    gw: &GatewayProcess,
    sms_notice: i64,
    clue: i64,
) -> Result<()> {
    // Creation: a notifier names a configured channel; no other role names one.
    let e = gw.token_with("notifier", "a", &[]).expect_err("no channel");
    assert!(e.to_string().contains("--channel"), "{e}");
    let e = gw
        .token_with("notifier", "a", &["--channel", "pigeon"])
        .expect_err("unknown channel");
    assert!(e.to_string().contains("sms, letter, post, fax"), "{e}");
    let e = gw
        .token_with("platform", "a", &["--channel", "sms"])
        .expect_err("platform with a channel");
    assert!(e.to_string().contains("only notifier"), "{e}");
    let sms = gw.token_with("notifier", "a,b", &["--channel", "sms", "--name", "sms-gw"])?;
    let letter = gw.token_with("notifier", "a,b", &["--channel", "letter"])?;
    let elsewhere = gw.token_with("notifier", "b", &["--channel", "sms"])?;

    let receipt = format!("/api/v1/owner-notices/{sms_notice}/receipt");
    let body = json!({"status": "read", "note": "opened"});
    let r = call(gw, "POST", &receipt, &letter, Some(&body))?;
    assert_eq!(r.status, 403, "another channel's notice: {}", r.text());
    let r = call(gw, "POST", &receipt, &elsewhere, Some(&body))?;
    assert_eq!(r.status, 404, "another site's notice: {}", r.text());
    let r = call(
        gw,
        "POST",
        "/api/v1/owner-notices/999999/receipt",
        &sms,
        Some(&body),
    )?;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = call(gw, "POST", &receipt, &sms, Some(&body))?;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json()?;
    assert_eq!(answer["receipt_status"], json!("read"), "{answer:#}");
    assert_eq!(answer["channel"], json!("sms"));
    assert!(
        answer.get("contact").is_none() && answer.get("clue_id").is_none(),
        "the provider gets its receipt back, nothing more: {answer:#}"
    );
    let trail = audit(gw, &gw.token("auditor", "a")?, clue)?;
    let last = trail
        .iter()
        .rfind(|e| e["action"] == json!("owner_notice_receipt"))
        .context("receipt entry")?;
    assert_eq!(last["detail"]["receipt"], json!("read"));
    assert!(
        last["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("sms-gw#")),
        "{last:#}"
    );

    // It reads nothing: every GET route of the API but whoami answers 403, even the notice.
    let r = call(gw, "GET", "/api/v1/whoami", &sms, None)?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()?["channel"], json!("sms"));
    let doc = call(gw, "GET", "/api/v1/openapi.json", &sms, None)?
        .ok()?
        .json()?;
    let paths = doc["paths"].as_object().context("openapi paths")?;
    let mut checked = 0;
    for (path, ops) in paths {
        if ops.get("get").is_none()
            || !path.starts_with("/api/v1/")
            || matches!(path.as_str(), "/api/v1/whoami" | "/api/v1/openapi.json")
        {
            continue;
        }
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    match seg {
                        "{id}" => sms_notice.to_string(),
                        "{site}" => "a".to_string(),
                        "{device}" => "m1".to_string(),
                        _ => "x".to_string(),
                    }
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = call(gw, "GET", &concrete, &sms, None)?;
        assert_eq!(r.status, 403, "GET {concrete}: {}", r.text());
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} GET routes checked");
    // And acts on nothing.
    let r = send(
        gw,
        &sms,
        clue,
        json!({"action": "comment", "text": "hello"}),
    )?;
    assert_eq!(r.status, 403, "{}", r.text());
    Ok(())
}

/// Head-of-line: the provider refuses every POST of the first notice (by its idempotency key)
/// and accepts the others. The second notice on the same channel is delivered while the first
/// is still being retried, and the first keeps its own back-off (more attempts, still queued).
fn a_notice_in_back_off_does_not_hold_up_the_next_one_of_its_channel(
    store: &TestStore,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, REGISTRY)?;
    let port = free_port();
    let mut first_key: Option<String> = None;
    let sms = Provider::start_answering(port, "sms", move |_, headers| {
        let key = headers.get("idempotency-key").cloned().unwrap_or_default();
        let first = first_key.get_or_insert_with(|| key.clone());
        if *first == key { 503 } else { 200 }
    })?;
    let config = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"owner-hol-test\"\n\
         [clues]\nmqtt_publish = false\n\
         [registry]\nfile = \"{}\"\n\
         [[clues.owner_notify.channels]]\nname = \"sms\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{port}/send\"\n\
         max_attempts = 1000\nretry_min_ms = 300\nretry_max_ms = 1500\ntimeout_ms = 2000\n",
        free_port(),
        registry.display()
    );
    let gw = GatewayProcess::start_with_env(dir.path(), &config, &store.env())?;
    let platform = gw.token_named("platform", "a", "central")?;
    let ann = gw.token_named("inspector", "a", "ann")?;
    let clue = create(&gw, &platform, &cover_event("a", "m1"))?;
    let sms_notice = json!({"action": "send_owner_notice", "channel": "sms"});
    assert_eq!(send(&gw, &ann, clue, sms_notice.clone())?.status, 200);
    // The first notice has been refused at least once: it is in back-off now.
    wait_until("first notice refused", Duration::from_secs(30), || {
        Ok((!sms.seen().is_empty()).then_some(()))
    })?;
    assert_eq!(send(&gw, &ann, clue, sms_notice)?.status, 200);
    let second = wait_notice(&gw, &ann, clue, 1, "delivered")?;
    assert_eq!(second["attempts"], json!(1), "{second:#}");
    let first = detail(&gw, &ann, clue)?["owner"]["notices"][0].clone();
    assert_eq!(first["state"], json!("queued"), "{first:#}");
    // The first keeps being retried on its own schedule, the second is not sent again.
    wait_until("first notice retried", Duration::from_secs(30), || {
        let n = detail(&gw, &ann, clue)?["owner"]["notices"][0].clone();
        Ok(
            (n["attempts"].as_i64().unwrap_or(0) >= 3 && n["state"] == json!("queued"))
                .then_some(()),
        )
    })
    .with_context(|| gw.diagnostics())?;
    let key2 = second["idempotency_key"].as_str().context("key")?;
    let posts_of_second = sms
        .seen()
        .iter()
        .filter(|s| s.headers.get("idempotency-key").map(String::as_str) == Some(key2))
        .count();
    assert_eq!(posts_of_second, 1, "{:#?}", sms.seen());
    assert!(
        sms.seen().iter().filter(|s| s.status == 503).count() >= 3,
        "{:#?}",
        sms.seen()
    );
    Ok(())
}

/// Two gateways on one PostgreSQL, one provider that refuses the first POST of every notice
/// and answers slowly: every notice, queued through either gateway, is accepted exactly once
/// (one 200 per idempotency key at the provider), settled by one `owner_notice_delivered`
/// entry, both gateways deliver, and the shared chain verifies.
#[test]
fn two_gateways_on_one_postgres_settle_each_notice_once() -> Result<()> {
    const N: usize = 24;
    let store = TestStore::postgres()?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let registry = dir_a.path().join("registry.toml");
    std::fs::write(&registry, REGISTRY)?;
    let port = free_port();
    let mut refused = std::collections::HashSet::new();
    let provider = Provider::start_answering(port, "sms", move |_, headers| {
        std::thread::sleep(Duration::from_millis(20));
        let key = headers.get("idempotency-key").cloned().unwrap_or_default();
        if refused.insert(key) { 503 } else { 200 }
    })?;
    let config = |client: &str| {
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"{client}\"\n\
             [clues]\nmqtt_publish = false\n\
             [registry]\nfile = \"{}\"\n\
             [[clues.owner_notify.channels]]\nname = \"sms\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/send\"\n\
             max_attempts = 50\nretry_min_ms = 100\nretry_max_ms = 400\ntimeout_ms = 2000\n",
            free_port(),
            registry.display()
        )
    };
    let a = GatewayProcess::start_with_env(dir_a.path(), &config("owner-two-a"), &store.env())?;
    let b = GatewayProcess::start_with_env(dir_b.path(), &config("owner-two-b"), &store.env())?;
    let platform = a.token_named("platform", "a", "central")?;
    let ann = a.token_named("inspector", "a", "ann")?;
    let clue = create(&a, &platform, &cover_event("a", "m1"))?;
    for i in 0..N {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = send(
            gw,
            &ann,
            clue,
            json!({"action": "send_owner_notice", "channel": "sms"}),
        )?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let notices = wait_until("every notice delivered", Duration::from_secs(90), || {
        let d = detail(&b, &ann, clue)?;
        let ns = d["owner"]["notices"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((ns.len() == N && ns.iter().all(|n| n["state"] == json!("delivered"))).then_some(ns))
    })
    .with_context(|| format!("A: {}\nB: {}", a.diagnostics(), b.diagnostics()))?;
    // Anything still in flight would show now.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = provider.seen();
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.status == 200) {
        *accepted
            .entry(s.headers["idempotency-key"].clone())
            .or_default() += 1;
    }
    assert_eq!(accepted.len(), N, "{accepted:#?}");
    assert!(
        accepted.values().all(|c| *c == 1),
        "a notice accepted twice: {accepted:#?}"
    );
    for n in &notices {
        let key = n["idempotency_key"].as_str().context("key")?;
        assert_eq!(accepted.get(key), Some(&1), "{n:#}");
        assert_eq!(
            n["attempts"],
            json!(2),
            "one refusal, one acceptance: {n:#}"
        );
    }
    let trail = audit(&a, &platform, clue)?;
    for n in &notices {
        let entries = trail
            .iter()
            .filter(|e| {
                e["action"] == json!("owner_notice_delivered") && e["detail"]["notice"] == n["id"]
            })
            .count();
        assert_eq!(
            entries, 1,
            "notice {}: {entries} delivered entries",
            n["id"]
        );
    }
    let per = |gw: &GatewayProcess| {
        gw.metric("gateway_clue_delivered_total{reason=\"owner-notice:sms\"}")
    };
    let (by_a, by_b) = (per(&a)?, per(&b)?);
    assert_eq!(by_a + by_b, N as f64, "A {by_a}, B {by_b}");
    assert!(
        by_a > 0.0 && by_b > 0.0,
        "both delivered: A {by_a}, B {by_b}"
    );
    verify(&a, &platform)?;
    verify(&b, &platform)?;
    Ok(())
}
