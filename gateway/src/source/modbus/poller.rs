//! One task per device: poll on the device's own interval, decode, hand readings to the
//! pipeline, and track presence with exponential back-off while the device does not answer.
//!
//! Fault isolation comes from the structure: TCP devices own their connections, so a device
//! that never answers only ever waits on its own timeout. On a serial bus devices must take
//! turns, so a dead one costs the others at most its timeout per poll (and less once it backs
//! off).

use super::bus::{Data, Link, RequestError, SerialBus};
use super::config::{DeviceConfig, Endpoint, ModbusConfig};
use super::decode::decode_register;
use super::plan::{Block, Limits, plan};
use crate::backoff::Backoff;
use crate::metrics::{DeviceResult, Metrics, Reason};
use crate::pipeline::{Ack, Intake, IntakeSender};
use crate::reading::{Name, Quality, Reading, Source, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// Presence bookkeeping: a plain state machine, tested without I/O.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    /// `None` until the first verdict.
    pub online: Option<bool>,
    /// Consecutive polls without an answer.
    pub failures: u32,
}

impl Presence {
    /// The device answered; returns `Some(true)` when this is news.
    pub(crate) fn answered(&mut self) -> Option<bool> {
        self.failures = 0;
        (self.online != Some(true)).then(|| {
            self.online = Some(true);
            true
        })
    }

    /// The device did not answer; returns `Some(false)` once `offline_after` polls failed.
    pub(crate) fn failed(&mut self, offline_after: u32) -> Option<bool> {
        self.failures = self.failures.saturating_add(1);
        (self.failures >= offline_after && self.online != Some(false)).then(|| {
            self.online = Some(false);
            false
        })
    }

    /// Delay before the next poll, from `backoff` (the poll interval up to `backoff_max_ms`):
    /// the interval while answering and after the first failure, then doubling per failure.
    pub(crate) fn next_delay(&self, backoff: &Backoff) -> Duration {
        backoff.ceiling(self.failures.saturating_sub(1))
    }
}

/// Tasks started by [`spawn_all`].
pub fn spawn_all(
    cfg: &ModbusConfig,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut buses: HashMap<String, Arc<SerialBus>> = HashMap::new();
    let mut handles = Vec::with_capacity(cfg.devices.len());
    for d in &cfg.devices {
        let endpoint = match Endpoint::parse(&d.url) {
            Ok(e) => e,
            Err(e) => {
                // Validation rejects this first; never start a device we cannot reach.
                error!(device = %d.name, url = %d.url, "modbus device not started: {e}");
                continue;
            }
        };
        let bus = match &endpoint {
            Endpoint::Rtu(s) => Some(
                buses
                    .entry(s.path.clone())
                    .or_insert_with(|| SerialBus::new(s.clone()))
                    .clone(),
            ),
            Endpoint::Tcp { .. } => None,
        };
        let dev = Arc::new(d.clone());
        let (tx, metrics, cancel) = (tx.clone(), metrics.clone(), cancel.clone());
        let span = info_span!("modbus", device = %d.name);
        handles.push(tokio::spawn(
            supervise(dev, endpoint, bus, tx, metrics, cancel).instrument(span),
        ));
    }
    handles
}

/// Restarts the device task if it ever panics, so one bad device cannot silently stop.
async fn supervise(
    dev: Arc<DeviceConfig>,
    endpoint: Endpoint,
    bus: Option<Arc<SerialBus>>,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let link = Link::new(&endpoint, bus.clone());
        let task = tokio::spawn(
            DevicePoller::new(dev.clone(), link, tx.clone(), metrics.clone())
                .run(cancel.clone())
                .in_current_span(),
        );
        match task.await {
            Ok(()) => return,
            Err(e) => {
                error!("modbus poller stopped unexpectedly, restarting: {e}");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// What one poll came to.
#[derive(Debug)]
pub struct PollOutcome {
    pub readings: Vec<Reading>,
    /// The device answered at least one request (possibly with an exception).
    pub answered: bool,
    /// Label for `modbus_polls_total`.
    pub result: &'static str,
}

/// The state of one device's poll loop.
pub struct DevicePoller {
    dev: Arc<DeviceConfig>,
    blocks: Vec<Block>,
    link: Link,
    tx: IntakeSender,
    metrics: Arc<Metrics>,
    presence: Presence,
    /// Last problem logged at warn level; repeats go to debug so a broken device cannot flood.
    last_problem: Option<String>,
}

impl Drop for DevicePoller {
    /// Uncounts the device however the task ends (cancelled, pipeline gone, or a panic).
    fn drop(&mut self) {
        if self.presence.online == Some(true) {
            self.metrics.modbus_devices_online.dec();
        }
    }
}

/// Hands readings to the pipeline; false when cancelled or the pipeline is gone.
async fn send(tx: &IntakeSender, readings: Vec<Reading>, cancel: &CancellationToken) -> bool {
    let intake = Intake {
        readings,
        ack: Ack::None,
        slot: None,
    };
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = tx.send(intake) => r.is_ok(),
    }
}

use crate::clock::now_ms;

impl DevicePoller {
    pub(crate) fn new(
        dev: Arc<DeviceConfig>,
        link: Link,
        tx: IntakeSender,
        metrics: Arc<Metrics>,
    ) -> DevicePoller {
        let blocks = plan(&dev.registers, Limits::of(&dev));
        DevicePoller {
            dev,
            blocks,
            link,
            tx,
            metrics,
            presence: Presence::default(),
            last_problem: None,
        }
    }

    /// Polls until `cancel` fires or the pipeline is gone.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let interval = Duration::from_millis(self.dev.interval_ms);
        let backoff = Backoff::new(interval, Duration::from_millis(self.dev.backoff_max_ms));
        info!(
            url = %self.dev.url,
            unit = self.dev.unit,
            requests = self.blocks.len(),
            "modbus polling every {interval:?}"
        );
        // A random phase spreads many devices over the interval instead of polling in lockstep
        // (which would burst on shared gateways and on the intake channel).
        let phase = rand::random_range(0..self.dev.interval_ms.min(5_000));
        let mut next = Instant::now() + Duration::from_millis(phase);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = cancel.cancelled() => break,
                o = self.poll_once() => o,
            };
            self.metrics
                .modbus_polls_total
                .get_or_create(&DeviceResult {
                    device: self.dev.name.clone(),
                    result: outcome.result.to_string(),
                })
                .inc();
            let was_online = self.presence.online == Some(true);
            let change = if outcome.answered {
                self.metrics
                    .modbus_poll_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.presence.answered()
            } else {
                self.presence.failed(self.dev.offline_after_failures)
            };
            if let Some(online) = change {
                if online {
                    info!("modbus device online");
                    self.metrics.modbus_devices_online.inc();
                } else {
                    warn!(
                        failures = self.presence.failures,
                        "modbus device offline, backing off"
                    );
                    if was_online {
                        self.metrics.modbus_devices_online.dec();
                    }
                }
                if !send(&self.tx, vec![self.presence_reading(online)], &cancel).await {
                    break;
                }
            }
            if !outcome.readings.is_empty() && !send(&self.tx, outcome.readings, &cancel).await {
                break;
            }
            next = if outcome.answered {
                // Keep the cadence; after a stall, skip missed ticks instead of bursting.
                let n = next + interval;
                if n <= Instant::now() {
                    Instant::now() + interval
                } else {
                    n
                }
            } else {
                Instant::now() + self.presence.next_delay(&backoff)
            };
        }
        self.link.close().await;
        debug!("modbus poller stopped");
    }

    fn presence_reading(&self, online: bool) -> Reading {
        let t = now_ms();
        Reading {
            site: (&self.dev.site).into(),
            device: (&self.dev.name).into(),
            stream: "state".into(),
            metric: "online".into(),
            value: Value::Bool(online),
            unit: Name::default(),
            device_time_ms: t,
            received_time_ms: t,
            source: Source::Modbus,
            sequence: None,
            quality: Quality::default(),
        }
    }

    /// Logs a problem at warn the first time, at debug while it repeats unchanged.
    fn report(&mut self, problem: String) {
        if self.last_problem.as_deref() == Some(problem.as_str()) {
            debug!("{problem}");
        } else {
            warn!("{problem}");
            self.last_problem = Some(problem);
        }
    }

    /// One poll: every request, then decoding. Never fails: problems become the outcome.
    pub(crate) async fn poll_once(&mut self) -> PollOutcome {
        let poll_time = now_ms();
        let timeout = Duration::from_millis(self.dev.timeout_ms);
        let results = self
            .link
            .poll(self.dev.unit, &self.blocks, timeout, &self.metrics)
            .await;
        let received = now_ms();
        let dev = self.dev.clone();
        let mut readings = Vec::with_capacity(dev.registers.len());
        let (mut ok, mut answered, mut exceptions) = (0usize, false, 0usize);
        let mut first_error: Option<&'static str> = None;
        let mut problems = Vec::new();
        for (block, result) in self.blocks.iter().zip(results) {
            let data = match result {
                Ok(d) => d,
                Err(e) => {
                    if e.device_answered() {
                        answered = true;
                        exceptions += 1;
                    }
                    if !matches!(e, RequestError::NotSent) {
                        first_error.get_or_insert(e.label());
                        problems.push(format!(
                            "modbus {} at address {} (count {}) unit {}: {e}",
                            block.kind.function(),
                            block.start,
                            block.count,
                            dev.unit
                        ));
                    }
                    continue;
                }
            };
            answered = true;
            ok += 1;
            for item in &block.items {
                let Some(reg) = dev.registers.get(item.register) else {
                    continue;
                };
                let off = usize::from(item.offset);
                let decoded = match &data {
                    Data::Bits(bits) => bits
                        .get(off)
                        .map(|b| (Value::Bool(*b), ""))
                        .ok_or_else(|| "reply too short".to_string()),
                    Data::Words(words) => words
                        .get(off..)
                        .ok_or_else(|| "reply too short".to_string())
                        .and_then(|w| decode_register(reg, w).map_err(|e| e.to_string())),
                };
                match decoded {
                    Ok((value, unit)) => readings.push(Reading {
                        site: (&dev.site).into(),
                        device: (&dev.name).into(),
                        stream: (&dev.stream).into(),
                        metric: (&reg.metric).into(),
                        value,
                        unit: unit.into(),
                        device_time_ms: poll_time,
                        received_time_ms: received,
                        source: Source::Modbus,
                        sequence: None,
                        quality: Quality::default(),
                    }),
                    Err(e) => {
                        self.metrics
                            .decode_errors_total
                            .get_or_create(&Reason::of("modbus_value"))
                            .inc();
                        problems.push(format!(
                            "modbus metric `{}` at {} address {}: {e}",
                            reg.metric,
                            block.kind.function(),
                            reg.address
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            self.last_problem = None;
        } else {
            self.report(problems.join("; "));
        }
        if !answered {
            // Nothing came back: make sure the next poll starts on a fresh connection.
            self.link.close().await;
        }
        self.metrics.readings_in_total.inc_by(readings.len() as u64);
        let result = if ok == self.blocks.len() {
            "ok"
        } else if ok > 0 {
            "partial"
        } else if exceptions > 0 {
            "exception"
        } else {
            first_error.unwrap_or("error")
        };
        PollOutcome {
            readings,
            answered,
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_reports_transitions_once() {
        let mut p = Presence::default();
        assert_eq!(p.failed(3), None);
        assert_eq!(p.failed(3), None);
        assert_eq!(p.failed(3), Some(false));
        assert_eq!(p.failed(3), None);
        assert_eq!(p.answered(), Some(true));
        assert_eq!(p.answered(), None);
        assert_eq!(p.failed(1), Some(false));
        assert_eq!(p.answered(), Some(true));
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let i = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let b = Backoff::new(i, max);
        let mut p = Presence::default();
        assert_eq!(p.next_delay(&b), i);
        let delays: Vec<u128> = (0..6)
            .map(|_| {
                p.failed(3);
                p.next_delay(&b).as_millis()
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        for _ in 0..100 {
            p.failed(3);
        }
        assert_eq!(p.next_delay(&b), max);
        p.answered();
        assert_eq!(p.next_delay(&b), i);
    }
}
