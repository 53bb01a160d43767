//! Grease-trap geometry per device, and the one place where whatever a trap's sensor reports
//! (level, distance to the surface, fill % or volume; native firmware, a mapped third-party
//! payload such as the Milesight EM310-UDL's `distance`, or a Modbus register) becomes the
//! figures every grease rule reads: `level_mm`, `fill_pct` and `volume_l`.
//!
//! What can be derived depends on what is known:
//!
//! | known                                  | level_mm          | fill_pct | volume_l |
//! |----------------------------------------|-------------------|----------|----------|
//! | nothing, sensor reports a level        | the level         | -        | -        |
//! | nothing, sensor reports a distance     | minus the distance (relative: drops in mm are exact) | - | - |
//! | `sensor_height_mm`                     | height - distance | -        | -        |
//! | + `working_depth_mm`                   | yes               | yes      | -        |
//! | + shape and dimensions                 | yes               | yes      | yes      |
//!
//! So a device without geometry still gets level-based judgements (a drop in mm, or in % of
//! the working depth when only that is known), never silence. Figures the device already
//! sends (native firmware sends all three) are never replaced. The maths is the firmware's
//! own [`firmware::logic::geometry`], so the gateway and the devices agree to the millimetre.

use crate::config_error::{ConfigError, invalid};
use crate::reading::{Name, Reading, Value};
use firmware::logic::geometry::{Shape, TrapGeometry};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The stream grease-trap readings arrive on.
pub(crate) const STREAM: &str = "grease_trap";

/// Plan shape of the trap chamber (walls are vertical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapShape {
    /// `length_mm` x `width_mm`.
    Rectangular,
    /// `diameter_mm`.
    Cylindrical,
}

/// Which figure the trap's sensor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reports {
    /// Liquid depth above the trap floor (submersible, 4-20 mA transmitters), in mm.
    Level,
    /// Distance from the sensor face down to the surface (ultrasonic, radar), in mm.
    Distance,
    /// Fill in % of the working depth.
    FillPct,
    /// Contents (L or m3; canonical m3 is converted).
    Volume,
}

impl Reports {
    /// The metric carrying it when `metric` is not set: native names first, then the usual
    /// names of mapped sensors (`level`, `distance`).
    fn default_metrics(self) -> &'static [&'static str] {
        match self {
            Reports::Level => &["level_mm", "level"],
            Reports::Distance => &["distance", "distance_mm"],
            Reports::FillPct => &["fill_pct", "fill"],
            Reports::Volume => &["volume_l", "volume"],
        }
    }
}

/// One trap's installation (`[[traps]]`): how it is built, where its sensor sits and what
/// the sensor reports. Every dimension is optional; what is missing limits what can be
/// derived (see the module docs), it never stops level-based judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapInstall {
    pub site: String,
    pub device: String,
    /// `rectangular` (with `length_mm`, `width_mm`) or `cylindrical` (with `diameter_mm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<TrapShape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diameter_mm: Option<f64>,
    /// Liquid depth at the outlet invert: the level that is 100 % full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_depth_mm: Option<f64>,
    /// Height of the sensor face above the trap floor (distance sensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_height_mm: Option<f64>,
    /// What the sensor reports.
    pub reports: Reports,
    /// The metric carrying it (default: `level_mm`/`level`, `distance`, `fill_pct`,
    /// `volume_l`, by `reports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

/// A trap's installation as a device registry entry carries it (`installation.trap`): the
/// same fields as `[[traps]]` without `site` and `device`, which are the entry's own. Kept
/// as a separate small type so the registry cannot name a trap other than its own device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrapMount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<TrapShape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diameter_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_depth_mm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_height_mm: Option<f64>,
    pub reports: Reports,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

impl TrapMount {
    /// The `[[traps]]` form of this mount on `site`/`device` (the one the rules read).
    pub(crate) fn at(&self, site: &str, device: &str) -> TrapInstall {
        let m = self.clone();
        TrapInstall {
            site: site.into(),
            device: device.into(),
            shape: m.shape,
            length_mm: m.length_mm,
            width_mm: m.width_mm,
            diameter_mm: m.diameter_mm,
            working_depth_mm: m.working_depth_mm,
            sensor_height_mm: m.sensor_height_mm,
            reports: m.reports,
            metric: m.metric,
        }
    }
}

/// What the rules see for one trap reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    pub level_mm: Option<f64>,
    /// The level is relative to the sensor face (a distance sensor without a mount height).
    pub relative: bool,
    pub fill_pct: Option<f64>,
    pub volume_l: Option<f64>,
}

impl TrapInstall {
    fn geometry(&self) -> Option<TrapGeometry> {
        let shape = match (self.shape?, self.length_mm, self.width_mm, self.diameter_mm) {
            (TrapShape::Rectangular, Some(l), Some(w), _) => Shape::Rectangular {
                length_mm: l as f32,
                width_mm: w as f32,
            },
            (TrapShape::Cylindrical, _, _, Some(d)) => Shape::Cylinder {
                diameter_mm: d as f32,
            },
            _ => return None,
        };
        Some(TrapGeometry {
            shape,
            sensor_to_floor_mm: self.sensor_height_mm.unwrap_or(0.0) as f32,
            full_depth_mm: self.working_depth_mm.unwrap_or(0.0) as f32,
        })
    }

    /// Plan area in mm², when shape and dimensions are known.
    pub(crate) fn area_mm2(&self) -> Option<f64> {
        self.geometry().map(|g| g.area_mm2() as f64)
    }

    /// The figures for a reported `value` (canonical unit `unit`).
    pub(crate) fn figures(&self, value: f64, unit: &str) -> Figures {
        let area = self.area_mm2();
        let depth = self.working_depth_mm;
        let level = match self.reports {
            Reports::Level => Some(value),
            Reports::Distance => self
                .sensor_height_mm
                .map(|h| (h - value).clamp(0.0, h))
                .or(Some(-value)),
            Reports::FillPct => depth.map(|d| value / 100.0 * d),
            Reports::Volume => {
                let litres = if unit == "m3" { value * 1000.0 } else { value };
                area.filter(|a| *a > 0.0).map(|a| litres * 1e6 / a)
            }
        };
        let relative = self.reports == Reports::Distance && self.sensor_height_mm.is_none();
        let absolute = level.filter(|_| !relative);
        Figures {
            level_mm: level,
            relative,
            fill_pct: match self.reports {
                Reports::FillPct => Some(value),
                _ => absolute
                    .zip(depth.filter(|d| *d > 0.0))
                    .map(|(l, d)| l / d * 100.0),
            },
            volume_l: absolute.zip(area).map(|(l, a)| a * l / 1e6),
        }
    }

    /// Checks dimensions; errors name the key under `k` (`traps[2].diameter_mm`).
    pub(crate) fn validate(&self, k: &str) -> Result<(), ConfigError> {
        for (name, v) in [("site", &self.site), ("device", &self.device)] {
            if v.is_empty() {
                return Err(invalid(format!("{k}.{name}"), "must not be empty"));
            }
        }
        for (name, v) in [
            ("length_mm", self.length_mm),
            ("width_mm", self.width_mm),
            ("diameter_mm", self.diameter_mm),
            ("working_depth_mm", self.working_depth_mm),
            ("sensor_height_mm", self.sensor_height_mm),
        ] {
            if let Some(x) = v
                && (!x.is_finite() || x <= 0.0 || x > 100_000.0)
            {
                return Err(invalid(
                    format!("{k}.{name}"),
                    "must be a positive number of mm (at most 100 m)",
                ));
            }
        }
        match (self.shape, self.length_mm, self.width_mm, self.diameter_mm) {
            (Some(TrapShape::Rectangular), None, _, _) => {
                return Err(invalid(
                    format!("{k}.length_mm"),
                    "a rectangular trap needs it",
                ));
            }
            (Some(TrapShape::Rectangular), _, None, _) => {
                return Err(invalid(
                    format!("{k}.width_mm"),
                    "a rectangular trap needs it",
                ));
            }
            (Some(TrapShape::Cylindrical), _, _, None) => {
                return Err(invalid(
                    format!("{k}.diameter_mm"),
                    "a cylindrical trap needs it",
                ));
            }
            (None, l, w, d) if l.or(w).or(d).is_some() => {
                return Err(invalid(
                    format!("{k}.shape"),
                    "dimensions are given: say `rectangular` or `cylindrical`",
                ));
            }
            _ => {}
        }
        if let (Some(h), Some(d)) = (self.sensor_height_mm, self.working_depth_mm)
            && d > h
        {
            return Err(invalid(
                format!("{k}.working_depth_mm"),
                "deeper than the sensor is mounted (sensor_height_mm)",
            ));
        }
        match self.reports {
            Reports::FillPct if self.working_depth_mm.is_none() => Err(invalid(
                format!("{k}.working_depth_mm"),
                "a sensor reporting fill % needs the working depth",
            )),
            Reports::Volume if self.shape.is_none() => Err(invalid(
                format!("{k}.shape"),
                "a sensor reporting volume needs the shape and dimensions",
            )),
            _ => Ok(()),
        }
    }
}

/// Traps by site, then device: looked up with the readings' `&str`s, no key to build.
type ByDevice = HashMap<String, HashMap<String, TrapInstall>>;

fn by_device<'a>(traps: impl IntoIterator<Item = &'a TrapInstall>) -> ByDevice {
    let mut map = ByDevice::new();
    for t in traps {
        map.entry(t.site.clone())
            .or_default()
            .insert(t.device.clone(), t.clone());
    }
    map
}

fn find<'m>(map: &'m ByDevice, site: &str, device: &str) -> Option<&'m TrapInstall> {
    map.get(site).and_then(|d| d.get(device))
}

/// Every known trap, looked up by (site, device): the gateway config's `[[traps]]` (fixed
/// until a restart) overlaid with the device registry's `installation.trap` entries, which
/// change while the gateway runs (file edit or API). On a conflict the registry wins: it is
/// the source installers edit without a restart, so an edit there must take effect; each
/// conflict is logged when a registry version is applied.
///
/// Clones share one current map (the rules engine holds one, the registry feeds another);
/// the map is swapped whole, so a look-up costs a read lock.
#[derive(Debug, Clone, Default)]
pub struct TrapInstalls {
    configured: Arc<ByDevice>,
    current: Arc<RwLock<Arc<ByDevice>>>,
}

/// Checks `[[traps]]`: valid dimensions, one entry per device.
pub(crate) fn validate(traps: &[TrapInstall]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, t) in traps.iter().enumerate() {
        let k = format!("traps[{i}]");
        t.validate(&k)?;
        if !seen.insert((t.site.as_str(), t.device.as_str())) {
            return Err(invalid(format!("{k}.device"), "this trap is listed twice"));
        }
    }
    Ok(())
}

impl TrapInstalls {
    /// The configured traps (`[[traps]]`), none registered yet.
    pub(crate) fn new(traps: &[TrapInstall]) -> Self {
        let configured = by_device(traps);
        TrapInstalls {
            current: Arc::new(RwLock::new(Arc::new(configured.clone()))),
            configured: Arc::new(configured),
        }
    }

    /// Replaces the registered traps (every registry version calls this with all of them);
    /// a registered trap replaces a configured one of the same device, logged.
    pub(crate) fn set_registered(&self, registered: Vec<TrapInstall>) {
        let mut all = (*self.configured).clone();
        for t in registered {
            if let Some(c) = find(&all, &t.site, &t.device)
                && *c != t
            {
                tracing::warn!(
                    site = %t.site,
                    device = %t.device,
                    "trap geometry differs between [[traps]] and the device registry; the registry's is used"
                );
            }
            all.entry(t.site.clone())
                .or_default()
                .insert(t.device.clone(), t);
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, Arc<ByDevice>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The trap of `site`/`device`, when one is known (the registry's tests read it).
    #[cfg(test)]
    pub(crate) fn get(&self, site: &str, device: &str) -> Option<TrapInstall> {
        find(&self.map(), site, device).cloned()
    }

    /// For one message's readings (one device): the grease-trap figures it lacks, derived
    /// from what it carries. Empty for other streams and when nothing can be added.
    ///
    /// Runs for every message the rules see (issue 24: it was 3 % of intake's CPU with
    /// 10,000 devices): the message is read in one pass that notes where each figure's usual
    /// metric is ([`Found`]), instead of a search by name per figure, and the trap is looked up
    /// by reference under the read lock (no key built, nothing cloned).
    #[cfg(test)]
    pub(crate) fn derive(&self, msg: &[Reading]) -> Vec<Reading> {
        let mut out = Vec::new();
        self.derive_into(msg, &mut out);
        out
    }

    /// [`TrapInstalls::derive`], appended to `out`: the rules engine reuses one vector, which
    /// saves an allocation per message of a level sensor (issue 24).
    pub(crate) fn derive_into(&self, msg: &[Reading], out: &mut Vec<Reading>) {
        let found = Found::of(msg);
        let Some(first) = found.first.map(|i| &msg[i]) else {
            return;
        };
        if found.has(LEVEL_MM) && found.has(FILL_PCT) && found.has(VOLUME_L) {
            return;
        }
        let number = |m: &str| found.number(msg, m);
        let map = self.map();
        // The source: the configured sensor, or the best figure the message carries.
        let source = match find(&map, &first.site, &first.device) {
            Some(i) => match &i.metric {
                Some(m) => number(m),
                None => i.reports.default_metrics().iter().find_map(|m| number(m)),
            }
            .map(|(v, r)| (i.figures(v, &r.unit), r)),
            // By index: the names are [`KNOWN`]'s, found in the one pass already.
            None => [
                (LEVEL_MM, Reports::Level),
                (LEVEL, Reports::Level),
                (DISTANCE, Reports::Distance),
                (DISTANCE_MM, Reports::Distance),
            ]
            .into_iter()
            .find_map(|(k, reports)| {
                found
                    .number_at(msg, k)
                    .map(|(v, r)| (Figures::bare(reports, v), r))
            }),
        };
        drop(map);
        let Some((f, src)) = source else {
            return;
        };
        // The derived names, made once: a level sensor's every message derives `level_mm`.
        static NAMES: std::sync::LazyLock<[(Name, Name); 3]> = std::sync::LazyLock::new(|| {
            [("level_mm", "mm"), ("fill_pct", "%"), ("volume_l", "L")]
                .map(|(m, u)| (Name::from(m), Name::from(u)))
        });
        let [(level_m, level_u), (fill_m, fill_u), (volume_m, volume_u)] = &*NAMES;
        let wanted = [
            (LEVEL_MM, level_m, f.level_mm, level_u),
            (FILL_PCT, fill_m, f.fill_pct, fill_u),
            (VOLUME_L, volume_m, f.volume_l, volume_u),
        ]
        .map(|(k, metric, v, unit)| {
            v.filter(|v| v.is_finite() && !found.has(k))
                .map(|v| (metric, v, unit))
        });
        out.reserve(wanted.iter().flatten().count());
        for (metric, v, unit) in wanted.into_iter().flatten() {
            // Field by field: `..src.clone()` also copied the metric and unit it replaced.
            out.push(Reading {
                site: src.site.clone(),
                device: src.device.clone(),
                stream: src.stream.clone(),
                metric: metric.clone(),
                value: Value::Float((v * 10.0).round() / 10.0),
                unit: unit.clone(),
                device_time_ms: src.device_time_ms,
                received_time_ms: src.received_time_ms,
                source: src.source,
                sequence: src.sequence,
                quality: src.quality,
            });
        }
    }
}

impl Figures {
    /// [`TrapInstall::figures`] of a level or distance sensor with nothing known about its
    /// trap (no geometry, no mount height): the level itself, or the level below the sensor
    /// face as a negative distance. Runs for every message of a trap without an installation
    /// (most of them), where building and dropping a bare installation per message cost
    /// more than the figures (issue 24); `TrapInstall::bare` is the oracle in the tests.
    fn bare(reports: Reports, value: f64) -> Figures {
        match reports {
            Reports::Level => Figures {
                level_mm: Some(value),
                ..Figures::default()
            },
            Reports::Distance => Figures {
                level_mm: Some(-value),
                relative: true,
                ..Figures::default()
            },
            // Not asked for: without a depth or an area these give no level.
            Reports::FillPct | Reports::Volume => Figures::default(),
        }
    }
}

impl TrapInstall {
    /// A sensor reporting `reports` with nothing known about its trap (only its figures are
    /// asked for, which need no names: nothing is allocated).
    #[cfg(test)]
    fn bare(reports: Reports) -> TrapInstall {
        TrapInstall {
            site: String::new(),
            device: String::new(),
            shape: None,
            length_mm: None,
            width_mm: None,
            diameter_mm: None,
            working_depth_mm: None,
            sensor_height_mm: None,
            reports,
            metric: None,
        }
    }
}

/// The metrics [`TrapInstalls::derive`] looks for by default: the figures themselves, then the
/// other names sensors report them under (see [`Reports::default_metrics`]).
const KNOWN: [&str; 8] = [
    "level_mm",
    "fill_pct",
    "volume_l",
    "level",
    "distance",
    "distance_mm",
    "fill",
    "volume",
];
const LEVEL_MM: usize = 0;
const FILL_PCT: usize = 1;
const VOLUME_L: usize = 2;
const LEVEL: usize = 3;
const DISTANCE: usize = 4;
const DISTANCE_MM: usize = 5;

fn known(metric: &str) -> Option<usize> {
    match metric {
        "level_mm" => Some(LEVEL_MM),
        "fill_pct" => Some(FILL_PCT),
        "volume_l" => Some(VOLUME_L),
        "level" => Some(LEVEL),
        "distance" => Some(DISTANCE),
        "distance_mm" => Some(DISTANCE_MM),
        "fill" => Some(6),
        "volume" => Some(7),
        _ => None,
    }
}

/// One pass over a message: its first grease-trap reading and, per [`KNOWN`] metric, the
/// first grease-trap reading carrying it.
struct Found {
    first: Option<usize>,
    at: [Option<usize>; KNOWN.len()],
}

impl Found {
    fn of(msg: &[Reading]) -> Found {
        let mut found = Found {
            first: None,
            at: [None; KNOWN.len()],
        };
        for (i, r) in msg.iter().enumerate() {
            if r.stream != STREAM {
                continue;
            }
            found.first.get_or_insert(i);
            if let Some(k) = known(&r.metric) {
                found.at[k].get_or_insert(i);
            }
        }
        found
    }

    /// Whether a grease-trap reading carries `KNOWN[k]`.
    fn has(&self, k: usize) -> bool {
        self.at[k].is_some()
    }

    /// [`Found::number`] of `KNOWN[k]`.
    fn number_at<'m>(&self, msg: &'m [Reading], k: usize) -> Option<(f64, &'m Reading)> {
        let r = msg.get(self.at[k]?)?;
        r.value.as_f64().map(|v| (v, r))
    }

    /// The first grease-trap reading carrying `metric`, with its value when that is a number
    /// (as a search from the front would answer).
    fn number<'m>(&self, msg: &'m [Reading], metric: &str) -> Option<(f64, &'m Reading)> {
        let r = match known(metric) {
            Some(k) => &msg[self.at[k]?],
            // A sensor's own metric name (`metric = ...` in its installation).
            None => msg
                .iter()
                .find(|r| r.stream == STREAM && r.metric == metric)?,
        };
        r.value.as_f64().map(|v| (v, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Quality, Source};

    fn reading(metric: &str, v: f64, unit: &str) -> Reading {
        Reading {
            site: "r-1".into(),
            device: "trap-1".into(),
            stream: STREAM.into(),
            metric: metric.into(),
            value: Value::Float(v),
            unit: unit.into(),
            device_time_ms: 1,
            received_time_ms: 1,
            source: Source::Mqtt,
            sequence: None,
            quality: Quality::default(),
        }
    }

    fn install(reports: Reports) -> TrapInstall {
        TrapInstall {
            site: "r-1".into(),
            device: "trap-1".into(),
            shape: Some(TrapShape::Rectangular),
            length_mm: Some(1000.0),
            width_mm: Some(600.0),
            diameter_mm: None,
            working_depth_mm: Some(800.0),
            sensor_height_mm: Some(1000.0),
            reports,
            metric: None,
        }
    }

    fn figures(out: &[Reading]) -> Vec<(String, f64)> {
        out.iter()
            .map(|r| (r.metric.to_string(), r.value.as_f64().unwrap_or(f64::NAN)))
            .collect()
    }

    #[test]
    fn a_distance_sensor_with_geometry_gives_level_fill_and_volume() {
        let traps = TrapInstalls::new(&[install(Reports::Distance)]);
        let out = traps.derive(&[reading("distance", 600.0, "mm")]);
        assert_eq!(
            figures(&out),
            vec![
                ("level_mm".into(), 400.0),
                ("fill_pct".into(), 50.0),
                ("volume_l".into(), 240.0)
            ]
        );
        // Same figures as the firmware's own geometry (a native trap of the same build).
        let g = install(Reports::Distance).geometry().expect("geometry");
        assert_eq!(g.volume_l(g.level_mm(600.0)), 240.0);
    }

    #[test]
    fn fill_and_volume_sensors_and_a_cylinder() {
        let traps = TrapInstalls::new(&[install(Reports::FillPct)]);
        let out = traps.derive(&[reading("fill_pct", 25.0, "%")]);
        assert_eq!(
            figures(&out),
            vec![("level_mm".into(), 200.0), ("volume_l".into(), 120.0)]
        );
        let mut cyl = install(Reports::Volume);
        cyl.shape = Some(TrapShape::Cylindrical);
        cyl.diameter_mm = Some(1000.0);
        let traps = TrapInstalls::new(&[cyl]);
        // A mapped sensor's litres arrive in canonical m3.
        let out = traps.derive(&[reading("volume", 0.39, "m3")]);
        let f = figures(&out);
        assert_eq!(f[0].0, "level_mm");
        assert!((f[0].1 - 496.6).abs() < 0.2, "{f:?}");
        assert_eq!(f[1], ("fill_pct".into(), 62.1));
    }

    /// The figures of a sensor without an installation, made directly, are those of a bare
    /// installation's [`TrapInstall::figures`] (what `derive` computed before), bit for bit,
    /// for any value and unit.
    #[test]
    fn bare_figures_are_a_bare_installations() {
        let values = [
            0.0,
            -0.0,
            412.0,
            -3.5,
            1e300,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for reports in [Reports::Level, Reports::Distance] {
            for v in values {
                for unit in ["mm", "m3", ""] {
                    let want = TrapInstall::bare(reports).figures(v, unit);
                    let got = Figures::bare(reports, v);
                    let bits = |f: Figures| {
                        (
                            f.level_mm.map(f64::to_bits),
                            f.relative,
                            f.fill_pct.map(f64::to_bits),
                            f.volume_l.map(f64::to_bits),
                        )
                    };
                    assert_eq!(bits(got), bits(want), "{reports:?} {v} {unit}");
                }
            }
        }
    }

    #[test]
    fn without_geometry_a_level_stays_a_level_and_a_distance_becomes_a_relative_level() {
        let traps = TrapInstalls::default();
        let out = traps.derive(&[reading("level", 412.0, "mm")]);
        assert_eq!(figures(&out), vec![("level_mm".into(), 412.0)]);
        let out = traps.derive(&[reading("distance", 1250.0, "mm")]);
        assert_eq!(figures(&out), vec![("level_mm".into(), -1250.0)]);
        // Native firmware already sends every figure: nothing added.
        let native = [
            reading("level_mm", 400.0, "mm"),
            reading("fill_pct", 50.0, "%"),
            reading("volume_l", 240.0, ""),
        ];
        assert!(traps.derive(&native).is_empty());
    }

    #[test]
    fn only_the_working_depth_gives_fill_from_a_level() {
        let mut i = install(Reports::Level);
        i.shape = None;
        i.length_mm = None;
        i.width_mm = None;
        let traps = TrapInstalls::new(&[i]);
        let out = traps.derive(&[reading("level", 200.0, "mm")]);
        assert_eq!(
            figures(&out),
            vec![("level_mm".into(), 200.0), ("fill_pct".into(), 25.0)]
        );
    }

    /// The first reading of a metric is the one read (a text there is no figure), a sensor's
    /// own metric name is found, other streams are ignored and what the message has is kept.
    #[test]
    fn the_first_reading_of_a_metric_is_the_source() {
        let traps = TrapInstalls::default();
        let mut text = reading("level", 0.0, "mm");
        text.value = Value::Text("x".into());
        let out = traps.derive(&[
            text,
            reading("level", 5.0, "mm"),
            reading("distance", 7.0, "mm"),
        ]);
        assert_eq!(figures(&out), vec![("level_mm".into(), -7.0)]);
        let mut other = reading("level", 3.0, "mm");
        other.stream = "water".into();
        assert!(traps.derive(&[other.clone()]).is_empty());
        let out = traps.derive(&[other, reading("level", 9.0, "mm")]);
        assert_eq!(figures(&out), vec![("level_mm".into(), 9.0)]);
        let mut i = install(Reports::Level);
        i.metric = Some("depth".into());
        let traps = TrapInstalls::new(&[i]);
        let out = traps.derive(&[reading("level", 1.0, "mm"), reading("depth", 400.0, "mm")]);
        assert_eq!(
            figures(&out),
            vec![
                ("level_mm".into(), 400.0),
                ("fill_pct".into(), 50.0),
                ("volume_l".into(), 240.0)
            ]
        );
        let out = traps.derive(&[reading("depth", 400.0, "mm"), reading("fill_pct", 1.0, "%")]);
        assert_eq!(
            figures(&out),
            vec![("level_mm".into(), 400.0), ("volume_l".into(), 240.0)]
        );
    }

    #[test]
    fn bad_trap_config_names_the_key() {
        let mut i = install(Reports::Distance);
        i.width_mm = None;
        let e = validate(&[i]).expect_err("no width");
        assert!(e.to_string().contains("traps[0].width_mm"), "{e}");
        let mut i = install(Reports::Distance);
        i.working_depth_mm = Some(2000.0);
        let e = validate(&[i]).expect_err("too deep");
        assert!(e.to_string().contains("traps[0].working_depth_mm"), "{e}");
        let e = validate(&[install(Reports::Level), install(Reports::Level)]).expect_err("twice");
        assert!(e.to_string().contains("traps[1].device"), "{e}");
    }
}
