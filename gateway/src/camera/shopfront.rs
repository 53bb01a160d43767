//! Shop-front trading (出店经营): goods, stalls, tables or people kept in a zone drawn in front
//! of a shop past the zone's limit, during its hours, on street camera frames (issue 22).
//!
//! ```toml
//! [[shopfront.cameras]]
//! site = "street-9"
//! camera = "cam-main-st"
//! classes = ["dining table", "chair", "umbrella", "bench", "potted plant", "suitcase", "person"]
//! [[shopfront.cameras.zones]]
//! id = "front-12"
//! shop = "shop-12"                # the clue's subject: its history, the first-violation hint
//! polygon = [[0, 300], [320, 300], [320, 480], [0, 480]]   # image pixels
//! hours = ["08:00-22:00"]         # local time; empty: always
//! persuade_after_s = 300          # the "take the goods inside" notice
//! limit_s = 900                   # the `shopfront.trading` clue
//! ```
//!
//! **Recipe.** Each zone has its own [`DwellTracker`] (the parking one): every detection of a
//! configured COCO class is a timed object, every other detection only hides what is behind it,
//! an object is in the zone when the bottom centre of its box is. A shop's *episode* starts
//! when the first object stands in its zone and ends when the zone is empty again. Within an
//! episode the first object to reach `persuade_after_s` sends one notice (the parking notice
//! path: recorded as a stay, delivered through the outbox to `notices/v1/{site}/{camera}` and
//! the notice webhooks), and the first to reach `limit_s` raises one `shopfront.trading` clue
//! with its first and last frames; the other objects of the same episode add nothing. The
//! subject is the shop (not the camera), so the clue deduplicates per shop and the reviewer
//! sees the shop's history and first-violation hint. An episode that ends after a notice and
//! before the limit is recorded as `left_after_notice`; after its clue the clue is marked
//! cleared (never closed).
//!
//! **Not detected.** What yolov3-tiny's 80 COCO classes do not name (racks of clothes, fruit
//! crates, signboards, cooking stalls) is not seen; an object the model misses in a frame is
//! kept for `gone_after_s` (30 s), like a parked car.
//!
//! Episodes being timed are saved at an orderly stop and resumed at the next start
//! ([`state`]): the goods are not noticed twice and the notice's record gets its outcome.
//! Everything here blocks (inference): call it from `spawn_blocking`.

pub(crate) mod state;

use crate::camera::config::check_rule_camera;
use crate::camera::parking::{models, privacy_regions};
use crate::clue::signal::{ClueEvent, ClueSignal, Level, Subject};
use crate::clue::stays::{StayEvent, StayNotice, StayUpdate};
use crate::config_error::{ConfigError, invalid};
use crate::metrics::{Metrics, Reason};
use crate::vision::detector::{Detection, class_of};
use crate::vision::dwell::{
    DwellEvent, DwellTracker, Frame, ParkingConfig, Sighting, default_department, default_offset,
};
use crate::vision::preprocess::ImageLimits;
use crate::vision::zone::{DailyWindow, Zone, check_offset, check_polygon, is_active};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The clue kind.
pub(crate) const KIND: &str = "shopfront.trading";

/// The `[shopfront]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShopfrontSection {
    /// Unset: on when `cameras` lists any camera.
    pub enabled: Option<bool>,
    pub cameras: Vec<ShopfrontCamera>,
}

/// The shop fronts one street camera watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopfrontCamera {
    pub site: String,
    pub camera: String,
    /// COCO labels of the objects timed in the zones (`"dining table"` or `"diningtable"`).
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    pub zones: Vec<ShopZone>,
    /// Local time offset from UTC in minutes (480 for China), for the zones' hours.
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// An object not seen although nothing covers it is gone after this long.
    #[serde(default = "default_gone")]
    pub gone_after_s: u64,
    #[serde(default = "default_rule")]
    pub rule: String,
    #[serde(default = "default_department")]
    pub department: Option<String>,
}

/// A zone in front of one shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopZone {
    pub id: String,
    /// The shop's id: the clue's subject.
    pub shop: String,
    pub polygon: Vec<[f32; 2]>,
    /// Local daily windows when the zone must stay clear (empty: always).
    #[serde(default)]
    pub hours: Vec<DailyWindow>,
    #[serde(default = "default_persuade")]
    pub persuade_after_s: u64,
    #[serde(default = "default_limit")]
    pub limit_s: u64,
}

fn default_classes() -> Vec<String> {
    [
        "dining table",
        "chair",
        "umbrella",
        "bench",
        "potted plant",
        "suitcase",
        "person",
    ]
    .map(String::from)
    .to_vec()
}
fn default_gone() -> u64 {
    30
}
fn default_persuade() -> u64 {
    300
}
fn default_limit() -> u64 {
    900
}
fn default_rule() -> String {
    "shopfront-trading".into()
}

impl ShopfrontSection {
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.cameras.is_empty())
    }

    /// Checks what serde cannot; errors name the key (`shopfront.cameras[0].zones[1].shop`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = |k: &str| format!("shopfront.cameras[{i}].{k}");
            check_rule_camera(&mut seen, [&c.site, &c.camera, &c.rule])
                .map_err(|(k, e)| invalid(key(k), e))?;
            if c.classes.is_empty() {
                return Err(invalid(key("classes"), "at least one COCO class is needed"));
            }
            for (j, l) in c.classes.iter().enumerate() {
                if class_of(l).is_none() {
                    return Err(invalid(
                        key(&format!("classes[{j}]")),
                        format!("`{l}` is not a COCO class of the detector"),
                    ));
                }
            }
            check_offset(c.utc_offset_minutes)
                .map_err(|e| invalid(key("utc_offset_minutes"), e))?;
            if c.zones.is_empty() {
                return Err(invalid(key("zones"), "at least one zone is needed"));
            }
            let mut ids = std::collections::HashSet::new();
            for (j, z) in c.zones.iter().enumerate() {
                let zkey = |k: &str| format!("shopfront.cameras[{i}].zones[{j}].{k}");
                if z.id.trim().is_empty() {
                    return Err(invalid(zkey("id"), "must not be empty"));
                }
                if !ids.insert(z.id.as_str()) {
                    return Err(invalid(zkey("id"), format!("zone `{}` listed twice", z.id)));
                }
                if z.shop.trim().is_empty() {
                    return Err(invalid(zkey("shop"), "must name the shop"));
                }
                check_polygon(&z.polygon).map_err(|e| invalid(zkey("polygon"), e))?;
                if z.limit_s == 0 {
                    return Err(invalid(zkey("limit_s"), "must be > 0"));
                }
                if z.persuade_after_s >= z.limit_s {
                    return Err(invalid(
                        zkey("persuade_after_s"),
                        "must be shorter than limit_s",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What one analysed frame produced.
pub(crate) struct ShopfrontOutput {
    pub report: ShopfrontReport,
    /// For the clue pool.
    pub signals: Vec<ClueSignal>,
    /// Notices due and episode outcomes, for the stay records and notice delivery.
    pub stays: Vec<StayEvent>,
}

/// What shop-front enforcement made of one frame (part of the frame upload's answer).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShopfrontReport {
    /// Objects of the configured classes anywhere in the frame: label and score.
    pub objects: Vec<(String, f32)>,
    /// Shops whose zone holds timed objects now.
    pub occupied: Vec<ZoneView>,
    /// `notice` / `clue` / `cleared` / `left_after_notice`, with the shop.
    pub events: Vec<(String, String)>,
    pub elapsed_ms: u64,
}

/// One occupied shop zone.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ZoneView {
    pub zone: String,
    pub shop: String,
    pub objects: usize,
    pub since_ms: i64,
}

/// The shop-front rules of the gateway's cameras.
pub(crate) struct Shopfront {
    cameras: HashMap<(String, String), Mutex<CameraShops>>,
    metrics: Arc<Metrics>,
    limits: ImageLimits,
}

/// One camera: its classes and one tracker per shop zone.
struct CameraShops {
    cfg: ShopfrontCamera,
    /// `classes` as detector class ids.
    classes: Vec<usize>,
    shops: Vec<ShopTracker>,
    /// When this camera started counting episodes (ms): with an episode's number, its stay
    /// record's key, unique across restarts.
    run: i64,
}

struct ShopTracker {
    zone: ShopZone,
    dwell: DwellTracker,
    episode: Option<Episode>,
    next_episode: u64,
}

/// From the first object standing in a shop's zone to the zone being empty again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Episode {
    n: u64,
    noticed: bool,
    raised: bool,
    last_seen_ms: i64,
}

impl ShopTracker {
    fn new(cam: &ShopfrontCamera, zone: &ShopZone) -> Self {
        let mut p = ParkingConfig::new(
            &cam.site,
            &cam.camera,
            vec![Zone {
                id: zone.id.clone(),
                polygon: zone.polygon.clone(),
            }],
        );
        p.active_hours = zone.hours.clone();
        p.utc_offset_minutes = cam.utc_offset_minutes;
        p.persuade_after_s = zone.persuade_after_s;
        p.limit_s = zone.limit_s;
        p.gone_after_s = cam.gone_after_s;
        p.rule = cam.rule.clone();
        p.department = cam.department.clone();
        ShopTracker {
            zone: zone.clone(),
            dwell: DwellTracker::new(p),
            episode: None,
            next_episode: 1,
        }
    }
}

/// The dedup key of a shop's clue: one open clue per (rule, shop).
fn shop_key(rule: &str, site: &str, shop: &str) -> String {
    format!("{rule}/{site}/shop/{shop}")
}

fn episode_key(cam: &ShopfrontCamera, zone: &str, run: i64, n: u64) -> String {
    format!("{}/{}/shop-{zone}/{run}-{n}", cam.site, cam.camera)
}

impl Shopfront {
    /// `None` when disabled or no camera is configured.
    pub(crate) fn new(section: &ShopfrontSection, metrics: Arc<Metrics>) -> Option<Shopfront> {
        if !section.is_enabled() || section.cameras.is_empty() {
            return None;
        }
        let run = crate::clock::now_ms();
        let cameras: HashMap<_, _> = section
            .cameras
            .iter()
            .map(|c| {
                let shops = CameraShops {
                    cfg: c.clone(),
                    classes: c.classes.iter().filter_map(|l| class_of(l)).collect(),
                    shops: c.zones.iter().map(|z| ShopTracker::new(c, z)).collect(),
                    run,
                };
                ((c.site.clone(), c.camera.clone()), Mutex::new(shops))
            })
            .collect();
        info!(cameras = cameras.len(), "shop-front enforcement on");
        Some(Shopfront {
            cameras,
            metrics,
            limits: ImageLimits::default(),
        })
    }

    /// Whether frames of `camera` are analysed for shop fronts.
    pub(crate) fn analyses(&self, site: &str, camera: &str) -> bool {
        self.cameras
            .contains_key(&(site.to_string(), camera.to_string()))
    }

    /// Analyses one decoded frame of `camera` (`jpeg` is kept as evidence); `None` when the
    /// camera has no shop zones or the frame could not be analysed (logged and counted).
    pub(crate) fn on_image(
        &self,
        site: &str,
        camera: &str,
        jpeg: &bytes::Bytes,
        img: &RgbImage,
        at_ms: i64,
    ) -> Option<ShopfrontOutput> {
        let cam = self.cameras.get(&(site.to_string(), camera.to_string()))?;
        let frames = &self.metrics.shopfront_frames_total;
        let Ok(models) = models() else {
            frames
                .get_or_create(&Reason::of("models_unavailable"))
                .inc();
            return None;
        };
        let started = std::time::Instant::now();
        // Every class: what is not timed may still hide what is (a van in front of a table).
        let dets = match self
            .limits
            .check_decoded(jpeg.len(), img)
            .and_then(|_| models.detector.detect_with(img, &[]))
        {
            Ok(d) => d,
            Err(e) => {
                warn!(%site, %camera, error = %e, "shop front: frame not analysed");
                frames.get_or_create(&Reason::of("error")).inc();
                return None;
            }
        };
        let mut guard = cam.lock().unwrap_or_else(|p| p.into_inner());
        let out = guard.observe(&dets, jpeg, at_ms, &self.metrics);
        drop(guard);
        frames.get_or_create(&Reason::of("analysed")).inc();
        Some(ShopfrontOutput {
            report: ShopfrontReport {
                elapsed_ms: started.elapsed().as_millis() as u64,
                ..out.report
            },
            ..out
        })
    }
}

impl CameraShops {
    /// Feeds one frame's detections to every shop zone of the camera. Pure apart from logs
    /// and counters: tested without a model.
    fn observe(
        &mut self,
        dets: &[Detection],
        jpeg: &bytes::Bytes,
        at_ms: i64,
        metrics: &Metrics,
    ) -> ShopfrontOutput {
        let timed = |d: &Detection| self.classes.contains(&d.class_id);
        let frame = Frame {
            at_ms,
            image: jpeg.clone(),
            sightings: dets
                .iter()
                .map(|d| Sighting::new(d.bbox, timed(d)))
                .collect(),
            regions: privacy_regions(dets, &[]),
        };
        let objects: Vec<(String, f32)> = dets
            .iter()
            .filter(|d| timed(d))
            .map(|d| (d.label.to_string(), d.score))
            .collect();
        let mut signals = Vec::new();
        let mut stays = Vec::new();
        let mut events = Vec::new();
        let mut occupied = Vec::new();
        let cfg = &self.cfg;
        for shop in &mut self.shops {
            let dwell_events = shop.dwell.observe(&frame);
            let now_stays = shop.dwell.stays();
            if !is_active(&shop.zone.hours, cfg.utc_offset_minutes, at_ms) {
                // Outside the zone's hours nothing is timed; an open episode ends undecided.
                shop.episode = None;
                continue;
            }
            if !now_stays.is_empty() && shop.episode.is_none() {
                shop.episode = Some(Episode {
                    n: shop.next_episode,
                    noticed: false,
                    raised: false,
                    last_seen_ms: at_ms,
                });
                shop.next_episode += 1;
            }
            let (zone, shop_id) = (shop.zone.id.clone(), shop.zone.shop.clone());
            if let Some(ep) = shop.episode.as_mut() {
                let key = episode_key(cfg, &zone, self.run, ep.n);
                if let Some(last) = now_stays.iter().map(|s| s.last_seen_ms).max() {
                    ep.last_seen_ms = ep.last_seen_ms.max(last);
                }
                for e in dwell_events {
                    match e {
                        DwellEvent::Persuade(n) if !ep.noticed => {
                            ep.noticed = true;
                            metrics.shopfront_notices_total.inc();
                            info!(site = %cfg.site, camera = %cfg.camera, %zone, shop = %shop_id, dwell_s = n.dwell_s, "shop-front notice: take the goods inside");
                            stays.push(StayEvent::Notice(StayNotice {
                                key: key.clone(),
                                site: cfg.site.clone(),
                                camera: cfg.camera.clone(),
                                zone: zone.clone(),
                                plate: None,
                                first_ms: n.first_ms,
                                notice_ms: n.at_ms,
                                dwell_s: n.dwell_s,
                                remaining_s: n.remaining_s,
                                shop: Some(shop_id.clone()),
                            }));
                            events.push(("notice".to_string(), shop_id.clone()));
                        }
                        DwellEvent::Clue(ClueSignal::Occurrence(c)) if !ep.raised => {
                            ep.raised = true;
                            let clue = shop_clue(cfg, &shop.zone, c, &objects);
                            info!(dedup_key = %clue.dedup_key, shop = %shop_id, "shop-front clue raised");
                            if ep.noticed {
                                stays.push(StayEvent::Update(StayUpdate::Raised {
                                    key: key.clone(),
                                    at_ms: clue.at_ms,
                                    clue_key: clue.dedup_key.clone(),
                                }));
                            }
                            signals.push(ClueSignal::Occurrence(clue));
                            events.push(("clue".to_string(), shop_id.clone()));
                        }
                        // Other objects of the same episode, and single objects leaving.
                        _ => {}
                    }
                }
                if now_stays.is_empty() {
                    let ep = shop.episode.take().expect("episode checked above");
                    if ep.raised {
                        signals.push(ClueSignal::Cleared {
                            dedup_key: shop_key(&cfg.rule, &cfg.site, &shop_id),
                            at_ms: ep.last_seen_ms,
                            note: format!("zone {zone} in front of shop {shop_id} clear again"),
                        });
                        events.push(("cleared".to_string(), shop_id.clone()));
                    } else if ep.noticed {
                        stays.push(StayEvent::Update(StayUpdate::Left {
                            key,
                            at_ms: ep.last_seen_ms,
                        }));
                        events.push(("left_after_notice".to_string(), shop_id.clone()));
                    }
                } else {
                    occupied.push(ZoneView {
                        zone,
                        shop: shop_id,
                        objects: now_stays.len(),
                        since_ms: now_stays.iter().map(|s| s.first_ms).min().unwrap_or(at_ms),
                    });
                }
            }
        }
        ShopfrontOutput {
            report: ShopfrontReport {
                objects,
                occupied,
                events,
                elapsed_ms: 0,
            },
            signals,
            stays,
        }
    }
}

/// The shop's clue, from the tracker's clue of the object that reached the limit first: its
/// first and last frames and note stay the evidence; kind, subject, key and words are the
/// shop's.
fn shop_clue(
    cfg: &ShopfrontCamera,
    zone: &ShopZone,
    object: ClueEvent,
    objects: &[(String, f32)],
) -> ClueEvent {
    let first_ms = object.detail["first_seen_ms"]
        .as_i64()
        .unwrap_or(object.at_ms);
    let dwell_s = (object.at_ms - first_ms).max(0) / 1000;
    let mut labels: Vec<&str> = objects.iter().map(|o| o.0.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let subject = Subject {
        site: cfg.site.clone(),
        shop: Some(zone.shop.clone()),
        ..Default::default()
    };
    ClueEvent {
        rule: cfg.rule.clone(),
        kind: KIND.into(),
        level: Level::Low,
        dedup_key: shop_key(&cfg.rule, &cfg.site, &zone.shop),
        subject,
        at_ms: object.at_ms,
        title: format!(
            "Shop {} trading outside its front: {} in zone {} for {} min {} s (camera {}){}",
            zone.shop,
            if labels.is_empty() {
                "objects".to_string()
            } else {
                labels.join(", ")
            },
            zone.id,
            dwell_s / 60,
            dwell_s % 60,
            cfg.camera,
            if object.detail["warned_at_ms"].is_i64() {
                " after a persuasion notice"
            } else {
                ""
            }
        ),
        detail: serde_json::json!({
            "shop": zone.shop,
            "zone": zone.id,
            "camera": cfg.camera,
            "objects": labels,
            "first_seen_ms": first_ms,
            "dwell_s": dwell_s,
            "warned_at_ms": object.detail["warned_at_ms"],
            "persuade_after_s": zone.persuade_after_s,
            "limit_s": zone.limit_s,
            "hours": zone.hours,
        }),
        evidence: object.evidence,
        department: cfg.department.clone(),
        assisting: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::signal::Evidence;
    use crate::config::Config;
    use crate::vision::nms::BBox;

    const CAM: &str = r#"
[[shopfront.cameras]]
site = "s1"
camera = "c1"
classes = ["dining table", "chair"]
[[shopfront.cameras.zones]]
id = "front-1"
shop = "shop-1"
polygon = [[0, 300], [320, 300], [320, 480], [0, 480]]
persuade_after_s = 60
limit_s = 120
"#;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_bad_key() {
        let c = Config::from_toml(CAM).unwrap();
        assert!(c.shopfront.is_enabled());
        assert_eq!(c.shopfront.cameras[0].zones[0].limit_s, 120);
        let e = err(&CAM.replace("\"chair\"", "\"stall\""));
        assert!(e.contains("shopfront.cameras[0].classes[1]"), "{e}");
        let e = err(&CAM.replace("shop = \"shop-1\"", "shop = \" \""));
        assert!(e.contains("shopfront.cameras[0].zones[0].shop"), "{e}");
        let e = err(&CAM.replace("limit_s = 120", "limit_s = 60"));
        assert!(
            e.contains("shopfront.cameras[0].zones[0].persuade_after_s"),
            "{e}"
        );
        let e = err(&CAM.replace(", [0, 480]]", "]").replace(", [320, 480]", ""));
        assert!(e.contains("shopfront.cameras[0].zones[0].polygon"), "{e}");
        let e = err(&CAM.replace("limit_s = 120", "limit_s = 120\nhours = [\"25:00-26:00\"]"));
        assert!(e.contains("hours"), "{e}");
        let e = err(&CAM.replace("limit_s = 120", "limit_s = 120\nowner = \"x\""));
        assert!(e.contains("owner"), "{e}");
        let e = err(&format!("{CAM}{CAM}"));
        assert!(e.contains("shopfront.cameras[1].camera"), "{e}");
    }

    pub(super) const T0: i64 = 1_767_250_000_000;

    fn shops() -> CameraShops {
        let c = Config::from_toml(CAM).unwrap().shopfront.cameras[0].clone();
        CameraShops {
            classes: c.classes.iter().filter_map(|l| class_of(l)).collect(),
            shops: c.zones.iter().map(|z| ShopTracker::new(&c, z)).collect(),
            cfg: c,
            run: 7,
        }
    }

    /// The whole rule set of `CAM` with its one camera counting under `run`.
    pub(super) fn shops_of(run: i64) -> Shopfront {
        let section = Config::from_toml(CAM).unwrap().shopfront;
        let s = Shopfront::new(&section, Arc::new(Metrics::new())).unwrap();
        s.lock_one().run = run;
        s
    }

    impl Shopfront {
        /// The one camera of a test rule set.
        pub(super) fn lock_one(&self) -> std::sync::MutexGuard<'_, CameraShops> {
            let c = self.cameras.values().next().expect("a camera");
            c.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    pub(super) fn det(label: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> Detection {
        let class_id = class_of(label).unwrap();
        Detection {
            class_id,
            label: crate::vision::detector::COCO_LABELS[class_id],
            score: 0.8,
            bbox: BBox { x0, y0, x1, y1 },
        }
    }

    /// Frames every 10 s from `from` to `to` s with `dets`; everything they produced.
    pub(super) fn run(
        s: &mut CameraShops,
        from: i64,
        to: i64,
        dets: &[Detection],
    ) -> (Vec<ClueSignal>, Vec<StayEvent>) {
        let m = Metrics::new();
        let (mut sig, mut st) = (Vec::new(), Vec::new());
        for t in (from..=to).step_by(10) {
            let jpeg = bytes::Bytes::from(format!("jpeg@{t}"));
            let out = s.observe(dets, &jpeg, T0 + t * 1000, &m);
            sig.extend(out.signals);
            st.extend(out.stays);
        }
        (sig, st)
    }

    #[test]
    fn a_table_and_chairs_kept_past_the_limit_give_one_notice_and_one_clue_about_the_shop() {
        let mut s = shops();
        let goods = [
            det("diningtable", 40.0, 320.0, 200.0, 420.0),
            det("chair", 210.0, 330.0, 260.0, 430.0),
            det("chair", 0.0, 330.0, 35.0, 430.0),
            // A car on the road above the zone: not timed, not a shop's goods.
            det("car", 100.0, 100.0, 300.0, 250.0),
        ];
        let (signals, stays) = run(&mut s, 0, 200, &goods);
        let notices: Vec<&StayNotice> = stays
            .iter()
            .filter_map(|e| match e {
                StayEvent::Notice(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(notices.len(), 1, "one notice per shop, not per chair");
        assert_eq!(notices[0].shop.as_deref(), Some("shop-1"));
        assert_eq!(notices[0].notice_ms, T0 + 60_000);
        let clues: Vec<&ClueEvent> = signals
            .iter()
            .filter_map(|s| match s {
                ClueSignal::Occurrence(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(clues.len(), 1, "{signals:?}");
        let c = clues[0];
        assert_eq!(c.kind, KIND);
        assert_eq!(c.subject.shop.as_deref(), Some("shop-1"));
        assert_eq!((&c.subject.device, &c.subject.plate), (&None, &None));
        assert_eq!(c.dedup_key, "shopfront-trading/s1/shop/shop-1");
        assert_eq!(c.at_ms, T0 + 120_000);
        assert_eq!(
            c.detail["objects"],
            serde_json::json!(["chair", "diningtable"])
        );
        let frames: Vec<&[u8]> = c
            .evidence
            .iter()
            .filter_map(|e| match e {
                Evidence::File { bytes, .. } => Some(bytes.as_slice()),
                _ => None,
            })
            .collect();
        assert_eq!(frames, [b"jpeg@0".as_slice(), b"jpeg@120"]);
        assert!(stays.iter().any(|e| matches!(e,
            StayEvent::Update(StayUpdate::Raised { key, .. }) if key == &notices[0].key)));

        // The goods are taken in: the clue is marked cleared once, the zone is free again.
        let (signals, _) = run(&mut s, 210, 260, &[]);
        let cleared: Vec<_> = signals
            .iter()
            .filter(|s| matches!(s, ClueSignal::Cleared { .. }))
            .collect();
        assert_eq!(cleared.len(), 1, "{signals:?}");
    }

    #[test]
    fn goods_taken_in_after_the_notice_are_recorded_as_persuaded_without_a_clue() {
        let mut s = shops();
        let table = [det("dining table", 40.0, 320.0, 200.0, 420.0)];
        let (signals, stays) = run(&mut s, 0, 70, &table);
        let (more, rest) = run(&mut s, 80, 140, &[]);
        assert!(
            signals
                .iter()
                .chain(&more)
                .all(|s| !matches!(s, ClueSignal::Occurrence(_)))
        );
        assert!(matches!(stays[..], [StayEvent::Notice(_)]), "{stays:?}");
        assert!(
            matches!(&rest[..], [StayEvent::Update(StayUpdate::Left { at_ms, .. })] if *at_ms == T0 + 70_000),
            "{rest:?}"
        );
    }

    #[test]
    fn goods_outside_the_zone_or_its_hours_are_not_timed() {
        let mut s = shops();
        // A table standing on the road part of the image (bottom centre above the zone).
        let (sig, st) = run(
            &mut s,
            0,
            200,
            &[det("diningtable", 40.0, 100.0, 200.0, 250.0)],
        );
        assert!(sig.is_empty() && st.is_empty());
        // Hours that never include T0's local time (T0 is 14:46 in UTC+8).
        let mut s = shops();
        for sh in &mut s.shops {
            let mut z = sh.zone.clone();
            z.hours = vec![DailyWindow::try_from("20:00-21:00".to_string()).unwrap()];
            *sh = ShopTracker::new(&s.cfg, &z);
        }
        let (sig, st) = run(&mut s, 0, 200, &[det("chair", 40.0, 320.0, 90.0, 420.0)]);
        assert!(sig.is_empty() && st.is_empty(), "{sig:?} {st:?}");
    }
}
