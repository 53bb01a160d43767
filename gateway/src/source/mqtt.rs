//! The MQTT source: owns the broker connection and nothing else.
//!
//! QoS 1 with a persistent session (`clean_session = false` under a fixed client id), so the
//! broker keeps what is published while the gateway is away. Acknowledgements are manual: a
//! message is acked by the processor only after its readings are durable in the outbox, so a
//! crash between receipt and storage loses nothing (the broker redelivers; points are
//! idempotent). Undecodable messages are counted, logged with their topic, optionally
//! republished to a dead-letter topic, and acked so they cannot block the session.
//!
//! Back-pressure: see [`run`]; the broker's in-flight window bounds what waits in memory.

use crate::config::MqttConfig;
use crate::decode::Decoder;
use crate::metrics::{Metrics, Reason};
use crate::pipeline::{Ack, Intake, IntakeSender};
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Debug, Error)]
pub enum MqttError {
    #[error("mqtt.url: {0}")]
    Url(String),
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// rumqttc's incoming packet limit. Set to the MQTT maximum: if a huge message were larger
/// than the client limit, rumqttc would drop the connection and the broker would redeliver
/// the same message forever. Size policy is enforced after receipt (`max_payload_bytes`).
const MAX_INCOMING_PACKET: usize = 268_435_455;

/// Builds client options from config (URL, credentials, TLS, persistent session).
pub fn options(cfg: &MqttConfig) -> Result<MqttOptions, MqttError> {
    let url = url::Url::parse(&cfg.url).map_err(|e| MqttError::Url(e.to_string()))?;
    let tls = matches!(url.scheme(), "mqtts" | "ssl");
    let host = url
        .host_str()
        .ok_or_else(|| MqttError::Url("no host".into()))?
        .to_string();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut o = MqttOptions::new(cfg.client_id.clone(), host, port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)))
        .set_max_packet_size(MAX_INCOMING_PACKET, 1024 * 1024)
        .set_inflight(1000);
    if let Some(u) = &cfg.username {
        o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
    }
    if tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| MqttError::File {
                path: p.display().to_string(),
                source,
            })
        };
        let client_auth = match (&cfg.client_cert_file, &cfg.client_key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        let transport = match &cfg.ca_file {
            Some(ca) => Transport::Tls(TlsConfiguration::Simple {
                ca: read(ca)?,
                alpn: None,
                client_auth,
            }),
            None => Transport::tls_with_default_config(),
        };
        o.set_transport(transport);
    }
    Ok(o)
}

/// Publishes received but not yet decoded. Bounded so a backlog on the broker cannot fill
/// our memory (the broker's in-flight limit is not a reliable bound: mosquitto 2.0 was seen
/// sending a whole 200,000-message backlog at once).
pub const RAW_CAPACITY: usize = 1024;

/// Capacity of rumqttc's request channel (acks, subscribes, dead-letter publishes).
///
/// While the poll loop waits for room in the raw queue it cannot drain this channel, so it must
/// hold every ack the later stages can produce meanwhile (raw queue + intake channel + one
/// processor batch); otherwise the processor would wait on the poll loop and vice versa.
pub const REQUEST_CAPACITY: usize = 32_768;

const _: () = assert!(
    RAW_CAPACITY + crate::pipeline::INTAKE_CAPACITY + crate::pipeline::MAX_BATCH < REQUEST_CAPACITY
);

/// Makes ring the process-wide rustls provider (once); TLS connections need one.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only means another part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Creates the client (used by the processor to ack) and its event loop.
pub fn connect(cfg: &MqttConfig) -> Result<(AsyncClient, EventLoop), MqttError> {
    install_crypto_provider();
    Ok(AsyncClient::new(options(cfg)?, REQUEST_CAPACITY))
}

/// Drives the connection until `cancel`: publishes go to a decoding task that hands readings
/// to the processor.
///
/// The event loop only ever waits for the bounded raw queue, which the decoder drains without
/// waiting on acks, so PUBACKs keep flowing (see [`REQUEST_CAPACITY`]). When the processor is
/// slow the queues fill, the event loop stops reading the socket, and the broker keeps the rest.
pub async fn run(
    cfg: MqttConfig,
    client: AsyncClient,
    eventloop: EventLoop,
    decoder: Arc<Decoder>,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let (raw_tx, raw_rx) = tokio::sync::mpsc::channel(RAW_CAPACITY);
    let decode = tokio::spawn(decode_loop(
        cfg.clone(),
        client.clone(),
        raw_rx,
        decoder,
        tx,
        metrics.clone(),
        cancel.clone(),
    ));
    poll_loop(&cfg, &client, eventloop, raw_tx, &metrics, &cancel).await;
    let _ = decode.await;
    metrics.mqtt_connected.set(0);
    let _ = client.try_disconnect();
}

async fn poll_loop(
    cfg: &MqttConfig,
    client: &AsyncClient,
    mut eventloop: EventLoop,
    raw_tx: tokio::sync::mpsc::Sender<(rumqttc::Publish, i64)>,
    metrics: &Metrics,
    cancel: &CancellationToken,
) {
    let mut backoff = Duration::from_millis(cfg.reconnect_min_ms);
    let max_backoff = Duration::from_millis(cfg.reconnect_max_ms);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    warn!(code = ?ack.code, "broker refused the connection");
                    continue;
                }
                metrics.mqtt_connected.set(1);
                backoff = Duration::from_millis(cfg.reconnect_min_ms);
                info!(url = %cfg.url, session_present = ack.session_present, "connected to broker");
                // A broker that kept our session keeps our subscriptions too; subscribing
                // again would make it resend every retained message.
                if !ack.session_present {
                    for filter in &cfg.subscriptions {
                        if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                            warn!(%filter, error = %e, "subscribe request failed");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                metrics.mqtt_messages_total.inc();
                let sent = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = raw_tx.send((p, crate::clock::now_ms())) => r,
                };
                if sent.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                debug!(pkid = s.pkid, codes = ?s.return_codes, "subscribed");
            }
            Ok(_) => {}
            Err(e) => {
                if metrics.mqtt_connected.get() == 1 {
                    metrics.mqtt_reconnects_total.inc();
                }
                metrics.mqtt_connected.set(0);
                let jittered = backoff.mul_f64(rand::rng().random_range(0.5..=1.0));
                warn!(error = %e, retry_in_ms = jittered.as_millis() as u64, "broker connection lost");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(jittered) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn decode_loop(
    cfg: MqttConfig,
    client: AsyncClient,
    mut raw_rx: tokio::sync::mpsc::Receiver<(rumqttc::Publish, i64)>,
    decoder: Arc<Decoder>,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let (p, received) = tokio::select! {
            _ = cancel.cancelled() => break,
            m = raw_rx.recv() => match m { Some(m) => m, None => break },
        };
        match decoder.decode(&p.topic, &p.payload, received) {
            Ok(readings) => {
                let intake = Intake {
                    readings,
                    ack: Ack::Mqtt(p),
                };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = tx.send(intake) => if r.is_err() { break },
                }
            }
            Err(e) => {
                metrics
                    .decode_errors_total
                    .get_or_create(&Reason::of(e.reason()))
                    .inc();
                warn!(topic = %p.topic, bytes = p.payload.len(), reason = e.reason(), error = %e, "dropping undecodable message");
                dead_letter(
                    &cfg,
                    &client,
                    &metrics,
                    &p,
                    &e.to_string(),
                    e.reason(),
                    received,
                )
                .await;
                // Acked so a poison message cannot block the session; it is counted and logged.
                if client.ack(&p).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Republishes an undecodable message, wrapped with its topic and the reason, when configured.
async fn dead_letter(
    cfg: &MqttConfig,
    client: &AsyncClient,
    metrics: &Metrics,
    p: &rumqttc::Publish,
    error: &str,
    reason: &str,
    received_ms: i64,
) {
    let Some(dl) = &cfg.dead_letter_topic else {
        return;
    };
    // Never dead-letter the dead-letter topic itself (it would loop if we subscribe to it).
    if p.topic == *dl {
        return;
    }
    const KEEP: usize = 4096;
    let text = String::from_utf8_lossy(&p.payload[..p.payload.len().min(KEEP)]);
    let envelope = serde_json::json!({
        "topic": p.topic,
        "reason": reason,
        "error": error,
        "received_ms": received_ms,
        "bytes": p.payload.len(),
        "payload": text,
        "truncated": p.payload.len() > KEEP,
    });
    match client
        .publish(dl.clone(), QoS::AtLeastOnce, false, envelope.to_string())
        .await
    {
        Ok(()) => {
            metrics.dead_letter_published_total.inc();
        }
        Err(e) => debug!(error = %e, "dead-letter publish not queued"),
    }
}
