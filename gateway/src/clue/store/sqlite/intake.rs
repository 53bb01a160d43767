//! Batched dedup intake in SQLite: the batch is planned in memory (`store::intake`) from the
//! open clues of its keys and the chain head, read once, then written with cached prepared
//! statements: one update per touched clue instead of one per event, and no read-back of
//! the clue or the chain head per event.
//!
//! The caller's transaction holds SQLite's write lock from its start (`BEGIN IMMEDIATE`),
//! so what is read here stays current until commit, and new rows take the ids SQLite itself
//! would give them (one above the largest).
//!
//! Dedup in memory, the database as the record: [`OpenCache`] keeps the open clues intake
//! last committed, by dedup key, so a repeat on an open clue is planned without reading the
//! clue back. The cache is trusted only while nothing but intake wrote since: it carries the
//! connection's `total_changes()` (every row this connection changed, by any path: actions,
//! escalation, recovery, retention) and `PRAGMA data_version` (changed by a commit of any other
//! connection or process) as they were after its last commit, and is emptied when either
//! moved. Checked inside `BEGIN IMMEDIATE`, so no writer slips in between check and use.

use super::audit::{head, write_entry};
use super::{CLUE_COLS, SqliteStore, clue_from_row};
use crate::clue::audit;
use crate::clue::model::Clue;
use crate::clue::model::ClueChange;
use crate::clue::repeats::Run;
use crate::clue::store::intake::{self, Item};
use crate::clue::store::{StoreError, change_message, subject_key};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Open clues by dedup key beyond which the cache starts over (it refills from the store).
const OPEN_CACHE_MAX: usize = 50_000;

/// The open clues intake committed last, by dedup key, and the connection's write stamp
/// after that commit (see the module doc).
#[derive(Default)]
pub(crate) struct OpenCache {
    clues: HashMap<String, Clue>,
    stamp: Option<(i64, i64)>,
}

/// What the connection has written (`total_changes()`) and what others committed
/// (`data_version`): both unchanged means no one changed a clue since the stamp was taken.
fn write_stamp(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let mine: i64 = conn
        .prepare_cached("SELECT total_changes()")?
        .query_row([], |r| r.get(0))?;
    let theirs: i64 = conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?;
    Ok((mine, theirs))
}

impl OpenCache {
    /// The cache to plan with inside a writing transaction on `conn`: emptied first when
    /// anything but intake wrote since it was filled.
    pub(super) fn checked(&mut self, conn: &Connection) -> Result<&Self, StoreError> {
        if self.stamp.is_none() || self.stamp != Some(write_stamp(conn)?) {
            self.clues.clear();
            self.stamp = None;
        }
        Ok(self)
    }

    /// After the commit of a batch that left `touched` (all open) as they are now.
    pub(super) fn committed(
        &mut self,
        conn: &Connection,
        touched: Vec<Clue>,
    ) -> Result<(), StoreError> {
        if self.clues.len() + touched.len() > OPEN_CACHE_MAX {
            self.clues.clear();
        }
        for c in touched {
            if c.status.is_open() {
                self.clues.insert(c.dedup_key.clone(), c);
            } else {
                self.clues.remove(&c.dedup_key);
            }
        }
        self.stamp = Some(write_stamp(conn)?);
        Ok(())
    }

    /// Forgets everything (a batch failed or went another way: the store is read again).
    pub(super) fn clear(&mut self) {
        self.clues.clear();
        self.stamp = None;
    }
}

impl SqliteStore {
    /// Dedups `items` inside `tx`; the changes in input order, and the clues as the batch
    /// left them (for the cache, once committed). Open clues found in `cache` (checked by the
    /// caller in this transaction) are not read back. Any failure fails the whole batch (the
    /// caller isolates events by redoing them one by one).
    pub(super) fn ingest_set(
        &self,
        tx: &Connection,
        items: &[Item],
        runs: &[Run],
        now_ms: i64,
        cache: Option<&OpenCache>,
    ) -> Result<(Vec<ClueChange>, Vec<Clue>), StoreError> {
        if items.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (mut open, mut disposed) = (Vec::new(), Vec::new());
        {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {CLUE_COLS} FROM clues WHERE dedup_key = ?1 AND open = 1"
            ))?;
            // The newest disposed clue of a key with none open: a worse event may reopen it.
            let mut newest = tx.prepare_cached(&format!(
                "SELECT {CLUE_COLS} FROM clues WHERE dedup_key = ?1 ORDER BY id DESC LIMIT 1"
            ))?;
            for key in intake::keys(items) {
                if let Some(c) = cache.and_then(|c| c.clues.get(key)) {
                    open.push(c.clone());
                } else if let Some(c) = st.query_row([key], clue_from_row).optional()? {
                    open.push(c);
                } else if let Some(c) = newest.query_row([key], clue_from_row).optional()? {
                    disposed.push(c);
                }
            }
        }
        let next_id = |table: &str| -> Result<i64, StoreError> {
            Ok(tx
                .prepare_cached(&format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"))?
                .query_row([], |r| r.get(0))?)
        };
        let (clue_id, occurrence_id) = (next_id("clues")?, next_id("occurrences")?);
        let mut head = head(tx, self.key())?;
        let plan = intake::plan(
            items,
            runs,
            open,
            disposed,
            clue_id..,
            occurrence_id..,
            &mut head,
            &intake::Context {
                raise_after: self.raise_after,
                key: self.key(),
                now_ms,
            },
        )?;

        let mut insert = tx.prepare_cached(
            "INSERT INTO clues (id, dedup_key, rule, kind, level, status, open, site, device, \
             plate, lat, lon, subject_key, title, detail, department, first_seen_ms, \
             last_seen_ms, occurrences, created_ms, updated_ms, deadline_ms, escalation, shop, \
             owner, assisting) VALUES (?1, ?2, ?3, ?4, ?5, 'new', 1, ?6, ?7, ?8, ?9, ?10, ?11, \
             ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, 'none', ?21, ?22, ?23)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE clues SET level = ?2, kind = ?3, occurrences = ?4, first_seen_ms = ?5, \
             last_seen_ms = ?6, title = ?7, detail = ?8, updated_ms = ?9, cleared_ms = NULL, \
             cleared_note = NULL WHERE id = ?1",
        )?;
        let mut reopen = tx.prepare_cached(
            "UPDATE clues SET status = ?2, open = 1, assignee = ?3, resolved_ms = ?4, \
             closed_ms = ?5, resolution = ?6 WHERE id = ?1",
        )?;
        for t in plan.clues.iter().filter(|t| t.reopened) {
            let c = &t.clue;
            reopen.execute(params![
                c.id,
                c.status.as_str(),
                c.assignee,
                c.resolved_ms,
                c.closed_ms,
                c.resolution,
            ])?;
        }
        for t in &plan.clues {
            let c = &t.clue;
            let s = &c.subject;
            if t.is_new {
                insert.execute(params![
                    c.id,
                    c.dedup_key,
                    c.rule,
                    c.kind,
                    c.level.as_str(),
                    s.site,
                    s.device,
                    s.plate,
                    s.location.map(|l| l.lat),
                    s.location.map(|l| l.lon),
                    subject_key(s),
                    c.title,
                    c.detail.to_string(),
                    c.department,
                    c.first_seen_ms,
                    c.last_seen_ms,
                    c.occurrences,
                    c.created_ms,
                    c.updated_ms,
                    c.deadline_ms,
                    s.shop,
                    s.owner,
                    serde_json::to_string(&c.assisting).unwrap_or_else(|_| "[]".into()),
                ])?;
            } else {
                update.execute(params![
                    c.id,
                    c.level.as_str(),
                    c.kind,
                    c.occurrences,
                    c.first_seen_ms,
                    c.last_seen_ms,
                    c.title,
                    c.detail.to_string(),
                    c.updated_ms,
                ])?;
            }
        }
        let mut occurrence = tx.prepare_cached(
            "INSERT INTO occurrences (id, clue_id, at_ms, received_ms, level, title, detail, \
             count, first_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut evidence_row = tx.prepare_cached(
            "INSERT INTO evidence (clue_id, occurrence_id, kind, name, content_type, sha256, \
             size, body, at_ms, regions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut outbound = tx.prepare_cached(
            "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (step, (ev, evidence, _)) in plan.steps.iter().zip(items) {
            let clue_id = plan.clues[step.clue].clue.id;
            occurrence.execute(params![
                step.occurrence_id,
                clue_id,
                ev.at_ms,
                now_ms,
                ev.level.as_str(),
                ev.title,
                ev.detail.to_string(),
                step.count,
                step.first_ms,
            ])?;
            for e in evidence {
                evidence_row.execute(params![
                    clue_id,
                    step.occurrence_id,
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
                ])?;
            }
            write_entry(tx, &step.entry)?;
            if !self.channels.is_empty() {
                let (topic, payload) = change_message(&step.change)?;
                for ch in &self.channels {
                    outbound.execute(params![ch, topic, payload, now_ms])?;
                }
            }
        }
        let touched = plan.clues.into_iter().map(|t| t.clue).collect();
        Ok((plan.steps.into_iter().map(|s| s.change).collect(), touched))
    }
}

#[cfg(test)]
mod tests {
    use crate::clue::lifecycle::Action;
    use crate::clue::model::ClueQuery;
    use crate::clue::signal::{ClueEvent, Level, Subject};
    use crate::clue::store::intake::Item;
    use crate::clue::store::{AuditLog, ClueRecords, SqliteStore};

    fn item(device: &str, level: Level, kind: &str, at_ms: i64) -> Item {
        let subject = Subject {
            site: "s1".into(),
            device: Some(device.into()),
            ..Default::default()
        };
        let ev = ClueEvent {
            rule: "pumpout".into(),
            kind: kind.into(),
            level,
            dedup_key: ClueEvent::default_key("pumpout", &subject),
            subject,
            at_ms,
            title: format!("t{at_ms}"),
            detail: serde_json::json!({"at": at_ms}),
            evidence: vec![],
            department: None,
            assisting: Vec::new(),
        };
        (ev, vec![], at_ms + 3_600_000)
    }

    fn ingest(store: &SqliteStore, items: &[Item], now_ms: i64) {
        for r in store.ingest_batch(items, now_ms).expect("batch") {
            r.expect("event");
        }
    }

    fn open_clues(store: &SqliteStore) -> Vec<crate::clue::model::Clue> {
        store
            .list(&ClueQuery {
                limit: 1_000,
                ..Default::default()
            })
            .expect("list")
    }

    /// Every event whose batch returned is in the file: the store dropped without any further
    /// call (no flush, no close) and opened again holds each occurrence and the chain.
    #[test]
    fn an_acknowledged_batch_survives_a_drop_without_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        let store = SqliteStore::open(&path, vec![]).expect("open");
        let mut acked = 0;
        for b in 0..20 {
            let items: Vec<_> = (0..50)
                .map(|i| item(&format!("d{}", i % 7), Level::Low, "due", b * 50 + i))
                .collect();
            ingest(&store, &items, 1_000 + b);
            acked += items.len() as i64;
        }
        drop(store);
        let again = SqliteStore::open(&path, vec![]).expect("reopen");
        let clues = open_clues(&again);
        assert_eq!(clues.len(), 7);
        assert_eq!(clues.iter().map(|c| c.occurrences).sum::<i64>(), acked);
        let report = again.verify_audit().expect("verify");
        assert!(report.ok);
        assert_eq!(report.entries as i64, acked);
    }

    /// due -> overdue inside one batch, on a clue the cache holds from the batch before: the
    /// same clue, re-levelled, with `level_raised` from/to in its history.
    #[test]
    fn a_worsening_in_a_batch_re_levels_the_cached_clue_with_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("c.sqlite"), vec![]).expect("open");
        ingest(&store, &[item("a", Level::Medium, "due", 1)], 10);
        let id = open_clues(&store)[0].id;
        ingest(
            &store,
            &[
                item("b", Level::Low, "due", 2),
                item("a", Level::Medium, "due", 3),
                item("a", Level::High, "overdue", 4),
            ],
            20,
        );
        let a = store.get(id).expect("get").expect("clue").clue;
        assert_eq!(
            (a.level, a.kind.as_str(), a.occurrences),
            (Level::High, "overdue", 3)
        );
        assert_eq!(open_clues(&store).len(), 2, "b opened, a continued");
        let trail = store.audit_of(id).expect("audit");
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["created", "occurrence", "level_raised"]);
        let raised = &trail[2].detail;
        assert_eq!(
            (&raised["from_kind"], &raised["to_kind"]),
            (&serde_json::json!("due"), &serde_json::json!("overdue"))
        );
        assert_eq!(raised["from_level"], "medium");
        assert!(store.verify_audit().expect("verify").ok);
    }

    /// The cache is never trusted past a change made another way: an action through the same
    /// store (a person closing the clue), and a write by another connection to the file.
    #[test]
    fn the_open_clue_cache_is_dropped_when_anything_else_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        let store = SqliteStore::open(&path, vec![]).expect("open");
        ingest(&store, &[item("a", Level::Low, "due", 1)], 10);
        let first = open_clues(&store)[0].id;
        let cached = |store: &SqliteStore| {
            let mut conn = store.conn();
            let tx = conn.transaction().expect("tx");
            store.open_cache().checked(&tx).expect("check").clues.len()
        };
        assert_eq!(cached(&store), 1, "intake's own commit keeps the cache");
        store
            .act(
                first,
                &Action::Dismiss {
                    reason: "permitted".into(),
                },
                "ann",
                11,
            )
            .expect("dismiss");
        assert_eq!(cached(&store), 0, "an action empties it");
        // A repeat at the same level after the dismissal opens a new clue; from a stale cache
        // it would have continued the dismissed one.
        ingest(&store, &[item("a", Level::Low, "due", 2)], 12);
        let open = open_clues(&store);
        let now_open: Vec<_> = open.iter().filter(|c| c.status.is_open()).collect();
        assert_eq!(now_open.len(), 1);
        let second = now_open[0].id;
        assert_ne!(second, first);
        // Another connection changes the open clue's title (nothing should, but the store is
        // the record): the next event's digest is taken over the row as stored.
        ingest(&store, &[item("a", Level::Low, "due", 3)], 13);
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute("UPDATE clues SET assignee = 'bob' WHERE id = ?1", [second]))
            .expect("outside write");
        assert_eq!(cached(&store), 0, "another connection's commit empties it");
        ingest(&store, &[item("a", Level::Low, "due", 4)], 14);
        let c = store.get(second).expect("get").expect("clue").clue;
        assert_eq!(
            c.assignee.as_deref(),
            Some("bob"),
            "the stored row was read"
        );
        assert_eq!(c.occurrences, 3);
        let trail = store.audit_of(second).expect("audit");
        let last = trail.last().expect("entry");
        assert_eq!(
            last.detail["clue_sha256"],
            crate::clue::store::clue_digest(&c),
            "the entry records the clue as stored"
        );
    }
}
