//! Vision: ONNX Runtime sessions, detectors and the parking dwell rule.
//!
//! - [`runtime`]: loads `libonnxruntime` (from `ORT_DYLIB_PATH` or the models cache) once per
//!   process and wraps each model in a reusable [`runtime::Model`].
//! - [`preprocess`]: image decoding with size limits, letterbox and resize into tensors.
//! - [`nms`]: boxes, IoU and non-maximum suppression.
//! - [`detector`]: yolov3-tiny COCO detector (vehicles, people, bicycles).
//! - [`plate`]: Chinese plate detection then CTC text recognition; `plate_rec2` is a second
//!   recogniser (hyperlpr's) whose reading confirms or disputes ours.
//! - [`tiles`]: overlapping tiles for large drone stills, merged with NMS.
//! - [`zone`]: no-parking polygons and active hours.
//! - [`dwell`]: the parking persuasion/overstay state machine (pure, no I/O).
//!
//! Models come from `models/fetch.sh` (see `models/manifest.toml`).
//!
//! Wiring a camera (`POST /api/v1/cameras/{id}/frames`, image/jpeg), per frame:
//! 1. [`preprocess::decode_image`] with [`preprocess::ImageLimits`] (reject -> 400/413 with the
//!    error text);
//! 2. [`detector::Detector::detect`] (load once per process with
//!    [`detector::Detector::load_default`]; the call blocks: run it in `spawn_blocking`);
//! 3. [`plate::PlateReader::read`] on the image, then [`dwell::sightings`] pairs plates with
//!    the vehicles around them;
//! 4. [`dwell::DwellTracker::observe`] (one tracker per camera, built from a
//!    [`dwell::ParkingConfig`] in the camera's config) with a [`dwell::Frame`] holding the JPEG;
//! 5. route the events: `Persuade` -> MQTT notice (roadside speaker / SMS), `Clue` -> the clue
//!    pool's `ClueSender`, `Left { persuaded }` -> stats.

pub(crate) mod ctc;
pub mod detector;
pub mod dwell;
pub(crate) mod error;
pub mod nms;
pub mod plate;
pub(crate) mod plate_rec2;
pub(crate) mod plate_refine;
pub(crate) mod plate_rows;
pub mod preprocess;
pub mod runtime;
pub(crate) mod tiles;
pub mod zone;

pub use error::VisionError;
