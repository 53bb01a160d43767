//! The one normalized record every source produces and every consumer reads.
//!
//! A `Reading` carries one metric. Readings that share (stream, site, device, source, device time)
//! come from the same message and become one time-series point with one field per metric.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A metric value after decoding. Non-finite floats never get this far (decoders reject them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    // Deserialization tries variants in order: an integral JSON number becomes Int.
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value as a number, for rules and unit conversion; booleans count as 0/1.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

/// Where a reading came from; also written as the `source` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Mqtt,
    Modbus,
    Camera,
    Drone,
    Gateway,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Modbus => "modbus",
            Source::Camera => "camera",
            Source::Drone => "drone",
            Source::Gateway => "gateway",
        }
    }
}

/// Flags set during normalization, kept so reviewers can judge a reading's trustworthiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quality {
    /// The device clock was too far from ours; `device_time_ms` is the receive time instead.
    pub clock_replaced: bool,
    /// The device buffered this reading and sent it later (store-and-forward replay).
    pub replayed: bool,
}

/// One normalized measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub site: String,
    pub device: String,
    /// The time-series measurement, e.g. `grease_trap`, `manhole_cover`, `camera`.
    pub stream: String,
    pub metric: String,
    pub value: Value,
    /// Canonical unit after conversion (`mm`, `m3`, `%`, `deg`, `C`...); empty when unitless.
    pub unit: String,
    /// Device time in ms since the epoch (or receive time when the device clock was unusable).
    pub device_time_ms: i64,
    /// When the gateway received it, ms since the epoch.
    pub received_time_ms: i64,
    pub source: Source,
    /// The device's message sequence number, when it sends one.
    pub sequence: Option<u64>,
    pub quality: Quality,
}
