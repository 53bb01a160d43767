//! `[drone]`: upload limits, frame sampling, tiling and the geo-referencing error model.

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DroneConfig {
    pub max_still_mb: u64,
    pub max_video_mb: u64,
    pub max_files_per_flight: usize,
    /// All the files of one flight together, MiB: a flight cannot fill the disk file by file.
    pub max_flight_mb: u64,
    /// Free space, MiB, that must remain on the flights' file system: below it uploads are
    /// refused with 507 Insufficient Storage (the evidence store and the outbox live there too).
    pub min_free_mb: u64,
    /// Days after a flight was processed (or created, when it never was) that its uploaded
    /// footage is deleted, except the files a clue came from (`drone::retention`). 0 keeps
    /// footage forever (the files a clue came from included).
    pub footage_retention_days: u64,
    /// Days after which the files a clue came from are deleted too (counted like
    /// `footage_retention_days`): the clue's own evidence (crop, frame) lives in the evidence
    /// store under `[clues.retention]`, and the footage behind it is kept for the case, not for
    /// ever. Default 730, the two years after which an offence that went undiscovered can no
    /// longer be penalised (Administrative Penalty Law, art. 36), and never while one of their
    /// clues is open; 0 keeps them as long as the flight record. At least
    /// `footage_retention_days`.
    pub clue_footage_retention_days: u64,
    /// How often the footage retention job runs, seconds.
    pub retention_every_s: u64,
    /// Largest still in megapixels, checked from the JPEG header before decoding.
    pub max_still_megapixels: u64,
    /// Video frames sampled per second (ffmpeg `fps` filter).
    pub video_fps: f64,
    /// Longest an ffmpeg run may take, seconds.
    pub ffmpeg_timeout_s: u64,
    /// Detector tile side and overlap, pixels of the source frame.
    pub tile: u32,
    pub tile_overlap: u32,
    /// Tiles per ONNX Runtime run.
    pub tile_batch: usize,
    pub score_threshold: f32,
    /// Horizontal field of view when a frame says nothing (video; stills without a 35 mm focal
    /// length): DJI's 24 mm-equivalent 4:3 cameras are ~72 degrees.
    pub default_hfov_deg: f64,
    /// Gimbal pitch assumed when telemetry has none (mapping flights look straight down).
    pub default_pitch_deg: f64,
    /// One-sigma uncertainties of the error model (see `drone::georef`).
    pub gps_sigma_m: f64,
    pub alt_sigma_m: f64,
    pub attitude_sigma_deg: f64,
    pub pixel_sigma: f64,
    /// Minutes east of UTC of the aircraft clock (EXIF and SRT times carry no zone); default 0.
    /// Read it through [`DroneConfig::offset_minutes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
    /// The old spelling of `utc_offset_minutes`, still accepted. Not a serde alias: the
    /// configuration merges serialized defaults under the file, and an alias would then meet
    /// the default's own key as a duplicate field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utc_offset_min: Option<i32>,
    /// Change detection between flights: ground cell side (m), compared block side (cells),
    /// normalized difference that marks a block, and smallest candidate region (m^2).
    pub change_cell_m: f64,
    pub change_block: usize,
    pub change_threshold: f32,
    pub change_min_area_m2: f64,
}

impl Default for DroneConfig {
    fn default() -> Self {
        DroneConfig {
            max_still_mb: 64,
            max_video_mb: 8192,
            max_files_per_flight: 2000,
            max_flight_mb: 32768,
            min_free_mb: 1024,
            footage_retention_days: 90,
            clue_footage_retention_days: 730,
            retention_every_s: 3600,
            max_still_megapixels: 64,
            video_fps: 1.0,
            ffmpeg_timeout_s: 3600,
            tile: 1024,
            tile_overlap: 128,
            tile_batch: 4,
            score_threshold: 0.25,
            default_hfov_deg: 71.9,
            default_pitch_deg: -90.0,
            gps_sigma_m: 2.5,
            alt_sigma_m: 2.0,
            attitude_sigma_deg: 1.5,
            pixel_sigma: 4.0,
            utc_offset_minutes: None,
            utc_offset_min: None,
            change_cell_m: 0.5,
            change_block: 6,
            change_threshold: 0.9,
            change_min_area_m2: 4.0,
        }
    }
}

impl DroneConfig {
    /// The aircraft clock's offset, minutes east of UTC, from either spelling.
    pub(crate) fn offset_minutes(&self) -> i32 {
        self.utc_offset_minutes.or(self.utc_offset_min).unwrap_or(0)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.utc_offset_minutes.is_some() && self.utc_offset_min.is_some() {
            return Err(invalid(
                "drone.utc_offset_min",
                "old spelling of utc_offset_minutes: set only utc_offset_minutes",
            ));
        }
        let positive = [
            ("drone.video_fps", self.video_fps),
            ("drone.default_hfov_deg", self.default_hfov_deg),
            ("drone.change_cell_m", self.change_cell_m),
        ];
        for (k, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(k, "must be a positive number"));
            }
        }
        if self.retention_every_s == 0 {
            return Err(invalid("drone.retention_every_s", "must be at least 1"));
        }
        if self.clue_footage_retention_days != 0
            && self.clue_footage_retention_days < self.footage_retention_days
        {
            return Err(invalid(
                "drone.clue_footage_retention_days",
                "must be 0 or at least footage_retention_days: footage a clue came from is not \
                 deleted before other footage",
            ));
        }
        if self.video_fps > 30.0 {
            return Err(invalid("drone.video_fps", "at most 30 frames per second"));
        }
        if self.default_hfov_deg >= 170.0 {
            return Err(invalid("drone.default_hfov_deg", "must be under 170"));
        }
        if !(-90.0..=0.0).contains(&self.default_pitch_deg) {
            return Err(invalid("drone.default_pitch_deg", "must be in -90..=0"));
        }
        if self.tile < 64 || self.tile_overlap >= self.tile {
            return Err(invalid(
                "drone.tile",
                "tile must be >= 64 and larger than tile_overlap",
            ));
        }
        if self.max_still_mb == 0
            || self.max_video_mb == 0
            || self.max_still_megapixels == 0
            || self.max_flight_mb == 0
        {
            return Err(invalid("drone.max_still_mb", "limits must be positive"));
        }
        if !(0.0..1.0).contains(&self.score_threshold) {
            return Err(invalid("drone.score_threshold", "must be in 0..1"));
        }
        if self.change_block == 0 {
            return Err(invalid("drone.change_block", "must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> super::upload::UploadLimits {
        super::upload::UploadLimits {
            max_still_bytes: self.max_still_mb << 20,
            max_video_bytes: self.max_video_mb << 20,
            max_telemetry_bytes: 64 << 20,
            max_files: self.max_files_per_flight,
            max_flight_bytes: self.max_flight_mb << 20,
            min_free_bytes: self.min_free_mb << 20,
            max_still_pixels: self.max_still_megapixels * 1_000_000,
        }
    }

    pub(crate) fn uncertainty(&self) -> super::georef::Uncertainty {
        super::georef::Uncertainty {
            gps_m: self.gps_sigma_m,
            alt_m: self.alt_sigma_m,
            pitch_deg: self.attitude_sigma_deg,
            yaw_deg: self.attitude_sigma_deg,
            roll_deg: self.attitude_sigma_deg / 2.0,
            pixel: self.pixel_sigma,
        }
    }
}
