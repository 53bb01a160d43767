//! The native wire contract shared with our firmware (`firmware::protocol`).

use super::DecodeError;
use crate::reading::{Name, Names, Quality, Reading, Source, Value};
use crate::units;
use firmware::protocol::{
    Event, EventPhase, EventSeverity, MessageKind, NativeTopic, STATE_OFFLINE, STATE_ONLINE,
};

/// Stream used when a telemetry message does not name one.
pub(crate) const DEFAULT_STREAM: &str = "telemetry";
pub(crate) use crate::reading::{EVENT_STREAM, STATE_STREAM};

/// Decodes one native message. Names (site, device, stream, metric, unit) come from `names`,
/// so the readings of a device share their strings with every earlier message's.
#[cfg(test)]
pub fn decode(
    topic: &NativeTopic<'_>,
    payload: &[u8],
    received_ms: i64,
    names: &mut Names,
) -> Result<Vec<Reading>, DecodeError> {
    let (site, device) = (names.get(topic.site), names.get(topic.device));
    decode_as(topic, payload, received_ms, names, site, device)
}

/// [`decode`] with the topic's site and device already resolved to their shared names (the
/// decoder's device index does that with one lookup, `super::devices`).
pub(crate) fn decode_as(
    topic: &NativeTopic<'_>,
    payload: &[u8],
    received_ms: i64,
    names: &mut Names,
    site: Name,
    device: Name,
) -> Result<Vec<Reading>, DecodeError> {
    let base = |stream: Name, ts: Option<i64>, seq: Option<u64>| Reading {
        site: site.clone(),
        device: device.clone(),
        stream,
        metric: Name::default(),
        value: Value::Bool(false),
        unit: Name::default(),
        device_time_ms: ts.unwrap_or(received_ms),
        received_time_ms: received_ms,
        source: Source::Mqtt,
        sequence: seq,
        quality: Quality::default(),
    };
    match topic.kind {
        MessageKind::Telemetry => {
            // The plain shape devices send is read by hand (`super::scan`); anything else,
            // and every error, by serde_json: borrowed, one-pass decoding of the same
            // contract (see `super::wire`).
            let mut t = super::wire::Telemetry::default();
            if !super::scan::telemetry_into(payload, &mut t) {
                t = parse_json::<super::wire::Telemetry<'_>>(payload)?;
            }
            check_identity(topic, t.from.as_deref())?;
            if t.metrics.0.is_empty() {
                return Err(DecodeError::Empty);
            }
            let stream = t.stream.as_deref().unwrap_or(DEFAULT_STREAM);
            if stream.is_empty() {
                return Err(wrong("stream", "empty"));
            }
            let mut template = base(names.get(stream), t.ts, t.seq);
            template.quality.replayed = t.replayed;
            let mut out = Vec::with_capacity(t.metrics.0.len());
            // Drained rather than consumed: the pairs stay where they are, not moved out.
            for (name, v) in t.metrics.0.drain(..) {
                if name.is_empty() {
                    return Err(wrong("metrics", "empty metric name"));
                }
                let (value, unit) = convert(&name, v.into(), t.units.get(&name).map(|u| &**u))?;
                out.push(sibling(&template, names.get(&name), value, names.get(unit)));
            }
            Ok(out)
        }
        MessageKind::Event => {
            let e: Event = parse_json(payload)?;
            check_identity(topic, e.from.as_deref())?;
            if e.event.is_empty() {
                return Err(wrong("event", "empty"));
            }
            let mut template = base(names.get(EVENT_STREAM), e.ts, e.seq);
            // A replayed alarm or recovery keeps its device time like replayed telemetry: a
            // recovery buffered through a link outage, stamped with the receive time instead,
            // made a 34-minute sensor dropout look like a fault of over an hour.
            template.quality.replayed = e.replayed;
            let mut fields = vec![
                ("name", Value::Text(e.event)),
                (
                    "phase",
                    Value::Text(
                        match e.phase {
                            EventPhase::Alarm => "alarm",
                            EventPhase::Recovery => "recovery",
                        }
                        .into(),
                    ),
                ),
                (
                    "severity",
                    Value::Text(
                        match e.severity {
                            EventSeverity::Info => "info",
                            EventSeverity::Warning => "warning",
                            EventSeverity::Alarm => "alarm",
                        }
                        .into(),
                    ),
                ),
            ];
            if let Some(v) = e.value {
                if !v.is_finite() {
                    return Err(wrong("value", "not a finite number"));
                }
                fields.push(("value", Value::Float(v)));
            }
            if let Some(m) = e.message {
                fields.push(("message", Value::Text(m)));
            }
            Ok(fields
                .into_iter()
                .map(|(metric, value)| Reading {
                    metric: names.get(metric),
                    value,
                    ..template.clone()
                })
                .collect())
        }
        MessageKind::State => {
            let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
            let online = match text.trim() {
                STATE_ONLINE => true,
                STATE_OFFLINE => false,
                other => {
                    return Err(DecodeError::BadState(other.chars().take(32).collect()));
                }
            };
            Ok(vec![Reading {
                metric: names.get("online"),
                value: Value::Bool(online),
                ..base(names.get(STATE_STREAM), None, None)
            }])
        }
    }
}

/// Refuses a message whose broker-supplied publisher identity (`from`, the login
/// `{site}/{device}`) is not the topic's device: a device publishing as another one. Brokers
/// that cannot add the identity (mosquitto) enforce the same rule with their ACL instead.
fn check_identity(topic: &NativeTopic<'_>, from: Option<&str>) -> Result<(), DecodeError> {
    let Some(from) = from else { return Ok(()) };
    let matches = from
        .split_once('/')
        .is_some_and(|(site, device)| site == topic.site && device == topic.device);
    if matches {
        Ok(())
    } else {
        Err(DecodeError::IdentityMismatch {
            from: from.chars().take(130).collect(),
            topic: format!("{}/{}", topic.site, topic.device),
        })
    }
}

fn parse_json<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            // Valid JSON, wrong shape: missing field, wrong type, unknown field.
            DecodeError::WrongType {
                field: "payload".into(),
                detail: e.to_string(),
            }
        } else {
            DecodeError::BadJson(e.to_string())
        }
    })
}

fn wrong(field: &str, detail: &str) -> DecodeError {
    DecodeError::WrongType {
        field: field.into(),
        detail: detail.into(),
    }
}

/// Converts a metric to its canonical unit (empty when it has none). Unknown units are an
/// error rather than a silent mix of mm and cm in one series.
fn convert(name: &str, v: Value, unit: Option<&str>) -> Result<(Value, &'static str), DecodeError> {
    let value = match v {
        // JSON does not distinguish 88 from 88.0; a device that sends both would otherwise
        // produce a field-type conflict in the database. Numbers are always floats.
        Value::Int(i) => Value::Float(i as f64),
        other => other,
    };
    let Some(unit) = unit else {
        return Ok((value, ""));
    };
    let conv = units::canonical(unit)
        .ok_or_else(|| wrong(&format!("units.{name}"), &format!("unknown unit `{unit}`")))?;
    let value = match value {
        // A finite number can overflow once converted (1e308 m in mm): an infinity would reach
        // the rules' windows and saved state, which JSON cannot hold.
        Value::Float(f) => match conv.apply(f) {
            v if v.is_finite() => Value::Float(v),
            _ => return Err(wrong(name, "out of range once converted to its unit")),
        },
        other => other,
    };
    Ok((value, conv.canonical))
}

/// A reading of the same message as `template` (same site, device, stream, times and flags)
/// for another metric. Spelled out rather than `..template.clone()`, which cloned the
/// template's metric, value and unit only to drop them again: two reference counts of the one
/// shared empty name, touched from every thread, per reading (issue 24).
fn sibling(template: &Reading, metric: Name, value: Value, unit: Name) -> Reading {
    Reading {
        site: template.site.clone(),
        device: template.device.clone(),
        stream: template.stream.clone(),
        metric,
        value,
        unit,
        device_time_ms: template.device_time_ms,
        received_time_ms: template.received_time_ms,
        source: template.source,
        sequence: template.sequence,
        quality: template.quality,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(kind: &str) -> String {
        format!("v1/r1/trap1/{kind}")
    }

    fn dec(kind: &str, payload: &str) -> Result<Vec<Reading>, DecodeError> {
        let t = topic(kind);
        decode(
            &NativeTopic::parse(&t).unwrap(),
            payload.as_bytes(),
            5_000,
            &mut Names::new(),
        )
    }

    #[test]
    fn telemetry_becomes_one_reading_per_metric_with_units_converted() {
        let r = dec(
            "telemetry",
            r#"{"ts":1000,"seq":3,"stream":"grease_trap","units":{"level":"cm"},"metrics":{"level":41.2,"battery":88}}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        let level = r.iter().find(|r| r.metric == "level").unwrap();
        assert_eq!(level.value, Value::Float(412.0));
        assert_eq!(level.unit, "mm");
        assert_eq!(level.device_time_ms, 1000);
        assert_eq!(level.sequence, Some(3));
        assert_eq!(level.stream, "grease_trap");
        let battery = r.iter().find(|r| r.metric == "battery").unwrap();
        assert_eq!(battery.value, Value::Float(88.0));
    }

    /// A finite number that overflows once converted (1e308 m in mm) is refused, not turned
    /// into an infinity that the rules' saved state could not hold.
    #[test]
    fn a_number_that_overflows_once_converted_is_refused() {
        let err = dec(
            "telemetry",
            r#"{"ts":1000,"units":{"level":"m"},"metrics":{"level":1e308}}"#,
        );
        assert!(
            matches!(&err, Err(DecodeError::WrongType { field, .. }) if field == "level"),
            "{err:?}"
        );
        let ok = dec(
            "telemetry",
            r#"{"ts":1000,"units":{"level":"m"},"metrics":{"level":1.5}}"#,
        )
        .unwrap();
        assert_eq!(ok[0].value, Value::Float(1500.0));
    }

    #[test]
    fn replayed_events_and_telemetry_are_marked_replayed() {
        for (kind, payload) in [
            (
                "event",
                r#"{"ts":1000,"event":"sensor_fault","phase":"recovery","replayed":true}"#,
            ),
            (
                "telemetry",
                r#"{"ts":1000,"metrics":{"x":1},"replayed":true}"#,
            ),
        ] {
            let r = dec(kind, payload).unwrap();
            assert!(r.iter().all(|r| r.quality.replayed), "{kind}: {r:?}");
        }
        let live = dec(
            "event",
            r#"{"ts":1000,"event":"sensor_fault","phase":"alarm"}"#,
        )
        .unwrap();
        assert!(live.iter().all(|r| !r.quality.replayed));
    }

    /// Readings of one device share their names with the device's earlier messages (one
    /// allocation per distinct text, not four or five per reading).
    #[test]
    fn names_are_shared_across_messages() {
        let mut names = Names::new();
        let t = topic("telemetry");
        let topic = NativeTopic::parse(&t).unwrap();
        let payload = br#"{"ts":1000,"stream":"grease_trap","units":{"level":"cm"},"metrics":{"level":41.2,"battery":88}}"#;
        let a = decode(&topic, payload, 5_000, &mut names).unwrap();
        let b = decode(&topic, payload, 6_000, &mut names).unwrap();
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x,
                &Reading {
                    received_time_ms: 5_000,
                    ..y.clone()
                }
            );
            for (p, q) in [
                (&x.site, &y.site),
                (&x.device, &y.device),
                (&x.stream, &y.stream),
                (&x.metric, &y.metric),
                (&x.unit, &y.unit),
            ] {
                assert!(std::ptr::eq(p.as_str(), q.as_str()), "{p} not shared");
            }
        }
        let level = a.iter().find(|r| r.metric == "level").unwrap();
        assert_eq!(level.unit, "mm");
        assert_eq!(names.len(), 6, "r1, trap1, grease_trap, battery, level, mm");
    }

    #[test]
    fn missing_time_uses_receive_time_and_default_stream() {
        let r = dec("telemetry", r#"{"metrics":{"x":1}}"#).unwrap();
        assert_eq!(r[0].device_time_ms, 5_000);
        assert_eq!(r[0].stream, DEFAULT_STREAM);
    }

    #[test]
    fn malformed_payloads_are_classified() {
        assert_eq!(
            dec("telemetry", "{not json").unwrap_err().reason(),
            "bad_json"
        );
        assert_eq!(
            dec("telemetry", r#"{"metrics":{"x":[1]}}"#)
                .unwrap_err()
                .reason(),
            "wrong_type"
        );
        assert_eq!(
            dec("telemetry", r#"{"metrics":"x"}"#).unwrap_err().reason(),
            "wrong_type"
        );
        assert_eq!(
            dec("telemetry", r#"{"metrics":{}}"#).unwrap_err(),
            DecodeError::Empty
        );
        assert_eq!(
            dec("telemetry", r#"{"metrics":{"x":1},"units":{"x":"parsec"}}"#)
                .unwrap_err()
                .reason(),
            "wrong_type"
        );
        assert_eq!(dec("state", "maybe").unwrap_err().reason(), "bad_state");
        assert_eq!(
            decode(
                &NativeTopic::parse("v1/a/b/state").unwrap(),
                &[0xff, 0xfe],
                0,
                &mut Names::new()
            )
            .unwrap_err(),
            DecodeError::NotUtf8
        );
    }

    #[test]
    fn a_publisher_identity_that_contradicts_the_topic_is_refused() {
        let ok = dec("telemetry", r#"{"from":"r1/trap1","metrics":{"level":1}}"#);
        assert_eq!(ok.unwrap().len(), 1);
        for from in ["r1/trap2", "r2/trap1", "trap1", "r1/trap1/x", ""] {
            let payload = format!(r#"{{"from":"{from}","metrics":{{"level":1}}}}"#);
            let err = dec("telemetry", &payload).unwrap_err();
            assert_eq!(err.reason(), "identity_mismatch", "{from}: {err}");
            let event = format!(r#"{{"from":"{from}","event":"cover_open","phase":"alarm"}}"#);
            assert_eq!(
                dec("event", &event).unwrap_err().reason(),
                "identity_mismatch"
            );
        }
    }

    #[test]
    fn events_and_state_decode() {
        let r = dec(
            "event",
            r#"{"ts":9,"seq":1,"event":"cover_open","phase":"alarm","value":12.5}"#,
        )
        .unwrap();
        assert!(r.iter().all(|r| r.stream == EVENT_STREAM));
        assert!(
            r.iter()
                .any(|r| r.metric == "name" && r.value == Value::Text("cover_open".into()))
        );
        assert!(
            r.iter()
                .any(|r| r.metric == "severity" && r.value == Value::Text("alarm".into()))
        );
        let s = dec("state", "offline").unwrap();
        assert_eq!(s[0].value, Value::Bool(false));
        assert_eq!(s[0].stream, STATE_STREAM);
    }
}
