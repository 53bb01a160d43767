//! Clue pool benchmark (ignored by default; run with
//! `cargo test -p gateway --release --test e2e -- --ignored --nocapture clue_bench::`).
//!
//! - Dedup throughput: `CLUE_BENCH_EVENTS` events (default 1,000,000) over
//!   `CLUE_BENCH_KEYS` dedup keys (default 10,000), straight into the SQLite store: in batches
//!   of 256 as the pool's intake takes them, and one event per transaction as the reference
//!   measured in the same run; `CLUE_BENCH_ROUNDS` rounds (3), medians. `CLUE_BENCH_SINGLE=0`
//!   skips the one-by-one reference (for profiling the batched path alone). Each round also
//!   measures batches that read their open clues back (the store without its open-clue cache)
//!   as the reference for the cache. `CLUE_BENCH_BATCH` (256, the pool's `INTAKE_BATCH`) sets the batch size, for both
//!   the SQLite and the PostgreSQL benchmark.
//! - Repeat window (`clue::repeats`, `[clues] repeat_window_ms`): every rate above goes through
//!   the pool's [`RepeatBuffer`] as intake drives it (events streamed as fast as the thread
//!   can, plain repeats held per key, held runs written when their window ended by wall time),
//!   with window 0 (nothing held: each event written, today's batched path) unless named.
//!   Each round first measures `CLUE_BENCH_WINDOW_MS` (1000, the default) against window 0
//!   on fresh files / databases, same events. `CLUE_BENCH_REFS=0` skips the other references
//!   (reading clues back, no list index, one by one, SQLite beside PostgreSQL).
//! - List latency: p50/p99 of `GET /api/v1/clues`-equivalent queries with
//!   `CLUE_BENCH_POOL` clues (default 100,000) in the pool.

use gateway::clue::model::ClueQuery;
use gateway::clue::repeats::{RepeatBuffer, Run};
use gateway::clue::signal::{ClueEvent, Level, Subject};
use gateway::clue::store::{AuditLog, ClueRecords, ClueStore, SqliteStore};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
        assisting: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "benchmark: cargo test -p gateway --release --test e2e -- --ignored --nocapture clue_bench::dedup"]
fn dedup_throughput_and_list_latency() {
    let events = env("CLUE_BENCH_EVENTS", 1_000_000);
    let keys = env("CLUE_BENCH_KEYS", 10_000);
    let pool_size = env("CLUE_BENCH_POOL", 100_000);
    let dir = tempfile::tempdir().expect("tempdir");

    // The pool's intake path (batches of up to 256 in one transaction) against one transaction per
    // event (`ingest`, what the drone job and the per-event path do), each on a fresh file,
    // in the same run.
    let rounds = env("CLUE_BENCH_ROUNDS", 3);
    let batch = env("CLUE_BENCH_BATCH", 256);
    let (mut batched, mut single, mut no_index) = (Vec::new(), Vec::new(), Vec::new());
    let (mut uncached, mut cpu_cached, mut cpu_reread) = (Vec::new(), Vec::new(), Vec::new());
    let per_event = |us: u64| us as f64 / events as f64;
    let window = env("CLUE_BENCH_WINDOW_MS", 1_000) as u64;
    let refs = env("CLUE_BENCH_REFS", 1) != 0;
    let (mut windowed, mut unwindowed) = (Vec::new(), Vec::new());
    let (mut cpu_windowed, mut cpu_unwindowed) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The repeat window against window 0 (every event written), each on a fresh file.
        for (w, rates, cpu) in [
            (0, &mut unwindowed, &mut cpu_unwindowed),
            (window, &mut windowed, &mut cpu_windowed),
        ] {
            let path = dir.path().join(format!("w{w}_{round}.sqlite"));
            let stores = [SqliteStore::open(&path, vec![]).expect("open")];
            take_cpu_us();
            let r = ingest_rate(&stores, events, keys, batch, w);
            cpu.push(per_event(take_cpu_us()));
            rates.push(r.rate);
            check_pool(&stores[0], events, keys);
            println!(
                "round {round}: repeat window {w} ms: {:.0} events/s ({:.1} us CPU per event), \
                 {} occurrence rows, write p99 {:.1} ms",
                r.rate, cpu[round], r.rows, r.p99_ms
            );
        }
        if !refs {
            continue;
        }
        // The reference first: batches that read their open clues back every time (the path
        // before the open-clue cache), on its own file.
        let reread = [
            SqliteStore::open(&dir.path().join(format!("r{round}.sqlite")), vec![])
                .expect("open")
                .with_open_cache(false),
        ];
        take_cpu_us();
        uncached.push(ingest_rate(&reread, events, keys, batch, 0).rate);
        cpu_reread.push(per_event(take_cpu_us()));
        let stores = [
            SqliteStore::open(&dir.path().join(format!("b{round}.sqlite")), vec![]).expect("open"),
        ];
        batched.push(ingest_rate(&stores, events, keys, batch, 0).rate);
        cpu_cached.push(per_event(take_cpu_us()));
        println!(
            "round {round}: batches of {batch}: open-clue cache {:.0} events/s ({:.1} us CPU per \
             event), reading clues back {:.0} events/s ({:.1} us)",
            batched[round], cpu_cached[round], uncached[round], cpu_reread[round]
        );
        // The same without the list-order index (schema 10): what keeping it costs intake.
        let path = dir.path().join(format!("n{round}.sqlite"));
        let unindexed = [SqliteStore::open(&path, vec![]).expect("open")];
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("DROP INDEX clues_list_order;"))
            .expect("drop index");
        no_index.push(ingest_rate(&unindexed, events, keys, batch, 0).rate);
        let store = &stores[0];
        let clues = store
            .list(&ClueQuery {
                limit: 100_000,
                ..Default::default()
            })
            .expect("list")
            .len();
        assert_eq!(clues, keys.min(events));
        assert!(store.verify_audit().expect("verify").ok);
        let store =
            SqliteStore::open(&dir.path().join(format!("s{round}.sqlite")), vec![]).expect("open");
        let start = Instant::now();
        let mut last = Instant::now();
        // Skipped (`CLUE_BENCH_SINGLE=0`): reported as 0 events/s.
        let one_by_one = events * usize::from(env("CLUE_BENCH_SINGLE", 1) != 0);
        for i in 0..one_by_one {
            store
                .ingest(&event(i, keys), &[], i as i64 + 3_600_000, i as i64)
                .expect("ingest");
            if last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                println!("  ... {i}/{events} events one by one");
            }
        }
        single.push(one_by_one as f64 / start.elapsed().as_secs_f64());
        println!(
            "round {round}: batches of {batch} {:.0} events/s, one by one {:.0} events/s",
            batched[round], single[round]
        );
    }
    let (wr, w0) = (median(windowed), median(unwindowed));
    let (cpu_w, cpu_0) = (median(cpu_windowed), median(cpu_unwindowed));
    println!(
        "dedup into SQLite: {events} events -> {} clues through the repeat buffer: window \
         {window} ms {wr:.0} events/s, window 0 {w0:.0} events/s (ratio {:.2}); CPU per event \
         {cpu_w:.1} us against {cpu_0:.1} us (ratio {:.2}); medians of {rounds}",
        keys.min(events),
        wr / w0,
        cpu_w / cpu_0
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues",
            "figure": format!("clue dedup, repeat window {window} ms ({keys} keys)"),
            "value": wr, "unit": "events/s"})
    );
    if !refs {
        return;
    }
    let (b, one) = (median(batched), median(single));
    let reread = median(uncached);
    let (cpu_c, cpu_r) = (median(cpu_cached), median(cpu_reread));
    println!(
        "dedup batches of {batch} with the open-clue cache {b:.0} events/s, reading open clues \
         back {reread:.0} events/s (ratio {:.2}); CPU per event {cpu_c:.1} us against {cpu_r:.1} \
         us (ratio {:.2}); medians of {rounds}",
        b / reread,
        cpu_c / cpu_r
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues", "figure": format!("clue dedup CPU per event ({keys} keys)"),
            "value": cpu_c, "unit": "us", "lower_is_better": true})
    );
    let unindexed = median(no_index);
    println!(
        "dedup batches of {batch} without the list-order index: {unindexed:.0} events/s (with it: \
         ratio {:.2}; medians of {rounds})",
        b / unindexed
    );
    println!(
        "dedup into SQLite: {events} events -> {} clues: batches of {batch} {b:.0} events/s, one \
         event per transaction {one:.0} events/s (ratio {:.2}; medians of {rounds})",
        keys.min(events),
        b / one
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues", "figure": format!("clue dedup ({keys} keys)"),
            "value": b, "unit": "events/s"})
    );

    // A pool of distinct clues for list latency.
    let path = dir.path().join("list.sqlite");
    let store = SqliteStore::open(&path, vec![]).expect("open");
    let fill = Instant::now();
    for start in (0..pool_size).step_by(256) {
        let items: Vec<_> = (start..(start + 256).min(pool_size))
            .map(|i| (event(i, usize::MAX), vec![], i as i64 + 3_600_000))
            .collect();
        for r in store.ingest_batch(&items, start as i64).expect("batch") {
            r.expect("event");
        }
        if start % 25_600 == 0 {
            println!("  ... list pool {start}/{pool_size} clues");
        }
    }
    println!(
        "list pool of {pool_size} clues filled in {:?}",
        fill.elapsed()
    );
    let scope: Vec<String> = (0..5).map(|s| format!("site{s:02}")).collect();
    let query = |i: usize| ClueQuery {
        level: i.is_multiple_of(2).then_some(Level::High),
        scope: Some(scope.clone()),
        limit: 100,
        ..Default::default()
    };
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let rows = store.list(&query(i)).expect("list");
        lat.push(t.elapsed());
        assert!(!rows.is_empty());
    }
    lat.sort();
    // The reference in the same run, on the same pool: the statement `list` ran before it chose
    // its index (SQLite's planner then sorts every clue of the five sites).
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    let mut reference = Vec::new();
    for i in 0..200 {
        let level = if i % 2 == 0 { "AND level = 'high'" } else { "" };
        let sql = format!(
            "SELECT * FROM clues WHERE 1 = 1 {level} AND site IN ('site00', 'site01', 'site02', \
             'site03', 'site04') ORDER BY open DESC, CASE level WHEN 'high' THEN 3 WHEN \
             'medium' THEN 2 ELSE 1 END DESC, last_seen_ms DESC, id DESC LIMIT 100"
        );
        let t = Instant::now();
        let n = conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map([], |_| Ok(()))?
                    .collect::<Result<Vec<()>, _>>()
                    .map(|v| v.len())
            })
            .expect("reference list");
        reference.push(t.elapsed());
        assert_eq!(n, 100);
    }
    reference.sort();
    println!(
        "list with {pool_size} clues (100 rows, 5-site scope): p50 {:?} p99 {:?}; the \
         planner's own choice: p50 {:?} p99 {:?} (p99 ratio {:.2})",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&reference, 0.5),
        percentile(&reference, 0.99),
        percentile(&lat, 0.99).as_secs_f64() / percentile(&reference, 0.99).as_secs_f64()
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Events per second of `events` events through `gateways` stores at once, each taking every
/// `gateways`-th event in batches of `batch` (what the pool's intake does: one transaction
/// per batch). Prints progress every few seconds while the stores work.
/// CPU time (user + system, microseconds) the workers of [`ingest_rate`] used since the last
/// [`take_cpu_us`]: steadier than wall time on a shared machine.
static WORKER_CPU_US: AtomicU64 = AtomicU64::new(0);

/// This thread's CPU time in microseconds (`/proc/thread-self/stat`, clock ticks of 10 ms;
/// 0 where that file cannot be read).
fn thread_cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10_000
}

/// The workers' CPU microseconds since the last call.
fn take_cpu_us() -> u64 {
    WORKER_CPU_US.swap(0, Ordering::Relaxed)
}

/// What [`ingest_rate`] measured.
struct Rate {
    /// Events per second, wall time, all gateways together.
    rate: f64,
    /// Items written (occurrence rows): events, or fewer with a repeat window.
    rows: usize,
    /// p99 of one write (one transaction), milliseconds.
    p99_ms: f64,
}

/// Writes `batch` (emptied; event and run pairs) to `store` in one transaction and teaches
/// `buffer` the changes, as the pool's intake does; the write's duration into `lat`.
fn write<S: ClueStore>(
    store: &S,
    buffer: &mut RepeatBuffer,
    batch: &mut Vec<(ClueEvent, Run)>,
    lat: &mut Vec<Duration>,
) -> usize {
    if batch.is_empty() {
        return 0;
    }
    let (items, runs): (Vec<_>, Vec<Run>) = batch
        .drain(..)
        .map(|(ev, run)| {
            let deadline = ev.at_ms + 3_600_000;
            ((ev, vec![], deadline), run)
        })
        .unzip();
    let t = Instant::now();
    let now = items[0].0.at_ms;
    for r in store.ingest_runs(&items, &runs, now).expect("batch") {
        buffer.learn(&r.expect("event"));
    }
    lat.push(t.elapsed());
    items.len()
}

/// Events per second of `events` events through `gateways` stores at once, each taking every
/// `gateways`-th event through a [`RepeatBuffer`] of `window_ms` (0: nothing held) as the
/// pool's intake does: events that go through are written in batches of `batch` (one
/// transaction each), held runs when their window ended by wall time, the rest at the end.
/// Prints progress every few seconds while the stores work.
fn ingest_rate<S: ClueStore + Sync>(
    stores: &[S],
    events: usize,
    keys: usize,
    batch: usize,
    window_ms: u64,
) -> Rate {
    let done = AtomicUsize::new(0);
    let rows = AtomicUsize::new(0);
    let lat = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(g, store)| {
                let (done, rows, lat) = (&done, &rows, &lat);
                s.spawn(move || {
                    let cpu = thread_cpu_us();
                    let mut buffer = RepeatBuffer::new(window_ms);
                    let mut out = Vec::with_capacity(2 * batch);
                    let mut due = Vec::new();
                    let mut mine_lat = Vec::new();
                    let mut written = 0;
                    let epoch = Instant::now();
                    let mono = || epoch.elapsed().as_millis() as i64;
                    let mine: Vec<usize> = (g..events).step_by(stores.len()).collect();
                    for chunk in mine.chunks(batch) {
                        let now = mono();
                        for &i in chunk {
                            buffer.offer(event(i, keys), now, &mut out);
                            if out.len() >= batch {
                                written += write(store, &mut buffer, &mut out, &mut mine_lat);
                            }
                        }
                        written += write(store, &mut buffer, &mut out, &mut mine_lat);
                        buffer.due(mono(), &mut due);
                        while !due.is_empty() {
                            let rest = due.split_off(due.len().min(batch));
                            written += write(store, &mut buffer, &mut due, &mut mine_lat);
                            due = rest;
                        }
                        done.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                    buffer.drain(&mut due);
                    while !due.is_empty() {
                        let rest = due.split_off(due.len().min(batch));
                        written += write(store, &mut buffer, &mut due, &mut mine_lat);
                        due = rest;
                    }
                    rows.fetch_add(written, Ordering::Relaxed);
                    lat.lock().expect("lat").extend(mine_lat);
                    WORKER_CPU_US.fetch_add(thread_cpu_us() - cpu, Ordering::Relaxed);
                })
            })
            .collect();
        let mut last = Instant::now();
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                let n = done.load(Ordering::Relaxed);
                println!(
                    "  ... {n}/{events} events in {:.0} s ({:.0} events/s)",
                    start.elapsed().as_secs_f64(),
                    n as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
    });
    let rate = events as f64 / start.elapsed().as_secs_f64();
    let mut lat = lat.into_inner().expect("lat");
    lat.sort();
    Rate {
        rate,
        rows: rows.load(Ordering::Relaxed),
        p99_ms: if lat.is_empty() {
            0.0
        } else {
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        },
    }
}

/// Every event is in the pool after a run: one clue per key, their occurrences adding up to
/// the events (nothing held was lost), and the chain verifies.
fn check_pool<S: ClueStore>(store: &S, events: usize, keys: usize) {
    let clues = store
        .list(&ClueQuery {
            limit: 100_000,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(clues.len(), keys.min(events));
    assert_eq!(
        clues.iter().map(|c| c.occurrences).sum::<i64>(),
        events as i64,
        "every event counted"
    );
    assert!(store.verify_audit().expect("verify").ok);
}

/// The shared store: `CLUE_BENCH_EVENTS` events (default 1,000,000) over `CLUE_BENCH_KEYS`
/// keys (10,000) through three gateways (three `PgStore`s, one thread each, batches of 256
/// as the pool's intake takes them) on one PostgreSQL with its durable defaults, against one
/// gateway on SQLite taking the same events the same way, measured in the same run; three
/// rounds each, medians. Then list p50/p99 with `CLUE_BENCH_PG_POOL` clues (1,000,000) in the
/// pool: the clue rows are bulk-inserted by SQL in the shape the events above produce
/// (20 sites, three levels), then the same queries as the SQLite benchmark.
///
/// Knobs that take the shared-chain figure apart, each measured in the same rounds:
/// `CLUE_BENCH_PG_GATEWAYS` (3) sets how many gateways share the database;
/// `CLUE_BENCH_PG_SPLIT=1` also runs every gateway on a database of its own on the same server
/// (no shared `audit_head`, same CPU, WAL and disk: the ceiling of one chain per partition);
/// `CLUE_BENCH_PG_NOSYNC=1` also runs the shared chain with `synchronous_commit = off` on its
/// database (what waiting for the WAL flush under the head lock costs; never a setting for a
/// deployment: an acknowledged event could be lost).
#[test]
#[ignore = "benchmark: cargo test -p gateway --release --test e2e -- --ignored --nocapture clue_bench::postgres"]
fn postgres_three_gateways_dedup_throughput_and_list_latency() {
    use gateway::clue::postgres::PgStore;
    let events = env("CLUE_BENCH_EVENTS", 1_000_000);
    let keys = env("CLUE_BENCH_KEYS", 10_000);
    let pool_size = env("CLUE_BENCH_PG_POOL", 1_000_000);
    let rounds = env("CLUE_BENCH_ROUNDS", 3);
    let pg = e2e::Postgres::start_with(e2e::PostgresOptions {
        durable: true,
        settings: vec![("shared_buffers".into(), "256MB".into())],
    })
    .expect("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let gateways = env("CLUE_BENCH_PG_GATEWAYS", 3);
    let batch = env("CLUE_BENCH_BATCH", 256);
    let (mut pg_rates, mut sqlite_rates) = (Vec::new(), Vec::new());
    let (mut split_rates, mut nosync_rates) = (Vec::new(), Vec::new());
    let window = env("CLUE_BENCH_WINDOW_MS", 1_000) as u64;
    let refs = env("CLUE_BENCH_REFS", 1) != 0;
    let mut windowed = Vec::new();
    for round in 0..rounds {
        // The repeat window, against window 0 below (the shared chain as before).
        let url = pg.create_database(&format!("window{round}")).expect("db");
        let stores: Vec<PgStore> = (0..gateways)
            .map(|_| PgStore::open(&url, 2, vec![]).expect("open"))
            .collect();
        let r = ingest_rate(&stores, events, keys, batch, window);
        check_pool(&stores[0], events, keys);
        windowed.push(r.rate);
        println!(
            "round {round}: postgres x{gateways}, repeat window {window} ms: {:.0} events/s, {} \
             occurrence rows, write p99 {:.1} ms",
            r.rate, r.rows, r.p99_ms
        );
        if env("CLUE_BENCH_PG_SPLIT", 0) != 0 {
            let stores: Vec<PgStore> = (0..gateways)
                .map(|g| {
                    let url = pg
                        .create_database(&format!("split{round}_{g}"))
                        .expect("db");
                    PgStore::open(&url, 2, vec![]).expect("open")
                })
                .collect();
            split_rates.push(ingest_rate(&stores, events, keys, batch, 0).rate);
            for s in &stores {
                assert!(s.verify_audit().expect("verify").ok);
            }
            println!(
                "round {round}: postgres, {gateways} gateways on a database each {:.0} events/s",
                split_rates[round]
            );
        }
        if env("CLUE_BENCH_PG_NOSYNC", 0) != 0 {
            let name = format!("nosync{round}");
            let url = pg.create_database(&name).expect("db");
            pg.psql(
                "postgres",
                &format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off"),
            )
            .expect("alter database");
            let stores: Vec<PgStore> = (0..gateways)
                .map(|_| PgStore::open(&url, 2, vec![]).expect("open"))
                .collect();
            nosync_rates.push(ingest_rate(&stores, events, keys, batch, 0).rate);
            assert!(stores[0].verify_audit().expect("verify").ok);
            println!(
                "round {round}: postgres x{gateways} without waiting for the WAL flush {:.0} \
                 events/s",
                nosync_rates[round]
            );
        }
        let url = pg.create_database(&format!("dedup{round}")).expect("db");
        let stores: Vec<PgStore> = (0..gateways)
            .map(|_| PgStore::open(&url, 2, vec![]).expect("open"))
            .collect();
        let r = ingest_rate(&stores, events, keys, batch, 0);
        check_pool(&stores[gateways - 1], events, keys);
        println!(
            "round {round}: postgres x{gateways}, window 0: {:.0} events/s, write p99 {:.1} ms",
            r.rate, r.p99_ms
        );
        pg_rates.push(r.rate);
        if !refs {
            continue;
        }
        let sqlite =
            SqliteStore::open(&dir.path().join(format!("d{round}.sqlite")), vec![]).expect("open");
        sqlite_rates.push(ingest_rate(&[sqlite], events, keys, batch, 0).rate);
        println!(
            "round {round}: postgres x{gateways} {:.0} events/s, sqlite x1 {:.0} events/s",
            pg_rates[round], sqlite_rates[round]
        );
    }
    let (pw, p0) = (median(windowed), median(pg_rates.clone()));
    println!(
        "dedup: {events} events -> {keys} clues: {gateways} gateways on PostgreSQL through the \
         repeat buffer: window {window} ms {pw:.0} events/s, window 0 {p0:.0} events/s (ratio \
         {:.2}; medians of {rounds})",
        pw / p0
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues", "figure": format!("clue dedup, {gateways} gateways on PostgreSQL, repeat window {window} ms ({keys} keys)"),
            "value": pw, "unit": "events/s"})
    );
    if !refs {
        return;
    }
    let (p, s) = (median(pg_rates), median(sqlite_rates));
    println!(
        "dedup: {events} events -> {keys} clues: {gateways} gateways on PostgreSQL {p:.0} \
         events/s, 1 gateway on SQLite {s:.0} events/s (ratio {:.2}; medians of {rounds})",
        p / s
    );
    for (what, rates) in [
        ("a database each (no shared chain head)", split_rates),
        (
            "the shared chain without waiting for the WAL flush",
            nosync_rates,
        ),
    ] {
        if !rates.is_empty() {
            let r = median(rates);
            println!(
                "dedup: {gateways} gateways on PostgreSQL, {what}: {r:.0} events/s (ratio {:.2} \
                 to the shared chain, {:.2} to SQLite; medians of {rounds})",
                r / p,
                r / s
            );
        }
    }
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "clues", "figure": format!("clue dedup, {gateways} gateways on PostgreSQL ({keys} keys)"),
            "value": p, "unit": "events/s"})
    );

    let url = pg.create_database("list").expect("db");
    let store = PgStore::open(&url, 2, vec![]).expect("open");
    let t = Instant::now();
    pg.psql(
        "list",
        &format!(
            "INSERT INTO clues (dedup_key, rule, kind, level, status, open, site, device, \
             subject_key, title, detail, department, first_seen_ms, last_seen_ms, occurrences, \
             created_ms, updated_ms, deadline_ms, escalation) \
             SELECT 'k' || i, 'trap-night-drop', 'grease_trap.illegal_discharge', \
             (ARRAY['low','medium','high'])[i % 3 + 1], 'new', TRUE, \
             'site' || lpad((i % 20)::text, 2, '0'), 'dev' || i, 'site/dev' || i, 't', '{{}}', \
             'water', i, i, 1, i, i, i + 3600000, 'none' \
             FROM generate_series(1, {pool_size}) AS i; ANALYZE clues"
        ),
    )
    .expect("fill");
    println!(
        "filled {pool_size} clues in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let scope: Vec<String> = (0..5).map(|s| format!("site{s:02}")).collect();
    let mut lat = Vec::new();
    for i in 0..400 {
        let q = ClueQuery {
            level: (i % 2 == 0).then_some(Level::High),
            scope: Some(scope.clone()),
            site: (i % 4 == 1).then(|| "site03".to_string()),
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
        "list with {pool_size} clues on PostgreSQL (100 rows, 5-site scope): p50 {:?} p99 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    for (q, p) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "BENCH {}",
            serde_json::json!({"bench": "clues",
                "figure": format!("clue list {q} on PostgreSQL ({pool_size} clues, 100 rows)"),
                "value": percentile(&lat, p).as_secs_f64() * 1e3, "unit": "ms",
                "lower_is_better": true})
        );
    }
}
