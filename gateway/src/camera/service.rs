//! Camera health inside the running gateway: frames and references from the HTTP API, status
//! from the `camera` readings stream, and a periodic tick for offline and not-repaired faults.
//! Every resulting signal goes to the clue pool.

use super::{CameraHealth, CameraStatus, CamerasConfig, FrameError, FrameReport, ReferenceReport};
use crate::clue::signal::{ClueSender, ClueSignal};
use crate::reading::Reading;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often offline detection and escalation run.
const TICK: Duration = Duration::from_secs(5);

/// Shared by the API handlers and the background task.
#[derive(Clone)]
pub struct CameraService {
    health: Arc<Mutex<CameraHealth>>,
    clue_tx: ClueSender,
}

impl CameraService {
    pub fn new(
        cfg: CamerasConfig,
        clue_tx: ClueSender,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(CameraService {
            health: Arc::new(Mutex::new(CameraHealth::new(cfg)?)),
            clue_tx,
        })
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

    /// One uploaded frame (JPEG). Decoding runs off the async threads.
    pub async fn frame(
        &self,
        camera: String,
        site: String,
        jpeg: bytes::Bytes,
        at_ms: i64,
    ) -> Result<FrameReport, FrameError> {
        let health = self.health.clone();
        let (signals, report) = tokio::task::spawn_blocking(move || {
            Self::with(&health, |h| h.on_frame(&camera, &site, &jpeg, at_ms))
        })
        .await
        .map_err(|e| FrameError::Decode(format!("frame task failed: {e}")))??;
        self.forward(signals).await;
        Ok(report)
    }

    /// Enrols the view a camera should keep (for the moved / re-aimed check).
    pub async fn reference(
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

    /// Consumes the readings fan-out (camera status) and ticks until the readings stop or
    /// `cancel` fires.
    pub async fn run(self, mut rx: mpsc::Receiver<Arc<[Reading]>>, cancel: CancellationToken) {
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
                    let Some(readings) = msg else { break };
                    let Some(first) = readings.first() else { continue };
                    if first.stream != "camera" {
                        continue;
                    }
                    let status = CameraStatus::from_metrics(
                        readings.iter().map(|r| (r.metric.as_str(), &r.value)),
                    );
                    let signals = Self::with(&self.health, |h| {
                        h.on_status(&first.device, &first.site, &status, first.device_time_ms)
                    });
                    self.forward(signals).await;
                }
            }
        }
    }
}
