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
