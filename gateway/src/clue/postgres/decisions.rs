//! Decisions on the shared PostgreSQL: the same rules as the SQLite store (see
//! `clue::decision`); each row is written in its `decide` action's transaction, under the
//! chain-head lock that transaction already holds.

use super::{Args, PgStore, bad};
use crate::clue::decision::DecisionRow;
use crate::clue::store::{DECISION_COLS, DecisionRecords, DecisionToRecord, StoreError};
use postgres::{Row, Transaction};

fn decision_from_row(r: &Row) -> Result<DecisionRow, StoreError> {
    let leniency: String = r.try_get(9)?;
    Ok(DecisionRow {
        id: r.try_get(0)?,
        clue_id: r.try_get(1)?,
        site: r.try_get(2)?,
        matter: r.try_get(3)?,
        catalogue_version: r.try_get(4)?,
        band: r.try_get(5)?,
        applicable_band: r.try_get(6)?,
        penalty: r.try_get::<_, i64>(7)?.max(0) as u64,
        outside_band: r.try_get(8)?,
        leniency_applied: serde_json::from_str(&leniency)
            .map_err(|e| bad(format!("decision leniency {leniency}: {e}")))?,
        actor: r.try_get(10)?,
        at_ms: r.try_get(11)?,
    })
}

/// Records decision (`band`, `penalty`, `leniency`, `check`) on clue `clue_id` of `site`.
pub(super) fn insert_decision(
    tx: &mut Transaction<'_>,
    clue_id: i64,
    site: &str,
    (band, penalty, leniency, check): DecisionToRecord<'_>,
    actor: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let leniency = serde_json::to_string(leniency)
        .map_err(|e| StoreError::Corrupt(format!("encoding leniency: {e}")))?;
    tx.execute(
        "INSERT INTO decisions (clue_id, site, matter, catalogue_version, band, \
         applicable_band, penalty, outside_band, leniency_applied, actor, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &clue_id,
            &site,
            &check.matter,
            &check.catalogue_version,
            &band,
            &check.applicable_band,
            &i64::try_from(penalty).unwrap_or(i64::MAX),
            &check.outside_band,
            &leniency,
            &actor,
            &now_ms,
        ],
    )?;
    Ok(())
}

impl DecisionRecords for PgStore {
    fn decisions(&self, scope: Option<&[String]>) -> Result<Vec<DecisionRow>, StoreError> {
        let mut sql = format!("SELECT {DECISION_COLS} FROM decisions");
        let mut a = Args::default();
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            sql += &format!(" WHERE site = ANY({})", a.push(scope.to_vec()));
        }
        sql += " ORDER BY id";
        let mut c = self.conn()?;
        c.query(&sql, &a.refs())?
            .iter()
            .map(decision_from_row)
            .collect()
    }
}
