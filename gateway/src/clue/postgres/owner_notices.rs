//! Notices to owners on the shared PostgreSQL: the same rules as the SQLite store (see
//! `clue::owner_notify`). A notice is queued in its action's transaction; settling and
//! receipts take the chain-head lock like every other audited write, and settling checks the
//! notice is still queued under that lock, so two gateways never settle one notice twice.

use super::{PgStore, bad, begin, commit, read_clue};
use crate::clue::audit::AuditAction;
use crate::clue::model::ClueChange;
use crate::clue::owner_notify::{NOTICE_COLS, NoticeState, Outcome, OwnerNotice, Receipt};
use crate::clue::store::{
    NoticeToQueue, OwnerNoticeRecords, StoreError, owner_notice_message, owner_notify_actor,
};
use postgres::{Row, Transaction};

fn notice_from_row(r: &Row) -> Result<OwnerNotice, StoreError> {
    let state: String = r.try_get(6)?;
    Ok(OwnerNotice {
        id: r.try_get(0)?,
        clue_id: r.try_get(1)?,
        site: r.try_get(2)?,
        channel: r.try_get(3)?,
        template: r.try_get(4)?,
        contact: r.try_get(5)?,
        state: NoticeState::parse(&state)
            .ok_or_else(|| bad(format!("owner notice state {state}")))?,
        attempts: r.try_get(7)?,
        last_error: r.try_get(8)?,
        queued_ms: r.try_get(9)?,
        queued_by: r.try_get(10)?,
        delivered_ms: r.try_get(11)?,
        provider_id: r.try_get(12)?,
        failed_ms: r.try_get(13)?,
        receipt_status: r.try_get(14)?,
        receipt_ms: r.try_get(15)?,
        idempotency_key: r.try_get(16)?,
    })
}

/// Queues notice `d` about clue `clue_id` on channel `channel` (state `queued`) and its outbox
/// row; returns the notice's id. Runs inside the action's transaction.
pub(super) fn queue_notice(
    tx: &mut Transaction<'_>,
    clue_id: i64,
    (channel, template, d): NoticeToQueue<'_>,
    actor: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let id: i64 = tx
        .query_one(
            "INSERT INTO owner_notices (clue_id, site, channel, template, contact, state, \
             queued_ms, queued_by, idempotency_key) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8) RETURNING id",
            &[
                &clue_id,
                &d.site,
                &channel,
                &template,
                &d.contact_masked,
                &now_ms,
                &actor,
                &d.idempotency_key,
            ],
        )?
        .try_get(0)?;
    let (topic, body) = owner_notice_message(id, d)?;
    tx.execute(
        "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES ($1, $2, $3, $4)",
        &[&d.outbox_channel, &topic, &body, &now_ms],
    )?;
    Ok(id)
}

impl OwnerNoticeRecords for PgStore {
    fn owner_notices(&self, clue_id: i64) -> Result<Vec<OwnerNotice>, StoreError> {
        self.conn()?
            .query(
                &format!("SELECT {NOTICE_COLS} FROM owner_notices WHERE clue_id = $1 ORDER BY id"),
                &[&clue_id],
            )?
            .iter()
            .map(notice_from_row)
            .collect()
    }

    fn owner_notice(&self, id: i64) -> Result<Option<OwnerNotice>, StoreError> {
        self.conn()?
            .query_opt(
                &format!("SELECT {NOTICE_COLS} FROM owner_notices WHERE id = $1"),
                &[&id],
            )?
            .as_ref()
            .map(notice_from_row)
            .transpose()
    }

    fn owner_notice_attempt_failed(
        &self,
        id: i64,
        outbox_id: i64,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute(
            "UPDATE owner_notices SET attempts = attempts + 1, last_error = $2 \
             WHERE id = $1 AND state = 'queued'",
            &[&id, &error],
        )?;
        tx.execute(
            "UPDATE outbound SET attempts = attempts + 1, next_attempt_ms = $2 WHERE id = $1",
            &[&outbox_id, &next_attempt_ms],
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
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        tx.execute(
            "UPDATE outbound SET delivered_ms = $2, attempts = attempts + 1, lease_holder = NULL \
             WHERE id = $1",
            &[&outbox_id, &now_ms],
        )?;
        let Some(row) = tx.query_opt(
            "SELECT clue_id, channel, state FROM owner_notices WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        else {
            commit(tx, &chain)?;
            return Err(StoreError::Conflict(format!("no owner notice {id}")));
        };
        let (clue_id, channel, state): (i64, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if state != NoticeState::Queued.as_str() {
            commit(tx, &chain)?;
            return Ok(None);
        }
        match outcome {
            Outcome::Delivered { provider_id, at_ms } => tx.execute(
                "UPDATE owner_notices SET state = 'delivered', attempts = attempts + 1, \
                 delivered_ms = $2, provider_id = $3 WHERE id = $1",
                &[&id, at_ms, provider_id],
            )?,
            Outcome::Failed { reason, attempts } => tx.execute(
                "UPDATE owner_notices SET state = 'failed', attempts = $2, failed_ms = $3, \
                 last_error = $4 WHERE id = $1",
                &[&id, attempts, &now_ms, reason],
            )?,
        };
        let clue = read_clue(&mut tx, clue_id, true)?.ok_or(StoreError::NotFound(clue_id))?;
        let change = self.record_change(
            &mut tx,
            &mut chain,
            now_ms,
            &owner_notify_actor(&channel),
            outcome.action(),
            clue,
            outcome.detail(id, &channel),
        )?;
        commit(tx, &chain)?;
        Ok(Some(change))
    }

    fn owner_notice_receipt(
        &self,
        id: i64,
        receipt: &Receipt,
        actor: &str,
        now_ms: i64,
    ) -> Result<ClueChange, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let at = receipt.at_ms.unwrap_or(now_ms);
        let Some(row) = tx.query_opt(
            "UPDATE owner_notices SET receipt_status = $2, receipt_ms = $3 WHERE id = $1 \
             RETURNING clue_id",
            &[&id, &receipt.status.trim(), &at],
        )?
        else {
            return Err(StoreError::Conflict(format!("no owner notice {id}")));
        };
        let clue_id: i64 = row.try_get(0)?;
        let clue = read_clue(&mut tx, clue_id, true)?.ok_or(StoreError::NotFound(clue_id))?;
        let change = self.record_change(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::OwnerNoticeReceipt,
            clue,
            receipt.detail(id, at),
        )?;
        commit(tx, &chain)?;
        Ok(change)
    }
}
