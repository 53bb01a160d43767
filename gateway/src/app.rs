//! Wires the stages together for `gateway run`: sources -> processor -> outbox -> sink,
//! the device table and the HTTP API. Shutdown (SIGINT/SIGTERM or the token) stops intake
//! first, lets the processor make the last batch durable, then stops delivery.

use crate::api::{AppState, router};
use crate::config::Config;
use crate::decode::Decoder;
use crate::devices::DeviceTable;
use crate::metrics::Metrics;
use crate::normalize::ClockPolicy;
use crate::outbox::Outbox;
use crate::pipeline::{INTAKE_CAPACITY, Processor};
use crate::sink::influx::InfluxWriter;
use crate::source::mqtt;
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running gateway; `shutdown()` stops it in order.
pub struct Gateway {
    pub http_addr: std::net::SocketAddr,
    pub metrics: Arc<Metrics>,
    pub devices: Arc<DeviceTable>,
    /// The clue pool (in-process producers and tests use it directly).
    pub clues: crate::clue::PoolHandle,
    intake_cancel: CancellationToken,
    delivery_cancel: CancellationToken,
    /// Cancelled when a stage dies unexpectedly (a bug): `run` then stops and exits non-zero
    /// so the supervisor (systemd) restarts a clean process rather than a half-dead one.
    failed: CancellationToken,
    processor: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Starts every stage; returns once the HTTP listener is bound.
    pub async fn start(cfg: Config) -> anyhow::Result<Gateway> {
        let metrics = Arc::new(Metrics::new());
        std::fs::create_dir_all(&cfg.storage.dir)
            .with_context(|| format!("creating storage.dir {}", cfg.storage.dir.display()))?;
        let devices = Arc::new(DeviceTable::new(cfg.devices.offline_after_s as i64 * 1000));
        let intake_cancel = CancellationToken::new();
        let delivery_cancel = CancellationToken::new();
        let failed = CancellationToken::new();
        let mut tasks = Vec::new();

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
            crate::clue::start_pool(&cfg, metrics.clone(), delivery_cancel.clone())
                .context("starting the clue pool")?;
        tasks.extend(clue_tasks);
        // Camera health: frames from the API, status from the `camera` readings, ticks.
        let cameras =
            crate::camera::service::CameraService::new(cfg.cameras.clone(), clue_tx.clone())
                .context("configuring camera health")?
                .with_parking(&cfg.parking, metrics.clone());
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
        let (drone, drone_task) = crate::drone::start(&cfg, clues.clone(), delivery_cancel.clone())
            .context("starting drone footage processing")?;
        tasks.push(drone_task);
        let (rules_tx, rules_task) = spawn_rules(&cfg, clue_tx)?;
        tasks.push(rules_task);

        let (tx, rx) = tokio::sync::mpsc::channel(INTAKE_CAPACITY);
        tasks.extend(crate::source::modbus::spawn_all(
            &cfg.modbus,
            tx.clone(),
            metrics.clone(),
            intake_cancel.clone(),
        ));
        let (client, eventloop) = mqtt::connect(&cfg.mqtt)?;
        tasks.push(critical(
            "mqtt",
            &failed,
            mqtt::run(
                cfg.mqtt.clone(),
                client.clone(),
                eventloop,
                Arc::new(Decoder::new(&cfg)),
                tx,
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
                mqtt: Some(client),
                max_batch: cfg.mqtt.ack_batch,
                readings_out: vec![rules_tx, camera_readings_tx],
            }
            .run(),
        );

        let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
            .await
            .with_context(|| format!("binding http.listen {}", cfg.http.listen))?;
        let http_addr = listener.local_addr()?;
        let state = AppState {
            devices: devices.clone(),
            metrics: metrics.clone(),
            outbox,
            started_ms: crate::clock::now_ms(),
            clues: clues.clone(),
            cameras,
        };
        let http_cancel = delivery_cancel.clone();
        tasks.push(tokio::spawn(async move {
            // Connect info lets authentication rate-limit failed logins per client address.
            let app = router(state)
                .merge(crate::drone::api::router(drone))
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
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
            devices,
            clues,
            intake_cancel,
            delivery_cancel,
            failed,
            processor,
            tasks,
        })
    }

    /// Stops intake, waits for the processor to make everything received durable, then stops
    /// delivery and the API. What is left in the outbox is delivered at the next start.
    pub async fn shutdown(self) {
        self.intake_cancel.cancel();
        let _ = self.processor.await;
        self.delivery_cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        info!("gateway stopped");
    }
}

/// Starts the rules engine on `cfg`'s rules (the defaults when none are configured) and
/// returns the sender to add to `Processor::readings_out`, with the task's handle. The task ends
/// when every clone of the sender is dropped (the processor stopped).
pub fn spawn_rules(
    cfg: &Config,
    clue_tx: crate::clue::signal::ClueSender,
) -> anyhow::Result<(
    crate::rules::task::ReadingsSender,
    tokio::task::JoinHandle<()>,
)> {
    spawn_rules_with(cfg, clue_tx, crate::rules::PumpoutRegistry::default())
}

/// [`spawn_rules`] with a pump-out registry shared with whoever registers pump-outs (the API).
pub fn spawn_rules_with(
    cfg: &Config,
    clue_tx: crate::clue::signal::ClueSender,
    pumpouts: crate::rules::PumpoutRegistry,
) -> anyhow::Result<(
    crate::rules::task::ReadingsSender,
    tokio::task::JoinHandle<()>,
)> {
    let engine = crate::rules::Engine::from_config(cfg)
        .context("building the rules")?
        .with_pumpouts(pumpouts);
    info!(rules = engine.rule_count(), "rules engine started");
    let (tx, rx) = tokio::sync::mpsc::channel(crate::rules::task::RULES_CAPACITY);
    let handle = tokio::spawn(crate::rules::task::run(engine, rx, clue_tx));
    Ok((tx, handle))
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
pub async fn shutdown_signal() {
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

/// `gateway run`: start, wait for a signal, stop in order.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let gw = Gateway::start(cfg).await?;
    let failed = gw.failed.clone();
    tokio::select! {
        _ = shutdown_signal() => {},
        _ = failed.cancelled() => {},
    }
    info!("shutting down");
    gw.shutdown().await;
    if failed.is_cancelled() {
        anyhow::bail!("a gateway stage failed (see the log above)");
    }
    Ok(())
}
