//! The clue pool service: takes [`ClueSignal`]s from producers, deduplicates them into clues
//! (through the store), keeps evidence, escalates overdue clues on a tick, and tells every
//! listener (SSE subscribers, MQTT and webhook delivery) what changed.
//!
//! [`start_pool`] is what `app.rs` calls; [`PoolHandle`] is what the API uses. Storage calls
//! are blocking SQLite and run on the blocking pool, never on the async workers.

use super::auth::TokenStore;
use super::config::CluesConfig;
use super::config::StoreKind;
use super::evidence::{EvidenceError, EvidenceStore};
use super::lifecycle::Action;
use super::model::*;
use super::postgres::PgStore;
use super::repeats::{RepeatBuffer, Run};
use super::signal::{ClueEvent, ClueSender, ClueSignal, Evidence};
use super::store::{CHANNEL_MQTT, CHANNEL_WEBHOOK, ClueStore, SqliteStore, StoreError, TokenInfo};
use super::supervision::{IssueRequest, Notice, NoticeAction, NoticeDetail, NoticeFilter};
use crate::metrics::{Metrics, Reason};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Debug, Error)]
pub enum PoolError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("invalid clue event: {0}")]
    Invalid(String),
    #[error("clue pool task failed")]
    Join,
    #[error(transparent)]
    AuditKey(#[from] super::audit_key::AuditKeyError),
}

/// Where time comes from; tests drive escalation with a fake.
pub(crate) trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::clock::now_ms()
    }
}

/// Capacity of the change broadcast (SSE); a subscriber further behind misses changes and is
/// told so (it can re-read the list).
const CHANGES_CAPACITY: usize = 1024;

/// The pool as the API and delivery see it. Cheap to clone.
#[derive(Clone)]
pub struct PoolHandle {
    store: Arc<dyn ClueStore>,
    tokens: Arc<dyn TokenStore>,
    failed_logins: Arc<super::auth::FailedLogins>,
    evidence: EvidenceStore,
    changes: broadcast::Sender<ClueChange>,
    clock: Arc<dyn Clock>,
    cfg: Arc<CluesConfig>,
    metrics: Arc<Metrics>,
    /// Wakes delivery workers when a change was queued.
    pub(crate) delivery_wake: Arc<Notify>,
    /// Cancelled at shutdown: ends SSE streams so the HTTP server can stop.
    closing: CancellationToken,
    /// Completes a new event's subject (location, shop, owner) before it is recorded; set
    /// once at start-up by [`PoolHandle::stamp_subjects_with`], shared by every clone.
    stamp: Arc<std::sync::OnceLock<SubjectStamp>>,
    /// Finds the owner's contact for `send_owner_notice`; set once at start-up by
    /// [`PoolHandle::owner_contacts_with`].
    contacts: Arc<std::sync::OnceLock<ContactLookup>>,
    /// The organisation (`[org]`): unit tokens' sites, dispatch of new clues.
    org: Arc<super::org::Org>,
    /// Plain repeats held per dedup key until their window ends (`clue::repeats`): filled
    /// by intake, taught by every announced change, emptied before a person's action.
    repeats: Arc<std::sync::Mutex<RepeatBuffer>>,
    /// Where the buffer's monotonic milliseconds count from.
    epoch: tokio::time::Instant,
    /// Masked evidence copies already made (`clue::masked_cache`), emptied when retention
    /// purges originals.
    masked: Arc<super::masked_cache::MaskedCache>,
}

/// Fills in what the producer of a clue event did not know about its subject (the device
/// registry's location, shop and owner). A function rather than the registry itself, so the
/// pool does not depend on the registry (which depends on the pool for its audit).
pub(crate) type SubjectStamp = Arc<dyn Fn(&mut super::signal::Subject) + Send + Sync>;

/// The owner's contacts for a clue subject (the device registry's `owner_phone`,
/// `owner_address`), for notices to the owner; a function for the same reason as
/// [`SubjectStamp`].
pub(crate) type ContactLookup =
    Arc<dyn Fn(&super::signal::Subject) -> Option<super::owner_notify::OwnerContact> + Send + Sync>;

/// The clue store `[clues] store` chose: this gateway's SQLite file, or the PostgreSQL that
/// several gateways share.
#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Backend {
    pub fn clues(&self) -> Arc<dyn ClueStore> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }

    pub fn tokens(&self) -> Arc<dyn TokenStore> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }

    /// Evidence files: `{storage.dir}/evidence` beside SQLite, the database with PostgreSQL
    /// (so every gateway reads what any stored).
    pub(crate) fn evidence(&self, setup: &PoolSetup) -> Result<EvidenceStore, EvidenceError> {
        match self {
            Backend::Sqlite(_) => Ok(
                EvidenceStore::open(setup.dir.join("evidence"))?.with_floor(setup.floor.clone())
            ),
            Backend::Postgres(s) => Ok(EvidenceStore::in_blobs(Arc::new(s.blobs()))),
        }
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.list_tokens(),
            Backend::Postgres(s) => s.list_tokens(),
        }
    }

    pub fn revoke_token(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        match self {
            Backend::Sqlite(s) => s.revoke_token(id, now_ms),
            Backend::Postgres(s) => s.revoke_token(id, now_ms),
        }
    }
}

/// What the pool reads of the gateway's configuration: its own section (`[clues]`), the
/// storage folder, this gateway's name on a shared database and how delivery reaches the
/// broker. `config::Config::clue_setup` builds it from the root.
#[derive(Clone)]
pub struct PoolSetup {
    pub clues: CluesConfig,
    /// `storage.dir`: SQLite, the audit key and evidence files live under it.
    pub dir: std::path::PathBuf,
    /// The free-space floor of evidence files (`storage.min_free_mb`).
    pub floor: crate::disk::Floor,
    /// This gateway's lease holder name on a shared PostgreSQL store (`mqtt.client_id`).
    pub holder: String,
    /// Opens the MQTT delivery lane's connection (`[mqtt]`'s broker).
    pub broker: Arc<dyn super::publish::MqttConnect>,
    /// The checked `[org]` section (units, dispatch rules).
    pub org: Arc<super::org::Org>,
}

/// Opens the clue store of `cfg` with the delivery channels it enables.
///
/// The audit key (`[clues.audit]`) is created when missing: this is a gateway's first start
/// (or its first `token create`). [`open_store_to_verify`] does not create it.
pub fn open_store(cfg: &PoolSetup) -> Result<Backend, PoolError> {
    open_store_with(cfg, true)
}

/// `gateway audit rotate-key`: a new current key for the audit chain (see
/// `clue::audit_key::rotate`), the old one retired. The chain must verify before (unless an
/// interrupted rotation is being finished) and is verified after, with the new keyring; the
/// report of that is returned with what was done.
pub fn rotate_audit_key(
    cfg: &PoolSetup,
    now_ms: i64,
) -> Result<(super::audit_key::Rotation, super::audit::VerifyReport), PoolError> {
    use super::audit_key::{AuditKeyring, next_path, rotate};
    let audit = &cfg.clues.audit;
    let resuming = audit.key_env.is_none() && next_path(&audit.key_path(&cfg.dir)).exists();
    let keys = AuditKeyring::load_with(audit, &cfg.dir, false, false)?.map(Arc::new);
    let store = open_backend(cfg, keys)?;
    let clues = store.clues();
    if !resuming {
        let before = clues.verify_audit()?;
        if !before.ok {
            return Err(PoolError::Invalid(format!(
                "the chain must verify before its key is rotated: {before}"
            )));
        }
    }
    let rotation = rotate(audit, &cfg.dir, |old, new| {
        clues
            .record_key_rotation(old, new.id(), "cli", now_ms)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    drop(clues);
    drop(store);
    let keys = AuditKeyring::load(audit, &cfg.dir, false)?.map(Arc::new);
    let after = open_backend(cfg, keys)?.clues().verify_audit()?;
    Ok((rotation, after))
}

/// [`open_store`] for `audit verify`: a missing key file is not created (the chain is then
/// verified without a key, and a sealed entry is reported as such).
pub fn open_store_to_verify(cfg: &PoolSetup) -> Result<Backend, PoolError> {
    open_store_with(cfg, false)
}

fn open_store_with(cfg: &PoolSetup, create_key: bool) -> Result<Backend, PoolError> {
    let key =
        super::audit_key::AuditKeyring::load(&cfg.clues.audit, &cfg.dir, create_key)?.map(Arc::new);
    open_backend(cfg, key)
}

/// The clue store of `cfg`, sealing and verifying with `key`.
fn open_backend(
    cfg: &PoolSetup,
    key: Option<Arc<super::audit_key::AuditKeyring>>,
) -> Result<Backend, PoolError> {
    let mut channels = Vec::new();
    if cfg.clues.mqtt_publish {
        channels.push(CHANNEL_MQTT);
    }
    if cfg.clues.webhook_url.is_some() {
        channels.push(CHANNEL_WEBHOOK);
    }
    let raise = cfg.clues.raise_after_occurrences;
    Ok(match (cfg.clues.store, cfg.clues.url.as_deref()) {
        (StoreKind::Postgres, Some(url)) => {
            // On a thread of its own: the blocking client must not start inside the runtime
            // that `app::run` may be calling from.
            let size = cfg.clues.pool_size;
            let store = std::thread::scope(|s| {
                s.spawn(|| PgStore::open(url, size, channels))
                    .join()
                    .map_err(|_| PoolError::Join)
            })??;
            Backend::Postgres(Arc::new(
                store
                    .with_raise_after(raise)
                    .with_holder(&cfg.holder)
                    .with_audit_keyring(key),
            ))
        }
        _ => Backend::Sqlite(Arc::new(
            SqliteStore::open(&cfg.dir.join("clues.sqlite"), channels)?
                .with_raise_after(raise)
                .with_audit_keyring(key),
        )),
    })
}

/// Active device tokens without a camera binding: (relays by choice, issued before the
/// choice was required).
fn unbound_device_tokens(backend: &Backend) -> Result<(usize, usize), PoolError> {
    let tokens = backend.list_tokens()?;
    let count = |relay: bool| {
        tokens
            .iter()
            .filter(|t| t.unbound_device() == Some(relay))
            .count()
    };
    Ok((count(true), count(false)))
}

/// Starts the pool: intake of signals, the escalation tick and delivery (MQTT, webhook).
/// Returns the sender producers use, the handle for the API, and the tasks: intake ends when
/// every sender is dropped, the tick and delivery when `cancel` fires.
pub(crate) fn start_pool(
    cfg: &PoolSetup,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> Result<(ClueSender, PoolHandle, Vec<JoinHandle<()>>), PoolError> {
    let backend = open_store(cfg)?;
    if let Some(key) = super::audit_key::AuditKeyring::load(&cfg.clues.audit, &cfg.dir, false)? {
        // On a thread of its own, as in `open_store`: the blocking PostgreSQL client must not
        // run on the runtime that calls this.
        let clues = backend.clues();
        std::thread::scope(|s| {
            s.spawn(|| {
                super::store::seal_chain(
                    clues.as_ref(),
                    &key,
                    cfg.clues.audit.key_env.is_some(),
                    crate::clock::now_ms(),
                )
            })
            .join()
            .map_err(|_| PoolError::Join)
        })??;
    }
    let (relays, unchosen) = std::thread::scope(|s| {
        s.spawn(|| unbound_device_tokens(&backend))
            .join()
            .map_err(|_| PoolError::Join)
    })??;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    metrics.device_tokens_unbound.set(gauge(relays + unchosen));
    metrics.device_tokens_unbound_unchosen.set(gauge(unchosen));
    if unchosen > 0 {
        warn!(
            unchosen,
            relays,
            "{unchosen} active device token(s) issued before --device or --relay was required \
             are bound to no camera and speak for every camera of their sites (`gateway token \
             list` shows them: role device, no device, no relay): issue each camera its own \
             token (`token create --role device --device CAM`), or a relay its own \
             (`--relay`), and revoke these; or set [cameras] require_device_binding = true to \
             refuse every unbound token on the camera routes"
        );
    }
    if relays > 0 {
        info!(
            relays,
            "{relays} active relay device token(s) (--relay) speak for every camera of their sites"
        );
    }
    let evidence = backend.evidence(cfg)?;
    let handle = PoolHandle::new(
        backend.clues(),
        backend.tokens(),
        evidence,
        Arc::new(SystemClock),
        cfg.clues.clone(),
        metrics,
    )
    .with_closing(cancel.clone())
    .with_org(cfg.org.clone());
    let (tx, rx) = mpsc::channel(cfg.clues.channel_capacity);
    let mut tasks = vec![
        tokio::spawn(intake(handle.clone(), rx)),
        tokio::spawn(tick(handle.clone(), cancel.clone())),
        tokio::spawn(every(
            handle.clone(),
            cancel.clone(),
            cfg.clues.oversight.every_s,
            "oversight",
        )),
        tokio::spawn(every(
            handle.clone(),
            cancel.clone(),
            cfg.clues.retention.every_s,
            "retention",
        )),
        tokio::spawn(publish_heads(
            handle.clone(),
            cancel.clone(),
            cfg.clues.audit.publish_every_s,
        )),
    ];
    tasks.extend(super::publish::spawn_delivery(&handle, cfg, cancel));
    info!(dir = %cfg.dir.display(), "clue pool started");
    let unfilled = cfg.clues.matters.placeholders();
    if !unfilled.is_empty() {
        warn!(
            version = %cfg.clues.matters.version,
            keys = %unfilled.join(", "),
            "the matter catalogue still holds placeholder legal bases (`<fill in: ...>`): \
             fill in the references of your own regulations before deciding on them"
        );
    }
    Ok((tx, handle, tasks))
}

/// Signals recorded together in one transaction when producers are ahead of the pool (a lone
/// event is still written at once: intake takes only what is already waiting). 1024 was tried
/// for the shared PostgreSQL store and left: no gain there once the round trips under the
/// chain head were cut, and more CPU per event on SQLite (`deploy/scale-out.md`). Held runs
/// whose window ended are written in batches of the same size.
pub const INTAKE_BATCH: usize = 256;

/// Signals intake takes from the channel before it looks at the held runs again, so a steady
/// stream does not keep due runs waiting (plain repeats are held, not batched, so a round can
/// take many signals without writing).
const INTAKE_ROUND: usize = 16 * INTAKE_BATCH;

async fn intake(pool: PoolHandle, mut rx: mpsc::Receiver<ClueSignal>) {
    let mut batch: Vec<(ClueEvent, Run)> = Vec::with_capacity(INTAKE_BATCH);
    loop {
        // Not cancelled: intake ends when every producer has dropped its sender, so what the
        // rules engine raises while the gateway stops is still recorded (and the held runs).
        // A signal, or none when the next held run's window ended first.
        let first = match pool.next_held_due() {
            None => rx.recv().await.map(Some),
            Some(due) => tokio::select! {
                sig = rx.recv() => sig.map(Some),
                _ = tokio::time::sleep_until(due) => Some(None),
            },
        };
        let Some(first) = first else {
            break;
        };
        // Take whatever else is already waiting; keep signal order (occurrences before a
        // clearance are recorded before it).
        let mut next = first;
        let mut taken = 0;
        while let Some(sig) = next.take() {
            taken += 1;
            match sig {
                ClueSignal::Occurrence(ev) => pool.offer(ev, &mut batch),
                cleared => {
                    pool.flush(&mut batch).await;
                    if let Err(e) = pool.signal(cleared).await {
                        pool.metrics.clue_signal_errors_total.inc();
                        warn!(error = %e, "clue clearance not recorded");
                    }
                }
            }
            if batch.len() >= INTAKE_BATCH {
                pool.flush(&mut batch).await;
            }
            if taken < INTAKE_ROUND {
                next = rx.try_recv().ok();
            }
        }
        pool.flush(&mut batch).await;
        pool.flush_held(false).await;
    }
    pool.flush(&mut batch).await;
    pool.flush_held(true).await;
    debug!("clue intake stopped");
}

async fn tick(pool: PoolHandle, cancel: CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(pool.cfg.tick_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        if let Err(e) = pool.tick().await {
            warn!(error = %e, "clue escalation tick failed");
        }
    }
}

/// Runs the oversight models or the retention purge every `period_s` until `cancel`.
async fn every(pool: PoolHandle, cancel: CancellationToken, period_s: u64, job: &'static str) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(period_s.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        let r = match job {
            "oversight" => pool.run_oversight().await.map(|_| ()),
            _ => pool.run_retention().await.map(|_| ()),
        };
        if let Err(e) = r {
            warn!(error = %e, job, "clue pool job failed");
        }
    }
}

/// Publishes the audit chain's head every `period_s` when it moved (the first after one
/// period), and writes it to the log: the anchor outside the database that `audit verify
/// --head-seq/--head-hash` checks a cut-off tail against. On a shared PostgreSQL one gateway
/// (the leader of the job) publishes.
async fn publish_heads(pool: PoolHandle, cancel: CancellationToken, period_s: u64) {
    let period = std::time::Duration::from_secs(period_s.max(1));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<super::audit::Head> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        match pool.publish_audit_head(last.clone()).await {
            Ok(Some(head)) => {
                info!(seq = head.seq, hash = %head.hash, "audit chain head published");
                pool.metrics.audit_heads_published_total.inc();
                last = Some(head);
            }
            Ok(None) => {}
            Err(e) => {
                pool.metrics.audit_head_publish_errors_total.inc();
                warn!(error = %e, "publishing the audit chain head failed");
            }
        }
    }
}

impl PoolHandle {
    pub(crate) fn new(
        store: Arc<dyn ClueStore>,
        tokens: Arc<dyn TokenStore>,
        evidence: EvidenceStore,
        clock: Arc<dyn Clock>,
        cfg: CluesConfig,
        metrics: Arc<Metrics>,
    ) -> PoolHandle {
        let window_ms = cfg.repeat_window_ms;
        let cfg_masked_mb = cfg.privacy.masked_cache_mb;
        PoolHandle {
            store,
            tokens,
            failed_logins: Default::default(),
            evidence,
            changes: broadcast::channel(CHANGES_CAPACITY).0,
            clock,
            cfg: Arc::new(cfg),
            metrics,
            delivery_wake: Arc::new(Notify::new()),
            closing: CancellationToken::new(),
            stamp: Default::default(),
            contacts: Default::default(),
            org: Default::default(),
            repeats: Arc::new(std::sync::Mutex::new(RepeatBuffer::new(window_ms))),
            masked: Arc::new(super::masked_cache::MaskedCache::new(cfg_masked_mb)),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// Scopes unit tokens and dispatches new clues by `org`.
    pub(crate) fn with_org(mut self, org: Arc<super::org::Org>) -> PoolHandle {
        self.org = org;
        self
    }

    pub(crate) fn org(&self) -> Arc<super::org::Org> {
        self.org.clone()
    }

    /// Every event recorded from now on gets its subject completed by `stamp` (once; a
    /// second call is ignored and returns false).
    pub(crate) fn stamp_subjects_with(&self, stamp: SubjectStamp) -> bool {
        self.stamp.set(stamp).is_ok()
    }

    /// Notices to owners find the owner's contact with `lookup` (once; a second call is
    /// ignored and returns false).
    pub(crate) fn owner_contacts_with(&self, lookup: ContactLookup) -> bool {
        self.contacts.set(lookup).is_ok()
    }

    /// Ends long-lived responses (SSE) when `token` is cancelled.
    pub(crate) fn with_closing(mut self, token: CancellationToken) -> PoolHandle {
        self.closing = token;
        self
    }

    pub(crate) fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    pub(crate) fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// What the bearer-token extractor needs (token store and failed-login limiter).
    pub(crate) fn authenticator(&self) -> super::auth::Authenticator {
        super::auth::Authenticator {
            tokens: self.tokens.clone(),
            failures: self.failed_logins.clone(),
            org: self.org.clone(),
        }
    }

    pub(crate) fn store(&self) -> Arc<dyn ClueStore> {
        self.store.clone()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Every change from now on (SSE).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ClueChange> {
        self.changes.subscribe()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ClueStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, PoolError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| PoolError::Join)?
            .map_err(PoolError::Store)
    }

    fn announce(&self, change: &ClueChange) {
        self.metrics
            .clue_changes_total
            .get_or_create(&Reason::of(&change.event))
            .inc();
        self.repeats().learn(change);
        // No subscriber is fine.
        let _ = self.changes.send(change.clone());
        self.delivery_wake.notify_waiters();
        self.delivery_wake.notify_one();
    }

    /// Records one producer signal.
    pub(crate) async fn signal(&self, sig: ClueSignal) -> Result<Option<ClueChange>, PoolError> {
        match sig {
            ClueSignal::Occurrence(ev) => self.ingest(ev).await.map(Some),
            ClueSignal::Cleared {
                dedup_key,
                at_ms,
                note,
            } => {
                // The key's held repeats came before the clearance: recorded first.
                let held = self.repeats().take(&dedup_key);
                if let Some(run) = held {
                    self.flush(&mut vec![run]).await;
                }
                let now = self.now_ms();
                let kinds = self.cfg.recovery.auto_resolve.clone();
                let change = self
                    .blocking(move |s| s.recover(&dedup_key, at_ms, &note, &kinds, now))
                    .await?;
                if let Some(c) = &change {
                    self.announce(c);
                }
                Ok(change)
            }
        }
    }

    /// Dedups `ev` into the pool (new clue, or an occurrence of the open one).
    pub(crate) async fn ingest(&self, ev: ClueEvent) -> Result<ClueChange, PoolError> {
        let mut results = self.ingest_batch(vec![ev]).await?;
        results.pop().unwrap_or(Err(PoolError::Join))
    }

    /// The repeat buffer; a panic elsewhere while it was held leaves it usable (at worst a
    /// run is written as ordinary events).
    fn repeats(&self) -> std::sync::MutexGuard<'_, RepeatBuffer> {
        self.repeats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buffer's clock: monotonic milliseconds since the pool started.
    fn mono_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// When the next held run is due (none held: none).
    fn next_held_due(&self) -> Option<tokio::time::Instant> {
        let due = self.repeats().next_due_ms()?;
        let wait = due.saturating_sub(self.mono_ms()).max(0);
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(wait as u64))
    }

    /// Hands `ev` to the repeat buffer: held as a plain repeat, or appended to `batch` (after
    /// its key's held run) to be written now.
    fn offer(&self, mut ev: ClueEvent, batch: &mut Vec<(ClueEvent, Run)>) {
        if ev.dedup_key.trim().is_empty() {
            ev.dedup_key = ClueEvent::default_key(&ev.rule, &ev.subject);
        }
        let now = self.mono_ms();
        let mut buffer = self.repeats();
        buffer.offer(ev, now, batch);
        self.metrics.clue_repeats_held.set(buffer.held_events());
    }

    /// Writes the held runs whose window ended (`all`: every held run), in batches.
    async fn flush_held(&self, all: bool) {
        let mut runs = Vec::new();
        {
            let now = self.mono_ms();
            let mut buffer = self.repeats();
            let oldest_due = buffer.next_due_ms();
            if all {
                buffer.drain(&mut runs);
            } else {
                buffer.due(now, &mut runs);
            }
            if let Some(due) = oldest_due
                && !runs.is_empty()
            {
                self.metrics
                    .clue_repeats_late_ms
                    .set(now.saturating_sub(due).max(0));
            }
            self.metrics.clue_repeats_held.set(buffer.held_events());
        }
        while !runs.is_empty() {
            let rest = runs.split_off(runs.len().min(INTAKE_BATCH));
            self.flush(&mut runs).await;
            runs = rest;
        }
    }

    /// Records `batch` (emptied) in one transaction, logging what could not be recorded.
    async fn flush(&self, batch: &mut Vec<(ClueEvent, Run)>) {
        if batch.is_empty() {
            return;
        }
        let events = std::mem::take(batch);
        match self.write_runs(events).await {
            Ok(results) => {
                for r in results {
                    if let Err(e) = r {
                        self.metrics.clue_signal_errors_total.inc();
                        warn!(error = %e, "clue event not recorded");
                    }
                }
            }
            Err(e) => {
                self.metrics.clue_signal_errors_total.inc();
                warn!(error = %e, "clue events not recorded");
            }
        }
    }

    /// Many events in one transaction; one result per event, in order. A key's held repeats
    /// (`clue::repeats`) are written before its event, in the same transaction.
    pub(crate) async fn ingest_batch(
        &self,
        events: Vec<ClueEvent>,
    ) -> Result<Vec<Result<ClueChange, PoolError>>, PoolError> {
        let mut items = Vec::with_capacity(events.len());
        let mut asked = Vec::with_capacity(events.len());
        {
            let mut buffer = self.repeats();
            for mut ev in events {
                if ev.dedup_key.trim().is_empty() {
                    ev.dedup_key = ClueEvent::default_key(&ev.rule, &ev.subject);
                }
                if let Some(run) = buffer.take(&ev.dedup_key) {
                    items.push(run);
                    asked.push(false);
                }
                let at = ev.at_ms;
                items.push((ev, Run::one(at)));
                asked.push(true);
            }
        }
        let results = self.write_runs(items).await?;
        let mut out = Vec::with_capacity(results.len());
        for (r, asked) in results.into_iter().zip(asked) {
            match r {
                r if asked => out.push(r),
                Err(e) => {
                    self.metrics.clue_signal_errors_total.inc();
                    warn!(error = %e, "held clue repeats not recorded");
                }
                Ok(_) => {}
            }
        }
        Ok(out)
    }

    /// Events, each standing for its run (1: itself), in one transaction; one result each,
    /// in order, every change announced.
    async fn write_runs(
        &self,
        events: Vec<(ClueEvent, Run)>,
    ) -> Result<Vec<Result<ClueChange, PoolError>>, PoolError> {
        let (mut events, runs): (Vec<ClueEvent>, Vec<Run>) = events.into_iter().unzip();
        if let Some(stamp) = self.stamp.get() {
            for ev in &mut events {
                stamp(&mut ev.subject);
            }
        }
        for ev in &mut events {
            self.dispatch(ev);
        }
        let now = self.now_ms();
        let cfg = self.cfg.clone();
        let evidence = self.evidence.clone();
        let store = self.store.clone();
        let results = tokio::task::spawn_blocking(move || {
            let mut items = Vec::with_capacity(events.len());
            let mut kept = Vec::with_capacity(events.len());
            let mut out: Vec<Option<PoolError>> = Vec::with_capacity(events.len());
            for (ev, run) in events.into_iter().zip(runs) {
                match prepare(ev, &evidence, &cfg, now) {
                    Ok(item) => {
                        items.push(item);
                        kept.push(run);
                        out.push(None);
                    }
                    Err(e) => out.push(Some(e)),
                }
            }
            let mut stored = store.ingest_runs(&items, &kept, now)?.into_iter();
            Ok::<_, StoreError>(
                out.into_iter()
                    .map(|bad| match bad {
                        Some(e) => Err(e),
                        None => match stored.next() {
                            Some(r) => r.map_err(PoolError::Store),
                            None => Err(PoolError::Join),
                        },
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .map_err(|_| PoolError::Join)??;
        for r in &results {
            match r {
                Ok(c) => {
                    self.announce(c);
                    if c.event == "created" {
                        self.report_major(&c.clue).await;
                    }
                }
                Err(PoolError::Evidence(EvidenceError::NoSpace(_))) => {
                    self.metrics.evidence_refused_total.inc();
                }
                Err(_) => {}
            }
        }
        Ok(results)
    }

    /// Reports a new major clue to the unit above its own (see `clue::org::major`): an audited
    /// `major_clue` warning made into a notice to the handling unit, due in
    /// `org.major.reply_within_s`. A failure is logged and counted, never undoes the clue.
    async fn report_major(&self, clue: &super::model::Clue) {
        let matter = self
            .cfg
            .matters
            .matter_of(&clue.kind)
            .map(|m| m.id.as_str());
        let Some(report) = self
            .org
            .major_report(clue.level, matter, &clue.subject.site)
        else {
            return;
        };
        let now = self.now_ms();
        let reply_by = now.saturating_add(self.org.major_reply_ms());
        let found =
            super::org::major::finding(&report, clue.id, &clue.subject.site, &clue.title, reply_by);
        let raised = self
            .blocking(move |s| s.raise_warnings(&[found], now))
            .await;
        let warning = match raised {
            Ok(mut w) if !w.is_empty() => w.remove(0),
            Ok(_) => return, // already reported
            Err(e) => {
                self.metrics.clue_signal_errors_total.inc();
                warn!(clue = clue.id, error = %e, "major clue not reported up");
                return;
            }
        };
        let req = super::supervision::IssueRequest {
            unit: report.unit.clone(),
            deadline_ms: Some(reply_by),
            due_days: None,
            note: format!("reply to {} about major clue #{}", report.parent, clue.id),
        };
        match self.issue_notice(warning.id, req, "pool".into()).await {
            Ok(n) => info!(clue = clue.id, notice = n.id, unit = %report.unit,
                           to = %report.parent, "major clue reported up"),
            Err(e) => {
                self.metrics.clue_signal_errors_total.inc();
                warn!(clue = clue.id, error = %e, "major clue reported, its reply notice not issued");
            }
        }
    }

    /// Gives `ev` the lead and assisting departments of the `[[org.dispatch]]` rule that
    /// covers its matter and site (the rule wins over the producer's department: the city's
    /// configured dispatch is the decision). Used when it opens a clue; a repeat of an open
    /// clue keeps the clue's departments.
    fn dispatch(&self, ev: &mut ClueEvent) {
        let matter = self.cfg.matters.matter_of(&ev.kind).map(|m| m.id.as_str());
        if let Some(d) = self.org.dispatch(matter, &ev.subject.site) {
            ev.department = Some(d.lead);
            ev.assisting = d.assisting;
        }
    }

    pub(crate) async fn act(
        &self,
        id: i64,
        action: Action,
        actor: String,
    ) -> Result<ClueChange, PoolError> {
        // Repeats held before the action are recorded before it (a run landing after a
        // dismissal would open a new clue the events one by one had not).
        self.flush_held(true).await;
        let action = self.checked(id, action).await?;
        let now = self.now_ms();
        let change = self
            .blocking(move |s| s.act(id, &action, &actor, now))
            .await?;
        self.announce(&change);
        Ok(change)
    }

    /// A `decide` action with the catalogue's check filled in (other actions unchanged).
    /// The check reads the clue as it is now; a repeat arriving between this read and the
    /// action's transaction is judged by the next decision or the next oversight run.
    async fn checked(&self, id: i64, action: Action) -> Result<Action, PoolError> {
        if let Action::SendOwnerNotice {
            channel, template, ..
        } = action
        {
            return self.owner_notice_draft(id, channel, template).await;
        }
        if let Action::Dispatch {
            lead, assisting, ..
        } = &action
        {
            self.check_dispatch(id, lead.iter().chain(assisting.iter().flatten()))
                .await?;
            return Ok(action);
        }
        let Action::Decide {
            band,
            penalty,
            leniency_applied,
            basis,
            ..
        } = action
        else {
            return Ok(action);
        };
        let d = self
            .get(id)
            .await?
            .ok_or(PoolError::Store(StoreError::NotFound(id)))?;
        let Some(a) = d.matter else {
            return Err(PoolError::Invalid(format!(
                "clue kind `{}` belongs to no matter of the catalogue (version `{}`): \
                 nothing to decide on",
                d.clue.kind, self.cfg.matters.version
            )));
        };
        let check = super::decision::check(&a, band.trim(), penalty, &leniency_applied)
            .map_err(PoolError::Invalid)?;
        Ok(Action::Decide {
            band: band.trim().to_string(),
            penalty,
            leniency_applied,
            basis,
            check: Some(check),
        })
    }

    /// A `send_owner_notice` action with its draft: the channel must be configured (and the
    /// template one it allows), and the registry must hold the contact the channel needs.
    async fn owner_notice_draft(
        &self,
        id: i64,
        channel: String,
        template: Option<String>,
    ) -> Result<Action, PoolError> {
        use super::owner_notify as on;
        let name = channel.trim().to_string();
        let template = template
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let Some(ch) = self.cfg.owner_notify.channel(&name) else {
            return Err(PoolError::Invalid(format!(
                "no owner-notice channel `{name}` (configured: {})",
                self.cfg.owner_notify.names()
            )));
        };
        if let Some(t) = &template
            && !ch.allows_template(t)
        {
            return Err(PoolError::Invalid(format!(
                "channel `{name}` has no template `{t}` (templates: {})",
                ch.templates.join(", ")
            )));
        }
        let d = self
            .get(id)
            .await?
            .ok_or(PoolError::Store(StoreError::NotFound(id)))?;
        let contact = self
            .contacts
            .get()
            .and_then(|f| f(&d.clue.subject))
            .unwrap_or_default();
        let Some(to) = contact.get(ch.contact) else {
            return Err(PoolError::Invalid(format!(
                "the device registry holds no owner {} for site {}{} (`owner_{}` of its entry); \
                 channel `{name}` needs one",
                ch.contact.as_str(),
                d.clue.subject.site,
                d.clue
                    .subject
                    .device
                    .as_deref()
                    .map(|dv| format!(" device {dv}"))
                    .unwrap_or_default(),
                ch.contact.as_str(),
            )));
        };
        let key = on::new_idempotency_key(id);
        let window = self.cfg.oversight.closed_without_owner.answer_window_s;
        let payload = on::payload(&d, ch, template.as_deref(), to, window, &key);
        let draft = on::OwnerNoticeDraft {
            outbox_channel: on::outbox_channel(&ch.name),
            site: d.clue.subject.site.clone(),
            contact_masked: on::masked(ch.contact, to),
            idempotency_key: key,
            payload,
        };
        Ok(Action::SendOwnerNotice {
            channel: name,
            template,
            draft: Some(draft),
        })
    }

    /// One attempt of owner notice `id` failed; it stays queued.
    pub(crate) async fn owner_notice_attempt_failed(
        &self,
        id: i64,
        outbox_id: i64,
        error: String,
        next_attempt_ms: i64,
    ) -> Result<(), PoolError> {
        self.blocking(move |s| {
            s.owner_notice_attempt_failed(id, outbox_id, &error, next_attempt_ms)
        })
        .await
    }

    /// Settles owner notice `id` (delivered or given up) and announces the clue's change.
    pub(crate) async fn settle_owner_notice(
        &self,
        id: i64,
        outbox_id: i64,
        outcome: super::owner_notify::Outcome,
    ) -> Result<Option<ClueChange>, PoolError> {
        let now = self.now_ms();
        let change = self
            .blocking(move |s| s.settle_owner_notice(id, outbox_id, &outcome, now))
            .await?;
        if let Some(c) = &change {
            self.announce(c);
        }
        Ok(change)
    }

    pub(crate) async fn owner_notice(
        &self,
        id: i64,
    ) -> Result<Option<super::owner_notify::OwnerNotice>, PoolError> {
        self.blocking(move |s| s.owner_notice(id)).await
    }

    /// Records a provider's receipt for owner notice `id`.
    pub(crate) async fn owner_notice_receipt(
        &self,
        id: i64,
        receipt: super::owner_notify::Receipt,
        actor: String,
    ) -> Result<ClueChange, PoolError> {
        let now = self.now_ms();
        let change = self
            .blocking(move |s| s.owner_notice_receipt(id, &receipt, &actor, now))
            .await?;
        self.announce(&change);
        Ok(change)
    }

    /// With units configured, the departments a `dispatch` action names must be departments
    /// of the clue's unit or of a unit above it (who can be told to handle it).
    async fn check_dispatch(
        &self,
        id: i64,
        departments: impl Iterator<Item = &String>,
    ) -> Result<(), PoolError> {
        if self.org.is_empty() {
            return Ok(());
        }
        let d = self
            .get(id)
            .await?
            .ok_or(PoolError::Store(StoreError::NotFound(id)))?;
        let site = &d.clue.subject.site;
        let Some(home) = self.org.unit_of_site(site) else {
            return Err(PoolError::Invalid(format!(
                "site {site} belongs to no unit of [org]: nobody to dispatch to"
            )));
        };
        for dept in departments {
            let dept = dept.trim();
            if !self
                .org
                .chain(&home.id)
                .any(|u| u.departments.iter().any(|x| x == dept))
            {
                return Err(PoolError::Invalid(format!(
                    "`{dept}` is no department of unit {} or a unit above it",
                    home.id
                )));
            }
        }
        Ok(())
    }

    /// Statistics of the latest decision of each clue in scope, by matter and band.
    pub(crate) async fn decision_stats(
        &self,
        scope: Option<Vec<String>>,
        only: Option<std::collections::HashSet<i64>>,
    ) -> Result<super::decision::DecisionStats, PoolError> {
        let mut rows = self
            .blocking(move |s| s.decisions(scope.as_deref()))
            .await?;
        if let Some(only) = only {
            rows.retain(|r| only.contains(&r.clue_id));
        }
        Ok(super::decision::decision_stats(rows))
    }

    /// Escalates overdue clues now; returns the supervision events.
    pub(crate) async fn tick(&self) -> Result<Vec<ClueChange>, PoolError> {
        let now = self.now_ms();
        let red = self.cfg.red_after_s as i64 * 1000;
        let changes = self.blocking(move |s| s.escalate(now, red)).await?;
        // Acknowledged deliveries are kept a day for diagnosis, then forgotten.
        let purge_before = now - 24 * 3600 * 1000;
        if let Err(e) = self
            .blocking(move |s| s.purge_delivered(purge_before))
            .await
        {
            warn!(error = %e, "purging delivered clue events failed");
        }
        for c in &changes {
            info!(
                clue = c.clue.id,
                escalation = c.clue.escalation.as_str(),
                "clue overdue"
            );
            self.announce(c);
        }
        if self.cfg.oversight.notices.escalate
            && let Err(e) = self.escalate_notices().await
        {
            warn!(error = %e, "supervision notice escalation failed");
        }
        Ok(changes)
    }

    /// Raises overdue supervision notices now (yellow, red); returns those raised. Part of
    /// the tick.
    pub(crate) async fn escalate_notices(&self) -> Result<Vec<Notice>, PoolError> {
        let now = self.now_ms();
        let cfg = self.cfg.oversight.notices.clone();
        let raised = self
            .blocking(move |s| s.escalate_notices(&cfg, now))
            .await?;
        for n in &raised {
            info!(notice = n.id, level = n.level.as_str(), unit = %n.unit,
                  "supervision notice overdue");
            self.metrics
                .clue_changes_total
                .get_or_create(&Reason::of("notice_overdue"))
                .inc();
        }
        if !raised.is_empty() {
            self.delivery_wake.notify_waiters();
            self.delivery_wake.notify_one();
        }
        Ok(raised)
    }

    /// The stored oversight warning `id`.
    pub(crate) async fn warning(
        &self,
        id: i64,
    ) -> Result<Option<super::oversight::Warning>, PoolError> {
        self.blocking(move |s| s.warning(id)).await
    }

    /// Makes warning `warning_id` a notice to the unit `req` names (checked here: unit,
    /// deadline within `[clues.oversight.notices]`).
    pub(crate) async fn issue_notice(
        &self,
        warning_id: i64,
        req: IssueRequest,
        actor: String,
    ) -> Result<Notice, PoolError> {
        let now = self.now_ms();
        let new = super::supervision::issue(&req, now, &self.cfg.oversight.notices)
            .map_err(|e| PoolError::Store(e.into()))?;
        let n = self
            .blocking(move |s| s.issue_notice(warning_id, &new, &actor, now))
            .await?;
        self.delivery_wake.notify_one();
        Ok(n)
    }

    /// One step on notice `id` (`supervision::apply` inside the store's transaction).
    pub(crate) async fn act_on_notice(
        &self,
        id: i64,
        action: NoticeAction,
        actor: String,
    ) -> Result<Notice, PoolError> {
        let now = self.now_ms();
        let cfg = self.cfg.oversight.notices.clone();
        let n = self
            .blocking(move |s| s.act_on_notice(id, &action, &actor, &cfg, now))
            .await?;
        self.delivery_wake.notify_one();
        Ok(n)
    }

    pub(crate) async fn notices(
        &self,
        scope: Option<Vec<String>>,
        filter: NoticeFilter,
        limit: u32,
    ) -> Result<Vec<Notice>, PoolError> {
        self.blocking(move |s| s.notices(scope.as_deref(), filter, limit))
            .await
    }

    pub(crate) async fn notice(&self, id: i64) -> Result<Option<NoticeDetail>, PoolError> {
        self.blocking(move |s| s.notice(id)).await
    }

    /// Detail with the owner's record (from the audit), the leniency recommendation and the
    /// matter assessment (band and leniency entries from the catalogue).
    pub(crate) async fn get(&self, id: i64) -> Result<Option<ClueDetail>, PoolError> {
        let now = self.now_ms();
        let cfg = self.cfg.clone();
        self.blocking(move |s| {
            let Some(mut d) = s.get(id)? else {
                return Ok(None);
            };
            let audit = s.audit_of(id)?;
            let window = cfg.oversight.closed_without_owner.answer_window_s;
            let mut owner = super::owner::owner_record(&audit, window);
            owner.notices = s.owner_notices(id)?;
            d.owner = Some(owner);
            let lc = &cfg.oversight.leniency;
            let since = now.saturating_sub((lc.lookback_s as i64).saturating_mul(1000));
            let prior = s.prior_clues_since(id, since)?;
            d.leniency = Some(super::owner::leniency(&d.clue, prior, lc));
            d.matter = assess_matter(s, &cfg.matters, &d, now)?;
            Ok(Some(d))
        })
        .await
    }

    pub(crate) fn config(&self) -> &CluesConfig {
        &self.cfg
    }

    /// Runs the supervision models once: links duplicate acts, stores warnings. Returns the
    /// warnings that are new or raised.
    pub(crate) async fn run_oversight(&self) -> Result<Vec<super::oversight::Warning>, PoolError> {
        let now = self.now_ms();
        let cfg = self.cfg.clone();
        let (changes, warnings) = self
            .blocking(move |s| {
                let oc = &cfg.oversight;
                // With several gateways on one store, only the leader runs the models.
                if !oc.enabled || !s.lead("oversight")? {
                    return Ok((Vec::new(), Vec::new()));
                }
                let since = now.saturating_sub((oc.lookback_s as i64).saturating_mul(1000));
                let history = s.oversight_history(since)?;
                let (found, links) = super::oversight::run_models(&history, now, oc);
                let mut changes = Vec::new();
                for l in &links {
                    changes.extend(s.link(l, "oversight", now)?);
                }
                let warnings = s.raise_warnings(&found, now)?;
                Ok((changes, warnings))
            })
            .await?;
        for c in &changes {
            self.announce(c);
        }
        for w in &warnings {
            info!(model = %w.finding.model, level = w.finding.level.as_str(),
                  clue = ?w.finding.clue_id, "oversight warning");
            self.metrics
                .clue_changes_total
                .get_or_create(&Reason::of("oversight_warning"))
                .inc();
        }
        Ok(warnings)
    }

    pub(crate) async fn warnings(
        &self,
        scope: Option<Vec<String>>,
        limit: u32,
    ) -> Result<Vec<super::oversight::Warning>, PoolError> {
        self.blocking(move |s| s.warnings(scope.as_deref(), limit))
            .await
    }

    /// One retention purge now.
    pub(crate) async fn run_retention(&self) -> Result<super::retention::PurgeReport, PoolError> {
        let now = self.now_ms();
        let cfg = self.cfg.clone();
        let store = self.store.clone();
        let files = self.evidence.clone();
        let report = tokio::task::spawn_blocking(move || {
            if !store.lead("retention")? {
                return Ok(Default::default());
            }
            super::retention::purge(store.as_ref(), &files, &cfg.retention, now)
        })
        .await
        .map_err(|_| PoolError::Join)?
        .map_err(|e| match e {
            super::retention::RetentionError::Store(s) => PoolError::Store(s),
            super::retention::RetentionError::Files(f) => PoolError::Evidence(f),
        })?;
        if report.purged > 0 {
            // Never served after a purge anyway (the evidence row says purged first); this
            // only keeps masked copies from outliving their originals in memory.
            self.masked.clear();
        }
        Ok(report)
    }

    /// Masked evidence copies already made.
    pub(crate) fn masked_copies(&self) -> &super::masked_cache::MaskedCache {
        &self.masked
    }

    /// Audits that `actor` is being given an evidence original.
    pub(crate) async fn record_original_access(
        &self,
        clue_id: i64,
        sha256: String,
        actor: String,
        role: &'static str,
    ) -> Result<(), PoolError> {
        let now = self.now_ms();
        self.blocking(move |s| s.record_original_access(clue_id, &sha256, &actor, role, now))
            .await
    }

    /// Audits an administrative change that concerns no clue (a registry edit). Blocking:
    /// call from `spawn_blocking`, inside the change it records.
    pub(crate) fn record_blocking(
        &self,
        actor: &str,
        action: super::audit::AuditAction,
        detail: &serde_json::Value,
    ) -> Result<(), PoolError> {
        Ok(self.store.record(actor, action, detail, self.now_ms())?)
    }

    /// The muck-truck permits written through the API (`camera::permits`).
    pub(crate) async fn muck_permits(&self) -> Result<Vec<super::store::PermitRow>, PoolError> {
        self.blocking(|s| s.muck_permits()).await
    }

    /// Stores a muck-truck permit with its audit entry; the permit it replaced.
    pub(crate) async fn put_muck_permit(
        &self,
        plate: String,
        permit: serde_json::Value,
        create: bool,
        actor: String,
    ) -> Result<Option<serde_json::Value>, PoolError> {
        let now = self.now_ms();
        self.blocking(move |s| s.put_muck_permit(&plate, &permit, create, &actor, now))
            .await
    }

    /// Revokes a muck-truck permit with its audit entry; the one revoked, if any.
    pub(crate) async fn delete_muck_permit(
        &self,
        plate: String,
        actor: String,
    ) -> Result<Option<serde_json::Value>, PoolError> {
        let now = self.now_ms();
        self.blocking(move |s| s.delete_muck_permit(&plate, &actor, now))
            .await
    }

    /// Audits that `actor` is being given an unmasked camera frame.
    pub(crate) async fn record_frame_access(
        &self,
        site: String,
        camera: String,
        actor: String,
        role: &'static str,
    ) -> Result<(), PoolError> {
        let now = self.now_ms();
        self.blocking(move |s| s.record_frame_access(&site, &camera, &actor, role, now))
            .await
    }

    pub(crate) async fn list(&self, q: ClueQuery) -> Result<Vec<Clue>, PoolError> {
        self.blocking(move |s| s.list(&q)).await
    }

    pub(crate) async fn audit_of(
        &self,
        id: i64,
    ) -> Result<Vec<super::audit::AuditEntry>, PoolError> {
        self.blocking(move |s| s.audit_of(id)).await
    }

    pub(crate) async fn audit_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: Option<Vec<String>>,
    ) -> Result<Vec<super::audit::AuditEntry>, PoolError> {
        self.blocking(move |s| s.audit_range(from_ms, to_ms, scope.as_deref()))
            .await
    }

    pub(crate) async fn verify(
        &self,
        head: Option<super::audit::Head>,
    ) -> Result<super::audit::VerifyReport, PoolError> {
        self.blocking(move |s| s.verify_audit_against(head.as_ref()))
            .await
    }

    /// Queues the chain's head for delivery unless it is `last` (or this gateway does not
    /// lead the job); the head queued, if any.
    pub(crate) async fn publish_audit_head(
        &self,
        last: Option<super::audit::Head>,
    ) -> Result<Option<super::audit::Head>, PoolError> {
        let now = self.now_ms();
        let head = self
            .blocking(move |s| {
                if !s.lead("audit_head")? {
                    return Ok(None);
                }
                match s.audit_head()? {
                    Some(h) if Some(&h) != last.as_ref() => s.publish_audit_head(now),
                    _ => Ok(None),
                }
            })
            .await?;
        if head.is_some() {
            self.delivery_wake.notify_waiters();
            self.delivery_wake.notify_one();
        }
        Ok(head)
    }

    /// Recorded parking stays (see `clue::stays`).
    pub(crate) async fn stays(
        &self,
        q: super::stays::StayQuery,
    ) -> Result<Vec<super::stays::StayRecord>, PoolError> {
        self.blocking(move |s| s.stays(&q)).await
    }

    pub(crate) async fn stats(&self, scope: Option<Vec<String>>) -> Result<Stats, PoolError> {
        let now = self.now_ms();
        self.blocking(move |s| {
            let mut stats = s.stats(scope.as_deref(), now)?;
            // The persuasion figures, from the stays' records (not from counters).
            stats.parking = super::stays::parking_stats(s.stay_counts(scope.as_deref())?);
            Ok(stats)
        })
        .await
    }

    /// An evidence file's bytes, verified against its hash.
    pub(crate) async fn evidence_file(&self, sha256: String) -> Result<Vec<u8>, PoolError> {
        let ev = self.evidence.clone();
        tokio::task::spawn_blocking(move || ev.get(&sha256))
            .await
            .map_err(|_| PoolError::Join)?
            .map_err(PoolError::Evidence)
    }
}

/// The catalogue's assessment of clue `d` (its owner record already filled in): `None` when
/// its kind belongs to no matter.
fn assess_matter(
    s: &dyn ClueStore,
    cat: &super::matters::MatterCatalogue,
    d: &ClueDetail,
    now: i64,
) -> Result<Option<super::matters::MatterAssessment>, StoreError> {
    let Some(matter) = cat.matter_of(&d.clue.kind) else {
        return Ok(None);
    };
    let c = &d.clue;
    let since = now.saturating_sub((cat.lookback_s as i64).saturating_mul(1000));
    let corrected_after_s = c.cleared_ms.map(|t| (t - c.first_seen_ms).max(0) / 1000);
    let facts = super::matters::Facts {
        level: c.level,
        occurrences: c.occurrences,
        prior: s.prior_clues_since(c.id, since)?,
        seen_for_s: (c.last_seen_ms - c.first_seen_ms).max(0) / 1000,
        corrected: c.cleared_ms.is_some(),
        corrected_after_s,
        owner_answered: d.owner.as_ref().is_some_and(|o| !o.responses.is_empty()),
        figures: matter
            .figure_names()
            .into_iter()
            .filter_map(|n| Some((n.clone(), super::matters::figure_of(&c.detail, n)?)))
            .collect(),
    };
    Ok(Some(super::matters::assess(cat, matter, facts)))
}

/// Validates an event, stores its evidence and computes its deadline.
fn prepare(
    mut ev: ClueEvent,
    evidence: &EvidenceStore,
    cfg: &CluesConfig,
    now: i64,
) -> Result<(ClueEvent, Vec<NewEvidence>, i64), PoolError> {
    if ev.subject.site.trim().is_empty() {
        return Err(PoolError::Invalid("subject.site is empty".into()));
    }
    if ev.rule.trim().is_empty() || ev.kind.trim().is_empty() {
        return Err(PoolError::Invalid("rule and kind are required".into()));
    }
    if ev.dedup_key.trim().is_empty() {
        ev.dedup_key = ClueEvent::default_key(&ev.rule, &ev.subject);
    }
    // Both renderings travel with the clue (API, SSE, exports, MQTT, webhook).
    super::text::attach(&mut ev);
    let deadline = now.saturating_add(cfg.deadlines.for_level(ev.level) as i64 * 1000);
    let items = std::mem::take(&mut ev.evidence);
    let stored = store_evidence(evidence, items)?;
    Ok((ev, stored, deadline))
}

/// Writes files to the content-addressed store and hashes inline evidence.
fn store_evidence(
    store: &EvidenceStore,
    items: Vec<Evidence>,
) -> Result<Vec<NewEvidence>, PoolError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let e = match item {
            Evidence::File {
                name,
                content_type,
                bytes,
                regions,
            } => NewEvidence {
                kind: "file",
                name: Some(name),
                content_type: Some(content_type),
                sha256: store.put(&bytes)?,
                size: bytes.len() as i64,
                body: None,
                regions,
            },
            inline => {
                let kind = match inline {
                    Evidence::Readings { .. } => "readings",
                    _ => "note",
                };
                let body = serde_json::to_value(&inline)
                    .map_err(|e| PoolError::Invalid(format!("evidence: {e}")))?;
                let text = super::audit::canonical_json(&body);
                NewEvidence {
                    kind,
                    name: None,
                    content_type: Some("application/json".into()),
                    sha256: super::audit::sha256_hex(&[text.as_bytes()]),
                    size: text.len() as i64,
                    body: Some(body),
                    regions: None,
                }
            }
        };
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::lifecycle::Status;
    use crate::clue::signal::{Level, Subject};
    use std::sync::atomic::{AtomicI64, Ordering};

    struct FakeClock(AtomicI64);
    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn pool(dir: &std::path::Path) -> (PoolHandle, Arc<FakeClock>, Arc<SqliteStore>) {
        pool_with(dir, |_| {})
    }

    fn pool_with(
        dir: &std::path::Path,
        tune: impl FnOnce(&mut CluesConfig),
    ) -> (PoolHandle, Arc<FakeClock>, Arc<SqliteStore>) {
        let store = Arc::new(
            SqliteStore::open(&dir.join("clues.sqlite"), vec![])
                .expect("open")
                .with_raise_after(3),
        );
        let clock = Arc::new(FakeClock(AtomicI64::new(1_000_000)));
        let mut cfg = CluesConfig::default();
        cfg.deadlines.high_s = 60;
        cfg.red_after_s = 60;
        tune(&mut cfg);
        let h = PoolHandle::new(
            store.clone(),
            store.clone(),
            EvidenceStore::open(dir.join("evidence")).expect("evidence"),
            clock.clone(),
            cfg,
            Arc::new(Metrics::new()),
        );
        (h, clock, store)
    }

    fn event(device: &str, at_ms: i64) -> ClueEvent {
        let subject = Subject {
            site: "a".into(),
            device: Some(device.into()),
            ..Default::default()
        };
        ClueEvent {
            rule: "cover-open".into(),
            kind: "manhole.cover_open".into(),
            level: Level::High,
            dedup_key: ClueEvent::default_key("cover-open", &subject),
            subject,
            at_ms,
            title: "Cover open".into(),
            detail: serde_json::json!({"tilt": 40}),
            evidence: vec![Evidence::File {
                name: "frame.jpg".into(),
                content_type: "image/jpeg".into(),
                bytes: format!("jpeg-{at_ms}").into_bytes(),
                regions: None,
            }],
            department: Some("water".into()),
            assisting: Vec::new(),
        }
    }

    /// Xihu (county, site `x0`) above Lingyin (township, site `a`); every clue there is led by
    /// Xihu's market department with urban management assisting.
    fn org() -> Arc<crate::clue::org::Org> {
        use crate::clue::org::OrgConfig;
        use crate::clue::org::config::{DispatchConfig, UnitConfig};
        use crate::clue::org::tree::UnitLevel;
        let unit = |id: &str, parent: Option<&str>, level, site: &str| UnitConfig {
            id: id.into(),
            name: id.into(),
            parent: parent.map(Into::into),
            level,
            sites: vec![site.into()],
            departments: vec!["market".into(), "urban-management".into()],
        };
        let cfg = OrgConfig {
            units: vec![
                unit("xihu", None, UnitLevel::County, "x0"),
                unit("lingyin", Some("xihu"), UnitLevel::Township, "a"),
            ],
            dispatch: vec![DispatchConfig {
                matter: "*".into(),
                unit: "xihu".into(),
                lead: "market".into(),
                assisting: vec!["urban-management".into()],
            }],
            major: Default::default(),
        };
        Arc::new(cfg.build(&[]).expect("valid org"))
    }

    #[tokio::test]
    async fn a_new_clue_is_dispatched_and_a_supervisor_changes_it_as_an_audited_action() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, store) = pool_with(dir.path(), |_| {});
        let p = p.with_org(org());
        let c = p.ingest(event("m1", 1_000)).await.expect("ingest");
        assert_eq!(
            c.clue.department.as_deref(),
            Some("market"),
            "the rule wins"
        );
        assert_eq!(c.clue.assisting, ["urban-management"]);
        let id = c.clue.id;
        let dispatch = |lead: &str| Action::Dispatch {
            lead: Some(lead.into()),
            assisting: Some(vec![]),
            reason: "r".into(),
        };
        assert!(
            matches!(
                p.act(id, dispatch("water"), "sue#2".into()).await,
                Err(PoolError::Invalid(_))
            ),
            "no unit of the clue has a water department"
        );
        let c = p
            .act(id, dispatch("urban-management"), "sue#2".into())
            .await
            .expect("dispatch");
        assert_eq!(c.clue.department.as_deref(), Some("urban-management"));
        assert!(c.clue.assisting.is_empty());
        let trail = p.audit_of(id).await.expect("trail");
        let last = trail.last().expect("entry");
        assert_eq!(last.action, "dispatch");
        assert_eq!(last.detail["from_department"], "market");
        assert_eq!(
            last.detail["from_assisting"],
            serde_json::json!(["urban-management"])
        );
        let report = crate::clue::store::AuditLog::verify_audit(store.as_ref()).expect("verify");
        assert!(report.ok);
    }

    #[tokio::test]
    async fn repeats_attach_as_occurrences_not_new_clues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let first = p.ingest(event("m1", 1)).await.expect("first");
        assert_eq!(first.event, "created");
        let again = p.ingest(event("m1", 2)).await.expect("repeat");
        assert_eq!(again.event, "occurrence");
        assert_eq!(again.clue.id, first.clue.id);
        assert_eq!(again.clue.occurrences, 2);
        let other = p.ingest(event("m2", 3)).await.expect("other device");
        assert_ne!(other.clue.id, first.clue.id);
        let d = p.get(first.clue.id).await.expect("get").expect("exists");
        assert_eq!(d.recent_occurrences.len(), 2);
        assert_eq!(d.evidence.len(), 2, "each occurrence keeps its evidence");
        for e in &d.evidence {
            p.evidence_file(e.sha256.clone())
                .await
                .expect("file verifies");
        }
        assert!(d.history.first_violation);
    }

    /// `event` without evidence, low: what a rule repeats while a condition lasts.
    fn plain(device: &str, at_ms: i64) -> ClueEvent {
        let mut ev = event(device, at_ms);
        ev.evidence.clear();
        ev.level = Level::Low;
        ev
    }

    /// Intake on a channel into `p`; sends `first` and waits until it is recorded (so the
    /// pool knows its clue and holds what repeats it).
    async fn intake_with(
        p: &PoolHandle,
        first: &[ClueEvent],
    ) -> (mpsc::Sender<ClueSignal>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(intake(p.clone(), rx));
        for ev in first {
            tx.send(ClueSignal::Occurrence(ev.clone()))
                .await
                .expect("send");
        }
        for _ in 0..500 {
            if p.list(ClueQuery::default()).await.expect("list").len() == first.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (tx, task)
    }

    async fn actions(p: &PoolHandle, id: i64) -> Vec<(String, i64)> {
        p.audit_of(id)
            .await
            .expect("audit")
            .iter()
            .map(|e| (e.action.clone(), e.detail["count"].as_i64().unwrap_or(1)))
            .collect()
    }

    fn run(action: &str, count: i64) -> (String, i64) {
        (action.to_string(), count)
    }

    /// Plain repeats through intake are held and written once when the window ends: one
    /// entry and one occurrence row for the run, the rise from repetition (`raise_after` 3)
    /// applied then, late by at most the window.
    #[tokio::test]
    async fn plain_repeats_are_written_once_per_window_and_still_raise_the_level() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool_with(dir.path(), |c| c.repeat_window_ms = 300);
        let (tx, task) = intake_with(&p, &[plain("m1", 1)]).await;
        let id = p.list(ClueQuery::default()).await.expect("list")[0].id;
        for i in 0..20 {
            tx.send(ClueSignal::Occurrence(plain("m1", 10 + i)))
                .await
                .expect("send");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let c = p.get(id).await.expect("get").expect("clue").clue;
        assert_eq!(
            (c.occurrences, c.level),
            (1, Level::Low),
            "held in the window"
        );
        assert_eq!(
            p.metrics.clue_repeats_held.get(),
            20,
            "the gauge shows them"
        );
        let mut written = None;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let c = p.get(id).await.expect("get").expect("clue");
            if c.clue.occurrences > 1 {
                written = Some(c);
                break;
            }
        }
        let d = written.expect("the run written when its window ended");
        assert_eq!((d.clue.occurrences, d.clue.level), (21, Level::Medium));
        assert_eq!(
            p.metrics.clue_repeats_held.get(),
            0,
            "none held once written"
        );
        assert_eq!((d.clue.first_seen_ms, d.clue.last_seen_ms), (1, 29));
        assert_eq!(
            actions(&p, id).await,
            [run("created", 1), run("level_raised", 20)]
        );
        let rows: Vec<(i64, Option<i64>, i64)> = d
            .recent_occurrences
            .iter()
            .map(|o| (o.count, o.first_ms, o.at_ms))
            .collect();
        assert_eq!(rows, [(20, Some(10), 29), (1, None, 1)]);
        // Now medium, the low repeats are plain again: a run of 5, an entry `repeat`.
        for i in 0..5 {
            tx.send(ClueSignal::Occurrence(plain("m1", 100 + i)))
                .await
                .expect("send");
        }
        drop(tx);
        task.await.expect("intake ends and writes what it held");
        assert_eq!(
            actions(&p, id).await,
            [run("created", 1), run("level_raised", 20), run("repeat", 5)]
        );
        let c = p.get(id).await.expect("get").expect("clue").clue;
        assert_eq!(c.occurrences, 26);
        assert!(p.verify(None).await.expect("verify").ok);
    }

    /// A held run is written before anything else of its key: a clearance, a person's
    /// action on the clue, a worse event, an event through `ingest`; window 0 holds nothing.
    #[tokio::test]
    async fn a_held_run_is_written_before_what_comes_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool_with(dir.path(), |c| c.repeat_window_ms = 60_000);
        let firsts = [
            plain("m1", 1),
            plain("m2", 1),
            plain("m3", 1),
            plain("m4", 1),
        ];
        let (tx, task) = intake_with(&p, &firsts).await;
        let ids: std::collections::HashMap<String, i64> = p
            .list(ClueQuery::default())
            .await
            .expect("list")
            .into_iter()
            .map(|c| (c.subject.device.clone().unwrap_or_default(), c.id))
            .collect();
        for d in ["m1", "m2", "m3", "m4"] {
            for i in 0..2 {
                tx.send(ClueSignal::Occurrence(plain(d, 10 + i)))
                    .await
                    .expect("send");
            }
        }
        tx.send(ClueSignal::Cleared {
            dedup_key: firsts[0].dedup_key.clone(),
            at_ms: 50,
            note: "closed".into(),
        })
        .await
        .expect("send");
        let mut worse = plain("m3", 60);
        worse.level = Level::High;
        tx.send(ClueSignal::Occurrence(worse)).await.expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        p.ingest(plain("m4", 70)).await.expect("ingest");
        p.act(
            ids["m2"],
            Action::Dismiss {
                reason: "permit".into(),
            },
            "ann".into(),
        )
        .await
        .expect("dismiss");
        let raised = run("level_raised", 2);
        assert_eq!(
            actions(&p, ids["m1"]).await,
            [run("created", 1), raised.clone(), run("cleared", 1)]
        );
        assert_eq!(
            actions(&p, ids["m2"]).await,
            [run("created", 1), raised.clone(), run("dismiss", 1)]
        );
        assert_eq!(
            actions(&p, ids["m3"]).await,
            [run("created", 1), raised.clone(), run("level_raised", 1)]
        );
        assert_eq!(
            actions(&p, ids["m4"]).await,
            [run("created", 1), raised, run("occurrence", 1)]
        );
        assert_eq!(p.list(ClueQuery::default()).await.expect("list").len(), 4);
        drop(tx);
        task.await.expect("intake ends");
        assert!(p.verify(None).await.expect("verify").ok);

        // Window 0: every event written on its own, as before.
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool_with(dir.path(), |c| c.repeat_window_ms = 0);
        let (tx, task) = intake_with(&p, &[plain("m1", 1)]).await;
        for i in 0..3 {
            tx.send(ClueSignal::Occurrence(plain("m1", 10 + i)))
                .await
                .expect("send");
        }
        drop(tx);
        task.await.expect("intake ends");
        let id = p.list(ClueQuery::default()).await.expect("list")[0].id;
        assert_eq!(
            actions(&p, id).await,
            [
                run("created", 1),
                run("occurrence", 1),
                run("level_raised", 1),
                run("occurrence", 1)
            ]
        );
    }

    #[tokio::test]
    async fn signals_sent_through_the_channel_are_recorded_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(intake(p.clone(), rx));
        for i in 0..300 {
            tx.send(ClueSignal::Occurrence(event(&format!("m{}", i % 3), i)))
                .await
                .expect("send");
        }
        tx.send(ClueSignal::Cleared {
            dedup_key: "cover-open/a/m0".into(),
            at_ms: 999,
            note: "closed".into(),
        })
        .await
        .expect("send");
        let mut bad = event("m9", 1);
        bad.subject.site = String::new();
        tx.send(ClueSignal::Occurrence(bad)).await.expect("send");
        drop(tx);
        task.await.expect("intake ends when producers are gone");
        let all = p.list(ClueQuery::default()).await.expect("list");
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|c| c.occurrences == 100));
        let m0 = all
            .iter()
            .find(|c| c.dedup_key == "cover-open/a/m0")
            .expect("m0");
        assert_eq!(m0.cleared_ms, Some(999));
        assert_eq!(p.metrics.clue_signal_errors_total.get(), 1);
        assert!(p.verify(None).await.expect("verify").ok);
    }

    #[tokio::test]
    async fn repetition_raises_the_level_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut ev = event("m1", 1);
        ev.level = Level::Low;
        let levels: Vec<Level> = {
            let mut v = Vec::new();
            for i in 0..4 {
                ev.at_ms = i;
                v.push(p.ingest(ev.clone()).await.expect("ingest").clue.level);
            }
            v
        };
        assert_eq!(
            levels,
            vec![Level::Low, Level::Low, Level::Medium, Level::Medium]
        );
    }

    #[tokio::test]
    async fn cleared_is_recorded_but_never_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        let cleared = p
            .signal(ClueSignal::Cleared {
                dedup_key: c.clue.dedup_key.clone(),
                at_ms: 5,
                note: "cover closed".into(),
            })
            .await
            .expect("clear")
            .expect("a change");
        assert_eq!(cleared.clue.status, Status::New);
        assert_eq!(cleared.clue.cleared_ms, Some(5));
    }

    #[tokio::test]
    async fn pumpout_due_then_overdue_is_one_clue_with_two_levels_in_its_history() {
        // Through the real rules engine (default rules) into the pool.
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut engine = crate::rules::Engine::new(
            crate::rules::default_rules(),
            &crate::rules::RulesSettings::default(),
        )
        .expect("default rules");
        let t0 = 1_732_500_000_000;
        let fill = |pct: f64, t: i64| {
            vec![crate::reading::Reading {
                site: "r-1".into(),
                device: "trap-1".into(),
                stream: "grease_trap".into(),
                metric: "fill_pct".into(),
                value: crate::reading::Value::Float(pct),
                unit: "%".into(),
                device_time_ms: t,
                received_time_ms: t,
                source: crate::reading::Source::Mqtt,
                sequence: None,
                quality: Default::default(),
            }]
        };
        let mut changes = Vec::new();
        for i in 0..20 {
            let pct = if i < 4 { 30.0 } else { 65.0 };
            for sig in engine.on_readings(&fill(pct, t0 + i * 300_000)) {
                changes.extend(p.signal(sig).await.expect("recorded"));
            }
        }
        let events: Vec<&str> = changes.iter().map(|c| c.event.as_str()).collect();
        assert_eq!(events, vec!["created", "level_raised"]);
        assert_eq!(changes[0].clue.id, changes[1].clue.id, "one clue");
        let all = p.list(ClueQuery::default()).await.expect("list");
        assert_eq!(all.len(), 1);
        let c = &all[0];
        assert_eq!(
            (c.kind.as_str(), c.level),
            ("grease_trap.pumpout_overdue", Level::Medium)
        );
        let d = p.get(c.id).await.expect("get").expect("exists");
        let levels: Vec<Level> = d.recent_occurrences.iter().rev().map(|o| o.level).collect();
        assert_eq!(levels, vec![Level::Low, Level::Medium]);
        let trail = p.audit_of(c.id).await.expect("audit");
        let raised = trail
            .iter()
            .find(|e| e.action == "level_raised")
            .expect("level change audited");
        assert_eq!(raised.detail["from_level"], "low");
        assert_eq!(raised.detail["to_level"], "medium");
        assert_eq!(raised.detail["from_kind"], "grease_trap.pumpout_due");
        assert!(p.verify(None).await.expect("verify").ok);
    }

    #[tokio::test]
    async fn a_duty_resolved_by_a_person_that_becomes_overdue_reopens_its_clue() {
        // Through the real rules engine (default rules): the inspector resolves the "due"
        // clue, the trap is never pumped and reaches overdue. One problem, one clue: the
        // resolved clue is reopened and re-levelled, not joined by a second one.
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut engine = crate::rules::Engine::new(
            crate::rules::default_rules(),
            &crate::rules::RulesSettings::default(),
        )
        .expect("default rules");
        let t0 = 1_732_500_000_000;
        let fill = |pct: f64, t: i64| {
            vec![crate::reading::Reading {
                site: "r-1".into(),
                device: "trap-1".into(),
                stream: "grease_trap".into(),
                metric: "fill_pct".into(),
                value: crate::reading::Value::Float(pct),
                unit: "%".into(),
                device_time_ms: t,
                received_time_ms: t,
                source: crate::reading::Source::Mqtt,
                sequence: None,
                quality: Default::default(),
            }]
        };
        let mut changes = Vec::new();
        for i in 0..20 {
            if i == 4 {
                let id = changes
                    .first()
                    .map(|c: &ClueChange| c.clue.id)
                    .expect("due");
                p.act(id, Action::Claim { note: None }, "ann#1".into())
                    .await
                    .expect("claim");
                let r = p
                    .act(id, Action::Resolve { note: None }, "ann#1".into())
                    .await
                    .expect("resolve");
                assert_eq!(r.clue.status, Status::Resolved);
            }
            let pct = if i < 4 { 30.0 } else { 65.0 };
            for sig in engine.on_readings(&fill(pct, t0 + i * 300_000)) {
                changes.extend(p.signal(sig).await.expect("recorded"));
            }
        }
        let events: Vec<&str> = changes.iter().map(|c| c.event.as_str()).collect();
        assert_eq!(events, vec!["created", "reopen"]);
        let all = p.list(ClueQuery::default()).await.expect("list");
        assert_eq!(all.len(), 1, "one clue for the one problem");
        let c = &all[0];
        assert_eq!(
            (c.kind.as_str(), c.level, c.status),
            (
                "grease_trap.pumpout_overdue",
                Level::Medium,
                Status::Reopened
            )
        );
        assert_eq!((c.resolution.as_deref(), c.resolved_ms), (None, None));
        let d = p.get(c.id).await.expect("get").expect("exists");
        let levels: Vec<Level> = d.recent_occurrences.iter().rev().map(|o| o.level).collect();
        assert_eq!(levels, vec![Level::Low, Level::Medium]);
        let trail = p.audit_of(c.id).await.expect("audit");
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["created", "claim", "resolve", "reopen"]);
        let reopened = &trail[3];
        assert_eq!(reopened.actor, "pool");
        assert_eq!(reopened.detail["reopened_from"], "resolved");
        assert_eq!(reopened.detail["from_level"], "low");
        assert_eq!(reopened.detail["to_level"], "medium");
        assert_eq!(reopened.detail["to_kind"], "grease_trap.pumpout_overdue");
        assert!(p.verify(None).await.expect("verify").ok);
    }

    #[tokio::test]
    async fn a_worse_event_after_the_condition_ended_opens_a_new_clue() {
        // The rules cleared the condition before the person resolved the clue: that episode
        // is over, so a later worse one is a new clue (with the first as its history).
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut low = event("m1", 1);
        low.level = Level::Low;
        let c = p.ingest(low).await.expect("ingest");
        p.signal(ClueSignal::Cleared {
            dedup_key: c.clue.dedup_key.clone(),
            at_ms: 5,
            note: "cover closed".into(),
        })
        .await
        .expect("clear");
        p.act(c.clue.id, Action::Claim { note: None }, "ann#1".into())
            .await
            .expect("claim");
        p.act(c.clue.id, Action::Resolve { note: None }, "ann#1".into())
            .await
            .expect("resolve");
        let n = p.ingest(event("m1", 9)).await.expect("again");
        assert_eq!(n.event, "created");
        assert_ne!(n.clue.id, c.clue.id);
        let old = p.get(c.clue.id).await.expect("get").expect("exists");
        assert_eq!(old.clue.status, Status::Resolved);
    }

    #[tokio::test]
    async fn a_recovered_fault_resolves_its_clue_or_waits_for_a_person_by_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut cam = event("cam-1", 1);
        cam.kind = "camera.offline".into();
        cam.dedup_key = "camera-health/a/cam-1/camera.offline".into();
        let cam = p.ingest(cam).await.expect("camera clue");
        let cover = p.ingest(event("m1", 1)).await.expect("cover clue");
        let back = |key: String| ClueSignal::Cleared {
            dedup_key: key,
            at_ms: 5,
            note: "reporting again".into(),
        };
        let r = p
            .signal(back(cam.clue.dedup_key.clone()))
            .await
            .expect("recorded")
            .expect("a change");
        assert_eq!(r.event, "recovered");
        assert_eq!(r.clue.status, Status::Resolved);
        assert_eq!(r.clue.cleared_ms, Some(5));
        let r = p
            .signal(back(cover.clue.dedup_key.clone()))
            .await
            .expect("recorded")
            .expect("a change");
        assert_eq!(
            r.event, "cleared",
            "manhole clues are confirmed by a person"
        );
        assert_eq!(r.clue.status, Status::New);
        assert_eq!(r.clue.cleared_ms, Some(5));
        // The camera fails again: a new clue, with the first as its history.
        let mut again = event("cam-1", 9);
        again.kind = "camera.offline".into();
        again.dedup_key = cam.clue.dedup_key.clone();
        let n = p.ingest(again).await.expect("again");
        assert_eq!(n.event, "created");
        let d = p.get(n.clue.id).await.expect("get").expect("exists");
        assert_eq!(d.history.prior_clues, 1);
        assert!(p.verify(None).await.expect("verify").ok);
    }

    #[tokio::test]
    async fn a_disposed_clue_lets_the_next_repeat_open_a_new_one_with_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        p.act(
            c.clue.id,
            Action::Dismiss {
                reason: "works permit".into(),
            },
            "ann#1".into(),
        )
        .await
        .expect("dismiss");
        let n = p.ingest(event("m1", 9)).await.expect("again");
        assert_eq!(n.event, "created");
        assert_ne!(n.clue.id, c.clue.id);
        let d = p.get(n.clue.id).await.expect("get").expect("exists");
        assert_eq!(d.history.prior_clues, 1);
        assert!(!d.history.first_violation);
    }

    #[tokio::test]
    async fn overdue_clues_turn_yellow_then_red_with_supervision_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, clock, _) = pool(dir.path());
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        assert!(p.tick().await.expect("tick").is_empty(), "not yet due");
        clock.0.fetch_add(61_000, Ordering::SeqCst);
        let y = p.tick().await.expect("tick");
        assert_eq!(y.len(), 1);
        assert_eq!(y[0].event, "supervision");
        assert_eq!(y[0].clue.escalation, Escalation::Yellow);
        assert!(p.tick().await.expect("tick").is_empty(), "yellow only once");
        clock.0.fetch_add(60_000, Ordering::SeqCst);
        let r = p.tick().await.expect("tick");
        assert_eq!(r[0].clue.escalation, Escalation::Red);
        assert_eq!(r[0].clue.id, c.clue.id);
        let s = p.stats(None).await.expect("stats");
        assert_eq!(s.overdue_red, 1);
    }

    #[tokio::test]
    async fn two_inspectors_claiming_at_once_exactly_one_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        let mut handles = Vec::new();
        for i in 0..8 {
            let p = p.clone();
            handles.push(tokio::spawn(async move {
                p.act(c.clue.id, Action::Claim { note: None }, format!("insp#{i}"))
                    .await
                    .is_ok()
            }));
        }
        let mut wins = 0;
        for h in handles {
            if h.await.expect("join") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn a_clue_row_edited_behind_the_gateway_is_named_by_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        p.act(c.clue.id, Action::Claim { note: None }, "ann#1".into())
            .await
            .expect("claim");
        assert!(p.verify(None).await.expect("verify").ok);
        let conn = rusqlite::Connection::open(dir.path().join("clues.sqlite")).expect("open");
        conn.execute("UPDATE clues SET status = 'closed', open = 0", [])
            .expect("tamper");
        let r = p.verify(None).await.expect("verify");
        assert!(!r.ok);
        let b = r.broken.expect("broken");
        assert_eq!(b.seq, 2, "the claim entry is the last one for this clue");
        assert!(
            b.what.contains(&format!("clue {}", c.clue.id)),
            "{}",
            b.what
        );
    }

    #[tokio::test]
    async fn an_audit_row_edited_behind_the_gateway_is_named_by_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        for i in 0..4 {
            p.ingest(event(&format!("m{i}"), i)).await.expect("ingest");
        }
        let conn = rusqlite::Connection::open(dir.path().join("clues.sqlite")).expect("open");
        assert!(
            conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 3", [])
                .is_err(),
            "triggers refuse edits"
        );
        conn.execute_batch(
            "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 3;",
        )
        .expect("tamper");
        let r = p.verify(None).await.expect("verify");
        assert_eq!(r.broken.map(|b| b.seq), Some(3));
    }

    #[tokio::test]
    async fn retention_purges_disposed_evidence_records_it_and_the_chain_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, clock, _) = pool_with(dir.path(), |c| {
            c.retention.image_s = 10;
            c.retention.note_s = 10;
        });
        // Different frames (bytes); a file cited by an open clue is never deleted (see below).
        let kept = p.ingest(event("m2", 2)).await.expect("open clue");
        let c = p.ingest(event("m1", 1)).await.expect("ingest");
        p.act(
            c.clue.id,
            Action::Dismiss {
                reason: "cover lifted by the water works, permit 88".into(),
            },
            "ann#1".into(),
        )
        .await
        .expect("dismiss");
        let d = p.get(c.clue.id).await.expect("get").expect("exists");
        let image = d.evidence[0].sha256.clone();
        let path = dir
            .path()
            .join("evidence")
            .join(&image[..2])
            .join(&image[2..]);
        assert!(path.exists());
        clock.0.fetch_add(11_000, Ordering::SeqCst);
        let r = p.run_retention().await.expect("purge");
        assert_eq!(
            r.purged, 1,
            "the image of the disposed clue; the open one keeps its own"
        );
        assert_eq!(r.files_deleted, 1);
        assert!(!path.exists(), "the purged evidence is gone from disk");
        let d = p.get(c.clue.id).await.expect("get").expect("exists");
        assert!(
            d.evidence[0].purged_ms.is_some(),
            "the row stays as a tombstone"
        );
        assert_eq!(d.evidence[0].sha256, image);
        assert!(matches!(
            p.evidence_file(image.clone()).await,
            Err(PoolError::Evidence(EvidenceError::NotFound(_)))
        ));
        let trail = p.audit_of(c.clue.id).await.expect("audit");
        let purge = trail.last().expect("entry");
        assert_eq!(purge.action, "evidence_purged");
        assert_eq!(purge.detail["sha256"], image);
        assert_eq!(purge.detail["reason"], "retention");
        assert!(
            p.verify(None).await.expect("verify").ok,
            "the chain still verifies"
        );
        let again = p.run_retention().await.expect("purge again");
        assert_eq!((again.purged, again.files_deleted), (0, 0));
        let open = p.get(kept.clue.id).await.expect("get").expect("exists");
        assert!(open.evidence.iter().all(|e| e.purged_ms.is_none()));
        // The same frame cited by a disposed and an open clue: the row is purged, the file
        // stays while the open clue cites it.
        let shared = p
            .ingest(event("m3", 2))
            .await
            .expect("same bytes as the open clue");
        p.act(
            shared.clue.id,
            Action::Dismiss {
                reason: "duplicate camera, same frame as m2".into(),
            },
            "ann#1".into(),
        )
        .await
        .expect("dismiss");
        let r = p.run_retention().await.expect("purge");
        assert_eq!((r.purged, r.files_deleted), (1, 0));
        let sha = open.evidence[0].sha256.clone();
        p.evidence_file(sha)
            .await
            .expect("still on disk for the open clue");
    }

    #[tokio::test]
    async fn a_duplicate_act_of_two_departments_ends_as_one_lead_with_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let water = p.ingest(event("m1", 1)).await.expect("water");
        let mut ev = event("m1", 2);
        ev.rule = "city-cover-check".into();
        ev.dedup_key = "city-cover-check/a/m1".into();
        ev.department = Some("city-management".into());
        let city = p.ingest(ev).await.expect("city");
        assert_ne!(water.clue.id, city.clue.id, "two clues before oversight");
        let mut rx = p.subscribe();
        let warnings = p.run_oversight().await.expect("oversight");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].finding.model, "duplicate_act");
        let lead = p.get(water.clue.id).await.expect("get").expect("lead");
        let linked = p.get(city.clue.id).await.expect("get").expect("linked");
        assert_eq!(lead.links.linked.len(), 1);
        assert_eq!(lead.links.linked[0].clue_id, city.clue.id);
        assert_eq!(
            linked.links.lead.as_ref().map(|l| l.clue_id),
            Some(water.clue.id)
        );
        assert_eq!(rx.recv().await.expect("change").event, "linked");
        // Running again links nothing more and raises nothing new.
        assert!(p.run_oversight().await.expect("again").is_empty());
        assert!(p.verify(None).await.expect("verify").ok);
        // Both departments now work it: red.
        p.act(water.clue.id, Action::Claim { note: None }, "ann#1".into())
            .await
            .expect("claim");
        p.act(city.clue.id, Action::Claim { note: None }, "li#2".into())
            .await
            .expect("claim");
        let red = p.run_oversight().await.expect("red");
        assert_eq!(red.len(), 1);
        assert_eq!(red[0].finding.level, Escalation::Red);
        assert_eq!(p.warnings(None, 10).await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn the_detail_shows_owner_notice_and_the_leniency_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _, _) = pool(dir.path());
        let mut ev = event("m1", 1);
        ev.level = Level::Low;
        let c = p.ingest(ev).await.expect("ingest");
        p.act(
            c.clue.id,
            Action::NotifyOwner {
                channel: "sms".into(),
                note: None,
            },
            "ann#1".into(),
        )
        .await
        .expect("notify");
        p.act(
            c.clue.id,
            Action::OwnerResponse {
                statement: "a delivery van lifted it".into(),
                channel: Some("phone".into()),
            },
            "ann#1".into(),
        )
        .await
        .expect("answer");
        let d = p.get(c.clue.id).await.expect("get").expect("exists");
        let owner = d.owner.expect("owner record");
        assert_eq!(owner.notified[0].channel, "sms");
        assert_eq!(owner.responses[0].statement, "a delivery van lifted it");
        let l = d.leniency.expect("leniency");
        assert!(l.recommended, "{l:?}");
        assert!(l.rule.contains("first-minor-violation"));
    }

    /// The catalogue of `deploy/gateway.example.toml`.
    fn example_matters() -> crate::clue::matters::MatterCatalogue {
        let text = include_str!("../../../deploy/gateway.example.toml");
        crate::config::Config::from_toml(text)
            .expect("example")
            .clues
            .matters
    }

    #[tokio::test]
    async fn the_detail_shows_the_matter_the_band_and_the_leniency_entries_the_facts_meet() {
        use crate::clue::matters::LeniencyStatus;
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, clock, _) = pool_with(dir.path(), |c| c.matters = example_matters());
        let mut ev = event("m1", 1_000_000);
        ev.level = Level::Medium;
        let c = p.ingest(ev.clone()).await.expect("ingest");
        // Closed again 5 minutes later: the producer reports the condition over.
        p.signal(ClueSignal::Cleared {
            dedup_key: ev.dedup_key.clone(),
            at_ms: 1_300_000,
            note: "cover closed".into(),
        })
        .await
        .expect("clear");
        let d = p.get(c.clue.id).await.expect("get").expect("exists");
        let m = d.matter.expect("manhole clues belong to a matter");
        assert_eq!(m.matter, "manhole_cover");
        assert_eq!(m.catalogue_version, "example-2026-12");
        assert_eq!(m.band.as_deref(), Some("low_risk"), "{m:#?}");
        assert_eq!(m.facts.corrected_after_s, Some(300));
        let in_time = m
            .leniency
            .iter()
            .find(|l| l.id == "corrected_in_time")
            .expect("entry");
        assert_eq!(in_time.status, LeniencyStatus::Met, "{in_time:?}");
        assert!(
            in_time
                .reasons
                .iter()
                .any(|r| r.contains("corrected 300 s after")),
            "{in_time:?}"
        );
        let no_fault = m
            .leniency
            .iter()
            .find(|l| l.id == "no_fault")
            .expect("entry");
        assert_eq!(no_fault.status, LeniencyStatus::ToEstablish);
        // The same cover lifted again a day later (after the first clue was disposed):
        // one earlier clue on record, a high level at night, so the hazard band.
        p.act(
            c.clue.id,
            Action::Dismiss {
                reason: "closed by the utility's crew".into(),
            },
            "ann#1".into(),
        )
        .await
        .expect("dismiss");
        clock.0.store(90_000_000, Ordering::SeqCst);
        let mut again = event("m1", 90_000_000);
        again.level = Level::High;
        let c2 = p.ingest(again).await.expect("again");
        assert_ne!(c2.clue.id, c.clue.id);
        let m2 = p
            .get(c2.clue.id)
            .await
            .expect("get")
            .expect("exists")
            .matter
            .expect("matter");
        assert_eq!(m2.facts.prior, 1);
        assert_eq!(m2.band.as_deref(), Some("hazard"), "{m2:#?}");
        assert!(
            m2.bands[0]
                .reasons
                .iter()
                .any(|r| r == "fails: level high (at most medium)"),
            "{m2:#?}"
        );
        // A kind outside the catalogue has no matter.
        let mut battery = event("m2", 90_000_001);
        battery.kind = "device.low_battery".into();
        battery.rule = "low-battery".into();
        battery.dedup_key = "low-battery/a/m2".into();
        let b = p.ingest(battery).await.expect("battery");
        assert!(
            p.get(b.clue.id)
                .await
                .expect("get")
                .expect("exists")
                .matter
                .is_none()
        );
    }
}
