//! Clue pool benchmark (ignored by default; run with
//! `cargo test -p gateway --release --test clue_bench -- --ignored --nocapture`).
//!
//! - Dedup throughput: `CLUE_BENCH_EVENTS` events (default 1,000,000) over
//!   `CLUE_BENCH_KEYS` dedup keys (default 10,000), straight into the SQLite store.
//! - List latency: p50/p99 of `GET /api/v1/clues`-equivalent queries with
//!   `CLUE_BENCH_POOL` clues (default 100,000) in the pool.

use gateway::clue::model::ClueQuery;
use gateway::clue::signal::{ClueEvent, Level, Subject};
use gateway::clue::store::{ClueRecords, SqliteStore};
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(i: usize, keys: usize) -> ClueEvent {
    let k = i % keys;
    let subject = Subject {
        site: format!("site{:02}", k % 20),
        device: Some(format!("dev{k:05}")),
        ..Default::default()
    };
    ClueEvent {
        rule: "trap-night-drop".into(),
        kind: "grease_trap.illegal_discharge".into(),
        level: [Level::Low, Level::Medium, Level::High][k % 3],
        dedup_key: ClueEvent::default_key("trap-night-drop", &subject),
        subject,
        at_ms: i as i64,
        title: "Trap level fell with no pump-out on record".into(),
        detail: serde_json::json!({"drop_l": 310, "i": i}),
        evidence: vec![],
        department: Some("water".into()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "benchmark: cargo test -p gateway --release --test clue_bench -- --ignored --nocapture"]
fn dedup_throughput_and_list_latency() {
    let events = env("CLUE_BENCH_EVENTS", 1_000_000);
    let keys = env("CLUE_BENCH_KEYS", 10_000);
    let pool_size = env("CLUE_BENCH_POOL", 100_000);
    let dir = tempfile::tempdir().expect("tempdir");

    let store = SqliteStore::open(&dir.path().join("dedup.sqlite"), vec![]).expect("open");
    let start = Instant::now();
    for i in 0..events {
        store
            .ingest(&event(i, keys), &[], i as i64 + 3_600_000, i as i64)
            .expect("ingest");
    }
    let secs = start.elapsed().as_secs_f64();
    let clues = store
        .list(&ClueQuery {
            limit: 100_000,
            ..Default::default()
        })
        .expect("list")
        .len();
    println!(
        "dedup: {events} events -> {clues} clues in {secs:.1} s = {:.0} events/s",
        events as f64 / secs
    );
    assert_eq!(clues, keys.min(events));
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues", "figure": format!("clue dedup ({keys} keys)"),
            "value": events as f64 / secs, "unit": "events/s"})
    );

    // A pool of distinct clues for list latency.
    let store = SqliteStore::open(&dir.path().join("list.sqlite"), vec![]).expect("open");
    for i in 0..pool_size {
        store
            .ingest(&event(i, usize::MAX), &[], i as i64 + 3_600_000, i as i64)
            .expect("ingest");
    }
    let scope: Vec<String> = (0..5).map(|s| format!("site{s:02}")).collect();
    let mut lat = Vec::new();
    for i in 0..200 {
        let q = ClueQuery {
            level: (i % 2 == 0).then_some(Level::High),
            scope: Some(scope.clone()),
            limit: 100,
            ..Default::default()
        };
        let t = Instant::now();
        let rows = store.list(&q).expect("list");
        lat.push(t.elapsed());
        assert!(!rows.is_empty());
    }
    lat.sort();
    println!(
        "list with {pool_size} clues (100 rows, 5-site scope): p50 {:?} p99 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    for (q, p) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "BENCH {}",
            serde_json::json!({"bench": "clues",
                "figure": format!("clue list {q} ({pool_size} clues, 100 rows)"),
                "value": percentile(&lat, p).as_secs_f64() * 1e3, "unit": "ms",
                "lower_is_better": true})
        );
    }
}
