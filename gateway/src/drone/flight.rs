//! Flights: the uploaded files, processing status and progress, findings and change
//! candidates. Kept in memory, saved to `{storage.dir}/drone/flights/{id}/flight.json` at every
//! status change, and announced on a broadcast channel for the SSE progress stream.

use super::change::ChangeCandidate;
use super::upload::FileKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Uploading,
    Queued,
    Processing,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileState {
    pub name: String,
    pub kind: FileKind,
    pub received: u64,
    /// Declared by `Content-Range`, or the size once complete.
    pub total: Option<u64>,
    pub complete: bool,
    pub sha256: Option<String>,
    /// When footage retention deleted the file (`drone::retention`); absent while kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_ms: Option<i64>,
}

/// One geo-referenced detection (routed to a task when `task_id` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Finding {
    pub id: u64,
    pub task_id: Option<u64>,
    pub class: String,
    pub confidence: f32,
    pub lat: f64,
    pub lon: f64,
    pub error_m: f64,
    /// When the frame was taken (ms since the epoch).
    pub time_ms: i64,
    /// Source file, and for video the offset in it: `DJI_0002.MP4@12000ms`.
    pub frame: String,
    pub clue_id: Option<i64>,
    /// Box in the frame's pixels `[x0, y0, x1, y1]`.
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Flight {
    pub id: u64,
    pub site: String,
    pub name: Option<String>,
    pub status: Status,
    pub progress: f64,
    pub frames_total: u64,
    pub frames_done: u64,
    pub files: Vec<FileState>,
    pub findings: Vec<Finding>,
    /// Detections that could not be geo-referenced or matched, by reason (counts).
    pub detections_total: u64,
    pub errors: Vec<String>,
    pub changes: Vec<ChangeCandidate>,
    pub created_ms: i64,
    pub created_by: String,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

/// What the SSE stream sends on each change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Progress {
    pub id: u64,
    pub status: Status,
    pub progress: f64,
    pub frames_total: u64,
    pub frames_done: u64,
    pub findings: usize,
    pub errors: usize,
}

impl Flight {
    pub(crate) fn progress(&self) -> Progress {
        Progress {
            id: self.id,
            status: self.status,
            progress: self.progress,
            frames_total: self.frames_total,
            frames_done: self.frames_done,
            findings: self.findings.len(),
            errors: self.errors.len(),
        }
    }
}

/// Most errors kept per flight (a broken video could otherwise report one per frame).
pub(crate) const MAX_ERRORS: usize = 200;
/// Most findings kept per flight.
pub(crate) const MAX_FINDINGS: usize = 20_000;

#[derive(Clone)]
pub(crate) struct FlightStore {
    root: PathBuf,
    flights: Arc<Mutex<BTreeMap<u64, Flight>>>,
    changes: broadcast::Sender<Progress>,
}

impl FlightStore {
    /// Loads the flights under `root` (`{storage.dir}/drone/flights`). A flight that was queued
    /// or processing when the gateway stopped is marked failed (process it again).
    pub(crate) fn open(root: PathBuf) -> std::io::Result<FlightStore> {
        std::fs::create_dir_all(&root)?;
        let mut flights = BTreeMap::new();
        for entry in std::fs::read_dir(&root)?.flatten() {
            let path = entry.path().join("flight.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match serde_json::from_slice::<Flight>(&bytes) {
                Ok(mut f) => {
                    if matches!(f.status, Status::Queued | Status::Processing) {
                        f.status = Status::Failed;
                        f.errors
                            .push("gateway restarted during processing; process again".into());
                    }
                    flights.insert(f.id, f);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "flight not loaded"),
            }
        }
        Ok(FlightStore {
            root,
            flights: Arc::new(Mutex::new(flights)),
            changes: broadcast::channel(1024).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Flight>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The folder of flight `id`'s files.
    pub(crate) fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    pub(crate) fn create(
        &self,
        site: String,
        name: Option<String>,
        by: String,
        now_ms: i64,
    ) -> Flight {
        let f = {
            let mut all = self.lock();
            let id = all.keys().next_back().copied().unwrap_or(0) + 1;
            let f = Flight {
                id,
                site,
                name,
                status: Status::Uploading,
                progress: 0.0,
                frames_total: 0,
                frames_done: 0,
                files: Vec::new(),
                findings: Vec::new(),
                detections_total: 0,
                errors: Vec::new(),
                changes: Vec::new(),
                created_ms: now_ms,
                created_by: by,
                started_ms: None,
                finished_ms: None,
            };
            all.insert(id, f.clone());
            f
        };
        self.save(&f);
        f
    }

    pub(crate) fn get(&self, id: u64) -> Option<Flight> {
        self.lock().get(&id).cloned()
    }

    pub(crate) fn list(&self) -> Vec<Flight> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.changes.subscribe()
    }

    fn save(&self, f: &Flight) {
        let path = self.dir(f.id).join("flight.json");
        match serde_json::to_vec(f) {
            Ok(json) => {
                if let Err(e) = super::upload::write_atomic(&path, &json) {
                    tracing::warn!(path = %path.display(), error = %e, "flight not saved");
                }
            }
            Err(e) => tracing::warn!(error = %e, "flight not serialized"),
        }
    }

    /// Changes flight `id` with `f`; announces the progress, and saves when `persist`.
    pub(crate) fn update<R>(
        &self,
        id: u64,
        persist: bool,
        f: impl FnOnce(&mut Flight) -> R,
    ) -> Option<R> {
        let (r, snapshot) = {
            let mut all = self.lock();
            let flight = all.get_mut(&id)?;
            let r = f(flight);
            flight.errors.truncate(MAX_ERRORS);
            flight.findings.truncate(MAX_FINDINGS);
            (r, flight.clone())
        };
        let _ = self.changes.send(snapshot.progress());
        if persist {
            self.save(&snapshot);
        }
        Some(r)
    }
}
