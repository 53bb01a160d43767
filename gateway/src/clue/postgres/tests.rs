//! The PostgreSQL store against a real server (the e2e harness starts one per test): several
//! `PgStore`s on one database stand for several gateways.

use super::*;
use crate::clue::auth::{create_token, token_hash};
use crate::clue::signal::Level;
use crate::clue::store::{CHANNEL_MQTT, TokenStore};
use std::sync::Barrier;

fn server() -> (e2e::Postgres, String) {
    let pg = e2e::Postgres::start().expect("postgres");
    let url = pg.create_database("clues").expect("database");
    (pg, url)
}

fn gateway(url: &str) -> PgStore {
    PgStore::open(url, 4, vec![CHANNEL_MQTT])
        .expect("open")
        .with_raise_after(10)
}

fn event(key: &str, at_ms: i64) -> ClueEvent {
    let subject = Subject {
        site: "s1".into(),
        device: Some(key.into()),
        ..Default::default()
    };
    ClueEvent {
        rule: "cover-open".into(),
        kind: "manhole.cover_open".into(),
        level: Level::Medium,
        dedup_key: ClueEvent::default_key("cover-open", &subject),
        subject,
        at_ms,
        title: "cover open".into(),
        detail: json!({"tilt": 40}),
        evidence: vec![],
        department: Some("water".into()),
        assisting: Vec::new(),
    }
}

#[test]
fn three_gateways_racing_on_the_same_keys_make_one_clue_per_key_and_one_chain() {
    let (_pg, url) = server();
    // One key for all three: batched intake seals every entry it writes.
    let key = Arc::new(AuditKey::from_bytes(&[5u8; 32]));
    let gateways: Vec<PgStore> = (0..3)
        .map(|_| gateway(&url).with_audit_key(Some(key.clone())))
        .collect();
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for (g, store) in gateways.iter().enumerate() {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for round in 0..20i64 {
                    let batch: Vec<_> = (0..10)
                        .map(|k| {
                            (
                                event(&format!("d{k}"), round * 10 + g as i64),
                                vec![],
                                1_000,
                            )
                        })
                        .collect();
                    for r in store.ingest_batch(&batch, round).expect("batch") {
                        r.expect("event");
                    }
                }
            });
        }
    });
    let a = &gateways[0];
    let all = a
        .list(&ClueQuery {
            limit: 1000,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(
        all.len(),
        10,
        "one clue per dedup key across three gateways"
    );
    assert!(all.iter().all(|c| c.occurrences == 60), "{all:?}");
    // Repetition raised the level once, whoever saw the tenth occurrence.
    assert!(all.iter().all(|c| c.level == Level::High));
    let report = gateways[2].verify_audit().expect("verify");
    assert!(report.ok, "{report}");
    assert_eq!(report.entries, 600, "one entry per occurrence, one chain");
    assert_eq!(report.sealed_from, Some(1), "sealed from the first entry");
    // Every change is queued once for the platform.
    let queued = a.pending(CHANNEL_MQTT, 1000).expect("pending");
    assert_eq!(queued.len(), 600);
}

#[test]
fn a_chain_across_key_rotations_verifies_and_the_old_key_writes_no_more() {
    let (_pg, url) = server();
    crate::clue::store::audit_contract::a_chain_across_key_rotations_verifies_and_the_old_key_writes_no_more(
        &|keys| Arc::new(gateway(&url).with_audit_keyring(keys)),
    );
}

#[test]
fn a_bad_event_fails_alone_and_the_rest_of_its_batch_is_recorded() {
    let (_pg, url) = server();
    let key = Arc::new(AuditKey::from_bytes(&[6u8; 32]));
    let store = gateway(&url).with_audit_key(Some(key));
    let mut bad = event("d2", 2);
    // PostgreSQL refuses NUL in text: the set-based write fails, and the batch is redone one
    // event at a time.
    bad.title = "cover\0open".into();
    let batch = vec![
        (event("d1", 1), vec![], 1_000),
        (bad, vec![], 1_000),
        (event("d1", 3), vec![], 1_000),
    ];
    let out = store.ingest_batch(&batch, 5).expect("batch");
    assert!(
        out[0].is_ok() && out[1].is_err() && out[2].is_ok(),
        "{out:?}"
    );
    let d1 = out[2].as_ref().expect("d1");
    assert_eq!((d1.clue.occurrences, d1.event_id), (2, 2));
    let report = store.verify_audit().expect("verify");
    assert!(report.ok && report.entries == 2, "{report}");
    assert_eq!(
        report.sealed_from,
        Some(1),
        "the event-by-event redo seals too"
    );
    assert_eq!(store.pending(CHANNEL_MQTT, 10).expect("pending").len(), 2);
}

#[test]
fn concurrent_claims_from_three_gateways_one_wins_the_others_are_refused() {
    let (_pg, url) = server();
    let gateways: Vec<PgStore> = (0..3).map(|_| gateway(&url)).collect();
    let id = gateways[0]
        .ingest(&event("d1", 1), &[], 1_000, 1)
        .expect("ingest")
        .clue
        .id;
    let barrier = Barrier::new(6);
    let results: Vec<Result<ClueChange, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (store, barrier) = (&gateways[i % 3], &barrier);
                s.spawn(move || {
                    barrier.wait();
                    store.act(
                        id,
                        &Action::Claim { note: None },
                        &format!("inspector{i}#1"),
                        10 + i as i64,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::Lifecycle(_))),
        "{results:?}"
    );
    let clue = gateways[1].get(id).expect("get").expect("clue").clue;
    assert_eq!(clue.status, Status::Claimed);
    let trail = gateways[2].audit_of(id).expect("audit");
    assert_eq!(
        trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["created", "claim"]
    );
    assert!(gateways[0].verify_audit().expect("verify").ok);
}

#[test]
fn each_queued_change_is_handed_to_one_gateway_until_its_lease_runs_out() {
    let (pg, url) = server();
    let (a, b) = (gateway(&url), gateway(&url));
    for k in 0..30 {
        a.ingest(&event(&format!("d{k}"), k), &[], 1_000, k)
            .expect("ingest");
    }
    let (got_a, got_b) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.pending(CHANNEL_MQTT, 20).expect("a"));
        let hb = s.spawn(|| b.pending(CHANNEL_MQTT, 20).expect("b"));
        (ha.join().expect("a"), hb.join().expect("b"))
    });
    let ids_a: BTreeSet<i64> = got_a.iter().map(|d| d.id).collect();
    let ids_b: BTreeSet<i64> = got_b.iter().map(|d| d.id).collect();
    assert!(ids_a.is_disjoint(&ids_b), "{ids_a:?} {ids_b:?}");
    assert_eq!(ids_a.len() + ids_b.len(), 30);
    // A delivers its share; B's holder dies. Its rows stay with it until the lease ends.
    for d in &got_a {
        a.delivered(d.id, 5).expect("delivered");
    }
    drop(b);
    assert!(a.pending(CHANNEL_MQTT, 100).expect("leased").is_empty());
    pg.psql(
        "clues",
        "UPDATE outbound SET lease_until_ms = 0 WHERE delivered_ms IS NULL",
    )
    .expect("expire leases");
    let taken: BTreeSet<i64> = a
        .pending(CHANNEL_MQTT, 100)
        .expect("taken over")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(taken, ids_b);
}

#[test]
fn one_leader_per_job_and_another_takes_over_when_it_goes() {
    let (_pg, url) = server();
    let (a, b) = (gateway(&url), gateway(&url));
    assert!(a.lead("oversight").expect("a"));
    assert!(a.lead("oversight").expect("a again"));
    assert!(!b.lead("oversight").expect("b"));
    assert!(b.lead("retention").expect("b leads another job"));
    drop(a);
    let mut took_over = false;
    for _ in 0..100 {
        if b.lead("oversight").expect("b") {
            took_over = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(took_over, "the lock is free once the leader's session ends");
}

#[test]
fn a_unit_token_keeps_its_unit_and_department() {
    let (_pg, url) = server();
    let store = gateway(&url);
    crate::clue::store::tokens_contract::a_unit_token_keeps_its_unit_and_department(&store, &store);
    let listed = store.list_tokens().expect("list");
    assert_eq!(listed[0].unit.as_deref(), Some("lingyin"));
    assert_eq!(listed[0].department.as_deref(), Some("market"));
}

#[test]
fn a_device_token_keeps_its_binding_and_other_tokens_have_none() {
    let (_pg, url) = server();
    let store = gateway(&url);
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
}

#[test]
fn tokens_and_evidence_files_written_by_one_gateway_are_seen_by_another() {
    use crate::clue::evidence::EvidenceStore;
    let (_pg, url) = server();
    let (a, b) = (gateway(&url), gateway(&url));
    let (id, token) =
        create_token(&a, Role::Inspector, &["s1".into()], Some("ann"), 1).expect("token");
    let rec = b
        .token_by_hash(&token_hash(&token))
        .expect("lookup")
        .expect("found on the other gateway");
    assert_eq!((rec.id, rec.role), (id, Role::Inspector));
    assert!(b.revoke_token(id, 2).expect("revoke"));
    assert!(
        a.token_by_hash(&token_hash(&token))
            .expect("lookup")
            .is_none()
    );

    let ev_a = EvidenceStore::in_blobs(Arc::new(a.blobs()));
    let ev_b = EvidenceStore::in_blobs(Arc::new(b.blobs()));
    let h = ev_a.put(b"\xff\xd8frame").expect("put");
    assert_eq!(ev_a.put(b"\xff\xd8frame").expect("again"), h);
    assert_eq!(ev_b.get(&h).expect("get"), b"\xff\xd8frame");
    assert!(ev_b.exists(&h));
    assert!(ev_b.remove(&h).expect("remove"));
    assert!(matches!(
        ev_a.get(&h),
        Err(crate::clue::evidence::EvidenceError::NotFound(_))
    ));
    assert!(a.verify_audit().expect("verify").ok);
}

#[test]
fn verify_names_a_row_changed_behind_the_gateways_back_and_the_log_refuses_edits() {
    let (pg, url) = server();
    let a = gateway(&url);
    let id = a
        .ingest(&event("d1", 1), &[], 1_000, 1)
        .expect("ingest")
        .clue
        .id;
    a.act(id, &Action::Claim { note: None }, "ann#1", 2)
        .expect("claim");
    assert!(a.verify_audit().expect("verify").ok);
    let err = pg
        .psql("clues", "UPDATE audit SET actor = 'mallory' WHERE seq = 1")
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err:#}");
    pg.psql(
        "clues",
        &format!("UPDATE clues SET assignee = 'bob#1' WHERE id = {id}"),
    )
    .expect("edit behind the gateway");
    let report = a.verify_audit().expect("verify");
    assert!(!report.ok);
    assert!(
        report
            .broken
            .expect("broken")
            .what
            .contains("changed outside"),
        "names the clue"
    );
}

#[test]
fn registry_edits_and_frame_access_join_the_one_chain_between_clue_changes() {
    let (_pg, url) = server();
    let a = gateway(&url);
    let b = gateway(&url);
    a.ingest(&event("d1", 1), &[], 1_000, 1).expect("ingest");
    b.record(
        "admin#1",
        AuditAction::RegistryPut,
        &json!({"device": "s1/d1", "before": null, "after": {"site": "s1", "device": "d1"}}),
        2_000,
    )
    .expect("registry edit audited");
    a.record_frame_access("s1", "cam1", "ann#2", "admin", 3_000)
        .expect("frame access audited");
    b.ingest(&event("d2", 4), &[], 4_000, 1).expect("ingest");
    let all = a.audit_all().expect("audit");
    let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "created",
            "registry_put",
            "frame_original_access",
            "created"
        ]
    );
    assert_eq!(all[1].clue_id, None);
    assert_eq!(all[1].detail["device"], "s1/d1");
    assert_eq!(all[2].detail["camera"], "cam1");
    assert!(b.verify_audit().expect("verify").ok);
}

#[test]
fn a_subjects_location_shop_and_owner_are_stored_and_read_back() {
    let (_pg, url) = server();
    let a = gateway(&url);
    let mut ev = event("d1", 1);
    ev.subject.location = Some(GeoPoint {
        lat: 31.229,
        lon: 121.4701,
    });
    ev.subject.shop = Some("Noodle Bar".into());
    ev.subject.owner = Some("Li Na".into());
    let id = a.ingest(&ev, &[], 1_000, 1).expect("ingest").clue.id;
    let got = a.get(id).expect("get").expect("clue").clue.subject;
    assert_eq!(got, ev.subject);
    assert!(a.verify_audit().expect("verify").ok);
}

#[test]
fn a_notice_is_recorded_once_with_its_deliveries_and_its_outcome_moves_once() {
    let (_pg, url) = server();
    crate::clue::store::stays_contract::a_notice_is_recorded_once_with_its_deliveries_and_its_outcome_moves_once(&gateway(&url));
}

#[test]
fn a_notice_goes_overdue_yellow_then_red_and_every_step_is_audited_and_published() {
    let (_pg, url) = server();
    crate::clue::store::notices_contract::a_notice_goes_overdue_yellow_then_red_and_every_step_is_audited_and_published(&gateway(&url));
}

#[test]
fn the_notice_list_is_red_first_then_yellow_then_the_nearest_deadline() {
    let (_pg, url) = server();
    crate::clue::store::notices_contract::the_list_is_red_first_then_yellow_then_the_nearest_deadline(&gateway(&url));
}

#[test]
fn permits_are_stored_replaced_and_revoked_each_with_its_audit_entry() {
    let (_pg, url) = server();
    crate::clue::store::permits_contract::permits_are_stored_replaced_and_revoked_each_with_its_audit_entry(&gateway(&url));
}
