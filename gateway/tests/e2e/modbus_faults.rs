//! Fault isolation against real slaves: devices that never answer, answer with exceptions or
//! answer with garbage do not delay a healthy device; a killed and restarted slave goes
//! offline and comes back online by itself, without leaking tasks.

use crate::modbus_common::*;
use gateway::source::modbus::RegisterKind;
use std::time::{Duration, Instant};

fn max_gap(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_devices_do_not_delay_a_healthy_one_tcp() {
    let ports: Vec<u16> = (0..4).map(|_| e2e::free_port()).collect();
    let _slaves = [
        Slave::tcp(ports[0], "normal"),
        Slave::tcp(ports[1], "never-answer"),
        Slave::tcp(ports[2], "exception"),
        Slave::tcp(ports[3], "garbage"),
    ];
    let names = ["healthy", "silent", "exceptional", "garbled"];
    let devices = names
        .iter()
        .zip(&ports)
        .map(|(n, p)| {
            let mut d = device(
                n,
                &format!("tcp://127.0.0.1:{p}"),
                1,
                typed_registers(RegisterKind::Holding),
            );
            // Failing devices time out after 3 healthy intervals, so any coupling shows.
            d.timeout_ms = 300;
            d
        })
        .collect();
    let run = Running::start(devices);
    let c = run.collected.clone();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The healthy device kept its 100 ms cadence the whole time.
    let times: Vec<Instant> = c
        .data_times("healthy")
        .into_iter()
        .filter(|t| *t > t0 + Duration::from_millis(300))
        .collect();
    let gap = max_gap(&times);
    eprintln!("healthy: {} polls, max gap {gap:?}", times.len());
    assert!(
        times.len() >= 30,
        "only {} healthy polls in ~3.7 s",
        times.len()
    );
    assert!(
        gap < Duration::from_millis(300),
        "healthy device stalled for {gap:?}"
    );
    assert_poll_matches(
        &c.last_poll("healthy").unwrap(),
        &expected_values()
            .into_iter()
            .filter(|(m, _)| m.starts_with("holding_"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(c.presence("healthy"), [true]);

    // The silent and garbled devices are reported offline once; no data from any failing one.
    assert_eq!(c.presence("silent"), [false]);
    assert_eq!(c.presence("garbled"), [false]);
    // The exception device answers (it is reachable) but yields no readings.
    assert_eq!(c.presence("exceptional"), [true]);
    for n in ["silent", "exceptional", "garbled"] {
        assert!(c.data_times(n).is_empty(), "{n} produced readings");
    }
    let text = run.metrics.encode();
    for needle in [
        "device=\"exceptional\",result=\"exception\"",
        "device=\"silent\",result=\"timeout\"",
        "device=\"healthy\",result=\"ok\"",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // Well-formed but wrong replies (short, wrong function, wrong id) are recognised as such.
    assert!(
        text.contains("device=\"garbled\",result=\"bad_reply\""),
        "{text}"
    );
    // Every task, including the garbled device's, is still running.
    assert!(run.handles.iter().all(|h| !h.is_finished()));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_serial_line_does_not_crash_or_delay_another_bus() {
    let (good, bad) = (PtyPair::new(), PtyPair::new());
    let _s1 = Slave::rtu(&good.b, "normal");
    let _s2 = Slave::rtu(&bad.b, "garbage");
    let mut healthy = device(
        "rtu-healthy",
        &format!("rtu://{}?baud=19200", good.a.display()),
        1,
        typed_registers(RegisterKind::Input),
    );
    let mut garbled = device(
        "rtu-garbled",
        &format!("rtu://{}?baud=19200", bad.a.display()),
        1,
        typed_registers(RegisterKind::Input),
    );
    healthy.interval_ms = 200;
    garbled.interval_ms = 200;
    let run = Running::start(vec![healthy, garbled]);
    let c = run.collected.clone();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let times: Vec<Instant> = c
        .data_times("rtu-healthy")
        .into_iter()
        .filter(|t| *t > t0 + Duration::from_millis(500))
        .collect();
    let gap = max_gap(&times);
    eprintln!("rtu healthy: {} polls, max gap {gap:?}", times.len());
    assert!(times.len() >= 12, "only {} healthy polls", times.len());
    assert!(
        gap < Duration::from_millis(600),
        "healthy bus stalled for {gap:?}"
    );
    assert_eq!(c.presence("rtu-garbled"), [false]);
    assert!(c.data_times("rtu-garbled").is_empty());
    assert!(run.handles.iter().all(|h| !h.is_finished()));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_unit_on_a_shared_serial_bus_costs_the_others_at_most_its_timeout() {
    let pty = PtyPair::new();
    // Only unit 1 answers on this line; unit 2 is dead.
    let _slave = Slave::rtu_units(&pty.b, "1");
    let url = format!("rtu://{}?baud=19200", pty.a.display());
    let mut healthy = device(
        "bus-healthy",
        &url,
        1,
        typed_registers(RegisterKind::Holding),
    );
    let mut dead = device("bus-dead", &url, 2, typed_registers(RegisterKind::Holding));
    for d in [&mut healthy, &mut dead] {
        d.interval_ms = 200;
        d.timeout_ms = 150;
        d.backoff_max_ms = 2000;
    }
    let run = Running::start(vec![healthy, dead]);
    let c = run.collected.clone();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let times: Vec<Instant> = c
        .data_times("bus-healthy")
        .into_iter()
        .filter(|t| *t > t0 + Duration::from_millis(500))
        .collect();
    let gap = max_gap(&times);
    eprintln!("shared bus healthy: {} polls, max gap {gap:?}", times.len());
    assert!(times.len() >= 12, "only {} healthy polls", times.len());
    // Interval 200 ms plus at most one 150 ms timeout of the dead unit holding the bus.
    assert!(
        gap < Duration::from_millis(600),
        "healthy unit stalled for {gap:?}"
    );
    assert_eq!(c.presence("bus-healthy"), [true]);
    assert_eq!(c.presence("bus-dead"), [false]);
    // The dead unit backs off: far fewer polls than its 200 ms interval would give.
    let text = run.metrics.encode();
    let dead_polls: u64 = text
        .lines()
        .filter(|l| l.starts_with("gateway_modbus_polls_total") && l.contains("bus-dead"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<u64>().ok()))
        .sum();
    assert!(
        dead_polls <= 10,
        "dead unit polled {dead_polls} times in 4 s"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_slave_goes_offline_and_comes_back_without_leaking_tasks() {
    let rt = tokio::runtime::Handle::current().metrics();
    let before = rt.num_alive_tasks();
    let port = e2e::free_port();
    let mut slave = Some(Slave::tcp(port, "normal"));
    let mut d = device(
        "restartable",
        &format!("tcp://127.0.0.1:{port}"),
        1,
        typed_registers(RegisterKind::Holding),
    );
    d.timeout_ms = 200;
    d.backoff_max_ms = 400;
    let run = Running::start(vec![d]);
    let c = run.collected.clone();
    c.wait_for(Duration::from_secs(10), "first online", |c| {
        c.presence("restartable") == [true]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = rt.num_alive_tasks();
    for round in 1..=3 {
        slave.take().unwrap().kill();
        let want: Vec<bool> = (0..round).flat_map(|_| [true, false]).collect();
        c.wait_for(Duration::from_secs(10), "offline", |c| {
            c.presence("restartable") == want
        })
        .await;
        // While it is down the task backs off and stays the same single task.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            rt.num_alive_tasks(),
            running,
            "round {round}: task count changed while offline"
        );
        let polls_before = c.data_times("restartable").len();
        slave = Some(Slave::tcp(port, "normal"));
        let mut want2 = want.clone();
        want2.push(true);
        c.wait_for(Duration::from_secs(10), "back online", |c| {
            c.presence("restartable") == want2
                && c.data_times("restartable").len() > polls_before + 2
        })
        .await;
        assert_eq!(
            rt.num_alive_tasks(),
            running,
            "round {round}: task count changed"
        );
    }
    assert!(
        run.metrics
            .encode()
            .contains("gateway_modbus_devices_online 1")
    );
    let metrics = run.metrics.clone();
    run.stop().await;
    assert!(metrics.encode().contains("gateway_modbus_devices_online 0"));
    // All device tasks (and their supervisors) are gone.
    let t0 = Instant::now();
    while rt.num_alive_tasks() > before && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rt.num_alive_tasks() <= before, "tasks leaked after stop");
    drop(slave);
}
