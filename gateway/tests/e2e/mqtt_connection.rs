//! Broker connection features against real mosquitto: TLS with client certificates and
//! passwords, and shared subscriptions spreading the intake over several gateways.

use crate::common::*;
use e2e::{Mosquitto, MosquittoOptions, VictoriaMetrics, now_ms};
use std::time::Duration;

fn payloads(n: usize, base: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"ts":{},"seq":{},"stream":"manhole_cover","metrics":{{"tilt":{i}.25,"open":false}}}}"#,
                base + i as i64,
                i + 1
            )
        })
        .collect()
}

#[test]
fn tls_with_client_certificate_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_with(
        MosquittoOptions::default()
            .require_client_cert()
            .user("gateway", "s3cret"),
    )
    .unwrap();
    assert!(broker.url().starts_with("mqtts://"));
    let vm = VictoriaMetrics::start().unwrap();
    let tls = broker.tls_files().unwrap();
    let extra = format!(
        "username = \"gateway\"\npassword = \"s3cret\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
        tls.ca_cert.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let gw = GatewayProcess::start(
        dir.path(),
        &config(&broker.url(), "gw-tls", &vm.url(), &extra),
    )
    .unwrap();
    e2e::wait_until(
        "gateway connected over TLS",
        Duration::from_secs(20),
        || Ok((gw.metric("gateway_mqtt_connected")? == 1.0).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", gw.diagnostics(), broker.log_tail(20)));
    let sent = broker
        .publish_many(
            "v1/m1/cover-7/telemetry",
            payloads(300, now_ms() - 60_000),
            1,
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(sent, 300);
    assert_eq!(
        wait_distinct(&vm, "manhole_cover_tilt", 300, Duration::from_secs(30)).unwrap(),
        300
    );
}

#[test]
fn wrong_password_is_reported_and_retried_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        Mosquitto::start_with(MosquittoOptions::default().user("gateway", "right")).unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let extra = "username = \"gateway\"\npassword = \"wrong\"";
    let mut gw = GatewayProcess::start(
        dir.path(),
        &config(&broker.url(), "gw-badpw", &vm.url(), extra),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(gw.proc.is_running(), "gateway exited on a refused login");
    assert_eq!(gw.metric("gateway_mqtt_connected").unwrap(), 0.0);
}

#[test]
fn shared_subscription_spreads_intake_over_two_gateways() {
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let sub = "subscriptions = [\"$share/gateways/v1/#\"]";
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let g1 =
        GatewayProcess::start(d1.path(), &config(&broker.url(), "gw-a", &vm.url(), sub)).unwrap();
    let g2 =
        GatewayProcess::start(d2.path(), &config(&broker.url(), "gw-b", &vm.url(), sub)).unwrap();
    for g in [&g1, &g2] {
        e2e::wait_until("gateway connected", Duration::from_secs(20), || {
            Ok((g.metric("gateway_mqtt_connected")? == 1.0).then_some(()))
        })
        .unwrap();
    }
    // Subscriptions are sent right after CONNACK; give the SUBACKs a moment.
    std::thread::sleep(Duration::from_millis(500));
    let msgs = telemetry("r9", 40, 0..50, now_ms() - 60_000);
    assert_eq!(
        publish_all(broker.port(), "pub-share", msgs).unwrap(),
        2_000
    );
    assert_eq!(
        wait_distinct(&vm, "grease_trap_level", 2_000, Duration::from_secs(60)).unwrap(),
        2_000
    );
    let a = g1.metric("gateway_mqtt_messages_total").unwrap();
    let b = g2.metric("gateway_mqtt_messages_total").unwrap();
    assert_eq!(a + b, 2_000.0, "each message goes to exactly one gateway");
    assert!(a > 0.0 && b > 0.0, "both gateways took a share ({a} / {b})");
}
