//! What a device sends, as plain `Copy` data: fixed-size, no allocation, so records can sit in
//! the store-and-forward ring buffer on a microcontroller.

use crate::protocol::{EventPhase, EventSeverity};

/// One metric value on the device side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    F32(f32),
    U32(u32),
    Bool(bool),
}

/// Most metrics one telemetry message carries.
pub const MAX_METRICS: usize = 8;

/// A small fixed-capacity map from metric name to value, in insertion order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    len: u8,
    items: [(&'static str, Value); MAX_METRICS],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub const fn new() -> Self {
        Metrics {
            len: 0,
            items: [("", Value::Bool(false)); MAX_METRICS],
        }
    }

    /// Adds a metric; returns `self` for chaining. Past [`MAX_METRICS`] the metric is ignored
    /// (a programming error that tests catch, not a runtime condition worth a `Result`).
    pub fn with(mut self, name: &'static str, value: Value) -> Self {
        debug_assert!((self.len as usize) < MAX_METRICS, "too many metrics");
        if (self.len as usize) < MAX_METRICS {
            self.items[self.len as usize] = (name, value);
            self.len += 1;
        }
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.items[..self.len as usize].iter()
    }

    pub fn get(&self, name: &str) -> Option<Value> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The time-series measurement a telemetry message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    GreaseTrap,
    ManholeCover,
    Camera,
}

impl Stream {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stream::GreaseTrap => "grease_trap",
            Stream::ManholeCover => "manhole_cover",
            Stream::Camera => "camera",
        }
    }
}

/// What an event is about; the wire name is [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Manhole cover switch reports open.
    CoverOpen,
    /// Cover tilted past the alarm angle.
    Tilt,
    /// Grease trap fill above the high mark.
    LevelHigh,
    /// Trap level fell fast (pump-out, or an illegal discharge); `value` is the litres removed.
    LevelDrop,
    /// Camera power lost, heartbeat lost, or image reported black.
    CameraFault,
    /// Battery below the low mark.
    LowBattery,
    /// The level/tilt sensor stopped giving valid readings.
    SensorFault,
    /// The store-and-forward buffer overflowed; `value` is how many records were dropped.
    BufferOverflow,
}

impl EventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::CoverOpen => "cover_open",
            EventKind::Tilt => "tilt",
            EventKind::LevelHigh => "level_high",
            EventKind::LevelDrop => "level_drop",
            EventKind::CameraFault => "camera_fault",
            EventKind::LowBattery => "low_battery",
            EventKind::SensorFault => "sensor_fault",
            EventKind::BufferOverflow => "buffer_overflow",
        }
    }
}

/// An alarm or recovery as the device logic raises it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventBody {
    pub kind: EventKind,
    pub phase: EventPhase,
    pub severity: EventSeverity,
    pub value: Option<f32>,
    pub message: Option<&'static str>,
}

/// A message before it is stamped with time and sequence number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message {
    Telemetry { stream: Stream, metrics: Metrics },
    Event(EventBody),
}

/// A stamped message: what goes into the ring buffer and onto the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// Device time in ms since the Unix epoch.
    pub ts: i64,
    /// Per-device sequence number, assigned when the record is created (not when sent), so a
    /// replay keeps the original order and a dropped record leaves a visible gap.
    pub seq: u64,
    pub message: Message,
}
