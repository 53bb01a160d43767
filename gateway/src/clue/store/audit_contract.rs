//! What every backend's [`AuditLog`] must do across an audit key rotation (run on SQLite in
//! `sqlite/audit.rs` and on a real PostgreSQL in `postgres/tests.rs`).

use super::{AuditLog, ClueStore, seal_chain};
use crate::clue::audit::{AuditAction, sealed_by};
use crate::clue::audit_key::{AuditKey, AuditKeyring};
use serde_json::json;
use std::sync::Arc;

fn ring(current: &AuditKey, retired: &[&AuditKey]) -> Option<Arc<AuditKeyring>> {
    Some(Arc::new(AuditKeyring::new(
        Arc::new(current.clone()),
        retired.iter().map(|k| (*k).clone()).collect(),
    )))
}

fn record(log: &dyn ClueStore, n: i64) -> Result<(), super::StoreError> {
    AuditLog::record(log, "cli", AuditAction::TokenCreated, &json!({"n": n}), n)
}

/// `open(keys)` opens the same (at first empty) store with that keyring.
pub(crate) fn a_chain_across_key_rotations_verifies_and_the_old_key_writes_no_more(
    open: &dyn Fn(Option<Arc<AuditKeyring>>) -> Arc<dyn ClueStore>,
) {
    let old = AuditKey::from_bytes(&[21u8; 32]);
    let new = AuditKey::from_bytes(&[22u8; 32]);
    let newer = AuditKey::from_bytes(&[23u8; 32]);

    // `gateway audit rotate-key`: the rotation is written with the old key, once.
    let a = open(ring(&old, &[]));
    record(a.as_ref(), 1).expect("1");
    record(a.as_ref(), 2).expect("2");
    assert_eq!(a.audit_next_key().expect("next").as_deref(), Some(old.id()));
    assert_eq!(
        a.record_key_rotation(&old, new.id(), "cli", 3)
            .expect("rotate"),
        Some(3)
    );
    assert_eq!(a.audit_next_key().expect("next").as_deref(), Some(new.id()));
    assert_eq!(
        a.record_key_rotation(&old, new.id(), "cli", 3)
            .expect("again"),
        None,
        "a rotation run again after an interruption writes nothing more"
    );
    // A gateway still running with the old key may not seal after the rotation.
    let e = record(a.as_ref(), 4).expect_err("old key after rotation");
    assert!(e.to_string().contains(new.id()), "{e}");
    drop(a);

    let b = open(ring(&new, &[&old]));
    assert_eq!(
        seal_chain(b.as_ref(), &keys(&new, &[&old]), false, 4).expect("start"),
        None
    );
    record(b.as_ref(), 5).expect("5");
    let r = b.verify_audit().expect("verify");
    assert!(r.ok, "{r}");
    assert_eq!(r.entries, 4);
    assert_eq!(
        r.keys
            .iter()
            .map(|k| (k.key_id.as_str(), k.from))
            .collect::<Vec<_>>(),
        [(old.id(), 1), (new.id(), 4)]
    );
    drop(b);

    // Without the retired key, verify names it.
    let r = open(ring(&new, &[])).verify_audit().expect("verify");
    let broken = r.broken.expect("old key missing");
    assert_eq!(broken.seq, 1);
    assert!(broken.what.contains(old.id()), "{}", broken.what);

    // The rotation by configuration: the next key is configured, the current one retired;
    // the first start writes the rotation with the retired key.
    let c = open(ring(&newer, &[&old, &new]));
    let r = c.verify_audit().expect("verify");
    assert!(!r.ok, "ends under a retired key before the start: {r}");
    // With key_file, rotate-key writes the rotation before installing the key, so this is a
    // tail cut back past a rotation: refused, naming the retired key, nothing written.
    let e = seal_chain(c.as_ref(), &keys(&newer, &[&old, &new]), false, 6)
        .expect_err("key_file: a chain under a retired key at start");
    assert!(e.to_string().contains(new.id()), "{e}");
    assert_eq!(c.audit_next_key().expect("next").as_deref(), Some(new.id()));
    assert_eq!(
        seal_chain(c.as_ref(), &keys(&newer, &[&old, &new]), true, 6).expect("start"),
        Some(4)
    );
    record(c.as_ref(), 7).expect("7");
    let all = c.audit_range(0, i64::MAX, None).expect("all");
    assert_eq!(all[4].action, "audit_key_rotated");
    assert_eq!(sealed_by(&all[4].hash), Some(new.id()));
    assert_eq!(sealed_by(&all[5].hash), Some(newer.id()));
    let r = c.verify_audit().expect("verify");
    assert!(r.ok, "{r}");
    assert_eq!(r.keys.len(), 3, "{r}");
    drop(c);

    // A key the ring does not hold: the gateway refuses to start.
    let stranger = AuditKey::from_bytes(&[24u8; 32]);
    let d = open(ring(&stranger, &[&old]));
    let e = seal_chain(d.as_ref(), &keys(&stranger, &[&old]), true, 8).expect_err("stranger");
    assert!(e.to_string().contains(newer.id()), "{e}");
}

fn keys(current: &AuditKey, retired: &[&AuditKey]) -> AuditKeyring {
    AuditKeyring::new(
        Arc::new(current.clone()),
        retired.iter().map(|k| (*k).clone()).collect(),
    )
}
