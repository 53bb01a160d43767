//! The gateway's own metrics, exposed at `GET /metrics` in Prometheus text format.
//!
//! One registry per gateway instance (no globals), so tests can run several in one process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label set for counters split by a reason or a result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

impl Reason {
    pub(crate) fn of(reason: &str) -> Reason {
        Reason {
            reason: reason.to_string(),
        }
    }
}

/// Label set of parking departures: whether the driver left after the notice, before the limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Persuaded {
    pub persuaded: String,
}

impl Persuaded {
    pub(crate) fn of(persuaded: bool) -> Persuaded {
        Persuaded {
            persuaded: persuaded.to_string(),
        }
    }
}

/// Label set of a pulled camera source (`[[cameras.sources]]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraSourceLabels {
    pub site: String,
    pub camera: String,
}

/// Label set of a pulled camera source's failures, by reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraSourceReason {
    pub site: String,
    pub camera: String,
    pub reason: String,
}

/// Label set for per-device poll counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceResult {
    pub device: String,
    pub result: String,
}

/// Every metric the gateway reports. Cheap to update from any task (atomics).
pub struct Metrics {
    registry: Registry,
    pub mqtt_messages_total: Counter,
    pub mqtt_connected: Gauge,
    pub mqtt_reconnects_total: Counter,
    /// QoS 1 messages taken from the broker and not yet acknowledged on the wire, and the
    /// most there ever were: bounded by the source's queues, whatever the backlog.
    pub mqtt_unacked_messages: Gauge,
    pub mqtt_unacked_messages_peak: Gauge,
    /// Times the source stopped reading from the broker because the decoder's queue was full.
    pub mqtt_intake_paused_total: Counter,
    pub readings_in_total: Counter,
    pub decode_errors_total: Family<Reason, Counter>,
    pub dead_letter_published_total: Counter,
    pub sequence_lost_total: Counter,
    pub sequence_duplicates_total: Counter,
    /// Messages whose records the outbox can never take, kept in the dead-letter file.
    pub intake_dead_lettered_total: Counter,
    /// Messages left unacknowledged because they could not be made durable, by reason
    /// (`outbox_task_failed`, `too_large`, `dead_letter_failed`); the broker redelivers them.
    pub intake_not_acked_total: Family<Reason, Counter>,
    pub clock_replaced_total: Counter,
    pub outbox_appended_total: Counter,
    pub outbox_depth_records: Gauge,
    pub outbox_bytes: Gauge<u64, AtomicU64>,
    pub outbox_full_total: Counter,
    pub outbox_dropped_total: Counter,
    pub outbox_errors_total: Counter,
    pub sink_points_written_total: Counter,
    pub sink_batches_total: Counter,
    pub sink_retries_total: Family<Reason, Counter>,
    pub sink_splits_total: Counter,
    pub sink_rejected_lines_total: Counter,
    pub sink_write_latency_seconds: Histogram,
    pub devices_known: Gauge,
    pub devices_online: Gauge,
    /// Modbus polls by device and result (`ok`, `partial`, `exception`, `timeout`, ...).
    pub modbus_polls_total: Family<DeviceResult, Counter>,
    /// Modbus read requests sent (one poll may need several).
    pub modbus_requests_total: Counter,
    /// Duration of Modbus polls that got an answer (all requests of one device).
    pub modbus_poll_seconds: Histogram,
    /// Modbus devices currently answering.
    pub modbus_devices_online: Gauge,
    /// Clue pool: changes recorded, by event (`created`, `occurrence`, `claim`, `supervision`, ...).
    pub clue_changes_total: Family<Reason, Counter>,
    /// Clue signals the pool could not record (bad event, storage error).
    pub clue_signal_errors_total: Counter,
    /// Camera frames and references refused, by reason (`camera_limit`, `bad_frame`,
    /// `other_device`, `disk_full`, `rate_limit`).
    pub camera_frames_refused_total: Family<Reason, Counter>,
    /// Drone footage files deleted by retention (`drone.footage_retention_days`), and bytes.
    pub drone_footage_expired_files_total: Counter,
    pub drone_footage_expired_bytes_total: Counter,
    /// Of those files, the ones a clue came from (`drone.clue_footage_retention_days`).
    pub drone_clue_footage_expired_files_total: Counter,
    /// Active device tokens bound to no camera (relays, and tokens from before `--device` or
    /// `--relay` was required), counted at start.
    pub device_tokens_unbound: Gauge,
    /// Of those, the ones issued before `--device` or `--relay` was required (not relays by
    /// choice).
    pub device_tokens_unbound_unchosen: Gauge,
    /// Evidence files not written because the storage floor would be passed
    /// (`storage.min_free_mb`); the clue they belonged to is not recorded either.
    pub evidence_refused_total: Counter,
    /// Plain repeats of open clues held in memory now, waiting for their window
    /// (`clue::repeats`; lost if the process is killed).
    pub clue_repeats_held: Gauge,
    /// How long past its window the oldest held run was when last handed out to be written, ms
    /// (0 when on time): grows when more keys repeat per window than the store can write.
    pub clue_repeats_late_ms: Gauge,
    /// Masked evidence copies served, by `reason` `cached` or `made` (`clue::masked_cache`).
    pub masked_copies_total: Family<Reason, Counter>,
    /// Audit chain heads queued for publication (`audit/v1/head`).
    pub audit_heads_published_total: Counter,
    /// Audit chain heads that could not be read or queued (retried next period).
    pub audit_head_publish_errors_total: Counter,
    /// Clue changes delivered, by channel (`mqtt`, `webhook`).
    pub clue_delivered_total: Family<Reason, Counter>,
    /// Failed clue delivery attempts, by channel (retried).
    pub clue_delivery_failures_total: Family<Reason, Counter>,
    /// Failed attempts in a row of the oldest undelivered row of each in-order delivery
    /// channel (`mqtt`, `webhook`, `notice-*`); 0 while it flows. Those channels retry until
    /// acknowledged (see `clue::publish`): this is how a stuck one shows.
    pub delivery_head_failures: Family<Reason, Gauge>,
    /// Street notices delivered, by channel (`notice-mqtt`, `notice-webhook:NAME`).
    pub notices_delivered_total: Family<Reason, Counter>,
    /// Failed notice delivery attempts, by channel (retried).
    pub notice_delivery_failures_total: Family<Reason, Counter>,
    /// Notices or stay outcomes the clue store refused (logged; such a notice is not sent).
    pub notice_record_errors_total: Counter,
    /// Camera frames of parking cameras, by result (`analysed`, `models_unavailable`, `error`).
    pub parking_frames_total: Family<Reason, Counter>,
    /// "Please move" notices due (persuasion time reached).
    pub parking_persuasions_total: Counter,
    /// Vehicles that left a no-parking zone, by `persuaded` (`true`: warned, gone before the limit).
    pub parking_departures_total: Family<Persuaded, Counter>,
    /// Frames of shop-front cameras, by result (`analysed`, `models_unavailable`, `error`).
    pub shopfront_frames_total: Family<Reason, Counter>,
    /// Shop-front persuasion notices ("please take the goods inside"), one per episode.
    pub shopfront_notices_total: Counter,
    /// Frames of muck-truck cameras, by result (`analysed`, `models_unavailable`,
    /// `no_plate_reader`, `error`).
    pub muck_frames_total: Family<Reason, Counter>,
    /// Configuration reloads (SIGHUP), by result (`ok`, `rejected`).
    pub config_reloads_total: Family<Reason, Counter>,
    /// Messages of devices missing from the registry, by what happened to their readings.
    pub unregistered_messages_total: Family<Reason, Counter>,
    pub registry_reloads_total: Family<Reason, Counter>,
    pub registry_devices: Gauge,
    /// Frames fetched from pulled cameras and accepted.
    pub camera_source_frames_total: Family<CameraSourceLabels, Counter>,
    /// Failed fetches of pulled cameras, by reason (`connect`, `timeout`, `unauthorized`, ...).
    pub camera_source_errors_total: Family<CameraSourceReason, Counter>,
    /// Attempts after a failure (a new request, or a new ffmpeg).
    pub camera_source_reconnects_total: Family<CameraSourceLabels, Counter>,
    /// Unix time (s) of the last frame from each pulled camera.
    pub camera_source_last_frame_seconds: Family<CameraSourceLabels, Gauge>,
    /// 1 while the last attempt of a pulled camera gave a frame.
    pub camera_source_up: Family<CameraSourceLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("gateway");
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let latency_buckets = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Metrics {
            mqtt_messages_total: reg!(
                "mqtt_messages",
                "MQTT messages received",
                Counter::default()
            ),
            mqtt_connected: reg!(
                "mqtt_connected",
                "1 while connected to the broker",
                Gauge::default()
            ),
            mqtt_reconnects_total: reg!(
                "mqtt_reconnects",
                "Broker connection losses",
                Counter::default()
            ),
            mqtt_unacked_messages: reg!(
                "mqtt_unacked_messages",
                "QoS 1 messages received and not yet acknowledged",
                Gauge::default()
            ),
            mqtt_unacked_messages_peak: reg!(
                "mqtt_unacked_messages_peak",
                "Most QoS 1 messages ever held unacknowledged at once",
                Gauge::default()
            ),
            mqtt_intake_paused_total: reg!(
                "mqtt_intake_paused",
                "Times reading from the broker paused because the decoder's queue was full",
                Counter::default()
            ),
            readings_in_total: reg!(
                "readings_in",
                "Readings decoded and normalized",
                Counter::default()
            ),
            decode_errors_total: reg!(
                "decode_errors",
                "Messages that could not be decoded, by reason",
                Family::default()
            ),
            dead_letter_published_total: reg!(
                "dead_letter_published",
                "Undecodable messages republished to the dead-letter topic",
                Counter::default()
            ),
            sequence_lost_total: reg!(
                "sequence_lost",
                "Messages missing according to device sequence numbers",
                Counter::default()
            ),
            sequence_duplicates_total: reg!(
                "sequence_duplicates",
                "Duplicate messages dropped by sequence number",
                Counter::default()
            ),
            intake_dead_lettered_total: reg!(
                "intake_dead_lettered",
                "Messages the outbox can never take, kept in the dead-letter file",
                Counter::default()
            ),
            intake_not_acked_total: reg!(
                "intake_not_acked",
                "Messages left unacknowledged because they could not be made durable, by reason",
                Family::default()
            ),
            clock_replaced_total: reg!(
                "clock_replaced",
                "Readings whose device time was replaced by the receive time",
                Counter::default()
            ),
            outbox_appended_total: reg!(
                "outbox_appended",
                "Records made durable in the outbox",
                Counter::default()
            ),
            outbox_depth_records: reg!(
                "outbox_depth_records",
                "Records waiting in the outbox",
                Gauge::default()
            ),
            outbox_bytes: reg!(
                "outbox_bytes",
                "Bytes on disk held by the outbox",
                Gauge::<u64, AtomicU64>::default()
            ),
            outbox_full_total: reg!(
                "outbox_full",
                "Times the outbox was full and intake paused",
                Counter::default()
            ),
            outbox_dropped_total: reg!(
                "outbox_dropped",
                "Records dropped at the bound (drop_oldest policy only)",
                Counter::default()
            ),
            outbox_errors_total: reg!(
                "outbox_errors",
                "Outbox I/O errors (intake pauses and retries)",
                Counter::default()
            ),
            sink_points_written_total: reg!(
                "sink_points_written",
                "Lines accepted by the time-series database",
                Counter::default()
            ),
            sink_batches_total: reg!(
                "sink_batches",
                "Write requests accepted by the database",
                Counter::default()
            ),
            sink_retries_total: reg!(
                "sink_retries",
                "Write retries, by reason",
                Family::default()
            ),
            sink_splits_total: reg!(
                "sink_splits",
                "Batches split after 413 or to isolate rejected lines",
                Counter::default()
            ),
            sink_rejected_lines_total: reg!(
                "sink_rejected_lines",
                "Lines the database refused (400), moved to the dead-letter file",
                Counter::default()
            ),
            sink_write_latency_seconds: reg!(
                "sink_write_latency_seconds",
                "Latency of successful write requests",
                Histogram::new(latency_buckets)
            ),
            devices_known: reg!(
                "devices_known",
                "Devices in the live table",
                Gauge::default()
            ),
            devices_online: reg!(
                "devices_online",
                "Devices currently online",
                Gauge::default()
            ),
            modbus_polls_total: reg!(
                "modbus_polls",
                "Modbus polls, by device and result",
                Family::default()
            ),
            modbus_requests_total: reg!(
                "modbus_requests",
                "Modbus read requests sent",
                Counter::default()
            ),
            modbus_poll_seconds: reg!(
                "modbus_poll_seconds",
                "Duration of answered Modbus polls",
                Histogram::new([
                    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
            ),
            modbus_devices_online: reg!(
                "modbus_devices_online",
                "Modbus devices currently answering",
                Gauge::default()
            ),
            clue_changes_total: reg!(
                "clue_changes",
                "Clue changes recorded, by event",
                Family::default()
            ),
            clue_signal_errors_total: reg!(
                "clue_signal_errors",
                "Clue signals the pool could not record",
                Counter::default()
            ),
            camera_frames_refused_total: reg!(
                "camera_frames_refused",
                "Camera frames and references refused, by reason",
                Family::default()
            ),
            drone_footage_expired_files_total: reg!(
                "drone_footage_expired_files",
                "Drone footage files deleted by retention",
                Counter::default()
            ),
            drone_footage_expired_bytes_total: reg!(
                "drone_footage_expired_bytes",
                "Bytes of drone footage deleted by retention",
                Counter::default()
            ),
            device_tokens_unbound: reg!(
                "device_tokens_unbound",
                "Active device tokens bound to no camera (they speak for every camera of their sites), at start",
                Gauge::default()
            ),
            device_tokens_unbound_unchosen: reg!(
                "device_tokens_unbound_unchosen",
                "Active unbound device tokens issued before --device or --relay was required, at start",
                Gauge::default()
            ),
            drone_clue_footage_expired_files_total: reg!(
                "drone_clue_footage_expired_files",
                "Drone footage files a clue came from, deleted by the clue footage retention",
                Counter::default()
            ),
            evidence_refused_total: reg!(
                "evidence_refused",
                "Evidence files not written: the storage floor would be passed",
                Counter::default()
            ),
            clue_repeats_held: reg!(
                "clue_repeats_held",
                "Plain repeats of open clues held in memory, waiting for their window",
                Gauge::default()
            ),
            clue_repeats_late_ms: reg!(
                "clue_repeats_late_ms",
                "How long past its window the oldest held run was when last written, ms",
                Gauge::default()
            ),
            masked_copies_total: reg!(
                "masked_copies",
                "Masked evidence copies served, by reason (cached, made)",
                Family::default()
            ),
            audit_heads_published_total: reg!(
                "audit_heads_published",
                "Audit chain heads queued for publication",
                Counter::default()
            ),
            audit_head_publish_errors_total: reg!(
                "audit_head_publish_errors",
                "Audit chain heads that could not be read or queued",
                Counter::default()
            ),
            clue_delivered_total: reg!(
                "clue_delivered",
                "Clue changes delivered, by channel (reason label)",
                Family::default()
            ),
            clue_delivery_failures_total: reg!(
                "clue_delivery_failures",
                "Failed clue delivery attempts, by channel (reason label)",
                Family::default()
            ),
            delivery_head_failures: reg!(
                "delivery_head_failures",
                "Failed attempts in a row of the oldest undelivered row, by in-order delivery channel (reason label); 0 while it flows",
                Family::default()
            ),
            notices_delivered_total: reg!(
                "notices_delivered",
                "Street notices delivered, by channel (reason label)",
                Family::default()
            ),
            notice_delivery_failures_total: reg!(
                "notice_delivery_failures",
                "Failed street notice delivery attempts, by channel (reason label)",
                Family::default()
            ),
            notice_record_errors_total: reg!(
                "notice_record_errors",
                "Parking notices or stay outcomes the clue store refused",
                Counter::default()
            ),
            parking_frames_total: reg!(
                "parking_frames",
                "Frames of parking cameras, by result (reason label)",
                Family::default()
            ),
            parking_persuasions_total: reg!(
                "parking_persuasions",
                "Parking persuasion notices (please move)",
                Counter::default()
            ),
            parking_departures_total: reg!(
                "parking_departures",
                "Vehicles that left a no-parking zone, by persuaded",
                Family::default()
            ),
            shopfront_frames_total: reg!(
                "shopfront_frames",
                "Frames of shop-front cameras, by result (reason label)",
                Family::default()
            ),
            shopfront_notices_total: reg!(
                "shopfront_notices",
                "Shop-front persuasion notices (take the goods inside)",
                Counter::default()
            ),
            muck_frames_total: reg!(
                "muck_frames",
                "Frames of muck-truck cameras, by result (reason label)",
                Family::default()
            ),
            config_reloads_total: reg!(
                "config_reloads",
                "Configuration reloads (SIGHUP), by result (reason label)",
                Family::default()
            ),
            unregistered_messages_total: reg!(
                "unregistered_messages",
                "Messages from devices not in the registry, by outcome: kept (DevEUI stored under the placeholder site), dead_letter (refused), stored (named device stored as usual)",
                Family::default()
            ),
            registry_reloads_total: reg!(
                "registry_reloads",
                "Device registry file reloads, by result (reason label)",
                Family::default()
            ),
            registry_devices: reg!(
                "registry_devices",
                "Devices in the registry",
                Gauge::default()
            ),
            camera_source_frames_total: reg!(
                "camera_source_frames",
                "Frames fetched from pulled cameras and accepted",
                Family::default()
            ),
            camera_source_errors_total: reg!(
                "camera_source_errors",
                "Failed fetches of pulled cameras, by reason",
                Family::default()
            ),
            camera_source_reconnects_total: reg!(
                "camera_source_reconnects",
                "Attempts to reach a pulled camera again after a failure",
                Family::default()
            ),
            camera_source_last_frame_seconds: reg!(
                "camera_source_last_frame_seconds",
                "Unix time of the last frame from each pulled camera",
                Family::default()
            ),
            camera_source_up: reg!(
                "camera_source_up",
                "1 while the last attempt of a pulled camera gave a frame",
                Family::default()
            ),
            registry: r,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_with_prefix() {
        let m = Metrics::new();
        m.readings_in_total.inc_by(3);
        m.decode_errors_total
            .get_or_create(&Reason::of("bad_json"))
            .inc();
        let text = m.encode();
        assert!(text.contains("gateway_readings_in_total 3"), "{text}");
        assert!(
            text.contains("gateway_decode_errors_total{reason=\"bad_json\"} 1"),
            "{text}"
        );
    }
}
