//! LoRaWAN devices through their network servers, resolved by the device registry: real
//! mosquitto, the real gateway binary, real VictoriaMetrics. The uplinks are the ChirpStack v4
//! and The Things Stack v3 formats as published (fixtures/lorawan), with fresh device times.

use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, now_ms, wait_until};
use std::time::Duration;

const CHIRPSTACK: &str = include_str!("../fixtures/lorawan/chirpstack-v4-up-em310-udl.json");
const TTS: &str = include_str!("../fixtures/lorawan/tts-v3-up-em320-tilt.json");

const REGISTRY: &str = r#"
[[devices]]
site = "golden-dragon"
device = "trap-1"
kind = "grease_trap"
dev_eui = "24E124713B123456"
location = { lat = 31.23041, lon = 121.4737 }
shop = "Golden Dragon Restaurant"

[[devices]]
site = "north-street"
device = "cover-17"
kind = "manhole_cover"
dev_eui = "24-E1-24-71-0C-40-80-89"
"#;

fn rfc3339(ms: i64, zulu: bool) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    let s = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    if zulu { s } else { s.replace('Z', "+00:00") }
}

/// The fixture with its time field (`time` / `received_at`) set to `ms`.
fn with_time(fixture: &str, field: &str, ms: i64, zulu: bool) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
    v[field] = rfc3339(ms, zulu).into();
    v
}

fn lorawan_config(broker: &str, vm: &str, registry: &std::path::Path, extra: &str) -> String {
    config(
        broker,
        "gw-lorawan",
        vm,
        &format!(
            r#"subscriptions = ["v1/#", "application/+/device/+/event/up", "v3/+/devices/+/up"]
dead_letter_topic = "gateway/dead-letter"
[registry]
file = "{}"
check_s = 1
{extra}
[[mappings]]
name = "chirpstack-em310-udl"
preset = "chirpstack-v4"
codec = "milesight-em310-udl"
[[mappings]]
name = "tts-em320-tilt"
preset = "tts-v3"
codec = "milesight-em320-tilt"
"#,
            registry.display()
        ),
    )
}

/// A gateway on the LoRaWAN mappings with `REGISTRY`, its broker and database. Bind the
/// fields in this order (`let Setup { _dir, registry, broker, vm, gw } = ...`): locals drop in
/// reverse, so the gateway stops before its servers and its folder goes last.
struct Setup {
    _dir: tempfile::TempDir,
    registry: std::path::PathBuf,
    broker: Mosquitto,
    vm: VictoriaMetrics,
    gw: GatewayProcess,
}

impl Setup {
    fn start(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("registry.toml");
        std::fs::write(&registry, REGISTRY).unwrap();
        let broker = Mosquitto::start().unwrap();
        let vm = VictoriaMetrics::start().unwrap();
        let gw = GatewayProcess::start(
            dir.path(),
            &lorawan_config(&broker.url(), &vm.url(), &registry, extra),
        )
        .unwrap();
        Setup {
            _dir: dir,
            registry,
            broker,
            vm,
            gw,
        }
    }
}

/// Points of `selector` as (site, device, timestamp, value).
fn points(vm: &VictoriaMetrics, selector: &str) -> Vec<(String, String, i64, f64)> {
    let mut out = Vec::new();
    for s in vm.export(selector).unwrap() {
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            out.push((
                s.label("site").unwrap_or("").to_string(),
                s.label("device").unwrap_or("").to_string(),
                *t,
                *v,
            ));
        }
    }
    out.sort_by_key(|p| p.2);
    out
}

fn wait_points(
    vm: &VictoriaMetrics,
    selector: &str,
    n: usize,
    gw: &GatewayProcess,
) -> Vec<(String, String, i64, f64)> {
    wait_until(selector, Duration::from_secs(30), || {
        let p = points(vm, selector);
        Ok((p.len() >= n).then_some(p))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()))
}

#[test]
fn chirpstack_and_tts_uplinks_are_stored_at_device_time_under_the_registered_site() {
    let Setup {
        _dir,
        registry: _,
        broker,
        vm,
        gw,
    } = Setup::start("");
    // Device times a little in the past (inside the clock-skew window), distinct from now.
    let cs_ms = now_ms() - 90_000 + 775;
    let tts_ms = now_ms() - 45_000 + 979;
    let cs = with_time(CHIRPSTACK, "time", cs_ms, false);
    let app = cs["deviceInfo"]["applicationId"]
        .as_str()
        .unwrap()
        .to_string();
    broker
        .publish(
            &format!("application/{app}/device/24e124713b123456/event/up"),
            &cs.to_string(),
            1,
            false,
        )
        .unwrap();
    let tts = with_time(TTS, "received_at", tts_ms, true);
    broker
        .publish(
            "v3/manhole-covers@ttn/devices/eui-24e124710c408089/up",
            &tts.to_string(),
            1,
            false,
        )
        .unwrap();

    let distance = wait_points(&vm, "grease_trap_distance", 1, &gw);
    assert_eq!(
        distance,
        vec![("golden-dragon".into(), "trap-1".into(), cs_ms, 2116.0)]
    );
    let battery = wait_points(&vm, "grease_trap_battery", 1, &gw);
    assert_eq!(battery[0].3, 92.0);
    let angle = wait_points(&vm, "manhole_cover_angle_z", 1, &gw);
    assert_eq!(
        angle,
        vec![("north-street".into(), "cover-17".into(), tts_ms, 90.0)]
    );
    assert_eq!(gw.metric("gateway_decode_errors_total").unwrap(), 0.0);
    assert_eq!(
        gw.metric("gateway_unregistered_messages_total").unwrap(),
        0.0
    );
    assert_eq!(gw.metric("gateway_registry_devices").unwrap(), 2.0);
}

#[test]
fn an_unregistered_dev_eui_is_kept_counted_and_stored_under_the_placeholder_site() {
    let Setup {
        _dir,
        registry: _,
        broker,
        vm,
        gw,
    } = Setup::start("");
    let at = now_ms() - 30_000;
    let mut cs = with_time(CHIRPSTACK, "time", at, false);
    cs["deviceInfo"]["devEui"] = "a8404141c1843f5e".into();
    broker
        .publish(
            "application/x/device/a8404141c1843f5e/event/up",
            &cs.to_string(),
            1,
            false,
        )
        .unwrap();
    let p = wait_points(&vm, "grease_trap_distance", 1, &gw);
    assert_eq!(
        p,
        vec![("unregistered".into(), "a8404141c1843f5e".into(), at, 2116.0)]
    );
    assert_eq!(
        gw.metric("gateway_unregistered_messages_total{reason=\"kept\"}")
            .unwrap(),
        1.0
    );
    // Listed for installers: admin sees it, a token of another site does not.
    let admin = gw.token("admin", "").unwrap();
    let rows = gw
        .get_with_token("/api/v1/devices?unregistered=true", &admin)
        .unwrap()
        .json()
        .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], "a8404141c1843f5e");
    assert_eq!(rows[0]["kind"], "dev_eui");
    assert_eq!(rows[0]["site"], "unregistered");
    assert_eq!(rows[0]["messages"], 1);
    let other = gw.token("inspector", "golden-dragon").unwrap();
    let rows = gw
        .get_with_token("/api/v1/devices?unregistered=true", &other)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 0);
}

fn send(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> e2e::http::Response {
    let auth = format!("Bearer {token}");
    e2e::http::request(
        method,
        &format!("{}{path}", gw.http),
        Some(("application/json", body.as_bytes())),
        &[("Authorization", &auth)],
        e2e::http::TIMEOUT,
    )
    .unwrap()
}

#[test]
fn a_registry_edit_through_the_api_is_audited_and_applied_without_a_restart() {
    let Setup {
        _dir,
        registry,
        broker,
        vm,
        gw,
    } = Setup::start("");
    let admin = gw.token_named("admin", "", "ann").unwrap();
    let inspector = gw.token("inspector", "noodle-bar").unwrap();
    let entry = r#"{"kind":"grease_trap","dev_eui":"A8404141C1843F5E","shop":"Noodle Bar",
                    "location":{"lat":31.2290,"lon":121.4701}}"#;
    // Only admin edits.
    let r = send(
        &gw,
        "PUT",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &inspector,
        entry,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = send(
        &gw,
        "PUT",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &admin,
        r#"{"kind":"toaster"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send(
        &gw,
        "PUT",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &admin,
        entry,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json().unwrap()["dev_eui"], "a8404141c1843f5e");
    // Applied at once: the next uplink of that DevEUI lands on the new site.
    let at = now_ms() - 20_000;
    let mut cs = with_time(CHIRPSTACK, "time", at, false);
    cs["deviceInfo"]["devEui"] = "a8404141c1843f5e".into();
    broker
        .publish(
            "application/x/device/a8404141c1843f5e/event/up",
            &cs.to_string(),
            1,
            false,
        )
        .unwrap();
    let p = wait_points(&vm, "grease_trap_distance", 1, &gw);
    assert_eq!(p, vec![("noodle-bar".into(), "trap-2".into(), at, 2116.0)]);
    // The site's inspector sees the entry; written to the file.
    let seen = gw
        .get_with_token("/api/v1/registry/devices", &inspector)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen.as_array().unwrap().len(), 1);
    assert_eq!(seen[0]["shop"], "Noodle Bar");
    assert!(
        std::fs::read_to_string(&registry)
            .unwrap()
            .contains("a8404141c1843f5e")
    );
    // Audited in the chain, with who and what, and the chain verifies.
    let audit = gw
        .get_with_token("/api/v1/audit/export?format=json", &admin)
        .unwrap()
        .json()
        .unwrap();
    let put: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "registry_put")
        .collect();
    assert_eq!(put.len(), 1, "{audit}");
    assert!(
        put[0]["actor"].as_str().unwrap().starts_with("ann#"),
        "{}",
        put[0]
    );
    assert_eq!(put[0]["detail"]["device"], "noodle-bar/trap-2");
    assert_eq!(put[0]["detail"]["after"]["shop"], "Noodle Bar");
    let verify = gw
        .get_with_token("/api/v1/audit/verify", &admin)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    // A hand edit of the file is picked up too (check_s = 1), and removal is audited.
    let text = std::fs::read_to_string(&registry)
        .unwrap()
        .replace("Noodle Bar", "Noodle Bar 2");
    std::fs::write(&registry, text).unwrap();
    wait_until("hand edit applied", Duration::from_secs(15), || {
        let v = gw
            .get_with_token("/api/v1/registry/devices/noodle-bar/trap-2", &admin)?
            .json()?;
        Ok((v["shop"] == "Noodle Bar 2").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    let r = send(
        &gw,
        "DELETE",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &admin,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        &gw,
        "DELETE",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &admin,
        "",
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Issue 17 meets 25: the trap geometry lives in the registry. A distance-only EM310-UDL is
/// registered with its trap's build through the API while the gateway runs; its uplinks of a
/// night three days ago (replayed by the network server) show half the trap going at 02:10,
/// and the drop is judged in litres from that geometry: one high clue.
#[test]
fn a_distance_only_trap_registered_through_the_api_then_emptied_at_night_gets_a_high_clue() {
    const HOUR: i64 = 3_600_000;
    let Setup {
        _dir,
        registry: _,
        broker,
        vm: _vm,
        gw,
    } = Setup::start(
        // Device times of three days ago are kept (a network server's replay).
        "[devices]\nmax_clock_skew_s = 345600\n",
    );
    let admin = gw.token("admin", "").unwrap();
    // 1200 x 600 mm, sensor 1000 mm above the floor: 600 mm to the surface is 288 L.
    let entry = r#"{"kind":"grease_trap","dev_eui":"A8404141C1843F5E","shop":"Noodle Bar",
        "owner":"Li Na","location":{"lat":31.229,"lon":121.4701},
        "installation":{"trap":{"shape":"rectangular","length_mm":1200,"width_mm":600,
        "working_depth_mm":800,"sensor_height_mm":1000,"reports":"distance"}}}"#;
    let r = send(
        &gw,
        "PUT",
        "/api/v1/registry/devices/noodle-bar/trap-2",
        &admin,
        entry,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // 20:00 to 04:00 local (UTC+8, the default calendar), one uplink every 10 minutes with a
    // few mm of echo noise; at 02:10 the surface falls 200 mm (144 L) at once. No pump-out.
    let local_day = (now_ms() + 8 * HOUR).div_euclid(24 * HOUR) * 24 * HOUR - 8 * HOUR;
    let t0 = local_day - 3 * 24 * HOUR + 20 * HOUR;
    let dump = t0 + 6 * HOUR + 10 * 60_000;
    let uplinks: Vec<String> = (0..=48)
        .map(|i| {
            let t = t0 + i * 10 * 60_000;
            let noise = [0.0, 2.0, -1.0, 3.0, -2.0][i as usize % 5];
            let mut cs = with_time(CHIRPSTACK, "time", t, false);
            cs["deviceInfo"]["devEui"] = "a8404141c1843f5e".into();
            cs["fCnt"] = (1000 + i).into();
            cs["object"]["distance"] = (if t < dump { 600.0 } else { 800.0 } + noise).into();
            cs.to_string()
        })
        .collect();
    broker
        .publish_many(
            "application/x/device/a8404141c1843f5e/event/up",
            &uplinks,
            1,
            Duration::from_secs(30),
        )
        .unwrap();
    let clue = wait_until("a discharge clue", Duration::from_secs(30), || {
        let v = gw
            .get_with_token("/api/v1/clues?kind=grease_trap.illegal_discharge", &admin)?
            .json()?;
        Ok(v.as_array().and_then(|a| a.first().cloned()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(clue["subject"]["site"], "noodle-bar", "{clue}");
    assert_eq!(clue["subject"]["device"], "trap-2", "{clue}");
    assert_eq!(clue["level"], "high", "{clue}");
    assert_eq!(clue["detail"]["night"], true, "{clue}");
    // The subject carries what the registry says of the device.
    assert_eq!(clue["subject"]["shop"], "Noodle Bar", "{clue}");
    assert_eq!(clue["subject"]["owner"], "Li Na", "{clue}");
    assert_eq!(clue["subject"]["location"]["lat"], 31.229, "{clue}");
    // Judged in litres: only the registered geometry gives litres (without it, a distance
    // sensor's drop is judged in mm).
    let drop = clue["detail"]["drop"].as_f64().unwrap();
    assert!((drop - 144.0).abs() < 5.0, "{clue}");
    assert!(clue["title"].as_str().unwrap().contains(" L "), "{clue}");
    let all = gw
        .get_with_token("/api/v1/clues?level=high", &admin)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "one problem, one clue: {all}"
    );
}
