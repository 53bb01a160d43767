//! LoRaWAN devices through their network servers, resolved by the device registry: real
//! mosquitto, the real gateway binary, real VictoriaMetrics. The uplinks are the ChirpStack v4
//! and The Things Stack v3 formats as published (fixtures/lorawan), with fresh device times.

mod common;

use common::*;
use e2e::{Mosquitto, VictoriaMetrics, now_ms, wait_until};
use std::time::Duration;

const CHIRPSTACK: &str = include_str!("fixtures/lorawan/chirpstack-v4-up-em310-udl.json");
const TTS: &str = include_str!("fixtures/lorawan/tts-v3-up-em320-tilt.json");

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
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, REGISTRY).unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw = GatewayProcess::start(
        dir.path(),
        &lorawan_config(&broker.url(), &vm.url(), &registry, ""),
    )
    .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, REGISTRY).unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw = GatewayProcess::start(
        dir.path(),
        &lorawan_config(&broker.url(), &vm.url(), &registry, ""),
    )
    .unwrap();
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
}
