//! Health of each pulled source: what the camera wall shows and `/metrics` counts. Plain state
//! behind a mutex, updated by the source tasks.

use super::PullError;
use super::config::{PullSource, SourceKind};
use crate::metrics::{CameraSourceLabels, CameraSourceReason, Metrics};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Where a source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// No frame and no error yet.
    Starting,
    /// The last attempt gave a frame.
    Ok,
    /// The last attempt failed; retrying with back-off.
    Failing,
}

/// One source, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub kind: SourceKind,
    /// Without credentials.
    pub url: String,
    pub interval_s: u64,
    pub state: SourceState,
    pub last_frame_ms: Option<i64>,
    pub frames: u64,
    pub errors: u64,
    /// Attempts after a failure (a new request, or a new ffmpeg).
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// Every source of this gateway.
pub(crate) struct SourceBoard {
    sources: Mutex<BTreeMap<(String, String), SourceStatus>>,
    metrics: Arc<Metrics>,
}

impl SourceBoard {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        SourceBoard {
            sources: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    fn with<R>(
        &self,
        site: &str,
        camera: &str,
        f: impl FnOnce(&mut SourceStatus) -> R,
    ) -> Option<R> {
        let mut m = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        m.get_mut(&(site.to_string(), camera.to_string())).map(f)
    }

    fn labels(site: &str, camera: &str) -> CameraSourceLabels {
        CameraSourceLabels {
            site: site.to_string(),
            camera: camera.to_string(),
        }
    }

    pub(crate) fn register(&self, src: &PullSource, kind: SourceKind) {
        let mut m = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(
            (src.site.clone(), src.camera.clone()),
            SourceStatus {
                kind,
                url: src.redacted_url(),
                interval_s: src.interval_s,
                state: SourceState::Starting,
                last_frame_ms: None,
                frames: 0,
                errors: 0,
                reconnects: 0,
                last_error: None,
                last_error_ms: None,
            },
        );
        let l = Self::labels(&src.site, &src.camera);
        self.metrics.camera_source_up.get_or_create(&l).set(0);
    }

    pub(crate) fn frame(&self, site: &str, camera: &str, at_ms: i64) {
        self.with(site, camera, |s| {
            s.state = SourceState::Ok;
            s.last_frame_ms = Some(at_ms);
            s.frames += 1;
        });
        let l = Self::labels(site, camera);
        self.metrics
            .camera_source_frames_total
            .get_or_create(&l)
            .inc();
        self.metrics.camera_source_up.get_or_create(&l).set(1);
        self.metrics
            .camera_source_last_frame_seconds
            .get_or_create(&l)
            .set(at_ms / 1000);
    }

    pub(crate) fn error(&self, site: &str, camera: &str, e: &PullError, at_ms: i64) {
        self.with(site, camera, |s| {
            s.state = SourceState::Failing;
            s.errors += 1;
            s.last_error = Some(e.to_string());
            s.last_error_ms = Some(at_ms);
        });
        self.metrics
            .camera_source_errors_total
            .get_or_create(&CameraSourceReason {
                site: site.to_string(),
                camera: camera.to_string(),
                reason: e.reason().to_string(),
            })
            .inc();
        self.metrics
            .camera_source_up
            .get_or_create(&Self::labels(site, camera))
            .set(0);
    }

    pub(crate) fn reconnect(&self, site: &str, camera: &str) {
        self.with(site, camera, |s| s.reconnects += 1);
        self.metrics
            .camera_source_reconnects_total
            .get_or_create(&Self::labels(site, camera))
            .inc();
    }

    /// The source of `camera` at `site`, if it is pulled.
    pub(crate) fn get(&self, site: &str, camera: &str) -> Option<SourceStatus> {
        self.with(site, camera, |s| s.clone())
    }
}
