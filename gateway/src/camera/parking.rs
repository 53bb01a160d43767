//! Parking enforcement on uploaded camera frames: detector and plate reader, then one
//! [`DwellTracker`] per configured camera (see `vision/mod.rs` for the recipe).
//!
//! ```toml
//! [parking]
//! enabled = true                  # default: on when cameras are listed
//! [[parking.cameras]]
//! site = "street-9"
//! camera = "cam-dog"
//! persuade_after_s = 60           # "please move" notice
//! limit_s = 480                   # `parking.overstay` clue
//! exempt_plates = ["京A12345"]
//! active_hours = ["07:00-21:00"]
//! [[parking.cameras.zones]]
//! id = "kerb-north"
//! polygon = [[440, 120], [768, 120], [768, 200], [440, 200]]   # image pixels
//! ```
//!
//! A camera's registry entry may carry its zones (`installation.camera_zones`): they replace
//! the configured ones of that camera from its next frame on, without a restart (the rest of
//! its parking rule stays in `[[parking.cameras]]`).
//!
//! The models are loaded on the first parking frame, once per process, and shared by every
//! camera. When they are missing the gateway logs one error, counts the frames it could not
//! analyse (`gateway_parking_frames_total{reason="models_unavailable"}`) and keeps checking
//! camera health.
//!
//! Everything here blocks (inference): call it from `spawn_blocking`.
//!
//! Stays being timed survive a restart: [`state`] saves them at a stop and resumes them at
//! the next start, under the same stay record keys.

pub(crate) mod state;

use crate::clue::signal::ClueSignal;
use crate::clue::stays::{StayEvent, StayNotice, StayUpdate};
use crate::config_error::{ConfigError, invalid};
use crate::metrics::{Metrics, Persuaded, Reason};
use crate::vision::detector::{Detector, DetectorConfig};
use crate::vision::dwell::{
    Departure, DwellEvent, DwellTracker, Frame, Notice, ParkingConfig, StayView, sightings,
};
use crate::vision::plate::{PlateConfig, PlateReader};
use crate::vision::preprocess::{ImageLimits, decode_image};
use crate::vision::zone::{Zone, check_offset, check_polygon};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tracing::{error, info, warn};

/// The `[parking]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParkingSection {
    /// Unset: on when `cameras` lists any camera.
    pub enabled: Option<bool>,
    /// The no-parking rule of each camera (`[[parking.cameras]]`).
    pub cameras: Vec<ParkingConfig>,
}

impl ParkingSection {
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.cameras.is_empty())
    }

    /// Checks what serde cannot; errors name the key (`parking.cameras[0].zones`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = |k: &str| format!("parking.cameras[{i}].{k}");
            if c.site.trim().is_empty() {
                return Err(invalid(key("site"), "must not be empty"));
            }
            if c.camera.trim().is_empty() {
                return Err(invalid(key("camera"), "must not be empty"));
            }
            if !seen.insert((c.site.as_str(), c.camera.as_str())) {
                return Err(invalid(
                    key("camera"),
                    format!("camera `{}` of site `{}` listed twice", c.camera, c.site),
                ));
            }
            if c.zones.is_empty() {
                return Err(invalid(key("zones"), "at least one zone is needed"));
            }
            let mut ids = std::collections::HashSet::new();
            for (j, z) in c.zones.iter().enumerate() {
                let zkey = |k: &str| format!("parking.cameras[{i}].zones[{j}].{k}");
                if z.id.trim().is_empty() {
                    return Err(invalid(zkey("id"), "must not be empty"));
                }
                if !ids.insert(z.id.as_str()) {
                    return Err(invalid(zkey("id"), format!("zone `{}` listed twice", z.id)));
                }
                check_polygon(&z.polygon).map_err(|e| invalid(zkey("polygon"), e))?;
            }
            if c.limit_s == 0 {
                return Err(invalid(key("limit_s"), "must be > 0"));
            }
            if c.persuade_after_s >= c.limit_s {
                return Err(invalid(
                    key("persuade_after_s"),
                    "must be shorter than limit_s",
                ));
            }
            if !(c.match_iou > 0.0 && c.match_iou <= 1.0) {
                return Err(invalid(key("match_iou"), "must be in (0, 1]"));
            }
            if c.rule.trim().is_empty() {
                return Err(invalid(key("rule"), "must not be empty"));
            }
            check_offset(c.utc_offset_minutes)
                .map_err(|e| invalid(key("utc_offset_minutes"), e))?;
        }
        Ok(())
    }
}

/// The shared detector and plate reader (parking, shop fronts and muck trucks use the same).
pub(crate) struct Models {
    pub(crate) detector: Detector,
    /// Parking works without plates (stays are then tracked by box).
    pub(crate) plates: Option<PlateReader>,
}

static MODELS: OnceLock<Result<Models, String>> = OnceLock::new();

/// Loads the models on first use (once per process); logs one error when they are missing.
pub(crate) fn models() -> Result<&'static Models, &'static str> {
    MODELS
        .get_or_init(|| {
            let started = Instant::now();
            let detector = match Detector::load_default(DetectorConfig::default()) {
                Ok(d) => d,
                Err(e) => {
                    error!(
                        error = %e,
                        "parking enforcement disabled: the vision models cannot be loaded \
                         (run models/fetch.sh); camera health checks continue"
                    );
                    return Err(e.to_string());
                }
            };
            let plates = match PlateReader::load_default(PlateConfig::default()) {
                Ok(p) => Some(p),
                Err(e) => {
                    error!(error = %e, "plate reader unavailable: parking stays are tracked without plates");
                    None
                }
            };
            info!(elapsed_ms = started.elapsed().as_millis() as u64, plates = plates.is_some(), "parking models loaded");
            Ok(Models { detector, plates })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// What parking made of one frame (part of the frame upload's answer).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParkingReport {
    /// Vehicles the detector saw (anywhere in the frame).
    pub vehicles: usize,
    /// Plates read in the frame (sure and doubtful).
    pub plates: Vec<String>,
    /// The same with their confidence, doubt and candidates: a doubtful plate is a lead for a
    /// person, never the subject of a clue on its own.
    pub plate_readings: Vec<PlateView>,
    /// Vehicles currently timed in the camera's zones.
    pub stays: Vec<StayView>,
    /// What this frame caused.
    pub events: Vec<EventView>,
    /// Decode + detection + plates + dwell.
    pub elapsed_ms: u64,
}

/// One plate reading as reported to the uploader.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlateView {
    pub text: String,
    pub confidence: f32,
    pub doubtful: bool,
    pub doubt: String,
    pub candidates: Vec<String>,
}

/// A dwell event as reported to the uploader (evidence bytes left out).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum EventView {
    Persuade(Notice),
    Clue {
        kind: String,
        dedup_key: String,
        title: String,
    },
    ClueCleared {
        dedup_key: String,
    },
    Left(Departure),
}

/// What one analysed frame produced.
pub(crate) struct ParkingOutput {
    /// For the uploader.
    pub report: ParkingReport,
    /// For the clue pool.
    pub signals: Vec<ClueSignal>,
    /// Notices due and outcomes of warned stays, for the stay records and notice delivery
    /// (`crate::notice`).
    pub stays: Vec<StayEvent>,
}

/// The parking rules of the gateway's cameras.
pub(crate) struct Parking {
    /// By (site, camera).
    trackers: HashMap<(String, String), Mutex<CameraTracker>>,
    /// The configured zones by (site, camera), when no registered ones replace them.
    configured: HashMap<(String, String), Vec<Zone>>,
    /// The registered zones of a camera (set once at start-up; see `zones_for`).
    registered: std::sync::OnceLock<ZoneSource>,
    metrics: Arc<Metrics>,
    limits: ImageLimits,
}

/// One camera's tracker and the run its stay numbers belong to.
struct CameraTracker {
    dwell: DwellTracker,
    /// When this tracker started counting stays (ms): with a stay's number, its record's key,
    /// unique across restarts. A resumed tracker keeps the run it was saved with (its stay
    /// numbers continue); a fresh one starts a new run (numbers start again at 1).
    run: i64,
}

/// A camera's zones as its device registry entry has them now (`None` or empty: none). A
/// function so that parking does not depend on the registry.
pub(crate) type ZoneSource = Arc<dyn Fn(&str, &str) -> Option<Vec<Zone>> + Send + Sync>;

impl Parking {
    /// `None` when parking is disabled or no camera is configured.
    pub(crate) fn new(section: &ParkingSection, metrics: Arc<Metrics>) -> Option<Parking> {
        if !section.is_enabled() || section.cameras.is_empty() {
            if !section.cameras.is_empty() {
                info!(
                    cameras = section.cameras.len(),
                    "parking enforcement disabled by parking.enabled = false"
                );
            }
            return None;
        }
        let trackers: HashMap<_, _> = section
            .cameras
            .iter()
            .map(|c| {
                (
                    (c.site.clone(), c.camera.clone()),
                    Mutex::new(CameraTracker {
                        dwell: DwellTracker::new(c.clone()),
                        run: crate::clock::now_ms(),
                    }),
                )
            })
            .collect();
        info!(cameras = trackers.len(), "parking enforcement on");
        Some(Parking {
            trackers,
            configured: section
                .cameras
                .iter()
                .map(|c| ((c.site.clone(), c.camera.clone()), c.zones.clone()))
                .collect(),
            registered: Default::default(),
            metrics,
            limits: ImageLimits::default(),
        })
    }

    /// Takes each camera's zones from `source` (the registry) from now on, where it has any.
    pub(crate) fn zones_from(&self, source: ZoneSource) -> bool {
        self.registered.set(source).is_ok()
    }

    /// The zones `camera` is judged in now: its registry entry's, else the configured ones.
    pub(crate) fn zones_for(&self, site: &str, camera: &str) -> Vec<Zone> {
        self.registered
            .get()
            .and_then(|f| f(site, camera))
            .filter(|z| !z.is_empty())
            .or_else(|| {
                self.configured
                    .get(&(site.to_string(), camera.to_string()))
                    .cloned()
            })
            .unwrap_or_default()
    }

    /// Analyses one frame of `camera`; `None` when the camera has no parking rule or the
    /// frame could not be analysed (logged and counted). Blocks.
    #[cfg(test)]
    pub(crate) fn on_frame(
        &self,
        site: &str,
        camera: &str,
        jpeg: &bytes::Bytes,
        at_ms: i64,
    ) -> Option<ParkingOutput> {
        self.analyse(site, camera, jpeg, None, at_ms)
    }

    /// Whether frames of `camera` are analysed (it has a parking rule); the caller then
    /// decodes the frame once for health and parking ([`Parking::on_image`]).
    pub(crate) fn analyses(&self, site: &str, camera: &str) -> bool {
        self.trackers
            .contains_key(&(site.to_string(), camera.to_string()))
    }

    /// [`Parking::on_frame`] for a frame the caller already decoded (the same JPEG's pixels).
    pub(crate) fn on_image(
        &self,
        site: &str,
        camera: &str,
        jpeg: &bytes::Bytes,
        img: &RgbImage,
        at_ms: i64,
    ) -> Option<ParkingOutput> {
        self.analyse(site, camera, jpeg, Some(img), at_ms)
    }

    fn analyse(
        &self,
        site: &str,
        camera: &str,
        jpeg: &bytes::Bytes,
        decoded: Option<&RgbImage>,
        at_ms: i64,
    ) -> Option<ParkingOutput> {
        let tracker = self.trackers.get(&(site.to_string(), camera.to_string()))?;
        let frames = &self.metrics.parking_frames_total;
        let models = match models() {
            Ok(m) => m,
            Err(_) => {
                frames
                    .get_or_create(&Reason::of("models_unavailable"))
                    .inc();
                return None;
            }
        };
        let started = Instant::now();
        let analysed = (|| {
            let owned;
            let img = match decoded {
                Some(img) => {
                    self.limits.check_decoded(jpeg.len(), img)?;
                    img
                }
                None => {
                    owned = decode_image(jpeg, &self.limits)?;
                    &owned
                }
            };
            let dets = models.detector.detect(img)?;
            let plates = match &models.plates {
                Some(p) => p.read(img)?,
                None => Vec::new(),
            };
            Ok::<_, crate::vision::VisionError>((dets, plates))
        })();
        let (dets, plates) = match analysed {
            Ok(x) => x,
            Err(e) => {
                warn!(%site, %camera, error = %e, "parking: frame not analysed");
                frames.get_or_create(&Reason::of("error")).inc();
                return None;
            }
        };
        let frame = Frame {
            at_ms,
            image: jpeg.clone(),
            sightings: sightings(&dets, &plates),
            regions: privacy_regions(&dets, &plates),
        };
        let vehicles = frame.sightings.iter().filter(|s| s.vehicle).count();
        // Plain state; a panic elsewhere does not make it unusable.
        let zones = self.zones_for(site, camera);
        let mut guard = tracker.lock().unwrap_or_else(|p| p.into_inner());
        let run = guard.run;
        let t = &mut guard.dwell;
        if t.zones() != zones.as_slice() {
            info!(%site, %camera, zones = zones.len(), "parking zones changed");
            t.set_zones(zones);
        }
        let events = t.observe(&frame);
        let stays = t.stays();
        drop(guard);
        frames.get_or_create(&Reason::of("analysed")).inc();
        let (views, signals, stay_events) = self.route(events, run);
        let report = ParkingReport {
            vehicles,
            plates: plates.iter().map(|p| p.text.clone()).collect(),
            plate_readings: plates
                .into_iter()
                .map(|p| PlateView {
                    text: p.text,
                    confidence: p.confidence,
                    doubtful: p.doubtful,
                    doubt: p.doubt,
                    candidates: p.candidates,
                })
                .collect(),
            stays,
            events: views,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        Some(ParkingOutput {
            report,
            signals,
            stays: stay_events,
        })
    }

    /// The stay records' key of stay `stay` of `camera` in `run` (see [`CameraTracker::run`]).
    fn stay_key(site: &str, camera: &str, run: i64, stay: u64) -> String {
        format!("{site}/{camera}/{run}-{stay}")
    }

    /// Splits what the tracker said: views for the uploader, clue signals for the pool, and
    /// stay events (notices due, outcomes of warned stays) for the notice service.
    fn route(
        &self,
        events: Vec<DwellEvent>,
        run: i64,
    ) -> (Vec<EventView>, Vec<ClueSignal>, Vec<StayEvent>) {
        let mut views = Vec::with_capacity(events.len());
        let mut signals = Vec::new();
        let mut stays = Vec::new();
        for e in events {
            match e {
                DwellEvent::Persuade(n) => {
                    stays.push(StayEvent::Notice(StayNotice {
                        key: Self::stay_key(&n.site, &n.camera, run, n.stay),
                        site: n.site.clone(),
                        camera: n.camera.clone(),
                        zone: n.zone.clone(),
                        plate: n.plate.clone(),
                        first_ms: n.first_ms,
                        notice_ms: n.at_ms,
                        dwell_s: n.dwell_s,
                        remaining_s: n.remaining_s,
                        shop: None,
                    }));
                    // Not a clue: the driver is asked to move (roadside speaker / SMS).
                    info!(
                        site = %n.site, camera = %n.camera, zone = %n.zone,
                        plate = n.plate.as_deref().unwrap_or("-"), stay = n.stay,
                        dwell_s = n.dwell_s, remaining_s = n.remaining_s,
                        "parking persuasion notice: please move"
                    );
                    self.metrics.parking_persuasions_total.inc();
                    views.push(EventView::Persuade(n));
                }
                DwellEvent::Clue(s) => {
                    views.push(match &s {
                        ClueSignal::Occurrence(c) => {
                            info!(dedup_key = %c.dedup_key, kind = %c.kind, "parking clue raised");
                            // The tracker writes the stay's number into the clue's detail.
                            if let Some(stay) = c.detail.get("stay").and_then(|v| v.as_u64()) {
                                stays.push(StayEvent::Update(StayUpdate::Raised {
                                    key: Self::stay_key(&c.subject.site, camera_of(c), run, stay),
                                    at_ms: c.at_ms,
                                    clue_key: c.dedup_key.clone(),
                                }));
                            }
                            EventView::Clue {
                                kind: c.kind.clone(),
                                dedup_key: c.dedup_key.clone(),
                                title: c.title.clone(),
                            }
                        }
                        ClueSignal::Cleared { dedup_key, .. } => EventView::ClueCleared {
                            dedup_key: dedup_key.clone(),
                        },
                    });
                    signals.push(s);
                }
                DwellEvent::Left(d) => {
                    info!(
                        site = %d.site, camera = %d.camera, zone = %d.zone, stay = d.stay,
                        dwell_s = d.dwell_s, persuaded = d.persuaded, "vehicle left the zone"
                    );
                    self.metrics
                        .parking_departures_total
                        .get_or_create(&Persuaded::of(d.persuaded))
                        .inc();
                    if d.warned {
                        stays.push(StayEvent::Update(StayUpdate::Left {
                            key: Self::stay_key(&d.site, &d.camera, run, d.stay),
                            at_ms: d.last_seen_ms,
                        }));
                    }
                    views.push(EventView::Left(d));
                }
            }
        }
        (views, signals, stays)
    }
}

/// The camera of a parking clue (its subject's device).
fn camera_of(c: &crate::clue::signal::ClueEvent) -> &str {
    c.subject.device.as_deref().unwrap_or_default()
}

/// The boxes of a frame that may show personal data, recorded with its evidence so the frame
/// can be masked later: every plate read, every person and every vehicle (a plate the reader
/// missed is still inside its vehicle's box).
pub(crate) fn privacy_regions(
    dets: &[crate::vision::detector::Detection],
    plates: &[crate::vision::plate::PlateReading],
) -> Vec<crate::clue::signal::Region> {
    use crate::clue::signal::Region;
    use crate::vision::detector::{PERSON, is_vehicle};
    let region = |kind: &str, b: &crate::vision::nms::BBox| Region {
        kind: kind.into(),
        x0: b.x0,
        y0: b.y0,
        x1: b.x1,
        y1: b.y1,
    };
    let mut out: Vec<Region> = plates
        .iter()
        .map(|p| region("plate", &p.plate.bbox))
        .collect();
    for d in dets {
        if d.class_id == PERSON {
            out.push(region("person", &d.bbox));
        } else if is_vehicle(d.class_id) {
            out.push(region("vehicle", &d.bbox));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CAM: &str = r#"
[[parking.cameras]]
site = "s1"
camera = "c1"
persuade_after_s = 1
limit_s = 2
[[parking.cameras.zones]]
id = "kerb"
polygon = [[0, 0], [100, 0], [100, 50]]
"#;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn cameras_load_and_enable_parking() {
        let c = Config::from_toml(CAM).unwrap();
        assert!(c.parking.is_enabled());
        let p = &c.parking.cameras[0];
        assert_eq!((p.persuade_after_s, p.limit_s), (1, 2));
        assert_eq!(p.zones[0].polygon[2], [100.0, 50.0]);
        assert!(!Config::default().parking.is_enabled());
        let off = Config::from_toml(&format!("[parking]\nenabled = false\n{CAM}")).unwrap();
        assert!(!off.parking.is_enabled());
        assert!(Parking::new(&off.parking, Arc::new(Metrics::new())).is_none());
        assert!(Parking::new(&c.parking, Arc::new(Metrics::new())).is_some());
    }

    #[test]
    fn errors_name_the_key() {
        let e = err("[[parking.cameras]]\nsite = \"s1\"\ncamera = \"c1\"\nzones = []\n");
        assert!(e.contains("parking.cameras[0].zones"), "{e}");
        let e = err(&CAM.replace("limit_s = 2", "limit_s = 1"));
        assert!(e.contains("parking.cameras[0].persuade_after_s"), "{e}");
        let e = err(&CAM.replace("[100, 50]", "[100, nan]"));
        assert!(e.contains("parking.cameras[0].zones[0].polygon"), "{e}");
        let e = err(&CAM.replace(", [100, 50]]", "]"));
        assert!(e.contains("parking.cameras[0].zones[0].polygon"), "{e}");
        let e = err(&format!("{CAM}{CAM}"));
        assert!(e.contains("parking.cameras[1].camera"), "{e}");
        let e = err(&CAM.replace("limit_s = 2", "limit_s = 2\nlimit = 3"));
        assert!(e.contains("limit"), "{e}");
        let e = err(&CAM.replace("id = \"kerb\"", "id = \"kerb\"\nname = \"x\""));
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn plates_people_and_vehicles_are_recorded_as_privacy_regions() {
        use crate::vision::detector::Detection;
        use crate::vision::nms::BBox;
        use crate::vision::plate::{PlateBox, PlateReading};
        let b = |x0, y0, x1, y1| BBox { x0, y0, x1, y1 };
        let det = |class_id, label, bbox| Detection {
            class_id,
            label,
            score: 0.9,
            bbox,
        };
        let dets = [
            det(0, "person", b(10.0, 10.0, 40.0, 100.0)),
            det(2, "car", b(100.0, 50.0, 200.0, 120.0)),
            det(16, "dog", b(300.0, 80.0, 330.0, 110.0)),
        ];
        let plates = [PlateReading {
            text: "京A12345".into(),
            confidence: 0.9,
            plate: PlateBox {
                bbox: b(130.0, 100.0, 170.0, 112.0),
                corners: [
                    (130.0, 100.0),
                    (170.0, 100.0),
                    (170.0, 112.0),
                    (130.0, 112.0),
                ],
                score: 0.9,
            },
            chars: Vec::new(),
            doubtful: false,
            doubt: String::new(),
            candidates: Vec::new(),
        }];
        let r = privacy_regions(&dets, &plates);
        let kinds: Vec<&str> = r.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["plate", "person", "vehicle"],
            "the dog is nobody's data"
        );
        assert_eq!((r[0].x0, r[0].y1), (130.0, 112.0));
    }

    #[test]
    fn a_cameras_registered_zones_replace_the_configured_ones_while_it_runs() {
        let c = Config::from_toml(CAM).unwrap();
        let p = Parking::new(&c.parking, Arc::new(Metrics::new())).unwrap();
        let configured = c.parking.cameras[0].zones.clone();
        assert_eq!(p.zones_for("s1", "c1"), configured);
        // The registry, as it is at each frame (here: edited once).
        let now: Arc<Mutex<Option<Vec<Zone>>>> = Arc::new(Mutex::new(None));
        let seen = now.clone();
        assert!(p.zones_from(Arc::new(move |site, camera| {
            (site == "s1" && camera == "c1")
                .then(|| seen.lock().unwrap().clone())
                .flatten()
        })));
        assert_eq!(
            p.zones_for("s1", "c1"),
            configured,
            "nothing registered yet"
        );
        let kerb = Zone {
            id: "kerb-south".into(),
            polygon: vec![[0.0, 400.0], [640.0, 400.0], [640.0, 480.0]],
        };
        *now.lock().unwrap() = Some(vec![kerb.clone()]);
        assert_eq!(p.zones_for("s1", "c1"), vec![kerb]);
        // An entry without zones leaves the configured ones.
        *now.lock().unwrap() = Some(Vec::new());
        assert_eq!(p.zones_for("s1", "c1"), configured);
    }

    #[test]
    fn frames_of_other_cameras_are_not_analysed() {
        let c = Config::from_toml(CAM).unwrap();
        let metrics = Arc::new(Metrics::new());
        let p = Parking::new(&c.parking, metrics.clone()).unwrap();
        let jpeg = bytes::Bytes::from_static(b"not a jpeg");
        assert!(p.on_frame("s1", "other", &jpeg, 0).is_none());
        assert!(p.on_frame("s2", "c1", &jpeg, 0).is_none());
        assert!(!metrics.encode().contains("parking_frames_total{"));
    }
}
