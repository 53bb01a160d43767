//! Set-based dedup intake: a batch of events is a handful of round trips, not three per event.
//!
//! Inside the writing transaction, after the chain head is locked (`begin`):
//! 1. one query reads the open clues of the batch's distinct keys (and one the newest
//!    disposed clue of the keys with none open, which a worse event reopens);
//! 2. only when the batch opens new clues, one query draws their ids from the sequence (the
//!    occurrences' ids came with the head lock, `begin_drawing`);
//! 3. the batch is planned in memory (`store::intake`: dedup, levels, digests, the chain);
//! 4. one statement writes it all: new clues, repeated clues, occurrences, evidence, audit
//!    entries, outbox rows and the moved chain head, each table fed by `UNNEST` of column
//!    arrays.
//!
//! Every round trip between locking the head and committing is time the other gateways wait
//! for the head, so a batch of repeats (the common case) makes three: the open clues, the
//! write, the commit.
//!
//! The chain lock is what makes the read in step 1 current until commit: every writer of clue
//! rows takes it first. The partial unique index `clues_one_open_per_key` stays the guard: a
//! plan that would open a second clue for a key fails the statement instead.

use super::{Chain, PgStore, clue_from_row};
use crate::clue::audit;
use crate::clue::model::{Clue, ClueChange};
use crate::clue::repeats::Run;
use crate::clue::store::intake::{self, Item};
use crate::clue::store::{CLUE_COLS, StoreError, change_message, subject_key};
use postgres::Transaction;
use postgres::types::{ToSql, Type};

/// The write of step 4 (`$n` in the order of [`Columns::params`]).
const WRITE: &str = "WITH new_clues AS (\
     INSERT INTO clues (id, dedup_key, rule, kind, level, status, open, site, device, plate, \
     lat, lon, subject_key, title, detail, department, first_seen_ms, last_seen_ms, occurrences, \
     created_ms, updated_ms, deadline_ms, escalation, shop, owner, assisting) \
     SELECT id, dedup_key, rule, kind, level, 'new', TRUE, site, device, plate, lat, lon, \
     subject_key, title, detail, department, first_seen_ms, last_seen_ms, occurrences, \
     created_ms, updated_ms, deadline_ms, 'none', shop, owner, assisting \
     FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19, $20, $21, $22, $60) AS n(id, dedup_key, rule, kind, level, site, device, plate, \
     lat, lon, subject_key, title, detail, department, first_seen_ms, last_seen_ms, \
     occurrences, created_ms, updated_ms, deadline_ms, shop, owner, assisting)), \
     repeated AS (\
     UPDATE clues c SET level = u.level, kind = u.kind, occurrences = u.occurrences, \
     first_seen_ms = u.first_seen_ms, last_seen_ms = u.last_seen_ms, title = u.title, \
     detail = u.detail, updated_ms = u.updated_ms, cleared_ms = NULL, cleared_note = NULL \
     FROM UNNEST($23, $24, $25, $26, $27, $28, $29, $30, $31) AS u(id, level, kind, \
     occurrences, first_seen_ms, last_seen_ms, title, detail, updated_ms) WHERE c.id = u.id), \
     occ AS (\
     INSERT INTO occurrences (id, clue_id, at_ms, received_ms, level, title, detail, count, \
     first_ms) \
     SELECT id, clue_id, at_ms, $32, level, title, detail, count, first_ms \
     FROM UNNEST($33, $34, $35, $36, $37, $38, $63, $64) \
     AS o(id, clue_id, at_ms, level, title, detail, count, first_ms)), \
     ev AS (\
     INSERT INTO evidence (clue_id, occurrence_id, kind, name, content_type, sha256, size, body, \
     at_ms, regions) \
     SELECT clue_id, occurrence_id, kind, name, content_type, sha256, size, body, at_ms, regions \
     FROM UNNEST($39, $40, $41, $42, $43, $44, $45, $46, $47, $48) WITH ORDINALITY \
     AS e(clue_id, occurrence_id, kind, name, content_type, sha256, size, body, at_ms, regions, n) \
     ORDER BY n), \
     outbox AS (\
     INSERT INTO outbound (channel, topic, payload, created_ms) \
     SELECT ch, topic, payload, $32 \
     FROM UNNEST($49, $50) WITH ORDINALITY AS m(topic, payload, n) \
     CROSS JOIN UNNEST($51) WITH ORDINALITY AS c(ch, k) ORDER BY m.n, c.k), \
     head AS (UPDATE audit_head SET seq = $61, hash = $62 WHERE id = 1) \
     INSERT INTO audit (seq, at_ms, actor, action, clue_id, detail, prev_hash, hash) \
     SELECT * FROM UNNEST($52, $53, $54, $55, $56, $57, $58, $59)";

/// Column arrays of one batch's write.
#[derive(Default)]
struct Columns {
    // New clues.
    n_id: Vec<i64>,
    n_key: Vec<String>,
    n_rule: Vec<String>,
    n_kind: Vec<String>,
    n_level: Vec<&'static str>,
    n_site: Vec<String>,
    n_device: Vec<Option<String>>,
    n_plate: Vec<Option<String>>,
    n_lat: Vec<Option<f64>>,
    n_lon: Vec<Option<f64>>,
    n_subject: Vec<String>,
    n_title: Vec<String>,
    n_detail: Vec<String>,
    n_department: Vec<Option<String>>,
    /// `$60`: appended last so the numbers of the older columns stay as they were.
    n_assisting: Vec<String>,
    n_first: Vec<i64>,
    n_last: Vec<i64>,
    n_occurrences: Vec<i64>,
    n_created: Vec<i64>,
    n_updated: Vec<i64>,
    n_deadline: Vec<i64>,
    n_shop: Vec<Option<String>>,
    n_owner: Vec<Option<String>>,
    // Clues stored already.
    u_id: Vec<i64>,
    u_level: Vec<&'static str>,
    u_kind: Vec<String>,
    u_occurrences: Vec<i64>,
    u_first: Vec<i64>,
    u_last: Vec<i64>,
    u_title: Vec<String>,
    u_detail: Vec<String>,
    u_updated: Vec<i64>,
    // Occurrences.
    received_ms: i64,
    o_id: Vec<i64>,
    o_clue: Vec<i64>,
    o_at: Vec<i64>,
    o_level: Vec<&'static str>,
    o_title: Vec<String>,
    o_detail: Vec<String>,
    /// `$63`, `$64`: a run's count and first time (appended last, as `$60`).
    o_count: Vec<i64>,
    o_first: Vec<Option<i64>>,
    // Evidence.
    e_clue: Vec<i64>,
    e_occurrence: Vec<i64>,
    e_kind: Vec<&'static str>,
    e_name: Vec<Option<String>>,
    e_content_type: Vec<Option<String>>,
    e_sha256: Vec<String>,
    e_size: Vec<i64>,
    e_body: Vec<Option<String>>,
    e_at: Vec<i64>,
    e_regions: Vec<Option<String>>,
    // Outbox.
    m_topic: Vec<String>,
    m_payload: Vec<String>,
    channels: Vec<&'static str>,
    // Audit.
    a_seq: Vec<i64>,
    a_at: Vec<i64>,
    a_actor: Vec<String>,
    a_action: Vec<String>,
    a_clue: Vec<Option<i64>>,
    a_detail: Vec<String>,
    a_prev: Vec<String>,
    a_hash: Vec<String>,
    /// `$61`, `$62`: the chain head after the batch's entries.
    head_seq: i64,
    head_hash: String,
}

impl Columns {
    fn new_clue(&mut self, c: &Clue) {
        let s = &c.subject;
        self.n_id.push(c.id);
        self.n_key.push(c.dedup_key.clone());
        self.n_rule.push(c.rule.clone());
        self.n_kind.push(c.kind.clone());
        self.n_level.push(c.level.as_str());
        self.n_site.push(s.site.clone());
        self.n_device.push(s.device.clone());
        self.n_plate.push(s.plate.clone());
        self.n_lat.push(s.location.map(|l| l.lat));
        self.n_lon.push(s.location.map(|l| l.lon));
        self.n_subject.push(subject_key(s));
        self.n_title.push(c.title.clone());
        self.n_detail.push(c.detail.to_string());
        self.n_department.push(c.department.clone());
        self.n_first.push(c.first_seen_ms);
        self.n_last.push(c.last_seen_ms);
        self.n_occurrences.push(c.occurrences);
        self.n_created.push(c.created_ms);
        self.n_updated.push(c.updated_ms);
        self.n_deadline.push(c.deadline_ms);
        self.n_shop.push(s.shop.clone());
        self.n_owner.push(s.owner.clone());
        self.n_assisting
            .push(serde_json::to_string(&c.assisting).unwrap_or_else(|_| "[]".into()));
    }

    fn repeated_clue(&mut self, c: &Clue) {
        self.u_id.push(c.id);
        self.u_level.push(c.level.as_str());
        self.u_kind.push(c.kind.clone());
        self.u_occurrences.push(c.occurrences);
        self.u_first.push(c.first_seen_ms);
        self.u_last.push(c.last_seen_ms);
        self.u_title.push(c.title.clone());
        self.u_detail.push(c.detail.to_string());
        self.u_updated.push(c.updated_ms);
    }

    fn entry(&mut self, e: &audit::AuditEntry) {
        self.a_seq.push(e.seq);
        self.a_at.push(e.at_ms);
        self.a_actor.push(e.actor.clone());
        self.a_action.push(e.action.clone());
        self.a_clue.push(e.clue_id);
        self.a_detail.push(audit::canonical_json(&e.detail));
        self.a_prev.push(e.prev_hash.clone());
        self.a_hash.push(e.hash.clone());
    }

    fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        use Type as T;
        vec![
            (&self.n_id, T::INT8_ARRAY),
            (&self.n_key, T::TEXT_ARRAY),
            (&self.n_rule, T::TEXT_ARRAY),
            (&self.n_kind, T::TEXT_ARRAY),
            (&self.n_level, T::TEXT_ARRAY),
            (&self.n_site, T::TEXT_ARRAY),
            (&self.n_device, T::TEXT_ARRAY),
            (&self.n_plate, T::TEXT_ARRAY),
            (&self.n_lat, T::FLOAT8_ARRAY),
            (&self.n_lon, T::FLOAT8_ARRAY),
            (&self.n_subject, T::TEXT_ARRAY),
            (&self.n_title, T::TEXT_ARRAY),
            (&self.n_detail, T::TEXT_ARRAY),
            (&self.n_department, T::TEXT_ARRAY),
            (&self.n_first, T::INT8_ARRAY),
            (&self.n_last, T::INT8_ARRAY),
            (&self.n_occurrences, T::INT8_ARRAY),
            (&self.n_created, T::INT8_ARRAY),
            (&self.n_updated, T::INT8_ARRAY),
            (&self.n_deadline, T::INT8_ARRAY),
            (&self.n_shop, T::TEXT_ARRAY),
            (&self.n_owner, T::TEXT_ARRAY),
            (&self.u_id, T::INT8_ARRAY),
            (&self.u_level, T::TEXT_ARRAY),
            (&self.u_kind, T::TEXT_ARRAY),
            (&self.u_occurrences, T::INT8_ARRAY),
            (&self.u_first, T::INT8_ARRAY),
            (&self.u_last, T::INT8_ARRAY),
            (&self.u_title, T::TEXT_ARRAY),
            (&self.u_detail, T::TEXT_ARRAY),
            (&self.u_updated, T::INT8_ARRAY),
            (&self.received_ms, T::INT8),
            (&self.o_id, T::INT8_ARRAY),
            (&self.o_clue, T::INT8_ARRAY),
            (&self.o_at, T::INT8_ARRAY),
            (&self.o_level, T::TEXT_ARRAY),
            (&self.o_title, T::TEXT_ARRAY),
            (&self.o_detail, T::TEXT_ARRAY),
            (&self.e_clue, T::INT8_ARRAY),
            (&self.e_occurrence, T::INT8_ARRAY),
            (&self.e_kind, T::TEXT_ARRAY),
            (&self.e_name, T::TEXT_ARRAY),
            (&self.e_content_type, T::TEXT_ARRAY),
            (&self.e_sha256, T::TEXT_ARRAY),
            (&self.e_size, T::INT8_ARRAY),
            (&self.e_body, T::TEXT_ARRAY),
            (&self.e_at, T::INT8_ARRAY),
            (&self.e_regions, T::TEXT_ARRAY),
            (&self.m_topic, T::TEXT_ARRAY),
            (&self.m_payload, T::TEXT_ARRAY),
            (&self.channels, T::TEXT_ARRAY),
            (&self.a_seq, T::INT8_ARRAY),
            (&self.a_at, T::INT8_ARRAY),
            (&self.a_actor, T::TEXT_ARRAY),
            (&self.a_action, T::TEXT_ARRAY),
            (&self.a_clue, T::INT8_ARRAY),
            (&self.a_detail, T::TEXT_ARRAY),
            (&self.a_prev, T::TEXT_ARRAY),
            (&self.a_hash, T::TEXT_ARRAY),
            (&self.n_assisting, T::TEXT_ARRAY),
            (&self.head_seq, T::INT8),
            (&self.head_hash, T::TEXT),
            (&self.o_count, T::INT8_ARRAY),
            (&self.o_first, T::INT8_ARRAY),
        ]
    }
}

impl PgStore {
    /// Dedups `items` inside `tx`, which holds the chain head `chain` (moved to the batch's last
    /// entry, in the table as in `chain`); the changes in input order. `ids` are occurrence ids
    /// drawn already: the batch takes its own from the front and draws what is missing. Any
    /// failure fails the whole batch (the caller isolates events by redoing them one by one).
    pub(super) fn ingest_set(
        &self,
        tx: &mut Transaction<'_>,
        chain: &mut Chain,
        items: &[Item],
        runs: &[Run],
        ids: &mut Vec<i64>,
        now_ms: i64,
    ) -> Result<Vec<ClueChange>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let keys = intake::keys(items);
        let open = tx
            .query_typed(
                &format!("SELECT {CLUE_COLS} FROM clues WHERE dedup_key = ANY($1) AND open"),
                &[(&keys, Type::TEXT_ARRAY)],
            )?
            .iter()
            .map(clue_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // The newest disposed clue of each key with none open: a worse event may reopen it.
        let unopened: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !open.iter().any(|c| c.dedup_key == *k))
            .collect();
        let disposed = if unopened.is_empty() {
            Vec::new()
        } else {
            tx.query_typed(
                &format!(
                    "SELECT DISTINCT ON (dedup_key) {CLUE_COLS} FROM clues \
                     WHERE dedup_key = ANY($1) ORDER BY dedup_key, id DESC"
                ),
                &[(&unopened, Type::TEXT_ARRAY)],
            )?
            .iter()
            .map(clue_from_row)
            .collect::<Result<Vec<_>, _>>()?
        };
        let mut occurrence_ids: Vec<i64> = ids.drain(..items.len().min(ids.len())).collect();
        let wanted = [
            intake::new_clues(&keys, &open) as i64,
            (items.len() - occurrence_ids.len()) as i64,
        ];
        let mut clue_ids = Vec::new();
        if wanted != [0, 0] {
            let drawn = tx.query_typed_one(
                "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('clues', 'id')::regclass) \
                 FROM generate_series(1, $1)), \
                 ARRAY(SELECT nextval(pg_get_serial_sequence('occurrences', 'id')::regclass) \
                 FROM generate_series(1, $2))",
                &[(&wanted[0], Type::INT8), (&wanted[1], Type::INT8)],
            )?;
            clue_ids = drawn.try_get(0)?;
            occurrence_ids.extend(drawn.try_get::<_, Vec<i64>>(1)?);
        }
        let plan = intake::plan(
            items,
            runs,
            open,
            disposed,
            clue_ids,
            occurrence_ids,
            &mut chain.head,
            &intake::Context {
                raise_after: self.raise_after,
                key: chain.key.as_deref(),
                now_ms,
            },
        )?;

        let mut cols = Columns {
            received_ms: now_ms,
            channels: self.channels.clone(),
            head_seq: chain.head.seq,
            head_hash: chain.head.hash.clone(),
            ..Default::default()
        };
        for t in &plan.clues {
            if t.is_new {
                cols.new_clue(&t.clue);
            } else {
                cols.repeated_clue(&t.clue);
            }
        }
        for (step, (ev, evidence, _)) in plan.steps.iter().zip(items) {
            let clue_id = plan.clues[step.clue].clue.id;
            cols.o_id.push(step.occurrence_id);
            cols.o_clue.push(clue_id);
            cols.o_at.push(ev.at_ms);
            cols.o_level.push(ev.level.as_str());
            cols.o_title.push(ev.title.clone());
            cols.o_detail.push(ev.detail.to_string());
            cols.o_count.push(step.count);
            cols.o_first.push(step.first_ms);
            for e in evidence {
                cols.e_clue.push(clue_id);
                cols.e_occurrence.push(step.occurrence_id);
                cols.e_kind.push(e.kind);
                cols.e_name.push(e.name.clone());
                cols.e_content_type.push(e.content_type.clone());
                cols.e_sha256.push(e.sha256.clone());
                cols.e_size.push(e.size);
                cols.e_body.push(e.body.as_ref().map(audit::canonical_json));
                cols.e_at.push(ev.at_ms);
                cols.e_regions.push(
                    e.regions
                        .as_ref()
                        .and_then(|r| serde_json::to_string(r).ok()),
                );
            }
            cols.entry(&step.entry);
            if !self.channels.is_empty() {
                let (topic, payload) = change_message(&step.change)?;
                cols.m_topic.push(topic);
                cols.m_payload.push(payload);
            }
        }
        // Reopened clues (rare): their lifecycle columns first, one statement each.
        for t in plan.clues.iter().filter(|t| t.reopened) {
            let c = &t.clue;
            tx.execute_typed(
                "UPDATE clues SET status = $2, open = TRUE, assignee = $3, resolved_ms = $4, \
                 closed_ms = $5, resolution = $6 WHERE id = $1",
                &[
                    (&c.id, Type::INT8),
                    (&c.status.as_str(), Type::TEXT),
                    (&c.assignee, Type::TEXT),
                    (&c.resolved_ms, Type::INT8),
                    (&c.closed_ms, Type::INT8),
                    (&c.resolution, Type::TEXT),
                ],
            )?;
        }
        tx.execute_typed(WRITE, &cols.params())?;
        chain.stored = chain.head.seq;
        Ok(plan.steps.into_iter().map(|s| s.change).collect())
    }
}
