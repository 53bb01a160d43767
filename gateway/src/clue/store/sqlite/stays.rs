//! Parking stay records in SQLite: the record and its notice's delivery rows in one
//! transaction, outcomes moved by guarded UPDATEs (see `clue::stays` for the rules).

use super::SqliteStore;
use crate::clue::stays::{
    Outcome, StayCountRow, StayNotice, StayQuery, StayRecord, StayUpdate, notice_payload,
    notice_topic,
};
use crate::clue::store::{STAY_COLS, StayRecords, StoreError};
use rusqlite::{Row, params};

fn stay_from_row(r: &Row) -> rusqlite::Result<StayRecord> {
    let outcome: String = r.get(10)?;
    Ok(StayRecord {
        id: r.get(0)?,
        notice: StayNotice {
            key: r.get(1)?,
            site: r.get(2)?,
            camera: r.get(3)?,
            zone: r.get(4)?,
            plate: r.get(5)?,
            first_ms: r.get(6)?,
            notice_ms: r.get(7)?,
            dwell_s: r.get::<_, i64>(8)?.max(0) as u64,
            remaining_s: r.get::<_, i64>(9)?.max(0) as u64,
            shop: r.get(14)?,
        },
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| super::corrupt(format!("stay outcome {outcome}")))?,
        outcome_ms: r.get(11)?,
        clue_key: r.get(12)?,
        left_ms: r.get(13)?,
    })
}

impl StayRecords for SqliteStore {
    fn record_notice(
        &self,
        n: &StayNotice,
        channels: &[String],
        now_ms: i64,
    ) -> Result<Option<StayRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO parking_stays (key, site, camera, zone, plate, first_ms, notice_ms, \
             dwell_s, remaining_s, outcome, created_ms, shop) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (key) DO NOTHING",
            params![
                n.key,
                n.site,
                n.camera,
                n.zone,
                n.plate,
                n.first_ms,
                n.notice_ms,
                n.dwell_s as i64,
                n.remaining_s as i64,
                Outcome::Pending.as_str(),
                now_ms,
                n.shop
            ],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        let (topic, payload) = (notice_topic(&n.site, &n.camera), notice_payload(id, n));
        for ch in channels {
            tx.execute(
                "INSERT INTO outbound (channel, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![ch, topic, payload, now_ms],
            )?;
        }
        let record = tx.query_row(
            &format!("SELECT {STAY_COLS} FROM parking_stays WHERE id = ?1"),
            [id],
            stay_from_row,
        )?;
        tx.commit()?;
        Ok(Some(record))
    }

    fn record_outcome(&self, u: &StayUpdate) -> Result<bool, StoreError> {
        let conn = self.conn();
        let changed = match u {
            StayUpdate::Raised {
                key,
                at_ms,
                clue_key,
            } => conn.execute(
                "UPDATE parking_stays SET outcome = 'clue', outcome_ms = ?2, clue_key = ?3 \
                 WHERE key = ?1 AND outcome = 'pending'",
                params![key, at_ms, clue_key],
            )?,
            StayUpdate::Left { key, at_ms } => conn.execute(
                "UPDATE parking_stays SET left_ms = ?2, \
                 outcome_ms = CASE WHEN outcome = 'pending' THEN ?2 ELSE outcome_ms END, \
                 outcome = CASE WHEN outcome = 'pending' THEN 'left_after_notice' ELSE outcome END \
                 WHERE key = ?1 AND left_ms IS NULL",
                params![key, at_ms],
            )?,
        };
        Ok(changed > 0)
    }

    fn stays(&self, q: &StayQuery) -> Result<Vec<StayRecord>, StoreError> {
        if q.scope.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(Vec::new());
        }
        let mut sql = format!("SELECT {STAY_COLS} FROM parking_stays WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(s) = &q.site {
            push(&mut sql, "site =", s.clone().into());
        }
        if let Some(c) = &q.camera {
            push(&mut sql, "camera =", c.clone().into());
        }
        if let Some(o) = q.outcome {
            push(&mut sql, "outcome =", o.as_str().to_string().into());
        }
        if let Some(t) = q.from_ms {
            push(&mut sql, "notice_ms >=", t.into());
        }
        if let Some(t) = q.to_ms {
            push(&mut sql, "notice_ms <", t.into());
        }
        if let Some(scope) = &q.scope {
            let base = args.len();
            let marks: Vec<String> = (1..=scope.len())
                .map(|i| format!("?{}", base + i))
                .collect();
            sql.push_str(&format!(" AND site IN ({})", marks.join(", ")));
            args.extend(scope.iter().map(|s| s.clone().into()));
        }
        sql.push_str(&format!(
            " ORDER BY notice_ms DESC, id DESC LIMIT {}",
            q.limit.clamp(1, 1000)
        ));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), stay_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stay_counts(&self, scope: Option<&[String]>) -> Result<Vec<StayCountRow>, StoreError> {
        if scope.is_some_and(|s| s.is_empty()) {
            return Ok(Vec::new());
        }
        let mut sql = "SELECT site, camera, zone, outcome, count(*) FROM parking_stays".to_string();
        if let Some(scope) = scope {
            let marks: Vec<String> = (1..=scope.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(" WHERE site IN ({})", marks.join(", ")));
        }
        sql.push_str(" GROUP BY site, camera, zone, outcome");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(
            rusqlite::params_from_iter(scope.unwrap_or_default().iter()),
            |r| {
                let outcome: String = r.get(3)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    Outcome::parse(&outcome)
                        .ok_or_else(|| super::corrupt(format!("stay outcome {outcome}")))?,
                    r.get::<_, i64>(4)?.max(0) as u64,
                ))
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_notice_is_recorded_once_with_its_deliveries_and_its_outcome_moves_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("c.sqlite"), vec!["mqtt"]).unwrap();
        crate::clue::store::stays_contract::a_notice_is_recorded_once_with_its_deliveries_and_its_outcome_moves_once(&store);
    }
}
