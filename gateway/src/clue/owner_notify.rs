//! Telling the owner through a configured channel, and recording that they were told.
//!
//! ```toml
//! [[clues.owner_notify.channels]]
//! name = "sms"                       # what `send_owner_notice {channel}` names
//! kind = "webhook"                   # POST JSON to an SMS or letter service
//! url = "https://sms.example.org/v1/notices"
//! contact = "phone"                  # phone | address: which registry contact it needs
//! token_env = "OWNER_SMS_TOKEN"      # optional: Authorization: Bearer $OWNER_SMS_TOKEN
//! timeout_ms = 5000
//! max_attempts = 8                   # then `owner_notice_failed`
//! retry_min_ms = 1000                # back-off between attempts (crate::backoff)
//! retry_max_ms = 300000
//! templates = ["first_notice"]       # the templates callers may name (empty: any)
//! ```
//!
//! **Path.** `send_owner_notice {channel, template?}` is a lifecycle action. The HTTP layer
//! looks the owner's contact up in the device registry (`owner_phone`, `owner_address`),
//! the pool builds the [`OwnerNoticeDraft`] (the payload with the clue's facts masked, a
//! random idempotency key), and the store writes, in the action's transaction, the audit entry
//! (contact masked), an `owner_notices` row (state `queued`) and one row of the delivery
//! outbox on the channel `owner-notice:{name}`: a notice is queued exactly when the chain says
//! it was asked for, and survives restarts. One worker per channel ([`spawn_owner_notify`])
//! reads that outbox like the clue webhook does (`clue::publish`) and POSTs the payload with
//! `Idempotency-Key` and the bearer token. Unlike clue changes, notices need no order among
//! themselves, so a failed attempt does not stop the channel: the notice gets its own retry
//! time ([`Backoff`] of its own attempt count, kept as the outbox row's `next_attempt_ms`),
//! the outbox hides it until then, and the worker goes on with the next notice. One owner
//! whose number the provider keeps refusing never delays the notices to other owners.
//! A 2xx answer settles the notice as `owner_notice_delivered {notice, channel, provider_id,
//! at}` on the clue's audit trail; after `max_attempts` failures it is settled as
//! `owner_notice_failed {notice, channel, reason, attempts}`. Settling marks the outbox row
//! done in the same transaction, so a notice is settled once even with several gateways on
//! one PostgreSQL (their outbox leases keep them off each other's rows).
//!
//! **The answer window** (`[clues.oversight.closed_without_owner] answer_window_s`) starts
//! at delivery: a queued notice that never reached the owner gives them no time to answer
//! (`clue::owner::owner_record`). The payload says `answer_due_ms` from the moment it is
//! sent; the record counts from the 2xx answer, a little later, never earlier.
//!
//! **Receipts.** The provider may later report what became of the message
//! (`POST /api/v1/owner-notices/{id}/receipt`, a platform or admin token of the site):
//! recorded as `owner_notice_receipt` on the clue.
//!
//! **Personal data.** The owner's full contact goes to the provider and sits in the outbox
//! row until it is purged; the audit, the notice row, the API and every log line carry it
//! masked ([`crate::clue::privacy::masked_contact`]).

use super::PoolHandle;
use super::model::Delivery;
use super::publish::{IDLE_POLL, Lane, idle, pending};
use crate::backoff::Backoff;
use crate::config_error::{ConfigError, invalid};
use crate::metrics::Reason;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The outbox channel of owner-notice channel `name`.
pub(crate) fn outbox_channel(name: &str) -> String {
    format!("owner-notice:{name}")
}

/// `[clues.owner_notify]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerNotifyConfig {
    pub channels: Vec<OwnerChannel>,
}

/// How a channel reaches its provider. Only webhooks for now: SMS gateways and letter
/// services all take an HTTP POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
}

/// Which of the owner's contacts a channel needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// `owner_phone` of the registry (SMS, voice).
    #[default]
    Phone,
    /// `owner_address` of the registry (letters).
    Address,
}

impl ContactKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ContactKind::Phone => "phone",
            ContactKind::Address => "address",
        }
    }
}

/// One `[[clues.owner_notify.channels]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerChannel {
    /// What `send_owner_notice {channel}` names, and the outbox channel
    /// `owner-notice:{name}`: keep it when the URL changes, or its queue is orphaned.
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    #[serde(default)]
    pub contact: ContactKind,
    /// The environment variable holding the provider's bearer token (read at start; a
    /// missing or empty variable stops the start, naming this key).
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before the notice is given up as `owner_notice_failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Templates callers may name (the provider owns their text); empty: any.
    #[serde(default)]
    pub templates: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_min_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    300_000
}

/// A channel or template name: 1..=64 letters, digits, `-` or `_`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl OwnerNotifyConfig {
    /// Checks what serde cannot; errors name the key (`clues.owner_notify.channels[0].url`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let key = |k: &str| format!("clues.owner_notify.channels[{i}].{k}");
            if !is_name(&c.name) {
                return Err(invalid(
                    key("name"),
                    "must be 1..=64 letters, digits, - or _",
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("channel `{}` listed twice", c.name),
                ));
            }
            let url = url::Url::parse(&c.url).map_err(|e| invalid(key("url"), e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(key("url"), "must be http:// or https://"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(
                    key("url"),
                    "must not carry credentials (use token_env)",
                ));
            }
            if let Some(env) = &c.token_env
                && (env.is_empty()
                    || !env
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
            {
                return Err(invalid(
                    key("token_env"),
                    "must name an environment variable (letters, digits, _)",
                ));
            }
            for (k, v) in [
                ("timeout_ms", c.timeout_ms),
                ("max_attempts", c.max_attempts as u64),
                ("retry_min_ms", c.retry_min_ms),
            ] {
                if v == 0 {
                    return Err(invalid(key(k), "must be at least 1"));
                }
            }
            if c.retry_max_ms < c.retry_min_ms {
                return Err(invalid(key("retry_max_ms"), "must be >= retry_min_ms"));
            }
            for (j, t) in c.templates.iter().enumerate() {
                if !is_name(t) {
                    return Err(invalid(
                        key(&format!("templates[{j}]")),
                        "must be 1..=64 letters, digits, - or _",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn channel(&self, name: &str) -> Option<&OwnerChannel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// The configured names, for error messages.
    pub fn names(&self) -> String {
        if self.channels.is_empty() {
            return "none configured ([[clues.owner_notify.channels]])".into();
        }
        self.channels
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl OwnerChannel {
    /// The bearer token from `token_env`; an error naming the key when it is not set.
    pub(crate) fn token(&self, index: usize) -> Result<Option<String>, ConfigError> {
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(invalid(
                format!("clues.owner_notify.channels[{index}].token_env"),
                format!("environment variable {var} is not set or empty"),
            )),
        }
    }

    /// Whether callers may name `template` on this channel.
    pub(crate) fn allows_template(&self, template: &str) -> bool {
        self.templates.is_empty() || self.templates.iter().any(|t| t == template)
    }
}

/// The owner's contacts as the registry holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OwnerContact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
}

impl OwnerContact {
    pub(crate) fn get(&self, kind: ContactKind) -> Option<&str> {
        match kind {
            ContactKind::Phone => self.phone.as_deref(),
            ContactKind::Address => self.address.as_deref(),
        }
        .map(str::trim)
        .filter(|s| !s.is_empty())
    }
}

/// The contact as the audit, the notice row, the API and the logs show it: a phone as
/// everywhere else ([`crate::clue::privacy::masked_contact`]), an address by
/// [`crate::clue::privacy::masked_address`].
pub(crate) fn masked(kind: ContactKind, contact: &str) -> String {
    match kind {
        ContactKind::Phone => super::privacy::masked_contact(contact),
        ContactKind::Address => super::privacy::masked_address(contact),
    }
}

/// What the pool prepares for the store: never serialized into the audit.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerNoticeDraft {
    /// The outbox channel (`owner-notice:{name}`).
    pub outbox_channel: String,
    pub site: String,
    pub contact_masked: String,
    pub idempotency_key: String,
    /// The body the provider gets, without `notice_id` (the store adds it).
    pub payload: Value,
}

/// The payload for the provider: the clue's facts with plates and personal data masked
/// ([`crate::clue::privacy::mask_personal_data`]), the matter, and the contact in full (the
/// provider needs it; it is added after masking).
pub(crate) fn payload(
    d: &super::model::ClueDetail,
    channel: &OwnerChannel,
    template: Option<&str>,
    contact: &str,
    answer_window_s: u64,
    idempotency_key: &str,
) -> Value {
    let c = &d.clue;
    let mut facts = json!({
        "kind": c.kind,
        "level": c.level,
        "title": c.title,
        "site": c.subject.site,
        "device": c.subject.device,
        "plate": c.subject.plate,
        "shop": c.subject.shop,
        "first_seen_ms": c.first_seen_ms,
        "last_seen_ms": c.last_seen_ms,
        "occurrences": c.occurrences,
    });
    let plates: Vec<String> = c.subject.plate.iter().cloned().collect();
    super::privacy::mask_personal_data(&mut facts, &plates);
    let matter = d.matter.as_ref().map(|m| {
        json!({
            "id": m.matter,
            "name": m.name,
            "violated_provision": m.violated_provision,
            "catalogue_version": m.catalogue_version,
        })
    });
    json!({
        "type": "owner_notice",
        "idempotency_key": idempotency_key,
        "channel": channel.name,
        "template": template,
        "clue_id": c.id,
        "site": c.subject.site,
        "matter": matter,
        "facts": facts,
        "answer_window_s": answer_window_s,
        "to": {"kind": channel.contact.as_str(), "value": contact},
    })
}

/// A random key the provider uses to drop a repeated POST of the same notice.
pub(crate) fn new_idempotency_key(clue_id: i64) -> String {
    format!(
        "on-{clue_id}-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The state of a notice to the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// In the outbox (attempts may have failed; retried with back-off).
    Queued,
    /// The provider accepted it (2xx).
    Delivered,
    /// Given up after `max_attempts`.
    Failed,
}

impl NoticeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NoticeState::Queued => "queued",
            NoticeState::Delivered => "delivered",
            NoticeState::Failed => "failed",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<NoticeState> {
        [
            NoticeState::Queued,
            NoticeState::Delivered,
            NoticeState::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A notice to the owner as stored (contact masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerNotice {
    pub id: i64,
    pub clue_id: i64,
    pub site: String,
    pub channel: String,
    pub template: Option<String>,
    pub contact: String,
    pub state: NoticeState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub queued_ms: i64,
    pub queued_by: String,
    pub delivered_ms: Option<i64>,
    pub provider_id: Option<String>,
    pub failed_ms: Option<i64>,
    pub receipt_status: Option<String>,
    pub receipt_ms: Option<i64>,
    pub idempotency_key: String,
}

/// The columns of an owner notice in the order every backend's row reader expects.
pub(crate) const NOTICE_COLS: &str = "id, clue_id, site, channel, template, contact, state, \
     attempts, last_error, queued_ms, queued_by, delivered_ms, provider_id, failed_ms, \
     receipt_status, receipt_ms, idempotency_key";

/// How a notice ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        provider_id: Option<String>,
        at_ms: i64,
    },
    Failed {
        reason: String,
        attempts: i64,
    },
}

impl Outcome {
    pub(crate) fn action(&self) -> super::audit::AuditAction {
        match self {
            Outcome::Delivered { .. } => super::audit::AuditAction::OwnerNoticeDelivered,
            Outcome::Failed { .. } => super::audit::AuditAction::OwnerNoticeFailed,
        }
    }

    /// The audit detail, the same in every backend.
    pub(crate) fn detail(&self, notice: i64, channel: &str) -> Value {
        match self {
            Outcome::Delivered { provider_id, at_ms } => json!({
                "notice": notice, "channel": channel, "provider_id": provider_id, "at": at_ms,
            }),
            Outcome::Failed { reason, attempts } => json!({
                "notice": notice, "channel": channel, "reason": reason, "attempts": attempts,
            }),
        }
    }
}

/// A provider's receipt (`POST /api/v1/owner-notices/{id}/receipt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The provider's word: `delivered`, `read`, `undeliverable`, `returned`...
    pub status: String,
    /// When it happened by the provider's clock (default: now).
    #[serde(default)]
    pub at_ms: Option<i64>,
    #[serde(default)]
    pub note: Option<String>,
}

impl Receipt {
    /// A status is a short word (it is shown and counted, not read as prose).
    pub(crate) fn check(&self) -> Result<(), String> {
        let s = self.status.trim();
        if s.is_empty() || s.len() > 32 || !s.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err("status must be 1..=32 lower-case letters or _ (e.g. delivered)".into());
        }
        if self
            .note
            .as_deref()
            .is_some_and(|n| n.chars().count() > 500)
        {
            return Err("note must be at most 500 characters".into());
        }
        Ok(())
    }

    pub(crate) fn detail(&self, notice: i64, at_ms: i64) -> Value {
        // `receipt`, not `status`: a clue change's detail carries the clue's own status.
        json!({"notice": notice, "receipt": self.status.trim(), "note": self.note, "at": at_ms})
    }
}

/// The worker's view of one channel.
struct ChannelWorker {
    pool: PoolHandle,
    cfg: OwnerChannel,
    token: Option<String>,
    http: reqwest::Client,
    /// The answer window the payload announces.
    answer_window_s: u64,
}

/// Starts one delivery worker per configured channel; an error (naming the key) when a
/// channel's token variable is missing or its HTTP client cannot be built.
pub(crate) fn spawn_owner_notify(
    pool: &PoolHandle,
    cancel: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, ConfigError> {
    let cfg = pool.config().owner_notify.clone();
    let window = pool.config().oversight.closed_without_owner.answer_window_s;
    let metrics = pool.metrics();
    let mut tasks = Vec::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let token = ch.token(i)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(ch.timeout_ms))
            .build()
            .map_err(|e| {
                invalid(
                    format!("clues.owner_notify.channels[{i}]"),
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        let channel = outbox_channel(&ch.name);
        let lane = Lane {
            queue: pool.store(),
            wake: pool.delivery_wake.clone(),
            channel: channel.clone(),
            delivered: metrics
                .clue_delivered_total
                .get_or_create(&Reason::of(&channel))
                .clone(),
            failed: metrics
                .clue_delivery_failures_total
                .get_or_create(&Reason::of(&channel))
                .clone(),
            // Notices are retried one by one (no head of line): nothing to show here.
            head_failures: Default::default(),
            backoff: Backoff::from_millis(ch.retry_min_ms, ch.retry_max_ms),
        };
        let w = ChannelWorker {
            pool: pool.clone(),
            cfg: ch.clone(),
            token,
            http,
            answer_window_s: window,
        };
        info!(channel = %ch.name, host = %host_of(&ch.url), "owner notices enabled");
        tasks.push(tokio::spawn(w.run(lane, cancel.clone())));
    }
    Ok(tasks)
}

/// What one POST came to.
enum Attempt {
    Accepted(Option<String>),
    /// Worth trying again: the provider was unreachable, slow, or answered 5xx, 408 or 429.
    Refused(String),
    /// The provider rejected this notice itself (another 4xx: a number it cannot text, a
    /// template it does not know): the same POST would be rejected again, so the notice is
    /// given up at once instead of being retried until `max_attempts`.
    Rejected(String),
}

/// Whether an answer with `status` rejects the notice for good (see [`Attempt::Rejected`]).
pub(crate) fn rejects_for_good(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 429)
}

/// The host (and port) of `url`, for log lines: a provider URL may carry a key in its query.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_default()
}

/// What the worker does after one row.
enum Step {
    /// On to the next row.
    Next,
    /// The notice failed and is due again at this time (`crate::clock`); the others go on.
    RetryAt(i64),
    /// The store did not take the outcome: wait, then read the outbox again.
    StoreFailed,
    /// Cancelled.
    Stop,
}

/// How long an idle worker waits: until the soonest retry it scheduled, at most the idle poll
/// (which also catches rows queued, or given back, by another gateway).
fn idle_wait(soonest: Option<i64>, now_ms: i64) -> Duration {
    soonest.map_or(IDLE_POLL, |t| {
        Duration::from_millis(t.saturating_sub(now_ms).max(0) as u64).min(IDLE_POLL)
    })
}

impl ChannelWorker {
    /// Takes the channel's due notices in order. A notice that fails is given its own retry
    /// time (`next_attempt_ms` of its outbox row, from its own attempt count) and the worker
    /// goes on with the next one: one notice the provider keeps refusing does not hold up
    /// the others of its channel.
    async fn run(self, lane: Lane, cancel: CancellationToken) {
        // Retry times this worker scheduled, soonest first: it wakes for them instead of
        // waiting for the idle poll.
        let mut retries = std::collections::BinaryHeap::new();
        loop {
            let rows = pending(&lane).await;
            if rows.is_empty() {
                let now = crate::clock::now_ms();
                while retries.peek().is_some_and(|std::cmp::Reverse(t)| *t <= now) {
                    retries.pop();
                }
                let soonest = retries.peek().map(|std::cmp::Reverse(t)| *t);
                if !idle(&lane, &cancel, idle_wait(soonest, now)).await {
                    break;
                }
                continue;
            }
            for row in rows {
                match self.one(&lane, &row, &cancel).await {
                    Step::Next => {}
                    Step::RetryAt(t) => retries.push(std::cmp::Reverse(t)),
                    Step::StoreFailed => {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(self.cfg.retry_max_ms.min(10_000))) => {}
                        }
                        break;
                    }
                    Step::Stop => return,
                }
            }
        }
    }

    /// Sends one outbox row and records what came of it.
    async fn one(&self, lane: &Lane, row: &Delivery, cancel: &CancellationToken) -> Step {
        let Some(notice) = serde_json::from_str::<Value>(&row.payload)
            .ok()
            .and_then(|v| v.get("notice_id").and_then(Value::as_i64))
        else {
            // Not written by this gateway's store (nothing could ever settle it): taken off
            // the queue, or the channel would read it again and again.
            warn!(channel = %self.cfg.name, row = row.id, "owner notice row without notice_id; dropped");
            lane.failed.inc();
            let (q, id, now) = (lane.queue.clone(), row.id, self.pool.now_ms());
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || q.delivered(id, now)).await {
                warn!(channel = %self.cfg.name, error = %e, "dropping an unreadable owner notice row failed");
            }
            return Step::Next;
        };
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return Step::Stop,
            a = self.post(row) => a,
        };
        let tries = row.attempts.saturating_add(1);
        let outcome = match attempt {
            Attempt::Accepted(provider_id) => Outcome::Delivered {
                provider_id,
                at_ms: self.pool.now_ms(),
            },
            Attempt::Rejected(reason) => {
                lane.failed.inc();
                Outcome::Failed {
                    reason,
                    attempts: tries,
                }
            }
            Attempt::Refused(reason) if tries >= self.cfg.max_attempts as i64 => {
                lane.failed.inc();
                Outcome::Failed {
                    reason,
                    attempts: tries,
                }
            }
            Attempt::Refused(reason) => {
                lane.failed.inc();
                let wait = Backoff::from_millis(self.cfg.retry_min_ms, self.cfg.retry_max_ms)
                    .delay(u32::try_from(row.attempts).unwrap_or(u32::MAX));
                let at = crate::clock::now_ms()
                    .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                debug!(channel = %self.cfg.name, notice, attempt = tries, %reason, ?wait, "owner notice not accepted; retrying");
                return match self
                    .pool
                    .owner_notice_attempt_failed(notice, row.id, reason, at)
                    .await
                {
                    Ok(()) => Step::RetryAt(at),
                    Err(e) => {
                        warn!(channel = %self.cfg.name, notice, error = %e, "recording a failed attempt failed");
                        Step::StoreFailed
                    }
                };
            }
        };
        let delivered = matches!(outcome, Outcome::Delivered { .. });
        match self.pool.settle_owner_notice(notice, row.id, outcome).await {
            Ok(_) if delivered => {
                lane.delivered.inc();
                info!(channel = %self.cfg.name, notice, "owner notice delivered");
                Step::Next
            }
            Ok(_) => {
                warn!(channel = %self.cfg.name, notice, attempts = tries, "owner notice given up");
                Step::Next
            }
            Err(e) => {
                // The row stays queued and is sent again (same idempotency key) once the store
                // answers.
                warn!(channel = %self.cfg.name, notice, error = %e, "recording the owner notice's outcome failed");
                Step::StoreFailed
            }
        }
    }

    /// POSTs `row`'s payload with the moment it is sent and the answer due from then.
    async fn post(&self, row: &Delivery) -> Attempt {
        let mut body: Value = match serde_json::from_str(&row.payload) {
            Ok(v) => v,
            Err(e) => return Attempt::Refused(format!("stored payload unreadable: {e}")),
        };
        let now = self.pool.now_ms();
        body["sent_ms"] = json!(now);
        body["answer_due_ms"] = json!(now.saturating_add(self.answer_window_s as i64 * 1000));
        let key = body["idempotency_key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut req = self
            .http
            .post(&self.cfg.url)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                let text = resp.text().await.unwrap_or_default();
                Attempt::Accepted(provider_id(&text))
            }
            Ok(resp) if rejects_for_good(resp.status().as_u16()) => {
                Attempt::Rejected(format!("provider rejected the notice: {}", resp.status()))
            }
            Ok(resp) => Attempt::Refused(format!("provider answered {}", resp.status())),
            Err(e) => Attempt::Refused(format!(
                "provider unreachable: {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "connection failed".to_string()
                } else {
                    "request failed".to_string()
                }
            )),
        }
    }
}

/// The provider's message id from its answer: `id`, `provider_id` or `message_id` of a JSON
/// body (at most 128 characters; anything else is not kept).
pub(crate) fn provider_id(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    ["provider_id", "message_id", "id"].iter().find_map(|k| {
        let s = match v.get(*k)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!s.is_empty() && s.chars().count() <= 128).then_some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).expect_err("refused").to_string()
    }

    const OK: &str = "[[clues.owner_notify.channels]]\nname = \"sms\"\nkind = \"webhook\"\n\
                      url = \"https://sms.example.org/send\"\n";

    #[test]
    fn a_channel_is_read_with_its_defaults() {
        let c = Config::from_toml(OK).expect("ok");
        let ch = c.clues.owner_notify.channel("sms").expect("sms");
        assert_eq!(ch.kind, ChannelKind::Webhook);
        assert_eq!(ch.contact, ContactKind::Phone);
        assert_eq!((ch.max_attempts, ch.timeout_ms), (8, 5_000));
        assert!(ch.allows_template("anything"));
    }

    #[test]
    fn bad_channel_keys_are_named() {
        let cases = [
            (OK.replace("\"sms\"", "\"s m s\""), "channels[0].name"),
            (format!("{OK}{OK}"), "channels[1].name"),
            (OK.replace("https://", "ftp://"), "channels[0].url"),
            (OK.replace("https://", "https://u:p@"), "channels[0].url"),
            (OK.replace("webhook", "pigeon"), "kind"),
            (
                format!("{OK}max_attempts = 0\n"),
                "channels[0].max_attempts",
            ),
            (format!("{OK}timeout_ms = 0\n"), "channels[0].timeout_ms"),
            (
                format!("{OK}retry_min_ms = 500\nretry_max_ms = 10\n"),
                "channels[0].retry_max_ms",
            ),
            (
                format!("{OK}token_env = \"A-B\"\n"),
                "channels[0].token_env",
            ),
            (
                format!("{OK}templates = [\"\"]\n"),
                "channels[0].templates[0]",
            ),
            (format!("{OK}contact = \"fax\"\n"), "contact"),
            (format!("{OK}colour = 1\n"), "colour"),
        ];
        for (toml, key) in cases {
            let e = err(&toml);
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn a_missing_token_variable_is_named_at_start() {
        let var = "OWNER_NOTIFY_TEST_TOKEN_SURELY_UNSET";
        let c = Config::from_toml(&format!("{OK}token_env = \"{var}\"\n")).expect("shape ok");
        let e = c.clues.owner_notify.channels[0]
            .token(0)
            .expect_err("unset");
        let e = e.to_string();
        assert!(
            e.contains("clues.owner_notify.channels[0].token_env") && e.contains(var),
            "{e}"
        );
    }

    #[test]
    fn contacts_are_masked_phone_and_address() {
        assert_eq!(masked(ContactKind::Phone, "13800138000"), "138****8000");
        assert_eq!(
            masked(ContactKind::Address, "12 Beijing Road, Unit 3"),
            "12 Be…"
        );
        assert_eq!(masked(ContactKind::Address, "Box"), "***");
    }

    #[test]
    fn the_payload_masks_the_facts_and_carries_the_contact_in_full() {
        use crate::clue::model::tests::detail_for_test;
        let mut d = detail_for_test();
        d.clue.subject.plate = Some("京A12345".into());
        d.clue.title = "京A12345 parked too long".into();
        d.clue.subject.owner = Some("Wang Wei 13800138000".into());
        let ch = Config::from_toml(OK)
            .expect("ok")
            .clues
            .owner_notify
            .channels[0]
            .clone();
        let p = payload(&d, &ch, Some("first"), "13800138000", 3600, "key-1");
        let facts = p["facts"].to_string();
        assert!(!facts.contains("12345"), "{facts}");
        assert_eq!(p["facts"]["plate"], json!("京A*****"));
        assert_eq!(p["facts"]["title"], json!("京A***** parked too long"));
        assert_eq!(p["to"], json!({"kind": "phone", "value": "13800138000"}));
        assert_eq!(p["idempotency_key"], json!("key-1"));
        assert_eq!(p["answer_window_s"], json!(3600));
        assert_eq!(p["template"], json!("first"));
    }

    #[test]
    fn the_provider_id_is_read_from_common_answers() {
        assert_eq!(provider_id(r#"{"id":"m-1"}"#).as_deref(), Some("m-1"));
        assert_eq!(provider_id(r#"{"message_id":42}"#).as_deref(), Some("42"));
        assert_eq!(provider_id("OK"), None);
        assert_eq!(
            provider_id(&format!(r#"{{"id":"{}"}}"#, "x".repeat(200))),
            None
        );
    }

    #[test]
    fn only_a_provider_that_rejects_the_notice_itself_ends_the_retries() {
        for s in [400, 401, 403, 404, 410, 422] {
            assert!(rejects_for_good(s), "{s}");
        }
        for s in [200, 408, 429, 500, 502, 503] {
            assert!(!rejects_for_good(s), "{s}");
        }
        assert_eq!(
            host_of("https://sms.example.org:8443/send?key=secret"),
            "sms.example.org:8443"
        );
    }

    #[test]
    fn a_receipt_status_is_a_short_word() {
        let r = |s: &str| Receipt {
            status: s.into(),
            at_ms: None,
            note: None,
        };
        assert!(r("delivered").check().is_ok());
        assert!(r("").check().is_err());
        assert!(r("Delivered!").check().is_err());
    }
}
