//! Ingest benchmark (issue 3): the gateway draining a queued MQTT backlog, compared with
//! `mosquitto_sub` draining the same backlog from the same broker on the same machine.
//!
//! Run through `bash tests/bench-ingest.sh` (builds release first), or directly:
//! `bench_ingest --gateway target/release/gateway [--messages N] [--devices D] [--out FILE]`.
//!
//! Procedure, for both consumers: register a persistent QoS 1 session, go offline, publish the
//! stream (QoS 1, every PUBACK awaited) so the broker queues it, then start the consumer again
//! and time until it has everything. The gateway is timed twice: until every message is in its
//! disk outbox (`gateway_outbox_appended_total`), and until every point was written to
//! VictoriaMetrics (`gateway_sink_points_written_total`); the distinct points in the database
//! are counted afterwards (export), outside the timed part.
//!
//! Headline (issue 24): CPU seconds per 100,000 messages, the gateway's beside mosquitto_sub's
//! in the same round (steadier than wall time on a shared machine), the median of the per-round
//! ratios, then the wall ratio and peak RSS. Targets: CPU ratio <= 1.0, wall ratio >= 0.9,
//! RSS < 100 MB.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Mosquitto, ServerProcess, VictoriaMetrics, free_port, http, now_ms, wait_until};

const SITE: &str = "bench";
// Client ids get the round number appended: every round uses fresh sessions, so nothing a
// previous round left queued or unacknowledged is drained again.
const GATEWAY_ID: &str = "bench-gw";
const REF_ID: &str = "bench-ref";

struct Args {
    gateway: PathBuf,
    messages: usize,
    devices: usize,
    out: PathBuf,
    timeout: Duration,
    ack_batch: usize,
    rounds: usize,
    config_extra: String,
    /// Fail (exit 1) when the gateway's peak RSS reaches this (the backlog check, issue 24).
    max_rss_mb: Option<f64>,
    /// Device time between a device's messages. 1 ms by default: a device's readings all lie
    /// within its messages' count of milliseconds, so rule windows never hold more than the
    /// messages sent. `60000` (one a minute) makes 2,500 messages a device span 42 hours of
    /// device time ending now: the rule state of a fleet at steady state (issue 24).
    ts_step_ms: i64,
}

impl Args {
    /// Device time spanned by a device's messages.
    fn span_ms(&self) -> i64 {
        self.messages.div_ceil(self.devices) as i64 * self.ts_step_ms
    }

    /// The first message's device time: the last one is a minute before now.
    fn base_ms(&self) -> i64 {
        now_ms() - 60_000 - self.span_ms()
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_ingest --gateway PATH [--messages N (200000)] [--devices D (10000)] \
         [--out FILE (target/bench/ingest.json)] [--timeout-s S (600, per phase)] \
         [--rounds R (3; medians reported)] [--ack-batch N (4096; the gateway default is 512)] \
         [--config-extra TOML|@FILE (appended to the gateway config; GATEWAY_* env vars work too)] \
         [--max-rss-mb MB (exit 1 when the gateway's peak RSS reaches MB: the backlog check)] \
         [--ts-step-ms MS (1; device time between a device's messages, 60000: steady state)]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        gateway: PathBuf::new(),
        messages: 200_000,
        devices: 10_000,
        out: PathBuf::from("target/bench/ingest.json"),
        timeout: Duration::from_secs(600),
        ack_batch: 4096,
        rounds: 3,
        config_extra: String::new(),
        max_rss_mb: None,
        ts_step_ms: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--gateway" => a.gateway = PathBuf::from(val()),
            "--messages" => a.messages = val().parse().unwrap_or_else(|_| usage()),
            "--devices" => a.devices = val().parse().unwrap_or_else(|_| usage()),
            "--out" => a.out = PathBuf::from(val()),
            "--timeout-s" => {
                a.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage()))
            }
            "--rounds" => a.rounds = val().parse().unwrap_or_else(|_| usage()),
            "--ack-batch" => a.ack_batch = val().parse().unwrap_or_else(|_| usage()),
            "--max-rss-mb" => a.max_rss_mb = Some(val().parse().unwrap_or_else(|_| usage())),
            "--ts-step-ms" => a.ts_step_ms = val().parse().unwrap_or_else(|_| usage()),
            // `@FILE` reads the TOML from a file (1,000 rules exceed the argument size limit).
            "--config-extra" => {
                let v = val();
                a.config_extra = match v.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
                        eprintln!("--config-extra {v}: {e}");
                        std::process::exit(2)
                    }),
                    None => v,
                };
            }
            _ => usage(),
        }
    }
    if a.gateway.as_os_str().is_empty()
        || a.messages == 0
        || a.devices == 0
        || a.rounds == 0
        || a.ts_step_ms < 1
    {
        usage();
    }
    a
}

fn main() -> Result<()> {
    let args = parse_args();
    let gateway_bin = std::fs::canonicalize(&args.gateway)
        .with_context(|| format!("gateway binary {}", args.gateway.display()))?;
    let n = args.messages;
    println!(
        "bench-ingest: {n} messages from {} devices ({} each), QoS 1, loopback",
        args.devices,
        n.div_ceil(args.devices)
    );
    let mut broker = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    println!("mosquitto {}  victoria-metrics {}", broker.url(), vm.url());
    let broker_pid = broker.process().pid().context("mosquitto pid")?;

    let dir = tempfile::Builder::new().prefix("bench-ingest-").tempdir()?;
    let mut per_point = 1.0;

    // ---- Rounds: reference then gateway, each draining its own freshly queued backlog.
    let mut refs = Vec::new();
    let mut gws = Vec::new();
    for round in 1..=args.rounds {
        println!(
            "\n== round {round}/{}: reference (mosquitto_sub)",
            args.rounds
        );
        let ref_id = format!("{REF_ID}-{round}");
        run_sub(&broker, &ref_id, true, &["-E"], Duration::from_secs(20))
            .context("register the reference session")?;
        let stream = telemetry(n, args.devices, args.base_ms(), args.ts_step_ms);
        let publish_s = publish(&broker, "bench-pub-ref", stream, true)?.as_secs_f64();
        let cpu0 = cpu_seconds(broker_pid)?;
        let r = drain_reference(&broker, &ref_id, n, args.timeout)?;
        // A clean connect under the same id discards the session (and anything left in it).
        run_sub(&broker, &ref_id, false, &["-E"], Duration::from_secs(20))?;
        let r = RefRound {
            publish_s,
            secs: r.secs,
            cpu_s: r.cpu_s,
            broker_cpu_s: cpu_seconds(broker_pid)? - cpu0,
        };
        println!(
            "mosquitto_sub drained {n} in {:.2} s ({:.0} msg/s), its CPU {:.2} s, broker CPU {:.2} s",
            r.secs,
            n as f64 / r.secs,
            r.cpu_s,
            r.broker_cpu_s
        );
        refs.push(r);

        println!(
            "\n== round {round}/{}: gateway ([mqtt] ack_batch = {})",
            args.rounds, args.ack_batch
        );
        let gw_id = format!("{GATEWAY_ID}-{round}");
        let mut gw = register_gateway(
            &gateway_bin,
            &dir.path().join(format!("round-{round}")),
            &broker,
            &vm,
            &gw_id,
            &args,
            &mut per_point,
        )?;
        let stream = telemetry(n, args.devices, args.base_ms(), args.ts_step_ms);
        let publish_s = publish(&broker, "bench-pub-gw", stream, true)?.as_secs_f64();
        let g = drain_gateway(&mut gw, broker_pid, n, per_point, args.timeout)?;
        gw.proc.stop().context("stop gateway (SIGTERM)")?;
        run_sub(&broker, &gw_id, false, &["-E"], Duration::from_secs(20))?;
        println!(
            "gateway: outbox {:.2} s, database {:.2} s ({:.0} msg/s), CPU {:.2} s, \
             peak RSS {:.1} MB, broker CPU {:.2} s; MQTT deliveries {:.0} for {n} published \
             ({:.0} dropped as sequence duplicates)",
            g.to_outbox,
            g.to_sink,
            n as f64 / g.to_sink,
            g.cpu_s,
            g.hwm_mb,
            g.broker_cpu_s,
            g.metric("gateway_mqtt_messages_total"),
            g.metric("gateway_sequence_duplicates_total"),
        );
        gws.push(GwRound { publish_s, ..g });
    }

    // Verify the database (not timed): distinct (device, time) points of every round.
    let want = n * args.rounds;
    let selector = format!(r#"{{__name__="grease_trap_level",site="{SITE}"}}"#);
    let tv = Instant::now();
    let mut distinct = 0;
    let verified = wait_until(
        &format!("{want} distinct points in victoria-metrics"),
        Duration::from_secs(120),
        || {
            let mut set = std::collections::HashSet::new();
            for s in vm.export(&selector)? {
                let dev = s.label("device").unwrap_or("").to_string();
                for ts in &s.timestamps {
                    set.insert((dev.clone(), *ts));
                }
            }
            distinct = set.len();
            Ok((distinct >= want).then_some(distinct))
        },
    );
    let verify_s = tv.elapsed().as_secs_f64();
    match &verified {
        Ok(d) => println!(
            "\nvictoria-metrics holds {d} distinct points of {want} (export took {verify_s:.1} s)"
        ),
        Err(e) => println!("\nvictoria-metrics check FAILED: {e:#} (had {distinct})"),
    }
    let _ = broker.stop();

    // ---- Report: per round, and medians.
    let rate = |s: f64| n as f64 / s;
    println!(
        "\n== results: {n} messages, {} devices, {} round(s), gateway [mqtt] ack_batch = {}",
        args.devices, args.rounds, args.ack_batch
    );
    println!(
        "{:<7} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "round",
        "publish/s",
        "ref msg/s",
        "gw->outbx",
        "gw->db",
        "outbx/ref",
        "db/ref",
        "gw CPU s",
        "ref CPU",
        "RSS MB"
    );
    let mut ratio_out = Vec::new();
    let mut ratio_db = Vec::new();
    for (i, (r, g)) in refs.iter().zip(&gws).enumerate() {
        let (ro, rd) = (
            rate(g.to_outbox) / rate(r.secs),
            rate(g.to_sink) / rate(r.secs),
        );
        ratio_out.push(ro);
        ratio_db.push(rd);
        println!(
            "{:<7} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>8.1}",
            i + 1,
            rate(r.publish_s.max(g.publish_s)),
            rate(r.secs),
            rate(g.to_outbox),
            rate(g.to_sink),
            ro,
            rd,
            g.cpu_s,
            r.cpu_s,
            g.hwm_mb
        );
    }
    let med_ref = median(refs.iter().map(|r| rate(r.secs)));
    let med_out = median(gws.iter().map(|g| rate(g.to_outbox)));
    let med_db = median(gws.iter().map(|g| rate(g.to_sink)));
    let med_ratio_out = median(ratio_out.iter().copied());
    let med_ratio_db = median(ratio_db.iter().copied());
    let hwm = gws.iter().map(|g| g.hwm_mb).fold(0.0, f64::max);
    let gw_cpu = median(gws.iter().map(|g| g.cpu_s));
    let ref_cpu = median(refs.iter().map(|r| r.cpu_s));
    let broker_ref = median(refs.iter().map(|r| r.broker_cpu_s));
    let broker_gw = median(gws.iter().map(|g| g.broker_cpu_s));
    println!(
        "{:<7} {:>10} {:>10.0} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>8.1}",
        "median", "", med_ref, med_out, med_db, med_ratio_out, med_ratio_db, gw_cpu, ref_cpu, hwm
    );
    println!();
    println!("reference         mosquitto_sub -c -q 1 -C {n} > counted pipe: {med_ref:.0} msg/s");
    println!(
        "gateway->outbox   {med_out:.0} msg/s  ratio {med_ratio_out:.2} (target >= 0.9; median of per-round ratios)"
    );
    println!("gateway->database {med_db:.0} msg/s  ratio {med_ratio_db:.2} (target >= 0.9)");
    println!("gateway peak RSS  {hwm:.1} MB (VmHWM, max over rounds; target < 100)");
    println!(
        "CPU seconds       gateway {gw_cpu:.2}, mosquitto_sub {ref_cpu:.2}; broker {broker_ref:.2} \
         serving mosquitto_sub, {broker_gw:.2} serving the gateway (medians per round)"
    );
    println!(
        "database          {} distinct points of {want} (verified after the timed part)",
        if verified.is_ok() { want } else { distinct }
    );
    // The headline: CPU per 100,000 messages, each round's gateway against that round's
    // mosquitto_sub (the median of the per-round ratios).
    let per_100k = |cpu: f64| cpu * 100_000.0 / n as f64;
    let cpu_ratios: Vec<f64> = refs
        .iter()
        .zip(&gws)
        .map(|(r, g)| g.cpu_s / r.cpu_s.max(1e-9))
        .collect();
    let med_cpu_ratio = median(cpu_ratios.iter().copied());
    println!();
    println!(
        "HEADLINE CPU per 100,000 messages: gateway {:.3} s, mosquitto_sub {:.3} s, ratio {med_cpu_ratio:.2} \
         (median of per-round ratios {}; target <= 1.0)",
        per_100k(gw_cpu),
        per_100k(ref_cpu),
        cpu_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "HEADLINE wall ratio (gateway->database / mosquitto_sub) {med_ratio_db:.2} (target >= 0.9); \
         peak RSS {hwm:.1} MB (target < 100)"
    );
    let cpu_ok = med_cpu_ratio <= 1.0;
    let ratio_ok = med_ratio_out >= 0.9 && med_ratio_db >= 0.9;
    let rss_ok = hwm < 100.0;
    println!(
        "targets: CPU ratio <= 1.0 {}, wall ratio >= 0.9 {}, RSS < 100 MB {}",
        if cpu_ok { "met" } else { "MISSED" },
        if ratio_ok { "met" } else { "MISSED" },
        if rss_ok { "met" } else { "MISSED" }
    );

    let json = serde_json::json!({
        "messages": n,
        "devices": args.devices,
        "ts_step_ms": args.ts_step_ms,
        "rounds": args.rounds,
        "gateway_config": { "mqtt.ack_batch": args.ack_batch, "extra": args.config_extra },
        "unix_ms": now_ms(),
        "median": {
            "reference_msg_per_s": med_ref, "gateway_to_outbox_msg_per_s": med_out,
            "gateway_to_database_msg_per_s": med_db, "ratio_outbox": med_ratio_out,
            "ratio_database": med_ratio_db, "gateway_cpu_s": gw_cpu, "reference_cpu_s": ref_cpu,
            "broker_cpu_s_reference": broker_ref, "broker_cpu_s_gateway": broker_gw,
            "gateway_cpu_s_per_100k": per_100k(gw_cpu), "reference_cpu_s_per_100k": per_100k(ref_cpu),
            "cpu_ratio": med_cpu_ratio,
        },
        "gateway_peak_rss_mb": hwm,
        "database_distinct_points": if verified.is_ok() { want } else { distinct },
        "database_expected_points": want,
        "verify_export_s": verify_s,
        "outbox_appended_per_point": per_point,
        "reference_rounds": refs.iter().map(|r| serde_json::json!({
            "publish_s": r.publish_s, "seconds": r.secs, "msg_per_s": rate(r.secs),
            "cpu_s": r.cpu_s, "broker_cpu_s": r.broker_cpu_s,
        })).collect::<Vec<_>>(),
        "gateway_rounds": gws.iter().map(|g| serde_json::json!({
            "publish_s": g.publish_s, "to_outbox_s": g.to_outbox, "to_database_s": g.to_sink,
            "cpu_s": g.cpu_s, "peak_rss_mb": g.hwm_mb, "broker_cpu_s": g.broker_cpu_s,
            "final_metrics": g.final_metrics, "progress": g.samples,
        })).collect::<Vec<_>>(),
        "cpu_ratios": cpu_ratios,
        "targets": {
            "cpu_ratio_max": 1.0, "ratio_min": 0.9, "rss_max_mb": 100,
            "cpu_met": cpu_ok, "ratio_met": ratio_ok, "rss_met": rss_ok,
        },
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("wrote {}", args.out.display());
    verified?;
    if let Some(max) = args.max_rss_mb
        && hwm >= max
    {
        bail!("gateway peak RSS {hwm:.1} MB reached the limit of {max} MB");
    }
    Ok(())
}

/// Starts a gateway with client id `id` (registering its persistent session), checks the
/// whole path with one probe message, and stops it again (SIGTERM).
fn register_gateway(
    bin: &Path,
    dir: &Path,
    broker: &Mosquitto,
    vm: &VictoriaMetrics,
    id: &str,
    args: &Args,
    per_point: &mut f64,
) -> Result<Gateway> {
    std::fs::create_dir_all(dir)?;
    let mut gw = Gateway::start(
        bin,
        dir,
        &broker.url(),
        &vm.url(),
        id,
        // Device times back to the first message's, plus the hour a slow run may need.
        (args.ack_batch, 3_600 + (args.span_ms() / 1000) as u64),
        &args.config_extra,
    )?;
    // Probe: a message on another site proves the subscription is in place and the whole
    // path works before the gateway goes offline. Published again every few seconds until it
    // arrives: a probe sent before the broker has taken the gateway's fresh subscription is
    // not queued for it (each probe is its own point, a distinct time).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    loop {
        seq += 1;
        publish(
            broker,
            "bench-pub-probe",
            vec![(
                format!("v1/bench-probe/{id}/telemetry"),
                format!(
                    r#"{{"ts":{},"seq":{seq},"stream":"grease_trap","metrics":{{"level":1.5,"battery":90}}}}"#,
                    now_ms()
                )
                .into_bytes(),
            )],
            false,
        )?;
        let arrived = wait_until("probe in the database", Duration::from_secs(5), || {
            Ok((gw.metric("gateway_sink_points_written_total")? >= 1.0).then_some(()))
        });
        if arrived.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            arrived.with_context(|| gw.proc.log_tail(30))?;
        }
    }
    // Let any other probe in flight land before counting.
    std::thread::sleep(Duration::from_millis(500));
    // How much does `gateway_outbox_appended_total` count for one point? (It once counted
    // every append twice: the outbox and the pipeline both incremented it.) The outbox
    // threshold is scaled by this, so the figure stays right either way.
    let written = gw.metric("gateway_sink_points_written_total")?.max(1.0);
    let counted = (gw.metric("gateway_outbox_appended_total")? / written)
        .round()
        .max(1.0);
    if counted != *per_point {
        println!(
            "NOTE: gateway_outbox_appended_total counted {counted} for one point; \
             the outbox threshold is scaled by {counted}"
        );
        *per_point = counted;
    }
    gw.proc.stop().context("stop gateway (SIGTERM)")?;
    println!("gateway session {id} registered; gateway stopped (SIGTERM)");
    Ok(gw)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

struct RefRound {
    publish_s: f64,
    secs: f64,
    cpu_s: f64,
    broker_cpu_s: f64,
}

struct GwRound {
    publish_s: f64,
    to_outbox: f64,
    to_sink: f64,
    cpu_s: f64,
    hwm_mb: f64,
    broker_cpu_s: f64,
    final_metrics: std::collections::HashMap<String, f64>,
    samples: Vec<serde_json::Value>,
}

impl GwRound {
    fn metric(&self, name: &str) -> f64 {
        self.final_metrics.get(name).copied().unwrap_or(0.0)
    }
}

/// Starts the (offline, session registered) gateway and times its drain of `n` queued
/// messages: into the outbox and into the database.
fn drain_gateway(
    gw: &mut Gateway,
    broker_pid: u32,
    n: usize,
    per_point: f64,
    timeout: Duration,
) -> Result<GwRound> {
    let broker_cpu0 = cpu_seconds(broker_pid)?;
    let t0 = Instant::now();
    gw.proc.start()?;
    let pid = gw.proc.pid().context("gateway pid")?;
    // Optional CPU profile of the timed drain: BENCH_PERF=FILE (needs `perf`; last round wins).
    let mut perf = match std::env::var_os("BENCH_PERF") {
        Some(out) => Some(
            Command::new("perf")
                .args(["record", "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
                .arg(out)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawn perf record")?,
        ),
        None => None,
    };
    let mut to_outbox: Option<f64> = None;
    let mut to_sink: Option<f64> = None;
    let mut last_print = Instant::now();
    let mut samples = Vec::new();
    loop {
        gw.proc.check_alive()?;
        let elapsed = t0.elapsed().as_secs_f64();
        if let Ok(m) = gw.metrics() {
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            let appended = get("gateway_outbox_appended_total") / per_point;
            let written = get("gateway_sink_points_written_total");
            if to_outbox.is_none() && appended >= n as f64 {
                to_outbox = Some(elapsed);
            }
            if to_sink.is_none() && written >= n as f64 {
                to_sink = Some(elapsed);
            }
            if last_print.elapsed() >= Duration::from_secs(1) || to_sink.is_some() {
                last_print = Instant::now();
                let rss = proc_status_kb(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;
                println!(
                    "  t={elapsed:6.1}s  mqtt {:>7.0}  readings {:>7.0}  outbox +{:>7.0} (depth {:>7.0})  \
                     written {:>7.0}  rss {rss:5.1} MB",
                    get("gateway_mqtt_messages_total"),
                    get("gateway_readings_in_total"),
                    appended,
                    get("gateway_outbox_depth_records"),
                    written,
                );
                samples.push(serde_json::json!({
                    "t_s": elapsed, "mqtt": get("gateway_mqtt_messages_total"),
                    "appended": appended, "written": written, "rss_mb": rss,
                }));
            }
        }
        if to_sink.is_some() {
            break;
        }
        if t0.elapsed() > timeout {
            bail!(
                "gateway did not deliver {n} points within {timeout:?}\n{}",
                gw.proc.log_tail(30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let broker_cpu_s = cpu_seconds(broker_pid)? - broker_cpu0;
    let cpu_s = cpu_seconds(pid)?;
    let hwm_mb = proc_status_kb(pid, "VmHWM:")? as f64 / 1024.0;
    let final_metrics = gw.metrics()?;
    if let Some(p) = perf.as_mut() {
        // SIGINT makes perf write its file and exit.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
        let _ = wait_child(p, Duration::from_secs(30));
    }
    Ok(GwRound {
        publish_s: 0.0,
        to_outbox: to_outbox.context("outbox time")?,
        to_sink: to_sink.context("sink time")?,
        cpu_s,
        hwm_mb,
        broker_cpu_s,
        final_metrics,
        samples,
    })
}

/// `n` native telemetry messages, interleaved across `devices` devices (message `k` is
/// device `k % devices`, its `k / devices`-th message; device time `base_ms + that index`).
fn telemetry(n: usize, devices: usize, base_ms: i64, step_ms: i64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|k| {
            let (d, i) = (k % devices, k / devices);
            (
                format!("v1/{SITE}/dev{d:05}/telemetry"),
                format!(
                    r#"{{"ts":{},"seq":{},"stream":"grease_trap","metrics":{{"level":{}.5,"battery":90}}}}"#,
                    base_ms + i as i64 * step_ms,
                    i + 1,
                    i % 100
                )
                .into_bytes(),
            )
        })
        .collect()
}

/// Publishes at QoS 1 through one rumqttc connection and waits for every PUBACK.
fn publish(
    broker: &Mosquitto,
    client_id: &str,
    messages: Vec<(String, Vec<u8>)>,
    report: bool,
) -> Result<Duration> {
    let total = messages.len();
    let took = e2e::publish_qos1(
        broker.port(),
        client_id,
        messages,
        1000,
        Duration::from_secs(600),
        |acked, total| {
            if report {
                println!("  publishing: {acked} of {total} acked");
            }
        },
    )?;
    if report {
        println!(
            "published {total} in {:.2} s ({:.0} msg/s), every PUBACK received",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
    }
    Ok(took)
}

/// `mosquitto_sub` on `v1/#` at QoS 1 as client `id`, persistent session (`-c`) or clean.
fn sub_command(broker: &Mosquitto, id: &str, persistent: bool, extra: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(e2e::require_binary("mosquitto_sub")?);
    cmd.args(broker.client_args());
    if persistent {
        cmd.arg("-c");
    }
    cmd.args(["-i", id, "-q", "1", "-t", "v1/#"])
        .args(extra)
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Runs mosquitto_sub to completion (bounded), e.g. `-E` to register the session and exit.
fn run_sub(
    broker: &Mosquitto,
    id: &str,
    persistent: bool,
    extra: &[&str],
    timeout: Duration,
) -> Result<()> {
    let mut child = sub_command(broker, id, persistent, extra)?
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let status = wait_child(&mut child, timeout)?;
    if !status.success() {
        bail!("mosquitto_sub {extra:?} failed ({status})");
    }
    Ok(())
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("child {} timed out after {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct RefResult {
    secs: f64,
    cpu_s: f64,
}

/// `mosquitto_sub -C n` on the persistent session; stdout is counted (newlines) and dropped.
fn drain_reference(broker: &Mosquitto, id: &str, n: usize, timeout: Duration) -> Result<RefResult> {
    let count_arg = n.to_string();
    let cpu0 = children_cpu_seconds();
    let t0 = Instant::now();
    let mut child = sub_command(broker, id, true, &["-C", &count_arg])?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let lines = Arc::new(AtomicU64::new(0));
    let mut out = child.stdout.take().context("mosquitto_sub stdout")?;
    let counter = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(k) = out.read(&mut buf) {
                if k == 0 {
                    break;
                }
                let nl = buf[..k].iter().filter(|&&b| b == b'\n').count();
                lines.fetch_add(nl as u64, Ordering::Relaxed);
            }
        })
    };
    let deadline = t0 + timeout;
    let mut last = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "mosquitto_sub drained only {} of {n} within {timeout:?}",
                lines.load(Ordering::Relaxed)
            );
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            println!(
                "  t={:6.1}s  mosquitto_sub received {:>7}",
                t0.elapsed().as_secs_f64(),
                lines.load(Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu_s = children_cpu_seconds() - cpu0;
    let _ = counter.join();
    let got = lines.load(Ordering::Relaxed);
    if !status.success() || got < n as u64 {
        bail!("mosquitto_sub exited ({status}) after {got} of {n} messages");
    }
    Ok(RefResult { secs, cpu_s })
}

/// CPU seconds of reaped children (user + system): brackets one child's run.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of a live process from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((utime + stime) / hz)
}

/// A `kB` field of /proc/PID/status, e.g. `VmHWM:`.
fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("{field} not in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}

struct Gateway {
    proc: ServerProcess,
    http: String,
}

impl Gateway {
    fn start(
        bin: &Path,
        dir: &Path,
        mqtt_url: &str,
        vm_url: &str,
        client_id: &str,
        // `[mqtt] ack_batch` and `[devices] max_clock_skew_s`.
        (ack_batch, max_skew_s): (usize, u64),
        extra: &str,
    ) -> Result<Self> {
        let port = free_port();
        // Knobs: defaults, except
        // - `ack_batch`: messages made durable with one fsync. 512 (default) leaves the
        //   processor waiting on an fsync every 512 messages; 4096 (the intake channel's
        //   capacity, so the largest batch that can form) amortises it. A batch only takes what
        //   is already queued, so this adds no latency at low rates.
        // - device clocks may be further off, so a slow run cannot turn device times into
        //   receive times (which would merge points).
        let text = format!(
            r#"
[mqtt]
url = "{mqtt_url}"
client_id = "{client_id}"
ack_batch = {ack_batch}

[influx]
url = "{vm_url}"
api = "v2"
dialect = "victoriametrics"
org = "city"
bucket = "bench"
token = "bench-token"

[devices]
max_clock_skew_s = {max_skew_s}

[http]
listen = "127.0.0.1:{port}"

[storage]
dir = "{storage}"

{extra}
"#,
            storage = dir.join("storage").display()
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text)?;
        let proc = ServerProcess::spawn(
            "gateway",
            bin,
            vec!["run".into(), "--config".into(), path.display().to_string()],
            dir.join("gateway.log"),
        )?;
        let gw = Gateway {
            proc,
            http: format!("http://127.0.0.1:{port}"),
        };
        let url = format!("{}/healthz", gw.http);
        wait_until("gateway /healthz", Duration::from_secs(30), || {
            Ok(http::get(&url).ok().filter(|r| r.is_success()).map(|_| ()))
        })
        .with_context(|| gw.proc.log_tail(30))?;
        Ok(gw)
    }

    /// Every `gateway_*` sample, label sets of one name summed.
    fn metrics(&self) -> Result<std::collections::HashMap<String, f64>> {
        let text = http::get(&format!("{}/metrics", self.http))?.ok()?.text();
        let mut m = std::collections::HashMap::new();
        for l in text.lines().filter(|l| l.starts_with("gateway_")) {
            let Some((name, value)) = l.rsplit_once(' ') else {
                continue;
            };
            let name = name.split('{').next().unwrap_or(name);
            if let Ok(v) = value.parse::<f64>() {
                *m.entry(name.to_string()).or_insert(0.0) += v;
            }
        }
        Ok(m)
    }

    fn metric(&self, name: &str) -> Result<f64> {
        Ok(self.metrics()?.get(name).copied().unwrap_or(0.0))
    }
}
