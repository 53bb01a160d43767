//! Supervision notices in SQLite: each step, its audit entry, its link to that entry (the
//! notice's history) and its delivery rows in one transaction.

use super::audit::{AUDIT_COLS, append_audit, audit_from_row};
use super::oversight::warning_from_row;
use super::{SqliteStore, corrupt, is_unique_violation};
use crate::clue::audit::{AuditAction, NoticeEvent};
use crate::clue::model::Escalation;
use crate::clue::oversight::Warning;
use crate::clue::store::{NoticeRecords, StoreError, WARNING_COLS};
use crate::clue::supervision::{
    self, LIST_ORDER, NOTICE_COLS, NewNotice, Notice, NoticeAction, NoticeDetail, NoticeError,
    NoticeFilter, NoticeState, SupervisionNoticeConfig,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

fn notice_from_row(r: &Row) -> rusqlite::Result<Notice> {
    let state: String = r.get(9)?;
    let level: String = r.get(10)?;
    Ok(Notice {
        id: r.get(0)?,
        warning_id: r.get(1)?,
        model: r.get(2)?,
        site: r.get(3)?,
        clue_id: r.get(4)?,
        concerns: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        message: r.get(6)?,
        unit: r.get(7)?,
        escalated_to: r.get(8)?,
        state: NoticeState::parse(&state).ok_or_else(|| corrupt(format!("notice {state}")))?,
        level: Escalation::parse(&level).ok_or_else(|| corrupt(format!("notice {level}")))?,
        note: r.get(11)?,
        statement: r.get(12)?,
        deadline_ms: r.get(13)?,
        span_start_ms: r.get(14)?,
        issued_by: r.get(15)?,
        issued_ms: r.get(16)?,
        updated_ms: r.get(17)?,
        plate: r.get(18)?,
    })
}

fn read_notice(c: &Connection, id: i64) -> rusqlite::Result<Option<Notice>> {
    c.query_row(
        &format!("SELECT {NOTICE_COLS} FROM supervision_notices WHERE id = ?1"),
        [id],
        notice_from_row,
    )
    .optional()
}

fn write_notice(c: &Connection, n: &Notice) -> Result<(), StoreError> {
    c.execute(
        "UPDATE supervision_notices SET escalated_to = ?2, state = ?3, level = ?4, \
         statement = ?5, deadline_ms = ?6, span_start_ms = ?7, updated_ms = ?8 WHERE id = ?1",
        params![
            n.id,
            n.escalated_to,
            n.state.as_str(),
            n.level.as_str(),
            n.statement,
            n.deadline_ms,
            n.span_start_ms,
            n.updated_ms
        ],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Audits a step of `n` (linking the entry to the notice) and queues it for the platform.
    fn notice_step(
        &self,
        tx: &Connection,
        n: &Notice,
        actor: &str,
        event: NoticeEvent,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let action = AuditAction::Notice(event);
        let seq = append_audit(tx, self.key(), now_ms, actor, action, None, detail)?;
        tx.execute(
            "INSERT INTO supervision_notice_audit (notice_id, seq) VALUES (?1, ?2)",
            params![n.id, seq],
        )?;
        let (topic, body) = supervision::message(n, action.as_str(), seq, now_ms);
        self.enqueue(tx, &topic, &body, now_ms)
    }
}

impl NoticeRecords for SqliteStore {
    fn warning(&self, id: i64) -> Result<Option<Warning>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE id = ?1"),
                [id],
                warning_from_row,
            )
            .optional()?)
    }

    fn issue_notice(
        &self,
        warning_id: i64,
        new: &NewNotice,
        actor: &str,
        now_ms: i64,
    ) -> Result<Notice, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let w = tx
            .query_row(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE id = ?1"),
                [warning_id],
                warning_from_row,
            )
            .optional()?
            .ok_or_else(|| NoticeError::NotFound(format!("warning {warning_id}")))?;
        let concerns = serde_json::to_string(&w.finding.concerns)
            .map_err(|e| StoreError::Corrupt(format!("encoding notice: {e}")))?;
        let inserted = tx.execute(
            "INSERT INTO supervision_notices (warning_id, model, site, clue_id, concerns, \
             message, unit, state, level, note, deadline_ms, span_start_ms, issued_by, \
             issued_ms, updated_ms, plate) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'issued', 'none', ?8, ?9, ?10, ?11, ?10, ?10, ?12)",
            params![
                w.id,
                w.finding.model,
                w.finding.site,
                w.finding.clue_id,
                concerns,
                w.finding.message,
                new.unit,
                new.note,
                new.deadline_ms,
                now_ms,
                actor,
                supervision::plate_of(&w)
            ],
        );
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "warning {warning_id} already has an open notice"
                )));
            }
            r => r?,
        };
        let n = read_notice(&tx, tx.last_insert_rowid())?
            .ok_or_else(|| StoreError::Corrupt("the new notice is gone".into()))?;
        let detail = supervision::issued_detail(&n);
        self.notice_step(&tx, &n, actor, NoticeEvent::Issued, &detail, now_ms)?;
        tx.commit()?;
        Ok(n)
    }

    fn act_on_notice(
        &self,
        id: i64,
        action: &NoticeAction,
        actor: &str,
        cfg: &SupervisionNoticeConfig,
        now_ms: i64,
    ) -> Result<Notice, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let before =
            read_notice(&tx, id)?.ok_or_else(|| NoticeError::NotFound(format!("notice {id}")))?;
        let (after, clean) = supervision::apply(&before, action, now_ms, cfg)?;
        write_notice(&tx, &after)?;
        let detail = supervision::step_detail(&before, &after, &clean);
        self.notice_step(&tx, &after, actor, action.event(), &detail, now_ms)?;
        tx.commit()?;
        Ok(after)
    }

    fn escalate_notices(
        &self,
        cfg: &SupervisionNoticeConfig,
        now_ms: i64,
    ) -> Result<Vec<Notice>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let due = {
            let mut st = tx.prepare(&format!(
                "SELECT {NOTICE_COLS} FROM supervision_notices \
                 WHERE state IN ('issued', 'acknowledged') AND deadline_ms < ?1 AND level <> 'red'"
            ))?;
            st.query_map([now_ms], notice_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut raised = Vec::new();
        for mut n in due {
            let Some(level) = supervision::overdue_level(&n, now_ms, cfg) else {
                continue;
            };
            n.level = level;
            n.updated_ms = now_ms;
            write_notice(&tx, &n)?;
            let detail = supervision::overdue_detail(&n, level, now_ms);
            self.notice_step(&tx, &n, "pool", NoticeEvent::Overdue, &detail, now_ms)?;
            raised.push(n);
        }
        tx.commit()?;
        Ok(raised)
    }

    fn notices(
        &self,
        scope: Option<&[String]>,
        filter: NoticeFilter,
        limit: u32,
    ) -> Result<Vec<Notice>, StoreError> {
        let mut sql = format!(
            "SELECT {NOTICE_COLS} FROM supervision_notices WHERE {}",
            filter.condition()
        );
        let args: Vec<String> = scope.map(|s| s.to_vec()).unwrap_or_default();
        if scope.is_some() {
            let marks: Vec<String> = (1..=args.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(
                " AND (site IS NULL OR site IN ({}))",
                marks.join(", ")
            ));
        }
        sql.push_str(&format!(
            " ORDER BY {LIST_ORDER} LIMIT {}",
            limit.clamp(1, 10_000)
        ));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), notice_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn notice(&self, id: i64) -> Result<Option<NoticeDetail>, StoreError> {
        let conn = self.conn();
        let Some(notice) = read_notice(&conn, id)? else {
            return Ok(None);
        };
        let cols = AUDIT_COLS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut st = conn.prepare(&format!(
            "SELECT {cols} FROM audit a JOIN supervision_notice_audit s ON s.seq = a.seq \
             WHERE s.notice_id = ?1 ORDER BY a.seq"
        ))?;
        let history = st
            .query_map([id], audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(NoticeDetail { notice, history }))
    }
}

#[cfg(test)]
mod tests {
    use crate::clue::store::notices_contract as contract;
    use crate::clue::store::{CHANNEL_MQTT, SqliteStore};

    fn store(dir: &std::path::Path) -> SqliteStore {
        SqliteStore::open(&dir.join("clues.sqlite"), vec![CHANNEL_MQTT]).expect("open")
    }

    #[test]
    fn a_notice_goes_overdue_yellow_then_red_and_every_step_is_audited_and_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        contract::a_notice_goes_overdue_yellow_then_red_and_every_step_is_audited_and_published(
            &store(dir.path()),
        );
    }

    #[test]
    fn the_list_is_red_first_then_yellow_then_the_nearest_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        contract::the_list_is_red_first_then_yellow_then_the_nearest_deadline(&store(dir.path()));
    }
}
