//! JSON encoding of [`Record`]s into a caller's buffer, without allocation.
//!
//! The shapes are the ones `protocol::Telemetry` and `protocol::Event` decode:
//! telemetry `{"ts":..,"seq":..,"stream":"..","metrics":{..},"replayed":false}`,
//! event `{"ts":..,"seq":..,"event":"..","phase":"alarm","severity":"alarm","value":..,"message":".."}`.
//! Non-finite floats have no JSON form: such a metric is left out, such an event value omitted.

use core::fmt::Write;

use crate::protocol::{EventPhase, EventSeverity};
use crate::record::{Message, Record, Value};

/// The buffer was too small for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl core::fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("encode buffer too small")
    }
}

/// A buffer size that holds any record this crate produces.
pub const MAX_ENCODED_LEN: usize = 512;

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn string(w: &mut SliceWriter<'_>, s: &str) -> core::fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(w, "\\u{:04x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// Writes a float so that it always reads back as a float: `545.0`, never `545`. A metric whose
/// JSON type flips between integer and float would hit a field-type conflict in the time-series
/// database the gateway writes to.
fn float(w: &mut SliceWriter<'_>, f: f32) -> core::fmt::Result {
    if f == libm::truncf(f) {
        write!(w, "{f:.1}")
    } else {
        write!(w, "{f}")
    }
}

fn phase_str(p: EventPhase) -> &'static str {
    match p {
        EventPhase::Alarm => "alarm",
        EventPhase::Recovery => "recovery",
    }
}

fn severity_str(s: EventSeverity) -> &'static str {
    match s {
        EventSeverity::Info => "info",
        EventSeverity::Warning => "warning",
        EventSeverity::Alarm => "alarm",
    }
}

fn write_record(w: &mut SliceWriter<'_>, r: &Record, replayed: bool) -> core::fmt::Result {
    write!(w, "{{\"ts\":{},\"seq\":{},", r.ts, r.seq)?;
    match &r.message {
        Message::Telemetry { stream, metrics } => {
            w.write_str("\"stream\":")?;
            string(w, stream.as_str())?;
            w.write_str(",\"metrics\":{")?;
            let mut first = true;
            for (name, value) in metrics.iter() {
                if let Value::F32(f) = value
                    && !f.is_finite()
                {
                    continue;
                }
                if !first {
                    w.write_char(',')?;
                }
                first = false;
                string(w, name)?;
                w.write_char(':')?;
                match value {
                    Value::F32(f) => float(w, *f)?,
                    Value::U32(u) => write!(w, "{u}")?,
                    Value::Bool(b) => write!(w, "{b}")?,
                }
            }
            write!(w, "}},\"replayed\":{replayed}}}")
        }
        Message::Event(e) => {
            w.write_str("\"event\":")?;
            string(w, e.kind.as_str())?;
            write!(
                w,
                ",\"phase\":\"{}\",\"severity\":\"{}\"",
                phase_str(e.phase),
                severity_str(e.severity)
            )?;
            if let Some(v) = e.value.filter(|v| v.is_finite()) {
                w.write_str(",\"value\":")?;
                float(w, v)?;
            }
            if let Some(m) = e.message {
                w.write_str(",\"message\":")?;
                string(w, m)?;
            }
            if replayed {
                w.write_str(",\"replayed\":true")?;
            }
            w.write_char('}')
        }
    }
}

/// Writes `record` as JSON into `buf` and returns the length written. `replayed` marks a record
/// that waited in the store-and-forward buffer while the link was down.
pub fn encode(record: &Record, replayed: bool, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut w = SliceWriter { buf, len: 0 };
    write_record(&mut w, record, replayed).map_err(|_| BufferTooSmall)?;
    Ok(w.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventBody, EventKind, Metrics, Stream};

    fn telemetry() -> Record {
        Record {
            ts: 1_732_500_000_000,
            seq: 7,
            message: Message::Telemetry {
                stream: Stream::GreaseTrap,
                metrics: Metrics::new()
                    .with("level_mm", Value::F32(412.5))
                    .with("volume_l", Value::F32(240.0))
                    .with("battery_pct", Value::U32(88))
                    .with("bad", Value::F32(f32::NAN))
                    .with("open", Value::Bool(false)),
            },
        }
    }

    #[test]
    fn telemetry_has_the_wire_shape() {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = encode(&telemetry(), true, &mut buf).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"ts":1732500000000,"seq":7,"stream":"grease_trap","metrics":{"level_mm":412.5,"volume_l":240.0,"battery_pct":88,"open":false},"replayed":true}"#
        );
    }

    #[test]
    fn event_has_the_wire_shape() {
        let r = Record {
            ts: 5,
            seq: 9,
            message: Message::Event(EventBody {
                kind: EventKind::CoverOpen,
                phase: EventPhase::Alarm,
                severity: EventSeverity::Alarm,
                value: Some(1.0),
                message: Some("cover \"A\" open"),
            }),
        };
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = encode(&r, false, &mut buf).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"ts":5,"seq":9,"event":"cover_open","phase":"alarm","severity":"alarm","value":1.0,"message":"cover \"A\" open"}"#
        );
    }

    #[test]
    fn too_small_buffer_is_an_error_not_a_panic() {
        let mut buf = [0u8; 20];
        assert_eq!(encode(&telemetry(), false, &mut buf), Err(BufferTooSmall));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn owned_types_decode_what_the_firmware_encodes() {
        use crate::protocol::{Event, MetricValue, Telemetry};
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = encode(&telemetry(), false, &mut buf).unwrap();
        let t: Telemetry = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(t.seq, Some(7));
        assert_eq!(t.stream.as_deref(), Some("grease_trap"));
        assert_eq!(t.metrics["level_mm"], MetricValue::Float(412.5));
        assert_eq!(
            t.metrics["volume_l"],
            MetricValue::Float(240.0),
            "stays a float"
        );
        assert!(!t.replayed);
        let r = Record {
            ts: 1,
            seq: 2,
            message: Message::Event(EventBody {
                kind: EventKind::Tilt,
                phase: EventPhase::Recovery,
                severity: EventSeverity::Warning,
                value: Some(3.25),
                message: None,
            }),
        };
        let n = encode(&r, true, &mut buf).unwrap();
        let e: Event = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(e.event, "tilt");
        assert_eq!(e.phase, EventPhase::Recovery);
        assert_eq!(e.value, Some(3.25));
        assert!(e.replayed);
    }
}
