//! Scale-out: two gateway processes share the intake through one MQTT shared subscription
//! (`$share/gateways/v1/#`) on a real mosquitto and write into one real VictoriaMetrics.
//! Every message is stored exactly once across them, and nothing is lost when one of them is
//! SIGKILLed mid-stream (its share waits in its persistent session until it is back).

use crate::common::*;
use e2e::{Mosquitto, VictoriaMetrics, now_ms};
use std::time::Duration;

const SELECTOR: &str = "grease_trap_level";
const SHARED: &str = r#"subscriptions = ["$share/gateways/v1/#"]"#;

/// Raw samples (duplicates included) of `selector`: VictoriaMetrics keeps a replayed point
/// as a second sample, so this minus the distinct count is what was written twice.
fn raw_samples(vm: &VictoriaMetrics) -> usize {
    vm.export(SELECTOR)
        .unwrap()
        .iter()
        .map(|s| s.timestamps.len())
        .sum()
}

#[test]
fn two_gateways_on_one_shared_subscription_store_every_message_once_despite_a_kill() {
    let broker = Mosquitto::start().unwrap();
    let vm = VictoriaMetrics::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gw_a = GatewayProcess::start(
        dir_a.path(),
        &config(&broker.url(), "gw-a", &vm.url(), SHARED),
    )
    .unwrap();
    let mut gw_b = GatewayProcess::start(
        dir_b.path(),
        &config(&broker.url(), "gw-b", &vm.url(), SHARED),
    )
    .unwrap();

    let msgs = telemetry("r-scale", 40, 0..500, now_ms() - 60_000);
    let total = msgs.len();
    let port = broker.port();
    let publisher = std::thread::spawn(move || publish_all(port, "pub-scale", msgs));

    // Kill B once it has taken part of the stream; A keeps going, B's share queues.
    e2e::wait_until("gw-b intake", Duration::from_secs(60), || {
        Ok((gw_b.metric("gateway_outbox_appended_total")? > 500.0).then_some(()))
    })
    .unwrap();
    let b_before_kill = gw_b.metric("gateway_outbox_appended_total").unwrap();
    gw_b.kill();
    std::thread::sleep(Duration::from_millis(800));
    gw_b.start_again().unwrap();

    assert_eq!(publisher.join().unwrap().unwrap(), total);
    let n = wait_distinct(&vm, SELECTOR, total, Duration::from_secs(180)).unwrap_or_else(|e| {
        panic!(
            "{e:#}\nA: {}\nB: {}",
            gw_a.diagnostics(),
            gw_b.diagnostics()
        )
    });
    assert_eq!(n, total, "every message stored");

    // Both took part, and after B's restart both are appending again.
    let (a, b) = (
        gw_a.metric("gateway_outbox_appended_total").unwrap(),
        gw_b.metric("gateway_outbox_appended_total").unwrap(),
    );
    assert!(
        a > 0.0,
        "gw-a received nothing: the subscription was not shared"
    );
    assert!(b > 0.0, "gw-b received nothing after its restart");
    // Duplicates come only from B's kill: what B had appended but not yet confirmed delivered
    // is delivered again from its outbox, and what it had not acknowledged (at most the
    // broker's in-flight window, 1000 in the harness) is sent to it again. Never more.
    let raw = raw_samples(&vm);
    let duplicates = raw - total;
    eprintln!(
        "two gateways: sent {total}, stored {n}, lost 0, duplicates {duplicates} \
         (A appended {a}, B {b_before_kill} before the kill and {b} after its restart)"
    );
    let bound = b_before_kill as usize + 1000 + 500; // + appends between the read and the kill
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates: more than a kill's redelivery window ({bound})"
    );
}
