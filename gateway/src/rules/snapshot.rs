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
use std::path::Path;

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
    pub(crate) fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let io = |e| SnapshotError::Io(path.display().to_string(), e);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(self).map_err(SnapshotError::Format)?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
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

/// Serde helper: a map with non-string keys as a list of pairs (JSON keys must be strings).
pub(crate) mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;
    use std::hash::Hash;

    pub(crate) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub(crate) fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
