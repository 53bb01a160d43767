//! Camera health: black, over-exposed, frozen, covered or blurred, pointed at the sky,
//! moved, offline, and what the camera itself reports; turned into clues for the site.
//!
//! - [`frame`]: JPEG decode (never panics on outside data) and the small working image.
//! - [`checks`]: pure per-frame checks over that image.
//! - [`health`]: per-camera state machines (hold, recovery, "not repaired" escalation).
//! - [`config`]: the `[cameras]` section.

pub mod checks;
pub mod config;
pub mod frame;
pub mod health;

pub use checks::{CheckThresholds, Verdict};
pub use config::{CameraSettings, CamerasConfig};
pub use frame::FrameError;
pub use health::{CameraHealth, CameraStatus, Condition, FrameReport, ReferenceReport};

#[cfg(test)]
pub(crate) mod testutil;
