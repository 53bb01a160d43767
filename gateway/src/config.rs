//! Gateway configuration: TOML file, overridden by `GATEWAY_<PATH>` environment variables
//! (`__` between levels, e.g. `GATEWAY_MQTT__URL`), then validated.
//!
//! Every struct denies unknown keys so a typo is an error naming the key, not a silent default.
//! This file keeps the root (`Config`), loading and delegation: each component owns its
//! section's struct, defaults and validation (`source::mqtt::MqttConfig`,
//! `sink::influx::InfluxConfig`, `outbox::OutboxConfig`, `decode::mapping::MappingConfig`, the
//! `clue`, `rules`, `camera`, `drone`, `modbus` and `registry` sections), and is handed only
//! its section. Errors are `config_error::ConfigError`, a leaf module every section can use.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

// Each component owns its section; the root only gathers them (and re-exports them here so
// `config::MqttConfig` and friends keep working for callers and tests).
pub(crate) use crate::config_error::ConfigError;
pub(crate) use crate::config_error::invalid;
pub(crate) use crate::decode::mapping::MappingConfig;
pub(crate) use crate::outbox::OutboxConfig;
pub use crate::sink::influx::{InfluxApi, InfluxConfig};
pub(crate) use crate::source::mqtt::MqttConfig;

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
    /// Shop-front trading zones per street camera (`[[shopfront.cameras]]`).
    pub shopfront: crate::camera::shopfront::ShopfrontSection,
    /// Muck-truck road cameras and permits (`[muck_trucks]`).
    pub muck_trucks: crate::camera::muck::MuckSection,
    /// `[notices]`: delivery of street notices (parking "please move").
    pub notices: crate::notice::NoticesConfig,
    /// The web dashboard served at `/` (`[dashboard] enabled`, `dir`).
    pub dashboard: crate::dashboard::DashboardConfig,
    /// Drone footage uploads, processing and inspection tasks (`[drone]`).
    pub drone: crate::drone::config::DroneConfig,
    /// The organisation: units (city, county, township) with their sites and departments,
    /// and the dispatch of clues to departments (`[[org.units]]`, `[[org.dispatch]]`).
    pub org: crate::clue::org::OrgConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Outbox, SQLite and evidence live under this folder.
    pub dir: PathBuf,
    pub outbox: OutboxConfig,
    /// Free space, MiB, that must remain on the storage file system: below it camera frames
    /// and references are refused with 507 Insufficient Storage and evidence files are not
    /// written (the outbox and the audit chain live there too). Drone footage has its own
    /// floor (`drone.min_free_mb`).
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data"),
            outbox: OutboxConfig::default(),
            min_free_mb: 1024,
        }
    }
}

impl StorageConfig {
    /// The free-space floor of camera frames and evidence files.
    pub(crate) fn floor(&self) -> crate::disk::Floor {
        crate::disk::Floor {
            dir: self.dir.clone(),
            min_free: self.min_free_mb.saturating_mul(1 << 20),
            key: "storage.min_free_mb",
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.cameras.validate()?;
        self.parking.validate()?;
        self.shopfront.validate()?;
        self.muck_trucks.validate()?;
        self.notices.validate()?;
        self.dashboard.validate()?;
        self.drone.validate()?;
        self.mqtt.validate()?;
        if let Some(i) = &self.influx {
            i.validate()?;
        }
        self.storage.outbox.validate()?;
        self.http
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("http.listen", e.to_string()))?;
        self.modbus.validate()?;
        self.clues.validate()?;
        self.org_checked()?;
        crate::rules::config::validate(&self.rules, &self.rules_settings)?;
        crate::install::trap::validate(&self.traps)?;
        self.registry.validate()?;
        for (i, map) in self.mappings.iter().enumerate() {
            map.validate(&format!("mappings[{i}]"))?;
        }
        Ok(())
    }
}

/// The parts of the root each component is handed: it never reads the root itself.
impl Config {
    /// The clue pool's section, the storage folder and floor, and the MQTT broker its
    /// delivery lane publishes to.
    pub fn clue_setup(&self) -> crate::clue::PoolSetup {
        crate::clue::PoolSetup {
            clues: self.clues.clone(),
            dir: self.storage.dir.clone(),
            floor: self.storage.floor(),
            holder: self.mqtt.client_id.clone(),
            broker: std::sync::Arc::new(self.mqtt.clone()),
            org: std::sync::Arc::new(self.org()),
        }
    }

    /// The checked organisation of `[org]`; dispatch rules may name the matters of
    /// `[clues.matters]`.
    pub(crate) fn org_checked(&self) -> Result<crate::clue::org::Org, ConfigError> {
        let matters: Vec<&str> = self
            .clues
            .matters
            .matter
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        let org = self.org.build(&matters)?;
        let max_s = u64::from(self.clues.oversight.notices.max_due_days) * 86_400;
        if self.org.major.reply_within_s > max_s {
            return Err(invalid(
                "org.major.reply_within_s",
                format!(
                    "must be at most clues.oversight.notices.max_due_days ({max_s} s): the \
                     reply is owed as a supervision notice"
                ),
            ));
        }
        Ok(org)
    }

    /// [`Config::org_checked`] of a configuration that passed `validate` (an empty
    /// organisation, i.e. scopes by sites only, if it somehow did not).
    pub fn org(&self) -> crate::clue::org::Org {
        self.org_checked().unwrap_or_else(|e| {
            tracing::error!(error = %e, "[org] is invalid; no units are in force");
            Default::default()
        })
    }

    /// The payload decoder of `[mqtt] max_payload_bytes` and `[[mappings]]`.
    pub fn decoder(&self) -> crate::decode::Decoder {
        crate::decode::Decoder::new(self.mqtt.max_payload_bytes, &self.mappings)
    }

    /// The rules engine of `[[rules]]`, `[rules_settings]` and the traps' geometry.
    pub fn rules_engine(&self) -> Result<crate::rules::Engine, crate::rules::RulesError> {
        crate::rules::Engine::from_sections(&self.rules, &self.rules_settings, &self.traps)
    }

    /// The prefix of measurement names in the time-series database (`influx`'s, or none).
    pub fn measurement_prefix(&self) -> &str {
        self.influx
            .as_ref()
            .map(|i| i.measurement_prefix.as_str())
            .unwrap_or("")
    }
}

/// Delivery lanes of the clue pool and of notices reach the broker of `[mqtt]`, each with
/// its own client id.
impl crate::clue::publish::MqttConnect for MqttConfig {
    fn connect(&self, suffix: &str) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), String> {
        let mut mqtt = self.clone();
        mqtt.client_id = format!("{}-{suffix}", mqtt.client_id);
        crate::source::mqtt::connect(&mqtt).map_err(|e| e.to_string())
    }
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
        assert_eq!(c.shopfront.cameras[0].zones[0].shop, "shop-12");
        assert_eq!(c.muck_trucks.permits[0].cameras, ["cam-ring-rd"]);
        assert!(c.registry.file.is_some());
        let org = c.org();
        assert_eq!(org.scope_sites("gusu"), ["r-101", "street-9"]);
        assert_eq!(
            org.dispatch(Some("grease_discharge"), "r-101")
                .map(|d| d.lead),
            Some("environment".into()),
            "the county's rule naming the matter wins over the township's `*`"
        );
        assert_eq!(
            org.dispatch(Some("grease_trap_maintenance"), "r-101")
                .map(|d| d.lead),
            Some("urban-management".into())
        );
        assert!(
            org.major_report(crate::clue::signal::Level::High, None, "r-101")
                .is_some_and(|r| r.parent == "gusu"),
            "a high clue of the township is reported to its county"
        );
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
    fn an_invalid_org_is_refused_naming_the_key() {
        let units = "[[org.units]]\nid = \"city\"\nname = \"C\"\nlevel = \"city\"\n\
                     [[org.units]]\nid = \"t\"\nname = \"T\"\nlevel = \"township\"\n";
        let e = Config::from_toml(&format!("{units}parent = \"nowhere\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("org.units[1].parent"), "{e}");
        let e = Config::from_toml(&format!(
            "{units}parent = \"city\"\n[[org.dispatch]]\nmatter = \"*\"\nunit = \"t\"\nlead = \"x\""
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("org.dispatch[0].lead"), "{e}");
        let e = Config::from_toml("[[org.units]]\nid = \"a\"\nname = \"A\"\nlevel = \"town\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("org.units"), "{e}");
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
