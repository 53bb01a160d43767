//! Footage retention: the uploaded files of a flight older than `[drone]
//! footage_retention_days` are deleted, except the files a clue was raised from, which go
//! after `clue_footage_retention_days` (default 730; 0 keeps them with the flight record), and
//! not while one of their clues is still open (the case is not over; as `[clues.retention]
//! keep_while_open` keeps its evidence). The job asks the clue pool which of the clues due
//! are open ([`clues_due`] names them); a clue it cannot ask about counts as open.
//!
//! Age counts from the end of processing (or from the flight's creation when it never ran,
//! e.g. an abandoned upload). A flight that is queued or processing is never touched. What is
//! deleted: each uploaded file, its unfinished `.part` and the frames sampled from it. What
//! stays: `flight.json` (status, findings, each file marked `expired_ms`), the change-detection
//! grids (small, derived), and every file that a finding with a clue came from: the clue's own
//! evidence (crop and frame) lives in the evidence store under `[clues.retention]` anyway, and
//! the original footage behind a clue is kept for the case, until the second, longer period.
//! A file that cannot be deleted is logged and tried again on the next run. Each run logs and
//! counts what it deleted (`drone_footage_expired_files_total`,
//! `drone_footage_expired_bytes_total`; of them, the files a clue came from:
//! `drone_clue_footage_expired_files_total`).

use super::flight::{FlightStore, Status};
use std::collections::BTreeSet;
use std::path::Path;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Expiry {
    /// Flights that had files deleted.
    pub flights: usize,
    pub files: usize,
    pub bytes: u64,
    /// Files past retention kept because a clue was raised from them.
    pub kept_for_clues: usize,
    /// Files a clue came from deleted past the clue footage period (counted in `files` too).
    pub clue_files: usize,
    /// Files that could not be deleted (retried next run).
    pub errors: usize,
}

/// How long footage is kept, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Periods {
    /// Footage no clue came from.
    pub footage_ms: i64,
    /// Footage a clue came from (none: as long as the flight record).
    pub clue_footage_ms: Option<i64>,
}

impl Periods {
    /// From `[drone]` (none: `footage_retention_days` is 0, everything is kept).
    pub(crate) fn of(cfg: &super::config::DroneConfig) -> Option<Periods> {
        let ms = |days: u64| {
            i64::try_from(days)
                .unwrap_or(i64::MAX)
                .saturating_mul(86_400_000)
        };
        (cfg.footage_retention_days > 0).then(|| Periods {
            footage_ms: ms(cfg.footage_retention_days),
            clue_footage_ms: (cfg.clue_footage_retention_days > 0)
                .then(|| ms(cfg.clue_footage_retention_days)),
        })
    }
}

/// The clues whose footage is past the clue footage period and not yet deleted: the ones
/// [`expire`] needs to know are closed before it deletes their footage.
pub(crate) fn clues_due(flights: &FlightStore, now_ms: i64, periods: Periods) -> BTreeSet<i64> {
    let Some(clue_ms) = periods.clue_footage_ms else {
        return BTreeSet::new();
    };
    let mut due = BTreeSet::new();
    for f in flights.list() {
        let since = f.finished_ms.unwrap_or(f.created_ms);
        if matches!(f.status, Status::Queued | Status::Processing)
            || now_ms.saturating_sub(since) < clue_ms.max(periods.footage_ms)
        {
            continue;
        }
        let live: BTreeSet<&str> = f
            .files
            .iter()
            .filter(|x| x.expired_ms.is_none())
            .map(|x| x.name.as_str())
            .collect();
        due.extend(
            f.findings
                .iter()
                .filter(|x| live.contains(source_file(&x.frame)))
                .filter_map(|x| x.clue_id),
        );
    }
    due
}

/// The uploaded file a finding's frame came from: `DJI_0002.MP4@12000ms` from `DJI_0002.MP4`.
fn source_file(frame: &str) -> &str {
    frame.split('@').next().unwrap_or(frame)
}

/// Deletes the footage of flights finished more than `periods.footage_ms` before `now_ms`
/// (the files a clue came from: more than `periods.clue_footage_ms`, and none of whose clues
/// is in `open`).
pub(crate) fn expire(
    flights: &FlightStore,
    now_ms: i64,
    periods: Periods,
    open: &BTreeSet<i64>,
) -> Expiry {
    let mut out = Expiry::default();
    for f in flights.list() {
        if matches!(f.status, Status::Queued | Status::Processing) {
            continue;
        }
        let since = f.finished_ms.unwrap_or(f.created_ms);
        let age = now_ms.saturating_sub(since);
        if age < periods.footage_ms {
            continue;
        }
        let clue_footage_expired = periods.clue_footage_ms.is_some_and(|p| age >= p);
        // Each file a clue came from, and whether one of its clues is still open.
        let mut cited: std::collections::BTreeMap<&str, bool> = Default::default();
        for x in &f.findings {
            if let Some(id) = x.clue_id {
                *cited.entry(source_file(&x.frame)).or_default() |= open.contains(&id);
            }
        }
        let dir = flights.dir(f.id);
        let mut expired = Vec::new();
        let mut clue_files = Vec::new();
        for file in f.files.iter().filter(|x| x.expired_ms.is_none()) {
            let of_an_open_clue = cited.get(file.name.as_str()).copied();
            let of_a_clue = of_an_open_clue.is_some();
            if of_a_clue && (!clue_footage_expired || of_an_open_clue == Some(true)) {
                out.kept_for_clues += 1;
                continue;
            }
            match remove_footage(&dir, &file.name) {
                Ok(bytes) => {
                    out.files += 1;
                    out.bytes += bytes;
                    expired.push(file.name.clone());
                    if of_a_clue {
                        out.clue_files += 1;
                        clue_files.push(file.name.clone());
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    tracing::warn!(flight = f.id, file = %file.name, error = %e,
                        "expired footage not deleted; retried next run");
                }
            }
        }
        if expired.is_empty() {
            continue;
        }
        out.flights += 1;
        if clue_files.is_empty() {
            tracing::info!(flight = f.id, site = %f.site, files = ?expired,
                "flight footage past drone.footage_retention_days deleted");
        } else {
            tracing::info!(flight = f.id, site = %f.site, files = ?expired,
                clue_files = ?clue_files,
                "flight footage past drone.footage_retention_days deleted, and the footage \
                 clues came from past drone.clue_footage_retention_days");
        }
        flights.update(f.id, true, |fl| {
            for file in fl.files.iter_mut() {
                if expired.contains(&file.name) {
                    file.expired_ms = Some(now_ms);
                }
            }
        });
    }
    out
}

/// Removes `name`, `name.part` and `frames-name/` under `dir`; returns the bytes freed.
/// Missing ones are fine (already gone).
fn remove_footage(dir: &Path, name: &str) -> std::io::Result<u64> {
    let mut bytes = 0;
    for path in [dir.join(name), super::upload::part_path(dir, name)] {
        match std::fs::metadata(&path) {
            Ok(m) => {
                std::fs::remove_file(&path)?;
                bytes += m.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let frames = dir.join(format!("frames-{name}"));
    match std::fs::remove_dir_all(&frames) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drone::flight::{FileState, Finding};
    use crate::drone::upload::FileKind;

    const DAY: i64 = 86_400_000;

    fn file(name: &str) -> FileState {
        FileState {
            name: name.into(),
            kind: FileKind::Still,
            received: 5,
            total: Some(5),
            complete: true,
            sha256: None,
            expired_ms: None,
        }
    }

    fn finding(frame: &str, clue_id: Option<i64>) -> Finding {
        Finding {
            id: 1,
            task_id: None,
            class: "truck".into(),
            confidence: 0.9,
            lat: 0.0,
            lon: 0.0,
            error_m: 1.0,
            time_ms: 0,
            frame: frame.into(),
            clue_id,
            bbox: [0.0; 4],
        }
    }

    fn periods(footage_days: i64, clue_footage_days: Option<i64>) -> Periods {
        Periods {
            footage_ms: footage_days * DAY,
            clue_footage_ms: clue_footage_days.map(|d| d * DAY),
        }
    }

    /// A flight created at `at_ms` with `names` on disk, finished at `at_ms` with `status`.
    fn flight(store: &FlightStore, at_ms: i64, status: Status, names: &[&str]) -> u64 {
        let f = store.create("s1".into(), None, "pilot#1".into(), at_ms);
        let dir = store.dir(f.id);
        for n in names {
            std::fs::write(dir.join(n), b"jpeg!").expect("write");
        }
        store.update(f.id, true, |fl| {
            fl.status = status;
            fl.finished_ms = Some(at_ms);
            fl.files = names.iter().map(|n| file(n)).collect();
        });
        f.id
    }

    #[test]
    fn old_footage_goes_except_what_a_clue_came_from_and_flights_in_work_are_left_alone() {
        let root = tempfile::tempdir().expect("dir");
        let store = FlightStore::open(root.path().to_path_buf()).expect("open");
        let now = 400 * DAY;
        let old = flight(
            &store,
            now - 100 * DAY,
            Status::Done,
            &["a.jpg", "b.jpg", "c.MP4"],
        );
        std::fs::create_dir_all(store.dir(old).join("frames-c.MP4")).expect("frames");
        std::fs::write(store.dir(old).join("frames-c.MP4/000001.jpg"), b"f").expect("frame");
        store.update(old, true, |f| {
            f.findings = vec![
                finding("b.jpg", Some(7)),
                finding("a.jpg", None),
                finding("c.MP4@12000ms", Some(8)),
            ];
        });
        let recent = flight(&store, now - 10 * DAY, Status::Done, &["r.jpg"]);
        let busy = flight(&store, now - 100 * DAY, Status::Processing, &["p.jpg"]);

        let e = expire(&store, now, periods(90, None), &BTreeSet::new());
        assert_eq!(
            (e.flights, e.files, e.bytes, e.kept_for_clues, e.errors),
            (1, 1, 5, 2, 0),
            "{e:?}"
        );
        let dir = store.dir(old);
        assert!(!dir.join("a.jpg").exists(), "no clue came from it");
        assert!(dir.join("b.jpg").exists(), "a clue came from it");
        assert!(dir.join("c.MP4").exists(), "a clue came from a frame of it");
        assert!(dir.join("frames-c.MP4/000001.jpg").exists());
        assert!(store.dir(recent).join("r.jpg").exists(), "not old enough");
        assert!(store.dir(busy).join("p.jpg").exists(), "being processed");
        let marked = store.get(old).expect("flight");
        let a = marked.files.iter().find(|f| f.name == "a.jpg").expect("a");
        assert_eq!(a.expired_ms, Some(now));
        // The mark is saved: after a restart the old flight loses nothing more; the flight
        // that was processing is failed by the restart and now goes too.
        let reopened = FlightStore::open(root.path().to_path_buf()).expect("reopen");
        let e = expire(&reopened, now + DAY, periods(90, None), &BTreeSet::new());
        assert_eq!((e.flights, e.files, e.kept_for_clues), (1, 1, 2), "{e:?}");
        assert!(!store.dir(busy).join("p.jpg").exists());
        assert!(dir.join("b.jpg").exists());
    }

    #[test]
    fn footage_a_clue_came_from_goes_after_the_second_longer_period() {
        let root = tempfile::tempdir().expect("dir");
        let store = FlightStore::open(root.path().to_path_buf()).expect("open");
        let now = 1000 * DAY;
        let old = flight(
            &store,
            now - 800 * DAY,
            Status::Done,
            &["a.jpg", "b.jpg", "c.MP4"],
        );
        store.update(old, true, |f| {
            f.findings = vec![finding("b.jpg", Some(7)), finding("c.MP4@3000ms", Some(8))];
        });
        std::fs::create_dir_all(store.dir(old).join("frames-c.MP4")).expect("frames");
        let younger = flight(&store, now - 400 * DAY, Status::Done, &["y.jpg"]);
        store.update(younger, true, |f| {
            f.findings = vec![finding("y.jpg", Some(9))]
        });

        // Due: the clues of the old flight only (400 days < 730 for the younger one).
        assert_eq!(
            clues_due(&store, now, periods(90, Some(730))),
            BTreeSet::from([7, 8])
        );
        // Clue 8 is still open: c.MP4 stays while it is; clue 7 is closed: b.jpg goes.
        let e = expire(&store, now, periods(90, Some(730)), &BTreeSet::from([8]));
        assert_eq!(
            (e.flights, e.files, e.clue_files, e.kept_for_clues, e.errors),
            (1, 2, 1, 2, 0),
            "{e:?}"
        );
        assert!(store.dir(old).join("c.MP4").exists(), "clue 8 is open");
        assert!(!store.dir(old).join("b.jpg").exists(), "clue 7 is closed");
        // Clue 8 closed: the next run takes its footage too.
        let e = expire(&store, now, periods(90, Some(730)), &BTreeSet::new());
        assert_eq!(
            (e.flights, e.files, e.clue_files, e.kept_for_clues, e.errors),
            (1, 1, 1, 1, 0),
            "{e:?}"
        );
        let dir = store.dir(old);
        for gone in ["a.jpg", "b.jpg", "c.MP4", "frames-c.MP4"] {
            assert!(!dir.join(gone).exists(), "{gone}: past both periods");
        }
        assert!(
            store.dir(younger).join("y.jpg").exists(),
            "a clue came from it, 400 days < 730"
        );
        let marked = store.get(old).expect("flight");
        assert!(marked.files.iter().all(|f| f.expired_ms == Some(now)));
        assert_eq!(marked.findings.len(), 2, "the record and its findings stay");
        // 0 (None) keeps them with the flight record.
        let e = expire(
            &store,
            now + 5000 * DAY,
            periods(90, None),
            &BTreeSet::new(),
        );
        assert_eq!((e.files, e.kept_for_clues), (0, 1), "{e:?}");
    }

    #[test]
    fn the_clue_footage_period_is_zero_or_at_least_the_footage_period() {
        let e = crate::config::Config::from_toml(
            "[drone]\nfootage_retention_days = 90\nclue_footage_retention_days = 30\n",
        )
        .expect_err("shorter");
        assert!(
            e.to_string().contains("drone.clue_footage_retention_days"),
            "{e}"
        );
        let ok = crate::config::Config::from_toml(
            "[drone]\nfootage_retention_days = 90\nclue_footage_retention_days = 0\n",
        )
        .expect("0 keeps them");
        let p = Periods::of(&ok.drone).expect("periods");
        assert_eq!(p.clue_footage_ms, None);
        let dflt = crate::config::Config::from_toml("").expect("default");
        assert_eq!(
            Periods::of(&dflt.drone).map(|p| p.clue_footage_ms),
            Some(Some(730 * DAY))
        );
        let keep_all =
            crate::config::Config::from_toml("[drone]\nfootage_retention_days = 0\n").expect("0");
        assert_eq!(Periods::of(&keep_all.drone), None, "0 keeps all footage");
    }

    #[test]
    fn an_abandoned_upload_loses_its_unfinished_part_too() {
        let root = tempfile::tempdir().expect("dir");
        let store = FlightStore::open(root.path().to_path_buf()).expect("open");
        let id = flight(&store, 0, Status::Uploading, &["x.jpg"]);
        let dir = store.dir(id);
        std::fs::remove_file(dir.join("x.jpg")).expect("rm");
        std::fs::write(crate::drone::upload::part_path(&dir, "x.jpg"), b"hal").expect("part");
        let e = expire(&store, 91 * DAY, periods(90, None), &BTreeSet::new());
        assert_eq!((e.files, e.bytes), (1, 3), "{e:?}");
        assert!(!crate::drone::upload::part_path(&dir, "x.jpg").exists());
        assert!(dir.join("flight.json").exists(), "the record stays");
    }
}
