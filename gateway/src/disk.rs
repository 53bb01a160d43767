//! Free space on a file system, so uploads (drone footage) are refused before they fill the
//! disk that also holds the evidence store, the outbox and the audit chain.

use std::path::Path;

/// Bytes available to this (unprivileged) process on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_temp_dir_has_some_free_space_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(super::free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(super::free_bytes(&dir.path().join("missing")).is_err());
    }
}
