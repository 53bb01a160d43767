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
pub mod scenario;
pub mod truth;

use std::string::String;
use std::time::Duration;
use std::vec::Vec;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use config::{
    CameraParams, ClosedSite, FleetConfig, ManholeParams, RestaurantParams, ScriptAction,
    ScriptedEvent,
};
pub use device::{
    CABLE_CUT_FAULT_MS, CameraView, DUE_ACCURACY_MM, DUE_OFF_PCT, DUE_ON_PCT, DUTY_MET_AT_ONCE_MS,
    RING_CAPACITY, cable_cut_confirm_ms, truth_at_end,
};
pub use publish::{MemoryPublisher, MqttPublisher, MqttSettings, Outgoing, Publisher};
pub use truth::{Truth, TruthClass, TruthLabel, merge_overlapping};

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

/// The simulated world stepped tick by tick, without any transport: what [`run_with`] drives,
/// and what an in-process benchmark drives at full speed. Keeps the ground truth
/// ([`Truth`]) of everything that happens.
pub struct Fleet {
    cfg: FleetConfig,
    start_ms: i64,
    devices: Vec<SimDevice>,
    script: Vec<ScriptedEvent>,
    next_script: usize,
    /// Simulated ms since the start.
    now: u64,
    truth: Vec<Truth>,
}

/// One device of a [`Fleet`], as a transport or benchmark needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub site: String,
    pub device: String,
    /// Native protocol (`v1/...` topics, retained state); `false` for third-party sensors.
    pub native: bool,
}

impl Fleet {
    /// Builds the devices and checks the script against them.
    pub fn new(cfg: &FleetConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let start_ms = cfg.start_ms.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_secs() as i64 * 1000
        });
        let devices = build_fleet(cfg)?;
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
        Ok(Fleet {
            cfg: cfg.clone(),
            start_ms,
            devices,
            script,
            next_script: 0,
            now: 0,
            truth: Vec::new(),
        })
    }

    pub fn config(&self) -> &FleetConfig {
        &self.cfg
    }

    /// The simulated start, ms since the epoch.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Simulated ms since the start (the next tick's time).
    pub fn elapsed_ms(&self) -> u64 {
        self.now
    }

    /// True simulated time of the next tick, ms since the epoch.
    pub fn time_ms(&self) -> i64 {
        self.start_ms + self.now as i64
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.devices
            .iter()
            .map(|d| DeviceInfo {
                site: d.site.clone(),
                device: d.device.clone(),
                native: d.is_native(),
            })
            .collect()
    }

    /// Retained `online` of every native device (sent once at start).
    pub fn online_messages(&self) -> Vec<Outgoing> {
        self.devices
            .iter()
            .filter(|d| d.is_native())
            .map(|d| d.online())
            .collect()
    }

    /// What every camera shows now (`None`: no frame reaches the gateway).
    pub fn camera_views(&self) -> Vec<(String, String, Option<CameraView>)> {
        self.devices
            .iter()
            .filter(|d| d.device.starts_with("cam-"))
            .map(|d| (d.site.clone(), d.device.clone(), d.camera_view(self.now)))
            .collect()
    }

    /// One tick: scripted happenings due now, then every device's world and firmware; what
    /// the devices transmit is appended to `out`.
    pub fn step(&mut self, out: &mut Vec<Outgoing>) -> Result<(), SimError> {
        let now = self.now;
        while let Some(s) = self
            .script
            .get(self.next_script)
            .filter(|s| s.at_s * 1000 <= now)
        {
            self.next_script += 1;
            if let Some(d) = self.devices.iter_mut().find(|d| d.key() == s.device) {
                tracing::debug!(device = %s.device, action = ?s.action, at_s = s.at_s, "script");
                d.apply(s.action, s.amount, now, s.duration_s * 1000)
                    .map_err(SimError::Config)?;
                if let Some(label) = &s.truth {
                    let start_ms = self.start_ms + s.at_s as i64 * 1000;
                    self.truth.push(Truth {
                        problem: label.problem.clone(),
                        class: label.class,
                        site: d.site.clone(),
                        device: d.device.clone(),
                        start_ms,
                        end_ms: start_ms + s.duration_s as i64 * 1000,
                    });
                }
            }
        }
        let ts = self.start_ms + now as i64;
        for d in self.devices.iter_mut() {
            d.step(&self.cfg, now, ts, out);
            self.truth.extend(d.take_truth());
        }
        self.now += self.cfg.step_ms;
        Ok(())
    }

    /// Ground truth noted since the last call, in the order it was noted.
    pub fn take_truth(&mut self) -> Vec<Truth> {
        std::mem::take(&mut self.truth)
    }

    /// Ends the problems still open now (so they appear in the truth) and returns the rest
    /// of the truth.
    pub fn finish(&mut self) -> Vec<Truth> {
        let ts = self.time_ms();
        for d in self.devices.iter_mut() {
            d.finish(ts);
            self.truth.extend(d.take_truth());
        }
        self.take_truth()
    }

    /// Messages replayed after link outages so far.
    pub fn replayed(&self) -> u64 {
        self.devices.iter().map(|d| d.counters.replayed).sum()
    }

    /// Records lost to store-and-forward overflow so far.
    pub fn dropped(&self) -> u64 {
        self.devices.iter().map(|d| d.dropped_total()).sum()
    }
}

/// [`run_fleet`] with any [`Publisher`] (e.g. [`MemoryPublisher`] for tests).
pub async fn run_with<P: Publisher>(
    cfg: &FleetConfig,
    publisher: &mut P,
    cancel: CancellationToken,
) -> Result<FleetStats, SimError> {
    let mut fleet = Fleet::new(cfg)?;
    let devices = fleet.devices();
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
        for msg in fleet.online_messages() {
            send(publisher, msg, &mut stats).await?;
        }
        tracing::info!(
            devices = devices.len(),
            seed = cfg.seed,
            "simulated fleet online"
        );
        simulate(cfg, &mut fleet, publisher, &cancel, &mut stats).await
    }
    .await;

    // Shut down after an error too, so connections close and retained state says offline (a
    // clean disconnect suppresses the will). Bounded: a dead broker must not hang the caller.
    for d in fleet
        .devices
        .iter()
        .take(registered)
        .filter(|d| d.is_native())
    {
        let offline = send(publisher, d.offline(), &mut stats);
        match tokio::time::timeout(Duration::from_secs(2), offline).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(device = %d.key(), error = %e, "offline not sent"),
            Err(_) => tracing::warn!(device = %d.key(), "offline not sent: timed out"),
        }
    }
    stats.replayed = fleet.replayed();
    stats.dropped = fleet.dropped();
    let closed = publisher.close().await;
    result?;
    closed?;
    tracing::info!(?stats, "simulated fleet stopped");
    Ok(stats)
}

/// The tick loop: step the fleet, publish, pace. Returns when cancelled or a bound is reached.
async fn simulate<P: Publisher>(
    cfg: &FleetConfig,
    fleet: &mut Fleet,
    publisher: &mut P,
    cancel: &CancellationToken,
    stats: &mut FleetStats,
) -> Result<(), SimError> {
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    loop {
        let now = fleet.elapsed_ms();
        if cancel.is_cancelled() || cfg.duration_s.is_some_and(|d| now >= d * 1000) {
            return Ok(());
        }
        fleet.step(&mut out)?;
        // Nobody reads the truth of a live run: do not let it grow.
        fleet.truth.clear();
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
        let now = fleet.elapsed_ms();
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

/// Restaurants' traps first, then cameras, then manholes, then the third-party traps (last, so
/// adding them changes nothing the others do); numbering starts at 1.
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
    let first = cfg.restaurants + 1;
    for n in first..first + cfg.distance_traps {
        devices.push(SimDevice::third_party(cfg, devices.len(), n, true)?);
    }
    let first = first + cfg.distance_traps;
    for n in first..first + cfg.level_traps {
        devices.push(SimDevice::third_party(cfg, devices.len(), n, false)?);
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
