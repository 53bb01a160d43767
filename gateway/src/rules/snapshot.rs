//! Rule state across restarts. On a graceful shutdown (and every minute, so a crash loses at
//! most that) the rules task writes what the engine remembers (active conditions, minimum
//! durations running, cool-downs, readings windows, pending discharge judgements, trap
//! figures) to `{storage.dir}/rules-state.json`, together with the rule definitions it was built
//! from. At start the engine continues from it: rules whose definition is unchanged keep their
//! state, exactly as on a reload. Without this a restart would, for example, forget that a
//! cover has been open for 50 of its 60 allowed minutes.

use super::config::{RuleConfig, RulesSettings};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped when the state layout changes; an old snapshot is then ignored (with a warning).
pub(crate) const VERSION: u32 = 1;

/// File name under the storage dir.
pub(crate) const FILE_NAME: &str = "rules-state.json";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub rules: Vec<RuleConfig>,
    pub settings: RulesSettings,
    /// The engine's private state (its layout belongs to `engine`).
    pub state: serde_json::Value,
}

/// What [`Snapshot`] reads, written from borrowed parts (no copy of the engine's state).
#[derive(Serialize)]
pub(crate) struct SnapshotOut<'a, S> {
    pub version: u32,
    pub rules: &'a [RuleConfig],
    pub settings: &'a RulesSettings,
    pub state: S,
}

/// A snapshot in its temporary file, neither durable nor in place yet ([`Written::commit`]).
pub(crate) struct Written {
    file: std::fs::File,
    tmp: PathBuf,
    path: PathBuf,
}

/// Writes a snapshot through `write` into the temporary file next to `path` (buffered: the
/// text is never held whole).
pub(crate) fn write(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> serde_json::Result<()>,
) -> Result<Written, SnapshotError> {
    let io = |e| SnapshotError::Io(path.display().to_string(), e);
    let tmp = path.with_extension("json.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    write(&mut out).map_err(SnapshotError::Format)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(Written {
        file,
        tmp,
        path: path.to_path_buf(),
    })
}

impl Written {
    /// Makes the snapshot durable (fsync), then puts it in place (rename), so a crash
    /// mid-write leaves the previous one.
    pub(crate) fn commit(self) -> Result<(), SnapshotError> {
        let io = |e| SnapshotError::Io(self.path.display().to_string(), e);
        self.file.sync_all().map_err(io)?;
        drop(self.file);
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("rule state {0}: {1}")]
    Io(String, std::io::Error),
    #[error("rule state is not readable: {0}")]
    Format(serde_json::Error),
    #[error("rule state has version {0}, this gateway writes {VERSION}")]
    Version(u32),
    #[error("the rules saved with the state no longer compile: {0}")]
    OldRules(super::RulesError),
    #[error("the configured rules do not compile: {0}")]
    NewRules(super::RulesError),
}

impl Snapshot {
    /// Writes atomically (temporary file, fsync, rename), so a crash mid-write leaves the
    /// previous snapshot.
    #[cfg(test)]
    pub(crate) fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        write(path, |w| serde_json::to_writer(w, self))?.commit()
    }

    /// `None` when there is no snapshot yet.
    pub(crate) fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(SnapshotError::Format),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SnapshotError::Io(path.display().to_string(), e)),
        }
    }
}
