//! The hand-off between sources and the processing stage.
//!
//! The reading sources (MQTT and Modbus) send `Intake` values into one bounded channel
//! (cameras and drones send images to `camera` and `drone`, which produce clues, not readings).
//! The processor normalizes them, makes them durable in the outbox, updates the live device
//! table, and only then fires the acknowledgement, so a source never reports data as taken
//! before it is safe on disk. The channel is bounded: a slow disk slows intake visibly.
//!
//! No acknowledgement without durability. Each intake ends in one of three fates:
//! - durable in the outbox: acknowledged;
//! - too large for the outbox ever to take (a record above the segment size, or one message's
//!   records above `max_bytes`): written to the dead-letter file `dead-letter.jsonl` under the
//!   storage dir with an fsync, counted in `intake_dead_lettered_total`, then acknowledged;
//! - neither (the append task died, or the dead-letter write failed): not acknowledged, counted
//!   in `intake_not_acked_total{reason}`, and left out of the rules (the broker redelivers it
//!   on the next session, and it is processed then).
//!
//! A batch too large as a whole is split into its messages first, so one oversized message
//! never costs its neighbours their acknowledgement.

use crate::reading::Reading;

/// What to do once an intake is durable (or deliberately discarded as malformed/duplicate).
#[derive(Debug)]
pub enum Ack {
    /// Nothing to acknowledge (polled sources such as Modbus).
    None,
    /// Send the MQTT PUBACK for this message (written by the MQTT source).
    Mqtt(MqttAck),
}

/// One message to acknowledge: its packet id on the connection it arrived on. An ack for an
/// earlier connection is dropped: the broker redelivers that message, which is then acked
/// again (rumqttc's own rule, so the broker is never sent an ack it does not expect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttAck {
    pub pkid: u16,
    pub connection: u64,
}

/// Queues acknowledgements for the source to write (cloned into the processor and the decoder).
pub(crate) type AckSender = tokio::sync::mpsc::UnboundedSender<Vec<MqttAck>>;
pub(crate) type AckReceiver = tokio::sync::mpsc::UnboundedReceiver<Vec<MqttAck>>;

pub(crate) fn ack_channel() -> (AckSender, AckReceiver) {
    tokio::sync::mpsc::unbounded_channel()
}

/// Readings from one source message (one MQTT publish, one Modbus poll of one device).
#[derive(Debug)]
pub struct Intake {
    pub readings: Vec<Reading>,
    pub ack: Ack,
    /// The device's slot in the processor's table when the source resolved it already (the
    /// MQTT decoder does, with the device's names: one lookup instead of two; issue 24);
    /// `None`: the processor looks it up.
    pub(crate) slot: Option<Arc<crate::devices::DeviceSlot>>,
}

/// Sending half of the intake channel, cloned into every source.
pub(crate) type IntakeSender = tokio::sync::mpsc::Sender<Intake>;

/// What the processor hands each downstream consumer (rules engine, camera health): the
/// readings of one durable batch, one entry per source message, in arrival order. One channel
/// operation per batch rather than per message (issue 24: the per-message hand-offs and task
/// wake-ups were a visible share of intake CPU).
pub(crate) type ReadingsBatch = std::sync::Arc<[Vec<Reading>]>;

/// Messages per [`ReadingsBatch`]: a durable batch (up to `[mqtt] ack_batch`, 4,096 by default)
/// goes downstream in pieces of this many, so what waits in the consumers' channels stays near
/// what it was per message (a whole batch per send held ~7 MB more at peak in the 1,000,000-
/// message backlog benchmark) while the channel operations still drop 256-fold.
pub(crate) const READINGS_CHUNK: usize = 256;

use crate::backoff::Backoff;
use crate::devices::DeviceTable;
use crate::metrics::Metrics;
use crate::normalize::{ClockPolicy, Normalizer, SeqVerdict, fix_clock};
use crate::outbox::{Outbox, OutboxError};
use crate::sink::line_protocol::LineBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, warn};

/// Capacity of the intake channel: enough to keep a batch forming while the previous one is
/// being fsynced, small enough that a stalled disk stops intake within a fraction of a second.
pub const INTAKE_CAPACITY: usize = 4096;

/// Upper bound for `[mqtt] ack_batch` (intakes made durable with one fsync).
pub(crate) const MAX_BATCH: usize = 8192;

/// Where the processor writes and whom it tells.
pub(crate) struct Processor {
    pub rx: mpsc::Receiver<Intake>,
    /// `None` when no time-series database is configured.
    pub outbox: Option<Arc<Outbox>>,
    pub measurement_prefix: String,
    pub dialect: crate::sink::line_protocol::Dialect,
    pub devices: Arc<DeviceTable>,
    pub metrics: Arc<Metrics>,
    pub clock: ClockPolicy,
    /// Where PUBACKs for MQTT intakes go (the MQTT source writes them).
    pub mqtt_acks: Option<AckSender>,
    /// Intakes made durable together (one fsync) before their acks go out.
    pub max_batch: usize,
    /// Downstream consumers of normalized readings (rules engine, camera health...), one
    /// [`ReadingsBatch`] per durable batch. Bounded: a slow consumer slows intake rather than
    /// losing readings it must see.
    pub readings_out: Vec<mpsc::Sender<ReadingsBatch>>,
    /// Where records the outbox can never take are kept (`None`: not acknowledged instead).
    pub dead_letter: Option<std::path::PathBuf>,
}

/// The dead-letter file under the storage dir.
pub(crate) const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";

/// The dead-letter file stops growing here; past it, intakes stay unacknowledged.
const DEAD_LETTER_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Why an intake could not be made durable (the outcome of one append attempt).
enum NotDurable {
    /// The records can never fit (record or batch too large); the lines come back.
    TooLarge(LineBuf, OutboxError),
    /// The append task panicked or was cancelled: nothing is known about the write.
    TaskFailed,
}

/// How many messages ahead the processor asks for a device slot's cache lines, and how many
/// lines (the slot's lock, sequence window and table row; issue 24, see [`crate::prefetch`]).
const PREFETCH_AHEAD: usize = 4;
const SLOT_LINES: usize = 5;

/// A slot's address as a plain number: the batch's list of them is held across an `await`,
/// which raw pointers would make `!Send`. Only ever used as a prefetch hint.
fn slot_address(slot: Option<&Arc<crate::devices::DeviceSlot>>) -> usize {
    slot.map_or(0, |s| Arc::as_ptr(s) as usize)
}

/// Prefetches the slot `PREFETCH_AHEAD` places after message `k` of a batch.
fn prefetch_slot(ahead: &[usize], k: usize) {
    if let Some(&a) = ahead.get(k + PREFETCH_AHEAD)
        && a != 0
    {
        crate::prefetch::lines(a as *const u8, SLOT_LINES);
    }
}

impl Processor {
    /// Runs until every sender is gone, then returns after the last batch is durable.
    pub(crate) async fn run(mut self) {
        let mut normalizer = Normalizer::default();
        let mut batch = Vec::with_capacity(self.max_batch);
        // Everything waiting, up to a batch, with one channel operation.
        while self.rx.recv_many(&mut batch, self.max_batch).await > 0 {
            let acks = self.process(&mut normalizer, &mut batch).await;
            self.send_acks(acks).await;
        }
    }

    /// Normalizes and makes a batch durable; answers the acknowledgements that may go out.
    async fn process(&self, normalizer: &mut Normalizer, batch: &mut Vec<Intake>) -> Vec<Ack> {
        let mut lines = LineBuf::default();
        let mut counts = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut kept = Vec::with_capacity(batch.len());
        let mut out = Vec::with_capacity(batch.len());
        // Each message's device is found once: its slot holds the sequence window, the table
        // row and the history (issue 24).
        let slots = self.devices.slots(
            batch
                .iter()
                .map(|i| i.readings.first().filter(|_| i.slot.is_none())),
        );
        let ahead: Vec<usize> = batch
            .iter()
            .zip(&slots)
            .map(|(i, found)| slot_address(i.slot.as_ref().or(found.as_ref())))
            .collect();
        for (k, (mut intake, found)) in batch.drain(..).zip(slots).enumerate() {
            prefetch_slot(&ahead, k);
            let slot = intake.slot.take().or(found);
            if let Some(first) = intake.readings.first()
                && let Some(seq) = first.sequence
                && let Some(slot) = &slot
            {
                let at = first.received_time_ms;
                match slot.check_sequence(seq) {
                    SeqVerdict::Duplicate => {
                        self.metrics.sequence_duplicates_total.inc();
                        slot.note_sequence(at, 0, true);
                        acks.push(intake.ack);
                        continue;
                    }
                    SeqVerdict::New { lost } if lost > 0 => {
                        self.metrics.sequence_lost_total.inc_by(lost);
                        slot.note_sequence(at, lost, false);
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
                let before = lines.len();
                crate::sink::line_protocol::encode_into(
                    &intake.readings,
                    &self.measurement_prefix,
                    self.dialect,
                    &mut lines,
                );
                counts.push(lines.len() - before);
            } else {
                counts.push(0);
            }
            kept.push((intake, slot));
        }
        let durable = match &self.outbox {
            Some(outbox) if !lines.is_empty() => self.make_durable(outbox, lines, &counts).await,
            _ => vec![true; kept.len()],
        };
        let history_points = self.devices.history_points();
        let ahead: Vec<usize> = kept.iter().map(|(_, s)| slot_address(s.as_ref())).collect();
        // A deque, so the loop can look ahead at slots it has not taken yet.
        let mut rest = std::collections::VecDeque::from(kept);
        let mut durable = durable.into_iter();
        let mut k = 0;
        while let (Some((intake, slot)), Some(ok)) = (rest.pop_front(), durable.next()) {
            prefetch_slot(&ahead, k);
            k += 1;
            if let Some((_, Some(s))) = rest.get(PREFETCH_AHEAD / 2 - 1) {
                s.prefetch_parts();
            }
            if let Some((_, Some(s))) = rest.front() {
                s.prefetch_blocks();
            }
            if !ok {
                if let Some(seq) = intake.readings.first().and_then(|r| r.sequence)
                    && let Some(slot) = &slot
                {
                    slot.forget_sequence(seq);
                }
                continue;
            }
            acks.push(intake.ack);
            let readings = intake.readings;
            self.metrics.readings_in_total.inc_by(readings.len() as u64);
            if let Some(slot) = slot {
                slot.observe(&readings, history_points);
            }
            if !self.readings_out.is_empty() {
                out.push(readings);
            }
        }
        let mut rest = out.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: ReadingsBatch = rest.by_ref().take(READINGS_CHUNK).collect();
            for consumer in &self.readings_out {
                // A consumer that stopped (shutdown) is simply skipped.
                let _ = consumer.send(chunk.clone()).await;
            }
        }
        acks
    }

    /// Sends the PUBACKs of intakes that are durable.
    async fn send_acks(&self, acks: Vec<Ack>) {
        if let Some(out) = &self.mqtt_acks {
            let mqtt: Vec<_> = acks
                .into_iter()
                .filter_map(|a| match a {
                    Ack::Mqtt(a) => Some(a),
                    Ack::None => None,
                })
                .collect();
            // Never waits. An error means the source is gone (shutdown): the broker
            // redelivers, points are idempotent, so nothing is lost.
            if !mqtt.is_empty() {
                let _ = out.send(mqtt);
            }
        }
    }

    /// Makes the lines of a batch durable; `counts[i]` lines belong to intake `i`. Answers,
    /// per intake, whether it may be acknowledged (durable or durably dead-lettered).
    async fn make_durable(
        &self,
        outbox: &Arc<Outbox>,
        lines: LineBuf,
        counts: &[usize],
    ) -> Vec<bool> {
        let lines = match self.append_waiting(outbox, lines).await {
            Ok(()) => return vec![true; counts.len()],
            Err(NotDurable::TaskFailed) => {
                self.not_acked("outbox_task_failed", counts.len());
                return vec![false; counts.len()];
            }
            Err(NotDurable::TooLarge(lines, e)) => {
                warn!(error = %e, intakes = counts.len(), "batch does not fit the outbox; appending message by message");
                lines
            }
        };
        let mut out = Vec::with_capacity(counts.len());
        let mut from = 0;
        for &n in counts {
            let to = (from + n).min(lines.len());
            let mine = lines.slice(from..to);
            from = to;
            if mine.is_empty() {
                out.push(true);
                continue;
            }
            out.push(match self.append_waiting(outbox, mine).await {
                Ok(()) => true,
                Err(NotDurable::TaskFailed) => {
                    self.not_acked("outbox_task_failed", 1);
                    false
                }
                Err(NotDurable::TooLarge(mine, e)) => self.dead_letter(mine, &e).await,
            });
        }
        out
    }

    fn not_acked(&self, reason: &str, n: usize) {
        self.metrics
            .intake_not_acked_total
            .get_or_create(&crate::metrics::Reason::of(reason))
            .inc_by(n as u64);
    }

    /// Keeps records the outbox can never take in the dead-letter file (fsynced); true when
    /// they are durable there.
    async fn dead_letter(&self, lines: LineBuf, why: &OutboxError) -> bool {
        let Some(path) = self.dead_letter.clone() else {
            error!(error = %why, records = lines.len(), "records can never fit the outbox and no dead-letter file is configured; not acknowledged");
            self.not_acked("too_large", 1);
            return false;
        };
        let entry = serde_json::json!({
            "at_ms": crate::clock::now_ms(),
            "reason": why.to_string(),
            "lines": lines.iter().map(String::from_utf8_lossy).collect::<Vec<_>>(),
        });
        let written =
            tokio::task::spawn_blocking(move || append_synced(&path, &entry.to_string())).await;
        match written {
            Ok(Ok(())) => {
                error!(error = %why, records = lines.len(), "records can never fit the outbox; kept in {DEAD_LETTER_FILE} (raise storage.outbox.segment_bytes)");
                self.metrics.intake_dead_lettered_total.inc();
                true
            }
            Ok(Err(e)) => {
                error!(error = %e, "dead-letter write failed; not acknowledged");
                self.not_acked("dead_letter_failed", 1);
                false
            }
            Err(_) => {
                self.not_acked("dead_letter_failed", 1);
                false
            }
        }
    }

    /// Appends with one fsync; waits (never drops) while the outbox is full or failing.
    async fn append_waiting(
        &self,
        outbox: &Arc<Outbox>,
        mut lines: LineBuf,
    ) -> Result<(), NotDurable> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            let ob = outbox.clone();
            let result = tokio::task::spawn_blocking(move || {
                // One vector of borrowed lines per batch, not one per line.
                let records: Vec<&[u8]> = lines.iter().collect();
                let r = ob.append(&records);
                drop(records);
                (lines, r)
            })
            .await;
            let r;
            (lines, r) = match result {
                Ok(pair) => pair,
                Err(e) => {
                    error!(error = %e, "outbox append task failed; not acknowledged");
                    return Err(NotDurable::TaskFailed);
                }
            };
            match r {
                // The outbox counts appends, full events and I/O errors itself.
                Ok(()) => return Ok(()),
                Err(OutboxError::Full) => {
                    warn!(
                        records = lines.len(),
                        "outbox full: intake paused until the database catches up"
                    );
                    // Bounded wait so a missed wake-up cannot stall us for long.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), outbox.wait_for_space()).await;
                }
                // Cannot succeed by waiting.
                Err(
                    e @ (OutboxError::RecordTooLarge { .. } | OutboxError::BatchTooLarge { .. }),
                ) => return Err(NotDurable::TooLarge(lines, e)),
                Err(e) => {
                    let wait = backoff.next_delay();
                    error!(error = %e, retry_in_ms = wait.as_millis() as u64, "outbox append failed; intake paused");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Appends one line to `path` and fsyncs it (and the directory when the file is new).
fn append_synced(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let existed = path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if f.metadata()?.len() + line.len() as u64 > DEAD_LETTER_MAX_BYTES {
        return Err(std::io::Error::other("dead-letter file is full"));
    }
    f.write_all(line.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_data()?;
    if !existed && let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutboxConfig;
    use crate::outbox::WhenFull;
    use crate::reading::{Quality, Source, Value};

    fn intake(device: &str, seq: u64, text_len: usize, pkid: u16) -> Intake {
        let now = crate::clock::now_ms();
        let reading = Reading {
            site: "s".into(),
            device: device.into(),
            stream: "grease_trap".into(),
            metric: "note".into(),
            value: Value::Text("x".repeat(text_len)),
            unit: Default::default(),
            device_time_ms: now,
            received_time_ms: now,
            source: Source::Mqtt,
            sequence: Some(seq),
            quality: Quality::default(),
        };
        Intake {
            readings: vec![reading],
            ack: Ack::Mqtt(MqttAck {
                pkid,
                connection: 1,
            }),
            slot: None,
        }
    }

    fn processor(dir: &std::path::Path, dead_letter: bool) -> (Processor, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let cfg = OutboxConfig {
            max_bytes: 1 << 20,
            segment_bytes: 4096,
            when_full: WhenFull::Backpressure,
        };
        let outbox = Outbox::open(&dir.join("outbox"), &cfg, metrics.clone()).expect("outbox");
        let (_tx, rx) = mpsc::channel(1);
        let p = Processor {
            rx,
            outbox: Some(Arc::new(outbox)),
            measurement_prefix: String::new(),
            dialect: Default::default(),
            devices: Arc::new(DeviceTable::new(60_000)),
            metrics: metrics.clone(),
            clock: ClockPolicy {
                max_skew_ms: i64::MAX / 4,
                max_replay_age_ms: i64::MAX / 4,
            },
            mqtt_acks: None,
            max_batch: 16,
            readings_out: Vec::new(),
            dead_letter: dead_letter.then(|| dir.join(DEAD_LETTER_FILE)),
        };
        (p, metrics)
    }

    fn acked(acks: &[Ack]) -> Vec<u16> {
        acks.iter()
            .filter_map(|a| match a {
                Ack::Mqtt(a) => Some(a.pkid),
                Ack::None => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_message_too_large_for_the_outbox_is_acked_only_once_dead_lettered() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, metrics) = processor(dir.path(), true);
        let mut n = Normalizer::default();
        let mut batch = vec![intake("a", 1, 10, 1), intake("b", 1, 10_000, 2)];
        let acks = p.process(&mut n, &mut batch).await;
        assert_eq!(
            acked(&acks),
            vec![1, 2],
            "the small one is durable, the big one kept"
        );
        assert_eq!(metrics.intake_dead_lettered_total.get(), 1);
        let kept = std::fs::read_to_string(dir.path().join(DEAD_LETTER_FILE)).expect("file");
        assert_eq!(kept.lines().count(), 1);
        assert!(
            kept.contains("xxxxxxxxxx"),
            "the records themselves are kept"
        );
        assert_eq!(p.outbox.as_ref().map(|o| o.stats().records), Some(1));
    }

    /// An intake that brings its device's slot (the MQTT decoder resolves it) is recorded
    /// there, and its neighbours in the batch without one are looked up in the table: the
    /// carried slot is not lost nor given to another message.
    #[tokio::test]
    async fn a_slot_brought_by_the_source_is_the_one_updated() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, _) = processor(dir.path(), true);
        let elsewhere = DeviceTable::new(60_000);
        let mut n = Normalizer::default();
        let mut brought = intake("a", 1, 10, 1);
        let first = brought.readings[0].clone();
        brought.slot = Some(elsewhere.slot(&first.site, &first.device));
        let mut batch = vec![intake("b", 1, 10, 2), brought, intake("c", 1, 10, 3)];
        let acks = p.process(&mut n, &mut batch).await;
        assert_eq!(acked(&acks), vec![2, 1, 3]);
        let listed = |t: &DeviceTable| {
            let mut d: Vec<(String, u64)> = t
                .snapshot(crate::clock::now_ms())
                .into_iter()
                .map(|v| (v.device, v.messages))
                .collect();
            d.sort();
            d
        };
        assert_eq!(listed(&elsewhere), vec![("a".to_string(), 1)]);
        assert_eq!(
            listed(&p.devices),
            vec![("b".to_string(), 1), ("c".to_string(), 1)]
        );
    }

    #[tokio::test]
    async fn without_a_dead_letter_file_an_oversized_message_is_not_acked_and_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, metrics) = processor(dir.path(), false);
        let mut n = Normalizer::default();
        let mut batch = vec![intake("b", 7, 10_000, 9), intake("a", 1, 10, 3)];
        let acks = p.process(&mut n, &mut batch).await;
        assert_eq!(acked(&acks), vec![3]);
        let text = metrics.encode();
        assert!(
            text.contains("gateway_intake_not_acked_total{reason=\"too_large\"} 1"),
            "{text}"
        );
        // Its redelivery is taken again, not dropped as a duplicate.
        let mut again = vec![intake("b", 7, 10_000, 10)];
        let acks = p.process(&mut n, &mut again).await;
        assert!(acked(&acks).is_empty());
        assert_eq!(metrics.sequence_duplicates_total.get(), 0);
    }
}
