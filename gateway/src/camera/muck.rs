//! Muck trucks (渣土车): trucks seen on road cameras, their plates read and checked against a
//! permit list (plate, permitted hours, permitted cameras); a truck without a permit, outside
//! its hours or off its route is a clue with its frames and the permit it broke (issue 22).
//!
//! ```toml
//! [[muck_trucks.cameras]]
//! site = "street-9"
//! camera = "cam-ring-rd"
//! [[muck_trucks.permits]]
//! plate = "苏E5T703"
//! hours = ["22:00-06:00"]         # local time of the camera; empty: any time
//! cameras = ["cam-ring-rd"]       # the permitted route as camera ids
//! route_areas = [[[120.60, 31.28], [120.65, 31.28], [120.65, 31.32]]]  # and/or as [lon, lat] areas
//! holder = "Huaxin Earthworks"    # shown to the reviewer
//! ```
//!
//! A camera is on a permit's route when `cameras` names it or its `position = [lon, lat]` lies
//! in one of `route_areas` (a permit with neither: every camera).
//!
//! **Recipe.** Each frame of a muck camera goes through the COCO detector (class `truck`) and
//! the plate reader; a plate belongs to the smallest truck box holding its centre. Only a
//! *sure* reading is judged: a doubtful one (see [`PlateReading::doubtful`]) and a sure one
//! that differs in one character from a permitted plate (a misread of a permitted truck is
//! likelier than an unpermitted truck one character away) are reported in the frame's answer
//! as leads and never become a clue's subject on their own. A judged plate with a broken
//! permit must be seen `confirm_frames` times within `confirm_within_s` before its clue is
//! raised (one frame's misread is not enough), with the first and the confirming frame as
//! evidence; the same plate, camera and breach is raised again only after `repeat_after_s`.
//!
//! Kinds: `muck_truck.no_permit`, `muck_truck.outside_hours`, `muck_truck.off_route`; the
//! subject is the camera and the plate, so the plate's history counts.
//!
//! **Not detected.** An uncovered or overloaded load, spilled muck and dirty wheels need a model
//! we do not have (yolov3-tiny's COCO `truck` is any truck, loaded or not): every truck with a
//! plate is checked against the permits, nothing is said about its load. A truck whose plate is
//! not read is counted in the answer and not judged. Permits come from the configuration and
//! the clue store (`camera::permits`).

use crate::camera::config::check_rule_camera;
use crate::camera::parking::{models, privacy_regions};
use crate::camera::permits::MuckPermits;
use crate::clue::signal::{ClueEvent, ClueSignal, Evidence, Level, Region, Subject};
use crate::config_error::{ConfigError, invalid};
use crate::metrics::{Metrics, Reason};
use crate::vision::detector::{Detection, TRUCK};
use crate::vision::dwell::{
    another_car, default_department, default_offset, normalize_plate, plate_owner,
};
use crate::vision::plate::PlateReading;
use crate::vision::preprocess::ImageLimits;
use crate::vision::zone::{
    DailyWindow, check_lon_lat, check_lon_lat_polygon, check_offset, in_polygon, is_active,
};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Plates waiting for confirmation or remembered as raised, per camera: beyond this the oldest
/// are dropped (a bound on memory whatever the traffic).
const MAX_REMEMBERED: usize = 4096;

/// The `[muck_trucks]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MuckSection {
    /// Unset: on when `cameras` lists any camera.
    pub enabled: Option<bool>,
    pub cameras: Vec<MuckCamera>,
    pub permits: Vec<Permit>,
    /// How often the permits stored through the API are re-read, for changes made through
    /// another gateway on a shared store (this gateway's own are in force at once).
    pub permits_reload_s: u64,
}

impl Default for MuckSection {
    fn default() -> Self {
        MuckSection {
            enabled: None,
            cameras: Vec::new(),
            permits: Vec::new(),
            permits_reload_s: 30,
        }
    }
}

/// A road camera whose trucks are checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuckCamera {
    pub site: String,
    pub camera: String,
    /// Local time offset from UTC in minutes (480 for China), for the permits' hours.
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// Frames a plate must be read in (within `confirm_within_s`) before its clue.
    #[serde(default = "default_confirm")]
    pub confirm_frames: u32,
    #[serde(default = "default_confirm_within")]
    pub confirm_within_s: u64,
    /// The same plate and breach on this camera is raised again only after this long.
    #[serde(default = "default_repeat")]
    pub repeat_after_s: u64,
    #[serde(default = "default_rule")]
    pub rule: String,
    #[serde(default = "default_department")]
    pub department: Option<String>,
    /// Where the camera stands, `[lon, lat]` (WGS84): needed to judge permits whose route is
    /// drawn as areas (`route_areas`).
    #[serde(default)]
    pub position: Option<[f64; 2]>,
}

/// One muck-truck permit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permit {
    pub plate: String,
    /// Local daily windows when the truck may drive (empty: any time).
    #[serde(default)]
    pub hours: Vec<DailyWindow>,
    /// Camera ids on its permitted route (empty, with no `route_areas`: every camera).
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Its permitted route as areas, each a polygon of `[lon, lat]` points (WGS84, as camera
    /// `position`s): a camera whose position lies in one of them is on the route, as is a
    /// camera of `cameras`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_areas: Vec<Vec<[f64; 2]>>,
    /// Who holds the permit (a company), for the reviewer.
    #[serde(default)]
    pub holder: Option<String>,
}

impl Permit {
    /// Checks what serde cannot, the same for a configured permit and one written through the
    /// API; the error is the field (`plate`, `cameras[1]`, `route_areas[0][2]`) and what is
    /// wrong with it, so each caller names the key in its own terms. `cameras` are the muck
    /// cameras by id, with their positions.
    pub(crate) fn check(
        &self,
        cameras: &HashMap<&str, Option<[f64; 2]>>,
    ) -> Result<(), (String, String)> {
        let plate = normalize_plate(&self.plate);
        if !(7..=8).contains(&plate.chars().count()) || !plate.chars().all(char::is_alphanumeric) {
            return Err((
                "plate".into(),
                format!("`{}` is not a plate (7 or 8 characters)", self.plate),
            ));
        }
        for (j, c) in self.cameras.iter().enumerate() {
            if !cameras.contains_key(c.as_str()) {
                return Err((
                    format!("cameras[{j}]"),
                    format!("`{c}` is not a camera of [[muck_trucks.cameras]]"),
                ));
            }
        }
        for (j, area) in self.route_areas.iter().enumerate() {
            check_lon_lat_polygon(area).map_err(|(point, e)| {
                let key = match point {
                    Some(k) => format!("route_areas[{j}][{k}]"),
                    None => format!("route_areas[{j}]"),
                };
                (key, e.to_string())
            })?;
        }
        if !self.route_areas.is_empty() {
            let mut unplaced: Vec<&str> = cameras
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(c, _)| *c)
                .collect();
            unplaced.sort_unstable();
            if let Some(c) = unplaced.first() {
                return Err((
                    "route_areas".into(),
                    format!(
                        "camera `{c}` has no `position` in [[muck_trucks.cameras]]: a route drawn \
                         as areas needs every muck camera placed"
                    ),
                ));
            }
        }
        if self.holder.as_ref().is_some_and(|h| h.len() > 200) {
            return Err(("holder".into(), "at most 200 bytes".into()));
        }
        Ok(())
    }

    /// Whether a camera (by id and position) is on the permitted route: anywhere when the
    /// permit names neither cameras nor areas.
    pub(crate) fn on_route(&self, camera: &str, position: Option<[f64; 2]>) -> bool {
        if self.cameras.is_empty() && self.route_areas.is_empty() {
            return true;
        }
        self.cameras.iter().any(|c| c == camera)
            || position
                .is_some_and(|[lon, lat]| self.route_areas.iter().any(|a| in_polygon(a, lon, lat)))
    }
}

fn default_confirm() -> u32 {
    2
}
fn default_confirm_within() -> u64 {
    120
}
fn default_repeat() -> u64 {
    1800
}
fn default_rule() -> String {
    "muck-trucks".into()
}

impl MuckSection {
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.cameras.is_empty())
    }

    /// The ids a permit's `cameras` may name, with their positions.
    pub(crate) fn camera_ids(&self) -> HashMap<&str, Option<[f64; 2]>> {
        self.cameras
            .iter()
            .map(|c| (c.camera.as_str(), c.position))
            .collect()
    }

    /// Checks what serde cannot; errors name the key (`muck_trucks.permits[2].cameras[0]`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.permits_reload_s == 0 {
            return Err(invalid("muck_trucks.permits_reload_s", "must be > 0"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = |k: &str| format!("muck_trucks.cameras[{i}].{k}");
            check_rule_camera(&mut seen, [&c.site, &c.camera, &c.rule])
                .map_err(|(k, e)| invalid(key(k), e))?;
            if c.confirm_frames == 0 {
                return Err(invalid(key("confirm_frames"), "must be at least 1"));
            }
            if c.confirm_within_s == 0 {
                return Err(invalid(key("confirm_within_s"), "must be > 0"));
            }
            check_offset(c.utc_offset_minutes)
                .map_err(|e| invalid(key("utc_offset_minutes"), e))?;
            if let Some(p) = c.position {
                check_lon_lat(p).map_err(|e| invalid(key("position"), e))?;
            }
        }
        let cameras = self.camera_ids();
        let mut plates = std::collections::HashSet::new();
        for (i, p) in self.permits.iter().enumerate() {
            let key = |k: &str| format!("muck_trucks.permits[{i}].{k}");
            p.check(&cameras).map_err(|(k, e)| invalid(key(&k), e))?;
            if !plates.insert(normalize_plate(&p.plate)) {
                return Err(invalid(
                    key("plate"),
                    format!(
                        "`{}` has two permits; list its hours and cameras in one",
                        p.plate
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The permit condition a truck broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Breach {
    NoPermit,
    OutsideHours,
    OffRoute,
}

impl Breach {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Breach::NoPermit => "muck_truck.no_permit",
            Breach::OutsideHours => "muck_truck.outside_hours",
            Breach::OffRoute => "muck_truck.off_route",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Breach::NoPermit => "without a permit",
            Breach::OutsideHours => "outside its permitted hours",
            Breach::OffRoute => "off its permitted route",
        }
    }
}

/// Judges one sure plate seen on `camera` (standing at `position`) at `at_ms`: the permit and
/// what it broke, if any. Hours are checked before the route (a truck out at night on the
/// wrong road is told about its hours first; the detail shows the whole permit).
pub(crate) fn judge<'a>(
    permits: &'a [Permit],
    plate: &str,
    camera: &str,
    position: Option<[f64; 2]>,
    utc_offset_minutes: i32,
    at_ms: i64,
) -> (Option<&'a Permit>, Option<Breach>) {
    let Some(p) = permits.iter().find(|p| normalize_plate(&p.plate) == plate) else {
        return (None, Some(Breach::NoPermit));
    };
    let breach = if !is_active(&p.hours, utc_offset_minutes, at_ms) {
        Some(Breach::OutsideHours)
    } else if !p.on_route(camera, position) {
        Some(Breach::OffRoute)
    } else {
        None
    };
    (Some(p), breach)
}

/// What muck-truck checking made of one frame (part of the frame upload's answer).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MuckReport {
    /// Trucks the detector saw.
    pub trucks: usize,
    /// Each truck's plate and verdict.
    pub plates: Vec<TruckView>,
    /// Trucks without a plate reading on them (not judged).
    pub unread: usize,
    /// Clues raised by this frame (their kinds).
    pub raised: Vec<String>,
    pub elapsed_ms: u64,
}

/// One truck's plate as judged.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TruckView {
    pub plate: String,
    /// `ok`, a breach (`no_permit`, ...), `doubtful` or `near_permit` (leads, never judged).
    pub verdict: String,
    pub candidates: Vec<String>,
}

/// What one analysed frame produced.
pub(crate) struct MuckOutput {
    pub report: MuckReport,
    pub signals: Vec<ClueSignal>,
}

/// A breach seen but not yet confirmed.
struct Pending {
    first: (i64, bytes::Bytes, Vec<Region>),
    seen: u32,
}

/// One camera's state.
struct CameraState {
    cfg: MuckCamera,
    /// By (plate, breach).
    pending: HashMap<(String, Breach), Pending>,
    /// When each (plate, breach) was last raised.
    raised: HashMap<(String, Breach), i64>,
}

/// The muck-truck checks of the gateway's road cameras.
pub(crate) struct MuckTrucks {
    cameras: HashMap<(String, String), Mutex<CameraState>>,
    /// Configured and stored permits (see `camera::permits`).
    permits: Arc<MuckPermits>,
    metrics: Arc<Metrics>,
    limits: ImageLimits,
}

impl MuckTrucks {
    /// `None` when disabled or no camera is configured.
    pub(crate) fn new(section: &MuckSection, metrics: Arc<Metrics>) -> Option<MuckTrucks> {
        if !section.is_enabled() || section.cameras.is_empty() {
            return None;
        }
        info!(
            cameras = section.cameras.len(),
            permits = section.permits.len(),
            "muck-truck checks on"
        );
        Some(MuckTrucks {
            cameras: section
                .cameras
                .iter()
                .map(|c| {
                    let state = CameraState {
                        cfg: c.clone(),
                        pending: HashMap::new(),
                        raised: HashMap::new(),
                    };
                    ((c.site.clone(), c.camera.clone()), Mutex::new(state))
                })
                .collect(),
            permits: Arc::new(MuckPermits::new(section)),
            metrics,
            limits: ImageLimits::default(),
        })
    }

    /// The permits judged (configured and stored), shared with the permit routes.
    pub(crate) fn permits(&self) -> Arc<MuckPermits> {
        self.permits.clone()
    }

    pub(crate) fn analyses(&self, site: &str, camera: &str) -> bool {
        self.cameras
            .contains_key(&(site.to_string(), camera.to_string()))
    }

    /// Checks the trucks of one decoded frame of `camera`; `None` when the camera is no muck
    /// camera or the frame could not be analysed (logged and counted). Blocks.
    pub(crate) fn on_image(
        &self,
        site: &str,
        camera: &str,
        jpeg: &bytes::Bytes,
        img: &RgbImage,
        at_ms: i64,
    ) -> Option<MuckOutput> {
        let cam = self.cameras.get(&(site.to_string(), camera.to_string()))?;
        let frames = &self.metrics.muck_frames_total;
        let Ok(models) = models() else {
            frames
                .get_or_create(&Reason::of("models_unavailable"))
                .inc();
            return None;
        };
        let Some(reader) = &models.plates else {
            // Without plates no permit can be checked: say so per frame, in the counter.
            frames.get_or_create(&Reason::of("no_plate_reader")).inc();
            return None;
        };
        let started = std::time::Instant::now();
        let analysed = self.limits.check_decoded(jpeg.len(), img).and_then(|_| {
            let trucks = models.detector.detect_with(img, &[TRUCK])?;
            // No truck, no plate to read.
            let plates = if trucks.is_empty() {
                Vec::new()
            } else {
                reader.read(img)?
            };
            Ok((trucks, plates))
        });
        let (trucks, plates) = match analysed {
            Ok(x) => x,
            Err(e) => {
                warn!(%site, %camera, error = %e, "muck trucks: frame not analysed");
                frames.get_or_create(&Reason::of("error")).inc();
                return None;
            }
        };
        let mut state = cam.lock().unwrap_or_else(|p| p.into_inner());
        let permits = self.permits.current();
        let mut out = state.observe(&permits, &trucks, &plates, jpeg, at_ms);
        drop(state);
        frames.get_or_create(&Reason::of("analysed")).inc();
        out.report.elapsed_ms = started.elapsed().as_millis() as u64;
        Some(out)
    }
}

/// Each truck's best plate reading (the most confident one whose centre its box holds, the
/// smallest truck first when boxes nest).
fn plates_on_trucks<'a>(
    trucks: &[Detection],
    plates: &'a [PlateReading],
) -> Vec<Option<&'a PlateReading>> {
    let mut best: Vec<Option<&PlateReading>> = vec![None; trucks.len()];
    for p in plates {
        let owner = plate_owner(trucks.iter().map(|t| Some(&t.bbox)), &p.plate.bbox);
        if let Some(i) = owner
            && best[i].is_none_or(|q| p.confidence > q.confidence)
        {
            best[i] = Some(p);
        }
    }
    best
}

impl CameraState {
    /// Judges one frame's trucks; pure apart from logs (tested without a model).
    fn observe(
        &mut self,
        permits: &[Permit],
        trucks: &[Detection],
        plates: &[PlateReading],
        jpeg: &bytes::Bytes,
        at_ms: i64,
    ) -> MuckOutput {
        let cfg = &self.cfg;
        let window_ms = cfg.confirm_within_s as i64 * 1000;
        let repeat_ms = cfg.repeat_after_s as i64 * 1000;
        self.pending
            .retain(|_, p| at_ms.saturating_sub(p.first.0) <= window_ms);
        self.raised
            .retain(|_, t| at_ms.saturating_sub(*t) < repeat_ms);
        let regions = privacy_regions(trucks, plates);
        let on_trucks = plates_on_trucks(trucks, plates);
        let mut report = MuckReport {
            trucks: trucks.len(),
            plates: Vec::new(),
            unread: on_trucks.iter().filter(|p| p.is_none()).count(),
            raised: Vec::new(),
            elapsed_ms: 0,
        };
        let mut signals = Vec::new();
        let mut judged_this_frame = std::collections::HashSet::new();
        for reading in on_trucks.into_iter().flatten() {
            let plate = normalize_plate(&reading.text);
            let view = |verdict: &str| TruckView {
                plate: plate.clone(),
                verdict: verdict.to_string(),
                candidates: reading.candidates.clone(),
            };
            if reading.doubtful {
                report.plates.push(view("doubtful"));
                continue;
            }
            let (permit, breach) = judge(
                permits,
                &plate,
                &cfg.camera,
                cfg.position,
                cfg.utc_offset_minutes,
                at_ms,
            );
            let near = permit.is_none()
                && permits
                    .iter()
                    .any(|p| !another_car(&normalize_plate(&p.plate), &plate));
            if near {
                report.plates.push(view("near_permit"));
                continue;
            }
            let Some(breach) = breach else {
                report.plates.push(view("ok"));
                continue;
            };
            report.plates.push(TruckView {
                verdict: serde_json::to_value(breach)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                ..view("")
            });
            let key = (plate.clone(), breach);
            // Two boxes of one truck in a frame are one sighting.
            if !judged_this_frame.insert(key.clone()) || self.raised.contains_key(&key) {
                continue;
            }
            if self.pending.len() >= MAX_REMEMBERED {
                self.pending.clear();
            }
            let frame = (at_ms, jpeg.clone(), regions.clone());
            let p = self.pending.entry(key.clone()).or_insert(Pending {
                first: frame.clone(),
                seen: 0,
            });
            p.seen += 1;
            if p.seen < cfg.confirm_frames {
                continue;
            }
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            if self.raised.len() >= MAX_REMEMBERED {
                self.raised.clear();
            }
            self.raised.insert(key, at_ms);
            let clue = breach_clue(cfg, &plate, breach, permit, p, frame);
            info!(site = %cfg.site, camera = %cfg.camera, %plate, kind = breach.kind(), "muck-truck clue raised");
            report.raised.push(clue.kind.clone());
            signals.push(ClueSignal::Occurrence(clue));
        }
        MuckOutput { report, signals }
    }
}

fn breach_clue(
    cfg: &MuckCamera,
    plate: &str,
    breach: Breach,
    permit: Option<&Permit>,
    p: Pending,
    last: (i64, bytes::Bytes, Vec<Region>),
) -> ClueEvent {
    let subject = Subject {
        site: cfg.site.clone(),
        device: Some(cfg.camera.clone()),
        plate: Some(plate.to_string()),
        ..Default::default()
    };
    let file = |what: &str, (t, img, regions): &(i64, bytes::Bytes, Vec<Region>)| Evidence::File {
        name: format!("{}-{what}-frame-{t}.jpg", cfg.camera),
        content_type: "image/jpeg".into(),
        bytes: img.to_vec(),
        regions: Some(regions.clone()),
    };
    let permit_words = match permit {
        None => "no permit on the list".to_string(),
        Some(pm) => format!(
            "permit: hours {}, cameras {}{}",
            if pm.hours.is_empty() {
                "any".to_string()
            } else {
                pm.hours
                    .iter()
                    .map(|h| String::from(*h))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            match (pm.cameras.is_empty(), pm.route_areas.len()) {
                (true, 0) => "any".to_string(),
                (false, 0) => pm.cameras.join(", "),
                (true, n) => format!("none named, {n} route area(s)"),
                (false, n) => format!("{} and {n} route area(s)", pm.cameras.join(", ")),
            },
            pm.holder
                .as_deref()
                .map(|h| format!(", holder {h}"))
                .unwrap_or_default()
        ),
    };
    let at_ms = last.0;
    let mut evidence = vec![file("first", &p.first)];
    if last.0 != p.first.0 {
        evidence.push(file("last", &last));
    }
    evidence.push(Evidence::Note {
        text: format!(
            "truck {plate} seen on camera {} {} ({permit_words}); read sure in {} frame(s) from {} ms to {} ms",
            cfg.camera,
            breach.words(),
            p.seen,
            p.first.0,
            at_ms
        ),
    });
    ClueEvent {
        rule: cfg.rule.clone(),
        kind: breach.kind().into(),
        level: match breach {
            Breach::NoPermit => Level::Medium,
            Breach::OutsideHours | Breach::OffRoute => Level::Low,
        },
        dedup_key: format!(
            "{}/{}",
            ClueEvent::default_key(&cfg.rule, &subject),
            breach.kind()
        ),
        subject,
        at_ms,
        title: format!(
            "Muck truck {plate} {} on camera {}",
            breach.words(),
            cfg.camera
        ),
        detail: serde_json::json!({
            "breach": breach,
            "plate": plate,
            "camera": cfg.camera,
            "camera_position": cfg.position,
            "permit": permit,
            "first_seen_ms": p.first.0,
            "frames": p.seen,
            "utc_offset_minutes": cfg.utc_offset_minutes,
            "not_checked": "the load (covered or not) needs a model the gateway does not have",
        }),
        evidence,
        department: cfg.department.clone(),
        assisting: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::vision::nms::BBox;
    use crate::vision::plate::PlateBox;

    const CFG: &str = r#"
[[muck_trucks.cameras]]
site = "s1"
camera = "ring-rd"
[[muck_trucks.cameras]]
site = "s1"
camera = "old-town"
[[muck_trucks.permits]]
plate = "苏E5T703"
hours = ["22:00-06:00"]
cameras = ["ring-rd"]
"#;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_bad_key() {
        let c = Config::from_toml(CFG).unwrap();
        assert!(c.muck_trucks.is_enabled());
        let e = err(&CFG.replace(
            "cameras = [\"ring-rd\"]",
            "cameras = [\"ring-rd\", \"bridge\"]",
        ));
        assert!(e.contains("muck_trucks.permits[0].cameras[1]"), "{e}");
        let e = err(&CFG.replace("\"苏E5T703\"", "\"E5T\""));
        assert!(e.contains("muck_trucks.permits[0].plate"), "{e}");
        let e = err(&format!(
            "{CFG}[[muck_trucks.permits]]\nplate = \"苏E·5T703\"\n"
        ));
        assert!(e.contains("muck_trucks.permits[1].plate"), "{e}");
        let e = err(&CFG.replace(
            "camera = \"old-town\"",
            "camera = \"old-town\"\nconfirm_frames = 0",
        ));
        assert!(e.contains("muck_trucks.cameras[1].confirm_frames"), "{e}");
        let e = err(&CFG.replace("hours = [\"22:00-06:00\"]", "hours = [\"22:00\"]"));
        assert!(e.contains("hours"), "{e}");
        let e = err(&CFG.replace("cameras = [\"ring-rd\"]", "route = \"x\""));
        assert!(e.contains("route"), "{e}");
        let e = err(&format!("[muck_trucks]\npermits_reload_s = 0\n{CFG}"));
        assert!(e.contains("muck_trucks.permits_reload_s"), "{e}");
        assert_eq!(c.muck_trucks.permits_reload_s, 30);
    }

    /// Two cameras placed in Suzhou; the permit's route drawn as one area around the ring road
    /// camera only.
    const PLACED: &str = r#"
[[muck_trucks.cameras]]
site = "s1"
camera = "ring-rd"
position = [120.62, 31.30]
[[muck_trucks.cameras]]
site = "s1"
camera = "old-town"
position = [120.70, 31.40]
[[muck_trucks.permits]]
plate = "苏E5T703"
hours = ["22:00-06:00"]
route_areas = [[[120.60, 31.28], [120.65, 31.28], [120.65, 31.32], [120.60, 31.32]]]
"#;

    #[test]
    fn a_route_drawn_as_areas_is_checked_and_its_errors_name_the_key() {
        let c = Config::from_toml(PLACED).unwrap();
        let e = err(&PLACED.replace("[120.62, 31.30]", "[200.0, 31.30]"));
        assert!(e.contains("muck_trucks.cameras[0].position"), "{e}");
        let e = err(&PLACED.replace("[120.65, 31.28]", "[120.65, 95.0]"));
        assert!(
            e.contains("muck_trucks.permits[0].route_areas[0][1]"),
            "{e}"
        );
        let e = err(&PLACED.replace(", [120.65, 31.32], [120.60, 31.32]]]", "]]"));
        assert!(e.contains("muck_trucks.permits[0].route_areas[0]"), "{e}");
        assert!(e.contains("3"), "{e}");
        // An area to judge by, and a camera with no place: said at the start, not guessed.
        let e = err(&PLACED.replace("position = [120.70, 31.40]\n", ""));
        assert!(e.contains("muck_trucks.permits[0].route_areas"), "{e}");
        assert!(e.contains("old-town"), "{e}");

        let permits = &c.muck_trucks.permits;
        let at = |cam: &str, pos, t| judge(permits, "苏E5T703", cam, pos, 480, t).1;
        let (ring, old) = (Some([120.62, 31.30]), Some([120.70, 31.40]));
        assert_eq!(at("ring-rd", ring, NIGHT), None, "inside the area");
        assert_eq!(at("old-town", old, NIGHT), Some(Breach::OffRoute));
        assert_eq!(at("old-town", old, DAY), Some(Breach::OutsideHours));
        // Named cameras and areas together: either puts the camera on the route.
        let mut both = permits[0].clone();
        both.cameras = vec!["old-town".into()];
        assert!(both.on_route("old-town", old) && both.on_route("ring-rd", ring));
        assert!(!both.on_route("bridge", Some([121.0, 31.0])));
        // Neither: every camera.
        both.cameras.clear();
        both.route_areas.clear();
        assert!(both.on_route("bridge", None));
    }

    /// 2026-01-01 06:46:40 UTC: 14:46 in UTC+8, outside 22:00-06:00.
    const DAY: i64 = 1_767_250_000_000;
    /// 23:00 local the same day.
    const NIGHT: i64 = DAY + (8 * 3600 + 14 * 60) * 1000;

    #[test]
    fn a_permit_is_broken_by_hours_then_route_and_a_missing_one_by_any_truck() {
        let permits = Config::from_toml(CFG).unwrap().muck_trucks.permits;
        let j = |plate: &str, cam: &str, at| judge(&permits, plate, cam, None, 480, at).1;
        assert_eq!(j("苏E5T703", "ring-rd", NIGHT), None);
        assert_eq!(j("苏E5T703", "ring-rd", DAY), Some(Breach::OutsideHours));
        assert_eq!(j("苏E5T703", "old-town", NIGHT), Some(Breach::OffRoute));
        assert_eq!(j("苏E5T703", "old-town", DAY), Some(Breach::OutsideHours));
        assert_eq!(j("沪B74992", "ring-rd", NIGHT), Some(Breach::NoPermit));
    }

    fn state() -> CameraState {
        CameraState {
            cfg: Config::from_toml(CFG).unwrap().muck_trucks.cameras[0].clone(),
            pending: HashMap::new(),
            raised: HashMap::new(),
        }
    }

    fn truck() -> Detection {
        Detection {
            class_id: TRUCK,
            label: "truck",
            score: 0.6,
            bbox: BBox {
                x0: 100.0,
                y0: 100.0,
                x1: 400.0,
                y1: 300.0,
            },
        }
    }

    fn reading(text: &str, doubtful: bool) -> PlateReading {
        PlateReading {
            text: text.into(),
            confidence: 0.9,
            plate: PlateBox {
                bbox: BBox {
                    x0: 220.0,
                    y0: 250.0,
                    x1: 290.0,
                    y1: 272.0,
                },
                corners: [(0.0, 0.0); 4],
                score: 0.9,
            },
            chars: Vec::new(),
            doubtful,
            doubt: String::new(),
            candidates: Vec::new(),
        }
    }

    fn frames(s: &mut CameraState, plate: &PlateReading, times: &[i64]) -> Vec<ClueEvent> {
        let permits = Config::from_toml(CFG).unwrap().muck_trucks.permits;
        let mut out = Vec::new();
        for &t in times {
            let jpeg = bytes::Bytes::from(format!("jpeg@{t}"));
            let o = s.observe(&permits, &[truck()], std::slice::from_ref(plate), &jpeg, t);
            out.extend(o.signals.into_iter().filter_map(|s| match s {
                ClueSignal::Occurrence(c) => Some(c),
                _ => None,
            }));
        }
        out
    }

    #[test]
    fn a_permitted_truck_by_day_is_one_clue_with_two_frames_and_its_permit() {
        let mut s = state();
        let clues = frames(
            &mut s,
            &reading("苏E5T703", false),
            &[DAY, DAY + 5_000, DAY + 10_000, DAY + 600_000],
        );
        assert_eq!(clues.len(), 1, "confirmed once, not repeated: {clues:?}");
        let c = &clues[0];
        assert_eq!(c.kind, "muck_truck.outside_hours");
        assert_eq!(c.at_ms, DAY + 5_000);
        assert_eq!(c.subject.plate.as_deref(), Some("苏E5T703"));
        assert_eq!(c.detail["permit"]["hours"][0], "22:00-06:00");
        let names: Vec<&str> = c
            .evidence
            .iter()
            .filter_map(|e| match e {
                Evidence::File { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // By night on its route: nothing.
        assert!(
            frames(
                &mut state(),
                &reading("苏E5T703", false),
                &[NIGHT, NIGHT + 5_000]
            )
            .is_empty()
        );
    }

    #[test]
    fn doubtful_or_near_permit_readings_and_single_frames_raise_nothing() {
        let times = [DAY, DAY + 5_000, DAY + 10_000];
        assert!(frames(&mut state(), &reading("沪B74992", true), &times).is_empty());
        // One character off the permitted 苏E5T703: a misread of the permitted truck.
        assert!(frames(&mut state(), &reading("苏E5T708", false), &times).is_empty());
        // Seen once, then again after the confirmation window: never confirmed.
        assert!(
            frames(
                &mut state(),
                &reading("沪B74992", false),
                &[DAY, DAY + 200_000]
            )
            .is_empty()
        );
        // Seen twice in time: no permit at all.
        let c = frames(&mut state(), &reading("沪B74992", false), &times);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, "muck_truck.no_permit");
        assert_eq!(c[0].detail["permit"], serde_json::Value::Null);
    }
}
