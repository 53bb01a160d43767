//! The one normalized record every source produces and every consumer reads.
//!
//! A `Reading` carries one metric. Readings that share (stream, site, device, source, device time)
//! come from the same message and become one time-series point with one field per metric.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An immutable, cheaply shared string: a reading's site, device, stream, metric and unit.
///
/// Every message used to allocate four or five `String`s per reading, and the device table,
/// the dashboard history and the rules engine each copied them again into their per-device
/// state (issue 24: malloc/free were a fifth of intake's CPU, and 10,000 devices' copies of
/// `grease_trap`, `level` and `mm` a good part of its memory). A `Name` is shared, not copied:
/// the decoder hands out the same `Name` for the same text ([`Names`]), so the copies share one
/// allocation. It reads like a `&str` (`Deref`), compares and hashes like one (`Borrow<str>`),
/// and serializes as a plain string.
///
/// Two kinds, the same to every user: a *permanent* name (the empty one, and the first texts
/// the interner sees, within a fixed budget: see [`Names`]) is a `&'static str`, so cloning
/// and dropping it touch no counter; any other is an `Arc<str>`. The counters were the cost:
/// every reading carries five names, and the hot ones (a site, `grease_trap`, `level`, the
/// empty unit) are shared by all readings, so each reading made and dropped on different
/// threads meant a dozen atomic updates of a few cache lines that every core wanted
/// (`drop_in_place<Reading>` alone was 2.6% of intake's CPU, issue 24).
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    /// Kept for the life of the process: a literal or an interned text within the budget.
    Permanent(&'static str),
    Shared(Arc<str>),
}

impl Clone for Name {
    fn clone(&self) -> Self {
        Name(self.0.clone())
    }

    /// Keeps its own reference when both are the same allocation: the state kept per device
    /// (last values, history) refreshes a reading's stream and unit on every reading, and
    /// those names are shared by every reading and thread, so a plain reassignment was two
    /// contended reference-count updates per name per reading (issue 24).
    fn clone_from(&mut self, source: &Self) {
        if !self.same_allocation(source) {
            self.0 = source.0.clone();
        }
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

/// Equal when the texts are: the same allocation (an interned name, the usual case on the
/// intake path) answers without reading the bytes. `Arc`'s own shortcut does not apply to
/// `str`. `Hash` stays the text's, as `Borrow<str>` requires.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.same_allocation(other) || self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Name {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Permanent(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// Whether both are the very same text in memory (an interned name, the usual case on
    /// the intake path): equal without reading the bytes.
    fn same_allocation(&self, other: &Name) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
    }
}

/// The empty name (a reading without a unit): permanent, so it costs no allocation and no
/// shared counter.
impl Default for Name {
    fn default() -> Self {
        Name(Repr::Permanent(""))
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        if s.is_empty() {
            return Name::default();
        }
        Name(Repr::Shared(Arc::from(s)))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name::from(s.as_str())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name::from(s.as_str())
    }
}

impl From<&Name> for Name {
    fn from(s: &Name) -> Self {
        s.clone()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.as_str().to_owned()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Name::from(&*s))
    }
}

/// Hands out one shared [`Name`] per distinct text (an interner), so the readings of one
/// device, and the state every consumer keeps about it, share their strings.
///
/// Bounded: the texts come from the outside (topics, metric names), so once `MAX_NAMES` are
/// held the table starts over. That only costs sharing (names handed out before stay valid and
/// equal by content), never correctness.
///
/// The first texts seen are made permanent (see [`Name`]) until [`Names::PERMANENT_BYTES`] are
/// used, for the whole process: a fleet's sites, streams, metric names and units come in its
/// first messages, then its devices. That memory is never given back, which is why it is a
/// fixed budget: past it, names are reference-counted as before.
pub struct Names {
    set: std::collections::HashSet<Name, foldhash::fast::RandomState>,
    /// The process's permanent budget ([`PERMANENT_LEFT`]); a test's own in unit tests.
    budget: &'static AtomicUsize,
    /// Names recently handed out, by [`recent_slot`]: the few texts every message repeats (a
    /// fleet's stream, metric and unit names) are found by comparing one short text instead of
    /// hashing it and probing the set (issue 24: three of those per message were ~400 of the
    /// decoder's instructions). Every name here is also in `set`.
    recent: [Name; RECENT],
}

/// Entries of [`Names`]' cache of recent names.
const RECENT: usize = 16;

/// Where a text is looked for in [`Names`]' cache of recent names: from its length and its
/// first and last bytes, which tell a fleet's few metric names apart well enough.
fn recent_slot(text: &[u8]) -> usize {
    let (first, last) = match text {
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
        [] => (0, 0),
    };
    (text.len() ^ usize::from(first) ^ (usize::from(last) << 1)) % RECENT
}

impl Names {
    /// Distinct texts kept before starting over: a fleet's sites, devices and metric names
    /// (10,000 devices need about 10,000), with room for many times that.
    pub const MAX_NAMES: usize = 200_000;

    /// Bytes of text (plus 16 each, for the allocator) made permanent in this process, at
    /// most: 10,000 devices' names take about a quarter of it.
    pub const PERMANENT_BYTES: usize = 1 << 20;

    pub fn new() -> Names {
        Names::with_budget(&PERMANENT_LEFT)
    }

    fn with_budget(budget: &'static AtomicUsize) -> Names {
        Names {
            set: Default::default(),
            budget,
            recent: Default::default(),
        }
    }

    /// The shared name for `text`.
    pub fn get(&mut self, text: &str) -> Name {
        if text.is_empty() {
            return Name::default();
        }
        let slot = recent_slot(text.as_bytes());
        if self.recent[slot].as_str() == text {
            return self.recent[slot].clone();
        }
        let n = match self.set.get(text) {
            Some(n) => n.clone(),
            None => {
                if self.set.len() >= Self::MAX_NAMES {
                    self.set.clear();
                    self.recent = Default::default();
                }
                let n = if take_permanent_budget(self.budget, text.len()) {
                    Name(Repr::Permanent(Box::leak(Box::<str>::from(text))))
                } else {
                    Name::from(text)
                };
                self.set.insert(n.clone());
                n
            }
        };
        self.recent[slot].clone_from(&n);
        n
    }

    /// Distinct texts held now.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// What a permanent text is counted as beyond its bytes: the allocator's header and rounding.
const PERMANENT_OVERHEAD: usize = 16;

/// What is left of [`Names::PERMANENT_BYTES`] in this process (all interners together).
static PERMANENT_LEFT: AtomicUsize = AtomicUsize::new(Names::PERMANENT_BYTES);

/// Takes room for a permanent text of `len` bytes from the process's budget; false when it
/// is used up.
fn take_permanent_budget(budget: &AtomicUsize, len: usize) -> bool {
    let cost = len.saturating_add(PERMANENT_OVERHEAD);
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(cost)
        })
        .is_ok()
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

/// Stream of alarm / recovery events. Defined with the record every module reads (not with
/// the decoder that makes it) so the device table and history need not name the decoder.
pub(crate) const EVENT_STREAM: &str = "event";
/// Stream of presence (`online` metric, boolean), shared with Modbus and silence detection.
pub(crate) const STATE_STREAM: &str = "state";

/// A metric value after decoding. Non-finite floats never get this far (decoders reject them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    // Deserialization tries variants in order: an integral JSON number becomes Int.
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value as a number, for rules and unit conversion; booleans count as 0/1.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

/// Where a reading came from; also written as the `source` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Mqtt,
    Modbus,
    Camera,
    Drone,
    Gateway,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Modbus => "modbus",
            Source::Camera => "camera",
            Source::Drone => "drone",
            Source::Gateway => "gateway",
        }
    }
}

/// Flags set during normalization, kept so reviewers can judge a reading's trustworthiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quality {
    /// The device clock was too far from ours; `device_time_ms` is the receive time instead.
    pub clock_replaced: bool,
    /// The device buffered this reading and sent it later (store-and-forward replay).
    pub replayed: bool,
}

/// One normalized measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub site: Name,
    pub device: Name,
    /// The time-series measurement, e.g. `grease_trap`, `manhole_cover`, `camera`.
    pub stream: Name,
    pub metric: Name,
    pub value: Value,
    /// Canonical unit after conversion (`mm`, `m3`, `%`, `deg`, `C`...); empty when unitless.
    pub unit: Name,
    /// Device time in ms since the epoch (or receive time when the device clock was unusable).
    pub device_time_ms: i64,
    /// When the gateway received it, ms since the epoch.
    pub received_time_ms: i64,
    pub source: Source,
    /// The device's message sequence number, when it sends one.
    pub sequence: Option<u64>,
    pub quality: Quality,
}

/// Per-device values by metric name, for the state kept about every device (its last values,
/// its dashboard history): a vector sorted by name, grown one entry at a time.
///
/// A device has a handful of metrics. A `BTreeMap` allocates room for eleven entries in its
/// first node whatever it holds, which with 10,000 devices was several of intake's megabytes
/// (issue 24, memory per device); this holds exactly what it has. Lookups are a binary search
/// over a few names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ByMetric<V> {
    entries: Vec<(Name, V)>,
}

impl<V> Default for ByMetric<V> {
    fn default() -> Self {
        ByMetric {
            entries: Vec::new(),
        }
    }
}

impl<V> ByMetric<V> {
    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Prefetch hint for the entries (see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self) {
        crate::prefetch::bytes(
            self.entries.as_ptr(),
            std::mem::size_of_val(self.entries.as_slice()),
        );
    }

    fn position(&self, metric: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(name, _)| name.as_str().cmp(metric))
    }

    pub(crate) fn get(&self, metric: &str) -> Option<&V> {
        let i = self.position(metric).ok()?;
        Some(&self.entries[i].1)
    }

    /// The entry of a reading's metric. Its own (interned) name: the entry holding the same
    /// allocation is found by comparing pointers, without reading any name's text (each is an
    /// allocation of its own, so with 10,000 devices a cache miss apiece); a name that is not
    /// shared falls back to the search by text.
    pub(crate) fn get_mut_name(&mut self, metric: &Name) -> Option<&mut V> {
        let i = match self
            .entries
            .iter()
            .position(|(name, _)| name.same_allocation(metric))
        {
            Some(i) => i,
            None => self.position(metric).ok()?,
        };
        Some(&mut self.entries[i].1)
    }

    /// Puts `v` under `metric`, replacing what was there.
    pub(crate) fn insert(&mut self, metric: Name, v: V) {
        match self.position(&metric) {
            Ok(i) => self.entries[i].1 = v,
            Err(i) => {
                // New metrics are rare (a device's first messages): exact growth, no slack.
                self.entries.reserve_exact(1);
                self.entries.insert(i, (metric, v));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries in name order (as a `BTreeMap` iterates).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Name, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Equal texts share one allocation; the table starts over at its bound and names
    /// handed out before stay valid and equal.
    #[test]
    fn names_are_shared_and_bounded() {
        let mut names = Names::new();
        let a = names.get("grease_trap");
        let b = names.get(&String::from("grease_trap"));
        assert!(a.same_allocation(&b));
        assert_eq!(a, "grease_trap");
        assert_eq!(names.get(""), "");
        assert_eq!(names.len(), 1, "the empty name is not stored");
        for i in 0..Names::MAX_NAMES {
            names.get(&format!("d{i}"));
        }
        assert!(names.len() <= Names::MAX_NAMES);
        let c = names.get("grease_trap");
        assert_eq!(c, a);
        // Serialized and compared like the strings they replace.
        assert_eq!(serde_json::to_string(&a).expect("json"), r#""grease_trap""#);
        let back: Name = serde_json::from_str(r#""grease_trap""#).expect("parse");
        assert_eq!(back, a);
        assert_eq!(format!("{a}/{a:?}"), r#"grease_trap/"grease_trap""#);
        // Refreshing a name from the same allocation keeps it; from another, takes that one.
        let (a, b) = (Name::from("grease_trap"), Name::from("grease_trap"));
        let Repr::Shared(counted) = &a.0 else {
            panic!("Name::from is reference-counted")
        };
        let mut kept = a.clone();
        kept.clone_from(&a);
        assert!(kept.same_allocation(&a));
        assert_eq!(
            Arc::strong_count(counted),
            2,
            "a and kept; no reference leaked"
        );
        kept.clone_from(&b);
        assert!(kept.same_allocation(&b) && !kept.same_allocation(&a));
        assert_eq!(Arc::strong_count(counted), 1, "kept let go of a's");
        let other = Name::from("level");
        kept.clone_from(&other);
        assert!(kept.same_allocation(&other));
        assert_eq!(kept, "level");
    }

    /// The cache of recent names answers exactly what the set answers: for texts that share
    /// a cache entry (same length, first and last bytes) or not, in any order, the name of the
    /// right text, the same allocation every time, and the one the set holds.
    #[test]
    fn recent_names_are_the_sets_names() {
        let mut names = Names::new();
        let texts = [
            "level",
            "lxxel",
            "lbbel",
            "battery",
            "grease_trap",
            "mm",
            "m",
            "n",
            "ab",
            "ba",
            "bb",
            "a",
            "lev",
            "level_raw",
            "l",
            "é",
            "日本",
            "🎉",
        ];
        let mut first: std::collections::HashMap<&str, Name> = Default::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..2000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let text = texts[(x % texts.len() as u64) as usize];
            let n = names.get(text);
            assert_eq!(n, text, "step {step}");
            let held = names.set.get(text).expect("in the set");
            assert!(n.same_allocation(held), "step {step}: {text}");
            assert!(n.same_allocation(first.entry(text).or_insert_with(|| n.clone())));
        }
        assert!(names.recent.iter().all(|r| {
            r.is_empty()
                || names
                    .set
                    .get(r.as_str())
                    .is_some_and(|n| n.same_allocation(r))
        }));
        assert_eq!(names.len(), texts.len());
    }

    /// The first texts an interner sees are permanent until the budget is used up (counted
    /// with their overhead, shared by every interner of the process), then reference-counted;
    /// both kinds are equal, ordered and hashed by their text alone.
    #[test]
    fn names_are_permanent_within_the_budget_only() {
        let budget: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(
            "site".len() + "level".len() + 2 * PERMANENT_OVERHEAD,
        )));
        let mut names = Names::with_budget(budget);
        let mut other = Names::with_budget(budget);
        let permanent = |n: &Name| matches!(n.0, Repr::Permanent(_));
        let site = names.get("site");
        assert!(permanent(&site) && permanent(&site.clone()));
        assert!(permanent(&other.get("level")), "the budget is shared");
        assert_eq!(budget.load(Ordering::Relaxed), 0);
        let late = names.get("level");
        assert!(!permanent(&late), "over budget: counted");
        assert!(late.same_allocation(&names.get("level")));
        assert!(permanent(&Name::default()) && permanent(&names.get("")));
        let counted = Name::from("site");
        assert!(!permanent(&counted));
        assert_eq!(site, counted);
        assert_eq!(site.cmp(&counted), std::cmp::Ordering::Equal);
        use std::hash::BuildHasher;
        let state = std::hash::RandomState::new();
        assert_eq!(state.hash_one(&site), state.hash_one("site"));
        assert_eq!(state.hash_one(&counted), state.hash_one("site"));
        let set: std::collections::HashSet<Name> = [site.clone(), counted.clone()].into();
        assert_eq!(set.len(), 1);
        // The same start in memory is not the same name unless the length agrees too.
        let text: &'static str = Box::leak(Box::<str>::from("ab"));
        let (a, ab) = (
            Name(Repr::Permanent(&text[..1])),
            Name(Repr::Permanent(text)),
        );
        assert!(!a.same_allocation(&ab));
        assert_ne!(a, ab);
        let mut refreshed = a.clone();
        refreshed.clone_from(&ab);
        assert_eq!(refreshed, "ab");
    }

    /// Whatever the order of inserts, replacements and lookups, the map answers what a
    /// `BTreeMap` answers, iterates in the same order, and holds no slack.
    #[test]
    fn by_metric_agrees_with_a_btree_map() {
        let mut m: ByMetric<u32> = ByMetric::default();
        let mut plain: BTreeMap<String, u32> = BTreeMap::new();
        let names = [
            "level",
            "battery",
            "fill_pct",
            "a",
            "level_raw",
            "",
            "zz",
            "b",
        ];
        for step in 0..100u32 {
            let k = names[(step as usize * 5 + step as usize / 3) % names.len()];
            m.insert(Name::from(k), step);
            plain.insert(k.to_string(), step);
            for q in names.iter().chain(&["nope", "levels"]) {
                assert_eq!(m.get(q), plain.get(*q), "step {step}: {q}");
            }
            assert_eq!(m.len(), plain.len());
            assert_eq!(m.entries.capacity(), m.len());
        }
        let ours: Vec<(String, u32)> = m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let theirs: Vec<(String, u32)> = plain.into_iter().collect();
        assert_eq!(ours, theirs);
        // By name: an equal text in another allocation (the search by text)...
        if let Some(v) = m.get_mut_name(&Name::from("level")) {
            *v = 7;
        }
        assert_eq!(m.get("level"), Some(&7));
        // ... or the entry's own allocation (found by pointer).
        let shared = m
            .iter()
            .find(|(k, _)| k.as_str() == "fill_pct")
            .map(|(k, _)| k.clone());
        let shared = shared.expect("inserted");
        if let Some(v) = m.get_mut_name(&shared) {
            *v = 8;
        }
        assert_eq!(m.get("fill_pct"), Some(&8));
        assert_eq!(m.get_mut_name(&Name::from("nope")), None);
    }
}
