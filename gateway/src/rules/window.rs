//! Per-series ring of recent readings: evidence around a trigger, rate of change, flat-line.
//!
//! Bounded by age (relative to the newest reading) and by count, so a chatty sensor cannot
//! grow memory. Late readings are inserted in time order; exact duplicates are dropped.

use crate::reading::Value;
use std::collections::VecDeque;

/// What [`Window::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// At or after the newest reading: rules evaluate it.
    Appended,
    /// Older than the newest reading: kept as evidence, not evaluated (state moved on).
    Late,
    /// Same time and value as a reading already held (a redelivery): ignored.
    Duplicate,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Window {
    entries: VecDeque<(i64, Value)>,
    retention_ms: i64,
    max_len: usize,
}

impl Window {
    pub fn new(retention_ms: i64, max_len: usize) -> Self {
        Window {
            entries: VecDeque::new(),
            retention_ms,
            max_len: max_len.max(1),
        }
    }

    pub fn push(&mut self, t: i64, v: &Value) -> Push {
        let newest = self.entries.back().map(|(nt, _)| *nt);
        let result = match newest {
            Some(n) if t <= n => {
                let idx = self.entries.partition_point(|(et, _)| *et < t);
                let dup = self
                    .entries
                    .range(idx..)
                    .take_while(|(et, _)| *et == t)
                    .any(|(_, ev)| ev == v);
                if dup {
                    return Push::Duplicate;
                }
                if t == n {
                    self.entries.push_back((t, v.clone()));
                    Push::Appended
                } else {
                    self.entries.insert(idx, (t, v.clone()));
                    Push::Late
                }
            }
            _ => {
                self.entries.push_back((t, v.clone()));
                Push::Appended
            }
        };
        let newest = newest.map_or(t, |n| n.max(t));
        let cutoff = newest.saturating_sub(self.retention_ms);
        while self.entries.front().is_some_and(|(et, _)| *et < cutoff)
            || self.entries.len() > self.max_len
        {
            self.entries.pop_front();
        }
        result
    }

    /// Readings with `from <= t <= to`, oldest first.
    pub fn range(&self, from: i64, to: i64) -> impl Iterator<Item = &(i64, Value)> {
        let start = self.entries.partition_point(|(t, _)| *t < from);
        self.entries
            .range(start..)
            .take_while(move |(t, _)| *t <= to)
    }

    /// Readings with `from <= t <= to` plus up to `before` readings just older than `from`
    /// (when the window still holds them), oldest first. A series whose device went quiet
    /// (a link outage, a lost report) still shows what it read last before `from`: a change
    /// across such a gap is a change between consecutive readings, however long the gap.
    pub fn range_with_previous(
        &self,
        from: i64,
        to: i64,
        before: usize,
    ) -> impl Iterator<Item = &(i64, Value)> {
        let start = self.entries.partition_point(|(t, _)| *t < from);
        self.entries
            .range(start.saturating_sub(before)..)
            .take_while(move |(t, _)| *t <= to)
    }

    /// Readings with `t <= to`, newest first.
    pub fn newest_first(&self, to: i64) -> impl Iterator<Item = &(i64, Value)> {
        let end = self.entries.partition_point(|(t, _)| *t <= to);
        self.entries.range(..end).rev()
    }

    pub fn newest_t(&self) -> Option<i64> {
        self.entries.back().map(|(t, _)| *t)
    }

    pub fn oldest_t(&self) -> Option<i64> {
        self.entries.front().map(|(t, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_window_orders_late_readings_and_drops_duplicates() {
        let mut w = Window::new(1_000, 10);
        assert_eq!(w.push(100, &Value::Int(1)), Push::Appended);
        assert_eq!(w.push(300, &Value::Int(3)), Push::Appended);
        assert_eq!(w.push(200, &Value::Int(2)), Push::Late);
        assert_eq!(w.push(300, &Value::Int(3)), Push::Duplicate);
        let ts: Vec<i64> = w.range(0, 1_000).map(|(t, _)| *t).collect();
        assert_eq!(ts, vec![100, 200, 300]);
        w.push(1_250, &Value::Int(4));
        assert_eq!(w.oldest_t(), Some(300));
    }

    #[test]
    fn range_with_previous_reaches_back_over_a_gap() {
        let mut w = Window::new(i64::MAX, 10);
        for t in [0, 100, 200, 5_000, 5_100] {
            w.push(t, &Value::Int(t));
        }
        let ts = |n| {
            w.range_with_previous(4_000, 6_000, n)
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
        };
        assert_eq!(ts(0), vec![5_000, 5_100]);
        assert_eq!(ts(2), vec![100, 200, 5_000, 5_100]);
        assert_eq!(ts(9), vec![0, 100, 200, 5_000, 5_100]);
    }

    #[test]
    fn rules_window_is_bounded_by_count() {
        let mut w = Window::new(i64::MAX, 3);
        for t in 0..10 {
            w.push(t, &Value::Int(t));
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.oldest_t(), Some(7));
    }
}
