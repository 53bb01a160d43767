//! Clues in SQLite: the dedup intake (one open clue per key, repeats as occurrences with
//! their evidence), lifecycle actions, escalation, and the reads behind the API.
//!
//! Every change ends in [`SqliteStore::record`] inside its own transaction: the audit entry
//! and the delivery rows are written with the clue or not at all.

use super::schema::LEVEL_RANK;
use super::{
    CLUE_COLS, SqliteStore, clue_from_row, corrupt, is_unique_violation, json_col, read_clue,
};
use crate::clue::audit::AuditAction;
use crate::clue::lifecycle::{self, Action};
use crate::clue::model::*;
use crate::clue::repeats::Run;
use crate::clue::signal::ClueEvent;
use crate::clue::store::intake::Item;
use crate::clue::store::{
    ClueRecords, StatsRow, StoreError, act_detail, escalation_detail, escalation_due, history_of,
    kind_matches, state_of, stats_of, subject_key,
};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::json;

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

impl ClueRecords for SqliteStore {
    fn ingest(
        &self,
        ev: &ClueEvent,
        evidence: &[NewEvidence],
        deadline_ms: i64,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let item = (ev.clone(), evidence.to_vec(), deadline_ms);
        self.ingest_batch(std::slice::from_ref(&item), now_ms)?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("ingest returned no change".into())))
    }

    /// The batch planned and written at once, repeats on open clues planned from the open-clue
    /// cache (`intake.rs`); only when that fails is it redone one event at a time, each in a
    /// savepoint and without the cache, so one bad event does not undo the others.
    fn ingest_runs(
        &self,
        items: &[Item],
        runs: &[Run],
        now_ms: i64,
    ) -> Result<Vec<Result<ClueChange, StoreError>>, StoreError> {
        let mut conn = self.conn();
        let mut cache = self.open_cache();
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sp = tx.savepoint()?;
        let planned = if self.use_open_cache {
            match cache.checked(&sp) {
                Ok(c) => self.ingest_set(&sp, items, runs, now_ms, Some(c)),
                Err(e) => Err(e),
            }
        } else {
            self.ingest_set(&sp, items, runs, now_ms, None)
        };
        if let Ok((changes, touched)) = planned {
            sp.commit()?;
            let done = tx.commit();
            if let Err(e) = done {
                cache.clear();
                return Err(e.into());
            }
            if !self.use_open_cache || cache.committed(&conn, touched).is_err() {
                cache.clear();
            }
            return Ok(changes.into_iter().map(Ok).collect());
        }
        drop(sp);
        cache.clear();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let sp = tx.savepoint()?;
            let run = runs.get(i..=i).unwrap_or(&[]);
            match self.ingest_set(&sp, std::slice::from_ref(item), run, now_ms, None) {
                Ok((mut c, _)) => {
                    sp.commit()?;
                    out.push(
                        c.pop()
                            .ok_or_else(|| StoreError::Corrupt("ingest returned no change".into())),
                    );
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
                AuditAction::Recovered,
                json!({"at_ms": at_ms, "note": note, "from": status, "to": "resolved",
                       "auto_resolved": true}),
            )
        } else {
            tx.execute(
                "UPDATE clues SET cleared_ms = ?2, cleared_note = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id, at_ms, note, now_ms],
            )?;
            (
                AuditAction::Cleared,
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
        let before = state_of(&clue);
        let next = lifecycle::apply(&before, action, actor, now_ms)?;
        let res = tx.execute(
            "UPDATE clues SET status = ?2, open = ?3, assignee = ?4, department = ?5, \
             claimed_ms = ?6, resolved_ms = ?7, closed_ms = ?8, resolution = ?9, updated_ms = ?10, \
             assisting = ?11 WHERE id = ?1",
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
                now_ms,
                serde_json::to_string(&next.assisting).unwrap_or_else(|_| "[]".into()),
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
        if let Some(d) = crate::clue::store::decision_of(action)? {
            super::decisions::insert_decision(&tx, id, &clue.subject.site, d, actor, now_ms)?;
        }
        let mut detail = act_detail(action, &before, &next);
        if let Some(n) = crate::clue::store::owner_notice_of(action)? {
            let notice = super::owner_notices::queue_notice(&tx, id, n, actor, now_ms)?;
            detail["notice"] = serde_json::json!(notice);
            detail["contact"] = serde_json::json!(n.2.contact_masked);
        }
        let change = self.record(&tx, now_ms, actor, AuditAction::from(action), id, detail)?;
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
            let Some(target) = escalation_due(&current, deadline, now_ms, red_after_ms) else {
                continue;
            };
            tx.execute(
                "UPDATE clues SET escalation = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, target.as_str(), now_ms],
            )?;
            changes.push(self.record(
                &tx,
                now_ms,
                "pool",
                AuditAction::Supervision,
                id,
                escalation_detail(target, deadline, now_ms),
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
        let history = history_of(prior, first, clue.occurrences);
        let recent_occurrences = {
            let mut st = conn.prepare(
                "SELECT id, at_ms, received_ms, level, title, detail, count, first_ms \
                 FROM occurrences WHERE clue_id = ?1 ORDER BY id DESC LIMIT 50",
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
                    count: r.get(6)?,
                    first_ms: r.get(7)?,
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
            matter: None,
        }))
    }

    fn list(&self, q: &ClueQuery) -> Result<Vec<Clue>, StoreError> {
        let mut sql = format!("SELECT {CLUE_COLS} FROM clues {{index}} WHERE 1 = 1");
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
        if let Some(d) = &q.department {
            // Led or assisted by the department (`assisting` is a JSON array of ids).
            args.push(d.clone());
            let n = args.len();
            sql.push_str(&format!(
                " AND (department = ?{n} OR EXISTS (SELECT 1 FROM json_each(assisting) \
                 WHERE value = ?{n}))"
            ));
        }
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(100_000)
        };
        sql.push_str(&format!(
            " ORDER BY open DESC, {LEVEL_RANK} DESC, last_seen_ms DESC, id DESC LIMIT {limit} OFFSET {}",
            q.offset
        ));
        let conn = self.conn();
        let sites: Vec<&String> = match (&q.site, &q.scope) {
            (Some(s), _) => vec![s],
            (None, Some(scope)) => scope.iter().collect(),
            (None, None) => Vec::new(),
        };
        let index = list_index(&conn, &sites, limit as usize + q.offset as usize)?;
        let sql = sql.replace("{index}", index);
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), clue_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(StatsRow {
                level: r.get(0)?,
                status: r.get(1)?,
                kind: r.get(2)?,
                department: r.get(3)?,
                created_ms: r.get(4)?,
                claimed_ms: r.get(5)?,
                resolved_ms: r.get(6)?,
                escalation: r.get(7)?,
                open: r.get::<_, i64>(8)? != 0,
                deadline_ms: r.get(9)?,
            })
        })?;
        stats_of(rows.map(|r| r.map_err(StoreError::from)), now_ms)
    }
}

/// Which index a list reads, chosen here because SQLite's planner, even with full statistics,
/// sorts every clue of the scope's sites (40 ms for five sites of 100,000 clues) rather than
/// reading `clues_list_order` in order and stopping at the page's end. Reading in order scans
/// about `page * total / matching` rows, sorting costs about `matching` rows (a little more):
/// the order is read when `matching² > page * total`, else the sites' own rows are sorted.
/// `matching` is counted on `clues_site_status` alone (index only); `total` is the highest id.
fn list_index(
    conn: &Connection,
    sites: &[&String],
    page: usize,
) -> Result<&'static str, StoreError> {
    if sites.is_empty() {
        // No site filter: nothing competes with the order index.
        return Ok("");
    }
    let marks: Vec<String> = (1..=sites.len()).map(|i| format!("?{i}")).collect();
    let matching: i64 = conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM clues INDEXED BY clues_site_status WHERE site IN ({})",
            marks.join(", ")
        ),
        rusqlite::params_from_iter(sites.iter()),
        |r| r.get(0),
    )?;
    let total: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM clues", [], |r| r.get(0))?;
    let (m, p, t) = (matching as i128, page as i128, total as i128);
    Ok(if m * m > p * t {
        "INDEXED BY clues_list_order"
    } else {
        "INDEXED BY clues_site_status"
    })
}

#[cfg(test)]
mod tests {
    use super::list_index;
    use crate::clue::model::ClueQuery;
    use crate::clue::signal::{ClueEvent, Level, Subject};
    use crate::clue::store::{ClueRecords, SqliteStore};

    fn event(i: usize) -> ClueEvent {
        let subject = Subject {
            site: format!("s{:02}", i % 20),
            device: Some(format!("d{i}")),
            ..Default::default()
        };
        ClueEvent {
            rule: "r".into(),
            kind: "k".into(),
            level: [Level::Low, Level::Medium, Level::High][i % 3],
            dedup_key: ClueEvent::default_key("r", &subject),
            subject,
            // Last seen not in id order, so the order index and the sort must agree on it.
            at_ms: ((i * 7919) % 600) as i64,
            title: "t".into(),
            detail: serde_json::json!({}),
            evidence: vec![],
            department: None,
            assisting: Vec::new(),
        }
    }

    #[test]
    fn a_page_is_the_same_whichever_index_is_read_and_the_choice_follows_the_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("c.sqlite"), vec![]).expect("open");
        let items: Vec<_> = (0..600).map(|i| (event(i), vec![], 1_000)).collect();
        for r in store.ingest_batch(&items, 1_000).expect("batch") {
            r.expect("event");
        }
        let five: Vec<String> = (0..5).map(|s| format!("s{s:02}")).collect();
        {
            let conn = store.conn();
            let s0 = five[0].clone();
            // 150 of 600 clues in five sites: a page of 10 reads the order (150² > 10 × 600),
            // a page of 100 sorts the sites' rows (150² < 100 × 600); one site (30) sorts.
            let sites: Vec<&String> = five.iter().collect();
            assert_eq!(
                list_index(&conn, &sites, 10).expect("choice"),
                "INDEXED BY clues_list_order"
            );
            assert_eq!(
                list_index(&conn, &sites, 100).expect("choice"),
                "INDEXED BY clues_site_status"
            );
            assert_eq!(
                list_index(&conn, &[&s0], 10).expect("choice"),
                "INDEXED BY clues_site_status"
            );
            assert_eq!(list_index(&conn, &[], 10).expect("choice"), "");
        }
        // The expected order, computed here: open first, then level, newest, highest id.
        let mut all = store
            .list(&ClueQuery {
                limit: 1_000,
                ..Default::default()
            })
            .expect("all");
        all.retain(|c| five.contains(&c.subject.site));
        let rank = |l: Level| match l {
            Level::High => 3,
            Level::Medium => 2,
            _ => 1,
        };
        let mut want = all.clone();
        want.sort_by_key(|c| {
            std::cmp::Reverse((c.status.is_open(), rank(c.level), c.last_seen_ms, c.id))
        });
        let ids = |v: &[crate::clue::model::Clue]| v.iter().map(|c| c.id).collect::<Vec<_>>();
        for (limit, offset) in [(10, 0), (10, 20), (100, 0), (100, 100)] {
            let got = store
                .list(&ClueQuery {
                    scope: Some(five.clone()),
                    limit,
                    offset,
                    ..Default::default()
                })
                .expect("page");
            let end = (offset as usize + limit as usize).min(want.len());
            assert_eq!(
                ids(&got),
                ids(&want[offset as usize..end]),
                "page of {limit} at {offset}"
            );
        }
        // A level filter with the order index keeps the same order.
        let high = store
            .list(&ClueQuery {
                scope: Some(five.clone()),
                level: Some(Level::High),
                limit: 10,
                ..Default::default()
            })
            .expect("high");
        let want_high: Vec<i64> = want
            .iter()
            .filter(|c| c.level == Level::High)
            .take(10)
            .map(|c| c.id)
            .collect();
        assert_eq!(ids(&high), want_high);
    }
}
