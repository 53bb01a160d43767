//! The rules engine: turns normalized [`Reading`](crate::reading::Reading)s into
//! [`ClueSignal`](crate::clue::signal::ClueSignal)s for the clue pool.
//!
//! - `config`: declarative rules (`[[rules]]`) and calendar settings (`[rules_settings]`).
//! - `engine`: the pure state machine (readings and a clock in, signals out; no tokio).
//! - `window`: per-series ring of recent readings (evidence, rate, flat-line).
//! - `flat`: the flat-line judgement's run as a summary that outlives the window.
//! - `running`: judgements over a window kept up reading by reading (rate, discharge,
//!   flat-line) instead of rescanning it per reading.
//! - `flap`: hysteresis, minimum duration and cool-down, so a flapping sensor raises one
//!   occurrence per cool-down instead of hundreds.
//! - `calendar`: night / business hours / per-site calendars in local time.
//! - `grease`: trap analytics (daily inflow, fill rate) and the pump-out registry.
//! - `maintenance`: registered works on devices (a crew lifting a cover) that excuse them.
//! - `journal`: the append-only, audited journals behind pump-out and maintenance records.
//! - `backtest`: replays recorded readings (CSV, line protocol) and reports the clues.
//! - `task`: the tokio task that feeds the engine from a channel and ticks it every second.

pub mod backtest;
pub(crate) mod calendar;
mod column;
pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod flap;
pub(crate) mod flat;
pub(crate) mod grease;
pub(crate) mod journal;
mod keys;
pub(crate) mod maintenance;
pub(crate) mod pumpout_journal;
mod running;
pub(crate) mod snapshot;
pub(crate) mod task;
pub(crate) mod window;

#[cfg(test)]
mod flat_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use config::default_rules;
pub(crate) use config::{RuleConfig, RulesSettings};
pub(crate) use engine::Engine;
pub(crate) use grease::PumpoutRegistry;

use thiserror::Error;

/// Why the rules could not be built.
#[derive(Debug, Error)]
pub enum RulesError {
    #[error(transparent)]
    Invalid(#[from] crate::config_error::ConfigError),
}

/// Tests' random numbers: xorshift64 from `seed` (reproducible, no crate).
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
