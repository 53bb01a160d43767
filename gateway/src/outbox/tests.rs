use super::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn cfg(segment_bytes: u64, max_bytes: u64, when_full: WhenFull) -> OutboxConfig {
    OutboxConfig {
        max_bytes,
        segment_bytes,
        when_full,
    }
}

fn small() -> OutboxConfig {
    cfg(4096, 1 << 20, WhenFull::Backpressure)
}

fn open(dir: &Path, c: &OutboxConfig) -> (Outbox, Arc<Metrics>) {
    let m = Arc::new(Metrics::new());
    (Outbox::open(dir, c, m.clone()).unwrap(), m)
}

fn recs(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("record-{i:06}").into_bytes())
        .collect()
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Reads and commits everything that waits.
fn drain(ob: &Outbox) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let b = ob.read_batch(1000, 1 << 20).unwrap();
        if b.records.is_empty() {
            return all;
        }
        all.extend(b.records);
        ob.commit(&b.end).unwrap();
    }
}

#[test]
fn outbox_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Outbox>();
    check::<Arc<Outbox>>();
}

#[test]
fn round_trip_in_order_and_reread_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, m) = open(dir.path(), &small());
    assert!(ob.read_batch(10, 1000).unwrap().records.is_empty());
    ob.append(&recs(0..5)).unwrap();
    ob.append(&recs(5..8)).unwrap();
    assert_eq!(m.outbox_appended_total.get(), 8);
    assert_eq!(ob.stats().records, 8);
    assert_eq!(m.outbox_depth_records.get(), 8);

    let b1 = ob.read_batch(3, 1 << 20).unwrap();
    assert_eq!(b1.records, recs(0..3));
    // Not committed yet: the same records again.
    let again = ob.read_batch(3, 1 << 20).unwrap();
    assert_eq!(again.records, recs(0..3));
    assert_eq!(again.end, b1.end);
    ob.commit(&b1.end).unwrap();
    assert_eq!(ob.stats().records, 5);
    // Committing an old position again is a no-op.
    ob.commit(&b1.end).unwrap();

    let b2 = ob.read_batch(100, 1 << 20).unwrap();
    assert_eq!(b2.records, recs(3..8));
    ob.commit(&b2.end).unwrap();
    assert_eq!(ob.stats().records, 0);
    let empty = ob.read_batch(100, 1 << 20).unwrap();
    assert!(empty.is_empty());
    ob.commit(&empty.end).unwrap();
    assert_eq!(m.outbox_depth_records.get(), 0);
}

#[test]
fn read_batch_respects_limits_but_returns_one_oversized_record() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    let big = vec![7u8; 3000];
    ob.append(&[big.clone(), b"a".to_vec(), b"b".to_vec()])
        .unwrap();
    let b = ob.read_batch(10, 100).unwrap();
    assert_eq!(b.records, vec![big]);
    ob.commit(&b.end).unwrap();
    let b = ob.read_batch(1, 100).unwrap();
    assert_eq!(b.records, vec![b"a".to_vec()]);
    let b = ob.read_batch(0, 100).unwrap();
    assert!(b.records.is_empty());
}

#[test]
fn reopen_keeps_undelivered_records_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..10)).unwrap();
        let b = ob.read_batch(4, 1 << 20).unwrap();
        ob.commit(&b.end).unwrap();
        // Read but not committed: redelivered after reopen (at-least-once).
        let b = ob.read_batch(2, 1 << 20).unwrap();
        assert_eq!(b.records, recs(4..6));
    }
    let (ob, m) = open(dir.path(), &small());
    assert_eq!(ob.stats().records, 6);
    assert_eq!(m.outbox_depth_records.get(), 6);
    ob.append(&recs(10..12)).unwrap();
    assert_eq!(drain(&ob), recs(4..12));
    assert_eq!(m.outbox_errors_total.get(), 0);
}

#[test]
fn stats_are_right_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (ob, _) = open(dir.path(), &small());
        for i in 0..20 {
            ob.append(&recs(i * 50..(i + 1) * 50)).unwrap();
        }
        let b = ob.read_batch(123, 1 << 20).unwrap();
        ob.commit(&b.end).unwrap();
        let s = ob.stats();
        assert_eq!(s.records, 1000 - 123);
        let on_disk: u64 = seg_files(dir.path())
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(s.bytes, on_disk);
        s
    };
    let (ob, m) = open(dir.path(), &small());
    assert_eq!(ob.stats(), before);
    assert_eq!(m.outbox_bytes.get(), before.bytes);
    assert_eq!(drain(&ob), recs(123..1000));
}

#[test]
fn rotates_segments_and_deletes_consumed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    // ~22 bytes per frame: one batch of 1000 spans several 4 KiB segments.
    ob.append(&recs(0..1000)).unwrap();
    let files = seg_files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 4096);
    }
    let b = ob.read_batch(400, 1 << 20).unwrap();
    assert_eq!(b.records, recs(0..400));
    ob.commit(&b.end).unwrap();
    let left = seg_files(dir.path());
    assert!(left.len() < files.len(), "{left:?}");
    assert!(!left.contains(&files[0]));
    assert_eq!(drain(&ob), recs(400..1000));
    assert!(seg_files(dir.path()).is_empty());
    assert_eq!(
        ob.stats(),
        OutboxStats {
            records: 0,
            bytes: 0
        }
    );
    // And it keeps working after everything was deleted.
    ob.append(&recs(0..3)).unwrap();
    assert_eq!(drain(&ob), recs(0..3));
    drop(ob);
    let (ob, _) = open(dir.path(), &small());
    assert_eq!(ob.stats().records, 0);
}

#[test]
fn torn_tail_is_truncated_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..5)).unwrap();
    }
    let last = seg_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&last).unwrap().len();
    // A frame header announcing 100 bytes, followed by only 10 of them.
    let mut f = fs::OpenOptions::new().append(true).open(&last).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[0xAB; 14]).unwrap();
    drop(f);
    {
        let (ob, m) = open(dir.path(), &small());
        assert_eq!(fs::metadata(&last).unwrap().len(), good_len);
        assert_eq!(ob.stats().records, 5);
        assert_eq!(m.outbox_errors_total.get(), 0);
        ob.append(&recs(5..8)).unwrap();
    }
    // A real frame cut in half (kill -9 in the middle of a write).
    let last = seg_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(8..9)).unwrap();
    let mut want = recs(0..7);
    want.extend(recs(8..9));
    assert_eq!(drain(&ob), want);
}

#[test]
fn garbage_header_only_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..2)).unwrap();
    }
    // A segment created but never written (crash right after create).
    fs::write(dir.path().join(segment::segment_name(99)), b"GW").unwrap();
    let (ob, _) = open(dir.path(), &small());
    assert!(!dir.path().join(segment::segment_name(99)).exists());
    ob.append(&recs(2..3)).unwrap();
    assert_eq!(drain(&ob), recs(0..3));
}

#[test]
fn flipped_byte_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..3)).unwrap();
    }
    {
        // Goes to a second segment (a reopened outbox never appends to an old segment).
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(3..5)).unwrap();
    }
    let first = seg_files(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    // Header 8, frame 0 is 8 + 13 bytes; flip a payload byte of record 1.
    let at = 8 + 21 + 8 + 4;
    bytes[at] ^= 0x20;
    fs::write(&first, &bytes).unwrap();
    let (ob, m) = open(dir.path(), &small());
    assert_eq!(m.outbox_errors_total.get(), 1);
    assert_eq!(ob.stats().records, 3);
    let mut want = recs(0..1);
    want.extend(recs(3..5));
    assert_eq!(drain(&ob), want);
}

#[test]
fn flipped_byte_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, m) = open(dir.path(), &small());
    ob.append(&recs(0..3)).unwrap();
    let seg = seg_files(dir.path()).remove(0);
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0xFF], 8 + 21 + 8 + 2).unwrap();
    drop(f);
    let b = ob.read_batch(10, 1 << 20).unwrap();
    assert_eq!(b.records, recs(0..1));
    assert_eq!(m.outbox_errors_total.get(), 1);
    assert_eq!(m.outbox_dropped_total.get(), 0);
    assert_eq!(ob.stats().records, 1);
    ob.commit(&b.end).unwrap();
    // The damaged segment is sealed: new records go to a fresh segment and are delivered.
    ob.append(&recs(3..4)).unwrap();
    assert_eq!(drain(&ob), recs(3..4));
    assert_eq!(ob.stats().records, 0);
}

#[test]
fn corrupt_cursor_redelivers_from_oldest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..4)).unwrap();
        let b = ob.read_batch(2, 1 << 20).unwrap();
        ob.commit(&b.end).unwrap();
    }
    fs::write(dir.path().join(segment::CURSOR_FILE), b"junk").unwrap();
    let (ob, m) = open(dir.path(), &small());
    assert_eq!(m.outbox_errors_total.get(), 1);
    assert_eq!(drain(&ob), recs(0..4));
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_ob, _) = open(dir.path(), &small());
    let err = Outbox::open(dir.path(), &small(), Arc::new(Metrics::new()));
    assert!(matches!(err, Err(OutboxError::Locked(_))));
}

#[test]
fn oversized_record_and_batch_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4096, 8192, WhenFull::Backpressure);
    let (ob, _) = open(dir.path(), &c);
    let err = ob.append(&[vec![0u8; 4096]]).unwrap_err();
    assert!(matches!(err, OutboxError::RecordTooLarge { .. }), "{err}");
    // Max record = 4096 - 16 bytes.
    ob.append(&[vec![0u8; 4080]]).unwrap();
    let err = ob.append(&vec![vec![0u8; 2000]; 5]).unwrap_err();
    assert!(matches!(err, OutboxError::BatchTooLarge { .. }), "{err}");
    let err = Outbox::open(
        &dir.path().join("x"),
        &cfg(4096, 100, WhenFull::Backpressure),
        Arc::new(Metrics::new()),
    );
    assert!(matches!(err, Err(OutboxError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_returns_full_and_accepts_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4096, 8192, WhenFull::Backpressure);
    let (ob, m) = open(dir.path(), &c);
    let ob = Arc::new(ob);
    let rec = vec![1u8; 1000];
    let mut n = 0;
    let err = loop {
        match ob.append(std::slice::from_ref(&rec)) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, OutboxError::Full), "{err}");
    assert_eq!(n, 8); // 4 records of 1008 bytes per 4 KiB segment, 2 segments.
    assert_eq!(m.outbox_full_total.get(), 1);
    let before = ob.stats();
    assert!(before.bytes <= 8192);
    // Still full; nothing written.
    assert!(matches!(
        ob.append(std::slice::from_ref(&rec)),
        Err(OutboxError::Full)
    ));
    assert_eq!(ob.stats(), before);

    let waiter = {
        let ob = ob.clone();
        tokio::spawn(async move { ob.wait_for_space().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let consumer = ob.clone();
    tokio::task::spawn_blocking(move || {
        // Exactly the first segment: it is deleted, which frees space.
        let b = consumer.read_batch(4, 1 << 20).unwrap();
        assert_eq!(b.records.len(), 4);
        consumer.commit(&b.end).unwrap();
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait_for_space woke")
        .unwrap();
    ob.append(std::slice::from_ref(&rec)).unwrap();
    assert_eq!(ob.stats().records, 5);
}

#[tokio::test]
async fn wait_for_space_does_not_miss_an_earlier_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(0..300)).unwrap();
    let b = ob.read_batch(300, 1 << 20).unwrap();
    ob.commit(&b.end).unwrap();
    // The commit came before the producer started waiting.
    tokio::time::timeout(Duration::from_secs(5), ob.wait_for_space())
        .await
        .expect("permit kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_data_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    let ob = Arc::new(ob);
    let waiter = {
        let ob = ob.clone();
        tokio::spawn(async move { ob.wait_for_data().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let p = ob.clone();
    tokio::task::spawn_blocking(move || p.append(&recs(0..1)).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woke")
        .unwrap();
    // Data waiting: resolves at once.
    tokio::time::timeout(Duration::from_secs(1), ob.wait_for_data())
        .await
        .expect("immediate");
}

#[test]
fn drop_oldest_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4096, 8192, WhenFull::DropOldest);
    let (ob, m) = open(dir.path(), &c);
    // 100-byte records: 108 per frame, 37 per segment.
    let rec = |i: u32| {
        let mut r = vec![0u8; 100];
        r[..4].copy_from_slice(&i.to_le_bytes());
        r
    };
    for i in 0..200 {
        ob.append(&[rec(i)]).unwrap();
        assert!(ob.stats().bytes <= 8192);
    }
    let dropped = m.outbox_dropped_total.get();
    assert!(dropped > 0);
    let got = drain(&ob);
    assert_eq!(got.len() as u64 + dropped, 200);
    assert_eq!(got.last(), Some(&rec(199)));
    // What is left is the newest records, in order.
    let first = u32::from_le_bytes([got[0][0], got[0][1], got[0][2], got[0][3]]);
    assert_eq!(first as u64, dropped);
    for (k, r) in got.iter().enumerate() {
        assert_eq!(r, &rec(first + k as u32));
    }
}

#[test]
fn drop_oldest_handles_a_partly_read_segment() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4096, 8192, WhenFull::DropOldest);
    let (ob, m) = open(dir.path(), &c);
    let rec = vec![5u8; 100];
    // 37 frames of 108 bytes per segment; the 75th opens a third segment (8124 bytes on disk).
    for _ in 0..75 {
        ob.append(std::slice::from_ref(&rec)).unwrap();
    }
    assert_eq!(m.outbox_dropped_total.get(), 0);
    let b = ob.read_batch(10, 1 << 20).unwrap();
    ob.commit(&b.end).unwrap();
    let stale = ob.read_batch(10, 1 << 20).unwrap();
    ob.append(std::slice::from_ref(&rec)).unwrap(); // drops segment 1 (27 unread)
    assert_eq!(m.outbox_dropped_total.get(), 27);
    // Committing a position inside the dropped segment is a harmless no-op.
    ob.commit(&stale.end).unwrap();
    assert_eq!(ob.stats().records, 39);
    assert_eq!(drain(&ob).len(), 39);
}

#[test]
fn invalid_position_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(0..2)).unwrap();
    let bogus = Position {
        segment: 1,
        offset: 9999,
        index: 1,
    };
    assert!(matches!(
        ob.commit(&bogus),
        Err(OutboxError::InvalidPosition(_))
    ));
    assert_eq!(ob.stats().records, 2);
}

#[test]
fn concurrent_producer_and_consumer_move_100k_exactly_once_in_order() {
    const TOTAL: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    // Small bound so backpressure and rotation happen all the time.
    let c = cfg(64 << 10, 256 << 10, WhenFull::Backpressure);
    let (ob, m) = open(dir.path(), &c);
    let ob = Arc::new(ob);
    let producer = {
        let ob = ob.clone();
        std::thread::spawn(move || {
            let mut next = 0u64;
            let mut fulls = 0u64;
            let deadline = Instant::now() + Duration::from_secs(120);
            while next < TOTAL {
                // Never hang the suite if the consumer died.
                assert!(Instant::now() < deadline, "producer stuck at {next}");
                let n = 500.min(TOTAL - next);
                let batch: Vec<Vec<u8>> =
                    (next..next + n).map(|i| i.to_le_bytes().to_vec()).collect();
                match ob.append(&batch) {
                    Ok(()) => next += n,
                    Err(OutboxError::Full) => {
                        fulls += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            fulls
        })
    };
    let consumer = {
        let ob = ob.clone();
        std::thread::spawn(move || {
            let mut expect = 0u64;
            let deadline = Instant::now() + Duration::from_secs(120);
            while expect < TOTAL {
                assert!(Instant::now() < deadline, "stuck at {expect}");
                let b = ob.read_batch(700, 1 << 20).unwrap();
                if b.records.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                for r in b.records.iter() {
                    let v = u64::from_le_bytes(r.try_into().unwrap());
                    assert_eq!(v, expect);
                    expect += 1;
                }
                ob.commit(&b.end).unwrap();
            }
        })
    };
    let fulls = producer.join().unwrap();
    consumer.join().unwrap();
    assert!(ob.read_batch(10, 1000).unwrap().is_empty());
    assert_eq!(ob.stats().records, 0);
    assert_eq!(m.outbox_appended_total.get(), TOTAL);
    assert_eq!(m.outbox_full_total.get(), fulls);
    assert_eq!(m.outbox_errors_total.get(), 0);
    assert!(seg_files(dir.path()).len() <= 1);
}

/// Throughput: `OUTBOX_BENCH_DIR=target cargo test -p gateway --release --lib
/// outbox::tests::throughput -- --ignored --nocapture` (the temp dir goes under
/// `OUTBOX_BENCH_DIR`, default the current directory, so it measures a real disk, not tmpfs).
#[test]
#[ignore = "benchmark: OUTBOX_BENCH_DIR=target cargo test --release -p gateway --lib outbox::tests::throughput -- --ignored --nocapture"]
fn throughput_512_records_of_150_bytes() {
    let dir =
        tempfile::tempdir_in(std::env::var("OUTBOX_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let (ob, _) = open(dir.path(), &OutboxConfig::default());
    let batch: Vec<Vec<u8>> = (0..512u32)
        .map(|i| {
            let mut r = vec![b'x'; 150];
            r[..4].copy_from_slice(&i.to_le_bytes());
            r
        })
        .collect();
    let calls = 2000;
    let t = Instant::now();
    for _ in 0..calls {
        ob.append(&batch).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let append_rate = calls as f64 * 512.0 / secs;
    println!(
        "append: {calls} calls x 512 x 150 B in {secs:.2}s = {:.0} appends/s, {:.0} records/s",
        calls as f64 / secs,
        calls as f64 * 512.0 / secs
    );
    let t = Instant::now();
    let mut n = 0usize;
    loop {
        let b = ob.read_batch(5000, 1 << 20).unwrap();
        if b.is_empty() {
            break;
        }
        n += b.records.len();
        ob.commit(&b.end).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read+commit: {n} records in {secs:.2}s = {:.0} records/s",
        n as f64 / secs
    );
    assert_eq!(n, calls * 512);
    // Reference on the same disk: the same bytes appended to one plain file, one fdatasync per
    // 512-record batch (what any durable queue must at least pay).
    let raw_path = dir.path().join("raw-reference");
    let mut raw = std::fs::File::create(&raw_path).unwrap();
    let flat: Vec<u8> = batch.concat();
    let t = Instant::now();
    for _ in 0..calls {
        std::io::Write::write_all(&mut raw, &flat).unwrap();
        raw.sync_data().unwrap();
    }
    let raw_rate = calls as f64 * 512.0 / t.elapsed().as_secs_f64();
    println!("reference: plain file write + fdatasync per batch = {raw_rate:.0} records/s");
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "outbox", "figure": "outbox append (fsync per 512 x 150 B)",
            "value": append_rate, "unit": "records/s",
            "reference": "plain file write + fdatasync per batch", "reference_value": raw_rate})
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "outbox", "figure": "outbox read + commit",
            "value": n as f64 / secs, "unit": "records/s"})
    );
}

#[test]
fn read_during_segment_creation_returns_a_committable_position() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(0..3)).unwrap();
    // What an append does between creating the next segment and making its first write durable.
    {
        let mut st = lock(&ob.state);
        let id = st.next_id;
        st.next_id += 1;
        st.segs.push_back(Seg {
            id,
            end: 0,
            records: 0,
            sealed: false,
        });
    }
    let b = ob.read_batch(100, 1 << 20).unwrap();
    assert_eq!(b.records, recs(0..3));
    ob.commit(&b.end).unwrap();
    assert_eq!(ob.stats().records, 0);
}

#[test]
fn consumed_newest_segment_left_by_a_racing_commit_is_reclaimed_by_append() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &cfg(4096, 8192, WhenFull::Backpressure));
    ob.append(&[vec![1u8; 4000]]).unwrap();
    let b = ob.read_batch(10, 1 << 20).unwrap();
    {
        // An append is running while the consumer commits: commit cannot delete the segment.
        let _w = lock(&ob.writer);
        ob.commit(&b.end).unwrap();
    }
    assert_eq!(ob.stats().records, 0);
    assert_eq!(seg_files(dir.path()).len(), 1);
    // Needs two fresh segments (8032 bytes): fits only once the consumed one is gone.
    ob.append(&[vec![2u8; 4000], vec![3u8; 4000]]).unwrap();
    assert_eq!(seg_files(dir.path()).len(), 2);
    assert_eq!(drain(&ob), vec![vec![2u8; 4000], vec![3u8; 4000]]);
}

#[test]
fn failed_segment_creation_is_skipped_by_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(0..2)).unwrap();
    {
        // What `append_failed` leaves behind when creating a segment failed.
        let mut st = lock(&ob.state);
        let id = st.next_id;
        st.next_id += 1;
        st.segs.push_back(Seg {
            id,
            end: 0,
            records: 0,
            sealed: true,
        });
    }
    ob.append(&recs(2..4)).unwrap();
    assert_eq!(drain(&ob), recs(0..4));
    assert_eq!(
        ob.stats(),
        OutboxStats {
            records: 0,
            bytes: 0
        }
    );
}

/// Regression (resilience suite, disk full): with the file system full, a commit must still
/// persist the cursor and delete consumed segments, or the outbox can never drain. Needs a
/// small tmpfs (root); elsewhere it says so and checks only the in-place cursor rewrite, which
/// fails the test under `CI=true` (`e2e::skip_outside_ci`).
/// The regression above, without `mount` on its PATH, fails under `CI=true` and passes
/// (reduced, saying so) on a developer's machine: it can never pass in CI by skipping.
#[test]
fn without_a_tmpfs_the_disk_full_regression_fails_in_ci_instead_of_passing_reduced() {
    let exe = std::env::current_exe().expect("test binary");
    let run = |ci: bool| {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "outbox::tests::commit_frees_space_on_a_full_disk",
            "--exact",
            "--nocapture",
        ])
        .env("PATH", "/nonexistent")
        .env_remove("STRICT_TESTS")
        .env_remove("CI");
        if ci {
            cmd.env("CI", "true");
        }
        let out = cmd.output().expect("run the test binary");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(true);
    assert!(!ok && text.contains("must not pass by skipping"), "{text}");
    let (ok, text) = run(false);
    assert!(ok && text.contains("SKIPPED: outbox disk-full"), "{text}");
}

#[test]
fn commit_frees_space_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    struct Unmount<'a>(&'a Path, bool);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(self.0)
                    .status();
            }
        }
    }
    let _guard = Unmount(dir.path(), mounted);
    // Segments larger than the disk: the reader's handle on a consumed segment must not keep
    // its blocks allocated after the delete.
    let (ob, _) = open(dir.path(), &cfg(1 << 20, 1 << 30, WhenFull::Backpressure));
    assert!(dir.path().join(segment::CURSOR_FILE).exists());
    if !mounted {
        e2e::skip_outside_ci(
            "outbox disk-full regression: cannot mount a 256 KiB tmpfs (not root?); \
             checking the in-place cursor write only",
        );
        ob.append(&recs(0..10)).unwrap();
        let b = ob.read_batch(100, 1 << 20).unwrap();
        ob.commit(&b.end).unwrap();
        assert_eq!(ob.stats().records, 0);
        return;
    }
    // Fill the disk.
    let mut appended = 0u32;
    let err = loop {
        match ob.append(&recs(appended..appended + 50)) {
            Ok(()) => appended += 50,
            Err(e) => break e,
        }
        assert!(appended < 1_000_000, "the 256 KiB disk never filled");
    };
    assert!(
        matches!(&err, OutboxError::Io(e) if segment::is_disk_full(e)),
        "{err}"
    );
    // Deliver everything: the commit must succeed and free the space.
    let mut n = 0;
    loop {
        let b = ob.read_batch(1000, 1 << 20).unwrap();
        if b.is_empty() {
            break;
        }
        n += b.records.len();
        ob.commit(&b.end).expect("commit on a full disk");
    }
    assert!(n >= appended as usize);
    assert_eq!(ob.stats().records, 0);
    ob.append(&recs(0..50))
        .expect("appends again after the commit freed space");
}

/// Several batches on their way at once (the sink, issue 24): each read starts where the
/// previous one ended, across segments; a position the outbox no longer holds reads from the
/// cursor (records twice, never skipped).
#[test]
fn read_batch_after_reads_on_and_falls_back_to_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    // 4096-byte segments hold about 150 of these records: 400 span three segments.
    let (ob, _) = open(dir.path(), &small());
    ob.append(&recs(0..400)).unwrap();
    assert!(seg_files(dir.path()).len() >= 3);
    let mut batches = Vec::new();
    let mut after: Option<Position> = None;
    loop {
        let b = ob.read_batch_after(after.as_ref(), 70, 1 << 20).unwrap();
        if b.records.is_empty() {
            break;
        }
        after = Some(b.end.clone());
        batches.push(b);
    }
    let all: Vec<Vec<u8>> = batches.iter().flat_map(|b| b.records.clone()).collect();
    assert_eq!(all, recs(0..400), "read on, in order, nothing twice");
    assert_eq!(ob.stats().records, 400, "reading commits nothing");

    // Committed in order; a read after a committed position starts at the cursor.
    ob.commit(&batches[1].end).unwrap();
    let again = ob
        .read_batch_after(Some(&batches[0].end), 70, 1 << 20)
        .unwrap();
    assert_eq!(again.records, batches[2].records);
    let on = ob
        .read_batch_after(Some(&batches[3].end), 70, 1 << 20)
        .unwrap();
    assert_eq!(on.records, batches[4].records);
    // A position of an outbox that never held it (another directory) reads from the cursor.
    let other = tempfile::tempdir().unwrap();
    let (ob2, _) = open(other.path(), &small());
    ob2.append(&recs(0..400)).unwrap();
    let far = ob2.read_batch(390, 1 << 20).unwrap().end;
    drop(ob2);
    let (ob3, _) = open(dir.path().join("fresh").as_path(), &small());
    ob3.append(&recs(1000..1005)).unwrap();
    assert_eq!(
        ob3.read_batch_after(Some(&far), 70, 1 << 20)
            .unwrap()
            .records,
        recs(1000..1005)
    );
    // Everything after the last commit is still delivered.
    ob.commit(&batches.last().unwrap().end).unwrap();
    assert_eq!(ob.stats().records, 0);
    assert!(drain(&ob).is_empty());
}

/// Offset of record `i` of `recs` in the first segment (all records are the same size).
fn record_offset(i: u64) -> u64 {
    let len = recs(0..1)[0].len() as u64;
    HEADER_LEN + i * (FRAME_OVERHEAD + len)
}

/// Flips a byte in the payload of record `i` of the first segment file.
fn flip_payload_byte(dir: &Path, i: u64) {
    let seg = seg_files(dir).remove(0);
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0xFF], record_offset(i) + FRAME_OVERHEAD + 2)
        .unwrap();
}

#[test]
fn a_partial_batch_read_again_checks_only_the_frames_appended_since() {
    let dir = tempfile::tempdir().unwrap();
    let (ob, m) = open(dir.path(), &small());
    ob.append(&recs(0..3)).unwrap();
    let first = ob.read_batch(10, 1 << 20).unwrap();
    assert_eq!(first.records, recs(0..3));
    // Appended after that read and damaged on disk: the read that comes to it finds it.
    ob.append(&recs(3..6)).unwrap();
    flip_payload_byte(dir.path(), 4);
    let again = ob.read_batch(10, 1 << 20).unwrap();
    assert_eq!(again.records, recs(0..4));
    assert_eq!(m.outbox_errors_total.get(), 1);
    // A record damaged after a read verified it is not checked again: re-reads of a waiting
    // batch skip the CRCs already checked (the old code cut the segment here too).
    flip_payload_byte(dir.path(), 1);
    let third = ob.read_batch(10, 1 << 20).unwrap();
    assert_eq!(third.records.len(), 4);
    assert_ne!(third.records.iter().nth(1), Some(&recs(1..2)[0][..]));
    assert_eq!(m.outbox_errors_total.get(), 1);
}

#[test]
fn after_a_restart_the_verified_stretch_starts_at_the_cursor_and_later_frames_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ob, _) = open(dir.path(), &small());
        ob.append(&recs(0..6)).unwrap();
        let done = ob.read_batch(2, 1 << 20).unwrap();
        ob.commit(&done.end).unwrap();
    }
    let (ob, m) = open(dir.path(), &small());
    let first = ob.read_batch(1, 1 << 20).unwrap();
    assert_eq!(first.records, recs(2..3));
    flip_payload_byte(dir.path(), 3);
    let again = ob.read_batch(10, 1 << 20).unwrap();
    assert_eq!(again.records, recs(2..3));
    assert_eq!(m.outbox_errors_total.get(), 1);
}
