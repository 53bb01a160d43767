//! Integration: a small simulated fleet publishes to a real mosquitto (started per test by the
//! shared `e2e` harness) and a rumqttc subscriber checks that every message arrives, in order
//! per device, with nothing missing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware::protocol::{Event, MessageKind, NativeTopic, Telemetry};
use firmware::sim::{FleetConfig, MqttPublisher, MqttSettings, Publisher, run_fleet};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

type Received = Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>;

/// Subscribes to `filter` and collects every publish until the returned token is cancelled.
async fn subscribe(port: u16, id: &str, filter: &str) -> (Received, CancellationToken) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let got: Received = Arc::default();
    let stop = CancellationToken::new();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    {
        let got = got.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _client = client; // keep the request channel open
            let mut subscribed = Some(subscribed_tx);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    ev = eventloop.poll() => match ev {
                        Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                            got.lock().unwrap().push((p.topic, p.payload.to_vec(), p.retain));
                        }
                        Ok(_) => {}
                        Err(e) => panic!("subscriber: {e}"),
                    },
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .expect("SUBACK")
        .unwrap();
    (got, stop)
}

async fn wait_for(got: &Received, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_messages_arrive_in_order_per_device_with_none_missing() {
    let broker = e2e::Mosquitto::start().expect("mosquitto");
    let (got, stop) = subscribe(broker.port(), "sim-mqtt-test-sub", "v1/#").await;

    let cfg = FleetConfig {
        broker_port: broker.port(),
        restaurants: 4,
        manholes: 2,
        cameras: 2,
        seed: 2026,
        speed: 0.0,
        start_ms: Some(1_767_196_800_000),
        duration_s: Some(24 * 3600),
        ..FleetConfig::default()
    };
    let stats = run_fleet(cfg, CancellationToken::new()).await.unwrap();
    assert_eq!(stats.devices, 8);
    assert!(stats.messages > 500, "{stats:?}");
    assert!(
        stats.replayed > 0,
        "link outages replayed something: {stats:?}"
    );
    assert_eq!(stats.dropped, 0);

    let expected = (stats.messages + stats.states) as usize;
    wait_for(&got, expected).await;
    stop.cancel();
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), expected, "every published message arrives once");

    let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
    let (mut telemetry, mut events) = (0u64, 0u64);
    for (topic, payload, _) in &got {
        let t = NativeTopic::parse(topic).unwrap_or_else(|| panic!("not native: {topic}"));
        let seq = match t.kind {
            MessageKind::Telemetry => {
                telemetry += 1;
                let m: Telemetry = serde_json::from_slice(payload).unwrap();
                m.seq.unwrap()
            }
            MessageKind::Event => {
                events += 1;
                let e: Event = serde_json::from_slice(payload).unwrap();
                e.seq.unwrap()
            }
            MessageKind::State => continue,
        };
        let key = (t.site.to_string(), t.device.to_string());
        let prev = last.insert(key.clone(), seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "{key:?}: seq {seq} after {prev}");
    }
    assert_eq!((telemetry, events), (stats.telemetry, stats.events));
    assert_eq!(last.len(), 8);

    // After a clean stop every device's retained state says offline.
    let (retained, stop) = subscribe(broker.port(), "sim-mqtt-test-state", "v1/+/+/state").await;
    wait_for(&retained, 8).await;
    stop.cancel();
    let retained = retained.lock().unwrap().clone();
    assert_eq!(retained.len(), 8);
    assert!(retained.iter().all(|(_, p, r)| *r && p == b"offline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_dies_leaves_its_last_will() {
    let broker = e2e::Mosquitto::start().expect("mosquitto");
    let port = broker.port();
    // Run one device on its own runtime and drop the runtime: the socket closes without an MQTT
    // DISCONNECT, as when a device loses power, so the broker publishes the will.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut p = MqttPublisher::new(MqttSettings {
                host: "127.0.0.1".into(),
                port,
                client_id_prefix: "will-test".into(),
                username: None,
                password: None,
                flush_timeout: Duration::from_secs(5),
            });
            p.register(0, "r-900", "trap-1").await.unwrap();
            p.publish(firmware::sim::Outgoing {
                device: 0,
                kind: MessageKind::State,
                topic: "v1/r-900/trap-1/state".into(),
                payload: b"online".to_vec(),
                retain: true,
            })
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        drop(rt);
    })
    .join()
    .unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (got, stop) = subscribe(port, "will-test-sub", "v1/r-900/trap-1/state").await;
        wait_for(&got, 1).await;
        stop.cancel();
        let got = got.lock().unwrap().clone();
        if got.first().is_some_and(|(_, p, _)| p == b"offline") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no will: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
