//! `[clues.audit]`: the key that seals the audit chain, and how often its head is published.
//!
//! ```toml
//! [clues.audit]
//! key_file = "/etc/gateway/audit.key"   # default {storage.dir}/audit.key, made at first start
//! # key_env = "AUDIT_KEY"               # or: the key in this environment variable (hex)
//! publish_every_s = 300                 # head to audit/v1/head (MQTT, webhook) and the log
//! ```
//!
//! **Why a key.** A plain hash chain only proves that nobody edited it who could not also
//! recompute it, and whoever can write the database can: drop the triggers, edit a row,
//! recompute every later hash. Entries sealed with HMAC-SHA256 under a key that lives outside
//! the database (a file on the gateway host, or an environment variable) cannot be recomputed
//! by a database administrator. What the key cannot stop, cutting off the tail, the published
//! head catches (see `clue::audit`).
//!
//! **The key.** 32 random bytes, written as 64 hex digits. When `key_env` is not set and the
//! file does not exist, the gateway creates it at first start with mode 0600 (owner only); an
//! existing file that group or others may read is refused, as ssh refuses such a private key.
//! The key's id (the first 16 hex digits of HMAC(key, "gateway-audit-key-id")) is stored in
//! each sealed entry, so a chain sealed with another key is named as such. Every gateway on one
//! PostgreSQL store must be given the same key (the same file, or the same variable): they
//! write one chain. `gateway store migrate` reads `audit.key` beside the SQLite file.
//!
//! `key_env` must not start with `GATEWAY_` (that prefix overrides configuration keys).

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default file name of the key, in `storage.dir`.
pub const KEY_FILE: &str = "audit.key";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The key file (default `{storage.dir}/audit.key`); created at first start if absent.
    pub key_file: Option<PathBuf>,
    /// Read the key (64 hex digits) from this environment variable instead of a file.
    pub key_env: Option<String>,
    /// Publish the chain's head (when it moved) this often, and log it.
    pub publish_every_s: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            key_file: None,
            key_env: None,
            publish_every_s: 300,
        }
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.publish_every_s == 0 {
            return Err(invalid("clues.audit.publish_every_s", "must be at least 1"));
        }
        if let Some(v) = &self.key_env {
            if v.is_empty() {
                return Err(invalid("clues.audit.key_env", "must not be empty when set"));
            }
            if v.to_ascii_uppercase().starts_with("GATEWAY_") {
                return Err(invalid(
                    "clues.audit.key_env",
                    "must not start with GATEWAY_ (that prefix sets configuration keys)",
                ));
            }
        }
        Ok(())
    }

    /// Where the key file is (when the key is not in the environment).
    pub fn key_path(&self, storage_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| storage_dir.join(KEY_FILE))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit key: environment variable {0} is not set")]
    EnvMissing(String),
    #[error("audit key {0}: {1}")]
    Io(String, std::io::Error),
    #[error("audit key {0}: must be at least 64 hex digits (32 bytes)")]
    Malformed(String),
    #[error(
        "audit key file {0} may be read by group or others (mode {1:o}): `chmod 600` it, \
         a key anyone can read protects nothing"
    )]
    Permissions(String, u32),
}

/// The chain's HMAC key and its id. Never printed (the id is not secret).
pub struct AuditKey {
    key: ring::hmac::Key,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

impl AuditKey {
    /// A key from its bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> AuditKey {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes);
        let tag = ring::hmac::sign(&key, b"gateway-audit-key-id");
        let id = super::audit::hex(&tag.as_ref()[..8]);
        AuditKey { key, id }
    }

    /// A key from hex text (`what` names where it came from, for the error).
    pub fn from_hex(text: &str, what: &str) -> Result<AuditKey, AuditKeyError> {
        let t = text.trim();
        if t.len() < 64 || !t.len().is_multiple_of(2) {
            return Err(AuditKeyError::Malformed(what.into()));
        }
        let bytes = (0..t.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(t.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| AuditKeyError::Malformed(what.into()))?;
        Ok(AuditKey::from_bytes(&bytes))
    }

    /// The key's public id (16 hex digits), stored in every entry it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `parts`, in hex.
    pub fn sign_hex(&self, parts: &[&[u8]]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        super::audit::hex(ctx.sign().as_ref())
    }

    /// The configured key: from `key_env`, else from the key file. When `create` and the
    /// file does not exist, a new random key is written there (mode 0600) first; otherwise a
    /// missing file is `None` (nothing sealed the chain yet on this host).
    pub fn load(
        cfg: &AuditConfig,
        storage_dir: &Path,
        create: bool,
    ) -> Result<Option<AuditKey>, AuditKeyError> {
        if let Some(var) = &cfg.key_env {
            let v = std::env::var(var).map_err(|_| AuditKeyError::EnvMissing(var.clone()))?;
            return AuditKey::from_hex(&v, &format!("in ${var}")).map(Some);
        }
        let path = cfg.key_path(storage_dir);
        let shown = path.display().to_string();
        let io = |e| AuditKeyError::Io(shown.clone(), e);
        if !path.exists() {
            if !create {
                return Ok(None);
            }
            create_key_file(&path).map_err(io)?;
            tracing::info!(path = %shown, "audit key created (mode 0600); keep a copy apart from the database");
        }
        let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(AuditKeyError::Permissions(shown, mode & 0o777));
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        AuditKey::from_hex(&text, &shown).map(Some)
    }
}

/// Writes 32 random bytes as hex to a new file that only its owner may read, and syncs it.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{}\n", super::audit::hex(&bytes)).as_bytes())?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_file_is_created_owner_only_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = AuditConfig::default();
        assert!(
            AuditKey::load(&cfg, dir.path(), false)
                .expect("load")
                .is_none()
        );
        let k1 = AuditKey::load(&cfg, dir.path(), true)
            .expect("create")
            .expect("key");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = AuditKey::load(&cfg, dir.path(), false)
            .expect("load")
            .expect("key");
        assert_eq!(k1.id(), k2.id());
        assert_eq!(k1.sign_hex(&[b"x"]), k2.sign_hex(&[b"x"]));
    }

    #[test]
    fn a_key_file_others_may_read_or_a_short_key_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        std::fs::write(&path, "ab".repeat(32)).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let cfg = AuditConfig {
            key_file: Some(path.clone()),
            ..Default::default()
        };
        let e = AuditKey::load(&cfg, dir.path(), true).expect_err("readable");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(AuditKey::load(&cfg, dir.path(), true).is_ok());
        std::fs::write(&path, "abcd").expect("write");
        assert!(matches!(
            AuditKey::load(&cfg, dir.path(), true),
            Err(AuditKeyError::Malformed(_))
        ));
    }

    #[test]
    fn key_env_may_not_use_the_configuration_prefix() {
        let e = crate::config::Config::from_toml("[clues.audit]\nkey_env = \"GATEWAY_KEY\"\n")
            .expect_err("prefix");
        assert!(e.to_string().contains("clues.audit.key_env"), "{e}");
        let e = crate::config::Config::from_toml("[clues.audit]\npublish_every_s = 0\n")
            .expect_err("zero");
        assert!(e.to_string().contains("clues.audit.publish_every_s"), "{e}");
    }
}
