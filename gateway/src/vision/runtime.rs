//! ONNX Runtime: the shared library is loaded once per process; each model is one session,
//! created once and reused for every frame.

use super::VisionError;
use ndarray::ArrayViewD;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Environment variable naming the models folder (also read by `models/fetch.sh`).
pub(crate) const MODELS_DIR_ENV: &str = "ENFORCEMENT_MODELS_DIR";
/// File name of the library extracted from the `onnxruntime` wheel.
pub(crate) const ORT_LIBRARY: &str = "libonnxruntime.so.1.32.0";
/// Environment variable setting the shared intra-op thread count (default: available cores).
pub(crate) const THREADS_ENV: &str = "GATEWAY_VISION_THREADS";

/// `$ENFORCEMENT_MODELS_DIR`, else `~/.cache/enforcement-gateway/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/enforcement-gateway/models")
}

/// `$ORT_DYLIB_PATH`, else the library in [`models_dir`].
pub(crate) fn library_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH").filter(|d| !d.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => models_dir().join(ORT_LIBRARY),
    }
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from [`library_path`] on first call; later calls reuse it (ONNX Runtime
/// allows one environment per process).
pub(crate) fn environment() -> Result<&'static ort::environment::Environment, VisionError> {
    let path = library_path();
    if !path.is_file() {
        return Err(VisionError::MissingLibrary { path });
    }
    let env = ENVIRONMENT.get_or_init(|| {
        tracing::info!(library = %path.display(), "loading ONNX Runtime");
        let builder =
            ort::init_from(&path).map_err(|e| format!("loading {}: {e}", path.display()))?;
        // One intra-op pool for every session: separate per-session pools spin after each run
        // and steal the cores the next model needs (measured 1.7x slower detector inference with
        // the plate sessions beside it on 2 cores).
        let threads = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = ort::environment::GlobalThreadPoolOptions::default()
            .with_intra_threads(threads)
            .and_then(|p| p.with_inter_threads(1))
            .map_err(|e| e.to_string())?;
        tracing::info!(threads, "ONNX Runtime shared thread pool");
        builder
            .with_name("gateway-vision")
            .with_global_thread_pool(pool)
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|e| VisionError::Runtime(e.clone()))
}

/// One output tensor copied out of the session: shape and row-major data.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A sequence model's first output for a batch of `rows`, checked to be `[rows, steps,
/// classes]` with that much data, as `(output, steps, classes)`: both plate recognisers slice
/// rows out of it, so a model that answers in another shape is an error, not a panic.
pub(crate) fn sequence_output<'a>(
    outs: &'a [Output],
    rows: usize,
    what: &str,
) -> Result<(&'a Output, usize, usize), VisionError> {
    let o = outs
        .first()
        .ok_or_else(|| VisionError::Output(format!("{what} gave no output")))?;
    let &[n, steps, classes] = o.shape.as_slice() else {
        return Err(VisionError::Output(format!(
            "{what} output {:?}, expected [N, T, C]",
            o.shape
        )));
    };
    if n != rows || o.data.len() != n * steps * classes {
        return Err(VisionError::Output(format!(
            "{what} output {:?} for a batch of {rows}",
            o.shape
        )));
    }
    Ok((o, steps, classes))
}

/// A model loaded into a session. `run` may be called from several threads; calls are
/// serialised on the session (ONNX Runtime parallelises inside one call).
pub struct Model {
    name: String,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish()
    }
}

impl Model {
    /// Loads `path`. `threads` 0 uses the process-wide pool (see [`THREADS_ENV`]); more gives the
    /// session its own pool of that many threads.
    pub fn load(path: &Path, threads: usize) -> Result<Self, VisionError> {
        if !path.is_file() {
            return Err(VisionError::MissingModel {
                path: path.to_path_buf(),
            });
        }
        let env = environment()?;
        let started = std::time::Instant::now();
        let mut builder =
            Session::builder(env)?.with_optimization_level(GraphOptimizationLevel::Level3)?;
        if threads > 0 {
            builder = builder
                .with_independent_thread_pool()?
                .with_intra_threads(threads)?;
        }
        let session = builder.commit_from_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::info!(model = %name, ms = started.elapsed().as_millis() as u64, "model loaded");
        Ok(Model {
            name,
            session: Mutex::new(session),
        })
    }

    /// Runs the model on one f32 input and returns every output as f32.
    pub(crate) fn run(&self, input: ArrayViewD<'_, f32>) -> Result<Vec<Output>, VisionError> {
        let tensor = ort::value::TensorRef::from_array_view(input)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| VisionError::Runtime(format!("{}: session poisoned", self.name)))?;
        let outputs = session.run(ort::inputs![tensor])?;
        let mut out = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (shape, data) = value.try_extract_tensor::<f32>()?;
            let shape = shape
                .iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| {
                        VisionError::Output(format!("{}: negative dimension", self.name))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Output {
                shape,
                data: data.to_vec(),
            });
        }
        Ok(out)
    }
}
