//! Parking dwell: the "persuade, then raise at the limit" rule for one camera, as a pure state
//! machine (frames in, events out; no clock, no I/O).
//!
//! Each vehicle standing in a no-parking zone is a *stay*, keyed on the tracked vehicle (box
//! overlap with where it was last seen) with the plate as its best reading so far: every sure
//! reading is a vote (weighted by its confidence) and the stay's plate is the text with the most
//! votes. A reading that differs from the stay's plate in one character is a misread of the same
//! car, not another car: it neither splits the stay nor starts a second one. A doubtful reading
//! (see [`super::plate::PlateReading::doubtful`]) never votes: it is kept as a lead for the
//! reviewer, and a stay with only doubtful readings raises its clue without a plate. Sightings
//! join a stay by plate when one is read, otherwise by box overlap. A stay survives
//! frames in which it is not seen while something covers it (a bus, a passer-by) for up to
//! `max_hidden_s`, and missed detections with nothing in front for up to `gone_after_s`; after
//! that it has left and its timer is gone. A plate read later ties a stay that was split by a
//! lost track back to the first one (the older start time wins).
//!
//! At `persuade_after_s` a [`DwellEvent::Persuade`] asks the driver to move (the caller sends it
//! to roadside speakers or SMS); at `limit_s` (8 minutes by default) a `parking.overstay`
//! [`ClueSignal::Occurrence`] carries the first and last frames as evidence. A warned vehicle
//! that leaves before the limit is reported as persuaded ([`DwellEvent::Left`]).

use super::detector::{Detection, is_vehicle};
use super::nms::BBox;
use super::plate::PlateReading;
use super::zone::{DailyWindow, Zone, is_active};
use crate::clue::signal::{ClueEvent, ClueSignal, Evidence, Level, Region, Subject};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The parking rule of one camera.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParkingConfig {
    pub site: String,
    pub camera: String,
    pub zones: Vec<Zone>,
    /// Local daily windows when parking is forbidden (empty = always).
    #[serde(default)]
    pub active_hours: Vec<DailyWindow>,
    /// Local time offset from UTC in minutes (480 for China).
    #[serde(default = "default_offset")]
    pub utc_offset_minutes: i32,
    /// Plates never warned nor raised (police, ambulances, permits).
    #[serde(default)]
    pub exempt_plates: Vec<String>,
    #[serde(default = "default_persuade")]
    pub persuade_after_s: u64,
    #[serde(default = "default_limit")]
    pub limit_s: u64,
    /// A stay not seen although nothing covers it is gone after this long.
    #[serde(default = "default_gone")]
    pub gone_after_s: u64,
    /// A stay covered by another object is kept at most this long unseen.
    #[serde(default = "default_hidden")]
    pub max_hidden_s: u64,
    /// Minimum IoU between a sighting and a stay's last box to be the same vehicle.
    #[serde(default = "default_iou")]
    pub match_iou: f32,
    #[serde(default = "default_rule")]
    pub rule: String,
    #[serde(default = "default_department")]
    pub department: Option<String>,
}

pub(crate) fn default_offset() -> i32 {
    480
}
fn default_persuade() -> u64 {
    60
}
fn default_limit() -> u64 {
    480
}
fn default_gone() -> u64 {
    30
}
fn default_hidden() -> u64 {
    180
}
fn default_iou() -> f32 {
    0.3
}
fn default_rule() -> String {
    "parking-overstay".into()
}
pub(crate) fn default_department() -> Option<String> {
    Some("city-management".into())
}

impl ParkingConfig {
    /// A rule with the defaults: persuade at 1 minute, raise at 8.
    pub fn new(site: &str, camera: &str, zones: Vec<Zone>) -> Self {
        ParkingConfig {
            site: site.into(),
            camera: camera.into(),
            zones,
            active_hours: Vec::new(),
            utc_offset_minutes: default_offset(),
            exempt_plates: Vec::new(),
            persuade_after_s: default_persuade(),
            limit_s: default_limit(),
            gone_after_s: default_gone(),
            max_hidden_s: default_hidden(),
            match_iou: default_iou(),
            rule: default_rule(),
            department: default_department(),
        }
    }
}

/// One object seen in a frame (from the detector, plus the plate when one was read on it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub bbox: BBox,
    /// Vehicles are timed; anything else (people, bicycles) only hides what is behind it.
    pub vehicle: bool,
    /// A sure plate reading on this vehicle.
    pub plate: Option<String>,
    /// Its confidence (0..1); the weight of its vote.
    pub plate_confidence: f32,
    /// A doubtful reading instead (text first, then the other candidates): shown, never voted.
    pub doubtful_plate: Vec<String>,
}

impl Sighting {
    /// A sighting with no plate.
    pub(crate) fn new(bbox: BBox, vehicle: bool) -> Self {
        Sighting {
            bbox,
            vehicle,
            plate: None,
            plate_confidence: 0.0,
            doubtful_plate: Vec::new(),
        }
    }

    /// The same with a sure plate read at `confidence`.
    #[cfg(test)]
    pub(crate) fn with_plate(mut self, plate: &str, confidence: f32) -> Self {
        self.plate = Some(plate.to_string());
        self.plate_confidence = confidence;
        self
    }
}

/// One analysed camera frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Capture time, ms since the epoch (UTC).
    pub at_ms: i64,
    /// The encoded frame (JPEG), kept as evidence for the first and last frame of a stay.
    pub image: Bytes,
    pub sightings: Vec<Sighting>,
    /// Personal-data boxes in `image` (plates, people, vehicles), kept with the evidence so
    /// the frame can be masked for roles that must not see them.
    pub regions: Vec<Region>,
}

/// The "please move" notice due at the persuasion time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub site: String,
    pub camera: String,
    pub zone: String,
    pub plate: Option<String>,
    pub stay: u64,
    /// When the vehicle was first seen in the zone.
    pub first_ms: i64,
    pub at_ms: i64,
    pub dwell_s: u64,
    /// Seconds left before the clue is raised.
    pub remaining_s: u64,
}

/// A vehicle left the zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Departure {
    pub site: String,
    pub camera: String,
    pub zone: String,
    pub plate: Option<String>,
    pub stay: u64,
    /// Last time it was seen.
    pub last_seen_ms: i64,
    pub dwell_s: u64,
    pub warned: bool,
    pub raised: bool,
    /// Warned and gone before the limit: the policy's success measure.
    pub persuaded: bool,
}

// At most a few events per vehicle stay, handed straight on: boxing the clue would save
// nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DwellEvent {
    Persuade(Notice),
    /// `Occurrence` at the limit; `Cleared` when an overstaying vehicle leaves.
    Clue(ClueSignal),
    Left(Departure),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stay {
    id: u64,
    /// The best reading so far: the text with the largest vote.
    plate: Option<String>,
    /// Sure readings seen on this vehicle: text, summed confidence, times read.
    votes: Vec<(String, f32, u32)>,
    /// The latest doubtful reading (text, then candidates), for the reviewer.
    doubtful: Vec<String>,
    /// The clue's dedup key, fixed when it is raised (a later vote cannot move it).
    raised_key: Option<String>,
    zone: String,
    first_ms: i64,
    last_seen_ms: i64,
    last_bbox: BBox,
    #[serde(with = "saved_frame")]
    first_frame: (i64, Bytes, Vec<Region>),
    #[serde(with = "saved_frame")]
    last_frame: (i64, Bytes, Vec<Region>),
    /// Since when the stay's place has been visibly empty (unseen, nothing in front).
    empty_since: Option<i64>,
    warned_at: Option<i64>,
    raised: bool,
    exempt: bool,
}

/// A read-only view of a stay, for dashboards and debugging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StayView {
    pub stay: u64,
    pub plate: Option<String>,
    /// Sure readings and how often each was read.
    pub readings: Vec<(String, u32)>,
    /// The latest doubtful reading and its candidates.
    pub doubtful_plate: Vec<String>,
    pub zone: String,
    pub first_ms: i64,
    pub last_seen_ms: i64,
    pub warned: bool,
    pub raised: bool,
    pub exempt: bool,
}

/// Two vehicle boxes of one vehicle: nearly the same box whatever the classes, or a box of the
/// same class lying inside the other (a car in front of a bus is inside the bus's box and must
/// stay a car of its own).
fn same_vehicle(a: &Detection, b: &Detection) -> bool {
    let smaller = a.bbox.area().min(b.bbox.area());
    a.bbox.iou(&b.bbox) > 0.7
        || (a.class_id == b.class_id
            && smaller > 0.0
            && a.bbox.intersection(&b.bbox) >= 0.9 * smaller)
}

/// Builds a frame's sightings from detector output and plate readings: every detection is a
/// sighting (vehicles are timed, the rest only hide), and each plate goes to the smallest vehicle
/// whose box holds the plate's centre (one plate per vehicle, the most confident).
pub fn sightings(detections: &[Detection], plates: &[PlateReading]) -> Vec<Sighting> {
    // The detector may box one vehicle twice: as "car" and "truck" (same box), or a whole and a
    // part. Keep the better-scoring vehicle box so that
    // one vehicle is one stay.
    let mut order: Vec<&Detection> = detections.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<&Detection> = Vec::with_capacity(order.len());
    for d in order {
        let twin = is_vehicle(d.class_id)
            && kept
                .iter()
                .any(|k| is_vehicle(k.class_id) && same_vehicle(k, d));
        if !twin {
            kept.push(d);
        }
    }
    let mut out: Vec<Sighting> = kept
        .iter()
        .map(|d| Sighting::new(d.bbox, is_vehicle(d.class_id)))
        .collect();
    let mut best: Vec<Option<f32>> = vec![None; out.len()];
    for p in plates {
        let owner = plate_owner(
            out.iter().map(|s| s.vehicle.then_some(&s.bbox)),
            &p.plate.bbox,
        );
        if let Some(i) = owner
            && best[i].is_none_or(|c| p.confidence > c)
        {
            best[i] = Some(p.confidence);
            if p.doubtful {
                out[i].plate = None;
                out[i].plate_confidence = 0.0;
                out[i].doubtful_plate = if p.candidates.is_empty() {
                    vec![p.text.clone()]
                } else {
                    p.candidates.clone()
                };
            } else {
                out[i].plate = Some(p.text.clone());
                out[i].plate_confidence = p.confidence;
                out[i].doubtful_plate.clear();
            }
        }
    }
    out
}

/// The index of the smallest box holding the centre of `plate` (`None` entries are skipped):
/// the vehicle a plate belongs to when vehicle boxes nest (a car in front of a bus).
pub(crate) fn plate_owner<'a>(
    boxes: impl IntoIterator<Item = Option<&'a BBox>>,
    plate: &BBox,
) -> Option<usize> {
    let (cx, cy) = ((plate.x0 + plate.x1) / 2.0, (plate.y0 + plate.y1) / 2.0);
    boxes
        .into_iter()
        .enumerate()
        .filter_map(|(i, b)| Some((i, b?)))
        .filter(|(_, b)| cx >= b.x0 && cx <= b.x1 && cy >= b.y0 && cy <= b.y1)
        .min_by(|a, b| a.1.area().total_cmp(&b.1.area()))
        .map(|(i, _)| i)
}

/// Upper case, without spaces and the separators people and OCR put in plates.
pub(crate) fn normalize_plate(p: &str) -> String {
    p.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '-' | '.'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// An evidence frame in a saved tracker: the JPEG as base64 (a third larger, not the four
/// times of a JSON number array).
mod saved_frame {
    use super::{Bytes, Region};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Saved {
        at_ms: i64,
        jpeg: String,
        regions: Vec<Region>,
    }

    pub(crate) fn serialize<S: Serializer>(
        f: &(i64, Bytes, Vec<Region>),
        s: S,
    ) -> Result<S::Ok, S::Error> {
        Saved {
            at_ms: f.0,
            jpeg: STANDARD.encode(&f.1),
            regions: f.2.clone(),
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<(i64, Bytes, Vec<Region>), D::Error> {
        let f = Saved::deserialize(d)?;
        let jpeg = STANDARD.decode(f.jpeg).map_err(serde::de::Error::custom)?;
        Ok((f.at_ms, Bytes::from(jpeg), f.regions))
    }
}

/// A tracker's stays as saved at a stop, to be resumed at the next start (see
/// [`DwellTracker::saved`]). Opaque outside this module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedStays {
    stays: Vec<Stay>,
    next_id: u64,
    last_at: Option<i64>,
}

impl SavedStays {
    pub(crate) fn len(&self) -> usize {
        self.stays.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.stays.is_empty()
    }
}

/// The dwell state of one camera.
#[derive(Debug)]
pub struct DwellTracker {
    cfg: ParkingConfig,
    exempt: Vec<String>,
    stays: Vec<Stay>,
    next_id: u64,
    last_at: Option<i64>,
}

impl DwellTracker {
    pub fn new(cfg: ParkingConfig) -> Self {
        let exempt = cfg
            .exempt_plates
            .iter()
            .map(|p| normalize_plate(p))
            .collect();
        DwellTracker {
            cfg,
            exempt,
            stays: Vec::new(),
            next_id: 1,
            last_at: None,
        }
    }

    pub(crate) fn stays(&self) -> Vec<StayView> {
        self.stays
            .iter()
            .map(|s| StayView {
                stay: s.id,
                plate: s.plate.clone(),
                readings: s.votes.iter().map(|v| (v.0.clone(), v.2)).collect(),
                doubtful_plate: s.doubtful.clone(),
                zone: s.zone.clone(),
                first_ms: s.first_ms,
                last_seen_ms: s.last_seen_ms,
                warned: s.warned_at.is_some(),
                raised: s.raised,
                exempt: s.exempt,
            })
            .collect()
    }

    /// The stays being timed, to save at a stop.
    pub(crate) fn saved(&self) -> SavedStays {
        SavedStays {
            stays: self.stays.clone(),
            next_id: self.next_id,
            last_at: self.last_at,
        }
    }

    /// Continues the stays saved at the last stop, dropping those last seen more than
    /// `max_hidden_s` before `now_ms`: past that the tracker itself would have let them go,
    /// and a vehicle seen there now may be another one. Returns how many were resumed.
    pub(crate) fn resume(&mut self, saved: SavedStays, now_ms: i64) -> usize {
        let max_unseen = self.cfg.max_hidden_s as i64 * 1000;
        self.next_id = self.next_id.max(saved.next_id);
        self.last_at = self.last_at.max(saved.last_at);
        let fresh: Vec<Stay> = saved
            .stays
            .into_iter()
            .filter(|s| now_ms.saturating_sub(s.last_seen_ms) <= max_unseen)
            .collect();
        let n = fresh.len();
        self.stays.extend(fresh);
        n
    }

    /// The zones vehicles are timed in.
    pub(crate) fn zones(&self) -> &[Zone] {
        &self.cfg.zones
    }

    /// Replaces the zones (the camera's registry entry changed). Stays already timed keep
    /// their time; a vehicle outside every new zone is no longer seen there and its stay
    /// ends as usual.
    pub(crate) fn set_zones(&mut self, zones: Vec<Zone>) {
        self.cfg.zones = zones;
    }

    fn zone_of(&self, b: &BBox) -> Option<&str> {
        let (x, y) = b.bottom_centre();
        self.cfg
            .zones
            .iter()
            .find(|z| z.contains(x, y))
            .map(|z| z.id.as_str())
    }

    fn best_overlap(
        &self,
        b: &BBox,
        taken: &[bool],
        want: impl Fn(&Stay) -> bool,
    ) -> Option<usize> {
        self.stays
            .iter()
            .enumerate()
            .filter(|(i, s)| !taken[*i] && want(s))
            .map(|(i, s)| (i, s.last_bbox.iou(b)))
            .filter(|(_, iou)| *iou >= self.cfg.match_iou)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Feeds one frame; returns what happened, in order. Frames older than the last one are
    /// ignored.
    pub fn observe(&mut self, frame: &Frame) -> Vec<DwellEvent> {
        let at = frame.at_ms;
        if self.last_at.is_some_and(|last| at < last) {
            tracing::debug!(camera = %self.cfg.camera, at, "frame older than the last one, ignored");
            return Vec::new();
        }
        self.last_at = Some(at);
        let mut events = Vec::new();
        if !is_active(&self.cfg.active_hours, self.cfg.utc_offset_minutes, at) {
            // Outside the rule's hours nothing is timed; a stay starts afresh when they begin.
            self.stays.clear();
            return events;
        }

        // Vehicles in a zone, plated ones first so that plates claim their stays.
        let mut cands: Vec<(usize, String, Option<String>)> = frame
            .sightings
            .iter()
            .enumerate()
            .filter(|(_, s)| s.vehicle)
            .filter_map(|(i, s)| {
                let zone = self.zone_of(&s.bbox)?.to_string();
                let plate = s
                    .plate
                    .as_deref()
                    .map(normalize_plate)
                    .filter(|p| !p.is_empty());
                Some((i, zone, plate))
            })
            .collect();
        cands.sort_by_key(|c| c.2.is_none());

        let mut taken = vec![false; self.stays.len()];
        let mut ended: Vec<usize> = Vec::new();
        let mut merged: Vec<usize> = Vec::new();
        let mut new_stays: Vec<Stay> = Vec::new();
        for (si, zone, plate) in cands {
            let b = frame.sightings[si].bbox;
            let mut matched;
            if let Some(p) = &plate {
                matched = self
                    .stays
                    .iter()
                    .enumerate()
                    .position(|(i, s)| !taken[i] && s.plate.as_ref() == Some(p));
                if matched.is_none() {
                    matched = self.best_overlap(&b, &taken, |s| s.plate.is_none());
                }
                if matched.is_none()
                    && let Some(old) = self.best_overlap(&b, &taken, |s| s.plate.is_some())
                {
                    let theirs = self.stays[old].plate.as_deref().unwrap_or_default();
                    if another_car(theirs, p) {
                        // Another plate where this car stands: that car has left.
                        taken[old] = true;
                        ended.push(old);
                    } else {
                        // The same car read with one character wrong: a vote, not a new stay.
                        tracing::debug!(camera = %self.cfg.camera, stay = self.stays[old].id, plate = %theirs, read = %p, "plate misread on a tracked vehicle");
                        matched = Some(old);
                    }
                }
                if let Some(m) = matched {
                    // Pieces of the same car split by a lost track: keep the oldest.
                    let pieces: Vec<usize> = (0..self.stays.len())
                        .filter(|&j| {
                            j != m
                                && !taken[j]
                                && self.stays[j].plate.is_none()
                                && self.stays[j].last_bbox.iou(&b) >= self.cfg.match_iou
                        })
                        .collect();
                    for j in pieces {
                        taken[j] = true;
                        let piece = self.stays[j].clone();
                        let s = &mut self.stays[m];
                        for d in piece.doubtful.iter().take(1) {
                            if s.doubtful.is_empty() {
                                s.doubtful = vec![d.clone()];
                            }
                        }
                        if piece.first_ms < s.first_ms {
                            s.first_ms = piece.first_ms;
                            s.first_frame = piece.first_frame;
                            s.warned_at = s.warned_at.or(piece.warned_at);
                        }
                        merged.push(j);
                    }
                }
            } else {
                matched = self.best_overlap(&b, &taken, |_| true);
            }
            let sighting = &frame.sightings[si];
            match matched {
                Some(m) => {
                    taken[m] = true;
                    let s = &mut self.stays[m];
                    if let Some(p) = plate {
                        s.vote(p, sighting.plate_confidence);
                    } else if !sighting.doubtful_plate.is_empty() {
                        s.doubtful = sighting.doubtful_plate.clone();
                    }
                    s.zone = zone;
                    s.last_seen_ms = at;
                    s.last_bbox = b;
                    s.last_frame = (at, frame.image.clone(), frame.regions.clone());
                    s.empty_since = None;
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    tracing::debug!(camera = %self.cfg.camera, stay = id, plate = ?plate, %zone, "vehicle stopped in zone");
                    let mut stay = Stay {
                        id,
                        plate: None,
                        votes: Vec::new(),
                        doubtful: sighting.doubtful_plate.clone(),
                        raised_key: None,
                        zone,
                        first_ms: at,
                        last_seen_ms: at,
                        last_bbox: b,
                        first_frame: (at, frame.image.clone(), frame.regions.clone()),
                        last_frame: (at, frame.image.clone(), frame.regions.clone()),
                        empty_since: None,
                        warned_at: None,
                        raised: false,
                        exempt: false,
                    };
                    if let Some(p) = plate {
                        stay.vote(p, sighting.plate_confidence);
                    }
                    new_stays.push(stay);
                }
            }
        }

        // Unseen stays: hidden behind something, or gone?
        let gone_ms = (self.cfg.gone_after_s * 1000) as i64;
        let hidden_ms = (self.cfg.max_hidden_s * 1000) as i64;
        for (i, s) in self.stays.iter_mut().enumerate() {
            if taken[i] {
                continue;
            }
            let covered = frame.sightings.iter().any(|o| {
                s.last_bbox.area() > 0.0
                    && o.bbox.intersection(&s.last_bbox) >= 0.3 * s.last_bbox.area()
            });
            if covered {
                s.empty_since = None;
            } else if s.empty_since.is_none() {
                s.empty_since = Some(at);
            }
            let empty_long = s.empty_since.is_some_and(|t| at - t >= gone_ms);
            if empty_long || at - s.last_seen_ms >= hidden_ms {
                ended.push(i);
            }
        }

        // Remove ended and merged stays (highest index first), reporting real departures.
        let mut remove: Vec<(usize, bool)> = ended
            .into_iter()
            .map(|i| (i, true))
            .chain(merged.into_iter().map(|i| (i, false)))
            .collect();
        remove.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        remove.dedup_by_key(|r| r.0);
        let mut departed = Vec::new();
        for (i, report) in remove {
            let s = self.stays.remove(i);
            if report {
                departed.push(s);
            }
        }
        departed.sort_by_key(|s| s.id);
        for s in departed {
            self.depart(s, &mut events);
        }
        self.stays.extend(new_stays);

        // Timers of the vehicles seen in this frame.
        let persuade_ms = (self.cfg.persuade_after_s * 1000) as i64;
        let limit_ms = (self.cfg.limit_s * 1000) as i64;
        for idx in 0..self.stays.len() {
            let exempt = {
                let s = &self.stays[idx];
                s.plate.as_ref().is_some_and(|p| self.exempt.contains(p))
            };
            let cfg = &self.cfg;
            let s = &mut self.stays[idx];
            s.exempt = exempt;
            if s.last_seen_ms != at || s.exempt {
                continue;
            }
            let dwell = at - s.first_ms;
            // Warn first, always: when frames are sparse (a busy camera host, an occlusion)
            // the first look past the persuasion time may already be past the limit. The
            // driver then still gets the notice and the full grace period after it.
            let grace_ms = limit_ms - persuade_ms;
            if s.warned_at.is_none() && dwell >= persuade_ms {
                s.warned_at = Some(at);
                tracing::info!(camera = %cfg.camera, stay = s.id, plate = ?s.plate, dwell_s = dwell / 1000, "persuasion notice");
                events.push(DwellEvent::Persuade(Notice {
                    site: cfg.site.clone(),
                    camera: cfg.camera.clone(),
                    zone: s.zone.clone(),
                    plate: s.plate.clone(),
                    stay: s.id,
                    first_ms: s.first_ms,
                    at_ms: at,
                    dwell_s: (dwell / 1000) as u64,
                    remaining_s: ((limit_ms - dwell).max(grace_ms) / 1000) as u64,
                }));
            }
            let grace_over = s.warned_at.is_some_and(|w| at - w >= grace_ms);
            if !s.raised && dwell >= limit_ms && grace_over {
                s.raised = true;
                s.raised_key = Some(dedup_key(cfg, s));
                tracing::info!(camera = %cfg.camera, stay = s.id, plate = ?s.plate, dwell_s = dwell / 1000, "parking limit reached");
                events.push(DwellEvent::Clue(ClueSignal::Occurrence(overstay_clue(
                    cfg, s, at,
                ))));
            }
        }
        events
    }

    fn depart(&self, s: Stay, events: &mut Vec<DwellEvent>) {
        if s.exempt {
            return;
        }
        let dwell_s = ((s.last_seen_ms - s.first_ms) / 1000) as u64;
        let warned = s.warned_at.is_some();
        tracing::info!(camera = %self.cfg.camera, stay = s.id, plate = ?s.plate, dwell_s, warned, raised = s.raised, "vehicle left");
        if s.raised {
            events.push(DwellEvent::Clue(ClueSignal::Cleared {
                dedup_key: s
                    .raised_key
                    .clone()
                    .unwrap_or_else(|| dedup_key(&self.cfg, &s)),
                at_ms: s.last_seen_ms,
                note: format!("vehicle left after {} min {} s", dwell_s / 60, dwell_s % 60),
            }));
        }
        events.push(DwellEvent::Left(Departure {
            site: self.cfg.site.clone(),
            camera: self.cfg.camera.clone(),
            zone: s.zone.clone(),
            plate: s.plate.clone(),
            stay: s.id,
            last_seen_ms: s.last_seen_ms,
            dwell_s,
            warned,
            raised: s.raised,
            persuaded: warned && !s.raised,
        }));
    }
}

impl Stay {
    /// Counts a sure reading; the plate becomes the text with the largest summed confidence.
    fn vote(&mut self, text: String, confidence: f32) {
        match self.votes.iter_mut().find(|v| v.0 == text) {
            Some(v) => {
                v.1 += confidence.max(0.01);
                v.2 += 1;
            }
            None => self.votes.push((text, confidence.max(0.01), 1)),
        }
        self.plate = self
            .votes
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|v| v.0.clone());
    }
}

/// Two sure readings where one vehicle stands are two cars when they differ in more than one
/// character (a misread changes one character; a different car's plate differs in several).
pub(crate) fn another_car(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        // One character dropped or added by the reader: still one edit.
        let (short, long) = if a.len() < b.len() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        if long.len() - short.len() > 1 {
            return true;
        }
        let skips = (0..long.len()).any(|k| {
            let mut l = long.clone();
            l.remove(k);
            &l == short
        });
        return !skips;
    }
    a.iter().zip(&b).filter(|(x, y)| x != y).count() > 1
}

fn subject(cfg: &ParkingConfig, s: &Stay) -> Subject {
    Subject {
        site: cfg.site.clone(),
        device: Some(cfg.camera.clone()),
        plate: s.plate.clone(),
        ..Default::default()
    }
}

fn dedup_key(cfg: &ParkingConfig, s: &Stay) -> String {
    let key = ClueEvent::default_key(&cfg.rule, &subject(cfg, s));
    if s.plate.is_some() {
        key
    } else {
        // No plate: one clue per stay.
        format!("{key}/stay-{}-{}", s.first_ms, s.id)
    }
}

fn overstay_clue(cfg: &ParkingConfig, s: &Stay, at: i64) -> ClueEvent {
    let dwell_s = (at - s.first_ms) / 1000;
    let doubt;
    let who = match (&s.plate, s.doubtful.first()) {
        (Some(p), _) => p.as_str(),
        (None, Some(d)) => {
            doubt = format!("Vehicle (plate doubtful: {d}?)");
            doubt.as_str()
        }
        (None, None) => "Vehicle (plate not read)",
    };
    let file = |what: &str, (t, img, regions): &(i64, Bytes, Vec<Region>)| Evidence::File {
        name: format!("{}-{what}-frame-{t}.jpg", cfg.camera),
        content_type: "image/jpeg".into(),
        bytes: img.to_vec(),
        regions: Some(regions.clone()),
    };
    ClueEvent {
        rule: cfg.rule.clone(),
        kind: "parking.overstay".into(),
        level: Level::Medium,
        subject: subject(cfg, s),
        dedup_key: dedup_key(cfg, s),
        at_ms: at,
        title: format!(
            "{who} parked {} min {} s in no-parking zone {} (camera {}){}",
            dwell_s / 60,
            dwell_s % 60,
            s.zone,
            cfg.camera,
            if s.warned_at.is_some() {
                " after a persuasion notice"
            } else {
                ""
            }
        ),
        detail: serde_json::json!({
            "zone": s.zone,
            "stay": s.id,
            // How the plate was read: every sure reading and its count; a doubtful reading is
            // shown with its candidates and is never the clue's subject on its own.
            "plate_readings": s.votes.iter().map(|v| serde_json::json!({"text": v.0, "times": v.2})).collect::<Vec<_>>(),
            "doubtful_plate": if s.doubtful.is_empty() { serde_json::Value::Null } else {
                serde_json::json!({"text": s.doubtful[0], "candidates": s.doubtful[1..]})
            },
            "first_seen_ms": s.first_ms,
            "dwell_s": dwell_s,
            "warned_at_ms": s.warned_at,
            "persuade_after_s": cfg.persuade_after_s,
            "limit_s": cfg.limit_s,
        }),
        evidence: vec![
            file("first", &s.first_frame),
            file("last", &s.last_frame),
            Evidence::Note {
                text: format!(
                    "first seen at {} ms, still there at {} ms; persuasion notice {}",
                    s.first_ms,
                    at,
                    match s.warned_at {
                        Some(t) => format!("at {t} ms"),
                        None => "not sent".into(),
                    }
                ),
            },
        ],
        department: cfg.department.clone(),
        assisting: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::plate::PlateBox;

    const T0: i64 = 1_767_250_000_000;

    fn zone() -> Zone {
        Zone {
            id: "kerb".into(),
            polygon: vec![[0.0, 300.0], [640.0, 300.0], [640.0, 480.0], [0.0, 480.0]],
        }
    }

    fn cfg() -> ParkingConfig {
        ParkingConfig::new("street-1", "cam-7", vec![zone()])
    }

    const CAR: BBox = BBox {
        x0: 100.0,
        y0: 280.0,
        x1: 260.0,
        y1: 400.0,
    };
    const BUS: BBox = BBox {
        x0: 40.0,
        y0: 120.0,
        x1: 460.0,
        y1: 420.0,
    };

    fn car(plate: Option<&str>) -> Sighting {
        let s = Sighting::new(CAR, true);
        match plate {
            Some(p) => s.with_plate(p, 0.95),
            None => s,
        }
    }

    fn frame(t_s: i64, sightings: Vec<Sighting>) -> Frame {
        Frame {
            at_ms: T0 + t_s * 1000,
            image: Bytes::from(format!("jpeg@{t_s}")),
            sightings,
            regions: Vec::new(),
        }
    }

    /// Runs frames every `step` seconds from `from` to `to` (inclusive) built by `f`.
    fn run(
        t: &mut DwellTracker,
        from: i64,
        to: i64,
        step: usize,
        f: impl Fn(i64) -> Vec<Sighting>,
    ) -> Vec<(i64, DwellEvent)> {
        let mut out = Vec::new();
        for s in (from..=to).step_by(step) {
            for e in t.observe(&frame(s, f(s))) {
                out.push((s, e));
            }
        }
        out
    }

    fn occurrences(ev: &[(i64, DwellEvent)]) -> Vec<(i64, &ClueEvent)> {
        ev.iter()
            .filter_map(|(t, e)| match e {
                DwellEvent::Clue(ClueSignal::Occurrence(c)) => Some((*t, c)),
                _ => None,
            })
            .collect()
    }

    fn first_frame(c: &ClueEvent) -> &[u8] {
        match &c.evidence[0] {
            Evidence::File { bytes, .. } => bytes,
            other => panic!("evidence {other:?}"),
        }
    }

    #[test]
    fn plates_go_to_the_smallest_vehicle_around_them() {
        let det = |class_id, label, bbox| Detection {
            class_id,
            label,
            score: 0.9,
            bbox,
        };
        let dets = [
            det(5, "bus", BUS),
            det(2, "car", CAR),
            // The same car also called a truck, with a lower score: dropped.
            Detection {
                score: 0.5,
                ..det(7, "truck", CAR)
            },
            det(
                0,
                "person",
                BBox {
                    x0: 500.0,
                    y0: 300.0,
                    x1: 540.0,
                    y1: 420.0,
                },
            ),
        ];
        let plate = |text: &str, conf, x0: f32| PlateReading {
            text: text.into(),
            confidence: conf,
            plate: PlateBox {
                bbox: BBox {
                    x0,
                    y0: 360.0,
                    x1: x0 + 60.0,
                    y1: 380.0,
                },
                corners: [(0.0, 0.0); 4],
                score: 0.99,
            },
            chars: Vec::new(),
            doubtful: false,
            doubt: String::new(),
            candidates: Vec::new(),
        };
        let s = sightings(
            &dets,
            &[plate("京A11111", 0.7, 150.0), plate("京A22222", 0.9, 140.0)],
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].plate, None);
        assert_eq!(s[1].plate.as_deref(), Some("京A22222"));
        assert!(s[0].vehicle && s[1].vehicle && !s[2].vehicle);
    }

    #[test]
    fn sparse_frames_still_warn_first_and_give_the_full_grace_period() {
        // Frames 300 s apart: the first look past the persuasion time (60 s) is at 300 s, and
        // at 600 s the car is past the limit (480 s) but was warned only 300 s ago.
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 900, 300, |_| vec![car(Some("京A·12345"))]);
        let warns: Vec<i64> = ev
            .iter()
            .filter(|(_, e)| matches!(e, DwellEvent::Persuade(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(warns, vec![300], "{ev:?}");
        let Some((_, DwellEvent::Persuade(n))) = ev
            .iter()
            .find(|(_, e)| matches!(e, DwellEvent::Persuade(_)))
        else {
            panic!("no notice")
        };
        assert_eq!(n.remaining_s, 420, "the whole grace period, not 180 s");
        let occ = occurrences(&ev);
        assert_eq!(
            occ.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![900],
            "{ev:?}"
        );
    }

    #[test]
    fn warns_at_persuasion_time_then_raises_at_limit() {
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 600, 5, |_| vec![car(Some("京A·12345"))]);
        let warns: Vec<i64> = ev
            .iter()
            .filter(|(_, e)| matches!(e, DwellEvent::Persuade(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(warns, vec![60]);
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1, "{ev:?}");
        let (at, c) = occ[0];
        assert_eq!(at, 480);
        assert_eq!(c.kind, "parking.overstay");
        assert_eq!(c.subject.plate.as_deref(), Some("京A12345"));
        assert_eq!(c.dedup_key, "parking-overstay/street-1/cam-7/京A12345");
        assert_eq!(first_frame(c), b"jpeg@0");
        match &c.evidence[1] {
            Evidence::File {
                bytes,
                content_type,
                ..
            } => {
                assert_eq!(bytes, b"jpeg@480");
                assert_eq!(content_type, "image/jpeg");
            }
            other => panic!("evidence {other:?}"),
        }
        assert_eq!(c.detail["dwell_s"], 480);
    }

    #[test]
    fn a_stay_saved_at_a_stop_is_resumed_warned_once_and_raised_from_its_first_sighting() {
        let mut t = DwellTracker::new(cfg());
        let before = run(&mut t, 0, 100, 5, |_| vec![car(Some("京A·12345"))]);
        assert_eq!(before.len(), 1, "warned before the stop: {before:?}");
        // Through JSON, as the state file holds it.
        let saved: SavedStays =
            serde_json::from_slice(&serde_json::to_vec(&t.saved()).unwrap()).unwrap();
        assert_eq!(saved.len(), 1);

        // Back 60 s later (within max_hidden_s): the same stay goes on.
        let mut t = DwellTracker::new(cfg());
        assert_eq!(t.resume(saved.clone(), T0 + 160_000), 1);
        let after = run(&mut t, 160, 600, 5, |_| vec![car(Some("京A·12345"))]);
        assert!(
            !after
                .iter()
                .any(|(_, e)| matches!(e, DwellEvent::Persuade(_))),
            "not warned twice: {after:?}"
        );
        let occ = occurrences(&after);
        assert_eq!(occ.len(), 1, "{after:?}");
        assert_eq!(occ[0].0, 480, "the limit counts from the first sighting");
        assert_eq!(
            first_frame(occ[0].1),
            b"jpeg@0",
            "evidence kept across the stop"
        );
        assert_eq!(
            occ[0].1.detail["stay"], 1,
            "the same stay number (record key)"
        );
        let next = run(&mut t, 605, 605, 5, |_| vec![car(Some("京B·99999"))]);
        assert!(
            next.iter()
                .any(|(_, e)| matches!(e, DwellEvent::Left(d) if d.stay == 1)),
            "{next:?}"
        );

        // Back after longer than max_hidden_s: not resumed, a new stay starts.
        let mut t = DwellTracker::new(cfg());
        assert_eq!(t.resume(saved, T0 + 100_000 + 181_000), 0);
        assert!(t.stays().is_empty());
    }

    #[test]
    fn overstay_evidence_carries_the_personal_data_regions_of_its_frames() {
        let mut t = DwellTracker::new(cfg());
        let region = |x0: f32| Region {
            kind: "plate".into(),
            x0,
            y0: 380.0,
            x1: x0 + 40.0,
            y1: 395.0,
        };
        let mut raised = None;
        for s in (0..=480).step_by(30) {
            let f = Frame {
                regions: vec![region(s as f32)],
                ..frame(s, vec![car(Some("京A12345"))])
            };
            for e in t.observe(&f) {
                if let DwellEvent::Clue(ClueSignal::Occurrence(c)) = e {
                    raised = Some(c);
                }
            }
        }
        let c = raised.expect("raised at the limit");
        let regions = |i: usize| match &c.evidence[i] {
            Evidence::File { regions, .. } => regions.clone(),
            other => panic!("evidence {other:?}"),
        };
        assert_eq!(regions(0), Some(vec![region(0.0)]), "first frame's boxes");
        assert_eq!(regions(1), Some(vec![region(480.0)]), "last frame's boxes");
    }

    #[test]
    fn car_hidden_by_a_bus_keeps_its_dwell() {
        let mut t = DwellTracker::new(cfg());
        // No plate is ever read: the stay is tied together by position alone. A bus stands in
        // front of the car from 200 s to 290 s (longer than gone_after_s).
        let ev = run(&mut t, 0, 500, 10, |s| {
            let bus = Sighting::new(BUS, true).with_plate("沪B99999", 0.95);
            if (200..300).contains(&s) {
                vec![bus]
            } else {
                vec![car(None)]
            }
        });
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1, "{ev:?}");
        assert_eq!(occ[0].0, 480);
        assert_eq!(first_frame(occ[0].1), b"jpeg@0");
        assert!(
            occ[0]
                .1
                .dedup_key
                .starts_with("parking-overstay/street-1/cam-7/stay-")
        );
        // The bus's own stay is a different vehicle; the car never "left".
        assert!(
            !ev.iter()
                .any(|(_, e)| matches!(e, DwellEvent::Left(d) if d.plate.is_none()))
        );
    }

    #[test]
    fn lost_track_is_tied_back_by_the_plate() {
        let mut t = DwellTracker::new(cfg());
        let moved = BBox {
            x0: 140.0,
            y0: 300.0,
            x1: 330.0,
            y1: 430.0,
        };
        let ev = run(&mut t, 0, 500, 10, |s| match s {
            // Plate read at the start, then the detector loses the car for 20 s and finds it
            // again with a box that hardly overlaps the old one (a new track, no plate)...
            0..=100 => vec![car(Some("粤B12345"))],
            110..=120 => vec![],
            130..=200 => vec![Sighting::new(moved, true)],
            // ...until the plate is read again.
            _ => vec![Sighting::new(moved, true).with_plate("粤B12345", 0.95)],
        });
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1, "{ev:?}");
        assert_eq!(occ[0].0, 480);
        assert_eq!(first_frame(occ[0].1), b"jpeg@0");
        assert_eq!(t.stays().len(), 1);
    }

    #[test]
    fn exempt_plate_raises_nothing() {
        let mut c = cfg();
        c.exempt_plates = vec!["京A 0001警".into()];
        let mut t = DwellTracker::new(c);
        let ev = run(&mut t, 0, 900, 10, |s| {
            if s < 800 {
                vec![car(Some("京A0001警"))]
            } else {
                vec![]
            }
        });
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn car_that_leaves_resets() {
        let mut t = DwellTracker::new(cfg());
        // Parks 0..=300 s (warned at 60 s), leaves, comes back at 400 s.
        let ev = run(&mut t, 0, 1000, 10, |s| {
            if s <= 300 || s >= 400 {
                vec![car(None)]
            } else {
                vec![]
            }
        });
        let left: Vec<&Departure> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                DwellEvent::Left(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(left.len(), 1, "{ev:?}");
        assert!(left[0].persuaded && left[0].warned && !left[0].raised);
        assert_eq!(left[0].dwell_s, 300);
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1, "{ev:?}");
        assert_eq!(occ[0].0, 880, "the timer restarted at 400 s");
        assert_eq!(first_frame(occ[0].1), b"jpeg@400");
        let warns = ev
            .iter()
            .filter(|(_, e)| matches!(e, DwellEvent::Persuade(_)))
            .count();
        assert_eq!(warns, 2);
    }

    #[test]
    fn overstayer_leaving_clears_the_clue_and_other_plate_replaces_it() {
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 700, 10, |s| {
            if s < 600 {
                vec![car(Some("苏E11111"))]
            } else {
                vec![car(Some("苏E22222"))]
            }
        });
        assert_eq!(occurrences(&ev).len(), 1);
        let cleared = ev.iter().find_map(|(t, e)| match e {
            DwellEvent::Clue(ClueSignal::Cleared { dedup_key, .. }) => Some((*t, dedup_key)),
            _ => None,
        });
        assert_eq!(
            cleared,
            Some((600, &"parking-overstay/street-1/cam-7/苏E11111".to_string()))
        );
        assert_eq!(t.stays()[0].plate.as_deref(), Some("苏E22222"));
    }

    #[test]
    fn outside_active_hours_nothing_is_timed_and_outside_the_zone_neither() {
        let mut c = cfg();
        // T0 is 2026-01-01 06:46:40 UTC = 14:46:40 in China: outside 20:00-07:00.
        c.active_hours = vec![DailyWindow::try_from("20:00-07:00".to_string()).expect("hours")];
        let mut t = DwellTracker::new(c);
        assert!(run(&mut t, 0, 900, 10, |_| vec![car(None)]).is_empty());
        let mut t = DwellTracker::new(cfg());
        let up = BBox {
            x0: 100.0,
            y0: 100.0,
            x1: 260.0,
            y1: 200.0,
        };
        let ev = run(&mut t, 0, 900, 10, |_| vec![Sighting::new(up, true)]);
        assert!(ev.is_empty());
        assert!(t.stays().is_empty());
    }

    /// A recorded sequence of readings on one parked car, every 10 s for 10 minutes: mostly
    /// read right, once with one character wrong, twice doubtful, sometimes not read.
    fn recorded(s: i64) -> Sighting {
        match s {
            120 => car(Some("苏E1234S")),
            200 | 410 => Sighting {
                doubtful_plate: vec!["苏E12345".into(), "苏E12346".into()],
                ..car(None)
            },
            _ if s % 70 == 0 => car(None),
            _ => car(Some("苏E12345")),
        }
    }

    #[test]
    fn one_misread_frame_neither_splits_a_stay_nor_starts_another() {
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 600, 10, |s| vec![recorded(s)]);
        assert!(
            !ev.iter().any(|(_, e)| matches!(e, DwellEvent::Left(_))),
            "nobody left: {ev:?}"
        );
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].1.subject.plate.as_deref(), Some("苏E12345"));
        assert_eq!(
            occ[0].1.dedup_key,
            "parking-overstay/street-1/cam-7/苏E12345"
        );
        let stays = t.stays();
        assert_eq!(stays.len(), 1);
        assert_eq!(stays[0].first_ms, T0);
        assert!(stays[0].readings.contains(&("苏E1234S".to_string(), 1)));
        let readings = &occ[0].1.detail["plate_readings"];
        assert_eq!(readings.as_array().map(Vec::len), Some(2), "{readings}");
    }

    #[test]
    fn a_misread_first_frame_is_outvoted() {
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 600, 10, |s| {
            vec![car(Some(if s == 0 { "苏E1Z345" } else { "苏E12345" }))]
        });
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].1.subject.plate.as_deref(), Some("苏E12345"));
        assert_eq!(t.stays().len(), 1);
    }

    #[test]
    fn a_doubtful_plate_is_shown_but_never_the_subject() {
        let mut t = DwellTracker::new(cfg());
        let doubtful = || Sighting {
            doubtful_plate: vec!["新A89R95".into(), "浙A89R95".into()],
            ..car(None)
        };
        let ev = run(&mut t, 0, 600, 10, |_| vec![doubtful()]);
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1);
        let c = occ[0].1;
        assert_eq!(c.subject.plate, None);
        assert!(
            c.dedup_key.contains("/stay-"),
            "one clue per stay: {}",
            c.dedup_key
        );
        assert!(c.title.contains("plate doubtful: 新A89R95?"), "{}", c.title);
        assert_eq!(c.detail["doubtful_plate"]["candidates"][0], "浙A89R95");
        assert_eq!(t.stays()[0].plate, None);
    }

    #[test]
    fn a_plate_read_after_the_clue_does_not_move_its_key() {
        let mut t = DwellTracker::new(cfg());
        let ev = run(&mut t, 0, 700, 10, |s| {
            if s < 500 {
                vec![car(None)]
            } else if s < 650 {
                vec![car(Some("粤B12345"))]
            } else {
                vec![]
            }
        });
        let occ = occurrences(&ev);
        assert_eq!(occ.len(), 1);
        let cleared = ev.iter().find_map(|(_, e)| match e {
            DwellEvent::Clue(ClueSignal::Cleared { dedup_key, .. }) => Some(dedup_key.clone()),
            _ => None,
        });
        assert_eq!(cleared.as_deref(), Some(occ[0].1.dedup_key.as_str()));
    }

    #[test]
    fn other_car_versus_misread() {
        assert!(!another_car("苏E12345", "苏E12346"));
        assert!(!another_car("苏E12345", "苏12345"));
        assert!(!another_car("湘DD08808", "DD08808"));
        assert!(another_car("苏E11111", "苏E22222"));
        assert!(another_car("苏E12345", "浙E12346"));
    }
}
