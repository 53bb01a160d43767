//! `[clues]`: deadlines, escalation and delivery of the clue pool.

use crate::clue::signal::Level;
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};

/// The longest `repeat_window_ms`: a minute of plain repeats at risk on a crash, and a rise
/// from repetition a minute late, is as far as a user should go.
const REPEAT_WINDOW_MAX_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CluesConfig {
    /// Where the pool lives: `sqlite` (default, `{storage.dir}/clues.sqlite`, this gateway
    /// alone) or `postgres` (`url`; several gateways share one pool, chain and outbox).
    pub store: StoreKind,
    /// `postgres://user:password@host:port/database` when `store = "postgres"`.
    pub url: Option<String>,
    /// Connections this gateway keeps to PostgreSQL.
    pub pool_size: u32,
    /// Time to handle a clue, by level, from when the pool opened it.
    pub deadlines: DeadlinesConfig,
    /// A clue past its deadline turns yellow; this long after the deadline, red.
    pub red_after_s: u64,
    /// How often overdue clues are looked for.
    pub tick_s: u64,
    /// Publish every clue change to `clues/v1/{site}/{level}` (QoS 1) on the `[mqtt]` broker,
    /// with its own client id (`{mqtt.client_id}-clues`).
    pub mqtt_publish: bool,
    /// POST every clue change (JSON) here, retried with back-off until a 2xx answer.
    pub webhook_url: Option<String>,
    /// Signs webhook bodies: header `X-Gateway-Signature: sha256=<hex HMAC-SHA256>`.
    pub webhook_secret: Option<String>,
    pub webhook_timeout_ms: u64,
    /// Delivery retry back-off bounds (webhook and MQTT).
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// From this many occurrences on, a clue is one level above its rule's level (0: never).
    pub raise_after_occurrences: u32,
    /// Producer-to-pool channel capacity (a full channel slows the rules engine, visibly).
    pub channel_capacity: usize,
    /// Plain repeats of an open clue (same key, no worse level, no evidence) are held in
    /// memory and written once per this many milliseconds per key: one clue update, one
    /// occurrence row with the count, one audit entry `repeat` (`clue::repeats`). 0: every
    /// event written on its own. At most this much of plain repeats is lost if the process
    /// is killed; rises from repetition come up to this much later.
    pub repeat_window_ms: u64,
    /// Supervision models over the handling (warnings for supervisors), leniency advice.
    pub oversight: crate::clue::oversight::OversightConfig,
    /// Masking of personal data in evidence images for roles without the right.
    pub privacy: crate::clue::privacy::PrivacyConfig,
    /// Evidence retention periods and the purge job.
    pub retention: crate::clue::retention::RetentionConfig,
    /// What a fault's recovery (camera back, device reporting again) does to its clue.
    pub recovery: RecoveryConfig,
    /// The key that seals the audit chain, and how often its head is published.
    pub audit: crate::clue::audit_key::AuditConfig,
    /// The matter catalogue: legal basis, discretion bands and leniency list per clue kind.
    pub matters: crate::clue::matters::MatterCatalogue,
    /// Channels that tell owners about clues (`[[clues.owner_notify.channels]]`).
    pub owner_notify: crate::clue::owner_notify::OwnerNotifyConfig,
}

/// `[clues.recovery]`: a recovered fault is recorded on its clue; clues of these kinds are
/// then resolved by the pool (nothing left for a person to do), all others are marked
/// "recovered, to confirm" and stay open for a person to close.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// Kinds, exact or a prefix with a trailing `*` (e.g. `camera.*`).
    pub auto_resolve: Vec<String>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            auto_resolve: vec!["camera.offline".into(), "device.offline".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinesConfig {
    pub high_s: u64,
    pub medium_s: u64,
    pub low_s: u64,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig {
            high_s: 4 * 3600,
            medium_s: 24 * 3600,
            low_s: 72 * 3600,
        }
    }
}

impl DeadlinesConfig {
    pub(crate) fn for_level(&self, level: Level) -> u64 {
        match level {
            Level::High => self.high_s,
            Level::Medium => self.medium_s,
            Level::Low => self.low_s,
        }
    }
}

impl Default for CluesConfig {
    fn default() -> Self {
        CluesConfig {
            store: StoreKind::Sqlite,
            url: None,
            pool_size: 8,
            deadlines: DeadlinesConfig::default(),
            red_after_s: 24 * 3600,
            tick_s: 60,
            mqtt_publish: true,
            webhook_url: None,
            webhook_secret: None,
            webhook_timeout_ms: 10_000,
            retry_min_ms: 500,
            retry_max_ms: 60_000,
            channel_capacity: 1024,
            repeat_window_ms: 1_000,
            raise_after_occurrences: 10,
            oversight: Default::default(),
            privacy: Default::default(),
            retention: Default::default(),
            recovery: Default::default(),
            audit: Default::default(),
            matters: Default::default(),
            owner_notify: Default::default(),
        }
    }
}

impl CluesConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("clues.deadlines.high_s", self.deadlines.high_s),
            ("clues.deadlines.medium_s", self.deadlines.medium_s),
            ("clues.deadlines.low_s", self.deadlines.low_s),
            ("clues.tick_s", self.tick_s),
            ("clues.webhook_timeout_ms", self.webhook_timeout_ms),
            ("clues.retry_min_ms", self.retry_min_ms),
            ("clues.channel_capacity", self.channel_capacity as u64),
            ("clues.pool_size", self.pool_size as u64),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.repeat_window_ms > REPEAT_WINDOW_MAX_MS {
            return Err(invalid(
                "clues.repeat_window_ms",
                format!(
                    "must be at most {REPEAT_WINDOW_MAX_MS} (held repeats are lost if the \
                     process is killed; 0 turns holding off)"
                ),
            ));
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err(invalid(
                "clues.retry_max_ms",
                "must be >= clues.retry_min_ms",
            ));
        }
        if let Some(u) = &self.webhook_url {
            let url =
                url::Url::parse(u).map_err(|e| invalid("clues.webhook_url", e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("clues.webhook_url", "must be http:// or https://"));
            }
        }
        match (self.store, self.url.as_deref()) {
            (StoreKind::Postgres, None) => {
                return Err(invalid(
                    "clues.url",
                    "is required with store = \"postgres\" (postgres://user@host:port/db)",
                ));
            }
            (StoreKind::Postgres, Some(u)) => {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                    return Err(invalid("clues.url", "must start with postgres://"));
                }
                // Parsed as the client will; the message never repeats the URL (password).
                if let Err(e) = u.parse::<postgres::Config>() {
                    return Err(invalid("clues.url", format!("not a PostgreSQL URL: {e}")));
                }
            }
            (StoreKind::Sqlite, Some(_)) => {
                return Err(invalid(
                    "clues.url",
                    "is only used with store = \"postgres\"",
                ));
            }
            (StoreKind::Sqlite, None) => {}
        }
        self.oversight.validate()?;
        self.privacy.validate()?;
        self.retention.validate()?;
        self.audit.validate()?;
        self.matters.validate()?;
        self.owner_notify.validate()?;
        for (i, k) in self.recovery.auto_resolve.iter().enumerate() {
            if k.is_empty() || k == "*" {
                return Err(invalid(
                    format!("clues.recovery.auto_resolve[{i}]"),
                    "name a kind or a prefix such as `camera.*`",
                ));
            }
        }
        if self.webhook_secret.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "clues.webhook_secret",
                "must not be empty when set",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_clue_keys_are_named() {
        let e = Config::from_toml("[clues.deadlines]\nhigh_s = 0\n").expect_err("zero");
        assert!(e.to_string().contains("clues.deadlines.high_s"), "{e}");
        let e = Config::from_toml("[clues]\nwebhook_url = \"ftp://x\"\n").expect_err("scheme");
        assert!(e.to_string().contains("clues.webhook_url"), "{e}");
        let e = Config::from_toml("[clues]\nrepeat_window_ms = 600000\n").expect_err("long");
        assert!(e.to_string().contains("clues.repeat_window_ms"), "{e}");
        let c = Config::from_toml("[clues]\nrepeat_window_ms = 0\n").expect("off");
        assert_eq!(c.clues.repeat_window_ms, 0);
        let c = Config::from_toml("[clues]\nmqtt_publish = false\n").expect("ok");
        assert_eq!(c.clues.repeat_window_ms, 1_000);
        assert!(!c.clues.mqtt_publish);
        assert_eq!(c.clues.store, super::StoreKind::Sqlite);
    }

    #[test]
    fn a_postgres_store_needs_a_postgres_url() {
        let e = Config::from_toml("[clues]\nstore = \"postgres\"\n").expect_err("no url");
        assert!(e.to_string().contains("clues.url"), "{e}");
        let e = Config::from_toml("[clues]\nstore = \"postgres\"\nurl = \"mysql://x\"\n")
            .expect_err("scheme");
        assert!(e.to_string().contains("clues.url"), "{e}");
        let e = Config::from_toml("[clues]\nstore = \"oracle\"\n").expect_err("kind");
        assert!(e.to_string().contains("clues.store"), "{e}");
        let c = Config::from_toml(
            "[clues]\nstore = \"postgres\"\nurl = \"postgres://gw:pw@db:5432/clues\"\n",
        )
        .expect("ok");
        assert_eq!(c.clues.store, super::StoreKind::Postgres);
    }
}
