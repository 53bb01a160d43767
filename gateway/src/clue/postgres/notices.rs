//! Supervision notices on the shared PostgreSQL: the same rules as the SQLite store (see
//! `clue::supervision`). Every writing transaction takes the chain-head lock first (`begin`),
//! which also serialises two gateways acting on one notice; the notice row is read after it.

use super::{Args, Chain, PgStore, append, audit_from_row, bad, begin, commit, warning_from_row};
use crate::clue::audit::{AuditAction, NoticeEvent};
use crate::clue::model::Escalation;
use crate::clue::oversight::Warning;
use crate::clue::store::{AUDIT_COLS, NoticeRecords, StoreError, WARNING_COLS};
use crate::clue::supervision::{
    self, LIST_ORDER, NOTICE_COLS, NewNotice, Notice, NoticeAction, NoticeDetail, NoticeError,
    NoticeFilter, NoticeState, SupervisionNoticeConfig,
};
use postgres::{GenericClient, Row, Transaction};
use serde_json::Value;

fn notice_from_row(r: &Row) -> Result<Notice, StoreError> {
    let state: String = r.try_get(9)?;
    let level: String = r.try_get(10)?;
    Ok(Notice {
        id: r.try_get(0)?,
        warning_id: r.try_get(1)?,
        model: r.try_get(2)?,
        site: r.try_get(3)?,
        clue_id: r.try_get(4)?,
        concerns: serde_json::from_str(&r.try_get::<_, String>(5)?).unwrap_or_default(),
        message: r.try_get(6)?,
        unit: r.try_get(7)?,
        escalated_to: r.try_get(8)?,
        state: NoticeState::parse(&state).ok_or_else(|| bad(format!("notice {state}")))?,
        level: Escalation::parse(&level).ok_or_else(|| bad(format!("notice {level}")))?,
        note: r.try_get(11)?,
        statement: r.try_get(12)?,
        deadline_ms: r.try_get(13)?,
        span_start_ms: r.try_get(14)?,
        issued_by: r.try_get(15)?,
        issued_ms: r.try_get(16)?,
        updated_ms: r.try_get(17)?,
        plate: r.try_get(18)?,
    })
}

fn read_notice(c: &mut impl GenericClient, id: i64) -> Result<Option<Notice>, StoreError> {
    c.query_opt(
        &format!("SELECT {NOTICE_COLS} FROM supervision_notices WHERE id = $1"),
        &[&id],
    )?
    .map(|r| notice_from_row(&r))
    .transpose()
}

fn write_notice(tx: &mut Transaction<'_>, n: &Notice) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE supervision_notices SET escalated_to = $2, state = $3, level = $4, \
         statement = $5, deadline_ms = $6, span_start_ms = $7, updated_ms = $8 WHERE id = $1",
        &[
            &n.id,
            &n.escalated_to,
            &n.state.as_str(),
            &n.level.as_str(),
            &n.statement,
            &n.deadline_ms,
            &n.span_start_ms,
            &n.updated_ms,
        ],
    )?;
    Ok(())
}

impl PgStore {
    /// Audits a step of `n` (linking the entry to the notice) and queues it for the platform.
    #[allow(clippy::too_many_arguments)]
    fn notice_step(
        &self,
        tx: &mut Transaction<'_>,
        chain: &mut Chain,
        n: &Notice,
        actor: &str,
        event: NoticeEvent,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let action = AuditAction::Notice(event);
        let seq = append(tx, chain, now_ms, actor, action, None, detail)?;
        tx.execute(
            "INSERT INTO supervision_notice_audit (notice_id, seq) VALUES ($1, $2)",
            &[&n.id, &seq],
        )?;
        let (topic, body) = supervision::message(n, action.as_str(), seq, now_ms);
        let payload = serde_json::to_string(&body)
            .map_err(|e| StoreError::Corrupt(format!("encoding notice: {e}")))?;
        self.queue(tx, &topic, &payload, now_ms)
    }
}

impl NoticeRecords for PgStore {
    fn warning(&self, id: i64) -> Result<Option<Warning>, StoreError> {
        let mut c = self.conn()?;
        c.query_opt(
            &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE id = $1"),
            &[&id],
        )?
        .map(|r| warning_from_row(&r))
        .transpose()
    }

    fn issue_notice(
        &self,
        warning_id: i64,
        new: &NewNotice,
        actor: &str,
        now_ms: i64,
    ) -> Result<Notice, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let w = tx
            .query_opt(
                &format!("SELECT {WARNING_COLS} FROM oversight_warnings WHERE id = $1"),
                &[&warning_id],
            )?
            .map(|r| warning_from_row(&r))
            .transpose()?
            .ok_or_else(|| NoticeError::NotFound(format!("warning {warning_id}")))?;
        // Writers hold the chain lock, so this check cannot race another issue.
        let open: bool = tx
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM supervision_notices \
                 WHERE warning_id = $1 AND state <> 'closed')",
                &[&warning_id],
            )?
            .try_get(0)?;
        if open {
            return Err(StoreError::Conflict(format!(
                "warning {warning_id} already has an open notice"
            )));
        }
        let concerns = serde_json::to_string(&w.finding.concerns)
            .map_err(|e| StoreError::Corrupt(format!("encoding notice: {e}")))?;
        let row = tx.query_one(
            &format!(
                "INSERT INTO supervision_notices (warning_id, model, site, clue_id, concerns, \
                 message, unit, state, level, note, deadline_ms, span_start_ms, issued_by, \
                 issued_ms, updated_ms, plate) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued', 'none', $8, $9, $10, $11, $10, $10, \
                 $12) \
                 RETURNING {NOTICE_COLS}"
            ),
            &[
                &w.id,
                &w.finding.model,
                &w.finding.site,
                &w.finding.clue_id,
                &concerns,
                &w.finding.message,
                &new.unit,
                &new.note,
                &new.deadline_ms,
                &now_ms,
                &actor,
                &supervision::plate_of(&w),
            ],
        )?;
        let n = notice_from_row(&row)?;
        let detail = supervision::issued_detail(&n);
        self.notice_step(
            &mut tx,
            &mut chain,
            &n,
            actor,
            NoticeEvent::Issued,
            &detail,
            now_ms,
        )?;
        commit(tx, &chain)?;
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
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let before = read_notice(&mut tx, id)?
            .ok_or_else(|| NoticeError::NotFound(format!("notice {id}")))?;
        let (after, clean) = supervision::apply(&before, action, now_ms, cfg)?;
        write_notice(&mut tx, &after)?;
        let detail = supervision::step_detail(&before, &after, &clean);
        self.notice_step(
            &mut tx,
            &mut chain,
            &after,
            actor,
            action.event(),
            &detail,
            now_ms,
        )?;
        commit(tx, &chain)?;
        Ok(after)
    }

    fn escalate_notices(
        &self,
        cfg: &SupervisionNoticeConfig,
        now_ms: i64,
    ) -> Result<Vec<Notice>, StoreError> {
        let mut c = self.conn()?;
        // Nothing due: no chain lock taken (every gateway ticks).
        let any: bool = c
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM supervision_notices \
                 WHERE state IN ('issued', 'acknowledged') AND deadline_ms < $1 \
                 AND level <> 'red')",
                &[&now_ms],
            )?
            .try_get(0)?;
        if !any {
            return Ok(Vec::new());
        }
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let due = tx
            .query(
                &format!(
                    "SELECT {NOTICE_COLS} FROM supervision_notices \
                     WHERE state IN ('issued', 'acknowledged') AND deadline_ms < $1 \
                     AND level <> 'red' ORDER BY id"
                ),
                &[&now_ms],
            )?
            .iter()
            .map(notice_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut raised = Vec::new();
        for mut n in due {
            let Some(level) = supervision::overdue_level(&n, now_ms, cfg) else {
                continue;
            };
            n.level = level;
            n.updated_ms = now_ms;
            write_notice(&mut tx, &n)?;
            let detail = supervision::overdue_detail(&n, level, now_ms);
            self.notice_step(
                &mut tx,
                &mut chain,
                &n,
                "pool",
                NoticeEvent::Overdue,
                &detail,
                now_ms,
            )?;
            raised.push(n);
        }
        commit(tx, &chain)?;
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
        let mut a = Args::default();
        if let Some(scope) = scope {
            sql += &format!(
                " AND (site IS NULL OR site = ANY({}))",
                a.push(scope.to_vec())
            );
        }
        sql += &format!(" ORDER BY {LIST_ORDER} LIMIT {}", limit.clamp(1, 10_000));
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(notice_from_row)
            .collect()
    }

    fn notice(&self, id: i64) -> Result<Option<NoticeDetail>, StoreError> {
        let mut c = self.conn()?;
        let Some(notice) = read_notice(&mut *c, id)? else {
            return Ok(None);
        };
        let cols = AUDIT_COLS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let history = c
            .query(
                &format!(
                    "SELECT {cols} FROM audit a JOIN supervision_notice_audit s ON s.seq = a.seq \
                     WHERE s.notice_id = $1 ORDER BY a.seq"
                ),
                &[&id],
            )?
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(NoticeDetail { notice, history }))
    }
}
