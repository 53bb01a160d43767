//! Clue-quality benchmark: a simulated city block run through the gateway's own judgement,
//! scored against the ground truth the simulation wrote.
//!
//! The month of simulated time runs in process, at full speed, with no broker: the firmware
//! simulator ([`firmware::sim::Fleet`], the same device programs as `gateway demo`) produces
//! the MQTT messages; they go through the gateway's decoder (native topics and the configured
//! third-party mappings), the sequence and clock checks of the intake ([`crate::normalize`]),
//! the rules engine and camera health, and the clue pool (SQLite, the real store) with a clock
//! that follows simulated time. Kitchen cameras' frames are real JPEGs (the camera fixtures:
//! photos from the scikit-image package, with black, covered, sky and moved transformations);
//! a frozen camera repeats its last frame.
//!
//! An inspector is simulated so that a month of clues does not pile onto one open clue per
//! subject: every day at [`INSPECTOR_HOUR`] local time they resolve the open clues whose
//! condition the producer reported over, and those with no new occurrence for a day (but a
//! pump-out duty only once the trap has been pumped out).
//! Registered pump-outs are entered in the pump-out registry when the crew starts, and
//! registered manhole works in the maintenance registry (their permit) when they start.
//!
//! [`score`] turns the clues and the truth into the figures (`examples/clue_quality.rs`).

pub mod frames;
pub mod score;
pub mod seen;

use crate::camera::{CameraHealth, CamerasConfig};
use crate::clue::evidence::EvidenceStore;
use crate::clue::lifecycle::Action;
use crate::clue::lifecycle::Status;
use crate::clue::model::ClueQuery;
use crate::clue::pool::{Clock, PoolHandle};
use crate::clue::signal::ClueSignal;
use crate::clue::store::SqliteStore;
use crate::config::Config;
use crate::normalize::{ClockPolicy, Normalizer, SeqVerdict, fix_clock};
use firmware::sim::scenario::{BlockParams, city_block};
use firmware::sim::{CameraView, Fleet, Truth};
use frames::FrameLibrary;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use thiserror::Error;

/// Local hour of the inspector's daily round.
pub(crate) const INSPECTOR_HOUR: i64 = 9;
/// How often the engine's and camera health's clocks are advanced (simulated ms).
const TICK_MS: i64 = 30_000;
/// How often each camera uploads a frame (simulated ms).
pub(crate) const FRAME_EVERY_MS: i64 = 10 * 60_000;
/// A registered pump-out is entered this long before the crew starts and covers this long
/// after it ends.
const PUMPOUT_MARGIN_MS: i64 = 30 * 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Sim(#[from] firmware::sim::SimError),
    #[error("gateway config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("rules: {0}")]
    Rules(#[from] crate::rules::RulesError),
    #[error("clue pool: {0}")]
    Pool(#[from] crate::clue::pool::PoolError),
    #[error("clue store: {0}")]
    Store(#[from] crate::clue::store::StoreError),
    #[error("evidence store: {0}")]
    Evidence(#[from] crate::clue::evidence::EvidenceError),
    #[error("camera frames: {0}")]
    Frames(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Third-party sensors of the block, as a deployment would map them (the same mappings as
/// `deploy/gateway.example.toml`), and camera timings for a camera host that uploads one
/// frame every [`FRAME_EVERY_MS`] and sends a status heartbeat every five minutes over a
/// cellular link. Such a host reports a camera that stops or loses power itself (status 1/2,
/// raised at once), so silence of the whole host is a power cut or link outage until it
/// lasts three hours, the same three hours after which any device's silence is a clue
/// (`device-silent`).
pub(crate) const BLOCK_CONFIG: &str = r#"
[[mappings]]
name = "milesight-em310-udl"
topic = "milesight/{site}/{device}/uplink"
format = "json"
stream = "grease_trap"
time_field = "time"
time_unit = "s"
[[mappings.fields]]
path = "object.distance"
metric = "distance"
unit = "mm"
[[mappings.fields]]
path = "object.battery"
metric = "battery"
unit = "%"
optional = true

[[mappings]]
name = "plain-level-cm"
topic = "plain/{site}/{device}/level"
format = "number"
stream = "grease_trap"
[[mappings.fields]]
metric = "level"
unit = "cm"

[cameras.defaults]
hold_ms = 900000
recover_ms = 900000
offline_after_ms = 10800000
"#;

/// The tracing target of every reading and clue signal of a run, for diagnosing one device
/// (`RUST_LOG=scenario_trace=debug clue_quality --seeds N 2>trace.log`, then grep the site).
pub(crate) const TRACE: &str = "scenario_trace";

/// One clue as the benchmark saw it: every occurrence (device time of the observation, level).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClueRecord {
    pub id: i64,
    pub rule: String,
    pub kind: String,
    pub site: String,
    pub device: Option<String>,
    pub events: Vec<(i64, String)>,
}

/// What one run produced. Read back by `clue_quality --rescore` to score a stored run again
/// (a change of the scorer needs no new simulation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutput {
    pub seed: u64,
    pub days: u32,
    pub devices: u32,
    pub truth: Vec<Truth>,
    pub clues: Vec<ClueRecord>,
    pub messages: u64,
    pub decode_errors: u64,
    pub frames: u64,
    pub wall_s: f64,
}

/// Simulated time for the pool.
struct SimClock(Arc<AtomicI64>);

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gateway config of a block: [`BLOCK_CONFIG`] plus `extra` (TOML merged over it), with
/// each closed restaurant's calendar and the installation record (`[[traps]]`) of every
/// third-party trap sensor.
pub(crate) fn block_config(
    fleet: &firmware::sim::FleetConfig,
    extra: &str,
) -> Result<Config, ScenarioError> {
    let mut text = format!("{BLOCK_CONFIG}\n{extra}\n");
    text.push_str(&third_party_traps(fleet));
    for c in &fleet.closed {
        text.push_str(&format!(
            "[[rules_settings.sites]]\nsite = \"{}\"\nclosed_weekdays = {:?}\n",
            c.site, c.weekdays
        ));
    }
    Ok(Config::from_toml(&text)?)
}

/// `[[traps]]` for the block's third-party trap sensors. A city fits a sensor to a trap it
/// has on record (size from the restaurant's permit drawing, sensor height measured by the
/// fitter), so the installation record has the trap's real geometry: the simulator builds
/// those traps like the native ones ([`firmware::logic::device::TrapConfig`]'s default).
/// Without it no fill % can be known from a level or a distance, so "pump-out due" could not
/// be judged at all on those traps (level-based judgement of discharges still works, and is
/// covered by the rules' and the registry's tests).
fn third_party_traps(fleet: &firmware::sim::FleetConfig) -> String {
    use firmware::logic::geometry::Shape;
    let g = firmware::logic::device::TrapConfig::default().geometry;
    let shape = match g.shape {
        Shape::Rectangular {
            length_mm,
            width_mm,
        } => format!(
            "shape = \"rectangular\"\nlength_mm = {length_mm:.1}\nwidth_mm = {width_mm:.1}\n"
        ),
        Shape::Cylinder { diameter_mm } => {
            format!("shape = \"cylindrical\"\ndiameter_mm = {diameter_mm:.1}\n")
        }
    };
    let first = fleet.restaurants + 1;
    let mut text = String::new();
    for n in first..first + fleet.distance_traps + fleet.level_traps {
        let reports = if n < first + fleet.distance_traps {
            "distance"
        } else {
            "level"
        };
        text.push_str(&format!(
            "[[traps]]\nsite = \"r-{n:03}\"\ndevice = \"trap-1\"\n{shape}\
             working_depth_mm = {:.1}\nsensor_height_mm = {:.1}\nreports = \"{reports}\"\n",
            g.full_depth_mm, g.sensor_to_floor_mm
        ));
    }
    text
}

/// Runs one block. `frames` are the camera pictures; `extra_config` is merged into the
/// gateway config. Progress goes to `progress` once per simulated day.
pub async fn run_block(
    params: &BlockParams,
    frames: &FrameLibrary,
    extra_config: &str,
    mut progress: impl FnMut(u32),
) -> Result<RunOutput, ScenarioError> {
    let started = std::time::Instant::now();
    let fleet_cfg = city_block(params)?;
    let cfg = block_config(&fleet_cfg, extra_config)?;
    let mut fleet = Fleet::new(&fleet_cfg)?;
    let decoder = cfg.decoder();
    let policy = ClockPolicy {
        max_skew_ms: cfg.devices.max_clock_skew_s as i64 * 1000,
        max_replay_age_ms: cfg.devices.max_replay_age_s as i64 * 1000,
    };
    let mut normalizer = Normalizer::default();
    let mut engine = cfg.rules_engine()?;
    let mut cameras = CameraHealth::new(CamerasConfig {
        ..cfg.cameras.clone()
    })
    .map_err(ScenarioError::Config)?;

    let dir = tempfile_dir()?;
    let clock = Arc::new(AtomicI64::new(fleet.time_ms()));
    let store = Arc::new(SqliteStore::open(&dir.join("clues.sqlite"), vec![])?);
    let pool = PoolHandle::new(
        store.clone(),
        store,
        EvidenceStore::open(dir.join("evidence"))?,
        Arc::new(SimClock(clock.clone())),
        cfg.clues.clone(),
        Arc::new(crate::metrics::Metrics::new()),
    );

    // Each camera shows one scene; the enrolled reference is that scene's reference frame.
    let mut cams: HashMap<(String, String), CamState> = HashMap::new();
    for (i, (site, device, _)) in fleet.camera_views().into_iter().enumerate() {
        let scene = i % frames.len();
        cameras
            .enrol_reference(&device, &site, frames.reference(scene))
            .map_err(|e| ScenarioError::Frames(e.to_string()))?;
        cameras.watch(&device, &site, fleet.time_ms());
        cams.insert(
            (site, device),
            CamState {
                scene,
                n: 0,
                last: None,
            },
        );
    }

    let mut out = RunOutput {
        seed: params.seed,
        days: params.days,
        devices: params.device_count(),
        truth: Vec::new(),
        clues: Vec::new(),
        messages: 0,
        decode_errors: 0,
        frames: 0,
        wall_s: 0.0,
    };
    let mut clues: HashMap<i64, ClueRecord> = HashMap::new();
    let mut shown = seen::Shown::default();
    let end_ms = fleet.start_ms() + params.days as i64 * DAY_MS;
    let offset_ms = fleet_cfg.utc_offset_hours as i64 * HOUR_MS;
    let mut msgs = Vec::new();
    for m in fleet.online_messages() {
        msgs.push(m);
    }
    let mut next_tick = fleet.time_ms();
    let mut next_frame = fleet.time_ms();
    let mut next_round = {
        let local_day = (fleet.time_ms() + offset_ms).div_euclid(DAY_MS);
        local_day * DAY_MS - offset_ms + INSPECTOR_HOUR * HOUR_MS
    };
    let mut day = 0;
    while fleet.time_ms() < end_ms {
        let now = fleet.time_ms();
        clock.store(now, Ordering::Relaxed);
        fleet.step(&mut msgs)?;
        for t in fleet.take_truth() {
            match t.problem.as_str() {
                "registered_pumpout" => engine.register_pumpout(
                    &t.site,
                    &t.device,
                    t.start_ms - PUMPOUT_MARGIN_MS,
                    t.end_ms + PUMPOUT_MARGIN_MS,
                ),
                // The crew's permit: the works' planned window (the registry adds its slack).
                "registered_maintenance" => {
                    engine.register_maintenance(&t.site, &t.device, t.start_ms, t.end_ms)
                }
                _ => {}
            }
            out.truth.push(t);
        }
        let mut signals = Vec::new();
        for m in msgs.drain(..) {
            out.messages += 1;
            let mut readings = match decoder.decode(&m.topic, &m.payload, now) {
                Ok(r) => r,
                Err(_) => {
                    out.decode_errors += 1;
                    continue;
                }
            };
            if !intake(&mut normalizer, &policy, &mut readings) {
                continue;
            }
            for r in &readings {
                tracing::debug!(target: TRACE, site = %r.site, device = %r.device,
                    t = r.device_time_ms, rx = now, metric = %r.metric, value = %r.value, "reading");
            }
            // The camera service's own path: status on the receive clock, replays as presence.
            signals.extend(cameras.on_readings(&readings));
            signals.extend(engine.on_readings(&readings));
        }
        if now >= next_frame {
            next_frame += FRAME_EVERY_MS;
            for (site, device, view) in fleet.camera_views() {
                let (Some(view), Some(st)) = (view, cams.get_mut(&(site.clone(), device.clone())))
                else {
                    continue;
                };
                let jpeg = st.frame(frames, view);
                out.frames += 1;
                shown.frame(&site, &device, now, view);
                match cameras.on_frame(&device, &site, &jpeg, now) {
                    Ok((s, _)) => signals.extend(s),
                    Err(e) => return Err(ScenarioError::Frames(e.to_string())),
                }
            }
        }
        if now >= next_tick {
            next_tick += TICK_MS;
            signals.extend(engine.on_tick(now));
            signals.extend(cameras.on_tick(now));
        }
        for sig in &signals {
            tracing::debug!(target: TRACE, rx = now, signal = ?sig, "signal");
        }
        record(&pool, signals, &mut clues).await?;
        if now >= next_round {
            next_round += DAY_MS;
            inspector_round(&pool, now).await?;
            day += 1;
            progress(day);
        }
    }
    // Let delayed judgements happen, then close the truth.
    let now = fleet.time_ms();
    clock.store(now, Ordering::Relaxed);
    let mut signals = engine.on_tick(now);
    signals.extend(cameras.on_tick(now));
    record(&pool, signals, &mut clues).await?;
    out.truth.extend(fleet.finish());
    firmware::sim::truth_at_end(
        &mut out.truth,
        now,
        firmware::sim::cable_cut_confirm_ms(fleet_cfg.step_ms),
    );
    firmware::sim::merge_overlapping(&mut out.truth);
    // Every camera of the block runs on the defaults (no per-camera overrides).
    shown.mark_unseen(&mut out.truth, cfg.cameras.defaults.hold_ms as i64);
    let mut list: Vec<ClueRecord> = clues.into_values().collect();
    list.sort_by_key(|c| c.id);
    out.clues = list;
    out.wall_s = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// The intake's sequence and clock checks; `false` when the message is a redelivery.
fn intake(
    normalizer: &mut Normalizer,
    policy: &ClockPolicy,
    readings: &mut [crate::reading::Reading],
) -> bool {
    if let Some(first) = readings.first()
        && let Some(seq) = first.sequence
        && normalizer.check_sequence(&first.site, &first.device, seq) == SeqVerdict::Duplicate
    {
        return false;
    }
    let mut replaced_at = None;
    for r in readings.iter_mut() {
        if fix_clock(r, policy) {
            let at = *replaced_at.get_or_insert_with(|| {
                normalizer.replaced_time(&r.site, &r.device, r.device_time_ms)
            });
            r.device_time_ms = at;
        }
    }
    true
}

/// Records signals in the pool and notes which clue each occurrence went to.
async fn record(
    pool: &PoolHandle,
    signals: Vec<ClueSignal>,
    clues: &mut HashMap<i64, ClueRecord>,
) -> Result<(), ScenarioError> {
    for sig in signals {
        let at = match &sig {
            ClueSignal::Occurrence(e) => Some(e.at_ms),
            ClueSignal::Cleared { .. } => None,
        };
        let Some(change) = pool.signal(sig).await? else {
            continue;
        };
        let Some(at) = at else { continue };
        let c = &change.clue;
        clues
            .entry(c.id)
            .or_insert_with(|| ClueRecord {
                id: c.id,
                rule: c.rule.clone(),
                kind: c.kind.clone(),
                site: c.subject.site.clone(),
                device: c.subject.device.clone(),
                events: Vec::new(),
            })
            .events
            .push((at, c.level.as_str().to_string()));
    }
    Ok(())
}

/// The inspector's daily round: resolve what the producer reported over, and what has been
/// quiet for a day, except a standing duty ([`closed_by_the_duty`]).
async fn inspector_round(pool: &PoolHandle, now: i64) -> Result<(), ScenarioError> {
    let open = pool
        .list(ClueQuery {
            limit: 5_000,
            ..ClueQuery::default()
        })
        .await?;
    for c in open {
        if !c.status.is_open() || c.status == Status::Closed {
            continue;
        }
        let quiet = c.last_seen_ms <= now - DAY_MS && !closed_by_the_duty(&c.kind);
        if c.cleared_ms.is_some() || quiet {
            if c.status == Status::New {
                pool.act(c.id, Action::Claim { note: None }, "inspector".into())
                    .await?;
            }
            pool.act(
                c.id,
                Action::Resolve {
                    note: Some("inspector's daily round".into()),
                },
                "inspector".into(),
            )
            .await?;
        }
    }
    Ok(())
}

/// A pump-out duty is done when the trap is pumped out (the producer reports the fill back
/// under the threshold), not when a day passes without news: the bureau keeps the owner's
/// duty open until then, so "overdue" goes onto the same clue as "due".
fn closed_by_the_duty(kind: &str) -> bool {
    kind.starts_with("grease_trap.pumpout_")
}

/// Per camera: its scene, a frame counter (live frames cycle) and the last frame (a frozen
/// camera repeats it).
struct CamState {
    scene: usize,
    n: usize,
    last: Option<Arc<[u8]>>,
}

impl CamState {
    fn frame(&mut self, lib: &FrameLibrary, view: CameraView) -> Arc<[u8]> {
        self.n += 1;
        let f = match (view, &self.last) {
            (CameraView::Frozen, Some(last)) => last.clone(),
            (v, _) => lib.pick(self.scene, v, self.n),
        };
        self.last = Some(f.clone());
        f
    }
}

/// A private scratch folder for the run's SQLite and evidence.
fn tempfile_dir() -> Result<std::path::PathBuf, ScenarioError> {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = std::env::temp_dir().join(format!(
        "clue-quality-{}-{}-{}",
        std::process::id(),
        crate::clock::now_ms(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::sim::TruthClass;
    use firmware::sim::scenario::Seeded;

    /// A small block for three days: the whole path (simulator, decoders, intake checks,
    /// rules, camera health on real frames, pool, inspector, scoring) on a CI budget (about
    /// 15 s of CPU in a debug build: a 20 s tick and one camera).
    #[tokio::test(flavor = "current_thread")]
    async fn small_block_finds_every_native_night_dump_and_scores_against_the_truth() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let dir = frames::ensure_fixtures(&root).expect("judging camera fixtures");
        let frames = FrameLibrary::load(&dir, Some(&["home"])).expect("frames");
        let p = BlockParams {
            seed: 7,
            days: 3,
            step_ms: 20_000,
            native_traps: 6,
            distance_traps: 3,
            level_traps: 3,
            cameras: 1,
            manholes: 4,
            seeded: Seeded {
                dumps_native: 3,
                dumps_distance: 1,
                dumps_level: 1,
                covers_opened_off_hours: 2,
                covers_tilted: 1,
                cameras_black: 1,
                cameras_frozen: 0,
                cameras_covered: 0,
                cameras_sky: 1,
                cameras_moved: 0,
                cameras_offline: 0,
                cameras_unplugged: 0,
                rain_days: 1,
                spikes: 4,
                dropouts: 1,
                power_cuts: 1,
                clock_skews: 1,
                maintenance: 1,
                ..Seeded::default()
            },
        };
        let out = run_block(&p, &frames, "", |_| {}).await.expect("run");
        assert_eq!(out.decode_errors, 0, "every simulated message decodes");
        assert!(out.frames > 300, "frames judged: {}", out.frames);
        let seeded = |problem: &str| {
            out.truth
                .iter()
                .filter(|t| t.problem == problem && t.class == TruthClass::Violation)
                .count()
        };
        assert_eq!(seeded("cover_opened_off_hours"), 2);
        assert_eq!(seeded("camera_sky"), 1);
        let s = score::score(&out);
        // Native dumps that happened (a dumper waits for a full trap) are all found.
        let native_dumps: Vec<&Truth> = out
            .truth
            .iter()
            .filter(|t| t.problem == "night_dumping" && t.site.as_str() <= "r-006")
            .collect();
        assert!(!native_dumps.is_empty(), "{:?}", out.truth);
        for d in native_dumps {
            assert!(
                out.clues
                    .iter()
                    .any(|c| c.kind == "grease_trap.illegal_discharge"
                        && c.site == d.site
                        && c.events
                            .iter()
                            .any(|(at, _)| (*at - d.start_ms).abs() < HOUR_MS)),
                "dump {d:?} has no clue; misses: {:?}",
                s.misses
            );
        }
        // A cover lifted at night is one clue (not open + too long + tilted), and the
        // registered works on a cover raise none.
        let row = &s.problems["cover_opened_off_hours"];
        assert_eq!(
            (row.seeded, row.found, row.exactly_one),
            (2, 2, 2),
            "misses {:?}, duplicates {:?}",
            s.misses,
            s.duplicates
        );
        assert!(
            !s.false_causes.contains_key("registered_maintenance"),
            "{:?}",
            s.false_examples
        );
        let table = score::report(&[s]);
        assert!(table.contains("night_dumping"), "{table}");
        assert!(table.contains("grease_trap.illegal_discharge"), "{table}");
    }

    /// The simulated inspector leaves a pump-out duty open while the trap stays full (so
    /// "overdue" lands on the same clue as "due"), resolves it once the producer reports the
    /// trap pumped (the clue is cleared), and resolves any other clue quiet for a day.
    #[tokio::test(flavor = "current_thread")]
    async fn the_inspector_closes_a_pumpout_duty_only_once_the_trap_is_pumped() {
        use crate::clue::signal::{ClueEvent, Level, Subject};
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Arc::new(AtomicI64::new(1_000 * DAY_MS));
        let store = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite"), vec![]).expect("db"));
        let pool = PoolHandle::new(
            store.clone(),
            store,
            EvidenceStore::open(dir.path().join("evidence")).expect("evidence"),
            Arc::new(SimClock(now.clone())),
            crate::clue::config::CluesConfig::default(),
            Arc::new(crate::metrics::Metrics::new()),
        );
        let event = |rule: &str, kind: &str, device: &str| {
            let subject = Subject {
                site: "r-001".into(),
                device: Some(device.into()),
                ..Default::default()
            };
            ClueEvent {
                rule: rule.into(),
                kind: kind.into(),
                level: Level::Low,
                dedup_key: ClueEvent::default_key(rule, &subject),
                subject,
                at_ms: now.load(Ordering::Relaxed),
                title: kind.into(),
                detail: serde_json::Value::Null,
                evidence: vec![],
                department: None,
                assisting: Vec::new(),
            }
        };
        let duty = pool
            .ingest(event("trap-pumpout", "grease_trap.pumpout_due", "trap-1"))
            .await
            .expect("duty");
        let stuck = pool
            .ingest(event("trap-sensor-stuck", "sensor.stuck", "trap-2"))
            .await
            .expect("stuck");
        let status = |id: i64| {
            let pool = pool.clone();
            async move {
                pool.get(id)
                    .await
                    .expect("get")
                    .expect("exists")
                    .clue
                    .status
            }
        };
        // Two days later, no news on either: the quiet clue is resolved, the duty stays.
        now.fetch_add(2 * DAY_MS, Ordering::Relaxed);
        inspector_round(&pool, now.load(Ordering::Relaxed))
            .await
            .expect("round");
        assert_eq!(status(stuck.clue.id).await, Status::Resolved);
        assert!(
            status(duty.clue.id).await.is_open(),
            "duty kept open while the trap is full"
        );
        // The trap is pumped: the producer clears the duty, the next round resolves it.
        pool.signal(ClueSignal::Cleared {
            dedup_key: duty.clue.dedup_key.clone(),
            at_ms: now.load(Ordering::Relaxed),
            note: "fill back under 20%".into(),
        })
        .await
        .expect("cleared");
        now.fetch_add(DAY_MS, Ordering::Relaxed);
        inspector_round(&pool, now.load(Ordering::Relaxed))
            .await
            .expect("round");
        assert_eq!(status(duty.clue.id).await, Status::Resolved);
    }
}
