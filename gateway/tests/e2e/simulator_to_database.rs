//! The firmware simulator's fleet, through real mosquitto and the real gateway, into a real
//! database: every telemetry message becomes a point, none lost, none duplicated.

use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, now_ms, wait_until};
use firmware::sim::{FleetConfig, run_fleet};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Distinct (device, time) over every telemetry stream: each telemetry message is one point.
fn telemetry_points(vm: &VictoriaMetrics) -> BTreeSet<(String, String, i64)> {
    let mut points = BTreeSet::new();
    for selector in [
        "grease_trap_level_mm",
        "manhole_cover_tilt_deg",
        "camera_status_code",
    ] {
        for s in vm.export(selector).unwrap() {
            let site = s.label("site").unwrap_or("").to_string();
            let dev = s.label("device").unwrap_or("").to_string();
            for ts in &s.timestamps {
                points.insert((site.clone(), dev.clone(), *ts));
            }
        }
    }
    points
}

#[test]
fn every_simulated_reading_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    // The fleet replays a day of history flat out: keep its device times.
    let extra_devices = "\n[devices]\nmax_clock_skew_s = 172800\n";
    let gw = GatewayProcess::start(
        dir.path(),
        &format!(
            "{}{extra_devices}",
            config(&broker.url(), "gw-sim", &vm.url(), "")
        ),
    )
    .unwrap();
    wait_until("gateway connected", Duration::from_secs(20), || {
        Ok((gw.metric("gateway_mqtt_connected")? == 1.0).then_some(()))
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let cfg = FleetConfig {
        broker_port: broker.port(),
        client_id_prefix: "sim-e2e".into(),
        restaurants: 4,
        manholes: 3,
        cameras: 2,
        seed: 7,
        speed: 0.0,
        start_ms: Some(now_ms() - 26 * 3600 * 1000),
        duration_s: Some(24 * 3600),
        link_outages: false,
        ..FleetConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt
        .block_on(run_fleet(cfg, CancellationToken::new()))
        .unwrap();
    assert!(stats.telemetry > 100, "{stats:?}");
    assert_eq!(stats.dropped, 0);

    let mut last = 0;
    wait_until("every telemetry point", Duration::from_secs(60), || {
        last = telemetry_points(&vm).len();
        Ok((last as u64 >= stats.telemetry).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {last} of {} stored\n{}",
            stats.telemetry,
            gw.diagnostics()
        )
    });
    assert_eq!(last as u64, stats.telemetry, "more points than messages");
    // Telemetry and events, plus the retained online/offline states.
    wait_until("every message counted", Duration::from_secs(10), || {
        let n = gw.metric("gateway_mqtt_messages_total")?;
        Ok((n == (stats.messages + stats.states) as f64).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{stats:?}\n{}", gw.diagnostics()));
    assert_eq!(gw.metric("gateway_decode_errors_total").unwrap(), 0.0);
    assert_eq!(gw.metric("gateway_sequence_lost_total").unwrap(), 0.0);
    assert_eq!(gw.metric("gateway_sequence_duplicates_total").unwrap(), 0.0);
    // Every device ended with a clean stop: its retained state says offline.
    let token = gw.token("admin", "").unwrap();
    let devices = gw
        .get_with_token("/api/v1/devices", &token)
        .unwrap()
        .json()
        .unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len() as u32, stats.devices);
    assert!(
        devices.iter().all(|d| d["presence"] == "offline"),
        "{devices:?}"
    );
}
