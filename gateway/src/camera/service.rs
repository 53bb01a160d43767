//! Camera health inside the running gateway: frames and references from the HTTP API, status
//! from the `camera` readings stream, and a periodic tick for offline and not-repaired faults.
//! Every resulting signal goes to the clue pool. Frames of cameras with a parking rule are also
//! run through the parking enforcement ([`super::parking`]), frames of cameras with shop-front
//! zones through [`super::shopfront`], frames of road cameras through [`super::muck`].

use super::frame;
use super::muck::{MuckReport, MuckSection, MuckTrucks};
use super::parking::{Parking, ParkingReport, ParkingSection};
use super::pull::SourceBoard;
use super::rate::UploadRate;
use super::shopfront::{Shopfront, ShopfrontReport, ShopfrontSection};
use super::{CameraHealth, CamerasConfig, FrameError, FrameReport, ReferenceReport};
use crate::clue::signal::{ClueSender, ClueSignal};
use crate::metrics::Metrics;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often offline detection and escalation run.
const TICK: Duration = Duration::from_secs(5);

/// Shared by the API handlers and the background task.
#[derive(Clone)]
pub(crate) struct CameraService {
    health: Arc<Mutex<CameraHealth>>,
    /// Absent when no camera has a parking rule (or `parking.enabled = false`).
    parking: Option<Arc<Parking>>,
    /// Absent when no camera has shop-front zones (or `shopfront.enabled = false`).
    shopfront: Option<Arc<Shopfront>>,
    /// Absent when no camera checks muck trucks.
    muck: Option<Arc<MuckTrucks>>,
    /// Records warned stays and delivers their notices (absent: notices are only logged).
    notices: Option<crate::notice::Notices>,
    clue_tx: ClueSender,
    /// Health of the pulled cameras, set once by [`CameraService::pull_sources`].
    sources: Arc<std::sync::OnceLock<Arc<SourceBoard>>>,
    /// Uploads per camera ([`super::rate`]).
    rate: Arc<Mutex<UploadRate>>,
    /// `cameras.require_device_binding`: device tokens must name their camera.
    require_device_binding: bool,
}

/// The answer to a frame upload: the health report, plus `parking` when parking ran.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FrameResponse {
    #[serde(flatten)]
    pub health: FrameReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parking: Option<ParkingReport>,
    /// Present when the camera has shop-front zones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shopfront: Option<ShopfrontReport>,
    /// Present when the camera checks muck trucks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muck_trucks: Option<MuckReport>,
}

impl CameraService {
    pub(crate) fn new(
        cfg: CamerasConfig,
        clue_tx: ClueSender,
    ) -> Result<Self, crate::config_error::ConfigError> {
        let rate = UploadRate::new(cfg.max_frames_per_minute, cfg.frame_burst);
        Ok(CameraService {
            require_device_binding: cfg.require_device_binding,
            rate: Arc::new(Mutex::new(rate)),
            health: Arc::new(Mutex::new(CameraHealth::new(cfg)?)),
            parking: None,
            shopfront: None,
            muck: None,
            notices: None,
            clue_tx,
            sources: Arc::default(),
        })
    }

    /// Warned stays are recorded and their notices delivered by `notices`.
    pub(crate) fn with_notices(mut self, notices: crate::notice::Notices) -> Self {
        self.notices = Some(notices);
        self
    }

    /// Adds parking enforcement for the cameras of `section` (a no-op when it lists none).
    pub(crate) fn with_parking(mut self, section: &ParkingSection, metrics: Arc<Metrics>) -> Self {
        self.parking = Parking::new(section, metrics).map(Arc::new);
        self
    }

    /// Adds shop-front enforcement for the cameras of `section` (a no-op when it lists none).
    pub(crate) fn with_shopfront(
        mut self,
        section: &ShopfrontSection,
        metrics: Arc<Metrics>,
    ) -> Self {
        self.shopfront = Shopfront::new(section, metrics).map(Arc::new);
        self
    }

    /// Adds muck-truck checks for the cameras of `section` (a no-op when it lists none).
    pub(crate) fn with_muck_trucks(mut self, section: &MuckSection, metrics: Arc<Metrics>) -> Self {
        self.muck = MuckTrucks::new(section, metrics).map(Arc::new);
        self
    }

    /// The muck-truck permits (for their routes and the periodic re-read); none when no
    /// camera checks muck trucks.
    pub(crate) fn muck_permits(&self) -> Option<Arc<crate::camera::permits::MuckPermits>> {
        self.muck.as_ref().map(|m| m.permits())
    }

    /// Continues the parking stays saved at the last stop (see `parking::state`); logs what
    /// it did, never fails the start.
    pub(crate) fn resume_parking(&self, path: &std::path::Path) {
        let Some(p) = &self.parking else { return };
        match p.resume(path, crate::clock::now_ms()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(stays = n, "parking stays resumed from the last stop"),
            Err(e) => {
                warn!(error = %e, "saved parking stays not resumed; their records stay pending")
            }
        }
    }

    /// Continues the shop-front zones saved at the last stop (see `shopfront::state`); logs
    /// what it did, never fails the start.
    pub(crate) fn resume_shopfront(&self, path: &std::path::Path) {
        let Some(s) = &self.shopfront else { return };
        match s.resume(path, crate::clock::now_ms()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(objects = n, "shop-front zones resumed from the last stop"),
            Err(e) => {
                warn!(error = %e, "saved shop-front zones not resumed; their notices stay pending")
            }
        }
    }

    /// The shop-front rules, to save their zones at the stop ([`save_shopfront`]).
    pub(crate) fn shopfront(&self) -> Option<Arc<Shopfront>> {
        self.shopfront.clone()
    }

    /// The parking rules, to save their stays at the stop ([`save_parking`](save_parking)) without holding
    /// this service (whose clue sender must be dropped for the pool to stop).
    pub(crate) fn parking(&self) -> Option<Arc<Parking>> {
        self.parking.clone()
    }

    /// Parking takes each camera's zones from `source` (its registry entry) where it has any.
    pub(crate) fn parking_zones_from(&self, source: crate::camera::parking::ZoneSource) {
        if let Some(p) = &self.parking {
            p.zones_from(source);
        }
    }

    /// Whether device tokens without a camera binding are refused (`cameras.require_device_binding`).
    pub(crate) fn requires_device_binding(&self) -> bool {
        self.require_device_binding
    }

    /// Takes one upload of `camera` from its rate: `Err(seconds)` to wait (answer 429).
    pub(crate) fn admit_upload(&self, site: &str, camera: &str, now_ms: i64) -> Result<(), u64> {
        let mut r = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        r.admit(site, camera, now_ms)
    }

    fn with<R>(health: &Mutex<CameraHealth>, f: impl FnOnce(&mut CameraHealth) -> R) -> R {
        // Plain state; a panic elsewhere does not make it unusable.
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut h)
    }

    async fn forward(&self, signals: Vec<ClueSignal>) {
        for s in signals {
            if self.clue_tx.send(s).await.is_err() {
                warn!("clue pool closed; camera signal dropped during shutdown");
                return;
            }
        }
    }

    /// One uploaded frame (JPEG): health checks, then parking for cameras with a parking rule.
    /// Both run off the async threads.
    pub(crate) async fn frame(
        &self,
        camera: String,
        site: String,
        jpeg: bytes::Bytes,
        at_ms: i64,
    ) -> Result<FrameResponse, FrameError> {
        let health = self.health.clone();
        let parking = self.parking.clone();
        let shopfront = self.shopfront.clone();
        let muck = self.muck.clone();
        let (mut signals, report, parking, shopfront, muck) =
            tokio::task::spawn_blocking(move || {
                let parking = parking.filter(|p| p.analyses(&site, &camera));
                let shopfront = shopfront.filter(|s| s.analyses(&site, &camera));
                let muck = muck.filter(|m| m.analyses(&site, &camera));
                if parking.is_none() && shopfront.is_none() && muck.is_none() {
                    let (signals, report) =
                        Self::with(&health, |h| h.on_frame(&camera, &site, &jpeg, at_ms))?;
                    return Ok::<_, FrameError>((signals, report, None, None, None));
                }
                // Decoded once, shared by health and parking (decoding dominates health's cost).
                let t0 = std::time::Instant::now();
                let rgb = frame::decode_rgb(&jpeg).inspect_err(|e| {
                    tracing::warn!(%camera, %site, error = %e, "camera frame rejected");
                })?;
                let working = frame::Frame::of(&rgb);
                let decode_us = t0.elapsed().as_micros() as u64;
                let (signals, report) = Self::with(&health, |h| {
                    h.on_decoded(&camera, &site, &jpeg, working, decode_us, at_ms)
                });
                let parking = parking.and_then(|p| p.on_image(&site, &camera, &jpeg, &rgb, at_ms));
                let shopfront =
                    shopfront.and_then(|s| s.on_image(&site, &camera, &jpeg, &rgb, at_ms));
                let muck = muck.and_then(|m| m.on_image(&site, &camera, &jpeg, &rgb, at_ms));
                Ok((signals, report, parking, shopfront, muck))
            })
            .await
            .map_err(|e| FrameError::Decode(format!("frame task failed: {e}")))??;
        // Stays before the clues: a stay's record exists before its outcome can move.
        let parking = match parking {
            Some(out) => Some(
                self.take(&mut signals, out.signals, out.stays, out.report)
                    .await,
            ),
            None => None,
        };
        let shopfront = match shopfront {
            Some(out) => Some(
                self.take(&mut signals, out.signals, out.stays, out.report)
                    .await,
            ),
            None => None,
        };
        let muck_trucks = muck.map(|out| {
            signals.extend(out.signals);
            out.report
        });
        self.forward(signals).await;
        Ok(FrameResponse {
            health: report,
            parking,
            shopfront,
            muck_trucks,
        })
    }

    /// Records and queues the stay events of one analysis, adds its clue signals to `signals`
    /// and gives back its report.
    async fn take<R>(
        &self,
        signals: &mut Vec<ClueSignal>,
        found: Vec<ClueSignal>,
        stays: Vec<crate::clue::stays::StayEvent>,
        report: R,
    ) -> R {
        signals.extend(found);
        if let Some(n) = &self.notices {
            n.apply(stays).await;
        }
        report
    }

    /// Enrols the view a camera should keep (for the moved / re-aimed check).
    pub(crate) async fn reference(
        &self,
        camera: String,
        site: String,
        jpeg: bytes::Bytes,
    ) -> Result<ReferenceReport, FrameError> {
        let health = self.health.clone();
        tokio::task::spawn_blocking(move || {
            Self::with(&health, |h| h.enrol_reference(&camera, &site, &jpeg))
        })
        .await
        .map_err(|e| FrameError::Decode(format!("reference task failed: {e}")))?
    }

    /// Every camera's health state (the dashboard's camera wall), with its source's health
    /// when the gateway pulls it.
    pub(crate) fn snapshot(&self) -> Vec<super::CameraSummary> {
        let mut cams = Self::with(&self.health, |h| h.snapshot());
        if let Some(board) = self.sources.get() {
            for c in &mut cams {
                c.source = board.get(&c.site, &c.camera);
            }
        }
        cams
    }

    /// Starts watching `camera` before its first frame, so that it goes offline if none comes.
    pub(crate) fn watch(&self, camera: &str, site: &str, now_ms: i64) {
        Self::with(&self.health, |h| h.watch(camera, site, now_ms));
    }

    /// Starts pulling the cameras of `cfg.sources` into [`CameraService::frame`] (one task
    /// each; they stop when `cancel` fires). Call once.
    pub(crate) fn pull_sources(
        &self,
        cfg: &CamerasConfig,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let board = self
            .sources
            .get_or_init(|| Arc::new(SourceBoard::new(metrics)))
            .clone();
        super::pull::spawn_all(
            &cfg.sources,
            self.clone(),
            board,
            crate::backoff::Backoff::from_millis(cfg.source_retry_min_ms, cfg.source_retry_max_ms)
                .with_jitter(crate::backoff::Jitter::Full),
            &cfg.ffmpeg,
            cancel,
        )
    }

    /// The last frame of `camera` at `site`.
    pub(crate) fn latest_jpeg(&self, site: &str, camera: &str) -> Option<Vec<u8>> {
        Self::with(&self.health, |h| h.latest_jpeg(site, camera))
    }

    /// Consumes the readings fan-out (camera status) and ticks until the readings stop or
    /// `cancel` fires.
    pub(crate) async fn run(
        self,
        mut rx: mpsc::Receiver<crate::pipeline::ReadingsBatch>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let now = crate::clock::now_ms();
                    let signals = Self::with(&self.health, |h| h.on_tick(now));
                    self.forward(signals).await;
                }
                msg = rx.recv() => {
                    let Some(batch) = msg else { break };
                    // Only camera status messages concern the health checks: the rest of a
                    // batch is skipped without taking the lock.
                    let mut signals = Vec::new();
                    for readings in batch.iter().filter(|r| r.first().is_some_and(|f| f.stream == "camera")) {
                        signals.extend(Self::with(&self.health, |h| h.on_readings(readings)));
                    }
                    self.forward(signals).await;
                }
            }
        }
    }
}

/// Saves the parking stays being timed, for the next start (call once frames stopped).
pub(crate) fn save_parking(parking: Option<&Parking>, path: &std::path::Path) {
    let Some(p) = parking else { return };
    match p.save(path) {
        Ok(0) => {}
        Ok(n) => tracing::info!(stays = n, path = %path.display(), "parking stays saved"),
        Err(e) => warn!(error = %e, "parking stays not saved; their records stay pending"),
    }
}

/// Saves the shop-front zones being timed, for the next start (call once frames stopped).
pub(crate) fn save_shopfront(shopfront: Option<&Shopfront>, path: &std::path::Path) {
    let Some(s) = shopfront else { return };
    match s.save(path) {
        Ok(0) => {}
        Ok(n) => tracing::info!(objects = n, path = %path.display(), "shop-front zones saved"),
        Err(e) => warn!(error = %e, "shop-front zones not saved; their notices stay pending"),
    }
}
