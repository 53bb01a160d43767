//! What every backend's [`NoticeRecords`](super::NoticeRecords) must do (run on SQLite in
//! `sqlite/notices.rs` and on a real PostgreSQL in `postgres/tests.rs`): the store opened with
//! the MQTT delivery channel.

use crate::clue::model::Escalation;
use crate::clue::oversight::Finding;
use crate::clue::store::{CHANNEL_MQTT, ClueStore, StoreError};
use crate::clue::supervision::{
    NewNotice, NoticeAction, NoticeError, NoticeFilter, NoticeState, SupervisionNoticeConfig,
};
use serde_json::json;

fn finding(site: Option<&str>) -> Finding {
    Finding {
        model: "untouched_claim".into(),
        key: format!("untouched_claim/{site:?}"),
        level: Escalation::Red,
        site: site.map(String::from),
        clue_id: Some(7),
        concerns: vec!["ann#2".into()],
        message: "clue 7 taken and left".into(),
        detail: json!({}),
    }
}

/// Issue, overdue yellow then red at twice the span, the unit's answer, a refused fix and
/// the close: every step on the chain, linked as the notice's history, and queued for the
/// platform beside the warnings; the chain verifies.
pub(crate) fn a_notice_goes_overdue_yellow_then_red_and_every_step_is_audited_and_published(
    store: &dyn ClueStore,
) {
    let cfg = SupervisionNoticeConfig::default();
    let w = store
        .raise_warnings(&[finding(Some("s1")), finding(None)], 1_000)
        .expect("warnings");
    let new = NewNotice {
        unit: "county:xihu/urban-management".into(),
        note: "see to it".into(),
        deadline_ms: 11_000,
    };
    let n = store
        .issue_notice(w[0].id, &new, "sue#1", 1_000)
        .expect("issue");
    assert_eq!((n.state, n.level), (NoticeState::Issued, Escalation::None));
    assert_eq!((n.site.as_deref(), n.clue_id), (Some("s1"), Some(7)));
    assert!(matches!(
        store.issue_notice(w[0].id, &new, "sue#1", 1_001),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.issue_notice(999, &new, "sue#1", 1_001),
        Err(StoreError::Notice(NoticeError::NotFound(_)))
    ));
    assert!(store.escalate_notices(&cfg, 11_000).expect("t").is_empty());
    let y = store.escalate_notices(&cfg, 11_001).expect("yellow");
    assert_eq!(y[0].level, Escalation::Yellow);
    assert!(store.escalate_notices(&cfg, 21_000).expect("t").is_empty());
    let r = store.escalate_notices(&cfg, 21_001).expect("red");
    assert_eq!(r[0].level, Escalation::Red);
    assert!(store.escalate_notices(&cfg, 99_000).expect("t").is_empty());

    let step = |a: serde_json::Value, at| {
        let a: NoticeAction = serde_json::from_value(a).expect("action");
        store.act_on_notice(n.id, &a, "bob#3", &cfg, at)
    };
    step(json!({"action": "acknowledge"}), 22_000).expect("ack");
    step(
        json!({"action": "report_fixed", "statement": "cleared"}),
        23_000,
    )
    .expect("fixed");
    let back = step(
        json!({"action": "reopen", "note": "not clean", "due_days": 1}),
        24_000,
    )
    .expect("reopen");
    assert_eq!(
        (back.state, back.level),
        (NoticeState::Issued, Escalation::None)
    );
    assert!(matches!(
        step(json!({"action": "report_fixed", "statement": "x"}), 25_000),
        Err(StoreError::Notice(NoticeError::Illegal { .. }))
    ));
    step(json!({"action": "escalate", "to": "city:hangzhou"}), 26_000).expect("escalate");
    step(
        json!({"action": "close", "note": "handled by the city"}),
        27_000,
    )
    .expect("close");

    let d = store.notice(n.id).expect("read").expect("exists");
    let actions: Vec<&str> = d.history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "notice_issued",
            "notice_overdue",
            "notice_overdue",
            "notice_acknowledged",
            "notice_fixed",
            "notice_reopened",
            "notice_escalated",
            "notice_closed"
        ]
    );
    assert_eq!(d.history[2].detail["level"], json!("red"));
    assert_eq!(d.history[4].detail["statement"], json!("cleared"));
    assert_eq!(d.notice.escalated_to.as_deref(), Some("city:hangzhou"));
    assert!(store.verify_audit().expect("verify").ok);
    let topics: Vec<String> = store
        .pending(CHANNEL_MQTT, 100)
        .expect("pending")
        .into_iter()
        .map(|d| d.topic)
        .filter(|t| t.contains("/notice/"))
        .collect();
    assert_eq!(topics.len(), 8, "{topics:?}");
    assert!(topics.contains(&"oversight/v1/s1/notice/red".to_string()));

    // Closed ones leave the default list; a scope sees its sites and the site-less ones.
    assert!(
        store
            .notices(None, NoticeFilter::Open, 10)
            .expect("l")
            .is_empty()
    );
    store
        .issue_notice(w[1].id, &new, "sue#1", 30_000)
        .expect("site-less");
    let other = store
        .notices(Some(&["s2".into()]), NoticeFilter::All, 10)
        .expect("l");
    assert_eq!(other.len(), 1, "only the site-less one");
    assert_eq!(other[0].site, None);
    assert_eq!(
        store
            .notices(Some(&["s1".into()]), NoticeFilter::All, 10)
            .expect("l")
            .len(),
        2
    );
    // A new notice may follow a closed one.
    store
        .issue_notice(w[0].id, &new, "sue#1", 31_000)
        .expect("again");
}

pub(crate) fn the_list_is_red_first_then_yellow_then_the_nearest_deadline(store: &dyn ClueStore) {
    let cfg = SupervisionNoticeConfig::default();
    let fs: Vec<Finding> = (0..4)
        .map(|i| Finding {
            key: format!("k{i}"),
            ..finding(Some("s1"))
        })
        .collect();
    let w = store.raise_warnings(&fs, 0).expect("warnings");
    // Deadlines: 100 (span 100: red after 200), 150 (yellow at 160), 5000, 4000.
    for (w, deadline) in w.iter().zip([100, 150, 5_000, 4_000]) {
        let new = NewNotice {
            unit: "u".into(),
            note: String::new(),
            deadline_ms: deadline,
        };
        store.issue_notice(w.id, &new, "sue#1", 0).expect("issue");
    }
    store.escalate_notices(&cfg, 201).expect("tick");
    let order: Vec<(Escalation, i64)> = store
        .notices(None, NoticeFilter::Open, 10)
        .expect("list")
        .iter()
        .map(|n| (n.level, n.deadline_ms))
        .collect();
    assert_eq!(
        order,
        [
            (Escalation::Red, 100),
            (Escalation::Yellow, 150),
            (Escalation::None, 4_000),
            (Escalation::None, 5_000)
        ]
    );
}
