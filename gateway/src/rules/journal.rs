//! Append-only journals of registrations that excuse devices from clues (pump-outs,
//! maintenance works): every registration is appended as one JSON line under the storage dir
//! (synced before the API answers), replayed into the rules' shared registry at start, and
//! written to the audit chain before it takes effect, because it silences clues.

use crate::clue::audit::AuditAction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A kind of record a [`Journal`] keeps, and how it reaches the rules.
pub(crate) trait JournalRecord: Serialize + DeserializeOwned + Clone {
    /// The registry the rules consult (shared by cloning).
    type Registry: std::fmt::Debug;
    /// What a record is, in messages ("pump-out").
    const WHAT: &'static str;
    /// The audit entry a registration writes.
    const AUDIT: AuditAction;
    /// The key of the record in the audit entry's detail (`{"pumpout": record}`).
    const DETAIL_KEY: &'static str;
    /// The site the record is about (lists are scoped by it).
    fn site(&self) -> &str;
    /// Makes the rules see the record.
    fn apply(&self, registry: &Self::Registry);
}

/// The checks every registration shares, with the message the API answers (400): plain ids
/// and a window that does not end before it starts. Each record adds its own limits.
pub(crate) fn check_span(
    site: &str,
    device: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<(), &'static str> {
    if !firmware::protocol::valid_segment(site) || !firmware::protocol::valid_segment(device) {
        return Err("site and device must be non-empty ids without wildcards");
    }
    if to_ms < from_ms {
        return Err("to_ms is before from_ms");
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("{what} journal {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a registration was not taken although it passed its checks (the API logs it and
/// answers 500).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    /// The audit chain did not take it: the registration is refused, nothing is silenced.
    #[error("not audited: {0}")]
    NotAudited(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The append-only journal in front of the shared registry.
#[derive(Debug)]
pub(crate) struct Journal<R: JournalRecord> {
    path: PathBuf,
    file: Mutex<File>,
    registry: R::Registry,
    records: Mutex<Vec<R>>,
}

impl<R: JournalRecord> Journal<R> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            what: R::WHAT,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Opens (creating) the journal and replays it into `registry`. Unreadable lines (a torn
    /// last write after a crash, hand edits) are skipped with a warning; the rest loads.
    pub(crate) fn open(path: &Path, registry: R::Registry) -> Result<Self, JournalError> {
        let io = Self::io(path);
        let mut records = Vec::new();
        if path.exists() {
            let reader = BufReader::new(File::open(path).map_err(&io)?);
            for (i, line) in reader.lines().enumerate() {
                let line = line.map_err(&io)?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<R>(&line) {
                    Ok(r) => {
                        r.apply(&registry);
                        records.push(r);
                    }
                    Err(e) => tracing::warn!(
                        path = %path.display(), line = i + 1, error = %e, what = R::WHAT,
                        "skipping an unreadable journal record"
                    ),
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(&io)?;
        // After a torn write, end that line first so the next record is not glued to it.
        if !ends_with_newline(path).map_err(&io)? {
            file.write_all(b"\n").map_err(&io)?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            registry,
            records: Mutex::new(records),
        })
    }

    /// Appends `record` durably, then makes the rules see it.
    pub(crate) fn record(&self, record: R) -> Result<(), JournalError> {
        let io = Self::io(&self.path);
        let mut line = serde_json::to_vec(&record).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        {
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&line).map_err(&io)?;
            f.sync_data().map_err(&io)?;
        }
        record.apply(&self.registry);
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        Ok(())
    }

    /// Registers a checked `record`: first into the audit chain through `audit`
    /// (`R::AUDIT`, detail `{R::DETAIL_KEY: record}`), then into the journal and the rules. A
    /// registration silences clues, so one the chain does not hold must not take effect: when
    /// `audit` fails nothing is journalled. Blocking (the audit write and the journal's sync):
    /// call it off the async workers.
    pub(crate) fn register_audited<E: std::fmt::Display>(
        &self,
        record: R,
        audit: impl FnOnce(AuditAction, &serde_json::Value) -> Result<(), E>,
    ) -> Result<(), RegisterError> {
        let mut detail = serde_json::Map::new();
        detail.insert(
            R::DETAIL_KEY.into(),
            serde_json::to_value(&record).map_err(|e| (Self::io(&self.path))(e.into()))?,
        );
        audit(R::AUDIT, &serde_json::Value::Object(detail))
            .map_err(|e| RegisterError::NotAudited(e.to_string()))?;
        Ok(self.record(record)?)
    }

    /// Records of `site` (all when `None`), oldest registration first.
    pub(crate) fn list(&self, site: Option<&str>) -> Vec<R> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| site.is_none_or(|s| r.site() == s))
            .cloned()
            .collect()
    }
}

/// Whether the file is empty or its last byte is a newline (reads one byte, not the file).
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}
