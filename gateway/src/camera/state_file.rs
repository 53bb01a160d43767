//! The file a camera feature saves what it is timing to at an orderly stop and reads back at
//! the start (parking stays, shop-front zones): one versioned JSON document per feature under
//! `storage.dir`, written atomically, set aside as `.bad` when it cannot be read, so both
//! features keep the same promises with one piece of code.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use thiserror::Error;

/// The layout version both state files carry; a file of another version is set aside.
const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub(crate) enum StateError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a state file this gateway wrote: {1}")]
    Format(String, serde_json::Error),
    #[error("{0}: version {1}, this gateway reads {VERSION}")]
    Version(String, u32),
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved<C> {
    version: u32,
    saved_at_ms: i64,
    cameras: Vec<C>,
}

/// Saves `cameras` to `path` atomically; with none, removes `path` (nothing to resume).
pub(crate) fn save<C: Serialize>(path: &Path, cameras: Vec<C>) -> Result<(), StateError> {
    if cameras.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StateError::Io(path.display().to_string(), e))
            }
            _ => Ok(()),
        };
    }
    let saved = Saved {
        version: VERSION,
        saved_at_ms: crate::clock::now_ms(),
        cameras,
    };
    let bytes = serde_json::to_vec(&saved)
        .map_err(|e| StateError::Format(path.display().to_string(), e))?;
    write_atomic(path, &bytes)
}

/// The cameras saved in `path`, or `None` when there is no file. A file that is not JSON of
/// this layout, or of another version, is renamed `.bad` (so the next start does not trip on
/// it again) and reported. The caller removes the file once it has resumed what it holds.
pub(crate) fn load<C: DeserializeOwned>(path: &Path) -> Result<Option<Vec<C>>, StateError> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Io(name, e)),
    };
    let parsed = serde_json::from_slice::<Saved<C>>(&bytes)
        .map_err(|e| StateError::Format(name.clone(), e))
        .and_then(|s| {
            if s.version == VERSION {
                Ok(s)
            } else {
                Err(StateError::Version(name.clone(), s.version))
            }
        });
    match parsed {
        Ok(s) => Ok(Some(s.cameras)),
        Err(e) => {
            let _ = std::fs::rename(path, path.with_extension("json.bad"));
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` so that a reader finds the old file or the whole new one: a
/// temporary file beside it, fsynced, then renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io = |e| StateError::Io(path.display().to_string(), e);
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_cameras_come_back_none_removes_the_file_and_garbage_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x-state.json");
        save(&path, vec!["a".to_string(), "b".to_string()]).expect("save");
        assert_eq!(
            load::<String>(&path).expect("load"),
            Some(vec!["a".into(), "b".into()])
        );
        save::<String>(&path, vec![]).expect("save none");
        assert!(!path.exists());
        assert_eq!(load::<String>(&path).expect("no file"), None);
        std::fs::write(&path, br#"{"version": 9, "saved_at_ms": 0, "cameras": []}"#).unwrap();
        assert!(matches!(
            load::<String>(&path),
            Err(StateError::Version(_, 9))
        ));
        assert!(path.with_extension("json.bad").exists() && !path.exists());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(load::<String>(&path), Err(StateError::Format(..))));
    }
}
