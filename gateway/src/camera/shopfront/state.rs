//! Shop-front episodes being timed at a stop, saved and resumed (issue 22): without this, goods
//! kept in front of a shop whose gateway restarted were timed from zero again, the shop got a
//! second "take the goods inside" notice under a new record, and the first record stayed
//! `pending` for ever.
//!
//! The same rules as parking's (`camera::parking::state`):
//! - **Save** ([`Shopfront::save`], at the end of an orderly shutdown, once no frame arrives):
//!   every camera with a zone being timed: its run, and per zone the objects being timed (times,
//!   first and last evidence frames with their privacy regions), the open episode (its number,
//!   notice sent, clue raised) and the next episode number, to
//!   `{storage.dir}/shopfront-state.json`, atomically.
//! - **Resume** ([`Shopfront::resume`], at start): each zone still configured continues under
//!   the same run and episode number, so the stay record's key is the same: goods still there
//!   get no second notice and their clue at the limit counted from when they were first seen
//!   (moving the notice's record to `clue`); goods gone are recorded as `left_after_notice`
//!   once the zone is seen empty.
//! - **Bounds**: objects last seen more than `max_hidden_s` (180 s) before the start are not
//!   resumed, and an episode none of whose objects is resumed is dropped: its record stays
//!   `pending`, never guessed. The file is removed once read; an unreadable one is set aside as
//!   `.bad`. A crash saves nothing.

use super::{CameraShops, Episode, Shopfront};
use crate::camera::state_file::{self, StateError};
use crate::vision::dwell::SavedStays;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tracing::{info, warn};

/// The file under `storage.dir`.
pub(crate) const FILE_NAME: &str = "shopfront-state.json";

#[derive(Debug, Serialize, Deserialize)]
struct SavedCamera {
    site: String,
    camera: String,
    run: i64,
    zones: Vec<SavedZone>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedZone {
    zone: String,
    next_episode: u64,
    episode: Option<Episode>,
    stays: SavedStays,
}

fn lock(m: &std::sync::Mutex<CameraShops>) -> std::sync::MutexGuard<'_, CameraShops> {
    // Plain state; a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shopfront {
    /// Saves the zones being timed to `path`; returns how many objects. With none, removes
    /// `path`.
    pub(crate) fn save(&self, path: &Path) -> Result<usize, StateError> {
        let mut cameras: Vec<SavedCamera> = self
            .cameras
            .iter()
            .map(|((site, camera), c)| {
                let c = lock(c);
                SavedCamera {
                    site: site.clone(),
                    camera: camera.clone(),
                    run: c.run,
                    // Every zone, busy or not: their episode numbers go on under this run.
                    zones: c
                        .shops
                        .iter()
                        .map(|s| SavedZone {
                            zone: s.zone.id.clone(),
                            next_episode: s.next_episode,
                            episode: s.episode.clone(),
                            stays: s.dwell.saved(),
                        })
                        .collect(),
                }
            })
            .filter(|c| {
                c.zones
                    .iter()
                    .any(|z| !z.stays.is_empty() || z.episode.is_some())
            })
            .collect();
        cameras.sort_by(|a, b| (&a.site, &a.camera).cmp(&(&b.site, &b.camera)));
        let n: usize = cameras
            .iter()
            .flat_map(|c| &c.zones)
            .map(|z| z.stays.len())
            .sum();
        state_file::save(path, cameras)?;
        Ok(n)
    }

    /// Resumes the zones saved in `path` (if any) and removes it; returns how many objects
    /// were resumed. An unreadable file is renamed `.bad` and reported.
    pub(crate) fn resume(&self, path: &Path, now_ms: i64) -> Result<usize, StateError> {
        let Some(cameras) = state_file::load::<SavedCamera>(path)? else {
            return Ok(0);
        };
        let mut resumed = 0;
        for c in cameras {
            let Some(shops) = self.cameras.get(&(c.site.clone(), c.camera.clone())) else {
                warn!(site = %c.site, camera = %c.camera, "saved shop-front zones of a camera no longer configured; their notices stay pending");
                continue;
            };
            let mut shops = lock(shops);
            shops.run = c.run;
            for z in c.zones {
                let Some(shop) = shops.shops.iter_mut().find(|s| s.zone.id == z.zone) else {
                    warn!(site = %c.site, camera = %c.camera, zone = %z.zone, "saved shop-front zone no longer configured; its notice stays pending");
                    continue;
                };
                shop.next_episode = shop.next_episode.max(z.next_episode);
                let n = shop.dwell.resume(z.stays, now_ms);
                // An episode none of whose objects is resumed ends undecided.
                shop.episode = if n > 0 { z.episode } else { None };
                resumed += n;
            }
            info!(site = %c.site, camera = %c.camera, objects = resumed, "shop-front zones resumed");
        }
        std::fs::remove_file(path).map_err(|e| StateError::Io(path.display().to_string(), e))?;
        Ok(resumed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{T0, det, run, shops_of};
    use super::*;
    use crate::clue::signal::ClueSignal;
    use crate::clue::stays::{StayEvent, StayUpdate};

    fn notices(stays: &[StayEvent]) -> Vec<String> {
        stays
            .iter()
            .filter_map(|e| match e {
                StayEvent::Notice(n) => Some(n.key.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn goods_timed_before_a_stop_get_their_clue_on_the_notices_record_and_no_second_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let table = [det("dining table", 40.0, 320.0, 200.0, 420.0)];
        let before = shops_of(7);
        let (_, stays) = run(&mut before.lock_one(), 0, 70, &table);
        let keys = notices(&stays);
        assert_eq!(keys.len(), 1, "{stays:?}");
        assert_eq!(before.save(&path).unwrap(), 1);

        // Started again (another run), 20 s later: the same run and episode go on.
        let after = shops_of(8);
        assert_eq!(after.resume(&path, T0 + 90_000).unwrap(), 1);
        assert!(!path.exists(), "read once");
        let (signals, stays) = run(&mut after.lock_one(), 90, 130, &table);
        assert!(notices(&stays).is_empty(), "no second notice: {stays:?}");
        let raised: Vec<&StayUpdate> = stays
            .iter()
            .filter_map(|e| match e {
                StayEvent::Update(u @ StayUpdate::Raised { .. }) => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(raised.len(), 1, "{stays:?}");
        assert_eq!(raised[0].key(), keys[0], "the notice's record");
        let clue = signals
            .iter()
            .find_map(|s| match s {
                ClueSignal::Occurrence(c) => Some(c),
                _ => None,
            })
            .expect("a clue");
        assert_eq!(clue.at_ms, T0 + 120_000, "counted from when first seen");
    }

    #[test]
    fn a_stop_longer_than_max_hidden_resumes_nothing_and_a_bad_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let table = [det("dining table", 40.0, 320.0, 200.0, 420.0)];
        let before = shops_of(7);
        run(&mut before.lock_one(), 0, 70, &table);
        before.save(&path).unwrap();
        let after = shops_of(8);
        assert_eq!(after.resume(&path, T0 + 70_000 + 181_000).unwrap(), 0);
        // Nothing timed: the goods seen now are a new episode, noticed anew under a new key
        // (the run and its episode numbers go on: the old record is never reused).
        let (_, stays) = run(&mut after.lock_one(), 260, 330, &table);
        let keys = notices(&stays);
        assert_eq!(keys.len(), 1);
        assert!(keys[0].ends_with("/7-2"), "{keys:?}");
        // Nothing to save: no file.
        assert_eq!(shops_of(9).save(&path).unwrap(), 0);
        assert!(!path.exists());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(shops_of(9).resume(&path, T0).is_err());
        assert!(path.with_extension("json.bad").exists());
    }
}
