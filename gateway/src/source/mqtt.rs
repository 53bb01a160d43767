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

use crate::backoff::{Backoff, Jitter};
use crate::config_error::{ConfigError, invalid};
use crate::decode::Decoder;
use crate::metrics::{Metrics, Reason};
use crate::pipeline::{Ack, Intake, IntakeSender};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The `[mqtt]` section.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Fixed id: the broker keeps the persistent session (and queued QoS 1 messages) under it.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topic filters; `$share/{group}/{filter}` spreads the load over several gateways.
    pub subscriptions: Vec<String>,
    pub keep_alive_s: u64,
    /// CA bundle (PEM) for `mqtts://`; the system roots are used when absent.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) for brokers that authenticate by certificate.
    pub client_cert_file: Option<std::path::PathBuf>,
    pub client_key_file: Option<std::path::PathBuf>,
    /// Payloads that fail to decode are republished here (QoS 1) when set.
    pub dead_letter_topic: Option<String>,
    /// Larger payloads are rejected as malformed without being parsed.
    pub max_payload_bytes: usize,
    /// Reconnect back-off bounds.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Messages decoded and made durable together before their acknowledgements are sent.
    pub ack_batch: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "enforcement-gateway".into(),
            username: None,
            password: None,
            subscriptions: vec!["v1/#".into()],
            keep_alive_s: 30,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            dead_letter_topic: None,
            max_payload_bytes: 64 * 1024,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            // Measured (tests/bench-ingest.sh): 512 left the fsync as the bottleneck (0.55-0.67x
            // mosquitto_sub); 4096 reaches 1.0-1.3x. A batch only takes what is already queued,
            // so light traffic is not delayed by a large value.
            ack_batch: 4096,
        }
    }
}

impl MqttConfig {
    /// Checks what serde cannot (the URL scheme, filters, pairs of settings); keys are named
    /// from the root (`mqtt.*`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = self;
        let url = url::Url::parse(&m.url).map_err(|e| invalid("mqtt.url", e.to_string()))?;
        if !matches!(url.scheme(), "mqtt" | "mqtts" | "tcp" | "ssl") {
            return Err(invalid(
                "mqtt.url",
                format!("scheme `{}` is not mqtt:// or mqtts://", url.scheme()),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("mqtt.url", "no host"));
        }
        if m.client_id.is_empty() || m.client_id.len() > 128 {
            return Err(invalid("mqtt.client_id", "must be 1..=128 characters"));
        }
        if m.subscriptions.is_empty() {
            return Err(invalid(
                "mqtt.subscriptions",
                "at least one topic filter is required",
            ));
        }
        for (i, s) in m.subscriptions.iter().enumerate() {
            validate_filter(s).map_err(|r| invalid(format!("mqtt.subscriptions[{i}]"), r))?;
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(invalid("mqtt.password", "set without mqtt.username"));
        }
        if m.client_cert_file.is_some() != m.client_key_file.is_some() {
            return Err(invalid(
                "mqtt.client_key_file",
                "client_cert_file and client_key_file go together",
            ));
        }
        if m.ack_batch == 0 || m.ack_batch > crate::pipeline::MAX_BATCH {
            return Err(invalid(
                "mqtt.ack_batch",
                format!("must be 1..={}", crate::pipeline::MAX_BATCH),
            ));
        }
        if m.max_payload_bytes == 0 {
            return Err(invalid("mqtt.max_payload_bytes", "must be at least 1"));
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            return Err(invalid(
                "mqtt.reconnect_min_ms",
                "must be > 0 and <= reconnect_max_ms",
            ));
        }
        Ok(())
    }
}

/// An MQTT topic filter, possibly `$share/{group}/{filter}`.
fn validate_filter(s: &str) -> Result<(), String> {
    let filter = match s.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest
                .split_once('/')
                .ok_or("`$share/` needs a group and a filter")?;
            if group.is_empty() || group.contains(['+', '#']) {
                return Err("bad share group name".into());
            }
            f
        }
        None => s,
    };
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("`#` must be a whole last level".into());
        }
        if l.contains('+') && *l != "+" {
            return Err("`+` must be a whole level".into());
        }
    }
    Ok(())
}

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

/// Capacity of rumqttc's request channel (acks, subscribes, dead-letter publishes).
pub const REQUEST_CAPACITY: usize = 10_000;

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

/// QoS 0 messages waiting for decoding beyond this are dropped (counted): QoS 0 has no
/// acknowledgement, so the broker's in-flight window does not bound them.
const MAX_PENDING_QOS0: usize = 100_000;

/// Drives the connection until `cancel`: publishes go to a decoding task that hands readings
/// to the processor.
///
/// The event loop itself never waits on the processor, so PUBACKs and keep-alives always flow.
/// Back-pressure was meant to come from the broker: a QoS 1 message stays in flight until the
/// processor acks it, and the broker should send no more than its in-flight limit
/// (`max_inflight_messages`). Measured with mosquitto 2.0.11 (tests/bench-ingest.sh) the
/// whole backlog arrives anyway, so this queue grows with the backlog (66 MB RSS at 200,000
/// queued messages). A bounded queue here deadlocks: rumqttc drains PUBACK requests only after
/// the incoming packets it has buffered, so the poll loop must never wait. The fix is MQTT 5
/// Receive Maximum (rumqttc's v5 client), which the broker must honour.
pub async fn run(
    cfg: MqttConfig,
    client: AsyncClient,
    eventloop: EventLoop,
    decoder: Arc<Decoder>,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let (raw_tx, raw_rx) = tokio::sync::mpsc::unbounded_channel();
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let decode = tokio::spawn(decode_loop(
        cfg.clone(),
        client.clone(),
        raw_rx,
        pending.clone(),
        decoder,
        tx,
        metrics.clone(),
        cancel.clone(),
    ));
    poll_loop(&cfg, &client, eventloop, raw_tx, pending, &metrics, &cancel).await;
    let _ = decode.await;
    metrics.mqtt_connected.set(0);
    let _ = client.try_disconnect();
}

async fn poll_loop(
    cfg: &MqttConfig,
    client: &AsyncClient,
    mut eventloop: EventLoop,
    raw_tx: tokio::sync::mpsc::UnboundedSender<(rumqttc::Publish, i64)>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
    metrics: &Metrics,
    cancel: &CancellationToken,
) {
    use std::sync::atomic::Ordering;
    let mut backoff =
        Backoff::from_millis(cfg.reconnect_min_ms, cfg.reconnect_max_ms).with_jitter(Jitter::Half);
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
                backoff.reset();
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
                if p.qos == QoS::AtMostOnce && pending.load(Ordering::Relaxed) >= MAX_PENDING_QOS0 {
                    metrics
                        .decode_errors_total
                        .get_or_create(&Reason::of("qos0_overflow"))
                        .inc();
                    continue;
                }
                pending.fetch_add(1, Ordering::Relaxed);
                if raw_tx.send((p, crate::clock::now_ms())).is_err() {
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
                let jittered = backoff.next_delay();
                warn!(error = %e, retry_in_ms = jittered.as_millis() as u64, "broker connection lost");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(jittered) => {}
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn decode_loop(
    cfg: MqttConfig,
    client: AsyncClient,
    mut raw_rx: tokio::sync::mpsc::UnboundedReceiver<(rumqttc::Publish, i64)>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
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
        pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
