//! The delivery outbox in SQLite: rows queued in the transaction of the change they announce,
//! read and acknowledged by `publish`.

use super::SqliteStore;
use crate::clue::model::Delivery;
use crate::clue::store::{DeliveryQueue, StoreError};
use rusqlite::{Connection, params};
use serde::Serialize;

impl SqliteStore {
    /// Queues `payload` on `topic` for every configured channel. Must run inside the
    /// transaction of the change it announces.
    pub(super) fn enqueue(
        &self,
        tx: &Connection,
        topic: &str,
        payload: &impl Serialize,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        if self.channels.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_string(payload)
            .map_err(|e| StoreError::Corrupt(format!("encoding delivery: {e}")))?;
        for ch in &self.channels {
            tx.execute(
                "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![ch, topic, payload, at_ms],
            )?;
        }
        Ok(())
    }
}

impl DeliveryQueue for SqliteStore {
    fn pending(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id, topic, payload, attempts FROM outbound \
             WHERE channel = ?1 AND delivered_ms IS NULL \
             AND (next_attempt_ms IS NULL OR next_attempt_ms <= ?3) ORDER BY id LIMIT ?2",
        )?;
        let now = crate::clock::now_ms();
        let rows = st.query_map(params![channel, limit, now], |r| {
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
}
