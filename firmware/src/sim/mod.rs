//! Host simulator: restaurants (grease traps), street manholes and kitchen cameras, each running
//! the same firmware as the devices ([`crate::drivers`] on simulated pins and buses,
//! [`crate::logic::device`] programs, the store-and-forward [`crate::logic::uplink`]) and
//! publishing the native MQTT protocol.
//!
//! Deterministic: the world is stepped in fixed ticks of simulated time and every random choice
//! comes from a per-device ChaCha stream seeded from [`FleetConfig::seed`]; wall-clock pacing
//! ([`FleetConfig::speed`]) only decides when a message is sent, never what it says.
//!
//! The same calls run in `tests/sim_mqtt.rs` (doc tests are off: see the crate's `Cargo.toml`):
//!
//! ```rust,ignore
//! # async fn demo() -> Result<(), firmware::sim::SimError> {
//! use firmware::sim::{FleetConfig, run_fleet};
//! let cfg = FleetConfig { restaurants: 10, speed: 600.0, ..FleetConfig::default() };
//! let stats = run_fleet(cfg, tokio_util::sync::CancellationToken::new()).await?;
//! println!("{} messages", stats.messages);
//! # Ok(()) }
//! ```

mod config;
mod device;
pub mod hal;
mod publish;

use std::string::String;
use std::time::Duration;
use std::vec::Vec;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use config::{
    CameraParams, FleetConfig, ManholeParams, RestaurantParams, ScriptAction, ScriptedEvent,
};
pub use device::RING_CAPACITY;
pub use publish::{MemoryPublisher, MqttPublisher, MqttSettings, Outgoing, Publisher};

use crate::protocol::MessageKind;
use device::SimDevice;

/// Why a simulation could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration or scenario file is invalid; the message names the key.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// A device could not connect to the broker.
    #[error("MQTT connect failed for {client_id}: {reason}")]
    Connect { client_id: String, reason: String },
    /// Publishing failed, or messages were still unacknowledged at shutdown.
    #[error("MQTT: {0}")]
    Mqtt(String),
}

/// What a run published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetStats {
    pub devices: u32,
    /// Telemetry plus event messages (what `max_messages` counts).
    pub messages: u64,
    pub telemetry: u64,
    pub events: u64,
    /// Retained `state` messages.
    pub states: u64,
    /// Messages sent after waiting out a link outage (`"replayed": true`).
    pub replayed: u64,
    /// Records lost to store-and-forward overflow (each loss is also reported by an event).
    pub dropped: u64,
    /// Simulated time covered.
    pub sim_ms: u64,
}

/// Runs the fleet against the MQTT broker in `cfg` until `cancel` fires or a bound in `cfg`
/// (`duration_s`, `max_messages`) is reached. Every device gets its own connection with a
/// retained `offline` last will, announces `online`, and says `offline` on a clean stop.
pub async fn run_fleet(
    cfg: FleetConfig,
    cancel: CancellationToken,
) -> Result<FleetStats, SimError> {
    let mut publisher = MqttPublisher::new(MqttSettings {
        host: cfg.broker_host.clone(),
        port: cfg.broker_port,
        client_id_prefix: cfg.client_id_prefix.clone(),
        username: cfg.username.clone(),
        password: cfg.password.clone(),
        flush_timeout: Duration::from_secs(10),
    });
    run_with(&cfg, &mut publisher, cancel).await
}

/// [`run_fleet`] with any [`Publisher`] (e.g. [`MemoryPublisher`] for tests).
pub async fn run_with<P: Publisher>(
    cfg: &FleetConfig,
    publisher: &mut P,
    cancel: CancellationToken,
) -> Result<FleetStats, SimError> {
    cfg.validate()?;
    let start_ms = cfg.start_ms.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() as i64 * 1000
    });
    let mut devices = build_fleet(cfg)?;
    let mut script = cfg.script.clone();
    script.sort_by_key(|s| s.at_s);
    for s in &script {
        if !devices.iter().any(|d| d.key() == s.device) {
            return Err(SimError::Config(std::format!(
                "script: no device {:?} in this fleet",
                s.device
            )));
        }
    }

    let mut stats = FleetStats {
        devices: devices.len() as u32,
        ..FleetStats::default()
    };
    let mut registered = 0;
    let result = async {
        for (i, d) in devices.iter().enumerate() {
            publisher.register(i, &d.site, &d.device).await?;
            registered += 1;
        }
        for d in &devices {
            send(publisher, d.online(), &mut stats).await?;
        }
        tracing::info!(
            devices = devices.len(),
            seed = cfg.seed,
            "simulated fleet online"
        );
        simulate(
            cfg,
            start_ms,
            &mut devices,
            &script,
            publisher,
            &cancel,
            &mut stats,
        )
        .await
    }
    .await;

    // Shut down after an error too, so connections close and retained state says offline (a
    // clean disconnect suppresses the will). Bounded: a dead broker must not hang the caller.
    for d in devices.iter().take(registered) {
        let offline = send(publisher, d.offline(), &mut stats);
        match tokio::time::timeout(Duration::from_secs(2), offline).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(device = %d.key(), error = %e, "offline not sent"),
            Err(_) => tracing::warn!(device = %d.key(), "offline not sent: timed out"),
        }
    }
    stats.replayed = devices.iter().map(|d| d.counters.replayed).sum();
    stats.dropped = devices.iter().map(|d| d.dropped_total()).sum();
    let closed = publisher.close().await;
    result?;
    closed?;
    tracing::info!(?stats, "simulated fleet stopped");
    Ok(stats)
}

/// The tick loop: scripts, world and firmware step, publish, pace. Returns when cancelled or a
/// bound is reached.
async fn simulate<P: Publisher>(
    cfg: &FleetConfig,
    start_ms: i64,
    devices: &mut [SimDevice],
    script: &[ScriptedEvent],
    publisher: &mut P,
    cancel: &CancellationToken,
    stats: &mut FleetStats,
) -> Result<(), SimError> {
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    let mut next_script = 0;
    let mut now: u64 = 0;
    loop {
        if cancel.is_cancelled() || cfg.duration_s.is_some_and(|d| now >= d * 1000) {
            return Ok(());
        }
        while let Some(s) = script.get(next_script).filter(|s| s.at_s * 1000 <= now) {
            next_script += 1;
            if let Some(d) = devices.iter_mut().find(|d| d.key() == s.device) {
                tracing::debug!(device = %s.device, action = ?s.action, at_s = s.at_s, "script");
                d.apply(s.action, now, s.duration_s * 1000)
                    .map_err(SimError::Config)?;
            }
        }
        let ts = start_ms + now as i64;
        for d in devices.iter_mut() {
            d.step(cfg, now, ts, &mut out);
        }
        for msg in out.drain(..) {
            if msg.kind != MessageKind::State
                && cfg.max_messages.is_some_and(|m| stats.messages >= m)
            {
                return Ok(());
            }
            // A broker that stops taking messages must not make cancellation hang.
            tokio::select! {
                r = send(publisher, msg, stats) => r?,
                _ = cancel.cancelled() => return Ok(()),
            }
        }
        now += cfg.step_ms;
        stats.sim_ms = now;

        if cfg.speed > 0.0 {
            let due = started + Duration::from_secs_f64(now as f64 / 1000.0 / cfg.speed);
            if due > tokio::time::Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
        }
    }
}

/// Restaurants' traps first, then cameras, then manholes; numbering starts at 1.
fn build_fleet(cfg: &FleetConfig) -> Result<Vec<SimDevice>, SimError> {
    let mut devices = Vec::new();
    for n in 1..=cfg.restaurants {
        devices.push(SimDevice::restaurant(cfg, devices.len(), n)?);
    }
    for n in 1..=cfg.cameras {
        devices.push(SimDevice::camera(cfg, devices.len(), n)?);
    }
    for n in 1..=cfg.manholes {
        devices.push(SimDevice::manhole(cfg, devices.len(), n)?);
    }
    Ok(devices)
}

async fn send<P: Publisher>(
    publisher: &mut P,
    msg: Outgoing,
    stats: &mut FleetStats,
) -> Result<(), SimError> {
    let kind = msg.kind;
    publisher.publish(msg).await?;
    match kind {
        MessageKind::Telemetry => {
            stats.telemetry += 1;
            stats.messages += 1;
        }
        MessageKind::Event => {
            stats.events += 1;
            stats.messages += 1;
        }
        MessageKind::State => stats.states += 1,
    }
    Ok(())
}
