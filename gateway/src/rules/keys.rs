//! Map keys of the engine's per-series and per-(rule, subject) state, looked up from a
//! reading's borrowed strings without allocating.
//!
//! Every reading goes through these maps, and building an owned key per lookup (six `String`
//! clones per reading with the default rules) was most of the rules' cost on the ingest path.
//! The owned keys implement `Borrow<dyn ...View>`, so `HashMap::get` accepts a borrowed view;
//! both sides hash and compare the same parts, which is what `Borrow` requires.

use crate::reading::Reading;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The engine's per-reading maps. foldhash instead of std's SipHash: these are hashed several
/// times per reading and SipHash was the largest single cost left once keys stopped being
/// allocated. foldhash is still seeded per map, so crafted ids cannot force collisions cheaply.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The parts of a series key (one metric of one device's stream).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesParts {
    pub site: String,
    pub device: String,
    pub stream: String,
    pub metric: String,
}

/// A series, shared cheaply (an `Arc`) by the state of every rule that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesKey(Arc<SeriesParts>);

impl SeriesKey {
    pub fn of(r: &Reading) -> Self {
        SeriesKey(Arc::new(SeriesParts {
            site: r.site.clone(),
            device: r.device.clone(),
            stream: r.stream.clone(),
            metric: r.metric.clone(),
        }))
    }
}

impl std::ops::Deref for SeriesKey {
    type Target = SeriesParts;
    fn deref(&self) -> &SeriesParts {
        &self.0
    }
}

/// Anything that names a series: an owned key or a reading.
pub trait SeriesView {
    fn parts(&self) -> [&str; 4];
}

impl SeriesView for SeriesKey {
    fn parts(&self) -> [&str; 4] {
        [&self.site, &self.device, &self.stream, &self.metric]
    }
}

impl SeriesView for Reading {
    fn parts(&self) -> [&str; 4] {
        [&self.site, &self.device, &self.stream, &self.metric]
    }
}

impl Hash for dyn SeriesView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn SeriesView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn SeriesView + '_ {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn SeriesView).hash(h);
    }
}

impl<'a> Borrow<dyn SeriesView + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn SeriesView + 'a) {
        self
    }
}

/// State of one rule for one subject (site, device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateKey {
    pub rule: usize,
    pub site: String,
    pub device: String,
}

/// A borrowed [`StateKey`].
#[derive(Debug, Clone, Copy)]
pub struct StateRef<'a> {
    pub rule: usize,
    pub site: &'a str,
    pub device: &'a str,
}

impl StateRef<'_> {
    pub fn to_owned(self) -> StateKey {
        StateKey {
            rule: self.rule,
            site: self.site.to_string(),
            device: self.device.to_string(),
        }
    }
}

pub trait StateView {
    fn parts(&self) -> (usize, &str, &str);
}

impl StateView for StateKey {
    fn parts(&self) -> (usize, &str, &str) {
        (self.rule, &self.site, &self.device)
    }
}

impl StateView for StateRef<'_> {
    fn parts(&self) -> (usize, &str, &str) {
        (self.rule, self.site, self.device)
    }
}

impl Hash for dyn StateView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn StateView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn StateView + '_ {}

impl Hash for StateKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn StateView).hash(h);
    }
}

impl<'a> Borrow<dyn StateView + 'a> for StateKey {
    fn borrow(&self) -> &(dyn StateView + 'a) {
        self
    }
}

/// The entry of `key` in `map`, inserting a default one (allocating the owned key) only when
/// it is missing.
pub fn state_entry<'m, V: Default, S: std::hash::BuildHasher>(
    map: &'m mut std::collections::HashMap<StateKey, V, S>,
    key: StateRef<'_>,
) -> &'m mut V {
    if !map.contains_key(&key as &dyn StateView) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(&key as &dyn StateView)
        .expect("inserted just above")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn borrowed_views_find_owned_keys() {
        let mut states: HashMap<StateKey, u32> = HashMap::new();
        let k = StateRef {
            rule: 3,
            site: "r-1",
            device: "trap-1",
        };
        *state_entry(&mut states, k) += 1;
        *state_entry(&mut states, k) += 1;
        *state_entry(&mut states, StateRef { rule: 4, ..k }) += 1;
        assert_eq!(states.len(), 2);
        assert_eq!(states.get(&k as &dyn StateView), Some(&2));
        // Parts that concatenate alike are still different keys.
        let a = StateRef {
            rule: 1,
            site: "ab",
            device: "c",
        };
        let b = StateRef {
            rule: 1,
            site: "a",
            device: "bc",
        };
        *state_entry(&mut states, a) += 1;
        assert_eq!(states.get(&b as &dyn StateView), None);

        let r = Reading {
            site: "r-1".into(),
            device: "trap-1".into(),
            stream: "grease_trap".into(),
            metric: "level".into(),
            value: crate::reading::Value::Float(1.0),
            unit: String::new(),
            device_time_ms: 0,
            received_time_ms: 0,
            source: crate::reading::Source::Mqtt,
            sequence: None,
            quality: Default::default(),
        };
        let mut series: HashMap<SeriesKey, u32> = HashMap::new();
        series.insert(SeriesKey::of(&r), 7);
        assert_eq!(series.get(&r as &dyn SeriesView), Some(&7));
        let other = Reading {
            metric: "battery".into(),
            ..r
        };
        assert_eq!(series.get(&other as &dyn SeriesView), None);
    }
}
