//! Processing a flight: one worker takes queued flights in order. Per frame (each still, and
//! video frames sampled by ffmpeg at `drone.video_fps` and aligned to the SRT telemetry):
//! guarded decode, tiled COCO detection, geo-referencing, routing to the inspection tasks whose
//! area holds the point (one clue per task, with crop and source frame as evidence), and
//! projection onto each task's ground grid for change detection against the previous flight.

use super::change::{ChangeCandidate, GroundGrid, compare, load_means};
use super::config::DroneConfig;
use super::exif::StillMeta;
use super::flight::{FileState, Finding, FlightStore, Status};
use super::georef::{Camera, Pose, Uncertainty, locate, wgs84_to_enu};
use super::srt::{SrtTrack, TelemetryRecord};
use super::tasks::{Task, TaskStore};
use super::upload::FileKind;
use crate::clue::PoolHandle;
use crate::clue::signal::{ClueEvent, Evidence, GeoPoint, Level, Region, Subject};
use crate::vision::detector::{Detection, Detector, DetectorConfig};
use crate::vision::preprocess::{ImageLimits, decode_image};
use image::RgbImage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Flights waiting to be processed.
pub(crate) const QUEUE: usize = 64;

/// The processing worker's shared parts.
pub(crate) struct Processor {
    pub cfg: DroneConfig,
    pub flights: FlightStore,
    pub tasks: TaskStore,
    pub pool: PoolHandle,
    detector: OnceLock<Result<Arc<Detector>, String>>,
    cancel: CancellationToken,
}

/// A frame ready for analysis.
struct Frame {
    /// `DJI_0001.JPG` or `DJI_0002.MP4@12000ms`.
    label: String,
    time_ms: i64,
    jpeg: Vec<u8>,
    img: RgbImage,
    cam: Camera,
    pose: Result<(Pose, Uncertainty), String>,
}

/// `YYYY:MM:DD HH:MM:SS` or `YYYY-MM-DD HH:MM:SS[.fff]` (local aircraft time) to ms since the
/// epoch, given the clock's offset east of UTC.
pub(crate) fn parse_local_time(s: &str, utc_offset_min: i32) -> Option<i64> {
    let s = s.trim();
    let date = s.get(0..10)?;
    let time = s.get(11..19)?;
    let mut d = date.split([':', '-', '.']);
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let (h, mi, se): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let frac: String = s
        .get(20..)
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .take(3)
        .collect();
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(
        ((days * 86_400 + h * 3600 + mi * 60 + se) * 1000 + ms)
            - i64::from(utc_offset_min) * 60_000,
    )
}

/// Runs `cmd`, killing it after `limit` or when `cancel` fires.
fn run_bounded(
    mut cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<std::process::Output, String> {
    let name = format!("{:?}", cmd.get_program());
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    let started = Instant::now();
    // Drain stderr on a thread so a chatty child never blocks on a full pipe.
    let mut stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            use std::io::Read;
            let _ = e.take(64 << 10).read_to_string(&mut s);
        }
        s
    });
    let mut stdout = child.stdout.take();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = stdout.as_mut() {
            use std::io::Read;
            let _ = o.take(1 << 20).read_to_end(&mut v);
        }
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() > limit || cancel.is_cancelled() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name}: stopped after {:?}", started.elapsed()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    };
    let stderr = err_thread.join().unwrap_or_default();
    let stdout = out_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{name} failed ({status}): {}",
            stderr.lines().last().unwrap_or("")
        ));
    }
    Ok(std::process::Output {
        status,
        stdout,
        stderr: stderr.into_bytes(),
    })
}

/// A box around `b` with some context, as a JPEG.
/// A JPEG of `b` with some context around it, and where the crop starts in the frame.
fn crop_jpeg(img: &RgbImage, b: &crate::vision::nms::BBox) -> Option<(Vec<u8>, f32, f32)> {
    let pad_x = (b.width() * 0.25).max(16.0);
    let pad_y = (b.height() * 0.25).max(16.0);
    let x0 = (b.x0 - pad_x).max(0.0) as u32;
    let y0 = (b.y0 - pad_y).max(0.0) as u32;
    let x1 = ((b.x1 + pad_x) as u32).min(img.width());
    let y1 = ((b.y1 + pad_y) as u32).min(img.height());
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let crop = image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image();
    Some((encode_jpeg(&crop)?, x0 as f32, y0 as f32))
}

/// The personal-data region of a detection for evidence masking (`clue::privacy`), in the
/// coordinates of an image whose origin is at (`ox`, `oy`) of the frame; `None` for classes
/// that are not people or vehicles (the image is then masked whole for lesser roles).
fn personal_region(d: &Detection, ox: f32, oy: f32) -> Option<Region> {
    let kind = match d.label {
        "person" => "person",
        "car" | "truck" | "bus" | "motorcycle" => "vehicle",
        _ => return None,
    };
    Some(Region {
        kind: kind.into(),
        x0: d.bbox.x0 - ox,
        y0: d.bbox.y0 - oy,
        x1: d.bbox.x1 - ox,
        y1: d.bbox.y1 - oy,
    })
}

fn encode_jpeg(img: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(img)
        .ok()?;
    Some(out)
}

/// Heading from the track: the direction of travel around `t_ms`, when the aircraft moved.
fn course_over_ground(track: &SrtTrack, t_ms: u64) -> Option<f64> {
    let a = track.at(t_ms.saturating_sub(1000), 2000)?;
    let b = track.at(t_ms + 1000, 2000)?;
    let (e, n) = wgs84_to_enu(a.lat, a.lon, b.lat, b.lon);
    (e.hypot(n) > 2.0).then(|| e.atan2(n).to_degrees())
}

impl Processor {
    pub(crate) fn new(
        cfg: DroneConfig,
        flights: FlightStore,
        tasks: TaskStore,
        pool: PoolHandle,
        cancel: CancellationToken,
    ) -> Processor {
        Processor {
            cfg,
            flights,
            tasks,
            pool,
            detector: OnceLock::new(),
            cancel,
        }
    }

    /// Starts the worker; returns the queue's sender.
    pub(crate) fn spawn(self: Arc<Self>) -> (mpsc::Sender<u64>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<u64>(QUEUE);
        let handle = tokio::spawn(async move {
            loop {
                let id = tokio::select! {
                    _ = self.cancel.cancelled() => break,
                    id = rx.recv() => match id { Some(id) => id, None => break },
                };
                let p = self.clone();
                let rt = tokio::runtime::Handle::current();
                let r = tokio::task::spawn_blocking(move || p.process(id, &rt)).await;
                if let Err(e) = r {
                    warn!(flight = id, error = %e, "flight processing panicked");
                    self.flights.update(id, true, |f| {
                        f.status = Status::Failed;
                        f.errors.push(format!("processing failed: {e}"));
                    });
                }
            }
        });
        (tx, handle)
    }

    fn detector(&self) -> Result<Arc<Detector>, String> {
        self.detector
            .get_or_init(|| {
                let cfg = DetectorConfig {
                    score_threshold: self.cfg.score_threshold,
                    classes: Vec::new(), // every COCO class: tasks choose
                    ..DetectorConfig::default()
                };
                Detector::load_default(cfg)
                    .map(Arc::new)
                    .map_err(|e| format!("COCO detector: {e}"))
            })
            .clone()
    }

    fn error(&self, id: u64, msg: String) {
        warn!(flight = id, "{msg}");
        self.flights.update(id, false, |f| f.errors.push(msg));
    }

    /// Duration (s) and frame size of a video's first video stream, from its header.
    fn video_probe(&self, path: &Path) -> Result<(f64, u64, u64), String> {
        let mut cmd = Command::new("ffprobe");
        cmd.args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path);
        let out = run_bounded(cmd, Duration::from_secs(60), &self.cancel)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        match (field("duration"), field("width"), field("height")) {
            (Some(d), Some(w), Some(h)) => Ok((d, w as u64, h as u64)),
            _ => Err("no video stream".into()),
        }
    }

    /// The video's duration when it may be sampled: frames larger than the still limit (a
    /// decompression bomb in a video container) are refused from the header.
    fn video_duration_s(&self, id: u64, name: &str, path: &Path) -> Option<f64> {
        match self.video_probe(path) {
            Ok((d, w, h)) if w * h <= self.cfg.max_still_megapixels * 1_000_000 => Some(d),
            Ok((_, w, h)) => {
                self.error(
                    id,
                    format!("{name}: {w}x{h} frames are over the pixel limit; skipped"),
                );
                None
            }
            Err(e) => {
                self.error(id, format!("{name}: {e}; skipped"));
                None
            }
        }
    }

    /// Processes flight `id` to the end (runs on a blocking thread).
    pub(crate) fn process(&self, id: u64, rt: &tokio::runtime::Handle) {
        let Some(flight) = self.flights.get(id) else {
            return;
        };
        let started = Instant::now();
        let dir = self.flights.dir(id);
        self.flights.update(id, true, |f| {
            f.status = Status::Processing;
            f.started_ms = Some(crate::clock::now_ms());
            f.progress = 0.0;
            f.frames_done = 0;
            f.findings.clear();
            f.changes.clear();
            f.detections_total = 0;
        });
        let complete: Vec<&FileState> = flight.files.iter().filter(|f| f.complete).collect();
        for f in flight.files.iter().filter(|f| !f.complete) {
            self.error(
                id,
                format!(
                    "{}: incomplete upload ({} of {} bytes), skipped",
                    f.name,
                    f.received,
                    f.total.map_or("?".into(), |t| t.to_string())
                ),
            );
        }
        let stills: Vec<&FileState> = complete
            .iter()
            .copied()
            .filter(|f| f.kind == FileKind::Still)
            .collect();
        let videos: Vec<&FileState> = complete
            .iter()
            .copied()
            .filter(|f| f.kind == FileKind::Video)
            .collect();
        let mut total = stills.len() as u64;
        let mut playable = Vec::new();
        for v in &videos {
            if let Some(d) = self.video_duration_s(id, &v.name, &dir.join(&v.name)) {
                total += (d * self.cfg.video_fps).ceil() as u64;
                playable.push((*v, d));
            }
        }
        self.flights.update(id, false, |f| f.frames_total = total);
        if total == 0 && playable.is_empty() {
            self.finish(
                id,
                Status::Failed,
                Some("no complete still or video to process"),
            );
            return;
        }
        let detector = match self.detector() {
            Ok(d) => d,
            Err(e) => {
                self.finish(id, Status::Failed, Some(&e));
                return;
            }
        };
        let tasks: Vec<Task> = self
            .tasks
            .list()
            .into_iter()
            .filter(|t| t.site.as_ref().is_none_or(|s| *s == flight.site))
            .collect();
        let mut grids: BTreeMap<u64, GroundGrid> = tasks
            .iter()
            .filter_map(|t| Some((t.id, GroundGrid::new(t.bounds(), self.cfg.change_cell_m)?)))
            .collect();
        let mut ctx = Ctx {
            id,
            site: flight.site.clone(),
            detector: &detector,
            tasks: &tasks,
            grids: &mut grids,
            rt,
        };

        for s in &stills {
            if self.cancel.is_cancelled() {
                break;
            }
            match self.still_frame(&dir, s, flight.created_ms) {
                Ok(frame) => self.analyse(&mut ctx, frame),
                Err(e) => self.error(id, e),
            }
            self.frame_done(id);
        }
        for (v, duration) in playable {
            if self.cancel.is_cancelled() {
                break;
            }
            self.video(&mut ctx, &dir, v, Some(duration), flight.created_ms);
        }
        self.changes(&mut ctx, &dir);
        info!(
            flight = id,
            seconds = started.elapsed().as_secs_f64(),
            "flight processed"
        );
        if self.cancel.is_cancelled() {
            self.finish(id, Status::Failed, Some("gateway stopping"));
        } else {
            self.finish(id, Status::Done, None);
        }
    }

    fn finish(&self, id: u64, status: Status, error: Option<&str>) {
        self.flights.update(id, true, |f| {
            f.status = status;
            if status == Status::Done {
                f.progress = 1.0;
            }
            f.finished_ms = Some(crate::clock::now_ms());
            if let Some(e) = error {
                f.errors.push(e.to_string());
            }
        });
    }

    fn frame_done(&self, id: u64) {
        self.flights.update(id, false, |f| {
            f.frames_done += 1;
            f.frames_total = f.frames_total.max(f.frames_done);
            f.progress = (f.frames_done as f64 / f.frames_total.max(1) as f64).min(0.99);
        });
    }

    fn limits(&self) -> ImageLimits {
        ImageLimits {
            max_bytes: (self.cfg.max_still_mb << 20) as usize,
            max_side: 16_384,
            max_pixels: self.cfg.max_still_megapixels * 1_000_000,
        }
    }

    fn still_frame(&self, dir: &Path, f: &FileState, created_ms: i64) -> Result<Frame, String> {
        let path = dir.join(&f.name);
        let jpeg = std::fs::read(&path).map_err(|e| format!("{}: {e}", f.name))?;
        let img = decode_image(&jpeg, &self.limits()).map_err(|e| format!("{}: {e}", f.name))?;
        let meta = super::exif::read(&jpeg);
        let cam = match meta.focal_35mm {
            Some(f35) => Camera::from_focal_35mm(img.width(), img.height(), f35),
            None => Camera {
                width: img.width(),
                height: img.height(),
                hfov_deg: self.cfg.default_hfov_deg,
            },
        };
        let time_ms = meta
            .taken
            .as_deref()
            .and_then(|t| parse_local_time(t, self.cfg.offset_minutes()))
            .unwrap_or(created_ms);
        let pose = self
            .still_pose(&meta)
            .map_err(|e| format!("{}: {e}", f.name));
        Ok(Frame {
            label: f.name.clone(),
            time_ms,
            jpeg,
            img,
            cam,
            pose,
        })
    }

    fn still_pose(&self, m: &StillMeta) -> Result<(Pose, Uncertainty), String> {
        let (Some(lat), Some(lon)) = (m.lat, m.lon) else {
            return Err("no GPS position in EXIF; detections not geo-referenced".into());
        };
        let Some(rel_alt_m) = m.rel_alt_m else {
            return Err(
                "no relative altitude (DJI XMP RelativeAltitude); detections not geo-referenced"
                    .into(),
            );
        };
        let mut unc = self.cfg.uncertainty();
        let yaw = m.gimbal_yaw_deg.or(m.flight_yaw_deg).unwrap_or_else(|| {
            unc.yaw_deg = 90.0;
            0.0
        });
        let pitch = m.gimbal_pitch_deg.unwrap_or_else(|| {
            unc.pitch_deg = unc.pitch_deg.max(5.0);
            self.cfg.default_pitch_deg
        });
        Ok((
            Pose {
                lat,
                lon,
                rel_alt_m,
                yaw_deg: yaw,
                pitch_deg: pitch,
                roll_deg: m.gimbal_roll_deg.unwrap_or(0.0),
            },
            unc,
        ))
    }

    fn srt_pose(
        &self,
        track: &SrtTrack,
        rec: &TelemetryRecord,
        t_ms: u64,
    ) -> Result<(Pose, Uncertainty), String> {
        let Some(rel_alt_m) = rec.rel_alt_m else {
            return Err("telemetry has no relative altitude".into());
        };
        let mut unc = self.cfg.uncertainty();
        let yaw = match rec.gimbal_yaw_deg {
            Some(y) => y,
            None => match course_over_ground(track, t_ms) {
                Some(c) => {
                    unc.yaw_deg = unc.yaw_deg.max(15.0);
                    c
                }
                None => {
                    unc.yaw_deg = 90.0;
                    0.0
                }
            },
        };
        let pitch = rec.gimbal_pitch_deg.unwrap_or_else(|| {
            unc.pitch_deg = unc.pitch_deg.max(5.0);
            self.cfg.default_pitch_deg
        });
        Ok((
            Pose {
                lat: rec.lat,
                lon: rec.lon,
                rel_alt_m,
                yaw_deg: yaw,
                pitch_deg: pitch,
                roll_deg: rec.gimbal_roll_deg.unwrap_or(0.0),
            },
            unc,
        ))
    }

    /// The SRT sidecar of `video` (same stem, any case), parsed.
    fn sidecar(&self, dir: &Path, video: &str) -> Option<(String, SrtTrack)> {
        let stem = video.rsplit_once('.').map_or(video, |(s, _)| s);
        let name = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .find(|n| {
                n.rsplit_once('.').is_some_and(|(s, ext)| {
                    s.eq_ignore_ascii_case(stem) && ext.eq_ignore_ascii_case("srt")
                })
            })?;
        let bytes = std::fs::read(dir.join(&name)).ok()?;
        Some((name, super::srt::parse(&bytes)))
    }

    fn video(
        &self,
        ctx: &mut Ctx<'_>,
        dir: &Path,
        v: &FileState,
        duration: Option<f64>,
        created_ms: i64,
    ) {
        let id = ctx.id;
        let track = match self.sidecar(dir, &v.name) {
            Some((name, t)) => {
                for i in t.issues.iter().take(50) {
                    self.error(id, format!("{name} line {}: {}", i.line, i.message));
                }
                if t.issues.len() > 50 {
                    self.error(
                        id,
                        format!("{name}: {} more telemetry issues", t.issues.len() - 50),
                    );
                }
                t
            }
            None => {
                self.error(
                    id,
                    format!(
                        "{}: no .SRT telemetry sidecar; frames not geo-referenced",
                        v.name
                    ),
                );
                SrtTrack::default()
            }
        };
        let frames_dir = dir.join(format!("frames-{}", v.name));
        let _ = std::fs::remove_dir_all(&frames_dir);
        if let Err(e) = std::fs::create_dir_all(&frames_dir) {
            self.error(id, format!("{}: {e}", frames_dir.display()));
            return;
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-i"])
            .arg(dir.join(&v.name))
            .args(["-vf", &format!("fps={}", self.cfg.video_fps), "-q:v", "2"])
            .arg(frames_dir.join("%06d.jpg"));
        let limit = Duration::from_secs(self.cfg.ffmpeg_timeout_s);
        if let Err(e) = run_bounded(cmd, limit, &self.cancel) {
            self.error(id, format!("{}: frame sampling: {e}", v.name));
        }
        let mut frames: Vec<PathBuf> = std::fs::read_dir(&frames_dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        frames.sort();
        let expected = duration.map_or(0, |d| (d * self.cfg.video_fps).ceil() as u64);
        let found = frames.len() as u64;
        self.flights.update(id, false, |f| {
            f.frames_total = f.frames_total - expected.min(f.frames_total) + found;
        });
        let first_time = track
            .records
            .first()
            .and_then(|r| r.datetime.as_deref())
            .and_then(|t| parse_local_time(t, self.cfg.offset_minutes()))
            .map(|t| t - track.records.first().map_or(0, |r| r.start_ms as i64));
        for (i, path) in frames.iter().enumerate() {
            if self.cancel.is_cancelled() {
                break;
            }
            // The fps filter's frame n stands for time n / fps.
            let t_ms = (i as f64 * 1000.0 / self.cfg.video_fps).round() as u64;
            let label = format!("{}@{t_ms}ms", v.name);
            let frame = std::fs::read(path)
                .map_err(|e| format!("{label}: {e}"))
                .and_then(|jpeg| {
                    let img =
                        decode_image(&jpeg, &self.limits()).map_err(|e| format!("{label}: {e}"))?;
                    let cam = Camera {
                        width: img.width(),
                        height: img.height(),
                        hfov_deg: self.cfg.default_hfov_deg,
                    };
                    let pose = match track.at(t_ms, 2000) {
                        Some(rec) => self.srt_pose(&track, &rec, t_ms),
                        None => Err("no telemetry at this time".into()),
                    }
                    .map_err(|e| format!("{label}: {e}"));
                    Ok(Frame {
                        label: label.clone(),
                        time_ms: first_time.map_or(created_ms + t_ms as i64, |s| s + t_ms as i64),
                        jpeg,
                        img,
                        cam,
                        pose,
                    })
                });
            match frame {
                Ok(f) => self.analyse(ctx, f),
                Err(e) => self.error(id, e),
            }
            let _ = std::fs::remove_file(path);
            self.frame_done(id);
        }
        let _ = std::fs::remove_dir_all(&frames_dir);
    }

    fn analyse(&self, ctx: &mut Ctx<'_>, frame: Frame) {
        let id = ctx.id;
        let dets = match ctx.detector.detect_tiled(
            &frame.img,
            self.cfg.tile,
            self.cfg.tile_overlap,
            self.cfg.tile_batch,
        ) {
            Ok(d) => d,
            Err(e) => {
                self.error(id, format!("{}: detection: {e}", frame.label));
                return;
            }
        };
        let (pose, unc) = match &frame.pose {
            Ok(p) => *p,
            Err(e) => {
                self.error(id, e.clone());
                self.flights
                    .update(id, false, |f| f.detections_total += dets.len() as u64);
                return;
            }
        };
        for grid in ctx.grids.values_mut() {
            grid.add_frame(&frame.img, &frame.cam, &pose);
        }
        let mut findings = Vec::new();
        for d in &dets {
            // Straight down, an object's centre is where it stands; obliquely, its bottom edge.
            let (u, v) = if pose.pitch_deg < -60.0 {
                (
                    (d.bbox.x0 + d.bbox.x1) as f64 / 2.0,
                    (d.bbox.y0 + d.bbox.y1) as f64 / 2.0,
                )
            } else {
                let (x, y) = d.bbox.bottom_centre();
                (x as f64, y as f64)
            };
            let Some(g) = locate(&frame.cam, &pose, &unc, u, v) else {
                continue;
            };
            let matching: Vec<&Task> = ctx
                .tasks
                .iter()
                .filter(|t| t.wants(d.label) && t.contains(g.lat, g.lon))
                .collect();
            if matching.is_empty() {
                findings.push(self.finding(d, &frame, g.lat, g.lon, g.error_m, None, None));
            }
            for t in matching {
                let clue_id = self.raise(ctx, t, d, &frame, &g);
                findings.push(self.finding(
                    d,
                    &frame,
                    g.lat,
                    g.lon,
                    g.error_m,
                    Some(t.id),
                    clue_id,
                ));
            }
        }
        self.flights.update(id, false, |f| {
            f.detections_total += dets.len() as u64;
            for mut x in findings {
                x.id = f.findings.len() as u64 + 1;
                f.findings.push(x);
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        d: &Detection,
        frame: &Frame,
        lat: f64,
        lon: f64,
        error_m: f64,
        task_id: Option<u64>,
        clue_id: Option<i64>,
    ) -> Finding {
        Finding {
            id: 0,
            task_id,
            class: d.label.to_string(),
            confidence: d.score,
            lat,
            lon,
            error_m: (error_m * 100.0).round() / 100.0,
            time_ms: frame.time_ms,
            frame: frame.label.clone(),
            clue_id,
            bbox: [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1],
        }
    }

    /// One clue occurrence for task `t`; the dedup key is the task, class and a ~11 m cell, so
    /// the same parked truck seen in many frames (or the next flight) is one clue.
    fn raise(
        &self,
        ctx: &Ctx<'_>,
        t: &Task,
        d: &Detection,
        frame: &Frame,
        g: &super::georef::GroundPoint,
    ) -> Option<i64> {
        let rule = format!("drone-task-{}", t.id);
        let cell = format!("{:.4},{:.4}", g.lat, g.lon);
        let mut evidence = Vec::new();
        if let Some((crop, ox, oy)) = crop_jpeg(&frame.img, &d.bbox) {
            evidence.push(Evidence::File {
                name: format!("crop-{}-{}.jpg", d.label, frame.label),
                content_type: "image/jpeg".into(),
                bytes: crop,
                regions: personal_region(d, ox, oy).map(|r| vec![r]),
            });
        }
        // Other people and vehicles in the frame are not listed here: without regions the
        // whole frame is masked for roles that may not see personal data.
        evidence.push(Evidence::File {
            name: format!("frame-{}.jpg", frame.label),
            content_type: "image/jpeg".into(),
            bytes: frame.jpeg.clone(),
            regions: None,
        });
        let ev = ClueEvent {
            rule: rule.clone(),
            kind: "drone.finding".into(),
            level: Level::Low,
            subject: Subject {
                site: ctx.site.clone(),
                device: Some(format!("flight-{}", ctx.id)),
                plate: None,
                location: Some(GeoPoint {
                    lat: g.lat,
                    lon: g.lon,
                }),
                ..Default::default()
            },
            dedup_key: format!("{rule}/{}/{cell}", d.label),
            at_ms: frame.time_ms,
            title: format!(
                "{} in task area `{}` (flight {}, {}), ±{:.0} m",
                d.label, t.name, ctx.id, frame.label, g.error_m
            ),
            detail: serde_json::json!({
                "task_id": t.id, "task": t.name, "contact": t.contact,
                "flight_id": ctx.id, "frame": frame.label, "class": d.label,
                "confidence": d.score, "lat": g.lat, "lon": g.lon, "error_m": g.error_m,
                "bbox": [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1],
            }),
            evidence,
            department: Some(t.department.clone()),
            assisting: Vec::new(),
        };
        match ctx.rt.block_on(self.pool.ingest(ev)) {
            Ok(change) => Some(change.clue.id),
            Err(e) => {
                self.error(ctx.id, format!("clue for task {}: {e}", t.id));
                None
            }
        }
    }

    /// Saves this flight's ground grids and compares each with the latest earlier flight that
    /// has one for the same task.
    fn changes(&self, ctx: &mut Ctx<'_>, dir: &Path) {
        let earlier: Vec<u64> = self
            .flights
            .list()
            .into_iter()
            .filter(|f| f.id < ctx.id && f.status == Status::Done)
            .map(|f| f.id)
            .rev()
            .collect();
        let mut found = Vec::new();
        for (task_id, grid) in ctx.grids.iter() {
            if grid.seen() == 0 {
                continue;
            }
            let name = format!("grid-task-{task_id}.bin");
            if let Err(e) = grid.save(&dir.join(&name)) {
                self.error(ctx.id, format!("{name}: {e}"));
                continue;
            }
            let Some((prev_id, before)) = earlier
                .iter()
                .find_map(|p| load_means(&self.flights.dir(*p).join(&name), grid).map(|m| (*p, m)))
            else {
                continue;
            };
            let Some(task) = ctx.tasks.iter().find(|t| t.id == *task_id) else {
                continue;
            };
            let regions = compare(
                grid,
                &before,
                &grid.means(),
                self.cfg.change_block,
                self.cfg.change_threshold,
                self.cfg.change_min_area_m2,
            );
            for r in regions.into_iter().take(50) {
                let (lat, lon) = grid.to_wgs84(r.east_m, r.north_m);
                if !task.contains(lat, lon) {
                    continue;
                }
                let ev = ClueEvent {
                    rule: format!("drone-change-{task_id}"),
                    kind: "drone.change_candidate".into(),
                    level: Level::Low,
                    subject: Subject {
                        site: ctx.site.clone(),
                        device: Some(format!("flight-{}", ctx.id)),
                        plate: None,
                        location: Some(GeoPoint { lat, lon }),
                        ..Default::default()
                    },
                    dedup_key: format!("drone-change-{task_id}/{lat:.4},{lon:.4}"),
                    at_ms: crate::clock::now_ms(),
                    title: format!(
                        "Candidate change of {:.0} m² in `{}` since flight {prev_id} (for review)",
                        r.area_m2, task.name
                    ),
                    detail: serde_json::json!({
                        "task_id": task_id, "flight_id": ctx.id, "previous_flight": prev_id,
                        "lat": lat, "lon": lon, "area_m2": r.area_m2, "score": r.score,
                        "status": "candidate",
                    }),
                    evidence: vec![Evidence::Note {
                        text: "Ground brightness differs from the previous flight over this \
                               region after geo-aligning both; a candidate for a person to \
                               check, not a finding."
                            .into(),
                    }],
                    department: Some(task.department.clone()),
                    assisting: Vec::new(),
                };
                let clue_id = match ctx.rt.block_on(self.pool.ingest(ev)) {
                    Ok(c) => Some(c.clue.id),
                    Err(e) => {
                        self.error(ctx.id, format!("change clue: {e}"));
                        None
                    }
                };
                found.push(ChangeCandidate {
                    task_id: *task_id,
                    previous_flight: prev_id,
                    lat,
                    lon,
                    area_m2: r.area_m2,
                    score: r.score,
                    status: "candidate".into(),
                    clue_id,
                });
            }
        }
        self.flights.update(ctx.id, false, |f| f.changes = found);
    }
}

/// Per-flight state while processing.
struct Ctx<'a> {
    id: u64,
    site: String,
    detector: &'a Detector,
    tasks: &'a [Task],
    grids: &'a mut BTreeMap<u64, GroundGrid>,
    rt: &'a tokio::runtime::Handle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_become_utc_ms() {
        assert_eq!(parse_local_time("1970:01:01 00:00:00", 0), Some(0));
        assert_eq!(
            parse_local_time("2023-05-12 14:32:10.123", 0),
            Some(1_683_901_930_123)
        );
        // 08:00 in UTC+8 is midnight UTC.
        assert_eq!(
            parse_local_time("2024:02:29 08:00:00", 480),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_local_time("2024:13:01 00:00:00", 0), None);
        assert_eq!(parse_local_time("garbage", 0), None);
    }
}
