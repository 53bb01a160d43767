//! Drone footage: uploads, telemetry, tiled detection, geo-referenced findings and the
//! inspection tasks they are routed to ("fly once" for every department).
//!
//! - [`srt`]: DJI SRT telemetry sidecars (several generations, damaged files).
//! - [`exif`]: EXIF GPS and DJI XMP (gimbal, relative altitude) of stills.
//! - [`georef`]: pixel -> ground position (pinhole camera over flat ground) with an error model.

pub mod exif;
pub mod georef;
pub mod srt;
