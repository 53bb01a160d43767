//! Scores a run's clues against its ground truth.
//!
//! A clue *matches* a problem (violation, fault or duty) when one of its occurrences is about
//! the problem's site (and device, when the clue names one), has a kind that reports that
//! problem ([`accepted_kinds`]), and was observed between [`EARLY_MS`] before the problem
//! began and [`LATE_MS`] after it ended. Then:
//!
//! - recall per problem: the share of problems matched by at least one clue;
//! - clues per problem: how many distinct clues matched it (the target is exactly one);
//! - a *false clue* matches no problem at all; its *cause* is the innocent happening on the
//!   same site in the same window when there is one (rain, pump-out, power cut, ...);
//! - precision per clue kind: the share of that kind's clues that matched a problem.

use super::{ClueRecord, RunOutput};
use firmware::sim::{Truth, TruthClass};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A clue may be observed this long before its problem began (device clocks, median filters).
pub(crate) const EARLY_MS: i64 = 15 * 60_000;
/// ... and this long after it ended (minimum durations: overdue needs an hour, a flat line six).
pub(crate) const LATE_MS: i64 = 7 * 3_600_000;

/// The clue kinds that report `problem`. Collision clues are accepted for the problems they
/// combine, so a second clue about the same dumping counts as a duplicate, not as false.
pub(crate) fn accepted_kinds(problem: &str) -> &'static [&'static str] {
    match problem {
        "night_dumping" => &[
            "grease_trap.illegal_discharge",
            "collision.camera_dark_trap_drop",
            "collision.night_drop_open_cover",
        ],
        "pumpout_due" => &["grease_trap.pumpout_due", "grease_trap.pumpout_overdue"],
        "cover_opened_off_hours" => &[
            "manhole.cover_open",
            "manhole.cover_open_too_long",
            "manhole.cover_tilted",
            "collision.night_drop_open_cover",
        ],
        "cover_tilted" => &["manhole.cover_tilted"],
        "camera_black" => &[
            "camera.black",
            "camera.image_bad",
            "camera.covered",
            "camera.not_repaired",
            "collision.camera_dark_trap_drop",
        ],
        "camera_frozen" => &["camera.frozen", "camera.not_repaired"],
        "camera_covered" => &[
            "camera.covered",
            "camera.black",
            "camera.image_bad",
            "camera.not_repaired",
        ],
        "camera_sky" => &["camera.sky", "camera.overexposed", "camera.not_repaired"],
        "camera_moved" => &["camera.moved", "camera.not_repaired"],
        "camera_offline" | "camera_unplugged" => &[
            "camera.offline",
            "camera.fault",
            "camera.power_lost",
            "device.offline",
            "camera.not_repaired",
            "collision.camera_dark_trap_drop",
        ],
        "sensor_cable_cut" => &["device.sensor_fault", "sensor.stuck", "device.offline"],
        "low_battery" => &["device.low_battery"],
        _ => &[],
    }
}

/// Happenings that are real but need nobody, so a clue about them is right and no clue is no
/// miss: the innocent record's name and the problem whose clue kinds report it. A trap that
/// passed the 25 % line and was pumped within half an hour (`pumpout_met_at_once`, see
/// `firmware::sim::DUTY_MET_AT_ONCE_MS`) was due; a "pump-out due" raised before the crew came
/// is true, but nobody can be expected to have said it. A trap emptied while it stood within a
/// sensor's accuracy below the line (`pumpout_at_line`, see `firmware::sim::DUE_ACCURACY_MM`)
/// is the same case seen from the other side of the line. A loop cable cut for just over the
/// hour (`sensor_cut_at_line`, see `firmware::sim::CABLE_CUT_FAULT_MS`) is reported by the
/// firmware as a fault of just under it: the same band on the fault's length. A camera picture
/// problem never shown for the camera health's hold time (`camera_sky_unseen`, ...: hidden by an
/// outage or another picture, see [`super::seen`]) is the same case for cameras.
pub(crate) fn optional_problem(innocent: &str) -> Option<&'static str> {
    match innocent {
        "pumpout_met_at_once" | "pumpout_at_line" => Some("pumpout_due"),
        "sensor_cut_at_line" => Some("sensor_cable_cut"),
        "camera_black_unseen" => Some("camera_black"),
        "camera_frozen_unseen" => Some("camera_frozen"),
        "camera_covered_unseen" => Some("camera_covered"),
        "camera_sky_unseen" => Some("camera_sky"),
        "camera_moved_unseen" => Some("camera_moved"),
        _ => None,
    }
}

/// Figures of one problem kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProblemRow {
    pub class: String,
    pub seeded: u32,
    pub found: u32,
    /// Problems with exactly one clue.
    pub exactly_one: u32,
    /// Problems with more than one.
    pub duplicated: u32,
    pub clues: u32,
}

/// Figures of one clue kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindRow {
    pub clues: u32,
    pub true_clues: u32,
    pub false_clues: u32,
}

/// Everything one run scores.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub seed: u64,
    pub device_days: f64,
    pub problems: BTreeMap<String, ProblemRow>,
    pub kinds: BTreeMap<String, KindRow>,
    /// False clues by the innocent happening that explains them (or `unexplained`).
    pub false_causes: BTreeMap<String, u32>,
    pub clues: u32,
    pub false_clues: u32,
    /// Clues about an optional happening ([`optional_problem`]): true, not counted for recall.
    pub optional_clues: u32,
    /// Violations (the issue's recall target) seeded and found.
    pub violations: u32,
    pub violations_found: u32,
    pub violations_exactly_one: u32,
    /// Examples of misses and duplicates, for the report.
    pub misses: Vec<String>,
    pub duplicates: Vec<String>,
    pub false_examples: Vec<String>,
}

impl Score {
    pub(crate) fn clues_per_1000_device_days(&self) -> f64 {
        f64::from(self.clues) * 1000.0 / self.device_days.max(1e-9)
    }

    pub(crate) fn false_per_1000_device_days(&self) -> f64 {
        f64::from(self.false_clues) * 1000.0 / self.device_days.max(1e-9)
    }

    pub(crate) fn violation_recall(&self) -> f64 {
        ratio(self.violations_found, self.violations)
    }

    /// Share of violations with exactly one clue.
    pub(crate) fn violation_one_clue(&self) -> f64 {
        ratio(self.violations_exactly_one, self.violations)
    }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        1.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

fn overlaps(t: &Truth, site: &str, device: Option<&str>, at: i64) -> bool {
    t.site == site
        && device.is_none_or(|d| d == t.device)
        && at >= t.start_ms - EARLY_MS
        && at <= t.end_ms + LATE_MS
}

/// The problems one clue occurrence at `at` reports: those it [`overlaps`] whose kinds accept
/// the clue's, and of several problems on the same place only the one begun most recently (of
/// problems with different names, only when the earlier one had ended before the later began).
/// A second cable cut on a loop two hours after the first ended is still within the first's
/// [`LATE_MS`]; a clue seen after the second cut began is about the second, so it must not also
/// count as a duplicate clue of the first. The same for a camera covered, uncovered, then black
/// 90 minutes later: `camera.image_bad` reports both, and the black picture's clue is no second
/// clue of the covered one (judging seed 9108).
fn problems_of_event(
    problems: &[&Truth],
    kind: &str,
    site: &str,
    device: Option<&str>,
    at: i64,
) -> Vec<usize> {
    let candidates: Vec<usize> = (0..problems.len())
        .filter(|&i| {
            accepted_kinds(&problems[i].problem).contains(&kind)
                && overlaps(problems[i], site, device, at)
        })
        .collect();
    candidates
        .iter()
        .copied()
        .filter(|&i| {
            let p = problems[i];
            !candidates.iter().any(|&j| {
                let q = problems[j];
                // Same name: the later begun. Another name (a clue kind two problems share):
                // the later only once the earlier had ended, so overlapping problems keep
                // their own clues.
                let later = if q.problem == p.problem {
                    q.start_ms > p.start_ms
                } else {
                    q.start_ms > p.end_ms
                };
                j != i
                    && later
                    && q.site == p.site
                    && q.device == p.device
                    && at >= q.start_ms - EARLY_MS
            })
        })
        .collect()
}

/// Scores `run`.
pub fn score(run: &RunOutput) -> Score {
    let problems: Vec<&Truth> = run.truth.iter().filter(|t| t.class.is_problem()).collect();
    let innocent: Vec<&Truth> = run.truth.iter().filter(|t| !t.class.is_problem()).collect();
    // problem index -> clue ids
    let mut matched: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); problems.len()];
    let mut s = Score {
        seed: run.seed,
        device_days: f64::from(run.devices) * f64::from(run.days),
        problems: BTreeMap::new(),
        kinds: BTreeMap::new(),
        false_causes: BTreeMap::new(),
        clues: run.clues.len() as u32,
        false_clues: 0,
        optional_clues: 0,
        violations: 0,
        violations_found: 0,
        violations_exactly_one: 0,
        misses: Vec::new(),
        duplicates: Vec::new(),
        false_examples: Vec::new(),
    };
    for c in &run.clues {
        let mut any = false;
        for (at, _) in &c.events {
            for i in problems_of_event(&problems, &c.kind, &c.site, c.device.as_deref(), *at) {
                matched[i].insert(c.id);
                any = true;
            }
        }
        if !any {
            any = innocent.iter().any(|t| {
                optional_problem(&t.problem)
                    .is_some_and(|p| accepted_kinds(p).contains(&c.kind.as_str()))
                    && c.events
                        .iter()
                        .any(|(at, _)| overlaps(t, &c.site, c.device.as_deref(), *at))
            });
            s.optional_clues += u32::from(any);
        }
        let k = s.kinds.entry(c.kind.clone()).or_default();
        k.clues += 1;
        if any {
            k.true_clues += 1;
        } else {
            k.false_clues += 1;
            s.false_clues += 1;
            let first = c.events.first().map_or(0, |e| e.0);
            let cause = innocent
                .iter()
                .find(|t| overlaps(t, &c.site, c.device.as_deref(), first))
                .map_or("unexplained".to_string(), |t| t.problem.clone());
            *s.false_causes.entry(cause.clone()).or_default() += 1;
            if s.false_examples.len() < 40 {
                s.false_examples.push(format!(
                    "{} {} {} at {} ({} occurrence(s); cause: {cause})",
                    c.kind,
                    c.site,
                    c.device.as_deref().unwrap_or("-"),
                    first,
                    c.events.len()
                ));
            }
        }
    }
    for (i, p) in problems.iter().enumerate() {
        let n = clues_for(p, &matched[i], &run.clues, &innocent);
        let row = s.problems.entry(p.problem.clone()).or_default();
        row.class = p.class.as_str().to_string();
        row.seeded += 1;
        row.clues += n;
        if n > 0 {
            row.found += 1;
        }
        if n == 1 {
            row.exactly_one += 1;
        }
        if n > 1 {
            row.duplicated += 1;
        }
        if p.class == TruthClass::Violation {
            s.violations += 1;
            s.violations_found += u32::from(n > 0);
            s.violations_exactly_one += u32::from(n == 1);
        }
        let what = format!(
            "{} {}/{} {}..{}",
            p.problem, p.site, p.device, p.start_ms, p.end_ms
        );
        if n == 0 && s.misses.len() < 40 {
            s.misses.push(what);
        } else if n > 1 && s.duplicates.len() < 40 {
            let kinds: Vec<&str> = run
                .clues
                .iter()
                .filter(|c| matched[i].contains(&c.id))
                .map(|c| c.kind.as_str())
                .collect();
            s.duplicates.push(format!("{what}: {kinds:?}"));
        }
    }
    s
}

/// How many clues `problem` got: its matched clues, less those a sensor could not help: a
/// pump-out duty whose true level stood within a sensor's accuracy of the 20 % line
/// (`pumpout_off_line`, see `firmware::sim::DUE_ACCURACY_MM`) may have been read as emptied
/// there, so a clue that starts after such a stretch, following one that started before it,
/// is the duty seen twice for a reason, not a duplicate.
fn clues_for(
    problem: &Truth,
    matched: &BTreeSet<i64>,
    clues: &[ClueRecord],
    innocent: &[&Truth],
) -> u32 {
    let mut starts: Vec<i64> = clues
        .iter()
        .filter(|c| matched.contains(&c.id))
        .filter_map(|c| c.events.first().map(|e| e.0))
        .collect();
    starts.sort_unstable();
    let dips: Vec<&&Truth> = innocent
        .iter()
        .filter(|t| {
            t.problem == "pumpout_off_line"
                && t.site == problem.site
                && t.device == problem.device
                && t.start_ms >= problem.start_ms
                && t.start_ms <= problem.end_ms
        })
        .collect();
    let forgiven = starts
        .windows(2)
        .filter(|w| {
            dips.iter()
                .any(|d| d.start_ms >= w[0] && d.start_ms <= w[1])
        })
        .count();
    (starts.len() - forgiven) as u32
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The report over several runs: per-seed headline figures, then medians per problem kind and
/// per clue kind.
pub fn report(scores: &[Score]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>8} {:>10} {:>12} {:>14} {:>12}",
        "seed", "violations", "recall", "one clue", "clues/1000dd", "false/1000dd", "false clues"
    );
    for s in scores {
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>8.3} {:>10.3} {:>12.1} {:>14.2} {:>12}",
            s.seed,
            s.violations,
            s.violation_recall(),
            s.violation_one_clue(),
            s.clues_per_1000_device_days(),
            s.false_per_1000_device_days(),
            s.false_clues
        );
    }
    let med = |f: &dyn Fn(&Score) -> f64| median(scores.iter().map(f).collect());
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>8.3} {:>10.3} {:>12.1} {:>14.2} {:>12}",
        "median",
        "",
        med(&|s| s.violation_recall()),
        med(&|s| s.violation_one_clue()),
        med(&|s| s.clues_per_1000_device_days()),
        med(&|s| s.false_per_1000_device_days()),
        med(&|s| f64::from(s.false_clues))
    );

    let mut problems: BTreeMap<(String, String), ()> = BTreeMap::new();
    for s in scores {
        for (k, r) in &s.problems {
            problems.insert((r.class.clone(), k.clone()), ());
        }
    }
    let _ = writeln!(
        out,
        "\nper problem (medians over seeds)\n{:<10} {:<24} {:>7} {:>7} {:>9} {:>10} {:>13}",
        "class", "problem", "seeded", "recall", "one clue", "duplicated", "clues/problem"
    );
    for (class, p) in problems.keys() {
        let rows: Vec<ProblemRow> = scores
            .iter()
            .map(|s| s.problems.get(p).cloned().unwrap_or_default())
            .collect();
        let m = |f: &dyn Fn(&ProblemRow) -> f64| median(rows.iter().map(f).collect());
        let _ = writeln!(
            out,
            "{:<10} {:<24} {:>7} {:>7.3} {:>9.3} {:>10} {:>13.2}",
            class,
            p,
            m(&|r| f64::from(r.seeded)),
            m(&|r| ratio(r.found, r.seeded)),
            m(&|r| ratio(r.exactly_one, r.seeded)),
            m(&|r| f64::from(r.duplicated)),
            m(&|r| f64::from(r.clues) / f64::from(r.seeded.max(1))),
        );
    }

    let kinds: BTreeSet<&String> = scores.iter().flat_map(|s| s.kinds.keys()).collect();
    let _ = writeln!(
        out,
        "\nper clue kind (medians over seeds)\n{:<34} {:>7} {:>7} {:>7} {:>10} {:>14}",
        "kind", "clues", "true", "false", "precision", "clues/1000dd"
    );
    for k in kinds {
        let rows: Vec<(KindRow, f64)> = scores
            .iter()
            .map(|s| (s.kinds.get(k).cloned().unwrap_or_default(), s.device_days))
            .collect();
        let m = |f: &dyn Fn(&(KindRow, f64)) -> f64| median(rows.iter().map(f).collect());
        let _ = writeln!(
            out,
            "{:<34} {:>7} {:>7} {:>7} {:>10.3} {:>14.2}",
            k,
            m(&|r| f64::from(r.0.clues)),
            m(&|r| f64::from(r.0.true_clues)),
            m(&|r| f64::from(r.0.false_clues)),
            m(&|r| ratio(r.0.true_clues, r.0.clues)),
            m(&|r| f64::from(r.0.clues) * 1000.0 / r.1),
        );
    }

    let _ = writeln!(
        out,
        "\nclues about happenings that needed nobody (true, outside recall; median): {}",
        median(scores.iter().map(|s| f64::from(s.optional_clues)).collect())
    );
    let causes: BTreeSet<&String> = scores.iter().flat_map(|s| s.false_causes.keys()).collect();
    if !causes.is_empty() {
        let _ = writeln!(out, "\nfalse clues by cause (medians over seeds)");
        for c in causes {
            let v = median(
                scores
                    .iter()
                    .map(|s| f64::from(s.false_causes.get(c).copied().unwrap_or(0)))
                    .collect(),
            );
            let _ = writeln!(out, "  {c:<28} {v:>6}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ClueRecord, RunOutput};

    fn truth(problem: &str, class: TruthClass, start_ms: i64, end_ms: i64) -> Truth {
        Truth {
            problem: problem.into(),
            class,
            site: "r-1".into(),
            device: "trap-1".into(),
            start_ms,
            end_ms,
        }
    }

    fn clue(id: i64, kind: &str, at_ms: i64) -> ClueRecord {
        ClueRecord {
            id,
            rule: "r".into(),
            kind: kind.into(),
            site: "r-1".into(),
            device: Some("trap-1".into()),
            events: vec![(at_ms, "low".into())],
        }
    }

    /// A three-day run of one device with `truth` and `clues`.
    fn run_of(truth: Vec<Truth>, clues: Vec<ClueRecord>) -> RunOutput {
        RunOutput {
            seed: 1,
            days: 3,
            devices: 1,
            truth,
            clues,
            messages: 0,
            decode_errors: 0,
            frames: 0,
            wall_s: 0.0,
        }
    }

    #[test]
    fn a_clue_about_a_duty_met_at_once_or_at_the_line_is_true_and_its_absence_no_miss() {
        const H: i64 = 3_600_000;
        for innocent in ["pumpout_met_at_once", "pumpout_at_line"] {
            let run = |clues: Vec<ClueRecord>| {
                run_of(
                    vec![
                        truth(innocent, TruthClass::Innocent, 10 * H, 11 * H),
                        truth(
                            "registered_pumpout",
                            TruthClass::Innocent,
                            11 * H,
                            11 * H + 60_000,
                        ),
                    ],
                    clues,
                )
            };
            let with = score(&run(vec![clue(
                1,
                "grease_trap.pumpout_due",
                10 * H + 40 * 60_000,
            )]));
            assert_eq!((with.false_clues, with.optional_clues), (0, 1));
            assert!(
                with.problems.is_empty(),
                "no problem to recall: {:?}",
                with.problems
            );
            // Another kind on the same trap, or the same kind two days later, is still false.
            let other = score(&run(vec![
                clue(1, "grease_trap.fast_fill", 10 * H + 40 * 60_000),
                clue(2, "grease_trap.pumpout_due", 60 * H),
            ]));
            assert_eq!((other.false_clues, other.optional_clues), (2, 0));
            assert_eq!(other.false_causes.get(innocent), Some(&1));
        }
    }

    #[test]
    fn a_clue_seen_after_a_second_cut_began_is_about_the_second_cut_only() {
        const H: i64 = 3_600_000;
        let run = |clues: Vec<ClueRecord>| {
            run_of(
                // Two cuts on one loop, the second 2 h after the first ended (within LATE_MS).
                vec![
                    truth("sensor_cable_cut", TruthClass::Fault, 10 * H, 12 * H),
                    truth("sensor_cable_cut", TruthClass::Fault, 14 * H, 16 * H),
                ],
                clues,
            )
        };
        let rows = |s: &Score| {
            let r = &s.problems["sensor_cable_cut"];
            (
                r.seeded,
                r.found,
                r.exactly_one,
                r.duplicated,
                s.false_clues,
            )
        };
        // One clue per cut: each cut has exactly one.
        let two = score(&run(vec![
            clue(1, "device.sensor_fault", 11 * H),
            clue(2, "device.sensor_fault", 15 * H),
        ]));
        assert_eq!(rows(&two), (2, 2, 2, 0, 0), "{:?}", two.duplicates);
        // One clue holding both cuts as occurrences: still one clue for each.
        let mut both = clue(1, "device.sensor_fault", 11 * H);
        both.events.push((15 * H, "low".into()));
        assert_eq!(rows(&score(&run(vec![both]))), (2, 2, 2, 0, 0));
        // Two clues for the first cut are a duplicate, and the second cut is missed.
        let dup = score(&run(vec![
            clue(1, "device.sensor_fault", 11 * H),
            clue(2, "device.sensor_fault", 13 * H),
        ]));
        assert_eq!(rows(&dup), (2, 1, 0, 1, 0));
        // A clue after the first cut ended, before the second began, is still the first's.
        let late = score(&run(vec![clue(1, "device.sensor_fault", 13 * H)]));
        assert_eq!(rows(&late), (2, 1, 1, 0, 0));
    }

    #[test]
    fn a_clue_for_a_camera_problem_after_another_one_ended_is_not_a_second_clue_of_the_first() {
        const H: i64 = 3_600_000;
        let run = run_of;
        let covered = |s: &Score| {
            let r = &s.problems["camera_covered"];
            (r.found, r.exactly_one, r.duplicated)
        };
        // Judging seed 9108's shape: covered 10-11 h, black from 12.5 h (image_bad reports both).
        let apart = vec![
            truth("camera_covered", TruthClass::Violation, 10 * H, 11 * H),
            truth(
                "camera_black",
                TruthClass::Violation,
                12 * H + H / 2,
                15 * H,
            ),
        ];
        let s = score(&run(
            apart.clone(),
            vec![
                clue(1, "camera.covered", 10 * H + H / 4),
                clue(2, "camera.image_bad", 12 * H + H / 2),
            ],
        ));
        assert_eq!(covered(&s), (1, 1, 0), "{:?}", s.duplicates);
        assert_eq!(s.problems["camera_black"].exactly_one, 1);
        // A late clue about the covered camera, before the black began, is still its duplicate.
        let s = score(&run(
            apart,
            vec![
                clue(1, "camera.covered", 10 * H + H / 4),
                clue(2, "camera.image_bad", 11 * H + H / 2),
            ],
        ));
        assert_eq!(covered(&s), (1, 0, 1));
        // Overlapping problems keep their own clues: a covered camera's clue raised after a
        // black picture began still reports the covered one.
        let s = score(&run(
            vec![
                truth("camera_covered", TruthClass::Violation, 10 * H, 13 * H),
                truth("camera_black", TruthClass::Violation, 11 * H, 15 * H),
            ],
            vec![clue(1, "camera.covered", 12 * H)],
        ));
        assert_eq!(covered(&s), (1, 1, 0));
    }

    #[test]
    fn a_second_clue_after_the_level_stood_at_the_off_line_is_no_duplicate() {
        const H: i64 = 3_600_000;
        let run = |dip: Option<(i64, i64)>| {
            run_of(
                [truth("pumpout_due", TruthClass::Duty, 0, 40 * H)]
                    .into_iter()
                    .chain(dip.map(|(a, b)| truth("pumpout_off_line", TruthClass::Innocent, a, b)))
                    .collect(),
                vec![
                    clue(1, "grease_trap.pumpout_due", H),
                    clue(2, "grease_trap.pumpout_due", 30 * H),
                ],
            )
        };
        let row = |s: &Score| {
            let r = &s.problems["pumpout_due"];
            (r.found, r.exactly_one, r.duplicated)
        };
        assert_eq!(row(&score(&run(None))), (1, 0, 1), "two clues, no reason");
        assert_eq!(row(&score(&run(Some((10 * H, 20 * H))))), (1, 1, 0));
        // A stretch at the line before the first clue explains nothing.
        assert_eq!(row(&score(&run(Some((0, H / 2))))), (1, 0, 1));
    }
}
