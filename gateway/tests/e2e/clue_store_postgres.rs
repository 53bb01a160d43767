//! Several gateway processes on one PostgreSQL clue store, and the move of a SQLite pool into
//! it (`gateway store migrate`). The clue API suite itself runs on both stores in
//! `clue_api.rs`; the store's concurrency rules are unit-tested in `clue/postgres/tests.rs`.

use crate::common::{GatewayProcess, TestStore};
use anyhow::{Context, Result, ensure};
use e2e::{free_port, http};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A muck camera, so that permits can be kept through the API.
const MUCK: &str = "[[muck_trucks.cameras]]\nsite = \"a\"\ncamera = \"ring-rd\"\n";

fn config(name: &str, extra: &str) -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"{name}\"\n[clues]\nmqtt_publish = false\n{extra}",
        free_port()
    )
}

fn post(gw: &GatewayProcess, token: &str, path: &str, body: &Value) -> Result<http::Response> {
    let auth = format!("Bearer {token}");
    http::request(
        "POST",
        &format!("{}{path}", gw.http),
        Some(("application/json", body.to_string().as_bytes())),
        &[("Authorization", &auth)],
        Duration::from_secs(10),
    )
}

fn get(gw: &GatewayProcess, token: &str, path: &str) -> Result<Value> {
    gw.get_with_token(path, token)?.ok()?.json()
}

fn event(device: usize, n: usize) -> Value {
    json!({
        "rule": "cover-open", "kind": "manhole.cover_open", "level": "medium",
        "subject": {"site": "s1", "device": format!("m{device}")},
        "dedup_key": format!("cover-open/s1/m{device}"),
        "at_ms": 1_700_000_000_000i64 + n as i64,
        "title": "Cover open", "detail": {"n": n},
        "evidence": [{"type": "file", "name": "f.jpg", "content_type": "image/jpeg",
                      "bytes": [255, 216, (n % 256) as u8, (device % 256) as u8]}]
    })
}

/// A webhook receiver that answers 200 and keeps every body (the platform).
fn platform(port: u16) -> Arc<Mutex<Vec<Value>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind webhook");
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if data.len() < end + 4 + len {
                        continue;
                    }
                    if let Ok(v) = serde_json::from_slice(&data[end + 4..end + 4 + len])
                        && let Ok(mut g) = keep.lock()
                    {
                        g.push(v);
                    }
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    break;
                }
            });
        }
    });
    got
}

#[test]
fn three_gateways_share_one_pool_chain_and_outbox_while_one_is_killed_mid_stream() -> Result<()> {
    let store = TestStore::postgres()?;
    let hook_port = free_port();
    let received = platform(hook_port);
    let extra = format!(
        "webhook_url = \"http://127.0.0.1:{hook_port}/clues\"\nretry_min_ms = 50\nretry_max_ms = 500\n"
    );
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let mut gws = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        gws.push(store.gateway(d.path(), &config(&format!("gw-{i}"), &extra))?);
    }
    // A token made on one gateway works on all.
    let token = gws[0].token_named("platform", "s1", "central")?;
    let (devices, events) = (20, 300);
    let mut accepted = 0usize;
    let mut lost_replies = 0usize;
    for n in 0..events {
        if n == events / 2 {
            gws[2].kill();
        }
        let ev = event(n % devices, n);
        // Round robin; a dead gateway's share goes to the next one, as a load balancer would.
        let mut sent = false;
        for k in 0..3 {
            let gw = &gws[(n + k) % 3];
            match post(gw, &token, "/api/v1/clues", &ev) {
                Ok(r) if r.is_success() => {
                    sent = true;
                    break;
                }
                Ok(r) => anyhow::bail!("{} refused: {}", gw.http, r.status),
                Err(_) => lost_replies += 1,
            }
        }
        ensure!(sent, "no gateway took event {n}");
        accepted += 1;
    }
    let a = &gws[0];
    let list = get(a, &token, "/api/v1/clues?limit=1000")?;
    let clues = list.as_array().context("list")?;
    assert_eq!(
        clues.len(),
        devices,
        "one clue per dedup key across gateways"
    );
    let occurrences: i64 = clues.iter().filter_map(|c| c["occurrences"].as_i64()).sum();
    // A request the killed gateway committed but could not answer is sent again: at most one
    // extra occurrence per lost reply, never a lost one.
    assert!(
        occurrences as usize >= accepted && occurrences as usize <= accepted + lost_replies,
        "{occurrences} occurrences for {accepted} events ({lost_replies} lost replies)"
    );
    // Evidence stored through one gateway is served by another.
    let id = clues[0]["id"].as_i64().context("id")?;
    let detail = get(&gws[1], &token, &format!("/api/v1/clues/{id}"))?;
    let sha = detail["evidence"][0]["sha256"].as_str().context("sha")?;
    // (Originals are for admins; this token is made on another gateway than the one asked.)
    let admin = gws[1].token_named("admin", "", "root")?;
    let file = gws[0].get_with_token(&format!("/api/v1/clues/{id}/evidence/{sha}"), &admin)?;
    assert!(file.is_success(), "{}", file.status);

    // One chain, whoever wrote it, verified from any gateway's config.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .envs(gws[1].env.iter().map(|(k, v)| (k, v)))
        .args(["audit", "verify", "--config"])
        .arg(gws[1].dir.join("gateway.toml"))
        .output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");

    // Every change reaches the platform; the dead gateway's leased share once it is back.
    gws[2].start_again()?;
    let total_changes = occurrences as usize; // one created/occurrence/level_raised per event
    let by_event = e2e::wait_until("every change delivered", Duration::from_secs(60), || {
        let got = received.lock().map(|g| g.clone()).unwrap_or_default();
        let mut by: BTreeMap<i64, usize> = BTreeMap::new();
        for v in &got {
            if let Some(e) = v["event_id"].as_i64() {
                *by.entry(e).or_default() += 1;
            }
        }
        Ok((by.len() >= total_changes).then_some(by))
    })
    .with_context(|| {
        format!(
            "{}\n{}\n{}",
            gws[0].diagnostics(),
            gws[1].diagnostics(),
            gws[2].diagnostics()
        )
    })?;
    assert_eq!(by_event.len(), total_changes);
    let twice = by_event.values().filter(|n| **n > 1).count();
    // Only what the killed gateway had sent but not yet marked can come twice.
    assert!(twice <= 100, "{twice} changes delivered more than once");
    eprintln!(
        "three gateways: {accepted} events, {occurrences} occurrences, {lost_replies} lost replies, \
         {} changes delivered, {twice} twice",
        by_event.len()
    );
    Ok(())
}

/// A one-band catalogue for cover clues, so a decision can be recorded and moved.
const CATALOGUE: &str = "[clues.matters]\nversion = \"v1\"\n[[clues.matters.matter]]\n\
    id = \"cover\"\nname = \"Cover\"\nkinds = [\"manhole.*\"]\nviolated_provision = \"<a>\"\n\
    penalty_provision = \"<b>\"\n[[clues.matters.matter.bands]]\nid = \"any\"\n\
    label = \"any\"\npenalty_min = 0\npenalty_max = 100\n";

#[test]
fn a_sqlite_pool_moves_to_postgres_with_its_chain_tokens_and_evidence() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(
        dir.path(),
        &config("gw-sqlite", &format!("{CATALOGUE}\n{MUCK}")),
    )?;
    let token = gw.token_named("admin", "", "root")?;
    for n in 0..12 {
        post(&gw, &token, "/api/v1/clues", &event(n % 4, n))?.ok()?;
    }
    let first = get(&gw, &token, "/api/v1/clues?limit=100")?;
    let id = first[0]["id"].as_i64().context("id")?;
    post(
        &gw,
        &token,
        &format!("/api/v1/clues/{id}/actions"),
        &json!({"action": "claim"}),
    )?
    .ok()?;
    post(
        &gw,
        &token,
        &format!("/api/v1/clues/{id}/actions"),
        &json!({"action": "decide", "band": "any", "penalty": 50, "basis": "seen open"}),
    )?
    .ok()?;
    let before = get(&gw, &token, &format!("/api/v1/clues/{id}"))?;
    // A muck-truck permit kept through the API moves too.
    let permit = json!({"plate": "沪B74992", "hours": ["20:00-05:00"], "cameras": ["ring-rd"]});
    let r = post(&gw, &token, "/api/v1/muck-trucks/permits", &permit)?;
    ensure!(r.status == 201, "{}", r.text());
    gw.proc.stop()?;

    let pg = e2e::Postgres::start()?;
    let url = pg.create_database("clues")?;
    let migrate = |to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["store", "migrate", "--from"])
            .arg(format!(
                "sqlite:{}",
                dir.path().join("storage/clues.sqlite").display()
            ))
            .args(["--to", &format!("postgres:{to}")])
            .output()
    };
    let out = migrate(&url)?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("clues: 4 rows"), "{text}");
    assert!(text.contains("muck_permits: 1 rows"), "{text}");
    assert!(text.contains("verified before and after"), "{text}");
    // Pools are not merged: a second run into the same database is refused.
    let again = migrate(&url)?;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The same gateway, now on PostgreSQL: same token, same clue, same evidence, same chain,
    // sealed with the same key (the one `store migrate` read beside the SQLite file).
    let key_file = dir.path().join("storage/audit.key");
    let dir2 = tempfile::tempdir()?;
    let gw2 = GatewayProcess::start_with_env(
        dir2.path(),
        &config(
            "gw-pg",
            &format!(
                "{CATALOGUE}
{MUCK}
[clues.audit]
key_file = \"{}\"
",
                key_file.display()
            ),
        ),
        &[
            ("GATEWAY_CLUES__STORE", "postgres"),
            ("GATEWAY_CLUES__URL", url.as_str()),
        ],
    )?;
    let after = get(&gw2, &token, &format!("/api/v1/clues/{id}"))?;
    assert_eq!(after["clue"], before["clue"]);
    let decisions = get(&gw2, &token, "/api/v1/decisions/stats")?;
    assert_eq!(
        decisions["by_matter"]["cover"]["by_band"]["any"]["penalty_max"],
        json!(50),
        "{decisions}"
    );
    let sha = after["evidence"][0]["sha256"].as_str().context("sha")?;
    assert!(
        gw2.get_with_token(&format!("/api/v1/clues/{id}/evidence/{sha}"), &token)?
            .is_success()
    );
    let verify = get(&gw2, &token, "/api/v1/audit/verify")?;
    assert_eq!(verify["ok"], json!(true), "{verify}");
    let moved = get(
        &gw2,
        &token,
        &format!("/api/v1/muck-trucks/permits/{}", http::encode("沪B74992")),
    )?;
    assert_eq!(
        (&moved["hours"], &moved["source"], &moved["in_force"]),
        (&json!(["20:00-05:00"]), &json!("api"), &json!(true)),
        "{moved}"
    );
    // New ids continue after the copied ones.
    let created = post(&gw2, &token, "/api/v1/clues", &event(99, 1))?
        .ok()?
        .json()?;
    assert_eq!(created["clue"]["id"], json!(5));
    let verify = get(&gw2, &token, "/api/v1/audit/verify")?;
    assert_eq!(verify["ok"], json!(true), "{verify}");
    assert_eq!(verify["sealed_from"], json!(1), "{verify}");
    // A gateway with another key would fork the chain: it refuses to start.
    let dir3 = tempfile::tempdir()?;
    let config3 = dir3.path().join("gateway.toml");
    std::fs::write(
        &config3,
        format!(
            "{}[http]\nlisten = \"127.0.0.1:{}\"\n[storage]\ndir = \"{}\"\n",
            config("gw-other", ""),
            free_port(),
            dir3.path().join("storage").display()
        ),
    )?;
    let mut other = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("GATEWAY_CLUES__STORE", "postgres")
        .env("GATEWAY_CLUES__URL", &url)
        .args(["run", "--config"])
        .arg(&config3)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let exited = e2e::wait_until(
        "the gateway with another key exits",
        Duration::from_secs(30),
        || Ok(other.try_wait()?),
    );
    if exited.is_err() {
        let _ = other.kill();
    }
    let status = exited?;
    let mut err = String::new();
    if let Some(mut e) = other.stderr.take() {
        e.read_to_string(&mut err)?;
    }
    assert!(
        !status.success(),
        "a gateway with another audit key must not start"
    );
    assert!(err.contains("needs the same key"), "{err}");
    drop(pg);
    Ok(())
}
