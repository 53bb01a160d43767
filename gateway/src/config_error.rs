//! The configuration error, in a leaf module: every component validates its own section and
//! names the bad key path with it, without depending on the root `config`.

use thiserror::Error;

/// A configuration problem; the message always names the offending key path.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("invalid `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// An `Invalid` error for `key` (the full dotted path, e.g. `mqtt.url`).
pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}
