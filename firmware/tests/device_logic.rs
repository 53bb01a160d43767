//! The device programs fed with recorded readings and a fake clock.

use firmware::drivers::camera::CameraStatus;
use firmware::logic::device::*;
use firmware::logic::uplink::Uplink;
use firmware::protocol::{EventPhase, EventSeverity};
use firmware::record::{EventKind, Message, Value};

fn events(msgs: &[Message]) -> Vec<(EventKind, EventPhase)> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Event(e) => Some((e.kind, e.phase)),
            _ => None,
        })
        .collect()
}

fn telemetry(msgs: &[Message]) -> Vec<firmware::record::Metrics> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Telemetry { metrics, .. } => Some(*metrics),
            _ => None,
        })
        .collect()
}

fn f(m: &firmware::record::Metrics, name: &str) -> f32 {
    match m.get(name) {
        Some(Value::F32(v)) => v,
        other => panic!("{name}: {other:?}"),
    }
}

struct Trap {
    p: TrapProgram,
    out: Vec<Message>,
}

impl Trap {
    fn new() -> Self {
        Trap {
            p: TrapProgram::new(TrapConfig::default()),
            out: Vec::new(),
        }
    }
    fn distance(&mut self, t: u64, d: f32) {
        let out = &mut self.out;
        self.p.step(
            t,
            TrapInput {
                sample: LevelSample::DistanceMm(d),
                battery_pct: Some(80.0),
            },
            &mut |m| out.push(m),
        );
    }
    fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.out)
    }
}

#[test]
fn trap_geometry_turns_distance_into_level_fill_and_volume() {
    let mut trap = Trap::new();
    // Nothing before most of the median window is in (a boot on a foam echo reported it).
    for i in 0..4 {
        trap.distance(i * 1000, 600.0);
    }
    assert!(telemetry(&trap.take()).is_empty());
    trap.distance(4000, 600.0);
    let t = telemetry(&trap.take());
    // Default trap: 1000 x 600 mm, sensor 1000 mm above the floor, full at 800 mm.
    assert_eq!(f(&t[0], "level_mm"), 400.0);
    assert_eq!(f(&t[0], "fill_pct"), 50.0);
    assert_eq!(f(&t[0], "volume_l"), 240.0);
    assert_eq!(f(&t[0], "battery_pct"), 80.0);
}

#[test]
fn trap_foam_spikes_do_not_reach_the_wire() {
    let mut trap = Trap::new();
    for i in 0..60u64 {
        // Every 7th echo comes off foam 150 mm above the liquid.
        let d = if i % 7 == 3 { 450.0 } else { 600.0 };
        trap.distance(i * 1000, d);
    }
    let t = telemetry(&trap.take());
    assert_eq!(t.len(), 1, "one report, no spikes");
    assert!(events(&trap.out).is_empty());
}

#[test]
fn trap_reports_on_deadband_and_heartbeat() {
    let mut trap = Trap::new();
    let mut t = 0;
    let mut feed = |trap: &mut Trap, d: f32, secs: u64| {
        for _ in 0..secs {
            trap.distance(t, d);
            t += 1000;
        }
    };
    feed(&mut trap, 600.0, 10);
    assert_eq!(telemetry(&trap.take()).len(), 1);
    feed(&mut trap, 592.0, 10); // 8 mm: inside the 10 mm deadband
    assert_eq!(telemetry(&trap.take()).len(), 0);
    feed(&mut trap, 585.0, 10); // 15 mm: a change
    let r = telemetry(&trap.take());
    assert_eq!(r.len(), 1);
    assert_eq!(f(&r[0], "level_mm"), 415.0);
    feed(&mut trap, 585.0, 15 * 60); // quiet: one heartbeat after 15 min
    assert_eq!(telemetry(&trap.take()).len(), 1);
}

#[test]
fn level_high_alarm_has_hysteresis() {
    let mut trap = Trap::new();
    let mut t = 0;
    // Fill 85 % = 680 mm level = 320 mm distance; recovery at 75 % = 600 mm = 400 mm distance.
    for d in [
        400.0, 330.0, 318.0, 340.0, 318.0, 380.0, 395.0, 401.0, 330.0,
    ] {
        for _ in 0..10 {
            trap.distance(t, d);
            t += 1000;
        }
    }
    assert_eq!(
        events(&trap.take()),
        vec![
            (EventKind::LevelHigh, EventPhase::Alarm),
            (EventKind::LevelHigh, EventPhase::Recovery),
        ]
    );
}

#[test]
fn sudden_drop_is_one_level_drop_event_with_the_litres_removed() {
    let mut trap = Trap::new();
    let mut t = 0;
    for _ in 0..30 {
        trap.distance(t, 500.0); // 500 mm level
        t += 1000;
    }
    // Night-time discharge: 2 mm/s for 150 s = 300 mm.
    for i in 0..150 {
        trap.distance(t, 500.0 + 2.0 * i as f32);
        t += 1000;
    }
    for _ in 0..120 {
        trap.distance(t, 800.0);
        t += 1000;
    }
    let msgs = trap.take();
    let drops: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Event(e) if e.kind == EventKind::LevelDrop => Some(e.value.unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(drops.len(), 1, "{msgs:?}");
    // 300 mm over 0.6 m^2 = 180 L (within the median's lag of a sample or two).
    assert!((drops[0] - 180.0).abs() < 3.0, "{}", drops[0]);
}

#[test]
fn sensor_fault_after_consecutive_bad_readings_and_recovery() {
    let mut p = TrapProgram::new(TrapConfig::default());
    let mut out = Vec::new();
    for (i, s) in [
        LevelSample::DistanceMm(600.0),
        LevelSample::Invalid,
        LevelSample::Invalid,
        LevelSample::Invalid,
        LevelSample::Invalid,
        LevelSample::Invalid,
        LevelSample::Invalid,
        LevelSample::DistanceMm(600.0),
    ]
    .into_iter()
    .enumerate()
    {
        p.step(
            i as u64 * 1000,
            TrapInput {
                sample: s,
                battery_pct: None,
            },
            &mut |m| out.push(m),
        );
    }
    assert_eq!(
        events(&out),
        vec![
            (EventKind::SensorFault, EventPhase::Alarm),
            (EventKind::SensorFault, EventPhase::Recovery)
        ]
    );
}

#[test]
fn low_battery_alarm_and_recovery_with_hysteresis() {
    let mut p = TrapProgram::new(TrapConfig::default());
    let mut out = Vec::new();
    for (i, b) in [30.0, 21.0, 19.5, 22.0, 19.0, 24.9, 25.0]
        .into_iter()
        .enumerate()
    {
        p.step(
            i as u64 * 1000,
            TrapInput {
                sample: LevelSample::LevelMm(300.0),
                battery_pct: Some(b),
            },
            &mut |m| out.push(m),
        );
    }
    assert_eq!(
        events(&out),
        vec![
            (EventKind::LowBattery, EventPhase::Alarm),
            (EventKind::LowBattery, EventPhase::Recovery)
        ]
    );
}

fn manhole_run(inputs: &[(bool, Option<f32>)]) -> Vec<Message> {
    let mut p = ManholeProgram::new(ManholeConfig::default());
    let mut out = Vec::new();
    for (i, &(open, tilt)) in inputs.iter().enumerate() {
        p.step(
            i as u64 * 1000,
            ManholeInput {
                cover_open: open,
                tilt_deg: tilt,
                battery_pct: Some(90.0),
            },
            &mut |m| out.push(m),
        );
    }
    out
}

#[test]
fn cover_open_alarms_immediately_and_recovers() {
    let out = manhole_run(&[
        (false, Some(0.2)),
        (true, Some(0.3)),
        (true, Some(0.3)),
        (false, Some(0.1)),
    ]);
    assert_eq!(
        events(&out),
        vec![
            (EventKind::CoverOpen, EventPhase::Alarm),
            (EventKind::CoverOpen, EventPhase::Recovery)
        ]
    );
    // Boot, open, close: a report each; nothing for the unchanged second.
    assert_eq!(telemetry(&out).len(), 3);
    let Message::Event(e) = out[1] else { panic!() };
    assert_eq!(e.severity, EventSeverity::Alarm);
}

#[test]
fn a_cover_that_boots_open_is_reported_open() {
    let out = manhole_run(&[(true, Some(0.0))]);
    assert_eq!(
        events(&out),
        vec![(EventKind::CoverOpen, EventPhase::Alarm)]
    );
}

#[test]
fn tilt_over_10_degrees_alarms_with_hysteresis() {
    let tilts = [1.0, 9.5, 10.5, 9.0, 11.0, 8.5, 7.9, 10.0];
    let inputs: Vec<_> = tilts.iter().map(|&t| (false, Some(t))).collect();
    let out = manhole_run(&inputs);
    assert_eq!(
        events(&out),
        vec![
            (EventKind::Tilt, EventPhase::Alarm),
            (EventKind::Tilt, EventPhase::Recovery),
            (EventKind::Tilt, EventPhase::Alarm),
        ]
    );
}

#[test]
fn camera_fault_and_recovery_once_per_outage() {
    let mut p = CameraProgram::new(CameraConfig::default());
    let mut out = Vec::new();
    use CameraStatus::*;
    for (i, s) in [Ok, Ok, ImageBad, Offline, PowerLost, Ok, Ok]
        .into_iter()
        .enumerate()
    {
        p.step(
            i as u64 * 1000,
            CameraInput {
                status: s,
                heartbeat_age_ms: 0,
            },
            &mut |m| out.push(m),
        );
    }
    assert_eq!(
        events(&out),
        vec![
            (EventKind::CameraFault, EventPhase::Alarm),
            (EventKind::CameraFault, EventPhase::Recovery)
        ]
    );
    // Every status change is reported: boot, 3 faults, recovery.
    assert_eq!(telemetry(&out).len(), 5);
}

#[test]
fn uplink_stamps_sequence_numbers_and_replays_after_an_outage() {
    let mut up = Uplink::<16>::new();
    let mut p = ManholeProgram::new(ManholeConfig::default());
    let mut sent = Vec::new();
    for i in 0..6u64 {
        if i == 2 {
            up.set_link(false, i as i64);
        }
        if i == 5 {
            up.set_link(true, i as i64);
        }
        let mut msgs = Vec::new();
        p.step(
            i * 1000,
            ManholeInput {
                cover_open: i % 2 == 1,
                tilt_deg: Some(0.0),
                battery_pct: None,
            },
            &mut |m| msgs.push(m),
        );
        for m in msgs {
            up.push(i as i64 * 1000, m);
        }
        while let Some(q) = up.next().copied() {
            sent.push((q.record.seq, q.replayed));
            up.ack();
        }
    }
    let seqs: Vec<u64> = sent.iter().map(|s| s.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(sent.iter().any(|s| s.1), "some were replayed");
    assert!(!sent.last().unwrap().1, "sent live after the replay");
}
