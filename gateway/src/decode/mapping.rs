//! Third-party payloads mapped by config: a topic pattern with named segments plus field paths,
//! like Telegraf's `topic_parsing`. A new sensor model is a config change, not a code change.
//!
//! Identity: `{site}` and `{device}` from the topic (or fixed in the mapping), or a DevEUI from
//! the topic (`{dev_eui}`) or the payload (`dev_eui_field`) that the device registry turns into
//! site and device; an unregistered DevEUI follows `[registry] unregistered`. Time: numbers
//! (ms or s) or RFC 3339 text (`time_format`), errors name the field.

/// One level of a topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Site,
    Device,
    DevEui,
    /// `+` or `{anything_else}`: matches one level, value ignored.
    Any,
}

/// A compiled topic pattern such as `milesight/{site}/{device}/uplink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    levels: Vec<Level>,
}

/// The named segments a topic matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Captures<'t> {
    pub site: Option<&'t str>,
    pub device: Option<&'t str>,
    pub dev_eui: Option<&'t str>,
}

impl TopicPattern {
    /// Compiles `pattern`. `{site}` / `{device}` are required unless fixed by the mapping or the
    /// device is named by DevEUI (`{dev_eui}` here, or `eui_field`).
    pub(crate) fn parse(
        pattern: &str,
        site_fixed: bool,
        device_fixed: bool,
        eui_field: bool,
    ) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty topic pattern".into());
        }
        let mut levels = Vec::new();
        for l in pattern.split('/') {
            let level = match l {
                "{site}" => Level::Site,
                "{device}" => Level::Device,
                "{dev_eui}" => Level::DevEui,
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
        let by_eui = eui_field || count(&Level::DevEui) > 0;
        for (name, lvl, fixed) in [
            ("site", Level::Site, site_fixed || by_eui),
            ("device", Level::Device, device_fixed || by_eui),
            ("dev_eui", Level::DevEui, true),
        ] {
            match count(&lvl) {
                0 if !fixed => {
                    return Err(format!(
                        "pattern has no `{{{name}}}`, no fixed `{name}` and no DevEUI \
                         (`{{dev_eui}}` or `dev_eui_field`)"
                    ));
                }
                n if n > 1 => return Err(format!("`{{{name}}}` appears {n} times")),
                _ => {}
            }
        }
        Ok(TopicPattern { levels })
    }

    /// Matches a concrete topic, returning the named segments found in it.
    pub(crate) fn matches<'t>(&self, topic: &'t str) -> Option<Captures<'t>> {
        let mut c = Captures::default();
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = parts.next()?;
            match level {
                Level::Literal(l) if l != part => return None,
                Level::Literal(_) | Level::Any => {}
                Level::Site => c.site = Some(part),
                Level::Device => c.device = Some(part),
                Level::DevEui => c.dev_eui = Some(part),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(c)
    }
}

use super::DecodeError;
use crate::config_error::{ConfigError, invalid};
use crate::reading::{Name, Quality, Reading, Source, Value};
use crate::registry::{EuiOutcome, Registry};
use crate::units::{self, Conversion};

/// How a third-party payload is parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A JSON object; fields are picked by dotted paths (`data.distance`, `items.0.v`).
    #[default]
    Json,
    /// The payload is one number in ASCII (`412.5`).
    Number,
}

/// How a mapping's `time_field` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFormat {
    /// Milliseconds since the epoch (a number or a numeric string).
    Ms,
    /// Seconds since the epoch (may have a fraction).
    S,
    /// RFC 3339 text, `2022-07-18T09:34:15.775023242+00:00` or `...Z`.
    Rfc3339,
    /// Text is RFC 3339; a number is seconds below 1e11 (before the year 5138) and
    /// milliseconds from there on (after March 1973).
    Auto,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    pub name: String,
    /// A network server's uplink format (`chirpstack-v4`, `tts-v3`): fills `topic`,
    /// `time_field`, `time_format`, `dev_eui_field`, `seq_field` and `payload_root` where this
    /// entry leaves them unset (see `decode::presets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<crate::decode::presets::Preset>,
    /// A vendor decoder's fields (`milesight-em310-udl`, `milesight-em320-tilt`): fills
    /// `stream` and, when none are listed, `fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<crate::decode::presets::Codec>,
    /// MQTT topic with named segments, e.g. `milesight/{site}/{device}/uplink`. `{site}` and
    /// `{device}` are required unless fixed below or the device is found by DevEUI
    /// (`{dev_eui}` in the topic or `dev_eui_field`); `+` matches and ignores one level.
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub format: PayloadFormat,
    /// Measurement name for the readings.
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    /// Path of the device's DevEUI in the payload (`deviceInfo.devEui`); the registry turns
    /// it into site and device (`[registry]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_eui_field: Option<String>,
    /// Path of the device time field.
    #[serde(default)]
    pub time_field: Option<String>,
    /// How `time_field` is written; unset: `time_unit` decides (ms or s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<TimeFormat>,
    /// Older spelling of `time_format` for numbers: `"ms"` (default) or `"s"`.
    #[serde(default = "default_time_unit")]
    pub time_unit: String,
    /// Path of a sequence number field (frame counter); absent in a message: no sequence.
    #[serde(default)]
    pub seq_field: Option<String>,
    /// Prefix of every field path (`object` for ChirpStack's decoded object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_root: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldMapping>,
}

impl MappingConfig {
    /// One `[[mappings]]` entry after its preset and codec were applied.
    pub(crate) fn validate(&self, k: &str) -> Result<(), ConfigError> {
        let map = self;
        let key = |sub: &str| format!("{k}.{sub}");
        if map.topic.is_empty() {
            return Err(invalid(key("topic"), "required (or set `preset`)"));
        }
        TopicPattern::parse(
            &map.topic,
            map.site.is_some(),
            map.device.is_some(),
            map.dev_eui_field.is_some(),
        )
        .map_err(|r| invalid(key("topic"), r))?;
        if map.fields.is_empty() {
            return Err(invalid(
                key("fields"),
                "at least one field is required (or set `codec`)",
            ));
        }
        if map.stream.is_empty() {
            return Err(invalid(key("stream"), "must not be empty (or set `codec`)"));
        }
        if !matches!(map.time_unit.as_str(), "ms" | "s") {
            return Err(invalid(key("time_unit"), "must be \"ms\" or \"s\""));
        }
        if map.time_format.is_some() && map.time_unit != "ms" {
            return Err(invalid(
                key("time_unit"),
                "set either time_format or time_unit, not both",
            ));
        }
        if map.format == PayloadFormat::Number && (map.names_dev_eui() || map.time_field.is_some())
        {
            return Err(invalid(
                key("format"),
                "a number payload has no fields to take a DevEUI or a time from",
            ));
        }
        for (name, path) in [
            ("dev_eui_field", &map.dev_eui_field),
            ("time_field", &map.time_field),
            ("seq_field", &map.seq_field),
            ("payload_root", &map.payload_root),
        ] {
            if path
                .as_deref()
                .is_some_and(|p| p.is_empty() || p.split('.').any(str::is_empty))
            {
                return Err(invalid(
                    key(name),
                    "must be a dotted path without empty parts",
                ));
            }
        }
        for (j, f) in map.fields.iter().enumerate() {
            let key = |sub: &str| format!("{k}.fields[{j}].{sub}");
            if f.metric.is_empty() {
                return Err(invalid(key("metric"), "must not be empty"));
            }
            if map.format == PayloadFormat::Json && f.path.is_empty() {
                return Err(invalid(key("path"), "required for json payloads"));
            }
            if !f.scale.is_finite() || f.scale == 0.0 {
                return Err(invalid(key("scale"), "must be a finite non-zero number"));
            }
            if !f.offset.is_finite() {
                return Err(invalid(key("offset"), "must be finite"));
            }
            if let Some(u) = &f.unit
                && crate::units::canonical(u).is_none()
            {
                return Err(invalid(key("unit"), format!("unknown unit `{u}`")));
            }
        }
        Ok(())
    }

    /// The time format in force (`time_format`, else `time_unit`).
    pub(crate) fn effective_time_format(&self) -> TimeFormat {
        self.time_format.unwrap_or(if self.time_unit == "s" {
            TimeFormat::S
        } else {
            TimeFormat::Ms
        })
    }

    /// Whether the device is named by DevEUI (topic placeholder or payload field).
    pub(crate) fn names_dev_eui(&self) -> bool {
        self.dev_eui_field.is_some() || self.topic.split('/').any(|l| l == "{dev_eui}")
    }
}

fn default_time_unit() -> String {
    "ms".into()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Dotted path into the JSON payload (below `payload_root`); ignored for `number` payloads.
    #[serde(default)]
    pub path: String,
    pub metric: String,
    /// Unit of the value as sent; converted to the canonical unit (see `units`).
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// A missing optional field is skipped; a missing required one makes the message malformed.
    #[serde(default)]
    pub optional: bool,
}

fn one() -> f64 {
    1.0
}

/// A compiled third-party mapping.
pub(crate) struct Mapping {
    cfg: MappingConfig,
    pattern: TopicPattern,
    conversions: Vec<Conversion>,
    /// Field paths with `payload_root` in front.
    paths: Vec<String>,
    time: TimeFormat,
}

impl Mapping {
    pub(crate) fn new(cfg: &MappingConfig) -> Result<Mapping, String> {
        let mut cfg = cfg.clone();
        super::presets::apply(&mut cfg);
        let pattern = TopicPattern::parse(
            &cfg.topic,
            cfg.site.is_some(),
            cfg.device.is_some(),
            cfg.dev_eui_field.is_some(),
        )?;
        let conversions = cfg
            .fields
            .iter()
            .map(|f| {
                let unit = f.unit.as_deref().unwrap_or("");
                units::canonical(unit).ok_or_else(|| format!("unknown unit `{unit}`"))
            })
            .collect::<Result<_, _>>()?;
        let paths = cfg
            .fields
            .iter()
            .map(|f| match &cfg.payload_root {
                Some(root) => format!("{root}.{}", f.path),
                None => f.path.clone(),
            })
            .collect();
        Ok(Mapping {
            time: cfg.effective_time_format(),
            cfg,
            pattern,
            conversions,
            paths,
        })
    }

    /// `None` when the topic is not this mapping's; otherwise the decoded readings or why not.
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
        registry: &Registry,
    ) -> Option<Result<Vec<Reading>, DecodeError>> {
        let c = self.pattern.matches(topic)?;
        Some(self.decode_matched(c, topic, payload, received_ms, registry))
    }

    fn decode_matched(
        &self,
        c: Captures<'_>,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
        registry: &Registry,
    ) -> Result<Vec<Reading>, DecodeError> {
        let named = c
            .site
            .or(self.cfg.site.as_deref())
            .zip(c.device.or(self.cfg.device.as_deref()));
        if let Some((site, device)) = named
            && (!firmware::protocol::valid_segment(site)
                || !firmware::protocol::valid_segment(device))
        {
            return Err(DecodeError::UnknownTopic);
        }
        let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
        let json = match self.cfg.format {
            PayloadFormat::Json => Some(
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| DecodeError::BadJson(e.to_string()))?,
            ),
            PayloadFormat::Number => None,
        };
        let eui = match (c.dev_eui, &self.cfg.dev_eui_field, &json) {
            (Some(e), _, _) => Some(eui_of(e, "topic {dev_eui}")?),
            (None, Some(path), Some(j)) => {
                let v = lookup(j, path).ok_or_else(|| DecodeError::MissingField(path.clone()))?;
                let s = v.as_str().ok_or_else(|| wrong(path, "not a string"))?;
                Some(eui_of(s, path)?)
            }
            _ => None,
        };
        let (mut ts, mut seq) = (None, None);
        if let Some(j) = &json {
            if let Some(path) = &self.cfg.time_field {
                let v = lookup(j, path).ok_or_else(|| DecodeError::MissingField(path.clone()))?;
                ts = Some(parse_time(v, path, self.time)?);
            }
            if let Some(path) = &self.cfg.seq_field {
                // Network servers omit zero values (a frame counter of 0): absent is no sequence.
                seq = match lookup(j, path) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| wrong(path, "not an unsigned integer"))?,
                    ),
                };
            }
        }
        let mut out = Vec::with_capacity(self.cfg.fields.len());
        for ((f, conv), path) in self
            .cfg
            .fields
            .iter()
            .zip(&self.conversions)
            .zip(&self.paths)
        {
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
                Some(j) => match lookup(j, path) {
                    None | Some(serde_json::Value::Null) if f.optional => continue,
                    None | Some(serde_json::Value::Null) => {
                        return Err(DecodeError::MissingField(path.clone()));
                    }
                    Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                    Some(v @ serde_json::Value::Number(_)) => {
                        Value::Float(as_number(v).ok_or_else(|| wrong(path, "not finite"))?)
                    }
                    Some(serde_json::Value::String(s)) => match s.trim().parse::<f64>() {
                        Ok(n) if n.is_finite() => Value::Float(n),
                        _ => Value::Text(s.clone()),
                    },
                    Some(_) => return Err(wrong(path, "an object or array, not a value")),
                },
            };
            let value = match raw {
                // A finite number can overflow once scaled and converted (1e308 x 1000): an
                // infinity would reach the rules' windows and saved state, which JSON cannot hold.
                Value::Float(n) => match conv.apply(n * f.scale + f.offset) {
                    v if v.is_finite() => Value::Float(v),
                    _ => return Err(wrong(path, "out of range once scaled to its unit")),
                },
                other => other,
            };
            out.push(Reading {
                site: Name::default(),
                device: Name::default(),
                stream: Name::from(&self.cfg.stream),
                metric: Name::from(&f.metric),
                value,
                unit: Name::from(conv.canonical),
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
        if let Some(codec) = self.cfg.codec {
            codec.derive(&mut out);
        }
        // Identity last: a message another mapping may still decode is not counted here.
        let (site, device) = match eui {
            Some(eui) => match registry.resolve_eui(&eui, named, topic, received_ms) {
                EuiOutcome::StoredAs { site, device } => (site, device),
                EuiOutcome::Refused => return Err(DecodeError::Unregistered(eui)),
            },
            None => {
                let (site, device) = named.ok_or(DecodeError::UnknownTopic)?;
                registry.note_device(site, device, topic, received_ms);
                (site.to_string(), device.to_string())
            }
        };
        let (site, device) = (Name::from(site), Name::from(device));
        for r in &mut out {
            r.site = site.clone();
            r.device = device.clone();
        }
        Ok(out)
    }
}

fn eui_of(s: &str, field: &str) -> Result<String, DecodeError> {
    crate::registry::normalize_eui(s).ok_or_else(|| {
        wrong(
            field,
            &format!(
                "`{}` is not a DevEUI (16 hex digits)",
                s.chars().take(40).collect::<String>()
            ),
        )
    })
}

/// Milliseconds since the epoch from a time field written as `fmt` says.
fn parse_time(v: &serde_json::Value, path: &str, fmt: TimeFormat) -> Result<i64, DecodeError> {
    let number = match v {
        serde_json::Value::Number(_) => as_number(v),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    };
    let ms = match (fmt, number, v) {
        (TimeFormat::Ms, Some(n), _) => n,
        (TimeFormat::S, Some(n), _) => n * 1000.0,
        (TimeFormat::Auto, Some(n), _) if n.abs() < 1e11 => n * 1000.0,
        (TimeFormat::Auto, Some(n), _) => n,
        (TimeFormat::Rfc3339 | TimeFormat::Auto, None, serde_json::Value::String(s)) => {
            return rfc3339_ms(s).ok_or_else(|| {
                wrong(
                    path,
                    &format!(
                        "`{}` is not an RFC 3339 time (like 2022-07-18T09:34:15.775Z)",
                        s.chars().take(40).collect::<String>()
                    ),
                )
            });
        }
        (TimeFormat::Rfc3339, _, _) => {
            return Err(wrong(
                path,
                "expected RFC 3339 text (like 2022-07-18T09:34:15Z), got a number or other value; \
                 set time_format = \"ms\", \"s\" or \"auto\"",
            ));
        }
        (TimeFormat::Ms | TimeFormat::S, None, _) => {
            return Err(wrong(
                path,
                "not a number; for RFC 3339 text set time_format = \"rfc3339\" or \"auto\"",
            ));
        }
        (TimeFormat::Auto, None, _) => {
            return Err(wrong(path, "neither a number nor RFC 3339 text"));
        }
    };
    if !ms.is_finite() || ms.abs() > 1e15 {
        return Err(wrong(path, "time out of range"));
    }
    Ok(ms as i64)
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
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
        let p = TopicPattern::parse("a/{site}/+/{device}", false, false, false).unwrap();
        let c = p.matches("a/s1/x/d1").unwrap();
        assert_eq!((c.site, c.device), (Some("s1"), Some("d1")));
        assert_eq!(p.matches("a/s1/x"), None);
        assert_eq!(p.matches("a/s1/x/d1/extra"), None);
        assert!(TopicPattern::parse("a/{device}", false, false, false).is_err());
        assert!(TopicPattern::parse("a/#", true, true, false).is_err());
        // A DevEUI names the device: no site or device needed in the topic.
        let p = TopicPattern::parse(
            "application/+/device/{dev_eui}/event/up",
            false,
            false,
            false,
        )
        .unwrap();
        let c = p
            .matches("application/42/device/0101010101010101/event/up")
            .unwrap();
        assert_eq!(c.dev_eui, Some("0101010101010101"));
        assert!(TopicPattern::parse("application/+/device/+/event/up", false, false, true).is_ok());
    }

    #[test]
    fn milesight_em310_udl_payload() {
        let m = &mappings()[0];
        let payload =
            br#"{"time":1732500000,"object":{"distance":1250,"battery":84,"position":"normal"}}"#;
        let r = m
            .decode("milesight/r7/udl-1/uplink", payload, 0, &Registry::empty())
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
                &Registry::empty(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 1);
        let e = m
            .decode(
                "milesight/r7/udl-1/uplink",
                br#"{"time":1,"object":{}}"#,
                0,
                &Registry::empty(),
            )
            .unwrap()
            .unwrap_err();
        assert_eq!(e, DecodeError::MissingField("object.distance".into()));
        assert!(
            m.decode("other/r7/udl-1/uplink", b"{}", 0, &Registry::empty())
                .is_none()
        );
    }

    #[test]
    fn plain_number_payload_is_scaled_then_converted() {
        let m = &mappings()[1];
        let reg = Registry::empty();
        let r = m
            .decode("plain/s/d/level", b" 412 ", 77, &reg)
            .unwrap()
            .unwrap();
        // 412 * 0.1 cm = 41.2 cm = 412 mm
        assert!(matches!(r[0].value, Value::Float(v) if (v - 412.0).abs() < 1e-9));
        assert_eq!(r[0].device_time_ms, 77);
        assert!(
            m.decode("plain/s/d/level", b"abc", 0, &reg)
                .unwrap()
                .is_err()
        );
        assert!(
            m.decode("plain/s/d/level", b"NaN", 0, &reg)
                .unwrap()
                .is_err()
        );
    }

    /// A finite number that overflows once converted (1e308 m in mm) is refused, not turned
    /// into an infinity that the rules' saved state could not hold.
    #[test]
    fn a_number_that_overflows_once_converted_is_refused() {
        let cfg = Config::from_toml(
            r#"
[[mappings]]
name = "level-m"
topic = "m/{site}/{device}/uplink"
format = "json"
stream = "grease_trap"
[[mappings.fields]]
path = "level"
metric = "level"
unit = "m"
"#,
        )
        .unwrap();
        let m = Mapping::new(&cfg.mappings[0]).unwrap();
        let reg = Registry::empty();
        let ok = m.decode("m/s/d/uplink", br#"{"level":1.5}"#, 0, &reg);
        assert!(
            matches!(&ok, Some(Ok(r)) if r[0].value == Value::Float(1500.0)),
            "{ok:?}"
        );
        let err = m.decode("m/s/d/uplink", br#"{"level":1e308}"#, 0, &reg);
        assert!(
            matches!(&err, Some(Err(DecodeError::WrongType { field, .. })) if field == "level"),
            "{err:?}"
        );
    }
}
