//! Evidence files, content-addressed by SHA-256: `{storage.dir}/evidence/ab/cdef…`, or, when
//! several gateways share a PostgreSQL clue store, in that database (a [`BlobStore`]) so that
//! every gateway can read what any of them stored.
//!
//! The same bytes are stored once however many clues cite them; the hash in the clue's record
//! is the file's name, and every read re-hashes the bytes so a file changed on disk is reported
//! rather than served.

use super::audit::sha256_hex;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EvidenceError {
    #[error("evidence {0}: not a SHA-256 hex digest")]
    BadHash(String),
    #[error("evidence {0} not found")]
    NotFound(String),
    #[error("evidence {hash} was altered on disk (its content hashes to {actual})")]
    Tampered { hash: String, actual: String },
    #[error("evidence store: {0}")]
    Backend(String),
    /// Writing would leave less than the storage floor free: nothing was written.
    #[error("evidence not stored: {0}")]
    NoSpace(#[from] crate::disk::FloorError),
    #[error("evidence store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where files live when not in a folder: bytes by their SHA-256 hex name. The
/// [`EvidenceStore`] checks names and hashes; a blob store only keeps bytes.
pub(crate) trait BlobStore: Send + Sync {
    /// Stores `bytes` under `sha256` (nothing when already there).
    fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), String>;
    fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, String>;
    /// False when it was not there.
    fn remove(&self, sha256: &str) -> Result<bool, String>;
    #[cfg(test)]
    fn exists(&self, sha256: &str) -> bool;
}

#[derive(Clone)]
pub(crate) struct EvidenceStore {
    dir: PathBuf,
    /// When set, files live here instead of under `dir`.
    blobs: Option<std::sync::Arc<dyn BlobStore>>,
    /// Free space that must remain after a file is written (files under `dir` only: a shared
    /// database watches its own disk).
    floor: Option<crate::disk::Floor>,
}

impl std::fmt::Debug for EvidenceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceStore")
            .field("dir", &self.dir)
            .field("blobs", &self.blobs.is_some())
            .field("floor", &self.floor)
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl EvidenceStore {
    /// `dir` is `{storage.dir}/evidence`; created if missing.
    pub(crate) fn open(dir: impl Into<PathBuf>) -> Result<EvidenceStore, EvidenceError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(EvidenceStore {
            dir,
            blobs: None,
            floor: None,
        })
    }

    /// Refuses new files ([`EvidenceError::NoSpace`]) that would leave less than `floor` free.
    pub(crate) fn with_floor(mut self, floor: crate::disk::Floor) -> EvidenceStore {
        self.floor = Some(floor);
        self
    }

    /// Files in `blobs` (a database shared by every gateway) rather than a folder.
    pub(crate) fn in_blobs(blobs: std::sync::Arc<dyn BlobStore>) -> EvidenceStore {
        EvidenceStore {
            dir: PathBuf::new(),
            blobs: Some(blobs),
            floor: None,
        }
    }

    fn path_of(&self, hash: &str) -> Result<PathBuf, EvidenceError> {
        let valid = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(EvidenceError::BadHash(hash.chars().take(80).collect()));
        }
        Ok(self.dir.join(&hash[..2]).join(&hash[2..]))
    }

    /// Stores `bytes` (once) and returns their SHA-256. Written to a temporary file, fsynced,
    /// renamed, and the directory fsynced: a crash never leaves a partial file under a valid
    /// name, and once this returns the file and its name survive a power loss (the clue that
    /// refers to it is committed after this).
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<String, EvidenceError> {
        use std::io::Write;
        let hash = sha256_hex(&[bytes]);
        let path = self.path_of(&hash)?;
        if let Some(b) = &self.blobs {
            b.put(&hash, bytes).map_err(EvidenceError::Backend)?;
            return Ok(hash);
        }
        if path.exists() {
            return Ok(hash);
        }
        if let Some(floor) = &self.floor {
            floor.check(bytes.len() as u64)?;
        }
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        let new_dir = !parent.exists();
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        if new_dir {
            sync_dir(&self.dir)?;
        }
        let tmp = parent.join(format!(".{}.tmp{}", &hash[2..10], std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&parent)?;
        Ok(hash)
    }

    /// Reads the file named `hash` and checks its content still hashes to it.
    pub(crate) fn get(&self, hash: &str) -> Result<Vec<u8>, EvidenceError> {
        let path = self.path_of(hash)?;
        let read = match &self.blobs {
            Some(b) => match b.get(hash).map_err(EvidenceError::Backend)? {
                Some(bytes) => Ok(bytes),
                None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
            None => std::fs::read(&path),
        };
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EvidenceError::NotFound(hash.to_string()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let actual = sha256_hex(&[&bytes]);
        if actual != hash {
            return Err(EvidenceError::Tampered {
                hash: hash.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }
}

impl EvidenceStore {
    /// Deletes the file named `hash` (retention); false when it was not there.
    pub(crate) fn remove(&self, hash: &str) -> Result<bool, EvidenceError> {
        let path = self.path_of(hash)?;
        if let Some(b) = &self.blobs {
            return b.remove(hash).map_err(EvidenceError::Backend);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path)(e)),
        }
    }

    #[cfg(test)]
    /// Whether the file named `hash` is on disk.
    pub(crate) fn exists(&self, hash: &str) -> bool {
        match &self.blobs {
            Some(b) => self.path_of(hash).is_ok() && b.exists(hash),
            None => self.path_of(hash).is_ok_and(|p| p.exists()),
        }
    }
}

/// Makes the entries of `dir` (a new name, a rename) durable.
fn sync_dir(dir: &Path) -> Result<(), EvidenceError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_their_sha256_and_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = EvidenceStore::open(dir.path().join("evidence")).expect("open");
        let h = ev.put(b"abc").expect("put");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(
            dir.path()
                .join("evidence/ba/7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .exists()
        );
        assert_eq!(ev.put(b"abc").expect("again"), h);
        assert_eq!(ev.get(&h).expect("get"), b"abc");
        assert!(ev.remove(&h).expect("remove"));
        assert!(!ev.exists(&h));
        assert!(!ev.remove(&h).expect("twice"));
    }

    #[test]
    fn below_the_floor_nothing_is_written_but_a_file_already_there_is_still_cited() {
        let dir = tempfile::tempdir().expect("dir");
        let ev = EvidenceStore::open(dir.path().join("evidence")).expect("open");
        let old = ev.put(b"already there").expect("put");
        let free = crate::disk::free_bytes(dir.path()).expect("statvfs");
        let ev = ev.with_floor(crate::disk::Floor {
            dir: dir.path().to_path_buf(),
            min_free: free.saturating_add(1 << 30),
            key: "storage.min_free_mb",
        });
        assert!(matches!(
            ev.put(b"new frame"),
            Err(EvidenceError::NoSpace(_))
        ));
        assert_eq!(ev.put(b"already there").expect("no write needed"), old);
        let files: Vec<_> = walk(&dir.path().join("evidence"));
        assert_eq!(
            files.len(),
            1,
            "only the old file, no partial one: {files:?}"
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .flat_map(|e| {
                        let p = e.path();
                        if p.is_dir() { walk(&p) } else { vec![p] }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_file_changed_on_disk_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = EvidenceStore::open(dir.path()).expect("open");
        let h = ev.put(b"frame").expect("put");
        std::fs::write(dir.path().join(&h[..2]).join(&h[2..]), b"fake").expect("tamper");
        assert!(matches!(ev.get(&h), Err(EvidenceError::Tampered { .. })));
        assert!(matches!(
            ev.get("../../etc/passwd"),
            Err(EvidenceError::BadHash(_))
        ));
    }
}
