//! Decisions: what a person decided on a clue (`decide {band, penalty, leniency_applied,
//! basis}`), checked against the matter catalogue when it is recorded, and the statistics by
//! matter and band.
//!
//! A decision is never refused for being outside its band: people decide, and the law allows
//! departures with a reason. It is refused only when it names something the catalogue does not
//! have (a band or leniency entry of another matter, a kind with no matter). Everything else
//! the check finds (a penalty outside the band that no applied leniency allows, a band other
//! than the one the facts point to, a leniency entry the record does not meet) is recorded with
//! the decision, in the audit chain, and raised by the oversight model `decision_outside_band`.
//!
//! The check is taken against the catalogue version in force when the decision is recorded;
//! it is stored with the decision, so editing the catalogue later never re-judges it. The
//! store keeps every decision (`decisions` table, written in the action's transaction); the
//! statistics count the latest decision of each clue.

use super::matters::{Effect, LeniencyStatus, MatterAssessment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the pool found when a decision was recorded (stored with it and in its audit entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionCheck {
    pub catalogue_version: String,
    pub matter: String,
    pub currency: String,
    /// The range of the chosen band.
    pub band_min: u64,
    pub band_max: u64,
    /// The band the recorded facts point to (`None`: no band's facts hold).
    pub applicable_band: Option<String>,
    /// The penalty lies outside the chosen band and no applied leniency entry allows it.
    pub outside_band: bool,
    /// Everything a supervisor should look at, in words (empty: a decision by the book).
    pub findings: Vec<String>,
    /// The same in Chinese (absent on decisions recorded before it was added).
    #[serde(default)]
    pub findings_zh: Vec<String>,
}

/// Checks decision (`band`, `penalty`, `leniency_applied`) against the clue's assessment.
/// `Err` names what the catalogue does not have (the decision is refused).
pub(crate) fn check(
    a: &MatterAssessment,
    band: &str,
    penalty: u64,
    leniency_applied: &[String],
) -> Result<DecisionCheck, String> {
    let Some(b) = a.bands.iter().find(|b| b.id == band) else {
        let known: Vec<&str> = a.bands.iter().map(|b| b.id.as_str()).collect();
        return Err(format!(
            "band `{band}` is not a band of matter `{}` ({})",
            a.matter,
            known.join(", ")
        ));
    };
    let mut applied = Vec::new();
    for id in leniency_applied {
        let Some(l) = a.leniency.iter().find(|l| &l.id == id) else {
            let known: Vec<&str> = a.leniency.iter().map(|l| l.id.as_str()).collect();
            return Err(format!(
                "leniency entry `{id}` is not in the list of matter `{}` ({})",
                a.matter,
                if known.is_empty() {
                    "it has none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        if !applied
            .iter()
            .any(|x: &&super::matters::LeniencyCheck| x.id == l.id)
        {
            applied.push(l);
        }
    }
    let cur = &a.currency;
    let in_band = (b.penalty_min..=b.penalty_max).contains(&penalty);
    let excused = applied.iter().any(|l| match l.effect {
        Effect::NoPenalty => penalty == 0,
        Effect::LightPenalty => penalty <= b.penalty_max,
    });
    let outside_band = !in_band && !excused;
    let mut findings = Vec::new();
    let mut findings_zh = Vec::new();
    if outside_band {
        findings.push(format!(
            "penalty {penalty} {cur} is outside band `{}` ({}..{} {cur}) and no applied \
             leniency entry allows it",
            b.id, b.penalty_min, b.penalty_max
        ));
        findings_zh.push(format!(
            "罚款 {penalty} {cur} 不在档次 `{}`（{}–{} {cur}）内，且未适用允许的从轻或不罚情形",
            b.id, b.penalty_min, b.penalty_max
        ));
    }
    match &a.band {
        Some(f) if f != band => {
            findings.push(format!(
                "band `{band}` was chosen; the recorded facts point to band `{f}`"
            ));
            findings_zh.push(format!("选择了档次 `{band}`，记录的事实指向档次 `{f}`"));
        }
        None => {
            findings.push(format!(
                "band `{band}` was chosen; no band's facts hold on the record"
            ));
            findings_zh.push(format!("选择了档次 `{band}`，记录的事实不符合任何档次"));
        }
        Some(_) => {}
    }
    for l in &applied {
        if l.status == LeniencyStatus::NotMet {
            let failed = |reasons: &[String], prefix: &str| {
                reasons
                    .iter()
                    .filter(|r| r.starts_with(prefix))
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            findings.push(format!(
                "leniency `{}` applied although the record does not meet it ({})",
                l.id,
                failed(&l.reasons, "fails")
            ));
            findings_zh.push(format!(
                "适用了情形 `{}`，但记录不符合其条件（{}）",
                l.id,
                failed(&l.reasons_zh, "不符合")
            ));
        }
        if l.effect == Effect::NoPenalty && penalty > 0 {
            findings.push(format!(
                "leniency `{}` (no penalty) applied with a penalty of {penalty} {cur}",
                l.id
            ));
            findings_zh.push(format!(
                "适用了不予处罚情形 `{}`，却处罚款 {penalty} {cur}",
                l.id
            ));
        }
    }
    Ok(DecisionCheck {
        catalogue_version: a.catalogue_version.clone(),
        matter: a.matter.clone(),
        currency: a.currency.clone(),
        band_min: b.penalty_min,
        band_max: b.penalty_max,
        applicable_band: a.band.clone(),
        outside_band,
        findings,
        findings_zh,
    })
}

/// One recorded decision as the statistics read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRow {
    pub id: i64,
    pub clue_id: i64,
    pub site: String,
    pub matter: String,
    pub catalogue_version: String,
    pub band: String,
    pub applicable_band: Option<String>,
    pub penalty: u64,
    pub outside_band: bool,
    pub leniency_applied: Vec<String>,
    pub actor: String,
    pub at_ms: i64,
}

/// Decisions of one band of one matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BandStats {
    pub decisions: u64,
    /// Penalty outside the band, no applied leniency allowing it.
    pub outside_band: u64,
    /// The band chosen is not the one the recorded facts pointed to.
    pub band_differs_from_facts: u64,
    /// Decisions with a penalty of 0.
    pub no_penalty: u64,
    pub penalty_min: Option<u64>,
    pub penalty_median: Option<f64>,
    pub penalty_max: Option<u64>,
    /// Leniency entries applied, by id.
    pub leniency: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MatterStats {
    pub decisions: u64,
    pub outside_band: u64,
    pub by_band: BTreeMap<String, BandStats>,
}

/// `GET /api/v1/decisions/stats`: the latest decision of each clue, by matter and band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DecisionStats {
    pub decisions: u64,
    pub outside_band: u64,
    pub by_matter: BTreeMap<String, MatterStats>,
}

/// Folds decision rows (any order, several per clue allowed) into statistics of each clue's
/// latest decision.
pub(crate) fn decision_stats(rows: Vec<DecisionRow>) -> DecisionStats {
    let mut latest: BTreeMap<i64, DecisionRow> = BTreeMap::new();
    for r in rows {
        match latest.get(&r.clue_id) {
            Some(l) if l.id > r.id => {}
            _ => {
                latest.insert(r.clue_id, r);
            }
        }
    }
    let mut s = DecisionStats::default();
    let mut penalties: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for r in latest.into_values() {
        s.decisions += 1;
        s.outside_band += r.outside_band as u64;
        let m = s.by_matter.entry(r.matter.clone()).or_default();
        m.decisions += 1;
        m.outside_band += r.outside_band as u64;
        let b = m.by_band.entry(r.band.clone()).or_default();
        b.decisions += 1;
        b.outside_band += r.outside_band as u64;
        b.band_differs_from_facts += (r.applicable_band.as_deref() != Some(&r.band)) as u64;
        b.no_penalty += (r.penalty == 0) as u64;
        for l in &r.leniency_applied {
            *b.leniency.entry(l.clone()).or_default() += 1;
        }
        penalties
            .entry((r.matter, r.band))
            .or_default()
            .push(r.penalty);
    }
    for ((matter, band), mut v) in penalties {
        v.sort_unstable();
        let Some(b) = s
            .by_matter
            .get_mut(&matter)
            .and_then(|m| m.by_band.get_mut(&band))
        else {
            continue;
        };
        let n = v.len();
        b.penalty_min = v.first().copied();
        b.penalty_max = v.last().copied();
        b.penalty_median = (n > 0).then(|| {
            if n % 2 == 1 {
                v[n / 2] as f64
            } else {
                (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
            }
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::matters::{BandCheck, Facts, LeniencyCheck};
    use crate::clue::signal::Level;

    fn assessment(applicable: Option<&str>, first_met: bool) -> MatterAssessment {
        let band = |id: &str, min, max| BandCheck {
            id: id.into(),
            label: id.into(),
            label_zh: None,
            penalty_min: min,
            penalty_max: max,
            holds: applicable == Some(id),
            reasons: vec![],
            reasons_zh: vec![],
        };
        let entry = |id: &str, effect, status| LeniencyCheck {
            id: id.into(),
            effect,
            description: String::new(),
            description_zh: None,
            provision: String::new(),
            status,
            needs_finding: None,
            needs_finding_zh: None,
            reasons: vec!["fails: occurrences 3 (at most 1)".into()],
            reasons_zh: vec!["不符合：发生次数 3（至多 1）".into()],
        };
        MatterAssessment {
            catalogue_version: "v1".into(),
            matter: "grease_discharge".into(),
            name: String::new(),
            name_zh: None,
            violated_provision: String::new(),
            penalty_provision: String::new(),
            currency: "CNY".into(),
            facts: Facts {
                level: Level::Medium,
                occurrences: 1,
                prior: 0,
                seen_for_s: 0,
                corrected: false,
                corrected_after_s: None,
                owner_answered: false,
                figures: Default::default(),
            },
            band: applicable.map(String::from),
            bands: vec![band("first", 0, 2000), band("repeated", 2000, 20000)],
            leniency: vec![
                entry(
                    "first_violation",
                    Effect::NoPenalty,
                    if first_met {
                        LeniencyStatus::Met
                    } else {
                        LeniencyStatus::NotMet
                    },
                ),
                entry("minor", Effect::LightPenalty, LeniencyStatus::Met),
            ],
        }
    }

    #[test]
    fn a_decision_inside_the_band_the_facts_point_to_has_no_findings() {
        let c = check(&assessment(Some("first"), true), "first", 800, &[]).expect("known");
        assert!(!c.outside_band);
        assert!(c.findings.is_empty(), "{:?}", c.findings);
        assert_eq!((c.band_min, c.band_max), (0, 2000));
        let c = check(
            &assessment(Some("first"), true),
            "first",
            0,
            &["first_violation".into()],
        )
        .expect("known");
        assert!(c.findings.is_empty(), "{:?}", c.findings);
    }

    #[test]
    fn a_penalty_outside_the_band_is_found_unless_an_applied_leniency_allows_it() {
        let a = assessment(Some("repeated"), true);
        let c = check(&a, "repeated", 30_000, &[]).expect("known");
        assert!(c.outside_band);
        assert!(c.findings[0].contains("outside band `repeated`"), "{c:?}");
        assert_eq!(
            c.findings_zh[0],
            "罚款 30000 CNY 不在档次 `repeated`（2000–20000 CNY）内，且未适用允许的从轻或不罚情形"
        );
        // Below the minimum: outside, unless a light-penalty entry is applied.
        assert!(check(&a, "repeated", 500, &[]).expect("known").outside_band);
        let light = check(&a, "repeated", 500, &["minor".into()]).expect("known");
        assert!(
            !light.outside_band && light.findings.is_empty(),
            "{light:?}"
        );
        // No penalty under a no-penalty entry; a penalty under it is a finding.
        assert!(
            !check(&a, "repeated", 0, &["first_violation".into()])
                .expect("known")
                .outside_band
        );
        let odd = check(&a, "repeated", 3000, &["first_violation".into()]).expect("known");
        assert!(!odd.outside_band);
        assert!(odd.findings[0].contains("(no penalty) applied with a penalty"));
    }

    #[test]
    fn another_band_than_the_facts_and_an_unmet_leniency_are_findings() {
        let a = assessment(Some("repeated"), false);
        let c = check(&a, "first", 0, &["first_violation".into()]).expect("known");
        assert!(!c.outside_band);
        assert_eq!(c.findings.len(), 2, "{:?}", c.findings);
        assert!(c.findings[0].contains("point to band `repeated`"));
        assert!(c.findings[1].contains("fails: occurrences 3"), "{c:?}");
        assert_eq!(
            c.findings_zh,
            vec![
                "选择了档次 `first`，记录的事实指向档次 `repeated`",
                "适用了情形 `first_violation`，但记录不符合其条件（不符合：发生次数 3（至多 1））"
            ],
            "{c:?}"
        );
    }

    #[test]
    fn unknown_bands_and_leniency_entries_are_refused_naming_the_known_ones() {
        let a = assessment(Some("first"), true);
        let e = check(&a, "severe", 0, &[]).expect_err("band");
        assert!(e.contains("first, repeated"), "{e}");
        let e = check(&a, "first", 0, &["remorse".into()]).expect_err("entry");
        assert!(e.contains("first_violation, minor"), "{e}");
    }

    #[test]
    fn statistics_count_the_latest_decision_of_each_clue_by_matter_and_band() {
        let row = |id, clue_id, band: &str, penalty, outside| DecisionRow {
            id,
            clue_id,
            site: "a".into(),
            matter: "m".into(),
            catalogue_version: "v1".into(),
            band: band.into(),
            applicable_band: Some("first".into()),
            penalty,
            outside_band: outside,
            leniency_applied: if penalty == 0 {
                vec!["first_violation".into()]
            } else {
                vec![]
            },
            actor: "ann#1".into(),
            at_ms: id,
        };
        let s = decision_stats(vec![
            row(3, 1, "first", 800, false),
            row(1, 1, "first", 90_000, true), // superseded by id 3
            row(2, 2, "first", 0, false),
            row(4, 3, "first", 1000, false),
            row(5, 4, "repeated", 50_000, true),
        ]);
        assert_eq!((s.decisions, s.outside_band), (4, 1));
        let first = &s.by_matter["m"].by_band["first"];
        assert_eq!(first.decisions, 3);
        assert_eq!(
            (first.penalty_min, first.penalty_max),
            (Some(0), Some(1000))
        );
        assert_eq!(first.penalty_median, Some(800.0));
        assert_eq!(first.no_penalty, 1);
        assert_eq!(first.leniency["first_violation"], 1);
        let rep = &s.by_matter["m"].by_band["repeated"];
        assert_eq!((rep.outside_band, rep.band_differs_from_facts), (1, 1));
    }
}
