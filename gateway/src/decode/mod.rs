//! Payload decoders: bytes on a topic in, un-normalized readings out.
//!
//! Native topics (`v1/{site}/{device}/...`) are tried first, then the configured third-party
//! mappings in order. Anything that fails is a [`DecodeError`] whose `reason()` labels the
//! `decode_errors_total` counter; the caller logs it with the topic and moves on.

pub mod mapping;
pub mod native;

use crate::config::Config;
use crate::reading::Reading;
use thiserror::Error;

/// Why a message could not be turned into readings.
#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("bad JSON: {0}")]
    BadJson(String),
    #[error("field `{0}` is missing")]
    MissingField(String),
    #[error("field `{field}` has the wrong type: {detail}")]
    WrongType { field: String, detail: String },
    #[error("no decoder for this topic")]
    UnknownTopic,
    #[error("unknown state `{0}` (expected `online` or `offline`)")]
    BadState(String),
    #[error("message carries no metrics")]
    Empty,
    #[error("published by `{from}`, which is not the topic's device `{topic}`")]
    IdentityMismatch { from: String, topic: String },
}

impl DecodeError {
    /// Short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::NotUtf8 => "not_utf8",
            DecodeError::BadJson(_) => "bad_json",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::UnknownTopic => "unknown_topic",
            DecodeError::BadState(_) => "bad_state",
            DecodeError::Empty => "empty",
            DecodeError::IdentityMismatch { .. } => "identity_mismatch",
        }
    }
}

/// Decodes every payload the gateway accepts; built once from config.
pub struct Decoder {
    max_payload_bytes: usize,
    mappings: Vec<mapping::Mapping>,
}

impl Decoder {
    pub fn new(cfg: &Config) -> Decoder {
        Decoder {
            max_payload_bytes: cfg.mqtt.max_payload_bytes,
            // Config validation already compiled every pattern once; a failure here is a bug
            // caught by `validate`, so skipping is only a belt-and-braces guard.
            mappings: cfg
                .mappings
                .iter()
                .filter_map(|m| mapping::Mapping::new(m).ok())
                .collect(),
        }
    }

    /// Decodes one MQTT message received at `received_ms` (ms since epoch).
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Vec<Reading>, DecodeError> {
        if payload.len() > self.max_payload_bytes {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        if let Some(t) = firmware::protocol::NativeTopic::parse(topic) {
            return native::decode(&t, payload, received_ms);
        }
        for m in &self.mappings {
            if let Some(result) = m.decode(topic, payload, received_ms) {
                return result;
            }
        }
        Err(DecodeError::UnknownTopic)
    }
}
