//! The promises of `SECURITY.md`, each pinned through the real binary: who may see what, what
//! a role without the personal-data right gets, and that tokens and clue ids reveal nothing.
//! Every test here failed on the code before its fix (issue 19).

use crate::common::GatewayProcess;
use anyhow::{Context, Result};
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

/// The whole audit chain's entries of one `action`, as the admin exports them.
fn audit_entries(gw: &GatewayProcess, action: &str) -> Result<Vec<Value>> {
    let admin = gw.token("admin", "")?;
    let audit = call(gw, "GET", "/api/v1/audit/export?format=json", &admin, None)?
        .ok()?
        .json()?;
    let Value::Array(entries) = audit else {
        anyhow::bail!("audit export is not a list: {audit}");
    };
    Ok(entries
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect())
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

fn parking_event(site: &str, plate: &str, title_prefix: &str) -> Value {
    json!({
        "rule": "no-parking",
        "kind": "parking.illegal",
        "level": "medium",
        "subject": {"site": site, "device": "cam1", "plate": plate},
        "dedup_key": format!("no-parking/{site}/cam1/{plate}"),
        "at_ms": 1_700_000_000_000i64,
        "title": format!("{title_prefix}{plate} parked 9 min"),
        "detail": {"plate": plate, "note": format!("plate {plate} read twice")},
        "evidence": [],
    })
}

/// A textured JPEG (masking must visibly change it).
fn scene_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        let v = ((x * 37 + y * 11) % 256) as u8;
        image::Rgb([v, (x * y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("jpeg");
    out.into_inner()
}

#[test]
fn plates_are_masked_on_every_read_path_for_roles_without_the_right() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let platform = gw.token("platform", "a")?;
    let insp = gw.token("inspector", "a")?;
    let sup = gw.token("supervisor", "a")?;
    let plate = "京A12345";
    let id = create(&gw, &platform, &parking_event("a", plate, ""))?;
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        &insp,
        Some(&json!({"action": "comment", "text": "seen again"})),
    )?
    .ok()?;
    for path in [
        "/api/v1/clues".to_string(),
        format!("/api/v1/clues/{id}"),
        format!("/api/v1/clues/{id}/audit"),
        "/api/v1/clues/export?format=csv".into(),
        "/api/v1/clues/export?format=json".into(),
    ] {
        let r = call(&gw, "GET", &path, &insp, None)?.ok()?;
        assert!(!r.text().contains("12345"), "{path}: {}", r.text());
        assert!(r.text().contains("京A*****"), "{path}: {}", r.text());
        let full = call(&gw, "GET", &path, &sup, None)?.ok()?;
        assert!(full.text().contains(plate), "{path}: supervisors see it");
    }
    // The action answer carries the clue too.
    let r = call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{id}/actions"),
        &insp,
        Some(&json!({"action": "claim"})),
    )?
    .ok()?;
    assert!(!r.text().contains("12345"), "{}", r.text());

    // The last camera frame: masked for the inspector, original (audited) for the supervisor.
    let device = gw.token("device", "a")?;
    let frame = scene_jpeg();
    let auth = format!("Bearer {device}");
    http::request(
        "POST",
        &format!("{}/api/v1/cameras/cam1/frames?site=a", gw.http),
        Some(("image/jpeg", &frame)),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )?
    .ok()?;
    let latest = "/api/v1/cameras/cam1/latest.jpg?site=a";
    let masked = call(&gw, "GET", latest, &insp, None)?.ok()?;
    assert_ne!(masked.body, frame, "the inspector never gets the raw frame");
    let decoded = image::load_from_memory(&masked.body)?;
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    let original = call(&gw, "GET", latest, &sup, None)?.ok()?;
    assert_eq!(original.body, frame);
    let accesses = audit_entries(&gw, "frame_original_access")?;
    assert_eq!(accesses.len(), 1, "{accesses:?}");
    assert_eq!(accesses[0]["detail"]["camera"], "cam1");
    Ok(())
}

#[test]
fn csv_exports_neutralise_formulas_and_a_limited_export_says_so() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let admin = gw.token("admin", "")?;
    create(
        &gw,
        &admin,
        &parking_event("a", "沪B54321", "=HYPERLINK(\"http://x\",\"y\")"),
    )?;
    for d in ["m1", "m2"] {
        create(&gw, &admin, &clue_event("a", d))?;
    }
    let csv = call(&gw, "GET", "/api/v1/clues/export?format=csv", &admin, None)?.ok()?;
    let text = csv.text();
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(
        !text.contains(",=") && !text.contains(",\"="),
        "no field starts with a formula: {text}"
    );
    assert_eq!(csv.header("x-export-truncated"), Some("false"));

    let cut = call(
        &gw,
        "GET",
        "/api/v1/clues/export?format=json&limit=2",
        &admin,
        None,
    )?
    .ok()?;
    assert_eq!(cut.json()?.as_array().map(|a| a.len()), Some(2));
    assert_eq!(cut.header("x-export-truncated"), Some("true"));
    let audit = call(
        &gw,
        "GET",
        "/api/v1/audit/export?format=csv&limit=2",
        &admin,
        None,
    )?
    .ok()?;
    assert_eq!(audit.header("x-export-truncated"), Some("true"));
    assert!(audit.header("x-export-next-from-ms").is_some());
    Ok(())
}

#[test]
fn pumpouts_are_audited_and_cannot_lie_in_the_future_or_the_distant_past() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &offline_config())?;
    let insp = gw.token("inspector", "a")?;
    let now = e2e::now_ms();
    let visit =
        |from: i64, to: i64| json!({"site": "a", "device": "trap-1", "from_ms": from, "to_ms": to});
    let hour = 3_600_000i64;

    // A visit booked ahead would excuse dumping that has not happened yet; one from last
    // month would excuse a discharge after the fact.
    for (what, body) in [
        ("future", visit(now + hour, now + 2 * hour)),
        ("ends in the future", visit(now - hour, now + hour)),
        (
            "too old",
            visit(now - 8 * 24 * hour, now - 8 * 24 * hour + hour),
        ),
    ] {
        let r = call(&gw, "POST", "/api/v1/pumpouts", &insp, Some(&body))?;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    let r = call(
        &gw,
        "POST",
        "/api/v1/pumpouts",
        &insp,
        Some(&visit(now - 2 * hour, now - hour)),
    )?;
    assert_eq!(r.status, 201, "{}", r.text());

    let registered = audit_entries(&gw, "pumpout_registered")?;
    let audit = format!("{registered:?}");
    assert_eq!(
        registered.len(),
        1,
        "only the accepted visit is audited: {audit}"
    );
    assert!(
        registered[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("inspector")),
        "{audit}"
    );
    assert_eq!(registered[0]["detail"]["pumpout"]["device"], "trap-1");
    assert_eq!(registered[0]["detail"]["pumpout"]["to_ms"], now - hour);
    Ok(())
}
