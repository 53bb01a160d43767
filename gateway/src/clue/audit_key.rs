//! `[clues.audit]`: the key that seals the audit chain, and how often its head is published.
//!
//! ```toml
//! [clues.audit]
//! key_file = "/etc/gateway/audit.key"   # default {storage.dir}/audit.key, made at first start
//! # key_env = "AUDIT_KEY"               # or: the key in this environment variable (hex)
//! publish_every_s = 300                 # head to audit/v1/head (MQTT, webhook) and the log
//! # retired_dir = "/etc/gateway/audit-keys-retired"  # default: beside key_file
//! # retired_key_files = ["/etc/gateway/audit-2025.key"]
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
//!
//! **Rotation: a keyring.** The configured key is the *current* key: it seals what this
//! gateway writes. Keys it replaced are *retired*: every `*.key` file in `retired_dir` (default
//! `audit-keys-retired` beside the key file) and each of `retired_key_files`, each owner-only
//! like the key. Retired keys only verify: the entries they sealed keep verifying, and nothing
//! new is sealed with them, except the one entry that hands the chain over. A rotation is the
//! entry `audit_key_rotated`, sealed with the old key and naming the new key's id; from the
//! entry after it the chain must be sealed with the new key (see `clue::audit`), so the chain
//! stays one chain across the switch and an entry forged later with the old key is named.
//! `gateway audit rotate-key` does it (see [`rotate`]): the old key goes to `retired_dir`, the
//! new one to `{key_file}.next`, the rotation entry is written, and `.next` becomes the key
//! file. A gateway refuses to start while `.next` exists (an interrupted rotation: run the
//! command again, which finishes it). With `key_env` the same is done by hand: put the old key
//! in a retired key file, the new one in the variable, start; the gateway writes the rotation
//! entry at start (`clue::store::seal_chain`) under the retired key.

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default file name of the key, in `storage.dir`.
pub(crate) const KEY_FILE: &str = "audit.key";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The key file (default `{storage.dir}/audit.key`); created at first start if absent.
    pub key_file: Option<PathBuf>,
    /// Read the key (64 hex digits) from this environment variable instead of a file.
    pub key_env: Option<String>,
    /// Publish the chain's head (when it moved) this often, and log it.
    pub publish_every_s: u64,
    /// Retired keys: every `*.key` file in this directory (default `audit-keys-retired`
    /// beside the key file). They verify the entries they sealed and seal nothing new.
    pub retired_dir: Option<PathBuf>,
    /// More retired key files.
    pub retired_key_files: Vec<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            key_file: None,
            key_env: None,
            publish_every_s: 300,
            retired_dir: None,
            retired_key_files: Vec::new(),
        }
    }
}

impl AuditConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(crate) fn key_path(&self, storage_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| storage_dir.join(KEY_FILE))
    }

    /// Where retired keys are kept (and where `rotate-key` puts the key it replaces).
    pub(crate) fn retired_path(&self, storage_dir: &Path) -> PathBuf {
        self.retired_dir.clone().unwrap_or_else(|| {
            let key = self.key_path(storage_dir);
            key.parent().unwrap_or(Path::new(".")).join(RETIRED_DIR)
        })
    }
}

/// The default directory of retired keys, beside the key file.
pub(crate) const RETIRED_DIR: &str = "audit-keys-retired";

/// The new key of a rotation under way is written here (`{key_file}.next`) before the rotation
/// entry, and renamed onto the key file after it.
pub(crate) fn next_path(key_path: &Path) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
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
    #[error(
        "an audit key rotation was interrupted ({0} exists): run `gateway audit rotate-key` \
         again to finish it"
    )]
    RotationUnfinished(String),
    #[error("audit key rotation: {0}")]
    Rotation(String),
}

/// The chain's HMAC key and its id. Never printed (the id is not secret).
#[derive(Clone)]
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
    pub(crate) fn from_bytes(bytes: &[u8]) -> AuditKey {
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
    pub(crate) fn sign_hex(&self, parts: &[&[u8]]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        super::audit::hex(ctx.sign().as_ref())
    }

    /// The configured key: from `key_env`, else from the key file. When `create` and the
    /// file does not exist, a new random key is written there (mode 0600) first; otherwise a
    /// missing file is `None` (nothing sealed the chain yet on this host).
    pub(crate) fn load(
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
        read_key_file(&path).map(Some)
    }
}

/// Reads an owner-only key file.
fn read_key_file(path: &Path) -> Result<AuditKey, AuditKeyError> {
    let shown = path.display().to_string();
    let io = |e| AuditKeyError::Io(shown.clone(), e);
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(AuditKeyError::Permissions(shown, mode & 0o777));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    AuditKey::from_hex(&text, &shown)
}

/// The current key and the retired ones, by id.
#[derive(Debug)]
pub struct AuditKeyring {
    current: std::sync::Arc<AuditKey>,
    retired: Vec<AuditKey>,
}

impl AuditKeyring {
    /// A ring of `current` and `retired` (a retired key with the current key's id, or a
    /// duplicate, is dropped).
    pub(crate) fn new(current: std::sync::Arc<AuditKey>, retired: Vec<AuditKey>) -> AuditKeyring {
        let mut ring = AuditKeyring {
            current,
            retired: Vec::new(),
        };
        for k in retired {
            if ring.get(k.id()).is_none() {
                ring.retired.push(k);
            }
        }
        ring
    }

    #[cfg(test)]
    /// A ring of one key.
    pub(crate) fn single(current: std::sync::Arc<AuditKey>) -> AuditKeyring {
        AuditKeyring::new(current, Vec::new())
    }

    /// The key that seals what is written now.
    pub(crate) fn current(&self) -> &std::sync::Arc<AuditKey> {
        &self.current
    }

    /// The key with `id`, current or retired.
    pub(crate) fn get(&self, id: &str) -> Option<&AuditKey> {
        if self.current.id() == id {
            return Some(&self.current);
        }
        self.retired.iter().find(|k| k.id() == id)
    }

    /// The retired keys' ids.
    pub(crate) fn retired_ids(&self) -> Vec<&str> {
        self.retired.iter().map(|k| k.id()).collect()
    }

    /// The configured keyring: the current key as [`AuditKey::load`] finds (or, with `create`,
    /// makes) it, and the retired keys (`retired_dir`, `retired_key_files`). None when there is
    /// no current key. Refused while a rotation is unfinished (`{key_file}.next` exists).
    pub fn load(
        cfg: &AuditConfig,
        storage_dir: &Path,
        create: bool,
    ) -> Result<Option<AuditKeyring>, AuditKeyError> {
        AuditKeyring::load_with(cfg, storage_dir, create, true)
    }

    /// [`AuditKeyring::load`]; with `refuse_unfinished` false, an unfinished rotation is not
    /// refused (`rotate-key` opens the store to finish it).
    pub(crate) fn load_with(
        cfg: &AuditConfig,
        storage_dir: &Path,
        create: bool,
        refuse_unfinished: bool,
    ) -> Result<Option<AuditKeyring>, AuditKeyError> {
        if refuse_unfinished && cfg.key_env.is_none() {
            let next = next_path(&cfg.key_path(storage_dir));
            if next.exists() {
                return Err(AuditKeyError::RotationUnfinished(
                    next.display().to_string(),
                ));
            }
        }
        let Some(current) = AuditKey::load(cfg, storage_dir, create)? else {
            return Ok(None);
        };
        Ok(Some(AuditKeyring::new(
            std::sync::Arc::new(current),
            load_retired(cfg, storage_dir)?,
        )))
    }
}

/// The retired keys of `cfg`: `*.key` files in the retired directory (absent: none), then
/// `retired_key_files` (each must exist).
fn load_retired(cfg: &AuditConfig, storage_dir: &Path) -> Result<Vec<AuditKey>, AuditKeyError> {
    let dir = cfg.retired_path(storage_dir);
    let mut files = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries {
                let path = e
                    .map_err(|e| AuditKeyError::Io(dir.display().to_string(), e))?
                    .path();
                if path.extension().is_some_and(|x| x == "key") {
                    files.push(path);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AuditKeyError::Io(dir.display().to_string(), e)),
    }
    files.sort();
    files.extend(cfg.retired_key_files.iter().cloned());
    files.iter().map(|p| read_key_file(p)).collect()
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Where the old key now is.
    pub retired_file: PathBuf,
}

/// `gateway audit rotate-key`, the file steps around the rotation entry, which `record` writes
/// (sealed with the old key, naming the new key's id; it is given both). In order, each step
/// durable before the next, so a crash anywhere leaves a state this function finishes when run
/// again (and in which a gateway refuses to start):
/// 1. the old key is copied to `{retired_dir}/{id}.key`;
/// 2. the new key is written to `{key_file}.next` (or, when that exists, read from it: an
///    interrupted rotation is finished with the key it had chosen);
/// 3. `record(old, new)` writes the rotation entry (it does nothing when the chain already
///    records the rotation to `new`);
/// 4. `.next` is renamed onto the key file.
///
/// Every gateway writing the chain must be stopped first: one still running with the old key
/// would seal entries after the rotation with it, and verify would name the first of them.
pub(crate) fn rotate<F>(
    cfg: &AuditConfig,
    storage_dir: &Path,
    record: F,
) -> Result<Rotation, AuditKeyError>
where
    F: FnOnce(&AuditKey, &AuditKey) -> Result<(), String>,
{
    if cfg.key_env.is_some() {
        return Err(AuditKeyError::Rotation(
            "the key is in an environment variable (key_env): put the old key in a file in \
             retired_dir (mode 0600, 64 hex digits), set the new key in the variable and start \
             the gateway; it writes the rotation entry at start"
                .into(),
        ));
    }
    let key_path = cfg.key_path(storage_dir);
    let Some(old) = AuditKey::load(cfg, storage_dir, false)? else {
        return Err(AuditKeyError::Rotation(format!(
            "no key at {}: nothing to rotate",
            key_path.display()
        )));
    };
    let retired_dir = cfg.retired_path(storage_dir);
    let retired_file = retired_dir.join(format!("{}.key", old.id()));
    let io = |p: &Path| {
        let shown = p.display().to_string();
        move |e| AuditKeyError::Io(shown, e)
    };
    if retired_file.exists() {
        // Left by an interrupted run, or stale: it must hold the old key itself, as it becomes
        // the only copy once `.next` replaces the key file.
        let there = read_key_file(&retired_file).map_err(|e| {
            AuditKeyError::Rotation(format!(
                "{} exists but cannot be read as the old key ({e}); move it away and run again",
                retired_file.display()
            ))
        })?;
        let check: &[&[u8]] = &[b"gateway-audit-key-rotation-check"];
        if there.id() != old.id() || there.sign_hex(check) != old.sign_hex(check) {
            return Err(AuditKeyError::Rotation(format!(
                "{} exists but does not hold the current key {} (it holds key {}); nothing was \
                 changed: move it away and run again",
                retired_file.display(),
                old.id(),
                there.id()
            )));
        }
    } else {
        std::fs::create_dir_all(&retired_dir).map_err(io(&retired_dir))?;
        let bytes = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        write_new_file(&retired_file, bytes.trim()).map_err(io(&retired_file))?;
    }
    let next = next_path(&key_path);
    let new = if next.exists() {
        read_key_file(&next)?
    } else {
        let bytes: [u8; 32] = rand::random();
        write_new_file(&next, &super::audit::hex(&bytes)).map_err(io(&next))?;
        AuditKey::from_bytes(&bytes)
    };
    record(&old, &new).map_err(AuditKeyError::Rotation)?;
    std::fs::rename(&next, &key_path).map_err(io(&key_path))?;
    if let Some(dir) = key_path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(Rotation {
        old_key_id: old.id().to_string(),
        new_key_id: new.id().to_string(),
        retired_file,
    })
}

/// Writes 32 random bytes as hex to a new file that only its owner may read, and syncs it.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: [u8; 32] = rand::random();
    write_new_file(path, &super::audit::hex(&bytes))
}

/// Writes `hex` to a new owner-only file, and syncs it and its directory.
fn write_new_file(path: &Path, hex: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{hex}\n").as_bytes())?;
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
    fn rotate_retires_the_old_key_and_an_interrupted_rotation_is_finished_with_the_same_new_key() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = AuditConfig::default();
        let old = AuditKey::load(&cfg, dir.path(), true)
            .expect("create")
            .expect("key");
        // Interrupted: the rotation entry could not be written.
        let mut chosen = String::new();
        let e = rotate(&cfg, dir.path(), |o, n| {
            assert_eq!(o.id(), old.id());
            chosen = n.id().to_string();
            Err("database down".into())
        })
        .expect_err("interrupted");
        assert!(e.to_string().contains("database down"), "{e}");
        let e = AuditKeyring::load(&cfg, dir.path(), true).expect_err("unfinished");
        assert!(matches!(e, AuditKeyError::RotationUnfinished(_)), "{e}");
        // Run again: the same new key, the rotation written, the files in place.
        let done = rotate(&cfg, dir.path(), |o, n| {
            assert_eq!((o.id(), n.id()), (old.id(), chosen.as_str()));
            Ok(())
        })
        .expect("finished");
        assert_eq!(done.new_key_id, chosen);
        assert_eq!(
            done.retired_file,
            dir.path()
                .join(RETIRED_DIR)
                .join(format!("{}.key", old.id()))
        );
        let mode = std::fs::metadata(&done.retired_file)
            .expect("retired")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let ring = AuditKeyring::load(&cfg, dir.path(), false)
            .expect("load")
            .expect("ring");
        assert_eq!(ring.current().id(), chosen);
        assert_eq!(ring.retired_ids(), [old.id()]);
        assert!(ring.get(old.id()).is_some());
        assert!(!next_path(&dir.path().join(KEY_FILE)).exists());
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

    #[test]
    fn rotate_refuses_a_retired_file_that_does_not_hold_the_old_key() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = AuditConfig::default();
        let old = AuditKey::load(&cfg, dir.path(), true)
            .expect("create")
            .expect("key");
        let retired = dir.path().join(RETIRED_DIR);
        std::fs::create_dir_all(&retired).expect("dir");
        let stale = retired.join(format!("{}.key", old.id()));
        write_new_file(&stale, &"ab".repeat(32)).expect("stale");
        let mut recorded = false;
        let e = rotate(&cfg, dir.path(), |_, _| {
            recorded = true;
            Ok(())
        })
        .expect_err("a stale retired file");
        assert!(!recorded, "nothing recorded");
        assert!(
            e.to_string().contains("does not hold the current key"),
            "{e}"
        );
        // The key file is untouched and no rotation was begun.
        let still = AuditKey::load(&cfg, dir.path(), false)
            .expect("load")
            .expect("key");
        assert_eq!(still.id(), old.id());
        assert!(!next_path(&cfg.key_path(dir.path())).exists());
        // With the right file there, the rotation goes through.
        std::fs::remove_file(&stale).expect("rm");
        let key_text = std::fs::read_to_string(cfg.key_path(dir.path())).expect("key text");
        write_new_file(&stale, key_text.trim()).expect("right");
        rotate(&cfg, dir.path(), |_, _| Ok(())).expect("rotated");
        let ring = AuditKeyring::load(&cfg, dir.path(), false)
            .expect("load")
            .expect("ring");
        assert!(ring.get(old.id()).is_some());
    }
}
