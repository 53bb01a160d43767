//! The matter catalogue (`[clues.matters]`): which enforcement matter each clue kind belongs
//! to, its legal basis, its discretion bands (facts -> band -> penalty range) and its
//! no-penalty / light-penalty list, and the pure assessment of one clue against it.
//!
//! Why a catalogue at all: "same act, different penalty" can only be seen when every decision
//! names the band the facts put it in and the range that band allows. The catalogue is the
//! city's published discretion standard; the gateway shows which band and which leniency
//! entries the recorded facts meet, with the reason for each, and people decide
//! (`decide` action, see `clue::decision`).
//!
//! The catalogue is versioned (`version`): every decision records the version it was taken
//! under, so a later edit never re-judges an earlier decision.
//!
//! Facts come from the clue's own record only: its level, occurrences, how long it was seen,
//! whether the condition was reported over (and how soon), earlier clues of the same kind
//! about the same subject, and whether the owner answered. What the record cannot show (no
//! fault, for instance) is named in a leniency entry's `needs_finding`: the entry is then
//! "to establish", never "met", until a person finds it and says so in the decision's basis.
//!
//! Legal bases are references the operator fills in from the local regulations; the example
//! catalogue (`deploy/gateway.example.toml`) deliberately quotes no statute numbers.

use super::signal::Level;
use super::store::kind_matches;
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const DAY: u64 = 86_400;

/// `[clues.matters]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatterCatalogue {
    /// Version of the catalogue in force (e.g. the date it was published); required as soon
    /// as one matter is listed, recorded on every decision.
    pub version: String,
    /// Earlier clues of the same kind about the same subject within this many seconds count
    /// as prior violations (`prior` facts).
    pub lookback_s: u64,
    /// Unit of every penalty figure (whole units).
    pub currency: String,
    /// The matters, in order: a clue belongs to the first matter one of whose `kinds` names it.
    pub matter: Vec<Matter>,
}

impl Default for MatterCatalogue {
    fn default() -> Self {
        MatterCatalogue {
            version: String::new(),
            lookback_s: 365 * DAY,
            currency: "CNY".into(),
            matter: Vec::new(),
        }
    }
}

/// One enforcement matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// Stable identifier (statistics and decisions use it).
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub name_zh: Option<String>,
    /// Clue kinds of this matter: exact, or a prefix with a trailing `*`.
    pub kinds: Vec<String>,
    /// The provision the act violates (a reference the operator fills in).
    pub violated_provision: String,
    /// The provision that sets the penalty (a reference the operator fills in).
    pub penalty_provision: String,
    /// Discretion bands, in order: the first band whose facts hold applies (at least one;
    /// checked by `validate`, which names the key).
    #[serde(default)]
    pub bands: Vec<Band>,
    /// No-penalty and light-penalty entries (first violation, minor, no fault, corrected in
    /// time...).
    #[serde(default)]
    pub leniency: Vec<LeniencyEntry>,
}

/// Facts -> band -> penalty range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_zh: Option<String>,
    /// The range a penalty in this band must lie in (whole `currency` units).
    pub penalty_min: u64,
    pub penalty_max: u64,
    /// Facts that put a clue in this band (none: every clue that reaches it).
    #[serde(default)]
    pub when: FactTest,
}

/// What a leniency entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// No penalty (a warning, education): the penalty must be 0.
    NoPenalty,
    /// A lighter penalty: anywhere from 0 up to the band's maximum, below its minimum too.
    LightPenalty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeniencyEntry {
    /// e.g. `first_violation`, `minor`, `no_fault`, `corrected_in_time`.
    pub id: String,
    pub effect: Effect,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_zh: Option<String>,
    /// The provision that allows it (a reference the operator fills in).
    pub provision: String,
    /// Facts from the record that must hold.
    #[serde(default)]
    pub when: FactTest,
    /// What a person must establish that the record cannot show (e.g. "the owner was not at
    /// fault"): the entry is then at best `to_establish`.
    #[serde(default)]
    pub needs_finding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_finding_zh: Option<String>,
}

/// Conditions on the facts; every one given must hold (none given: always holds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FactTest {
    pub level_at_least: Option<Level>,
    pub level_at_most: Option<Level>,
    pub occurrences_at_least: Option<i64>,
    pub occurrences_at_most: Option<i64>,
    /// Earlier clues of this kind about this subject within `lookback_s`.
    pub prior_at_least: Option<i64>,
    pub prior_at_most: Option<i64>,
    /// From first to last sighting.
    pub seen_for_at_least_s: Option<i64>,
    pub seen_for_at_most_s: Option<i64>,
    /// The condition was reported over (the producer's clearance or recovery).
    pub corrected: Option<bool>,
    /// ...within this many seconds of the first sighting.
    pub corrected_within_s: Option<i64>,
    /// The owner's statement is on record.
    pub owner_answered: Option<bool>,
    /// Figures of the clue's record (its `detail`, e.g. `dwell_s`, `drop`; `a.b` reaches
    /// into an object) at least / at most these numbers.
    pub figure_at_least: BTreeMap<String, f64>,
    pub figure_at_most: BTreeMap<String, f64>,
    /// Figures equal to these values (a text, a yes/no or a number, e.g. `unit = "L"`,
    /// `night = true`).
    pub figure_is: BTreeMap<String, Value>,
}

/// The facts of one clue as the catalogue reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub level: Level,
    pub occurrences: i64,
    /// Earlier clues of this kind about this subject within the catalogue's lookback.
    pub prior: i64,
    pub seen_for_s: i64,
    pub corrected: bool,
    /// Seconds from the first sighting to the reported end, when reported.
    pub corrected_after_s: Option<i64>,
    pub owner_answered: bool,
    /// The figures of the record the matter's conditions name (absent from the record:
    /// not listed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, Value>,
}

/// Whether a leniency entry applies on the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeniencyStatus {
    Met,
    NotMet,
    /// The record allows it; a person must establish `needs_finding`.
    ToEstablish,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandCheck {
    pub id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_zh: Option<String>,
    pub penalty_min: u64,
    pub penalty_max: u64,
    /// The facts hold for this band.
    pub holds: bool,
    /// One line per condition, starting `holds:` or `fails:` (English).
    pub reasons: Vec<String>,
    /// The same lines in Chinese (`符合：` / `不符合：`).
    pub reasons_zh: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeniencyCheck {
    pub id: String,
    pub effect: Effect,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_zh: Option<String>,
    pub provision: String,
    pub status: LeniencyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_finding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_finding_zh: Option<String>,
    pub reasons: Vec<String>,
    pub reasons_zh: Vec<String>,
}

/// What the clue detail shows: the matter, the band the facts put the clue in, and the
/// leniency entries with the reason for each. Advice; people decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatterAssessment {
    pub catalogue_version: String,
    pub matter: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    pub violated_provision: String,
    pub penalty_provision: String,
    pub currency: String,
    pub facts: Facts,
    /// The first band whose facts hold (`None`: none does; the catalogue has a gap).
    pub band: Option<String>,
    /// Every band in catalogue order, with why it holds or not.
    pub bands: Vec<BandCheck>,
    pub leniency: Vec<LeniencyCheck>,
}

impl MatterCatalogue {
    /// The matter clue kind `kind` belongs to.
    pub(crate) fn matter_of(&self, kind: &str) -> Option<&Matter> {
        self.matter.iter().find(|m| kind_matches(&m.kinds, kind))
    }

    /// The keys whose provision is still the example's placeholder (`<fill in: ...>`).
    pub(crate) fn placeholders(&self) -> Vec<String> {
        let unfilled = |t: &str| t.to_ascii_lowercase().contains("<fill in");
        let mut out = Vec::new();
        for (i, m) in self.matter.iter().enumerate() {
            let mk = format!("clues.matters.matter[{i}]");
            if unfilled(&m.violated_provision) {
                out.push(format!("{mk}.violated_provision"));
            }
            if unfilled(&m.penalty_provision) {
                out.push(format!("{mk}.penalty_provision"));
            }
            for (j, l) in m.leniency.iter().enumerate() {
                if unfilled(&l.provision) {
                    out.push(format!("{mk}.leniency[{j}].provision"));
                }
            }
        }
        out
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let p = "clues.matters";
        if self.matter.is_empty() {
            return Ok(());
        }
        if self.version.trim().is_empty() {
            return Err(invalid(
                format!("{p}.version"),
                "a catalogue with matters needs a version (recorded on every decision)",
            ));
        }
        if self.lookback_s == 0 {
            return Err(invalid(format!("{p}.lookback_s"), "must be at least 1"));
        }
        if self.currency.trim().is_empty() {
            return Err(invalid(format!("{p}.currency"), "must not be empty"));
        }
        let mut ids = BTreeSet::new();
        let mut patterns: Vec<(String, String)> = Vec::new();
        for (i, m) in self.matter.iter().enumerate() {
            let mk = format!("{p}.matter[{i}]");
            nonempty(&format!("{mk}.id"), &m.id)?;
            if !ids.insert(m.id.as_str()) {
                return Err(invalid(format!("{mk}.id"), format!("`{}` twice", m.id)));
            }
            nonempty(&format!("{mk}.name"), &m.name)?;
            if let Some(z) = &m.name_zh {
                nonempty(&format!("{mk}.name_zh"), z)?;
            }
            nonempty(&format!("{mk}.violated_provision"), &m.violated_provision)?;
            nonempty(&format!("{mk}.penalty_provision"), &m.penalty_provision)?;
            if m.kinds.is_empty() {
                return Err(invalid(
                    format!("{mk}.kinds"),
                    "name at least one clue kind",
                ));
            }
            for (k, kind) in m.kinds.iter().enumerate() {
                let kk = format!("{mk}.kinds[{k}]");
                if kind.trim().is_empty() || kind == "*" {
                    return Err(invalid(kk, "name a kind or a prefix such as `camera.*`"));
                }
                if let Some((_, other)) = patterns.iter().find(|(pat, _)| pat == kind) {
                    return Err(invalid(
                        kk,
                        format!("`{kind}` already belongs to matter `{other}`"),
                    ));
                }
                patterns.push((kind.clone(), m.id.clone()));
            }
            if m.bands.is_empty() {
                return Err(invalid(format!("{mk}.bands"), "list at least one band"));
            }
            let mut bands = BTreeSet::new();
            for (j, b) in m.bands.iter().enumerate() {
                let bk = format!("{mk}.bands[{j}]");
                nonempty(&format!("{bk}.id"), &b.id)?;
                if !bands.insert(b.id.as_str()) {
                    return Err(invalid(format!("{bk}.id"), format!("`{}` twice", b.id)));
                }
                nonempty(&format!("{bk}.label"), &b.label)?;
                if let Some(z) = &b.label_zh {
                    nonempty(&format!("{bk}.label_zh"), z)?;
                }
                if b.penalty_max < b.penalty_min {
                    return Err(invalid(
                        format!("{bk}.penalty_max"),
                        "must be >= penalty_min",
                    ));
                }
                b.when.validate(&format!("{bk}.when"))?;
            }
            let mut entries = BTreeSet::new();
            for (j, l) in m.leniency.iter().enumerate() {
                let lk = format!("{mk}.leniency[{j}]");
                nonempty(&format!("{lk}.id"), &l.id)?;
                if !entries.insert(l.id.as_str()) {
                    return Err(invalid(format!("{lk}.id"), format!("`{}` twice", l.id)));
                }
                nonempty(&format!("{lk}.description"), &l.description)?;
                if let Some(z) = &l.description_zh {
                    nonempty(&format!("{lk}.description_zh"), z)?;
                }
                nonempty(&format!("{lk}.provision"), &l.provision)?;
                if let Some(f) = &l.needs_finding {
                    nonempty(&format!("{lk}.needs_finding"), f)?;
                }
                if let Some(f) = &l.needs_finding_zh {
                    if l.needs_finding.is_none() {
                        return Err(invalid(
                            format!("{lk}.needs_finding_zh"),
                            "translates `needs_finding`, which is not given",
                        ));
                    }
                    nonempty(&format!("{lk}.needs_finding_zh"), f)?;
                }
                l.when.validate(&format!("{lk}.when"))?;
            }
        }
        Ok(())
    }
}

/// A figure's name: a key of the clue's detail, `a.b` for a nested one.
fn figure_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.split('.').any(|p| p.trim().is_empty()) {
        return Err(invalid(
            format!("{key}.`{name}`"),
            "name a key of the clue's detail, e.g. `dwell_s` or `permit.plate`",
        ));
    }
    Ok(())
}

fn nonempty(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(())
}

impl FactTest {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let pairs = [
            (
                "occurrences_at_most",
                self.occurrences_at_least,
                self.occurrences_at_most,
            ),
            ("prior_at_most", self.prior_at_least, self.prior_at_most),
            (
                "seen_for_at_most_s",
                self.seen_for_at_least_s,
                self.seen_for_at_most_s,
            ),
        ];
        for (name, lo, hi) in pairs {
            if lo.is_some_and(|v| v < 0) || hi.is_some_and(|v| v < 0) {
                return Err(invalid(format!("{key}.{name}"), "bounds must be >= 0"));
            }
            if let (Some(lo), Some(hi)) = (lo, hi)
                && hi < lo
            {
                return Err(invalid(
                    format!("{key}.{name}"),
                    "must be >= the matching `_at_least` bound",
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.level_at_least, self.level_at_most)
            && hi < lo
        {
            return Err(invalid(
                format!("{key}.level_at_most"),
                "must be >= level_at_least",
            ));
        }
        if self.corrected_within_s.is_some_and(|v| v < 0) {
            return Err(invalid(format!("{key}.corrected_within_s"), "must be >= 0"));
        }
        for (side, bounds) in [
            ("figure_at_least", &self.figure_at_least),
            ("figure_at_most", &self.figure_at_most),
        ] {
            for (name, b) in bounds {
                figure_name(&format!("{key}.{side}"), name)?;
                if !b.is_finite() {
                    return Err(invalid(format!("{key}.{side}.{name}"), "must be a number"));
                }
            }
        }
        for (name, hi) in &self.figure_at_most {
            if let Some(lo) = self.figure_at_least.get(name)
                && hi < lo
            {
                return Err(invalid(
                    format!("{key}.figure_at_most.{name}"),
                    "must be >= the matching `figure_at_least` bound",
                ));
            }
        }
        for (name, v) in &self.figure_is {
            figure_name(&format!("{key}.figure_is"), name)?;
            if !matches!(v, Value::Number(_) | Value::String(_) | Value::Bool(_)) {
                return Err(invalid(
                    format!("{key}.figure_is.{name}"),
                    "must be a text, a number or true/false",
                ));
            }
        }
        if self.corrected == Some(false) && self.corrected_within_s.is_some() {
            return Err(invalid(
                format!("{key}.corrected_within_s"),
                "contradicts `corrected = false`",
            ));
        }
        Ok(())
    }

    /// The figures these conditions name.
    fn figure_names(&self) -> impl Iterator<Item = &String> {
        self.figure_at_least
            .keys()
            .chain(self.figure_at_most.keys())
            .chain(self.figure_is.keys())
    }

    /// Whether every condition holds, with one reason per condition in English and in
    /// Chinese (none given: one reason saying so).
    pub(crate) fn check(&self, f: &Facts) -> Checked {
        let mut c = Checked {
            holds: true,
            reasons: Vec::new(),
            reasons_zh: Vec::new(),
        };
        let mut note = |holds: bool, en: String, zh: String| {
            c.holds &= holds;
            let (pe, pz) = if holds {
                ("holds", "符合")
            } else {
                ("fails", "不符合")
            };
            c.reasons.push(format!("{pe}: {en}"));
            c.reasons_zh.push(format!("{pz}：{zh}"));
        };
        let lz = |l: Level| match l {
            Level::Low => "低",
            Level::Medium => "中",
            Level::High => "高",
        };
        if let Some(l) = self.level_at_least {
            note(
                f.level >= l,
                format!("level {} (at least {})", f.level.as_str(), l.as_str()),
                format!("等级 {}（至少 {}）", lz(f.level), lz(l)),
            );
        }
        if let Some(l) = self.level_at_most {
            note(
                f.level <= l,
                format!("level {} (at most {})", f.level.as_str(), l.as_str()),
                format!("等级 {}（至多 {}）", lz(f.level), lz(l)),
            );
        }
        let mut bound = |name: &str, zh: &str, v: i64, lo: Option<i64>, hi: Option<i64>| {
            if let Some(lo) = lo {
                note(
                    v >= lo,
                    format!("{name} {v} (at least {lo})"),
                    format!("{zh} {v}（至少 {lo}）"),
                );
            }
            if let Some(hi) = hi {
                note(
                    v <= hi,
                    format!("{name} {v} (at most {hi})"),
                    format!("{zh} {v}（至多 {hi}）"),
                );
            }
        };
        bound(
            "occurrences",
            "发生次数",
            f.occurrences,
            self.occurrences_at_least,
            self.occurrences_at_most,
        );
        bound(
            "earlier clues of this kind about this subject",
            "同一主体此前同类线索（条）",
            f.prior,
            self.prior_at_least,
            self.prior_at_most,
        );
        bound(
            "seen for (s)",
            "持续（秒）",
            f.seen_for_s,
            self.seen_for_at_least_s,
            self.seen_for_at_most_s,
        );
        if let Some(want) = self.corrected {
            let (en, zh) = if f.corrected {
                ("the condition was reported over", "已报告恢复")
            } else {
                ("the condition was not reported over", "未报告恢复")
            };
            note(f.corrected == want, en.into(), zh.into());
        }
        if let Some(within) = self.corrected_within_s {
            let (en, zh) = match f.corrected_after_s {
                Some(s) => (
                    format!("corrected {s} s after the first sighting (within {within})"),
                    format!("首次发现后 {s} 秒恢复（须在 {within} 秒内）"),
                ),
                None => (
                    format!("not corrected (needed within {within} s)"),
                    format!("未恢复（须在 {within} 秒内）"),
                ),
            };
            note(f.corrected_after_s.is_some_and(|s| s <= within), en, zh);
        }
        if let Some(want) = self.owner_answered {
            let (en, zh) = if f.owner_answered {
                ("the owner's statement is on record", "当事人陈述已记录")
            } else {
                ("no statement of the owner on record", "无当事人陈述记录")
            };
            note(f.owner_answered == want, en.into(), zh.into());
        }
        let sides = [
            (&self.figure_at_least, "at least", "至少", true),
            (&self.figure_at_most, "at most", "至多", false),
        ];
        for (bounds, en_word, zh_word, lower) in sides {
            for (name, b) in bounds {
                let b_text = number_text(*b);
                match f.figures.get(name).and_then(Value::as_f64) {
                    Some(v) => note(
                        if lower { v >= *b } else { v <= *b },
                        format!("figure {name} {} ({en_word} {b_text})", number_text(v)),
                        format!("数值 {name} {}（{zh_word} {b_text}）", number_text(v)),
                    ),
                    None => note(
                        false,
                        format!("figure {name} is not a number in the record ({en_word} {b_text})"),
                        format!("记录中没有数值 {name}（{zh_word} {b_text}）"),
                    ),
                }
            }
        }
        for (name, want) in &self.figure_is {
            let got = f.figures.get(name);
            let shown = got.map_or_else(|| "absent".to_string(), Value::to_string);
            let shown_zh = got.map_or_else(|| "无".to_string(), Value::to_string);
            note(
                got.is_some_and(|g| same_figure(g, want)),
                format!("figure {name} {shown} (must be {want})"),
                format!("数值 {name} {shown_zh}（须为 {want}）"),
            );
        }
        if c.reasons.is_empty() {
            c.reasons
                .push("holds: no condition on the facts".to_string());
            c.reasons_zh.push("符合：对事实无条件".to_string());
        }
        c
    }
}

/// The outcome of one `FactTest` on the facts of a clue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub holds: bool,
    pub reasons: Vec<String>,
    pub reasons_zh: Vec<String>,
}

/// `1200`, `61.5`: a figure as people read it.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Equal figures; numbers compare by value (`5` equals `5.0`).
fn same_figure(got: &Value, want: &Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => got == want,
    }
}

/// The value at `path` (`a.b` reaches into objects) of a clue's detail, when it is a figure
/// (a number, a text or a yes/no).
pub(crate) fn figure_of(detail: &Value, path: &str) -> Option<Value> {
    let mut v = detail;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::Number(_) | Value::String(_) | Value::Bool(_) => Some(v.clone()),
        _ => None,
    }
}

impl Matter {
    /// Every figure a band or leniency condition of this matter names.
    pub(crate) fn figure_names(&self) -> BTreeSet<&String> {
        self.bands
            .iter()
            .map(|b| &b.when)
            .chain(self.leniency.iter().map(|l| &l.when))
            .flat_map(FactTest::figure_names)
            .collect()
    }
}

/// Assesses a clue with `facts` against `matter` of catalogue `cat`.
pub(crate) fn assess(cat: &MatterCatalogue, matter: &Matter, facts: Facts) -> MatterAssessment {
    let bands: Vec<BandCheck> = matter
        .bands
        .iter()
        .map(|b| {
            let c = b.when.check(&facts);
            BandCheck {
                id: b.id.clone(),
                label: b.label.clone(),
                label_zh: b.label_zh.clone(),
                penalty_min: b.penalty_min,
                penalty_max: b.penalty_max,
                holds: c.holds,
                reasons: c.reasons,
                reasons_zh: c.reasons_zh,
            }
        })
        .collect();
    let leniency = matter
        .leniency
        .iter()
        .map(|l| {
            let Checked {
                holds,
                mut reasons,
                mut reasons_zh,
            } = l.when.check(&facts);
            let status = match (holds, &l.needs_finding) {
                (false, _) => LeniencyStatus::NotMet,
                (true, Some(f)) => {
                    reasons.push(format!("to establish by a person: {f}"));
                    let fz = l.needs_finding_zh.as_deref().unwrap_or(f);
                    reasons_zh.push(format!("须由执法人员认定：{fz}"));
                    LeniencyStatus::ToEstablish
                }
                (true, None) => LeniencyStatus::Met,
            };
            LeniencyCheck {
                id: l.id.clone(),
                effect: l.effect,
                description: l.description.clone(),
                description_zh: l.description_zh.clone(),
                provision: l.provision.clone(),
                status,
                needs_finding: l.needs_finding.clone(),
                needs_finding_zh: l.needs_finding_zh.clone(),
                reasons,
                reasons_zh,
            }
        })
        .collect();
    MatterAssessment {
        catalogue_version: cat.version.clone(),
        matter: matter.id.clone(),
        name: matter.name.clone(),
        name_zh: matter.name_zh.clone(),
        violated_provision: matter.violated_provision.clone(),
        penalty_provision: matter.penalty_provision.clone(),
        currency: cat.currency.clone(),
        band: bands.iter().find(|b| b.holds).map(|b| b.id.clone()),
        bands,
        leniency,
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The catalogue of `deploy/gateway.example.toml`, as users start from it.
    fn example() -> MatterCatalogue {
        let text = include_str!("../../../deploy/gateway.example.toml");
        Config::from_toml(text).expect("example").clues.matters
    }

    fn facts(level: Level, occurrences: i64, prior: i64) -> Facts {
        Facts {
            level,
            occurrences,
            prior,
            seen_for_s: 60,
            corrected: false,
            corrected_after_s: None,
            owner_answered: false,
            figures: BTreeMap::new(),
        }
    }

    #[test]
    fn the_example_catalogue_covers_the_enforceable_clue_kinds() {
        let cat = example();
        cat.validate().expect("valid");
        for kind in [
            "grease_trap.illegal_discharge",
            "grease_trap.pumpout_overdue",
            "parking.overstay",
            "manhole.cover_open",
            "manhole.cover_open_too_long",
            "manhole.cover_tilted",
            "shopfront.trading",
            "muck_truck.no_permit",
            "muck_truck.outside_hours",
            "muck_truck.off_route",
        ] {
            assert!(cat.matter_of(kind).is_some(), "{kind} has no matter");
        }
        for kind in [
            "device.low_battery",
            "device.offline",
            "sensor.stuck",
            "grease_trap.pumpout_due",
            "grease_trap.fast_fill",
            "camera.black",
            "camera.covered",
            "camera.offline",
            "camera.not_repaired",
        ] {
            assert!(
                cat.matter_of(kind).is_none(),
                "{kind} is a fault or a reminder, not a violation"
            );
        }
        for m in &cat.matter {
            assert!(m.name_zh.is_some(), "{} has no Chinese name", m.id);
            assert!(
                m.bands.iter().all(|b| b.label_zh.is_some())
                    && m.leniency.iter().all(|l| l.description_zh.is_some()
                        && l.needs_finding.is_some() == l.needs_finding_zh.is_some()),
                "{}: every band and entry is named in both languages",
                m.id
            );
            assert!(
                m.bands
                    .last()
                    .is_some_and(|b| b.when == FactTest::default()),
                "{}: the last band catches every clue (no gap)",
                m.id
            );
        }
        let unfilled = cat.placeholders();
        assert!(
            unfilled.contains(&"clues.matters.matter[0].violated_provision".to_string())
                && unfilled.contains(&"clues.matters.matter[0].leniency[0].provision".to_string()),
            "{unfilled:?}"
        );
        for m in &cat.matter {
            assert!(
                m.violated_provision.contains("fill in") && m.penalty_provision.contains("fill in"),
                "the example quotes no statute: {}",
                m.id
            );
        }
    }

    #[test]
    fn a_first_minor_discharge_falls_in_the_lowest_band_with_first_violation_met() {
        let cat = example();
        let m = cat
            .matter_of("grease_trap.illegal_discharge")
            .expect("matter");
        let a = assess(&cat, m, facts(Level::Medium, 1, 0));
        assert_eq!(a.band.as_deref(), Some(m.bands[0].id.as_str()), "{a:#?}");
        let first = a
            .leniency
            .iter()
            .find(|l| l.id == "first_violation")
            .expect("entry");
        assert_eq!(first.status, LeniencyStatus::Met, "{first:?}");
        assert!(
            first.reasons.iter().any(|r| r.contains("earlier clues")),
            "{first:?}"
        );
        let no_fault = a
            .leniency
            .iter()
            .find(|l| l.id == "no_fault")
            .expect("entry");
        assert_eq!(no_fault.status, LeniencyStatus::ToEstablish);
        // A third discharge in a year: a higher band, first violation fails and says why.
        let a = assess(&cat, m, facts(Level::High, 4, 2));
        assert_ne!(a.band.as_deref(), Some(m.bands[0].id.as_str()), "{a:#?}");
        let first = a
            .leniency
            .iter()
            .find(|l| l.id == "first_violation")
            .expect("entry");
        assert_eq!(first.status, LeniencyStatus::NotMet);
        assert!(
            first
                .reasons
                .iter()
                .any(|r| r.starts_with("fails: earlier")),
            "{first:?}"
        );
    }

    #[test]
    fn corrected_in_time_needs_the_end_reported_within_the_window() {
        let t = FactTest {
            corrected_within_s: Some(600),
            ..Default::default()
        };
        let mut f = facts(Level::Low, 1, 0);
        assert!(!t.check(&f).holds, "not corrected");
        f.corrected = true;
        f.corrected_after_s = Some(300);
        assert!(t.check(&f).holds);
        f.corrected_after_s = Some(601);
        let c = t.check(&f);
        assert!(!c.holds);
        assert_eq!(
            c.reasons,
            vec!["fails: corrected 601 s after the first sighting (within 600)"]
        );
        assert_eq!(
            c.reasons_zh,
            vec!["不符合：首次发现后 601 秒恢复（须在 600 秒内）"]
        );
    }

    #[test]
    fn figures_of_the_record_decide_a_condition_and_say_why() {
        let cat = example();
        let m = cat
            .matter_of("grease_trap.illegal_discharge")
            .expect("matter");
        assert_eq!(
            m.figure_names().into_iter().cloned().collect::<Vec<_>>(),
            vec!["drop".to_string(), "unit".to_string()]
        );
        let minor = |detail: serde_json::Value| {
            let mut f = facts(Level::High, 1, 0);
            f.figures = m
                .figure_names()
                .into_iter()
                .filter_map(|n| Some((n.clone(), figure_of(&detail, n)?)))
                .collect();
            assess(&cat, m, f)
                .leniency
                .into_iter()
                .find(|l| l.id == "minor")
                .expect("entry")
        };
        let small = minor(serde_json::json!({"drop": 120.0, "unit": "L"}));
        assert_eq!(small.status, LeniencyStatus::Met, "{small:?}");
        assert!(
            small
                .reasons
                .contains(&"holds: figure drop 120 (at most 150)".to_string()),
            "{small:?}"
        );
        assert!(
            small
                .reasons_zh
                .contains(&"符合：数值 drop 120（至多 150）".to_string()),
            "{small:?}"
        );
        // The same number in millimetres is another measure: the unit condition fails.
        let mm = minor(serde_json::json!({"drop": 120.0, "unit": "mm"}));
        assert_eq!(mm.status, LeniencyStatus::NotMet);
        assert!(
            mm.reasons
                .contains(&"fails: figure unit \"mm\" (must be \"L\")".to_string()),
            "{mm:?}"
        );
        let big = minor(serde_json::json!({"drop": 480.5, "unit": "L"}));
        assert!(
            big.reasons
                .contains(&"fails: figure drop 480.5 (at most 150)".to_string()),
            "{big:?}"
        );
        // A record without the figure never meets a condition on it.
        let none = minor(serde_json::json!({"unit": "L"}));
        assert_eq!(none.status, LeniencyStatus::NotMet);
        assert!(
            none.reasons_zh
                .contains(&"不符合：记录中没有数值 drop（至多 150）".to_string()),
            "{none:?}"
        );
    }

    #[test]
    fn nested_figures_and_numbers_compare_by_value() {
        let d = serde_json::json!({"permit": {"holder": "Huaxin", "hours": ["22:00-06:00"]},
                                   "night": true, "n": 5});
        assert_eq!(
            figure_of(&d, "permit.holder"),
            Some(serde_json::json!("Huaxin"))
        );
        assert_eq!(figure_of(&d, "permit.hours"), None, "a list is no figure");
        assert_eq!(figure_of(&d, "permit.plate"), None);
        let t = FactTest {
            figure_is: [
                ("night".to_string(), serde_json::json!(true)),
                ("n".to_string(), serde_json::json!(5.0)),
            ]
            .into(),
            ..Default::default()
        };
        let mut f = facts(Level::Low, 1, 0);
        f.figures = [
            ("night".to_string(), serde_json::json!(true)),
            ("n".to_string(), serde_json::json!(5)),
        ]
        .into();
        assert!(t.check(&f).holds, "{:?}", t.check(&f));
        f.figures.insert("night".into(), serde_json::json!(false));
        assert!(!t.check(&f).holds);
    }

    #[test]
    fn bad_catalogue_keys_are_named() {
        let base = "[clues.matters]\nversion = \"v1\"\n[[clues.matters.matter]]\nid = \"m\"\n\
                    name = \"M\"\nkinds = [\"parking.overstay\"]\nviolated_provision = \"x\"\n\
                    penalty_provision = \"y\"\n";
        let band = "[[clues.matters.matter.bands]]\nid = \"a\"\nlabel = \"A\"\n";
        let e = Config::from_toml(base).expect_err("no band").to_string();
        assert!(e.contains("clues.matters.matter[0].bands"), "{e}");
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 200\npenalty_max = 100\n"
        ))
        .expect_err("range")
        .to_string();
        assert!(
            e.contains("clues.matters.matter[0].bands[0].penalty_max"),
            "{e}"
        );
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 0\npenalty_max = 100\nwhen = {{ prior_at_least = 3, \
             prior_at_most = 1 }}\n"
        ))
        .expect_err("bounds")
        .to_string();
        assert!(
            e.contains("clues.matters.matter[0].bands[0].when.prior_at_most"),
            "{e}"
        );
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 0\npenalty_max = 100\nwhen = {{ priors = 1 }}\n"
        ))
        .expect_err("unknown key")
        .to_string();
        assert!(e.contains("priors"), "{e}");
        let e = Config::from_toml(&base.replace("version = \"v1\"", ""))
            .expect_err("version")
            .to_string();
        assert!(e.contains("clues.matters.version"), "{e}");
        let ok = format!("{base}{band}penalty_min = 0\npenalty_max = 100\n");
        let c = Config::from_toml(&ok).expect("valid");
        assert_eq!(c.clues.matters.matter[0].bands[0].penalty_max, 100);
        let twice = format!(
            "{ok}[[clues.matters.matter]]\nid = \"n\"\nname = \"N\"\nkinds = \
             [\"parking.overstay\"]\nviolated_provision = \"x\"\npenalty_provision = \"y\"\n{band}\
             penalty_min = 0\npenalty_max = 1\n"
        );
        let e = Config::from_toml(&twice)
            .expect_err("kind twice")
            .to_string();
        assert!(e.contains("clues.matters.matter[1].kinds[0]"), "{e}");
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 0\npenalty_max = 100\nwhen = {{ figure_at_least = \
             {{ dwell_s = 900 }}, figure_at_most = {{ dwell_s = 60 }} }}\n"
        ))
        .expect_err("figure bounds")
        .to_string();
        assert!(
            e.contains("clues.matters.matter[0].bands[0].when.figure_at_most.dwell_s"),
            "{e}"
        );
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 0\npenalty_max = 100\nwhen = {{ figure_is = \
             {{ unit = [\"L\"] }} }}\n"
        ))
        .expect_err("figure value")
        .to_string();
        assert!(
            e.contains("clues.matters.matter[0].bands[0].when.figure_is.unit"),
            "{e}"
        );
        let e = Config::from_toml(&format!(
            "{base}{band}penalty_min = 0\npenalty_max = 100\nlabel_zh = \" \"\n"
        ))
        .expect_err("empty zh label")
        .to_string();
        assert!(
            e.contains("clues.matters.matter[0].bands[0].label_zh"),
            "{e}"
        );
    }
}
