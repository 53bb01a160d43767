//! The live device table: last seen, last values, presence. Served at `GET /api/v1/devices`.
//!
//! Presence combines what the device says (retained `state` topic and its last will, or a Modbus
//! poller's online/offline) with silence: a device that has said nothing for `offline_after`
//! is offline whatever it last claimed.

use crate::history::{DeviceRings, EventRecord, Series};
use crate::normalize::{SeqVerdict, SeqWindow};
use crate::reading::STATE_STREAM;
use crate::reading::{ByMetric, Name, Reading, Value};
use serde::Serialize;
use std::collections::BTreeMap;
/// foldhash, not SipHash: looked up once per message on the intake path (issue 24).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, Mutex, RwLock};

/// The newest value of one metric.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastValue {
    /// Shared with the readings (no copy per device).
    pub stream: Name,
    pub value: Value,
    pub unit: Name,
    pub device_time_ms: i64,
}

/// Presence as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Presence {
    Online,
    /// The device (or its last will, or its poller) said it is offline.
    Offline,
    /// Nothing heard for longer than the silence timeout.
    Silent,
}

#[derive(Debug, Clone)]
struct DeviceState {
    source: &'static str,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_data_ms: Option<i64>,
    /// Last explicit presence statement and when it arrived.
    stated: Option<(bool, i64)>,
    messages: u64,
    lost: u64,
    duplicates: u64,
    clock_replaced: u64,
    last_values: ByMetric<LastValue>,
}

/// One row of `GET /api/v1/devices`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeviceView {
    pub site: String,
    pub device: String,
    pub source: &'static str,
    pub presence: Presence,
    pub online: bool,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub messages: u64,
    /// Messages missing according to sequence numbers.
    pub lost: u64,
    pub duplicates: u64,
    pub clock_replaced: u64,
    pub battery: Option<f64>,
    pub last_values: BTreeMap<String, LastValue>,
}

/// Everything intake keeps about one device, found with one lookup per message (issue 24):
/// its sequence window, its row in the table and its dashboard history. These used to sit in
/// three maps of their own (the processor's windows, the table, the history), each a two-level
/// lookup that compared the device's text; with 10,000 interleaved devices every level was a
/// cache miss, and together they were the largest share of intake's CPU.
///
/// The processor resolves the slot once ([`DeviceTable::slot`]) and keeps it while the message
/// is made durable; readers (the API, the gauges) lock one slot at a time.
#[derive(Default)]
pub(crate) struct DeviceSlot {
    inner: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// `None` until a message with a sequence number arrives.
    seq: Option<SeqWindow>,
    /// `None` until the device's first durable message (or sequence finding): a slot made
    /// for a message that could not be stored does not list the device.
    row: Option<DeviceState>,
    /// `None` until the first reading that is not a presence statement.
    rings: Option<DeviceRings>,
}

/// Opaque in logs (an intake carrying a slot derives `Debug`): its state is the table's to show.
impl std::fmt::Debug for DeviceSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSlot").finish_non_exhaustive()
    }
}

impl DeviceSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // A poisoned lock only means another thread panicked mid-update of plain data;
        // the state is still usable, so take it rather than propagate the panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the sequence number of one message (all readings of a message share it).
    pub(crate) fn check_sequence(&self, seq: u64) -> SeqVerdict {
        let mut st = self.lock();
        match &mut st.seq {
            Some(w) => w.check(seq),
            None => {
                st.seq = Some(SeqWindow::new(seq));
                SeqVerdict::New { lost: 0 }
            }
        }
    }

    /// Forgets that message `seq` was seen (it was not made durable nor acknowledged, so its
    /// redelivery must be taken).
    pub(crate) fn forget_sequence(&self, seq: u64) {
        if let Some(w) = &mut self.lock().seq {
            w.unset(seq);
        }
    }

    /// Adds sequence-number findings.
    pub(crate) fn note_sequence(&self, at_ms: i64, lost: u64, duplicate: bool) {
        let mut st = self.lock();
        let row = st
            .row
            .get_or_insert_with(|| DeviceState::new("mqtt", at_ms));
        row.lost += lost;
        if duplicate {
            row.duplicates += 1;
        }
    }

    /// Records one message's readings (all from this device); `history_points` as
    /// [`DeviceTable::with_history_points`].
    /// Prefetch hints for what [`DeviceSlot::observe`] reaches behind the slot: the last
    /// values and the history rings (see [`crate::prefetch`]). Takes the lock for a moment, so
    /// the slot's own lines should have been asked for a little earlier; skipped while held.
    pub(crate) fn prefetch_parts(&self) {
        if let Ok(st) = self.inner.try_lock() {
            if let Some(row) = &st.row {
                row.last_values.prefetch();
            }
            if let Some(rings) = &st.rings {
                rings.prefetch();
            }
        }
    }

    /// The stage after [`DeviceSlot::prefetch_parts`]: where the history rings write next.
    pub(crate) fn prefetch_blocks(&self) {
        if let Ok(st) = self.inner.try_lock()
            && let Some(rings) = &st.rings
        {
            rings.prefetch_blocks();
        }
    }

    pub(crate) fn observe(&self, readings: &[Reading], history_points: usize) {
        let Some(first) = readings.first() else {
            return;
        };
        let mut st = self.lock();
        let st = &mut *st;
        if first.stream != STATE_STREAM {
            st.rings
                .get_or_insert_with(DeviceRings::default)
                .observe(readings, history_points);
        }
        let at = first.received_time_ms;
        let row = st
            .row
            .get_or_insert_with(|| DeviceState::new(first.source.as_str(), at));
        row.observe(readings, at);
    }
}

impl DeviceState {
    fn new(source: &'static str, at_ms: i64) -> DeviceState {
        DeviceState {
            source,
            first_seen_ms: at_ms,
            last_seen_ms: at_ms,
            last_data_ms: None,
            stated: None,
            messages: 0,
            lost: 0,
            duplicates: 0,
            clock_replaced: 0,
            last_values: ByMetric::default(),
        }
    }

    fn observe(&mut self, readings: &[Reading], at: i64) {
        self.messages += 1;
        self.last_seen_ms = self.last_seen_ms.max(at);
        for r in readings {
            if r.quality.clock_replaced {
                self.clock_replaced += 1;
            }
            if r.stream == STATE_STREAM && r.metric == "online" {
                if let Value::Bool(b) = r.value {
                    self.stated = Some((b, at));
                }
                continue;
            }
            self.last_data_ms = Some(at);
            // Updated in place: no allocation per reading once a metric is known.
            if let Some(last) = self.last_values.get_mut_name(&r.metric) {
                if last.device_time_ms <= r.device_time_ms {
                    last.stream.clone_from(&r.stream);
                    last.value.clone_from(&r.value);
                    last.unit.clone_from(&r.unit);
                    last.device_time_ms = r.device_time_ms;
                }
            } else {
                self.last_values.insert(
                    r.metric.clone(),
                    LastValue {
                        stream: r.stream.clone(),
                        value: r.value.clone(),
                        unit: r.unit.clone(),
                        device_time_ms: r.device_time_ms,
                    },
                );
            }
        }
    }
}

/// Site, then device. The keys are the readings' [`Name`]s, so a message finds its device by
/// comparing pointers (interned names) rather than texts; `&str` lookups (the API) work too.
type Slots = HashMap<Name, HashMap<Name, Arc<DeviceSlot>>>;

/// Shared, internally locked; updates are short.
pub struct DeviceTable {
    offline_after_ms: i64,
    /// Recent points kept per metric for the dashboard's charts (0: events only).
    history_points: usize,
    slots: RwLock<Slots>,
    /// The gauges' last counts and when they were taken ([`DeviceTable::gauge_counts`]).
    gauges: Mutex<Option<(i64, (i64, i64))>>,
}

/// How long the gauges' device counts are reused: counting visits every device (10,000 slots
/// locked one by one), and a scraper polling `/metrics` every 50 ms, as the ingest benchmark
/// does, made it 3 % of the gateway's CPU (issue 24, perf). Presence changes on a scale of
/// minutes (`offline_after`), so a second's delay in the gauges changes nothing.
const GAUGE_REFRESH_MS: i64 = 1_000;

impl DeviceTable {
    pub(crate) fn new(offline_after_ms: i64) -> DeviceTable {
        DeviceTable {
            offline_after_ms,
            history_points: crate::history::DEFAULT_POINTS_PER_METRIC,
            slots: RwLock::new(HashMap::default()),
            gauges: Mutex::new(None),
        }
    }

    /// Keeps `points` recent values per metric for the dashboard (0: none).
    pub(crate) fn with_history_points(mut self, points: usize) -> DeviceTable {
        self.history_points = points;
        self
    }

    /// Points kept per metric in a device's history.
    pub(crate) fn history_points(&self) -> usize {
        self.history_points
    }

    /// Recent readings and events per device (bounded, in memory).
    pub(crate) fn history(&self) -> ReadingHistory<'_> {
        ReadingHistory::new(self)
    }

    /// The slot of a device, made on first sight. One lookup under a shared lock for a known
    /// device; the write lock only for a new one.
    pub(crate) fn slot(&self, site: &Name, device: &Name) -> Arc<DeviceSlot> {
        {
            let map = self.slots.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get(site).and_then(|d| d.get(device)) {
                return s.clone();
            }
        }
        let mut map = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let devs = match map.get_mut(site) {
            Some(d) => d,
            None => map.entry(site.clone()).or_default(),
        };
        devs.entry(device.clone()).or_default().clone()
    }

    /// The slots of many messages' devices (`None` for a message without readings), under
    /// one shared lock: taken per message, the lock's atomic was a fifth of the lookup's cost.
    /// New devices get their slot under one write lock afterwards.
    pub(crate) fn slots<'r>(
        &self,
        firsts: impl Iterator<Item = Option<&'r Reading>>,
    ) -> Vec<Option<Arc<DeviceSlot>>> {
        let mut missing = Vec::new();
        let mut out: Vec<Option<Arc<DeviceSlot>>> = {
            let map = self.slots.read().unwrap_or_else(|p| p.into_inner());
            firsts
                .enumerate()
                .map(|(i, r)| {
                    let r = r?;
                    let found = map.get(&r.site).and_then(|d| d.get(&r.device)).cloned();
                    if found.is_none() {
                        missing.push((i, r));
                    }
                    found
                })
                .collect()
        };
        for (i, r) in missing {
            out[i] = Some(self.slot(&r.site, &r.device));
        }
        out
    }

    /// The slot of a known device (for readers: never makes one).
    fn find(&self, site: &str, device: &str) -> Option<Arc<DeviceSlot>> {
        let map = self.slots.read().unwrap_or_else(|p| p.into_inner());
        map.get(site).and_then(|d| d.get(device)).cloned()
    }

    /// Runs `f` on a known device's history.
    pub(crate) fn with_rings<R>(
        &self,
        site: &str,
        device: &str,
        f: impl FnOnce(&DeviceRings) -> R,
    ) -> Option<R> {
        let slot = self.find(site, device)?;
        let st = slot.lock();
        st.rings.as_ref().map(f)
    }

    /// Records one message's readings (all from one device); intake goes through the slot
    /// it resolved already ([`DeviceSlot::observe`]).
    #[cfg(test)]
    pub(crate) fn observe(&self, readings: &[Reading]) {
        let Some(first) = readings.first() else {
            return;
        };
        self.slot(&first.site, &first.device)
            .observe(readings, self.history_points);
    }

    fn presence(&self, st: &DeviceState, now_ms: i64) -> Presence {
        if let Some((false, at)) = st.stated
            && st.last_data_ms.is_none_or(|d| d <= at)
        {
            return Presence::Offline;
        }
        if now_ms - st.last_seen_ms > self.offline_after_ms {
            Presence::Silent
        } else {
            Presence::Online
        }
    }

    /// Every device, sorted by site then device.
    pub(crate) fn snapshot(&self, now_ms: i64) -> Vec<DeviceView> {
        let map = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<DeviceView> = Vec::new();
        for (site, devs) in map.iter() {
            for (device, slot) in devs {
                let st = slot.lock();
                let Some(st) = &st.row else { continue };
                let presence = self.presence(st, now_ms);
                out.push(DeviceView {
                    site: site.to_string(),
                    device: device.to_string(),
                    source: st.source,
                    presence,
                    online: presence == Presence::Online,
                    first_seen_ms: st.first_seen_ms,
                    last_seen_ms: st.last_seen_ms,
                    messages: st.messages,
                    lost: st.lost,
                    duplicates: st.duplicates,
                    clock_replaced: st.clock_replaced,
                    // Native firmware says `battery_pct`; mapped sensors often `battery`.
                    battery: st
                        .last_values
                        .get("battery")
                        .or_else(|| st.last_values.get("battery_pct"))
                        .and_then(|v| v.value.as_f64()),
                    last_values: st
                        .last_values
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                });
            }
        }
        out.sort_by(|a, b| (&a.site, &a.device).cmp(&(&b.site, &b.device)));
        out
    }

    /// [`DeviceTable::counts`] for the gauges: counted again once `GAUGE_REFRESH_MS` have
    /// passed since the last count (or the clock went back), else the last count.
    pub(crate) fn gauge_counts(&self, now_ms: i64) -> (i64, i64) {
        let mut last = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, counts)) = *last
            && (0..GAUGE_REFRESH_MS).contains(&now_ms.saturating_sub(at))
        {
            return counts;
        }
        let counts = self.counts(now_ms);
        *last = Some((now_ms, counts));
        counts
    }

    /// (known, online) counts.
    pub(crate) fn counts(&self, now_ms: i64) -> (i64, i64) {
        let map = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut known = 0;
        let mut online = 0;
        for slot in map.values().flat_map(|d| d.values()) {
            let st = slot.lock();
            let Some(st) = &st.row else { continue };
            known += 1;
            if self.presence(st, now_ms) == Presence::Online {
                online += 1;
            }
        }
        (known, online)
    }
}

/// Reads the dashboard history of the devices in a [`DeviceTable`] (here rather than in
/// `history`, which the table's slots hold: no module cycle).
pub struct ReadingHistory<'a> {
    table: &'a DeviceTable,
}

impl<'a> ReadingHistory<'a> {
    pub(crate) fn new(table: &'a DeviceTable) -> ReadingHistory<'a> {
        ReadingHistory { table }
    }

    /// Points newer than `since_ms` per metric (all metrics, or only `metric`); `None` for a
    /// device that never sent a reading other than a presence statement.
    pub(crate) fn series(
        &self,
        site: &str,
        device: &str,
        metric: Option<&str>,
        since_ms: i64,
    ) -> Option<BTreeMap<String, Series>> {
        self.table
            .with_rings(site, device, |rings| rings.series(metric, since_ms))
    }

    /// Events newer than `since_ms`, oldest first.
    pub(crate) fn events(
        &self,
        site: &str,
        device: &str,
        since_ms: i64,
    ) -> Option<Vec<EventRecord>> {
        self.table
            .with_rings(site, device, |rings| rings.events(since_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{Quality, Source};

    fn r(stream: &str, metric: &str, value: Value, at: i64) -> Reading {
        Reading {
            site: "s1".into(),
            device: "d1".into(),
            stream: stream.into(),
            metric: metric.into(),
            value,
            unit: Name::default(),
            device_time_ms: at,
            received_time_ms: at,
            source: Source::Mqtt,
            sequence: None,
            quality: Quality::default(),
        }
    }

    #[test]
    fn presence_follows_state_data_and_silence() {
        let t = DeviceTable::new(1_000);
        t.observe(&[r("grease_trap", "level", Value::Float(3.0), 100)]);
        assert_eq!(t.snapshot(200)[0].presence, Presence::Online);
        assert_eq!(t.snapshot(2_000)[0].presence, Presence::Silent);
        // Last will says offline.
        t.observe(&[r(STATE_STREAM, "online", Value::Bool(false), 300)]);
        assert_eq!(t.snapshot(400)[0].presence, Presence::Offline);
        // Data after the last will proves it is back.
        t.observe(&[r("grease_trap", "battery", Value::Float(80.0), 500)]);
        let v = &t.snapshot(600)[0];
        assert_eq!(v.presence, Presence::Online);
        assert_eq!(v.battery, Some(80.0));
        assert_eq!(v.messages, 3);
        assert_eq!(v.last_values.len(), 2);
        assert_eq!(t.counts(600), (1, 1));
    }

    /// A slot made for a message that was never stored lists no device; its sequence window
    /// is the device's own (found again by equal text), and a forgotten number is taken again.
    #[test]
    fn a_slot_lists_its_device_only_once_something_is_stored() {
        let t = DeviceTable::new(1_000);
        let (s, d) = (Name::from("s1"), Name::from("d1"));
        let slot = t.slot(&s, &d);
        assert_eq!(slot.check_sequence(5), SeqVerdict::New { lost: 0 });
        assert!(t.snapshot(0).is_empty());
        assert_eq!(t.counts(0), (0, 0));
        assert!(t.history().series("s1", "d1", None, 0).is_none());
        let again = t.slot(&Name::from("s1"), &Name::from("d1"));
        assert!(Arc::ptr_eq(&slot, &again));
        assert_eq!(again.check_sequence(5), SeqVerdict::Duplicate);
        slot.forget_sequence(5);
        assert_eq!(slot.check_sequence(5), SeqVerdict::Late);
        assert_eq!(
            t.slot(&s, &Name::from("d2")).check_sequence(5),
            SeqVerdict::New { lost: 0 },
            "another device has its own window"
        );
        slot.note_sequence(100, 3, true);
        let v = &t.snapshot(200)[0];
        assert_eq!(
            (v.device.as_str(), v.lost, v.duplicates, v.messages),
            ("d1", 3, 1, 0)
        );
        assert_eq!(t.counts(200), (1, 1), "d2 was never stored");
        // A presence statement lists the device without giving it a history.
        t.observe(&[Reading {
            device: "d3".into(),
            ..r(STATE_STREAM, "online", Value::Bool(true), 300)
        }]);
        assert_eq!(t.counts(400), (2, 2));
        assert!(t.history().series("s1", "d3", None, 0).is_none());
        // The gauges count again after a second (or when the clock went back), not before.
        assert_eq!(t.gauge_counts(400), (2, 2));
        t.observe(&[r("grease_trap", "level", Value::Float(1.0), 450)]);
        t.observe(&[Reading {
            device: "d4".into(),
            ..r("grease_trap", "level", Value::Float(1.0), 450)
        }]);
        assert_eq!(t.gauge_counts(1_399), (2, 2));
        // d3, last heard at 300, is silent by 1,400.
        assert_eq!(t.gauge_counts(1_400), (3, 2));
        assert_eq!(
            t.gauge_counts(1_300),
            (3, 3),
            "the clock went back: counted again"
        );
        // Many at once: known and new devices, and a message without readings.
        let (known, new) = (
            r("x", "level", Value::Float(1.0), 1),
            Reading {
                device: "d4".into(),
                ..r("x", "level", Value::Float(1.0), 1)
            },
        );
        let many = t.slots([Some(&known), None, Some(&new), Some(&new)].into_iter());
        assert_eq!(many.len(), 4);
        assert!(many[0].as_ref().is_some_and(|m| Arc::ptr_eq(m, &slot)));
        assert!(many[1].is_none());
        let made = t.slot(&new.site, &new.device);
        assert!(
            many[2..]
                .iter()
                .all(|m| m.as_ref().is_some_and(|m| Arc::ptr_eq(m, &made)))
        );
        slot.observe(&[r("grease_trap", "level", Value::Float(1.0), 300)], 10);
        assert_eq!(
            t.history().series("s1", "d1", None, 0).map(|s| s.len()),
            Some(1)
        );
    }

    #[test]
    fn battery_is_read_from_battery_pct_too() {
        let t = DeviceTable::new(1_000);
        t.observe(&[r("grease_trap", "battery_pct", Value::Int(77), 100)]);
        assert_eq!(t.snapshot(200)[0].battery, Some(77.0));
        assert_eq!(
            t.history().series("s1", "d1", None, 0).expect("kept")["battery_pct"].points,
            vec![(100, 77.0)]
        );
    }

    #[test]
    fn older_values_do_not_replace_newer_ones() {
        let t = DeviceTable::new(1_000);
        t.observe(&[r("x", "level", Value::Float(2.0), 500)]);
        t.observe(&[r("x", "level", Value::Float(1.0), 400)]);
        assert_eq!(
            t.snapshot(600)[0].last_values["level"].value,
            Value::Float(2.0)
        );
    }
}
