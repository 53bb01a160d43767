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
use std::collections::BTreeSet;

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

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::NoPenalty => "no_penalty",
            Effect::LightPenalty => "light_penalty",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeniencyEntry {
    /// e.g. `first_violation`, `minor`, `no_fault`, `corrected_in_time`.
    pub id: String,
    pub effect: Effect,
    pub description: String,
    /// The provision that allows it (a reference the operator fills in).
    pub provision: String,
    /// Facts from the record that must hold.
    #[serde(default)]
    pub when: FactTest,
    /// What a person must establish that the record cannot show (e.g. "the owner was not at
    /// fault"): the entry is then at best `to_establish`.
    #[serde(default)]
    pub needs_finding: Option<String>,
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
    pub penalty_min: u64,
    pub penalty_max: u64,
    /// The facts hold for this band.
    pub holds: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeniencyCheck {
    pub id: String,
    pub effect: Effect,
    pub description: String,
    pub provision: String,
    pub status: LeniencyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_finding: Option<String>,
    pub reasons: Vec<String>,
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
    pub fn matter_of(&self, kind: &str) -> Option<&Matter> {
        self.matter.iter().find(|m| kind_matches(&m.kinds, kind))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
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
                nonempty(&format!("{lk}.provision"), &l.provision)?;
                if let Some(f) = &l.needs_finding {
                    nonempty(&format!("{lk}.needs_finding"), f)?;
                }
                l.when.validate(&format!("{lk}.when"))?;
            }
        }
        Ok(())
    }
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
        if self.corrected == Some(false) && self.corrected_within_s.is_some() {
            return Err(invalid(
                format!("{key}.corrected_within_s"),
                "contradicts `corrected = false`",
            ));
        }
        Ok(())
    }

    /// Whether every condition holds, with one reason per condition (none given: one reason
    /// saying so).
    pub fn check(&self, f: &Facts) -> (bool, Vec<String>) {
        let mut ok = true;
        let mut reasons = Vec::new();
        let mut note = |holds: bool, text: String| {
            ok &= holds;
            reasons.push(format!("{}: {text}", if holds { "holds" } else { "fails" }));
        };
        if let Some(l) = self.level_at_least {
            note(
                f.level >= l,
                format!("level {} (at least {})", f.level.as_str(), l.as_str()),
            );
        }
        if let Some(l) = self.level_at_most {
            note(
                f.level <= l,
                format!("level {} (at most {})", f.level.as_str(), l.as_str()),
            );
        }
        let mut bound = |name: &str, v: i64, lo: Option<i64>, hi: Option<i64>| {
            if let Some(lo) = lo {
                note(v >= lo, format!("{name} {v} (at least {lo})"));
            }
            if let Some(hi) = hi {
                note(v <= hi, format!("{name} {v} (at most {hi})"));
            }
        };
        bound(
            "occurrences",
            f.occurrences,
            self.occurrences_at_least,
            self.occurrences_at_most,
        );
        bound(
            "earlier clues of this kind about this subject",
            f.prior,
            self.prior_at_least,
            self.prior_at_most,
        );
        bound(
            "seen for (s)",
            f.seen_for_s,
            self.seen_for_at_least_s,
            self.seen_for_at_most_s,
        );
        if let Some(want) = self.corrected {
            note(
                f.corrected == want,
                if f.corrected {
                    "the condition was reported over".to_string()
                } else {
                    "the condition was not reported over".to_string()
                },
            );
        }
        if let Some(within) = self.corrected_within_s {
            let text = match f.corrected_after_s {
                Some(s) => format!("corrected {s} s after the first sighting (within {within})"),
                None => format!("not corrected (needed within {within} s)"),
            };
            note(f.corrected_after_s.is_some_and(|s| s <= within), text);
        }
        if let Some(want) = self.owner_answered {
            note(
                f.owner_answered == want,
                if f.owner_answered {
                    "the owner's statement is on record".to_string()
                } else {
                    "no statement of the owner on record".to_string()
                },
            );
        }
        if reasons.is_empty() {
            reasons.push("holds: no condition on the facts".to_string());
        }
        (ok, reasons)
    }
}

/// Assesses a clue with `facts` against `matter` of catalogue `cat`.
pub fn assess(cat: &MatterCatalogue, matter: &Matter, facts: Facts) -> MatterAssessment {
    let bands: Vec<BandCheck> = matter
        .bands
        .iter()
        .map(|b| {
            let (holds, reasons) = b.when.check(&facts);
            BandCheck {
                id: b.id.clone(),
                label: b.label.clone(),
                penalty_min: b.penalty_min,
                penalty_max: b.penalty_max,
                holds,
                reasons,
            }
        })
        .collect();
    let leniency = matter
        .leniency
        .iter()
        .map(|l| {
            let (holds, mut reasons) = l.when.check(&facts);
            let status = match (holds, &l.needs_finding) {
                (false, _) => LeniencyStatus::NotMet,
                (true, Some(f)) => {
                    reasons.push(format!("to establish by a person: {f}"));
                    LeniencyStatus::ToEstablish
                }
                (true, None) => LeniencyStatus::Met,
            };
            LeniencyCheck {
                id: l.id.clone(),
                effect: l.effect,
                description: l.description.clone(),
                provision: l.provision.clone(),
                status,
                needs_finding: l.needs_finding.clone(),
                reasons,
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
            "camera.black",
        ] {
            assert!(cat.matter_of(kind).is_some(), "{kind} has no matter");
        }
        assert!(
            cat.matter_of("device.low_battery").is_none(),
            "a flat battery is no violation"
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
        assert!(!t.check(&f).0, "not corrected");
        f.corrected = true;
        f.corrected_after_s = Some(300);
        assert!(t.check(&f).0);
        f.corrected_after_s = Some(601);
        let (ok, reasons) = t.check(&f);
        assert!(!ok);
        assert_eq!(
            reasons,
            vec!["fails: corrected 601 s after the first sighting (within 600)"]
        );
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
    }
}
