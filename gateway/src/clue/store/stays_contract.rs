//! What every backend's [`StayRecords`] must do (run on SQLite in `sqlite/stays.rs` and on a
//! real PostgreSQL in `postgres/tests.rs`).

use super::ClueStore;
use crate::clue::stays::{Outcome, StayNotice, StayQuery, StayUpdate, parking_stats};

fn notice(key: &str, site: &str, camera: &str, zone: &str, notice_ms: i64) -> StayNotice {
    StayNotice {
        key: key.into(),
        site: site.into(),
        camera: camera.into(),
        zone: zone.into(),
        plate: Some("浙A12345".into()),
        first_ms: notice_ms - 60_000,
        notice_ms,
        dwell_s: 60,
        remaining_s: 420,
        shop: None,
    }
}

fn all(scope: Option<Vec<String>>) -> StayQuery {
    StayQuery {
        scope,
        limit: 100,
        ..Default::default()
    }
}

pub(crate) fn a_notice_is_recorded_once_with_its_deliveries_and_its_outcome_moves_once(
    store: &dyn ClueStore,
) {
    let channels = ["notice-mqtt".to_string(), "notice-webhook:sms".to_string()];
    let n1 = notice("s1/c1/7-1", "s1", "c1", "kerb", 1_000_000);
    let rec = store
        .record_notice(&n1, &channels, 5)
        .expect("record")
        .expect("new stay");
    assert_eq!((rec.outcome, rec.left_ms), (Outcome::Pending, None));
    assert_eq!(rec.notice, n1);
    // Its notice is queued on each channel, and on no clue channel.
    for ch in &channels {
        let rows = store.pending(ch, 10).expect("pending");
        assert_eq!(rows.len(), 1, "{ch}");
        assert_eq!(rows[0].topic, "notices/v1/s1/c1");
        let v: serde_json::Value = serde_json::from_str(&rows[0].payload).unwrap();
        assert_eq!(
            (v["event_id"].as_i64(), &v["stay"]),
            (Some(rec.id), &n1.key.clone().into())
        );
    }
    assert!(store.pending(super::CHANNEL_MQTT, 10).unwrap().is_empty());
    // The same stay again (a retried frame) changes nothing.
    assert!(store.record_notice(&n1, &channels, 6).unwrap().is_none());
    assert_eq!(store.pending("notice-mqtt", 10).unwrap().len(), 1);

    let n2 = notice("s1/c1/7-2", "s1", "c1", "kerb", 1_100_000);
    // A shop-front notice: its shop is kept on the record.
    let n3 = StayNotice {
        plate: None,
        shop: Some("shop-7".into()),
        ..notice("s2/c2/shop-gate/7-1", "s2", "c2", "gate", 1_200_000)
    };
    for n in [&n2, &n3] {
        store.record_notice(n, &[], 7).unwrap().expect("new stay");
    }
    let left = |key: &str, at_ms| StayUpdate::Left {
        key: key.into(),
        at_ms,
    };
    let raised = |key: &str, at_ms| StayUpdate::Raised {
        key: key.into(),
        at_ms,
        clue_key: format!("parking-overstay/{key}"),
    };
    // Left before the limit: persuaded.
    assert!(store.record_outcome(&left(&n1.key, 1_030_000)).unwrap());
    assert!(!store.record_outcome(&left(&n1.key, 1_040_000)).unwrap());
    assert!(
        !store.record_outcome(&raised(&n1.key, 1_050_000)).unwrap(),
        "decided"
    );
    // Stayed to the limit, then left: a clue, with its departure time.
    assert!(store.record_outcome(&raised(&n2.key, 1_520_000)).unwrap());
    assert!(store.record_outcome(&left(&n2.key, 1_600_000)).unwrap());
    assert!(!store.record_outcome(&raised(&n2.key, 1_700_000)).unwrap());
    assert!(
        !store.record_outcome(&left("s9/c9/1-1", 1)).unwrap(),
        "unknown stay"
    );

    let stays = store.stays(&all(None)).unwrap();
    let keys: Vec<&str> = stays.iter().map(|s| s.notice.key.as_str()).collect();
    assert_eq!(keys, [&n3.key, &n2.key, &n1.key], "newest notice first");
    let (s3, s2, s1) = (&stays[0], &stays[1], &stays[2]);
    assert_eq!(
        (s1.outcome, s1.outcome_ms, s1.left_ms),
        (Outcome::LeftAfterNotice, Some(1_030_000), Some(1_030_000))
    );
    assert_eq!(
        (s2.outcome, s2.outcome_ms, s2.left_ms),
        (Outcome::Clue, Some(1_520_000), Some(1_600_000))
    );
    assert_eq!(s2.clue_key.as_deref(), Some("parking-overstay/s1/c1/7-2"));
    assert_eq!(s3.outcome, Outcome::Pending);
    assert_eq!(s3.notice, n3, "the shop is kept");
    assert_eq!(s1.notice.shop, None);
    let clue_only = store
        .stays(&StayQuery {
            outcome: Some(Outcome::Clue),
            ..all(None)
        })
        .unwrap();
    assert_eq!(clue_only.len(), 1);
    let s2_only = store.stays(&all(Some(vec!["s2".into()]))).unwrap();
    assert_eq!(s2_only.len(), 1);
    assert_eq!(s2_only[0].notice.site, "s2");
    assert!(store.stays(&all(Some(vec![]))).unwrap().is_empty());

    let p = parking_stats(store.stay_counts(None).unwrap());
    assert_eq!(
        (p.notices, p.left_after_notice, p.clue, p.pending),
        (3, 1, 1, 1)
    );
    assert_eq!(p.persuasion_rate, Some(0.5));
    assert_eq!(p.by_zone.len(), 2);
    let s1_only = parking_stats(store.stay_counts(Some(&["s1".to_string()])).unwrap());
    assert_eq!((s1_only.notices, s1_only.pending), (2, 0));
    assert!(store.stay_counts(Some(&[])).unwrap().is_empty());

    // Acknowledged: delivered no more.
    let row = store.pending("notice-mqtt", 10).unwrap().remove(0);
    store.delivered(row.id, 9).unwrap();
    assert!(store.pending("notice-mqtt", 10).unwrap().is_empty());
    assert_eq!(store.pending("notice-webhook:sms", 10).unwrap().len(), 1);
}
