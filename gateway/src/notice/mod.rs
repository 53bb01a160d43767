//! Notices to the street: the parking rule's "please move", delivered to whatever tells the
//! driver (a roadside speaker or sign on MQTT, an SMS gateway on a webhook), and the record of
//! what each warned stay became (issue 22).
//!
//! ```toml
//! [notices]
//! mqtt = true                       # notices/v1/{site}/{camera}, QoS 1 (default on)
//! retry_min_ms = 500                # delivery back-off bounds
//! retry_max_ms = 60000
//! [[notices.webhooks]]
//! name = "sms"                      # the outbox channel `notice-webhook:sms`
//! url = "https://sms.example.org/notices"
//! secret = "..."                    # X-Gateway-Signature: sha256=<HMAC of the body>
//! timeout_ms = 5000
//! sites = ["street-9"]              # empty: every site
//! cameras = []                      # empty: every camera
//! ```
//!
//! **Path.** Parking ([`crate::camera::parking`]) reports a notice due and later the stay's
//! outcome as [`StayEvent`]s; [`Notices::apply`] records them in the clue store
//! ([`crate::clue::store::StayRecords`]): the stay's record and one outbox row per channel in
//! one transaction, so a notice is queued exactly when its stay is on record. The clue
//! delivery workers ([`crate::clue::publish`]) then deliver each channel on its own, in order,
//! and mark a row delivered only on the broker's PUBACK or a 2xx answer; anything else is
//! retried with back-off until it is acknowledged, across restarts. Every payload carries
//! `event_id` (the stay record's id) for receivers to drop the rare duplicate, and
//! `valid_until_ms`, past which the notice is moot (the clue is raised).
//!
//! **Outcomes** (`clue::stays`): `pending` until the vehicle leaves before the limit
//! (`left_after_notice`) or the limit raises its clue (`clue`). The statistics page's
//! persuasion rate is counted from these records (`GET /api/v1/stats` `parking`), per camera
//! and zone; `GET /api/v1/parking/stays` lists them.
//!
//! **Metrics**: `gateway_notices_delivered_total{reason=channel}`,
//! `gateway_notice_delivery_failures_total{reason=channel}` (retried),
//! `gateway_notice_record_errors_total` (a notice or outcome the store refused: logged, and the
//! notice is then not sent, as nothing would retry it).

use crate::backoff::Backoff;
use crate::clue::PoolHandle;
use crate::clue::publish::{Lane, MqttConnect, spawn_mqtt_lane, spawn_webhook_lane};
use crate::clue::stays::StayEvent;
use crate::clue::store::ClueStore;
use crate::config_error::{ConfigError, invalid};
use crate::metrics::{Metrics, Reason};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The outbox channel of the notices' MQTT topic.
pub(crate) const CHANNEL_MQTT: &str = "notice-mqtt";

/// The outbox channel of webhook `name`.
pub(crate) fn webhook_channel(name: &str) -> String {
    format!("notice-webhook:{name}")
}

/// The `[notices]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticesConfig {
    /// Publish to `notices/v1/{site}/{camera}` (QoS 1) on the `[mqtt]` broker, with its own
    /// client id (`{mqtt.client_id}-notices`).
    pub mqtt: bool,
    /// POST each notice to these (a roadside speaker, an SMS gateway).
    pub webhooks: Vec<NoticeWebhook>,
    /// Delivery retry back-off bounds (every channel).
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for NoticesConfig {
    fn default() -> Self {
        NoticesConfig {
            mqtt: true,
            webhooks: Vec::new(),
            retry_min_ms: 500,
            retry_max_ms: 60_000,
        }
    }
}

/// One `[[notices.webhooks]]` receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeWebhook {
    /// Names its outbox channel; keep it when the URL changes, or its queue is orphaned.
    pub name: String,
    pub url: String,
    /// Signs bodies: `X-Gateway-Signature: sha256=<hex HMAC-SHA256>`, as for clues.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Only notices of these sites (empty: all).
    #[serde(default)]
    pub sites: Vec<String>,
    /// Only notices of these cameras (empty: all).
    #[serde(default)]
    pub cameras: Vec<String>,
}

fn default_timeout() -> u64 {
    5_000
}

impl NoticeWebhook {
    fn wants(&self, site: &str, camera: &str) -> bool {
        (self.sites.is_empty() || self.sites.iter().any(|s| s == site))
            && (self.cameras.is_empty() || self.cameras.iter().any(|c| c == camera))
    }
}

impl NoticesConfig {
    /// Checks what serde cannot; errors name the key (`notices.webhooks[0].url`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.retry_min_ms == 0 {
            return Err(invalid("notices.retry_min_ms", "must be at least 1"));
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err(invalid(
                "notices.retry_max_ms",
                "must be >= notices.retry_min_ms",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |k: &str| format!("notices.webhooks[{i}].{k}");
            if w.name.is_empty()
                || !w
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(key("name"), "must be letters, digits, - or _"));
            }
            if !names.insert(w.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("webhook `{}` listed twice", w.name),
                ));
            }
            let url = url::Url::parse(&w.url).map_err(|e| invalid(key("url"), e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(key("url"), "must be http:// or https://"));
            }
            if w.timeout_ms == 0 {
                return Err(invalid(key("timeout_ms"), "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The outbox channels a notice of `camera` at `site` is queued on.
    pub(crate) fn channels_for(&self, site: &str, camera: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.mqtt {
            out.push(CHANNEL_MQTT.to_string());
        }
        out.extend(
            self.webhooks
                .iter()
                .filter(|w| w.wants(site, camera))
                .map(|w| webhook_channel(&w.name)),
        );
        out
    }
}

/// Records warned stays and queues their notices; cheap to clone.
#[derive(Clone)]
pub(crate) struct Notices {
    store: Arc<dyn ClueStore>,
    cfg: Arc<NoticesConfig>,
    /// Wakes this process's notice workers when a notice was queued.
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Notices {
    pub(crate) fn new(pool: &PoolHandle, cfg: &NoticesConfig, metrics: Arc<Metrics>) -> Notices {
        Notices {
            store: pool.store(),
            cfg: Arc::new(cfg.clone()),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Records `events` in order (off the async threads): a notice with its delivery rows,
    /// an outcome on its stay's record. Failures are logged and counted, never fatal.
    pub(crate) async fn apply(&self, events: Vec<StayEvent>) {
        if events.is_empty() {
            return;
        }
        let (store, cfg, metrics) = (self.store.clone(), self.cfg.clone(), self.metrics.clone());
        let queued = tokio::task::spawn_blocking(move || {
            let mut queued = false;
            for ev in events {
                let r = match &ev {
                    StayEvent::Notice(n) => {
                        let channels = cfg.channels_for(&n.site, &n.camera);
                        let now = crate::clock::now_ms();
                        store.record_notice(n, &channels, now).map(|rec| {
                            if let Some(rec) = rec {
                                info!(stay = %n.key, id = rec.id, channels = channels.len(), "parking notice queued");
                                queued |= !channels.is_empty();
                            }
                        })
                    }
                    StayEvent::Update(u) => store.record_outcome(u).map(|changed| {
                        if changed {
                            info!(stay = %u.key(), update = ?u, "parking stay outcome recorded");
                        }
                    }),
                };
                if let Err(e) = r {
                    metrics.notice_record_errors_total.inc();
                    warn!(error = %e, event = ?ev, "parking stay not recorded");
                }
            }
            queued
        })
        .await
        .unwrap_or(false);
        if queued {
            self.wake.notify_waiters();
            self.wake.notify_one();
        }
    }

    /// Starts one delivery worker per configured channel.
    pub(crate) fn spawn_delivery(
        &self,
        broker: &dyn MqttConnect,
        cancel: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let lane = |channel: String| Lane {
            queue: self.store.clone(),
            wake: self.wake.clone(),
            delivered: self
                .metrics
                .notices_delivered_total
                .get_or_create(&Reason::of(&channel))
                .clone(),
            failed: self
                .metrics
                .notice_delivery_failures_total
                .get_or_create(&Reason::of(&channel))
                .clone(),
            head_failures: self
                .metrics
                .delivery_head_failures
                .get_or_create(&Reason::of(&channel))
                .clone(),
            channel,
            backoff: Backoff::from_millis(self.cfg.retry_min_ms, self.cfg.retry_max_ms),
        };
        let mut tasks = Vec::new();
        if self.cfg.mqtt {
            tasks.extend(spawn_mqtt_lane(
                broker,
                "notices",
                lane(CHANNEL_MQTT.to_string()),
                cancel.clone(),
            ));
        }
        for w in &self.cfg.webhooks {
            tasks.extend(spawn_webhook_lane(
                &w.url,
                w.secret.clone(),
                w.timeout_ms,
                lane(webhook_channel(&w.name)),
                cancel.clone(),
            ));
        }
        tasks
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    const HOOK: &str = "[[notices.webhooks]]\nname = \"sms\"\nurl = \"http://127.0.0.1:9/n\"\n";

    #[test]
    fn notices_go_to_mqtt_and_the_webhooks_that_want_the_camera() {
        let c = Config::from_toml(&format!(
            "{HOOK}sites = [\"s1\"]\n[[notices.webhooks]]\nname = \"speaker-east\"\n\
             url = \"https://10.0.0.5/say\"\ncameras = [\"c2\"]\n"
        ))
        .unwrap();
        assert!(c.notices.mqtt, "on by default");
        assert_eq!(c.notices.webhooks[0].timeout_ms, 5_000);
        assert_eq!(
            c.notices.channels_for("s1", "c1"),
            ["notice-mqtt", "notice-webhook:sms"]
        );
        assert_eq!(
            c.notices.channels_for("s1", "c2"),
            [
                "notice-mqtt",
                "notice-webhook:sms",
                "notice-webhook:speaker-east"
            ]
        );
        assert_eq!(
            c.notices.channels_for("s2", "c2"),
            ["notice-mqtt", "notice-webhook:speaker-east"]
        );
        let off = Config::from_toml("[notices]\nmqtt = false\n").unwrap();
        assert!(off.notices.channels_for("s1", "c1").is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let e = err(&HOOK.replace("http://127.0.0.1:9/n", "ftp://x/"));
        assert!(e.contains("notices.webhooks[0].url"), "{e}");
        let e = err(&HOOK.replace("\"sms\"", "\"s m s\""));
        assert!(e.contains("notices.webhooks[0].name"), "{e}");
        let e = err(&format!("{HOOK}{HOOK}"));
        assert!(e.contains("notices.webhooks[1].name"), "{e}");
        let e = err(&format!("{HOOK}timeout_ms = 0\n"));
        assert!(e.contains("notices.webhooks[0].timeout_ms"), "{e}");
        let e = err("[notices]\nretry_min_ms = 10\nretry_max_ms = 5\n");
        assert!(e.contains("notices.retry_max_ms"), "{e}");
        let e = err(&format!("{HOOK}speaker = true\n"));
        assert!(e.contains("speaker"), "{e}");
    }
}
