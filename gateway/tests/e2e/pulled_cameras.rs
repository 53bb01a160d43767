//! Cameras the gateway pulls itself (`[[cameras.sources]]`), in the real binary against real
//! servers on loopback: lighttpd answering a snapshot URL behind HTTP Digest auth, and
//! GStreamer's RTSP server streaming Motion-JPEG, read through ffmpeg. The frames are a real
//! photo (Debian darknet's `dog.jpg`) and go through the same health and parking path as
//! uploaded frames.

use crate::common::vision::{dog_jpg, models};
use crate::common::*;
use e2e::{Mosquitto, RtspServer, SnapshotServer, wait_until};
use std::time::Duration;

fn cameras(gw: &GatewayProcess, token: &str) -> Vec<serde_json::Value> {
    gw.get_with_token("/api/v1/cameras", token)
        .and_then(|r| r.ok())
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("cameras: {e:#}\n{}", gw.diagnostics()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn camera(gw: &GatewayProcess, token: &str, id: &str) -> Option<serde_json::Value> {
    cameras(gw, token).into_iter().find(|c| c["camera"] == id)
}

fn mqtt_only(broker: &Mosquitto, client_id: &str, extra: &str) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"{client_id}\"\n{extra}",
        broker.url()
    )
}

/// Snapshot sources: the right password gets frames through Digest auth into health and
/// parking; the wrong one is counted as unauthorised and retried; an unreachable one makes its
/// camera go offline.
#[test]
fn snapshot_cameras_behind_digest_auth_feed_health_and_parking_and_failures_are_counted() {
    models();
    let photo = dog_jpg();
    let server = SnapshotServer::start("viewer", "s3cret").unwrap();
    std::fs::write(server.docroot().join("snap.jpg"), &photo).unwrap();
    let dead = format!("http://127.0.0.1:{}/snap.jpg", e2e::free_port());
    let url = server.url("snap.jpg");
    let extra = format!(
        r#"
[cameras]
source_retry_min_ms = 200
source_retry_max_ms = 1000
[cameras.overrides.cam-down]
offline_after_ms = 1500
[[cameras.sources]]
site = "street-9"
camera = "cam-dog"
url = "{url}"
interval_s = 1
username = "viewer"
password = "s3cret"
auth = "digest"
[[cameras.sources]]
site = "street-9"
camera = "cam-bad"
url = "{url}"
interval_s = 1
username = "viewer"
password = "wrong"
[[cameras.sources]]
site = "street-9"
camera = "cam-down"
url = "{dead}"
interval_s = 1
timeout_ms = 500
[[parking.cameras]]
site = "street-9"
camera = "cam-dog"
persuade_after_s = 1
limit_s = 600
[[parking.cameras.zones]]
id = "kerb-north"
polygon = [[440.0, 120.0], [768.0, 120.0], [768.0, 200.0], [440.0, 200.0]]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let gw = GatewayProcess::start(dir.path(), &mqtt_only(&broker, "gw-pull", &extra)).unwrap();
    let inspector = gw.token("inspector", "street-9").unwrap();

    let dog = wait_until(
        "frames pulled from cam-dog",
        Duration::from_secs(60),
        || {
            Ok(camera(&gw, &inspector, "cam-dog")
                .filter(|c| c["source"]["frames"].as_u64().unwrap_or(0) >= 3))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", gw.diagnostics(), server.log_tail(20)));
    assert_eq!(dog["has_frame"], true, "{dog}");
    assert_eq!(dog["source"]["kind"], "snapshot", "{dog}");
    assert_eq!(dog["source"]["state"], "ok", "{dog}");
    assert!(dog["source"]["last_frame_ms"].as_i64().is_some(), "{dog}");
    let shown = dog["source"]["url"].as_str().unwrap_or_default();
    assert!(!shown.contains("s3cret"), "{dog}");

    // The pulled frames went through parking: the pickup was warned and its stay recorded.
    let stays = wait_until("a warned stay of cam-dog", Duration::from_secs(30), || {
        let v = gw
            .get_with_token("/api/v1/parking/stays?site=street-9", &inspector)?
            .ok()?
            .json()?;
        Ok(v.as_array()
            .filter(|s| s.iter().any(|s| s["camera"] == "cam-dog"))
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert!(!stays.is_empty());

    let bad = wait_until("cam-bad refused twice", Duration::from_secs(30), || {
        Ok(camera(&gw, &inspector, "cam-bad")
            .filter(|c| c["source"]["errors"].as_u64().unwrap_or(0) >= 2))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(bad["source"]["state"], "failing", "{bad}");
    assert_eq!(bad["source"]["frames"], 0, "{bad}");
    assert!(
        bad["source"]["reconnects"].as_u64().unwrap_or(0) >= 1,
        "{bad}"
    );
    assert!(
        bad["source"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not authorised")),
        "{bad}"
    );
    assert!(
        gw.metric(r#"gateway_camera_source_errors_total{site="street-9",camera="cam-bad",reason="unauthorized"}"#)
            .unwrap()
            >= 2.0,
        "{}",
        gw.diagnostics()
    );
    assert!(
        gw.metric(r#"gateway_camera_source_frames_total{site="street-9",camera="cam-dog"}"#)
            .unwrap()
            >= 3.0
    );
    assert_eq!(
        gw.metric(r#"gateway_camera_source_up{site="street-9",camera="cam-dog"}"#)
            .unwrap(),
        1.0
    );

    // Nothing answers cam-down's URL: the camera goes offline like a silent pushing camera.
    let offline = wait_until("cam-down offline clue", Duration::from_secs(30), || {
        let v = gw
            .get_with_token(
                "/api/v1/clues?site=street-9&kind=camera.offline",
                &inspector,
            )?
            .ok()?
            .json()?;
        Ok(v.as_array().filter(|c| !c.is_empty()).cloned())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(offline.len(), 1, "only cam-down is offline: {offline:?}");
    assert!(
        offline[0].to_string().contains("cam-down"),
        "{:?}",
        offline[0]
    );
    let down = camera(&gw, &inspector, "cam-down").expect("cam-down on the wall");
    assert!(
        down["source"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach")),
        "{down}"
    );
}

/// ffmpeg processes whose command line names `url`.
fn ffmpeg_on(url: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let c = String::from_utf8_lossy(c);
            c.starts_with("ffmpeg") && c.contains(url)
        })
        .count()
}

/// An RTSP source: frames through ffmpeg, the stream lost when the server dies and picked up
/// again when it is back, and no ffmpeg left after the gateway stops.
#[test]
fn an_rtsp_camera_is_read_through_ffmpeg_reconnects_after_an_outage_and_leaves_no_ffmpeg() {
    let photo = dog_jpg();
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("dog.jpg");
    std::fs::write(&jpeg, &photo).unwrap();
    let mut rtsp = RtspServer::start(&jpeg).unwrap();
    let url = rtsp.url();
    let extra = format!(
        r#"
[cameras]
source_retry_min_ms = 200
source_retry_max_ms = 1000
[[cameras.sources]]
site = "street-3"
camera = "cam-rtsp"
url = "{url}"
interval_s = 1
timeout_ms = 2000
"#
    );
    let broker = Mosquitto::start().unwrap();
    let mut gw = GatewayProcess::start(dir.path(), &mqtt_only(&broker, "gw-rtsp", &extra)).unwrap();
    let inspector = gw.token("inspector", "street-3").unwrap();
    let frames = |gw: &GatewayProcess| {
        camera(gw, &inspector, "cam-rtsp")
            .and_then(|c| c["source"]["frames"].as_u64())
            .unwrap_or(0)
    };

    wait_until(
        "frames from the RTSP stream",
        Duration::from_secs(60),
        || Ok((frames(&gw) >= 2).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", gw.diagnostics(), rtsp.log_tail(20)));
    let cam = camera(&gw, &inspector, "cam-rtsp").unwrap();
    assert_eq!(cam["has_frame"], true, "{cam}");
    assert_eq!(cam["source"]["kind"], "rtsp", "{cam}");
    assert_eq!(ffmpeg_on(&url), 1, "one ffmpeg per RTSP source");

    // The camera loses power: the stream ends, the source fails and keeps trying.
    rtsp.kill();
    let lost = wait_until("the lost stream counted", Duration::from_secs(60), || {
        Ok(camera(&gw, &inspector, "cam-rtsp").filter(|c| {
            c["source"]["state"] == "failing" && c["source"]["reconnects"].as_u64() >= Some(1)
        }))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert!(lost["source"]["errors"].as_u64() >= Some(1), "{lost}");
    assert!(
        gw.metric(r#"gateway_camera_source_reconnects_total{site="street-3",camera="cam-rtsp"}"#)
            .unwrap()
            >= 1.0
    );

    // Back: frames flow again through a new ffmpeg.
    let before = frames(&gw);
    rtsp.start_again().unwrap();
    wait_until("frames after the outage", Duration::from_secs(60), || {
        Ok((frames(&gw) >= before + 2).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", gw.diagnostics(), rtsp.log_tail(20)));
    assert_eq!(
        camera(&gw, &inspector, "cam-rtsp").unwrap()["source"]["state"],
        "ok"
    );
    assert_eq!(ffmpeg_on(&url), 1, "the old ffmpeg was reaped");

    // Shutdown kills ffmpeg.
    gw.proc.stop().unwrap();
    assert_eq!(
        ffmpeg_on(&url),
        0,
        "ffmpeg left running after the gateway stopped"
    );
}
