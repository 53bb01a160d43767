//! Per-camera health state: frames, firmware status and the clock in; clue signals out.
//!
//! Each condition (black, frozen, ...) has its own small state machine:
//! absent → pending (seen, not yet for `hold_ms`) → raised (an occurrence is sent) →
//! escalated (still present `not_repaired_ms` after it began: a "fault not repaired"
//! occurrence) → cleared (absent for `recover_ms`: a `Cleared` signal). A pending condition
//! that disappears before `hold_ms` sends nothing. Offline is raised as soon as no frame and no
//! heartbeat arrived for `offline_after_ms` and clears on the next frame or heartbeat.
//!
//! Dedup keys are `camera-health/{site}/{camera}/{kind}` (the conventional
//! [`ClueEvent::default_key`] plus the kind of the condition's problem), so a black picture and
//! a moved camera are two clues, each cleared on its own, while the camera's own "bad picture"
//! report and the black frames the gateway sees are one clue ([`Condition::problem`]).

use super::checks::{self, Features, FrozenStats, MovedStats, Reference, Verdict};
use super::config::{CameraSettings, CamerasConfig};
use super::frame::{self, Frame, FrameError};
use crate::clue::signal::{ClueEvent, ClueSignal, Evidence, Level, Subject};
use crate::config_error::ConfigError;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Rule id of every camera-health clue.
pub(crate) const RULE: &str = "camera-health";

/// The conditions watched per camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Condition {
    Black,
    Overexposed,
    Frozen,
    Covered,
    Sky,
    Moved,
    Offline,
    /// The camera or its firmware says the picture is bad (`image_ok = false`, status 3).
    ImageBad,
}

impl Condition {
    /// The clue kind, e.g. `camera.black`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Condition::Black => "camera.black",
            Condition::Overexposed => "camera.overexposed",
            Condition::Frozen => "camera.frozen",
            Condition::Covered => "camera.covered",
            Condition::Sky => "camera.sky",
            Condition::Moved => "camera.moved",
            Condition::Offline => "camera.offline",
            Condition::ImageBad => "camera.image_bad",
        }
    }

    /// The problem this condition reports, which names its clue (dedup key). A camera's own
    /// "bad picture" report (its video-loss / black-image detector, status 3) and the black
    /// frames the gateway sees are one problem seen twice, so they share the black picture's
    /// clue instead of opening two for one dark camera; the clue clears when both have.
    fn problem(self) -> Condition {
        match self {
            Condition::ImageBad => Condition::Black,
            c => c,
        }
    }

    fn level(self) -> Level {
        match self {
            Condition::Moved | Condition::Overexposed => Level::Low,
            _ => Level::Medium,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Condition::Black => "shows a black picture",
            Condition::Overexposed => "shows an over-exposed (white) picture",
            Condition::Frozen => "sends a frozen picture",
            Condition::Covered => "is covered or out of focus",
            Condition::Sky => "is pointed at the sky or ceiling",
            Condition::Moved => "has been moved or re-aimed",
            Condition::Offline => "is offline",
            Condition::ImageBad => "reports a bad picture",
        }
    }
}

/// Kind of the escalation clue.
pub(crate) const NOT_REPAIRED_KIND: &str = "camera.not_repaired";

/// Status a camera (or its firmware) reports over MQTT (`camera` stream).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CameraStatus {
    pub power_ok: Option<bool>,
    pub online: Option<bool>,
    pub image_ok: Option<bool>,
    /// 0 ok, 1 power lost, 2 heartbeat lost (offline), 3 image bad.
    pub status_code: Option<i64>,
}

impl CameraStatus {
    /// Builds the status from a reading's metrics (`power_ok`, `online`, `image_ok`,
    /// `status_code`); unknown metrics are ignored.
    pub(crate) fn from_metrics<'a>(
        metrics: impl IntoIterator<Item = (&'a str, &'a crate::reading::Value)>,
    ) -> Self {
        let mut s = CameraStatus::default();
        for (name, v) in metrics {
            let b = v.as_f64().map(|x| x != 0.0);
            match name {
                "power_ok" => s.power_ok = b,
                "online" => s.online = b,
                "image_ok" => s.image_ok = b,
                "status_code" => s.status_code = v.as_f64().map(|x| x as i64),
                _ => {}
            }
        }
        s
    }

    /// `Some(reason)` when the status says the camera cannot deliver pictures.
    fn offline_reason(&self) -> Option<&'static str> {
        if self.power_ok == Some(false) || self.status_code == Some(1) {
            Some("power lost")
        } else if self.online == Some(false) || self.status_code == Some(2) {
            Some("heartbeat lost")
        } else {
            None
        }
    }

    fn image_bad(&self) -> bool {
        self.image_ok == Some(false) || self.status_code == Some(3)
    }
}

/// What one frame showed; returned to the uploader and useful for tuning.
#[derive(Debug, Clone, Serialize)]
pub struct FrameReport {
    pub camera: String,
    pub at_ms: i64,
    pub width: u32,
    pub height: u32,
    pub verdict: Verdict,
    pub mean: f32,
    pub p05: f32,
    pub p95: f32,
    pub lap_var: f32,
    pub sharpness: f32,
    pub flat_frac: f32,
    pub bright_flat_frac: f32,
    pub bright_flat_blue_bias: f32,
    pub dhash: String,
    pub frozen: Option<FrozenStats>,
    pub moved: Option<MovedStats>,
    pub has_reference: bool,
    pub decode_us: u64,
    pub checks_us: u64,
}

/// Result of enrolling a reference frame.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceReport {
    pub camera: String,
    pub dhash: String,
    pub sharpness: f32,
    /// The picture itself looks faulty (black, covered...): enrolled anyway, but worth a look.
    pub warnings: Vec<String>,
}

/// A raised (not yet cleared) fault of one camera.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraFault {
    /// The clue kind, e.g. `camera.black`.
    pub kind: &'static str,
    pub since_ms: Option<i64>,
    /// Still present past `not_repaired_ms`.
    pub escalated: bool,
}

/// One camera on the camera wall: faults raised now, when it was last heard of.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraSummary {
    pub camera: String,
    pub site: String,
    pub last_seen_ms: Option<i64>,
    /// Empty: healthy (as far as frames and status tell).
    pub faults: Vec<CameraFault>,
    /// What the camera's own status said when it reported itself unable to send pictures.
    pub reported_offline: Option<&'static str>,
    pub has_frame: bool,
    pub has_reference: bool,
    /// Set when the gateway pulls this camera (`[[cameras.sources]]`): that source's health.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<super::pull::SourceStatus>,
}

#[derive(Debug, Clone, Default)]
struct CondState {
    present_since: Option<i64>,
    absent_since: Option<i64>,
    raised_at: Option<i64>,
    escalated: bool,
}

struct Previous {
    gray: Vec<f32>,
    dhash: u64,
    crc: u32,
    len: usize,
}

struct Cam {
    site: String,
    settings: CameraSettings,
    last_seen_ms: Option<i64>,
    prev: Option<Previous>,
    reference: Option<Reference>,
    last_jpeg: Option<Vec<u8>>,
    reported_offline: Option<&'static str>,
    conds: BTreeMap<Condition, CondState>,
}

/// Health of every camera this gateway has seen.
pub struct CameraHealth {
    config: CamerasConfig,
    /// By (site, camera): device ids are unique only within a site (`v1/{site}/{device}`).
    cams: HashMap<(String, String), Cam>,
}

impl CameraHealth {
    /// Fails when a per-camera override is invalid (the message names the key).
    pub fn new(config: CamerasConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(CameraHealth {
            config,
            cams: HashMap::new(),
        })
    }

    /// Starts watching a camera that has not sent anything yet, so that it goes offline
    /// if it never does.
    pub(crate) fn watch(&mut self, camera_id: &str, site: &str, now_ms: i64) {
        let cam = self.cam(camera_id, site);
        cam.last_seen_ms.get_or_insert(now_ms);
    }

    /// Enrols what the camera should see; later frames are compared with it (moved, blurred).
    pub fn enrol_reference(
        &mut self,
        camera_id: &str,
        site: &str,
        jpeg: &[u8],
    ) -> Result<ReferenceReport, FrameError> {
        self.admit(camera_id, site)?;
        let frame = frame::decode_jpeg(jpeg)?;
        let cam = self.cam(camera_id, site);
        let f = checks::features(&frame, &cam.settings.checks);
        let (v, _) = checks::evaluate(&f, None, None, &cam.settings.checks);
        let mut warnings = Vec::new();
        for (bad, what) in [
            (v.black, "black"),
            (v.overexposed, "over-exposed"),
            (v.sky, "sky or ceiling"),
            (v.covered, "covered or blurred"),
        ] {
            if bad {
                warnings.push(format!("the reference picture itself looks {what}"));
            }
        }
        cam.reference = Some(Reference::from_features(&f));
        // A standing "moved" fault is not dropped here: the next frames match the new
        // reference, so it clears (and the recovery is recorded) after `recover_ms`.
        tracing::info!(
            camera = camera_id,
            site,
            ?warnings,
            "camera reference enrolled"
        );
        Ok(ReferenceReport {
            camera: camera_id.to_string(),
            dhash: format!("{:016x}", f.dhash),
            sharpness: f.sharpness,
            warnings,
        })
    }

    /// One frame from a camera: decode, check, update the state machines.
    pub fn on_frame(
        &mut self,
        camera_id: &str,
        site: &str,
        jpeg: &[u8],
        at_ms: i64,
    ) -> Result<(Vec<ClueSignal>, FrameReport), FrameError> {
        self.admit(camera_id, site)?;
        let t0 = Instant::now();
        let frame = match frame::decode_jpeg(jpeg) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(camera = camera_id, site, error = %e, "camera frame rejected");
                return Err(e);
            }
        };
        let decode_us = t0.elapsed().as_micros() as u64;
        Ok(self.on_decoded(camera_id, site, jpeg, frame, decode_us, at_ms))
    }

    /// One frame already decoded by the caller (who shares the decoded pixels with parking);
    /// `decode_us` is what decoding cost, for the frame report.
    pub(crate) fn on_decoded(
        &mut self,
        camera_id: &str,
        site: &str,
        jpeg: &[u8],
        frame: Frame,
        decode_us: u64,
        at_ms: i64,
    ) -> (Vec<ClueSignal>, FrameReport) {
        let t1 = Instant::now();
        let department = self.config.department.clone();
        let cam = self.cam(camera_id, site);
        let th = cam.settings.checks.clone();
        let f = checks::features(&frame, &th);
        let crc = crc32fast::hash(jpeg);
        let frozen = cam.prev.as_ref().map(|p| {
            let identical = p.crc == crc && p.len == jpeg.len();
            checks::frozen_stats(&p.gray, &frame.gray, p.dhash, f.dhash, identical, &th)
        });
        let (verdict, moved) = checks::evaluate(&f, cam.reference.as_ref(), frozen.as_ref(), &th);
        let checks_us = t1.elapsed().as_micros() as u64;
        cam.prev = Some(Previous {
            gray: frame.gray,
            dhash: f.dhash,
            crc,
            len: jpeg.len(),
        });

        let mut out = Vec::new();
        // Pictures arrive, so the camera is online.
        cam.last_seen_ms = Some(at_ms.max(cam.last_seen_ms.unwrap_or(i64::MIN)));
        cam.last_jpeg = Some(jpeg.to_vec());
        let ctx = Ctx {
            camera: camera_id,
            department: &department,
        };
        cam.reported_offline = None;
        cam.observe(
            &ctx,
            Condition::Offline,
            Some(false),
            at_ms,
            0,
            None,
            &mut out,
        );
        let usable = !(verdict.black || verdict.overexposed || verdict.sky || verdict.covered);
        let figures = figures(&f, frozen.as_ref(), moved.as_ref());
        let hold = cam.settings.hold_ms;
        for (c, present) in [
            (Condition::Black, Some(verdict.black)),
            (Condition::Overexposed, Some(verdict.overexposed)),
            (Condition::Sky, Some(verdict.sky)),
            (Condition::Covered, Some(verdict.covered)),
            // Unknown while the picture is unusable or there is nothing to compare with.
            (
                Condition::Moved,
                moved.filter(|_| usable).map(|_| verdict.moved),
            ),
            (
                Condition::Frozen,
                frozen.filter(|_| usable).map(|_| verdict.frozen),
            ),
        ] {
            let evidence = Some((jpeg, &figures));
            cam.observe(&ctx, c, present, at_ms, hold, evidence, &mut out);
        }
        cam.escalate(&ctx, at_ms, &mut out);

        let report = FrameReport {
            camera: camera_id.to_string(),
            at_ms,
            width: frame.width,
            height: frame.height,
            verdict,
            mean: f.mean,
            p05: f.p05,
            p95: f.p95,
            lap_var: f.lap_var,
            sharpness: f.sharpness,
            flat_frac: f.flat_frac,
            bright_flat_frac: f.bright_flat_frac,
            bright_flat_blue_bias: f.bright_flat_blue_bias,
            dhash: format!("{:016x}", f.dhash),
            frozen,
            moved,
            has_reference: cam.reference.is_some(),
            decode_us,
            checks_us,
        };
        (out, report)
    }

    /// Status reported by the camera or its firmware; any status is also a heartbeat unless
    /// it says the camera is off.
    pub(crate) fn on_status(
        &mut self,
        camera_id: &str,
        site: &str,
        status: &CameraStatus,
        at_ms: i64,
    ) -> Vec<ClueSignal> {
        let department = self.config.department.clone();
        let cam = self.cam(camera_id, site);
        let ctx = Ctx {
            camera: camera_id,
            department: &department,
        };
        let mut out = Vec::new();
        let reason = status.offline_reason();
        cam.reported_offline = reason;
        if reason.is_none() {
            cam.last_seen_ms = Some(at_ms.max(cam.last_seen_ms.unwrap_or(i64::MIN)));
        }
        let note = serde_json::json!({ "reported": status, "reason": reason });
        cam.observe_note(
            &ctx,
            Condition::Offline,
            reason.is_some(),
            at_ms,
            &note,
            &mut out,
        );
        let bad = status.image_bad() && reason.is_none();
        let note = serde_json::json!({ "reported": status });
        cam.observe_note(&ctx, Condition::ImageBad, bad, at_ms, &note, &mut out);
        cam.escalate(&ctx, at_ms, &mut out);
        out
    }

    /// One message of the `camera` readings stream (status metrics), as the gateway's camera
    /// service receives it. Presence is judged on the receive clock, like the tick's: device
    /// times may be replayed from the past or come from a wrong clock. A store-and-forward
    /// replay only proves the camera is reachable now ([`Self::on_replayed_status`]).
    /// Readings of other streams are ignored.
    pub(crate) fn on_readings(&mut self, readings: &[crate::reading::Reading]) -> Vec<ClueSignal> {
        let Some(first) = readings.first() else {
            return Vec::new();
        };
        if first.stream != "camera" {
            return Vec::new();
        }
        let rx = first.received_time_ms;
        if readings.iter().any(|r| r.quality.replayed) {
            return self.on_replayed_status(&first.device, &first.site, rx);
        }
        let status =
            CameraStatus::from_metrics(readings.iter().map(|r| (r.metric.as_str(), &r.value)));
        self.on_status(&first.device, &first.site, &status, rx)
    }

    /// A store-and-forward replay of old statuses arrived: the camera is reachable now (a
    /// heartbeat on the receive clock `rx_ms`), but what it said back then is no verdict on
    /// now, so neither "offline" nor "bad picture" is judged from it.
    pub(crate) fn on_replayed_status(
        &mut self,
        camera_id: &str,
        site: &str,
        rx_ms: i64,
    ) -> Vec<ClueSignal> {
        let department = self.config.department.clone();
        let cam = self.cam(camera_id, site);
        let ctx = Ctx {
            camera: camera_id,
            department: &department,
        };
        let mut out = Vec::new();
        cam.last_seen_ms = Some(rx_ms.max(cam.last_seen_ms.unwrap_or(i64::MIN)));
        if cam.reported_offline.is_none() {
            let note = serde_json::json!({ "reason": "replayed statuses received" });
            cam.observe_note(&ctx, Condition::Offline, false, rx_ms, &note, &mut out);
        }
        out
    }

    /// Time passes: offline detection and escalation of faults that are not repaired.
    pub(crate) fn on_tick(&mut self, now_ms: i64) -> Vec<ClueSignal> {
        let department = self.config.department.clone();
        let mut out = Vec::new();
        let mut ids: Vec<(String, String)> = self.cams.keys().cloned().collect();
        ids.sort();
        for key in ids {
            let Some(cam) = self.cams.get_mut(&key) else {
                continue;
            };
            let ctx = Ctx {
                camera: &key.1,
                department: &department,
            };
            let silent_ms = cam.last_seen_ms.map(|t| now_ms.saturating_sub(t));
            let timed_out = silent_ms.is_some_and(|s| s >= cam.settings.offline_after_ms as i64);
            if timed_out && cam.reported_offline.is_none() {
                let note = serde_json::json!({
                    "reason": "no frame or heartbeat",
                    "silent_ms": silent_ms,
                    "offline_after_ms": cam.settings.offline_after_ms,
                });
                cam.observe_note(&ctx, Condition::Offline, true, now_ms, &note, &mut out);
            }
            cam.escalate(&ctx, now_ms, &mut out);
        }
        out
    }

    /// Every camera's state for the dashboard's camera wall, sorted by site then camera.
    pub(crate) fn snapshot(&self) -> Vec<CameraSummary> {
        let mut out: Vec<CameraSummary> = self
            .cams
            .iter()
            .map(|((_, id), cam)| CameraSummary {
                camera: id.clone(),
                site: cam.site.clone(),
                last_seen_ms: cam.last_seen_ms,
                faults: cam
                    .conds
                    .iter()
                    .filter(|(_, st)| st.raised_at.is_some())
                    .map(|(c, st)| CameraFault {
                        kind: c.kind(),
                        since_ms: st.present_since.or(st.raised_at),
                        escalated: st.escalated,
                    })
                    .collect(),
                reported_offline: cam.reported_offline,
                has_frame: cam.last_jpeg.is_some(),
                has_reference: cam.reference.is_some(),
                source: None,
            })
            .collect();
        out.sort_by(|a, b| (&a.site, &a.camera).cmp(&(&b.site, &b.camera)));
        out
    }

    /// The last frame `camera_id` at `site` sent.
    pub(crate) fn latest_jpeg(&self, site: &str, camera_id: &str) -> Option<Vec<u8>> {
        let cam = self.cams.get(&(site.to_string(), camera_id.to_string()))?;
        cam.last_jpeg.clone()
    }

    /// A known camera, or a new one while its site has fewer than `max_per_site`.
    fn admit(&self, camera_id: &str, site: &str) -> Result<(), FrameError> {
        let max = self.config.max_per_site;
        if self
            .cams
            .contains_key(&(site.to_string(), camera_id.to_string()))
            || self.cams.keys().filter(|(s, _)| s == site).count() < max
        {
            return Ok(());
        }
        tracing::warn!(
            camera = camera_id,
            site,
            max,
            "camera refused: site is at its limit"
        );
        Err(FrameError::TooManyCameras {
            site: site.to_string(),
            max,
        })
    }

    fn cam(&mut self, camera_id: &str, site: &str) -> &mut Cam {
        let config = &self.config;
        self.cams
            .entry((site.to_string(), camera_id.to_string()))
            .or_insert_with(|| Cam {
                site: site.to_string(),
                // Validated in `new`; a failure here cannot happen, defaults are the safe fallback.
                settings: config
                    .settings_for(camera_id)
                    .unwrap_or_else(|_| config.defaults.clone()),
                last_seen_ms: None,
                prev: None,
                reference: None,
                last_jpeg: None,
                reported_offline: None,
                conds: BTreeMap::new(),
            })
    }
}

struct Ctx<'a> {
    camera: &'a str,
    department: &'a str,
}

fn figures(
    f: &Features,
    frozen: Option<&FrozenStats>,
    moved: Option<&MovedStats>,
) -> serde_json::Value {
    serde_json::json!({
        "mean": f.mean, "p05": f.p05, "p95": f.p95, "sharpness": f.sharpness,
        "flat_frac": f.flat_frac, "bright_flat_frac": f.bright_flat_frac,
        "bright_flat_blue_bias": f.bright_flat_blue_bias,
        "frozen": frozen, "moved": moved,
    })
}

impl Cam {
    fn subject(&self, camera: &str) -> Subject {
        Subject {
            site: self.site.clone(),
            device: Some(camera.to_string()),
            ..Subject::default()
        }
    }

    fn key(&self, camera: &str, kind: &str) -> String {
        format!(
            "{}/{kind}",
            ClueEvent::default_key(RULE, &self.subject(camera))
        )
    }

    fn observe_note(
        &mut self,
        ctx: &Ctx,
        c: Condition,
        present: bool,
        at_ms: i64,
        detail: &serde_json::Value,
        out: &mut Vec<ClueSignal>,
    ) {
        let last = self.last_jpeg.take();
        let ev = last.as_deref().map(|j| (j, detail));
        // Firmware and the clock already waited: no extra hold, no recovery delay.
        self.observe_with(ctx, c, Some(present), at_ms, 0, 0, ev, detail, out);
        self.last_jpeg = last;
    }

    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        ctx: &Ctx,
        c: Condition,
        present: Option<bool>,
        at_ms: i64,
        hold_ms: u64,
        evidence: Option<(&[u8], &serde_json::Value)>,
        out: &mut Vec<ClueSignal>,
    ) {
        let recover = if c == Condition::Offline {
            0
        } else {
            self.settings.recover_ms
        };
        let detail = evidence
            .map(|(_, d)| d.clone())
            .unwrap_or(serde_json::Value::Null);
        self.observe_with(
            ctx, c, present, at_ms, hold_ms, recover, evidence, &detail, out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn observe_with(
        &mut self,
        ctx: &Ctx,
        c: Condition,
        present: Option<bool>,
        at_ms: i64,
        hold_ms: u64,
        recover_ms: u64,
        evidence: Option<(&[u8], &serde_json::Value)>,
        detail: &serde_json::Value,
        out: &mut Vec<ClueSignal>,
    ) {
        let Some(present) = present else { return };
        let st = self.conds.entry(c).or_default();
        if present {
            st.absent_since = None;
            let since = *st.present_since.get_or_insert(at_ms);
            if st.raised_at.is_none() && at_ms.saturating_sub(since) >= hold_ms as i64 {
                st.raised_at = Some(at_ms);
                let held_ms = at_ms.saturating_sub(since);
                let ev = self.occurrence(
                    ctx,
                    c,
                    c.kind(),
                    c.level(),
                    at_ms,
                    held_ms,
                    evidence,
                    detail,
                );
                tracing::info!(camera = ctx.camera, site = %self.site, kind = c.kind(), held_ms, "camera fault raised");
                out.push(ClueSignal::Occurrence(ev));
            }
            return;
        }
        if st.raised_at.is_none() {
            st.present_since = None;
            return;
        }
        let since = *st.absent_since.get_or_insert(at_ms);
        if at_ms.saturating_sub(since) < recover_ms as i64 {
            return;
        }
        let began = st.present_since.unwrap_or(at_ms);
        let escalated = st.escalated;
        *st = CondState::default();
        // Another condition of the same problem still raised keeps the shared clue open.
        let problem = c.problem();
        let problem_open = self
            .conds
            .iter()
            .any(|(o, s)| *o != c && o.problem() == problem && s.raised_at.is_some());
        tracing::info!(camera = ctx.camera, site = %self.site, kind = c.kind(), problem_open, "camera fault recovered");
        if !problem_open {
            out.push(ClueSignal::Cleared {
                dedup_key: self.key(ctx.camera, problem.kind()),
                at_ms,
                note: format!(
                    "camera {} no longer {} (fault lasted {} s)",
                    ctx.camera,
                    c.describe(),
                    (at_ms - began) / 1000
                ),
            });
        }
        if escalated && !self.conds.values().any(|s| s.escalated) {
            out.push(ClueSignal::Cleared {
                dedup_key: self.key(ctx.camera, NOT_REPAIRED_KIND),
                at_ms,
                note: format!("camera {}: every escalated fault has recovered", ctx.camera),
            });
        }
    }

    /// Raised faults that began `not_repaired_ms` ago or more escalate once.
    fn escalate(&mut self, ctx: &Ctx, now_ms: i64, out: &mut Vec<ClueSignal>) {
        let limit = self.settings.not_repaired_ms as i64;
        let due: Vec<(Condition, i64)> = self
            .conds
            .iter()
            .filter(|(_, s)| s.raised_at.is_some() && !s.escalated)
            .filter_map(|(c, s)| s.present_since.map(|p| (*c, p)))
            .filter(|(_, p)| now_ms.saturating_sub(*p) >= limit)
            .collect();
        for (c, since) in due {
            if let Some(s) = self.conds.get_mut(&c) {
                s.escalated = true;
            }
            let detail = serde_json::json!({ "fault": c.kind(), "since_ms": since });
            let last = self.last_jpeg.take();
            let ev = last.as_deref().map(|j| (j, &detail));
            let mut e = self.occurrence(
                ctx,
                c,
                NOT_REPAIRED_KIND,
                Level::High,
                now_ms,
                now_ms - since,
                ev,
                &detail,
            );
            e.title = format!(
                "Camera {} {} since {} h: fault not repaired",
                ctx.camera,
                c.describe(),
                (now_ms - since) / 3_600_000
            );
            self.last_jpeg = last;
            tracing::warn!(camera = ctx.camera, site = %self.site, fault = c.kind(), "camera fault not repaired");
            out.push(ClueSignal::Occurrence(e));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn occurrence(
        &self,
        ctx: &Ctx,
        c: Condition,
        kind: &str,
        level: Level,
        at_ms: i64,
        held_ms: i64,
        evidence: Option<(&[u8], &serde_json::Value)>,
        detail: &serde_json::Value,
    ) -> ClueEvent {
        let subject = self.subject(ctx.camera);
        let mut ev = Vec::new();
        if let Some((jpeg, _)) = evidence {
            ev.push(Evidence::File {
                name: format!(
                    "{}-{}-{at_ms}.jpg",
                    ctx.camera,
                    c.kind().trim_start_matches("camera.")
                ),
                content_type: "image/jpeg".into(),
                bytes: jpeg.to_vec(),
                // No detector runs on kitchen frames: unknown, masked whole for lesser roles.
                regions: None,
            });
        }
        ev.push(Evidence::Note {
            text: format!("{} for {} s; figures: {}", c.kind(), held_ms / 1000, detail),
        });
        ClueEvent {
            rule: RULE.into(),
            kind: kind.into(),
            level,
            // A condition's own occurrence goes to its problem's clue; escalations have theirs.
            dedup_key: if kind == c.kind() {
                self.key(ctx.camera, c.problem().kind())
            } else {
                self.key(ctx.camera, kind)
            },
            subject,
            at_ms,
            title: format!("Camera {} {}", ctx.camera, c.describe()),
            detail: serde_json::json!({
                "condition": c.kind(),
                "held_ms": held_ms,
                "hold_ms": self.settings.hold_ms,
                "figures": detail,
            }),
            evidence: ev,
            department: Some(ctx.department.to_string()),
            assisting: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::testutil::{Pic, Rng};

    const T0: i64 = 1_800_000_000_000;
    const S: i64 = 1000;

    fn health() -> CameraHealth {
        let mut c = CamerasConfig::default();
        c.defaults.hold_ms = 60_000;
        c.defaults.recover_ms = 30_000;
        c.defaults.offline_after_ms = 120_000;
        CameraHealth::new(c).expect("config")
    }

    #[test]
    fn a_site_at_its_camera_limit_refuses_new_camera_ids_but_not_known_ones() {
        let c = CamerasConfig {
            max_per_site: 2,
            ..Default::default()
        };
        let mut h = CameraHealth::new(c).expect("config");
        let jpeg = Pic::scene(0).jpeg();
        for cam in ["k1", "k2"] {
            h.on_frame(cam, "r-1", &jpeg, T0).expect("within the limit");
        }
        let e = h
            .on_frame("k3", "r-1", &jpeg, T0)
            .expect_err("third camera");
        assert!(
            matches!(e, FrameError::TooManyCameras { max: 2, .. }),
            "{e}"
        );
        assert!(
            h.enrol_reference("k3", "r-1", &jpeg).is_err(),
            "nor its reference"
        );
        h.on_frame("k1", "r-1", &jpeg, T0 + S)
            .expect("a known camera");
        h.on_frame("k3", "r-2", &jpeg, T0)
            .expect("another site has its own limit");
    }

    fn occurrences(v: &[ClueSignal]) -> Vec<&ClueEvent> {
        v.iter()
            .filter_map(|s| match s {
                ClueSignal::Occurrence(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn cleared(v: &[ClueSignal]) -> Vec<&str> {
        v.iter()
            .filter_map(|s| match s {
                ClueSignal::Cleared { dedup_key, .. } => Some(dedup_key.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Feeds `n` frames 10 s apart from `start`; returns every signal.
    fn feed(h: &mut CameraHealth, pics: &[Vec<u8>], start: i64) -> Vec<(i64, ClueSignal)> {
        let mut out = Vec::new();
        for (i, jpeg) in pics.iter().enumerate() {
            let at = start + i as i64 * 10 * S;
            let (sig, _) = h.on_frame("k1", "r-12", jpeg, at).expect("frame");
            out.extend(sig.into_iter().map(|s| (at, s)));
        }
        out
    }

    fn live(n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| Pic::scene(0).noisy(rng, 2.5).clock(i as u32).jpeg())
            .collect()
    }

    fn covered(n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                Pic::scene(0)
                    .covered()
                    .noisy(rng, 1.0)
                    .clock(i as u32)
                    .jpeg()
            })
            .collect()
    }

    #[test]
    fn covered_camera_is_detected_within_hold_time() {
        let mut rng = Rng(11);
        let mut h = health();
        h.enrol_reference("k1", "r-12", &Pic::scene(0).jpeg())
            .expect("enrol");
        assert!(feed(&mut h, &live(3, &mut rng), T0).is_empty());
        let start = T0 + 30 * S;
        let got = feed(&mut h, &covered(10, &mut rng), start);
        let occ: Vec<_> = got
            .iter()
            .filter_map(|(at, s)| match s {
                ClueSignal::Occurrence(e) => Some((*at, e)),
                _ => None,
            })
            .collect();
        assert_eq!(occ.len(), 1, "{got:?}");
        let (at, e) = occ[0];
        assert_eq!(
            at,
            start + 60 * S,
            "raised exactly when the hold time is reached"
        );
        assert_eq!(e.kind, "camera.covered");
        assert_eq!(e.rule, RULE);
        assert_eq!(e.subject.site, "r-12");
        assert_eq!(e.subject.device.as_deref(), Some("k1"));
        assert_eq!(e.dedup_key, "camera-health/r-12/k1/camera.covered");
        assert_eq!(e.department.as_deref(), Some("market"));
        assert!(
            matches!(&e.evidence[0], Evidence::File { content_type, bytes, .. }
            if content_type == "image/jpeg" && bytes.starts_with(&[0xFF, 0xD8]))
        );
        assert!(matches!(&e.evidence[1], Evidence::Note { .. }));
    }

    #[test]
    fn a_condition_shorter_than_the_hold_time_raises_nothing() {
        let mut rng = Rng(12);
        let mut h = health();
        let mut pics = covered(5, &mut rng); // 40 s of cover
        pics.extend(live(3, &mut rng));
        pics.extend(covered(5, &mut rng));
        assert!(feed(&mut h, &pics, T0).is_empty());
    }

    #[test]
    fn recovery_is_recorded_after_the_recover_time() {
        let mut rng = Rng(13);
        let mut h = health();
        let got = feed(&mut h, &covered(8, &mut rng), T0);
        assert_eq!(
            occurrences(&got.iter().map(|x| x.1.clone()).collect::<Vec<_>>()).len(),
            1
        );
        let back = T0 + 80 * S;
        let got = feed(&mut h, &live(5, &mut rng), back);
        let clears: Vec<_> = got
            .iter()
            .filter(|(_, s)| matches!(s, ClueSignal::Cleared { .. }))
            .collect();
        assert_eq!(clears.len(), 1, "{got:?}");
        assert_eq!(clears[0].0, back + 30 * S);
        let ClueSignal::Cleared { dedup_key, .. } = &clears[0].1 else {
            unreachable!()
        };
        assert_eq!(dedup_key, "camera-health/r-12/k1/camera.covered");
    }

    #[test]
    fn a_fault_not_repaired_in_24_hours_escalates_once() {
        let mut rng = Rng(14);
        let mut h = health();
        feed(&mut h, &covered(8, &mut rng), T0);
        // 23 h without frames: offline, but the cover is not yet 24 h old.
        let got = h.on_tick(T0 + 23 * 3_600_000);
        let kinds: Vec<&str> = occurrences(&got).iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["camera.offline"]);
        // Frames keep coming (so the camera is online) and keep showing the cover.
        let late = T0 + 24 * 3_600_000;
        let got: Vec<ClueSignal> = feed(&mut h, &covered(2, &mut rng), late)
            .into_iter()
            .map(|x| x.1)
            .collect();
        let occ = occurrences(&got);
        assert_eq!(occ.len(), 1, "{got:?}");
        assert_eq!(occ[0].kind, NOT_REPAIRED_KIND);
        assert_eq!(occ[0].level, Level::High);
        assert_eq!(
            occ[0].dedup_key,
            "camera-health/r-12/k1/camera.not_repaired"
        );
        assert!(
            occurrences(&h.on_tick(late + 60 * S)).is_empty(),
            "escalated once"
        );
        // Repaired: both the fault and its escalation are cleared.
        let got: Vec<ClueSignal> = feed(&mut h, &live(5, &mut rng), late + 60 * S)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(
            cleared(&got),
            vec![
                "camera-health/r-12/k1/camera.covered",
                "camera-health/r-12/k1/camera.not_repaired"
            ]
        );
    }

    #[test]
    fn silent_camera_goes_offline_and_comes_back() {
        let mut rng = Rng(15);
        let mut h = health();
        h.watch("k1", "r-12", T0);
        assert!(h.on_tick(T0 + 119 * S).is_empty());
        let got = h.on_tick(T0 + 120 * S);
        let occ = occurrences(&got);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].kind, "camera.offline");
        assert!(h.on_tick(T0 + 300 * S).is_empty(), "raised once");
        let got = feed(&mut h, &live(1, &mut rng), T0 + 400 * S);
        let sigs: Vec<ClueSignal> = got.into_iter().map(|x| x.1).collect();
        assert_eq!(cleared(&sigs), vec!["camera-health/r-12/k1/camera.offline"]);
    }

    #[test]
    fn firmware_status_raises_offline_and_image_bad() {
        let mut h = health();
        let power_lost = CameraStatus {
            power_ok: Some(false),
            online: Some(false),
            image_ok: Some(false),
            status_code: Some(1),
        };
        let got = h.on_status("k1", "r-12", &power_lost, T0);
        let occ = occurrences(&got);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].kind, "camera.offline");
        let bad_image = CameraStatus {
            power_ok: Some(true),
            online: Some(true),
            image_ok: Some(false),
            status_code: Some(3),
        };
        let got = h.on_status("k1", "r-12", &bad_image, T0 + 10 * S);
        assert_eq!(cleared(&got), vec!["camera-health/r-12/k1/camera.offline"]);
        assert_eq!(occurrences(&got)[0].kind, "camera.image_bad");
        let ok = CameraStatus {
            power_ok: Some(true),
            online: Some(true),
            image_ok: Some(true),
            status_code: Some(0),
        };
        let got = h.on_status("k1", "r-12", &ok, T0 + 20 * S);
        // The camera's own bad-picture report goes to the black-picture clue (one problem).
        assert_eq!(cleared(&got), vec!["camera-health/r-12/k1/camera.black"]);
        // Heartbeats keep a camera that sends no frames online.
        assert!(h.on_tick(T0 + 100 * S).is_empty());
    }

    #[test]
    fn a_dark_camera_that_also_reports_a_bad_picture_is_one_clue() {
        let mut rng = Rng(21);
        let mut h = health();
        assert!(feed(&mut h, &live(3, &mut rng), T0).is_empty());
        let bad = CameraStatus {
            power_ok: Some(true),
            online: Some(true),
            image_ok: Some(false),
            status_code: Some(3),
        };
        let dark = T0 + 30 * S;
        let first = h.on_status("k1", "r-12", &bad, dark);
        let black: Vec<Vec<u8>> = (0..9)
            .map(|i| Pic::scene(0).map(|_| [0.0; 3]).clock(i).jpeg())
            .collect();
        let frames: Vec<ClueSignal> = feed(&mut h, &black, dark)
            .into_iter()
            .map(|x| x.1)
            .collect();
        let mut occ = occurrences(&first);
        occ.extend(occurrences(&frames));
        let kinds: Vec<&str> = occ.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["camera.image_bad", "camera.black"]);
        assert!(
            occ.iter()
                .all(|e| e.dedup_key == "camera-health/r-12/k1/camera.black"),
            "both reports go to one clue: {occ:?}"
        );
        // The camera says its picture is fine again while the frames are still black: the
        // problem is not over, so its clue is not cleared.
        let ok = CameraStatus {
            image_ok: Some(true),
            status_code: Some(0),
            ..bad
        };
        assert!(cleared(&h.on_status("k1", "r-12", &ok, dark + 100 * S)).is_empty());
        let back = dark + 110 * S;
        let got: Vec<ClueSignal> = feed(&mut h, &live(5, &mut rng), back)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(cleared(&got), vec!["camera-health/r-12/k1/camera.black"]);
    }

    #[test]
    fn status_from_reading_metrics() {
        use crate::reading::Value;
        let m = [
            ("power_ok", Value::Bool(true)),
            ("status_code", Value::Int(3)),
            ("image_ok", Value::Bool(false)),
        ];
        let s = CameraStatus::from_metrics(m.iter().map(|(k, v)| (*k, v)));
        assert_eq!(s.status_code, Some(3));
        assert!(s.image_bad() && s.offline_reason().is_none());
    }

    #[test]
    fn frozen_stream_is_raised_and_live_static_scene_is_not() {
        let mut rng = Rng(16);
        let mut h = health();
        assert!(feed(&mut h, &live(12, &mut rng), T0).is_empty());
        let one = Pic::scene(0).noisy(&mut rng, 2.5).jpeg();
        let got = feed(&mut h, &vec![one; 9], T0 + 120 * S);
        let sigs: Vec<ClueSignal> = got.into_iter().map(|x| x.1).collect();
        let occ = occurrences(&sigs);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].kind, "camera.frozen");
    }

    #[test]
    fn corrupt_frames_are_errors_and_do_not_count_as_alive() {
        let mut h = health();
        h.watch("k1", "r-12", T0);
        let jpeg = Pic::scene(0).jpeg();
        let e = h
            .on_frame("k1", "r-12", &jpeg[..jpeg.len() / 2], T0 + 60 * S)
            .expect_err("truncated");
        assert!(e.to_string().contains("truncated"));
        assert_eq!(occurrences(&h.on_tick(T0 + 120 * S)).len(), 1);
    }

    #[test]
    fn re_aimed_camera_raises_moved_and_a_new_reference_clears_it() {
        let mut rng = Rng(17);
        let mut h = health();
        h.enrol_reference("k1", "r-12", &Pic::scene(0).jpeg())
            .expect("enrol");
        let aimed: Vec<Vec<u8>> = (0..8)
            .map(|i| Pic::scene(70).noisy(&mut rng, 2.5).clock(i).jpeg())
            .collect();
        let sigs: Vec<ClueSignal> = feed(&mut h, &aimed, T0).into_iter().map(|x| x.1).collect();
        let occ = occurrences(&sigs);
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].kind, "camera.moved");
        assert_eq!(occ[0].level, Level::Low);
        h.enrol_reference("k1", "r-12", &Pic::scene(70).jpeg())
            .expect("enrol");
        let sigs: Vec<ClueSignal> = feed(&mut h, &aimed[..5], T0 + 100 * S)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(cleared(&sigs), vec!["camera-health/r-12/k1/camera.moved"]);
    }

    #[test]
    fn enrolling_a_black_reference_warns() {
        let mut h = health();
        let black = Pic::scene(0).map(|_| [3.0; 3]).jpeg();
        let r = h.enrol_reference("k1", "r-12", &black).expect("enrol");
        assert!(!r.warnings.is_empty());
    }
}
