//! The clue store on a shared PostgreSQL: several gateways, one clue pool, one audit chain,
//! one delivery outbox (`[clues] store = "postgres"`, `url = "postgres://..."`).
//!
//! Same trait ([`ClueStore`]), same tables and the same audit entries as the SQLite store;
//! what differs is how several writers on several machines stay correct:
//!
//! - **One open clue per dedup key**: ingest is one `INSERT .. ON CONFLICT (dedup_key) WHERE
//!   open DO UPDATE` on the partial unique index `clues_one_open_per_key`. Two gateways that
//!   see the same problem at once produce one clue with two occurrences, never two clues.
//! - **One chain**: every writing transaction first locks the single row of `audit_head`
//!   (`SELECT .. FOR UPDATE`), which holds the chain's last `seq` and hash, appends its
//!   entries after it and moves the head before commit. Writers on every gateway therefore
//!   commit in chain order with no gap and no fork: the chain verifies as one, whoever wrote
//!   it. Taking this lock first, before any clue row, is also what keeps writers free of
//!   deadlocks. The price: writes are serialised across gateways (reads are not). That is
//!   the "one verifiable chain" taken literally; see `deploy/scale-out.md` for the
//!   throughput it gives.
//! - **Claims and actions per clue**: `act` reads the clue `FOR UPDATE` inside that
//!   transaction and applies the lifecycle to what it read, so of two gateways claiming the
//!   same clue one wins and the other is refused by the lifecycle (already claimed).
//! - **Delivery once per channel**: `pending` leases rows to this gateway (`FOR UPDATE SKIP
//!   LOCKED`, a lease of [`LEASE_MS`]); another gateway skips leased rows, and takes them over
//!   only when the lease ran out (the holder died between sending and marking: the platform
//!   then sees that change twice, with the same `event_id`).
//! - **Oversight and retention by one leader**: [`PgStore::lead`] holds a session advisory
//!   lock per job on a dedicated connection; the job runs only where it is held, and another
//!   gateway takes over when the leader's connection ends.
//! - **Tokens** live in the database: a token created on one gateway works on all.
//! - **Evidence files** live in `evidence_blobs`, content-addressed (see `blobs.rs`).
//!
//! Calls block (the sync `postgres` client over an `r2d2` pool): async callers use
//! `spawn_blocking`, exactly as with SQLite. Why that pair: the trait is synchronous and
//! already called from blocking threads; `postgres` is the blocking face of `tokio-postgres`
//! (same author, same protocol code) and `r2d2_postgres` is its pool, so the store reads like
//! the SQLite one and needs no runtime of its own.

mod blobs;
mod decisions;
mod intake;
pub mod migrate;
mod notices;
mod owner_notices;
mod permits;
mod schema;
mod stays;

use super::audit::{self, AuditAction, AuditEntry, Head, VerifyReport};
use super::audit_key::{AuditKey, AuditKeyring};
use super::auth::{Role, TokenGrant, TokenRecord, TokenStore, TokenStoreError};
use super::lifecycle::{self, Action, Status};
use super::model::*;
use super::oversight::{ClueRecord, Finding, LinkProposal, Warning};
use super::repeats::Run;
use super::retention::{Expired, RetentionConfig, class_of};
use super::signal::{ClueEvent, GeoPoint, Subject};
use super::store::intake::Item;
use super::store::{
    AUDIT_COLS, AUDIT_HEAD_TOPIC, AuditLog, CLUE_COLS, ClueRecords, DeliveryQueue, OversightStore,
    RetentionStore, StatsRow, StoreError, TokenInfo, WARNING_COLS, act_detail, change_detail,
    change_message, check_clue_rows, check_writer_key, escalation_detail, escalation_due,
    head_message, history_of, json_col, kind_matches, last_digests, next_key_id, rotation_detail,
    rotation_due, state_of, stats_of, subject_key, warning_detail, warning_message,
};
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, NoTls, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use blobs::PgBlobs;

impl Drop for PgStore {
    fn drop(&mut self) {
        let leader = self.leader.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = leader.0.take() {
            close_off_runtime(c);
        }
    }
}
pub(crate) use schema::MIGRATIONS;

type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// The connection pool, shared by the store and its evidence blobs.
///
/// The blocking client runs a small tokio runtime per connection, and a runtime must not be
/// shut down on an async worker thread; the gateway's last handle on the store may well be
/// dropped there, so the connections are closed on a thread of their own.
pub(crate) struct Pool(Option<r2d2::Pool<PostgresConnectionManager<NoTls>>>);

impl Pool {
    fn get(&self) -> Result<Conn, StoreError> {
        match &self.0 {
            Some(p) => p.get().map_err(pool_error),
            None => Err(StoreError::Pool("closed".into())),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            close_off_runtime(p);
        }
    }
}

/// Drops `v` where no tokio runtime is running (see [`Pool`]).
fn close_off_runtime<T: Send + 'static>(v: T) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("pg-close".into())
            .spawn(move || drop(v));
    } else {
        drop(v);
    }
}

/// How long a gateway owns the deliveries it took: longer than one delivery attempt (webhook
/// timeout included), short enough that a dead gateway's rows move on within a minute.
pub(crate) const LEASE_MS: i64 = 60_000;

/// Advisory lock keys of the leader jobs (one number space with [`schema::MIGRATION_LOCK`]).
fn leader_key(job: &str) -> i64 {
    match job {
        "oversight" => 0x6777_0010,
        "retention" => 0x6777_0011,
        other => {
            let h = audit::sha256_hex(&[other.as_bytes()]);
            0x6777_1000_0000 + i64::from_str_radix(&h[..8], 16).unwrap_or(0)
        }
    }
}

pub struct PgStore {
    pool: Arc<Pool>,
    config: postgres::Config,
    channels: Vec<&'static str>,
    raise_after: i64,
    /// This gateway's name on delivery leases (random unless [`PgStore::with_holder`]).
    holder: String,
    /// The session that holds leader locks, and the jobs it holds.
    leader: Mutex<(Option<postgres::Client>, BTreeSet<String>)>,
    /// Seals every new audit entry (none: plain entries, see `clue::audit`). Every gateway
    /// on one database must have the same key: they write one chain.
    key: Option<Arc<AuditKey>>,
    /// The keys that verify the chain: the current one (`key`) and the retired ones.
    keyring: Option<Arc<AuditKeyring>>,
}

fn pool_error(e: r2d2::Error) -> StoreError {
    StoreError::Pool(e.to_string())
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn bad(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

pub(crate) fn clue_from_row(r: &Row) -> Result<Clue, StoreError> {
    let level: String = r.try_get(3)?;
    let status: String = r.try_get(4)?;
    let escalation: String = r.try_get(22)?;
    let lat: Option<f64> = r.try_get(8)?;
    let lon: Option<f64> = r.try_get(9)?;
    Ok(Clue {
        id: r.try_get(0)?,
        rule: r.try_get(1)?,
        kind: r.try_get(2)?,
        level: parse_level(&level).ok_or_else(|| bad(format!("level {level}")))?,
        status: Status::parse(&status).ok_or_else(|| bad(format!("status {status}")))?,
        subject: Subject {
            site: r.try_get(5)?,
            device: r.try_get(6)?,
            plate: r.try_get(7)?,
            location: lat.zip(lon).map(|(lat, lon)| GeoPoint { lat, lon }),
            shop: r.try_get(28)?,
            owner: r.try_get(29)?,
        },
        dedup_key: r.try_get(10)?,
        title: r.try_get(11)?,
        detail: json_col(r.try_get(12)?),
        department: r.try_get(13)?,
        assisting: serde_json::from_str(&r.try_get::<_, String>(30)?)
            .map_err(|e| bad(format!("assisting: {e}")))?,
        assignee: r.try_get(14)?,
        resolution: r.try_get(15)?,
        first_seen_ms: r.try_get(16)?,
        last_seen_ms: r.try_get(17)?,
        occurrences: r.try_get(18)?,
        created_ms: r.try_get(19)?,
        updated_ms: r.try_get(20)?,
        deadline_ms: r.try_get(21)?,
        escalation: Escalation::parse(&escalation)
            .ok_or_else(|| bad(format!("escalation {escalation}")))?,
        claimed_ms: r.try_get(23)?,
        resolved_ms: r.try_get(24)?,
        closed_ms: r.try_get(25)?,
        cleared_ms: r.try_get(26)?,
        cleared_note: r.try_get(27)?,
    })
}

pub(crate) fn audit_from_row(r: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        clue_id: r.try_get(4)?,
        detail: json_col(r.try_get(5)?),
        prev_hash: r.try_get(6)?,
        hash: r.try_get(7)?,
    })
}

fn warning_from_row(r: &Row) -> Result<Warning, StoreError> {
    let level: String = r.try_get(2)?;
    Ok(Warning {
        id: r.try_get(0)?,
        finding: Finding {
            model: r.try_get(1)?,
            key: r.try_get(3)?,
            level: Escalation::parse(&level).ok_or_else(|| bad(format!("warning {level}")))?,
            site: r.try_get(4)?,
            clue_id: r.try_get(5)?,
            concerns: serde_json::from_str(&r.try_get::<_, String>(6)?).unwrap_or_default(),
            message: r.try_get(7)?,
            detail: json_col(r.try_get(8)?),
        },
        first_ms: r.try_get(9)?,
        updated_ms: r.try_get(10)?,
    })
}

fn read_clue(c: &mut impl GenericClient, id: i64, lock: bool) -> Result<Option<Clue>, StoreError> {
    let sql = format!(
        "SELECT {CLUE_COLS} FROM clues WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&id])?
        .map(|r| clue_from_row(&r))
        .transpose()
}

/// The audit chain's head as this transaction holds it (locked until commit), and the key
/// that seals what it appends.
#[derive(Clone)]
pub(crate) struct Chain {
    head: audit::Head,
    /// The sequence number the `audit_head` row holds in this transaction (the locked one,
    /// until a statement moves it): [`commit`] writes the head only when it is behind.
    stored: i64,
    key: Option<Arc<AuditKey>>,
}

/// Starts a writing transaction: the chain head is locked first (see the module doc).
fn begin<'c>(
    conn: &'c mut Conn,
    key: &Option<Arc<AuditKey>>,
) -> Result<(Transaction<'c>, Chain), StoreError> {
    begin_drawing(conn, key, 0).map(|(tx, chain, _)| (tx, chain))
}

/// [`begin`] that also draws `occurrences` ids from the occurrences' sequence in the same
/// statement: intake needs one per event, and every round trip made while the head is held
/// is time every other gateway waits (sequences are not transactional, so drawing them here
/// costs nothing a rollback would have to undo; an unused id is a gap, as after any rollback).
fn begin_drawing<'c>(
    conn: &'c mut Conn,
    key: &Option<Arc<AuditKey>>,
    occurrences: i64,
) -> Result<(Transaction<'c>, Chain, Vec<i64>), StoreError> {
    let mut tx = conn.transaction()?;
    let r = tx.query_typed_one(
        "SELECT seq, hash, ARRAY(SELECT nextval(pg_get_serial_sequence('occurrences', 'id')\
         ::regclass) FROM generate_series(1, $1)) FROM audit_head WHERE id = 1 FOR UPDATE",
        &[(&occurrences, Type::INT8)],
    )?;
    let seq: i64 = r.try_get(0)?;
    let ids: Vec<i64> = r.try_get(2)?;
    let head = audit::Head {
        seq,
        hash: r.try_get(1)?,
    };
    check_writer_key(&head, key.as_deref(), || {
        let r = tx.query_one("SELECT action, detail FROM audit WHERE seq = $1", &[&seq])?;
        Ok((r.try_get(0)?, json_col(r.try_get(1)?)))
    })?;
    Ok((
        tx,
        Chain {
            head,
            stored: seq,
            key: key.clone(),
        },
        ids,
    ))
}

/// The key the entry after the head must be sealed with (see `AuditLog::audit_next_key`).
fn next_key(c: &mut impl GenericClient) -> Result<Option<String>, StoreError> {
    let Some(r) = c.query_opt(
        "SELECT hash, action, detail FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
    )?
    else {
        return Ok(None);
    };
    Ok(next_key_id(
        &r.try_get::<_, String>(0)?,
        &r.try_get::<_, String>(1)?,
        &json_col(r.try_get(2)?),
    ))
}

/// Moves the head to what this transaction appended and commits.
fn commit(mut tx: Transaction<'_>, chain: &Chain) -> Result<(), StoreError> {
    if chain.head.seq != chain.stored {
        tx.execute(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            &[&chain.head.seq, &chain.head.hash],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn append(
    tx: &mut Transaction<'_>,
    chain: &mut Chain,
    at_ms: i64,
    actor: &str,
    action: AuditAction,
    clue_id: Option<i64>,
    detail: &Value,
) -> Result<i64, StoreError> {
    let e = chain.head.append(
        chain.key.as_deref(),
        at_ms,
        actor,
        action.as_str(),
        clue_id,
        detail.clone(),
    );
    let text = audit::canonical_json(&e.detail);
    tx.execute_typed(
        "INSERT INTO audit (seq, at_ms, actor, action, clue_id, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            (&e.seq, Type::INT8),
            (&e.at_ms, Type::INT8),
            (&e.actor, Type::TEXT),
            (&e.action, Type::TEXT),
            (&e.clue_id, Type::INT8),
            (&text, Type::TEXT),
            (&e.prev_hash, Type::TEXT),
            (&e.hash, Type::TEXT),
        ],
    )?;
    Ok(e.seq)
}

impl PgStore {
    /// Connects (at most `pool_size` connections), migrates, and queues changes on `channels`.
    pub fn open(
        url: &str,
        pool_size: u32,
        channels: Vec<&'static str>,
    ) -> Result<PgStore, StoreError> {
        let config: postgres::Config = url.parse()?;
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(pool_error)?;
        let store = PgStore {
            pool: Arc::new(Pool(Some(pool))),
            config,
            channels,
            raise_after: 0,
            holder: format!(
                "{}-{}-{:08x}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into()),
                std::process::id(),
                rand::random::<u32>()
            ),
            leader: Mutex::new((None, BTreeSet::new())),
            key: None,
            keyring: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Names this gateway on delivery leases (its MQTT client id: unique per gateway, and the
    /// same after a restart, so a gateway that comes back resumes what it had leased instead
    /// of waiting for its own lease to run out).
    pub(crate) fn with_holder(mut self, name: &str) -> PgStore {
        self.holder = name.to_string();
        self
    }

    #[cfg(test)]
    /// Seals every audit entry this gateway writes from now on with `key`, and verifies with
    /// it.
    pub(crate) fn with_audit_key(self, key: Option<Arc<AuditKey>>) -> PgStore {
        self.with_audit_keyring(key.map(|k| Arc::new(AuditKeyring::single(k))))
    }

    /// Seals every audit entry this gateway writes from now on with the ring's current key,
    /// and verifies with every key of the ring (retired keys for the entries they sealed).
    pub(crate) fn with_audit_keyring(mut self, keys: Option<Arc<AuditKeyring>>) -> PgStore {
        self.key = keys.as_ref().map(|r| r.current().clone());
        self.keyring = keys;
        self
    }

    /// Repetition raises the level: from `n` occurrences on, one level above the rule's.
    pub(crate) fn with_raise_after(mut self, n: u32) -> PgStore {
        self.raise_after = n as i64;
        self
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get()
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )?;
        // Not `IF NOT EXISTS`: its notice would be logged on every start.
        let exists: bool = tx
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
            .try_get(0)?;
        if !exists {
            tx.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")?;
        }
        let version: i64 = tx
            .query_opt("SELECT max(version) FROM schema_version", &[])?
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .unwrap_or(0);
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} is newer than this gateway ({})",
                MIGRATIONS.len()
            )));
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.batch_execute(sql)?;
        }
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(MIGRATIONS.len() as i64)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The content-addressed evidence files of this database.
    pub(crate) fn blobs(&self) -> PgBlobs {
        PgBlobs::new(self.pool.clone())
    }

    /// Whether this gateway is the leader of `job` (oversight, retention): it holds the job's
    /// session advisory lock on its own connection, kept until this process ends (or that
    /// connection breaks: then the lock is free for another gateway, and this one tries again).
    pub(crate) fn lead(&self, job: &str) -> Result<bool, StoreError> {
        let mut guard = self.leader.lock().unwrap_or_else(|p| p.into_inner());
        let (client, held) = &mut *guard;
        if client
            .as_mut()
            .is_none_or(|c| c.is_valid(Duration::from_secs(5)).is_err())
        {
            held.clear();
            *client = Some(self.config.connect(NoTls)?);
        }
        let Some(c) = client.as_mut() else {
            return Ok(false);
        };
        if held.contains(job) {
            return Ok(true);
        }
        let got: bool = c
            .query_one("SELECT pg_try_advisory_lock($1)", &[&leader_key(job)])?
            .try_get(0)?;
        if got {
            held.insert(job.to_string());
        }
        Ok(got)
    }

    /// Queues `payload` on `topic` for every delivery channel.
    fn queue(
        &self,
        tx: &mut Transaction<'_>,
        topic: &str,
        payload: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        if self.channels.is_empty() {
            return Ok(());
        }
        tx.execute_typed(
            "INSERT INTO outbound (channel, topic, payload, created_ms) \
             SELECT unnest($1::text[]), $2, $3, $4",
            &[
                (&self.channels, Type::TEXT_ARRAY),
                (&topic, Type::TEXT),
                (&payload, Type::TEXT),
                (&at_ms, Type::INT8),
            ],
        )?;
        Ok(())
    }

    /// Appends the audit entry of a change of `clue` (as it is now) and queues the change.
    #[allow(clippy::too_many_arguments)]
    fn record_change(
        &self,
        tx: &mut Transaction<'_>,
        chain: &mut Chain,
        at_ms: i64,
        actor: &str,
        action: AuditAction,
        clue: Clue,
        detail: Value,
    ) -> Result<ClueChange, StoreError> {
        let detail = change_detail(&clue, detail);
        let seq = append(tx, chain, at_ms, actor, action, Some(clue.id), &detail)?;
        let change = ClueChange {
            event_id: seq,
            event: action.as_str().to_string(),
            at_ms,
            actor: actor.to_string(),
            clue,
            count: 1,
        };
        let (topic, payload) = change_message(&change)?;
        self.queue(tx, &topic, &payload, at_ms)?;
        Ok(change)
    }

    /// Every audit entry in order (for verify and migration).
    pub(crate) fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let mut c = self.conn()?;
        c.query(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"), &[])?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    /// Every token (id, role, sites, name, device, unit, department, created, revoked);
    /// never the hashes.
    pub(crate) fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut c = self.conn()?;
        c.query(
            "SELECT id, role, sites, name, created_ms, revoked_ms, device, unit, department, \
             relay, channel FROM tokens ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get(0)?,
                role: r.try_get(1)?,
                sites: serde_json::from_str(&r.try_get::<_, String>(2)?).unwrap_or_default(),
                name: r.try_get(3)?,
                created_ms: r.try_get(4)?,
                revoked_ms: r.try_get(5)?,
                device: r.try_get(6)?,
                unit: r.try_get(7)?,
                department: r.try_get(8)?,
                relay: r.try_get(9)?,
                channel: r.try_get(10)?,
            })
        })
        .collect()
    }

    /// Revokes token `id` (audited); false when there is no such active token.
    pub(crate) fn revoke_token(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
            &[&id, &now_ms],
        )?;
        if n == 1 {
            append(
                &mut tx,
                &mut chain,
                now_ms,
                "cli",
                AuditAction::TokenRevoked,
                None,
                &json!({"token_id": id}),
            )?;
        }
        commit(tx, &chain)?;
        Ok(n == 1)
    }

    /// `items` in one transaction: set-based ([`PgStore::ingest_set`]), or with `isolate`
    /// one event at a time, each in a savepoint, so one bad event does not undo the others.
    fn ingest_all(
        &self,
        items: &[Item],
        runs: &[Run],
        now_ms: i64,
        isolate: bool,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain, mut ids) = begin_drawing(&mut c, &self.key, items.len() as i64)?;
        if !isolate {
            let out = self.ingest_set(&mut tx, &mut chain, items, runs, &mut ids, now_ms)?;
            commit(tx, &chain)?;
            return Ok(out.into_iter().map(Ok).collect());
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let saved = chain.clone();
            let mut sp = tx.savepoint("ingest_one")?;
            let one = std::slice::from_ref(item);
            let run = runs.get(i..=i).unwrap_or(&[]);
            match self.ingest_set(&mut sp, &mut chain, one, run, &mut ids, now_ms) {
                Ok(mut change) => {
                    sp.commit()?;
                    out.push(
                        change
                            .pop()
                            .ok_or_else(|| bad("ingest returned no change".into())),
                    );
                }
                Err(e) => {
                    // Dropping the savepoint rolls this event back; the chain with it.
                    drop(sp);
                    chain = saved;
                    out.push(Err(e));
                }
            }
        }
        commit(tx, &chain)?;
        Ok(out)
    }
}

/// SQL placeholders and values built up together.
#[derive(Default)]
struct Args {
    values: Vec<Box<dyn ToSql + Sync>>,
}

impl Args {
    fn push(&mut self, v: impl ToSql + Sync + 'static) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values.iter().map(|b| b.as_ref()).collect()
    }
}

impl ClueRecords for PgStore {
    fn ingest(
        &self,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let item = (ev.clone(), evidence.to_vec(), deadline_ms);
        self.ingest_all(std::slice::from_ref(&item), &[], now_ms, false)?
            .pop()
            .unwrap_or_else(|| Err(bad("ingest returned no change".into())))
    }

    /// One set-based transaction; only when it fails is the batch redone with a savepoint
    /// around each event, so one bad event does not undo the others.
    fn ingest_runs(
        &self,
        items: &[(ClueEvent, Vec<NewEvidence>, i64)],
        runs: &[Run],
        now_ms: i64,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError> {
        match self.ingest_all(items, runs, now_ms, false) {
            Ok(out) => Ok(out),
            Err(_) => self.ingest_all(items, runs, now_ms, true),
        }
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
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let Some(clue) = tx
            .query_opt(
                &format!("SELECT {CLUE_COLS} FROM clues WHERE dedup_key = $1 AND open FOR UPDATE"),
                &[&dedup_key],
            )?
            .map(|r| clue_from_row(&r))
            .transpose()?
        else {
            return Ok(None);
        };
        let (action, detail, row) = if kind_matches(resolve_kinds, &clue.kind) {
            // The fault itself reported its end: nothing is left for a person to do.
            let row = tx.query_one(
                &format!(
                    "UPDATE clues SET cleared_ms = $2, cleared_note = $3, updated_ms = $4, \
                     status = 'resolved', open = FALSE, resolved_ms = $4, resolution = $5 \
                     WHERE id = $1 RETURNING {CLUE_COLS}"
                ),
                &[
                    &clue.id,
                    &at_ms,
                    &note,
                    &now_ms,
                    &format!("recovered: {note}"),
                ],
            )?;
            (
                AuditAction::Recovered,
                json!({"at_ms": at_ms, "note": note, "from": clue.status, "to": "resolved",
                       "auto_resolved": true}),
                row,
            )
        } else {
            let row = tx.query_one(
                &format!(
                    "UPDATE clues SET cleared_ms = $2, cleared_note = $3, updated_ms = $4 \
                     WHERE id = $1 RETURNING {CLUE_COLS}"
                ),
                &[&clue.id, &at_ms, &note, &now_ms],
            )?;
            (
                AuditAction::Cleared,
                json!({"at_ms": at_ms, "note": note, "to_confirm": true}),
                row,
            )
        };
        let change = self.record_change(
            &mut tx,
            &mut chain,
            now_ms,
            "pool",
            action,
            clue_from_row(&row)?,
            detail,
        )?;
        commit(tx, &chain)?;
        Ok(Some(change))
    }

    fn act(
        &self,
        id: i64,
        action: &Action,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let clue = read_clue(&mut tx, id, true)?.ok_or(StoreError::NotFound(id))?;
        let before = state_of(&clue);
        let next = lifecycle::apply(&before, action, actor, now_ms)?;
        let assisting = serde_json::to_string(&next.assisting).unwrap_or_else(|_| "[]".into());
        let res = tx.query_one(
            &format!(
                "UPDATE clues SET status = $2, open = $3, assignee = $4, department = $5, \
                 claimed_ms = $6, resolved_ms = $7, closed_ms = $8, resolution = $9, \
                 updated_ms = $10, assisting = $11 WHERE id = $1 RETURNING {CLUE_COLS}"
            ),
            &[
                &id,
                &next.status.as_str(),
                &next.status.is_open(),
                &next.assignee,
                &next.department,
                &next.claimed_ms,
                &next.resolved_ms,
                &next.closed_ms,
                &next.resolution,
                &now_ms,
                &assisting,
            ],
        );
        let row = match res {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "another open clue already has dedup key {}; work on that one",
                    clue.dedup_key
                )));
            }
            r => r?,
        };
        let after = clue_from_row(&row)?;
        if let Some(d) = crate::clue::store::decision_of(action)? {
            decisions::insert_decision(&mut tx, id, &clue.subject.site, d, actor, now_ms)?;
        }
        let mut detail = act_detail(action, &before, &next);
        if let Some(n) = crate::clue::store::owner_notice_of(action)? {
            let notice = owner_notices::queue_notice(&mut tx, id, n, actor, now_ms)?;
            detail["notice"] = json!(notice);
            detail["contact"] = json!(n.2.contact_masked);
        }
        let change = self.record_change(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::from(action),
            after,
            detail,
        )?;
        commit(tx, &chain)?;
        Ok(change)
    }

    fn escalate(&self, now_ms: i64, red_after_ms: i64) -> Result<Vec<ClueChange>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let due: Vec<(i64, String, i64)> = tx
            .query(
                "SELECT id, escalation, deadline_ms FROM clues \
                 WHERE open AND escalation <> 'red' AND deadline_ms < $1 ORDER BY id \
                 LIMIT 100000",
                &[&now_ms],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut changes = Vec::new();
        for (id, current, deadline) in due {
            let Some(target) = escalation_due(&current, deadline, now_ms, red_after_ms) else {
                continue;
            };
            let row = tx.query_one(
                &format!(
                    "UPDATE clues SET escalation = $2, updated_ms = $3 WHERE id = $1 \
                     RETURNING {CLUE_COLS}"
                ),
                &[&id, &target.as_str(), &now_ms],
            )?;
            let clue = clue_from_row(&row)?;
            changes.push(self.record_change(
                &mut tx,
                &mut chain,
                now_ms,
                "pool",
                AuditAction::Supervision,
                clue,
                escalation_detail(target, deadline, now_ms),
            )?);
        }
        commit(tx, &chain)?;
        Ok(changes)
    }

    fn get(&self, id: i64) -> Result<Option<ClueDetail>, StoreError> {
        let mut c = self.conn()?;
        let Some(clue) = read_clue(&mut *c, id, false)? else {
            return Ok(None);
        };
        let r = c.query_one(
            "SELECT COUNT(*), MIN(first_seen_ms) FROM clues \
             WHERE subject_key = $1 AND kind = $2 AND id < $3",
            &[&subject_key(&clue.subject), &clue.kind, &id],
        )?;
        let history = history_of(r.try_get(0)?, r.try_get(1)?, clue.occurrences);
        let recent_occurrences = c
            .query(
                "SELECT id, at_ms, received_ms, level, title, detail, count, first_ms \
                 FROM occurrences WHERE clue_id = $1 ORDER BY id DESC LIMIT 50",
                &[&id],
            )?
            .iter()
            .map(|r| {
                let level: String = r.try_get(3)?;
                Ok(Occurrence {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    received_ms: r.try_get(2)?,
                    level: parse_level(&level)
                        .ok_or_else(|| bad(format!("occurrence level {level}")))?,
                    title: r.try_get(4)?,
                    detail: json_col(r.try_get(5)?),
                    count: r.try_get(6)?,
                    first_ms: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let evidence = c
            .query(
                "SELECT id, occurrence_id, kind, name, content_type, sha256, size, body, at_ms, \
                 regions, purged_ms FROM evidence WHERE clue_id = $1 ORDER BY id DESC LIMIT 200",
                &[&id],
            )?
            .iter()
            .map(|r| {
                Ok(EvidenceItem {
                    id: r.try_get(0)?,
                    occurrence_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    name: r.try_get(3)?,
                    content_type: r.try_get(4)?,
                    sha256: r.try_get(5)?,
                    size: r.try_get(6)?,
                    body: r.try_get::<_, Option<String>>(7)?.map(json_col),
                    at_ms: r.try_get(8)?,
                    regions: r
                        .try_get::<_, Option<String>>(9)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    purged_ms: r.try_get(10)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let links = read_links(&mut c, id)?;
        Ok(Some(ClueDetail {
            clue,
            history,
            recent_occurrences,
            evidence,
            links,
            owner: None,
            leniency: None,
            matter: None,
        }))
    }

    fn list(&self, q: &ClueQuery) -> Result<Vec<Clue>, StoreError> {
        let mut sql = format!("SELECT {CLUE_COLS} FROM clues WHERE TRUE");
        let mut a = Args::default();
        if let Some(s) = q.status {
            sql += &format!(" AND status = {}", a.push(s.as_str().to_string()));
        }
        if let Some(l) = q.level {
            sql += &format!(" AND level = {}", a.push(l.as_str().to_string()));
        }
        if let Some(s) = &q.site {
            sql += &format!(" AND site = {}", a.push(s.clone()));
        }
        if let Some(k) = &q.kind {
            sql += &format!(" AND kind = {}", a.push(k.clone()));
        }
        if let Some(f) = q.from_ms {
            sql += &format!(" AND created_ms >= {}", a.push(f));
        }
        if let Some(t) = q.to_ms {
            sql += &format!(" AND created_ms < {}", a.push(t));
        }
        if let Some(scope) = &q.scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" AND site = ANY({})", a.push(scope.clone()));
        }
        if let Some(d) = &q.department {
            let n = a.push(d.clone());
            sql += &format!(
                " AND (department = {n} OR assisting::jsonb @> jsonb_build_array({n}::text))"
            );
        }
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(100_000)
        };
        // The order of the `clues_list` index (and `clues_site_list` for one site).
        sql += &format!(
            " ORDER BY open DESC, level_rank DESC, last_seen_ms DESC, id DESC LIMIT {limit} \
             OFFSET {}",
            q.offset
        );
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(clue_from_row)
            .collect()
    }

    fn stats(&self, scope: Option<&[String]>, now_ms: i64) -> Result<Stats, StoreError> {
        if scope.is_some_and(|s| s.is_empty()) {
            return Ok(Stats::default());
        }
        let mut sql = "SELECT level, status, kind, department, created_ms, claimed_ms, \
                       resolved_ms, escalation, open, deadline_ms FROM clues"
            .to_string();
        let mut a = Args::default();
        if let Some(scope) = scope {
            sql += &format!(" WHERE site = ANY({})", a.push(scope.to_vec()));
        }
        let mut c = self.conn()?;
        let rows = c.query(&sql, &a.refs())?;
        stats_of(
            rows.iter().map(|r| {
                Ok(StatsRow {
                    level: r.try_get(0)?,
                    status: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    department: r.try_get(3)?,
                    created_ms: r.try_get(4)?,
                    claimed_ms: r.try_get(5)?,
                    resolved_ms: r.try_get(6)?,
                    escalation: r.try_get(7)?,
                    open: r.try_get(8)?,
                    deadline_ms: r.try_get(9)?,
                })
            }),
            now_ms,
        )
    }
}

impl AuditLog for PgStore {
    fn record(
        &self,
        actor: &str,
        action: AuditAction,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        append(&mut tx, &mut chain, now_ms, actor, action, None, detail)?;
        commit(tx, &chain)
    }

    fn audit_next_key(&self) -> Result<Option<String>, StoreError> {
        let mut c = self.conn()?;
        next_key(&mut *c)
    }

    fn record_key_rotation(
        &self,
        old: &AuditKey,
        new_key_id: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut c = self.conn()?;
        // Without a key, `begin` checks nothing: whether the old key may seal the rotation is
        // `rotation_due`'s to say, on the head this transaction holds locked.
        let (mut tx, mut chain) = begin(&mut c, &None)?;
        if !rotation_due(next_key(&mut tx)?.as_deref(), old, new_key_id)? {
            return Ok(None);
        }
        chain.key = Some(Arc::new(old.clone()));
        let detail = rotation_detail(old, new_key_id);
        let seq = append(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::KeyRotated,
            None,
            &detail,
        )?;
        commit(tx, &chain)?;
        Ok(Some(seq))
    }

    fn audit_of(&self, id: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut c = self.conn()?;
        c.query(
            &format!("SELECT {AUDIT_COLS} FROM audit WHERE clue_id = $1 ORDER BY seq"),
            &[&id],
        )?
        .iter()
        .map(audit_from_row)
        .collect()
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
             WHERE a.at_ms >= $1 AND a.at_ms < $2"
        );
        let mut a = Args::default();
        a.push(from_ms);
        a.push(to_ms);
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" AND c.site = ANY({})", a.push(scope.to_vec()));
        }
        sql += " ORDER BY a.seq LIMIT 1000000";
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        let mut c = self.conn()?;
        let r = c.query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
        let seq: i64 = r.try_get(0)?;
        Ok((seq > 0)
            .then(|| r.try_get(1))
            .transpose()?
            .map(|hash| Head { seq, hash }))
    }

    fn publish_audit_head(&self, now_ms: i64) -> Result<Option<Head>, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let r = tx.query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
        let head = Head {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
        };
        if head.seq == 0 {
            return Ok(None);
        }
        let body = head_message(&head, self.key.as_deref().map(|k| k.id()), now_ms);
        self.queue(&mut tx, AUDIT_HEAD_TOPIC, &body.to_string(), now_ms)?;
        tx.commit()?;
        Ok(Some(head))
    }

    fn verify_audit_against(&self, published: Option<&Head>) -> Result<VerifyReport, StoreError> {
        let entries = self.audit_all()?;
        let last_digest = last_digests(&entries);
        let head = {
            let mut c = self.conn()?;
            let r = c.query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
            (r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?)
        };
        let last = entries.last().map(|e| (e.seq, e.hash.clone()));
        let report = audit::verify_with(entries, self.keyring.as_deref(), published);
        if !report.ok {
            return Ok(report);
        }
        // The head must be the chain's end: a deleted tail would otherwise go unseen.
        if last.as_ref().is_some_and(|l| *l != head) || (last.is_none() && head.0 != 0) {
            return Ok(VerifyReport {
                ok: false,
                broken: Some(audit::Broken {
                    seq: head.0,
                    what: format!(
                        "the chain ends at entry {} but its head says {}: entries are missing",
                        last.map_or(0, |l| l.0),
                        head.0
                    ),
                }),
                ..report
            });
        }
        let mut c = self.conn()?;
        let rows = c.query(&format!("SELECT {CLUE_COLS} FROM clues ORDER BY id"), &[])?;
        Ok(check_clue_rows(
            report,
            &last_digest,
            rows.iter()
                .map(|r| clue_from_row(r).map_err(|e| e.to_string())),
        ))
    }
}

impl DeliveryQueue for PgStore {
    /// Leases up to `limit` undelivered rows of `channel` to this gateway (see the module doc).
    fn pending(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let now = crate::clock::now_ms();
        let mut c = self.conn()?;
        let rows = c.query(
            "UPDATE outbound SET lease_holder = $2, lease_until_ms = $3 WHERE id IN ( \
               SELECT id FROM outbound WHERE channel = $1 AND delivered_ms IS NULL \
               AND (lease_until_ms IS NULL OR lease_until_ms < $4 OR lease_holder = $2) \
               AND (next_attempt_ms IS NULL OR next_attempt_ms <= $4) \
               ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
             RETURNING id, topic, payload, attempts",
            &[
                &channel,
                &self.holder,
                &(now + LEASE_MS),
                &now,
                &(limit as i64),
            ],
        )?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get(0)?,
                    topic: r.try_get(1)?,
                    payload: r.try_get(2)?,
                    attempts: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    fn delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE outbound SET delivered_ms = $2, attempts = attempts + 1, lease_holder = NULL \
             WHERE id = $1",
            &[&id, &now_ms],
        )?;
        Ok(())
    }

    fn attempt_failed(&self, id: i64) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE outbound SET attempts = attempts + 1 WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    fn purge_delivered(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "DELETE FROM outbound WHERE delivered_ms IS NOT NULL AND delivered_ms < $1",
            &[&before_ms],
        )? as usize)
    }
}

impl OversightStore for PgStore {
    fn lead(&self, job: &str) -> Result<bool, StoreError> {
        PgStore::lead(self, job)
    }

    fn oversight_history(&self, since_ms: i64) -> Result<Vec<ClueRecord>, StoreError> {
        let mut c = self.conn()?;
        let clues = c
            .query(
                &format!(
                    "SELECT {CLUE_COLS} FROM clues WHERE updated_ms >= $1 \
                     OR id IN (SELECT lead_id FROM clue_links l JOIN clues c ON c.id = l.linked_id \
                               WHERE c.updated_ms >= $1) \
                     OR id IN (SELECT linked_id FROM clue_links l JOIN clues c ON c.id = l.lead_id \
                               WHERE c.updated_ms >= $1) \
                     ORDER BY id LIMIT 200000"
                ),
                &[&since_ms],
            )?
            .iter()
            .map(clue_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = clues.iter().map(|c| c.id).collect();
        // Three set queries instead of three per clue: round trips cost more than rows here.
        let mut audit: BTreeMap<i64, Vec<AuditEntry>> = BTreeMap::new();
        for r in c.query(
            &format!("SELECT {AUDIT_COLS} FROM audit WHERE clue_id = ANY($1) ORDER BY seq"),
            &[&ids],
        )? {
            let e = audit_from_row(&r)?;
            if let Some(id) = e.clue_id {
                audit.entry(id).or_default().push(e);
            }
        }
        let mut evidence: BTreeMap<i64, i64> = BTreeMap::new();
        for r in c.query(
            "SELECT clue_id, COUNT(*) FROM evidence WHERE clue_id = ANY($1) GROUP BY clue_id",
            &[&ids],
        )? {
            evidence.insert(r.try_get(0)?, r.try_get(1)?);
        }
        let mut links: BTreeMap<i64, i64> = BTreeMap::new();
        for r in c.query(
            "SELECT linked_id, lead_id FROM clue_links WHERE linked_id = ANY($1)",
            &[&ids],
        )? {
            links.insert(r.try_get(0)?, r.try_get(1)?);
        }
        Ok(clues
            .into_iter()
            .map(|clue| ClueRecord {
                audit: audit.remove(&clue.id).unwrap_or_default(),
                evidence: evidence.get(&clue.id).copied().unwrap_or(0),
                linked_to: links.get(&clue.id).copied(),
                clue,
            })
            .collect())
    }

    fn link(
        &self,
        p: &LinkProposal,
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        for id in [p.lead, p.linked] {
            read_clue(&mut tx, id, true)?.ok_or(StoreError::NotFound(id))?;
        }
        let already: bool = tx
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM clue_links WHERE linked_id IN ($1, $2))",
                &[&p.lead, &p.linked],
            )?
            .try_get(0)?;
        if already || p.lead == p.linked {
            return Ok(Vec::new());
        }
        tx.execute(
            "INSERT INTO clue_links (linked_id, lead_id, reason, actor, at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&p.linked, &p.lead, &p.reason, &actor, &now_ms],
        )?;
        let mut changes = Vec::with_capacity(2);
        for (id, detail) in [
            (p.linked, json!({"lead": p.lead, "reason": p.reason})),
            (p.lead, json!({"linked": p.linked, "reason": p.reason})),
        ] {
            let clue = read_clue(&mut tx, id, false)?.ok_or(StoreError::NotFound(id))?;
            changes.push(self.record_change(
                &mut tx,
                &mut chain,
                now_ms,
                actor,
                AuditAction::Linked,
                clue,
                detail,
            )?);
        }
        commit(tx, &chain)?;
        Ok(changes)
    }

    fn raise_warnings(&self, found: &[Finding], now_ms: i64) -> Result<Vec<Warning>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let mut changed = Vec::new();
        for f in found {
            let current: Option<String> = tx
                .query_opt(
                    "SELECT level FROM oversight_warnings WHERE key = $1 FOR UPDATE",
                    &[&f.key],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                        &[
                            &f.key,
                            &f.model,
                            &level.as_str(),
                            &f.site,
                            &f.clue_id,
                            &concerns,
                            &f.message,
                            &detail,
                            &now_ms,
                        ],
                    )?;
                }
                Some(o) => {
                    tx.execute(
                        "UPDATE oversight_warnings SET level = $2, concerns = $3, message = $4, \
                         detail = $5, updated_ms = CASE WHEN $2 <> $7 THEN $6 ELSE updated_ms END \
                         WHERE key = $1",
                        &[
                            &f.key,
                            &level.as_str(),
                            &concerns,
                            &f.message,
                            &detail,
                            &now_ms,
                            &o.as_str(),
                        ],
                    )?;
                    if o == level {
                        continue;
                    }
                }
            }
            let seq = append(
                &mut tx,
                &mut chain,
                now_ms,
                "oversight",
                AuditAction::OversightWarning,
                None,
                &warning_detail(f, level),
            )?;
            let w = warning_from_row(&tx.query_one(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE key = $1"),
                &[&f.key],
            )?)?;
            let (topic, payload) = warning_message(&w, seq, now_ms)?;
            self.queue(&mut tx, &topic, &payload, now_ms)?;
            changed.push(w);
        }
        commit(tx, &chain)?;
        Ok(changed)
    }

    fn warnings(&self, scope: Option<&[String]>, limit: u32) -> Result<Vec<Warning>, StoreError> {
        let mut sql = format!("SELECT {WARNING_COLS} FROM oversight_warnings");
        let mut a = Args::default();
        if let Some(scope) = scope {
            sql += &format!(
                " WHERE site IS NULL OR site = ANY({})",
                a.push(scope.to_vec())
            );
        }
        sql += &format!(
            " ORDER BY CASE level WHEN 'red' THEN 2 ELSE 1 END DESC, updated_ms DESC, id DESC \
             LIMIT {}",
            limit.clamp(1, 10_000)
        );
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(warning_from_row)
            .collect()
    }

    fn prior_clues_since(&self, id: i64, since_ms: i64) -> Result<i64, StoreError> {
        let mut c = self.conn()?;
        let clue = read_clue(&mut *c, id, false)?.ok_or(StoreError::NotFound(id))?;
        Ok(c.query_one(
            "SELECT COUNT(*) FROM clues WHERE subject_key = $1 AND kind = $2 AND id < $3 \
             AND created_ms >= $4",
            &[&subject_key(&clue.subject), &clue.kind, &id, &since_ms],
        )?
        .try_get(0)?)
    }
}

impl RetentionStore for PgStore {
    fn record_original_access(
        &self,
        clue_id: i64,
        sha256: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        append(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::EvidenceOriginalAccess,
            Some(clue_id),
            &json!({"sha256": sha256, "role": role}),
        )?;
        commit(tx, &chain)
    }

    fn record_frame_access(
        &self,
        site: &str,
        camera: &str,
        actor: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.record(
            actor,
            AuditAction::FrameOriginalAccess,
            &json!({"site": site, "camera": camera, "role": role}),
            now_ms,
        )
    }

    fn expired_evidence(
        &self,
        now_ms: i64,
        cfg: &RetentionConfig,
        limit: u32,
    ) -> Result<Vec<Expired>, StoreError> {
        let mut c = self.conn()?;
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
                " AND NOT c.open"
            } else {
                ""
            };
            let rows = c.query(
                &format!(
                    "SELECT e.id, e.clue_id, e.kind, e.content_type, e.sha256, e.at_ms \
                     FROM evidence e JOIN clues c ON c.id = e.clue_id \
                     WHERE e.purged_ms IS NULL AND e.at_ms < $1 AND {cond}{open_cond} \
                     ORDER BY e.id LIMIT $2"
                ),
                &[&cutoff, &(limit as i64)],
            )?;
            for r in rows {
                let kind: String = r.try_get(2)?;
                let ct: Option<String> = r.try_get(3)?;
                out.push(Expired {
                    evidence_id: r.try_get(0)?,
                    clue_id: r.try_get(1)?,
                    class: class_of(&kind, ct.as_deref()),
                    kind,
                    sha256: r.try_get(4)?,
                    at_ms: r.try_get(5)?,
                });
            }
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
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let n = tx.execute(
            "UPDATE evidence SET purged_ms = $2, purge_reason = $3, body = NULL \
             WHERE id = $1 AND purged_ms IS NULL",
            &[&e.evidence_id, &now_ms, &reason],
        )?;
        if n == 1 {
            append(
                &mut tx,
                &mut chain,
                now_ms,
                "retention",
                AuditAction::EvidencePurged,
                Some(e.clue_id),
                &json!({"evidence_id": e.evidence_id, "sha256": e.sha256, "kind": e.kind,
                        "class": e.class, "reason": reason, "retention_s": retention_s,
                        "evidence_at_ms": e.at_ms}),
            )?;
        }
        commit(tx, &chain)?;
        Ok(n == 1)
    }

    fn unreferenced_files(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn()?;
        c.query(
            "SELECT DISTINCT sha256 FROM evidence p WHERE p.kind = 'file' \
             AND p.purged_ms IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evidence l \
             WHERE l.sha256 = p.sha256 AND l.purged_ms IS NULL) LIMIT 100000",
            &[],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }
}

/// The duplicate-act links of clue `id`: its lead, or the clues it leads.
fn read_links(c: &mut Conn, id: i64) -> Result<Links, StoreError> {
    let link = |r: &Row| -> Result<ClueLink, StoreError> {
        Ok(ClueLink {
            clue_id: r.try_get(0)?,
            department: r.try_get(1)?,
            reason: r.try_get(2)?,
            actor: r.try_get(3)?,
            at_ms: r.try_get(4)?,
        })
    };
    let lead = c
        .query_opt(
            "SELECT l.lead_id, c.department, l.reason, l.actor, l.at_ms FROM clue_links l \
             JOIN clues c ON c.id = l.lead_id WHERE l.linked_id = $1",
            &[&id],
        )?
        .map(|r| link(&r))
        .transpose()?;
    let linked = c
        .query(
            "SELECT l.linked_id, c.department, l.reason, l.actor, l.at_ms FROM clue_links l \
             JOIN clues c ON c.id = l.linked_id WHERE l.lead_id = $1 ORDER BY l.linked_id",
            &[&id],
        )?
        .iter()
        .map(link)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Links { lead, linked })
}

fn token_error(e: StoreError) -> TokenStoreError {
    TokenStoreError::Backend(e.to_string())
}

impl TokenStore for PgStore {
    fn insert_token(
        &self,
        hash: &str,
        grant: &TokenGrant<'_>,
        now_ms: i64,
    ) -> Result<i64, TokenStoreError> {
        let sites = serde_json::to_string(grant.sites)
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let mut c = self.conn().map_err(token_error)?;
        let (mut tx, mut chain) = begin(&mut c, &self.key).map_err(token_error)?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO tokens (hash, role, sites, name, created_ms, device, unit, \
                 department, relay, channel) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 RETURNING id",
                &[
                    &hash,
                    &grant.role.as_str(),
                    &sites,
                    &grant.name,
                    &now_ms,
                    &grant.device,
                    &grant.unit,
                    &grant.department,
                    &grant.relay,
                    &grant.channel,
                ],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        append(
            &mut tx,
            &mut chain,
            now_ms,
            "cli",
            AuditAction::TokenCreated,
            None,
            &super::store::token_created_detail(id, grant),
        )
        .map_err(token_error)?;
        commit(tx, &chain).map_err(token_error)?;
        Ok(id)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, TokenStoreError> {
        let mut c = self.conn().map_err(token_error)?;
        let row = c
            .query_opt(
                "SELECT id, role, sites, name, hash, device, unit, department, channel FROM tokens \
                 WHERE hash = $1 AND revoked_ms IS NULL",
                &[&hash],
            )
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let get = |e: postgres::Error| TokenStoreError::Backend(e.to_string());
        let id: i64 = row.try_get(0).map_err(get)?;
        let role: String = row.try_get(1).map_err(get)?;
        let sites: String = row.try_get(2).map_err(get)?;
        let role = Role::parse(&role)
            .ok_or_else(|| TokenStoreError::Backend(format!("token {id}: unknown role")))?;
        let sites: Vec<String> = serde_json::from_str(&sites)
            .map_err(|e| TokenStoreError::Backend(format!("token {id}: sites: {e}")))?;
        // The hash as stored, never the argument: the caller compares the two in constant time.
        Ok(Some(TokenRecord {
            id,
            hash: row.try_get(4).map_err(get)?,
            role,
            sites,
            name: row.try_get(3).map_err(get)?,
            device: row.try_get(5).map_err(get)?,
            unit: row.try_get(6).map_err(get)?,
            department: row.try_get(7).map_err(get)?,
            channel: row.try_get(8).map_err(get)?,
        }))
    }
}

#[cfg(test)]
mod tests;
