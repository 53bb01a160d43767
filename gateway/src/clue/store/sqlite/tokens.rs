//! API tokens in SQLite: only hashes are stored; creation and revocation are audited.

use super::SqliteStore;
use super::audit::append_audit;
use crate::clue::audit::AuditAction;
use crate::clue::auth::{Role, TokenGrant, TokenRecord, TokenStore, TokenStoreError};
use crate::clue::store::StoreError;
use rusqlite::{OptionalExtension, params};
use serde_json::json;

impl SqliteStore {
    /// Every token (id, role, sites, name, device, created, revoked); never the hashes.
    pub(crate) fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, role, sites, name, created_ms, revoked_ms, device, unit, department, \
             relay, channel FROM tokens ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                role: r.get(1)?,
                sites: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                name: r.get(3)?,
                created_ms: r.get(4)?,
                revoked_ms: r.get(5)?,
                device: r.get(6)?,
                unit: r.get(7)?,
                department: r.get(8)?,
                relay: r.get(9)?,
                channel: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes token `id` (audited); false when there is no such active token.
    pub(crate) fn revoke_token(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, now_ms],
        )?;
        if n == 1 {
            append_audit(
                &tx,
                self.key(),
                now_ms,
                "cli",
                AuditAction::TokenRevoked,
                None,
                &json!({"token_id": id}),
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }
}

/// A token as `gateway token list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub role: String,
    pub sites: Vec<String>,
    pub name: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// The one device a device token speaks for (absent: every device of its sites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The unit of `[org]` whose scope the token sees (absent: its sites only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The department whose clues it sees (absent: every clue of its scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// A device token bound to no camera on purpose (`--relay`). An unbound device token
    /// without it was issued before the choice was required.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub relay: bool,
    /// The owner-notice channel a notifier token posts receipts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl TokenInfo {
    /// An active device token that speaks for every camera of its sites: `Some(true)` a relay
    /// by choice, `Some(false)` one issued before `--device` or `--relay` was required.
    pub(crate) fn unbound_device(&self) -> Option<bool> {
        (self.role == "device" && self.device.is_none() && self.revoked_ms.is_none())
            .then_some(self.relay)
    }
}

impl TokenStore for SqliteStore {
    fn insert_token(
        &self,
        hash: &str,
        grant: &TokenGrant<'_>,
        now_ms: i64,
    ) -> Result<i64, TokenStoreError> {
        let TokenGrant {
            role,
            sites,
            name,
            device,
            unit,
            department,
            relay,
            channel,
        } = *grant;
        let sites =
            serde_json::to_string(sites).map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        tx.execute(
            "INSERT INTO tokens (hash, role, sites, name, created_ms, device, unit, department, \
             relay, channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                hash,
                role.as_str(),
                sites,
                name,
                now_ms,
                device,
                unit,
                department,
                relay,
                channel
            ],
        )
        .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let id = tx.last_insert_rowid();
        append_audit(
            &tx,
            self.key(),
            now_ms,
            "cli",
            AuditAction::TokenCreated,
            None,
            &super::super::token_created_detail(id, grant),
        )
        .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        tx.commit()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        Ok(id)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, TokenStoreError> {
        let conn = self.conn();
        type Row = (i64, String, String, String, Option<String>, Option<String>);
        type Org = (Option<String>, Option<String>, Option<String>);
        let row: Option<(Row, Org)> = conn
            .query_row(
                "SELECT id, hash, role, sites, name, device, unit, department, channel FROM tokens \
                 WHERE hash = ?1 AND revoked_ms IS NULL",
                [hash],
                |r| {
                    Ok((
                        (
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ),
                        (r.get(6)?, r.get(7)?, r.get(8)?),
                    ))
                },
            )
            .optional()
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let Some(((id, stored, role, sites, name, device), (unit, department, channel))) = row
        else {
            return Ok(None);
        };
        let role = Role::parse(&role)
            .ok_or_else(|| TokenStoreError::Backend(format!("token {id}: unknown role")))?;
        let sites: Vec<String> = serde_json::from_str(&sites)
            .map_err(|e| TokenStoreError::Backend(format!("token {id}: sites: {e}")))?;
        // The hash as stored, never the argument: the caller compares the two in constant time.
        Ok(Some(TokenRecord {
            id,
            hash: stored,
            role,
            sites,
            name,
            device,
            unit,
            department,
            channel,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::MIGRATIONS;
    use crate::clue::auth::{Role, TokenStore, create_token, token_hash};
    use crate::clue::store::AuditLog;
    use crate::clue::store::SqliteStore;

    #[test]
    fn migrations_run_once_and_revoked_tokens_stop_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clues.sqlite");
        let store = SqliteStore::open(&path, vec![]).expect("open");
        let (id, token) =
            create_token(&store, Role::Inspector, &["a".into()], Some("ann"), 1).expect("token");
        assert!(
            store
                .token_by_hash(&token_hash(&token))
                .expect("lookup")
                .is_some()
        );
        drop(store);
        let store = SqliteStore::open(&path, vec![]).expect("reopen");
        let v: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert!(store.revoke_token(id, 2).expect("revoke"));
        assert!(!store.revoke_token(id, 3).expect("twice"));
        assert!(
            store
                .token_by_hash(&token_hash(&token))
                .expect("lookup")
                .is_none()
        );
        assert_eq!(store.list_tokens().expect("list")[0].revoked_ms, Some(2));
        assert!(store.verify_audit().expect("verify").ok);
    }

    #[test]
    fn a_device_token_keeps_its_binding_and_other_tokens_have_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("clues.sqlite"), vec![]).expect("open");
        crate::clue::store::tokens_contract::a_device_token_keeps_its_binding_and_other_tokens_have_none(&store);
        let listed = store.list_tokens().expect("list");
        assert_eq!(listed[0].device.as_deref(), Some("cam-7"));
        assert_eq!(listed[1].device, None);
        assert!(
            !listed[0].relay && listed[1].relay,
            "the relay choice is stored"
        );
        assert_eq!(
            (listed[0].unbound_device(), listed[1].unbound_device()),
            (None, Some(true))
        );
        assert!(store.verify_audit().expect("verify").ok);
    }

    #[test]
    fn a_unit_token_keeps_its_unit_and_department() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("clues.sqlite"), vec![]).expect("open");
        crate::clue::store::tokens_contract::a_unit_token_keeps_its_unit_and_department(
            &store, &store,
        );
        let listed = store.list_tokens().expect("list");
        assert_eq!(listed[0].unit.as_deref(), Some("lingyin"));
        assert_eq!(listed[0].department.as_deref(), Some("market"));
        assert!(store.verify_audit().expect("verify").ok);
    }
}
