//! The hand-off between sources and the processing stage.
//!
//! The reading sources (MQTT and Modbus) send `Intake` values into one bounded channel
//! (cameras and drones send images to `camera` and `drone`, which produce clues, not readings).
//! The processor normalizes them, makes them durable in the outbox, updates the live device
//! table, and only then fires the acknowledgement, so a source never reports data as taken
//! before it is safe on disk. The channel is bounded: a slow disk slows intake visibly.

use crate::reading::Reading;

/// What to do once an intake is durable (or deliberately discarded as malformed/duplicate).
#[derive(Debug)]
pub enum Ack {
    /// Nothing to acknowledge (polled sources such as Modbus).
    None,
    /// Send the MQTT PUBACK for this message.
    Mqtt(rumqttc::Publish),
}

/// Readings from one source message (one MQTT publish, one Modbus poll of one device).
#[derive(Debug)]
pub struct Intake {
    pub readings: Vec<Reading>,
    pub ack: Ack,
}

/// Sending half of the intake channel, cloned into every source.
pub type IntakeSender = tokio::sync::mpsc::Sender<Intake>;

use crate::devices::DeviceTable;
use crate::metrics::Metrics;
use crate::normalize::{ClockPolicy, Normalizer, SeqVerdict, fix_clock};
use crate::outbox::{Outbox, OutboxError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, warn};

/// Capacity of the intake channel: enough to keep a batch forming while the previous one is
/// being fsynced, small enough that a stalled disk stops intake within a fraction of a second.
pub const INTAKE_CAPACITY: usize = 4096;

/// Upper bound for `[mqtt] ack_batch` (intakes made durable with one fsync).
pub const MAX_BATCH: usize = 8192;

/// Where the processor writes and whom it tells.
pub struct Processor {
    pub rx: mpsc::Receiver<Intake>,
    /// `None` when no time-series database is configured.
    pub outbox: Option<Arc<Outbox>>,
    pub measurement_prefix: String,
    pub dialect: crate::sink::line_protocol::Dialect,
    pub devices: Arc<DeviceTable>,
    pub metrics: Arc<Metrics>,
    pub clock: ClockPolicy,
    /// Client used to send PUBACKs for MQTT intakes.
    pub mqtt: Option<rumqttc::AsyncClient>,
    /// Intakes made durable together (one fsync) before their acks go out.
    pub max_batch: usize,
    /// Downstream consumers of normalized readings (rules engine, camera health...), one
    /// message per source message. Bounded: a slow consumer slows intake rather than losing
    /// readings it must see.
    pub readings_out: Vec<mpsc::Sender<Arc<[Reading]>>>,
}

impl Processor {
    /// Runs until every sender is gone, then returns after the last batch is durable.
    pub async fn run(mut self) {
        let mut normalizer = Normalizer::default();
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = self.rx.recv().await {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(i) => batch.push(i),
                    Err(_) => break,
                }
            }
            self.process(&mut normalizer, &mut batch).await;
        }
    }

    async fn process(&self, normalizer: &mut Normalizer, batch: &mut Vec<Intake>) {
        let mut lines = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        let mut kept = Vec::with_capacity(batch.len());
        for mut intake in batch.drain(..) {
            if let Some(first) = intake.readings.first()
                && let Some(seq) = first.sequence
            {
                let (site, device, at) = (&first.site, &first.device, first.received_time_ms);
                match normalizer.check_sequence(site, device, seq) {
                    SeqVerdict::Duplicate => {
                        self.metrics.sequence_duplicates_total.inc();
                        self.devices.note_sequence(site, device, at, 0, true);
                        acks.push(intake.ack);
                        continue;
                    }
                    SeqVerdict::New { lost } if lost > 0 => {
                        self.metrics.sequence_lost_total.inc_by(lost);
                        self.devices.note_sequence(site, device, at, lost, false);
                    }
                    _ => {}
                }
            }
            let mut replaced_at = None;
            for r in &mut intake.readings {
                if fix_clock(r, &self.clock) {
                    self.metrics.clock_replaced_total.inc();
                    // One distinct time per message (its readings share one point).
                    let at = *replaced_at.get_or_insert_with(|| {
                        normalizer.replaced_time(&r.site, &r.device, r.device_time_ms)
                    });
                    r.device_time_ms = at;
                }
            }
            if self.outbox.is_some() {
                lines.extend(crate::sink::line_protocol::encode_with(
                    &intake.readings,
                    &self.measurement_prefix,
                    self.dialect,
                ));
            }
            acks.push(intake.ack);
            kept.push(intake.readings);
        }
        if let Some(outbox) = &self.outbox
            && !lines.is_empty()
        {
            self.make_durable(outbox, lines).await;
        }
        for readings in kept {
            self.metrics.readings_in_total.inc_by(readings.len() as u64);
            self.devices.observe(&readings);
            if !self.readings_out.is_empty() {
                let shared: Arc<[Reading]> = readings.into();
                for out in &self.readings_out {
                    // A consumer that stopped (shutdown) is simply skipped.
                    let _ = out.send(shared.clone()).await;
                }
            }
        }
        if let Some(client) = &self.mqtt {
            for ack in acks {
                if let Ack::Mqtt(p) = ack
                    && client.ack(&p).await.is_err()
                {
                    // The event loop is gone (shutdown); the broker redelivers, points are
                    // idempotent, so nothing is lost.
                    break;
                }
            }
        }
    }

    /// Appends with one fsync; waits (never drops) while the outbox is full or failing.
    async fn make_durable(&self, outbox: &Arc<Outbox>, mut lines: Vec<Vec<u8>>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let ob = outbox.clone();
            let result = tokio::task::spawn_blocking(move || {
                let r = ob.append(&lines);
                (lines, r)
            })
            .await;
            let r;
            (lines, r) = match result {
                Ok(pair) => pair,
                Err(e) => {
                    error!(error = %e, "outbox append task failed");
                    return;
                }
            };
            match r {
                // The outbox counts appends, full events and I/O errors itself.
                Ok(()) => return,
                Err(OutboxError::Full) => {
                    warn!(
                        records = lines.len(),
                        "outbox full: intake paused until the database catches up"
                    );
                    // Bounded wait so a missed wake-up cannot stall us for long.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), outbox.wait_for_space()).await;
                }
                Err(
                    e @ (OutboxError::RecordTooLarge { .. } | OutboxError::BatchTooLarge { .. }),
                ) => {
                    // Cannot succeed by waiting: a decoded message never gets near the segment
                    // size (payloads are capped far below), so this is a configuration error.
                    error!(error = %e, records = lines.len(), "records can never fit the outbox; dropped (raise storage.outbox.segment_bytes)");
                    return;
                }
                Err(e) => {
                    error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox append failed; intake paused");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
