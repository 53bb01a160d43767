//! The SQLite backend: everything in `{storage.dir}/clues.sqlite` (WAL, migrations by
//! `PRAGMA user_version`), one file per concern beside the trait it implements. One
//! connection behind a mutex: SQLite has one writer anyway, and every change is a short
//! transaction (see `clues.rs` for the dedup path, `audit.rs` for how a change is recorded).

mod audit;
mod clues;
mod decisions;
mod delivery;
mod intake;
mod notices;
mod oversight;
mod owner_notices;
mod permits;
mod retention;
mod schema;
mod stays;
mod tokens;

pub use tokens::TokenInfo;

use super::StoreError;
use crate::clue::audit_key::{AuditKey, AuditKeyring};
use crate::clue::lifecycle::Status;
use crate::clue::model::*;
use crate::clue::signal::{GeoPoint, Subject};
use rusqlite::{Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Channels each change is queued for (`mqtt`, `webhook`).
    channels: Vec<&'static str>,
    /// From this many occurrences on, a clue is one level above its rule's level (0: never).
    raise_after: i64,
    /// Seals every new audit entry (none: plain entries, see `clue::audit`).
    key: Option<Arc<AuditKeyring>>,
    /// The open clues intake last wrote, by dedup key (see `intake.rs`). Only touched while
    /// `conn` is held.
    open_cache: Mutex<intake::OpenCache>,
    /// Whether intake plans from `open_cache` (off: every batch reads its open clues).
    use_open_cache: bool,
}

use super::{CLUE_COLS, json_col};

fn corrupt(what: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(what.into())))
}

fn clue_from_row(r: &Row) -> rusqlite::Result<Clue> {
    let level: String = r.get(3)?;
    let status: String = r.get(4)?;
    let escalation: String = r.get(22)?;
    let lat: Option<f64> = r.get(8)?;
    let lon: Option<f64> = r.get(9)?;
    Ok(Clue {
        id: r.get(0)?,
        rule: r.get(1)?,
        kind: r.get(2)?,
        level: parse_level(&level).ok_or_else(|| corrupt(format!("level {level}")))?,
        status: Status::parse(&status).ok_or_else(|| corrupt(format!("status {status}")))?,
        subject: Subject {
            site: r.get(5)?,
            device: r.get(6)?,
            plate: r.get(7)?,
            location: lat.zip(lon).map(|(lat, lon)| GeoPoint { lat, lon }),
            shop: r.get(28)?,
            owner: r.get(29)?,
        },
        dedup_key: r.get(10)?,
        title: r.get(11)?,
        detail: json_col(r.get(12)?),
        department: r.get(13)?,
        assisting: serde_json::from_str(&r.get::<_, String>(30)?)
            .map_err(|e| corrupt(format!("assisting: {e}")))?,
        assignee: r.get(14)?,
        resolution: r.get(15)?,
        first_seen_ms: r.get(16)?,
        last_seen_ms: r.get(17)?,
        occurrences: r.get(18)?,
        created_ms: r.get(19)?,
        updated_ms: r.get(20)?,
        deadline_ms: r.get(21)?,
        escalation: Escalation::parse(&escalation)
            .ok_or_else(|| corrupt(format!("escalation {escalation}")))?,
        claimed_ms: r.get(23)?,
        resolved_ms: r.get(24)?,
        closed_ms: r.get(25)?,
        cleared_ms: r.get(26)?,
        cleared_note: r.get(27)?,
    })
}

fn read_clue(conn: &Connection, id: i64) -> rusqlite::Result<Option<Clue>> {
    conn.query_row(
        &format!("SELECT {CLUE_COLS} FROM clues WHERE id = ?1"),
        [id],
        clue_from_row,
    )
    .optional()
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`; changes are queued for delivery
    /// on `channels`.
    pub fn open(path: &Path, channels: Vec<&'static str>) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Statement journals (each insert checked by a foreign key or a trigger inside a
        // larger transaction keeps one) live in memory instead of temporary files: they only
        // undo one statement, the WAL still makes the transaction durable.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            channels,
            raise_after: 0,
            key: None,
            open_cache: Mutex::new(intake::OpenCache::default()),
            use_open_cache: true,
        })
    }

    #[cfg(test)]
    /// Seals every audit entry written from now on with `key`, and verifies with it.
    pub(crate) fn with_audit_key(self, key: Option<Arc<AuditKey>>) -> SqliteStore {
        self.with_audit_keyring(key.map(|k| Arc::new(AuditKeyring::single(k))))
    }

    /// Seals every audit entry written from now on with the ring's current key, and verifies
    /// with every key of the ring (retired keys for the entries they sealed).
    pub(crate) fn with_audit_keyring(mut self, keys: Option<Arc<AuditKeyring>>) -> SqliteStore {
        self.key = keys;
        self
    }

    pub(super) fn key(&self) -> Option<&AuditKey> {
        self.key.as_deref().map(|r| r.current().as_ref())
    }

    pub(super) fn keyring(&self) -> Option<&AuditKeyring> {
        self.key.as_deref()
    }

    /// Repetition raises the level: from `n` occurrences on, one level above the rule's.
    pub(crate) fn with_raise_after(mut self, n: u32) -> SqliteStore {
        self.raise_after = n as i64;
        self
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether intake plans repeats from its cache of open clues (the default) or reads them
    /// back every batch (the reference the benchmark measures it against).
    pub fn with_open_cache(mut self, on: bool) -> SqliteStore {
        self.use_open_cache = on;
        self
    }

    /// The open-clue cache; take it only while holding [`SqliteStore::conn`].
    fn open_cache(&self) -> MutexGuard<'_, intake::OpenCache> {
        self.open_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection (the migration to PostgreSQL reads tables through it).
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn())
    }
}
