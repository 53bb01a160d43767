//! Muck-truck permits on the shared PostgreSQL: the same rules as the SQLite store (see
//! `PermitRecords`). A change takes the chain-head lock first (`begin`), which also
//! serialises two gateways writing one plate; the row is read after it.

use super::{PgStore, append, bad, begin, commit};
use crate::clue::audit::AuditAction;
use crate::clue::store::{PermitRecords, PermitRow, StoreError, permit_detail};
use postgres::Transaction;
use serde_json::Value;

fn parse(plate: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| bad(format!("permit of {plate}: {e}")))
}

fn current(tx: &mut Transaction<'_>, plate: &str) -> Result<Option<Value>, StoreError> {
    tx.query_opt(
        "SELECT permit FROM muck_permits WHERE plate = $1",
        &[&plate],
    )?
    .map(|r| parse(plate, &r.try_get::<_, String>(0)?))
    .transpose()
}

impl PermitRecords for PgStore {
    fn muck_permits(&self) -> Result<Vec<PermitRow>, StoreError> {
        let mut c = self.conn()?;
        c.query(
            "SELECT plate, permit, updated_ms, updated_by FROM muck_permits ORDER BY plate",
            &[],
        )?
        .iter()
        .map(|r| {
            let plate: String = r.try_get(0)?;
            Ok(PermitRow {
                permit: parse(&plate, &r.try_get::<_, String>(1)?)?,
                plate,
                updated_ms: r.try_get(2)?,
                updated_by: r.try_get(3)?,
            })
        })
        .collect()
    }

    fn put_muck_permit(
        &self,
        plate: &str,
        permit: &Value,
        create: bool,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let before = current(&mut tx, plate)?;
        if create && before.is_some() {
            return Err(StoreError::Conflict(format!(
                "{plate} already has a permit (PUT /api/v1/muck-trucks/permits/{plate} replaces it)"
            )));
        }
        let detail = permit_detail(plate, before.as_ref(), Some(permit));
        append(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::MuckPermitPut,
            None,
            &detail,
        )?;
        tx.execute(
            "INSERT INTO muck_permits (plate, permit, updated_ms, updated_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (plate) DO UPDATE SET \
             permit = EXCLUDED.permit, updated_ms = EXCLUDED.updated_ms, \
             updated_by = EXCLUDED.updated_by",
            &[&plate, &permit.to_string(), &now_ms, &actor],
        )?;
        commit(tx, &chain)?;
        Ok(before)
    }

    fn delete_muck_permit(
        &self,
        plate: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let mut c = self.conn()?;
        let (mut tx, mut chain) = begin(&mut c, &self.key)?;
        let Some(before) = current(&mut tx, plate)? else {
            return Ok(None);
        };
        let detail = permit_detail(plate, Some(&before), None);
        append(
            &mut tx,
            &mut chain,
            now_ms,
            actor,
            AuditAction::MuckPermitDelete,
            None,
            &detail,
        )?;
        tx.execute("DELETE FROM muck_permits WHERE plate = $1", &[&plate])?;
        commit(tx, &chain)?;
        Ok(Some(before))
    }
}
