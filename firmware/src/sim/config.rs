//! Fleet configuration: what to simulate and where to publish. Also the scenario file (TOML):
//! every field has a default, so a scenario names only what it changes.

use std::prelude::rust_2024::*;

use std::path::Path;
use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::SimError;

/// What to simulate and where to publish it. `Default` is a small demo fleet against
/// `127.0.0.1:1883`, one simulated minute per real second, running until cancelled.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub broker_host: String,
    pub broker_port: u16,
    /// MQTT client ids are `{client_id_prefix}-{site}-{device}`.
    pub client_id_prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Restaurants with a grease trap: site `r-NNN`, device `trap-1`.
    pub restaurants: u32,
    /// Street manholes: site `mh-NNN`, device `cover-1`.
    pub manholes: u32,
    /// Kitchen cameras: site `r-NNN` (the restaurant with the same number), device `cam-1`.
    pub cameras: u32,
    /// Restaurants whose trap has a third-party ultrasonic sensor that reports only a distance
    /// (Milesight EM310-UDL JSON on `milesight/{site}/trap-1/uplink`), numbered after the
    /// native restaurants. No store-and-forward: what is sent while the link is down is lost.
    pub distance_traps: u32,
    /// Restaurants whose trap has a third-party sensor that reports only a level in cm (a plain
    /// number on `plain/{site}/trap-1/level`), numbered after the distance-only ones.
    pub level_traps: u32,
    /// How often the third-party trap sensors report.
    pub third_party_report_s: u64,
    /// Restaurants closed on some weekdays (0 = Monday): their traps do not fill and no
    /// pump-out crew comes on those days.
    pub closed: Vec<ClosedSite>,
    /// Same seed and config => same messages, in the same order.
    pub seed: u64,
    /// Simulated seconds per real second; `0` runs as fast as the broker takes messages. Device
    /// timestamps follow simulated time, so above 1 they run ahead of the wall clock.
    pub speed: f64,
    /// Simulated start time, ms since the Unix epoch; `None` = the wall clock at start.
    pub start_ms: Option<i64>,
    /// Local time offset of the simulated city, for business hours and nights.
    pub utc_offset_hours: i32,
    /// Simulation tick: each device samples its sensors once per tick.
    pub step_ms: u64,
    /// Stop after this much simulated time.
    pub duration_s: Option<u64>,
    /// Stop after publishing this many telemetry and event messages (state messages not counted).
    pub max_messages: Option<u64>,
    /// Simulate cellular outages (devices buffer and replay).
    pub link_outages: bool,
    pub restaurant: RestaurantParams,
    pub manhole: ManholeParams,
    pub camera: CameraParams,
    /// Scripted happenings at fixed simulated times, on top of the random ones.
    pub script: Vec<ScriptedEvent>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            broker_host: "127.0.0.1".into(),
            broker_port: 1883,
            client_id_prefix: "sim".into(),
            username: None,
            password: None,
            restaurants: 5,
            manholes: 3,
            cameras: 3,
            distance_traps: 0,
            level_traps: 0,
            third_party_report_s: 300,
            closed: Vec::new(),
            seed: 1,
            speed: 60.0,
            start_ms: None,
            utc_offset_hours: 8,
            step_ms: 1000,
            duration_s: None,
            max_messages: None,
            link_outages: true,
            restaurant: RestaurantParams::default(),
            manhole: ManholeParams::default(),
            camera: CameraParams::default(),
            script: Vec::new(),
        }
    }
}

/// Like the derived `Debug`, with the broker password redacted so a logged config leaks nothing.
impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("broker_host", &self.broker_host)
            .field("broker_port", &self.broker_port)
            .field("client_id_prefix", &self.client_id_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("restaurants", &self.restaurants)
            .field("manholes", &self.manholes)
            .field("cameras", &self.cameras)
            .field("distance_traps", &self.distance_traps)
            .field("level_traps", &self.level_traps)
            .field("third_party_report_s", &self.third_party_report_s)
            .field("closed", &self.closed)
            .field("seed", &self.seed)
            .field("speed", &self.speed)
            .field("start_ms", &self.start_ms)
            .field("utc_offset_hours", &self.utc_offset_hours)
            .field("step_ms", &self.step_ms)
            .field("duration_s", &self.duration_s)
            .field("max_messages", &self.max_messages)
            .field("link_outages", &self.link_outages)
            .field("restaurant", &self.restaurant)
            .field("manhole", &self.manhole)
            .field("camera", &self.camera)
            .field("script", &self.script)
            .finish()
    }
}

impl FleetConfig {
    /// Parses a scenario file's text.
    pub fn from_toml_str(s: &str) -> Result<Self, SimError> {
        let cfg: FleetConfig = toml::from_str(s).map_err(|e| SimError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Config(std::format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |k: &str, why: &str| Err(SimError::Config(std::format!("{k}: {why}")));
        if self.step_ms == 0 {
            return bad("step_ms", "must be > 0");
        }
        if !(self.speed >= 0.0 && self.speed.is_finite()) {
            return bad("speed", "must be a finite number >= 0");
        }
        if self.restaurants > 999 || self.manholes > 999 || self.cameras > 999 {
            return bad("restaurants/manholes/cameras", "at most 999 each");
        }
        if self.restaurants + self.distance_traps + self.level_traps > 999 {
            return bad(
                "restaurants/distance_traps/level_traps",
                "at most 999 restaurants in all",
            );
        }
        if self.third_party_report_s == 0 {
            return bad("third_party_report_s", "must be > 0");
        }
        for (i, c) in self.closed.iter().enumerate() {
            if c.weekdays.iter().any(|d| *d > 6) {
                return bad(
                    &std::format!("closed[{i}].weekdays"),
                    "days are 0 (Monday) ..= 6 (Sunday)",
                );
            }
        }
        let r = &self.restaurant;
        if !(0..=24).contains(&r.open_hour) || !(0..=24).contains(&r.close_hour) {
            return bad("restaurant.open_hour/close_hour", "hours are 0..=24");
        }
        for (i, s) in self.script.iter().enumerate() {
            if !s.device.contains('/') {
                return bad(
                    &std::format!("script[{i}].device"),
                    "expected \"site/device\", e.g. \"r-001/trap-1\"",
                );
            }
        }
        Ok(())
    }
}

/// A restaurant's weekly closing days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedSite {
    pub site: String,
    /// 0 = Monday ..= 6 = Sunday, in the city's local time.
    pub weekdays: Vec<u8>,
}

/// Grease-trap behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestaurantParams {
    /// Kitchen hours (local); the trap fills only while open, faster at lunch and dinner.
    pub open_hour: u32,
    pub close_hour: u32,
    /// Mean level rise per business hour.
    pub fill_mm_per_hour: f32,
    /// A licensed pump-out happens every this many days, mid-afternoon.
    pub pumpout_every_days: f32,
    /// Chance per night of an illegal discharge (sudden level drop between 01:00 and 04:30).
    pub dumping_chance_per_night: f64,
    /// Chance per sample that foam or a ripple gives a short echo (the median filter's job).
    pub foam_chance: f64,
}

impl Default for RestaurantParams {
    fn default() -> Self {
        RestaurantParams {
            open_hour: 10,
            close_hour: 22,
            fill_mm_per_hour: 12.0,
            pumpout_every_days: 4.0,
            dumping_chance_per_night: 0.15,
            foam_chance: 0.03,
        }
    }
}

/// Manhole cover behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManholeParams {
    /// Chance per night that the cover is lifted (22:00-04:00) for 5-40 minutes.
    pub open_chance_per_night: f64,
    /// Chance per day that traffic knocks the cover askew (tilted 11-20 degrees, still seated).
    pub knock_chance_per_day: f64,
}

impl Default for ManholeParams {
    fn default() -> Self {
        ManholeParams {
            open_chance_per_night: 0.3,
            knock_chance_per_day: 0.1,
        }
    }
}

/// Kitchen camera behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraParams {
    /// How often the camera host sends a heartbeat.
    pub heartbeat_s: u64,
    /// The status board declares the camera offline after this long without one.
    pub heartbeat_timeout_s: u64,
    /// Chance per day of the image going black (lens covered, pointed away) for 10-90 minutes.
    pub black_chance_per_day: f64,
    /// Chance per day of the host going silent (hung, network cut) for 10-90 minutes.
    pub offline_chance_per_day: f64,
    /// Chance per day of the camera being unplugged for 10-90 minutes.
    pub unplug_chance_per_day: f64,
}

impl Default for CameraParams {
    fn default() -> Self {
        CameraParams {
            heartbeat_s: 10,
            heartbeat_timeout_s: 60,
            black_chance_per_day: 0.2,
            offline_chance_per_day: 0.1,
            unplug_chance_per_day: 0.05,
        }
    }
}

/// Something that happens to one device at a fixed simulated time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedEvent {
    /// Seconds after the simulation start.
    pub at_s: u64,
    /// `"site/device"`, e.g. `"r-001/trap-1"`.
    pub device: String,
    pub action: ScriptAction,
    /// How long the condition lasts (for actions that have a duration).
    #[serde(default = "default_script_duration")]
    pub duration_s: u64,
    /// Size of the happening where it has one: mm dropped (`dump`), mm risen (`rain`), mm of a
    /// false echo (`spike`), seconds the clock is off (`clock_skew`). `0` = the default size.
    #[serde(default)]
    pub amount: f64,
    /// What the happening is, for the ground truth (`None`: not recorded).
    #[serde(default)]
    pub truth: Option<super::truth::TruthLabel>,
}

fn default_script_duration() -> u64 {
    600
}

/// What a [`ScriptedEvent`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptAction {
    /// Trap: illegal discharge, level falls by ~300 mm within minutes.
    Dump,
    /// Trap: licensed pump-out to near empty.
    PumpOut,
    /// Trap: set the level to 90 % of full (level-high alarm).
    Overfill,
    /// Manhole: cover lifted and leaned (open, tilted) for `duration_s`.
    OpenCover,
    /// Manhole: cover knocked askew (tilted, seated) for `duration_s`.
    Knock,
    /// Camera: image black for `duration_s`.
    CameraBlack,
    /// Camera: heartbeats stop for `duration_s`.
    CameraOffline,
    /// Camera: power lost for `duration_s`.
    CameraUnplug,
    /// Any device: the radio link is down for `duration_s` (store and forward).
    LinkDown,
    /// Trap: illegal discharge at the next night (01:00-04:30) when the trap holds at least
    /// `amount` + 50 mm (a full trap is what tempts a dumper): the level falls by `amount` mm
    /// (300 by default) within minutes. Noted in the ground truth as `night_dumping` when it
    /// happens; a dump that never finds a full enough trap does not happen.
    NightDump,
    /// Trap: rain or wash water runs in, the level rises by `amount` mm over `duration_s`.
    Rain,
    /// Trap: the sensor gives no valid reading for `duration_s` (no echo, cut cable).
    SensorDropout,
    /// Trap: one false echo `amount` mm above the surface (foam, a ladle); native sensors'
    /// median filter swallows it, third-party sensors report it.
    Spike,
    /// Any device: its clock runs `amount` seconds off for `duration_s`.
    ClockSkew,
    /// Camera: the picture freezes (the same frame again and again) for `duration_s`.
    CameraFrozen,
    /// Camera: the lens is covered (hand, tape, cloth) for `duration_s`.
    CameraCovered,
    /// Camera: pointed at the sky or the ceiling for `duration_s`.
    CameraSky,
    /// Camera: turned away from the kitchen for `duration_s`.
    CameraMoved,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_file_parses_and_rejects_unknown_keys() {
        let cfg = FleetConfig::from_toml_str(
            r#"
            restaurants = 2
            seed = 42
            speed = 0
            [restaurant]
            dumping_chance_per_night = 1.0
            [[script]]
            at_s = 60
            device = "r-001/trap-1"
            action = "dump"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.restaurants, 2);
        assert_eq!(cfg.restaurant.dumping_chance_per_night, 1.0);
        assert_eq!(cfg.restaurant.open_hour, 10);
        assert_eq!(cfg.script[0].action, ScriptAction::Dump);
        assert_eq!(cfg.script[0].duration_s, 600);
        assert_eq!(cfg.script[0].truth, None);
        let err = FleetConfig::from_toml_str("bogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let with_secret = FleetConfig {
            password: Some("hunter2".into()),
            ..FleetConfig::default()
        };
        assert!(!std::format!("{with_secret:?}").contains("hunter2"));
        let err = FleetConfig::from_toml_str("step_ms = 0").unwrap_err();
        assert!(err.to_string().contains("step_ms"), "{err}");
    }
}
