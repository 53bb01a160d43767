//! Batched dedup intake in SQLite: the batch is planned in memory (`store::intake`) from the
//! open clues of its keys and the chain head, read once, then written with cached prepared
//! statements: one update per touched clue instead of one per event, and no read-back of
//! the clue or the chain head per event.
//!
//! The caller's transaction holds SQLite's write lock from its start (`BEGIN IMMEDIATE`),
//! so what is read here stays current until commit, and new rows take the ids SQLite itself
//! would give them (one above the largest).

use super::audit::{head, write_entry};
use super::{CLUE_COLS, SqliteStore, clue_from_row};
use crate::clue::audit;
use crate::clue::model::ClueChange;
use crate::clue::store::intake::{self, Item};
use crate::clue::store::{StoreError, change_message, subject_key};
use rusqlite::{Connection, OptionalExtension, params};

impl SqliteStore {
    /// Dedups `items` inside `tx`; the changes in input order. Any failure fails the whole
    /// batch (the caller isolates events by redoing them one by one).
    pub(super) fn ingest_set(
        &self,
        tx: &Connection,
        items: &[Item],
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
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
                if let Some(c) = st.query_row([key], clue_from_row).optional()? {
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
            "INSERT INTO occurrences (id, clue_id, at_ms, received_ms, level, title, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
        Ok(plan.steps.into_iter().map(|s| s.change).collect())
    }
}
