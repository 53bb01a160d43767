//! The web dashboard in a real browser (Debian's chromium driven by Playwright core from
//! `web/tests/dashboard.mjs`), against the real binary's embedded demo: in-process broker,
//! firmware simulator, rules engine, clue pool.
//!
//! The inspector's token covers one site. The browser signs in, and when the clue board is
//! open and the live stream connected it prints `READY live-clue`; this test then publishes a
//! manhole-cover-open reading to the demo's broker, as a device would. The rules engine raises
//! the clue once the cover has read open for 30 s (`cover-open`'s confirmation), and the browser must see it arrive over SSE without a reload, claim and resolve
//! it, and find both steps in its audit trail. A clue of another site must stay invisible
//! (not on the board, 403 by address). Every page is screenshotted to
//! `{target}/dashboard-screenshots/`.

use anyhow::{Context, Result, bail};
use e2e::{ServerProcess, free_port, http, wait_until};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The site of the inspector's token and of the live clue, and a site it must not see.
const SITE: &str = "mh-900";
const LIVE_DEVICE: &str = "cover-live-1";
const OTHER_SITE: &str = "r-001";
/// Whole browser run, bounded.
const BROWSER_LIMIT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gateway/ has a parent")
        .to_path_buf()
}

/// `{target}/dashboard-screenshots`, from where cargo put the binary (`{target}/debug/gateway`).
fn screenshot_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_gateway"));
    bin.ancestors()
        .nth(2)
        .unwrap_or(Path::new("."))
        .join("dashboard-screenshots")
}

fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    p.is_file().then_some(p)
}

fn jpeg(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<(&str, &[u8])>,
) -> Result<http::Response> {
    let auth = format!("Bearer {token}");
    http::request(
        method,
        &format!("{base}{path}"),
        body,
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )
}

/// The demo with its data, HTTP and broker ports, and a config file that points
/// `gateway token create` at the same data folder.
struct Demo {
    proc: ServerProcess,
    http: String,
    mqtt_port: u16,
    config: PathBuf,
    admin: String,
}

impl Demo {
    fn start(dir: &Path) -> Result<Demo> {
        let port = free_port();
        let mqtt_port = free_port();
        let data = dir.join("data");
        let args = [
            "demo",
            "--data",
            &data.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--mqtt-port",
            &mqtt_port.to_string(),
            "--restaurants",
            "2",
            "--manholes",
            "2",
            "--dashboard-dir",
            &repo().join("web").display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        let proc = ServerProcess::spawn(
            "gateway-demo",
            env!("CARGO_BIN_EXE_gateway"),
            args,
            dir.join("demo.log"),
        )?;
        let http = format!("http://127.0.0.1:{port}");
        wait_until("demo /healthz", Duration::from_secs(30), || {
            Ok(http::get(&format!("{http}/healthz"))
                .ok()
                .filter(|r| r.is_success()))
        })
        .with_context(|| proc.log_tail(30))?;
        let admin = std::fs::read_to_string(data.join("admin.token"))
            .context("the demo writes admin.token")?
            .trim()
            .to_string();
        let config = dir.join("tokens.toml");
        std::fs::write(
            &config,
            format!("[storage]\ndir = \"{}\"\n", data.display()),
        )?;
        Ok(Demo {
            proc,
            http,
            mqtt_port,
            config,
            admin,
        })
    }

    fn token(&self, role: &str, sites: &str, name: &str) -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["token", "create", "--config"])
            .arg(&self.config)
            .args(["--role", role, "--sites", sites, "--name", name])
            // The browser test's device token posts for several devices of the site.
            .args(if role == "device" {
                &["--relay"][..]
            } else {
                &[]
            })
            .output()?;
        if !out.status.success() {
            bail!("token create: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

/// Two clues of `SITE` dismissed by inspector `zed` with a reason that says nothing, one with
/// a comment on record first: after an oversight run, a red and a yellow
/// `dismissal_without_basis` warning for the supervision page. Returns the red one's id.
fn supervision_warnings(demo: &Demo, supervisor: &str) -> Result<i64> {
    let zed = demo.token("inspector", SITE, "zed")?;
    let mut red = None;
    for (device, comment) in [("cover-sv-1", false), ("cover-sv-2", true)] {
        let ev = json!({
            "rule": "cover-open", "kind": "manhole.cover_open", "level": "low",
            "subject": {"site": SITE, "device": device},
            "dedup_key": format!("cover-open/{SITE}/{device}"),
            "at_ms": e2e::now_ms(), "title": format!("Cover open at {SITE}/{device}"),
            "detail": {}, "department": "water",
            "evidence": [{"type": "note", "text": "tilt above 30 degrees"}]
        })
        .to_string();
        let id = call(
            &demo.http,
            "POST",
            "/api/v1/clues",
            &demo.admin,
            Some(("application/json", ev.as_bytes())),
        )?
        .ok()?
        .json()?["clue"]["id"]
            .as_i64()
            .context("clue id")?;
        let path = format!("/api/v1/clues/{id}/actions");
        let mut steps = vec![json!({"action": "dismiss", "reason": "ok"})];
        if comment {
            steps.insert(
                0,
                json!({"action": "comment", "text": "owner says a crew opened it"}),
            );
        }
        for step in steps {
            let body = step.to_string();
            call(
                &demo.http,
                "POST",
                &path,
                &zed,
                Some(("application/json", body.as_bytes())),
            )?
            .ok()?;
        }
        if !comment {
            red = Some(id);
        }
    }
    call(
        &demo.http,
        "POST",
        "/api/v1/oversight/run",
        supervisor,
        None,
    )?
    .ok()?;
    let warnings = call(
        &demo.http,
        "GET",
        "/api/v1/oversight/warnings",
        supervisor,
        None,
    )?
    .ok()?
    .json()?;
    warnings
        .as_array()
        .and_then(|w| {
            w.iter().find(|w| {
                w["model"] == json!("dismissal_without_basis") && w["clue_id"] == json!(red)
            })
        })
        .and_then(|w| w["id"].as_i64())
        .with_context(|| format!("no red dismissal warning: {warnings:#}"))
}

/// Runs the browser script; on `READY live-clue` calls `on_ready`. Returns (success, output).
fn run_browser(
    env: &[(&str, String)],
    mut on_ready: impl FnMut() -> Result<()>,
) -> Result<(bool, String)> {
    let web = repo().join("web");
    let mut child = Command::new("node")
        .arg("tests/dashboard.mjs")
        .current_dir(&web)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting node (is nodejs installed?)")?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let deadline = Instant::now() + BROWSER_LIMIT;
    let mut out = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            out.push_str("\n(browser run timed out and was killed)");
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => {
                println!("browser: {line}");
                if line.trim() == "READY live-clue" {
                    on_ready()?;
                }
                out.push_str(&line);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    for r in readers {
        let _ = r.join();
    }
    Ok((status.success(), out))
}

/// The front-end's pure parts (SSE parsing, both languages complete, GeoJSON) under node.
#[test]
fn dashboard_unit_tests_pass_under_node() -> Result<()> {
    let out = Command::new("node")
        .args(["--test", "tests/unit.test.mjs"])
        .current_dir(repo().join("web"))
        .output()
        .context("starting node (is nodejs installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("# fail 0") && !text.contains("# pass 0"),
        "node --test failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn dashboard_in_chromium_shows_a_live_clue_that_is_claimed_resolved_and_audited() -> Result<()> {
    let Some(chromium) = chromium() else {
        e2e::skip_outside_ci(
            "chromium is not installed (apt-get install chromium, or run tests/run-all.sh)",
        );
        return Ok(());
    };
    let web = repo().join("web");
    if !web.join("node_modules/playwright-core").is_dir()
        || !web.join("node_modules/uplot").is_dir()
    {
        bail!(
            "web/node_modules is missing: run `npm ci` in web/ (tests/run-all.sh and deploy/demo.sh do)"
        );
    }

    let dir = tempfile::tempdir()?;
    let demo = Demo::start(dir.path())?;
    let page = http::get(&format!("{}/", demo.http))?.ok()?;
    assert!(
        page.text().contains("执法线索看板"),
        "/ serves the dashboard: {}",
        page.text()
    );
    let inspector = demo.token("inspector", SITE, "ann")?;
    let device = demo.token("device", SITE, "meter")?;
    let supervisor = demo.token("supervisor", SITE, "sue")?;
    let warning_id = supervision_warnings(&demo, &supervisor)?;

    // The live device's owner, with a phone, so the clue's owner card can send a notice
    // through one of the demo's channels.
    let r = call(
        &demo.http,
        "PUT",
        &format!("/api/v1/registry/devices/{SITE}/{LIVE_DEVICE}"),
        &demo.admin,
        Some((
            "application/json",
            json!({"kind": "manhole_cover", "owner": "Drainage office", "owner_phone": "13900139000"})
                .to_string()
                .as_bytes(),
        )),
    )?;
    anyhow::ensure!(r.status == 201, "registry entry: {} {}", r.status, r.text());
    // A clue at another site, which the inspector must never see, with a picture as evidence.
    let frame = jpeg(320, 240, |x, y| {
        [
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 8 + y / 8) % 2 * 200) as u8,
        ]
    })?;
    let other = call(
        &demo.http,
        "POST",
        "/api/v1/clues",
        &demo.admin,
        Some((
            "application/json",
            json!({
                "rule": "cover-open", "kind": "manhole.cover_open", "level": "high",
                "subject": {"site": OTHER_SITE, "device": "cover-x"},
                "dedup_key": format!("cover-open/{OTHER_SITE}/cover-x"),
                "at_ms": e2e::now_ms(), "title": format!("Cover open at {OTHER_SITE}/cover-x"),
                "detail": {}, "department": "water",
                "evidence": [{"type": "file", "name": "frame.jpg", "content_type": "image/jpeg",
                              "bytes": frame}]
            })
            .to_string()
            .as_bytes(),
        )),
    )?
    .ok()?
    .json()?;
    let other_id = other["clue"]["id"].as_i64().context("clue id")?;

    // A frame for the camera wall (the simulated kitchen cameras send status, not pictures).
    let frame = jpeg(320, 240, |x, y| {
        [
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 8 + y / 8) % 2 * 200) as u8,
        ]
    })?;
    call(
        &demo.http,
        "POST",
        &format!("/api/v1/cameras/cam-wall/frames?site={OTHER_SITE}"),
        &demo.admin,
        Some(("image/jpeg", &frame)),
    )?
    .ok()?;

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    for e in std::fs::read_dir(&shots)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "png") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // A still for the flights page's upload (no GPS EXIF: processed, reported as such).
    let still = jpeg(640, 480, |x, y| {
        [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]
    })?;
    let still_path = shots.join("upload-still.jpg");
    std::fs::write(&still_path, &still)?;
    let still_sha: String = ring::digest::digest(&ring::digest::SHA256, &still)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let env = [
        ("UPLOAD_JPEG", still_path.display().to_string()),
        ("UPLOAD_SHA256", still_sha),
        ("DASHBOARD_URL", demo.http.clone()),
        ("INSPECTOR_TOKEN", inspector.clone()),
        ("ADMIN_TOKEN", demo.admin.clone()),
        ("DEVICE_TOKEN", device),
        ("SUPERVISOR_TOKEN", supervisor.clone()),
        ("WARNING_ID", warning_id.to_string()),
        ("SITE", SITE.to_string()),
        ("LIVE_DEVICE", LIVE_DEVICE.to_string()),
        ("OTHER_SITE", OTHER_SITE.to_string()),
        ("OTHER_CLUE_ID", other_id.to_string()),
        ("SCREENSHOT_DIR", shots.display().to_string()),
        ("CHROMIUM", chromium.display().to_string()),
    ];
    let mqtt_port = demo.mqtt_port;
    let mut published = false;
    let (ok, out) = run_browser(&env, || {
        let payload = format!(
            r#"{{"ts":{},"seq":1,"stream":"manhole_cover","metrics":{{"open":true,"battery_pct":81}}}}"#,
            e2e::now_ms()
        );
        e2e::publish_qos1(
            mqtt_port,
            "dashboard-test-device",
            vec![(
                format!("v1/{SITE}/{LIVE_DEVICE}/telemetry"),
                payload.into_bytes(),
            )],
            10,
            Duration::from_secs(20),
            |_, _| {},
        )?;
        published = true;
        Ok(())
    })?;
    assert!(
        ok && out.contains("PASS "),
        "browser test failed:\n{out}\n--- demo log\n{}",
        demo.proc.log_tail(40)
    );
    assert!(
        published,
        "the live clue was raised while the board was open"
    );
    for step in [
        "appeared through SSE",
        "audit trail has claim then resolve",
        &format!("clue #{other_id} of {OTHER_SITE} is not on the board"),
        &format!("clue #{other_id} of {OTHER_SITE} is refused (404)"),
        "English toggle kept after reload",
        "the clue shows its enforcement matter in Chinese",
        "with reasons in Chinese",
        "a penalty outside the band is flagged in the form",
        "recorded in the audit trail",
        "statistics count the decision by matter and band",
        "the matter, band reasons and decision in English",
        "the owner card in Chinese: not told yet",
        "the answer window in Chinese",
        "the owner card and answer window in English",
        "the configured channels are offered",
        "the sms channel's templates are offered",
        "the notice is listed with its channel and the phone masked",
        "the channel list and the notice in English",
        "camera wall shows a frame",
        "evidence image shown",
        "the clue shows its unit, lead and assisting departments in English",
        "and in Chinese",
        "the unit filter shows only the township's clues",
        "a device token sees devices, no clue pages or stream",
        "no sideways scrolling on a portrait tablet",
        "a page that answers late does not draw over the page shown since",
        "supervision page lists the red warning first, then the yellow one",
        "a supervisor turns the red warning into a notice to a configured unit",
        "the supervision page in English",
        "the supervision page in Chinese",
        "the unit's officer acknowledges the notice",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("OK ") && l.contains(step)),
            "missing step `{step}`:\n{out}"
        );
    }

    // The browser's actions are in the gateway's own record, under the inspector's name.
    let clues = call(
        &demo.http,
        "GET",
        &format!("/api/v1/clues?site={SITE}"),
        &demo.admin,
        None,
    )?
    .ok()?
    .json()?;
    let live = clues
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["subject"]["device"] == json!(LIVE_DEVICE))
        })
        .context("the live clue exists")?;
    assert_eq!(live["status"], json!("resolved"));
    let id = live["id"].as_i64().context("id")?;
    let audit: Value = call(
        &demo.http,
        "GET",
        &format!("/api/v1/clues/{id}/audit"),
        &demo.admin,
        None,
    )?
    .ok()?
    .json()?;
    let steps: Vec<(String, String)> = audit
        .as_array()
        .context("audit list")?
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for action in ["claim", "resolve", "decide"] {
        assert!(
            steps
                .iter()
                .any(|(a, who)| a == action && who.starts_with("ann#")),
            "{action} by ann in {steps:?}"
        );
    }
    // The notice made and acknowledged in the browser is on its history, by sue then ann.
    let notices = call(
        &demo.http,
        "GET",
        "/api/v1/oversight/notices?state=all",
        &supervisor,
        None,
    )?
    .ok()?
    .json()?;
    let notice = notices
        .as_array()
        .and_then(|a| a.iter().find(|n| n["warning_id"] == json!(warning_id)))
        .context("the notice issued in the browser")?;
    assert_eq!(notice["state"], json!("acknowledged"), "{notice:#}");
    assert_eq!(notice["unit"], json!("chengdong/urban-management"));
    let detail: Value = call(
        &demo.http,
        "GET",
        &format!("/api/v1/oversight/notices/{}", notice["id"]),
        &supervisor,
        None,
    )?
    .ok()?
    .json()?;
    let who: Vec<(String, String)> = detail["history"]
        .as_array()
        .context("history")?
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        who.len() == 2
            && who[0].0 == "notice_issued"
            && who[0].1.starts_with("sue#")
            && who[1].0 == "notice_acknowledged"
            && who[1].1.starts_with("ann#"),
        "{who:?}"
    );
    let pngs = std::fs::read_dir(&shots)?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(pngs >= 10, "a screenshot per page, got {pngs}");
    println!("dashboard screenshots ({pngs}) in {}", shots.display());
    Ok(())
}
