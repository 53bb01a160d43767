//! What every backend's [`PermitRecords`] must do (run on SQLite in `sqlite/permits.rs` and on
//! a real PostgreSQL in `postgres/tests.rs`).

use super::{ClueStore, StoreError};
use serde_json::json;

pub(crate) fn permits_are_stored_replaced_and_revoked_each_with_its_audit_entry(
    store: &dyn ClueStore,
) {
    assert!(store.muck_permits().unwrap().is_empty());
    let p1 = json!({"plate": "苏E5T703", "hours": ["22:00-06:00"], "cameras": ["ring-rd"]});
    let p2 = json!({"plate": "沪B74992", "holder": "Huaxin"});
    assert_eq!(
        store
            .put_muck_permit("苏E5T703", &p1, true, "root#1", 10)
            .unwrap(),
        None
    );
    // Created once: a second create is a conflict and changes nothing.
    let again = store.put_muck_permit("苏E5T703", &p2, true, "root#1", 11);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store
        .put_muck_permit("沪B74992", &p2, false, "platform#2", 12)
        .unwrap();
    let rows = store.muck_permits().unwrap();
    let plates: Vec<&str> = rows.iter().map(|r| r.plate.as_str()).collect();
    assert_eq!(plates.len(), 2);
    let r1 = rows.iter().find(|r| r.plate == "苏E5T703").unwrap();
    assert_eq!(
        (&r1.permit, r1.updated_ms, r1.updated_by.as_str()),
        (&p1, 10, "root#1")
    );
    // Replaced: the old permit comes back.
    let p1b = json!({"plate": "苏E5T703", "hours": []});
    assert_eq!(
        store
            .put_muck_permit("苏E5T703", &p1b, false, "root#1", 13)
            .unwrap(),
        Some(p1.clone())
    );
    // Revoked once.
    assert_eq!(
        store.delete_muck_permit("沪B74992", "root#1", 14).unwrap(),
        Some(p2.clone())
    );
    assert_eq!(
        store.delete_muck_permit("沪B74992", "root#1", 15).unwrap(),
        None
    );
    let rows = store.muck_permits().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((&rows[0].permit, rows[0].updated_ms), (&p1b, 13));

    // Four changes, four entries, in order, each naming the plate before and after; the
    // refused create and the revocation of nothing wrote none.
    let entries = store.audit_range(0, i64::MAX, None).unwrap();
    let got: Vec<(&str, &str, serde_json::Value, serde_json::Value)> = entries
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.detail["plate"].as_str().unwrap_or(""),
                e.detail["before"].clone(),
                e.detail["after"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("muck_permit_put", "苏E5T703", json!(null), p1.clone()),
            ("muck_permit_put", "沪B74992", json!(null), p2.clone()),
            ("muck_permit_put", "苏E5T703", p1, p1b.clone()),
            ("muck_permit_delete", "沪B74992", p2, json!(null)),
        ]
    );
    assert!(entries.iter().all(|e| e.clue_id.is_none()));
    assert_eq!(entries[1].actor, "platform#2");
    assert!(store.verify_audit().unwrap().ok, "the chain still verifies");
}
