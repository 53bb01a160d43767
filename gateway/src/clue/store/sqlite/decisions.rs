//! Decisions in SQLite: one row per `decide` action, written in the action's transaction
//! (see `clue::decision` for what is checked and why nothing outside the band is refused).

use super::SqliteStore;
use crate::clue::decision::DecisionRow;
use crate::clue::store::{DECISION_COLS, DecisionRecords, DecisionToRecord, StoreError};
use rusqlite::{Row, Transaction, params};

fn decision_from_row(r: &Row) -> rusqlite::Result<DecisionRow> {
    let leniency: String = r.get(9)?;
    Ok(DecisionRow {
        id: r.get(0)?,
        clue_id: r.get(1)?,
        site: r.get(2)?,
        matter: r.get(3)?,
        catalogue_version: r.get(4)?,
        band: r.get(5)?,
        applicable_band: r.get(6)?,
        penalty: r.get::<_, i64>(7)?.max(0) as u64,
        outside_band: r.get::<_, i64>(8)? != 0,
        leniency_applied: serde_json::from_str(&leniency)
            .map_err(|e| super::corrupt(format!("decision leniency {leniency}: {e}")))?,
        actor: r.get(10)?,
        at_ms: r.get(11)?,
    })
}

/// Records decision (`band`, `penalty`, `leniency`, `check`) on clue `clue_id` of `site`.
pub(super) fn insert_decision(
    tx: &Transaction,
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            clue_id,
            site,
            check.matter,
            check.catalogue_version,
            band,
            check.applicable_band,
            i64::try_from(penalty).unwrap_or(i64::MAX),
            check.outside_band as i64,
            leniency,
            actor,
            now_ms
        ],
    )?;
    Ok(())
}

impl DecisionRecords for SqliteStore {
    fn decisions(&self, scope: Option<&[String]>) -> Result<Vec<DecisionRow>, StoreError> {
        let mut sql = format!("SELECT {DECISION_COLS} FROM decisions");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(scope) = scope {
            if scope.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = (1..=scope.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(" WHERE site IN ({})", marks.join(", ")));
            args.extend(scope.iter().map(|s| s.clone().into()));
        }
        sql.push_str(" ORDER BY id");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), decision_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
