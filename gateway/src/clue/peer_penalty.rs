//! Same act, different penalty (同事不同罚): the oversight model `peer_penalty_gap`.
//!
//! `decision_outside_band` checks one decision against the book; this one checks it against
//! colleagues. Decisions are compared on the same facts: the same matter, the band the facts
//! point to (the check recorded with the decision, not the band chosen) and the same leniency
//! entries applied. A decision whose penalty is `yellow_ratio` times above or below the median
//! of other officers' decisions on those facts (and at least `min_gap` away from it) is yellow,
//! `red_ratio` times red. Fewer than `min_peers` such decisions by others: no baseline, nothing
//! said. Like every model it only reminds a person to look; a penalty may differ for reasons
//! the record does not hold.

use super::model::Escalation;
use super::oversight::{ClueRecord, Finding, finding, is_person};
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// `[clues.oversight.peer_penalty_gap]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerPenaltyConfig {
    pub enabled: bool,
    /// Decisions by other officers on the same facts needed for a baseline.
    pub min_peers: usize,
    /// A penalty this many times above or below the peers' median is yellow...
    pub yellow_ratio: f64,
    /// ...and this many times, red.
    pub red_ratio: f64,
    /// Differences smaller than this (whole currency units) are never reported.
    pub min_gap: u64,
}

impl Default for PeerPenaltyConfig {
    fn default() -> Self {
        PeerPenaltyConfig {
            enabled: true,
            min_peers: 5,
            yellow_ratio: 2.0,
            red_ratio: 4.0,
            min_gap: 200,
        }
    }
}

impl PeerPenaltyConfig {
    pub(crate) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.min_peers == 0 {
            return Err(invalid(format!("{prefix}.min_peers"), "must be at least 1"));
        }
        if !(self.yellow_ratio > 1.0 && self.red_ratio >= self.yellow_ratio) {
            return Err(invalid(
                format!("{prefix}.red_ratio"),
                "need 1 < yellow_ratio <= red_ratio",
            ));
        }
        Ok(())
    }
}

/// One clue's latest decision, as compared.
struct Decided<'a> {
    record: &'a ClueRecord,
    actor: &'a str,
    penalty: u64,
    decided_ms: i64,
}

/// The officer behind a token's actor string (`name#id`): one person on several tokens is one
/// peer, not their own baseline.
fn officer(actor: &str) -> &str {
    actor.rsplit_once('#').map_or(actor, |(name, _)| name)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// How many times `a` is `b` (above or below), `inf` when one is 0 and the other not.
fn times_apart(a: u64, b: u64) -> f64 {
    let (lo, hi) = (a.min(b) as f64, a.max(b) as f64);
    if lo == 0.0 {
        if hi == 0.0 { 1.0 } else { f64::INFINITY }
    } else {
        hi / lo
    }
}

pub(crate) fn peer_penalty_gap(records: &[ClueRecord], cfg: &PeerPenaltyConfig) -> Vec<Finding> {
    // Facts -> the decisions taken on them.
    let mut groups: BTreeMap<(String, String, Vec<String>), Vec<Decided>> = BTreeMap::new();
    for r in records {
        let Some(d) = r.actions("decide").last() else {
            continue;
        };
        if !is_person(&d.actor) {
            continue;
        }
        let check = &d.detail["check"];
        let (Some(matter), Some(penalty)) =
            (check["matter"].as_str(), d.detail["penalty"].as_u64())
        else {
            continue;
        };
        let band = check["applicable_band"]
            .as_str()
            .or_else(|| d.detail["band"].as_str())
            .unwrap_or_default();
        let mut leniency: Vec<String> = d.detail["leniency_applied"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        leniency.sort();
        groups
            .entry((matter.to_string(), band.to_string(), leniency))
            .or_default()
            .push(Decided {
                record: r,
                actor: &d.actor,
                penalty,
                decided_ms: d.at_ms,
            });
    }
    let mut out = Vec::new();
    for ((matter, band, leniency), decided) in &groups {
        for d in decided {
            let peers: Vec<u64> = decided
                .iter()
                .filter(|p| officer(p.actor) != officer(d.actor))
                .map(|p| p.penalty)
                .collect();
            if peers.len() < cfg.min_peers {
                continue;
            }
            let n = peers.len();
            let m = median(peers);
            let apart = times_apart(d.penalty, m);
            if d.penalty.abs_diff(m) < cfg.min_gap || apart < cfg.yellow_ratio {
                continue;
            }
            let level = if apart >= cfg.red_ratio {
                Escalation::Red
            } else {
                Escalation::Yellow
            };
            let c = &d.record.clue;
            let way = if d.penalty > m { "above" } else { "below" };
            out.push(finding(
                "peer_penalty_gap",
                format!("peer_penalty_gap/{}", c.id),
                level,
                Some(c),
                vec![d.actor.to_string()],
                format!(
                    "clue {}: penalty {} is far {way} the median {m} of {n} decisions by other \
                     officers on the same facts (matter {matter}, band {band})",
                    c.id, d.penalty
                ),
                json!({"decided_ms": d.decided_ms, "matter": matter, "applicable_band": band,
                       "leniency_applied": leniency, "penalty": d.penalty, "peer_median": m,
                       "peers": n, "times_apart": if apart.is_finite() { json!(apart) } else { json!(null) }}),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clue::lifecycle::Status;
    use crate::clue::oversight::tests::{clue, record};

    const H: i64 = 3_600_000;

    /// A clue decided by `actor` with `penalty` on matter `m`, facts band `first`.
    fn decided(id: i64, actor: &str, penalty: u64, leniency: &[&str]) -> ClueRecord {
        record(
            clue(id, Status::Resolved),
            &[(
                H,
                actor,
                "decide",
                json!({"band": "first", "penalty": penalty, "leniency_applied": leniency,
                       "check": {"matter": "m", "applicable_band": "first",
                                 "outside_band": false, "findings": []}}),
            )],
        )
    }

    fn baseline() -> Vec<ClueRecord> {
        ["ann#1", "bob#2", "cat#3", "dan#4", "eve#5"]
            .iter()
            .enumerate()
            .map(|(i, a)| decided(i as i64 + 1, a, [900, 1000, 1000, 1100, 1000][i], &[]))
            .collect()
    }

    #[test]
    fn a_penalty_far_from_colleagues_on_the_same_facts_is_yellow_then_red() {
        let cfg = PeerPenaltyConfig::default();
        assert!(
            peer_penalty_gap(&baseline(), &cfg).is_empty(),
            "peers agree"
        );
        let mut v = baseline();
        v.push(decided(10, "zed#9", 2500, &[]));
        let f = peer_penalty_gap(&v, &cfg);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].level, f[0].clue_id), (Escalation::Yellow, Some(10)));
        assert_eq!(f[0].concerns, vec!["zed#9".to_string()]);
        assert_eq!(f[0].detail["peer_median"], json!(1000));
        let mut v = baseline();
        v.push(decided(11, "zed#9", 200, &[]));
        // 200 is five times below 1000: red.
        assert_eq!(peer_penalty_gap(&v, &cfg)[0].level, Escalation::Red);
    }

    #[test]
    fn other_facts_small_gaps_own_decisions_and_thin_baselines_say_nothing() {
        let cfg = PeerPenaltyConfig::default();
        // Other leniency applied: other facts, no peers.
        let mut v = baseline();
        v.push(decided(10, "zed#9", 0, &["first_violation"]));
        assert!(peer_penalty_gap(&v, &cfg).is_empty());
        // Twice the median but under `min_gap`.
        let small: Vec<ClueRecord> = ["ann#1", "bob#2", "cat#3", "dan#4", "eve#5", "zed#9"]
            .iter()
            .enumerate()
            .map(|(i, a)| decided(i as i64 + 1, a, if i == 5 { 100 } else { 50 }, &[]))
            .collect();
        assert!(peer_penalty_gap(&small, &cfg).is_empty());
        // The same officer on another token is not their own peer: four others are too few.
        let mut v: Vec<ClueRecord> = baseline().into_iter().take(4).collect();
        v.push(decided(20, "zed#9", 5000, &[]));
        v.push(decided(21, "zed#10", 1000, &[]));
        assert!(peer_penalty_gap(&v, &cfg).is_empty(), "only four peers");
    }

    #[test]
    fn ratios_must_be_above_one_and_ordered() {
        let p = "clues.oversight.peer_penalty_gap";
        let bad = PeerPenaltyConfig {
            yellow_ratio: 1.0,
            ..Default::default()
        };
        assert!(
            bad.validate(p)
                .unwrap_err()
                .to_string()
                .contains("red_ratio")
        );
        let bad = PeerPenaltyConfig {
            min_peers: 0,
            ..Default::default()
        };
        assert!(
            bad.validate(p)
                .unwrap_err()
                .to_string()
                .contains("min_peers")
        );
        assert!(PeerPenaltyConfig::default().validate(p).is_ok());
    }
}
