//! The scenario library: a city block generated from a seed, with violations and innocent
//! happenings placed at known times, so a benchmark can score clues against the truth.
//!
//! [`BlockParams`] (TOML, `firmware/scenarios/blocks/city-block.toml`) says how big the block is and
//! how many of each happening to seed; [`city_block`] turns it into a [`FleetConfig`] whose
//! script carries a [`TruthLabel`] on every seeded happening. The random violations of the
//! plain simulator (dumping, covers, cameras) are switched off so that every violation is a
//! seeded one; the random *innocent* happenings stay on (foam echoes, reed glitches, link
//! outages with store-and-forward replay, cut loop cables, licensed pump-outs) and the devices
//! note them in the truth themselves, as they do the duties (a trap past 25 %) and faults (a
//! flat battery) that follow from the world.
//!
//! Time: the block starts on a Monday at local midnight, so `day * 86_400 + hour * 3_600` is
//! a local time.

use std::prelude::rust_2024::*;

use std::string::String;
use std::vec::Vec;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SimError;
use super::config::{
    CameraParams, ClosedSite, FleetConfig, ManholeParams, RestaurantParams, ScriptAction,
    ScriptedEvent,
};
use super::truth::{TruthClass, TruthLabel};

/// 2026-11-02 00:00 at UTC+8, a Monday.
pub const BLOCK_START_MS: i64 = 1_793_548_800_000;

/// How big the block is and what to seed in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockParams {
    pub seed: u64,
    pub days: u32,
    /// Simulation tick (every device samples once per tick).
    pub step_ms: u64,
    /// Restaurants with our firmware (ultrasonic or 4-20 mA), sites `r-001` ...
    pub native_traps: u32,
    /// Restaurants with a distance-only third-party sensor, numbered after the native ones.
    pub distance_traps: u32,
    /// Restaurants with a level-only third-party sensor, numbered after those.
    pub level_traps: u32,
    /// Kitchen cameras in the first restaurants.
    pub cameras: u32,
    pub manholes: u32,
    pub seeded: Seeded,
}

/// How many of each happening the block gets over its whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seeded {
    // Violations.
    pub dumps_native: u32,
    pub dumps_distance: u32,
    pub dumps_level: u32,
    pub covers_opened_off_hours: u32,
    pub covers_tilted: u32,
    pub cameras_black: u32,
    pub cameras_frozen: u32,
    pub cameras_covered: u32,
    pub cameras_sky: u32,
    pub cameras_moved: u32,
    // Faults.
    pub cameras_offline: u32,
    pub cameras_unplugged: u32,
    // Innocent.
    /// Share of restaurants closed one weekday every week (their calendar says so).
    pub closed_share: f64,
    /// Days with rain; on each, this share of traps gets inflow.
    pub rain_days: u32,
    pub rain_share: f64,
    pub spikes: u32,
    /// Short sensor dropouts (under an hour: the sensor recovers by itself).
    pub dropouts: u32,
    /// Power cuts at a restaurant: its trap and camera lose their link, then replay.
    pub power_cuts: u32,
    pub clock_skews: u32,
    /// Daytime cover openings by registered works.
    pub maintenance: u32,
}

impl Default for Seeded {
    fn default() -> Self {
        Seeded {
            dumps_native: 10,
            dumps_distance: 6,
            dumps_level: 6,
            covers_opened_off_hours: 15,
            covers_tilted: 10,
            cameras_black: 5,
            cameras_frozen: 5,
            cameras_covered: 5,
            cameras_sky: 5,
            cameras_moved: 5,
            cameras_offline: 3,
            cameras_unplugged: 3,
            closed_share: 0.2,
            rain_days: 4,
            rain_share: 0.3,
            spikes: 60,
            dropouts: 10,
            power_cuts: 6,
            clock_skews: 8,
            maintenance: 8,
        }
    }
}

impl Default for BlockParams {
    fn default() -> Self {
        BlockParams {
            seed: 1,
            days: 30,
            step_ms: 5_000,
            native_traps: 50,
            distance_traps: 25,
            level_traps: 25,
            cameras: 20,
            manholes: 50,
            seeded: Seeded::default(),
        }
    }
}

impl BlockParams {
    pub fn from_toml_str(s: &str) -> Result<Self, SimError> {
        toml::from_str(s).map_err(|e| SimError::Config(e.to_string()))
    }

    /// Every device, for device-day figures.
    pub fn device_count(&self) -> u32 {
        self.native_traps + self.distance_traps + self.level_traps + self.cameras + self.manholes
    }
}

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

struct Gen {
    rng: ChaCha8Rng,
    days: u32,
    script: Vec<ScriptedEvent>,
}

impl Gen {
    /// A random time on a random day (not the first, so every device has a history, nor the
    /// last, so the gateway has time to judge), between `from` and `to` local hours.
    fn at(&mut self, from: f64, to: f64) -> u64 {
        let day = self.rng.random_range(1..self.days.max(3) - 1) as u64;
        let h = self.rng.random_range(from..to);
        day * DAY + (h * HOUR as f64) as u64
    }

    fn push(
        &mut self,
        at_s: u64,
        device: String,
        action: ScriptAction,
        duration_s: u64,
        amount: f64,
        truth: Option<(&str, TruthClass)>,
    ) {
        self.script.push(ScriptedEvent {
            at_s,
            device,
            action,
            duration_s,
            amount,
            truth: truth.map(|(p, c)| TruthLabel {
                problem: p.into(),
                class: c,
            }),
        });
    }

    /// `n` distinct picks from `0..len` (fewer when `len < n`).
    fn pick(&mut self, len: u32, n: u32) -> Vec<u32> {
        let mut all: Vec<u32> = (0..len).collect();
        let mut out = Vec::new();
        while out.len() < n as usize && !all.is_empty() {
            let i = self.rng.random_range(0..all.len());
            out.push(all.swap_remove(i));
        }
        out
    }
}

fn trap(n: u32) -> String {
    std::format!("r-{n:03}/trap-1")
}

/// The fleet of `p`, with its seeded script. Deterministic in `p`.
pub fn city_block(p: &BlockParams) -> Result<FleetConfig, SimError> {
    if p.days < 3 {
        return Err(SimError::Config("days: at least 3".into()));
    }
    if p.cameras > p.native_traps + p.distance_traps + p.level_traps {
        return Err(SimError::Config(
            "cameras: at most one per restaurant".into(),
        ));
    }
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(p.seed),
        days: p.days,
        script: Vec::new(),
    };
    // Device streams are 1.. (one per device); the script has its own.
    g.rng.set_stream(0);
    let s = &p.seeded;
    let restaurants = p.native_traps + p.distance_traps + p.level_traps;
    let (v, f, i) = (
        TruthClass::Violation,
        TruthClass::Fault,
        TruthClass::Innocent,
    );

    // Night dumping: the dumper waits for a night with a full trap (NightDump).
    let first_distance = p.native_traps + 1;
    let first_level = first_distance + p.distance_traps;
    for (first, count, n) in [
        (1, p.native_traps, s.dumps_native),
        (first_distance, p.distance_traps, s.dumps_distance),
        (first_level, p.level_traps, s.dumps_level),
    ] {
        for k in g.pick(count, n) {
            let at = g.at(0.0, 0.5);
            let amount = g.rng.random_range(220.0..380.0);
            g.push(
                at,
                trap(first + k),
                ScriptAction::NightDump,
                60,
                amount,
                None,
            );
        }
    }

    // Manhole covers.
    let cover = |n: u32| std::format!("mh-{:03}/cover-1", n + 1);
    for k in 0..s.covers_opened_off_hours {
        let m = g.rng.random_range(0..p.manholes.max(1));
        let at = g.at(23.0, 28.0);
        let dur = g.rng.random_range(10..40u64) * 60;
        let truth = Some(("cover_opened_off_hours", v));
        let _ = k;
        g.push(at, cover(m), ScriptAction::OpenCover, dur, 0.0, truth);
    }
    for _ in 0..s.covers_tilted {
        let m = g.rng.random_range(0..p.manholes.max(1));
        let at = g.at(0.0, 24.0);
        let dur = g.rng.random_range(60..240u64) * 60;
        g.push(
            at,
            cover(m),
            ScriptAction::Knock,
            dur,
            0.0,
            Some(("cover_tilted", v)),
        );
    }
    for _ in 0..s.maintenance {
        let m = g.rng.random_range(0..p.manholes.max(1));
        let at = g.at(9.0, 14.0);
        let dur = g.rng.random_range(60..180u64) * 60;
        let truth = Some(("registered_maintenance", i));
        g.push(at, cover(m), ScriptAction::OpenCover, dur, 0.0, truth);
    }

    // Cameras: picture faults during business hours, faults at any time.
    let cam = |n: u32| std::format!("r-{:03}/cam-1", n + 1);
    for (n, action, problem, class, from, to) in [
        (
            s.cameras_black,
            ScriptAction::CameraBlack,
            "camera_black",
            v,
            11.0,
            19.0,
        ),
        (
            s.cameras_frozen,
            ScriptAction::CameraFrozen,
            "camera_frozen",
            v,
            11.0,
            19.0,
        ),
        (
            s.cameras_covered,
            ScriptAction::CameraCovered,
            "camera_covered",
            v,
            11.0,
            19.0,
        ),
        (
            s.cameras_sky,
            ScriptAction::CameraSky,
            "camera_sky",
            v,
            11.0,
            19.0,
        ),
        (
            s.cameras_moved,
            ScriptAction::CameraMoved,
            "camera_moved",
            v,
            11.0,
            19.0,
        ),
        (
            s.cameras_offline,
            ScriptAction::CameraOffline,
            "camera_offline",
            f,
            0.0,
            24.0,
        ),
        (
            s.cameras_unplugged,
            ScriptAction::CameraUnplug,
            "camera_unplugged",
            f,
            0.0,
            24.0,
        ),
    ] {
        for _ in 0..n {
            let c = g.rng.random_range(0..p.cameras.max(1));
            let at = g.at(from, to);
            let dur = g.rng.random_range(60..240u64) * 60;
            g.push(at, cam(c), action, dur, 0.0, Some((problem, class)));
        }
    }

    // Innocent happenings.
    let mut closed = Vec::new();
    for n in 1..=restaurants {
        if g.rng.random_bool(s.closed_share.clamp(0.0, 1.0)) {
            closed.push(ClosedSite {
                site: std::format!("r-{n:03}"),
                weekdays: std::vec![g.rng.random_range(0..7u8)],
            });
        }
    }
    for _ in 0..s.rain_days {
        let day_at = g.at(0.0, 20.0);
        for n in 1..=restaurants {
            if g.rng.random_bool(s.rain_share.clamp(0.0, 1.0)) {
                let at = day_at + g.rng.random_range(0..2 * HOUR);
                let dur = g.rng.random_range(60..180u64) * 60;
                let mm = g.rng.random_range(40.0..120.0);
                let truth = Some(("rain_inflow", i));
                g.push(at, trap(n), ScriptAction::Rain, dur, mm, truth);
            }
        }
    }
    for _ in 0..s.spikes {
        let n = g.rng.random_range(1..=restaurants.max(1));
        let at = g.at(0.0, 24.0);
        let mm = g.rng.random_range(150.0..400.0);
        g.push(
            at,
            trap(n),
            ScriptAction::Spike,
            60,
            mm,
            Some(("sensor_spike", i)),
        );
    }
    for _ in 0..s.dropouts {
        let n = g.rng.random_range(1..=restaurants.max(1));
        let at = g.at(0.0, 24.0);
        let dur = g.rng.random_range(10..50u64) * 60;
        let truth = Some(("sensor_dropout", i));
        g.push(at, trap(n), ScriptAction::SensorDropout, dur, 0.0, truth);
    }
    for _ in 0..s.power_cuts {
        let n = g.rng.random_range(1..=restaurants.max(1));
        let at = g.at(0.0, 24.0);
        let dur = g.rng.random_range(30..120u64) * 60;
        g.push(
            at,
            trap(n),
            ScriptAction::LinkDown,
            dur,
            0.0,
            Some(("power_cut", i)),
        );
        if n <= p.cameras {
            let truth = Some(("power_cut", i));
            g.push(at, cam(n - 1), ScriptAction::LinkDown, dur, 0.0, truth);
        }
    }
    for _ in 0..s.clock_skews {
        let native = p.native_traps + p.cameras + p.manholes;
        let k = g.rng.random_range(0..native.max(1));
        let device = if k < p.native_traps {
            trap(k + 1)
        } else if k < p.native_traps + p.cameras {
            cam(k - p.native_traps)
        } else {
            cover(k - p.native_traps - p.cameras)
        };
        let at = g.at(0.0, 24.0);
        let dur = g.rng.random_range(6..24u64) * HOUR;
        let minutes = g.rng.random_range(15.0..360.0);
        let sign = if g.rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let truth = Some(("clock_skew", i));
        g.push(
            at,
            device,
            ScriptAction::ClockSkew,
            dur,
            sign * minutes * 60.0,
            truth,
        );
    }

    g.script
        .sort_by(|a, b| (a.at_s, &a.device).cmp(&(b.at_s, &b.device)));
    Ok(FleetConfig {
        restaurants: p.native_traps,
        distance_traps: p.distance_traps,
        level_traps: p.level_traps,
        cameras: p.cameras,
        manholes: p.manholes,
        seed: p.seed,
        speed: 0.0,
        start_ms: Some(BLOCK_START_MS),
        utc_offset_hours: 8,
        step_ms: p.step_ms,
        duration_s: Some(p.days as u64 * DAY),
        link_outages: true,
        restaurant: RestaurantParams {
            dumping_chance_per_night: 0.0,
            ..RestaurantParams::default()
        },
        manhole: ManholeParams {
            open_chance_per_night: 0.0,
            knock_chance_per_day: 0.0,
        },
        camera: CameraParams {
            black_chance_per_day: 0.0,
            offline_chance_per_day: 0.0,
            unplug_chance_per_day: 0.0,
            ..CameraParams::default()
        },
        closed,
        script: g.script,
        ..FleetConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn city_block_is_deterministic_and_labels_every_seeded_happening() {
        let p = BlockParams::default();
        let a = city_block(&p).unwrap();
        let b = city_block(&p).unwrap();
        assert_eq!(a, b);
        let c = city_block(&BlockParams {
            seed: 2,
            ..p.clone()
        })
        .unwrap();
        assert_ne!(a.script, c.script);
        // Night dumps are labelled by the device when they happen; everything else here.
        for s in &a.script {
            assert_eq!(
                s.truth.is_none(),
                s.action == ScriptAction::NightDump,
                "{s:?}"
            );
            assert!(
                s.at_s >= DAY && s.at_s < (p.days as u64 - 1) * DAY + DAY,
                "{s:?}"
            );
        }
        let dumps = a
            .script
            .iter()
            .filter(|s| s.action == ScriptAction::NightDump)
            .count();
        assert_eq!(dumps, 22);
        a.validate().unwrap();
        let err = BlockParams::from_toml_str("bogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
