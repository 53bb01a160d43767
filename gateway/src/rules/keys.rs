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

/// The subject of rule states: one device of one site, shared (an `Arc`) by the states of
/// every rule about it. Before, each state owned its own two strings: with ten thousand
/// devices and six rules each, 120,000 small allocations (issue 24, memory per device).
#[derive(Debug, PartialEq, Eq)]
pub struct SubjectParts {
    pub site: String,
    pub device: String,
}

type Subject = Arc<SubjectParts>;

/// State of one rule for one subject (site, device). Stored as `{rule, site, device}`, as
/// before the subject was shared, so snapshots keep loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKey {
    pub rule: usize,
    subject: Subject,
}

impl StateKey {
    /// The same subject under another rule (a reload renumbered the rules).
    pub fn with_rule(&self, rule: usize) -> StateKey {
        StateKey {
            rule,
            subject: self.subject.clone(),
        }
    }
}

impl std::ops::Deref for StateKey {
    type Target = SubjectParts;
    fn deref(&self) -> &SubjectParts {
        &self.subject
    }
}

#[derive(Serialize, Deserialize)]
struct StoredStateKey<'a> {
    rule: usize,
    #[serde(borrow)]
    site: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    device: std::borrow::Cow<'a, str>,
}

impl Serialize for StateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredStateKey {
            rule: self.rule,
            site: self.site.as_str().into(),
            device: self.device.as_str().into(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for StateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = StoredStateKey::deserialize(d)?;
        Ok(StateKey {
            rule: k.rule,
            subject: Arc::new(SubjectParts {
                site: k.site.into_owned(),
                device: k.device.into_owned(),
            }),
        })
    }
}

/// A borrowed [`StateKey`].
#[derive(Debug, Clone, Copy)]
pub struct StateRef<'a> {
    pub rule: usize,
    pub site: &'a str,
    pub device: &'a str,
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

/// The subjects' set: an interned subject, hashed and compared by its strings so it can be
/// found from a reading's borrowed ones.
#[derive(Debug)]
struct Interned(Subject);

trait SubjectView {
    fn parts(&self) -> (&str, &str);
}

impl SubjectView for Interned {
    fn parts(&self) -> (&str, &str) {
        (&self.0.site, &self.0.device)
    }
}

impl SubjectView for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl Hash for dyn SubjectView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn SubjectView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn SubjectView + '_ {}

impl Hash for Interned {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn SubjectView).hash(h);
    }
}

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Interned {}

impl<'a> Borrow<dyn SubjectView + 'a> for Interned {
    fn borrow(&self) -> &(dyn SubjectView + 'a) {
        self
    }
}

/// Per-(rule, subject) state with the subjects interned: every state of one device shares
/// one `Arc` of its site and device, allocated when the device's first state is.
#[derive(Debug)]
pub struct StateMap<V> {
    map: FastMap<StateKey, V>,
    /// The shared subjects, one per (site, device).
    subjects: std::collections::HashSet<Interned, foldhash::fast::RandomState>,
}

impl<V> Default for StateMap<V> {
    fn default() -> Self {
        StateMap {
            map: FastMap::default(),
            subjects: Default::default(),
        }
    }
}

impl<V> StateMap<V> {
    pub fn get(&self, key: StateRef<'_>) -> Option<&V> {
        self.map.get(&key as &dyn StateView)
    }

    pub fn get_mut(&mut self, key: StateRef<'_>) -> Option<&mut V> {
        self.map.get_mut(&key as &dyn StateView)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&StateKey, &V)> {
        self.map.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&StateKey, &mut V)> {
        self.map.iter_mut()
    }

    /// Every state, taken out (the subjects go with them).
    pub fn drain(&mut self) -> impl Iterator<Item = (StateKey, V)> + '_ {
        self.subjects.clear();
        self.map.drain()
    }

    /// The shared subject of `site`/`device`, made on first use.
    fn subject(&mut self, site: &str, device: &str) -> Subject {
        if let Some(i) = self.subjects.get(&(site, device) as &dyn SubjectView) {
            return i.0.clone();
        }
        let subject = Arc::new(SubjectParts {
            site: site.to_string(),
            device: device.to_string(),
        });
        self.subjects.insert(Interned(subject.clone()));
        subject
    }

    /// Puts `v` under `key`, its subject shared with the device's other states.
    pub fn insert(&mut self, key: StateKey, v: V) {
        let subject = self.subject(&key.site, &key.device);
        self.map.insert(
            StateKey {
                rule: key.rule,
                subject,
            },
            v,
        );
    }
}

impl<V: Default> StateMap<V> {
    /// The entry of `key`, inserting a default one (sharing the subject) only when missing.
    pub fn entry(&mut self, key: StateRef<'_>) -> &mut V {
        if !self.map.contains_key(&key as &dyn StateView) {
            let subject = self.subject(key.site, key.device);
            self.map.insert(
                StateKey {
                    rule: key.rule,
                    subject,
                },
                V::default(),
            );
        }
        self.map
            .get_mut(&key as &dyn StateView)
            .expect("inserted just above")
    }
}

impl<V> FromIterator<(StateKey, V)> for StateMap<V> {
    fn from_iter<I: IntoIterator<Item = (StateKey, V)>>(it: I) -> Self {
        let mut m = StateMap::default();
        for (k, v) in it {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn borrowed_views_find_owned_keys() {
        let mut states: StateMap<u32> = StateMap::default();
        let k = StateRef {
            rule: 3,
            site: "r-1",
            device: "trap-1",
        };
        *states.entry(k) += 1;
        *states.entry(k) += 1;
        *states.entry(StateRef { rule: 4, ..k }) += 1;
        assert_eq!(states.map.len(), 2);
        assert_eq!(states.get(k), Some(&2));
        // Both states of the device share one subject.
        assert_eq!(states.subjects.len(), 1);
        let shared: Vec<&StateKey> = states.iter().map(|(k, _)| k).collect();
        assert!(Arc::ptr_eq(&shared[0].subject, &shared[1].subject));
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
        *states.entry(a) += 1;
        assert_eq!(states.get(b), None);
        assert_eq!(states.subjects.len(), 2);
        // The stored form is the one snapshots had: rule, site, device.
        let json = serde_json::to_string(&states.iter().map(|(k, _)| k).find(|k| k.site == "ab"))
            .expect("json");
        assert_eq!(json, r#"{"rule":1,"site":"ab","device":"c"}"#);
        let back: StateKey = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.parts(), (1, "ab", "c"));

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
