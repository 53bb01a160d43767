//! The producer-to-pool contract: one [`ClueSignal`] per observed occurrence or clearance.

use crate::reading::Value;
use serde::{Deserialize, Serialize};

/// Risk level of a clue; producers set the base level, the pool may raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// What a clue is about. `site` is always set (it scopes who may see the clue).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Subject {
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Vehicle plate, when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// WGS84 position, when known (drone findings, fixed cameras, or the device's registry
    /// entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    /// The shop or restaurant the device belongs to (device registry), as it was registered
    /// when the clue opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    /// Who answers for the device's site (device registry), as registered when the clue
    /// opened: the owner a reviewer tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// One reading kept as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceReading {
    pub device: String,
    pub stream: String,
    pub metric: String,
    pub value: Value,
    pub unit: String,
    pub device_time_ms: i64,
}

/// A box of an evidence image that may show personal data, in pixels of that image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// `plate` (a plate box), `person` (a COCO person box: the head is in its upper part) or
    /// `vehicle` (a vehicle box: its plate may be there even when none was read).
    pub kind: String,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// Evidence attached to an occurrence. The pool stores files content-addressed by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// The readings window around the trigger.
    Readings {
        from_ms: i64,
        to_ms: i64,
        readings: Vec<EvidenceReading>,
    },
    /// An image (frame, crop) or other file.
    File {
        name: String,
        content_type: String,
        #[serde(with = "serde_bytes_as_vec")]
        bytes: Vec<u8>,
        /// Personal-data regions of an image, as known when it was taken (plates, people,
        /// vehicles). `None`: nobody looked, so a role without the personal-data right gets
        /// the whole image masked (see `clue::privacy`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        regions: Option<Vec<Region>>,
    },
    /// A short machine-written explanation.
    Note { text: String },
}

/// Keeps `bytes` a plain JSON array without an extra dependency (the pool never serializes
/// files into JSON; this only matters for debugging output).
mod serde_bytes_as_vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub(crate) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        b.serialize(s)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// An occurrence of a condition a rule watches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClueEvent {
    /// Rule id from config (e.g. `trap-night-drop`); with the subject it forms the dedup key.
    pub rule: String,
    /// Category for filters and statistics, e.g. `grease_trap.illegal_discharge`,
    /// `manhole.cover_open`, `camera.black`, `parking.overstay`.
    pub kind: String,
    pub level: Level,
    pub subject: Subject,
    /// One open clue per key: repeats attach as occurrences. Usually `rule/site/device`.
    pub dedup_key: String,
    /// When the condition was observed (device time, ms since the epoch).
    pub at_ms: i64,
    /// One line for people, e.g. "Trap level fell 310 L at 02:14 with no pump-out on record".
    pub title: String,
    /// Rule-specific figures (thresholds, measured values, durations).
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// The department expected to handle it (e.g. `water`, `city-management`, `market`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Departments assisting the lead (set by the pool's dispatch, see `clue::org`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assisting: Vec<String>,
}

impl ClueEvent {
    /// The conventional dedup key: `rule/site[/device][/plate]`.
    pub fn default_key(rule: &str, subject: &Subject) -> String {
        let mut k = format!("{rule}/{}", subject.site);
        for part in [&subject.device, &subject.plate].into_iter().flatten() {
            k.push('/');
            k.push_str(part);
        }
        k
    }
}

/// What producers send to the pool.
// Signals move once through a channel; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum ClueSignal {
    /// The condition was seen (first time or again).
    Occurrence(ClueEvent),
    /// The condition ended (cover closed, camera back). The pool records it on the open clue;
    /// it never closes a clue by itself: people do.
    Cleared {
        dedup_key: String,
        at_ms: i64,
        note: String,
    },
}

/// Sending half of the channel into the clue pool.
pub(crate) type ClueSender = tokio::sync::mpsc::Sender<ClueSignal>;
