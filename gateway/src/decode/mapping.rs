//! Third-party payloads mapped by config: a topic pattern with named segments plus field paths,
//! like Telegraf's `topic_parsing`. A new sensor model is a config change, not a code change.

/// One level of a topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Site,
    Device,
    /// `+` or `{anything_else}`: matches one level, value ignored.
    Any,
}

/// A compiled topic pattern such as `milesight/{site}/{device}/uplink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    levels: Vec<Level>,
}

impl TopicPattern {
    /// Compiles `pattern`; `{site}` / `{device}` are required unless fixed by the mapping.
    pub fn parse(pattern: &str, site_fixed: bool, device_fixed: bool) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty topic pattern".into());
        }
        let mut levels = Vec::new();
        for l in pattern.split('/') {
            let level = match l {
                "{site}" => Level::Site,
                "{device}" => Level::Device,
                "+" => Level::Any,
                "#" => {
                    return Err("`#` is not allowed in a mapping pattern; use `+` per level".into());
                }
                _ if l.starts_with('{') && l.ends_with('}') && l.len() > 2 => Level::Any,
                _ if l.contains(['{', '}', '+', '#']) => {
                    return Err(format!("level `{l}` mixes a placeholder with text"));
                }
                _ => Level::Literal(l.to_string()),
            };
            levels.push(level);
        }
        let count = |want: &Level| levels.iter().filter(|l| *l == want).count();
        for (name, lvl, fixed) in [
            ("site", Level::Site, site_fixed),
            ("device", Level::Device, device_fixed),
        ] {
            match count(&lvl) {
                0 if !fixed => {
                    return Err(format!("pattern has no `{{{name}}}` and no fixed `{name}`"));
                }
                n if n > 1 => return Err(format!("`{{{name}}}` appears {n} times")),
                _ => {}
            }
        }
        Ok(TopicPattern { levels })
    }

    /// Matches a concrete topic, returning the (site, device) segments found in it.
    pub fn matches<'t>(&self, topic: &'t str) -> Option<(Option<&'t str>, Option<&'t str>)> {
        let mut site = None;
        let mut device = None;
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = parts.next()?;
            match level {
                Level::Literal(l) if l != part => return None,
                Level::Literal(_) | Level::Any => {}
                Level::Site => site = Some(part),
                Level::Device => device = Some(part),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some((site, device))
    }
}

use super::DecodeError;
use crate::config::{MappingConfig, PayloadFormat};
use crate::reading::{Quality, Reading, Source, Value};
use crate::units::{self, Conversion};

/// A compiled third-party mapping.
pub struct Mapping {
    cfg: MappingConfig,
    pattern: TopicPattern,
    conversions: Vec<Conversion>,
}

impl Mapping {
    pub fn new(cfg: &MappingConfig) -> Result<Mapping, String> {
        let pattern = TopicPattern::parse(&cfg.topic, cfg.site.is_some(), cfg.device.is_some())?;
        let conversions = cfg
            .fields
            .iter()
            .map(|f| {
                let unit = f.unit.as_deref().unwrap_or("");
                units::canonical(unit).ok_or_else(|| format!("unknown unit `{unit}`"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Mapping {
            cfg: cfg.clone(),
            pattern,
            conversions,
        })
    }

    /// `None` when the topic is not this mapping's; otherwise the decoded readings or why not.
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Option<Result<Vec<Reading>, DecodeError>> {
        let (site, device) = self.pattern.matches(topic)?;
        let site = site.or(self.cfg.site.as_deref())?;
        let device = device.or(self.cfg.device.as_deref())?;
        if !firmware::protocol::valid_segment(site) || !firmware::protocol::valid_segment(device) {
            return Some(Err(DecodeError::UnknownTopic));
        }
        Some(self.decode_payload(site, device, payload, received_ms))
    }

    fn decode_payload(
        &self,
        site: &str,
        device: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Vec<Reading>, DecodeError> {
        let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
        let json = match self.cfg.format {
            PayloadFormat::Json => Some(
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| DecodeError::BadJson(e.to_string()))?,
            ),
            PayloadFormat::Number => None,
        };
        let (mut ts, mut seq) = (None, None);
        if let Some(j) = &json {
            if let Some(path) = &self.cfg.time_field {
                let v = lookup(j, path).ok_or_else(|| DecodeError::MissingField(path.clone()))?;
                let n = as_number(v).ok_or_else(|| wrong(path, "not a number"))?;
                let ms = if self.cfg.time_unit == "s" {
                    n * 1000.0
                } else {
                    n
                };
                if !ms.is_finite() || ms.abs() > 1e15 {
                    return Err(wrong(path, "time out of range"));
                }
                ts = Some(ms as i64);
            }
            if let Some(path) = &self.cfg.seq_field {
                let v = lookup(j, path).ok_or_else(|| DecodeError::MissingField(path.clone()))?;
                seq = Some(
                    v.as_u64()
                        .ok_or_else(|| wrong(path, "not an unsigned integer"))?,
                );
            }
        }
        let mut out = Vec::with_capacity(self.cfg.fields.len());
        for (f, conv) in self.cfg.fields.iter().zip(&self.conversions) {
            let raw = match &json {
                None => {
                    let n: f64 = text
                        .trim()
                        .parse()
                        .map_err(|_| wrong("payload", "not a number"))?;
                    if !n.is_finite() {
                        return Err(wrong("payload", "not a finite number"));
                    }
                    Value::Float(n)
                }
                Some(j) => match lookup(j, &f.path) {
                    None | Some(serde_json::Value::Null) if f.optional => continue,
                    None | Some(serde_json::Value::Null) => {
                        return Err(DecodeError::MissingField(f.path.clone()));
                    }
                    Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                    Some(v @ serde_json::Value::Number(_)) => {
                        Value::Float(as_number(v).ok_or_else(|| wrong(&f.path, "not finite"))?)
                    }
                    Some(serde_json::Value::String(s)) => match s.trim().parse::<f64>() {
                        Ok(n) if n.is_finite() => Value::Float(n),
                        _ => Value::Text(s.clone()),
                    },
                    Some(_) => return Err(wrong(&f.path, "an object or array, not a value")),
                },
            };
            let value = match raw {
                Value::Float(n) => Value::Float(conv.apply(n * f.scale + f.offset)),
                other => other,
            };
            out.push(Reading {
                site: site.to_string(),
                device: device.to_string(),
                stream: self.cfg.stream.clone(),
                metric: f.metric.clone(),
                value,
                unit: conv.canonical.to_string(),
                device_time_ms: ts.unwrap_or(received_ms),
                received_time_ms: received_ms,
                source: Source::Mqtt,
                sequence: seq,
                quality: Quality::default(),
            });
        }
        if out.is_empty() {
            return Err(DecodeError::Empty);
        }
        Ok(out)
    }
}

fn wrong(field: &str, detail: &str) -> DecodeError {
    DecodeError::WrongType {
        field: field.into(),
        detail: detail.into(),
    }
}

fn as_number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().filter(|n| n.is_finite())
}

/// Follows a dotted path (`data.items.0.v`) through objects and arrays.
fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(v, |cur, key| match cur {
        serde_json::Value::Object(m) => m.get(key),
        serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn mappings() -> Vec<Mapping> {
        let cfg = Config::from_toml(
            r#"
[[mappings]]
name = "milesight-em310-udl"
topic = "milesight/{site}/{device}/uplink"
format = "json"
stream = "grease_trap"
time_field = "time"
time_unit = "s"
[[mappings.fields]]
path = "object.distance"
metric = "distance"
unit = "mm"
[[mappings.fields]]
path = "object.battery"
metric = "battery"
unit = "%"
optional = true

[[mappings]]
name = "plain-level-cm"
topic = "plain/{site}/{device}/level"
format = "number"
stream = "grease_trap"
[[mappings.fields]]
metric = "level"
unit = "cm"
scale = 0.1
"#,
        )
        .unwrap();
        cfg.mappings
            .iter()
            .map(|m| Mapping::new(m).unwrap())
            .collect()
    }

    #[test]
    fn topic_pattern_extracts_site_and_device() {
        let p = TopicPattern::parse("a/{site}/+/{device}", false, false).unwrap();
        assert_eq!(p.matches("a/s1/x/d1"), Some((Some("s1"), Some("d1"))));
        assert_eq!(p.matches("a/s1/x"), None);
        assert_eq!(p.matches("a/s1/x/d1/extra"), None);
        assert!(TopicPattern::parse("a/{device}", false, false).is_err());
        assert!(TopicPattern::parse("a/#", true, true).is_err());
    }

    #[test]
    fn milesight_em310_udl_payload() {
        let m = &mappings()[0];
        let payload =
            br#"{"time":1732500000,"object":{"distance":1250,"battery":84,"position":"normal"}}"#;
        let r = m
            .decode("milesight/r7/udl-1/uplink", payload, 0)
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].site.as_str(), r[0].device.as_str()), ("r7", "udl-1"));
        assert_eq!(r[0].value, Value::Float(1250.0));
        assert_eq!(r[0].unit, "mm");
        assert_eq!(r[0].device_time_ms, 1_732_500_000_000);
        // Optional battery missing is fine; required distance missing is not.
        let r = m
            .decode(
                "milesight/r7/udl-1/uplink",
                br#"{"time":1,"object":{"distance":5}}"#,
                0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 1);
        let e = m
            .decode("milesight/r7/udl-1/uplink", br#"{"time":1,"object":{}}"#, 0)
            .unwrap()
            .unwrap_err();
        assert_eq!(e, DecodeError::MissingField("object.distance".into()));
        assert!(m.decode("other/r7/udl-1/uplink", b"{}", 0).is_none());
    }

    #[test]
    fn plain_number_payload_is_scaled_then_converted() {
        let m = &mappings()[1];
        let r = m.decode("plain/s/d/level", b" 412 ", 77).unwrap().unwrap();
        // 412 * 0.1 cm = 41.2 cm = 412 mm
        assert!(matches!(r[0].value, Value::Float(v) if (v - 412.0).abs() < 1e-9));
        assert_eq!(r[0].device_time_ms, 77);
        assert!(m.decode("plain/s/d/level", b"abc", 0).unwrap().is_err());
        assert!(m.decode("plain/s/d/level", b"NaN", 0).unwrap().is_err());
    }
}
