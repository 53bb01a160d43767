//! Cameras the gateway pulls: `[[cameras.sources]]` with an HTTP snapshot URL (Basic or Digest
//! auth) or an RTSP URL (one frame every `interval_s` through ffmpeg). Each source runs in its
//! own task, so a dead or slow camera never delays another, and hands every frame to
//! [`CameraService::frame`]: the same health checks, parking enforcement and evidence as a
//! frame uploaded to `POST /api/v1/cameras/{id}/frames`.
//!
//! - Offline: each source's camera is watched from the start, so a camera that never answers
//!   (or stops answering) goes offline through the health checks' `offline_after_ms`, exactly
//!   like a silent pushing camera. The source's own errors are on the board below.
//! - Failures: a failed snapshot, a lost or stalled stream, or ffmpeg exiting is counted by
//!   reason, and the source tries again after a back-off that doubles from
//!   `source_retry_min_ms` to `source_retry_max_ms` (full jitter; [`Backoff`], the one every retry
//!   loop uses) and resets at the next frame. A snapshot source never polls a failing
//!   camera more often than a healthy one (the wait is at least `interval_s`).
//! - Health per source ([`SourceBoard`]): last frame, frames, errors, the last error, reconnects;
//!   in `/metrics` (`gateway_camera_source_*{site,camera}`) and on the camera wall
//!   (`GET /api/v1/cameras`, field `source`).
//! - Shutdown: the tasks stop with intake; an RTSP source kills its ffmpeg and reaps it.
//!
//! Files: [`config`] (the section), [`snapshot`] (HTTP), [`rtsp`] (ffmpeg), [`jpeg_stream`]
//! (cutting ffmpeg's output into frames), [`board`] (health per source).

pub(crate) mod board;
pub(crate) mod config;
pub(crate) mod jpeg_stream;
pub(crate) mod rtsp;
pub(crate) mod snapshot;

pub(crate) use board::{SourceBoard, SourceStatus};
pub(crate) use config::{PullSource, SourceKind};

use super::service::CameraService;
use crate::backoff::Backoff;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why a source produced no frame.
#[derive(Debug, Error)]
pub(crate) enum PullError {
    #[error("cannot reach the camera: {0}")]
    Connect(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("not authorised: {0}")]
    Unauthorized(String),
    #[error("the camera answered HTTP {0}")]
    Status(u16),
    #[error("the answer is not a JPEG: {0}")]
    NotJpeg(String),
    #[error("a frame is longer than {0} bytes")]
    TooLarge(usize),
    #[error("ffmpeg could not start: {0}")]
    Spawn(String),
    #[error("the stream ended: {0}")]
    Stream(String),
    #[error("no frame for {0} s")]
    Stalled(u64),
    #[error("the frame was refused: {0}")]
    Frame(String),
}

impl PullError {
    /// The metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            PullError::Connect(_) => "connect",
            PullError::Timeout(_) => "timeout",
            PullError::Unauthorized(_) => "unauthorized",
            PullError::Status(_) => "http_status",
            PullError::NotJpeg(_) => "not_jpeg",
            PullError::TooLarge(_) => "too_large",
            PullError::Spawn(_) => "spawn",
            PullError::Stream(_) => "stream",
            PullError::Stalled(_) => "stalled",
            PullError::Frame(_) => "frame_refused",
        }
    }
}

/// Settings shared by every source.
#[derive(Clone)]
struct Shared {
    cameras: CameraService,
    board: Arc<SourceBoard>,
    backoff: Backoff,
    ffmpeg: String,
    cancel: CancellationToken,
}

/// Starts one task per source in `sources`.
pub(crate) fn spawn_all(
    sources: &[PullSource],
    cameras: CameraService,
    board: Arc<SourceBoard>,
    backoff: Backoff,
    ffmpeg: &str,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let shared = Shared {
        cameras,
        board,
        backoff,
        ffmpeg: ffmpeg.to_string(),
        cancel,
    };
    sources
        .iter()
        .filter_map(|src| {
            let kind = src.kind()?;
            shared.board.register(src, kind);
            shared
                .cameras
                .watch(&src.camera, &src.site, crate::clock::now_ms());
            info!(site = %src.site, camera = %src.camera, url = %src.redacted_url(), ?kind, "pulling camera");
            let (src, shared) = (src.clone(), shared.clone());
            Some(tokio::spawn(async move {
                match kind {
                    SourceKind::Snapshot => run_snapshot(src, shared).await,
                    SourceKind::Rtsp => run_rtsp(src, shared).await,
                }
            }))
        })
        .collect()
}

impl Shared {
    /// Feeds one frame into the camera path; false when it was refused (counted).
    async fn feed(&self, src: &PullSource, jpeg: Vec<u8>) -> bool {
        let now = crate::clock::now_ms();
        let res = self
            .cameras
            .frame(
                src.camera.clone(),
                src.site.clone(),
                bytes::Bytes::from(jpeg),
                now,
            )
            .await;
        match res {
            Ok(_) => {
                self.board.frame(&src.site, &src.camera, now);
                true
            }
            Err(e) => {
                self.failed(src, &PullError::Frame(e.to_string()));
                false
            }
        }
    }

    fn failed(&self, src: &PullSource, e: &PullError) {
        warn!(site = %src.site, camera = %src.camera, reason = e.reason(), error = %e, "camera source failed");
        self.board
            .error(&src.site, &src.camera, e, crate::clock::now_ms());
    }

    /// Sleeps `d` unless cancelled; false when cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

/// The wait before attempt `failures` + 1 (0 = the last attempt succeeded).
fn retry_wait(backoff: &Backoff, failures: u32) -> Duration {
    backoff.delay(failures.saturating_sub(1))
}

async fn run_snapshot(src: PullSource, shared: Shared) {
    let interval = Duration::from_secs(src.interval_s);
    let mut client = match snapshot::SnapshotClient::new(&src) {
        Ok(c) => c,
        Err(e) => {
            shared.failed(&src, &e);
            return;
        }
    };
    let mut failures: u32 = 0;
    while !shared.cancel.is_cancelled() {
        let started = Instant::now();
        if failures > 0 {
            shared.board.reconnect(&src.site, &src.camera);
        }
        let got = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = client.fetch() => r,
        };
        let ok = match got {
            Ok(jpeg) => shared.feed(&src, jpeg).await,
            Err(e) => {
                shared.failed(&src, &e);
                false
            }
        };
        let wait = if ok {
            failures = 0;
            interval.saturating_sub(started.elapsed())
        } else {
            failures = failures.saturating_add(1);
            retry_wait(&shared.backoff, failures).max(interval)
        };
        if !shared.sleep(wait).await {
            return;
        }
    }
}

async fn run_rtsp(src: PullSource, shared: Shared) {
    let mut failures: u32 = 0;
    while !shared.cancel.is_cancelled() {
        if failures > 0 {
            if !shared.sleep(retry_wait(&shared.backoff, failures)).await {
                return;
            }
            shared.board.reconnect(&src.site, &src.camera);
        }
        let mut reader = match rtsp::RtspReader::open(&src, &shared.ffmpeg) {
            Ok(r) => r,
            Err(e) => {
                shared.failed(&src, &e);
                failures = failures.saturating_add(1);
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = shared.cancel.cancelled() => {
                    reader.close().await;
                    return;
                }
                f = reader.next_frame() => f,
            };
            match next {
                Ok(jpeg) => {
                    if shared.feed(&src, jpeg).await {
                        failures = 0;
                    }
                }
                Err(e) => {
                    shared.failed(&src, &e);
                    reader.close().await;
                    failures = failures.saturating_add(1);
                    break;
                }
            }
        }
    }
}
