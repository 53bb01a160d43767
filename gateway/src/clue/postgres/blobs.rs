//! Evidence files in PostgreSQL, content-addressed (`evidence_blobs`, keyed by SHA-256).
//!
//! Why in the database rather than a shared folder: every gateway already reaches the
//! database, so evidence written by one is readable by all with nothing more to deploy, back
//! up or secure (a shared file system is one more service, and one more place to keep in step
//! with the clue rows). The cost is database size: frames are tens of kB, and the retention
//! job deletes files no live evidence row cites. An object store (S3-like) would fit the same
//! [`BlobStore`] trait if the pool ever outgrows that.

use super::{Conn, Pool};
use crate::clue::evidence::BlobStore;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct PgBlobs {
    pool: Arc<Pool>,
}

impl PgBlobs {
    pub(super) fn new(pool: Arc<Pool>) -> PgBlobs {
        PgBlobs { pool }
    }

    fn conn(&self) -> Result<Conn, String> {
        self.pool.get().map_err(|e| e.to_string())
    }
}

impl BlobStore for PgBlobs {
    fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), String> {
        self.conn()?
            .execute(
                "INSERT INTO evidence_blobs (sha256, bytes, created_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes, &crate::clock::now_ms()],
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        self.conn()?
            .query_opt(
                "SELECT bytes FROM evidence_blobs WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(|e| e.to_string())?
            .map(|r| r.try_get(0).map_err(|e| e.to_string()))
            .transpose()
    }

    fn remove(&self, sha256: &str) -> Result<bool, String> {
        Ok(self
            .conn()?
            .execute("DELETE FROM evidence_blobs WHERE sha256 = $1", &[&sha256])
            .map_err(|e| e.to_string())?
            == 1)
    }

    #[cfg(test)]
    fn exists(&self, sha256: &str) -> bool {
        self.conn()
            .and_then(|mut c| {
                c.query_opt("SELECT 1 FROM evidence_blobs WHERE sha256 = $1", &[&sha256])
                    .map_err(|e| e.to_string())
            })
            .is_ok_and(|r| r.is_some())
    }
}
