//! The three device programs: grease trap, manhole cover, kitchen camera status.
//!
//! Each is a pure state machine: `step(now_ms, input, emit)` takes one round of readings (already
//! read by the drivers) and emits zero or more [`Message`]s. Stamping, sequence numbers and
//! store-and-forward are the [`Uplink`](super::uplink::Uplink)'s job, so the programs can be
//! tested with a fake clock and a closure that collects what they emit.

use crate::drivers::camera::CameraStatus;
use crate::logic::geometry::TrapGeometry;
use crate::logic::hysteresis::Hysteresis;
use crate::logic::median::MedianFilter;
use crate::logic::report::Reporter;
use crate::protocol::{EventPhase, EventSeverity};
use crate::record::{EventBody, EventKind, Message, Metrics, Stream, Value};

fn event(
    kind: EventKind,
    phase: EventPhase,
    severity: EventSeverity,
    value: Option<f32>,
    message: Option<&'static str>,
) -> Message {
    Message::Event(EventBody {
        kind,
        phase,
        severity,
        value,
        message,
    })
}

/// Low-battery alarm and sensor-fault counting shared by the battery-powered devices.
#[derive(Debug, Clone, Copy)]
struct Health {
    battery: Hysteresis,
    bad_readings: u16,
    fault_after: u16,
    sensor_fault: bool,
}

impl Health {
    const fn new(low_pct: f32, ok_pct: f32, fault_after: u16) -> Self {
        Health {
            battery: Hysteresis::falling(low_pct, ok_pct),
            bad_readings: 0,
            fault_after,
            sensor_fault: false,
        }
    }

    fn battery(&mut self, pct: Option<f32>, emit: &mut impl FnMut(Message)) {
        if let Some(pct) = pct
            && let Some(phase) = self.battery.update(pct)
        {
            emit(event(
                EventKind::LowBattery,
                phase,
                EventSeverity::Warning,
                Some(pct),
                None,
            ));
        }
    }

    /// Counts consecutive bad readings; raises `sensor_fault` after `fault_after`, recovers on
    /// the first good one.
    fn reading(&mut self, ok: bool, emit: &mut impl FnMut(Message)) {
        if ok {
            self.bad_readings = 0;
            if self.sensor_fault {
                self.sensor_fault = false;
                emit(event(
                    EventKind::SensorFault,
                    EventPhase::Recovery,
                    EventSeverity::Warning,
                    None,
                    None,
                ));
            }
        } else {
            self.bad_readings = self.bad_readings.saturating_add(1);
            if !self.sensor_fault && self.bad_readings >= self.fault_after {
                self.sensor_fault = true;
                emit(event(
                    EventKind::SensorFault,
                    EventPhase::Alarm,
                    EventSeverity::Warning,
                    None,
                    Some("no valid reading"),
                ));
            }
        }
    }
}

fn with_battery(m: Metrics, pct: Option<f32>) -> Metrics {
    match pct {
        Some(p) => m.with("battery_pct", Value::F32(libm::roundf(p))),
        None => m,
    }
}

fn round1(x: f32) -> f32 {
    libm::roundf(x * 10.0) / 10.0
}

// ---------------------------------------------------------------------------------------------

/// Grease trap settings. Defaults suit a 1 m x 0.6 m under-sink trap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrapConfig {
    pub geometry: TrapGeometry,
    /// Level change that triggers a report.
    pub deadband_mm: f32,
    pub heartbeat_ms: u64,
    /// `level_high` alarm at this fill, recovery at `high_off_pct`.
    pub high_on_pct: f32,
    pub high_off_pct: f32,
    /// A fall of at least this much within `drop_window_ms` is a discharge (`level_drop`).
    pub drop_mm: f32,
    pub drop_window_ms: u64,
    /// The discharge is reported once the level has stopped falling for this long.
    pub drop_settle_ms: u64,
    pub battery_low_pct: f32,
    pub battery_ok_pct: f32,
    /// Consecutive invalid readings before `sensor_fault`.
    pub fault_after: u16,
}

impl Default for TrapConfig {
    fn default() -> Self {
        TrapConfig {
            geometry: TrapGeometry {
                shape: crate::logic::geometry::Shape::Rectangular {
                    length_mm: 1000.0,
                    width_mm: 600.0,
                },
                sensor_to_floor_mm: 1000.0,
                full_depth_mm: 800.0,
            },
            deadband_mm: 10.0,
            heartbeat_ms: 15 * 60_000,
            high_on_pct: 85.0,
            high_off_pct: 75.0,
            drop_mm: 100.0,
            drop_window_ms: 10 * 60_000,
            drop_settle_ms: 60_000,
            battery_low_pct: 20.0,
            battery_ok_pct: 25.0,
            fault_after: 5,
        }
    }
}

/// One raw level sample, as whichever sensor the trap has reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelSample {
    /// Ultrasonic: distance from the sensor face to the surface.
    DistanceMm(f32),
    /// Submersible or 4-20 mA transmitter: liquid depth.
    LevelMm(f32),
    /// No valid reading this round (no echo, bad frame, open loop).
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrapInput {
    pub sample: LevelSample,
    pub battery_pct: Option<f32>,
}

#[derive(Debug, Clone, Copy)]
enum Drop {
    Idle,
    Falling {
        from_mm: f32,
        low_mm: f32,
        low_ms: u64,
    },
}

#[derive(Debug, Clone)]
pub struct TrapProgram {
    cfg: TrapConfig,
    median: MedianFilter<9>,
    reporter: Reporter,
    high: Hysteresis,
    health: Health,
    /// Highest filtered level in the current drop window and when it was seen.
    peak: Option<(f32, u64)>,
    drop: Drop,
}

impl TrapProgram {
    pub fn new(cfg: TrapConfig) -> Self {
        TrapProgram {
            median: MedianFilter::new(),
            reporter: Reporter::new(cfg.deadband_mm, cfg.heartbeat_ms),
            high: Hysteresis::rising(cfg.high_on_pct, cfg.high_off_pct),
            health: Health::new(cfg.battery_low_pct, cfg.battery_ok_pct, cfg.fault_after),
            peak: None,
            drop: Drop::Idle,
            cfg,
        }
    }

    pub fn config(&self) -> &TrapConfig {
        &self.cfg
    }

    /// The filtered level, once the filter has settled.
    pub fn level_mm(&self) -> Option<f32> {
        self.median.median().filter(|_| self.median.is_settled())
    }

    pub fn step(&mut self, now_ms: u64, input: TrapInput, emit: &mut impl FnMut(Message)) {
        let g = self.cfg.geometry;
        let raw = match input.sample {
            LevelSample::DistanceMm(d) if d.is_finite() => Some(g.level_mm(d)),
            LevelSample::LevelMm(l) if l.is_finite() => Some(l.max(0.0)),
            _ => None,
        };
        self.health.reading(raw.is_some(), emit);
        self.health.battery(input.battery_pct, emit);
        let Some(raw) = raw else { return };
        let Some(level) = self.median.push(raw) else {
            return;
        };
        if !self.median.is_settled() {
            // Warming up after boot: nothing is judged or reported on a partial window.
            return;
        }
        let fill = g.fill_pct(level);

        if let Some(phase) = self.high.update(fill) {
            emit(event(
                EventKind::LevelHigh,
                phase,
                if phase == EventPhase::Alarm {
                    EventSeverity::Alarm
                } else {
                    EventSeverity::Info
                },
                Some(round1(fill)),
                None,
            ));
        }

        self.track_drop(now_ms, level, emit);

        if self.reporter.due(level, now_ms) {
            self.reporter.sent(level, now_ms);
            let metrics = Metrics::new()
                .with("level_mm", Value::F32(round1(level)))
                .with("fill_pct", Value::F32(round1(fill)))
                .with("volume_l", Value::F32(round1(g.volume_l(level))));
            emit(Message::Telemetry {
                stream: Stream::GreaseTrap,
                metrics: with_battery(metrics, input.battery_pct),
            });
        }
    }

    fn track_drop(&mut self, now_ms: u64, level: f32, emit: &mut impl FnMut(Message)) {
        let window = self.cfg.drop_window_ms;
        match self.peak {
            Some((p, t)) if level <= p && now_ms.saturating_sub(t) <= window => {}
            _ => self.peak = Some((level, now_ms)),
        }
        match self.drop {
            Drop::Idle => {
                if let Some((p, _)) = self.peak
                    && p - level >= self.cfg.drop_mm
                {
                    self.drop = Drop::Falling {
                        from_mm: p,
                        low_mm: level,
                        low_ms: now_ms,
                    };
                }
            }
            Drop::Falling {
                from_mm,
                low_mm,
                low_ms,
            } => {
                if level < low_mm - self.cfg.deadband_mm / 2.0 {
                    self.drop = Drop::Falling {
                        from_mm,
                        low_mm: level,
                        low_ms: now_ms,
                    };
                } else if now_ms.saturating_sub(low_ms) >= self.cfg.drop_settle_ms {
                    let g = self.cfg.geometry;
                    let litres = g.volume_l(from_mm) - g.volume_l(low_mm);
                    emit(event(
                        EventKind::LevelDrop,
                        EventPhase::Alarm,
                        EventSeverity::Info,
                        Some(round1(litres)),
                        Some("trap level fell fast: pump-out or discharge"),
                    ));
                    self.drop = Drop::Idle;
                    self.peak = Some((level, now_ms));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManholeConfig {
    /// `tilt` alarm above this angle from the calibrated rest position, recovery below `tilt_off_deg`.
    pub tilt_on_deg: f32,
    pub tilt_off_deg: f32,
    pub tilt_deadband_deg: f32,
    pub heartbeat_ms: u64,
    pub battery_low_pct: f32,
    pub battery_ok_pct: f32,
    pub fault_after: u16,
}

impl Default for ManholeConfig {
    fn default() -> Self {
        ManholeConfig {
            tilt_on_deg: 10.0,
            tilt_off_deg: 8.0,
            tilt_deadband_deg: 2.0,
            heartbeat_ms: 15 * 60_000,
            battery_low_pct: 20.0,
            battery_ok_pct: 25.0,
            fault_after: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManholeInput {
    /// Debounced cover switch: `true` = open.
    pub cover_open: bool,
    /// Tilt from rest, `None` when the accelerometer gave no reading.
    pub tilt_deg: Option<f32>,
    pub battery_pct: Option<f32>,
}

#[derive(Debug, Clone)]
pub struct ManholeProgram {
    cfg: ManholeConfig,
    open: Option<bool>,
    tilt: Hysteresis,
    reporter: Reporter,
    health: Health,
}

impl ManholeProgram {
    pub fn new(cfg: ManholeConfig) -> Self {
        ManholeProgram {
            open: None,
            tilt: Hysteresis::rising(cfg.tilt_on_deg, cfg.tilt_off_deg),
            reporter: Reporter::new(cfg.tilt_deadband_deg, cfg.heartbeat_ms),
            health: Health::new(cfg.battery_low_pct, cfg.battery_ok_pct, cfg.fault_after),
            cfg,
        }
    }

    pub fn config(&self) -> &ManholeConfig {
        &self.cfg
    }

    pub fn step(&mut self, now_ms: u64, input: ManholeInput, emit: &mut impl FnMut(Message)) {
        let mut changed = false;
        // The first reading sets the baseline: a cover that boots open is reported open.
        if self.open != Some(input.cover_open) {
            let was = self.open.replace(input.cover_open);
            changed = true;
            if input.cover_open || was.is_some() {
                let phase = if input.cover_open {
                    EventPhase::Alarm
                } else {
                    EventPhase::Recovery
                };
                emit(event(
                    EventKind::CoverOpen,
                    phase,
                    if input.cover_open {
                        EventSeverity::Alarm
                    } else {
                        EventSeverity::Info
                    },
                    Some(if input.cover_open { 1.0 } else { 0.0 }),
                    None,
                ));
            }
        }
        self.health.reading(input.tilt_deg.is_some(), emit);
        self.health.battery(input.battery_pct, emit);
        if let Some(t) = input.tilt_deg
            && let Some(phase) = self.tilt.update(t)
        {
            changed = true;
            emit(event(
                EventKind::Tilt,
                phase,
                if phase == EventPhase::Alarm {
                    EventSeverity::Alarm
                } else {
                    EventSeverity::Info
                },
                Some(round1(t)),
                None,
            ));
        }
        let tilt = input.tilt_deg.unwrap_or(f32::NAN);
        let due = if tilt.is_finite() {
            self.reporter.due(tilt, now_ms)
        } else {
            self.reporter.due(0.0, now_ms)
        };
        if changed || due {
            self.reporter
                .sent(if tilt.is_finite() { tilt } else { 0.0 }, now_ms);
            let metrics = Metrics::new()
                .with("open", Value::Bool(input.cover_open))
                .with("tilt_deg", Value::F32(round1(tilt)));
            emit(Message::Telemetry {
                stream: Stream::ManholeCover,
                metrics: with_battery(metrics, input.battery_pct),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraConfig {
    pub heartbeat_ms: u64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            heartbeat_ms: 5 * 60_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraInput {
    pub status: CameraStatus,
    /// Time since the camera host's last heartbeat (or since boot, if none yet).
    pub heartbeat_age_ms: u64,
}

#[derive(Debug, Clone)]
pub struct CameraProgram {
    cfg: CameraConfig,
    last_status: Option<CameraStatus>,
    last_report_ms: Option<u64>,
}

impl CameraProgram {
    pub fn new(cfg: CameraConfig) -> Self {
        CameraProgram {
            cfg,
            last_status: None,
            last_report_ms: None,
        }
    }

    pub fn step(&mut self, now_ms: u64, input: CameraInput, emit: &mut impl FnMut(Message)) {
        let status = input.status;
        let changed = self.last_status != Some(status);
        if changed {
            let was_ok = self.last_status.is_none_or(|s| s == CameraStatus::Ok);
            let is_ok = status == CameraStatus::Ok;
            if was_ok && !is_ok {
                emit(event(
                    EventKind::CameraFault,
                    EventPhase::Alarm,
                    EventSeverity::Alarm,
                    Some(status.code() as f32),
                    Some(status.as_str()),
                ));
            } else if !was_ok && is_ok {
                emit(event(
                    EventKind::CameraFault,
                    EventPhase::Recovery,
                    EventSeverity::Info,
                    Some(0.0),
                    Some(status.as_str()),
                ));
            }
            self.last_status = Some(status);
        }
        let due = self
            .last_report_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.cfg.heartbeat_ms);
        if changed || due {
            self.last_report_ms = Some(now_ms);
            let metrics = Metrics::new()
                .with("power_ok", Value::Bool(status != CameraStatus::PowerLost))
                .with(
                    "online",
                    Value::Bool(!matches!(
                        status,
                        CameraStatus::PowerLost | CameraStatus::Offline
                    )),
                )
                .with("image_ok", Value::Bool(status == CameraStatus::Ok))
                .with("status_code", Value::U32(status.code()))
                .with(
                    "heartbeat_age_s",
                    Value::U32((input.heartbeat_age_ms / 1000).min(u32::MAX as u64) as u32),
                );
            emit(Message::Telemetry {
                stream: Stream::Camera,
                metrics,
            });
        }
    }
}
