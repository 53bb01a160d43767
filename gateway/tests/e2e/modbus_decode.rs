//! Every data type in every word order, read from real pymodbus slaves over TCP and RTU,
//! decodes to the value the slave holds.

use crate::modbus_common::*;
use gateway::reading::{Source, Value};
use gateway::source::modbus::{DataType, RegisterKind, WordOrder};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_every_type_and_order_decodes_to_the_held_value() {
    let port = e2e::free_port();
    let _slave = Slave::tcp(port, "normal");
    let url = format!("tcp://127.0.0.1:{port}");
    let mut scaled = full_map();
    // Same register, scaled and converted: 54321 * 0.1 cm + 1 cm = 5433.1 cm = 54331 mm.
    let mut level = reg(
        "level".into(),
        RegisterKind::Holding,
        0,
        DataType::U16,
        WordOrder::ABCD,
    );
    level.scale = 0.1;
    level.offset = 1.0;
    level.unit = "cm".into();
    scaled.push(level);
    // Two unit ids behind one TCP address, as behind a Modbus TCP gateway.
    let run = Running::start(vec![
        device("tcp-unit-1", &url, 1, scaled),
        device("tcp-unit-2", &url, 2, full_map()),
    ]);
    let c = run.collected.clone();
    c.wait_for(Duration::from_secs(10), "a poll of both units", |c| {
        c.last_poll("tcp-unit-1").is_some() && c.last_poll("tcp-unit-2").is_some()
    })
    .await;
    let expected = expected_values();
    let mut poll = c.last_poll("tcp-unit-1").unwrap();
    let level = poll
        .iter()
        .position(|r| r.metric == "level")
        .map(|i| poll.remove(i))
        .unwrap();
    assert_eq!(level.unit, "mm");
    assert!(
        (level.value.as_f64().unwrap() - 54331.0).abs() < 1e-6,
        "{level:?}"
    );
    assert_poll_matches(&poll, &expected);
    assert_poll_matches(&c.last_poll("tcp-unit-2").unwrap(), &expected);
    let r = &poll[0];
    assert_eq!(
        (r.site.as_str(), r.stream.as_str(), r.source, r.sequence),
        ("test-site", "grease_trap", Source::Modbus, None)
    );
    assert_eq!(c.presence("tcp-unit-1"), [true]);
    // Merged: holding 0..40, input 0..40, coils 0..16, discrete 0..16 = 4 requests per poll.
    let text = run.metrics.encode();
    assert!(
        text.contains("gateway_modbus_polls_total{device=\"tcp-unit-1\",result=\"ok\"}"),
        "{text}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_every_type_and_order_decodes_on_a_shared_serial_bus() {
    let pty = PtyPair::new();
    let _slave = Slave::rtu(&pty.b, "normal");
    let url = format!("rtu://{}?baud=9600", pty.a.display());
    // Two unit ids on one serial bus: their requests must take turns on the wire.
    let mut d1 = device("rtu-unit-1", &url, 1, full_map());
    let mut d2 = device("rtu-unit-2", &url, 2, full_map());
    for d in [&mut d1, &mut d2] {
        d.interval_ms = 200;
        d.timeout_ms = 1000;
        d.backoff_max_ms = 1000;
    }
    let run = Running::start(vec![d1, d2]);
    let c = run.collected.clone();
    c.wait_for(Duration::from_secs(15), "three polls of both units", |c| {
        c.data_times("rtu-unit-1").len() >= 3 && c.data_times("rtu-unit-2").len() >= 3
    })
    .await;
    let expected = expected_values();
    assert_poll_matches(&c.last_poll("rtu-unit-1").unwrap(), &expected);
    assert_poll_matches(&c.last_poll("rtu-unit-2").unwrap(), &expected);
    // Interleaving on a shared bus would corrupt frames and show up as offline reports.
    assert_eq!(c.presence("rtu-unit-1"), [true]);
    assert_eq!(c.presence("rtu-unit-2"), [true]);
    let v = c.last_poll("rtu-unit-1").unwrap();
    assert!(v.iter().any(|r| r.value == Value::Bool(true)));
    run.stop().await;
}
