//! Payload decoders: bytes on a topic in, un-normalized readings out.
//!
//! Native topics (`v1/{site}/{device}/...`) are tried first, then the configured third-party
//! mappings in order. Anything that fails is a [`DecodeError`] whose `reason()` labels the
//! `decode_errors_total` counter; the caller logs it with the topic and moves on.

pub(crate) mod devices;
pub(crate) mod mapping;
pub(crate) mod native;
pub(crate) mod presets;
pub(crate) mod scan;
pub(crate) mod wire;

use crate::devices::{DeviceSlot, DeviceTable};
use crate::reading::{Names, Reading};
use crate::registry::Registry;
use std::sync::{Arc, Mutex};
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
    #[error("DevEUI {0} is not in the device registry (policy: dead_letter)")]
    Unregistered(String),
}

impl DecodeError {
    /// Short, stable label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
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
            DecodeError::Unregistered(_) => "unregistered",
        }
    }
}

/// Decodes every payload the gateway accepts; built once from config.
pub struct Decoder {
    max_payload_bytes: usize,
    mappings: Vec<mapping::Mapping>,
    /// Resolves DevEUIs and notes unregistered devices.
    registry: Arc<Registry>,
    /// Shared names for native readings (see [`Names`]) and the index of native devices. One
    /// decode task uses them, so the lock is never contended; a lock rather than `&mut self`
    /// keeps `Decoder` shareable.
    names: Mutex<(Names, devices::DeviceNames)>,
    /// The live device table, when intake has one: a native message's device slot is then
    /// resolved here with its names ([`Decoded::slot`]).
    table: Option<Arc<DeviceTable>>,
}

/// One decoded message: its readings and, for a native topic when the decoder knows the
/// device table, the device's slot there (the processor then need not look it up).
pub(crate) struct Decoded {
    pub readings: Vec<Reading>,
    pub slot: Option<Arc<DeviceSlot>>,
}

impl Decoder {
    /// Payloads up to `max_payload_bytes` (`[mqtt]`), third-party `mappings` tried after the
    /// native topics (`config::Config::decoder` hands both).
    pub(crate) fn new(max_payload_bytes: usize, mappings: &[mapping::MappingConfig]) -> Decoder {
        Decoder {
            max_payload_bytes,
            // Config validation already compiled every pattern once; a failure here is a bug
            // caught by `validate`, so skipping is only a belt-and-braces guard.
            mappings: mappings
                .iter()
                .filter_map(|m| mapping::Mapping::new(m).ok())
                .collect(),
            registry: Arc::new(Registry::empty()),
            names: Mutex::new((Names::new(), devices::DeviceNames::default())),
            table: None,
        }
    }

    /// Resolves native devices' slots in `table`, the one the intake processor updates.
    pub(crate) fn with_devices(mut self, table: Arc<DeviceTable>) -> Decoder {
        self.table = Some(table);
        self
    }

    /// Uses the running device registry (default: an empty one).
    pub(crate) fn with_registry(mut self, registry: Arc<Registry>) -> Decoder {
        self.registry = registry;
        self
    }

    /// Decodes one MQTT message received at `received_ms` (ms since epoch).
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Vec<Reading>, DecodeError> {
        self.decode_message(topic, payload, received_ms)
            .map(|d| d.readings)
    }

    /// [`Decoder::decode`], with the device's slot when the decoder resolved it.
    pub(crate) fn decode_message(
        &self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Decoded, DecodeError> {
        if payload.len() > self.max_payload_bytes {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: self.max_payload_bytes,
            });
        }
        if let Some(t) = firmware::protocol::NativeTopic::parse(topic) {
            let (readings, slot) = {
                let mut guard = self.names.lock().unwrap_or_else(|p| p.into_inner());
                let (names, index) = &mut *guard;
                let d = index.resolve(names, self.table.as_deref(), t.site, t.device);
                let (site, device) = (d.site.clone(), d.device.clone());
                let readings = native::decode_as(&t, payload, received_ms, names, site, device)?;
                let slot = match (d.slot, &self.table) {
                    (Some(slot), _) => Some(slot),
                    (None, Some(table)) => Some(index.remember(table, &d.site, &d.device)),
                    (None, None) => None,
                };
                (readings, slot)
            };
            self.registry
                .note_device(t.site, t.device, topic, received_ms);
            return Ok(Decoded { readings, slot });
        }
        // Several mappings may share a topic (one ChirpStack application with level and tilt
        // sensors): a message missing a mapping's required field goes on to the next one, and
        // the first such error is reported when none decodes it.
        let mut missing = None;
        for m in &self.mappings {
            match m.decode(topic, payload, received_ms, &self.registry) {
                None => {}
                Some(Err(e @ DecodeError::MissingField(_))) => {
                    missing.get_or_insert(e);
                }
                Some(result) => {
                    return result.map(|readings| Decoded {
                        readings,
                        slot: None,
                    });
                }
            }
        }
        Err(missing.unwrap_or(DecodeError::UnknownTopic))
    }
}
