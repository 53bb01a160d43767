//! Muck-truck permits in SQLite: each change and its audit entry in one transaction (see
//! `PermitRecords`).

use super::SqliteStore;
use super::audit::append_audit;
use crate::clue::audit::AuditAction;
use crate::clue::store::{PermitRecords, PermitRow, StoreError, permit_detail};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

fn parse(plate: &str, text: &str) -> rusqlite::Result<Value> {
    serde_json::from_str(text).map_err(|e| super::corrupt(format!("permit of {plate}: {e}")))
}

fn current(tx: &Connection, plate: &str) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = tx
        .query_row(
            "SELECT permit FROM muck_permits WHERE plate = ?1",
            [plate],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.map(|t| parse(plate, &t)).transpose()?)
}

impl PermitRecords for SqliteStore {
    fn muck_permits(&self) -> Result<Vec<PermitRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT plate, permit, updated_ms, updated_by FROM muck_permits ORDER BY plate",
        )?;
        let rows = st.query_map([], |r| {
            let plate: String = r.get(0)?;
            Ok(PermitRow {
                permit: parse(&plate, &r.get::<_, String>(1)?)?,
                plate,
                updated_ms: r.get(2)?,
                updated_by: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn put_muck_permit(
        &self,
        plate: &str,
        permit: &Value,
        create: bool,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let before = current(&tx, plate)?;
        if create && before.is_some() {
            return Err(StoreError::Conflict(format!(
                "{plate} already has a permit (PUT /api/v1/muck-trucks/permits/{plate} replaces it)"
            )));
        }
        let detail = permit_detail(plate, before.as_ref(), Some(permit));
        append_audit(
            &tx,
            self.key(),
            now_ms,
            actor,
            AuditAction::MuckPermitPut,
            None,
            &detail,
        )?;
        tx.execute(
            "INSERT INTO muck_permits (plate, permit, updated_ms, updated_by) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (plate) DO UPDATE SET \
             permit = excluded.permit, updated_ms = excluded.updated_ms, \
             updated_by = excluded.updated_by",
            params![plate, permit.to_string(), now_ms, actor],
        )?;
        tx.commit()?;
        Ok(before)
    }

    fn delete_muck_permit(
        &self,
        plate: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Value>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(before) = current(&tx, plate)? else {
            return Ok(None);
        };
        let detail = permit_detail(plate, Some(&before), None);
        append_audit(
            &tx,
            self.key(),
            now_ms,
            actor,
            AuditAction::MuckPermitDelete,
            None,
            &detail,
        )?;
        tx.execute("DELETE FROM muck_permits WHERE plate = ?1", [plate])?;
        tx.commit()?;
        Ok(Some(before))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permits_are_stored_replaced_and_revoked_each_with_its_audit_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("c.sqlite"), vec!["mqtt"]).unwrap();
        crate::clue::store::permits_contract::permits_are_stored_replaced_and_revoked_each_with_its_audit_entry(&store);
    }
}
