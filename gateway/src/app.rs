//! Wires the stages together for `gateway run`: sources -> processor -> outbox -> sink,
//! the device table and the HTTP API. Shutdown (SIGINT/SIGTERM or the token) stops intake
//! first, lets the processor make the last batch durable, then stops delivery.

use crate::config::Config;
use crate::devices::DeviceTable;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::normalize::ClockPolicy;
use crate::outbox::Outbox;
use crate::pipeline::{INTAKE_CAPACITY, Processor};
use crate::rules::pumpout_journal::PumpoutJournal;
use crate::rules::task::RulesUpdate;
use crate::sink::influx::InfluxWriter;
use crate::source::mqtt;
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running gateway; `shutdown()` stops it in order.
pub(crate) struct Gateway {
    /// Where the API listens (the demo prints it; `gateway run` logs it at the start).
    #[cfg_attr(
        not(feature = "demo"),
        expect(dead_code, reason = "only the demo reads it")
    )]
    pub http_addr: std::net::SocketAddr,
    pub metrics: Arc<Metrics>,
    intake_cancel: CancellationToken,
    delivery_cancel: CancellationToken,
    /// Cancelled when a stage dies unexpectedly (a bug): `run` then stops and exits non-zero
    /// so the supervisor (systemd) restarts a clean process rather than a half-dead one.
    failed: CancellationToken,
    processor: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// New rules for the running engine (SIGHUP, [`Gateway::reload`]).
    rules_reload: tokio::sync::watch::Sender<Option<RulesUpdate>>,
    /// The configuration running now, to report what a reload cannot change.
    running: Config,
    /// The device registry (its file is re-read on SIGHUP too).
    pub registry: Arc<crate::registry::Registry>,
    /// Parking (its stays are saved at the stop) and where.
    parking: Option<Arc<crate::camera::parking::Parking>>,
    parking_state: std::path::PathBuf,
    /// Shop fronts (their zones being timed are saved at the stop) and where.
    shopfront: Option<Arc<crate::camera::shopfront::Shopfront>>,
    shopfront_state: std::path::PathBuf,
}

impl Gateway {
    /// Starts every stage; returns once the HTTP listener is bound.
    pub(crate) async fn start(cfg: Config) -> anyhow::Result<Gateway> {
        let metrics = Arc::new(Metrics::new());
        std::fs::create_dir_all(&cfg.storage.dir)
            .with_context(|| format!("creating storage.dir {}", cfg.storage.dir.display()))?;
        let devices = Arc::new(
            DeviceTable::new(cfg.devices.offline_after_s as i64 * 1000)
                .with_history_points(cfg.dashboard.history_points),
        );
        let intake_cancel = CancellationToken::new();
        let delivery_cancel = CancellationToken::new();
        let failed = CancellationToken::new();
        let mut tasks = Vec::new();
        let registry = Arc::new(
            crate::registry::Registry::open(&cfg.registry, metrics.clone())
                .context("loading the device registry")?,
        );
        metrics
            .registry_devices
            .set(registry.snapshot().len() as i64);
        tasks.push(tokio::spawn(crate::registry::watch(
            registry.clone(),
            delivery_cancel.clone(),
        )));

        let outbox = match &cfg.influx {
            Some(influx) => {
                let dir = cfg.storage.dir.join("outbox");
                let outbox = Arc::new(
                    Outbox::open(&dir, &cfg.storage.outbox, metrics.clone())
                        .with_context(|| format!("opening outbox {}", dir.display()))?,
                );
                let writer = InfluxWriter::new(influx, &cfg.storage.dir, metrics.clone())
                    .context("configuring the influx sink")?;
                tasks.push(critical(
                    "delivery",
                    &failed,
                    crate::sink::deliver::run(
                        outbox.clone(),
                        writer,
                        influx.clone(),
                        delivery_cancel.clone(),
                    ),
                ));
                Some(outbox)
            }
            None => None,
        };

        // The clue pool: producers (rules engine, vision, drones) send into `clue_tx`.
        let (clue_tx, clues, clue_tasks) =
            crate::clue::start_pool(&cfg.clue_setup(), metrics.clone(), delivery_cancel.clone())
                .context("starting the clue pool")?;
        tasks.extend(clue_tasks);
        // Clue subjects carry their device's registered location, shop and owner.
        let stamp_from = registry.clone();
        clues.stamp_subjects_with(Arc::new(move |s| stamp_from.stamp(s)));
        // Notices to owners: the contact from the registry, delivered by one worker per
        // configured channel (a channel whose token variable is missing stops the start).
        let contacts_from = registry.clone();
        clues.owner_contacts_with(Arc::new(move |s| contacts_from.owner_contact(s)));
        tasks.extend(
            crate::clue::owner_notify::spawn_owner_notify(&clues, delivery_cancel.clone())
                .context("starting owner notices")?,
        );
        // Camera health: frames from the API, status from the `camera` readings, ticks.
        let cameras =
            crate::camera::service::CameraService::new(cfg.cameras.clone(), clue_tx.clone())
                .context("configuring camera health")?
                .with_parking(&cfg.parking, metrics.clone())
                .with_shopfront(&cfg.shopfront, metrics.clone())
                .with_muck_trucks(&cfg.muck_trucks, metrics.clone());
        // Muck-truck permits written through the API: in force from the start, re-read so a
        // change made through another gateway on a shared store arrives too.
        if let Some(permits) = cameras.muck_permits() {
            permits
                .reload(&clues)
                .await
                .context("reading the stored muck-truck permits")?;
            tasks.push(tokio::spawn(crate::camera::permits::reload_every(
                permits,
                clues.clone(),
                delivery_cancel.clone(),
            )));
        }
        let parking_state = cfg
            .storage
            .dir
            .join(crate::camera::parking::state::FILE_NAME);
        cameras.resume_parking(&parking_state);
        let parking = cameras.parking();
        let shopfront_state = cfg
            .storage
            .dir
            .join(crate::camera::shopfront::state::FILE_NAME);
        cameras.resume_shopfront(&shopfront_state);
        let shopfront = cameras.shopfront();
        // Parking's "please move" notices: recorded with their stays, delivered like clues.
        let notices = crate::notice::Notices::new(&clues, &cfg.notices, metrics.clone());
        tasks.extend(notices.spawn_delivery(&cfg.mqtt, delivery_cancel.clone()));
        let cameras = cameras.with_notices(notices);
        let zones_from = registry.clone();
        cameras.parking_zones_from(Arc::new(move |site, camera| {
            Some(zones_from.get(site, camera)?.installation.camera_zones)
        }));
        // Cameras the gateway pulls (snapshot URLs, RTSP): intake, like the other sources.
        tasks.extend(cameras.pull_sources(&cfg.cameras, metrics.clone(), intake_cancel.clone()));
        let (camera_readings_tx, camera_readings_rx) =
            tokio::sync::mpsc::channel(crate::rules::task::RULES_CAPACITY);
        tasks.push(critical(
            "camera-health",
            &failed,
            cameras
                .clone()
                .run(camera_readings_rx, intake_cancel.clone()),
        ));
        // Readings -> rules engine -> clue pool. The rules task ends when the processor drops
        // its sender, and then drops `clue_tx`, which ends the pool's intake.
        // Drone footage: flights, inspection tasks and the processing worker.
        let (drone, drone_tasks) = crate::drone::start(
            &cfg.drone,
            &cfg.storage.dir,
            clues.clone(),
            metrics.clone(),
            delivery_cancel.clone(),
        )
        .context("starting drone footage processing")?;
        tasks.extend(drone_tasks);
        // Pump-out records (API) are journaled under the storage dir and shared with the rules.
        let pumpout_registry = crate::rules::PumpoutRegistry::default();
        let pumpouts = Arc::new(
            PumpoutJournal::open(
                &cfg.storage.dir.join("pumpouts.jsonl"),
                pumpout_registry.clone(),
            )
            .context("opening the pump-out journal")?,
        );
        // Maintenance works (API) likewise: `unless_maintenance` rules honour them.
        let maintenance_registry = crate::rules::maintenance::MaintenanceRegistry::default();
        let maintenance = Arc::new(
            crate::rules::maintenance::MaintenanceJournal::open(
                &cfg.storage.dir.join("maintenance.jsonl"),
                maintenance_registry.clone(),
            )
            .context("opening the maintenance journal")?,
        );
        // Trap geometry: `[[traps]]` overlaid with the registry's, kept current by the registry.
        let traps = crate::install::TrapInstalls::new(&cfg.traps);
        registry.feed_traps(traps.clone());
        let (rules_tx, rules_task, rules_reload) =
            spawn_rules_reloadable(&cfg, clue_tx, pumpout_registry, maintenance_registry, traps)?;
        tasks.push(rules_task);

        let (tx, rx) = tokio::sync::mpsc::channel(INTAKE_CAPACITY);
        tasks.extend(crate::source::modbus::spawn_all(
            &cfg.modbus,
            tx.clone(),
            metrics.clone(),
            intake_cancel.clone(),
        ));
        let (client, eventloop) = mqtt::connect(&cfg.mqtt)?;
        let (ack_tx, ack_rx) = crate::source::mqtt_acks::channel();
        tasks.push(critical(
            "mqtt",
            &failed,
            mqtt::run(
                cfg.mqtt.clone(),
                client.clone(),
                eventloop,
                Arc::new(
                    cfg.decoder()
                        .with_registry(registry.clone())
                        .with_devices(devices.clone()),
                ),
                tx,
                (ack_tx.clone(), ack_rx),
                metrics.clone(),
                intake_cancel.clone(),
            ),
        ));
        let processor = critical(
            "processor",
            &failed,
            Processor {
                rx,
                outbox: outbox.clone(),
                measurement_prefix: cfg
                    .influx
                    .as_ref()
                    .map(|i| i.measurement_prefix.clone())
                    .unwrap_or_default(),
                dialect: cfg.influx.as_ref().map(|i| i.dialect).unwrap_or_default(),
                devices: devices.clone(),
                metrics: metrics.clone(),
                clock: ClockPolicy {
                    max_skew_ms: cfg.devices.max_clock_skew_s as i64 * 1000,
                    max_replay_age_ms: cfg.devices.max_replay_age_s as i64 * 1000,
                },
                mqtt_acks: Some(ack_tx),
                max_batch: cfg.mqtt.ack_batch,
                readings_out: vec![rules_tx, camera_readings_tx],
                dead_letter: Some(cfg.storage.dir.join(crate::pipeline::DEAD_LETTER_FILE)),
            }
            .run(),
        );

        let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
            .await
            .with_context(|| format!("binding http.listen {}", cfg.http.listen))?;
        let http_addr = listener.local_addr()?;
        let state = AppState {
            devices,
            metrics: metrics.clone(),
            outbox,
            started_ms: crate::clock::now_ms(),
            clues,
            cameras,
            pumpouts: crate::http::pumpouts::Pumpouts(Some(pumpouts)),
            maintenance: crate::http::maintenance::Maintenance(
                Some(maintenance),
                Some(crate::http::maintenance::ExcusedRules::new(
                    &cfg.rules_settings.effective_rules(&cfg.rules),
                    rules_reload.subscribe(),
                )),
            ),
            registry: crate::http::registry::RegistryHandle(registry.clone()),
            storage_floor: cfg.storage.floor(),
            drone,
        };
        let app = router(state, &cfg.dashboard);
        let http_cancel = delivery_cancel.clone();
        tasks.push(tokio::spawn(async move {
            // Connect info lets authentication rate-limit failed logins per client address.
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { http_cancel.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        }));
        info!(%http_addr, "gateway started");
        Ok(Gateway {
            http_addr,
            metrics,
            intake_cancel,
            delivery_cancel,
            failed,
            processor,
            tasks,
            rules_reload,
            running: cfg,
            registry,
            parking,
            parking_state,
            shopfront,
            shopfront_state,
        })
    }

    /// Applies what can change without a restart from `next` (the rules and their settings;
    /// rules whose definition did not change keep their state) and names the sections that
    /// differ but need a restart. An invalid rule set is refused and the running rules stay.
    pub(crate) fn reload(&self, next: &Config) -> Result<ReloadReport, crate::rules::RulesError> {
        let rules = next.rules_settings.effective_rules(&next.rules);
        // Compile first so a bad file is refused here, with the key, not only in the task log.
        crate::rules::Engine::new(rules.clone(), &next.rules_settings)?;
        let rules_changed =
            next.rules != self.running.rules || next.rules_settings != self.running.rules_settings;
        if rules_changed {
            let _ = self
                .rules_reload
                .send(Some((rules, next.rules_settings.clone())));
        }
        let (old, new) = (json(&self.running), json(next));
        let mut restart_needed: Vec<String> = match (old, new) {
            (serde_json::Value::Object(o), serde_json::Value::Object(n)) => n
                .iter()
                .filter(|(k, v)| {
                    !matches!(k.as_str(), "rules" | "rules_settings") && o.get(*k) != Some(v)
                })
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        };
        restart_needed.sort();
        Ok(ReloadReport {
            rules_changed,
            restart_needed,
        })
    }

    /// Stops intake, waits for the processor to make everything received durable, then stops
    /// delivery and the API. What is left in the outbox is delivered at the next start.
    pub(crate) async fn shutdown(self) {
        self.intake_cancel.cancel();
        let _ = self.processor.await;
        self.delivery_cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        // No frame arrives any more (API and pulled cameras stopped): the stays being timed
        // are saved for the next start.
        crate::camera::service::save_parking(self.parking.as_deref(), &self.parking_state);
        crate::camera::service::save_shopfront(self.shopfront.as_deref(), &self.shopfront_state);
        info!("gateway stopped");
    }
}

/// What [`Gateway::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReloadReport {
    /// The rules or their settings changed and were sent to the engine.
    pub rules_changed: bool,
    /// Top-level config sections that differ but only take effect after a restart.
    pub restart_needed: Vec<String>,
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Starts the rules engine on `cfg`'s rules (the defaults when none are configured), continuing
/// from the state saved at the last stop, with the pump-out and maintenance registries shared
/// with the API and the trap installations kept current by the device registry.
/// Returns the sender to add to `Processor::readings_out`, the task's handle (it ends when every
/// clone of the sender is dropped: the processor stopped) and the sender that replaces the
/// running rules on reload.
pub(crate) fn spawn_rules_reloadable(
    cfg: &Config,
    clue_tx: crate::clue::signal::ClueSender,
    pumpouts: crate::rules::PumpoutRegistry,
    maintenance: crate::rules::maintenance::MaintenanceRegistry,
    traps: crate::install::TrapInstalls,
) -> anyhow::Result<(
    crate::rules::task::ReadingsSender,
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<Option<RulesUpdate>>,
)> {
    let state_path = cfg.storage.dir.join(crate::rules::snapshot::FILE_NAME);
    let engine = restore_rules(cfg, &state_path)?
        .with_pumpouts(pumpouts)
        .with_maintenance(maintenance)
        .with_traps(traps);
    info!(rules = engine.rule_count(), "rules engine started");
    let (tx, rx) = tokio::sync::mpsc::channel(crate::rules::task::RULES_CAPACITY);
    let (reload_tx, reload_rx) = tokio::sync::watch::channel(None);
    let handle = tokio::spawn(crate::rules::task::run_persistent(
        engine,
        rx,
        clue_tx,
        reload_rx,
        Some(state_path),
    ));
    Ok((tx, handle, reload_tx))
}

/// The configured rules, continuing from the state saved at the last stop when there is one.
/// An unusable snapshot is logged and set aside (`.bad`), never a reason not to start.
fn restore_rules(cfg: &Config, path: &std::path::Path) -> anyhow::Result<crate::rules::Engine> {
    use crate::rules::snapshot::Snapshot;
    let fresh = || cfg.rules_engine().context("building the rules");
    let snap = match Snapshot::load(path) {
        Ok(Some(s)) => s,
        Ok(None) => return fresh(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the saved rule state");
            let _ = std::fs::rename(path, path.with_extension("json.bad"));
            return fresh();
        }
    };
    let rules = cfg.rules_settings.effective_rules(&cfg.rules);
    match crate::rules::Engine::restore(rules, &cfg.rules_settings, snap) {
        Ok(engine) => {
            info!(path = %path.display(), "rule state restored");
            Ok(engine)
        }
        Err(crate::rules::snapshot::SnapshotError::NewRules(e)) => {
            Err(anyhow::Error::new(e).context("building the rules"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the saved rule state");
            let _ = std::fs::rename(path, path.with_extension("json.bad"));
            fresh()
        }
    }
}

/// Spawns a stage whose panic must not leave the process running without it.
fn critical(
    name: &'static str,
    failed: &CancellationToken,
    fut: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let inner = tokio::spawn(fut);
    let failed = failed.clone();
    tokio::spawn(async move {
        if let Err(e) = inner.await
            && e.is_panic()
        {
            tracing::error!(stage = name, "stage panicked; stopping the gateway");
            failed.cancel();
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `gateway run`: start, wait for a signal, stop in order. SIGHUP re-reads `config_path`
/// (when given) and applies it with [`Gateway::reload`].
pub async fn run(cfg: Config, config_path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let gw = Gateway::start(cfg).await?;
    let failed = gw.failed.clone();
    let mut hup = hangup_signal();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = failed.cancelled() => break,
            Some(()) = recv_hangup(&mut hup) => gw.reload_from(config_path.as_deref()),
        }
    }
    info!("shutting down");
    gw.shutdown().await;
    if failed.is_cancelled() {
        anyhow::bail!("a gateway stage failed (see the log above)");
    }
    Ok(())
}

impl Gateway {
    /// SIGHUP: load the file again (with the same `GATEWAY_*` overrides) and reload. Any error
    /// is logged with the bad key and the running configuration stays.
    fn reload_from(&self, path: Option<&std::path::Path>) {
        match self.registry.reload() {
            Ok(n) => info!(devices = n, "device registry reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "device registry file refused; keeping the running registry")
            }
        }
        let outcome = Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|next| self.reload(&next).map_err(|e| e.to_string()));
        match outcome {
            Ok(report) => {
                self.metrics
                    .config_reloads_total
                    .get_or_create(&crate::metrics::Reason::of("ok"))
                    .inc();
                info!(
                    rules_changed = report.rules_changed,
                    "configuration reloaded"
                );
                if !report.restart_needed.is_empty() {
                    tracing::warn!(
                        sections = ?report.restart_needed,
                        "these sections changed and take effect only after a restart"
                    );
                }
            }
            Err(e) => {
                self.metrics
                    .config_reloads_total
                    .get_or_create(&crate::metrics::Reason::of("rejected"))
                    .inc();
                tracing::error!(error = %e, "configuration reload rejected; keeping the running one");
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
}

/// The next SIGHUP; never resolves where there is none.
async fn recv_hangup(h: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = h {
        return s.recv().await;
    }
    let _ = h;
    std::future::pending().await
}
