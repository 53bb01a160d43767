//! Modbus readings take the same path as MQTT: the real gateway binary polls a real pymodbus
//! slave and the values land in the database and the device table; a dead slave shows offline.

use crate::common::*;
use crate::modbus_common::Slave;
use e2e::{Mosquitto, VictoriaMetrics, wait_until};
use std::time::Duration;

#[test]
fn polled_registers_land_in_the_database_and_presence_follows_the_slave() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let port = e2e::free_port();
    let slave = Slave::tcp(port, "normal");
    // Layout of tests/modbus/slave.py: ABCD u16 at 0 (54321), CDAB f32 at 18 (-1234.5678).
    let modbus = format!(
        r#"
[[modbus.devices]]
name = "pump-room-1"
site = "r-001"
url = "tcp://127.0.0.1:{port}"
unit = 1
interval_ms = 200
timeout_ms = 300
offline_after_failures = 2
stream = "grease_trap"
[[modbus.devices.registers]]
metric = "level_raw"
kind = "holding"
address = 0
type = "u16"
order = "ABCD"
[[modbus.devices.registers]]
metric = "temperature"
kind = "input"
address = 18
type = "f32"
order = "CDAB"
unit = "C"
"#
    );
    let gw = GatewayProcess::start(
        dir.path(),
        &format!(
            "{}{modbus}",
            config(&broker.url(), "gw-modbus", &vm.url(), "")
        ),
    )
    .unwrap();
    let series = vm
        .wait_for_points("grease_trap_level_raw", 5, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(series[0].label("device"), Some("pump-room-1"));
    assert_eq!(series[0].label("source"), Some("modbus"));
    assert!(series[0].values.iter().all(|v| *v == 54321.0));
    let temps = vm
        .wait_for_points("grease_trap_temperature", 1, Duration::from_secs(10))
        .unwrap();
    assert!((temps[0].values[0] - -1234.5678).abs() < 1e-3);

    let token = gw.token("inspector", "r-001").unwrap();
    let device = |gw: &GatewayProcess| {
        let all = gw
            .get_with_token("/api/v1/devices?site=r-001", &token)
            .unwrap()
            .json()
            .unwrap();
        all.as_array().and_then(|a| a.first().cloned())
    };
    let d = device(&gw).unwrap();
    assert_eq!(d["online"], true);
    assert_eq!(d["source"], "modbus");
    assert_eq!(d["last_values"]["level_raw"]["value"], 54321);

    slave.kill();
    wait_until("device offline", Duration::from_secs(20), || {
        Ok(device(&gw)
            .filter(|d| d["presence"] == "offline")
            .map(|_| ()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    let _again = Slave::tcp(port, "normal");
    wait_until("device back online", Duration::from_secs(90), || {
        Ok(device(&gw).filter(|d| d["online"] == true).map(|_| ()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
}
