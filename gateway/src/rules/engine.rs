//! The rules engine as a pure state machine: readings and a clock in, [`ClueSignal`]s out.
//!
//! No tokio and no wall clock in here (the `task` module drives it), so every behaviour is
//! tested with recorded reading sequences and a fake clock.
//!
//! Two clocks, each for what it can judge. Device time orders a device's readings and places
//! what happened (a drop at 02:10, a cover opened at night), so replayed or accelerated
//! (simulated) streams behave the same as live ones. The gateway's receive clock (reading
//! `received_time_ms`, and the tick time) judges presence: silence is "nothing *received* for
//! so long", counted from the engine's start at the earliest (a gateway that was down heard
//! nothing, which says nothing about the devices), so store-and-forward replays with old
//! device times never make a device look offline. Waiting for time to pass without new
//! readings (minimum durations, a discharge's grace period) advances a device's clock by the
//! receive time elapsed since its last reading.
//!
//! Per reading: the series window is updated once (late readings are kept as evidence but not
//! evaluated; redeliveries are dropped), then every rule indexed under the metric whose selector
//! matches is evaluated for its subject (site, device). Conditions produce a raw true/false that
//! goes through [`Flap`] (minimum duration, cool-down); transitions become signals.

use super::RulesError;
use super::calendar::Calendar;
use super::config::{
    AreaConfig, Condition, Join, RuleConfig, RulesSettings, TimeWindow, site_matches, validate,
};
use super::flap::{Flap, Hysteresis, Transition};
use super::flat::{FlatSummary, Late};
use super::grease::{PumpoutRegistry, Traps};
use super::keys::{DeviceSlot, FastMap, SeriesKey, SeriesTable, StateKey, StateMap, StateRef};
use super::maintenance::MaintenanceRegistry;
#[cfg(test)]
use super::running::supported_extreme;
use super::running::supported_peak;
use super::window::{Push, Window};
use crate::clue::signal::{ClueEvent, ClueSignal, Evidence, EvidenceReading, Level, Subject};
use crate::decode::native::{EVENT_STREAM, STATE_STREAM};
use crate::reading::{Name, Reading, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Readings kept per series at most (a chatty sensor cannot grow memory).
const MAX_WINDOW_LEN: usize = 2048;
/// Readings are kept at least this long for evidence.
const MIN_RETENTION_MS: i64 = 30 * 60 * 1000;
/// Readings a window keeps whatever their age, within what it kept before flat-line runs were
/// summaries (`Retention::floor_ms`): a discharge reads the two readings before its span
/// (`PEAK_NEIGHBOURS`), the peak's own neighbour when judged, and the readings since (two
/// confirm it), at any interval; sixteen leave room for a few more between. At one reading a
/// minute the hour kept is more than this, so it costs a sparse reporter only.
const KEEP_READINGS: usize = 16;

#[cfg(test)]
thread_local! {
    /// Tests: engines built while set judge flat lines over their windows, which keep every
    /// flat-line rule's span, as before the summaries (`flat`): the oracle the summaries
    /// must agree with.
    pub(crate) static FLAT_BY_WINDOW_TEST: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Tests: while set, readings find their series by their names only, never from their
    /// device's slot (the oracle the slot's series list must agree with).
    pub(crate) static SERIES_BY_NAME_TEST: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

/// Whether a reading may take its series from its device's slot (always, outside tests).
fn series_from_slot() -> bool {
    #[cfg(test)]
    if SERIES_BY_NAME_TEST.with(|f| f.get()) {
        return false;
    }
    true
}

fn flat_by_window() -> bool {
    #[cfg(test)]
    if FLAT_BY_WINDOW_TEST.with(|f| f.get()) {
        return true;
    }
    false
}

/// What a metric's windows keep: readings younger than `keep_ms` (the spans and evidence of
/// its rules), and the newest [`KEEP_READINGS`] younger than `floor_ms` (what the windows
/// kept when they held the flat-line rules' spans too).
#[derive(Debug, Clone, Copy)]
struct Retention {
    keep_ms: i64,
    floor_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_ms: MIN_RETENTION_MS,
            floor_ms: MIN_RETENTION_MS,
        }
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct EngineStats {
    pub readings: u64,
    pub occurrences: u64,
    /// Activations inside a cool-down (flapping): counted, not sent.
    pub suppressed: u64,
    pub cleared: u64,
    /// Trap drops explained by a registered pump-out.
    pub pumpout_explained: u64,
    /// Readings whose condition did not count because registered maintenance covered them.
    pub maintenance_explained: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Trap drops that the readings after them did not confirm (dropouts, echoes).
    pub unconfirmed_drops: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Series {
    /// The map's key again, so a lookup by borrowed view can hand out the shared key.
    key: SeriesKey,
    window: Window,
    unit: Name,
    /// The flat runs of the flat-line rules reading the series, one per tolerance: they
    /// outlive the window's readings. Absent from snapshots written before (see
    /// `Engine::restore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flats: Vec<FlatSummary>,
}

impl Series {
    /// Prefetch hints for what a new reading touches behind the series (see
    /// [`crate::prefetch`]); the series itself should be in cache by then.
    fn prefetch_parts(&self) {
        self.window.prefetch();
        crate::prefetch::bytes(
            self.flats.as_ptr(),
            std::mem::size_of_val(self.flats.as_slice()),
        );
    }

    /// The stage after [`Series::prefetch_parts`]: the running judgements' list and the flat
    /// runs' newest marks.
    fn prefetch_deep(&self) {
        self.window.prefetch_running();
        for f in &self.flats {
            f.prefetch();
        }
    }

    fn new(key: SeriesKey, unit: Name, keep: Retention, flat_by_window: bool) -> Self {
        let floor = if flat_by_window { 0 } else { KEEP_READINGS };
        Series {
            key,
            // Never more than the windows kept before (the floor): the same judgements.
            window: Window::new(keep.keep_ms.min(keep.floor_ms), MAX_WINDOW_LEN)
                .with_floor(floor, keep.floor_ms),
            unit,
            flats: Vec::new(),
        }
    }

    /// Pushes a reading into the window and the flat runs.
    fn push(&mut self, t: i64, v: &Value) -> Push {
        let pushed = self.window.push(t, v);
        let Some(x) = v.as_f64().filter(|_| !self.flats.is_empty()) else {
            return pushed;
        };
        match pushed {
            Push::Appended => self.flats.iter_mut().for_each(|f| f.append(t, x)),
            Push::Late => {
                let w = &self.window;
                for f in &mut self.flats {
                    if f.late(t, x, || w.late_view(t)) == Late::Unplaced {
                        *f = FlatSummary::of_window(w, f.tolerance());
                    }
                }
            }
            Push::Duplicate => {}
        }
        pushed
    }

    /// The flat run for `tolerance`, made from the window's readings when there is none yet
    /// (a rule added by a reload).
    fn flat(&mut self, tolerance: f64) -> &FlatSummary {
        let k = match self.flats.iter().position(|f| f.is_for(tolerance)) {
            Some(k) => k,
            None => {
                self.flats.reserve_exact(1);
                self.flats
                    .push(FlatSummary::of_window(&self.window, tolerance));
                self.flats.len() - 1
            }
        };
        &self.flats[k]
    }

    /// Makes the flat runs of the flat-line rules of `c` that read this series (before its
    /// first reading, or from what its window holds).
    fn add_flats(&mut self, c: &Compiled) {
        if c.flat_by_window {
            return;
        }
        let k = &self.key;
        let Some(list) = c.by_metric.get(k.metric.as_str()) else {
            return;
        };
        for ri in list.for_site(&k.site) {
            let rule = &c.rules[ri];
            if let Condition::FlatLine { tolerance, .. } = rule.condition
                && rule.select.matches_series(&k.stream, &k.site, &k.device)
                && !self.flats.iter().any(|f| f.is_for(tolerance))
            {
                self.flats.reserve_exact(1);
                self.flats
                    .push(FlatSummary::of_window(&self.window, tolerance));
            }
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RuleState {
    flap: Flap,
    raw: bool,
    /// Threshold state after hysteresis (before the time-window mask).
    hyst: bool,
    last_t: Option<i64>,
    /// Receive time of the reading that set `last_t` (presence and waiting on the receive
    /// clock; see the module docs).
    #[serde(default)]
    last_rx: Option<i64>,
    last_value: Option<Value>,
    series: Option<SeriesKey>,
}

impl RuleState {
    /// The device's clock now, estimated from its last reading and the receive time since.
    fn device_now(&self, rx_now: i64) -> Option<i64> {
        let t = self.last_t?;
        let waited = self
            .last_rx
            .map_or(0, |rx| rx_now.saturating_sub(rx).max(0));
        Some(t.saturating_add(waited))
    }
}

/// The rules reading one metric, split by site so a reading is checked only against the rules
/// of its own site (a county config has one threshold per restaurant: 1,000 rules, of which
/// a reading concerns a handful).
#[derive(Default)]
struct MetricRules {
    /// Rules without a site or with a prefix pattern (`r-0*`), in rule order.
    any_site: Vec<usize>,
    /// Rules for one exact site, in rule order.
    by_site: FastMap<String, Vec<usize>>,
}

impl MetricRules {
    fn add(&mut self, rule: usize, site: Option<&str>) {
        match site {
            Some(s) if !s.ends_with('*') => {
                self.by_site.entry(s.to_string()).or_default().push(rule)
            }
            _ => self.any_site.push(rule),
        }
    }

    /// The candidate rules for a reading of `site`, in rule order (the order signals and
    /// composite inputs were always produced in).
    fn for_site<'a>(&'a self, site: &str) -> MergeSorted<'a> {
        MergeSorted {
            a: &self.any_site,
            b: self.by_site.get(site).map_or(&[], Vec::as_slice),
        }
    }
}

/// Two ascending index lists, merged.
struct MergeSorted<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl Iterator for MergeSorted<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

/// Rules turned into lookup tables; rebuilt on reload.
struct Compiled {
    rules: Vec<RuleConfig>,
    calendar: Calendar,
    /// Metric name -> rules reading it (event rules sit under `name`). Looked up per reading,
    /// so foldhash like the engine's other per-reading maps.
    by_metric: FastMap<String, MetricRules>,
    silence: Vec<usize>,
    /// Rule -> composites it feeds.
    composites_by_input: HashMap<usize, Vec<usize>>,
    /// Composite -> its input rules.
    composite_parts: HashMap<usize, Vec<usize>>,
    /// Problem -> the rules raising it (only problems shared by several rules).
    problem_rules: HashMap<String, Vec<usize>>,
    retention: FastMap<String, Retention>,
    areas: Vec<AreaConfig>,
    /// Tests: flat lines judged over the windows (see [`FLAT_BY_WINDOW_TEST`]).
    flat_by_window: bool,
    /// As configured (kept for snapshots).
    settings: RulesSettings,
}

impl Compiled {
    fn new(rules: Vec<RuleConfig>, settings: &RulesSettings) -> Result<Self, RulesError> {
        validate(&rules, settings)?;
        let mut c = Compiled {
            calendar: Calendar::new(settings),
            by_metric: FastMap::default(),
            silence: Vec::new(),
            composites_by_input: HashMap::new(),
            composite_parts: HashMap::new(),
            problem_rules: HashMap::new(),
            retention: FastMap::default(),
            flat_by_window: flat_by_window(),
            areas: settings.areas.clone(),
            settings: settings.clone(),
            rules: Vec::new(),
        };
        for (i, r) in rules.iter().enumerate() {
            if r.problem.is_some() {
                c.problem_rules
                    .entry(r.problem_key().to_string())
                    .or_default()
                    .push(i);
            }
        }
        for (i, r) in rules.iter().enumerate() {
            let evidence_ms = r.evidence_s as i64 * 1000;
            // What the window keeps for the rule, and what it kept before flat lines were
            // summaries (the floor).
            let (metric, need_ms, floor_ms) = match &r.condition {
                Condition::Silence { .. } => {
                    c.silence.push(i);
                    continue;
                }
                Condition::Composite { rules: parts, .. } => {
                    let idx: Vec<usize> = parts
                        .iter()
                        .filter_map(|p| rules.iter().position(|x| &x.id == p))
                        .collect();
                    for &j in &idx {
                        c.composites_by_input.entry(j).or_default().push(i);
                    }
                    c.composite_parts.insert(i, idx);
                    continue;
                }
                Condition::Event { .. } => ("name".to_string(), evidence_ms, evidence_ms),
                Condition::Rate { within_s, .. } => {
                    let need = evidence_ms.max(*within_s as i64 * 1000);
                    (r.select.metric.clone().unwrap_or_default(), need, need)
                }
                Condition::Discharge { within_s, .. } => {
                    // A drop waiting for its judgement pins what it reads (`reads_from`).
                    let need = evidence_ms.max(*within_s as i64 * 1000);
                    (r.select.metric.clone().unwrap_or_default(), need, need)
                }
                Condition::FlatLine { for_s, during, .. } => {
                    // The window kept the run: coverage needs one reading older than the
                    // span; counting only some hours (business hours) needs the nights and
                    // closed days in between. The run is a summary now (`flat`): the window
                    // keeps the evidence.
                    let old = evidence_ms.max(*for_s as i64 * 2000).max(match during {
                        TimeWindow::Always => 0,
                        _ => *for_s as i64 * 1000 + 3 * 24 * 3_600_000,
                    });
                    let need = if c.flat_by_window { old } else { evidence_ms };
                    (r.select.metric.clone().unwrap_or_default(), need, old)
                }
                Condition::Threshold { .. } | Condition::Held { .. } => (
                    r.select.metric.clone().unwrap_or_default(),
                    evidence_ms,
                    evidence_ms,
                ),
            };
            let keep = c.retention.entry(metric.clone()).or_default();
            keep.keep_ms = keep.keep_ms.max(need_ms);
            keep.floor_ms = keep.floor_ms.max(floor_ms);
            c.by_metric
                .entry(metric)
                .or_default()
                .add(i, r.select.site.as_deref());
        }
        c.rules = rules;
        Ok(c)
    }

    /// What a composite's inputs must share: the site, or the area the site belongs to.
    fn join_key(&self, join: Join, site: &str) -> Option<String> {
        match join {
            Join::Site => Some(site.to_string()),
            Join::Area => self
                .areas
                .iter()
                .find(|a| a.sites.iter().any(|p| site_matches(p, site)))
                .map(|a| format!("area:{}", a.name)),
        }
    }

    fn level_at(&self, rule: &RuleConfig, site: &str, at_ms: i64) -> Level {
        match rule.night_level {
            Some(n) if self.calendar.is_night(site, at_ms) => n,
            _ => rule.level,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PendingDischarge {
    rule: usize,
    site: Name,
    device: Name,
    series: SeriesKey,
    /// When the contents were at their peak before the drop.
    from_ms: i64,
    /// When the drop crossed the threshold.
    at_ms: i64,
    due_ms: i64,
    /// The same deadline on the receive clock (a device that stops reporting after the drop
    /// is still judged once the grace period has passed).
    #[serde(default)]
    due_rx_ms: i64,
}

impl PendingDischarge {
    /// The oldest reading its judgement and evidence read: the window keeps it until then.
    fn reads_from(&self, rule: &RuleConfig, w: &Window) -> i64 {
        let before_peak = w
            .range_with_previous(self.from_ms, self.from_ms - 1, 1)
            .next()
            .map_or(self.from_ms, |(t, _)| t);
        let evidence = self.at_ms.saturating_sub(rule.evidence_s as i64 * 1000);
        before_peak.min(self.from_ms).min(evidence)
    }
}

impl Live {
    /// Sets the windows' pins from the drops waiting for judgement on them.
    fn pin_pending<'a>(&mut self, c: &Compiled, keys: impl Iterator<Item = &'a SeriesKey>) {
        for k in keys {
            let Some(pos) = self.series.find(k) else {
                continue;
            };
            let w = &mut self.series.at_mut(pos).window;
            let pin = self
                .pending
                .iter()
                .filter(|p| p.series == *k)
                .map(|p| p.reads_from(&c.rules[p.rule], w))
                .min()
                .unwrap_or(i64::MAX);
            w.set_pin(pin);
        }
    }
}

/// A rule became active (sent or not): input for composite rules.
struct Activation {
    rule: usize,
    site: String,
    at_ms: i64,
    evidence: Vec<Evidence>,
}

/// A composite input's latest activation: time, site, evidence.
type SeenInput = (i64, String, Vec<Evidence>);

/// What a transition becomes.
struct Trigger<'a> {
    rule: usize,
    site: &'a str,
    device: Option<&'a str>,
    at_ms: i64,
    transition: Transition,
    /// Replaces `{value}` in titles.
    value: String,
    detail: serde_json::Value,
    series: Option<&'a SeriesKey>,
    evidence_to: i64,
    /// Replaces the conventional `rule/site/device` dedup key (area composites).
    key: Option<String>,
    /// Added to the evidence after the readings (a flat line's run, see [`flat_note`]).
    note: Option<String>,
}

/// The evidence of a flat line: the run the judgement saw, of which the readings shown are
/// the end only. The run is kept as a summary (`flat`), not its readings: a stuck sensor's
/// six business hours take days of readings (issue 24).
fn flat_note(
    n: usize,
    start: i64,
    to: i64,
    counted_ms: i64,
    (lo, hi): (f64, f64),
    unit: &str,
    evidence_s: u64,
) -> String {
    format!(
        "Flat run: {n} readings from device time {start} ms to {to} ms ({:.1} h, {:.1} h of \
         them counted), lowest {} {unit}, highest {} {unit}. The gateway keeps the run as \
         this summary; the readings above are its last {} minutes only.",
        (to - start) as f64 / 3_600_000.0,
        counted_ms as f64 / 3_600_000.0,
        fmt_num(lo),
        fmt_num(hi),
        evidence_s / 60,
    )
}

/// What was sent for one shared problem of one subject in its current episode.
#[derive(Debug)]
struct ProblemSent {
    at_ms: Option<i64>,
    level: Level,
    /// Kinds sent in this episode.
    stages: Vec<String>,
}

impl Default for ProblemSent {
    fn default() -> Self {
        ProblemSent {
            at_ms: None,
            level: Level::Low,
            stages: Vec::new(),
        }
    }
}

/// Everything that changes while the engine runs (kept apart from the compiled rules so a
/// reload can swap those and keep this).
#[derive(Default)]
struct Live {
    series: SeriesTable<Series>,
    states: StateMap<RuleState>,
    /// (composite, input rule, join key) -> latest activation (time, site, evidence).
    composite_seen: HashMap<(usize, usize, String), SeenInput>,
    composite_flaps: HashMap<(usize, String), Flap>,
    pending: Vec<PendingDischarge>,
    traps: Traps,
    pumpouts: PumpoutRegistry,
    maintenance: MaintenanceRegistry,
    /// (problem, site, device) -> time and level of the last occurrence sent for a problem
    /// shared by several rules (one problem, one clue: see `RuleConfig::problem`), and the
    /// rules (stages) sent in the current episode.
    problem_sent: HashMap<(String, String, String), ProblemSent>,
    now_ms: i64,
    /// The receive clock: newest tick time or reading receive time.
    rx_now_ms: i64,
    /// Receive clock at the engine's start (first tick or reading), for the start-up grace.
    started_rx_ms: Option<i64>,
    /// Devices whose link is down (their last state message was `offline`, the broker's last
    /// will): site -> device -> receive time it went down. See [`Live::on_link_state`].
    offline: HashMap<String, HashMap<String, i64>>,
    stats: EngineStats,
    /// A window's numbers while a rate or discharge is rescanned (see `Window::running_ok`):
    /// one buffer reused, not an allocation per judgement (what it holds between judgements
    /// means nothing).
    scratch: Vec<(i64, f64)>,
}

/// The rules engine. See the module docs.
pub struct Engine {
    c: Compiled,
    live: Live,
    /// Grease-trap geometry: level, fill and volume from whatever a trap's sensor reports.
    traps: crate::install::TrapInstalls,
    /// The readings derived from the message being judged; kept empty between messages and
    /// reused, so deriving costs no allocation per message (issue 24).
    derived: Vec<Reading>,
    /// The devices [`Engine::prefetch`] found for the messages it was asked about, by the
    /// address of the message's readings: the later stages and the judgement itself reuse
    /// the lookup instead of hashing the device's names again (issue 24). A guess only,
    /// checked against the message's names before it is trusted.
    ahead: Ahead6,
}

/// The last [`AHEAD_KEPT`] devices found by [`Engine::prefetch`], oldest overwritten first.
#[derive(Default)]
struct Ahead6 {
    found: [Option<(usize, DeviceSlot)>; AHEAD_KEPT],
    next: usize,
}

/// More than the messages between a device's lookup (`Ahead::Slots`) and its judgement.
const AHEAD_KEPT: usize = 8;

impl Ahead6 {
    fn key(readings: &[Reading]) -> usize {
        readings.as_ptr() as usize
    }

    fn put(&mut self, readings: &[Reading], d: DeviceSlot) {
        self.found[self.next] = Some((Self::key(readings), d));
        self.next = (self.next + 1) % AHEAD_KEPT;
    }

    fn get(&self, readings: &[Reading]) -> Option<DeviceSlot> {
        let k = Self::key(readings);
        self.found
            .iter()
            .flatten()
            .find(|(at, _)| *at == k)
            .map(|&(_, d)| d)
    }
}

/// How close a message is to its judgement when [`Engine::prefetch`] is asked for it: each
/// stage asks for what the one before brought within reach.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ahead {
    /// Far: the device's name, which the lookup hashes.
    Name,
    /// The device's slot of rule states (looked up here, once for all stages).
    Slots,
    /// The states themselves and the positions of the device's series.
    States,
    /// The device's series (every one, those of derived readings too).
    Series,
    /// The series' windows (their newest readings) and flat runs.
    Parts,
    /// Nearest: the series' running judgements and flat runs' marks.
    Deep,
}

impl Engine {
    /// Prefetch hints for a message about to be judged (see [`crate::prefetch`]): the state
    /// its device and series have in the engine, asked for a few messages before judging it
    /// so the memory loads overlap (issue 24: with 10,000 devices each was a cache miss, one
    /// after the other). Changes no judgement: the device found at `Ahead::Slots` is kept for
    /// the later stages and the judgement (checked there against the message's names).
    pub(crate) fn prefetch(&mut self, readings: &[Reading], stage: Ahead) {
        let Some(first) = readings.first() else {
            return;
        };
        let live = &self.live;
        if let Ahead::Name = stage {
            return crate::prefetch::lines(first.device.as_str().as_ptr(), 1);
        }
        if let Ahead::Slots = stage {
            if let Some(d) = live.states.device(&first.site, &first.device) {
                live.states.prefetch(d, false);
                self.ahead.put(readings, d);
            }
            return;
        }
        let Some(d) = self.ahead.get(readings) else {
            return;
        };
        let each_series = |hint: fn(&Series)| {
            live.states
                .series_positions(d)
                .filter_map(|pos| live.series.get_at(pos))
                .for_each(hint)
        };
        match stage {
            Ahead::Name | Ahead::Slots => {}
            Ahead::States => live.states.prefetch(d, true),
            Ahead::Series => {
                each_series(|s| crate::prefetch::bytes(s, std::mem::size_of::<Series>()))
            }
            Ahead::Parts => each_series(Series::prefetch_parts),
            Ahead::Deep => each_series(Series::prefetch_deep),
        }
    }

    /// Validates and compiles `rules`; errors name the bad key (`rules[2].condition.for_s`).
    pub(crate) fn new(
        rules: Vec<RuleConfig>,
        settings: &RulesSettings,
    ) -> Result<Self, RulesError> {
        Ok(Engine {
            c: Compiled::new(rules, settings)?,
            live: Live::default(),
            traps: Default::default(),
            derived: Vec::new(),
            ahead: Ahead6::default(),
        })
    }

    /// The rules configured (`[[rules]]`, or the defaults when none are; none when
    /// disabled), with the traps' geometry (`[[traps]]`); `config::Config::rules_engine`.
    pub(crate) fn from_sections(
        rules: &[RuleConfig],
        settings: &RulesSettings,
        traps: &[crate::install::TrapInstall],
    ) -> Result<Self, RulesError> {
        let rules = settings.effective_rules(rules);
        Ok(Engine::new(rules, settings)?.with_traps(crate::install::TrapInstalls::new(traps)))
    }

    /// Installation data of the grease traps: what their sensors' figures mean.
    pub(crate) fn with_traps(mut self, traps: crate::install::TrapInstalls) -> Self {
        self.traps = traps;
        self
    }

    /// Shares a pump-out registry (e.g. with the HTTP API) instead of the engine's own.
    pub(crate) fn with_pumpouts(mut self, registry: PumpoutRegistry) -> Self {
        self.live.pumpouts = registry;
        self
    }

    /// Shares a maintenance registry (the one the maintenance journal of the HTTP API fills)
    /// instead of the engine's own, so `unless_maintenance` sees registered works.
    pub(crate) fn with_maintenance(mut self, registry: MaintenanceRegistry) -> Self {
        self.live.maintenance = registry;
        self
    }

    /// The registry this engine consults; clone it to register pump-outs from elsewhere.
    #[cfg(test)]
    pub(crate) fn pumpouts(&self) -> PumpoutRegistry {
        self.live.pumpouts.clone()
    }

    /// Records a pump-out service visit so the drop it causes raises nothing. The scenario and
    /// the tests register here; the running gateway through the shared [`PumpoutRegistry`].
    #[cfg(any(test, feature = "demo"))]
    pub(crate) fn register_pumpout(&self, site: &str, device: &str, from_ms: i64, to_ms: i64) {
        self.live.pumpouts.register(site, device, from_ms, to_ms);
    }

    /// Records maintenance works on a device (e.g. a manhole opened by a registered crew), so
    /// rules with `unless_maintenance` raise nothing about it meanwhile. The scenario and the
    /// tests register here; the running gateway through the shared [`MaintenanceRegistry`].
    #[cfg(any(test, feature = "demo"))]
    pub(crate) fn register_maintenance(&self, site: &str, device: &str, from_ms: i64, to_ms: i64) {
        self.live.maintenance.register(site, device, from_ms, to_ms);
    }

    /// Everything this engine remembers, with the rules it was built from, for
    /// [`Engine::restore`] after a restart (see `snapshot`).
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> super::snapshot::Snapshot {
        let mut json = Vec::new();
        // Written and read back: the same bytes as a saved snapshot.
        self.write_snapshot(&mut json)
            .and_then(|()| serde_json::from_slice(&json))
            .expect("the engine's state serializes")
    }

    /// Writes [`Engine::snapshot`] as JSON straight from the live tables. With 10,000 devices
    /// the state was first copied into a `serde_json::Value` (a tree of maps of about twice
    /// the JSON's size, 60 MB at 5,000 devices) and then into one buffer of the whole text
    /// (33 MB) every minute: the gateway's largest allocations (issue 24, heaptrack).
    pub(crate) fn write_snapshot(&self, w: impl std::io::Write) -> serde_json::Result<()> {
        let l = &self.live;
        // Keys in the order the `Value`'s sorted map wrote them.
        #[derive(Serialize)]
        struct State<A, B, C, D, E, F, G> {
            composite_flaps: A,
            composite_seen: B,
            now_ms: i64,
            offline: C,
            pending: D,
            series: E,
            states: F,
            traps: G,
        }
        let state = State {
            composite_flaps: l.composite_flaps.iter().collect::<Vec<_>>(),
            composite_seen: l.composite_seen.iter().collect::<Vec<_>>(),
            now_ms: l.now_ms,
            offline: &l.offline,
            pending: &l.pending,
            series: l.series.iter().collect::<Vec<_>>(),
            states: l.states.iter().collect::<Vec<_>>(),
            traps: &l.traps,
        };
        serde_json::to_writer(
            w,
            &super::snapshot::SnapshotOut {
                version: super::snapshot::VERSION,
                rules: &self.c.rules,
                settings: &self.c.settings,
                state,
            },
        )
    }

    /// An engine running `rules` that continues from `snap`: state of rules whose definition
    /// is the same as when the snapshot was taken is kept (as on a reload), the rest starts
    /// fresh.
    pub(crate) fn restore(
        rules: Vec<RuleConfig>,
        settings: &RulesSettings,
        snap: super::snapshot::Snapshot,
    ) -> Result<Self, super::snapshot::SnapshotError> {
        use super::snapshot::SnapshotError;
        if snap.version != super::snapshot::VERSION {
            return Err(SnapshotError::Version(snap.version));
        }
        let mut engine =
            Engine::new(snap.rules, &snap.settings).map_err(SnapshotError::OldRules)?;
        #[derive(Deserialize)]
        struct State {
            now_ms: i64,
            series: Vec<(SeriesKey, Series)>,
            states: Vec<(StateKey, RuleState)>,
            composite_seen: Vec<((usize, usize, String), SeenInput)>,
            composite_flaps: Vec<((usize, String), Flap)>,
            pending: Vec<PendingDischarge>,
            traps: Traps,
            /// Absent from snapshots written before link state was kept.
            #[serde(default)]
            offline: HashMap<String, HashMap<String, i64>>,
        }
        let st: State = serde_json::from_value(snap.state).map_err(SnapshotError::Format)?;
        let n = engine.c.rules.len();
        let l = &mut engine.live;
        l.now_ms = st.now_ms;
        l.series = st.series.into_iter().collect();
        l.states = st.states.into_iter().filter(|(k, _)| k.rule < n).collect();
        l.composite_seen = st
            .composite_seen
            .into_iter()
            .filter(|((c, p, _), _)| *c < n && *p < n)
            .collect();
        l.composite_flaps = st
            .composite_flaps
            .into_iter()
            .filter(|((r, _), _)| *r < n)
            .collect();
        l.pending = st.pending.into_iter().filter(|p| p.rule < n).collect();
        l.traps = st.traps;
        l.offline = st.offline;
        engine
            .reload(rules, settings)
            .map_err(SnapshotError::NewRules)?;
        // A snapshot written before flat runs were summaries: its windows kept every flat-line
        // rule's span (three days for business hours), so a run in progress is read whole
        // from them, exactly as the old judgement saw it, before the window keeps less.
        let c = &engine.c;
        let waiting: Vec<SeriesKey> = engine
            .live
            .pending
            .iter()
            .map(|p| p.series.clone())
            .collect();
        engine.live.pin_pending(c, waiting.iter());
        for s in engine.live.series.values_mut() {
            if s.window.is_old_form() && !c.flat_by_window {
                s.add_flats(c);
                let keep = c
                    .retention
                    .get(s.key.metric.as_str())
                    .copied()
                    .unwrap_or_default();
                s.window.set_policy(
                    keep.keep_ms.min(keep.floor_ms),
                    KEEP_READINGS,
                    keep.floor_ms,
                );
            }
        }
        Ok(engine)
    }

    /// Replaces the rules, keeping the state of every rule whose id and definition did not
    /// change (active conditions, cool-downs, windows).
    pub(crate) fn reload(
        &mut self,
        rules: Vec<RuleConfig>,
        settings: &RulesSettings,
    ) -> Result<(), RulesError> {
        let next = Compiled::new(rules, settings)?;
        let remap: HashMap<usize, usize> = self
            .c
            .rules
            .iter()
            .enumerate()
            .filter_map(|(old, r)| next.rules.iter().position(|n| n == r).map(|new| (old, new)))
            .collect();
        let states: Vec<(StateKey, RuleState)> = self.live.states.drain().collect();
        self.live.states = states
            .into_iter()
            .filter_map(|(k, v)| remap.get(&k.rule).map(|&rule| (k.with_rule(rule), v)))
            .collect();
        self.live.composite_seen = std::mem::take(&mut self.live.composite_seen)
            .into_iter()
            .filter_map(|((ci, p, k), v)| match (remap.get(&ci), remap.get(&p)) {
                (Some(&ci), Some(&p)) => Some(((ci, p, k), v)),
                _ => None,
            })
            .collect();
        self.live.composite_flaps = std::mem::take(&mut self.live.composite_flaps)
            .into_iter()
            .filter_map(|((r, s), v)| remap.get(&r).map(|&n| ((n, s), v)))
            .collect();
        self.live.pending.retain_mut(|p| match remap.get(&p.rule) {
            Some(&n) => {
                p.rule = n;
                true
            }
            None => false,
        });
        self.c = next;
        Ok(())
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.c.rules.len()
    }

    pub(crate) fn stats(&self) -> EngineStats {
        self.live.stats
    }

    /// Heap bytes of the series windows' readings, of their running judgements, and of the
    /// rule states' slots: what the memory-per-device tests bound (issue 24).
    #[cfg(test)]
    pub(crate) fn rule_bytes_held(&self) -> (usize, usize, usize) {
        let (mut readings, mut running) = (0, 0);
        for (_, s) in self.live.series.iter() {
            let (r, j) = s.window.bytes_held();
            readings += r;
            running += j
                + s.flats.capacity() * std::mem::size_of::<FlatSummary>()
                + s.flats.iter().map(FlatSummary::bytes_held).sum::<usize>();
        }
        (readings, running, self.live.states.bytes_held())
    }

    /// Daily inflow, fill rate and last figures of one trap.
    #[cfg(test)]
    pub(crate) fn trap_stats(&self, site: &str, device: &str) -> Option<super::grease::TrapStats> {
        self.live.traps.get(site, device)
    }

    /// Feeds one message's readings (in arrival order).
    pub(crate) fn on_readings(&mut self, readings: &[Reading]) -> Vec<ClueSignal> {
        // A trap's level, fill and volume, whatever its sensor reports (see `install::trap`).
        let mut derived = std::mem::take(&mut self.derived);
        self.traps.derive_into(readings, &mut derived);
        // The message's device (one device's readings, usually): as the prefetch found it,
        // else looked up once here; each reading checks it is its own.
        let device = readings.first().and_then(|r| {
            let states = &self.live.states;
            self.ahead
                .get(readings)
                .filter(|&d| states.holds(d, &r.site, &r.device))
                .or_else(|| states.device(&r.site, &r.device))
        });
        let out = self.judge(
            Message {
                received: readings,
                derived: &derived,
            },
            device,
        );
        derived.clear();
        self.derived = derived;
        out
    }

    fn judge(&mut self, msg: Message<'_>, device: Option<DeviceSlot>) -> Vec<ClueSignal> {
        let mut out = Vec::new();
        let mut acts = Vec::new();
        if let Some(rx) = msg.iter().map(|r| r.received_time_ms).max() {
            self.live.rx_now_ms = self.live.rx_now_ms.max(rx);
            self.live.started_rx_ms.get_or_insert(rx);
        }
        let mut prev: Option<&Reading> = None;
        for r in msg.iter() {
            // Silence only needs one look per device and stream in a message.
            let first = prev
                .is_none_or(|p| p.site != r.site || p.device != r.device || p.stream != r.stream);
            prev = Some(r);
            self.live
                .on_reading(&self.c, r, (first, device), msg, &mut out, &mut acts);
        }
        self.live.flush_pending(&self.c, &mut out, &mut acts);
        self.live.join_composites(&self.c, acts, &mut out);
        out
    }

    /// Advances the clock: silence, held-too-long and minimum durations, delayed judgements.
    pub(crate) fn on_tick(&mut self, now_ms: i64) -> Vec<ClueSignal> {
        let now = now_ms.max(self.live.now_ms);
        self.live.now_ms = now;
        self.live.rx_now_ms = self.live.rx_now_ms.max(now_ms);
        self.live.started_rx_ms.get_or_insert(now_ms);
        let mut out = Vec::new();
        let mut acts = Vec::new();
        self.live.tick(&self.c, &mut out, &mut acts);
        self.live.flush_pending(&self.c, &mut out, &mut acts);
        self.live.join_composites(&self.c, acts, &mut out);
        out
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// A discharge is judged once this many readings at or after the drop confirm it (or, for a
/// device that went quiet, this long after its grace period on the receive clock): a single
/// dropout reading (no echo) that the next reading contradicts is no discharge.
const DISCHARGE_CONFIRMING_READINGS: usize = 2;
/// Readings before a discharge window that still count: the peak and the neighbour that
/// confirms it.
const PEAK_NEIGHBOURS: usize = 2;
const DISCHARGE_CONFIRM_WAIT_MS: i64 = 3_600_000;

/// One message's readings as judged: those received, then the trap figures derived from them
/// (level, fill, volume). Two slices, so a message with derived figures is not copied whole
/// to append them (that copy was four string allocations per reading on the ingest path).
#[derive(Clone, Copy)]
struct Message<'a> {
    received: &'a [Reading],
    derived: &'a [Reading],
}

impl<'a> Message<'a> {
    /// The readings in judging order: received first, derived after.
    fn iter(self) -> impl Iterator<Item = &'a Reading> {
        self.received.iter().chain(self.derived)
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Live {
    fn on_reading(
        &mut self,
        c: &Compiled,
        r: &Reading,
        (first_of_device, device_guess): (bool, Option<DeviceSlot>),
        batch: Message<'_>,
        out: &mut Vec<ClueSignal>,
        acts: &mut Vec<Activation>,
    ) {
        self.stats.readings += 1;
        let t = r.device_time_ms;
        self.now_ms = self.now_ms.max(t);
        if r.stream == STATE_STREAM && r.metric == "online" {
            self.on_link_state(c, r);
        }

        if r.stream == "grease_trap" {
            match (r.metric.as_str(), r.value.as_f64()) {
                ("volume_l", Some(v)) => {
                    let day = c.calendar.local_day_start_ms(&r.site, t);
                    self.traps.observe_volume(&r.site, &r.device, v, t, day);
                }
                ("fill_pct", Some(v)) => self.traps.observe_fill_pct(&r.site, &r.device, v),
                _ => {}
            }
        }

        // The reading's device among the rule states: looked up once, on the first rule that
        // judges the reading, not once per rule.
        let mut device: Option<DeviceSlot> =
            device_guess.filter(|&d| self.states.holds(d, &r.site, &r.device));
        for &ri in &c.silence {
            let rule = &c.rules[ri];
            let by_metric = rule.select.metric.is_some();
            if (!by_metric && !first_of_device)
                || !rule.select.matches(r)
                || rule.select.metric.as_deref().is_some_and(|m| m != r.metric)
            {
                continue;
            }
            let d = *device.get_or_insert_with(|| self.states.device_named(&r.site, &r.device));
            let st = self.states.in_device(d, ri);
            st.last_t = Some(st.last_t.map_or(t, |l| l.max(t)));
            st.last_rx = Some(
                st.last_rx
                    .map_or(r.received_time_ms, |l| l.max(r.received_time_ms)),
            );
            if st.raw {
                st.raw = false;
                let tr = st.flap.update(false, t, 0, 0);
                self.apply(
                    c,
                    Trigger {
                        rule: ri,
                        site: &r.site,
                        device: Some(&r.device),
                        at_ms: t,
                        transition: tr,
                        value: String::new(),
                        detail: serde_json::Value::Null,
                        series: None,
                        evidence_to: t,
                        key: None,
                        note: None,
                    },
                    out,
                    acts,
                );
            }
        }

        let Some(list) = c.by_metric.get(r.metric.as_str()) else {
            return;
        };
        // The reading's series: its key and its position in `self.series`; whether the
        // device's slot lists it (else it is listed once the slot is at hand).
        let mut key: Option<(SeriesKey, usize)> = None;
        let mut listed = false;
        for ri in list.for_site(&r.site) {
            let rule = &c.rules[ri];
            if !rule.select.matches(r) {
                continue;
            }
            if matches!(rule.condition, Condition::Event { .. }) && r.stream != EVENT_STREAM {
                continue;
            }
            if key.is_none() {
                // From the device's slot when it lists the series (the usual case: two
                // names compared), else one lookup by the reading's names; the key is an Arc.
                let at = device
                    .filter(|_| series_from_slot())
                    .and_then(|d| self.states.series_of(d, &r.stream, &r.metric));
                listed = at.is_some();
                let known = at.or_else(|| self.series.find(r)).map(|pos| {
                    let s = self.series.at_mut(pos);
                    (s.push(t, &r.value), (s.key.clone(), pos))
                });
                let (pushed, k) = match known {
                    Some(found) => found,
                    None => {
                        let retention = c
                            .retention
                            .get(r.metric.as_str())
                            .copied()
                            .unwrap_or_default();
                        let k = SeriesKey::of(r);
                        let mut series =
                            Series::new(k.clone(), r.unit.clone(), retention, c.flat_by_window);
                        series.add_flats(c);
                        let pushed = series.push(t, &r.value);
                        let pos = self.series.insert(k.clone(), series);
                        (pushed, (k, pos))
                    }
                };
                match pushed {
                    Push::Appended => {}
                    Push::Late => {
                        self.stats.late += 1;
                        return;
                    }
                    Push::Duplicate => {
                        self.stats.duplicates += 1;
                        return;
                    }
                }
                key = Some(k);
            }
            if let Some((k, pos)) = &key {
                let d = *device.get_or_insert_with(|| self.states.device_named(&r.site, &r.device));
                if !listed {
                    self.states.remember_series(d, &r.stream, &r.metric, *pos);
                    listed = true;
                }
                self.eval(c, ri, r, (k, *pos, d), batch, out, acts);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval(
        &mut self,
        c: &Compiled,
        ri: usize,
        r: &Reading,
        (series, series_pos, device): (&SeriesKey, usize, DeviceSlot),
        batch: Message<'_>,
        out: &mut Vec<ClueSignal>,
        acts: &mut Vec<Activation>,
    ) {
        let rule = &c.rules[ri];
        let t = r.device_time_ms;
        let st = self.states.in_device(device, ri);
        if st.last_t.is_some_and(|l| t < l) {
            return;
        }
        st.last_t = Some(t);
        st.last_rx = Some(r.received_time_ms);
        st.last_value = Some(r.value.clone());
        if st.series.is_none() {
            st.series = Some(series.clone());
        }
        let in_window = c.calendar.matches(rule.window, &r.site, t);
        // By position: no second lookup of the series (see `SeriesTable`).
        let series_now = self.series.at_mut(series_pos);
        let window = &mut series_now.window;
        // A flat line's run, for the clue's evidence: (readings, start, lowest, highest).
        let mut flat_run = None;
        let v = r.value.as_f64();
        let (raw, min_ms) = match &rule.condition {
            Condition::Threshold {
                above,
                below,
                clear_at,
                for_s,
            } => {
                let Some(v) = v else { return };
                let h = Hysteresis {
                    above: *above,
                    below: *below,
                    clear_at: *clear_at,
                };
                // Hysteresis only holds a condition that counts already: before that the
                // value itself must stay past `above`/`below` for the whole `for_s`. Else one
                // echo or noisy reading past the threshold, held by `clear_at`, starts the
                // clock (a trap at 22% with one reading of 25% became "pump-out due").
                st.hyst = h.next(st.hyst && st.flap.is_active(), v);
                (st.hyst, *for_s as i64 * 1000)
            }
            Condition::Held { equals, for_s } => (value_eq(&r.value, equals), *for_s as i64 * 1000),
            Condition::Rate {
                drop,
                rise,
                within_s,
            } => {
                let Some(v) = v else { return };
                let from = t.saturating_sub(*within_s as i64 * 1000);
                // Extremes a neighbour confirms: one lost echo or foam spike is no change,
                // neither as the start of the change nor as its newest reading (the reading
                // before it must agree; a real change is confirmed one reading later).
                let (count, before_newest) = window.count_and_second_newest(from, t);
                let newest_confirmed =
                    |band: f64| count >= 2 && before_newest.is_some_and(|b| (v - b).abs() <= band);
                let scratch = &mut self.scratch;
                let fell = drop.is_some_and(|d| {
                    newest_confirmed(d / 2.0)
                        && window
                            .confirmed_extreme((from, t, 0), d / 2.0, 1.0, scratch)
                            .is_some_and(|(_, hi)| hi - v >= d)
                });
                let rose = rise.is_some_and(|d| {
                    newest_confirmed(d / 2.0)
                        && window
                            .confirmed_extreme((from, t, 0), d / 2.0, -1.0, scratch)
                            .is_some_and(|(_, lo)| v + lo >= d)
                });
                (fell || rose, 0)
            }
            Condition::FlatLine {
                for_s,
                tolerance,
                min_readings,
                during,
                full_at_pct,
            } => {
                // A full trap's level stands at its outlet: flat, and no fault.
                let full = full_at_pct.is_some_and(|brim| {
                    self.traps
                        .get(&r.site, &r.device)
                        .and_then(|s| s.last_fill_pct)
                        .is_some_and(|fill| fill >= brim)
                });
                // The flat run: from the newest reading back while every value stays within
                // `tolerance`; it counts the hours of `during` it spans. Kept as a summary
                // (`flat`): the window holds only its last hour.
                let (n, start) = if c.flat_by_window {
                    window.flat_run(t, *tolerance)
                } else {
                    let f = series_now.flat(*tolerance);
                    let (lo, hi) = f.extremes();
                    let (n, start) = f.run(t);
                    flat_run = Some((n, start, lo, hi));
                    (n, start)
                };
                let span = c.calendar.time_in(*during, &r.site, start, t);
                (
                    !full && n >= *min_readings && span >= *for_s as i64 * 1000,
                    0,
                )
            }
            Condition::Event { name, for_s } => {
                if !matches!(&r.value, Value::Text(n) if n == name) {
                    return;
                }
                let phase = batch
                    .iter()
                    .find(|o| {
                        o.metric == "phase"
                            && o.device_time_ms == t
                            && o.device == r.device
                            && o.site == r.site
                    })
                    .and_then(|o| match &o.value {
                        Value::Text(p) => Some(p.as_str()),
                        _ => None,
                    });
                (phase != Some("recovery"), *for_s as i64 * 1000)
            }
            Condition::Discharge {
                min_drop,
                within_s,
                grace_s,
            } => {
                let Some(v) = v else { return };
                let from = t.saturating_sub(*within_s as i64 * 1000);
                // The window, and the readings just before it: a trap whose sensor reports
                // every few minutes, or whose link was down for half an hour, can be emptied
                // between two consecutive reports, so the drop is judged from the last
                // reading before it whatever the interval (a pump-out on record still
                // explains it; the peak must still be confirmed by its own neighbour).
                let peak = window.confirmed_extreme(
                    (from, t, PEAK_NEIGHBOURS),
                    *min_drop / 2.0,
                    1.0,
                    &mut self.scratch,
                );
                let raw = in_window && peak.is_some_and(|(_, p)| p - v >= *min_drop);
                if raw
                    && !st.raw
                    && let Some((from_ms, _)) = peak
                {
                    let p = PendingDischarge {
                        rule: ri,
                        site: r.site.clone(),
                        device: r.device.clone(),
                        series: series.clone(),
                        from_ms,
                        at_ms: t,
                        due_ms: t.saturating_add(*grace_s as i64 * 1000),
                        due_rx_ms: r.received_time_ms.saturating_add(*grace_s as i64 * 1000),
                    };
                    window.pin_from(p.reads_from(rule, window));
                    self.pending.push(p);
                }
                st.raw = raw;
                return;
            }
            Condition::Silence { .. } | Condition::Composite { .. } => return,
        };
        let excused = rule.unless_maintenance
            && !self.maintenance.is_empty()
            && self.maintenance.covers(&r.site, &r.device, t);
        if excused {
            self.stats.maintenance_explained += 1;
        }
        let raw = raw && in_window && !excused;
        st.raw = raw;
        let cooldown = rule.cooldown_s as i64 * 1000;
        let tr = if !raw && matches!(rule.condition, Condition::Event { .. }) {
            st.flap.end_reported(t, min_ms, cooldown)
        } else {
            st.flap.update(raw, t, min_ms, cooldown)
        };
        if tr == Transition::None {
            return;
        }
        let suppressed = if matches!(tr, Transition::Raised | Transition::RaisedEnded) {
            st.flap.take_suppressed()
        } else {
            0
        };
        let detail = json!({
            "metric": r.metric,
            "value": r.value,
            "unit": r.unit,
            "condition": rule.condition,
            "suppressed_repeats": suppressed,
        });
        let note = flat_run.map(|(n, start, lo, hi)| {
            let counted = match &rule.condition {
                Condition::FlatLine { during, .. } => {
                    c.calendar.time_in(*during, &r.site, start, t)
                }
                _ => 0,
            };
            flat_note(n, start, t, counted, (lo, hi), &r.unit, rule.evidence_s)
        });
        self.apply(
            c,
            Trigger {
                rule: ri,
                site: &r.site,
                device: Some(&r.device),
                at_ms: t,
                transition: tr,
                value: r.value.to_string(),
                detail,
                series: Some(series),
                evidence_to: t,
                key: None,
                note,
            },
            out,
            acts,
        );
    }

    /// A device's link went down or came back. A condition that must hold for a while (a
    /// sensor fault for an hour) is judged on the receive clock only while the gateway could
    /// hear its end: with the link down, a recovery waits in the device's buffer, so the time
    /// offline does not count towards the duration. When the link returns, the replay says
    /// whether the condition ended in the meantime (and how long it held: see
    /// `Transition::RaisedEnded`).
    fn on_link_state(&mut self, c: &Compiled, r: &Reading) {
        let rx = r.received_time_ms;
        match r.value {
            Value::Bool(false) => {
                self.offline
                    .entry(r.site.to_string())
                    .or_default()
                    .entry(r.device.to_string())
                    .or_insert(rx);
            }
            Value::Bool(true) => {
                let Some(down_rx) = self
                    .offline
                    .get_mut(r.site.as_str())
                    .and_then(|d| d.remove(r.device.as_str()))
                else {
                    return;
                };
                if self
                    .offline
                    .get(r.site.as_str())
                    .is_some_and(|d| d.is_empty())
                {
                    self.offline.remove(r.site.as_str());
                }
                let outage = rx.saturating_sub(down_rx).max(0);
                // Only this device's states, not a walk over every state: when a broker
                // restarts, all devices come back at once, and a walk per device would cost
                // devices x states.
                for (key, st) in self.states.of_device_mut(&r.site, &r.device) {
                    if matches!(c.rules[key.rule].condition, Condition::Silence { .. }) {
                        continue;
                    }
                    if let Some(last) = st.last_rx.as_mut()
                        && *last <= down_rx
                    {
                        *last = last.saturating_add(outage);
                    }
                }
            }
            _ => {}
        }
    }

    fn tick(&mut self, c: &Compiled, out: &mut Vec<ClueSignal>, acts: &mut Vec<Activation>) {
        let rx_now = self.rx_now_ms;
        let started = self.started_rx_ms.unwrap_or(rx_now);
        let grace_over = rx_now >= started.saturating_add(c.settings.startup_grace_s as i64 * 1000);
        let mut fired = Vec::new();
        let offline = &self.offline;
        for (key, st) in self.states.iter_mut() {
            let rule = &c.rules[key.rule];
            let cooldown = rule.cooldown_s as i64 * 1000;
            match &rule.condition {
                Condition::Silence { after_s, during } => {
                    let Some(last_rx) = st.last_rx.or(st.last_t) else {
                        continue;
                    };
                    if st.raw || !grace_over {
                        continue;
                    }
                    let from = last_rx.max(started);
                    let silent_ms = c.calendar.time_in(*during, &key.site, from, rx_now);
                    if silent_ms < *after_s as i64 * 1000
                        || !c.calendar.matches(rule.window, &key.site, rx_now)
                    {
                        continue;
                    }
                    let at = st.device_now(rx_now).unwrap_or(rx_now);
                    st.raw = true;
                    let tr = st.flap.update(true, at, 0, cooldown);
                    let suppressed = st.flap.take_suppressed();
                    let detail = json!({
                        "last_seen_ms": last_rx,
                        "last_device_time_ms": st.last_t,
                        "silent_s": silent_ms / 1000,
                        "condition": rule.condition,
                        "suppressed_repeats": suppressed,
                    });
                    fired.push((
                        key.clone(),
                        tr,
                        at,
                        detail,
                        None,
                        format!("{}", silent_ms / 1000),
                    ));
                }
                Condition::Threshold { for_s, .. }
                | Condition::Held { for_s, .. }
                | Condition::Event { for_s, .. }
                    if *for_s > 0
                        && st.raw
                        && !st.flap.is_active()
                        && !offline
                            .get(key.site.as_str())
                            .is_some_and(|d| d.contains_key(key.device.as_str())) =>
                {
                    let Some(at) = st.device_now(rx_now) else {
                        continue;
                    };
                    let tr = st.flap.update(true, at, *for_s as i64 * 1000, cooldown);
                    if tr == Transition::None {
                        continue;
                    }
                    let suppressed = st.flap.take_suppressed();
                    let value = st.last_value.clone().unwrap_or(Value::Bool(true));
                    let detail = json!({
                        "metric": st.series.as_ref().map(|s| s.metric.clone()),
                        "value": value,
                        "condition": rule.condition,
                        "suppressed_repeats": suppressed,
                    });
                    fired.push((
                        key.clone(),
                        tr,
                        at,
                        detail,
                        st.series.clone(),
                        value.to_string(),
                    ));
                }
                _ => {}
            }
        }
        for (key, tr, at, detail, series, value) in fired {
            self.apply(
                c,
                Trigger {
                    rule: key.rule,
                    site: &key.site,
                    device: Some(&key.device),
                    at_ms: at,
                    transition: tr,
                    value,
                    detail,
                    series: series.as_ref(),
                    evidence_to: at,
                    key: None,
                    note: None,
                },
                out,
                acts,
            );
        }
    }

    /// Judges trap drops whose grace period is over: explained by a pump-out, or raised.
    fn flush_pending(
        &mut self,
        c: &Compiled,
        out: &mut Vec<ClueSignal>,
        acts: &mut Vec<Activation>,
    ) {
        // Due once the device's own readings reach the deadline, or the receive clock does.
        let rx_now = self.rx_now_ms;
        let series = &self.series;
        let due = |p: &PendingDischarge| {
            p.due_rx_ms <= rx_now
                || series
                    .get(&p.series)
                    .and_then(|s| s.window.newest_t())
                    .is_some_and(|t| t >= p.due_ms)
        };
        if !self.pending.iter().any(due) {
            return;
        }
        let (mut ready, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(due);
        self.pending = keep;
        // In rule order, so that of the figures judging one drop (one problem) the first
        // rule's (volume before fill before level in the defaults) raises the clue.
        ready.sort_by_key(|p| p.rule);
        let judged: Vec<SeriesKey> = ready.iter().map(|p| p.series.clone()).collect();
        for p in ready {
            let rule = &c.rules[p.rule];
            let Condition::Discharge { min_drop, .. } = rule.condition else {
                continue;
            };
            // Measure the whole drop: the (confirmed) peak before it, the lowest point since,
            // and where the contents are now.
            let (mut low, mut low_t) = (f64::INFINITY, p.at_ms);
            let (mut after, mut latest) = (0usize, f64::NAN);
            let mut before = Vec::new();
            let unit = self
                .series
                .get(&p.series)
                .map(|s| s.unit.clone())
                .unwrap_or_default();
            if let Some(s) = self.series.get(&p.series) {
                // The peak's own neighbour before it confirms the peak: in a drop between two
                // consecutive readings the reading after the peak is already low.
                before.extend(
                    s.window
                        .range_with_previous(p.from_ms, p.from_ms - 1, 1)
                        .numbers(),
                );
                for (t, x) in s.window.range(p.from_ms, i64::MAX).numbers() {
                    if t <= p.at_ms {
                        before.push((t, x));
                    }
                    if t >= p.at_ms {
                        after += 1;
                        latest = x;
                    }
                    if x < low {
                        low = x;
                        low_t = t;
                    }
                }
            }
            if after < DISCHARGE_CONFIRMING_READINGS
                && self.rx_now_ms < p.due_rx_ms.saturating_add(DISCHARGE_CONFIRM_WAIT_MS)
            {
                self.pending.push(p);
                continue;
            }
            let peak = supported_peak(&before, min_drop / 2.0).map_or(f64::NEG_INFINITY, |p| p.1);
            let confirmed = peak - latest >= min_drop;
            if !confirmed {
                self.stats.unconfirmed_drops += 1;
                tracing::info!(site = %p.site, device = %p.device, rule = %rule.id,
                    "trap drop not confirmed by the readings after it (a dropout or an echo)");
                continue;
            }
            if self
                .pumpouts
                .covers(&p.site, &p.device, p.from_ms, low_t.max(p.at_ms))
            {
                self.stats.pumpout_explained += 1;
                tracing::info!(site = %p.site, device = %p.device, rule = %rule.id,
                    "trap drop explained by a registered pump-out");
                continue;
            }
            let st = self.states.entry(StateRef {
                rule: p.rule,
                site: &p.site,
                device: &p.device,
            });
            let tr = st.flap.pulse(p.at_ms, rule.cooldown_s as i64 * 1000);
            let suppressed = if tr == Transition::Raised {
                st.flap.take_suppressed()
            } else {
                0
            };
            let drop = if peak.is_finite() && low.is_finite() {
                ((peak - low) * 10.0).round() / 10.0
            } else {
                0.0
            };
            let night = c.calendar.is_night(&p.site, p.at_ms);
            let detail = json!({
                "drop": drop,
                "unit": unit,
                "from_ms": p.from_ms,
                "to_ms": low_t,
                "night": night,
                "pumpout_registered": false,
                "trap": self.traps.get(&p.site, &p.device),
                "condition": rule.condition,
                "suppressed_repeats": suppressed,
            });
            let to = low_t.max(p.at_ms);
            self.apply(
                c,
                Trigger {
                    rule: p.rule,
                    site: &p.site,
                    device: Some(&p.device),
                    at_ms: p.at_ms,
                    transition: tr,
                    value: fmt_num(drop),
                    detail,
                    series: Some(&p.series),
                    evidence_to: to,
                    key: None,
                    note: None,
                },
                out,
                acts,
            );
        }
        self.pin_pending(c, judged.iter());
    }

    fn evidence(&self, s: &SeriesKey, from: i64, to: i64) -> Evidence {
        let (readings, unit) = match self.series.get(s) {
            Some(series) => (
                series.window.range(from, to).collect::<Vec<_>>(),
                series.unit.as_str(),
            ),
            None => (Vec::new(), ""),
        };
        Evidence::Readings {
            from_ms: from,
            to_ms: to,
            readings: readings
                .into_iter()
                .map(|(t, v)| EvidenceReading {
                    device: s.device.to_string(),
                    stream: s.stream.to_string(),
                    metric: s.metric.to_string(),
                    value: v,
                    unit: unit.to_string(),
                    device_time_ms: t,
                })
                .collect(),
        }
    }

    /// Turns a transition into signals (and composite inputs).
    fn apply(
        &mut self,
        c: &Compiled,
        tg: Trigger<'_>,
        out: &mut Vec<ClueSignal>,
        acts: &mut Vec<Activation>,
    ) {
        if tg.transition == Transition::RaisedEnded {
            let ended = Trigger {
                transition: Transition::Cleared,
                value: tg.value.clone(),
                detail: tg.detail.clone(),
                key: tg.key.clone(),
                note: tg.note.clone(),
                ..tg
            };
            self.apply(
                c,
                Trigger {
                    transition: Transition::Raised,
                    ..tg
                },
                out,
                acts,
            );
            self.apply(c, ended, out, acts);
            return;
        }
        let rule = &c.rules[tg.rule];
        match tg.transition {
            Transition::None | Transition::RaisedEnded => {}
            Transition::Raised | Transition::Suppressed => {
                let feeds = c.composites_by_input.contains_key(&tg.rule);
                let raised = tg.transition == Transition::Raised;
                let evidence: Vec<Evidence> = if (raised && rule.emit) || feeds {
                    let from = tg.at_ms.saturating_sub(rule.evidence_s as i64 * 1000);
                    tg.series
                        .map(|s| self.evidence(s, from, tg.evidence_to))
                        .into_iter()
                        .chain(
                            tg.note
                                .as_ref()
                                .map(|text| Evidence::Note { text: text.clone() }),
                        )
                        .collect()
                } else {
                    Vec::new()
                };
                if feeds {
                    acts.push(Activation {
                        rule: tg.rule,
                        site: tg.site.to_string(),
                        at_ms: tg.at_ms,
                        evidence: evidence.clone(),
                    });
                }
                if !raised {
                    self.stats.suppressed += 1;
                    return;
                }
                if rule.emit {
                    let ev = event(c, &tg, evidence);
                    if !self.problem_worsened(c, &tg, ev.level) {
                        self.stats.suppressed += 1;
                        return;
                    }
                    self.stats.occurrences += 1;
                    tracing::debug!(rule = %ev.rule, key = %ev.dedup_key, level = ev.level.as_str(),
                        "clue occurrence");
                    out.push(ClueSignal::Occurrence(ev));
                }
            }
            Transition::Cleared => {
                if !rule.emit || self.problem_still_active(c, &tg) {
                    return;
                }
                self.stats.cleared += 1;
                let subject = Subject {
                    site: tg.site.to_string(),
                    device: tg.device.map(str::to_string),
                    ..Default::default()
                };
                let note = match rule.condition {
                    Condition::Silence { .. } => "device reporting again",
                    Condition::Event { .. } => "device reported recovery",
                    _ => "condition ended",
                };
                out.push(ClueSignal::Cleared {
                    dedup_key: ClueEvent::default_key(rule.problem_key(), &subject),
                    at_ms: tg.at_ms,
                    note: note.into(),
                });
            }
        }
    }

    /// For a rule sharing its problem with others: whether this occurrence is worth sending
    /// (the first of the problem, a worse level, a later stage, i.e. a kind not yet sent in
    /// this episode, e.g. "open too long" after "open" at the same level, or past the
    /// cool-down of the last one sent). All of them go to the problem's one clue. Rules of
    /// one kind are the same stage judged on other figures (a drop in L, % or mm).
    fn problem_worsened(&mut self, c: &Compiled, tg: &Trigger<'_>, level: Level) -> bool {
        let rule = &c.rules[tg.rule];
        let Some(problem) = &rule.problem else {
            return true;
        };
        let key = (
            problem.clone(),
            tg.site.to_string(),
            tg.device.unwrap_or("").to_string(),
        );
        let cooldown = rule.cooldown_s as i64 * 1000;
        let sent = self.problem_sent.entry(key).or_default();
        let new_stage = !sent.stages.contains(&rule.kind);
        if sent
            .at_ms
            .is_some_and(|at| tg.at_ms.saturating_sub(at) < cooldown)
            && level <= sent.level
            && !new_stage
        {
            return false;
        }
        sent.at_ms = Some(tg.at_ms);
        sent.level = sent.level.max(level);
        if new_stage {
            sent.stages.push(rule.kind.clone());
        }
        true
    }

    /// For a rule sharing its problem: whether another rule of it is still active for the
    /// subject (then the problem has not ended and nothing is cleared). Forgets the problem's
    /// last occurrence once it has ended, so a new episode is sent afresh.
    fn problem_still_active(&mut self, c: &Compiled, tg: &Trigger<'_>) -> bool {
        let rule = &c.rules[tg.rule];
        let Some(problem) = &rule.problem else {
            return false;
        };
        let device = tg.device.unwrap_or("");
        let active = c.problem_rules.get(problem).is_some_and(|members| {
            members.iter().any(|&m| {
                m != tg.rule
                    && self
                        .states
                        .get(StateRef {
                            rule: m,
                            site: tg.site,
                            device,
                        })
                        .is_some_and(|st| st.flap.is_active())
            })
        });
        if !active {
            self.problem_sent
                .remove(&(problem.clone(), tg.site.to_string(), device.to_string()));
        }
        active
    }

    /// Composite rules: every input active at the same site (or area) within the window.
    fn join_composites(&mut self, c: &Compiled, acts: Vec<Activation>, out: &mut Vec<ClueSignal>) {
        for a in acts {
            let Some(comps) = c.composites_by_input.get(&a.rule) else {
                continue;
            };
            for &ci in comps {
                let rule = &c.rules[ci];
                let Condition::Composite { within_s, join, .. } = &rule.condition else {
                    continue;
                };
                let Some(jk) = c.join_key(*join, &a.site) else {
                    continue;
                };
                self.composite_seen.insert(
                    (ci, a.rule, jk.clone()),
                    (a.at_ms, a.site.clone(), a.evidence.clone()),
                );
                let Some(parts) = c.composite_parts.get(&ci) else {
                    continue;
                };
                let mut times = Vec::with_capacity(parts.len());
                let mut sites = Vec::with_capacity(parts.len());
                let mut evidence = Vec::new();
                let mut notes = Vec::new();
                for &p in parts {
                    if let Some((t, site, ev)) = self.composite_seen.get(&(ci, p, jk.clone())) {
                        times.push(*t);
                        sites.push(site.clone());
                        evidence.extend(ev.iter().cloned());
                        notes.push(format!("{} at {site} ({t})", c.rules[p].id));
                    }
                }
                if times.len() < parts.len() {
                    continue;
                }
                let (lo, hi) = (
                    times.iter().copied().min().unwrap_or(0),
                    times.iter().copied().max().unwrap_or(0),
                );
                if hi - lo > *within_s as i64 * 1000
                    || !c.calendar.matches(rule.window, &a.site, hi)
                {
                    continue;
                }
                let flap = self.composite_flaps.entry((ci, jk.clone())).or_default();
                let tr = flap.pulse(hi, rule.cooldown_s as i64 * 1000);
                if tr != Transition::Raised {
                    self.stats.suppressed += 1;
                    continue;
                }
                evidence.push(Evidence::Note {
                    text: format!("joined: {}", notes.join(", ")),
                });
                let detail = json!({
                    "joined": parts.iter().map(|&p| c.rules[p].id.clone()).collect::<Vec<_>>(),
                    "sites": sites,
                    "times_ms": times,
                    "span_s": (hi - lo) / 1000,
                    "condition": rule.condition,
                });
                let key = match join {
                    Join::Site => None,
                    Join::Area => Some(format!("{}/{jk}", rule.id)),
                };
                let tg = Trigger {
                    rule: ci,
                    site: &a.site,
                    device: None,
                    at_ms: hi,
                    transition: tr,
                    value: jk.clone(),
                    detail,
                    series: None,
                    evidence_to: hi,
                    key,
                    note: None,
                };
                if rule.emit {
                    self.stats.occurrences += 1;
                    let ev = event(c, &tg, evidence);
                    tracing::debug!(rule = %ev.rule, key = %ev.dedup_key, level = ev.level.as_str(),
                        "composite clue occurrence");
                    out.push(ClueSignal::Occurrence(ev));
                }
            }
        }
    }
}

fn event(c: &Compiled, tg: &Trigger<'_>, evidence: Vec<Evidence>) -> ClueEvent {
    let rule = &c.rules[tg.rule];
    let subject = Subject {
        site: tg.site.to_string(),
        device: tg.device.map(str::to_string),
        ..Default::default()
    };
    let dedup_key = tg
        .key
        .clone()
        .unwrap_or_else(|| ClueEvent::default_key(rule.problem_key(), &subject));
    let title = match &rule.title {
        Some(t) => t
            .replace("{site}", tg.site)
            .replace("{device}", tg.device.unwrap_or("-"))
            .replace("{value}", &tg.value),
        None => match tg.device {
            Some(d) => format!("{} at {}/{d}", rule.kind, tg.site),
            None => format!("{} at {}", rule.kind, tg.site),
        },
    };
    let mut detail = tg.detail.clone();
    if let Some(obj) = detail.as_object_mut() {
        obj.insert(
            "night".into(),
            json!(c.calendar.is_night(tg.site, tg.at_ms)),
        );
    }
    ClueEvent {
        rule: rule.id.clone(),
        kind: rule.kind.clone(),
        level: c.level_at(rule, tg.site, tg.at_ms),
        subject,
        dedup_key,
        at_ms: tg.at_ms,
        title,
        detail,
        evidence,
        department: rule.department.clone(),
        assisting: Vec::new(),
    }
}

#[cfg(test)]
mod peak_tests {
    use super::*;

    /// The lowest confirmed reading without a copy is the negated copy's peak, ties and
    /// lone echoes included, to the bit.
    #[test]
    fn the_low_without_a_copy_is_the_peak_of_the_negated_copy() {
        let mut next = crate::rules::xorshift(0x2545_f491_4f6c_dd1d);
        for case in 0..2_000 {
            let n = (next() % 12) as usize;
            let points: Vec<(i64, f64)> = (0..n)
                .map(|i| (i as i64 * 1000, (next() % 40) as f64 * 0.5 - 7.0))
                .collect();
            let band = (next() % 6) as f64 * 0.5;
            let negated: Vec<(i64, f64)> = points.iter().map(|&(t, x)| (t, -x)).collect();
            let want = supported_peak(&negated, band);
            let got = supported_extreme(&points, band, -1.0);
            assert_eq!(
                got.map(|(t, x)| (t, x.to_bits())),
                want.map(|(t, x)| (t, x.to_bits())),
                "case {case}: {points:?} band {band}"
            );
        }
    }
}
