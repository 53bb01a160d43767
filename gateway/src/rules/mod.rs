//! The rules engine: turns normalized [`Reading`](crate::reading::Reading)s into
//! [`ClueSignal`](crate::clue::signal::ClueSignal)s for the clue pool.
//!
//! - `config`: declarative rules (`[[rules]]`) and calendar settings (`[rules_settings]`).
//! - `engine`: the pure state machine (readings and a clock in, signals out; no tokio).
//! - `window`: per-series ring of recent readings (evidence, rate, flat-line).
//! - `flap`: hysteresis, minimum duration and cool-down, so a flapping sensor raises one
//!   occurrence per cool-down instead of hundreds.
//! - `calendar`: night / business hours / per-site calendars in local time.
//! - `grease`: trap analytics (daily inflow, fill rate) and the pump-out registry.
//! - `maintenance`: registered works on devices (a crew lifting a cover) that excuse them.
//! - `backtest`: replays recorded readings (CSV, line protocol) and reports the clues.
//! - `task`: the tokio task that feeds the engine from a channel and ticks it every second.

pub mod backtest;
pub mod calendar;
pub mod config;
pub mod engine;
pub mod flap;
pub mod grease;
mod keys;
pub mod maintenance;
pub mod pumpout_journal;
pub mod snapshot;
pub mod task;
pub mod window;

#[cfg(test)]
mod tests;

pub use config::{RuleConfig, RulesSettings, default_rules};
pub use engine::{Engine, EngineStats};
pub use grease::{PumpoutRegistry, TrapStats};
pub use maintenance::MaintenanceRegistry;

use thiserror::Error;

/// Why the rules could not be built.
#[derive(Debug, Error)]
pub enum RulesError {
    #[error(transparent)]
    Invalid(#[from] crate::config_error::ConfigError),
}
