//! Camera health: black, over-exposed, frozen, covered or blurred, pointed at the sky,
//! moved, offline, and what the camera itself reports; turned into clues for the site.
//!
//! - [`frame`]: JPEG decode (never panics on outside data) and the small working image.
//! - [`checks`]: pure per-frame checks over that image.
//! - [`health`]: per-camera state machines (hold, recovery, "not repaired" escalation).
//! - [`config`]: the `[cameras]` section.
//! - [`parking`]: the `[parking]` section and no-parking enforcement on the same frames.
//! - [`shopfront`]: the `[shopfront]` section: goods kept outside shop fronts, on the same
//!   frames.
//! - [`muck`]: the `[muck_trucks]` section: trucks on road cameras checked against permits.
//! - [`permits`]: the permits in force (configured and stored); their routes are
//!   `crate::http::permits`.
//! - [`rate`]: the per-camera upload rate (429 with `Retry-After` past it).
//! - [`pull`]: cameras the gateway fetches itself (`[[cameras.sources]]`: HTTP snapshots, RTSP
//!   through ffmpeg), fed into the same path as uploaded frames.
//!
//! Wiring (one [`CameraHealth`] per gateway, behind a mutex or owned by one task):
//! - `POST /api/v1/cameras/{id}/frames` (image/jpeg): [`CameraHealth::on_frame`], signals to
//!   the clue pool, the [`FrameReport`] as the answer (422 with the [`FrameError`] message).
//! - `POST /api/v1/cameras/{id}/reference` (image/jpeg): [`CameraHealth::enrol_reference`].
//! - readings of the `camera` stream: [`CameraHealth::on_status`] with
//!   [`CameraStatus::from_metrics`].
//! - a timer (every few seconds): [`CameraHealth::on_tick`].

pub mod checks;
pub(crate) mod config;
pub mod frame;
pub(crate) mod health;
pub(crate) mod muck;
pub(crate) mod parking;
pub(crate) mod permits;
pub(crate) mod pull;
pub(crate) mod rate;
pub(crate) mod service;
pub(crate) mod shopfront;
pub(crate) mod state_file;

pub use checks::{CheckThresholds, Verdict};
pub use config::{CameraSettings, CamerasConfig};
pub(crate) use frame::FrameError;
pub use health::{
    CameraFault, CameraHealth, CameraStatus, CameraSummary, Condition, FrameReport, ReferenceReport,
};

#[cfg(test)]
pub(crate) mod testutil;
