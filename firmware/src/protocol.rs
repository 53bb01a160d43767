//! The native MQTT wire contract (`v1/{site}/{device}/telemetry|event|state`).
//!
//! Topic parsing and the borrowed types work without allocation; the owned message types
//! (behind the `alloc` feature) are what hosts decode into.

use serde::{Deserialize, Serialize};

/// First topic level of every native topic; bumped only on an incompatible change.
pub const TOPIC_VERSION: &str = "v1";

/// Payload of the retained `state` topic and of the device's last will.
pub const STATE_ONLINE: &str = "online";
/// See [`STATE_ONLINE`].
pub const STATE_OFFLINE: &str = "offline";

/// Which of the three native message kinds a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Periodic or on-change measurements.
    Telemetry,
    /// Alarm and recovery notifications.
    Event,
    /// Retained `online` / `offline` presence.
    State,
}

impl MessageKind {
    /// The last topic level for this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Telemetry => "telemetry",
            MessageKind::Event => "event",
            MessageKind::State => "state",
        }
    }
}

/// A parsed native topic, borrowing from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeTopic<'a> {
    pub site: &'a str,
    pub device: &'a str,
    pub kind: MessageKind,
}

impl<'a> NativeTopic<'a> {
    /// Parses `v1/{site}/{device}/{kind}`; anything else (extra levels, empty or wildcard
    /// segments, another version) is not a native topic.
    pub fn parse(topic: &'a str) -> Option<Self> {
        // `split_once` rather than a `split` iterator: this runs for every message the gateway
        // receives, and the iterator cost ~800 instructions a topic (issue 24). A kind holding
        // another `/` matches none of the kinds below, so exactly four segments are accepted.
        let (version, rest) = topic.split_once('/')?;
        let (site, rest) = rest.split_once('/')?;
        let (device, kind) = rest.split_once('/')?;
        if version != TOPIC_VERSION {
            return None;
        }
        if !valid_segment(site) || !valid_segment(device) {
            return None;
        }
        let kind = match kind {
            "telemetry" => MessageKind::Telemetry,
            "event" => MessageKind::Event,
            "state" => MessageKind::State,
            _ => return None,
        };
        Some(NativeTopic { site, device, kind })
    }
}

/// A site or device id: non-empty, no MQTT wildcards, at most 64 bytes.
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// Severity of an event as the device judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    Info,
    Warning,
    Alarm,
}

/// Whether an event starts or ends a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventPhase {
    /// The condition began (cover opened, level high, camera fault).
    Alarm,
    /// The condition ended.
    Recovery,
}

#[cfg(feature = "alloc")]
pub use owned::*;

#[cfg(feature = "alloc")]
mod owned {
    use super::{EventPhase, EventSeverity};
    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use serde::{Deserialize, Serialize};

    /// One metric value: devices send numbers, booleans (switches) or short strings (modes).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum MetricValue {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }

    /// `v1/{site}/{device}/telemetry`: `{"ts": 1732500000000, "seq": 7, "metrics": {...}}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Telemetry {
        /// Device time, milliseconds since the Unix epoch. Absent on devices without a clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ts: Option<i64>,
        /// Per-device message counter; lets the gateway count losses and drop duplicates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub seq: Option<u64>,
        /// Which stream (time-series measurement) the metrics belong to, e.g. `grease_trap`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stream: Option<String>,
        /// Units by metric name, for metrics not in the device's default unit.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub units: BTreeMap<String, String>,
        pub metrics: BTreeMap<String, MetricValue>,
        /// Store-and-forward replay marker: the message was buffered on the device.
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        pub replayed: bool,
        /// The publisher's authenticated identity (`{site}/{device}`, the broker login) where the
        /// broker adds it (e.g. an EMQX republish rule with `${username}`); devices do not set
        /// it. A gateway refuses a message whose identity contradicts its topic.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<String>,
    }

    /// `v1/{site}/{device}/event`: an alarm or its recovery.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Event {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ts: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub seq: Option<u64>,
        /// What happened, e.g. `cover_open`, `tilt`, `level_high`, `camera_fault`.
        pub event: String,
        pub phase: EventPhase,
        #[serde(default = "default_severity")]
        pub severity: EventSeverity,
        /// The measurement that triggered the event, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub value: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message: Option<String>,
        /// Store-and-forward replay marker, as on [`Telemetry`]. Optional on the wire.
        #[serde(default, skip_serializing_if = "core::ops::Not::not")]
        pub replayed: bool,
        /// As on [`Telemetry`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<String>,
    }

    fn default_severity() -> EventSeverity {
        EventSeverity::Alarm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_native_topics() {
        let t = NativeTopic::parse("v1/r-12/trap-1/telemetry").unwrap();
        assert_eq!(
            (t.site, t.device, t.kind),
            ("r-12", "trap-1", MessageKind::Telemetry)
        );
        assert_eq!(
            NativeTopic::parse("v1/a/b/state").unwrap().kind,
            MessageKind::State
        );
        for bad in [
            "v2/a/b/telemetry",
            "v1/a/telemetry",
            "v1/a/b/c/telemetry",
            "v1//b/event",
            "v1/a/b/other",
            "v1/+/b/event",
        ] {
            assert_eq!(NativeTopic::parse(bad), None, "{bad}");
        }
    }

    /// The parser before `split_once` (issue 24), the reference for the one above.
    #[cfg(feature = "std")]
    fn parse_with_split(topic: &str) -> Option<NativeTopic<'_>> {
        let mut parts = topic.split('/');
        let (version, site, device, kind) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != TOPIC_VERSION {
            return None;
        }
        let valid = |s: &str| !s.is_empty() && s.len() <= 64 && !s.contains(['+', '#', '\0']);
        if !valid(site) || !valid(device) {
            return None;
        }
        let kind = match kind {
            "telemetry" => MessageKind::Telemetry,
            "event" => MessageKind::Event,
            "state" => MessageKind::State,
            _ => return None,
        };
        Some(NativeTopic { site, device, kind })
    }

    /// Every topic made of four to six pieces from a set of awkward ones is parsed as before.
    #[cfg(feature = "std")]
    #[test]
    fn parses_as_the_split_parser_did() {
        use std::format;
        let long = "x".repeat(64);
        let longer = "x".repeat(65);
        let pieces = [
            "v1",
            "v2",
            "",
            "a",
            "r-12",
            "a+b",
            "#",
            "a\0",
            "é",
            long.as_str(),
            longer.as_str(),
            "telemetry",
            "event",
            "state",
            "states",
            "v1/a",
            "b/telemetry",
        ];
        let mut checked = 0;
        let mut accepted = 0;
        let mut topic = [0usize; 4];
        for n in 0..pieces.len().pow(4) {
            let mut k = n;
            for slot in &mut topic {
                *slot = k % pieces.len();
                k /= pieces.len();
            }
            let base = topic.map(|i| pieces[i]).join("/");
            for t in [base.clone(), format!("{base}/"), format!("{base}/state")] {
                let want = parse_with_split(&t);
                assert_eq!(NativeTopic::parse(&t), want, "{t:?}");
                checked += 1;
                accepted += usize::from(want.is_some());
            }
        }
        assert!(checked > 80_000 && accepted > 200, "{checked} {accepted}");
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn telemetry_round_trips_and_rejects_unknown_fields() {
        let json = r#"{"ts":1732500000000,"seq":7,"metrics":{"level_mm":412.5,"battery":88,"open":false,"mode":"auto"}}"#;
        let t: Telemetry = serde_json::from_str(json).unwrap();
        assert_eq!(t.seq, Some(7));
        assert_eq!(t.metrics["battery"], MetricValue::Int(88));
        assert_eq!(t.metrics["level_mm"], MetricValue::Float(412.5));
        assert_eq!(t.metrics["open"], MetricValue::Bool(false));
        let back: Telemetry = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<Telemetry>(r#"{"metrics":{},"bogus":1}"#).is_err());
    }
}
