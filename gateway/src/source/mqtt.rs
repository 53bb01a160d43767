//! The MQTT source: owns the broker connection and nothing else.
//!
//! QoS 1 with a persistent session (`clean_session = false` under a fixed client id), so the
//! broker keeps what is published while the gateway is away. Acknowledgements are manual: a
//! message is acked by the processor only after its readings are durable in the outbox, so a
//! crash between receipt and storage loses nothing (the broker redelivers; points are
//! idempotent). Undecodable messages are counted, logged with their topic, optionally
//! republished to a dead-letter topic, and acked so they cannot block the session.
//!
//! Back-pressure: see [`run`]; a bounded hand-off to the decoder, not the broker's in-flight
//! window, bounds what waits in memory.

use super::mqtt_acks::{AckReceiver, AckSender, MqttAck, Unsent};
use super::mqtt_keepalive::Liveness;
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
use tokio::sync::mpsc::error::TrySendError;
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
pub(crate) enum MqttError {
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

/// The keep-alive sent to the broker and used by rumqttc's pings: `keep_alive_s`, at least 5 s.
fn keep_alive(cfg: &MqttConfig) -> Duration {
    Duration::from_secs(cfg.keep_alive_s.max(5))
}

/// Builds client options from config (URL, credentials, TLS, persistent session).
pub(crate) fn options(cfg: &MqttConfig) -> Result<MqttOptions, MqttError> {
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
        .set_keep_alive(keep_alive(cfg))
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

/// Capacity of rumqttc's request channel (subscribes, dead-letter publishes; acknowledgements
/// do not go through it, see [`super::mqtt_acks`]).
pub(crate) const REQUEST_CAPACITY: usize = 10_000;

/// Makes ring the process-wide rustls provider (once); TLS connections need one.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only means another part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Creates the client (used by the processor to ack) and its event loop.
pub(crate) fn connect(cfg: &MqttConfig) -> Result<(AsyncClient, EventLoop), MqttError> {
    install_crypto_provider();
    Ok(AsyncClient::new(options(cfg)?, REQUEST_CAPACITY))
}

/// Messages taken from the broker and waiting for the decoder. While this queue is full the
/// source reads nothing more from the socket (TCP flow control holds the broker back) but
/// keeps writing acknowledgements, so memory stays bounded under any backlog: at most this
/// many raw messages (each at most `max_payload_bytes`), plus the intake channel and one batch.
pub const DECODE_QUEUE: usize = 512;

/// Most publishes handed to the decoder at once (rumqttc reads at most nine packets per socket
/// read): one channel send per read instead of per message (issue 24).
const HANDOFF_MAX: usize = 16;

/// Hand-offs waiting for the decoder: with at most [`HANDOFF_MAX`] publishes each, at most
/// [`DECODE_QUEUE`] messages.
const HANDOFF_QUEUE: usize = DECODE_QUEUE / HANDOFF_MAX;

/// Drives the connection until `cancel`: publishes go to a decoding task that hands readings
/// to the processor; the processor's acknowledgements come back on `acks` and are written by
/// this loop (see [`super::mqtt_acks`] for why not through rumqttc's request channel).
///
/// Back-pressure: the hand-off to the decoder is bounded ([`DECODE_QUEUE`]). The broker's
/// in-flight window is not relied on: mosquitto 2.0.11 sends past `max_inflight_messages`
/// once acknowledgements flow, and before this queue was bounded a 600,000-message backlog
/// arrived whole within 6 s (RSS 150 MB).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    cfg: MqttConfig,
    client: AsyncClient,
    eventloop: EventLoop,
    decoder: Arc<Decoder>,
    tx: IntakeSender,
    (ack_tx, ack_rx): (AckSender, AckReceiver),
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let (raw_tx, raw_rx) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
    let spare = Spare::default();
    let decode = tokio::spawn(decode_loop(
        cfg.clone(),
        client.clone(),
        (raw_rx, spare.clone()),
        decoder,
        tx,
        ack_tx,
        metrics.clone(),
        cancel.clone(),
    ));
    let mut source = Source::new(&cfg, &client, eventloop, ack_rx, &metrics, spare);
    source.poll_loop(raw_tx, &cancel).await;
    let _ = decode.await;
    source.last_acks().await;
    metrics.mqtt_connected.set(0);
    let _ = client.try_disconnect();
}

/// Emptied [`Raws::publishes`] buffers, given back by the decoder for the source's next
/// hand-offs: one allocated and freed per hand-off, by two threads, cost about 90
/// instructions a message (issue 24). Holds at most [`HANDOFF_QUEUE`] + 1.
#[derive(Clone, Default)]
struct Spare(Arc<std::sync::Mutex<Vec<Vec<rumqttc::Publish>>>>);

impl Spare {
    fn take(&self) -> Vec<rumqttc::Publish> {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop()
            .unwrap_or_else(|| Vec::with_capacity(HANDOFF_MAX))
    }

    fn give_back(&self, buffers: impl Iterator<Item = Vec<rumqttc::Publish>>) {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for mut b in buffers {
            if pool.len() > HANDOFF_QUEUE {
                break;
            }
            b.clear();
            pool.push(b);
        }
    }
}

/// Raw messages on their way to the decoder, from one socket read: the publishes (at most
/// [`HANDOFF_MAX`]), when they were received, and the connection they came on (their
/// acknowledgements are valid on that connection only).
struct Raws {
    publishes: Vec<rumqttc::Publish>,
    received: i64,
    connection: u64,
}

/// How long the source waits, at shutdown, for the processor's last acknowledgements.
const LAST_ACKS_WAIT: Duration = Duration::from_secs(5);

/// The poll loop's state: the connection and the acknowledgements still to write on it.
struct Source<'a> {
    cfg: &'a MqttConfig,
    client: &'a AsyncClient,
    eventloop: EventLoop,
    acks: AckReceiver,
    unsent: Unsent,
    /// Counts connections, so an ack is only written on the connection its message came on.
    connection: u64,
    metrics: &'a Metrics,
    spare: Spare,
    /// Keeps rumqttc's ping check from failing a connection that is alive (see
    /// [`super::mqtt_keepalive`]).
    liveness: Liveness,
}

impl<'a> Source<'a> {
    /// A source before its first connection: no acks waiting, connection 0.
    fn new(
        cfg: &'a MqttConfig,
        client: &'a AsyncClient,
        eventloop: EventLoop,
        acks: AckReceiver,
        metrics: &'a Metrics,
        spare: Spare,
    ) -> Self {
        Source {
            cfg,
            client,
            eventloop,
            acks,
            unsent: Unsent::default(),
            connection: 0,
            metrics,
            spare,
            liveness: Liveness::new(keep_alive(cfg)),
        }
    }

    async fn poll_loop(
        &mut self,
        raw_tx: tokio::sync::mpsc::Sender<Raws>,
        cancel: &CancellationToken,
    ) {
        let mut backoff =
            Backoff::from_millis(self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms)
                .with_jitter(Jitter::Half);
        // One cancellation waiter for the whole loop: made afresh per event, it was registered
        // and removed again for every message (issue 24).
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            self.write_acks().await;
            self.liveness.before_reading(&mut self.eventloop.state);
            // Acks first (biased): a poll future that is never polled is dropped harmlessly.
            // A poll interrupted by acks is cancelled at one of rumqttc's await points (socket
            // read, flush, request channel), which keep their data.
            let event = tokio::select! {
                biased;
                _ = &mut cancelled => break,
                more = self.acks.recv() => {
                    self.liveness.stopped_reading();
                    match more {
                        Some(more) => self.unsent.extend(more),
                        None => break,
                    }
                    continue;
                }
                e = self.eventloop.poll() => e,
            };
            self.liveness.stopped_reading();
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    self.connection_lost();
                    let jittered = backoff.next_delay();
                    warn!(error = %e, retry_in_ms = jittered.as_millis() as u64, "broker connection lost");
                    tokio::select! {
                        _ = &mut cancelled => break,
                        _ = tokio::time::sleep(jittered) => {}
                    }
                    continue;
                }
            };
            if !self.on_event(event, &raw_tx, cancel, &mut backoff).await {
                break;
            }
        }
    }

    /// Handles one event and then every event rumqttc has already read and queued behind it
    /// (one socket read yields up to nine packets). `EventLoop::poll` would hand them out one
    /// per call, each through this loop's `select!` and rumqttc's own; taking them from its
    /// queue (`MqttState::events`, what `poll` pops first) saved about 750 instructions a
    /// message (issue 24). Only while connected: after a failed write the next `poll`
    /// reconnects before it returns anything queued, and so does this loop. The publishes go
    /// to the decoder together ([`Raws`]), with one receive time. False once shutting down.
    async fn on_event(
        &mut self,
        mut event: Event,
        raw_tx: &tokio::sync::mpsc::Sender<Raws>,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
    ) -> bool {
        let mut raws = Raws {
            publishes: Vec::new(),
            received: 0,
            connection: self.connection,
        };
        loop {
            if let Event::Incoming(_) = &event {
                Liveness::packet_read(&mut self.eventloop.state);
            }
            match event {
                Event::Incoming(Packet::ConnAck(ack)) => {
                    // What was read before belongs to the connection before (not reached:
                    // a ConnAck is the first event of a connection; kept for the invariant).
                    if !raws.publishes.is_empty()
                        && !self.hand_over(raw_tx, &mut raws, cancel).await
                    {
                        return false;
                    }
                    if ack.code != ConnectReturnCode::Success {
                        warn!(code = ?ack.code, "broker refused the connection");
                    } else {
                        self.connected(ack.session_present, backoff);
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    self.metrics.mqtt_messages_total.inc();
                    if p.qos != QoS::AtMostOnce {
                        let held = self.metrics.mqtt_unacked_messages.inc() + 1;
                        if held > self.metrics.mqtt_unacked_messages_peak.get() {
                            self.metrics.mqtt_unacked_messages_peak.set(held);
                        }
                    }
                    if raws.publishes.is_empty() {
                        if raws.publishes.capacity() == 0 {
                            raws.publishes = self.spare.take();
                        }
                        raws.received = crate::clock::now_ms();
                        raws.connection = self.connection;
                    }
                    raws.publishes.push(p);
                    if raws.publishes.len() >= HANDOFF_MAX
                        && !self.hand_over(raw_tx, &mut raws, cancel).await
                    {
                        return false;
                    }
                }
                Event::Incoming(Packet::SubAck(s)) => {
                    debug!(pkid = s.pkid, codes = ?s.return_codes, "subscribed");
                }
                _ => {}
            }
            if self.eventloop.network.is_none() {
                break;
            }
            match self.eventloop.state.events.pop_front() {
                Some(next) => event = next,
                None => break,
            }
        }
        raws.publishes.is_empty() || self.hand_over(raw_tx, &mut raws, cancel).await
    }

    /// A connection is up: counts it and subscribes unless the broker kept the session.
    fn connected(&mut self, session_present: bool, backoff: &mut Backoff) {
        self.connection += 1;
        self.metrics.mqtt_connected.set(1);
        backoff.reset();
        info!(url = %self.cfg.url, session_present, "connected to broker");
        // A broker that kept our session keeps our subscriptions too; subscribing again would
        // make it resend every retained message.
        if !session_present {
            for filter in &self.cfg.subscriptions {
                if let Err(e) = self.client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    warn!(%filter, error = %e, "subscribe request failed");
                }
            }
        }
    }

    /// Queues the publishes in `raws` for the decoder (and leaves `raws` empty). While the
    /// queue is full nothing more is read from the broker, but acknowledgements keep being
    /// written. False once shutting down.
    async fn hand_over(
        &mut self,
        raw_tx: &tokio::sync::mpsc::Sender<Raws>,
        raws: &mut Raws,
        cancel: &CancellationToken,
    ) -> bool {
        let raws = Raws {
            publishes: std::mem::take(&mut raws.publishes),
            ..*raws
        };
        let permit = match raw_tx.try_reserve() {
            Ok(permit) => permit,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.metrics.mqtt_intake_paused_total.inc();
                loop {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return false,
                        permit = raw_tx.reserve() => match permit {
                            Ok(permit) => break permit,
                            Err(_) => return false,
                        },
                        more = self.acks.recv() => match more {
                            Some(more) => {
                                self.unsent.extend(more);
                                self.write_acks().await;
                            }
                            None => return false,
                        },
                    }
                }
            }
        };
        permit.send(raws);
        true
    }

    /// Writes the acknowledgements queued so far (all that are waiting, one flush).
    async fn write_acks(&mut self) {
        while let Ok(more) = self.acks.try_recv() {
            self.unsent.extend(more);
        }
        if self.unsent.is_empty() {
            return;
        }
        let timeout = keep_alive(self.cfg);
        match self
            .unsent
            .write(&mut self.eventloop, self.connection, timeout)
            .await
        {
            Ok(n) => {
                self.metrics.mqtt_unacked_messages.dec_by(n as i64);
            }
            Err(e) => {
                warn!(error = %e, "broker connection lost while acknowledging");
                // rumqttc's own recovery: the socket is dropped and the next poll reconnects.
                self.eventloop.clean();
                self.connection_lost();
            }
        }
    }

    /// Messages of a lost connection will be redelivered: they are no longer ours to ack.
    fn connection_lost(&mut self) {
        if self.metrics.mqtt_connected.get() == 1 {
            self.metrics.mqtt_reconnects_total.inc();
        }
        self.metrics.mqtt_connected.set(0);
        self.metrics.mqtt_unacked_messages.set(0);
    }

    /// At shutdown: writes the acknowledgements of the processor's last batches, until it has
    /// finished (its senders are gone) or [`LAST_ACKS_WAIT`] has passed.
    async fn last_acks(&mut self) {
        let deadline = tokio::time::Instant::now() + LAST_ACKS_WAIT;
        while let Ok(Some(more)) = tokio::time::timeout_at(deadline, self.acks.recv()).await {
            self.unsent.extend(more);
        }
        self.write_acks().await;
    }
}

/// Hand-offs ([`Raws`]) the decoder takes from its queue at once: all it can hold.
const DECODE_BATCH: usize = HANDOFF_QUEUE;

/// Decodes raw messages and sends their readings on to the processor.
///
/// Takes every hand-off waiting (up to [`DECODE_BATCH`]) per wake-up and hands intakes over
/// without waiting while the processor has room: per message, a wake-up, a channel `select!`
/// and a cancellation waiter registered and removed again were a visible share of intake's CPU
/// (issue 24). Cancellation is still honoured between batches and whenever it has to wait.
#[allow(clippy::too_many_arguments)]
async fn decode_loop(
    cfg: MqttConfig,
    client: AsyncClient,
    (mut raw_rx, spare): (tokio::sync::mpsc::Receiver<Raws>, Spare),
    decoder: Arc<Decoder>,
    tx: IntakeSender,
    acks: AckSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut raws = Vec::with_capacity(DECODE_BATCH);
    loop {
        let n = tokio::select! {
            _ = &mut cancelled => break,
            n = raw_rx.recv_many(&mut raws, DECODE_BATCH) => n,
        };
        if n == 0 {
            break;
        }
        for batch in raws.iter_mut() {
            let (received, connection) = (batch.received, batch.connection);
            for p in batch.publishes.drain(..) {
                let ack = match p.qos {
                    QoS::AtMostOnce => Ack::None,
                    _ => Ack::Mqtt(MqttAck {
                        pkid: p.pkid,
                        connection,
                    }),
                };
                match decoder.decode_message(&p.topic, &p.payload, received) {
                    Ok(d) => {
                        let intake = Intake {
                            readings: d.readings,
                            ack,
                            slot: d.slot,
                        };
                        let waiting = match tx.try_send(intake) {
                            Ok(()) => continue,
                            Err(TrySendError::Closed(_)) => return,
                            Err(TrySendError::Full(intake)) => intake,
                        };
                        tokio::select! {
                            _ = &mut cancelled => return,
                            r = tx.send(waiting) => if r.is_err() { return },
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
                        if let Ack::Mqtt(a) = ack
                            && acks.send(vec![a]).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        spare.give_back(raws.drain(..).map(|r| r.publishes));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one MQTT packet (fixed header, remaining length, body); answers its first byte
    /// and body.
    async fn read_packet(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        let first = s.read_u8().await.expect("packet type");
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.expect("remaining length");
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.expect("packet body");
        (first, body)
    }

    /// A QoS 1 PUBLISH of `payload` to `topic` with packet id `pkid`.
    fn publish(topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
        let len = 2 + topic.len() + 2 + payload.len();
        assert!(len < 128, "one length byte");
        let mut p = vec![0x32, len as u8];
        p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        p.extend_from_slice(topic.as_bytes());
        p.extend_from_slice(&pkid.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// Publishes that arrive in one socket read reach the decoder in order, in hand-offs of at
    /// most `HANDOFF_MAX` that share a receive time and carry their connection, and the acks
    /// the processor sends back are written to the broker as PUBACKs in order.
    #[tokio::test]
    async fn publishes_of_one_read_reach_the_decoder_in_order_and_their_acks_go_back() {
        const N: u16 = 40;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = MqttConfig {
            url: format!("mqtt://{}", listener.local_addr().unwrap()),
            ..MqttConfig::default()
        };
        let (client, eventloop) = connect(&cfg).unwrap();
        let metrics = Metrics::new();
        let (ack_tx, ack_rx) = super::super::mqtt_acks::channel();
        let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
        let cancel = CancellationToken::new();
        let mut source = Source::new(&cfg, &client, eventloop, ack_rx, &metrics, Spare::default());
        let broker = async {
            let (mut s, _) = listener.accept().await.unwrap();
            let (connect, _) = read_packet(&mut s).await;
            assert_eq!(connect >> 4, 1, "CONNECT first");
            // CONNACK, session present (so no SUBSCRIBE), then every publish in one write.
            let mut out = vec![0x20, 0x02, 0x01, 0x00];
            for i in 1..=N {
                out.extend(publish(
                    &format!("v1/s/d{i}"),
                    i,
                    format!("p{i}").as_bytes(),
                ));
            }
            s.write_all(&out).await.unwrap();
            let mut got = Vec::new();
            let mut handoffs = 0;
            while got.len() < usize::from(N) {
                let raws: Raws = raw_rx.recv().await.expect("a hand-off");
                handoffs += 1;
                assert!(!raws.publishes.is_empty() && raws.publishes.len() <= HANDOFF_MAX);
                assert_eq!(raws.connection, 1);
                assert!(raws.received > 0);
                got.extend(raws.publishes.into_iter().map(|p| (p.pkid, p.topic)));
            }
            let want: Vec<(u16, String)> = (1..=N).map(|i| (i, format!("v1/s/d{i}"))).collect();
            assert_eq!(got, want);
            assert!(
                handoffs < usize::from(N),
                "publishes of one read go together"
            );
            let acks = (1..=N)
                .map(|pkid| MqttAck {
                    pkid,
                    connection: 1,
                })
                .collect();
            ack_tx.send(acks).unwrap();
            for i in 1..=N {
                let (kind, body) = read_packet(&mut s).await;
                assert_eq!((kind, body), (0x40, i.to_be_bytes().to_vec()), "PUBACK {i}");
            }
            cancel.cancel();
        };
        tokio::join!(source.poll_loop(raw_tx, &cancel), broker);
        assert_eq!(metrics.mqtt_messages_total.get(), u64::from(N));
        assert_eq!(metrics.mqtt_unacked_messages.get(), 0);
    }

    /// The decoder's buffers come back empty for reuse, and no more are kept than hand-offs
    /// can be waiting.
    #[test]
    fn spare_buffers_come_back_empty_and_bounded() {
        let spare = Spare::default();
        let first = spare.take();
        assert!(first.is_empty() && first.capacity() >= HANDOFF_MAX);
        let full = || {
            let mut v = Vec::with_capacity(HANDOFF_MAX);
            v.push(rumqttc::Publish::new("t", QoS::AtLeastOnce, "p"));
            v
        };
        spare.give_back((0..3 * HANDOFF_QUEUE).map(|_| full()));
        let kept = spare.0.lock().unwrap().len();
        assert_eq!(kept, HANDOFF_QUEUE + 1);
        let again = spare.take();
        assert!(again.is_empty() && again.capacity() >= HANDOFF_MAX);
    }
}
