//! Errors of the vision stage.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error(
        "ONNX Runtime library not found at {path} (run `bash models/fetch.sh`, or set ORT_DYLIB_PATH)"
    )]
    MissingLibrary { path: PathBuf },
    #[error(
        "model file not found: {path} (run `bash models/fetch.sh`, or set ENFORCEMENT_MODELS_DIR)"
    )]
    MissingModel { path: PathBuf },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("image rejected: {0}")]
    Image(String),
    #[error("unexpected model output: {0}")]
    Output(String),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl<T> From<ort::Error<T>> for VisionError {
    fn from(e: ort::Error<T>) -> Self {
        VisionError::Runtime(e.to_string())
    }
}
