//! Recent readings per device, kept in memory for the dashboard's charts.
//!
//! The time-series database holds the full history; this is a small bounded ring per
//! (site, device, metric) so the dashboard can draw "the last hours" without one, and a ring of
//! the device's events (alarms such as `level_drop`, the trap's pump-outs and discharges).
//! Memory is bounded: `points_per_metric` numbers per metric (`[dashboard] history_points`,
//! coded as changes in small blocks, [`ring`]: a steady device with a few decimals takes 1-4
//! bytes a point, no series more than about 17), `EVENTS_PER_DEVICE` events per device,
//! `MAX_METRICS_PER_DEVICE` metrics per device (a misbehaving device inventing metric names
//! cannot grow it without limit). A large fleet may still lower `history_points` (0 keeps no
//! readings, only events).

use crate::reading::EVENT_STREAM;
use crate::reading::{ByMetric, Name, Reading, Value};
use ring::Ring;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

mod codec;
mod ring;

/// Default points kept per metric (a reading a minute is 6 hours).
pub(crate) const DEFAULT_POINTS_PER_METRIC: usize = 360;
/// Events kept per device.
pub(crate) const EVENTS_PER_DEVICE: usize = 200;
/// Metrics kept per device; further names are ignored.
pub(crate) const MAX_METRICS_PER_DEVICE: usize = 16;

/// One metric's recent points, oldest first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Series {
    pub stream: String,
    pub unit: String,
    /// `[device_time_ms, value]` pairs.
    pub points: Vec<(i64, f64)>,
}

/// One device event (alarm or recovery).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct EventRecord {
    pub at_ms: i64,
    pub name: String,
    pub phase: Option<String>,
    pub severity: Option<String>,
    pub value: Option<f64>,
    pub message: Option<String>,
}

/// One metric's ring with the stream and unit it was last seen with (shared with the
/// readings: no copy per device).
struct MetricRing {
    stream: Name,
    unit: Name,
    points: Ring,
}

/// One device's history: its metrics' rings and its events. Kept in the device's slot of the
/// device table (`devices::DeviceTable`), so a message reaches it without a lookup of its own (issue 24).
#[derive(Default)]
pub(crate) struct DeviceRings {
    metrics: ByMetric<MetricRing>,
    events: VecDeque<EventRecord>,
}

impl DeviceRings {
    /// Prefetch hint for the metrics' rings (see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self) {
        self.metrics.prefetch();
    }

    /// Prefetch hint for where the rings write next; the rings should be in cache by then
    /// ([`DeviceRings::prefetch`] a little earlier).
    pub(crate) fn prefetch_blocks(&self) {
        for m in self.metrics.values() {
            m.points.prefetch();
        }
    }

    /// Records one message's readings (all from this device, none a presence statement);
    /// keeps up to `points_per_metric` points per metric (0: events only).
    pub(crate) fn observe(&mut self, readings: &[Reading], points_per_metric: usize) {
        let Some(first) = readings.first() else {
            return;
        };
        if first.stream == EVENT_STREAM {
            self.push_event(readings);
            return;
        }
        if points_per_metric == 0 {
            return;
        }
        for r in readings {
            let Some(v) = r.value.as_f64() else { continue };
            let ring = match self.metrics.get_mut_name(&r.metric) {
                Some(ring) => ring,
                None => {
                    if self.metrics.len() >= MAX_METRICS_PER_DEVICE {
                        continue;
                    }
                    self.metrics.insert(
                        r.metric.clone(),
                        MetricRing {
                            stream: r.stream.clone(),
                            unit: r.unit.clone(),
                            points: Ring::default(),
                        },
                    );
                    let Some(ring) = self.metrics.get_mut_name(&r.metric) else {
                        continue;
                    };
                    ring
                }
            };
            ring.stream.clone_from(&r.stream);
            ring.unit.clone_from(&r.unit);
            ring.points.insert(r.device_time_ms, v, points_per_metric);
            if ring.points.len() > points_per_metric {
                ring.points.pop_front();
            }
        }
    }

    pub(crate) fn series(&self, metric: Option<&str>, since_ms: i64) -> BTreeMap<String, Series> {
        self.metrics
            .iter()
            .filter(|(name, _)| metric.is_none_or(|m| m == name.as_str()))
            .map(|(name, ring)| {
                let points = ring.points.iter().filter(|(t, _)| *t > since_ms).collect();
                (
                    name.to_string(),
                    Series {
                        stream: ring.stream.to_string(),
                        unit: ring.unit.to_string(),
                        points,
                    },
                )
            })
            .collect()
    }

    pub(crate) fn events(&self, since_ms: i64) -> Vec<EventRecord> {
        self.events
            .iter()
            .filter(|e| e.at_ms > since_ms)
            .cloned()
            .collect()
    }
}

impl DeviceRings {
    /// Bytes held for the metrics' points (tests bound the memory per device with it).
    #[cfg(test)]
    fn point_bytes(&self) -> usize {
        self.metrics
            .iter()
            .map(|(_, m)| m.points.bytes_held())
            .sum()
    }

    fn push_event(&mut self, readings: &[Reading]) {
        let text = |m: &str| {
            readings
                .iter()
                .find(|r| r.metric == m)
                .and_then(|r| match &r.value {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                })
        };
        let Some(name) = text("name") else { return };
        let ev = EventRecord {
            at_ms: readings[0].device_time_ms,
            name,
            phase: text("phase"),
            severity: text("severity"),
            value: readings
                .iter()
                .find(|r| r.metric == "value")
                .and_then(|r| r.value.as_f64()),
            message: text("message"),
        };
        let pos = self.events.partition_point(|e| e.at_ms <= ev.at_ms);
        self.events.insert(pos, ev);
        if self.events.len() > EVENTS_PER_DEVICE {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceTable;
    use crate::reading::STATE_STREAM;
    use crate::reading::{Quality, Source};

    /// A table keeping `points` per metric; its history answers the dashboard.
    fn table(points: usize) -> DeviceTable {
        DeviceTable::new(60_000).with_history_points(points)
    }

    fn r(stream: &str, metric: &str, value: Value, at: i64) -> Reading {
        Reading {
            site: "s1".into(),
            device: "d1".into(),
            stream: stream.into(),
            metric: metric.into(),
            value,
            unit: "mm".into(),
            device_time_ms: at,
            received_time_ms: at,
            source: Source::Mqtt,
            sequence: None,
            quality: Quality::default(),
        }
    }

    #[test]
    fn rings_are_bounded_ordered_and_filtered() {
        let t = table(50);
        let h = t.history();
        for i in 0..60 {
            t.observe(&[r("grease_trap", "level", Value::Float(i as f64), 1000 + i)]);
        }
        // A late replay lands in order.
        t.observe(&[r("grease_trap", "level", Value::Int(-1), 1055)]);
        let s = h.series("s1", "d1", None, 0).expect("device known");
        let pts = &s["level"].points;
        assert_eq!(pts.len(), 50);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0), "ordered by time");
        assert_eq!(s["level"].unit, "mm");
        assert!(pts.contains(&(1055, -1.0)), "the replay is kept");
        let recent = h.series("s1", "d1", Some("level"), 1050).expect("known");
        assert_eq!(recent["level"].points.len(), 10);
        assert!(
            h.series("s1", "d1", Some("other"), 0)
                .expect("known")
                .is_empty()
        );
        assert!(h.series("s1", "nope", None, 0).is_none());
    }

    /// A full ring answers with exactly `limit` points, in order, and codes at most one block
    /// (a quarter of `limit`, 4 to 64 points) of hidden ones beyond them.
    #[test]
    fn full_rings_hold_at_most_a_block_of_hidden_points() {
        for limit in [1, 3, 4, 50, 64, 360] {
            let t = table(limit);
            for i in 0..(limit as i64 * 3 + 5) {
                t.observe(&[r("grease_trap", "level", Value::Float(i as f64), 1000 + i)]);
                // A late replay goes through the insert path too.
                if i % 7 == 3 {
                    t.observe(&[r("grease_trap", "level", Value::Float(-1.0), 1000 + i - 2)]);
                }
            }
            t.with_rings("s1", "d1", |rings| {
                let ring = &rings.metrics.get("level").expect("kept").points;
                assert_eq!(ring.len(), limit);
                let block = (limit / 4).clamp(4, 64);
                assert!(
                    ring.points_held() < limit + block,
                    "limit {limit}: {} points held",
                    ring.points_held()
                );
                assert!(
                    ring.iter()
                        .zip(ring.iter().skip(1))
                        .all(|(a, b)| a.0 <= b.0)
                );
            })
            .expect("kept");
        }
    }

    /// The memory-per-device check of issue 24 (10,000 devices): a device sending a level with
    /// a decimal and a steady battery once a minute holds at most 3 bytes a point and metric
    /// plus 256 bytes of blocks, at 20, 100 and 360 (the default) readings a metric. Points
    /// of 12 bytes held 2,688 bytes at 100 readings and 8,664 at 360 (this allows 1,112 and
    /// 2,672).
    #[test]
    fn history_bytes_per_device_are_bounded() {
        for n in [20usize, 100, 360, 1000] {
            let t = table(DEFAULT_POINTS_PER_METRIC);
            for i in 0..n as i64 {
                let at = 1_700_000_000_000 + i * 60_000;
                t.observe(&[
                    r(
                        "grease_trap",
                        "level",
                        Value::Float((i % 100) as f64 + 0.5),
                        at,
                    ),
                    r("grease_trap", "battery", Value::Int(90), at),
                ]);
            }
            let bytes = t
                .with_rings("s1", "d1", |rings| rings.point_bytes())
                .expect("kept");
            let most = 2 * (3 * n.min(DEFAULT_POINTS_PER_METRIC) + 256);
            eprintln!("{n} readings: {bytes} bytes of history");
            assert!(bytes <= most, "{n} readings: {bytes} bytes, at most {most}");
        }
    }

    #[test]
    fn text_values_and_extra_metric_names_are_not_kept() {
        let t = table(DEFAULT_POINTS_PER_METRIC);
        let h = t.history();
        t.observe(&[r("x", "label", Value::Text("a".into()), 1)]);
        for i in 0..(MAX_METRICS_PER_DEVICE + 5) {
            t.observe(&[r("x", &format!("m{i}"), Value::Float(1.0), 2)]);
        }
        let s = h.series("s1", "d1", None, 0).expect("known");
        assert_eq!(s.len(), MAX_METRICS_PER_DEVICE);
        assert!(!s.contains_key("label"));
    }

    #[test]
    fn events_keep_name_phase_and_value() {
        let t = table(DEFAULT_POINTS_PER_METRIC);
        let h = t.history();
        t.observe(&[
            r(EVENT_STREAM, "name", Value::Text("level_drop".into()), 50),
            r(EVENT_STREAM, "phase", Value::Text("alarm".into()), 50),
            r(EVENT_STREAM, "value", Value::Float(120.0), 50),
        ]);
        t.observe(&[r(STATE_STREAM, "online", Value::Bool(true), 60)]);
        let ev = h.events("s1", "d1", 0).expect("known");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].name, "level_drop");
        assert_eq!(ev[0].phase.as_deref(), Some("alarm"));
        assert_eq!(ev[0].value, Some(120.0));
        assert!(h.series("s1", "d1", None, 0).expect("known").is_empty());
        let off = table(0);
        off.observe(&[r("x", "level", Value::Float(1.0), 1)]);
        assert!(
            off.history()
                .series("s1", "d1", None, 0)
                .expect("known")
                .is_empty()
        );
    }
}
