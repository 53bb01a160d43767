//! What every backend's [`TokenStore`] must do (run on SQLite in `sqlite/tokens.rs` and on a
//! real PostgreSQL in `postgres/tests.rs`).

use crate::clue::auth::{Role, TokenGrant, TokenStore, TokenStoreError};
use crate::clue::auth::{create_token, create_token_for, token_hash};

pub(crate) fn a_device_token_keeps_its_binding_and_other_tokens_have_none(store: &dyn TokenStore) {
    let sites = ["s1".to_string()];
    let grant = TokenGrant {
        role: Role::Device,
        sites: &sites,
        name: Some("gate camera"),
        device: Some("cam-7"),
        unit: None,
        department: None,
        relay: false,
        channel: None,
    };
    let (id, token) = create_token_for(store, &grant, 1).expect("bound token");
    let rec = store
        .token_by_hash(&token_hash(&token))
        .expect("lookup")
        .expect("found");
    assert_eq!((rec.id, rec.role), (id, Role::Device));
    assert_eq!(rec.device.as_deref(), Some("cam-7"));
    assert_eq!(rec.sites, sites);

    let relay_grant = TokenGrant {
        device: None,
        relay: true,
        ..grant
    };
    let (_, relay) = create_token_for(store, &relay_grant, 2).expect("relay token");
    let rec = store
        .token_by_hash(&token_hash(&relay))
        .expect("lookup")
        .expect("found");
    assert_eq!(rec.device, None, "an unbound token speaks for every device");

    let inspector = TokenGrant {
        role: Role::Inspector,
        ..grant
    };
    assert!(matches!(
        create_token_for(store, &inspector, 3),
        Err(TokenStoreError::Invalid(_))
    ));
    // A device token is bound or, deliberately, a relay: never unbound by default.
    let e = create_token(store, Role::Device, &sites, None, 4).expect_err("neither");
    assert!(e.to_string().contains("--relay"), "{e}");
    let both = TokenGrant {
        relay: true,
        ..grant
    };
    assert!(matches!(
        create_token_for(store, &both, 5),
        Err(TokenStoreError::Invalid(_))
    ));
    let inspector_relay = TokenGrant {
        role: Role::Inspector,
        ..relay_grant
    };
    assert!(matches!(
        create_token_for(store, &inspector_relay, 6),
        Err(TokenStoreError::Invalid(_))
    ));

    // A notifier names its channel, and only a notifier names one.
    let notifier = TokenGrant {
        role: Role::Notifier,
        device: None,
        channel: Some("sms"),
        name: Some("sms provider"),
        ..grant
    };
    let (_, t) = create_token_for(store, &notifier, 7).expect("notifier token");
    let rec = store
        .token_by_hash(&token_hash(&t))
        .expect("lookup")
        .expect("found");
    assert_eq!(rec.role, Role::Notifier);
    assert_eq!(rec.channel.as_deref(), Some("sms"));
    assert_eq!(rec.device, None);
    for bad in [
        TokenGrant {
            channel: None,
            ..notifier
        },
        TokenGrant {
            channel: Some("s m s"),
            ..notifier
        },
        TokenGrant {
            role: Role::Platform,
            ..notifier
        },
    ] {
        assert!(matches!(
            create_token_for(store, &bad, 8),
            Err(TokenStoreError::Invalid(_))
        ));
    }
}

/// A token scoped to a unit and a department keeps both (and its own sites, none here); the
/// creation's audit entry names them.
pub(crate) fn a_unit_token_keeps_its_unit_and_department(
    store: &dyn TokenStore,
    audit: &dyn crate::clue::store::AuditLog,
) {
    let grant = TokenGrant {
        role: Role::Inspector,
        sites: &[],
        name: Some("lingyin market"),
        device: None,
        unit: Some("lingyin"),
        department: Some("market"),
        relay: false,
        channel: None,
    };
    let (id, token) = create_token_for(store, &grant, 1).expect("unit token");
    let rec = store
        .token_by_hash(&token_hash(&token))
        .expect("lookup")
        .expect("found");
    assert_eq!(rec.id, id);
    assert_eq!(rec.unit.as_deref(), Some("lingyin"));
    assert_eq!(rec.department.as_deref(), Some("market"));
    assert!(rec.sites.is_empty());
    let entries = audit.audit_range(0, i64::MAX, None).expect("audit");
    let created = entries
        .iter()
        .rfind(|e| e.action == "token_created")
        .expect("token_created entry");
    assert_eq!(created.detail["unit"], "lingyin");
    assert_eq!(created.detail["department"], "market");
    let bad = TokenGrant {
        unit: Some("Ling Yin"),
        ..grant
    };
    assert!(matches!(
        create_token_for(store, &bad, 2),
        Err(TokenStoreError::Invalid(_))
    ));
}
