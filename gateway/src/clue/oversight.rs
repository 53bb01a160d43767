//! Supervision of the handling itself: models that read the clue pool's history (clues and
//! their audit entries) and raise yellow, then red warnings for the supervisor role.
//!
//! Every model is a pure function of the history, the time and its `[clues.oversight.*]`
//! section: no I/O, so each is tested on a constructed history. The pool's tick runs them
//! ([`run_models`]), applies the duplicate-act links they propose and stores the warnings
//! (`GET /api/v1/oversight/warnings`, supervisor and admin only; an officer never sees a
//! warning about themself). A warning is a reminder for a person to look, never a sanction.
//!
//! Models (key: config section):
//! - `untouched_claim`: taken (claimed or assigned) and nothing done by the holder past the
//!   deadline.
//! - `transfer_ping_pong`: a clue passed between departments, or back to one that had it.
//! - `dismissal_without_basis`: dismissed with a boilerplate reason and nothing on record.
//! - `officer_outlier`: one officer's outcomes far from the peer baseline, or repeated action
//!   against the same subject.
//! - `duplicate_act`: the same act seen by two departments (linked: one case, one lead).
//! - `closed_without_owner`: resolved or closed without the owner told or given time to answer.
//! - `decision_outside_band`: the latest decision on a clue has a penalty outside its band
//!   that no applied leniency allows (red), or another band than the facts point to, or a
//!   leniency entry the record does not meet (yellow); from the check recorded with it.
//! - `peer_penalty_gap`: same act, different penalty (同事不同罚): a penalty far from other
//!   officers' decisions on the same facts (`super::peer_penalty`).

use super::audit::AuditEntry;
use super::model::{Clue, Escalation};
use super::peer_penalty::{PeerPenaltyConfig, peer_penalty_gap};
use super::signal::Level;
use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Actors that are the gateway itself, not people: never the subject of a warning.
pub(crate) const SYSTEM_ACTORS: [&str; 4] = ["pool", "oversight", "retention", "cli"];

pub(super) fn is_person(actor: &str) -> bool {
    !SYSTEM_ACTORS.contains(&actor)
}

/// One clue with its audit entries (oldest first) as the models read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClueRecord {
    pub clue: Clue,
    pub audit: Vec<AuditEntry>,
    /// Evidence items recorded for the clue.
    pub evidence: i64,
    /// The lead this clue is linked to (duplicate act), if any.
    pub linked_to: Option<i64>,
}

impl ClueRecord {
    pub(super) fn actions<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AuditEntry> + 'a {
        self.audit.iter().filter(move |e| e.action == name)
    }

    /// Lifecycle work by a person (not comments or the pool's own entries).
    fn worked_by_people(&self) -> bool {
        self.audit.iter().any(|e| {
            is_person(&e.actor)
                && matches!(
                    e.action.as_str(),
                    "claim" | "assign" | "resolve" | "dismiss" | "transfer"
                )
        })
    }
}

/// What a model found; stored (deduplicated by `key`) as a warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub model: String,
    /// Stable identity: the same situation found again updates the same warning.
    pub key: String,
    /// `yellow` or `red`.
    pub level: Escalation,
    pub site: Option<String>,
    pub clue_id: Option<i64>,
    /// The people the warning is about (actors as in the audit log); they do not see it.
    pub concerns: Vec<String>,
    pub message: String,
    pub detail: Value,
}

/// A stored warning, as `GET /api/v1/oversight/warnings` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub id: i64,
    #[serde(flatten)]
    pub finding: Finding,
    pub first_ms: i64,
    pub updated_ms: i64,
}

/// A duplicate act to link: `linked` joins the case led by `lead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProposal {
    pub lead: i64,
    pub linked: i64,
    pub reason: String,
}

/// `[clues.oversight]`: every model can be switched off and tuned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OversightConfig {
    pub enabled: bool,
    /// How often the models run.
    pub every_s: u64,
    /// History read by the models: clues changed within this many seconds.
    pub lookback_s: u64,
    pub untouched_claim: UntouchedClaimConfig,
    pub transfer_ping_pong: PingPongConfig,
    pub dismissal_without_basis: DismissalConfig,
    pub officer_outlier: OutlierConfig,
    pub duplicate_act: DuplicateConfig,
    pub closed_without_owner: OwnerNoticeConfig,
    pub decision_outside_band: DecisionBandConfig,
    pub peer_penalty_gap: PeerPenaltyConfig,
    /// First-minor-violation leniency recommendation.
    pub leniency: LeniencyConfig,
    /// Supervision notices made from warnings: deadlines and overdue escalation.
    pub notices: super::supervision::SupervisionNoticeConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UntouchedClaimConfig {
    pub enabled: bool,
    /// Red this long after the deadline (yellow from the deadline on).
    pub red_after_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PingPongConfig {
    pub enabled: bool,
    /// Transfers of one clue that make it yellow / red.
    pub yellow_transfers: u32,
    pub red_transfers: u32,
    /// Returns to a department that already had the clue that make it yellow / red.
    pub yellow_returns: u32,
    pub red_returns: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DismissalConfig {
    pub enabled: bool,
    /// A dismissal reason shorter than this (trimmed, in characters) says nothing.
    pub min_reason_chars: usize,
    /// Reasons that say nothing whatever their length (compared lower-case, trimmed).
    pub boilerplate: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    pub enabled: bool,
    /// Officers with fewer disposals in the lookback are neither judged nor part of the baseline.
    pub min_disposals: u32,
    /// Peers needed for a baseline.
    pub min_peers: u32,
    /// Distance of a share (dismissed share, high-level share) from the peers' median.
    pub yellow_delta: f64,
    pub red_delta: f64,
    /// Clues about one subject resolved by one officer in the lookback that make it yellow / red.
    pub repeat_yellow: u32,
    pub repeat_red: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateConfig {
    pub enabled: bool,
    /// Link duplicates automatically (one lead). Off: only warn.
    pub auto_link: bool,
    /// Two clues are the same act when their seen windows, widened by this, overlap...
    pub window_s: u64,
    /// ...and they share the site and the device or plate, or lie within this distance.
    pub distance_m: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerNoticeConfig {
    pub enabled: bool,
    /// The owner's time to answer after being notified.
    pub answer_window_s: u64,
    /// Clue kinds (prefixes) with no owner to tell (public property).
    pub exempt_kinds: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionBandConfig {
    pub enabled: bool,
}

impl Default for DecisionBandConfig {
    fn default() -> Self {
        DecisionBandConfig { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeniencyConfig {
    pub enabled: bool,
    /// Highest level that counts as minor.
    pub max_level: Level,
    /// At most this many occurrences of the clue.
    pub max_occurrences: i64,
    /// No clue of the same kind about the same subject in this many seconds before.
    pub lookback_s: u64,
}

const DAY: u64 = 86_400;

impl Default for OversightConfig {
    fn default() -> Self {
        OversightConfig {
            enabled: true,
            every_s: 300,
            lookback_s: 30 * DAY,
            untouched_claim: UntouchedClaimConfig::default(),
            transfer_ping_pong: PingPongConfig::default(),
            dismissal_without_basis: DismissalConfig::default(),
            officer_outlier: OutlierConfig::default(),
            duplicate_act: DuplicateConfig::default(),
            closed_without_owner: OwnerNoticeConfig::default(),
            decision_outside_band: DecisionBandConfig::default(),
            peer_penalty_gap: PeerPenaltyConfig::default(),
            leniency: LeniencyConfig::default(),
            notices: Default::default(),
        }
    }
}
impl Default for UntouchedClaimConfig {
    fn default() -> Self {
        UntouchedClaimConfig {
            enabled: true,
            red_after_s: DAY,
        }
    }
}
impl Default for PingPongConfig {
    fn default() -> Self {
        PingPongConfig {
            enabled: true,
            yellow_transfers: 3,
            red_transfers: 5,
            yellow_returns: 1,
            red_returns: 2,
        }
    }
}
impl Default for DismissalConfig {
    fn default() -> Self {
        DismissalConfig {
            enabled: true,
            min_reason_chars: 12,
            boilerplate: [
                "ok",
                "n/a",
                "na",
                "none",
                "no problem",
                "false alarm",
                "-",
                "done",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}
impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            min_disposals: 10,
            min_peers: 3,
            yellow_delta: 0.25,
            red_delta: 0.4,
            repeat_yellow: 3,
            repeat_red: 5,
        }
    }
}
impl Default for DuplicateConfig {
    fn default() -> Self {
        DuplicateConfig {
            enabled: true,
            auto_link: true,
            window_s: 3600,
            distance_m: 50.0,
        }
    }
}
impl Default for OwnerNoticeConfig {
    fn default() -> Self {
        OwnerNoticeConfig {
            enabled: true,
            answer_window_s: 3 * DAY,
            exempt_kinds: vec!["manhole.".into()],
        }
    }
}
impl Default for LeniencyConfig {
    fn default() -> Self {
        LeniencyConfig {
            enabled: true,
            max_level: Level::Medium,
            max_occurrences: 3,
            lookback_s: 365 * DAY,
        }
    }
}

impl OversightConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let p = "clues.oversight";
        if self.lookback_s == 0 {
            return Err(invalid(format!("{p}.lookback_s"), "must be at least 1"));
        }
        if self.every_s == 0 {
            return Err(invalid(format!("{p}.every_s"), "must be at least 1"));
        }
        let pp = &self.transfer_ping_pong;
        if pp.yellow_transfers == 0 || pp.red_transfers < pp.yellow_transfers {
            return Err(invalid(
                format!("{p}.transfer_ping_pong.red_transfers"),
                "yellow_transfers must be >= 1 and red_transfers >= yellow_transfers",
            ));
        }
        if pp.yellow_returns == 0 || pp.red_returns < pp.yellow_returns {
            return Err(invalid(
                format!("{p}.transfer_ping_pong.red_returns"),
                "yellow_returns must be >= 1 and red_returns >= yellow_returns",
            ));
        }
        self.peer_penalty_gap
            .validate(&format!("{p}.peer_penalty_gap"))?;
        self.notices.validate(&format!("{p}.notices"))?;
        let o = &self.officer_outlier;
        if !(o.yellow_delta > 0.0 && o.red_delta >= o.yellow_delta && o.red_delta <= 1.0) {
            return Err(invalid(
                format!("{p}.officer_outlier.red_delta"),
                "need 0 < yellow_delta <= red_delta <= 1",
            ));
        }
        if o.repeat_yellow < 2 || o.repeat_red < o.repeat_yellow {
            return Err(invalid(
                format!("{p}.officer_outlier.repeat_red"),
                "repeat_yellow must be >= 2 and repeat_red >= repeat_yellow",
            ));
        }
        if o.min_peers == 0 {
            return Err(invalid(
                format!("{p}.officer_outlier.min_peers"),
                "must be at least 1",
            ));
        }
        let d = &self.duplicate_act;
        if !(d.distance_m.is_finite() && d.distance_m >= 0.0) {
            return Err(invalid(
                format!("{p}.duplicate_act.distance_m"),
                "must be a finite distance >= 0",
            ));
        }
        if self.leniency.max_occurrences < 1 {
            return Err(invalid(
                format!("{p}.leniency.max_occurrences"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Runs every enabled model; returns the warnings found and the duplicate links to make.
pub(crate) fn run_models(
    records: &[ClueRecord],
    now_ms: i64,
    cfg: &OversightConfig,
) -> (Vec<Finding>, Vec<LinkProposal>) {
    let mut out = Vec::new();
    let mut links = Vec::new();
    if !cfg.enabled {
        return (out, links);
    }
    if cfg.untouched_claim.enabled {
        out.extend(untouched_claim(records, now_ms, &cfg.untouched_claim));
    }
    if cfg.transfer_ping_pong.enabled {
        out.extend(transfer_ping_pong(records, &cfg.transfer_ping_pong));
    }
    if cfg.dismissal_without_basis.enabled {
        out.extend(dismissal_without_basis(
            records,
            &cfg.dismissal_without_basis,
        ));
    }
    if cfg.officer_outlier.enabled {
        out.extend(officer_outlier(records, &cfg.officer_outlier));
    }
    if cfg.duplicate_act.enabled {
        let (f, l) = duplicate_act(records, &cfg.duplicate_act);
        out.extend(f);
        links = l;
    }
    if cfg.closed_without_owner.enabled {
        out.extend(closed_without_owner(
            records,
            now_ms,
            &cfg.closed_without_owner,
        ));
    }
    if cfg.decision_outside_band.enabled {
        out.extend(decision_outside_band(records));
    }
    if cfg.peer_penalty_gap.enabled {
        out.extend(peer_penalty_gap(records, &cfg.peer_penalty_gap));
    }
    (out, links)
}

pub(super) fn finding(
    model: &str,
    key: String,
    level: Escalation,
    clue: Option<&Clue>,
    concerns: Vec<String>,
    message: String,
    detail: Value,
) -> Finding {
    Finding {
        model: model.into(),
        key,
        level,
        site: clue.map(|c| c.subject.site.clone()),
        clue_id: clue.map(|c| c.id),
        concerns,
        message,
        detail,
    }
}

/// Claimed but untouched: the holder took the clue and did nothing on record since, and the
/// deadline passed. The overdue escalation says "late"; this says "taken and left", which is
/// worse: nobody else will pick it up while it looks taken.
pub(crate) fn untouched_claim(
    records: &[ClueRecord],
    now_ms: i64,
    cfg: &UntouchedClaimConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in records {
        let c = &r.clue;
        if !matches!(
            c.status,
            super::lifecycle::Status::Claimed | super::lifecycle::Status::Assigned
        ) || now_ms <= c.deadline_ms
        {
            continue;
        }
        let Some(holder) = c.assignee.as_deref() else {
            continue;
        };
        let Some(taken) = r
            .audit
            .iter()
            .rev()
            .find(|e| matches!(e.action.as_str(), "claim" | "assign"))
        else {
            continue;
        };
        let touched = r
            .audit
            .iter()
            .any(|e| e.seq > taken.seq && e.actor == holder);
        if touched {
            continue;
        }
        let red = now_ms > c.deadline_ms.saturating_add(cfg.red_after_s as i64 * 1000);
        out.push(finding(
            "untouched_claim",
            format!("untouched_claim/{}", c.id),
            if red {
                Escalation::Red
            } else {
                Escalation::Yellow
            },
            Some(c),
            vec![holder.to_string()],
            format!(
                "clue {} taken by {holder} at {} ms and untouched since; deadline was {} ms",
                c.id, taken.at_ms, c.deadline_ms
            ),
            json!({"holder": holder, "taken_ms": taken.at_ms, "deadline_ms": c.deadline_ms,
                   "overdue_s": (now_ms - c.deadline_ms) / 1000}),
        ));
    }
    out
}

/// Transfer ping-pong: a clue handed between departments again and again, or back to a
/// department that already had it, is being avoided rather than handled.
pub(crate) fn transfer_ping_pong(records: &[ClueRecord], cfg: &PingPongConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in records {
        let transfers: Vec<&AuditEntry> = r.actions("transfer").collect();
        if transfers.is_empty() {
            continue;
        }
        let mut held: Vec<String> = Vec::new();
        if let Some(first) = transfers[0]
            .detail
            .get("from_department")
            .and_then(Value::as_str)
        {
            held.push(first.to_string());
        }
        let mut returns = 0u32;
        for t in &transfers {
            let dept = t
                .detail
                .get("department")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if held.contains(&dept) {
                returns += 1;
            }
            held.push(dept);
        }
        let n = transfers.len() as u32;
        let level = if n >= cfg.red_transfers || returns >= cfg.red_returns {
            Escalation::Red
        } else if n >= cfg.yellow_transfers || returns >= cfg.yellow_returns {
            Escalation::Yellow
        } else {
            continue;
        };
        let concerns: BTreeSet<String> = transfers
            .iter()
            .filter(|t| is_person(&t.actor))
            .map(|t| t.actor.clone())
            .collect();
        out.push(finding(
            "transfer_ping_pong",
            format!("transfer_ping_pong/{}", r.clue.id),
            level,
            Some(&r.clue),
            concerns.into_iter().collect(),
            format!(
                "clue {} transferred {n} times ({returns} back to a department that had it): {}",
                r.clue.id,
                held.join(" -> ")
            ),
            json!({"transfers": n, "returns": returns, "departments": held}),
        ));
    }
    out
}

/// Dismissal without a basis: the reason says nothing (too short or boilerplate). Red when
/// nothing else is on record either (no comment, no owner contact before the dismissal) or
/// the clue was high level: a serious clue waved away without a word is what this watches.
pub(crate) fn dismissal_without_basis(
    records: &[ClueRecord],
    cfg: &DismissalConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in records {
        let Some(d) = r.actions("dismiss").last() else {
            continue;
        };
        if r.clue.status.is_open() {
            continue; // reopened since
        }
        let reason = d
            .detail
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_lowercase();
        let weak = reason.chars().count() < cfg.min_reason_chars
            || cfg
                .boilerplate
                .iter()
                .any(|b| b.trim().to_lowercase() == reason);
        if !weak {
            continue;
        }
        let supported = r.audit.iter().any(|e| {
            e.seq < d.seq
                && is_person(&e.actor)
                && matches!(
                    e.action.as_str(),
                    "comment" | "notify_owner" | "owner_response"
                )
        });
        let high = d.detail.get("level").and_then(Value::as_str) == Some("high");
        let level = if !supported || high {
            Escalation::Red
        } else {
            Escalation::Yellow
        };
        out.push(finding(
            "dismissal_without_basis",
            format!("dismissal_without_basis/{}/{}", r.clue.id, d.seq),
            level,
            Some(&r.clue),
            vec![d.actor.clone()],
            format!(
                "clue {} dismissed by {} with reason {reason:?}{}",
                r.clue.id,
                d.actor,
                if supported {
                    ""
                } else {
                    " and nothing else on record"
                }
            ),
            json!({"reason": reason, "supported": supported, "high_level": high,
                   "evidence_items": r.evidence, "dismissed_ms": d.at_ms}),
        ));
    }
    out
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[derive(Default)]
struct Officer {
    disposals: u32,
    dismissed: u32,
    high: u32,
    /// Resolved clues per subject (`site/device/plate`).
    subjects: BTreeMap<String, BTreeSet<i64>>,
}

/// One officer far from the peer baseline: the share of their disposals that are dismissals,
/// or that concern high-level clues, differs from the median of the other officers by
/// `yellow_delta` (red: `red_delta`). Also: one officer resolving clue after clue against the
/// same subject (possible targeting, or a relationship to look at).
pub(crate) fn officer_outlier(records: &[ClueRecord], cfg: &OutlierConfig) -> Vec<Finding> {
    let mut officers: BTreeMap<String, Officer> = BTreeMap::new();
    for r in records {
        for e in &r.audit {
            if !is_person(&e.actor) || !matches!(e.action.as_str(), "resolve" | "dismiss") {
                continue;
            }
            let o = officers.entry(e.actor.clone()).or_default();
            o.disposals += 1;
            if e.action == "dismiss" {
                o.dismissed += 1;
            } else {
                let s = &r.clue.subject;
                let key = format!(
                    "{}/{}/{}",
                    s.site,
                    s.device.as_deref().unwrap_or(""),
                    s.plate.as_deref().unwrap_or("")
                );
                o.subjects.entry(key).or_default().insert(r.clue.id);
            }
            if e.detail.get("level").and_then(Value::as_str) == Some("high") {
                o.high += 1;
            }
        }
    }
    let mut out = Vec::new();
    let judged: Vec<(&String, &Officer)> = officers
        .iter()
        .filter(|(_, o)| o.disposals >= cfg.min_disposals)
        .collect();
    type Share = fn(&Officer) -> f64;
    let metrics: [(&str, Share); 2] = [
        ("dismissed_share", |o| {
            o.dismissed as f64 / o.disposals as f64
        }),
        ("high_level_share", |o| o.high as f64 / o.disposals as f64),
    ];
    for (name, o) in &judged {
        let peers: Vec<&Officer> = judged
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(_, p)| *p)
            .collect();
        if (peers.len() as u32) < cfg.min_peers {
            break;
        }
        for (metric, share) in metrics {
            let Some(base) = median(peers.iter().map(|p| share(p)).collect()) else {
                continue;
            };
            let mine = share(o);
            let delta = (mine - base).abs();
            let level = if delta >= cfg.red_delta {
                Escalation::Red
            } else if delta >= cfg.yellow_delta {
                Escalation::Yellow
            } else {
                continue;
            };
            out.push(finding(
                "officer_outlier",
                format!("officer_outlier/{name}/{metric}"),
                level,
                None,
                vec![(*name).clone()],
                format!(
                    "{name}: {metric} {mine:.2} against a peer median of {base:.2} over {} disposals",
                    o.disposals
                ),
                json!({"metric": metric, "share": mine, "peer_median": base,
                       "disposals": o.disposals, "peers": peers.len()}),
            ));
        }
    }
    for (name, o) in &officers {
        for (subject, clues) in &o.subjects {
            let n = clues.len() as u32;
            let level = if n >= cfg.repeat_red {
                Escalation::Red
            } else if n >= cfg.repeat_yellow {
                Escalation::Yellow
            } else {
                continue;
            };
            out.push(Finding {
                model: "officer_outlier".into(),
                key: format!("officer_outlier/{name}/subject/{subject}"),
                level,
                site: subject.split('/').next().map(String::from),
                clue_id: None,
                concerns: vec![name.clone()],
                message: format!("{name} acted on {n} clues about the same subject {subject}"),
                // The plate by its name, so the personal-data mask finds it in key and message.
                detail: json!({"metric": "same_subject", "subject": subject, "clues": clues,
                               "plate": subject.rsplit_once('/').map(|(_, p)| p).filter(|p| !p.is_empty())}),
            });
        }
    }
    out
}

/// Metres between two WGS84 points (haversine).
fn distance_m(a: super::signal::GeoPoint, b: super::signal::GeoPoint) -> f64 {
    let r = 6_371_000.0_f64;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dla = la2 - la1;
    let dlo = (b.lon - a.lon).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// The same act, seen by two departments: same site; same device, same plate or within
/// `distance_m`; seen windows overlapping once widened by `window_s`; different departments.
pub(crate) fn same_act(a: &Clue, b: &Clue, cfg: &DuplicateConfig) -> bool {
    if a.subject.site != b.subject.site || a.department == b.department {
        return false;
    }
    let eq = |x: &Option<String>, y: &Option<String>| x.is_some() && x == y;
    let near = match (a.subject.location, b.subject.location) {
        (Some(p), Some(q)) => distance_m(p, q) <= cfg.distance_m,
        _ => false,
    };
    if !(eq(&a.subject.device, &b.subject.device) || eq(&a.subject.plate, &b.subject.plate) || near)
    {
        return false;
    }
    let w = cfg.window_s as i64 * 1000;
    a.first_seen_ms - w <= b.last_seen_ms && b.first_seen_ms - w <= a.last_seen_ms
}

/// One violation, one case. Pairs of clues about the same act ([`same_act`]) are linked: the
/// clue a person took first (else the older one) leads. Yellow when found; red once people of
/// both departments work the act (the case is being handled twice).
pub(crate) fn duplicate_act(
    records: &[ClueRecord],
    cfg: &DuplicateConfig,
) -> (Vec<Finding>, Vec<LinkProposal>) {
    let mut out = Vec::new();
    let mut links = Vec::new();
    let by_id: BTreeMap<i64, &ClueRecord> = records.iter().map(|r| (r.clue.id, r)).collect();
    let mut pairs: Vec<(&ClueRecord, &ClueRecord, bool)> = Vec::new();
    // Already linked pairs, for the red check.
    for r in records {
        if let Some(lead) = r.linked_to.and_then(|l| by_id.get(&l)) {
            pairs.push((lead, r, true));
        }
    }
    let mut taken: BTreeSet<i64> = records
        .iter()
        .filter(|r| r.linked_to.is_some())
        .map(|r| r.clue.id)
        .collect();
    // Candidates only: same site and device, same site and plate, or both located on the same
    // site (compared pairwise; few clues carry a location). Keeps a month of clues linear-ish.
    let mut buckets: BTreeMap<(&str, u8, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let s = &r.clue.subject;
        if let Some(d) = s.device.as_deref() {
            buckets.entry((&s.site, 0, d)).or_default().push(i);
        }
        if let Some(p) = s.plate.as_deref() {
            buckets.entry((&s.site, 1, p)).or_default().push(i);
        }
        if s.location.is_some() {
            buckets.entry((&s.site, 2, "")).or_default().push(i);
        }
    }
    let mut candidates: BTreeSet<(usize, usize)> = BTreeSet::new();
    for members in buckets.values() {
        for (k, &i) in members.iter().enumerate() {
            for &j in &members[k + 1..] {
                candidates.insert((i.min(j), i.max(j)));
            }
        }
    }
    for (i, j) in candidates {
        let (a, b) = (&records[i], &records[j]);
        if taken.contains(&a.clue.id) || taken.contains(&b.clue.id) {
            continue;
        }
        if !same_act(&a.clue, &b.clue, cfg) {
            continue;
        }
        let key = |r: &ClueRecord| (r.clue.claimed_ms.unwrap_or(i64::MAX), r.clue.id);
        let (lead, other) = if key(a) <= key(b) { (a, b) } else { (b, a) };
        taken.insert(other.clue.id);
        if cfg.auto_link {
            links.push(LinkProposal {
                lead: lead.clue.id,
                linked: other.clue.id,
                reason: format!(
                    "same act seen by {} and {}",
                    lead.clue.department.as_deref().unwrap_or("-"),
                    other.clue.department.as_deref().unwrap_or("-")
                ),
            });
        }
        pairs.push((lead, other, false));
    }
    for (lead, other, linked) in pairs {
        let both = lead.worked_by_people() && other.worked_by_people();
        let concerns: BTreeSet<String> = [lead, other]
            .iter()
            .flat_map(|r| r.audit.iter())
            .filter(|e| is_person(&e.actor))
            .map(|e| e.actor.clone())
            .collect();
        out.push(finding(
            "duplicate_act",
            format!("duplicate_act/{}/{}", lead.clue.id, other.clue.id),
            if both {
                Escalation::Red
            } else {
                Escalation::Yellow
            },
            Some(&lead.clue),
            if both {
                concerns.into_iter().collect()
            } else {
                Vec::new()
            },
            format!(
                "clues {} ({}) and {} ({}) are one act{}",
                lead.clue.id,
                lead.clue.department.as_deref().unwrap_or("-"),
                other.clue.id,
                other.clue.department.as_deref().unwrap_or("-"),
                if both {
                    ": both departments are working it"
                } else {
                    ""
                }
            ),
            json!({"lead": lead.clue.id, "linked": other.clue.id,
                   "already_linked": linked || cfg.auto_link, "both_worked": both}),
        ));
    }
    (out, links)
}

/// Whether the owner was told and could answer: a resolved clue (a decision against the
/// owner) with no notification on record is yellow; closing it so, or before the owner's
/// answer window ended without an answer, is red. Dismissed clues need no notice.
pub(crate) fn closed_without_owner(
    records: &[ClueRecord],
    now_ms: i64,
    cfg: &OwnerNoticeConfig,
) -> Vec<Finding> {
    let _ = now_ms;
    let mut out = Vec::new();
    for r in records {
        let c = &r.clue;
        if cfg
            .exempt_kinds
            .iter()
            .any(|k| c.kind.starts_with(k.as_str()))
        {
            continue;
        }
        let Some(resolve) = r.actions("resolve").last() else {
            continue;
        };
        if !matches!(
            c.status,
            super::lifecycle::Status::Resolved | super::lifecycle::Status::Closed
        ) {
            continue;
        }
        let notified = r
            .actions("notify_owner")
            .chain(r.actions("owner_notice_delivered"))
            .filter(|e| e.seq < resolve.seq)
            .map(|e| e.at_ms)
            .min();
        let answered = r.actions("owner_response").any(|e| e.seq < resolve.seq);
        let close = r.actions("close").last();
        let window = cfg.answer_window_s as i64 * 1000;
        let (level, why) = match (notified, close) {
            (None, None) => (Escalation::Yellow, "resolved without notifying the owner"),
            (None, Some(_)) => (Escalation::Red, "closed without notifying the owner"),
            (Some(n), _) if !answered && resolve.at_ms < n.saturating_add(window) => match close {
                None => (
                    Escalation::Yellow,
                    "resolved before the owner's time to answer ended",
                ),
                Some(_) => (
                    Escalation::Red,
                    "closed before the owner's time to answer ended",
                ),
            },
            _ => continue,
        };
        let concerns: BTreeSet<String> = std::iter::once(resolve)
            .chain(close)
            .map(|e| e.actor.clone())
            .filter(|a| is_person(a))
            .collect();
        out.push(finding(
            "closed_without_owner",
            format!("closed_without_owner/{}", c.id),
            level,
            Some(c),
            concerns.into_iter().collect(),
            format!("clue {}: {why}", c.id),
            json!({"notified_ms": notified, "answered": answered,
                   "resolved_ms": resolve.at_ms, "closed_ms": close.map(|e| e.at_ms),
                   "answer_window_s": cfg.answer_window_s}),
        ));
    }
    out
}

/// Decisions against the discretion standard: the latest `decide` entry of each clue, judged
/// by the check the pool recorded with it (the catalogue version in force then). A penalty
/// outside the band that no applied leniency allows is red; another band than the facts point
/// to, or a leniency entry the record does not meet, is yellow. A later decision by the book
/// does not lower a warning already raised: the supervisor saw the first one.
pub(crate) fn decision_outside_band(records: &[ClueRecord]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in records {
        let Some(d) = r.actions("decide").last() else {
            continue;
        };
        let check = &d.detail["check"];
        let findings: Vec<String> = check["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if findings.is_empty() {
            continue;
        }
        let level = if check["outside_band"].as_bool() == Some(true) {
            Escalation::Red
        } else {
            Escalation::Yellow
        };
        let c = &r.clue;
        out.push(finding(
            "decision_outside_band",
            format!("decision_outside_band/{}", c.id),
            level,
            Some(c),
            if is_person(&d.actor) {
                vec![d.actor.clone()]
            } else {
                vec![]
            },
            format!("clue {}: {}", c.id, findings.join("; ")),
            json!({"decided_ms": d.at_ms, "matter": check["matter"],
                   "catalogue_version": check["catalogue_version"], "band": d.detail["band"],
                   "applicable_band": check["applicable_band"], "penalty": d.detail["penalty"],
                   "band_min": check["band_min"], "band_max": check["band_max"],
                   "leniency_applied": d.detail["leniency_applied"], "findings": findings}),
        ));
    }
    out
}

/// Whether `actor` (a token's actor string, `name#id`) is one of the people a warning is
/// about: the same token, or the same name on another token.
pub(crate) fn concerns_actor(w: &Finding, actor: &str) -> bool {
    let name = |a: &str| a.rsplit_once('#').map(|(n, _)| n.to_string());
    w.concerns
        .iter()
        .any(|c| c == actor || (name(c).is_some() && name(c) == name(actor)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::clue::lifecycle::Status;
    use crate::clue::signal::Subject;

    const H: i64 = 3_600_000;

    pub(in crate::clue) fn clue(id: i64, status: Status) -> Clue {
        Clue {
            id,
            rule: "r".into(),
            kind: "grease_trap.illegal_discharge".into(),
            level: Level::Medium,
            status,
            subject: Subject {
                site: "s1".into(),
                device: Some(format!("d{id}")),
                ..Default::default()
            },
            dedup_key: format!("k{id}"),
            title: "t".into(),
            detail: json!({}),
            department: Some("water".into()),
            assisting: Vec::new(),
            assignee: None,
            resolution: None,
            first_seen_ms: 0,
            last_seen_ms: 0,
            occurrences: 1,
            created_ms: 0,
            updated_ms: 0,
            deadline_ms: 10 * H,
            escalation: Escalation::None,
            claimed_ms: None,
            resolved_ms: None,
            closed_ms: None,
            cleared_ms: None,
            cleared_note: None,
        }
    }

    /// Builds a history: (at_ms, actor, action, detail).
    pub(in crate::clue) fn record(c: Clue, entries: &[(i64, &str, &str, Value)]) -> ClueRecord {
        let mut audit = vec![AuditEntry {
            seq: 1,
            at_ms: 0,
            actor: "pool".into(),
            action: "created".into(),
            clue_id: Some(c.id),
            detail: json!({"level": c.level}),
            prev_hash: String::new(),
            hash: String::new(),
        }];
        for (i, (at, actor, action, detail)) in entries.iter().enumerate() {
            let mut d = detail.clone();
            if d.get("level").is_none() {
                d["level"] = json!(c.level);
            }
            audit.push(AuditEntry {
                seq: i as i64 + 2,
                at_ms: *at,
                actor: actor.to_string(),
                action: action.to_string(),
                clue_id: Some(c.id),
                detail: d,
                prev_hash: String::new(),
                hash: String::new(),
            });
        }
        ClueRecord {
            clue: c,
            audit,
            evidence: 2,
            linked_to: None,
        }
    }

    fn claimed(id: i64, by: &str) -> Clue {
        let mut c = clue(id, Status::Claimed);
        c.assignee = Some(by.into());
        c.claimed_ms = Some(H);
        c
    }

    #[test]
    fn untouched_claim_fires_yellow_then_red_and_not_when_worked() {
        let cfg = UntouchedClaimConfig {
            enabled: true,
            red_after_s: 3600,
        };
        let left = record(claimed(1, "ann#1"), &[(H, "ann#1", "claim", json!({}))]);
        assert!(untouched_claim(std::slice::from_ref(&left), 9 * H, &cfg).is_empty());
        let y = untouched_claim(std::slice::from_ref(&left), 10 * H + 1, &cfg);
        assert_eq!(y[0].level, Escalation::Yellow);
        assert_eq!(y[0].concerns, vec!["ann#1".to_string()]);
        let r = untouched_claim(std::slice::from_ref(&left), 12 * H, &cfg);
        assert_eq!(r[0].level, Escalation::Red);
        // Normal: claimed, then noted the visit.
        let worked = record(
            claimed(2, "bob#2"),
            &[
                (H, "bob#2", "claim", json!({})),
                (
                    2 * H,
                    "bob#2",
                    "comment",
                    json!({"text": "visited, pump-out ordered"}),
                ),
            ],
        );
        assert!(untouched_claim(&[worked], 12 * H, &cfg).is_empty());
    }

    fn transfer(from: &str, to: &str) -> Value {
        json!({"department": to, "from_department": from, "reason": "not ours"})
    }

    #[test]
    fn ping_pong_fires_on_a_return_and_on_many_transfers_not_on_one_handover() {
        let cfg = PingPongConfig::default();
        let bounced = record(
            clue(1, Status::Transferred),
            &[
                (H, "ann#1", "transfer", transfer("water", "market")),
                (2 * H, "mo#2", "transfer", transfer("market", "water")),
            ],
        );
        let f = transfer_ping_pong(&[bounced], &cfg);
        assert_eq!(f[0].level, Escalation::Yellow);
        assert_eq!(f[0].detail["returns"], 1);
        assert_eq!(f[0].concerns.len(), 2);
        let mut steps = Vec::new();
        let depts = ["water", "market", "env", "water", "market", "env"];
        for w in depts.windows(2) {
            steps.push((H, "x#1", "transfer", transfer(w[0], w[1])));
        }
        let f = transfer_ping_pong(&[record(clue(2, Status::Transferred), &steps)], &cfg);
        assert_eq!(f[0].level, Escalation::Red);
        // Normal: handed once to the right department.
        let once = record(
            clue(3, Status::Transferred),
            &[(H, "ann#1", "transfer", transfer("water", "market"))],
        );
        assert!(transfer_ping_pong(&[once], &cfg).is_empty());
    }

    #[test]
    fn dismissal_without_basis_fires_on_boilerplate_and_not_on_a_real_reason() {
        let cfg = DismissalConfig::default();
        let dismissed = |id, reason: &str, before: &[(i64, &str, &str, Value)]| {
            let mut e = before.to_vec();
            e.push((2 * H, "ann#1", "dismiss", json!({"reason": reason})));
            record(clue(id, Status::Dismissed), &e)
        };
        let bare = dismissed(1, "ok", &[]);
        let f = dismissal_without_basis(&[bare], &cfg);
        assert_eq!(f[0].level, Escalation::Red, "nothing else on record");
        let commented = dismissed(
            2,
            "n/a",
            &[(
                H,
                "ann#1",
                "comment",
                json!({"text": "site visit: permit shown"}),
            )],
        );
        assert_eq!(
            dismissal_without_basis(&[commented], &cfg)[0].level,
            Escalation::Yellow
        );
        let fine = dismissed(3, "pump-out truck on site, receipt no. 4471", &[]);
        assert!(dismissal_without_basis(&[fine], &cfg).is_empty());
    }

    /// `n` disposals by `who`, `dismissed` of them dismissals, each on its own subject.
    fn disposals(who: &str, first_id: i64, n: i64, dismissed: i64, high: i64) -> Vec<ClueRecord> {
        (0..n)
            .map(|i| {
                let action = if i < dismissed { "dismiss" } else { "resolve" };
                let mut c = clue(first_id + i, Status::Resolved);
                if i < high {
                    c.level = Level::High;
                }
                record(c, &[(H, who, action, json!({"reason": "x"}))])
            })
            .collect()
    }

    #[test]
    fn officer_outlier_fires_far_from_peers_and_on_one_subject_and_not_on_a_normal_team() {
        let cfg = OutlierConfig::default();
        let mut team = Vec::new();
        team.extend(disposals("ann#1", 0, 10, 2, 1));
        team.extend(disposals("bob#2", 100, 10, 1, 1));
        team.extend(disposals("cai#3", 200, 10, 2, 2));
        team.extend(disposals("dan#4", 300, 10, 3, 1));
        assert!(officer_outlier(&team, &cfg).is_empty(), "a normal team");
        let mut odd = team.clone();
        odd.extend(disposals("eve#5", 400, 10, 9, 1));
        let f = officer_outlier(&odd, &cfg);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].concerns, vec!["eve#5".to_string()]);
        assert_eq!(f[0].level, Escalation::Red);
        assert_eq!(f[0].detail["metric"], "dismissed_share");
        // The same subject again and again.
        let mut same = team;
        for id in 500..503 {
            let mut c = clue(id, Status::Resolved);
            c.subject.device = Some("trap-7".into());
            same.push(record(c, &[(H, "bob#2", "resolve", json!({}))]));
        }
        let f = officer_outlier(&same, &cfg);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].detail["metric"], "same_subject");
        assert_eq!(f[0].level, Escalation::Yellow);
    }

    #[test]
    fn duplicate_act_links_two_departments_and_turns_red_when_both_work_it() {
        let cfg = DuplicateConfig::default();
        let mut a = clue(1, Status::New);
        a.subject.device = Some("trap-1".into());
        a.first_seen_ms = 10 * H;
        a.last_seen_ms = 11 * H;
        let mut b = a.clone();
        b.id = 2;
        b.department = Some("environment".into());
        b.first_seen_ms = 11 * H + 1000;
        b.last_seen_ms = 11 * H + 1000;
        b.claimed_ms = Some(12 * H);
        let recs = vec![record(a.clone(), &[]), record(b.clone(), &[])];
        let (f, links) = duplicate_act(&recs, &cfg);
        assert_eq!(
            links,
            vec![LinkProposal {
                lead: 2,
                linked: 1,
                reason: "same act seen by environment and water".into()
            }],
            "the clue someone took leads"
        );
        assert_eq!(f[0].level, Escalation::Yellow);
        // Linked, and then both departments claim their own.
        let mut ra = record(a.clone(), &[(13 * H, "ann#1", "claim", json!({}))]);
        ra.linked_to = Some(2);
        let rb = record(b.clone(), &[(12 * H, "eli#9", "claim", json!({}))]);
        let (f, links) = duplicate_act(&[ra, rb], &cfg);
        assert!(links.is_empty(), "already linked");
        assert_eq!(f[0].level, Escalation::Red);
        // Normal: same department, or another device, or days apart.
        let mut c = b.clone();
        c.department = a.department.clone();
        assert!(
            duplicate_act(&[record(a.clone(), &[]), record(c, &[])], &cfg)
                .1
                .is_empty()
        );
        let mut d = b.clone();
        d.subject.device = Some("trap-2".into());
        assert!(
            duplicate_act(&[record(a.clone(), &[]), record(d, &[])], &cfg)
                .1
                .is_empty()
        );
        let mut e = b;
        e.first_seen_ms = 40 * H;
        e.last_seen_ms = 40 * H;
        assert!(
            duplicate_act(&[record(a, &[]), record(e, &[])], &cfg)
                .1
                .is_empty()
        );
    }

    #[test]
    fn duplicate_act_by_location_links_points_within_the_distance_only() {
        let cfg = DuplicateConfig::default();
        let at = |id: i64, dept: &str, lat: f64| {
            let mut c = clue(id, Status::New);
            c.subject.device = None;
            c.subject.location = Some(crate::clue::signal::GeoPoint { lat, lon: 120.0 });
            c.department = Some(dept.into());
            record(c, &[])
        };
        // 0.0003 degrees of latitude is about 33 m; 0.001 about 111 m.
        let near = [at(1, "water", 30.0), at(2, "environment", 30.0003)];
        assert_eq!(duplicate_act(&near, &cfg).1.len(), 1);
        let far = [at(1, "water", 30.0), at(2, "environment", 30.001)];
        assert!(duplicate_act(&far, &cfg).1.is_empty());
    }

    #[test]
    fn closed_without_owner_fires_without_notice_and_not_after_notice_and_answer() {
        let cfg = OwnerNoticeConfig::default();
        let resolved = record(
            clue(1, Status::Resolved),
            &[(H, "ann#1", "resolve", json!({}))],
        );
        let f = closed_without_owner(&[resolved], 0, &cfg);
        assert_eq!(f[0].level, Escalation::Yellow);
        let closed = record(
            clue(2, Status::Closed),
            &[
                (H, "ann#1", "resolve", json!({})),
                (2 * H, "sue#4", "close", json!({})),
            ],
        );
        let f = closed_without_owner(&[closed], 0, &cfg);
        assert_eq!(f[0].level, Escalation::Red);
        assert_eq!(
            f[0].concerns,
            vec!["ann#1".to_string(), "sue#4".to_string()]
        );
        let rushed = record(
            clue(3, Status::Closed),
            &[
                (H, "ann#1", "notify_owner", json!({"channel": "sms"})),
                (2 * H, "ann#1", "resolve", json!({})),
                (3 * H, "sue#4", "close", json!({})),
            ],
        );
        assert_eq!(
            closed_without_owner(&[rushed], 0, &cfg)[0].level,
            Escalation::Red
        );
        // Normal: told, answered, then decided and closed.
        let fair = record(
            clue(4, Status::Closed),
            &[
                (H, "ann#1", "notify_owner", json!({"channel": "letter"})),
                (
                    2 * H,
                    "ann#1",
                    "owner_response",
                    json!({"statement": "pump broke"}),
                ),
                (3 * H, "ann#1", "resolve", json!({})),
                (4 * H, "sue#4", "close", json!({})),
            ],
        );
        assert!(closed_without_owner(&[fair], 0, &cfg).is_empty());
        // A notice sent through a channel counts once delivered, not when it was queued.
        let queued_only = record(
            clue(6, Status::Closed),
            &[
                (
                    H,
                    "ann#1",
                    "send_owner_notice",
                    json!({"channel": "sms", "notice": 1}),
                ),
                (3 * H, "ann#1", "resolve", json!({})),
                (4 * H, "sue#4", "close", json!({})),
            ],
        );
        assert_eq!(
            closed_without_owner(&[queued_only], 0, &cfg)[0].level,
            Escalation::Red
        );
        let delivered = record(
            clue(7, Status::Closed),
            &[
                (
                    H,
                    "ann#1",
                    "send_owner_notice",
                    json!({"channel": "sms", "notice": 2}),
                ),
                (
                    H,
                    "owner-notify:sms",
                    "owner_notice_delivered",
                    json!({"channel": "sms", "notice": 2, "at": H}),
                ),
                (
                    2 * H,
                    "ann#1",
                    "owner_response",
                    json!({"statement": "fixed"}),
                ),
                (3 * H, "ann#1", "resolve", json!({})),
                (4 * H, "sue#4", "close", json!({})),
            ],
        );
        assert!(closed_without_owner(&[delivered], 0, &cfg).is_empty());
        let mut cover = clue(5, Status::Closed);
        cover.kind = "manhole.cover_open".into();
        let public = record(cover, &[(H, "ann#1", "resolve", json!({}))]);
        assert!(closed_without_owner(&[public], 0, &cfg).is_empty());
    }

    #[test]
    fn a_normal_history_raises_nothing_in_any_model() {
        let cfg = OversightConfig::default();
        let fair = record(
            {
                let mut c = clue(1, Status::Closed);
                c.assignee = Some("ann#1".into());
                c
            },
            &[
                (H, "ann#1", "claim", json!({})),
                (H, "ann#1", "notify_owner", json!({"channel": "sms"})),
                (
                    2 * H,
                    "ann#1",
                    "owner_response",
                    json!({"statement": "fixed"}),
                ),
                (3 * H, "ann#1", "resolve", json!({})),
                (
                    3 * H,
                    "ann#1",
                    "decide",
                    json!({"band": "first", "penalty": 0, "leniency_applied": ["first_violation"],
                           "check": {"outside_band": false, "findings": []}}),
                ),
                (4 * H, "sue#4", "close", json!({})),
            ],
        );
        let open = record(clue(2, Status::New), &[]);
        let (f, l) = run_models(&[fair, open], 100 * H, &cfg);
        assert!(f.is_empty() && l.is_empty(), "{f:?}");
    }

    #[test]
    fn a_decision_outside_its_band_is_red_another_band_yellow_and_a_later_fair_one_clears() {
        let decide = |penalty: i64, outside: bool, findings: Vec<&str>| {
            json!({"band": "first", "penalty": penalty, "leniency_applied": [],
                   "check": {"matter": "m", "catalogue_version": "v1", "band_min": 0,
                             "band_max": 2000, "applicable_band": "first",
                             "outside_band": outside, "findings": findings}})
        };
        let held = claimed(1, "ann#1");
        let outside = record(
            held.clone(),
            &[(
                H,
                "ann#1",
                "decide",
                decide(9000, true, vec!["penalty 9000 outside"]),
            )],
        );
        let f = decision_outside_band(&[outside]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Escalation::Red);
        assert_eq!(f[0].concerns, vec!["ann#1".to_string()]);
        assert!(f[0].message.contains("penalty 9000 outside"), "{f:?}");
        assert_eq!(f[0].detail["band_max"], json!(2000));
        let other_band = record(
            held.clone(),
            &[(
                H,
                "ann#1",
                "decide",
                decide(100, false, vec!["facts point to `repeated`"]),
            )],
        );
        assert_eq!(
            decision_outside_band(&[other_band])[0].level,
            Escalation::Yellow
        );
        // Superseded by a decision by the book: nothing new is found.
        let fixed = record(
            held,
            &[
                (
                    H,
                    "ann#1",
                    "decide",
                    decide(9000, true, vec!["penalty 9000 outside"]),
                ),
                (2 * H, "sue#4", "decide", decide(800, false, vec![])),
            ],
        );
        assert!(decision_outside_band(&[fixed]).is_empty());
    }

    #[test]
    fn the_person_concerned_is_recognised_on_any_of_their_tokens() {
        let f = Finding {
            model: "m".into(),
            key: "k".into(),
            level: Escalation::Yellow,
            site: None,
            clue_id: None,
            concerns: vec!["ann#1".into()],
            message: String::new(),
            detail: Value::Null,
        };
        assert!(concerns_actor(&f, "ann#1"));
        assert!(concerns_actor(&f, "ann#7"));
        assert!(!concerns_actor(&f, "bob#1"));
    }

    #[test]
    fn bad_oversight_keys_are_named() {
        let e = crate::config::Config::from_toml(
            "[clues.oversight.transfer_ping_pong]\nyellow_transfers = 4\nred_transfers = 2\n",
        )
        .expect_err("red below yellow");
        assert!(
            e.to_string().contains("transfer_ping_pong.red_transfers"),
            "{e}"
        );
        let e = crate::config::Config::from_toml("[clues.oversight.duplicate_act]\nwindow = 3\n")
            .expect_err("unknown key");
        assert!(e.to_string().contains("window"), "{e}");
    }

    /// Benchmark: `cargo test -p gateway --release --lib oversight_models_speed -- --ignored
    /// --nocapture`. A month of a busy pool: 20,000 clues, 6 audit entries each, 40 officers.
    #[test]
    #[ignore = "benchmark: cargo test -p gateway --release --lib oversight_models_speed -- --ignored --nocapture"]
    fn oversight_models_speed() {
        let officers: Vec<String> = (0..40).map(|i| format!("officer{i}#{i}")).collect();
        let depts = ["water", "market", "city-management"];
        let records: Vec<ClueRecord> = (0..20_000i64)
            .map(|i| {
                let who = officers[(i % 40) as usize].as_str();
                let mut c = clue(i, Status::Closed);
                c.department = Some(depts[(i % 3) as usize].into());
                c.subject.device = Some(format!("d{}", i % 5000));
                c.first_seen_ms = i * 60_000;
                c.last_seen_ms = i * 60_000 + 1000;
                let action = if i % 5 == 0 { "dismiss" } else { "resolve" };
                record(
                    c,
                    &[
                        (H, who, "claim", json!({})),
                        (H, who, "notify_owner", json!({"channel": "sms"})),
                        (2 * H, who, "owner_response", json!({"statement": "ok"})),
                        (
                            3 * H,
                            who,
                            action,
                            json!({"reason": "checked on site with the owner"}),
                        ),
                        (4 * H, "sup#1", "close", json!({})),
                    ],
                )
            })
            .collect();
        let cfg = OversightConfig::default();
        let t = std::time::Instant::now();
        let (f, l) = run_models(&records, 100 * H, &cfg);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "oversight models: {} clues in {ms:.1} ms ({} findings, {} links)",
            records.len(),
            f.len(),
            l.len()
        );
    }
}
