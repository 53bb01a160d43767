//! Declarative rules (`[[rules]]`) and their calendar settings (`[rules_settings]`).
//!
//! A rule selects a series (stream, metric, site, device), states a condition, and says what
//! clue to raise: kind, level (and a night level), department, cool-down and how much of the
//! readings window to attach as evidence. `deploy/rules.example.toml` documents every key and
//! is also the built-in default set ([`default_rules`]).

use crate::clue::signal::Level;
use crate::config_error::{ConfigError, invalid};
use crate::reading::{Reading, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The example rules shipped in `deploy/`, which are also the defaults.
pub(crate) const EXAMPLE_TOML: &str = include_str!("../../../deploy/rules.example.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique id; with the subject it forms the dedup key (`id/site/device`).
    pub id: String,
    /// Clue category, e.g. `manhole.cover_open`, `grease_trap.illegal_discharge`.
    pub kind: String,
    pub level: Level,
    /// Level used when the condition is observed at night (local time of the site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_level: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// One line for people; `{site}`, `{device}` and `{value}` are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub select: Selector,
    /// When the condition counts (local time of the site).
    #[serde(default)]
    pub window: TimeWindow,
    pub condition: Condition,
    /// At most one occurrence per (rule, subject) per cool-down.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: u64,
    /// Readings from this long before the trigger are attached as evidence.
    #[serde(default = "default_evidence_s")]
    pub evidence_s: u64,
    /// `false`: the rule only feeds composite rules and raises nothing itself.
    #[serde(default = "default_true")]
    pub emit: bool,
    /// Rules naming the same problem (e.g. `trap-pumpout` for "due" and "overdue") raise ONE
    /// clue per subject, keyed `problem/site/device`: a worse stage re-levels that clue (the
    /// pool records the change) instead of opening a second one; within the cool-down a
    /// stage no worse than the last one sent is counted, not sent; the clue is cleared only
    /// when every rule of the problem has ended. Default: the rule's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// `true`: while registered maintenance covers the subject (works on record, e.g. a crew
    /// lifting a manhole cover), the condition does not count (see `rules::maintenance`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unless_maintenance: bool,
}

impl RuleConfig {
    /// What the dedup key is built from: the problem, or the rule's id.
    pub(crate) fn problem_key(&self) -> &str {
        self.problem.as_deref().unwrap_or(&self.id)
    }
}

fn default_cooldown_s() -> u64 {
    1800
}
fn default_evidence_s() -> u64 {
    1800
}
fn default_true() -> bool {
    true
}

/// Which readings a rule looks at. `site` / `device` match exactly, or by prefix with a
/// trailing `*` (`r-*`). Absent fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selector {
    pub stream: Option<String>,
    pub metric: Option<String>,
    pub site: Option<String>,
    pub device: Option<String>,
}

/// `pattern` is exact, or a prefix with a trailing `*`.
pub(crate) fn site_matches(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

fn pattern_matches(pattern: &Option<String>, s: &str) -> bool {
    pattern.as_deref().is_none_or(|p| site_matches(p, s))
}

impl Selector {
    /// Matches stream, site and device (the metric is matched by the engine's index).
    pub(crate) fn matches(&self, r: &Reading) -> bool {
        self.matches_series(&r.stream, &r.site, &r.device)
    }

    /// [`Selector::matches`] for a series' parts.
    pub(crate) fn matches_series(&self, stream: &str, site: &str, device: &str) -> bool {
        self.stream.as_deref().is_none_or(|s| s == stream)
            && pattern_matches(&self.site, site)
            && pattern_matches(&self.device, device)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeWindow {
    #[default]
    Always,
    Night,
    BusinessHours,
    OffHours,
}

/// What a rule watches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Value at or above `above` / at or below `below` for at least `for_s`; once active it
    /// stays active until the value passes back over `clear_at` (hysteresis).
    Threshold {
        #[serde(default)]
        above: Option<f64>,
        #[serde(default)]
        below: Option<f64>,
        #[serde(default)]
        clear_at: Option<f64>,
        #[serde(default)]
        for_s: u64,
    },
    /// The value equals `equals` (e.g. cover `open = true`) for at least `for_s`: state held
    /// too long. Checked on every tick, so a device that reports only on change still counts.
    Held {
        equals: Value,
        #[serde(default)]
        for_s: u64,
    },
    /// The value fell by `drop` or rose by `rise` within `within_s`.
    Rate {
        #[serde(default)]
        drop: Option<f64>,
        #[serde(default)]
        rise: Option<f64>,
        within_s: u64,
    },
    /// Stuck sensor: at least `min_readings` readings spanning `for_s`, all within `tolerance`.
    /// With `during` (e.g. `business_hours`), only that part of the site's calendar counts
    /// towards `for_s`: a closed kitchen's trap level does not move, and that is no fault.
    /// With `full_at_pct`, a flat line while the trap's fill % (native, or derived from its
    /// `[[traps]]` geometry) stands at or above it is a full trap, not a stuck sensor: the
    /// outlet holds the level at the brim until the pump-out, for days when it is late (the
    /// pump-out duty clue is the one about that). A trap without a known fill is judged as
    /// before: without its depth, the brim cannot be told from any other level.
    FlatLine {
        for_s: u64,
        #[serde(default)]
        tolerance: f64,
        #[serde(default = "default_min_readings")]
        min_readings: usize,
        #[serde(default, skip_serializing_if = "is_always")]
        during: TimeWindow,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_at_pct: Option<f64>,
    },
    /// No reading from a device (matching `select`) for `after_s`; cleared when it reports.
    /// Judged on the gateway's receive clock (device clocks may be wrong, and replayed
    /// store-and-forward data carries old times), from the gateway's start at the earliest.
    /// With `during`, only that part of the site's calendar counts towards `after_s`.
    Silence {
        after_s: u64,
        #[serde(default, skip_serializing_if = "is_always")]
        during: TimeWindow,
    },
    /// A device event (`event` stream) with this name: alarm raises, recovery clears. With
    /// `for_s`, the alarm must last that long without a recovery before it raises (checked on
    /// every tick): a sensor that drops out for a few minutes and recovers by itself is
    /// recorded by the device, not worth a person's visit.
    Event {
        name: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        for_s: u64,
    },
    /// Grease trap: contents fell by `min_drop` (in the metric's unit, e.g. L) within
    /// `within_s` with no pump-out registered; judged `grace_s` after detection so the whole
    /// drop is measured and a pump-out registered meanwhile still counts.
    Discharge {
        min_drop: f64,
        within_s: u64,
        #[serde(default)]
        grace_s: u64,
    },
    /// Every rule in `rules` was active within `within_s` of each other, at the same site
    /// (`join = "site"`, default) or in the same area (`join = "area"`, see
    /// `rules_settings.areas`). The rule's `window` applies to the time of the match.
    Composite {
        rules: Vec<String>,
        within_s: u64,
        #[serde(default)]
        join: Join,
    },
}

/// What composite inputs must share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    #[default]
    Site,
    Area,
}

/// A named group of nearby sites (`[[rules_settings.areas]]`), e.g. the restaurants on a street
/// and the manholes of the sewer they drain into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaConfig {
    pub name: String,
    /// Sites, exact or prefix with a trailing `*`.
    pub sites: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_always(w: &TimeWindow) -> bool {
    *w == TimeWindow::Always
}

fn default_min_readings() -> usize {
    3
}

impl Condition {
    /// Whether the condition reads one metric (and so needs `select.metric`).
    pub(crate) fn needs_metric(&self) -> bool {
        !matches!(
            self,
            Condition::Silence { .. } | Condition::Event { .. } | Condition::Composite { .. }
        )
    }
}

/// A local-time window in hours, `start_hour <= h < end_hour`; wraps midnight when
/// `start_hour > end_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourWindow {
    pub start_hour: f64,
    pub end_hour: f64,
}

/// Per-site calendar overrides (`[[rules_settings.sites]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteCalendarConfig {
    pub site: String,
    /// The site's local time, minutes east of UTC (default: `rules_settings`').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
    /// Old spelling, in hours: still accepted; see [`RulesSettings::utc_offset_hours`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_hours: Option<f64>,
    #[serde(default)]
    pub night: Option<HourWindow>,
    #[serde(default)]
    pub business_hours: Option<HourWindow>,
    /// 0 = Monday .. 6 = Sunday.
    #[serde(default)]
    pub closed_weekdays: Vec<u8>,
}

/// `[rules_settings]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSettings {
    /// `false` turns the rules engine off.
    pub enabled: bool,
    /// With no `[[rules]]` configured, use [`default_rules`].
    pub use_default_rules: bool,
    /// Local time of the sites, minutes east of UTC (default 480, China), spelled as in
    /// `[[parking.cameras]]` and `[drone]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
    /// The old spelling, in hours (`8.0`): configs written before `utc_offset_minutes` still
    /// load. Hours cannot be a serde alias of minutes (the unit differs), so both keys exist and
    /// setting both is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utc_offset_hours: Option<f64>,
    pub night: HourWindow,
    pub business_hours: HourWindow,
    pub sites: Vec<SiteCalendarConfig>,
    /// Groups of nearby sites for composite rules with `join = "area"`.
    pub areas: Vec<AreaConfig>,
    /// After the gateway starts, presence (silence) is not judged for this long, and silence
    /// is counted from the start at the earliest: a gateway that was down did not hear the
    /// devices, which says nothing about them.
    pub startup_grace_s: u64,
}

impl Default for RulesSettings {
    fn default() -> Self {
        RulesSettings {
            enabled: true,
            use_default_rules: true,
            utc_offset_minutes: None,
            utc_offset_hours: None,
            night: HourWindow {
                start_hour: 22.0,
                end_hour: 6.0,
            },
            business_hours: HourWindow {
                start_hour: 10.0,
                end_hour: 22.0,
            },
            sites: Vec::new(),
            areas: Vec::new(),
            startup_grace_s: 300,
        }
    }
}

impl RulesSettings {
    /// The rules to run: the configured ones, or the defaults when none are configured.
    pub(crate) fn effective_rules(&self, configured: &[RuleConfig]) -> Vec<RuleConfig> {
        if !self.enabled {
            Vec::new()
        } else if configured.is_empty() && self.use_default_rules {
            default_rules()
        } else {
            configured.to_vec()
        }
    }
}

/// The file layout of `deploy/rules.example.toml` (the same keys as in the gateway config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesFile {
    /// Parsed so that the example's `[rules_settings]` is accepted; only the tests read it
    /// (the built-in defaults take the rules alone).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests only"))]
    #[serde(default)]
    pub rules_settings: RulesSettings,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// Rules matching the firmware simulator's streams (see `deploy/rules.example.toml`).
pub(crate) fn default_rules() -> Vec<RuleConfig> {
    match toml::from_str::<RulesFile>(EXAMPLE_TOML) {
        Ok(f) => f.rules,
        // Guarded by a test; never reached in a build that passed its tests.
        Err(e) => {
            tracing::error!(error = %e, "built-in rules do not parse");
            Vec::new()
        }
    }
}

fn check_window(key: String, w: &HourWindow) -> Result<(), ConfigError> {
    for h in [w.start_hour, w.end_hour] {
        if !(0.0..=24.0).contains(&h) {
            return Err(invalid(key, "hours must be within 0..=24"));
        }
    }
    if w.start_hour == w.end_hour {
        return Err(invalid(
            key,
            "start_hour and end_hour are equal (empty window)",
        ));
    }
    Ok(())
}

fn finite(key: String, v: Option<f64>) -> Result<(), ConfigError> {
    match v {
        Some(x) if !x.is_finite() => Err(invalid(key, "must be a finite number")),
        _ => Ok(()),
    }
}

const MAX_SECONDS: u64 = 90 * 24 * 3600;

fn seconds(key: String, v: u64, allow_zero: bool) -> Result<(), ConfigError> {
    if v == 0 && !allow_zero {
        return Err(invalid(key, "must be at least 1"));
    }
    if v > MAX_SECONDS {
        return Err(invalid(key, "must be at most 90 days"));
    }
    Ok(())
}

/// Default local time of the sites: China, UTC+8.
pub(crate) const DEFAULT_UTC_OFFSET_MINUTES: i32 = 8 * 60;

/// The offset from either spelling (`utc_offset_minutes` first); `None` when neither is set.
fn offset_minutes(minutes: Option<i32>, hours: Option<f64>) -> Option<i32> {
    minutes.or(hours.map(|h| (h * 60.0).round() as i32))
}

impl RulesSettings {
    /// The sites' default local time, minutes east of UTC, from either spelling.
    pub(crate) fn offset_minutes(&self) -> i32 {
        offset_minutes(self.utc_offset_minutes, self.utc_offset_hours)
            .unwrap_or(DEFAULT_UTC_OFFSET_MINUTES)
    }
}

impl SiteCalendarConfig {
    /// This site's own local time, minutes east of UTC, when it sets one.
    pub(crate) fn offset_minutes(&self) -> Option<i32> {
        offset_minutes(self.utc_offset_minutes, self.utc_offset_hours)
    }
}

/// One spelling at a time, each within ±14 h.
fn check_offset(k: &str, minutes: Option<i32>, hours: Option<f64>) -> Result<(), ConfigError> {
    if let Some(h) = hours {
        if minutes.is_some() {
            return Err(invalid(
                format!("{k}.utc_offset_hours"),
                "old spelling of utc_offset_minutes: set only utc_offset_minutes",
            ));
        }
        if !h.is_finite() || !(-14.0..=14.0).contains(&h) {
            return Err(invalid(
                format!("{k}.utc_offset_hours"),
                "must be within -14..=14",
            ));
        }
    }
    if let Some(m) = minutes
        && !(-14 * 60..=14 * 60).contains(&m)
    {
        return Err(invalid(
            format!("{k}.utc_offset_minutes"),
            "must be within -840..=840",
        ));
    }
    Ok(())
}

/// Checks settings and rules; errors name the key path (`rules[3].condition.within_s`).
pub(crate) fn validate(rules: &[RuleConfig], settings: &RulesSettings) -> Result<(), ConfigError> {
    let s = settings;
    check_offset("rules_settings", s.utc_offset_minutes, s.utc_offset_hours)?;
    check_window("rules_settings.night".into(), &s.night)?;
    check_window("rules_settings.business_hours".into(), &s.business_hours)?;
    seconds(
        "rules_settings.startup_grace_s".into(),
        s.startup_grace_s,
        true,
    )?;
    let mut sites = HashSet::new();
    for (i, site) in s.sites.iter().enumerate() {
        let k = format!("rules_settings.sites[{i}]");
        if site.site.is_empty() {
            return Err(invalid(format!("{k}.site"), "must not be empty"));
        }
        if !sites.insert(site.site.as_str()) {
            return Err(invalid(format!("{k}.site"), "duplicate site"));
        }
        check_offset(&k, site.utc_offset_minutes, site.utc_offset_hours)?;
        if let Some(w) = &site.night {
            check_window(format!("{k}.night"), w)?;
        }
        if let Some(w) = &site.business_hours {
            check_window(format!("{k}.business_hours"), w)?;
        }
        if site.closed_weekdays.iter().any(|d| *d > 6) {
            return Err(invalid(
                format!("{k}.closed_weekdays"),
                "days are 0 (Monday) ..= 6 (Sunday)",
            ));
        }
    }

    let mut areas = HashSet::new();
    for (i, a) in s.areas.iter().enumerate() {
        let k = format!("rules_settings.areas[{i}]");
        if a.name.is_empty() || !areas.insert(a.name.as_str()) {
            return Err(invalid(format!("{k}.name"), "must be non-empty and unique"));
        }
        if a.sites.is_empty() || a.sites.iter().any(String::is_empty) {
            return Err(invalid(
                format!("{k}.sites"),
                "list at least one non-empty site",
            ));
        }
    }

    let mut ids = HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let k = format!("rules[{i}]");
        if r.id.is_empty() || r.id.contains(['/', ' ']) {
            return Err(invalid(
                format!("{k}.id"),
                "must be non-empty, without `/` or spaces",
            ));
        }
        if !ids.insert(r.id.as_str()) {
            return Err(invalid(
                format!("{k}.id"),
                format!("duplicate rule id `{}`", r.id),
            ));
        }
        if r.kind.is_empty() {
            return Err(invalid(format!("{k}.kind"), "must not be empty"));
        }
        if let Some(p) = &r.problem
            && (p.is_empty() || p.contains(['/', ' ']))
        {
            return Err(invalid(
                format!("{k}.problem"),
                "must be non-empty, without `/` or spaces",
            ));
        }
        seconds(format!("{k}.cooldown_s"), r.cooldown_s, true)?;
        seconds(format!("{k}.evidence_s"), r.evidence_s, true)?;
        if r.condition.needs_metric() && r.select.metric.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                format!("{k}.select.metric"),
                "this condition needs a metric",
            ));
        }
        let c = format!("{k}.condition");
        match &r.condition {
            Condition::Threshold {
                above,
                below,
                clear_at,
                for_s,
            } => {
                finite(format!("{c}.above"), *above)?;
                finite(format!("{c}.below"), *below)?;
                finite(format!("{c}.clear_at"), *clear_at)?;
                seconds(format!("{c}.for_s"), *for_s, true)?;
                match (above, below, clear_at) {
                    (None, None, _) => {
                        return Err(invalid(c, "set `above` or `below`"));
                    }
                    (Some(_), Some(_), Some(_)) => {
                        return Err(invalid(
                            format!("{c}.clear_at"),
                            "not allowed with both `above` and `below`",
                        ));
                    }
                    (Some(a), None, Some(x)) if x > a => {
                        return Err(invalid(format!("{c}.clear_at"), "must be <= `above`"));
                    }
                    (None, Some(b), Some(x)) if x < b => {
                        return Err(invalid(format!("{c}.clear_at"), "must be >= `below`"));
                    }
                    _ => {}
                }
            }
            Condition::Held { equals, for_s } => {
                if let Value::Float(f) = equals
                    && !f.is_finite()
                {
                    return Err(invalid(format!("{c}.equals"), "must be a finite number"));
                }
                seconds(format!("{c}.for_s"), *for_s, true)?;
            }
            Condition::Rate {
                drop,
                rise,
                within_s,
            } => {
                if drop.is_none() && rise.is_none() {
                    return Err(invalid(c, "set `drop` or `rise`"));
                }
                for (name, v) in [("drop", drop), ("rise", rise)] {
                    if let Some(x) = v
                        && (!x.is_finite() || *x <= 0.0)
                    {
                        return Err(invalid(format!("{c}.{name}"), "must be a positive number"));
                    }
                }
                seconds(format!("{c}.within_s"), *within_s, false)?;
            }
            Condition::FlatLine {
                for_s,
                tolerance,
                min_readings,
                full_at_pct,
                ..
            } => {
                seconds(format!("{c}.for_s"), *for_s, false)?;
                if !tolerance.is_finite() || *tolerance < 0.0 {
                    return Err(invalid(format!("{c}.tolerance"), "must be >= 0"));
                }
                if *min_readings < 2 {
                    return Err(invalid(format!("{c}.min_readings"), "must be at least 2"));
                }
                if full_at_pct.is_some_and(|p| !p.is_finite() || p <= 0.0) {
                    return Err(invalid(format!("{c}.full_at_pct"), "must be > 0"));
                }
            }
            Condition::Silence { after_s, .. } => seconds(format!("{c}.after_s"), *after_s, false)?,
            Condition::Event { name, for_s } => {
                if name.is_empty() {
                    return Err(invalid(format!("{c}.name"), "must not be empty"));
                }
                seconds(format!("{c}.for_s"), *for_s, true)?;
            }
            Condition::Discharge {
                min_drop,
                within_s,
                grace_s,
            } => {
                if !min_drop.is_finite() || *min_drop <= 0.0 {
                    return Err(invalid(
                        format!("{c}.min_drop"),
                        "must be a positive number",
                    ));
                }
                seconds(format!("{c}.within_s"), *within_s, false)?;
                seconds(format!("{c}.grace_s"), *grace_s, true)?;
            }
            Condition::Composite { within_s, .. } => {
                seconds(format!("{c}.within_s"), *within_s, false)?;
            }
        }
    }
    // Composite references, once every id is known.
    for (i, r) in rules.iter().enumerate() {
        if let Condition::Composite { rules: parts, .. } = &r.condition {
            let k = format!("rules[{i}].condition.rules");
            if parts.len() < 2 {
                return Err(invalid(k, "a composite joins at least two rules"));
            }
            for (j, p) in parts.iter().enumerate() {
                let Some(target) = rules.iter().find(|t| &t.id == p) else {
                    return Err(invalid(format!("{k}[{j}]"), format!("no rule `{p}`")));
                };
                if matches!(target.condition, Condition::Composite { .. }) {
                    return Err(invalid(
                        format!("{k}[{j}]"),
                        "a composite cannot join another composite",
                    ));
                }
            }
        }
    }
    Ok(())
}
