//! Stays being timed at a stop, saved and resumed: without this, a warned stay whose gateway
//! stopped (a deploy, a reboot) stayed `pending` for ever, the vehicle was timed from zero again
//! after the start, warned a second time under a new record, and the persuasion statistics
//! counted neither outcome.
//!
//! - **Save** ([`Parking::save`], at the end of an orderly shutdown, after the API and the
//!   pulled cameras have stopped sending frames): every camera's stays (times, plate votes,
//!   first and last evidence frames with their privacy regions, warned / raised) and its run,
//!   to `{storage.dir}/parking-state.json`, atomically (temporary file, fsync, rename).
//! - **Resume** ([`Parking::resume`], at start): each camera still configured continues its
//!   saved stays under the same run, so the stay records' keys (`{site}/{camera}/{run}-{stay}`)
//!   are the same and the outcome moves the record the notice created: a vehicle still there
//!   is not warned again and gets its clue at the limit counted from when it was first seen;
//!   one gone is recorded as `left_after_notice` once its place is seen empty.
//! - **Bounds**: stays last seen more than the camera's `max_hidden_s` before the start are
//!   not resumed (the tracker would have let them go, and a vehicle there now may be another
//!   one): their records stay `pending`. The file is removed once read, so a later crash never
//!   resumes an older state; an unreadable file is set aside as `.bad` and logged.
//!   A crash (SIGKILL, power) saves nothing: those stays stay `pending`.

use super::{CameraTracker, Parking};
use crate::camera::state_file;
pub(crate) use crate::camera::state_file::StateError;
use crate::vision::dwell::SavedStays;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tracing::{info, warn};

/// The file under `storage.dir`.
pub(crate) const FILE_NAME: &str = "parking-state.json";

#[derive(Debug, Serialize, Deserialize)]
struct SavedCamera {
    site: String,
    camera: String,
    run: i64,
    stays: SavedStays,
}

fn lock(m: &std::sync::Mutex<CameraTracker>) -> std::sync::MutexGuard<'_, CameraTracker> {
    // Plain state; a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Parking {
    /// Saves every camera's stays to `path`; returns how many. With none, removes `path`.
    pub(crate) fn save(&self, path: &Path) -> Result<usize, StateError> {
        let mut cameras: Vec<SavedCamera> = self
            .trackers
            .iter()
            .map(|((site, camera), t)| {
                let t = lock(t);
                SavedCamera {
                    site: site.clone(),
                    camera: camera.clone(),
                    run: t.run,
                    stays: t.dwell.saved(),
                }
            })
            .filter(|c| !c.stays.is_empty())
            .collect();
        cameras.sort_by(|a, b| (&a.site, &a.camera).cmp(&(&b.site, &b.camera)));
        let n: usize = cameras.iter().map(|c| c.stays.len()).sum();
        state_file::save(path, cameras)?;
        Ok(n)
    }

    /// Resumes the stays saved in `path` (if any) and removes it; returns how many stays were
    /// resumed. An unreadable file is renamed `.bad` and reported.
    pub(crate) fn resume(&self, path: &Path, now_ms: i64) -> Result<usize, StateError> {
        let Some(cameras) = state_file::load::<SavedCamera>(path)? else {
            return Ok(0);
        };
        let mut resumed = 0;
        for c in cameras {
            let Some(t) = self.trackers.get(&(c.site.clone(), c.camera.clone())) else {
                warn!(site = %c.site, camera = %c.camera, stays = c.stays.len(), "saved parking stays of a camera no longer configured; left pending");
                continue;
            };
            let mut t = lock(t);
            let offered = c.stays.len();
            let n = t.dwell.resume(c.stays, now_ms);
            t.run = c.run;
            info!(site = %c.site, camera = %c.camera, resumed = n, dropped = offered - n, "parking stays resumed");
            resumed += n;
        }
        std::fs::remove_file(path).map_err(|e| StateError::Io(path.display().to_string(), e))?;
        Ok(resumed)
    }
}
