//! One simulated device: a model of the physical world around it, the simulated peripherals
//! that model drives, and the real firmware (drivers, device program, uplink) reading them.

use std::prelude::rust_2024::*;

use std::string::String;
use std::vec::Vec;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::SimError;
use super::config::{FleetConfig, ScriptAction};
use super::hal::{SimAdc, SimLis3dh, SimPin, SimUart};
use super::publish::Outgoing;
use super::truth::{Truth, TruthClass};
use crate::drivers::accel::{self, Lis3dh};
use crate::drivers::camera::CameraMonitor;
use crate::drivers::cover::{CoverSwitch, OpenLevel};
use crate::drivers::current_loop::{self, CurrentLoop, LoopConfig, LoopReading};
use crate::drivers::ultrasonic::{self, A02yyuw};
use crate::encode::{MAX_ENCODED_LEN, encode};
use crate::logic::device::{
    CameraConfig, CameraInput, CameraProgram, LevelSample, ManholeConfig, ManholeInput,
    ManholeProgram, TrapConfig, TrapInput, TrapProgram,
};
use crate::logic::geometry::TrapGeometry;
use crate::logic::tilt::Vector3;
use crate::logic::uplink::Uplink;
use crate::protocol::{MessageKind, STATE_OFFLINE, STATE_ONLINE};
use crate::record::Message;

/// Store-and-forward capacity of every simulated device.
pub const RING_CAPACITY: usize = 128;

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Loop range of the simulated 4-20 mA level transmitters.
const LOOP: LoopConfig = LoopConfig {
    shunt_ohms: 250.0,
    range_min: 0.0,
    range_max: 1000.0,
};

/// The "25 % rule" (grease interceptors are pumped out when grease and solids reach a quarter
/// of the working depth): from this true fill a pump-out is due ([`TruthClass::Duty`]) ...
pub const DUE_ON_PCT: f32 = 25.0;
/// ... until the trap is emptied below this.
pub const DUE_OFF_PCT: f32 = 20.0;
/// A level sensor's accuracy, used as a guard band around the [`DUE_ON_PCT`] line (the decision
/// rule of ISO 14253-1: conformity or not is proven only outside the measurement's
/// uncertainty). An instrument of this class (ultrasonic level transmitters such as the
/// Milesight EM310-UDL are specified at about ±1 cm) cannot tell 24.9 % from 25.1 %. So:
/// - a duty is noted from when the true level came within this of the line, so a clue raised
///   from then is on time;
/// - a duty exists only once the true level passed the line by more than this; a trap emptied
///   while it stood within the band (below or above the line) is the innocent
///   `pumpout_at_line`: a clue about it is right, no clue is no miss.
///
/// Without the band the ground truth asked for a precision no sensor has: a trap standing at
/// 24.9 % for a night scored as a false clue and one at 25.1 % as a missed duty.
pub const DUE_ACCURACY_MM: f32 = 10.0;
/// A duty met within this long (the trap crossed the line and was pumped at once) needed
/// nobody: it is noted as the innocent `pumpout_met_at_once`. Two report intervals of the native
/// firmware's heartbeat; no device reporting every 15 minutes can see it reliably, and no
/// inspector needs to.
pub const DUTY_MET_AT_ONCE_MS: i64 = 30 * 60_000;
/// A loop-cable interruption that heals by itself within this long (a loose connector, a cleaner
/// unplugging it) is the innocent `sensor_dropout`: the device records it, nobody need go. A
/// longer one is the fault `sensor_cable_cut`, which needs a visit. The gateway's default rules
/// take the same line (rule `sensor-fault` raises a sensor fault that lasts an hour).
///
/// The firmware calls a fault only after `fault_after` invalid readings in a row
/// ([`cable_cut_confirm_ms`]), so the fault it reports is that much shorter than the cut. A cut
/// that outlasted the hour by less than that confirmation shows as a fault of under an hour: the
/// innocent-or-not `sensor_cut_at_line` (a clue about it is right, no clue is no miss), the
/// same guard band as [`DUE_ACCURACY_MM`] on the level.
pub const CABLE_CUT_FAULT_MS: i64 = 60 * 60_000;

/// How long after a loop cable is cut the trap firmware reports `sensor_fault`: its
/// `fault_after` invalid readings, one per simulation step of `step_ms`.
pub fn cable_cut_confirm_ms(step_ms: u64) -> i64 {
    i64::from(TrapConfig::default().fault_after).saturating_mul(step_ms as i64)
}

/// What a loop-cable interruption from `start` to `end` is, for a firmware that needs
/// `confirm_ms` to report it (see [`CABLE_CUT_FAULT_MS`]).
fn cable_cut_note(start: i64, end: i64, confirm_ms: i64) -> Note {
    let len = end - start;
    if len < CABLE_CUT_FAULT_MS {
        ("sensor_dropout", TruthClass::Innocent, start, end)
    } else if len < CABLE_CUT_FAULT_MS + confirm_ms {
        ("sensor_cut_at_line", TruthClass::Innocent, start, end)
    } else {
        ("sensor_cable_cut", TruthClass::Fault, start, end)
    }
}

/// The truth as a run that stopped at `end_ms` can know it. Devices note some happenings when
/// they begin, with their planned end (a cut cable, a tilted cover), which may lie past the
/// run's end: those are cut at `end_ms`, and a loop-cable interruption then still under
/// [`CABLE_CUT_FAULT_MS`] is, for this run, the innocent `sensor_dropout` (by the run's end
/// nobody could have known it would last; the gateway's rule waits the same hour).
pub fn truth_at_end(truth: &mut [Truth], end_ms: i64, confirm_ms: i64) {
    for t in truth.iter_mut().filter(|t| t.end_ms > end_ms) {
        t.end_ms = end_ms.max(t.start_ms);
        if matches!(
            t.problem.as_str(),
            "sensor_cable_cut" | "sensor_cut_at_line"
        ) {
            let (problem, class, _, _) = cable_cut_note(t.start_ms, t.end_ms, confirm_ms);
            t.problem = problem.into();
            t.class = class;
        }
    }
}

/// A happening as a device notes it: problem, class, start and end (true time, ms).
type Note = (&'static str, TruthClass, i64, i64);

/// The note of a pump-out duty that ended at `end` (the trap was emptied): noted from `near`
/// (the true level came within a sensor's accuracy of the line), a duty only if the level
/// passed the line by more than that accuracy (`clear`) at least [`DUTY_MET_AT_ONCE_MS`]
/// before it was emptied. See [`DUE_ACCURACY_MM`].
fn duty_note(near: i64, clear: Option<i64>, end: i64) -> Note {
    match clear {
        None => ("pumpout_at_line", TruthClass::Innocent, near, end),
        Some(clear) if end - clear < DUTY_MET_AT_ONCE_MS => {
            ("pumpout_met_at_once", TruthClass::Innocent, near, end)
        }
        Some(_) => ("pumpout_due", TruthClass::Duty, near, end),
    }
}

/// What a kitchen camera shows (the frames a benchmark feeds to the gateway's camera health).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraView {
    Normal,
    Black,
    Frozen,
    Covered,
    Sky,
    Moved,
}

/// Counters the fleet adds up into [`super::FleetStats`].
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceCounters {
    pub replayed: u64,
}

pub struct SimDevice {
    pub site: String,
    pub device: String,
    index: usize,
    rng: ChaCha8Rng,
    uplink: Uplink<RING_CAPACITY>,
    link_down_until: Option<u64>,
    link_outages: bool,
    battery_pct: Option<f32>,
    /// The device's clock runs off by this much until then: (until, offset ms).
    skew: Option<(u64, i64)>,
    /// Since when the battery is below the firmware's low-battery threshold.
    battery_low_since: Option<i64>,
    /// Ground truth noted so far (drained by the fleet).
    truth: Vec<Truth>,
    kind: Kind,
    pub counters: DeviceCounters,
}

enum Kind {
    Trap(Box<Trap>),
    ThirdParty(Box<ThirdParty>),
    Manhole(Box<Manhole>),
    Camera(Box<Camera>),
}

/// Hourly-ish chance spread over a window, as a per-step probability.
fn per_step(chance: f64, window_ms: u64, step_ms: u64) -> f64 {
    (chance * step_ms as f64 / window_ms as f64).clamp(0.0, 1.0)
}

/// Roughly normal noise (Irwin-Hall with four uniforms), standard deviation `sigma`.
fn noise(rng: &mut ChaCha8Rng, sigma: f32) -> f32 {
    let s: f32 = (0..4).map(|_| rng.random::<f32>()).sum();
    (s - 2.0) * sigma * 1.732
}

fn local_hour(ts_ms: i64, utc_offset_hours: i32) -> f32 {
    let day_ms = (ts_ms + utc_offset_hours as i64 * HOUR as i64).rem_euclid(DAY as i64);
    day_ms as f32 / HOUR as f32
}

/// 0 = Monday ..= 6 = Sunday (1970-01-01 was a Thursday).
fn local_weekday(ts_ms: i64, utc_offset_hours: i32) -> u8 {
    let days = (ts_ms + utc_offset_hours as i64 * HOUR as i64).div_euclid(DAY as i64);
    (days + 3).rem_euclid(7) as u8
}

fn in_window(hour: f32, from: f32, to: f32) -> bool {
    if from <= to {
        hour >= from && hour < to
    } else {
        hour >= from || hour < to
    }
}

// --- grease trap --------------------------------------------------------------------------------

enum LevelSensor {
    Ultrasonic {
        uart: SimUart,
        driver: A02yyuw<SimUart>,
    },
    Loop {
        adc: SimAdc,
        driver: CurrentLoop<SimAdc>,
    },
}

/// The trap's contents: the same physical world whichever sensor watches it.
struct TrapWorld {
    level_mm: f32,
    /// Draining towards a target level at a rate (mm/s): pump-out or dumping.
    draining: Option<(f32, f32)>,
    /// Water running in (rain, washing) until then, at a rate in mm per ms.
    inflow: Option<(u64, f32)>,
    /// The true fill passed [`DUE_ON_PCT`] at this time.
    due_since: Option<i64>,
    /// ... and passed it by more than [`DUE_ACCURACY_MM`] at this time.
    clear_since: Option<i64>,
    /// The true level came within [`DUE_ACCURACY_MM`] of the [`DUE_ON_PCT`] line at this time
    /// (and has not fallen away since): a duty that follows is noted from here.
    near_since: Option<i64>,
    /// While due, the true level came down to within [`DUE_ACCURACY_MM`] above the
    /// [`DUE_OFF_PCT`] line at this time (a dump that stopped near it): see `pumpout_off_line`.
    off_band_since: Option<i64>,
    /// Weekly closing days (0 = Monday): no filling, no pump-out crew.
    closed_weekdays: Vec<u8>,
    /// A scripted night dump waiting for a night with a full enough trap (mm to drop).
    pending_dump: Option<f32>,
}

impl TrapWorld {
    fn new(level_mm: f32, closed_weekdays: Vec<u8>) -> Self {
        TrapWorld {
            level_mm,
            draining: None,
            inflow: None,
            due_since: None,
            clear_since: None,
            near_since: None,
            off_band_since: None,
            closed_weekdays,
            pending_dump: None,
        }
    }

    /// One tick of the world: inflow, business-hours filling, random pump-outs and dumping,
    /// and the pump-out duty.
    fn advance(
        &mut self,
        g: &TrapGeometry,
        cfg: &FleetConfig,
        rng: &mut ChaCha8Rng,
        (now, ts, hour): (u64, i64, f32),
        notes: &mut Vec<Note>,
    ) {
        let p = &cfg.restaurant;
        let step = cfg.step_ms;
        let closed = self
            .closed_weekdays
            .contains(&local_weekday(ts, cfg.utc_offset_hours));
        if let Some((until, rate)) = self.inflow {
            if now >= until {
                self.inflow = None;
            } else {
                self.level_mm += rate * step as f32;
            }
        }
        if let Some(drop) = self.pending_dump
            && self.draining.is_none()
            && in_window(hour, 1.0, 4.5)
            && self.level_mm >= drop + 50.0
        {
            self.pending_dump = None;
            let secs = (drop / 2.0) as i64;
            notes.push(("night_dumping", TruthClass::Violation, ts, ts + secs * 1000));
            self.draining = Some((self.level_mm - drop, 2.0));
        }
        if let Some((target, rate)) = self.draining {
            self.level_mm -= rate * step as f32 / 1000.0;
            if self.level_mm <= target {
                self.level_mm = target;
                self.draining = None;
            }
        } else {
            if !closed && in_window(hour, p.open_hour as f32, p.close_hour as f32) {
                let rush = in_window(hour, 11.0, 13.0) || in_window(hour, 17.0, 20.0);
                let rate = p.fill_mm_per_hour * if rush { 1.8 } else { 0.7 };
                self.level_mm += rate * rng.random_range(0.5..1.5f32) * step as f32 / HOUR as f32;
            }
            let full = g.fill_pct(self.level_mm) > 80.0;
            let pump_chance = if p.pumpout_every_days > 0.0 {
                (1.0 / p.pumpout_every_days as f64) * if full { 3.0 } else { 1.0 }
            } else {
                0.0
            };
            if !closed
                && in_window(hour, 14.0, 16.0)
                && rng.random_bool(per_step(pump_chance, 2 * HOUR, step))
            {
                let secs = ((self.level_mm - 30.0).max(0.0) / 1.5) as i64;
                notes.push((
                    "registered_pumpout",
                    TruthClass::Innocent,
                    ts,
                    ts + secs * 1000,
                ));
                self.draining = Some((30.0, 1.5));
            } else if in_window(hour, 1.0, 4.5)
                && rng.random_bool(per_step(p.dumping_chance_per_night, 7 * HOUR / 2, step))
            {
                let drop = rng.random_range(200.0..400.0f32);
                let secs = (drop / 2.0) as i64;
                notes.push(("night_dumping", TruthClass::Violation, ts, ts + secs * 1000));
                self.draining = Some(((self.level_mm - drop).max(20.0), 2.0));
            }
        }
        self.level_mm = self.level_mm.clamp(0.0, g.sensor_to_floor_mm - 30.0);
        let fill = g.fill_pct(self.level_mm);
        let near = g.fill_pct(self.level_mm + DUE_ACCURACY_MM) >= DUE_ON_PCT;
        let clear = g.fill_pct(self.level_mm - DUE_ACCURACY_MM) >= DUE_ON_PCT;
        let off_band = g.fill_pct(self.level_mm - DUE_ACCURACY_MM) < DUE_OFF_PCT;
        self.track_duty(fill, (near, clear), ts, notes);
        self.track_off_band(off_band && self.due_since.is_some(), ts, notes);
    }

    /// Notes `pumpout_off_line` for the time a due trap's true level stood within a sensor's
    /// accuracy above the [`DUE_OFF_PCT`] line: a sensor there may read it below the line (the
    /// duty ended, and a new clue when it passes 25 % again is right) or above it (one clue
    /// goes on). Either is right; the score forgives a second clue after such a stretch.
    fn track_off_band(&mut self, in_band: bool, ts: i64, notes: &mut Vec<Note>) {
        if in_band {
            self.off_band_since.get_or_insert(ts);
        } else if let Some(since) = self.off_band_since.take() {
            notes.push(("pumpout_off_line", TruthClass::Innocent, since, ts));
        }
    }

    /// The pump-out duty's bookkeeping for the true `fill` at `ts`; `near`: within a sensor's
    /// accuracy below the line or past it, `clear`: past it by more than that accuracy.
    fn track_duty(
        &mut self,
        fill: f32,
        (near, clear): (bool, bool),
        ts: i64,
        notes: &mut Vec<Note>,
    ) {
        if near || fill >= DUE_ON_PCT {
            self.near_since.get_or_insert(ts);
        }
        if clear && self.due_since.is_some() {
            self.clear_since.get_or_insert(ts);
        }
        match self.due_since {
            None if fill >= DUE_ON_PCT => {
                self.due_since = Some(ts);
                if clear {
                    self.clear_since = Some(ts);
                }
            }
            None if near => {}
            // Emptied while standing within a sensor's accuracy below the line.
            None => {
                if let Some(near) = self.near_since.take() {
                    notes.push(duty_note(near, None, ts));
                }
            }
            Some(since) if fill < DUE_OFF_PCT => {
                let near = self.near_since.take().unwrap_or(since).min(since);
                notes.push(duty_note(near, self.clear_since.take(), ts));
                self.due_since = None;
            }
            _ => {}
        }
    }

    /// Scripted happenings that only concern the contents.
    fn apply(&mut self, action: ScriptAction, amount: f64, now: u64, duration_ms: u64) -> bool {
        match action {
            ScriptAction::Dump => {
                let drop = if amount > 0.0 { amount as f32 } else { 300.0 };
                self.draining = Some(((self.level_mm - drop).max(20.0), 2.0));
            }
            ScriptAction::PumpOut => self.draining = Some((30.0, 1.5)),
            ScriptAction::NightDump => {
                self.pending_dump = Some(if amount > 0.0 { amount as f32 } else { 300.0 });
            }
            ScriptAction::Rain => {
                let mm = if amount > 0.0 { amount as f32 } else { 150.0 };
                self.inflow = Some((now + duration_ms, mm / duration_ms.max(1) as f32));
            }
            _ => return false,
        }
        true
    }
}

struct Trap {
    program: TrapProgram,
    sensor: LevelSensor,
    world: TrapWorld,
    /// 4-20 mA only: the loop cable is cut until then (the transmitter draws nothing).
    loop_cut_until: Option<u64>,
    /// Scripted: no valid reading until then.
    dropout_until: Option<u64>,
    /// Scripted: the next sample is a false echo this many mm above the surface.
    spike_mm: Option<f32>,
}

/// A trap watched by a third-party sensor that knows nothing of our firmware: it reports a
/// raw distance or level on a timer, and nothing is kept while the link is down.
struct ThirdParty {
    world: TrapWorld,
    geometry: TrapGeometry,
    /// `true`: distance in mm (EM310-UDL JSON); `false`: level in cm (plain number).
    distance: bool,
    next_report: u64,
    dropout_until: Option<u64>,
    spike_mm: Option<f32>,
}

// --- manhole ------------------------------------------------------------------------------------

struct Manhole {
    program: ManholeProgram,
    reed: SimPin,
    switch: CoverSwitch<SimPin>,
    accel_bus: SimLis3dh,
    accel: Lis3dh<SimLis3dh>,
    /// Gravity in the sensor frame with the cover seated (the sensor is not mounted level).
    rest: Vector3,
    open: bool,
    tilt_deg: f32,
    tilt_azimuth: f32,
    disturbed_until: Option<u64>,
}

/// Rotates `r` by `angle_deg` about a horizontal-ish axis perpendicular to it, chosen by `azimuth`.
fn tilted(r: Vector3, angle_deg: f32, azimuth: f32) -> Vector3 {
    let e = Vector3::new(azimuth.cos(), azimuth.sin(), 0.0);
    // u = normalize(r x e)
    let u = Vector3::new(
        r.y * e.z - r.z * e.y,
        r.z * e.x - r.x * e.z,
        r.x * e.y - r.y * e.x,
    );
    let n = u.norm();
    if n < 1e-6 {
        return r;
    }
    let u = Vector3::new(u.x / n, u.y / n, u.z / n);
    let uxr = Vector3::new(
        u.y * r.z - u.z * r.y,
        u.z * r.x - u.x * r.z,
        u.x * r.y - u.y * r.x,
    );
    let (s, c) = angle_deg.to_radians().sin_cos();
    Vector3::new(
        r.x * c + uxr.x * s,
        r.y * c + uxr.y * s,
        r.z * c + uxr.z * s,
    )
}

// --- camera -------------------------------------------------------------------------------------

struct Camera {
    program: CameraProgram,
    power_pin: SimPin,
    monitor: CameraMonitor<SimPin>,
    next_heartbeat: u64,
    black_until: Option<u64>,
    offline_until: Option<u64>,
    unplugged_until: Option<u64>,
    /// Scripted picture faults that the camera host's heartbeat cannot see (frozen, covered,
    /// sky, moved) until then.
    view: Option<(CameraView, u64)>,
}

impl SimDevice {
    /// Common set-up. Each device has its own random stream (seed, stream = index), so adding a
    /// device does not change what the others do.
    fn build(
        cfg: &FleetConfig,
        index: usize,
        site: String,
        device: String,
        has_battery: bool,
        make: impl FnOnce(&mut ChaCha8Rng) -> Result<Kind, SimError>,
    ) -> Result<Self, SimError> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(index as u64 + 1);
        let battery_pct = has_battery.then(|| rng.random_range(18.0..100.0));
        let kind = make(&mut rng)?;
        Ok(SimDevice {
            site,
            device,
            index,
            rng,
            uplink: Uplink::new(),
            link_down_until: None,
            link_outages: cfg.link_outages,
            battery_pct,
            skew: None,
            battery_low_since: None,
            truth: Vec::new(),
            kind,
            counters: DeviceCounters::default(),
        })
    }

    /// Restaurant `n` (1-based): even numbers have an ultrasonic sensor, odd a 4-20 mA one.
    pub fn restaurant(cfg: &FleetConfig, index: usize, n: u32) -> Result<Self, SimError> {
        Self::build(
            cfg,
            index,
            std::format!("r-{n:03}"),
            "trap-1".into(),
            true,
            |rng| {
                let sensor = if n.is_multiple_of(2) {
                    let uart = SimUart::default();
                    LevelSensor::Ultrasonic {
                        driver: A02yyuw::new(uart.clone()),
                        uart,
                    }
                } else {
                    let adc = SimAdc::default();
                    LevelSensor::Loop {
                        driver: CurrentLoop::new(adc.clone(), LOOP),
                        adc,
                    }
                };
                let site = std::format!("r-{n:03}");
                Ok(Kind::Trap(Box::new(Trap {
                    program: TrapProgram::new(TrapConfig::default()),
                    sensor,
                    world: TrapWorld::new(
                        rng.random_range(100.0..550.0),
                        closed_weekdays(cfg, &site),
                    ),
                    loop_cut_until: None,
                    dropout_until: None,
                    spike_mm: None,
                })))
            },
        )
    }

    /// Restaurant `n` (1-based) with a third-party sensor: distance-only (`distance`) or
    /// level-only. Same trap geometry as the native ones.
    pub fn third_party(
        cfg: &FleetConfig,
        index: usize,
        n: u32,
        distance: bool,
    ) -> Result<Self, SimError> {
        let site = std::format!("r-{n:03}");
        let closed = closed_weekdays(cfg, &site);
        let every = cfg.third_party_report_s * 1000;
        Self::build(cfg, index, site, "trap-1".into(), true, |rng| {
            Ok(Kind::ThirdParty(Box::new(ThirdParty {
                world: TrapWorld::new(rng.random_range(100.0..550.0), closed),
                geometry: TrapConfig::default().geometry,
                distance,
                next_report: rng.random_range(0..every.max(1)),
                dropout_until: None,
                spike_mm: None,
            })))
        })
    }

    /// Manhole `n` (1-based). Calibrates its accelerometer at boot with the cover seated.
    pub fn manhole(cfg: &FleetConfig, index: usize, n: u32) -> Result<Self, SimError> {
        Self::build(
            cfg,
            index,
            std::format!("mh-{n:03}"),
            "cover-1".into(),
            true,
            |rng| {
                let reed = SimPin::new(false);
                let bus = SimLis3dh::new(accel::ADDR_SA0_LOW);
                let mount = rng.random_range(0.0..6.0f32);
                let az = rng.random_range(0.0..std::f32::consts::TAU);
                let rest = tilted(Vector3::new(0.0, 0.0, 1000.0), mount, az);
                bus.set_mg(rest);
                let mut acc = Lis3dh::new(bus.clone(), accel::ADDR_SA0_LOW)
                    .map_err(|e| SimError::Config(std::format!("lis3dh init: {e:?}")))?;
                acc.calibrate(8)
                    .map_err(|e| SimError::Config(std::format!("lis3dh calibrate: {e:?}")))?;
                Ok(Kind::Manhole(Box::new(Manhole {
                    program: ManholeProgram::new(ManholeConfig::default()),
                    switch: CoverSwitch::new(reed.clone(), OpenLevel::High, 2_000),
                    reed,
                    accel_bus: bus,
                    accel: acc,
                    rest,
                    open: false,
                    tilt_deg: 0.0,
                    tilt_azimuth: 0.0,
                    disturbed_until: None,
                })))
            },
        )
    }

    /// Kitchen camera `n` (1-based), in restaurant `n`. Mains powered: no battery metric.
    pub fn camera(cfg: &FleetConfig, index: usize, n: u32) -> Result<Self, SimError> {
        Self::build(
            cfg,
            index,
            std::format!("r-{n:03}"),
            "cam-1".into(),
            false,
            |_| {
                let pin = SimPin::new(true);
                Ok(Kind::Camera(Box::new(Camera {
                    program: CameraProgram::new(CameraConfig::default()),
                    monitor: CameraMonitor::new(
                        pin.clone(),
                        cfg.camera.heartbeat_timeout_s * 1000,
                        0,
                    ),
                    power_pin: pin,
                    next_heartbeat: 0,
                    black_until: None,
                    offline_until: None,
                    unplugged_until: None,
                    view: None,
                })))
            },
        )
    }

    pub fn key(&self) -> String {
        std::format!("{}/{}", self.site, self.device)
    }

    pub fn dropped_total(&self) -> u64 {
        self.uplink.dropped_total()
    }

    /// What the camera shows now, `None` when no frame reaches the gateway (not a camera,
    /// unplugged, hung, or its link is down).
    pub fn camera_view(&self, now: u64) -> Option<CameraView> {
        let Kind::Camera(c) = &self.kind else {
            return None;
        };
        if c.unplugged_until.is_some() || c.offline_until.is_some() || !self.uplink.link_up() {
            return None;
        }
        if c.black_until.is_some() {
            return Some(CameraView::Black);
        }
        Some(match c.view {
            Some((v, until)) if now < until => v,
            _ => CameraView::Normal,
        })
    }

    /// Whether this device speaks the native protocol (retained state, store-and-forward).
    pub fn is_native(&self) -> bool {
        !matches!(self.kind, Kind::ThirdParty(_))
    }

    /// Ground truth noted since the last call.
    pub fn take_truth(&mut self) -> Vec<Truth> {
        std::mem::take(&mut self.truth)
    }

    /// Ends the problems still open at `ts` (a trap still due, a battery still low) so they
    /// are in the ground truth.
    pub fn finish(&mut self, ts: i64) {
        let mut notes = Vec::new();
        if let Some(since) = self.battery_low_since.take() {
            notes.push(("low_battery", TruthClass::Fault, since, ts));
        }
        let world = match &mut self.kind {
            Kind::Trap(t) => Some(&mut t.world),
            Kind::ThirdParty(t) => Some(&mut t.world),
            _ => None,
        };
        if let Some(w) = world
            && let Some(since) = w.due_since.take()
        {
            if let Some(dip) = w.off_band_since.take() {
                notes.push(("pumpout_off_line", TruthClass::Innocent, dip, ts));
            }
            // Still due when the run ends: a duty if the level is clearly past the line.
            let start = w.near_since.take().unwrap_or(since).min(since);
            notes.push(match w.clear_since.take() {
                Some(_) => ("pumpout_due", TruthClass::Duty, start, ts),
                None => duty_note(start, None, ts),
            });
        }
        self.note(notes);
    }

    fn note(&mut self, notes: Vec<Note>) {
        for (problem, class, start_ms, end_ms) in notes {
            self.truth.push(Truth {
                problem: problem.into(),
                class,
                site: self.site.clone(),
                device: self.device.clone(),
                start_ms,
                end_ms: end_ms.max(start_ms),
            });
        }
    }

    fn state_msg(&self, online: bool) -> Outgoing {
        Outgoing {
            device: self.index,
            kind: MessageKind::State,
            topic: std::format!("v1/{}/{}/state", self.site, self.device),
            payload: if online { STATE_ONLINE } else { STATE_OFFLINE }
                .as_bytes()
                .to_vec(),
            retain: true,
        }
    }

    /// The retained `online` announcement at start.
    pub fn online(&self) -> Outgoing {
        self.state_msg(true)
    }

    /// The retained `offline` at a clean shutdown (a clean MQTT disconnect suppresses the will).
    pub fn offline(&self) -> Outgoing {
        self.state_msg(false)
    }

    /// Applies a scripted happening; `Err` if it does not fit this kind of device.
    pub fn apply(
        &mut self,
        action: ScriptAction,
        amount: f64,
        now: u64,
        duration_ms: u64,
    ) -> Result<(), String> {
        let until = now + duration_ms;
        let spike = if amount > 0.0 { amount as f32 } else { 250.0 };
        let world = match &mut self.kind {
            Kind::Trap(t) => Some(&mut t.world),
            Kind::ThirdParty(t) => Some(&mut t.world),
            _ => None,
        };
        if world.is_some_and(|w| w.apply(action, amount, now, duration_ms)) {
            return Ok(());
        }
        match (&mut self.kind, action) {
            (_, ScriptAction::LinkDown) => self.link_down_until = Some(until),
            (_, ScriptAction::ClockSkew) => {
                self.skew = Some((until, (amount * 1000.0) as i64));
            }
            (Kind::Trap(t), ScriptAction::Overfill) => {
                let g = t.program.config().geometry;
                t.world.level_mm = g.full_depth_mm * 0.9;
                t.world.draining = None;
            }
            (Kind::Trap(t), ScriptAction::SensorDropout) => t.dropout_until = Some(until),
            (Kind::ThirdParty(t), ScriptAction::SensorDropout) => t.dropout_until = Some(until),
            (Kind::Trap(t), ScriptAction::Spike) => t.spike_mm = Some(spike),
            (Kind::ThirdParty(t), ScriptAction::Spike) => t.spike_mm = Some(spike),
            (Kind::Manhole(m), ScriptAction::OpenCover) => {
                m.open = true;
                m.tilt_deg = 40.0;
                m.disturbed_until = Some(until);
            }
            (Kind::Manhole(m), ScriptAction::Knock) => {
                m.open = false;
                m.tilt_deg = 15.0;
                m.disturbed_until = Some(until);
            }
            (Kind::Camera(c), ScriptAction::CameraBlack) => c.black_until = Some(until),
            (Kind::Camera(c), ScriptAction::CameraOffline) => c.offline_until = Some(until),
            (Kind::Camera(c), ScriptAction::CameraUnplug) => c.unplugged_until = Some(until),
            (Kind::Camera(c), ScriptAction::CameraFrozen) => {
                c.view = Some((CameraView::Frozen, until));
            }
            (Kind::Camera(c), ScriptAction::CameraCovered) => {
                c.view = Some((CameraView::Covered, until));
            }
            (Kind::Camera(c), ScriptAction::CameraSky) => c.view = Some((CameraView::Sky, until)),
            (Kind::Camera(c), ScriptAction::CameraMoved) => {
                c.view = Some((CameraView::Moved, until));
            }
            (_, a) => return Err(std::format!("{a:?} does not apply to {}", self.key())),
        }
        Ok(())
    }

    /// Advances the world by one tick, runs the firmware once, and appends what the device
    /// transmits to `out`. `now` is ms since the simulation started (the device's uptime clock),
    /// `ts` the wall time the device stamps.
    pub fn step(&mut self, cfg: &FleetConfig, now: u64, ts: i64, out: &mut Vec<Outgoing>) {
        let step = cfg.step_ms;
        let hour = local_hour(ts, cfg.utc_offset_hours);
        if self.skew.is_some_and(|(until, _)| now >= until) {
            self.skew = None;
        }
        // What the device's own clock says (true time unless skewed).
        let stamp = ts + self.skew.map_or(0, |(_, off)| off);

        if let Some(b) = &mut self.battery_pct {
            *b = (*b - 0.3 * step as f32 / DAY as f32).max(0.0);
        }
        let battery = self.battery_pct;
        let mut notes: Vec<Note> = Vec::new();
        if self.is_native()
            && self.battery_low_since.is_none()
            && battery.is_some_and(|b| b < TrapConfig::default().battery_low_pct)
        {
            self.battery_low_since = Some(ts);
        }

        let mut messages: Vec<Message> = Vec::new();
        let mut emit = |m: Message| messages.push(m);
        let w = (now, ts, hour);
        let mut third_party = None;
        match &mut self.kind {
            Kind::Trap(t) => step_trap(t, cfg, &mut self.rng, w, battery, &mut notes, &mut emit),
            Kind::ThirdParty(t) => {
                third_party = step_third_party(t, cfg, &mut self.rng, w, stamp, battery, &mut notes)
            }
            Kind::Manhole(m) => {
                step_manhole(m, cfg, &mut self.rng, w, battery, &mut notes, &mut emit)
            }
            Kind::Camera(c) => step_camera(c, cfg, &mut self.rng, w, &mut notes, &mut emit),
        }
        for m in messages {
            self.uplink.push(stamp, m);
        }

        // The radio link: random outages, and their end.
        let was_up = self.uplink.link_up();
        if let Some(until) = self.link_down_until
            && now >= until
        {
            self.link_down_until = None;
        }
        if self.link_outages
            && self.link_down_until.is_none()
            && self.rng.random_bool(per_step(0.5, DAY, step))
        {
            let minutes = self.rng.random_range(2..45u64);
            self.link_down_until = Some(now + minutes * MINUTE);
            notes.push((
                "link_outage",
                TruthClass::Innocent,
                ts,
                ts + (minutes * MINUTE) as i64,
            ));
        }
        self.note(notes);
        let up = self.link_down_until.is_none();
        if let Some((distance, payload)) = third_party {
            // No store-and-forward: a report sent into a dead link is lost.
            if up {
                let topic = if distance {
                    std::format!("milesight/{}/{}/uplink", self.site, self.device)
                } else {
                    std::format!("plain/{}/{}/level", self.site, self.device)
                };
                out.push(Outgoing {
                    device: self.index,
                    kind: MessageKind::Telemetry,
                    topic,
                    payload,
                    retain: false,
                });
            }
            return;
        }
        if up != was_up {
            tracing::debug!(site = %self.site, device = %self.device, up, "link");
            // Going down: what the broker would publish from the last will once the keep-alive
            // expires. Coming back: the device's own `online`, then the replay.
            if up {
                out.push(self.state_msg(true));
            } else {
                out.push(self.state_msg(false));
            }
            self.uplink.set_link(up, ts);
        }

        let mut buf = [0u8; MAX_ENCODED_LEN];
        while let Some(q) = self.uplink.next() {
            let kind = match q.record.message {
                Message::Telemetry { .. } => MessageKind::Telemetry,
                Message::Event(_) => MessageKind::Event,
            };
            if q.replayed {
                self.counters.replayed += 1;
            }
            // MAX_ENCODED_LEN fits every record this crate builds; a failure is a bug.
            let n = encode(&q.record, q.replayed, &mut buf).expect("record fits the buffer");
            out.push(Outgoing {
                device: self.index,
                kind,
                topic: std::format!("v1/{}/{}/{}", self.site, self.device, kind.as_str()),
                payload: buf[..n].to_vec(),
                retain: false,
            });
            self.uplink.ack();
        }
    }
}

fn step_trap(
    t: &mut Trap,
    cfg: &FleetConfig,
    rng: &mut ChaCha8Rng,
    w: (u64, i64, f32),
    battery: Option<f32>,
    notes: &mut Vec<Note>,
    emit: &mut impl FnMut(Message),
) {
    let p = &cfg.restaurant;
    let step = cfg.step_ms;
    let now = w.0;
    let g = t.program.config().geometry;
    t.world.advance(&g, cfg, rng, w, notes);
    if t.dropout_until.is_some_and(|u| now >= u) {
        t.dropout_until = None;
    }
    let spike = t.spike_mm.take().unwrap_or(0.0);

    // The sensor, then the firmware reading it.
    let sample = match &mut t.sensor {
        _ if t.dropout_until.is_some() => LevelSample::Invalid,
        LevelSensor::Ultrasonic { uart, driver } => {
            let mut d = g.distance_mm(t.world.level_mm) + noise(rng, 2.0) - spike;
            if rng.random_bool(p.foam_chance) {
                d -= rng.random_range(40.0..200.0f32);
            }
            let mut frame = ultrasonic::frame(d.clamp(30.0, 4500.0) as u16);
            if rng.random_bool(0.005) {
                frame[3] ^= 0x5A; // line noise: bad checksum
            }
            if rng.random_bool(0.01) {
                uart.feed(&[0x00]); // stray byte before the header
            }
            uart.feed(&frame);
            let mut last = None;
            loop {
                match driver.read_mm() {
                    Ok(mm) => last = Some(mm),
                    Err(nb::Error::WouldBlock) => break,
                    Err(nb::Error::Other(_)) => continue,
                }
            }
            match last {
                Some(mm) if mm > 0 => LevelSample::DistanceMm(mm as f32),
                _ => LevelSample::Invalid,
            }
        }
        LevelSensor::Loop { adc, driver } => {
            let level = t.world.level_mm + noise(rng, 3.0) + spike;
            // Rarely, a rodent or a cleaning crew cuts the loop cable for a while.
            if t.loop_cut_until.is_some_and(|u| now >= u) {
                t.loop_cut_until = None;
            } else if t.loop_cut_until.is_none() && rng.random_bool(per_step(0.05, DAY, step)) {
                let minutes = rng.random_range(10..120u64);
                t.loop_cut_until = Some(now + minutes * MINUTE);
                let ts = w.1;
                let until = ts + (minutes * MINUTE) as i64;
                notes.push(cable_cut_note(ts, until, cable_cut_confirm_ms(step)));
            }
            let ma = if t.loop_cut_until.is_some() {
                0.0
            } else {
                current_loop::milliamps_for(level, &LOOP)
            };
            adc.set_microvolts((ma * LOOP.shunt_ohms * 1000.0) as u32);
            match driver.read() {
                Ok(LoopReading::Value { value, .. }) => LevelSample::LevelMm(value),
                _ => LevelSample::Invalid,
            }
        }
    };
    t.program.step(
        now,
        TrapInput {
            sample,
            battery_pct: battery,
        },
        emit,
    );
}

fn step_manhole(
    m: &mut Manhole,
    cfg: &FleetConfig,
    rng: &mut ChaCha8Rng,
    (now, ts, hour): (u64, i64, f32),
    battery: Option<f32>,
    notes: &mut Vec<Note>,
    emit: &mut impl FnMut(Message),
) {
    let p = &cfg.manhole;
    let step = cfg.step_ms;
    match m.disturbed_until {
        Some(until) if now >= until => {
            m.open = false;
            m.tilt_deg = 0.0;
            m.disturbed_until = None;
        }
        Some(_) => {}
        None => {
            if in_window(hour, 22.0, 4.0)
                && rng.random_bool(per_step(p.open_chance_per_night, 6 * HOUR, step))
            {
                m.open = true;
                m.tilt_deg = rng.random_range(25.0..70.0);
                m.tilt_azimuth = rng.random_range(0.0..std::f32::consts::TAU);
                let ms = rng.random_range(5..40u64) * MINUTE;
                m.disturbed_until = Some(now + ms);
                let end = ts + ms as i64;
                notes.push(("cover_opened_off_hours", TruthClass::Violation, ts, end));
            } else if rng.random_bool(per_step(p.knock_chance_per_day, DAY, step)) {
                m.tilt_deg = rng.random_range(11.0..20.0);
                m.tilt_azimuth = rng.random_range(0.0..std::f32::consts::TAU);
                let ms = rng.random_range(30..180u64) * MINUTE;
                m.disturbed_until = Some(now + ms);
                notes.push(("cover_tilted", TruthClass::Violation, ts, ts + ms as i64));
            }
        }
    }
    // Reed: open reads high; traffic vibration occasionally flips it for one sample.
    let glitch = rng.random_bool(0.002);
    m.reed.set_high(m.open != glitch);
    let g = tilted(m.rest, m.tilt_deg, m.tilt_azimuth);
    m.accel_bus.set_mg(Vector3::new(
        g.x + noise(rng, 4.0),
        g.y + noise(rng, 4.0),
        g.z + noise(rng, 4.0),
    ));

    let _ = m.switch.poll(now);
    let tilt = m.accel.tilt_deg().ok();
    m.program.step(
        now,
        ManholeInput {
            cover_open: m.switch.is_open(),
            tilt_deg: tilt,
            battery_pct: battery,
        },
        emit,
    );
}

fn step_camera(
    c: &mut Camera,
    cfg: &FleetConfig,
    rng: &mut ChaCha8Rng,
    (now, ts, _hour): (u64, i64, f32),
    notes: &mut Vec<Note>,
    emit: &mut impl FnMut(Message),
) {
    let p = &cfg.camera;
    let step = cfg.step_ms;
    for slot in [
        &mut c.black_until,
        &mut c.offline_until,
        &mut c.unplugged_until,
    ] {
        if slot.is_some_and(|u| now >= u) {
            *slot = None;
        }
    }
    let healthy =
        c.black_until.is_none() && c.offline_until.is_none() && c.unplugged_until.is_none();
    if healthy {
        let mut start = |chance: f64, slot: &mut Option<u64>, problem, class| {
            if rng.random_bool(per_step(chance, DAY, step)) {
                let ms = rng.random_range(10..90u64) * MINUTE;
                *slot = Some(now + ms);
                notes.push((problem, class, ts, ts + ms as i64));
            }
        };
        let v = TruthClass::Violation;
        let f = TruthClass::Fault;
        start(
            p.black_chance_per_day,
            &mut c.black_until,
            "camera_black",
            v,
        );
        start(
            p.offline_chance_per_day,
            &mut c.offline_until,
            "camera_offline",
            f,
        );
        start(
            p.unplug_chance_per_day,
            &mut c.unplugged_until,
            "camera_unplugged",
            f,
        );
    }
    let powered = c.unplugged_until.is_none();
    c.power_pin.set_high(powered);
    if now >= c.next_heartbeat {
        c.next_heartbeat = now + p.heartbeat_s.max(1) * 1000;
        if powered && c.offline_until.is_none() {
            c.monitor.heartbeat(now, c.black_until.is_none());
        }
    }
    // An Infallible pin error cannot happen.
    let Ok(status) = c.monitor.poll(now);
    c.program.step(
        now,
        CameraInput {
            status,
            heartbeat_age_ms: c.monitor.heartbeat_age_ms(now),
        },
        emit,
    );
}

/// The weekly closing days the fleet config gives `site`.
fn closed_weekdays(cfg: &FleetConfig, site: &str) -> Vec<u8> {
    cfg.closed
        .iter()
        .filter(|c| c.site == site)
        .flat_map(|c| c.weekdays.iter().copied())
        .collect()
}

/// One tick of a third-party trap sensor: the world, then (on its timer) the report it would
/// send, as (distance rather than level, payload).
fn step_third_party(
    t: &mut ThirdParty,
    cfg: &FleetConfig,
    rng: &mut ChaCha8Rng,
    w: (u64, i64, f32),
    stamp: i64,
    battery: Option<f32>,
    notes: &mut Vec<Note>,
) -> Option<(bool, Vec<u8>)> {
    let g = t.geometry;
    t.world.advance(&g, cfg, rng, w, notes);
    let now = w.0;
    if t.dropout_until.is_some_and(|u| now >= u) {
        t.dropout_until = None;
    }
    if now < t.next_report {
        return None;
    }
    t.next_report = now + cfg.third_party_report_s * 1000;
    if t.dropout_until.is_some() {
        return None;
    }
    let spike = t.spike_mm.take().unwrap_or(0.0);
    let level = t.world.level_mm + spike;
    Some(if t.distance {
        let d = (g.distance_mm(level) + noise(rng, 2.0)).round().max(0.0);
        let battery = battery.map_or(std::string::String::new(), |b| {
            std::format!(",\"battery\":{}", b.round())
        });
        let body = std::format!(
            "{{\"time\":{},\"object\":{{\"distance\":{d}{battery}}}}}",
            stamp.div_euclid(1000)
        );
        (true, body.into_bytes())
    } else {
        let cm = (level + noise(rng, 3.0)).max(0.0).round() / 10.0;
        (false, std::format!("{cm:.1}").into_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// How a trap near the line ends: emptied within the sensor's accuracy of the line (below
    /// or above it), passed clearly and emptied at once, or passed clearly and left (a duty).
    #[test]
    fn a_trap_emptied_within_the_sensors_accuracy_of_the_line_is_innocent() {
        let below = DUE_ON_PCT - 0.5;
        let just_past = DUE_ON_PCT + 0.5;
        let past = DUE_ON_PCT + 3.0;
        let empty = DUE_OFF_PCT - 10.0;
        let (near, clear, far) = ((true, false), (true, true), (false, false));
        let run = |steps: &[(f32, (bool, bool), i64)]| {
            let mut w = TrapWorld::new(0.0, Vec::new());
            let mut notes = Vec::new();
            for &(fill, band, ts) in steps {
                w.track_duty(fill, band, ts, &mut notes);
            }
            notes
        };
        let h = 60 * MIN;
        let innocent = |p: &'static str, end| vec![(p, TruthClass::Innocent, 0, end)];
        // Below the line, then emptied.
        let got = run(&[
            (below, near, 0),
            (below, near, 2 * h),
            (empty, far, 2 * h + MIN),
        ]);
        assert_eq!(got, innocent("pumpout_at_line", 2 * h + MIN));
        // Just past the line for hours, never clearly: as unsure as just below it.
        let got = run(&[(below, near, 0), (just_past, near, h), (empty, far, 4 * h)]);
        assert_eq!(got, innocent("pumpout_at_line", 4 * h));
        // Clearly past, emptied within half an hour of that.
        let got = run(&[
            (below, near, 0),
            (past, clear, h),
            (empty, far, h + 20 * MIN),
        ]);
        assert_eq!(got, innocent("pumpout_met_at_once", h + 20 * MIN));
        // Clearly past for hours: a duty, noted from when it came near.
        let got = run(&[
            (below, near, 0),
            (just_past, near, h),
            (past, clear, 2 * h),
            (empty, far, 5 * h),
        ]);
        assert_eq!(got, vec![("pumpout_due", TruthClass::Duty, 0, 5 * h)]);
        // Far from the line all along: nothing.
        assert!(run(&[(10.0, far, 0), (empty, far, MIN)]).is_empty());
    }

    #[test]
    fn a_cut_cable_still_under_an_hour_when_the_run_ends_is_a_dropout_for_that_run() {
        let t = |problem: &str, class, start_ms, end_ms| Truth {
            problem: problem.into(),
            class,
            site: "r-1".into(),
            device: "trap-1".into(),
            start_ms,
            end_ms,
        };
        let end = 100 * MIN;
        let mut truth = vec![
            t("sensor_cable_cut", TruthClass::Fault, 60 * MIN, 160 * MIN),
            t("sensor_cable_cut", TruthClass::Fault, 20 * MIN, 90 * MIN),
            t("sensor_cable_cut", TruthClass::Fault, 30 * MIN, 130 * MIN),
            t("cover_tilted", TruthClass::Violation, 95 * MIN, 150 * MIN),
        ];
        truth_at_end(&mut truth, end, 100_000);
        // 40 minutes old at the end: a dropout; over before the end: unchanged; 70 minutes
        // old: a fault, cut at the end; a violation: cut at the end.
        assert_eq!(
            truth[0],
            t("sensor_dropout", TruthClass::Innocent, 60 * MIN, end)
        );
        assert_eq!(
            truth[1],
            t("sensor_cable_cut", TruthClass::Fault, 20 * MIN, 90 * MIN)
        );
        assert_eq!(
            truth[2],
            t("sensor_cable_cut", TruthClass::Fault, 30 * MIN, end)
        );
        assert_eq!(
            truth[3],
            t("cover_tilted", TruthClass::Violation, 95 * MIN, end)
        );
    }

    #[test]
    fn a_cut_cable_that_outlasts_the_hour_by_less_than_the_firmwares_confirmation_is_at_the_line() {
        // 20 s readings, five invalid ones before the fault: reported 100 s after the cut.
        let confirm = cable_cut_confirm_ms(20_000);
        assert_eq!(confirm, 100_000);
        let class = |minutes: i64| cable_cut_note(0, minutes * MIN, confirm).0;
        assert_eq!(class(59), "sensor_dropout");
        // Reported as a fault of 58 min 20 s and 59 min 20 s: no rule on "an hour" can see it.
        assert_eq!(class(60), "sensor_cut_at_line");
        assert_eq!(class(61), "sensor_cut_at_line");
        assert_eq!(class(62), "sensor_cable_cut");
        assert_eq!(cable_cut_note(0, 62 * MIN, confirm).1, TruthClass::Fault);
        assert_eq!(cable_cut_note(0, 61 * MIN, confirm).1, TruthClass::Innocent);

        // Cut by the run's end: judged on what the run saw.
        let cut = |start_ms, end_ms| Truth {
            problem: "sensor_cable_cut".into(),
            class: TruthClass::Fault,
            site: "r-1".into(),
            device: "trap-1".into(),
            start_ms,
            end_ms,
        };
        let mut truth = vec![cut(0, 200 * MIN), cut(100 * MIN, 300 * MIN)];
        truth_at_end(&mut truth, 161 * MIN, confirm);
        assert_eq!(truth[0].problem, "sensor_cable_cut");
        assert_eq!(truth[1].problem, "sensor_cut_at_line");
        assert_eq!(truth[1].end_ms, 161 * MIN);
    }
}
