//! Borrowed decoding of native telemetry, the hot path of MQTT intake.
//!
//! Why not `firmware::protocol::Telemetry`: its metric values are an `untagged` enum, which
//! serde decodes by first buffering each value into an intermediate tree and then trying the
//! variants in turn, and its maps own every key (`BTreeMap<String, _>`). Profiling the ingest
//! benchmark (issue 24) put that among the top costs per message. [`Telemetry`] here reads the
//! same JSON in one pass: names and strings borrow from the payload when they hold no escapes,
//! values are decided by the JSON token itself.
//!
//! The contract is the firmware's: the same fields (`deny_unknown_fields`), the same variants in
//! the same precedence (an integer beyond `i64` is a float, as the untagged enum made it), maps
//! in key order with the last of a repeated key winning (`BTreeMap` semantics). The unit test
//! `agrees_with_the_firmware_contract` decodes a corpus with both and compares.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A native telemetry message, borrowing from its payload. `Default` is the empty message
/// the hand-written reader fills in (`super::scan::telemetry_into`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Telemetry<'a> {
    #[serde(default)]
    pub ts: Option<i64>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub stream: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub units: Sorted<'a, Text<'a>>,
    #[serde(borrow)]
    pub metrics: Sorted<'a, Metric<'a>>,
    #[serde(default)]
    pub replayed: bool,
    #[serde(default, borrow)]
    pub from: Option<Text<'a>>,
}

/// A JSON string: borrowed from the payload unless it had to be unescaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// One metric value, as `firmware::protocol::MetricValue`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Metric<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Metric<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Metric<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean, a number or a string")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Metric<'a>, E> {
                Ok(Metric::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Metric<'a>, E> {
                Ok(Metric::Int(i))
            }
            // The untagged enum tried `Int(i64)` first and fell back to `Float(f64)`.
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Metric<'a>, E> {
                Ok(i64::try_from(u).map_or(Metric::Float(u as f64), Metric::Int))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Metric<'a>, E> {
                Ok(Metric::Float(f))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Metric<'a>, E> {
                Ok(Metric::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Metric<'a>, E> {
                Ok(Metric::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Metric<'a>, E> {
                Ok(Metric::Text(Cow::Owned(s)))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl From<Metric<'_>> for crate::reading::Value {
    fn from(m: Metric<'_>) -> Self {
        use crate::reading::Value;
        match m {
            Metric::Bool(b) => Value::Bool(b),
            Metric::Int(i) => Value::Int(i),
            Metric::Float(f) => Value::Float(f),
            Metric::Text(s) => Value::Text(s.into_owned()),
        }
    }
}

/// A JSON object as (name, value) pairs in name order, the last of a repeated name winning:
/// what a `BTreeMap` would hold, without a node allocation per entry. Up to [`INLINE`] pairs
/// are held in place: a message's few metrics (and units) then cost no allocation at all
/// (issue 24: this vector was one of the gateway's ~10 allocations per message).
#[derive(Debug)]
pub(crate) struct Sorted<'a, T>(pub SmallVec<[(Text<'a>, T); INLINE]>);

/// Pairs of a [`Sorted`] held without an allocation.
pub(crate) const INLINE: usize = 4;

impl<T> Default for Sorted<'_, T> {
    fn default() -> Self {
        Sorted(SmallVec::new())
    }
}

impl<'a, T> Sorted<'a, T> {
    /// The pairs of an object in the order sent, sorted by name, the last of a repeated name
    /// kept.
    pub(crate) fn from_pairs(mut v: SmallVec<[(Text<'a>, T); INLINE]>) -> Self {
        Self::sort(&mut v);
        Sorted(v)
    }

    /// Sorts pairs in the order sent by name, keeping the last of a repeated name, in place.
    pub(crate) fn sort(v: &mut SmallVec<[(Text<'a>, T); INLINE]>) {
        match v.len() {
            0 | 1 => {}
            // The usual message (issue 24): one comparison.
            2 => match v[0].0.cmp(&v[1].0) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Greater => v.swap(0, 1),
                std::cmp::Ordering::Equal => {
                    v.swap_remove(0);
                }
            },
            _ => {
                // Newest first, then a stable sort: of equal names the last one sent comes
                // first and is the one `dedup_by` keeps.
                v.reverse();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v.dedup_by(|later, kept| later.0 == kept.0);
            }
        }
    }

    /// The value under `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&T> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Sorted<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = Sorted<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v: SmallVec<[(Text<'a>, T); INLINE]> =
                    SmallVec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry()? {
                    v.push(entry);
                }
                Ok(Sorted::from_pairs(v))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::protocol::MetricValue;

    fn same(m: &Metric<'_>, f: &MetricValue) -> bool {
        match (m, f) {
            (Metric::Bool(a), MetricValue::Bool(b)) => a == b,
            (Metric::Int(a), MetricValue::Int(b)) => a == b,
            (Metric::Float(a), MetricValue::Float(b)) => a.to_bits() == b.to_bits(),
            (Metric::Text(a), MetricValue::Text(b)) => a == b,
            _ => false,
        }
    }

    /// Every payload is decoded with both; both accept it with equal content, or both refuse.
    #[test]
    fn agrees_with_the_firmware_contract() {
        let corpus = [
            r#"{"ts":1000,"seq":3,"stream":"grease_trap","units":{"level":"cm"},"metrics":{"level":41.2,"battery":88}}"#,
            r#"{"metrics":{"x":1}}"#,
            r#"{"metrics":{"b":true,"a":false,"c":"mode \"eco\"","d":-5,"e":1e3,"f":0.0}}"#,
            r#"{"metrics":{"big":18446744073709551615,"edge":9223372036854775807,"neg":-9223372036854775808}}"#,
            r#"{"metrics":{"x":1,"x":2,"a\u0041":3,"aA":4}}"#,
            r#"{"metrics":{"x":1},"units":{"x":"cm","x":"mm"}}"#,
            r#"{"metrics":{"\u00e9t\u00e9":1,"été":2,"zz":"\ud83d\ude00"}}"#,
            r#"{"metrics":{},"replayed":true}"#,
            r#"{"metrics":{"x":1},"from":"r1/trap1","replayed":false,"ts":null,"seq":null}"#,
            r#"{"metrics":{"x":1},"stream":null,"units":{}}"#,
            r#"{"metrics":{"x":null}}"#,
            r#"{"metrics":{"x":[1]}}"#,
            r#"{"metrics":{"x":{"y":1}}}"#,
            r#"{"metrics":"x"}"#,
            r#"{"metrics":{"x":1},"extra":1}"#,
            r#"{"metrics":{"x":1},"metrics":{"y":1}}"#,
            r#"{"ts":1}"#,
            r#"{"metrics":{"x":1},"units":{"x":5}}"#,
            r#"{"metrics":{"x":1},"ts":-1,"seq":-1}"#,
            r#"{"metrics":{"x":1},"ts":1.5}"#,
            r#"{"metrics":{"x":1e400}}"#,
            r#"{"metrics":{"x":1},"replayed":"yes"}"#,
            r#"{"metrics":{"x":1}} trailing"#,
            r#"{not json"#,
            r#"[]"#,
            r#"null"#,
        ];
        for payload in corpus {
            let ours = serde_json::from_slice::<Telemetry<'_>>(payload.as_bytes());
            let theirs =
                serde_json::from_slice::<firmware::protocol::Telemetry>(payload.as_bytes());
            match (&ours, &theirs) {
                (Ok(o), Ok(t)) => {
                    assert_eq!(o.ts, t.ts, "{payload}");
                    assert_eq!(o.seq, t.seq, "{payload}");
                    assert_eq!(o.stream.as_deref(), t.stream.as_deref(), "{payload}");
                    assert_eq!(o.replayed, t.replayed, "{payload}");
                    assert_eq!(o.from.as_deref(), t.from.as_deref(), "{payload}");
                    let names: Vec<&str> = o.metrics.0.iter().map(|(k, _)| &**k).collect();
                    let want: Vec<&str> = t.metrics.keys().map(String::as_str).collect();
                    assert_eq!(names, want, "{payload}");
                    for ((_, m), f) in o.metrics.0.iter().zip(t.metrics.values()) {
                        assert!(same(m, f), "{payload}: {m:?} vs {f:?}");
                    }
                    let units: Vec<(&str, &str)> =
                        o.units.0.iter().map(|(k, v)| (&**k, &**v)).collect();
                    let want: Vec<(&str, &str)> = t
                        .units
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    assert_eq!(units, want, "{payload}");
                    for (k, v) in &t.units {
                        assert_eq!(o.units.get(k).map(|t| &**t), Some(v.as_str()));
                    }
                }
                (Err(o), Err(t)) => {
                    assert_eq!(o.classify(), t.classify(), "{payload}: {o} vs {t}");
                }
                _ => panic!("{payload}: ours {ours:?}, firmware's {theirs:?}"),
            }
        }
    }

    #[test]
    fn names_and_strings_borrow_from_the_payload_unless_escaped() {
        let payload = br#"{"stream":"trap","metrics":{"level":1,"mode":"eco","a\"b":"x\ny"}}"#;
        let t: Telemetry<'_> = serde_json::from_slice(payload).expect("valid");
        assert!(matches!(
            t.stream.as_ref().map(|s| &s.0),
            Some(Cow::Borrowed("trap"))
        ));
        let by_name = |n: &str| t.metrics.get(n).cloned();
        assert!(matches!(t.metrics.0[1].0.0, Cow::Borrowed("level")));
        assert!(matches!(t.metrics.0[0].0.0, Cow::Owned(_)), "escaped name");
        assert_eq!(by_name("mode"), Some(Metric::Text(Cow::Borrowed("eco"))));
        assert!(matches!(
            by_name("mode"),
            Some(Metric::Text(Cow::Borrowed(_)))
        ));
        assert!(matches!(by_name("a\"b"), Some(Metric::Text(Cow::Owned(_)))));
    }
}
