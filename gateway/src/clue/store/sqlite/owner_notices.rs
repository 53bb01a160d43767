//! Notices to owners in SQLite (`clue::owner_notify`): queued in the `send_owner_notice`
//! action's transaction, settled with the outbox row and the audit entry in one transaction.

use super::SqliteStore;
use crate::clue::audit::AuditAction;
use crate::clue::model::ClueChange;
use crate::clue::owner_notify::{NOTICE_COLS, NoticeState, Outcome, OwnerNotice, Receipt};
use crate::clue::store::{
    NoticeToQueue, OwnerNoticeRecords, StoreError, owner_notice_message, owner_notify_actor,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn notice_from_row(r: &Row) -> rusqlite::Result<OwnerNotice> {
    let state: String = r.get(6)?;
    Ok(OwnerNotice {
        id: r.get(0)?,
        clue_id: r.get(1)?,
        site: r.get(2)?,
        channel: r.get(3)?,
        template: r.get(4)?,
        contact: r.get(5)?,
        state: NoticeState::parse(&state)
            .ok_or_else(|| super::corrupt(format!("owner notice state {state}")))?,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        queued_ms: r.get(9)?,
        queued_by: r.get(10)?,
        delivered_ms: r.get(11)?,
        provider_id: r.get(12)?,
        failed_ms: r.get(13)?,
        receipt_status: r.get(14)?,
        receipt_ms: r.get(15)?,
        idempotency_key: r.get(16)?,
    })
}

/// Queues notice `d` about clue `clue_id` on channel `channel` (state `queued`) and its outbox
/// row; returns the notice's id. Runs inside the action's transaction.
pub(super) fn queue_notice(
    tx: &Connection,
    clue_id: i64,
    (channel, template, d): NoticeToQueue<'_>,
    actor: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO owner_notices (clue_id, site, channel, template, contact, state, \
         queued_ms, queued_by, idempotency_key) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8)",
        params![
            clue_id,
            d.site,
            channel,
            template,
            d.contact_masked,
            now_ms,
            actor,
            d.idempotency_key
        ],
    )?;
    let id = tx.last_insert_rowid();
    let (topic, body) = owner_notice_message(id, d)?;
    tx.execute(
        "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![d.outbox_channel, topic, body, now_ms],
    )?;
    Ok(id)
}

impl OwnerNoticeRecords for SqliteStore {
    fn owner_notices(&self, clue_id: i64) -> Result<Vec<OwnerNotice>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {NOTICE_COLS} FROM owner_notices WHERE clue_id = ?1 ORDER BY id"
        ))?;
        let rows = st.query_map([clue_id], notice_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn owner_notice(&self, id: i64) -> Result<Option<OwnerNotice>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {NOTICE_COLS} FROM owner_notices WHERE id = ?1"),
                [id],
                notice_from_row,
            )
            .optional()?)
    }

    fn owner_notice_attempt_failed(
        &self,
        id: i64,
        outbox_id: i64,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE owner_notices SET attempts = attempts + 1, last_error = ?2 \
             WHERE id = ?1 AND state = 'queued'",
            params![id, error],
        )?;
        tx.execute(
            "UPDATE outbound SET attempts = attempts + 1, next_attempt_ms = ?2 WHERE id = ?1",
            params![outbox_id, next_attempt_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn settle_owner_notice(
        &self,
        id: i64,
        outbox_id: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<Option<ClueChange>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE outbound SET delivered_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![outbox_id, now_ms],
        )?;
        let row: Option<(i64, String, String)> = tx
            .query_row(
                "SELECT clue_id, channel, state FROM owner_notices WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((clue_id, channel, state)) = row else {
            tx.commit()?;
            return Err(StoreError::Conflict(format!("no owner notice {id}")));
        };
        if state != NoticeState::Queued.as_str() {
            tx.commit()?;
            return Ok(None);
        }
        match outcome {
            Outcome::Delivered { provider_id, at_ms } => tx.execute(
                "UPDATE owner_notices SET state = 'delivered', attempts = attempts + 1, \
                 delivered_ms = ?2, provider_id = ?3 WHERE id = ?1",
                params![id, at_ms, provider_id],
            )?,
            Outcome::Failed { reason, attempts } => tx.execute(
                "UPDATE owner_notices SET state = 'failed', attempts = ?2, failed_ms = ?3, \
                 last_error = ?4 WHERE id = ?1",
                params![id, attempts, now_ms, reason],
            )?,
        };
        let change = self.record(
            &tx,
            now_ms,
            &owner_notify_actor(&channel),
            outcome.action(),
            clue_id,
            outcome.detail(id, &channel),
        )?;
        tx.commit()?;
        Ok(Some(change))
    }

    fn owner_notice_receipt(
        &self,
        id: i64,
        receipt: &Receipt,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let clue_id: i64 = tx
            .query_row(
                "SELECT clue_id FROM owner_notices WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::Conflict(format!("no owner notice {id}")))?;
        let at = receipt.at_ms.unwrap_or(now_ms);
        tx.execute(
            "UPDATE owner_notices SET receipt_status = ?2, receipt_ms = ?3 WHERE id = ?1",
            params![id, receipt.status.trim(), at],
        )?;
        let change = self.record(
            &tx,
            now_ms,
            actor,
            AuditAction::OwnerNoticeReceipt,
            clue_id,
            receipt.detail(id, at),
        )?;
        tx.commit()?;
        Ok(change)
    }
}
