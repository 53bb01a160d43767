//! The dashboard's routes through the real binary and a real mosquitto: the page at `/`,
//! recent readings and events per device, the camera wall and `whoami`, each scoped to the
//! token's sites and role; a bad `dashboard.dir` is refused by name.

use crate::common::GatewayProcess;
use anyhow::Result;
use e2e::{Mosquitto, http, wait_until};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

fn web_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn get(gw: &GatewayProcess, path: &str, token: &str) -> (u16, Value) {
    match gw.get_with_token(path, token) {
        Ok(r) => (r.status, r.json().unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

fn jpeg() -> Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        let v = (((x / 8) + (y / 8)) % 2 * 120 + 60) as u8;
        image::Rgb([v, v, v.saturating_add(30)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

#[test]
fn dashboard_routes_follow_role_and_sites() -> Result<()> {
    let broker = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"dash-api\"\n[clues]\nmqtt_publish = false\n[dashboard]\ndir = \"{}\"\n",
        broker.url(),
        web_dir().display()
    );
    let gw = GatewayProcess::start(dir.path(), &config)?;
    let insp_a = gw.token("inspector", "a")?;
    let device_a = gw.relay_token("a")?;
    let admin = gw.token("admin", "")?;

    // The page itself needs no token: it holds no data.
    let page = http::get(&format!("{}/", gw.http))?.ok()?;
    assert!(page.text().contains("/ui/js/app.js"), "{}", page.text());
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'self'")),
        "CSP on the page"
    );
    let traversal = http::get(&format!("{}/ui/../../Cargo.toml", gw.http))?;
    assert!(traversal.status >= 400, "no file outside web/public");

    // Readings of two sites, a level drop (pump-out) event at site a.
    let now = e2e::now_ms();
    for (i, (site, level)) in [("a", 40.0), ("a", 42.5), ("b", 7.0)].iter().enumerate() {
        broker.publish(
            &format!("v1/{site}/trap-1/telemetry"),
            &format!(
                r#"{{"ts":{},"seq":{},"stream":"grease_trap","metrics":{{"fill_pct":{level},"battery_pct":88}}}}"#,
                now + i as i64,
                i + 1
            ),
            1,
            false,
        )?;
    }
    broker.publish(
        "v1/a/trap-1/event",
        &format!(
            r#"{{"ts":{},"seq":9,"event":"level_drop","phase":"alarm","severity":"info","value":180.0,"message":"pump-out"}}"#,
            now + 5
        ),
        1,
        false,
    )?;
    let series = wait_until("two readings at a", Duration::from_secs(20), || {
        let (status, v) = get(&gw, "/api/v1/devices/a/trap-1/readings", &insp_a);
        Ok((status == 200
            && v["series"]["fill_pct"]["points"]
                .as_array()
                .is_some_and(|p| p.len() == 2))
        .then_some(v))
    })
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.diagnostics()))?;
    assert_eq!(series["series"]["fill_pct"]["points"][1][1], json!(42.5));
    assert_eq!(series["series"]["fill_pct"]["stream"], json!("grease_trap"));
    let only = get(
        &gw,
        &format!(
            "/api/v1/devices/a/trap-1/readings?metric=fill_pct&since_ms={}",
            now
        ),
        &insp_a,
    )
    .1;
    assert_eq!(
        only["series"].as_object().map(|o| o.len()),
        Some(1),
        "one metric, newer than since_ms: {only}"
    );
    assert_eq!(
        only["series"]["fill_pct"]["points"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let events = wait_until("the level drop event", Duration::from_secs(20), || {
        let (_, v) = get(&gw, "/api/v1/devices/a/trap-1/events", &insp_a);
        Ok(v.as_array().filter(|a| !a.is_empty()).cloned())
    })?;
    assert_eq!(events[0]["name"], json!("level_drop"));
    assert_eq!(events[0]["value"], json!(180.0));

    // Scope: site b is not the inspector's; unknown devices are 404; no token is 401.
    assert_eq!(
        get(&gw, "/api/v1/devices/b/trap-1/readings", &insp_a).0,
        403
    );
    assert_eq!(get(&gw, "/api/v1/devices/b/trap-1/events", &insp_a).0, 403);
    assert_eq!(get(&gw, "/api/v1/devices/b/trap-1/readings", &admin).0, 200);
    assert_eq!(get(&gw, "/api/v1/devices/a/nope/readings", &insp_a).0, 404);
    assert_eq!(
        http::get(&format!("{}/api/v1/devices/a/trap-1/readings", gw.http))?.status,
        401
    );
    let (_, devices) = get(&gw, "/api/v1/devices", &insp_a);
    assert_eq!(
        devices[0]["battery"],
        json!(88.0),
        "battery from battery_pct"
    );

    // Camera wall: frames at both sites; each token sees its own; frames need a clue reader.
    let frame = jpeg()?;
    // `k-1` exists at both sites: a device id is unique only within its site.
    for (cam, site) in [("k-a", "a"), ("k-b", "b"), ("k-1", "a"), ("k-1", "b")] {
        let r = http::request(
            "POST",
            &format!("{}/api/v1/cameras/{cam}/frames?site={site}", gw.http),
            Some(("image/jpeg", &frame)),
            &[("Authorization", &format!("Bearer {admin}"))],
            http::TIMEOUT,
        )?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (_, cams) = get(&gw, "/api/v1/cameras", &insp_a);
    let ids: Vec<&str> = cams
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["camera"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["k-1", "k-a"], "{cams}");
    assert_eq!(cams[1]["has_frame"], json!(true));
    assert_eq!(cams[1]["faults"], json!([]));
    assert_eq!(
        get(&gw, "/api/v1/cameras", &admin)
            .1
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let latest = gw.get_with_token("/api/v1/cameras/k-a/latest.jpg?site=a", &insp_a)?;
    assert_eq!(latest.status, 200);
    assert_eq!(latest.header("content-type"), Some("image/jpeg"));
    // Inspectors lack the personal-data right: a masked copy, never the frame as uploaded.
    assert_ne!(latest.body, frame, "masked for inspectors");
    assert_eq!(latest.header("x-frame-variant"), Some("masked"));
    assert_eq!(
        gw.get_with_token("/api/v1/cameras/k-b/latest.jpg?site=b", &insp_a)?
            .status,
        403
    );
    assert_eq!(
        gw.get_with_token("/api/v1/cameras/k-1/latest.jpg?site=b", &insp_a)?
            .status,
        403,
        "the same camera id at another site"
    );
    assert_eq!(
        gw.get_with_token("/api/v1/cameras/k-a/latest.jpg?site=a", &device_a)?
            .status,
        403,
        "device tokens do not view frames"
    );
    assert_eq!(
        gw.get_with_token("/api/v1/cameras/none/latest.jpg?site=a", &admin)?
            .status,
        404
    );

    // whoami: what the page may show.
    let (_, me) = get(&gw, "/api/v1/whoami", &insp_a);
    assert_eq!(me["role"], json!("inspector"));
    assert_eq!(me["sites"], json!(["a"]));
    assert_eq!(me["all_sites"], json!(false));
    assert_eq!(me["may_read_clues"], json!(true));
    assert_eq!(
        get(&gw, "/api/v1/whoami", &device_a).1["may_read_clues"],
        json!(false)
    );
    assert_eq!(get(&gw, "/api/v1/whoami", "gwt_nope").0, 401);

    let (_, doc) = get(&gw, "/api/v1/openapi.json", &admin);
    for p in [
        "/api/v1/whoami",
        "/api/v1/devices/{site}/{device}/readings",
        "/api/v1/devices/{site}/{device}/events",
        "/api/v1/cameras",
        "/api/v1/cameras/{id}/latest.jpg",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lists {p}");
    }
    Ok(())
}

#[test]
fn a_dashboard_dir_without_the_page_is_refused_by_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, "[dashboard]\ndir = \"/nonexistent/web\"\n")?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()?;
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dashboard.dir"), "{text}");
    Ok(())
}
