//! Oversight through the real binary: masked evidence for lesser roles while the original's
//! hash still verifies (and its access is audited), the retention purge (file gone, audit
//! chain still valid), a duplicate act ending as one lead with a link, and supervision
//! warnings that reach supervisors but not the person they are about.

use crate::common::{GatewayProcess, call};
use anyhow::Result;
use e2e::free_port;
use serde_json::{Value, json};
use std::path::Path;

/// No broker in reach and no MQTT delivery; jobs only when asked (`every_s` an hour), and
/// image evidence kept 1 s after disposal so the purge can be shown.
fn config() -> String {
    format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"oversight-test\"\n\
         [clues]\nmqtt_publish = false\n\
         [clues.oversight]\nevery_s = 3600\n\
         [clues.retention]\nevery_s = 3600\nimage_s = 1\n",
        free_port()
    )
}

fn token(gw: &GatewayProcess, role: &str, sites: &str, name: &str) -> Result<String> {
    gw.token_named(role, sites, name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A noisy 160x120 street frame (noise makes masking measurable).
fn frame() -> Vec<u8> {
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([((x * 37 + y * 11) % 256) as u8, ((x * y) % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(&img)
        .expect("encode");
    out
}

/// Mean absolute difference of neighbouring red values inside (x0, y0, x1, y1).
fn roughness(jpeg: &[u8], r: (u32, u32, u32, u32)) -> f64 {
    let img = image::load_from_memory(jpeg).expect("decode").to_rgb8();
    let (mut sum, mut n) = (0f64, 0f64);
    for y in r.1..r.3 {
        for x in r.0..r.2 - 1 {
            sum += (img.get_pixel(x, y).0[0] as f64 - img.get_pixel(x + 1, y).0[0] as f64).abs();
            n += 1.0;
        }
    }
    sum / n
}

fn parking_event(jpeg: &[u8], department: &str, rule: &str) -> Value {
    json!({
        "rule": rule,
        "kind": "parking.overstay",
        "level": "medium",
        "subject": {"site": "s1", "device": "cam-3", "plate": "京A12345"},
        "dedup_key": format!("{rule}/s1/cam-3/京A12345"),
        "at_ms": 1_700_000_000_000i64,
        "title": "京A12345 parked 9 min in no-parking zone kerb (camera cam-3)",
        "evidence": [
            {"type": "file", "name": "cam-3-first.jpg", "content_type": "image/jpeg",
             "bytes": jpeg,
             "regions": [{"kind": "plate", "x0": 60.0, "y0": 80.0, "x1": 100.0, "y1": 96.0},
                         {"kind": "person", "x0": 120.0, "y0": 10.0, "x1": 150.0, "y1": 110.0}]}
        ],
        "department": department
    })
}

fn verify_cli(config: &Path) -> Result<bool> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()?;
    Ok(out.status.success())
}

fn evidence_path(gw: &GatewayProcess, sha: &str) -> std::path::PathBuf {
    gw.dir
        .join("storage/evidence")
        .join(&sha[..2])
        .join(&sha[2..])
}

#[test]
fn lesser_roles_get_masked_images_originals_verify_and_the_purge_keeps_the_chain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &config())?;
    let admin = token(&gw, "admin", "", "root")?;
    let ann = token(&gw, "inspector", "s1", "ann")?;
    let sue = token(&gw, "supervisor", "s1", "sue")?;
    let jpeg = frame();
    let sha = sha256_hex(&jpeg);
    let created = call(
        &gw,
        "POST",
        "/api/v1/clues",
        &admin,
        Some(&parking_event(&jpeg, "city-management", "parking-overstay")),
    )?
    .ok()?
    .json()?;
    let id = created["clue"]["id"].as_i64().expect("id");
    let detail = call(&gw, "GET", &format!("/api/v1/clues/{id}"), &ann, None)?.json()?;
    assert_eq!(detail["evidence"][0]["sha256"], json!(sha));
    assert_eq!(detail["evidence"][0]["regions"][0]["kind"], json!("plate"));
    assert_eq!(detail["leniency"]["recommended"], json!(true), "{detail}");

    // The inspector gets a masked copy: not the original bytes, plate and head flattened.
    let path = format!("/api/v1/clues/{id}/evidence/{sha}");
    let masked = call(&gw, "GET", &path, &ann, None)?.ok()?;
    assert_eq!(masked.header("x-evidence-variant"), Some("masked"));
    assert_eq!(masked.header("x-original-sha256"), Some(sha.as_str()));
    assert_ne!(sha256_hex(&masked.body), sha);
    let plate = (62, 82, 98, 94);
    let head = (122, 12, 148, 38);
    let elsewhere = (10, 10, 50, 60);
    assert!(roughness(&masked.body, plate) < roughness(&jpeg, plate) / 4.0);
    assert!(roughness(&masked.body, head) < roughness(&jpeg, head) / 4.0);
    assert!((roughness(&masked.body, elsewhere) - roughness(&jpeg, elsewhere)).abs() < 10.0);
    let refused = call(&gw, "GET", &format!("{path}?variant=original"), &ann, None)?;
    assert_eq!(refused.status, 403, "{}", refused.text());
    // The supervisor gets the original, its hash verifies, and the access is audited.
    let original = call(&gw, "GET", &path, &sue, None)?.ok()?;
    assert_eq!(original.header("x-evidence-variant"), Some("original"));
    assert_eq!(sha256_hex(&original.body), sha);
    assert_eq!(sha256_hex(&std::fs::read(evidence_path(&gw, &sha))?), sha);
    let trail = call(&gw, "GET", &format!("/api/v1/clues/{id}/audit"), &sue, None)?.json()?;
    let access: Vec<&Value> = trail
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == json!("evidence_original_access"))
        .collect();
    assert_eq!(access.len(), 1, "{trail}");
    assert!(
        access[0]["actor"]
            .as_str()
            .expect("actor")
            .starts_with("sue#")
    );
    assert_eq!(access[0]["detail"]["sha256"], json!(sha));
    // Exports follow the same rule: the inspector's export has no plate.
    let csv = call(&gw, "GET", "/api/v1/clues/export?format=csv", &ann, None)?.text();
    assert!(
        !csv.contains("京A12345") && csv.contains("京A*****"),
        "{csv}"
    );
    let csv = call(&gw, "GET", "/api/v1/clues/export?format=csv", &sue, None)?.text();
    assert!(csv.contains("京A12345"));

    // Owner told and heard, then the clue is dismissed; its image is past retention.
    for action in [
        json!({"action": "notify_owner", "channel": "sms"}),
        json!({"action": "owner_response", "statement": "loading permit 2231 for that hour"}),
        json!({"action": "dismiss", "reason": "loading permit 2231 checked with the district"}),
    ] {
        call(
            &gw,
            "POST",
            &format!("/api/v1/clues/{id}/actions"),
            &ann,
            Some(&action),
        )?
        .ok()?;
    }
    let detail = call(&gw, "GET", &format!("/api/v1/clues/{id}"), &ann, None)?.json()?;
    assert_eq!(detail["owner"]["notified"][0]["channel"], json!("sms"));
    assert_eq!(
        detail["owner"]["responses"][0]["statement"],
        json!("loading permit 2231 for that hour")
    );
    assert_eq!(
        call(&gw, "POST", "/api/v1/evidence/purge", &sue, None)?.status,
        403,
        "admins only"
    );
    let report = call(&gw, "POST", "/api/v1/evidence/purge", &admin, None)?
        .ok()?
        .json()?;
    assert_eq!(report["purged"], json!(1), "{report}");
    assert_eq!(report["files_deleted"], json!(1));
    assert!(
        !evidence_path(&gw, &sha).exists(),
        "purged evidence is gone from disk"
    );
    assert_eq!(call(&gw, "GET", &path, &sue, None)?.status, 410);
    let v = call(&gw, "GET", "/api/v1/audit/verify", &sue, None)?;
    assert_eq!(v.status, 200, "{}", v.text());
    assert_eq!(v.json()?["ok"], json!(true));
    assert!(verify_cli(&gw.dir.join("gateway.toml"))?);
    let trail = call(&gw, "GET", &format!("/api/v1/clues/{id}/audit"), &sue, None)?.json()?;
    let purge = trail
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == json!("evidence_purged"))
        .expect("purge recorded");
    assert_eq!(purge["detail"]["sha256"], json!(sha));
    assert_eq!(purge["detail"]["reason"], json!("retention"));
    Ok(())
}

#[test]
fn a_duplicate_act_is_linked_and_warnings_reach_supervisors_but_not_the_person_concerned()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = GatewayProcess::start(dir.path(), &config())?;
    let admin = token(&gw, "admin", "", "root")?;
    let ann = token(&gw, "inspector", "s1", "ann")?;
    let sue = token(&gw, "supervisor", "s1", "sue")?;
    let max = token(&gw, "supervisor", "s1", "max")?;
    let jpeg = frame();
    let mut ids = Vec::new();
    for (dept, rule) in [
        ("city-management", "parking-overstay"),
        ("traffic-police", "police-parking"),
    ] {
        let c = call(
            &gw,
            "POST",
            "/api/v1/clues",
            &admin,
            Some(&parking_event(&jpeg, dept, rule)),
        )?
        .ok()?
        .json()?;
        ids.push(c["clue"]["id"].as_i64().expect("id"));
    }
    let (lead, other) = (ids[0], ids[1]);
    // A dismissal with nothing to go on, by supervisor sue, on a third clue.
    let mut ev = parking_event(&frame(), "city-management", "parking-overstay");
    ev["subject"]["plate"] = json!("京B77777");
    ev["subject"]["device"] = json!("cam-9");
    ev["dedup_key"] = json!("parking-overstay/s1/cam-9/京B77777");
    let third = call(&gw, "POST", "/api/v1/clues", &admin, Some(&ev))?
        .ok()?
        .json()?["clue"]["id"]
        .as_i64()
        .expect("id");
    call(
        &gw,
        "POST",
        &format!("/api/v1/clues/{third}/actions"),
        &sue,
        Some(&json!({"action": "dismiss", "reason": "ok"})),
    )?
    .ok()?;

    assert_eq!(
        call(&gw, "GET", "/api/v1/oversight/warnings", &ann, None)?.status,
        403,
        "inspectors do not read warnings"
    );
    call(&gw, "POST", "/api/v1/oversight/run", &max, None)?.ok()?;
    let seen_by_max = call(&gw, "GET", "/api/v1/oversight/warnings", &max, None)?.json()?;
    let models: Vec<&str> = seen_by_max
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["model"].as_str())
        .collect();
    assert!(models.contains(&"duplicate_act"), "{seen_by_max}");
    assert!(models.contains(&"dismissal_without_basis"), "{seen_by_max}");
    let about_sue = seen_by_max
        .as_array()
        .expect("warnings")
        .iter()
        .find(|w| w["model"] == json!("dismissal_without_basis"))
        .expect("warning");
    assert_eq!(about_sue["level"], json!("red"));
    assert_eq!(about_sue["clue_id"], json!(third));
    let seen_by_sue = call(&gw, "GET", "/api/v1/oversight/warnings", &sue, None)?.json()?;
    assert!(
        !seen_by_sue
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w["model"] == json!("dismissal_without_basis")),
        "sue does not see the warning about herself: {seen_by_sue}"
    );
    assert!(
        seen_by_sue
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w["model"] == json!("duplicate_act"))
    );

    // One violation, one case: the first clue leads, the other is linked, both say so.
    let d_lead = call(&gw, "GET", &format!("/api/v1/clues/{lead}"), &ann, None)?.json()?;
    let d_other = call(&gw, "GET", &format!("/api/v1/clues/{other}"), &ann, None)?.json()?;
    assert_eq!(
        d_lead["links"]["linked"][0]["clue_id"],
        json!(other),
        "{d_lead}"
    );
    assert_eq!(d_lead["links"]["lead"], Value::Null);
    assert_eq!(
        d_other["links"]["lead"]["clue_id"],
        json!(lead),
        "{d_other}"
    );
    assert_eq!(
        d_other["links"]["lead"]["department"],
        json!("city-management")
    );
    // The link is on both trails and the chain verifies.
    for id in [lead, other] {
        let trail = call(&gw, "GET", &format!("/api/v1/clues/{id}/audit"), &ann, None)?.json()?;
        assert!(
            trail
                .as_array()
                .expect("entries")
                .iter()
                .any(|e| e["action"] == json!("linked"))
        );
    }
    assert!(verify_cli(&gw.dir.join("gateway.toml"))?);
    Ok(())
}
