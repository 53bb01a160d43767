//! Vision: ONNX Runtime sessions, detectors and the parking dwell rule.
//!
//! - [`runtime`]: loads `libonnxruntime` (from `ORT_DYLIB_PATH` or the models cache) once per
//!   process and wraps each model in a reusable [`runtime::Model`].
//! - [`preprocess`]: image decoding with size limits, letterbox and resize into tensors.
//! - [`nms`]: boxes, IoU and non-maximum suppression.
//! - [`detector`]: yolov3-tiny COCO detector (vehicles, people, bicycles).
//! - [`plate`]: Chinese plate detection then CTC text recognition.
//! - [`tiles`]: overlapping tiles for large drone stills, merged with NMS.
//! - [`zone`]: no-parking polygons and active hours.
//! - [`dwell`]: the parking persuasion/overstay state machine (pure, no I/O).
//!
//! Models come from `models/fetch.sh` (see `models/manifest.toml`).

pub mod detector;
pub mod dwell;
pub mod error;
pub mod nms;
pub mod plate;
pub mod preprocess;
pub mod runtime;
pub mod tiles;
pub mod zone;

pub use error::VisionError;
