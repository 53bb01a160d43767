//! Map keys of the engine's per-series and per-(rule, subject) state, looked up from a
//! reading's borrowed strings without allocating.
//!
//! Every reading goes through these maps, and building an owned key per lookup (six `String`
//! clones per reading with the default rules) was most of the rules' cost on the ingest path.
//! The owned keys implement `Borrow<dyn ...View>`, so `HashMap::get` accepts a borrowed view;
//! both sides hash and compare the same parts, which is what `Borrow` requires.

use crate::reading::{Name, Reading};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The engine's per-reading maps. foldhash instead of std's SipHash: these are hashed several
/// times per reading and SipHash was the largest single cost left once keys stopped being
/// allocated. foldhash is still seeded per map, so crafted ids cannot force collisions cheaply.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The parts of a series key (one metric of one device's stream); shared with the readings
/// (a [`Name`] is reference counted), so a series costs no strings of its own.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SeriesParts {
    pub site: Name,
    pub device: Name,
    pub stream: Name,
    pub metric: Name,
}

/// A series, shared cheaply (an `Arc`) by the state of every rule that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SeriesKey(Arc<SeriesParts>);

impl SeriesKey {
    pub(crate) fn of(r: &Reading) -> Self {
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

/// Anything that names a series: an owned key or a reading. The parts are [`Name`]s, so a
/// reading finds its series by comparing four pointers when both share the interned names
/// (the usual case), and hashes as the four texts.
pub(crate) trait SeriesView {
    fn parts(&self) -> [&Name; 4];
}

impl SeriesView for SeriesKey {
    fn parts(&self) -> [&Name; 4] {
        [&self.site, &self.device, &self.stream, &self.metric]
    }
}

impl SeriesView for Reading {
    fn parts(&self) -> [&Name; 4] {
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

/// Series by key, each also reachable by a position that stays valid while the table lives
/// (series are only ever added; a restore builds a new table).
///
/// A reading's series is looked up once, from the reading's borrowed strings; the rules that
/// judge it then reach the window by position. Before, each of them looked the series up
/// again, hashing its four strings per rule (three rules per trap level reading with the
/// default rules; issue 24).
#[derive(Debug)]
pub(crate) struct SeriesTable<V> {
    index: FastMap<SeriesKey, usize>,
    list: Vec<V>,
}

impl<V> Default for SeriesTable<V> {
    fn default() -> Self {
        SeriesTable {
            index: FastMap::default(),
            list: Vec::new(),
        }
    }
}

impl<V> SeriesTable<V> {
    /// The position of the series a reading (or key) names.
    pub(crate) fn find(&self, series: &dyn SeriesView) -> Option<usize> {
        self.index.get(series).copied()
    }

    /// The series a key (or reading) names.
    pub(crate) fn get(&self, series: &dyn SeriesView) -> Option<&V> {
        self.find(series).map(|i| &self.list[i])
    }

    /// The series at `pos`, a position [`SeriesTable::find`] or [`SeriesTable::insert`]
    /// answered for this table.
    #[cfg(test)]
    pub(crate) fn at(&self, pos: usize) -> &V {
        &self.list[pos]
    }

    /// The series at `pos`, when there is one (prefetch hints from positions kept apart).
    pub(crate) fn get_at(&self, pos: usize) -> Option<&V> {
        self.list.get(pos)
    }

    pub(crate) fn at_mut(&mut self, pos: usize) -> &mut V {
        &mut self.list[pos]
    }

    /// Adds a series (replacing a series of the same key in place); answers its position.
    pub(crate) fn insert(&mut self, key: SeriesKey, v: V) -> usize {
        if let Some(&i) = self.index.get(&key) {
            self.list[i] = v;
            return i;
        }
        let i = self.list.len();
        self.list.push(v);
        self.index.insert(key, i);
        i
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Every series, for changing them all (a restore).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.list.iter_mut()
    }

    /// Every series with its key (in no particular order, as a hash map iterates).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SeriesKey, &V)> {
        self.index.iter().map(|(k, &i)| (k, &self.list[i]))
    }
}

impl<V> FromIterator<(SeriesKey, V)> for SeriesTable<V> {
    fn from_iter<I: IntoIterator<Item = (SeriesKey, V)>>(it: I) -> Self {
        let mut t = SeriesTable::default();
        for (k, v) in it {
            t.insert(k, v);
        }
        t
    }
}

/// The subject of rule states: one device of one site, shared (an `Arc`) by the states of
/// every rule about it. Before, each state owned its own two strings: with ten thousand
/// devices and six rules each, 120,000 small allocations (issue 24, memory per device).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SubjectParts {
    /// The readings' own names when the subject was made from one (the usual case), so a
    /// later reading of the device is recognised by comparing pointers ([`same_text`]).
    pub site: Name,
    pub device: Name,
}

/// Text equality that first asks whether both are the same bytes in memory: a reading's
/// interned names and a subject made from an earlier reading share their allocation, so the
/// usual lookup reads neither text (each a cache miss of its own with 10,000 devices).
fn same_text(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

type Subject = Arc<SubjectParts>;

/// State of one rule for one subject (site, device). Stored as `{rule, site, device}`, as
/// before the subject was shared, so snapshots keep loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateKey {
    pub rule: usize,
    subject: Subject,
}

impl StateKey {
    /// The same subject under another rule (a reload renumbered the rules).
    pub(crate) fn with_rule(&self, rule: usize) -> StateKey {
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
                site: Name::from(&*k.site),
                device: Name::from(&*k.device),
            }),
        })
    }
}

/// A borrowed [`StateKey`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateRef<'a> {
    pub rule: usize,
    pub site: &'a str,
    pub device: &'a str,
}

pub(crate) trait StateView {
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

/// The subjects' index: an interned subject, hashed and compared by its strings so it can be
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
        let ((a, b), (c, d)) = (self.parts(), other.parts());
        same_text(a, c) && same_text(b, d)
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

/// A device's place in a [`StateMap`]: valid until the map is drained (slots are only ever
/// added otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceSlot(usize);

/// Per-(rule, subject) state, grouped by subject: one slot per (site, device) holding that
/// device's states sorted by rule, every state sharing the slot's subject.
///
/// A reading is judged by several rules of its own device one after the other (a level by a
/// discharge, a rate and a flat-line rule; a message's readings are one device's), so the slot
/// of the latest lookup is tried first: most lookups then hash nothing and compare two short
/// strings that are already in cache. One map keyed by (rule, site, device) hashed both strings
/// and compared them behind two pointers on every lookup, twice when the state existed; it was
/// the engine's largest cost on the ingest path (issue 24).
#[derive(Debug)]
pub(crate) struct StateMap<V> {
    /// (site, device) -> its slot in `slots`.
    index: std::collections::HashMap<Interned, usize, foldhash::fast::RandomState>,
    slots: Vec<Slot<V>>,
    /// The slot of the latest `entry` (a guess only: checked against the strings).
    last: usize,
}

#[derive(Debug)]
struct Slot<V> {
    subject: Subject,
    /// Sorted by rule, each rule once.
    states: Vec<(StateKey, V)>,
    /// The device's series found so far, with their positions in the engine's
    /// [`SeriesTable`]: a reading reaches its series from its device's slot by comparing two
    /// names (pointers, usually) instead of hashing four strings, and [`StateMap::prefetch`]
    /// can ask for every series of a device, derived ones included (issue 24). Not stored:
    /// rebuilt from the table as readings arrive after a restore or reload.
    series: Vec<SeriesAt>,
}

/// Where one series of a device is in the engine's [`SeriesTable`].
#[derive(Debug)]
struct SeriesAt {
    stream: Name,
    metric: Name,
    pos: usize,
}

impl<V> Default for StateMap<V> {
    fn default() -> Self {
        StateMap {
            index: Default::default(),
            slots: Vec::new(),
            last: 0,
        }
    }
}

impl<V> Slot<V> {
    fn holds(&self, site: &str, device: &str) -> bool {
        same_text(&self.subject.site, site) && same_text(&self.subject.device, device)
    }

    /// Where `rule`'s state is (`Ok`) or would go (`Err`).
    fn position(&self, rule: usize) -> Result<usize, usize> {
        self.states.binary_search_by_key(&rule, |(k, _)| k.rule)
    }
}

impl<V> StateMap<V> {
    /// The device of `site`/`device` when it has a slot (none is made).
    pub(crate) fn device(&self, site: &str, device: &str) -> Option<DeviceSlot> {
        self.find(site, device).map(DeviceSlot)
    }

    /// Whether `d` is still the slot of `site`/`device` (a slot answered before a reload may
    /// name another device, or none): two pointer comparisons when the names are shared.
    pub(crate) fn holds(&self, d: DeviceSlot, site: &str, device: &str) -> bool {
        self.slots.get(d.0).is_some_and(|s| s.holds(site, device))
    }

    /// Prefetch hints for a device about to be judged (see [`crate::prefetch`]): its slot,
    /// or with `states` the states and series positions behind it (the slot should be in
    /// cache by then: ask for it a little earlier). A hint only: any `d` will do.
    pub(crate) fn prefetch(&self, d: DeviceSlot, states: bool) {
        let Some(slot) = self.slots.get(d.0) else {
            return;
        };
        if states {
            crate::prefetch::bytes(
                slot.states.as_ptr(),
                std::mem::size_of_val(slot.states.as_slice()),
            );
            crate::prefetch::bytes(
                slot.series.as_ptr(),
                std::mem::size_of_val(slot.series.as_slice()),
            );
        } else {
            crate::prefetch::bytes(slot, std::mem::size_of::<Slot<V>>());
        }
    }

    /// The position in the engine's [`SeriesTable`] of the series of `d`'s `stream` and
    /// `metric`, when [`StateMap::remember_series`] was told it (since the slot was made).
    pub(crate) fn series_of(&self, d: DeviceSlot, stream: &Name, metric: &Name) -> Option<usize> {
        self.slots
            .get(d.0)?
            .series
            .iter()
            .find(|s| s.metric == *metric && s.stream == *stream)
            .map(|s| s.pos)
    }

    /// Notes that `d`'s series of `stream` and `metric` is at `pos` in the engine's
    /// [`SeriesTable`] (positions never change while the table lives; a restore makes a new
    /// table and a new map).
    pub(crate) fn remember_series(
        &mut self,
        d: DeviceSlot,
        stream: &Name,
        metric: &Name,
        pos: usize,
    ) {
        if self.series_of(d, stream, metric).is_some() {
            return;
        }
        if let Some(slot) = self.slots.get_mut(d.0) {
            // One at a time: a device has one or two series, and a first push would reserve
            // room for four (224 bytes a device).
            slot.series.reserve_exact(1);
            slot.series.push(SeriesAt {
                stream: stream.clone(),
                metric: metric.clone(),
                pos,
            });
        }
    }

    /// The positions of every series remembered for `d` (for prefetch hints).
    pub(crate) fn series_positions(&self, d: DeviceSlot) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .get(d.0)
            .into_iter()
            .flat_map(|s| s.series.iter().map(|s| s.pos))
    }

    /// The slot of `site`/`device`, when it has one.
    fn find(&self, site: &str, device: &str) -> Option<usize> {
        if self
            .slots
            .get(self.last)
            .is_some_and(|s| s.holds(site, device))
        {
            return Some(self.last);
        }
        self.index.get(&(site, device) as &dyn SubjectView).copied()
    }

    /// The slot of `site`/`device`, made on first use (sharing the names when they are
    /// [`Name`]s); remembered for the next lookup.
    fn slot<S: AsRef<str> + Into<Name> + Copy>(&mut self, site: S, device: S) -> &mut Slot<V> {
        let i = self.slot_index(site, device);
        &mut self.slots[i]
    }

    /// The index of the slot of `site`/`device`, made on first use; remembered.
    fn slot_index<S: AsRef<str> + Into<Name> + Copy>(&mut self, site: S, device: S) -> usize {
        let i = match self.find(site.as_ref(), device.as_ref()) {
            Some(i) => i,
            None => {
                let subject = Arc::new(SubjectParts {
                    site: site.into(),
                    device: device.into(),
                });
                let i = self.slots.len();
                self.index.insert(Interned(subject.clone()), i);
                self.slots.push(Slot {
                    subject,
                    states: Vec::new(),
                    series: Vec::new(),
                });
                i
            }
        };
        self.last = i;
        i
    }

    /// Heap bytes of the states and series positions (each device's slot lists), not counting
    /// what a state points to.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.states.capacity() * std::mem::size_of::<(StateKey, V)>()
                    + s.series.capacity() * std::mem::size_of::<SeriesAt>()
            })
            .sum()
    }

    pub(crate) fn get(&self, key: StateRef<'_>) -> Option<&V> {
        let slot = &self.slots[self.find(key.site, key.device)?];
        slot.position(key.rule).ok().map(|i| &slot.states[i].1)
    }

    /// The states of one device (every rule about it).
    pub(crate) fn of_device_mut(
        &mut self,
        site: &str,
        device: &str,
    ) -> impl Iterator<Item = (&StateKey, &mut V)> {
        let slot = self.find(site, device);
        slot.map(|i| &mut self.slots[i])
            .into_iter()
            .flat_map(|s| s.states.iter_mut().map(|(k, v)| (&*k, v)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&StateKey, &V)> {
        self.slots
            .iter()
            .flat_map(|s| s.states.iter().map(|(k, v)| (k, v)))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&StateKey, &mut V)> {
        self.slots
            .iter_mut()
            .flat_map(|s| s.states.iter_mut().map(|(k, v)| (&*k, v)))
    }

    /// Every state, taken out (the subjects go with them).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (StateKey, V)> + '_ {
        self.index.clear();
        self.last = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flat_map(|s| s.states)
    }

    /// Puts `v` under `key` (replacing what was there), its subject shared with the device's
    /// other states.
    pub(crate) fn insert(&mut self, key: StateKey, v: V) {
        let slot = self.slot(&key.site, &key.device);
        match slot.position(key.rule) {
            Ok(i) => slot.states[i].1 = v,
            Err(i) => {
                let k = StateKey {
                    rule: key.rule,
                    subject: slot.subject.clone(),
                };
                slot.states.insert(i, (k, v));
            }
        }
    }
}

impl<V: Default> StateMap<V> {
    /// The entry of `key`, inserting a default one (sharing the subject) only when missing.
    pub(crate) fn entry(&mut self, key: StateRef<'_>) -> &mut V {
        let slot = self.slot(key.site, key.device);
        Self::state_in(slot, key.rule)
    }

    /// As [`StateMap::entry`] for a reading's own names: a new subject shares them, so the
    /// device's later lookups compare pointers. Tests: the engine looks the device up once per
    /// reading ([`StateMap::device_named`]) and reaches each rule's state from there.
    #[cfg(test)]
    pub(crate) fn entry_named(&mut self, rule: usize, site: &Name, device: &Name) -> &mut V {
        let d = self.device_named(site, device);
        self.in_device(d, rule)
    }

    /// The device of a reading's names, made on first use (sharing the names): its states are
    /// then reached with [`StateMap::in_device`] without looking the device up once per rule
    /// (the ingest path judges a level reading by three rules; issue 24).
    pub(crate) fn device_named(&mut self, site: &Name, device: &Name) -> DeviceSlot {
        DeviceSlot(self.slot_index(site, device))
    }

    /// `rule`'s state of a device [`StateMap::device_named`] answered for this map (a default
    /// one, sharing the subject, when missing).
    pub(crate) fn in_device(&mut self, device: DeviceSlot, rule: usize) -> &mut V {
        Self::state_in(&mut self.slots[device.0], rule)
    }

    /// `rule`'s state in a device's slot, a default one (sharing the subject) when missing.
    fn state_in(slot: &mut Slot<V>, rule: usize) -> &mut V {
        let i = match slot.position(rule) {
            Ok(i) => i,
            Err(i) => {
                let k = StateKey {
                    rule,
                    subject: slot.subject.clone(),
                };
                slot.states.insert(i, (k, V::default()));
                i
            }
        };
        &mut slot.states[i].1
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

    /// The remembered slot is only a guess: lookups that alternate devices, rules that arrive
    /// out of order, replacing inserts and a drain and rebuild (a reload) all find what a
    /// map keyed by (rule, site, device) finds.
    #[test]
    fn state_lookups_agree_with_a_plain_map_whatever_the_order() {
        let mut states: StateMap<u32> = StateMap::default();
        let mut plain: HashMap<(usize, String, String), u32> = HashMap::new();
        let subjects = [("s1", "d1"), ("s1", "d2"), ("s2", "d1"), ("s1d", "1")];
        for step in 0..200usize {
            let (site, device) = subjects[(step * 7 + step / 3) % subjects.len()];
            let rule = (step * 5) % 11;
            let k = StateRef { rule, site, device };
            if step % 13 == 0 {
                let v = step as u32 * 100;
                states.insert(
                    StateKey {
                        rule,
                        subject: Arc::new(SubjectParts {
                            site: site.into(),
                            device: device.into(),
                        }),
                    },
                    v,
                );
                plain.insert((rule, site.into(), device.into()), v);
            } else if step % 2 == 0 {
                *states.entry(k) += 1;
                *plain.entry((rule, site.into(), device.into())).or_default() += 1;
            } else {
                // Names of a reading: a new allocation each time, found by text.
                *states.entry_named(rule, &Name::from(site), &Name::from(device)) += 1;
                *plain.entry((rule, site.into(), device.into())).or_default() += 1;
            }
            for &(s, d) in &subjects {
                for r in 0..11 {
                    let want = plain.get(&(r, s.to_string(), d.to_string()));
                    let got = states.get(StateRef {
                        rule: r,
                        site: s,
                        device: d,
                    });
                    assert_eq!(got, want, "step {step}: rule {r} of {s}/{d}");
                }
            }
        }
        assert_eq!(states.iter().count(), plain.len());
        assert_eq!(states.slots.len(), subjects.len());
        // Every slot keeps its states in rule order, each sharing the slot's subject.
        for slot in &states.slots {
            assert!(slot.states.windows(2).all(|w| w[0].0.rule < w[1].0.rule));
            assert!(
                slot.states
                    .iter()
                    .all(|(k, _)| Arc::ptr_eq(&k.subject, &slot.subject))
            );
        }
        let mut rebuilt: StateMap<u32> = states.drain().collect();
        assert_eq!(states.iter().count(), 0);
        assert_eq!(
            states.get(StateRef {
                rule: 0,
                site: "s1",
                device: "d1"
            }),
            None
        );
        for ((r, s, d), v) in &plain {
            let k = StateRef {
                rule: *r,
                site: s,
                device: d,
            };
            assert_eq!(rebuilt.get(k), Some(v));
            assert_eq!(rebuilt.entry(k), &mut v.clone());
        }
        assert_eq!(rebuilt.iter().count(), plain.len());
    }

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
        assert_eq!(states.iter().count(), 2);
        assert_eq!(states.get(k), Some(&2));
        // Both states of the device share one subject.
        assert_eq!(states.slots.len(), 1);
        let shared: Vec<&StateKey> = states.iter().map(|(k, _)| k).collect();
        assert!(Arc::ptr_eq(&shared[0].subject, &shared[1].subject));
        // A reading's names: the subject shares them (found by pointer), and a lookup by
        // the same text in other allocations finds the same state.
        let (site, device) = (Name::from("r-9"), Name::from("trap-9"));
        *states.entry_named(2, &site, &device) += 1;
        let slot = states.slots.last().expect("made");
        assert!(std::ptr::eq(slot.subject.site.as_ptr(), site.as_ptr()));
        assert!(std::ptr::eq(slot.subject.device.as_ptr(), device.as_ptr()));
        *states.entry_named(2, &Name::from("r-9"), &Name::from("trap-9")) += 1;
        let by_text = StateRef {
            rule: 2,
            site: "r-9",
            device: "trap-9",
        };
        assert_eq!(states.get(by_text), Some(&2));
        assert_eq!(states.get(StateRef { rule: 3, ..by_text }), None);
        assert_eq!(states.slots.len(), 2);
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
        assert_eq!(states.slots.len(), 3);
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
            unit: Name::default(),
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
            ..r.clone()
        };
        assert_eq!(series.get(&other as &dyn SeriesView), None);

        // The table finds the same series by reading and by key, at a stable position.
        let mut table: SeriesTable<u32> = SeriesTable::default();
        let a = table.insert(SeriesKey::of(&r), 1);
        let b = table.insert(SeriesKey::of(&other), 2);
        assert_ne!(a, b);
        assert_eq!(table.find(&r), Some(a));
        assert_eq!(table.find(&other), Some(b));
        assert_eq!(table.get(&SeriesKey::of(&other)), Some(&2));
        *table.at_mut(a) += 10;
        assert_eq!(table.at(a), &11);
        // Replacing keeps the position; an unknown series is not found.
        assert_eq!(table.insert(SeriesKey::of(&r), 5), a);
        assert_eq!((table.at(a), table.len()), (&5, 2));
        let third = Reading {
            device: "trap-2".into(),
            ..other.clone()
        };
        assert_eq!(table.find(&third), None);
        let rebuilt: SeriesTable<u32> = table.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(rebuilt.get(&SeriesKey::of(&r)), Some(&5));
        assert_eq!(rebuilt.get(&SeriesKey::of(&other)), Some(&2));
    }
}
