//! Readings arrive complete: real mosquitto, the real gateway binary, real VictoriaMetrics.

use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, now_ms};
use std::time::Duration;

const SELECTOR: &str = "grease_trap_level";

#[test]
fn fifty_thousand_messages_arrive_as_fifty_thousand_points() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw =
        GatewayProcess::start(dir.path(), &config(&broker.url(), "gw-50k", &vm.url(), "")).unwrap();
    let msgs = telemetry("r1", 100, 0..500, now_ms() - 60_000);
    assert_eq!(publish_all(broker.port(), "pub-50k", msgs).unwrap(), 50_000);
    let n = wait_distinct(&vm, SELECTOR, 50_000, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(n, 50_000);
    // The counters are bumped after the work they count, so the last batch's increments may
    // trail the points VictoriaMetrics already shows: wait (bounded) for them to settle.
    for (name, want) in [
        ("gateway_readings_in_total", 100_000.0),
        ("gateway_outbox_appended_total", 50_000.0),
        ("gateway_sink_points_written_total", 50_000.0),
    ] {
        e2e::wait_until(name, Duration::from_secs(15), || {
            Ok((gw.metric(name)? >= want).then_some(()))
        })
        .unwrap();
        assert_eq!(gw.metric(name).unwrap(), want, "{name}");
    }
    assert_eq!(gw.metric("gateway_sequence_lost_total").unwrap(), 0.0);
    // Every device is in the live table with its last values.
    let token = gw.token("inspector", "r1").unwrap();
    let devices = gw
        .get_with_token("/api/v1/devices?site=r1", &token)
        .unwrap()
        .json()
        .unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 100);
    assert_eq!(devices[0]["last_values"]["level"]["value"], 499.5);
    assert_eq!(devices[0]["online"], true);
}

/// A backlog seven times larger than everything the gateway may hold drains completely, and
/// the messages it holds unacknowledged stay within its queues. The broker does not bound them:
/// mosquitto 2.0.11 sends past its own `max_inflight_messages` once acknowledgements flow, and
/// the gateway used to take the whole backlog into memory.
#[test]
fn a_queued_backlog_drains_while_the_messages_held_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let ack_batch = 1000;
    let cfg = config(
        &broker.url(),
        "gw-backlog",
        &vm.url(),
        &format!("ack_batch = {ack_batch}"),
    );
    let mut gw = GatewayProcess::start(dir.path(), &cfg).unwrap();
    // One message through proves the session and its subscription exist; then the gateway
    // goes away and the broker queues the backlog under its session.
    publish_all(
        broker.port(),
        "pub-first",
        telemetry("r9", 1, 0..1, now_ms() - 120_000),
    )
    .unwrap();
    wait_distinct(&vm, SELECTOR, 1, Duration::from_secs(60)).unwrap();
    gw.kill();
    let backlog = 48_000;
    let msgs = telemetry("r9", 100, 1..481, now_ms() - 60_000);
    assert_eq!(
        publish_all(broker.port(), "pub-backlog", msgs).unwrap(),
        backlog
    );
    gw.start_again().unwrap();
    let n = wait_distinct(&vm, SELECTOR, backlog + 1, Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
    assert_eq!(n, backlog + 1);

    // Held at most: the decoder's queue, the intake channel, a batch being made durable and
    // the batch before it whose acks are being written (plus rumqttc's read of ten packets).
    let bound = gateway::source::mqtt::DECODE_QUEUE
        + gateway::pipeline::INTAKE_CAPACITY
        + 2 * ack_batch
        + 16;
    assert!(bound * 7 <= backlog, "the backlog must dwarf the bound");
    let peak = gw.metric("gateway_mqtt_unacked_messages_peak").unwrap();
    assert!(
        peak > 0.0 && peak <= bound as f64,
        "held {peak} unacknowledged messages, bound {bound}\n{}",
        gw.diagnostics()
    );
    assert!(
        gw.metric("gateway_mqtt_intake_paused_total").unwrap() > 0.0,
        "the source must have stopped reading at least once\n{}",
        gw.diagnostics()
    );
    // Every message is acknowledged in the end (nothing left for the broker to redeliver).
    e2e::wait_until("every ack written", Duration::from_secs(30), || {
        Ok((gw.metric("gateway_mqtt_unacked_messages")? == 0.0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", gw.diagnostics()));
}

#[test]
fn nothing_is_lost_when_the_gateway_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let mut gw =
        GatewayProcess::start(dir.path(), &config(&broker.url(), "gw-kill", &vm.url(), ""))
            .unwrap();
    let msgs = telemetry("r2", 50, 0..1000, now_ms() - 60_000);
    let port = broker.port();
    let publisher = std::thread::spawn(move || publish_all(port, "pub-kill", msgs));
    // Kill while messages are flowing, twice; the broker keeps the session's queue.
    for _ in 0..2 {
        e2e::wait_until("some intake", Duration::from_secs(60), || {
            Ok((gw.metric("gateway_outbox_appended_total")? > 1000.0).then_some(()))
        })
        .unwrap();
        gw.kill();
        std::thread::sleep(Duration::from_millis(500));
        gw.start_again().unwrap();
    }
    assert_eq!(publisher.join().unwrap().unwrap(), 50_000);
    let n = wait_distinct(&vm, SELECTOR, 50_000, Duration::from_secs(180)).unwrap();
    assert_eq!(n, 50_000);
}

#[test]
fn nothing_is_lost_while_the_database_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let mut vm = VictoriaMetrics::start().unwrap();
    let gw = GatewayProcess::start(
        dir.path(),
        &config(&broker.url(), "gw-dbdown", &vm.url(), ""),
    )
    .unwrap();
    let base = now_ms() - 60_000;
    assert_eq!(
        publish_all(broker.port(), "pub-a", telemetry("r3", 50, 0..200, base)).unwrap(),
        10_000
    );
    wait_distinct(&vm, SELECTOR, 10_000, Duration::from_secs(120)).unwrap();
    vm.stop().unwrap();
    // Everything published during the outage is acknowledged (it is durable in the outbox).
    let during = telemetry("r3", 50, 200..800, base);
    assert_eq!(publish_all(broker.port(), "pub-b", during).unwrap(), 30_000);
    e2e::wait_until("outbox holds the backlog", Duration::from_secs(60), || {
        Ok((gw.metric("gateway_outbox_depth_records")? >= 30_000.0).then_some(()))
    })
    .unwrap();
    assert!(gw.metric("gateway_sink_retries_total").unwrap() >= 1.0);
    vm.start_again().unwrap();
    let n = wait_distinct(&vm, SELECTOR, 40_000, Duration::from_secs(120)).unwrap();
    assert_eq!(n, 40_000);
    e2e::wait_until("outbox drained", Duration::from_secs(30), || {
        Ok((gw.metric("gateway_outbox_depth_records")? == 0.0).then_some(()))
    })
    .unwrap();
}

#[test]
fn malformed_messages_are_counted_and_the_good_ones_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let gw = GatewayProcess::start(
        dir.path(),
        &config(
            &broker.url(),
            "gw-bad",
            &vm.url(),
            "subscriptions = [\"v1/#\", \"junk/#\"]\ndead_letter_topic = \"dead/letters\"",
        ),
    )
    .unwrap();
    let dead = e2e::MqttSubscriber::start(&broker, "dead/letters", &[]).unwrap();
    let good = telemetry("r4", 20, 0..250, now_ms() - 60_000);
    let huge = vec![b'x'; 200 * 1024];
    let mut mixed = Vec::new();
    let mut bad = 0;
    for (i, m) in good.into_iter().enumerate() {
        mixed.push(m);
        if i % 10 == 0 {
            let (topic, payload): (String, Vec<u8>) = match (i / 10) % 5 {
                0 => ("v1/r4/dev0000/telemetry".into(), b"{not json".to_vec()),
                1 => (
                    "v1/r4/dev0001/telemetry".into(),
                    br#"{"metrics":{"level":"high","x":[1]}}"#.to_vec(),
                ),
                2 => ("v1/r4/dev0002/telemetry".into(), huge.clone()),
                3 => ("junk/unknown/topic".into(), b"42".to_vec()),
                _ => ("v1/r4/dev0003/state".into(), b"sideways".to_vec()),
            };
            mixed.push((topic, payload));
            bad += 1;
        }
    }
    assert_eq!(
        publish_all(broker.port(), "pub-bad", mixed).unwrap(),
        5_000 + bad
    );
    assert_eq!(
        wait_distinct(&vm, SELECTOR, 5_000, Duration::from_secs(60)).unwrap(),
        5_000
    );
    e2e::wait_until("all errors counted", Duration::from_secs(10), || {
        Ok((gw.metric("gateway_decode_errors_total").ok() == Some(bad as f64)).then_some(()))
    })
    .unwrap();
    for reason in [
        "bad_json",
        "wrong_type",
        "too_large",
        "unknown_topic",
        "bad_state",
    ] {
        let n = gw
            .metric(&format!(
                "gateway_decode_errors_total{{reason=\"{reason}\"}}"
            ))
            .unwrap();
        assert!(n >= 1.0, "no {reason} counted");
    }
    let got = dead.wait_for(bad, Duration::from_secs(10)).unwrap();
    assert!(got.iter().all(|(t, _)| t == "dead/letters"));
    assert!(
        got.iter()
            .any(|(_, p)| p.contains("\"reason\":\"bad_json\"")),
        "{got:?}"
    );
}
