//! The live device table: last seen, last values, presence. Served at `GET /api/v1/devices`.
//!
//! Presence combines what the device says (retained `state` topic and its last will, or a Modbus
//! poller's online/offline) with silence: a device that has said nothing for `offline_after`
//! is offline whatever it last claimed.

use crate::decode::native::STATE_STREAM;
use crate::reading::{ByMetric, Name, Reading, Value};
use serde::Serialize;
use std::collections::BTreeMap;
/// foldhash, not SipHash: looked up once per message on the intake path (issue 24).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::RwLock;

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

/// Shared, internally locked; updates are short.
pub struct DeviceTable {
    offline_after_ms: i64,
    devices: RwLock<HashMap<String, HashMap<String, DeviceState>>>,
    /// Recent values and events per device, for the dashboard's charts.
    history: crate::history::ReadingHistory,
}

impl DeviceTable {
    pub(crate) fn new(offline_after_ms: i64) -> DeviceTable {
        DeviceTable {
            offline_after_ms,
            devices: RwLock::new(HashMap::default()),
            history: crate::history::ReadingHistory::default(),
        }
    }

    /// Keeps `points` recent values per metric for the dashboard (0: none).
    pub(crate) fn with_history_points(mut self, points: usize) -> DeviceTable {
        self.history = crate::history::ReadingHistory::new(points);
        self
    }

    /// Recent readings and events per device (bounded, in memory).
    pub(crate) fn history(&self) -> &crate::history::ReadingHistory {
        &self.history
    }

    fn with_device<R>(
        &self,
        site: &str,
        device: &str,
        source: &'static str,
        at_ms: i64,
        f: impl FnOnce(&mut DeviceState) -> R,
    ) -> R {
        // A poisoned lock only means another thread panicked mid-update of plain data;
        // the table is still usable, so take it rather than propagate the panic.
        let mut map = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let devs = match map.get_mut(site) {
            Some(d) => d,
            None => map.entry(site.to_string()).or_default(),
        };
        let st = match devs.get_mut(device) {
            Some(s) => s,
            None => devs.entry(device.to_string()).or_insert(DeviceState {
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
            }),
        };
        f(st)
    }

    /// Records one message's readings (all from one device).
    pub(crate) fn observe(&self, readings: &[Reading]) {
        let Some(first) = readings.first() else {
            return;
        };
        self.history.observe(readings);
        let at = first.received_time_ms;
        self.with_device(
            &first.site,
            &first.device,
            first.source.as_str(),
            at,
            |st| {
                st.messages += 1;
                st.last_seen_ms = st.last_seen_ms.max(at);
                for r in readings {
                    if r.quality.clock_replaced {
                        st.clock_replaced += 1;
                    }
                    if r.stream == STATE_STREAM && r.metric == "online" {
                        if let Value::Bool(b) = r.value {
                            st.stated = Some((b, at));
                        }
                        continue;
                    }
                    st.last_data_ms = Some(at);
                    // Updated in place: no allocation per reading once a metric is known.
                    if let Some(last) = st.last_values.get_mut(&r.metric) {
                        if last.device_time_ms <= r.device_time_ms {
                            last.stream.clone_from(&r.stream);
                            last.value.clone_from(&r.value);
                            last.unit.clone_from(&r.unit);
                            last.device_time_ms = r.device_time_ms;
                        }
                    } else {
                        st.last_values.insert(
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
            },
        );
    }

    /// Adds sequence-number findings for a device.
    pub(crate) fn note_sequence(
        &self,
        site: &str,
        device: &str,
        at_ms: i64,
        lost: u64,
        duplicate: bool,
    ) {
        self.with_device(site, device, "mqtt", at_ms, |st| {
            st.lost += lost;
            if duplicate {
                st.duplicates += 1;
            }
        });
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
        let map = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<DeviceView> = map
            .iter()
            .flat_map(|(site, devs)| devs.iter().map(move |(device, st)| (site, device, st)))
            .map(|(site, device, st)| {
                let presence = self.presence(st, now_ms);
                DeviceView {
                    site: site.clone(),
                    device: device.clone(),
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
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.site, &a.device).cmp(&(&b.site, &b.device)));
        out
    }

    /// (known, online) counts for the gauges.
    pub(crate) fn counts(&self, now_ms: i64) -> (i64, i64) {
        let map = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let mut known = 0;
        let mut online = 0;
        for st in map.values().flat_map(|d| d.values()) {
            known += 1;
            if self.presence(st, now_ms) == Presence::Online {
                online += 1;
            }
        }
        (known, online)
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
