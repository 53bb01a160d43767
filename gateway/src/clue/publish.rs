//! Delivery of clue changes to the central platform: MQTT `clues/v1/{site}/{level}` (QoS 1)
//! and a webhook POST. SSE is served from the pool's broadcast (see `crate::http::clues`).
//!
//! Both channels read the store's outbox (rows written in the same transaction as the change),
//! in order, and mark a row delivered only after the broker's PUBACK or a 2xx answer. A change
//! is therefore delivered at least once per channel across crashes and restarts; every payload
//! carries `event_id` (the audit sequence number) so the platform drops the rare duplicate.
//!
//! **Retried forever, on purpose.** A row is retried with back-off until it is acknowledged,
//! however many attempts that takes; there is no attempt limit and no dead-letter state. The
//! outbox is the platform's only copy of an audited change: a platform that is down for a day
//! (or answers 401 after a secret rotation, or 400 to every payload after an upgrade on its
//! side) must still get every change, in order, once it is fixed. Giving a row up would drop
//! a change the platform can never ask for again, and skipping it would hand the platform a
//! later state of a clue before an earlier one. A platform that refuses one payload for good
//! is a fault to fix, not to route around, so it must be visible instead:
//! `gateway_delivery_head_failures{reason=CHANNEL}` is the number of failed attempts in a row
//! of the channel's oldest row (0 while it flows), `gateway_clue_delivery_failures_total`
//! counts every failure, and a warning is logged at the 8th, 16th, 32nd... failure in a row
//! with the row's topic and the last answer. The street-notice lanes (`crate::notice`) use the
//! same workers and the same rule. Notices to owners are different (`clue::owner_notify`):
//! they need no order, each is retried on its own up to its channel's `max_attempts` and then
//! recorded as failed on its clue, because a notice that never reaches the owner is a fact
//! the case needs, not a change to hold back.

use super::pool::{PoolHandle, PoolSetup};
use super::store::{CHANNEL_MQTT, CHANNEL_WEBHOOK, DeliveryQueue};
use crate::backoff::Backoff;
use crate::metrics::Reason;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long to wait for a PUBACK before publishing again.
const PUBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle poll of the outbox when nothing woke the worker (changes made by another process).
pub(crate) const IDLE_POLL: Duration = Duration::from_secs(2);
const BATCH: u32 = 100;

/// How a delivery lane opens its own connection to the broker. Defined here, by its user, so
/// the clue pool does not depend on the MQTT source; `config` implements it for `[mqtt]`.
pub trait MqttConnect: Send + Sync {
    /// A client and its event loop, with the client id `{client_id}-{suffix}`.
    fn connect(&self, suffix: &str) -> Result<(AsyncClient, EventLoop), String>;
}

/// Spawns the enabled delivery workers.
pub(crate) fn spawn_delivery(
    pool: &PoolHandle,
    setup: &PoolSetup,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let cfg = &setup.clues;
    let metrics = pool.metrics();
    let lane = |channel: &str| Lane {
        queue: pool.store(),
        wake: pool.delivery_wake.clone(),
        channel: channel.to_string(),
        delivered: metrics
            .clue_delivered_total
            .get_or_create(&Reason::of(channel))
            .clone(),
        failed: metrics
            .clue_delivery_failures_total
            .get_or_create(&Reason::of(channel))
            .clone(),
        head_failures: metrics
            .delivery_head_failures
            .get_or_create(&Reason::of(channel))
            .clone(),
        backoff: Backoff::from_millis(cfg.retry_min_ms, cfg.retry_max_ms),
    };
    let mut tasks = Vec::new();
    if cfg.mqtt_publish {
        tasks.extend(spawn_mqtt_lane(
            setup.broker.as_ref(),
            "clues",
            lane(CHANNEL_MQTT),
            cancel.clone(),
        ));
    }
    if let Some(url) = &cfg.webhook_url {
        tasks.extend(spawn_webhook_lane(
            url,
            cfg.webhook_secret.clone(),
            cfg.webhook_timeout_ms,
            lane(CHANNEL_WEBHOOK),
            cancel,
        ));
    }
    tasks
}

/// One delivery channel of the outbox: the rows it reads, what wakes it, its counters. Clue
/// changes and street notices (`crate::notice`) are delivered by the same workers, each
/// channel on its own.
pub(crate) struct Lane {
    pub queue: Arc<dyn DeliveryQueue>,
    /// Notified when rows were queued (an idle poll catches rows queued by another process).
    pub wake: Arc<Notify>,
    pub channel: String,
    pub delivered: Counter,
    pub failed: Counter,
    /// Failed attempts in a row of the lane's oldest row (`delivery_head_failures`).
    pub head_failures: Gauge,
    pub backoff: Backoff,
}

/// Publishes `lane`'s rows to their topics on the broker of `broker`, with its own client id
/// (`{client_id}-{suffix}`); nothing when the client cannot be configured (logged).
pub(crate) fn spawn_mqtt_lane(
    broker: &dyn MqttConnect,
    suffix: &str,
    lane: Lane,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    match broker.connect(suffix) {
        Ok((client, eventloop)) => {
            let (acks_tx, acks_rx) = tokio::sync::mpsc::unbounded_channel();
            vec![
                tokio::spawn(drive_eventloop(eventloop, acks_tx, cancel.clone())),
                tokio::spawn(mqtt_worker(lane, client, acks_rx, cancel)),
            ]
        }
        Err(e) => {
            warn!(channel = %lane.channel, error = %e, "MQTT delivery disabled: cannot configure client");
            Vec::new()
        }
    }
}

/// POSTs `lane`'s rows to `url` (signed with `secret`); nothing when the HTTP client cannot
/// be built (logged).
pub(crate) fn spawn_webhook_lane(
    url: &str,
    secret: Option<String>,
    timeout_ms: u64,
    lane: Lane,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    match reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .build()
    {
        Ok(http) => Some(tokio::spawn(webhook_worker(
            lane,
            http,
            url.to_string(),
            secret,
            cancel,
        ))),
        Err(e) => {
            warn!(channel = %lane.channel, error = %e, "webhook disabled: cannot build HTTP client");
            None
        }
    }
}

pub(crate) async fn pending(lane: &Lane) -> Vec<super::model::Delivery> {
    let (q, channel) = (lane.queue.clone(), lane.channel.clone());
    match tokio::task::spawn_blocking(move || q.pending(&channel, BATCH)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            warn!(channel = %lane.channel, error = %e, "reading the delivery outbox failed");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// Marks `row` delivered (`ok`) or its attempt failed (`why`), and counts it.
async fn mark(lane: &mut Lane, row: &super::model::Delivery, ok: bool, why: &str) {
    let (q, id) = (lane.queue.clone(), row.id);
    let now = crate::clock::now_ms();
    let res = tokio::task::spawn_blocking(move || {
        if ok {
            q.delivered(id, now)
        } else {
            q.attempt_failed(id)
        }
    })
    .await;
    if let Ok(Err(e)) = res {
        warn!(channel = %lane.channel, error = %e, "updating the delivery outbox failed");
    }
    if ok {
        lane.backoff.reset();
        lane.delivered.inc();
        lane.head_failures.set(0);
    } else {
        lane.failed.inc();
        let in_a_row = row.attempts.saturating_add(1);
        lane.head_failures.set(in_a_row);
        if in_a_row >= 8 && (in_a_row as u64).is_power_of_two() {
            warn!(channel = %lane.channel, topic = %row.topic, attempts = in_a_row, last = %why,
                "delivery still failing; retried until acknowledged (see clue::publish)");
        }
    }
}

/// Waits for a wake-up, the idle poll, or cancellation (false).
pub(crate) async fn idle(lane: &Lane, cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = lane.wake.notified() => true,
        _ = tokio::time::sleep(d) => true,
    }
}

async fn drive_eventloop(
    mut eventloop: rumqttc::EventLoop,
    acks: tokio::sync::mpsc::UnboundedSender<PublishEvent>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::from_millis(200, 10_000);
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                let _ = acks.send(PublishEvent::Acked(a.pkid));
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let _ = acks.send(PublishEvent::Sent(pkid));
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                debug!("clue publisher connected");
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "clue publisher connection error; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

async fn mqtt_worker(
    mut lane: Lane,
    client: rumqttc::AsyncClient,
    mut acks: tokio::sync::mpsc::UnboundedReceiver<PublishEvent>,
    cancel: CancellationToken,
) {
    let mut matcher = AckMatcher::default();
    'outer: loop {
        let rows = pending(&lane).await;
        if rows.is_empty() {
            if !idle(&lane, &cancel, IDLE_POLL).await {
                break;
            }
            continue;
        }
        for row in rows {
            // One message in flight at a time; its PUBACK is the one with its packet id
            // (a late PUBACK of an earlier, timed-out attempt must not count for this one).
            while let Ok(ev) = acks.try_recv() {
                matcher.on(ev);
            }
            matcher.begin();
            let sent = client
                .publish(
                    row.topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    row.payload.clone(),
                )
                .await;
            let acked = sent.is_ok()
                && tokio::select! {
                    _ = cancel.cancelled() => break 'outer,
                    a = tokio::time::timeout(PUBACK_TIMEOUT, async {
                        while let Some(ev) = acks.recv().await {
                            if matcher.on(ev) {
                                return true;
                            }
                        }
                        false
                    }) => matches!(a, Ok(true)),
                };
            if !acked {
                matcher.abandon();
            }
            let why = if sent.is_ok() {
                "no PUBACK"
            } else {
                "publish failed"
            };
            mark(&mut lane, &row, acked, why).await;
            if !acked {
                let wait = lane.backoff.next_delay();
                debug!(channel = %lane.channel, topic = %row.topic, ?wait, "publish not acknowledged; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue 'outer;
            }
        }
    }
}

/// What the MQTT event loop reports about our publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublishEvent {
    /// A publish went out with this packet id (a retransmission reports its old id again).
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
}

/// Matches PUBACKs to the one message in flight by packet id.
///
/// rumqttc assigns the packet id inside its event loop and reports it as `Outgoing::Publish`
/// in request order; requests of abandoned (timed-out) attempts may still go out, and their
/// ids are retransmitted after a reconnect. Those ids are remembered as stale, so neither
/// their `Sent` nor their late PUBACK is taken for the current message. Plain data, tested
/// with recorded sequences.
#[derive(Debug, Default)]
struct AckMatcher {
    current: Option<u16>,
    /// Ids of abandoned attempts (bounded: rumqttc keeps at most its in-flight window).
    stale: std::collections::VecDeque<u16>,
    /// Abandoned attempts whose `Sent` has not been seen yet.
    unsent: usize,
}

impl AckMatcher {
    const MAX_STALE: usize = 256;

    /// A new message is about to be published.
    fn begin(&mut self) {
        self.current = None;
    }

    /// The current message timed out: whatever id it had (or will have) is stale.
    fn abandon(&mut self) {
        match self.current.take() {
            Some(p) => self.remember(p),
            None => self.unsent = (self.unsent + 1).min(Self::MAX_STALE),
        }
    }

    fn remember(&mut self, pkid: u16) {
        if self.stale.len() >= Self::MAX_STALE {
            self.stale.pop_front();
        }
        self.stale.push_back(pkid);
    }

    /// Feeds one event; true when it acknowledges the current message.
    fn on(&mut self, ev: PublishEvent) -> bool {
        match ev {
            PublishEvent::Sent(p) => {
                if self.stale.contains(&p) || self.current == Some(p) {
                    // A retransmission.
                } else if self.unsent > 0 {
                    self.unsent -= 1;
                    self.remember(p);
                } else if self.current.is_none() {
                    self.current = Some(p);
                }
                false
            }
            PublishEvent::Acked(p) => {
                if let Some(i) = self.stale.iter().position(|s| *s == p) {
                    self.stale.remove(i);
                    return false;
                }
                self.current == Some(p)
            }
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        super::audit::hex(ring::hmac::sign(&key, body).as_ref())
    )
}

async fn webhook_worker(
    mut lane: Lane,
    http: reqwest::Client,
    url: String,
    secret: Option<String>,
    cancel: CancellationToken,
) {
    'outer: loop {
        let rows = pending(&lane).await;
        if rows.is_empty() {
            if !idle(&lane, &cancel, IDLE_POLL).await {
                break;
            }
            continue;
        }
        for row in rows {
            let event_id = serde_json::from_str::<serde_json::Value>(&row.payload)
                .ok()
                .and_then(|v| v.get("event_id").and_then(|e| e.as_i64()))
                .unwrap_or(0);
            let mut req = http
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Gateway-Event-Id", event_id.to_string())
                .body(row.payload.clone());
            if let Some(s) = &secret {
                req = req.header("X-Gateway-Signature", signature(s, row.payload.as_bytes()));
            }
            let answer = tokio::select! {
                _ = cancel.cancelled() => break 'outer,
                r = req.send() => match r {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => { debug!(channel = %lane.channel, status = %resp.status(), "webhook refused"); Err(format!("answered {}", resp.status())) }
                    Err(e) => { debug!(channel = %lane.channel, error = %e, "webhook failed"); Err("unreachable".to_string()) }
                },
            };
            let ok = answer.is_ok();
            mark(&mut lane, &row, ok, answer.err().as_deref().unwrap_or("")).await;
            if !ok {
                let wait = lane.backoff.next_delay();
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue 'outer;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_late_puback_of_a_timed_out_message_does_not_acknowledge_the_next() {
        use PublishEvent::{Acked, Sent};
        let mut m = AckMatcher::default();
        // Message 1 goes out as packet 1, its PUBACK is slow: the worker gives up.
        m.begin();
        assert!(!m.on(Sent(1)));
        m.abandon();
        // Message 2 is published; message 1's PUBACK arrives first.
        m.begin();
        assert!(!m.on(Acked(1)), "packet 1's ack is not message 2's");
        assert!(!m.on(Sent(2)));
        assert!(m.on(Acked(2)));
    }

    #[test]
    fn an_abandoned_publish_sent_late_and_retransmitted_is_never_taken_for_the_current_one() {
        use PublishEvent::{Acked, Sent};
        let mut m = AckMatcher::default();
        // Message 1 never even left (broker down): abandoned before its packet id is known.
        m.begin();
        m.abandon();
        m.begin();
        // On reconnect the old request goes out first (packet 7), then ours (packet 8).
        assert!(!m.on(Sent(7)));
        assert!(!m.on(Acked(7)));
        assert!(!m.on(Sent(8)));
        assert!(!m.on(Sent(8)), "a retransmission changes nothing");
        assert!(!m.on(Acked(9)), "another id is not ours");
        assert!(m.on(Acked(8)));
    }
}
