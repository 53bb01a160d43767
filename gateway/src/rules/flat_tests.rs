//! The flat-line runs kept as summaries (`flat`) judge as the windows that kept every
//! flat-line rule's span did (issue 24): same signals, same order, same figures and evidence
//! but for the summary's note.

use super::RulesSettings;
use super::engine::{Engine, FLAT_BY_WINDOW_TEST};
use super::tests::{at_local, reading, running_judgement_rules};
use crate::clue::signal::{ClueSignal, Evidence};
use crate::reading::Value;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// An engine built with flat lines judged over long windows (the old judgement) or not.
fn built<T>(old: bool, make: impl FnOnce() -> T) -> T {
    FLAT_BY_WINDOW_TEST.with(|f| f.set(old));
    let e = make();
    FLAT_BY_WINDOW_TEST.with(|f| f.set(false));
    e
}

fn engine(old: bool) -> Engine {
    built(old, || {
        Engine::new(running_judgement_rules(), &RulesSettings::default()).expect("rules")
    })
}

fn restart(e: &Engine, old: bool, strip_new_fields: bool) -> Engine {
    let mut snap = serde_json::to_value(e.snapshot()).expect("serializes");
    if strip_new_fields {
        // As a snapshot written before the summaries: windows without their policy, series
        // without flat runs.
        if let Some(series) = snap["state"]["series"].as_array_mut() {
            for pair in series {
                let s = &mut pair[1];
                if let Some(o) = s.as_object_mut() {
                    o.remove("flats");
                }
                if let Some(w) = s["window"].as_object_mut() {
                    w.remove("keep");
                    w.remove("floor_ms");
                    w.remove("evicted_to");
                }
            }
        }
    }
    let snap = serde_json::from_value(snap).expect("deserializes");
    built(old, || {
        Engine::restore(running_judgement_rules(), &RulesSettings::default(), snap)
            .expect("restored")
    })
}

/// The signals without the flat-run notes (the one evidence the old judgement did not give).
fn without_flat_notes(mut out: Vec<ClueSignal>) -> String {
    for s in &mut out {
        if let ClueSignal::Occurrence(e) = s {
            e.evidence.retain(
                |ev| !matches!(ev, Evidence::Note { text } if text.starts_with("Flat run:")),
            );
        }
    }
    format!("{out:?}")
}

/// Random level sequences of three traps, some reporting every few minutes and some every
/// 20 to 120 (whose discharges read readings hours old): long flat stretches, steps, drops
/// and rises, late readings (within 20 minutes) and redeliveries, gaps of hours, text, NaN,
/// ticks; a restart from a snapshot, and in half the cases a restart of the new engine from
/// the old engine's snapshot with the fields it did not have removed (a snapshot written
/// before: the run in progress is read from its long windows). Both engines must send the
/// same signals; every rule that judges a window raises something.
#[test]
fn flat_runs_as_summaries_send_what_the_long_windows_sent() {
    let mut next = crate::rules::xorshift(0x9e37_79b9_7f4a_7c15);
    let mut raised: std::collections::BTreeMap<String, usize> = Default::default();
    let mut notes = 0usize;
    for case in 0..16i64 {
        let sparse = case % 4 == 3;
        let mut new = engine(false);
        let mut old = engine(true);
        let t0 = at_local(9, 0) + case * 7 * HOUR;
        let mut t = [t0; 3];
        let mut level_mm = [300.0f64; 3];
        let mut stuck = [false; 3];
        for step in 0..900 {
            let d = (next() % 3) as usize;
            let site = format!("r-{d}");
            let every = if sparse {
                (20 + next() % 100) as i64 * MIN
            } else {
                (1 + next() % 10) as i64 * MIN
            };
            let at = match next() % 25 {
                0 => t[d] - (next() % 20) as i64 * MIN, // late, or a redelivery
                1 => t[d] + (next() % 8) as i64 * HOUR, // a gap
                _ => t[d] + every,
            };
            t[d] = t[d].max(at);
            if next().is_multiple_of(60) {
                stuck[d] = !stuck[d];
            }
            level_mm[d] = match next() % 40 {
                _ if stuck[d] => level_mm[d],
                0 => level_mm[d] - 50.0 - (next() % 250) as f64, // a drop
                1 => level_mm[d] + 50.0 + (next() % 200) as f64, // a rise
                2..=30 => level_mm[d],                           // flat
                _ => level_mm[d] + (next() % 9) as f64 - 4.0,
            };
            let value = match next() % 200 {
                0 => Value::Text("err".into()),
                // After the snapshots: a snapshot holding NaN does not load (JSON has no NaN).
                1 if step > 600 => Value::Float(f64::NAN),
                _ => Value::Float(level_mm[d]),
            };
            let msg = vec![reading(
                &site,
                "trap-1",
                "grease_trap",
                "level_mm",
                value,
                at,
            )];
            let got = new.on_readings(&msg);
            let want = old.on_readings(&msg);
            for s in &got {
                if let ClueSignal::Occurrence(e) = s {
                    *raised.entry(e.rule.clone()).or_default() += 1;
                    notes += e
                        .evidence
                        .iter()
                        .filter(|ev| matches!(ev, Evidence::Note { text } if text.starts_with("Flat run:")))
                        .count();
                }
            }
            assert_eq!(
                without_flat_notes(got),
                format!("{want:?}"),
                "case {case} step {step}"
            );
            if next().is_multiple_of(10) {
                let now = t.iter().copied().max().unwrap_or(t0) + 5 * MIN;
                assert_eq!(
                    without_flat_notes(new.on_tick(now)),
                    format!("{:?}", old.on_tick(now)),
                    "case {case} tick {step}"
                );
            }
            if step == 300 {
                new = restart(&new, false, false);
                old = restart(&old, true, false);
            }
            if step == 600 && case % 2 == 0 {
                // The old engine's windows, as an old snapshot: the new engine goes on from it.
                new = restart(&old, false, true);
                old = restart(&old, true, false);
            }
        }
        assert_eq!(format!("{:?}", new.stats()), format!("{:?}", old.stats()));
    }
    for rule in [
        "trap-illegal-discharge-level",
        "small-discharge",
        "trap-fast-fill",
        "fast-fall",
        "trap-sensor-stuck",
        "flat-ish",
    ] {
        assert!(
            raised.get(rule).is_some_and(|&n| n > 0),
            "{rule}: {raised:?}"
        );
    }
    assert!(notes > 0, "no flat-run note: {raised:?}");
}
