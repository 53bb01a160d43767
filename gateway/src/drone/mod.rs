//! Drone footage: uploads, telemetry, tiled detection, geo-referenced findings and the
//! inspection tasks they are routed to ("fly once" for every department).
//!
//! - [`srt`]: DJI SRT telemetry sidecars (several generations, damaged files).
//! - [`exif`]: EXIF GPS and DJI XMP (gimbal, relative altitude) of stills.
//! - [`georef`]: pixel -> ground position (pinhole camera over flat ground) with an error model.
//! - [`upload`]: streamed, resumable, limited uploads with name and content checks.
//! - [`receive`]: a file arriving in a flight (`DroneState::receive`): the flight's checks and
//!   limits, the resumable write, completion; the HTTP handler only parses and maps errors.
//! - [`flight`]: flights, their files, progress, findings (memory + JSON on disk, SSE feed).
//! - [`tasks`]: departments' inspection tasks (GeoJSON areas, target classes, contact).
//! - [`job`]: the processing worker (ffmpeg sampling, tiled detection, routing to tasks).
//! - [`change`]: geo-aligned ground grids and change candidates between flights.
//! - [`retention`]: old flights' footage deleted, what clues came from kept.
//! - [`DroneState`]: what the HTTP routes (`crate::http::drone`) share; [`config`]: `[drone]`.

pub(crate) mod change;
pub(crate) mod config;
pub mod exif;
pub(crate) mod flight;
pub mod georef;
pub(crate) mod job;
pub(crate) mod receive;
pub(crate) mod retention;
pub mod srt;
pub(crate) mod tasks;
pub(crate) mod upload;

use config::DroneConfig;
use flight::FlightStore;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tasks::TaskStore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DroneError {
    #[error("drone storage {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("drone tasks: {0}")]
    Tasks(#[from] tasks::TaskError),
}

/// The flights, the tasks and the processing queue, as `start` hands them to the HTTP layer
/// (`crate::http::drone`).
#[derive(Clone)]
pub(crate) struct DroneState {
    pub cfg: Arc<DroneConfig>,
    pub flights: FlightStore,
    pub tasks: TaskStore,
    pub queue: mpsc::Sender<u64>,
    pub closing: CancellationToken,
    /// Files being written now: a second concurrent PUT of the same file is refused.
    pub(crate) busy: Arc<Mutex<HashSet<(u64, String)>>>,
}

impl DroneState {
    pub(crate) fn new(
        cfg: DroneConfig,
        flights: FlightStore,
        tasks: TaskStore,
        queue: mpsc::Sender<u64>,
        closing: CancellationToken,
    ) -> DroneState {
        DroneState {
            cfg: Arc::new(cfg),
            flights,
            tasks,
            queue,
            closing,
            busy: Default::default(),
        }
    }
}

/// Opens flights and tasks under `{storage.dir}/drone` and starts the processing worker and
/// the footage retention job. Returns the routes' state and the two tasks' handles (they end
/// when `cancel` fires).
pub(crate) fn start(
    cfg: &config::DroneConfig,
    storage_dir: &std::path::Path,
    pool: crate::clue::PoolHandle,
    metrics: Arc<crate::metrics::Metrics>,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(DroneState, Vec<tokio::task::JoinHandle<()>>), DroneError> {
    let root = storage_dir.join("drone");
    let flights_dir = root.join("flights");
    let flights =
        flight::FlightStore::open(flights_dir.clone()).map_err(|source| DroneError::Io {
            path: flights_dir,
            source,
        })?;
    let tasks = tasks::TaskStore::open(root.join("tasks.json"))?;
    let processor = Arc::new(job::Processor::new(
        cfg.clone(),
        flights.clone(),
        tasks.clone(),
        pool.clone(),
        cancel.clone(),
    ));
    let (queue, handle) = processor.spawn();
    let mut handles = vec![handle];
    if let Some(periods) = retention::Periods::of(cfg) {
        handles.push(tokio::spawn(retention_job(
            flights.clone(),
            cfg.retention_every_s,
            periods,
            pool,
            metrics,
            cancel.clone(),
        )));
    }
    let state = DroneState::new(cfg.clone(), flights, tasks, queue, cancel);
    Ok((state, handles))
}

/// Which of `ids` are open clues. One the pool cannot answer for counts as open: its footage
/// waits for the next run rather than go while its case may be running.
async fn open_clues(
    pool: &crate::clue::PoolHandle,
    ids: std::collections::BTreeSet<i64>,
) -> std::collections::BTreeSet<i64> {
    let mut open = std::collections::BTreeSet::new();
    for id in ids {
        match pool.get(id).await {
            Ok(Some(d)) if !d.clue.status.is_open() => {}
            // Purged or never stored here: nothing is waiting for its footage.
            Ok(None) => {}
            Ok(Some(_)) => {
                open.insert(id);
            }
            Err(e) => {
                tracing::warn!(clue = id, error = %e,
                    "drone footage retention: clue status unknown, its footage is kept this run");
                open.insert(id);
            }
        }
    }
    open
}

/// Runs [`retention::expire`] at start and every `retention_every_s` until `cancel`.
async fn retention_job(
    flights: flight::FlightStore,
    every_s: u64,
    periods: retention::Periods,
    pool: crate::clue::PoolHandle,
    metrics: Arc<crate::metrics::Metrics>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let every = std::time::Duration::from_secs(every_s.max(1));
    loop {
        let now = crate::clock::now_ms();
        // Without the clues due (the task failed), no run: their footage must not go unasked.
        let run = async {
            let store = flights.clone();
            let due =
                tokio::task::spawn_blocking(move || retention::clues_due(&store, now, periods))
                    .await?;
            let open = open_clues(&pool, due).await;
            let store = flights.clone();
            tokio::task::spawn_blocking(move || retention::expire(&store, now, periods, &open))
                .await
        };
        match run.await {
            Ok(e) => {
                metrics
                    .drone_footage_expired_files_total
                    .inc_by(e.files as u64);
                metrics.drone_footage_expired_bytes_total.inc_by(e.bytes);
                metrics
                    .drone_clue_footage_expired_files_total
                    .inc_by(e.clue_files as u64);
                if e.files > 0 || e.errors > 0 {
                    tracing::info!(
                        flights = e.flights,
                        files = e.files,
                        bytes = e.bytes,
                        kept_for_clues = e.kept_for_clues,
                        clue_files = e.clue_files,
                        errors = e.errors,
                        "drone footage retention run"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "drone footage retention run failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
