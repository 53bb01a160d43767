//! Ground truth: what really happened in the simulated world, written as it happens, so a
//! benchmark can score the gateway's clues against it.
//!
//! Every happening has a class. A *violation* (night dumping, a cover lifted off-hours, a camera
//! covered) and a *fault* (a camera unplugged, a dead sensor, a flat battery) are problems a clue
//! should report; a *duty* is a due action (a trap past the 25 % pump-out threshold) that a
//! clue should also report; an *innocent* happening (a registered pump-out, rain, a power cut, a
//! clock skew, maintenance) must raise nothing. Times are true simulated time (ms since the
//! epoch), never a device's possibly skewed clock.

use std::prelude::rust_2024::*;

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

/// What kind of truth a happening is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthClass {
    Violation,
    Fault,
    Duty,
    Innocent,
}

impl TruthClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TruthClass::Violation => "violation",
            TruthClass::Fault => "fault",
            TruthClass::Duty => "duty",
            TruthClass::Innocent => "innocent",
        }
    }

    /// Violations, faults and duties are problems that should each get one clue.
    pub fn is_problem(self) -> bool {
        self != TruthClass::Innocent
    }
}

/// A label a scenario script puts on a scripted happening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthLabel {
    /// e.g. `night_dumping`, `cover_opened_off_hours`, `registered_pumpout`.
    pub problem: String,
    pub class: TruthClass,
}

/// One happening on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub problem: String,
    pub class: TruthClass,
    pub site: String,
    pub device: String,
    /// When it began and ended (true time, ms since the epoch); `end_ms >= start_ms`.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Merges happenings of the same problem and class on the same device that overlap in time into
/// one, from the first start to the last end. A device cannot be in one state twice: a scripted
/// knock on a cover that a random knock already tilted leaves it tilted once, from the first
/// knock to the last one's end, and no sensor can tell the two apart (two records asked for a
/// clue event inside the second one, while the one clue was raised at the first).
pub fn merge_overlapping(truth: &mut Vec<Truth>) {
    truth.sort_by(|a, b| {
        (&a.site, &a.device, &a.problem, a.class, a.start_ms)
            .cmp(&(&b.site, &b.device, &b.problem, b.class, b.start_ms))
    });
    let mut out: Vec<Truth> = Vec::with_capacity(truth.len());
    for t in truth.drain(..) {
        match out.last_mut() {
            Some(last)
                if last.site == t.site
                    && last.device == t.device
                    && last.problem == t.problem
                    && last.class == t.class
                    && t.start_ms < last.end_ms =>
            {
                last.end_ms = last.end_ms.max(t.end_ms);
            }
            _ => out.push(t),
        }
    }
    out.sort_by_key(|t| t.start_ms);
    *truth = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(problem: &str, device: &str, start_ms: i64, end_ms: i64) -> Truth {
        Truth {
            problem: problem.into(),
            class: TruthClass::Violation,
            site: "mh-1".into(),
            device: device.into(),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn overlapping_records_of_one_state_on_one_device_are_one_happening() {
        let mut truth = vec![
            t("cover_tilted", "cover-1", 100, 300),
            t("cover_tilted", "cover-2", 150, 200),
            t("cover_tilted", "cover-1", 200, 400),
            // Touching is not overlapping: a new tilt after the first ended.
            t("cover_tilted", "cover-1", 400, 500),
            t("cover_opened_off_hours", "cover-1", 250, 260),
        ];
        merge_overlapping(&mut truth);
        assert_eq!(
            truth,
            vec![
                t("cover_tilted", "cover-1", 100, 400),
                t("cover_tilted", "cover-2", 150, 200),
                t("cover_opened_off_hours", "cover-1", 250, 260),
                t("cover_tilted", "cover-1", 400, 500),
            ]
        );
    }
}
