//! Gateway configuration: TOML file, overridden by `GATEWAY_<PATH>` environment variables
//! (`__` between levels, e.g. `GATEWAY_MQTT__URL`), then validated.
//!
//! Every struct denies unknown keys so a typo is an error naming the key, not a silent default.
//! Defaults live in the `Default` impls below and nowhere else.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A configuration problem; the message always names the offending key path.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("invalid `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Absent: readings are not written to a time-series database (the outbox is not used).
    pub influx: Option<InfluxConfig>,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub devices: DevicesConfig,
    /// Third-party payload mappings (topic pattern + field paths), tried after native topics.
    pub mappings: Vec<MappingConfig>,
    /// The device registry (`[registry] file`): DevEUI -> site/device, location, owner.
    pub registry: crate::registry::RegistryConfig,
    /// Polled Modbus TCP/RTU devices.
    pub modbus: crate::source::modbus::ModbusConfig,
    /// The clue pool: deadlines, escalation, delivery to the central platform.
    pub clues: crate::clue::config::CluesConfig,
    /// Declarative rules (`[[rules]]`); empty means the built-in defaults
    /// (`deploy/rules.example.toml`) unless `rules_settings.use_default_rules = false`.
    pub rules: Vec<crate::rules::RuleConfig>,
    /// Rules engine switches and the sites' calendars (local time, night, business hours).
    pub rules_settings: crate::rules::RulesSettings,
    /// Grease-trap geometry per device (`[[traps]]`): turns any level, distance, fill or
    /// volume sensor into the level, fill % and volume the grease rules read.
    pub traps: Vec<crate::install::TrapInstall>,
    /// Camera health thresholds and timings, per-camera overrides.
    pub cameras: crate::camera::CamerasConfig,
    /// No-parking zones per camera (`[[parking.cameras]]`), enforced on uploaded frames.
    pub parking: crate::camera::parking::ParkingSection,
    /// The web dashboard served at `/` (`[dashboard] enabled`, `dir`).
    pub dashboard: crate::dashboard::DashboardConfig,
    /// Drone footage uploads, processing and inspection tasks (`[drone]`).
    pub drone: crate::drone::config::DroneConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Fixed id: the broker keeps the persistent session (and queued QoS 1 messages) under it.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topic filters; `$share/{group}/{filter}` spreads the load over several gateways.
    pub subscriptions: Vec<String>,
    pub keep_alive_s: u64,
    /// CA bundle (PEM) for `mqtts://`; the system roots are used when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for brokers that authenticate by certificate.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Payloads that fail to decode are republished here (QoS 1) when set.
    pub dead_letter_topic: Option<String>,
    /// Larger payloads are rejected as malformed without being parsed.
    pub max_payload_bytes: usize,
    /// Reconnect back-off bounds.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Messages decoded and made durable together before their acknowledgements are sent.
    pub ack_batch: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "enforcement-gateway".into(),
            username: None,
            password: None,
            subscriptions: vec!["v1/#".into()],
            keep_alive_s: 30,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            dead_letter_topic: None,
            max_payload_bytes: 64 * 1024,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            // Measured (tests/bench-ingest.sh): 512 left the fsync as the bottleneck (0.55-0.67x
            // mosquitto_sub); 4096 reaches 1.0-1.3x. A batch only takes what is already queued,
            // so light traffic is not delayed by a large value.
            ack_batch: 4096,
        }
    }
}

/// Which InfluxDB write API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// `/api/v2/write?org=&bucket=` with `Authorization: Token`.
    V2,
    /// `/write?db=` for InfluxDB 1.x and compatible servers.
    V1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    pub url: String,
    pub api: InfluxApi,
    pub org: String,
    pub bucket: String,
    pub token: Option<String>,
    pub database: String,
    /// v1 basic credentials, when the server requires them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Prepended to every measurement name (e.g. `city_`).
    pub measurement_prefix: String,
    /// Which line-protocol parser the server has: `influxdb` (InfluxDB 1.x/2.x, default) or
    /// `victoriametrics` (escapes backslashes and newlines differently; see `sink::line_protocol`).
    pub dialect: crate::sink::line_protocol::Dialect,
    pub batch_max_lines: usize,
    pub batch_max_bytes: usize,
    /// A partial batch is written after this long.
    pub flush_interval_ms: u64,
    pub gzip: bool,
    pub timeout_ms: u64,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: "http://127.0.0.1:8086".into(),
            api: InfluxApi::V2,
            org: "city".into(),
            bucket: "enforcement".into(),
            token: None,
            database: "enforcement".into(),
            username: None,
            password: None,
            measurement_prefix: String::new(),
            dialect: Default::default(),
            batch_max_lines: 5_000,
            batch_max_bytes: 1024 * 1024,
            flush_interval_ms: 1_000,
            gzip: true,
            timeout_ms: 10_000,
            retry_min_ms: 200,
            retry_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Outbox, SQLite and evidence live under this folder.
    pub dir: PathBuf,
    pub outbox: OutboxConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data"),
            outbox: OutboxConfig::default(),
        }
    }
}

/// What the outbox does when it holds `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop acknowledging MQTT messages: the broker keeps them (nothing is lost here).
    Backpressure,
    /// Drop the oldest queued records to make room (counted in `outbox_dropped_total`).
    DropOldest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub when_full: WhenFull,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 16 * 1024 * 1024,
            when_full: WhenFull::Backpressure,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// A device with no message for this long is shown offline.
    pub offline_after_s: u64,
    /// A device clock further than this from ours is replaced by the receive time (and flagged).
    pub max_clock_skew_s: u64,
    /// Store-and-forward replays (`replayed: true`) may carry device times this old.
    pub max_replay_age_s: u64,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            offline_after_s: 600,
            max_clock_skew_s: 600,
            max_replay_age_s: 7 * 24 * 3600,
        }
    }
}

/// How a third-party payload is parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A JSON object; fields are picked by dotted paths (`data.distance`, `items.0.v`).
    #[default]
    Json,
    /// The payload is one number in ASCII (`412.5`).
    Number,
}

/// How a mapping's `time_field` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The time format in force (`time_format`, else `time_unit`).
    pub fn effective_time_format(&self) -> TimeFormat {
        self.time_format.unwrap_or(if self.time_unit == "s" {
            TimeFormat::S
        } else {
            TimeFormat::Ms
        })
    }

    /// Whether the device is named by DevEUI (topic placeholder or payload field).
    pub fn names_dev_eui(&self) -> bool {
        self.dev_eui_field.is_some() || self.topic.split('/').any(|l| l == "{dev_eui}")
    }
}

fn default_time_unit() -> String {
    "ms".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl Config {
    /// Loads `path` (if given), applies `GATEWAY_*` overrides, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} not found",
                    p.display()
                )));
            }
            fig = fig.merge(Toml::file(p));
        }
        Self::from_figment(fig.merge(Env::prefixed("GATEWAY_").split("__")))
    }

    /// Parses a TOML string (no environment), for tests and embedded defaults.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
        let mut cfg: Config = fig.extract().map_err(|e| {
            // figment's message names the key path ("for key `mqtt.url`"); keep every error.
            ConfigError::Load(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        for m in &mut cfg.mappings {
            crate::decode::presets::apply(m);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: URL schemes, non-zero sizes, mapping patterns.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.cameras.validate()?;
        self.parking.validate()?;
        self.dashboard.validate()?;
        self.drone.validate()?;
        let m = &self.mqtt;
        let url = url::Url::parse(&m.url).map_err(|e| invalid("mqtt.url", e.to_string()))?;
        if !matches!(url.scheme(), "mqtt" | "mqtts" | "tcp" | "ssl") {
            return Err(invalid(
                "mqtt.url",
                format!("scheme `{}` is not mqtt:// or mqtts://", url.scheme()),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("mqtt.url", "no host"));
        }
        if m.client_id.is_empty() || m.client_id.len() > 128 {
            return Err(invalid("mqtt.client_id", "must be 1..=128 characters"));
        }
        if m.subscriptions.is_empty() {
            return Err(invalid(
                "mqtt.subscriptions",
                "at least one topic filter is required",
            ));
        }
        for (i, s) in m.subscriptions.iter().enumerate() {
            validate_filter(s).map_err(|r| invalid(format!("mqtt.subscriptions[{i}]"), r))?;
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(invalid("mqtt.password", "set without mqtt.username"));
        }
        if m.client_cert_file.is_some() != m.client_key_file.is_some() {
            return Err(invalid(
                "mqtt.client_key_file",
                "client_cert_file and client_key_file go together",
            ));
        }
        if m.ack_batch == 0 || m.ack_batch > crate::pipeline::MAX_BATCH {
            return Err(invalid(
                "mqtt.ack_batch",
                format!("must be 1..={}", crate::pipeline::MAX_BATCH),
            ));
        }
        if m.max_payload_bytes == 0 {
            return Err(invalid("mqtt.max_payload_bytes", "must be at least 1"));
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            return Err(invalid(
                "mqtt.reconnect_min_ms",
                "must be > 0 and <= reconnect_max_ms",
            ));
        }
        if let Some(i) = &self.influx {
            let u = url::Url::parse(&i.url).map_err(|e| invalid("influx.url", e.to_string()))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid("influx.url", "must be http:// or https://"));
            }
            match i.api {
                InfluxApi::V2 => {
                    if i.bucket.is_empty() {
                        return Err(invalid("influx.bucket", "required with api = \"v2\""));
                    }
                    if i.org.is_empty() {
                        return Err(invalid("influx.org", "required with api = \"v2\""));
                    }
                }
                InfluxApi::V1 if i.database.is_empty() => {
                    return Err(invalid("influx.database", "required with api = \"v1\""));
                }
                InfluxApi::V1 => {}
            }
            if i.batch_max_lines == 0 {
                return Err(invalid("influx.batch_max_lines", "must be at least 1"));
            }
            if i.batch_max_bytes < 1024 {
                return Err(invalid("influx.batch_max_bytes", "must be at least 1024"));
            }
            if i.retry_min_ms == 0 || i.retry_min_ms > i.retry_max_ms {
                return Err(invalid(
                    "influx.retry_min_ms",
                    "must be > 0 and <= retry_max_ms",
                ));
            }
        }
        let o = &self.storage.outbox;
        if o.segment_bytes < 4096 {
            return Err(invalid(
                "storage.outbox.segment_bytes",
                "must be at least 4096",
            ));
        }
        if o.max_bytes < o.segment_bytes * 2 {
            return Err(invalid(
                "storage.outbox.max_bytes",
                "must hold at least two segments",
            ));
        }
        self.http
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("http.listen", e.to_string()))?;
        self.modbus.validate()?;
        self.clues.validate()?;
        crate::rules::config::validate(&self.rules, &self.rules_settings)?;
        crate::install::trap::validate(&self.traps)?;
        self.registry.validate()?;
        for (i, map) in self.mappings.iter().enumerate() {
            validate_mapping(&format!("mappings[{i}]"), map)?;
        }
        Ok(())
    }
}

/// One `[[mappings]]` entry after its preset and codec were applied.
fn validate_mapping(k: &str, map: &MappingConfig) -> Result<(), ConfigError> {
    let key = |sub: &str| format!("{k}.{sub}");
    if map.topic.is_empty() {
        return Err(invalid(key("topic"), "required (or set `preset`)"));
    }
    crate::decode::mapping::TopicPattern::parse(
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
    if map.format == PayloadFormat::Number && (map.names_dev_eui() || map.time_field.is_some()) {
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

/// An MQTT topic filter, possibly `$share/{group}/{filter}`.
fn validate_filter(s: &str) -> Result<(), String> {
    let filter = match s.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest
                .split_once('/')
                .ok_or("`$share/` needs a group and a filter")?;
            if group.is_empty() || group.contains(['+', '#']) {
                return Err("bad share group name".into());
            }
            f
        }
        None => s,
    };
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("`#` must be a whole last level".into());
        }
        if l.contains('+') && *l != "+" {
            return Err("`+` must be a whole level".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../../deploy/gateway.example.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.mappings.len(), 7);
        assert!(c.influx.is_some());
        assert_eq!(c.traps.len(), 1, "the trap installation example");
        assert!(c.registry.file.is_some());
        // Presets and codecs are filled in: ChirpStack's topic, TTS's decoded payload root.
        let cs = &c.mappings[2];
        assert_eq!(cs.topic, "application/+/device/+/event/up");
        assert_eq!(cs.fields[0].path, "distance");
        assert_eq!(
            c.mappings[5].payload_root.as_deref(),
            Some("uplink_message.decoded_payload")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[mqtt]\nurll = \"mqtt://x:1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("urll"), "{e}");
    }

    #[test]
    fn bad_value_names_the_key_path() {
        let e = Config::from_toml("[influx]\nbatch_max_lines = \"many\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("influx.batch_max_lines"), "{e}");
        let e = Config::from_toml("[mqtt]\nurl = \"http://x:1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.url"), "{e}");
        let e = Config::from_toml("[mqtt]\nsubscriptions = [\"v1/#/x\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mqtt.subscriptions[0]"), "{e}");
        let e = Config::from_toml("[influx]\napi = \"v1\"\ndatabase = \"\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("influx.database"), "{e}");
    }

    #[test]
    fn shared_subscriptions_are_accepted() {
        let c = Config::from_toml("[mqtt]\nsubscriptions = [\"$share/gw/v1/#\"]").unwrap();
        assert_eq!(c.mqtt.subscriptions, ["$share/gw/v1/#"]);
        assert!(Config::from_toml("[mqtt]\nsubscriptions = [\"$share/v1\"]").is_err());
    }

    #[test]
    fn mapping_errors_name_the_field() {
        let toml = r#"
[[mappings]]
name = "x"
topic = "m/{site}/{device}"
format = "json"
stream = "s"
[[mappings.fields]]
path = "a"
metric = "a"
unit = "furlong"
"#;
        let e = Config::from_toml(toml).unwrap_err().to_string();
        assert!(e.contains("mappings[0].fields[0].unit"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn env_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", "[mqtt]\nurl = \"mqtt://a:1\"\n")?;
            jail.set_env("GATEWAY_MQTT__URL", "mqtt://b:2");
            jail.set_env("GATEWAY_STORAGE__OUTBOX__MAX_BYTES", "99999999");
            let c = Config::load(Some(Path::new("g.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.mqtt.url, "mqtt://b:2");
            assert_eq!(c.storage.outbox.max_bytes, 99_999_999);
            Ok(())
        });
    }
}
