//! Parking enforcement in the real binary with the real models: a car standing in a camera's
//! no-parking zone (Debian darknet's `dog.jpg`) is warned at the persuasion time and becomes a
//! `parking.overstay` clue with the frame as evidence; other cameras get health checks only.

use crate::common::hook::Hook;
use crate::common::vision::{dog_jpg, models};
use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, http, wait_until};
use std::time::Duration;

/// A kerb zone around the pickup parked at the top right of `dog.jpg` (768 x 576).
const PARKING: &str = r#"
[[parking.cameras]]
site = "street-9"
camera = "cam-dog"
persuade_after_s = 1
limit_s = 2
[[parking.cameras.zones]]
id = "kerb-north"
polygon = [[440.0, 120.0], [768.0, 120.0], [768.0, 200.0], [440.0, 200.0]]
"#;

fn start(dir: &std::path::Path, broker: &Mosquitto, vm: &VictoriaMetrics) -> GatewayProcess {
    let cfg = format!(
        "{}\n{PARKING}",
        config(&broker.url(), "gw-parking", &vm.url(), "")
    );
    GatewayProcess::start(dir, &cfg).unwrap()
}

#[test]
fn a_car_staying_in_a_zone_is_persuaded_then_becomes_an_overstay_clue() {
    models();
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw = start(dir.path(), &broker, &vm);
    let device = gw.relay_token("street-9").unwrap();
    let inspector = gw.token("inspector", "street-9").unwrap();
    let frames = "/api/v1/cameras/cam-dog/frames?site=street-9";

    let mut events = Vec::new();
    for i in 0..5 {
        let v = post_jpeg(&gw, frames, &device, &photo);
        assert!(v["verdict"].is_object(), "health report kept: {v}");
        let p = &v["parking"];
        assert!(p["vehicles"].as_u64().unwrap_or(0) >= 1, "frame {i}: {v}");
        assert!(
            p["stays"].as_array().is_some_and(|s| !s.is_empty()),
            "frame {i}: the car is timed: {v}"
        );
        events.extend(p["events"].as_array().cloned().unwrap_or_default());
        std::thread::sleep(Duration::from_millis(1100));
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"persuade"), "{events:?}");
    assert!(kinds.contains(&"clue"), "{events:?}");
    assert!(!kinds.contains(&"left"), "{events:?}");

    let clues = wait_until("a parking.overstay clue", Duration::from_secs(20), || {
        let v = gw
            .get_with_token(
                "/api/v1/clues?site=street-9&kind=parking.overstay",
                &inspector,
            )?
            .json()?;
        Ok(v.as_array()
            .or_else(|| v["clues"].as_array())
            .filter(|a| !a.is_empty())
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    // yolov3-tiny boxes the pickup as a car and, inside it, a truck: one or two stays.
    assert!(clues.len() <= 2, "{clues:?}");
    let id = clues[0]["id"].as_i64().expect("clue id");
    let d = gw
        .get_with_token(&format!("/api/v1/clues/{id}"), &inspector)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("clue detail: {e:#}"));
    let file = d["evidence"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "file"))
        .unwrap_or_else(|| panic!("no file evidence: {d}"));
    let sha = file["sha256"].as_str().expect("sha256");
    // The detector's boxes are kept with the frame so it can be masked for inspectors.
    let regions = file["regions"].as_array().expect("regions recorded");
    assert!(regions.iter().any(|r| r["kind"] == "vehicle"), "{file}");
    let masked = gw
        .get_with_token(&format!("/api/v1/clues/{id}/evidence/{sha}"), &inspector)
        .and_then(|r| r.ok())
        .unwrap_or_else(|e| panic!("evidence download: {e:#}"));
    assert_eq!(masked.header("x-evidence-variant"), Some("masked"));
    assert_ne!(masked.body, photo, "inspectors get a masked copy");
    // A second look is served from the masked-copy cache: the same bytes, not made again.
    let again = gw
        .get_with_token(&format!("/api/v1/clues/{id}/evidence/{sha}"), &inspector)
        .and_then(|r| r.ok())
        .unwrap_or_else(|e| panic!("evidence download: {e:#}"));
    assert_eq!(again.header("x-evidence-variant"), Some("masked"));
    assert_eq!(again.body, masked.body, "a cached copy is the copy made");
    assert_eq!(
        gw.metric("gateway_masked_copies_total{reason=\"made\"}")
            .ok(),
        Some(1.0),
        "{}",
        gw.diagnostics()
    );
    assert_eq!(
        gw.metric("gateway_masked_copies_total{reason=\"cached\"}")
            .ok(),
        Some(1.0),
        "{}",
        gw.diagnostics()
    );
    let supervisor = gw.token("supervisor", "street-9").expect("token");
    let r = gw
        .get_with_token(&format!("/api/v1/clues/{id}/evidence/{sha}"), &supervisor)
        .and_then(|r| r.ok())
        .unwrap_or_else(|e| panic!("evidence download: {e:#}"));
    assert_eq!(r.body, photo, "the evidence is the uploaded frame");

    let m = |name: &str| gw.metric(name).unwrap();
    assert!(
        m("gateway_parking_persuasions_total") >= 1.0,
        "{}",
        gw.diagnostics()
    );
    assert_eq!(
        m("gateway_parking_frames_total{reason=\"analysed\"}"),
        5.0,
        "{}",
        gw.diagnostics()
    );
    assert_eq!(m("gateway_parking_departures_total"), 0.0);
}

#[test]
fn a_camera_without_a_parking_rule_gets_health_checks_only() {
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw = start(dir.path(), &broker, &vm);
    let device = gw.relay_token("street-9,street-7").unwrap();
    // Another camera of the site, and the parking camera's id at another site.
    for path in [
        "/api/v1/cameras/cam-plain/frames?site=street-9",
        "/api/v1/cameras/cam-dog/frames?site=street-7",
    ] {
        let v = post_jpeg(&gw, path, &device, &photo);
        assert!(v["verdict"].is_object(), "{v}");
        assert!(v.get("parking").is_none(), "{path}: {v}");
    }
    assert_eq!(gw.metric("gateway_parking_frames_total").unwrap(), 0.0);
    assert_eq!(gw.metric("gateway_parking_persuasions_total").unwrap(), 0.0);
}

#[test]
fn missing_models_disable_parking_but_not_camera_health() {
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let cfg = format!(
        "{}\n{PARKING}",
        config(&broker.url(), "gw-parking-nomodels", &vm.url(), "")
    );
    let models_dir = empty.path().display().to_string();
    let gw = GatewayProcess::start_with_env(
        dir.path(),
        &cfg,
        &[
            ("ENFORCEMENT_MODELS_DIR", models_dir.as_str()),
            ("ORT_DYLIB_PATH", ""),
        ],
    )
    .unwrap();
    let device = gw.relay_token("street-9").unwrap();
    for _ in 0..3 {
        let v = post_jpeg(
            &gw,
            "/api/v1/cameras/cam-dog/frames?site=street-9",
            &device,
            &photo,
        );
        assert!(v["verdict"].is_object(), "{v}");
        assert!(v.get("parking").is_none(), "{v}");
    }
    assert_eq!(
        gw.metric("gateway_parking_frames_total{reason=\"models_unavailable\"}")
            .unwrap(),
        3.0,
        "{}",
        gw.diagnostics()
    );
    let log = gw.proc.log_tail(500);
    assert_eq!(
        log.matches("parking enforcement disabled").count(),
        1,
        "one clear error: {log}"
    );
    assert!(log.contains("models/fetch.sh"), "{log}");
}

/// The camera's zones in the device registry replace the configured ones at its next frame:
/// configured on the empty road at the bottom of `dog.jpg`, the pickup is not timed; once an
/// admin registers the kerb zone around it (API, no restart), it is.
#[test]
fn a_zone_registered_through_the_api_applies_from_the_next_frame() {
    models();
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let elsewhere = PARKING.replace(
        "[[440.0, 120.0], [768.0, 120.0], [768.0, 200.0], [440.0, 200.0]]",
        "[[0.0, 560.0], [100.0, 560.0], [100.0, 576.0], [0.0, 576.0]]",
    );
    let cfg = format!(
        "{}\n[registry]\nfile = \"{}\"\n{elsewhere}",
        config(&broker.url(), "gw-parking-zones", &vm.url(), ""),
        registry.display()
    );
    let gw = GatewayProcess::start(dir.path(), &cfg).unwrap();
    let device = gw.relay_token("street-9").unwrap();
    let admin = gw.token("admin", "").unwrap();
    let frames = "/api/v1/cameras/cam-dog/frames?site=street-9";
    let stays = |v: &serde_json::Value| v["parking"]["stays"].as_array().map_or(0, |s| s.len());

    let v = post_jpeg(&gw, frames, &device, &photo);
    assert!(v["parking"]["vehicles"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(stays(&v), 0, "nothing parks in the configured zone: {v}");

    let entry = r#"{"kind":"parking_camera","installation":{"camera_zones":[
        {"id":"kerb-north","polygon":[[440,120],[768,120],[768,200],[440,200]]}]}}"#;
    let auth = format!("Bearer {admin}");
    let r = http::request(
        "PUT",
        &format!("{}/api/v1/registry/devices/street-9/cam-dog", gw.http),
        Some(("application/json", entry.as_bytes())),
        &[("Authorization", &auth)],
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());

    let v = post_jpeg(&gw, frames, &device, &photo);
    assert!(stays(&v) >= 1, "the registered zone times the pickup: {v}");
    let zone = v["parking"]["stays"][0]["zone"].as_str().unwrap_or("");
    assert_eq!(zone, "kerb-north", "{v}");
}

/// The same kerb with a limit far away, and a stay that ends one second after its place is
/// seen empty.
const LEAVING: &str = r#"
[[parking.cameras]]
site = "street-9"
camera = "cam-dog"
persuade_after_s = 1
limit_s = 600
gone_after_s = 1
[[parking.cameras.zones]]
id = "kerb-north"
polygon = [[440.0, 120.0], [768.0, 120.0], [768.0, 200.0], [440.0, 200.0]]
"#;

/// `dog.jpg` with the parked pickup gone: its corner of the street painted over in the grey
/// of the road, as the camera would see the kerb once the car has driven off.
fn without_the_pickup(photo: &[u8]) -> Vec<u8> {
    let mut img = image::load_from_memory(photo).expect("dog.jpg").to_rgb8();
    let road = *img.get_pixel(700, 230);
    for y in 50..215 {
        for x in 430..img.width() {
            img.put_pixel(x, y, road);
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode");
    out
}

#[test]
fn a_warned_car_that_leaves_is_told_over_mqtt_and_a_webhook_and_recorded_as_left_after_notice_without_a_clue()
 {
    models();
    let photo = dog_jpg();
    let empty = without_the_pickup(&photo);
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let notices = broker.subscribe("notices/v1/#").unwrap();
    // The roadside speaker's webhook fails its first call: the notice is retried.
    let hook_port = e2e::free_port();
    let hook = Hook::start(hook_port, 1).unwrap();
    let cfg = format!(
        "{}\n{LEAVING}\n[notices]\nretry_min_ms = 100\nretry_max_ms = 500\n\
         [[notices.webhooks]]\nname = \"speaker\"\nurl = \"http://127.0.0.1:{hook_port}/say\"\n\
         secret = \"kerb\"\ncameras = [\"cam-dog\"]\n",
        config(&broker.url(), "gw-notices", &vm.url(), "")
    );
    let gw = GatewayProcess::start(dir.path(), &cfg).unwrap();
    let device = gw.relay_token("street-9").unwrap();
    let inspector = gw.token("inspector", "street-9").unwrap();
    let frames = "/api/v1/cameras/cam-dog/frames?site=street-9";

    // Parked: warned once the persuasion time has passed; then the kerb is empty.
    let mut events = Vec::new();
    for (i, frame) in [&photo, &photo, &photo, &empty, &empty, &empty]
        .into_iter()
        .enumerate()
    {
        let v = post_jpeg(&gw, frames, &device, frame);
        events.extend(
            v["parking"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        if i < 5 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let warned = kinds.iter().filter(|k| **k == "persuade").count();
    assert!(warned >= 1, "{events:?}\n{}", gw.diagnostics());
    assert_eq!(
        kinds.iter().filter(|k| **k == "left").count(),
        warned,
        "every warned stay left: {events:?}"
    );
    assert!(!kinds.contains(&"clue"), "{events:?}");

    // The notice reached the street's subscriber.
    let got = notices
        .wait_for(warned, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(got.len(), warned, "one notice per warned stay: {got:?}");
    let (topic, body) = &got[0];
    assert_eq!(topic, "notices/v1/street-9/cam-dog");
    let n: serde_json::Value = serde_json::from_str(body).expect("notice JSON");
    assert_eq!(n["event"], "parking_notice", "{n}");
    assert_eq!(n["zone"], "kerb-north", "{n}");
    assert!(
        n["text"]["zh"].as_str().is_some_and(|t| t.contains("驶离")),
        "{n}"
    );

    // The same notices reached the webhook, signed, after one refused attempt.
    let posted = wait_until("notices on the webhook", Duration::from_secs(20), || {
        let a = hook.acknowledged();
        Ok((a.len() >= warned).then_some(a))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(
        posted.len(),
        warned,
        "each notice acknowledged once: {posted:?}"
    );
    let mqtt_ids: Vec<serde_json::Value> = got
        .iter()
        .filter_map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok())
        .map(|n| n["event_id"].clone())
        .collect();
    for p in &posted {
        assert_eq!(p["event"], "parking_notice", "{p}");
        assert!(mqtt_ids.contains(&p["event_id"]), "{p} vs {mqtt_ids:?}");
    }
    let seen = hook.seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(
        seen.iter().filter(|s| s.0 == 500).count(),
        1,
        "retried once"
    );
    for (_, sig, body) in &seen {
        assert_eq!(
            sig,
            &gateway::clue::publish::signature("kerb", body.as_bytes())
        );
    }
    assert!(
        gw.metric(r#"gateway_notices_delivered_total{reason="notice-webhook:speaker"}"#)
            .unwrap()
            >= warned as f64
    );

    // Each warned stay is on record as left after its notice, and no clue was raised.
    let stays = gw
        .get_with_token("/api/v1/parking/stays?site=street-9", &inspector)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("stays: {e:#}"));
    let stays = stays.as_array().expect("stay list").clone();
    assert_eq!(stays.len(), warned, "{stays:?}");
    for s in &stays {
        assert_eq!(s["outcome"], "left_after_notice", "{s}");
        assert_eq!(s["camera"], "cam-dog", "{s}");
        assert!(s["left_ms"].as_i64().is_some(), "{s}");
    }
    assert!(
        stays.iter().any(|s| s["id"] == n["event_id"]),
        "the notice names its stay record: {n} {stays:?}"
    );
    let clues = gw
        .get_with_token("/api/v1/clues?kind=parking.overstay", &inspector)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("clues: {e:#}"));
    assert_eq!(clues.as_array().map(Vec::len), Some(0), "{clues}");
    // The statistics count these records.
    let stats = gw
        .get_with_token("/api/v1/stats", &inspector)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("stats: {e:#}"));
    let p = &stats["parking"];
    assert_eq!(
        p["left_after_notice"].as_u64(),
        Some(warned as u64),
        "{stats}"
    );
    assert_eq!(p["clue"].as_u64(), Some(0), "{stats}");
    assert_eq!(p["persuasion_rate"].as_f64(), Some(1.0), "{stats}");
    assert_eq!(p["by_zone"][0]["zone"], "kerb-north", "{stats}");
    wait_until("the notices acknowledged", Duration::from_secs(10), || {
        let n = gw.metric("gateway_notices_delivered_total{reason=\"notice-mqtt\"}")?;
        Ok((n == warned as f64).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
}

/// Warned vehicles still standing when the gateway is restarted (SIGTERM, start): their stays
/// are saved at the stop and resumed at the start, so none is warned again and each clue at the
/// limit moves the one record its notice created.
#[test]
fn warned_stays_survive_a_restart_and_each_ends_as_one_record_with_its_clue() {
    models();
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let notices = broker.subscribe("notices/v1/#").unwrap();
    let cfg = format!(
        "{}\n{}",
        config(&broker.url(), "gw-resume", &vm.url(), ""),
        PARKING.replace("limit_s = 2", "limit_s = 3")
    );
    let mut gw = GatewayProcess::start(dir.path(), &cfg).unwrap();
    let device = gw.relay_token("street-9").unwrap();
    let inspector = gw.token("inspector", "street-9").unwrap();
    let frames = "/api/v1/cameras/cam-dog/frames?site=street-9";
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["parking"]["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["type"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut before = Vec::new();
    for _ in 0..2 {
        before.extend(kinds(&post_jpeg(&gw, frames, &device, &photo)));
        std::thread::sleep(Duration::from_millis(1100));
    }
    // The photo may show more than one vehicle in the zone: one stay and notice each.
    let warned = before.iter().filter(|k| *k == "persuade").count();
    assert!(warned >= 1, "{before:?}");
    assert!(!before.iter().any(|k| k == "clue"), "{before:?}");
    notices
        .wait_for(warned, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));

    gw.proc.stop().unwrap();
    let state = dir.path().join("storage/parking-state.json");
    assert!(state.is_file(), "stays saved at the stop");
    gw.start_again().unwrap();
    assert!(!state.exists(), "the state file is consumed at the start");

    let mut after = Vec::new();
    for _ in 0..3 {
        after.extend(kinds(&post_jpeg(&gw, frames, &device, &photo)));
        if after.iter().any(|k| k == "clue") {
            break;
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(
        !after.iter().any(|k| k == "persuade"),
        "not warned twice: {after:?}"
    );
    assert!(after.iter().any(|k| k == "clue"), "{after:?}");

    let stays = wait_until("the stay's outcome", Duration::from_secs(20), || {
        let v = gw
            .get_with_token("/api/v1/parking/stays?site=street-9", &inspector)?
            .ok()?
            .json()?;
        Ok(v.as_array()
            .filter(|s| s.iter().all(|s| s["outcome"] != "pending"))
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(stays.len(), warned, "one record per warned stay: {stays:?}");
    for s in &stays {
        assert_eq!(s["outcome"], "clue", "{stays:?}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        notices.messages().len(),
        warned,
        "one notice per stay, none after the restart"
    );
}
