//! Parking stay records on the shared PostgreSQL: the same rules as the SQLite store (see
//! `clue::stays`). The record and its notice's delivery rows are one transaction; the outbox
//! rows are leased like clue changes, so of several gateways one delivers each notice. No
//! audit entry (a notice is no clue), so recording one does not take the chain-head lock.

use super::{Args, PgStore, bad};
use crate::clue::stays::{
    Outcome, StayCountRow, StayNotice, StayQuery, StayRecord, StayUpdate, notice_payload,
    notice_topic,
};
use crate::clue::store::{STAY_COLS, StayRecords, StoreError};
use postgres::Row;
use postgres::types::Type;

fn stay_from_row(r: &Row) -> Result<StayRecord, StoreError> {
    let outcome: String = r.try_get(10)?;
    Ok(StayRecord {
        id: r.try_get(0)?,
        notice: StayNotice {
            key: r.try_get(1)?,
            site: r.try_get(2)?,
            camera: r.try_get(3)?,
            zone: r.try_get(4)?,
            plate: r.try_get(5)?,
            first_ms: r.try_get(6)?,
            notice_ms: r.try_get(7)?,
            dwell_s: r.try_get::<_, i64>(8)?.max(0) as u64,
            remaining_s: r.try_get::<_, i64>(9)?.max(0) as u64,
            shop: r.try_get(14)?,
        },
        outcome: Outcome::parse(&outcome).ok_or_else(|| bad(format!("stay outcome {outcome}")))?,
        outcome_ms: r.try_get(11)?,
        clue_key: r.try_get(12)?,
        left_ms: r.try_get(13)?,
    })
}

impl StayRecords for PgStore {
    fn record_notice(
        &self,
        n: &StayNotice,
        channels: &[String],
        now_ms: i64,
    ) -> Result<Option<StayRecord>, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let row = tx.query_opt(
            &format!(
                "INSERT INTO parking_stays (key, site, camera, zone, plate, first_ms, notice_ms, \
                 dwell_s, remaining_s, outcome, created_ms, shop) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (key) DO NOTHING RETURNING {STAY_COLS}"
            ),
            &[
                &n.key,
                &n.site,
                &n.camera,
                &n.zone,
                &n.plate,
                &n.first_ms,
                &n.notice_ms,
                &(n.dwell_s as i64),
                &(n.remaining_s as i64),
                &Outcome::Pending.as_str(),
                &now_ms,
                &n.shop,
            ],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record = stay_from_row(&row)?;
        if !channels.is_empty() {
            let (topic, payload) = (
                notice_topic(&n.site, &n.camera),
                notice_payload(record.id, n),
            );
            tx.execute_typed(
                "INSERT INTO outbound (channel, topic, payload, created_ms) \
                 SELECT unnest($1::text[]), $2, $3, $4",
                &[
                    (&channels, Type::TEXT_ARRAY),
                    (&topic, Type::TEXT),
                    (&payload, Type::TEXT),
                    (&now_ms, Type::INT8),
                ],
            )?;
        }
        tx.commit()?;
        Ok(Some(record))
    }

    fn record_outcome(&self, u: &StayUpdate) -> Result<bool, StoreError> {
        let mut c = self.conn()?;
        let changed = match u {
            StayUpdate::Raised {
                key,
                at_ms,
                clue_key,
            } => c.execute(
                "UPDATE parking_stays SET outcome = 'clue', outcome_ms = $2, clue_key = $3 \
                 WHERE key = $1 AND outcome = 'pending'",
                &[key, at_ms, clue_key],
            )?,
            StayUpdate::Left { key, at_ms } => c.execute(
                "UPDATE parking_stays SET left_ms = $2, \
                 outcome_ms = CASE WHEN outcome = 'pending' THEN $2 ELSE outcome_ms END, \
                 outcome = CASE WHEN outcome = 'pending' THEN 'left_after_notice' ELSE outcome END \
                 WHERE key = $1 AND left_ms IS NULL",
                &[key, at_ms],
            )?,
        };
        Ok(changed > 0)
    }

    fn stays(&self, q: &StayQuery) -> Result<Vec<StayRecord>, StoreError> {
        let mut sql = format!("SELECT {STAY_COLS} FROM parking_stays WHERE TRUE");
        let mut a = Args::default();
        if let Some(s) = &q.site {
            sql += &format!(" AND site = {}", a.push(s.clone()));
        }
        if let Some(cam) = &q.camera {
            sql += &format!(" AND camera = {}", a.push(cam.clone()));
        }
        if let Some(o) = q.outcome {
            sql += &format!(" AND outcome = {}", a.push(o.as_str().to_string()));
        }
        if let Some(t) = q.from_ms {
            sql += &format!(" AND notice_ms >= {}", a.push(t));
        }
        if let Some(t) = q.to_ms {
            sql += &format!(" AND notice_ms < {}", a.push(t));
        }
        if let Some(scope) = &q.scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" AND site = ANY({})", a.push(scope.clone()));
        }
        sql += &format!(
            " ORDER BY notice_ms DESC, id DESC LIMIT {}",
            q.limit.clamp(1, 1000)
        );
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(stay_from_row)
            .collect()
    }

    fn stay_counts(&self, scope: Option<&[String]>) -> Result<Vec<StayCountRow>, StoreError> {
        let mut sql = "SELECT site, camera, zone, outcome, count(*) FROM parking_stays".to_string();
        let mut a = Args::default();
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" WHERE site = ANY({})", a.push(scope.to_vec()));
        }
        sql += " GROUP BY site, camera, zone, outcome";
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(|r| {
                let outcome: String = r.try_get(3)?;
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    Outcome::parse(&outcome)
                        .ok_or_else(|| bad(format!("stay outcome {outcome}")))?,
                    r.try_get::<_, i64>(4)?.max(0) as u64,
                ))
            })
            .collect()
    }
}
