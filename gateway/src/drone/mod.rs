//! Drone footage: uploads, telemetry, tiled detection, geo-referenced findings and the
//! inspection tasks they are routed to ("fly once" for every department).
//!
//! - [`srt`]: DJI SRT telemetry sidecars (several generations, damaged files).
//! - [`exif`]: EXIF GPS and DJI XMP (gimbal, relative altitude) of stills.
//! - [`georef`]: pixel -> ground position (pinhole camera over flat ground) with an error model.
//! - [`upload`]: streamed, resumable, limited uploads with name and content checks.
//! - [`flight`]: flights, their files, progress, findings (memory + JSON on disk, SSE feed).
//! - [`tasks`]: departments' inspection tasks (GeoJSON areas, target classes, contact).
//! - [`job`]: the processing worker (ffmpeg sampling, tiled detection, routing to tasks).
//! - [`change`]: geo-aligned ground grids and change candidates between flights.
//! - [`api`]: the HTTP routes; [`config`]: `[drone]`.

pub mod api;
pub mod change;
pub mod config;
pub mod exif;
pub mod flight;
pub mod georef;
pub mod job;
pub mod srt;
pub mod tasks;
pub mod upload;

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DroneError {
    #[error("drone storage {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("drone tasks: {0}")]
    Tasks(#[from] tasks::TaskError),
}

/// Opens flights and tasks under `{storage.dir}/drone` and starts the processing worker.
/// Returns the routes' state and the worker's handle (it ends when `cancel` fires).
pub fn start(
    cfg: &crate::config::Config,
    pool: crate::clue::PoolHandle,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(api::DroneState, tokio::task::JoinHandle<()>), DroneError> {
    let root = cfg.storage.dir.join("drone");
    let flights_dir = root.join("flights");
    let flights =
        flight::FlightStore::open(flights_dir.clone()).map_err(|source| DroneError::Io {
            path: flights_dir,
            source,
        })?;
    let tasks = tasks::TaskStore::open(root.join("tasks.json"))?;
    let auth = pool.authenticator();
    let processor = Arc::new(job::Processor::new(
        cfg.drone.clone(),
        flights.clone(),
        tasks.clone(),
        pool,
        cancel.clone(),
    ));
    let (queue, handle) = processor.spawn();
    let state = api::DroneState::new(cfg.drone.clone(), flights, tasks, queue, auth, cancel);
    Ok((state, handle))
}
