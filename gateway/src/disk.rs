//! Free space on a file system, so writes that outsiders can cause (drone footage, camera
//! frames, the evidence they become) are refused before they fill the disk that also holds
//! the evidence store, the outbox and the audit chain.
//!
//! A [`Floor`] is checked before a single byte is written: a refused write leaves nothing
//! behind, not even a partial file. Callers answer 507 Insufficient Storage and count it.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Bytes available to this (unprivileged) process on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Why a write was refused; the message names the config key that sets the floor.
#[derive(Debug, Error)]
pub enum FloorError {
    #[error(
        "not enough free space: {} MiB free, {} MiB must remain ({key})",
        free >> 20,
        min_free >> 20
    )]
    Below {
        free: u64,
        incoming: u64,
        min_free: u64,
        key: &'static str,
    },
    #[error("free space unknown ({source}): write refused")]
    Unknown {
        #[source]
        source: std::io::Error,
    },
}

/// At least `min_free` bytes must remain free on the file system of `dir` after a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    pub dir: PathBuf,
    pub min_free: u64,
    /// The config key that sets `min_free` (named in the refusal).
    pub key: &'static str,
}

impl Floor {
    /// Ok when `incoming` more bytes leave at least the floor free; logged when refused.
    pub(crate) fn check(&self, incoming: u64) -> Result<(), FloorError> {
        check_floor(&self.dir, incoming, self.min_free, self.key)
    }
}

/// [`Floor::check`] for a directory that is only known at the call (a flight's folder).
pub(crate) fn check_floor(
    dir: &Path,
    incoming: u64,
    min_free: u64,
    key: &'static str,
) -> Result<(), FloorError> {
    match free_bytes(dir) {
        Ok(free) if free.saturating_sub(incoming) >= min_free => Ok(()),
        Ok(free) => {
            tracing::warn!(dir = %dir.display(), free, incoming, min_free, key,
                "write refused: free space below the floor");
            Err(FloorError::Below {
                free,
                incoming,
                min_free,
                key,
            })
        }
        Err(source) => {
            tracing::error!(dir = %dir.display(), error = %source, "free space unknown");
            Err(FloorError::Unknown { source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_has_some_free_space_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(super::free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(super::free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_floor_above_the_free_space_refuses_and_names_its_key() {
        let dir = tempfile::tempdir().expect("dir");
        let free = free_bytes(dir.path()).expect("statvfs");
        let floor = |min_free| Floor {
            dir: dir.path().to_path_buf(),
            min_free,
            key: "storage.min_free_mb",
        };
        assert!(floor(0).check(0).is_ok());
        let e = floor(free.saturating_add(1 << 30))
            .check(0)
            .expect_err("above the free space");
        assert!(e.to_string().contains("storage.min_free_mb"), "{e}");
        // What the write itself would take counts against the floor too.
        assert!(floor(1).check(free.saturating_add(1 << 30)).is_err());
        let missing = Floor {
            dir: dir.path().join("missing"),
            ..floor(0)
        };
        assert!(matches!(missing.check(0), Err(FloorError::Unknown { .. })));
    }
}
