//! A fast QoS 1 publisher (rumqttc, one connection) that returns only after every PUBACK, so a
//! test or benchmark knows the broker holds every message it sent.

use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// Publishes `messages` (topic, payload) at QoS 1 to `127.0.0.1:port` with up to `inflight`
/// unacknowledged at once; fails after `timeout`. `progress(acked, total)` is called about once
/// a second. Returns how long publishing took.
pub fn publish_qos1(
    port: u16,
    client_id: &str,
    messages: Vec<(String, Vec<u8>)>,
    inflight: u16,
    timeout: Duration,
    mut progress: impl FnMut(usize, usize),
) -> Result<Duration> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    rt.block_on(async move {
        let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_inflight(inflight)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
        let total = messages.len();
        let publisher = tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await?;
            }
            anyhow::Ok(client)
        });
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = Instant::now();
        while acked < total {
            let ev = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .context("publisher timed out")?;
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => bail!("publisher connection failed after {acked} acks: {e}"),
            }
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                progress(acked, total);
            }
        }
        let client = publisher.await??;
        let _ = client.disconnect().await;
        // Let the DISCONNECT go out.
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
        anyhow::Ok(())
    })?;
    Ok(t0.elapsed())
}
