//! Clue storage behind a narrow trait ([`ClueStore`]) so a shared PostgreSQL can replace the
//! per-instance SQLite later.
//!
//! [`SqliteStore`] keeps everything in `{storage.dir}/clues.sqlite` (WAL, migrations by
//! `PRAGMA user_version`). Every change of a clue happens in one transaction together with its
//! audit entry and its delivery rows (a transactional outbox), so the log, the clue and what
//! the central platform is told can never disagree, even across a crash. Calls are blocking:
//! async callers use `spawn_blocking` (see `pool.rs`).

use super::audit::{self, AuditEntry, Broken, GENESIS, VerifyReport};
use super::auth::{Role, TokenRecord, TokenStore, TokenStoreError};
use super::lifecycle::{self, Action, LifecycleError, State, Status};
use super::model::*;
use super::oversight::{ClueRecord, Finding, LinkProposal, Warning};
use super::retention::{Expired, RetentionConfig, class_of};
use super::signal::{ClueEvent, GeoPoint, Level, Subject};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("clue {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("clue database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("clue database holds bad data: {0}")]
    Corrupt(String),
}

/// The delivery channels a change is queued for.
pub const CHANNEL_MQTT: &str = "mqtt";
pub const CHANNEL_WEBHOOK: &str = "webhook";

/// The narrow interface the pool, the API and delivery use.
pub trait ClueStore: Send + Sync {
    /// Dedup: attaches to the open clue with the same key or opens a new one with
    /// `deadline_ms`. Records the occurrence, its evidence and the audit entry.
    fn ingest(
        &self,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError>;
    /// [`ClueStore::ingest`] for many events in one transaction (each isolated by a
    /// savepoint: one bad event does not undo the others). Results are in input order.
    fn ingest_batch(
        &self,
        items: &[(ClueEvent, Vec<NewEvidence>, i64)],
        now_ms: i64,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError>;
    /// Records a clearance on the open clue of `dedup_key` (none: nothing to record).
    fn clear(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError>;
    /// Records a fault's recovery on its open clue: a clue whose kind is one of
    /// `resolve_kinds` (see [`kind_matches`]) is resolved (actor `pool`, event `recovered`),
    /// any other only marked (event `cleared`: recovered, to be confirmed by a person).
    /// A store that cannot resolve by itself only marks it.
    fn recover(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        resolve_kinds: &[String],
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError> {
        let _ = resolve_kinds;
        self.clear(dedup_key, at_ms, note, now_ms)
    }
    /// Applies a lifecycle action; refused transitions change nothing.
    fn act(
        &self,
        id: i64,
        action: &Action,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError>;
    /// Marks open clues past their deadline yellow, and red `red_after_ms` later.
    fn escalate(&self, now_ms: i64, red_after_ms: i64) -> Result<Vec<ClueChange>, StoreError>;
    fn get(&self, id: i64) -> Result<Option<ClueDetail>, StoreError>;
    fn list(&self, q: &ClueQuery) -> Result<Vec<Clue>, StoreError>;
    fn audit_of(&self, id: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// Audit entries in `[from_ms, to_ms)`; with a scope, only entries about clues of those
    /// sites (entries about no clue, such as token creation, are admin-only).
    fn audit_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: Option<&[String]>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// Checks the whole chain and that every clue row matches its last audit entry.
    fn verify_audit(&self) -> Result<VerifyReport, StoreError>;
    fn stats(&self, scope: Option<&[String]>, now_ms: i64) -> Result<Stats, StoreError>;
    /// Queued deliveries of `channel`, oldest first.
    fn pending(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    fn delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError>;
    fn attempt_failed(&self, id: i64) -> Result<(), StoreError>;
    /// Forgets deliveries acknowledged before `before_ms`.
    fn purge_delivered(&self, before_ms: i64) -> Result<usize, StoreError>;

    // Oversight, owner, privacy and retention.

    /// Clues changed since `since_ms` (and the clues they are linked with), each with its audit
    /// entries, for the supervision models.
    fn oversight_history(&self, since_ms: i64) -> Result<Vec<ClueRecord>, StoreError>;
    /// Links `p.linked` to the case led by `p.lead` (audited on both clues); returns the two
    /// `linked` changes, none when either clue was already linked.
    fn link(
        &self,
        p: &LinkProposal,
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError>;
    /// Stores findings as warnings: new ones are inserted, known ones updated and raised (a
    /// warning never goes from red back to yellow). Returns the warnings new or raised now.
    fn raise_warnings(&self, found: &[Finding], now_ms: i64) -> Result<Vec<Warning>, StoreError>;
    /// Warnings of the scope's sites (warnings about no site, e.g. an officer's outcomes, are
    /// for every supervisor), newest first.
    fn warnings(&self, scope: Option<&[String]>, limit: u32) -> Result<Vec<Warning>, StoreError>;
    /// Earlier clues of the same kind about the same subject opened after `since_ms`.
    fn prior_clues_since(&self, id: i64, since_ms: i64) -> Result<i64, StoreError>;
    /// Audits that `actor` received the original of evidence `sha256` of clue `clue_id`.
    fn record_original_access(
        &self,
        clue_id: i64,
        sha256: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Audits that `actor` is being given an unmasked camera frame (`latest.jpg`), which
    /// belongs to no clue. A store that cannot audit it refuses, and so the original.
    fn record_frame_access(
        &self,
        site: &str,
        camera: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _ = (site, camera, actor, role, now_ms);
        Err(StoreError::Conflict(
            "this clue store cannot audit frame access".into(),
        ))
    }
    /// Live evidence rows past their class's retention (at most `limit`).
    fn expired_evidence(
        &self,
        now_ms: i64,
        cfg: &RetentionConfig,
        limit: u32,
    ) -> Result<Vec<Expired>, StoreError>;
    /// Marks `e` purged and audits it (one transaction); false when it already was.
    fn purge_evidence(
        &self,
        e: &Expired,
        reason: &str,
        retention_s: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Hashes of evidence files that no live row cites any more (to delete from disk).
    fn unreferenced_files(&self) -> Result<Vec<String>, StoreError>;
}

/// Whether `kind` is named by one of `patterns` (exact, or a prefix with a trailing `*`).
pub fn kind_matches(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => p == kind,
    })
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE clues (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    site TEXT NOT NULL,
    device TEXT,
    plate TEXT,
    lat REAL,
    lon REAL,
    subject_key TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL,
    department TEXT,
    assignee TEXT,
    resolution TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    escalation TEXT NOT NULL,
    claimed_ms INTEGER,
    resolved_ms INTEGER,
    closed_ms INTEGER,
    cleared_ms INTEGER,
    cleared_note TEXT
);
CREATE UNIQUE INDEX clues_one_open_per_key ON clues(dedup_key) WHERE open = 1;
CREATE INDEX clues_site_status ON clues(site, status);
CREATE INDEX clues_subject ON clues(subject_key, kind);
CREATE INDEX clues_open_deadline ON clues(open, deadline_ms);
CREATE TABLE occurrences (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    at_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX occurrences_clue ON occurrences(clue_id, id);
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY,
    clue_id INTEGER NOT NULL REFERENCES clues(id),
    occurrence_id INTEGER NOT NULL REFERENCES occurrences(id),
    kind TEXT NOT NULL,
    name TEXT,
    content_type TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    body TEXT,
    at_ms INTEGER NOT NULL
);
CREATE INDEX evidence_clue ON evidence(clue_id, id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    clue_id INTEGER,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_clue ON audit(clue_id, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    sites TEXT NOT NULL,
    name TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_ms INTEGER
);
CREATE INDEX outbound_pending ON outbound(channel, id) WHERE delivered_ms IS NULL;
"#,
    // 2: tokens can be revoked.
    "ALTER TABLE tokens ADD COLUMN revoked_ms INTEGER;",
    // 3: oversight. Personal-data regions and retention tombstones on evidence, duplicate-act
    // links, supervision warnings. Kept out of the clue row so its audited digest is unchanged.
    r#"
ALTER TABLE evidence ADD COLUMN regions TEXT;
ALTER TABLE evidence ADD COLUMN purged_ms INTEGER;
ALTER TABLE evidence ADD COLUMN purge_reason TEXT;
CREATE INDEX evidence_sha ON evidence(sha256);
CREATE TABLE clue_links (
    linked_id INTEGER PRIMARY KEY REFERENCES clues(id),
    lead_id INTEGER NOT NULL REFERENCES clues(id),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX clue_links_lead ON clue_links(lead_id);
CREATE TABLE oversight_warnings (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    site TEXT,
    clue_id INTEGER,
    concerns TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX oversight_warnings_site ON oversight_warnings(site, updated_ms);
"#,
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Channels each change is queued for (`mqtt`, `webhook`).
    channels: Vec<&'static str>,
    /// From this many occurrences on, a clue is one level above its rule's level (0: never).
    raise_after: i64,
}

const CLUE_COLS: &str = "id, rule, kind, level, status, site, device, plate, lat, lon, dedup_key, \
     title, detail, department, assignee, resolution, first_seen_ms, last_seen_ms, occurrences, \
     created_ms, updated_ms, deadline_ms, escalation, claimed_ms, resolved_ms, closed_ms, \
     cleared_ms, cleared_note";

fn corrupt(what: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(what.into())))
}

fn json_col(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::String(s))
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
        },
        dedup_key: r.get(10)?,
        title: r.get(11)?,
        detail: json_col(r.get(12)?),
        department: r.get(13)?,
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

fn audit_from_row(r: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        clue_id: r.get(4)?,
        detail: json_col(r.get(5)?),
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

const AUDIT_COLS: &str = "seq, at_ms, actor, action, clue_id, detail, prev_hash, hash";

/// Hash of a clue row as the audit log records it after each change.
fn clue_digest(c: &Clue) -> String {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    audit::sha256_hex(&[audit::canonical_json(&v).as_bytes()])
}

/// Who, at what level of subject detail: history is kept per site/device/plate.
fn subject_key(s: &Subject) -> String {
    format!(
        "{}/{}/{}",
        s.site,
        s.device.as_deref().unwrap_or(""),
        s.plate.as_deref().unwrap_or("")
    )
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`; changes are queued for delivery
    /// on `channels`.
    pub fn open(path: &Path, channels: Vec<&'static str>) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} is newer than this gateway ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            channels,
            raise_after: 0,
        })
    }

    /// Repetition raises the level: from `n` occurrences on, one level above the rule's.
    pub fn with_raise_after(mut self, n: u32) -> SqliteStore {
        self.raise_after = n as i64;
        self
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the audit entry for a change of `clue_id` (with the clue's new digest) and
    /// queues the change for delivery. Must run inside the change's transaction.
    fn record(
        &self,
        tx: &Connection,
        at_ms: i64,
        actor: &str,
        action: &str,
        clue_id: i64,
        mut detail: Value,
    ) -> Result<ClueChange, StoreError> {
        let clue = read_clue(tx, clue_id)?.ok_or(StoreError::NotFound(clue_id))?;
        if let Value::Object(m) = &mut detail {
            m.insert("clue_sha256".into(), Value::String(clue_digest(&clue)));
            m.insert("status".into(), json!(clue.status));
            m.insert("level".into(), json!(clue.level));
        }
        let seq = append_audit(tx, at_ms, actor, action, Some(clue_id), &detail)?;
        let change = ClueChange {
            event_id: seq,
            event: action.to_string(),
            at_ms,
            actor: actor.to_string(),
            clue,
        };
        if !self.channels.is_empty() {
            let payload = serde_json::to_string(&change)
                .map_err(|e| StoreError::Corrupt(format!("encoding change: {e}")))?;
            let topic = format!(
                "clues/v1/{}/{}",
                change.clue.subject.site,
                change.clue.level.as_str()
            );
            for ch in &self.channels {
                tx.execute(
                    "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![ch, topic, payload, at_ms],
                )?;
            }
        }
        Ok(change)
    }

    /// Dedup of one event inside the caller's transaction.
    fn ingest_in(
        &self,
        tx: &Connection,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let open: Option<(i64, String, i64, String)> = tx
            .query_row(
                "SELECT id, level, occurrences, kind FROM clues WHERE dedup_key = ?1 AND open = 1",
                [&ev.dedup_key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let detail_text = ev.detail.to_string();
        let mut relevel = None;
        let (id, action) = match open {
            Some((id, was, occurrences, was_kind)) => {
                // Repetition never lowers the level, and enough of it raises it.
                let was = parse_level(&was).unwrap_or(ev.level);
                let mut level = was.max(ev.level);
                if self.raise_after > 0 && occurrences + 1 >= self.raise_after {
                    level = level.max(match ev.level {
                        Level::Low => Level::Medium,
                        Level::Medium | Level::High => Level::High,
                    });
                }
                // One problem, one clue: a worse stage (due -> overdue) takes over the kind;
                // the condition is present again, so an earlier recovery no longer holds.
                let kind = if ev.level > was { &ev.kind } else { &was_kind };
                tx.execute(
                    "UPDATE clues SET occurrences = occurrences + 1, \
                     last_seen_ms = MAX(last_seen_ms, ?2), first_seen_ms = MIN(first_seen_ms, ?2), \
                     level = ?3, title = ?4, detail = ?5, updated_ms = ?6, kind = ?7, \
                     cleared_ms = NULL, cleared_note = NULL WHERE id = ?1",
                    params![
                        id,
                        ev.at_ms,
                        level.as_str(),
                        ev.title,
                        detail_text,
                        now_ms,
                        kind
                    ],
                )?;
                if level > was {
                    relevel = Some(json!({"from_level": was, "to_level": level,
                        "from_kind": was_kind, "to_kind": kind}));
                    (id, "level_raised")
                } else {
                    (id, "occurrence")
                }
            }
            None => {
                let s = &ev.subject;
                tx.execute(
                    "INSERT INTO clues (dedup_key, rule, kind, level, status, open, site, device, \
                     plate, lat, lon, subject_key, title, detail, department, first_seen_ms, \
                     last_seen_ms, occurrences, created_ms, updated_ms, deadline_ms, escalation) \
                     VALUES (?1, ?2, ?3, ?4, 'new', 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
                     ?14, ?14, 1, ?15, ?15, ?16, 'none')",
                    params![
                        ev.dedup_key,
                        ev.rule,
                        ev.kind,
                        ev.level.as_str(),
                        s.site,
                        s.device,
                        s.plate,
                        s.location.map(|l| l.lat),
                        s.location.map(|l| l.lon),
                        subject_key(s),
                        ev.title,
                        detail_text,
                        ev.department,
                        ev.at_ms,
                        now_ms,
                        deadline_ms,
                    ],
                )?;
                (tx.last_insert_rowid(), "created")
            }
        };
        tx.execute(
            "INSERT INTO occurrences (clue_id, at_ms, received_ms, level, title, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                ev.at_ms,
                now_ms,
                ev.level.as_str(),
                ev.title,
                detail_text
            ],
        )?;
        let occ = tx.last_insert_rowid();
        let mut hashes = Vec::with_capacity(evidence.len());
        for e in evidence {
            tx.execute(
                "INSERT INTO evidence (clue_id, occurrence_id, kind, name, content_type, sha256, \
                 size, body, at_ms, regions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    id,
                    occ,
                    e.kind,
                    e.name,
                    e.content_type,
                    e.sha256,
                    e.size,
                    e.body.as_ref().map(audit::canonical_json),
                    ev.at_ms,
                    e.regions
                        .as_ref()
                        .and_then(|r| serde_json::to_string(r).ok())
                ],
            )?;
            hashes.push(e.sha256.clone());
        }
        let mut detail = json!({"occurrence_id": occ, "at_ms": ev.at_ms, "rule": ev.rule,
               "dedup_key": ev.dedup_key, "evidence_sha256": hashes});
        if let (Some(Value::Object(extra)), Value::Object(m)) = (relevel, &mut detail) {
            m.extend(extra);
        }
        let change = self.record(tx, now_ms, "pool", action, id, detail)?;
        Ok(change)
    }

    /// Every audit entry in order (for verify and export).
    pub fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"))?;
        let rows = st.query_map([], audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn append_audit(
    tx: &Connection,
    at_ms: i64,
    actor: &str,
    action: &str,
    clue_id: Option<i64>,
    detail: &Value,
) -> Result<i64, StoreError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let hash = audit::entry_hash(&prev, seq, at_ms, actor, action, clue_id, detail);
    tx.execute(
        "INSERT INTO audit (seq, at_ms, actor, action, clue_id, detail, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq,
            at_ms,
            actor,
            action,
            clue_id,
            audit::canonical_json(detail),
            prev,
            hash
        ],
    )?;
    Ok(seq)
}

/// The duplicate-act links of clue `id`: its lead, or the clues it leads.
fn read_links(conn: &Connection, id: i64) -> Result<Links, StoreError> {
    let link = |r: &Row| -> rusqlite::Result<ClueLink> {
        Ok(ClueLink {
            clue_id: r.get(0)?,
            department: r.get(1)?,
            reason: r.get(2)?,
            actor: r.get(3)?,
            at_ms: r.get(4)?,
        })
    };
    let lead = conn
        .query_row(
            "SELECT l.lead_id, c.department, l.reason, l.actor, l.at_ms FROM clue_links l \
             JOIN clues c ON c.id = l.lead_id WHERE l.linked_id = ?1",
            [id],
            link,
        )
        .optional()?;
    let mut st = conn.prepare(
        "SELECT l.linked_id, c.department, l.reason, l.actor, l.at_ms FROM clue_links l \
         JOIN clues c ON c.id = l.linked_id WHERE l.lead_id = ?1 ORDER BY l.linked_id",
    )?;
    let linked = st.query_map([id], link)?.collect::<Result<Vec<_>, _>>()?;
    Ok(Links { lead, linked })
}

fn warning_from_row(r: &Row) -> rusqlite::Result<Warning> {
    let level: String = r.get(2)?;
    Ok(Warning {
        id: r.get(0)?,
        finding: Finding {
            model: r.get(1)?,
            key: r.get(3)?,
            level: Escalation::parse(&level)
                .ok_or_else(|| corrupt(format!("warning level {level}")))?,
            site: r.get(4)?,
            clue_id: r.get(5)?,
            concerns: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
            message: r.get(7)?,
            detail: json_col(r.get(8)?),
        },
        first_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

const WARNING_COLS: &str =
    "id, model, level, key, site, clue_id, concerns, message, detail, first_ms, updated_ms";

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn median(mut v: Vec<i64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    };
    Some(m / 1000.0)
}

impl ClueStore for SqliteStore {
    fn ingest(
        &self,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let change = self.ingest_in(&tx, ev, evidence, deadline_ms, now_ms)?;
        tx.commit()?;
        Ok(change)
    }

    fn ingest_batch(
        &self,
        items: &[(ClueEvent, Vec<NewEvidence>, i64)],
        now_ms: i64,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError> {
        let mut conn = self.conn();
        let mut tx = conn.transaction()?;
        let mut out = Vec::with_capacity(items.len());
        for (ev, evidence, deadline_ms) in items {
            let sp = tx.savepoint()?;
            match self.ingest_in(&sp, ev, evidence, *deadline_ms, now_ms) {
                Ok(c) => {
                    sp.commit()?;
                    out.push(Ok(c));
                }
                Err(e) => {
                    // Dropping the savepoint rolls this event back.
                    drop(sp);
                    out.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn clear(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError> {
        self.recover(dedup_key, at_ms, note, &[], now_ms)
    }

    fn recover(
        &self,
        dedup_key: &str,
        at_ms: i64,
        note: &str,
        resolve_kinds: &[String],
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id: Option<(i64, String, String)> = tx
            .query_row(
                "SELECT id, status, kind FROM clues WHERE dedup_key = ?1 AND open = 1",
                [dedup_key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, status, kind)) = id else {
            return Ok(None);
        };
        let (action, detail) = if kind_matches(resolve_kinds, &kind) {
            // The fault itself reported its end (camera back, device reporting): nothing is
            // left for a person to do. Recorded like a resolution, by the pool.
            tx.execute(
                "UPDATE clues SET cleared_ms = ?2, cleared_note = ?3, updated_ms = ?4, \
                 status = 'resolved', open = 0, resolved_ms = ?4, resolution = ?5 WHERE id = ?1",
                params![id, at_ms, note, now_ms, format!("recovered: {note}")],
            )?;
            (
                "recovered",
                json!({"at_ms": at_ms, "note": note, "from": status, "to": "resolved",
                       "auto_resolved": true}),
            )
        } else {
            tx.execute(
                "UPDATE clues SET cleared_ms = ?2, cleared_note = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id, at_ms, note, now_ms],
            )?;
            (
                "cleared",
                json!({"at_ms": at_ms, "note": note, "to_confirm": true}),
            )
        };
        let change = self.record(&tx, now_ms, "pool", action, id, detail)?;
        tx.commit()?;
        Ok(Some(change))
    }

    fn act(
        &self,
        id: i64,
        action: &Action,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let clue = read_clue(&tx, id)?.ok_or(StoreError::NotFound(id))?;
        let before = State {
            status: clue.status,
            assignee: clue.assignee.clone(),
            department: clue.department.clone(),
            claimed_ms: clue.claimed_ms,
            resolved_ms: clue.resolved_ms,
            closed_ms: clue.closed_ms,
            resolution: clue.resolution.clone(),
        };
        let next = lifecycle::apply(&before, action, actor, now_ms)?;
        let res = tx.execute(
            "UPDATE clues SET status = ?2, open = ?3, assignee = ?4, department = ?5, \
             claimed_ms = ?6, resolved_ms = ?7, closed_ms = ?8, resolution = ?9, updated_ms = ?10 \
             WHERE id = ?1",
            params![
                id,
                next.status.as_str(),
                next.status.is_open() as i64,
                next.assignee,
                next.department,
                next.claimed_ms,
                next.resolved_ms,
                next.closed_ms,
                next.resolution,
                now_ms
            ],
        );
        match res {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "another open clue already has dedup key {}; work on that one",
                    clue.dedup_key
                )));
            }
            r => {
                r?;
            }
        }
        let mut detail = serde_json::to_value(action).unwrap_or(json!({}));
        if let Value::Object(m) = &mut detail {
            m.insert("from".into(), json!(before.status));
            m.insert("to".into(), json!(next.status));
            if next.department != before.department {
                // Lets oversight see a clue handed back to where it came from.
                m.insert("from_department".into(), json!(before.department));
            }
        }
        let change = self.record(&tx, now_ms, actor, action.name(), id, detail)?;
        tx.commit()?;
        Ok(change)
    }

    fn escalate(&self, now_ms: i64, red_after_ms: i64) -> Result<Vec<ClueChange>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let due: Vec<(i64, String, i64)> = {
            let mut st = tx.prepare(
                "SELECT id, escalation, deadline_ms FROM clues \
                 WHERE open = 1 AND escalation != 'red' AND deadline_ms < ?1 ORDER BY id",
            )?;
            st.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut changes = Vec::new();
        for (id, current, deadline) in due {
            let target = if now_ms > deadline.saturating_add(red_after_ms) {
                Escalation::Red
            } else {
                Escalation::Yellow
            };
            if Escalation::parse(&current).unwrap_or(Escalation::None) >= target {
                continue;
            }
            tx.execute(
                "UPDATE clues SET escalation = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, target.as_str(), now_ms],
            )?;
            changes.push(self.record(
                &tx,
                now_ms,
                "pool",
                "supervision",
                id,
                json!({"escalation": target, "deadline_ms": deadline,
                       "overdue_s": (now_ms - deadline) / 1000}),
            )?);
        }
        tx.commit()?;
        Ok(changes)
    }

    fn get(&self, id: i64) -> Result<Option<ClueDetail>, StoreError> {
        let conn = self.conn();
        let Some(clue) = read_clue(&conn, id)? else {
            return Ok(None);
        };
        let (prior, first): (i64, Option<i64>) = conn.query_row(
            "SELECT COUNT(*), MIN(first_seen_ms) FROM clues \
             WHERE subject_key = ?1 AND kind = ?2 AND id < ?3",
            params![subject_key(&clue.subject), clue.kind, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let hint = match (prior, clue.occurrences) {
            (0, 1) => "first violation on record for this subject".to_string(),
            (0, n) => format!("first clue for this subject; seen {n} times"),
            (p, _) => format!("repeated: {p} earlier clue(s) of this kind for this subject"),
        };
        let history = History {
            prior_clues: prior,
            first_seen_ms: first,
            first_violation: prior == 0,
            hint,
        };
        let recent_occurrences = {
            let mut st = conn.prepare(
                "SELECT id, at_ms, received_ms, level, title, detail FROM occurrences \
                 WHERE clue_id = ?1 ORDER BY id DESC LIMIT 50",
            )?;
            st.query_map([id], |r| {
                let level: String = r.get(3)?;
                Ok(Occurrence {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    received_ms: r.get(2)?,
                    level: parse_level(&level).ok_or_else(|| corrupt("occurrence level"))?,
                    title: r.get(4)?,
                    detail: json_col(r.get(5)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let evidence = {
            let mut st = conn.prepare(
                "SELECT id, occurrence_id, kind, name, content_type, sha256, size, body, at_ms, \
                 regions, purged_ms FROM evidence WHERE clue_id = ?1 ORDER BY id DESC LIMIT 200",
            )?;
            st.query_map([id], |r| {
                Ok(EvidenceItem {
                    id: r.get(0)?,
                    occurrence_id: r.get(1)?,
                    kind: r.get(2)?,
                    name: r.get(3)?,
                    content_type: r.get(4)?,
                    sha256: r.get(5)?,
                    size: r.get(6)?,
                    body: r.get::<_, Option<String>>(7)?.map(json_col),
                    at_ms: r.get(8)?,
                    regions: r
                        .get::<_, Option<String>>(9)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    purged_ms: r.get(10)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let links = read_links(&conn, id)?;
        Ok(Some(ClueDetail {
            clue,
            history,
            recent_occurrences,
            evidence,
            links,
            owner: None,
            leniency: None,
        }))
    }

    fn list(&self, q: &ClueQuery) -> Result<Vec<Clue>, StoreError> {
        let mut sql = format!("SELECT {CLUE_COLS} FROM clues WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: String| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(s) = q.status {
            push(&mut sql, "status =", s.as_str().into());
        }
        if let Some(l) = q.level {
            push(&mut sql, "level =", l.as_str().into());
        }
        if let Some(s) = &q.site {
            push(&mut sql, "site =", s.clone());
        }
        if let Some(k) = &q.kind {
            push(&mut sql, "kind =", k.clone());
        }
        if let Some(f) = q.from_ms {
            push(&mut sql, "created_ms >=", f.to_string());
        }
        if let Some(t) = q.to_ms {
            push(&mut sql, "created_ms <", t.to_string());
        }
        if let Some(scope) = &q.scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for s in scope {
                args.push(s.clone());
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND site IN ({})", marks.join(", ")));
        }
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(100_000)
        };
        sql.push_str(&format!(
            " ORDER BY open DESC, CASE level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END DESC, \
             last_seen_ms DESC, id DESC LIMIT {limit} OFFSET {}",
            q.offset
        ));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), clue_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn audit_of(&self, id: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {AUDIT_COLS} FROM audit WHERE clue_id = ?1 ORDER BY seq"
        ))?;
        let rows = st.query_map([id], audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn audit_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: Option<&[String]>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let cols = AUDIT_COLS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!(
            "SELECT {cols} FROM audit a LEFT JOIN clues c ON c.id = a.clue_id \
             WHERE a.at_ms >= ?1 AND a.at_ms < ?2"
        );
        let mut args: Vec<rusqlite::types::Value> = vec![from_ms.into(), to_ms.into()];
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::new();
            for s in scope {
                args.push(s.clone().into());
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND c.site IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY a.seq LIMIT 1000000");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), audit_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        let entries = self.audit_all()?;
        let mut last_digest: std::collections::BTreeMap<i64, (i64, String)> = Default::default();
        for e in &entries {
            if let (Some(c), Some(d)) = (e.clue_id, e.detail.get("clue_sha256")) {
                last_digest.insert(c, (e.seq, d.as_str().unwrap_or("").to_string()));
            }
        }
        let report = audit::verify(entries);
        if !report.ok {
            return Ok(report);
        }
        // The chain is intact; now every clue row must be what its last entry says it became.
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {CLUE_COLS} FROM clues ORDER BY id"))?;
        let clues = st.query_map([], clue_from_row)?;
        for c in clues {
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    return Ok(VerifyReport {
                        ok: false,
                        entries: report.entries,
                        broken: Some(Broken {
                            seq: 0,
                            what: format!("a clue row is unreadable: {e}"),
                        }),
                    });
                }
            };
            let bad = match last_digest.get(&c.id) {
                None => Some((0, format!("clue {} has no audit entry", c.id))),
                Some((seq, d)) if *d != clue_digest(&c) => Some((
                    *seq,
                    format!(
                        "clue {} was changed outside the gateway (row differs from this entry)",
                        c.id
                    ),
                )),
                Some(_) => None,
            };
            if let Some((seq, what)) = bad {
                return Ok(VerifyReport {
                    ok: false,
                    entries: report.entries,
                    broken: Some(Broken { seq, what }),
                });
            }
        }
        Ok(report)
    }

    fn stats(&self, scope: Option<&[String]>, now_ms: i64) -> Result<Stats, StoreError> {
        let q = ClueQuery {
            scope: scope.map(|s| s.to_vec()),
            ..Default::default()
        };
        if q.scope.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(Stats::default());
        }
        let mut sql = "SELECT level, status, kind, department, created_ms, claimed_ms, \
                       resolved_ms, escalation, open, deadline_ms FROM clues"
            .to_string();
        if let Some(scope) = &q.scope {
            let marks: Vec<String> = (1..=scope.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(" WHERE site IN ({})", marks.join(", ")));
        }
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let args = q.scope.clone().unwrap_or_default();
        let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
        let mut s = Stats::default();
        let (mut claim, mut resolve) = (Vec::new(), Vec::new());
        let mut disposed = 0u64;
        while let Some(r) = rows.next()? {
            let level: String = r.get(0)?;
            let status: String = r.get(1)?;
            let kind: String = r.get(2)?;
            let dept: Option<String> = r.get(3)?;
            let created: i64 = r.get(4)?;
            let claimed: Option<i64> = r.get(5)?;
            let resolved: Option<i64> = r.get(6)?;
            let esc: String = r.get(7)?;
            let open: i64 = r.get(8)?;
            let deadline: i64 = r.get(9)?;
            s.total += 1;
            *s.by_level.entry(level).or_default() += 1;
            *s.by_kind.entry(kind).or_default() += 1;
            *s.by_department
                .entry(dept.unwrap_or_else(|| "(none)".into()))
                .or_default() += 1;
            if open == 0 {
                disposed += 1;
            } else if deadline < now_ms {
                match esc.as_str() {
                    "red" => s.overdue_red += 1,
                    _ => s.overdue_yellow += 1,
                }
            }
            *s.by_status.entry(status).or_default() += 1;
            if let Some(c) = claimed {
                claim.push(c - created);
            }
            if let Some(r) = resolved {
                resolve.push(r - created);
            }
        }
        s.disposal_rate = if s.total == 0 {
            0.0
        } else {
            disposed as f64 / s.total as f64
        };
        s.median_time_to_claim_s = median(claim);
        s.median_time_to_resolve_s = median(resolve);
        Ok(s)
    }

    fn pending(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, topic, payload, attempts FROM outbound \
             WHERE channel = ?1 AND delivered_ms IS NULL ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![channel, limit], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                topic: r.get(1)?,
                payload: r.get(2)?,
                attempts: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbound SET delivered_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, now_ms],
        )?;
        Ok(())
    }

    fn purge_delivered(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM outbound WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1",
            [before_ms],
        )?)
    }

    fn attempt_failed(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbound SET attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }
    fn oversight_history(&self, since_ms: i64) -> Result<Vec<ClueRecord>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {CLUE_COLS} FROM clues WHERE updated_ms >= ?1 \
             OR id IN (SELECT lead_id FROM clue_links l JOIN clues c ON c.id = l.linked_id \
                       WHERE c.updated_ms >= ?1) \
             OR id IN (SELECT linked_id FROM clue_links l JOIN clues c ON c.id = l.lead_id \
                       WHERE c.updated_ms >= ?1) \
             ORDER BY id LIMIT 200000"
        ))?;
        let clues = st
            .query_map([since_ms], clue_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut audit_st = conn.prepare(&format!(
            "SELECT {AUDIT_COLS} FROM audit WHERE clue_id = ?1 ORDER BY seq"
        ))?;
        let mut out = Vec::with_capacity(clues.len());
        for clue in clues {
            let audit = audit_st
                .query_map([clue.id], audit_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let evidence: i64 = conn.query_row(
                "SELECT COUNT(*) FROM evidence WHERE clue_id = ?1",
                [clue.id],
                |r| r.get(0),
            )?;
            let linked_to: Option<i64> = conn
                .query_row(
                    "SELECT lead_id FROM clue_links WHERE linked_id = ?1",
                    [clue.id],
                    |r| r.get(0),
                )
                .optional()?;
            out.push(ClueRecord {
                clue,
                audit,
                evidence,
                linked_to,
            });
        }
        Ok(out)
    }

    fn link(
        &self,
        p: &LinkProposal,
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in [p.lead, p.linked] {
            read_clue(&tx, id)?.ok_or(StoreError::NotFound(id))?;
        }
        let already: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM clue_links WHERE linked_id IN (?1, ?2))",
            params![p.lead, p.linked],
            |r| r.get(0),
        )?;
        if already || p.lead == p.linked {
            return Ok(Vec::new());
        }
        tx.execute(
            "INSERT INTO clue_links (linked_id, lead_id, reason, actor, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.linked, p.lead, p.reason, actor, now_ms],
        )?;
        // Both clues' trails say so; both are delivered as changes (`linked`).
        let changes = vec![
            self.record(
                &tx,
                now_ms,
                actor,
                "linked",
                p.linked,
                json!({"lead": p.lead, "reason": p.reason}),
            )?,
            self.record(
                &tx,
                now_ms,
                actor,
                "linked",
                p.lead,
                json!({"linked": p.linked, "reason": p.reason}),
            )?,
        ];
        tx.commit()?;
        Ok(changes)
    }

    fn raise_warnings(&self, found: &[Finding], now_ms: i64) -> Result<Vec<Warning>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut changed = Vec::new();
        for f in found {
            let current: Option<String> = tx
                .query_row(
                    "SELECT level FROM oversight_warnings WHERE key = ?1",
                    [&f.key],
                    |r| r.get(0),
                )
                .optional()?;
            let concerns = serde_json::to_string(&f.concerns)
                .map_err(|e| StoreError::Corrupt(format!("encoding warning: {e}")))?;
            let detail = audit::canonical_json(&f.detail);
            let old = current.as_deref().and_then(Escalation::parse);
            let level = old.map_or(f.level, |o| o.max(f.level));
            match old {
                None => {
                    tx.execute(
                        "INSERT INTO oversight_warnings (key, model, level, site, clue_id, \
                         concerns, message, detail, first_ms, updated_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                        params![
                            f.key,
                            f.model,
                            level.as_str(),
                            f.site,
                            f.clue_id,
                            concerns,
                            f.message,
                            detail,
                            now_ms
                        ],
                    )?;
                }
                Some(o) => {
                    tx.execute(
                        "UPDATE oversight_warnings SET level = ?2, concerns = ?3, message = ?4, \
                         detail = ?5, updated_ms = CASE WHEN ?2 != ?7 THEN ?6 ELSE updated_ms END \
                         WHERE key = ?1",
                        params![
                            f.key,
                            level.as_str(),
                            concerns,
                            f.message,
                            detail,
                            now_ms,
                            o.as_str()
                        ],
                    )?;
                    if o == level {
                        continue;
                    }
                }
            }
            // New or raised: on the audit chain (no clue id: clue trails are visible to the
            // officers concerned, warnings are not).
            let seq = append_audit(
                &tx,
                now_ms,
                "oversight",
                "oversight_warning",
                None,
                &json!({"key": f.key, "model": f.model, "level": level, "clue": f.clue_id,
                        "site": f.site}),
            )?;
            let w = tx.query_row(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE key = ?1"),
                [&f.key],
                warning_from_row,
            )?;
            // To the central platform, for its supervisors: `oversight/v1/{site|all}/{level}`.
            if !self.channels.is_empty() {
                let payload = serde_json::to_string(&json!({
                    "event_id": seq, "event": "oversight_warning", "at_ms": now_ms,
                    "warning": w,
                }))
                .map_err(|e| StoreError::Corrupt(format!("encoding warning: {e}")))?;
                let topic = format!(
                    "oversight/v1/{}/{}",
                    w.finding.site.as_deref().unwrap_or("all"),
                    level.as_str()
                );
                for ch in &self.channels {
                    tx.execute(
                        "INSERT INTO outbound (channel, topic, payload, created_ms)                          VALUES (?1, ?2, ?3, ?4)",
                        params![ch, topic, payload, now_ms],
                    )?;
                }
            }
            changed.push(w);
        }
        tx.commit()?;
        Ok(changed)
    }

    fn warnings(&self, scope: Option<&[String]>, limit: u32) -> Result<Vec<Warning>, StoreError> {
        let mut sql = format!("SELECT {WARNING_COLS} FROM oversight_warnings");
        let args: Vec<String> = scope.map(|s| s.to_vec()).unwrap_or_default();
        if scope.is_some() {
            let marks: Vec<String> = (1..=args.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(
                " WHERE site IS NULL OR site IN ({})",
                marks.join(", ")
            ));
        }
        sql.push_str(&format!(
            " ORDER BY CASE level WHEN 'red' THEN 2 ELSE 1 END DESC, updated_ms DESC, id DESC \
             LIMIT {}",
            limit.clamp(1, 10_000)
        ));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), warning_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn prior_clues_since(&self, id: i64, since_ms: i64) -> Result<i64, StoreError> {
        let conn = self.conn();
        let clue = read_clue(&conn, id)?.ok_or(StoreError::NotFound(id))?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM clues WHERE subject_key = ?1 AND kind = ?2 AND id < ?3 \
             AND created_ms >= ?4",
            params![subject_key(&clue.subject), clue.kind, id, since_ms],
            |r| r.get(0),
        )?)
    }

    fn record_original_access(
        &self,
        clue_id: i64,
        sha256: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        append_audit(
            &tx,
            now_ms,
            actor,
            "evidence_original_access",
            Some(clue_id),
            &json!({"sha256": sha256, "role": role}),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn record_frame_access(
        &self,
        site: &str,
        camera: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        append_audit(
            &tx,
            now_ms,
            actor,
            "frame_original_access",
            None,
            &json!({"site": site, "camera": camera, "role": role}),
        )?;
        tx.commit()?;
        Ok(())
    }

    fn expired_evidence(
        &self,
        now_ms: i64,
        cfg: &RetentionConfig,
        limit: u32,
    ) -> Result<Vec<Expired>, StoreError> {
        let conn = self.conn();
        let mut out = Vec::new();
        let class_sql = [
            ("image", "e.kind = 'file' AND e.content_type LIKE 'image/%'"),
            (
                "file",
                "e.kind = 'file' AND (e.content_type IS NULL OR e.content_type NOT LIKE 'image/%')",
            ),
            ("readings", "e.kind = 'readings'"),
            ("note", "e.kind NOT IN ('file', 'readings')"),
        ];
        for (class, cond) in class_sql {
            let period = cfg.period_s(class);
            if period == 0 {
                continue;
            }
            let cutoff = now_ms.saturating_sub((period as i64).saturating_mul(1000));
            let open_cond = if cfg.keep_while_open {
                " AND c.open = 0"
            } else {
                ""
            };
            let mut st = conn.prepare(&format!(
                "SELECT e.id, e.clue_id, e.kind, e.content_type, e.sha256, e.at_ms \
                 FROM evidence e JOIN clues c ON c.id = e.clue_id \
                 WHERE e.purged_ms IS NULL AND e.at_ms < ?1 AND {cond}{open_cond} \
                 ORDER BY e.id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![cutoff, limit], |r| {
                let kind: String = r.get(2)?;
                let ct: Option<String> = r.get(3)?;
                Ok(Expired {
                    evidence_id: r.get(0)?,
                    clue_id: r.get(1)?,
                    class: class_of(&kind, ct.as_deref()),
                    kind,
                    sha256: r.get(4)?,
                    at_ms: r.get(5)?,
                })
            })?;
            out.extend(rows.collect::<Result<Vec<_>, _>>()?);
        }
        Ok(out)
    }

    fn purge_evidence(
        &self,
        e: &Expired,
        reason: &str,
        retention_s: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE evidence SET purged_ms = ?2, purge_reason = ?3, body = NULL \
             WHERE id = ?1 AND purged_ms IS NULL",
            params![e.evidence_id, now_ms, reason],
        )?;
        if n == 1 {
            append_audit(
                &tx,
                now_ms,
                "retention",
                "evidence_purged",
                Some(e.clue_id),
                &json!({"evidence_id": e.evidence_id, "sha256": e.sha256, "kind": e.kind,
                        "class": e.class, "reason": reason, "retention_s": retention_s,
                        "evidence_at_ms": e.at_ms}),
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn unreferenced_files(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT DISTINCT sha256 FROM evidence p WHERE p.kind = 'file' \
             AND p.purged_ms IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evidence l \
             WHERE l.sha256 = p.sha256 AND l.purged_ms IS NULL) LIMIT 100000",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl SqliteStore {
    /// Every token (id, role, sites, name, created, revoked); never the hashes.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, role, sites, name, created_ms, revoked_ms FROM tokens ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                role: r.get(1)?,
                sites: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                name: r.get(3)?,
                created_ms: r.get(4)?,
                revoked_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes token `id` (audited); false when there is no such active token.
    pub fn revoke_token(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, now_ms],
        )?;
        if n == 1 {
            append_audit(
                &tx,
                now_ms,
                "cli",
                "token_revoked",
                None,
                &json!({"token_id": id}),
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }
}

/// A token as `gateway token list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub role: String,
    pub sites: Vec<String>,
    pub name: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl TokenStore for SqliteStore {
    fn insert_token(
        &self,
        hash: &str,
        role: Role,
        sites: &[String],
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<i64, TokenStoreError> {
        let sites =
            serde_json::to_string(sites).map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        tx.execute(
            "INSERT INTO tokens (hash, role, sites, name, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash, role.as_str(), sites, name, now_ms],
        )
        .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let id = tx.last_insert_rowid();
        append_audit(
            &tx,
            now_ms,
            "cli",
            "token_created",
            None,
            &json!({"token_id": id, "role": role, "sites": sites, "name": name}),
        )
        .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        tx.commit()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        Ok(id)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, TokenStoreError> {
        let conn = self.conn();
        let row: Option<(i64, String, String, String, Option<String>)> = conn
            .query_row(
                "SELECT id, hash, role, sites, name FROM tokens WHERE hash = ?1 AND revoked_ms IS NULL",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let Some((id, stored, role, sites, name)) = row else {
            return Ok(None);
        };
        let role = Role::parse(&role)
            .ok_or_else(|| TokenStoreError::Backend(format!("token {id}: unknown role")))?;
        let sites: Vec<String> = serde_json::from_str(&sites)
            .map_err(|e| TokenStoreError::Backend(format!("token {id}: sites: {e}")))?;
        // The hash as stored, never the argument: the caller compares the two in constant time.
        Ok(Some(TokenRecord {
            id,
            hash: stored,
            role,
            sites,
            name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::auth::{create_token, token_hash};

    #[test]
    fn migrations_run_once_and_revoked_tokens_stop_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clues.sqlite");
        let store = SqliteStore::open(&path, vec![]).expect("open");
        let (id, token) =
            create_token(&store, Role::Inspector, &["a".into()], Some("ann"), 1).expect("token");
        assert!(
            store
                .token_by_hash(&token_hash(&token))
                .expect("lookup")
                .is_some()
        );
        drop(store);
        let store = SqliteStore::open(&path, vec![]).expect("reopen");
        let v: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert!(store.revoke_token(id, 2).expect("revoke"));
        assert!(!store.revoke_token(id, 3).expect("twice"));
        assert!(
            store
                .token_by_hash(&token_hash(&token))
                .expect("lookup")
                .is_none()
        );
        assert_eq!(store.list_tokens().expect("list")[0].revoked_ms, Some(2));
        assert!(store.verify_audit().expect("verify").ok);
    }

    #[test]
    fn warnings_are_kept_once_raised_never_lowered_and_queued_for_the_platform() {
        use crate::clue::oversight::Finding;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("clues.sqlite"), vec![CHANNEL_MQTT]).expect("open");
        let f = |level| Finding {
            model: "untouched_claim".into(),
            key: "untouched_claim/7".into(),
            level,
            site: Some("s1".into()),
            clue_id: Some(7),
            concerns: vec!["ann#1".into()],
            message: "m".into(),
            detail: json!({}),
        };
        assert_eq!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 1)
                .expect("new")
                .len(),
            1
        );
        assert!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 2)
                .expect("same")
                .is_empty()
        );
        let red = store
            .raise_warnings(&[f(Escalation::Red)], 3)
            .expect("raised");
        assert_eq!(red[0].finding.level, Escalation::Red);
        assert!(
            store
                .raise_warnings(&[f(Escalation::Yellow)], 4)
                .expect("lower")
                .is_empty()
        );
        let all = store.warnings(Some(&["s1".into()]), 10).expect("list");
        assert_eq!((all.len(), all[0].finding.level), (1, Escalation::Red));
        assert_eq!((all[0].first_ms, all[0].updated_ms), (1, 3));
        assert!(
            store
                .warnings(Some(&["s2".into()]), 10)
                .expect("other site")
                .is_empty()
        );
        let queued = store.pending(CHANNEL_MQTT, 10).expect("pending");
        let topics: Vec<&str> = queued.iter().map(|d| d.topic.as_str()).collect();
        assert_eq!(topics, ["oversight/v1/s1/yellow", "oversight/v1/s1/red"]);
        assert!(store.verify_audit().expect("verify").ok);
    }

    /// Benchmark: `cargo test -p gateway --release --lib oversight_history_speed -- --ignored
    /// --nocapture`. What one oversight run reads: 10,000 clues with 3 audit entries each.
    #[test]
    #[ignore = "benchmark: cargo test -p gateway --release --lib oversight_history_speed -- --ignored --nocapture"]
    fn oversight_history_speed() {
        use crate::clue::signal::Subject;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("clues.sqlite"), vec![]).expect("open");
        let n = 10_000;
        let items: Vec<(ClueEvent, Vec<NewEvidence>, i64)> = (0..n)
            .map(|i| {
                let subject = Subject {
                    site: format!("s{}", i % 10),
                    device: Some(format!("d{i}")),
                    ..Default::default()
                };
                let ev = ClueEvent {
                    rule: "r".into(),
                    kind: "k".into(),
                    level: Level::Medium,
                    dedup_key: ClueEvent::default_key("r", &subject),
                    subject,
                    at_ms: i,
                    title: "t".into(),
                    detail: json!({}),
                    evidence: vec![],
                    department: Some(["water", "market"][(i % 2) as usize].into()),
                };
                (ev, vec![], 1_000_000)
            })
            .collect();
        store.ingest_batch(&items, 1).expect("ingest");
        for id in 1..=n {
            store
                .act(
                    id,
                    &Action::Claim { note: None },
                    &format!("o{}#1", id % 30),
                    2,
                )
                .expect("claim");
            store
                .act(
                    id,
                    &Action::Resolve { note: None },
                    &format!("o{}#1", id % 30),
                    3,
                )
                .expect("resolve");
        }
        let t = std::time::Instant::now();
        let h = store.oversight_history(0).expect("history");
        let read_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = std::time::Instant::now();
        let cfg = crate::clue::oversight::OversightConfig::default();
        let (f, _) = crate::clue::oversight::run_models(&h, 10, &cfg);
        let model_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "oversight run over {} clues: history read {read_ms:.0} ms, models {model_ms:.0} ms ({} findings)",
            h.len(),
            f.len()
        );
    }
}
