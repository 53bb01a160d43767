//! Where the simulated devices' messages go: a real broker through rumqttc, or memory (tests).
//!
//! The fleet loop talks only to the [`Publisher`] trait, so determinism can be checked without a
//! broker, and so the gateway could plug in its own transport.

use std::prelude::rust_2024::*;

use std::future::Future;
use std::string::{String, ToString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::vec::Vec;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SimError;
use crate::protocol::{MessageKind, STATE_OFFLINE};

/// One MQTT message from a simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Index of the device in registration order.
    pub device: usize,
    pub kind: MessageKind,
    /// `v1/{site}/{device}/{kind}`.
    pub topic: String,
    pub payload: Vec<u8>,
    /// Only `state` messages are retained.
    pub retain: bool,
}

/// A transport for the fleet. Devices are registered once, in order (their index is what
/// [`Outgoing::device`] refers to), then messages are published in order, then `close` flushes.
pub trait Publisher: Send {
    /// Prepares device `index` with the given `v1/{site}/{device}` topic base. The MQTT publisher
    /// opens the device's own connection here, with last will `offline` (retained) on its state
    /// topic, as a real device would.
    fn register(
        &mut self,
        index: usize,
        site: &str,
        device: &str,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Publishes one message (QoS 1 for MQTT). Returns once the transport has accepted it.
    fn publish(&mut self, msg: Outgoing) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Waits until everything published is acknowledged, then disconnects.
    fn close(&mut self) -> impl Future<Output = Result<(), SimError>> + Send;
}

/// Keeps every message in memory, in publish order.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    pub messages: Vec<Outgoing>,
    pub devices: Vec<(String, String)>,
}

impl Publisher for MemoryPublisher {
    async fn register(&mut self, index: usize, site: &str, device: &str) -> Result<(), SimError> {
        debug_assert_eq!(index, self.devices.len());
        self.devices.push((site.to_string(), device.to_string()));
        Ok(())
    }

    async fn publish(&mut self, msg: Outgoing) -> Result<(), SimError> {
        self.messages.push(msg);
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SimError> {
        Ok(())
    }
}

/// Connection settings for [`MqttPublisher`]. `Debug` redacts the password.
#[derive(Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub client_id_prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long `close` waits for outstanding acknowledgements.
    pub flush_timeout: Duration,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id_prefix", &self.client_id_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("flush_timeout", &self.flush_timeout)
            .finish()
    }
}

struct Connection {
    client: AsyncClient,
    sent: u64,
    acked: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// One MQTT connection per device (each device has its own last will), QoS 1.
pub struct MqttPublisher {
    settings: MqttSettings,
    conns: Vec<Connection>,
}

impl MqttPublisher {
    pub fn new(settings: MqttSettings) -> Self {
        MqttPublisher {
            settings,
            conns: Vec::new(),
        }
    }
}

impl Publisher for MqttPublisher {
    async fn register(&mut self, index: usize, site: &str, device: &str) -> Result<(), SimError> {
        debug_assert_eq!(index, self.conns.len());
        let s = &self.settings;
        let client_id = std::format!("{}-{site}-{device}", s.client_id_prefix);
        let mut opts = MqttOptions::new(client_id.clone(), s.host.clone(), s.port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_inflight(64)
            .set_request_channel_capacity(64)
            .set_last_will(LastWill::new(
                std::format!("v1/{site}/{device}/{}", MessageKind::State.as_str()),
                STATE_OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            opts.set_credentials(u.clone(), p.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let acked = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let task = {
            let acked = acked.clone();
            let client_id = client_id.clone();
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(Ok(()));
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Release);
                        }
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(Err(e.to_string()));
                                break;
                            }
                            // rumqttc reconnects on the next poll; unacknowledged QoS 1
                            // publishes are retransmitted.
                            tracing::warn!(%client_id, error = %e, "mqtt connection error");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
        let reason = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e),
            Ok(Err(_)) => Some("event loop ended".to_string()),
            Err(_) => Some("no CONNACK within 10 s".to_string()),
        };
        if let Some(reason) = reason {
            task.abort();
            return Err(SimError::Connect { client_id, reason });
        }
        self.conns.push(Connection {
            client,
            sent: 0,
            acked,
            task,
        });
        Ok(())
    }

    async fn publish(&mut self, msg: Outgoing) -> Result<(), SimError> {
        let conn = self
            .conns
            .get_mut(msg.device)
            .ok_or_else(|| SimError::Mqtt(std::format!("device {} not registered", msg.device)))?;
        conn.client
            .publish(msg.topic, QoS::AtLeastOnce, msg.retain, msg.payload)
            .await
            .map_err(|e| SimError::Mqtt(e.to_string()))?;
        conn.sent += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + self.settings.flush_timeout;
        let mut unacked = 0;
        for conn in &self.conns {
            while conn.acked.load(Ordering::Acquire) < conn.sent
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            unacked += conn.sent.saturating_sub(conn.acked.load(Ordering::Acquire));
        }
        for conn in self.conns.drain(..) {
            let _ = conn.client.disconnect().await;
            let abort = conn.task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), conn.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if unacked > 0 {
            return Err(SimError::Mqtt(std::format!(
                "{unacked} messages not acknowledged within {:?}",
                self.settings.flush_timeout
            )));
        }
        Ok(())
    }
}
