//! Drone footage in the real binary with the real COCO model: a still tagged with GPS EXIF and
//! DJI XMP by `exiftool` is uploaded in resumable chunks, processed, and its detections become
//! clues for the departments whose task areas hold them ("fly once"); malicious uploads are
//! refused without harm. Plus video: ffmpeg-made MP4 with an SRT sidecar, sampled at 1 fps.
//!
//! The benchmark (`drone_benchmark_4k`) is ignored; run it with
//! `cargo test -p gateway --release --test e2e -- --ignored --nocapture drone_api::drone_benchmark_4k`.

use crate::common::vision::{dog_jpg, models, run_bounded};
use crate::common::*;
use e2e::{Mosquitto, http, wait_until};
use gateway::drone::georef::{Camera, Pose, enu_to_wgs84, pixel_to_ground};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LAT0: f64 = 22.5432;
const LON0: f64 = 114.0543;
const ALT: f64 = 30.0;

fn start(dir: &Path, broker: &Mosquitto, extra: &str) -> GatewayProcess {
    let cfg = format!(
        "[mqtt]\nurl = \"{}\"\nclient_id = \"gw-drone\"\n[drone]\n{}\n",
        broker.url(),
        if extra.is_empty() {
            "max_still_mb = 1"
        } else {
            extra
        }
    );
    GatewayProcess::start(dir, &cfg).unwrap()
}

fn req(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    token: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> http::Response {
    let auth = format!("Bearer {token}");
    let mut h = vec![("Authorization", auth.as_str())];
    h.extend_from_slice(headers);
    http::request(
        method,
        &format!("{}{path}", gw.http),
        body,
        &h,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e:#}\n{}", gw.diagnostics()))
}

/// `PUT /api/v1/flights/{id}/files/{name}`: the whole file in one request.
fn put_file(
    gw: &GatewayProcess,
    id: u64,
    name: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> http::Response {
    let path = format!("/api/v1/flights/{id}/files/{name}");
    req(gw, "PUT", &path, token, Some((content_type, body)), &[])
}

/// `POST /api/v1/flights/{id}/process` with `token`: the status code.
fn process(gw: &GatewayProcess, id: u64, token: &str) -> u16 {
    req(
        gw,
        "POST",
        &format!("/api/v1/flights/{id}/process"),
        token,
        None,
        &[],
    )
    .status
}

fn json_of(r: &http::Response) -> Value {
    r.json()
        .unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text()))
}

/// Tags `path` as a DJI still: GPS, 24 mm equivalent lens, DJI XMP height and gimbal.
fn tag_as_drone_still(path: &Path, lat: f64, lon: f64) {
    let mut cmd = Command::new("exiftool");
    cmd.args([
        "-q",
        "-q",
        "-overwrite_original",
        &format!("-GPSLatitude={}", lat.abs()),
        &format!("-GPSLatitudeRef={}", if lat < 0.0 { "S" } else { "N" }),
        &format!("-GPSLongitude={}", lon.abs()),
        &format!("-GPSLongitudeRef={}", if lon < 0.0 { "W" } else { "E" }),
        "-GPSAltitude=130",
        "-FocalLengthIn35mmFormat=24",
        "-DateTimeOriginal=2026:11:20 09:30:00",
        &format!("-XMP-drone-dji:RelativeAltitude=+{ALT}"),
        "-XMP-drone-dji:GimbalPitchDegree=-90.0",
        "-XMP-drone-dji:GimbalYawDegree=+0.0",
        "-XMP-drone-dji:FlightYawDegree=+0.0",
    ])
    .arg(path);
    run_bounded(cmd, Duration::from_secs(60), "exiftool");
}

/// Where pixel (u, v) of the tagged `dog.jpg` (768 x 576) lies on the ground.
fn ground_of(u: f64, v: f64) -> (f64, f64) {
    let cam = Camera::from_focal_35mm(768, 576, 24.0);
    let pose = Pose {
        lat: LAT0,
        lon: LON0,
        rel_alt_m: ALT,
        yaw_deg: 0.0,
        pitch_deg: -90.0,
        roll_deg: 0.0,
    };
    let (e, n) = pixel_to_ground(&cam, &pose, u, v).expect("ground");
    enu_to_wgs84(LAT0, LON0, e, n)
}

/// A GeoJSON square of `half` metres around (lat, lon).
fn square(lat: f64, lon: f64, half: f64) -> Value {
    let (s, w) = enu_to_wgs84(lat, lon, -half, -half);
    let (n, e) = enu_to_wgs84(lat, lon, half, half);
    json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]})
}

/// Reads the SSE stream of `path` until an event with a final status, or `limit`.
fn sse_until_final(gw: &GatewayProcess, path: &str, token: &str, limit: Duration) -> String {
    let addr = gw.http.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("sse: {e}"),
        }
        let text = String::from_utf8_lossy(&got);
        if text.contains("\"status\":\"done\"") || text.contains("\"status\":\"failed\"") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn wait_final(gw: &GatewayProcess, id: u64, token: &str, limit: Duration) -> Value {
    wait_until("flight processed", limit, || {
        let r = gw
            .get_with_token(&format!("/api/v1/flights/{id}"), token)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let v = r.json()?;
        Ok(matches!(v["status"].as_str(), Some("done" | "failed")).then_some(v))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()))
}

#[test]
fn a_tagged_still_becomes_clues_for_each_department_whose_area_holds_a_finding() {
    models();
    let dir = tempfile::tempdir().unwrap();
    let still = dir.path().join("DJI_0001.JPG");
    std::fs::write(&still, dog_jpg()).unwrap();
    tag_as_drone_still(&still, LAT0, LON0);
    let jpeg = std::fs::read(&still).unwrap();
    let meta = gateway::drone::exif::read(&jpeg);
    assert_eq!(meta.rel_alt_m, Some(ALT), "{meta:?}");
    assert!((meta.lat.unwrap() - LAT0).abs() < 1e-6 && (meta.lon.unwrap() - LON0).abs() < 1e-6);

    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let supervisor = gw.token("supervisor", "district-3").unwrap();
    let inspector = gw.token("inspector", "district-3").unwrap();

    // The pickup at the top right of dog.jpg (box ~ 468..690 x 75..170) and the bicycle
    // (~ 130..560 x 140..420), projected with the still's own geometry.
    let (truck_lat, truck_lon) = ground_of(579.0, 122.0);
    let (bike_lat, bike_lon) = ground_of(345.0, 280.0);
    let tasks = [
        json!({"name": "Kerb no-parking", "department": "city-management", "contact": "kerb@city",
               "site": "district-3", "area": square(truck_lat, truck_lon, 4.0), "targets": ["vehicle"]}),
        json!({"name": "Sidewalk obstruction", "department": "market", "contact": "market@city",
               "site": "district-3", "area": square(bike_lat, bike_lon, 5.0),
               "targets": ["bicycle", "person"]}),
        json!({"name": "Far away site", "department": "water", "contact": "water@city",
               "site": "district-3", "area": square(LAT0 + 0.01, LON0, 20.0),
               "targets": ["vehicle", "bicycle", "dog"]}),
    ];
    let mut task_ids = Vec::new();
    for t in &tasks {
        let body = serde_json::to_vec(t).unwrap();
        let r = req(
            &gw,
            "POST",
            "/api/v1/tasks",
            &supervisor,
            Some(("application/json", &body)),
            &[],
        );
        assert_eq!(r.status, 201, "{}", r.text());
        task_ids.push(json_of(&r)["id"].as_u64().unwrap());
    }
    // A pilot may not register tasks; tasks are listed for readers.
    let body = serde_json::to_vec(&tasks[0]).unwrap();
    let r = req(
        &gw,
        "POST",
        "/api/v1/tasks",
        &pilot,
        Some(("application/json", &body)),
        &[],
    );
    assert_eq!(r.status, 403);
    let r = req(&gw, "GET", "/api/v1/tasks", &inspector, None, &[]);
    assert_eq!(json_of(&r).as_array().unwrap().len(), 3);

    let r = req(
        &gw,
        "POST",
        "/api/v1/flights",
        &pilot,
        Some(("application/json", br#"{"name": "morning"}"#)),
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let flight = json_of(&r);
    let id = flight["id"].as_u64().unwrap();
    assert_eq!(flight["status"], "uploading");
    assert_eq!(flight["site"], "district-3");

    // Resumable upload: the first half, a retry at the wrong offset (told where to resume),
    // the offset asked for, then the rest.
    let file = format!("/api/v1/flights/{id}/files/DJI_0001.JPG");
    let half = jpeg.len() / 2;
    let n = jpeg.len();
    let r = req(
        &gw,
        "PUT",
        &file,
        &pilot,
        Some(("image/jpeg", &jpeg[..half])),
        &[("Content-Range", &format!("bytes 0-{}/{n}", half - 1))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_of(&r)["complete"], false);
    let r = req(
        &gw,
        "PUT",
        &file,
        &pilot,
        Some(("image/jpeg", &jpeg[..10])),
        &[("Content-Range", &format!("bytes 0-9/{n}"))],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(json_of(&r)["received"].as_u64(), Some(half as u64));
    let r = req(&gw, "GET", &file, &pilot, None, &[]);
    let offset = json_of(&r)["received"].as_u64().unwrap() as usize;
    assert_eq!(offset, half);
    let r = req(
        &gw,
        "PUT",
        &file,
        &pilot,
        Some(("image/jpeg", &jpeg[offset..])),
        &[("Content-Range", &format!("bytes {offset}-{}/{n}", n - 1))],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let st = json_of(&r);
    assert_eq!(st["complete"], true);
    assert_eq!(
        st["sha256"].as_str().unwrap(),
        gateway::clue::audit::sha256_hex(&[&jpeg])
    );

    // Inspectors may not upload or start processing.
    let r = req(
        &gw,
        "POST",
        &format!("/api/v1/flights/{id}/process"),
        &inspector,
        None,
        &[],
    );
    assert_eq!(r.status, 403);
    let sse_path = format!("/api/v1/flights/{id}/events");
    let sse = {
        let (http_base, token) = (gw.http.clone(), inspector.clone());
        let _ = http_base;
        let gw_ref = &gw;
        std::thread::scope(|s| {
            let h =
                s.spawn(|| sse_until_final(gw_ref, &sse_path, &token, Duration::from_secs(180)));
            std::thread::sleep(Duration::from_millis(300));
            let r = req(
                gw_ref,
                "POST",
                &format!("/api/v1/flights/{id}/process"),
                &pilot,
                None,
                &[],
            );
            assert_eq!(r.status, 202, "{}", r.text());
            h.join().unwrap()
        })
    };
    assert!(sse.contains("event: progress"), "{sse}");
    assert!(
        sse.contains("\"status\":\"done\""),
        "{sse}\n{}",
        gw.diagnostics()
    );

    let f = wait_final(&gw, id, &inspector, Duration::from_secs(30));
    assert_eq!(f["status"], "done", "{f:#}");
    assert_eq!(f["progress"].as_f64(), Some(1.0));
    assert_eq!(f["frames_done"].as_u64(), Some(1));
    let findings = f["findings"].as_array().unwrap();
    let routed: Vec<&Value> = findings.iter().filter(|x| x["task_id"].is_u64()).collect();
    let for_task = |t: u64| {
        routed
            .iter()
            .filter(move |x| x["task_id"].as_u64() == Some(t))
    };
    let kerb: Vec<_> = for_task(task_ids[0]).collect();
    let sidewalk: Vec<_> = for_task(task_ids[1]).collect();
    assert!(!kerb.is_empty(), "a vehicle in the kerb area: {f:#}");
    assert!(
        !sidewalk.is_empty(),
        "the bicycle in the sidewalk area: {f:#}"
    );
    assert_eq!(for_task(task_ids[2]).count(), 0, "nothing far away");
    for x in kerb.iter().chain(&sidewalk) {
        assert!(x["clue_id"].is_i64(), "{x}");
        let err = x["error_m"].as_f64().unwrap();
        assert!(err > 0.0 && err < 10.0, "{x}");
        assert_eq!(x["frame"], "DJI_0001.JPG");
        // EXIF time 2026-11-20 09:30:00 (aircraft clock taken as UTC by default).
        assert_eq!(x["time_ms"].as_i64(), Some(1_795_167_000_000));
    }
    let truck = kerb[0];
    let d = gateway::drone::georef::distance_m(
        truck["lat"].as_f64().unwrap(),
        truck["lon"].as_f64().unwrap(),
        truck_lat,
        truck_lon,
    );
    assert!(
        d < 3.0,
        "the vehicle is located where the geometry puts it: {d} m"
    );

    // The clue carries the department, location, crop and source frame.
    let clue_id = truck["clue_id"].as_i64().unwrap();
    let r = req(
        &gw,
        "GET",
        &format!("/api/v1/clues/{clue_id}"),
        &inspector,
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let c = json_of(&r);
    let text = c.to_string();
    assert!(text.contains("city-management"), "{c:#}");
    assert!(text.contains("drone.finding"), "{c:#}");
    assert!(text.contains("\"location\""), "{c:#}");
    assert!(text.contains("crop-"), "{c:#}");
    assert!(text.contains("frame-DJI_0001.JPG"), "{c:#}");
    let bike_clue = sidewalk[0]["clue_id"].as_i64().unwrap();
    let r = req(
        &gw,
        "GET",
        &format!("/api/v1/clues/{bike_clue}"),
        &inspector,
        None,
        &[],
    );
    assert!(json_of(&r).to_string().contains("market"));
    // A pilot does not read clues.
    let r = req(
        &gw,
        "GET",
        &format!("/api/v1/clues/{clue_id}"),
        &pilot,
        None,
        &[],
    );
    assert_eq!(r.status, 403);
    // Other sites see nothing of this flight.
    let other = gw.token("inspector", "district-9").unwrap();
    let r = req(
        &gw,
        "GET",
        &format!("/api/v1/flights/{id}"),
        &other,
        None,
        &[],
    );
    assert_eq!(r.status, 404);
    let r = req(&gw, "GET", "/api/v1/flights", &other, None, &[]);
    assert_eq!(json_of(&r).as_array().unwrap().len(), 0);
}

#[test]
fn malicious_uploads_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let r = req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = json_of(&r)["id"].as_u64().unwrap();
    let small = dog_jpg_small();
    let put = |name: &str, ct: &str, body: &[u8]| put_file(&gw, id, name, &pilot, ct, body);

    // Path traversal in names, encoded every way a client might.
    for name in [
        "..%2F..%2F..%2Fescaped.jpg",
        "..%2fescaped.jpg",
        "%2e%2e%2Fescaped.jpg",
        "..%5Cescaped.jpg",
        ".hidden.jpg",
        "a%00b.jpg",
        "sp%20ace.jpg",
    ] {
        let r = put(name, "image/jpeg", &small);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
    }
    // Traversal in raw path segments never reaches the handler.
    let r = put("../../escaped.jpg", "image/jpeg", &small);
    assert!(r.status == 404 || r.status == 400, "{}", r.status);
    // Wrong extension or content type.
    assert_eq!(
        put("run.sh", "application/octet-stream", b"#!/bin/sh").status,
        415
    );
    assert_eq!(put("x.jpg", "text/html", &small).status, 415);
    assert_eq!(put("x.mp4", "image/jpeg", &small).status, 415);
    // Declared right, content wrong: a JPEG posing as video, HTML posing as JPEG.
    assert_eq!(put("clip.mp4", "video/mp4", &small).status, 422);
    assert_eq!(
        put("page.jpg", "image/jpeg", b"<html><script>x</script></html>").status,
        422
    );
    // Truncated JPEG.
    let r = put("cut.jpg", "image/jpeg", &small[..small.len() / 2]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("truncated"), "{}", r.text());
    // Decompression bomb: a tiny file whose header claims 60000 x 60000 pixels.
    let bomb = bomb_jpeg(&small, 60000, 60000);
    assert!(bomb.len() < 100_000);
    let r = put("bomb.jpg", "image/jpeg", &bomb);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("pixel limit"), "{}", r.text());
    // Oversized (max_still_mb = 1): refused from Content-Length, and from Content-Range.
    // (`Expect: 100-continue`, as curl sends for large bodies: the refusal comes before any
    // of the body is sent.)
    let status = expect_continue_status(
        &gw,
        &format!("/api/v1/flights/{id}/files/big.jpg"),
        &pilot,
        1_200_000,
    );
    assert_eq!(status, 413);
    let big = vec![0xFFu8; 1_200_000];
    let r = req(
        &gw,
        "PUT",
        &format!("/api/v1/flights/{id}/files/big2.jpg"),
        &pilot,
        Some(("image/jpeg", &big[..100])),
        &[("Content-Range", "bytes 0-99/5000000000")],
    );
    assert_eq!(r.status, 413);
    // Binary junk as SRT.
    assert_eq!(
        put("t.srt", "text/plain", b"\x00\x01\x02binary").status,
        422
    );

    // Nothing escaped the flight folder, nothing rejected stayed, the gateway is fine.
    let storage = dir.path().join("storage");
    let mut names = Vec::new();
    fn walk(p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            out.push(path.display().to_string());
            if path.is_dir() {
                walk(&path, out);
            }
        }
    }
    walk(dir.path(), &mut names);
    assert!(!names.iter().any(|n| n.contains("escaped")), "{names:#?}");
    let flight_dir = storage.join(format!("drone/flights/{id}"));
    let files: Vec<String> = std::fs::read_dir(&flight_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["flight.json".to_string()], "{files:?}");
    let f = json_of(&req(
        &gw,
        "GET",
        &format!("/api/v1/flights/{id}"),
        &pilot,
        None,
        &[],
    ));
    assert_eq!(f["files"].as_array().unwrap().len(), 0, "{f:#}");
    // Processing a flight with nothing valid is refused.
    let r = req(
        &gw,
        "POST",
        &format!("/api/v1/flights/{id}/process"),
        &pilot,
        None,
        &[],
    );
    assert_eq!(r.status, 409);
    assert!(
        http::get(&format!("{}/healthz", gw.http))
            .unwrap()
            .is_success()
    );
}

/// Sends only the headers of a `len`-byte PUT with `Expect: 100-continue` and returns the
/// status the server answers with (100 would mean "send the body").
fn expect_continue_status(gw: &GatewayProcess, path: &str, token: &str, len: usize) -> u16 {
    let addr = gw.http.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: image/jpeg\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    )
    .expect("send");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {head:?}"))
}

fn dog_jpg_small() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out)
        .encode_image(&img)
        .unwrap();
    out
}

/// Rewrites the SOF0 frame size of a baseline JPEG.
fn bomb_jpeg(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let sof = out.windows(2).position(|x| x == [0xFF, 0xC0]).unwrap();
    out[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    out
}

/// A synthetic still (any size) tagged by exiftool reads back through the EXIF reader.
#[test]
fn stills_tagged_by_exiftool_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.jpg");
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    });
    img.save(&p).unwrap();
    let mut cmd = Command::new("exiftool");
    cmd.args([
        "-q",
        "-q",
        "-overwrite_original",
        "-GPSLatitude=33.8688",
        "-GPSLatitudeRef=S",
        "-GPSLongitude=151.2093",
        "-GPSLongitudeRef=E",
        "-GPSAltitude=58.5",
        "-GPSAltitudeRef=0",
        "-FocalLengthIn35mmFormat=24",
        "-XMP-drone-dji:RelativeAltitude=+45.25",
        "-XMP-drone-dji:GimbalPitchDegree=-60.5",
        "-XMP-drone-dji:GimbalYawDegree=-120.0",
        "-XMP-drone-dji:FlightYawDegree=-118.0",
    ])
    .arg(&p);
    run_bounded(cmd, Duration::from_secs(60), "exiftool");
    let m = gateway::drone::exif::read(&std::fs::read(&p).unwrap());
    assert!((m.lat.unwrap() + 33.8688).abs() < 1e-6, "{m:?}");
    assert!((m.lon.unwrap() - 151.2093).abs() < 1e-6, "{m:?}");
    assert!((m.gps_alt_m.unwrap() - 58.5).abs() < 1e-6);
    assert_eq!(m.rel_alt_m, Some(45.25));
    assert_eq!(m.gimbal_pitch_deg, Some(-60.5));
    assert_eq!(m.gimbal_yaw_deg, Some(-120.0));
    assert_eq!(m.flight_yaw_deg, Some(-118.0));
    assert_eq!(m.focal_35mm, Some(24.0));
}

/// Video with an SRT sidecar: ffmpeg samples 1 frame/s, each frame takes the telemetry of its
/// time, the damaged tail of the SRT is reported, and the vehicle in the frames is routed.
#[test]
fn video_frames_are_sampled_aligned_to_srt_and_routed() {
    models();
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("dog.jpg");
    std::fs::write(&photo, dog_jpg()).unwrap();
    let clip = dir.path().join("clip.mp4");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y", "-loop", "1", "-i"])
        .arg(&photo)
        .args([
            "-t", "3", "-r", "10", "-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p",
        ])
        .arg(&clip);
    run_bounded(cmd, Duration::from_secs(120), "ffmpeg");
    let video = std::fs::read(&clip).unwrap();
    let mut srt = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drone/mini2_compact.srt"),
    )
    .unwrap();
    srt.extend_from_slice(
        b"\n4\n00:00:03,000 --> 00:00:04,000\nF/2.8, SS 1000, ISO 100, GPS (2.2944",
    );

    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let admin = gw.token("admin", "").unwrap();
    let task = json!({"name": "Quay parking", "department": "traffic", "contact": "t@city",
        "area": square(48.858370, 2.294481, 150.0), "targets": ["vehicle"]});
    let body = serde_json::to_vec(&task).unwrap();
    let r = req(
        &gw,
        "POST",
        "/api/v1/tasks",
        &admin,
        Some(("application/json", &body)),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let task_id = json_of(&r)["id"].as_u64().unwrap();

    let r = req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]);
    let id = json_of(&r)["id"].as_u64().unwrap();
    let r = put_file(&gw, id, "DJI_0002.MP4", &pilot, "video/mp4", &video);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = put_file(
        &gw,
        id,
        "DJI_0002.SRT",
        &pilot,
        "application/x-subrip",
        &srt,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = req(
        &gw,
        "POST",
        &format!("/api/v1/flights/{id}/process"),
        &pilot,
        None,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let f = wait_final(&gw, id, &pilot, Duration::from_secs(180));
    assert_eq!(f["status"], "done", "{f:#}");
    assert_eq!(f["frames_total"].as_u64(), Some(3), "{f:#}");
    assert_eq!(f["frames_done"].as_u64(), Some(3), "{f:#}");
    let errors = f["errors"].to_string();
    assert!(errors.contains("DJI_0002.SRT line 14"), "{errors}");
    let routed: Vec<&Value> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["task_id"].as_u64() == Some(task_id))
        .collect();
    for t in ["@0ms", "@1000ms", "@2000ms"] {
        assert!(
            routed
                .iter()
                .any(|x| x["frame"].as_str().unwrap().ends_with(t)),
            "a vehicle in frame {t}: {f:#}"
        );
    }
    // Frame at 1 s takes the second cue's position: findings lie within the frame's
    // footprint around it (60 m up, ~44 m half-width).
    for x in &routed {
        let d = gateway::drone::georef::distance_m(
            x["lat"].as_f64().unwrap(),
            x["lon"].as_f64().unwrap(),
            48.858370,
            2.294481,
        );
        assert!(d < 80.0, "{x}");
        assert!(x["clue_id"].is_i64(), "{x}");
    }
}

/// Prints a one-line progress bar for flight `id` until it finishes; returns the final flight.
fn follow(gw: &GatewayProcess, id: u64, token: &str, what: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let f = json_of(
            &gw.get_with_token(&format!("/api/v1/flights/{id}"), token)
                .unwrap(),
        );
        let (done, total) = (
            f["frames_done"].as_u64().unwrap_or(0),
            f["frames_total"].as_u64().unwrap_or(0),
        );
        let p = f["progress"].as_f64().unwrap_or(0.0);
        let bar: String = (0..30)
            .map(|i| if (i as f64) < p * 30.0 { '#' } else { '.' })
            .collect();
        print!(
            "\r{what}: [{bar}] {done}/{total} frames {:5.1}% {:6.1}s {}   ",
            p * 100.0,
            started.elapsed().as_secs_f64(),
            f["status"].as_str().unwrap_or("?")
        );
        let _ = std::io::stdout().flush();
        if matches!(f["status"].as_str(), Some("done" | "failed")) {
            println!();
            return f;
        }
        assert!(
            started.elapsed() < limit,
            "{what} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn processing_seconds(f: &Value) -> f64 {
    (f["finished_ms"].as_i64().unwrap() - f["started_ms"].as_i64().unwrap()) as f64 / 1000.0
}

/// Seconds per 4K still and per minute of 4K video at 1 frame/s, through the real API.
#[test]
#[ignore = "benchmark: cargo test -p gateway --release --test e2e -- --ignored --nocapture drone_api::drone_benchmark_4k"]
fn drone_benchmark_4k() {
    models();
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("dog.jpg");
    std::fs::write(&photo, dog_jpg()).unwrap();
    // The 4K inputs take minutes to encode: kept in the cache between runs.
    let cache = gateway::vision::runtime::models_dir()
        .join("..")
        .join("bench-drone");
    std::fs::create_dir_all(&cache).unwrap();
    let still = cache.join("still4k.jpg");
    let clip = cache.join("clip4k.mp4");
    if !(still.is_file() && clip.is_file()) {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&photo)
            .args(["-vf", "scale=3840:2160", "-q:v", "2"])
            .arg(&still);
        run_bounded(cmd, Duration::from_secs(120), "ffmpeg still");
        tag_as_drone_still(&still, LAT0, LON0);
        let tmp = cache.join("clip4k.tmp.mp4");
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-y", "-loop", "1", "-i"])
            .arg(&still)
            .args([
                "-t", "60", "-r", "30", "-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p",
            ])
            .arg(&tmp);
        let t = Instant::now();
        run_bounded(cmd, Duration::from_secs(900), "ffmpeg 4K video");
        std::fs::rename(&tmp, &clip).unwrap();
        println!(
            "made a 60 s 30 fps 3840x2160 MP4 in {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    let mut srt = String::new();
    for i in 0..60 {
        srt.push_str(&format!(
            "{}\n00:00:{i:02},000 --> 00:{:02}:{:02},000\nF/2.8, SS 1000, ISO 100, EV 0, GPS ({:.6}, {:.6}, 19), D 1.0m, H 30.00m, H.S 1.0m/s, V.S 0.0m/s\n\n",
            i + 1,
            (i + 1) / 60,
            (i + 1) % 60,
            LON0 + i as f64 * 1e-5,
            LAT0
        ));
    }

    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "max_still_mb = 32");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let admin = gw.token("admin", "").unwrap();
    let task = json!({"name": "Bench area", "department": "traffic", "contact": "t@city",
        "area": square(LAT0, LON0, 150.0), "targets": ["vehicle", "person", "bicycle"]});
    let body = serde_json::to_vec(&task).unwrap();
    assert_eq!(
        req(
            &gw,
            "POST",
            "/api/v1/tasks",
            &admin,
            Some(("application/json", &body)),
            &[]
        )
        .status,
        201
    );

    // Stills: 3 in one flight.
    let jpeg = std::fs::read(&still).unwrap();
    let id = json_of(&req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]))["id"]
        .as_u64()
        .unwrap();
    for i in 0..3 {
        let r = put_file(&gw, id, &format!("S_{i}.JPG"), &pilot, "image/jpeg", &jpeg);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_eq!(process(&gw, id, &pilot), 202);
    let f = follow(&gw, id, &pilot, "4K stills", Duration::from_secs(1800));
    assert_eq!(f["status"], "done", "{f:#}");
    let per_still = processing_seconds(&f) / 3.0;

    // Video: one minute of 4K at 1 frame/s.
    let video = std::fs::read(&clip).unwrap();
    let id = json_of(&req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]))["id"]
        .as_u64()
        .unwrap();
    let r = put_file(&gw, id, "V.MP4", &pilot, "video/mp4", &video);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = req(
        &gw,
        "PUT",
        &format!("/api/v1/flights/{id}/files/V.SRT"),
        &pilot,
        Some(("text/plain", srt.as_bytes())),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(process(&gw, id, &pilot), 202);
    let f = follow(&gw, id, &pilot, "4K video 1 fps", Duration::from_secs(3600));
    assert_eq!(f["status"], "done", "{f:#}");
    assert_eq!(f["frames_done"].as_u64(), Some(60), "{f:#}");
    let per_minute = processing_seconds(&f);
    println!(
        "drone benchmark: {per_still:.2} s per 4K still (3840x2160, 15 tiles + whole frame), \
         {per_minute:.1} s per minute of 4K video at 1 frame/s ({} findings)",
        f["findings"].as_array().map_or(0, Vec::len)
    );
}

/// Ground brightness `east`, `north` metres from (LAT0, LON0): a texture, plus a bright
/// 8 x 6 m new roof centred at (10, 5) when `roof`.
fn ground_texture(e: f64, n: f64, roof: bool) -> u8 {
    if roof && (6.0..14.0).contains(&e) && (2.0..8.0).contains(&n) {
        return 240;
    }
    let v = 120.0 + 50.0 * (e / 3.1).sin() * (n / 4.3).cos() + 30.0 * ((e + 2.0 * n) / 7.7).sin();
    v.clamp(0.0, 255.0) as u8
}

/// A nadir still of the synthetic ground from (east, north) offsets at 60 m, tagged by exiftool.
fn synthetic_still(path: &Path, east: f64, north: f64, yaw: f64, roof: bool) {
    let cam = Camera::from_focal_35mm(1280, 960, 24.0);
    let (lat, lon) = enu_to_wgs84(LAT0, LON0, east, north);
    let pose = Pose {
        lat,
        lon,
        rel_alt_m: 60.0,
        yaw_deg: yaw,
        pitch_deg: -90.0,
        roll_deg: 0.0,
    };
    let img = image::RgbImage::from_fn(cam.width, cam.height, |x, y| {
        let (e, n) = pixel_to_ground(&cam, &pose, x as f64 + 0.5, y as f64 + 0.5).unwrap();
        let v = ground_texture(e + east, n + north, roof);
        image::Rgb([v, v, v])
    });
    img.save(path).unwrap();
    let mut cmd = Command::new("exiftool");
    cmd.args([
        "-q",
        "-q",
        "-overwrite_original",
        &format!("-GPSLatitude={lat:.9}"),
        "-GPSLatitudeRef=N",
        &format!("-GPSLongitude={lon:.9}"),
        "-GPSLongitudeRef=E",
        "-FocalLengthIn35mmFormat=24",
        "-XMP-drone-dji:RelativeAltitude=+60.0",
        "-XMP-drone-dji:GimbalPitchDegree=-90.0",
        &format!("-XMP-drone-dji:GimbalYawDegree={yaw:+.1}"),
    ])
    .arg(path);
    run_bounded(cmd, Duration::from_secs(60), "exiftool");
}

/// Two flights over the same task area, flown differently: the second shows a new roof, which
/// comes back as one change candidate (and a clue for the task's department) near it.
#[test]
fn a_new_roof_between_two_flights_is_a_change_candidate() {
    models();
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let admin = gw.token("admin", "").unwrap();
    let task = json!({"name": "Rooftop structures", "department": "urban-planning",
        "contact": "plan@city", "site": "district-3", "area": square(LAT0, LON0, 25.0),
        "targets": ["person"]});
    let body = serde_json::to_vec(&task).unwrap();
    let r = req(
        &gw,
        "POST",
        "/api/v1/tasks",
        &admin,
        Some(("application/json", &body)),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let mut results = Vec::new();
    for (i, (east, yaw, roof)) in [(0.0, 0.0, false), (3.0, 15.0, true)]
        .into_iter()
        .enumerate()
    {
        let p = dir.path().join(format!("R_{i}.JPG"));
        synthetic_still(&p, east, -2.0, yaw, roof);
        let jpeg = std::fs::read(&p).unwrap();
        let id = json_of(&req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]))["id"]
            .as_u64()
            .unwrap();
        let r = put_file(&gw, id, &format!("R_{i}.JPG"), &pilot, "image/jpeg", &jpeg);
        assert_eq!(r.status, 201, "{}", r.text());
        let r = req(
            &gw,
            "POST",
            &format!("/api/v1/flights/{id}/process"),
            &pilot,
            None,
            &[],
        );
        assert_eq!(r.status, 202);
        let f = wait_final(&gw, id, &pilot, Duration::from_secs(120));
        assert_eq!(f["status"], "done", "{f:#}");
        results.push(f);
    }
    assert_eq!(
        results[0]["changes"].as_array().unwrap().len(),
        0,
        "first flight: nothing to compare"
    );
    let changes = results[1]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let c = &changes[0];
    assert_eq!(c["status"], "candidate");
    assert_eq!(c["previous_flight"], results[0]["id"]);
    let (roof_lat, roof_lon) = enu_to_wgs84(LAT0, LON0, 10.0, 5.0);
    let d = gateway::drone::georef::distance_m(
        c["lat"].as_f64().unwrap(),
        c["lon"].as_f64().unwrap(),
        roof_lat,
        roof_lon,
    );
    assert!(d < 4.0, "candidate {d} m from the new roof: {c}");
    let clue = c["clue_id"].as_i64().unwrap();
    let v = json_of(&req(
        &gw,
        "GET",
        &format!("/api/v1/clues/{clue}"),
        &admin,
        None,
        &[],
    ));
    let text = v.to_string();
    assert!(
        text.contains("drone.change_candidate") && text.contains("urban-planning"),
        "{v:#}"
    );
}

/// A video whose frames are over the pixel limit is refused from its header (ffprobe), never
/// decoded; the flight fails with the reason instead of exhausting memory.
#[test]
fn oversized_video_frames_are_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("huge.mov");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=9000x8000:d=1",
        "-frames:v",
        "1",
        "-c:v",
        "mjpeg",
        "-q:v",
        "31",
    ])
    .arg(&clip);
    run_bounded(cmd, Duration::from_secs(120), "ffmpeg huge");
    let video = std::fs::read(&clip).unwrap();
    let broker = Mosquitto::start().unwrap();
    let gw = start(dir.path(), &broker, "");
    let pilot = gw.token("drone_operator", "district-3").unwrap();
    let id = json_of(&req(&gw, "POST", "/api/v1/flights", &pilot, None, &[]))["id"]
        .as_u64()
        .unwrap();
    let r = put_file(&gw, id, "HUGE.MOV", &pilot, "video/quicktime", &video);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(process(&gw, id, &pilot), 202);
    let f = wait_final(&gw, id, &pilot, Duration::from_secs(60));
    assert_eq!(f["status"], "failed", "{f:#}");
    assert!(
        f["errors"].to_string().contains("over the pixel limit"),
        "{f:#}"
    );
    assert!(
        http::get(&format!("{}/healthz", gw.http))
            .unwrap()
            .is_success()
    );
}
