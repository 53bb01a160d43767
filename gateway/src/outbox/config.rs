//! The `[storage.outbox]` section.

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

/// What the outbox does when it holds `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop acknowledging MQTT messages: the broker keeps them (nothing is lost here).
    Backpressure,
    /// Drop the oldest queued records to make room (counted in `outbox_dropped_total`).
    DropOldest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub when_full: WhenFull,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 16 * 1024 * 1024,
            when_full: WhenFull::Backpressure,
        }
    }
}

impl OutboxConfig {
    /// Checks the sizes; keys are named from the root (`storage.outbox.*`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let o = self;
        if o.segment_bytes < 4096 {
            return Err(invalid(
                "storage.outbox.segment_bytes",
                "must be at least 4096",
            ));
        }
        if o.max_bytes < o.segment_bytes * 2 {
            return Err(invalid(
                "storage.outbox.max_bytes",
                "must hold at least two segments",
            ));
        }
        Ok(())
    }
}
