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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Mosquitto, ServerProcess, VictoriaMetrics, free_port, http, now_ms, wait_until};

const SITE: &str = "bench";
const GATEWAY_ID: &str = "bench-gw";
const REF_ID: &str = "bench-ref";

struct Args {
    gateway: PathBuf,
    messages: usize,
    devices: usize,
    out: PathBuf,
    timeout: Duration,
    ack_batch: usize,
    config_extra: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_ingest --gateway PATH [--messages N (200000)] [--devices D (10000)] \
         [--out FILE (target/bench/ingest.json)] [--timeout-s S (600, per phase)] \
         [--ack-batch N (4096; the gateway default is 512)] \
         [--config-extra TOML (appended to the gateway config; GATEWAY_* env vars work too)]"
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
        config_extra: String::new(),
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
            "--ack-batch" => a.ack_batch = val().parse().unwrap_or_else(|_| usage()),
            "--config-extra" => a.config_extra = val(),
            _ => usage(),
        }
    }
    if a.gateway.as_os_str().is_empty() || a.messages == 0 || a.devices == 0 {
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

    // ---- 1. Reference: mosquitto_sub drains the queued backlog.
    println!("\n== reference: mosquitto_sub");
    run_sub(&broker, &["-E"], Duration::from_secs(20)).context("register bench-ref session")?;
    let stream = telemetry(n, args.devices, now_ms() - 60_000);
    let ref_pub = publish(&broker, "bench-pub-ref", stream)?;
    println!(
        "published {n} in {:.2} s ({:.0} msg/s)",
        ref_pub.as_secs_f64(),
        n as f64 / ref_pub.as_secs_f64()
    );
    let broker_cpu0 = cpu_seconds(broker_pid)?;
    let reference = drain_reference(&broker, n, args.timeout)?;
    let broker_cpu_ref = cpu_seconds(broker_pid)? - broker_cpu0;
    println!(
        "mosquitto_sub drained {n} in {:.2} s ({:.0} msg/s), its CPU {:.2} s, broker CPU {:.2} s",
        reference.secs,
        n as f64 / reference.secs,
        reference.cpu_s,
        broker_cpu_ref
    );

    // ---- 2. The gateway: same procedure.
    println!("\n== gateway ([mqtt] ack_batch = {})", args.ack_batch);
    let dir = tempfile::Builder::new().prefix("bench-ingest-").tempdir()?;
    let mut gw = Gateway::start(
        &gateway_bin,
        dir.path(),
        &broker.url(),
        &vm.url(),
        args.ack_batch,
        &args.config_extra,
    )?;
    // Probe: one message on another site proves the subscription is in place and the
    // whole path works before the gateway goes offline.
    publish(
        &broker,
        "bench-pub-probe",
        vec![(
            "v1/bench-probe/probe/telemetry".into(),
            format!(
                r#"{{"ts":{},"seq":1,"stream":"grease_trap","metrics":{{"level":1.5,"battery":90}}}}"#,
                now_ms()
            )
            .into_bytes(),
        )],
    )?;
    wait_until("probe in the database", Duration::from_secs(30), || {
        Ok((gw.metric("gateway_sink_points_written_total")? >= 1.0).then_some(()))
    })
    .with_context(|| gw.proc.log_tail(30))?;
    // The probe is exactly one point: how much does `gateway_outbox_appended_total` count for
    // it? (Main at the time of writing counts every append twice: the outbox and the pipeline
    // both increment it.) The outbox threshold is scaled by this, so the figure stays right
    // once the double count is fixed.
    let per_point = gw.metric("gateway_outbox_appended_total")?.round().max(1.0);
    if per_point != 1.0 {
        println!(
            "NOTE: gateway_outbox_appended_total counted {per_point} for one point; \
             the outbox threshold is scaled by {per_point}"
        );
    }
    gw.proc.stop().context("stop gateway (SIGTERM)")?;
    println!("session registered, gateway stopped (SIGTERM)");

    let stream = telemetry(n, args.devices, now_ms() - 60_000);
    let gw_pub = publish(&broker, "bench-pub-gw", stream)?;
    println!(
        "published {n} in {:.2} s ({:.0} msg/s)",
        gw_pub.as_secs_f64(),
        n as f64 / gw_pub.as_secs_f64()
    );

    let broker_cpu0 = cpu_seconds(broker_pid)?;
    let t0 = Instant::now();
    gw.proc.start()?;
    let pid = gw.proc.pid().context("gateway pid")?;
    // Optional CPU profile of the timed drain: BENCH_PERF=FILE (needs `perf`).
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
        if t0.elapsed() > args.timeout {
            bail!(
                "gateway did not deliver {n} points within {:?}\n{}",
                args.timeout,
                gw.proc.log_tail(30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let to_outbox = to_outbox.context("outbox time")?;
    let to_sink = to_sink.context("sink time")?;
    let broker_cpu_gw = cpu_seconds(broker_pid)? - broker_cpu0;
    let gw_cpu = cpu_seconds(pid)?;
    let gw_hwm_mb = proc_status_kb(pid, "VmHWM:")? as f64 / 1024.0;
    let final_metrics = gw.metrics()?;
    if let Some(p) = perf.as_mut() {
        // SIGINT makes perf write its file and exit.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
        let _ = wait_child(p, Duration::from_secs(30));
    }

    // Verify the database (not timed): distinct (device, time) points of the stream.
    let selector = format!(r#"{{__name__="grease_trap_level",site="{SITE}"}}"#);
    let tv = Instant::now();
    let mut distinct = 0;
    let verified = wait_until(
        &format!("{n} distinct points in victoria-metrics"),
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
            Ok((distinct >= n).then_some(distinct))
        },
    );
    let verify_s = tv.elapsed().as_secs_f64();
    match &verified {
        Ok(d) => {
            println!("victoria-metrics holds {d} distinct points (export took {verify_s:.1} s)")
        }
        Err(e) => println!("victoria-metrics check FAILED: {e:#} (had {distinct})"),
    }
    let _ = gw.proc.stop();
    let _ = broker.stop();

    // ---- 3. Report.
    let rate = |s: f64| n as f64 / s;
    let r_ref = rate(reference.secs);
    let r_out = rate(to_outbox);
    let r_db = rate(to_sink);
    println!(
        "\n== results ({n} messages, {} devices, gateway [mqtt] ack_batch = {})",
        args.devices, args.ack_batch
    );
    println!(
        "{:<34} {:>9} {:>10} {:>8}",
        "stage", "seconds", "msg/s", "vs ref"
    );
    println!(
        "{:<34} {:>9.2} {:>10.0} {:>8}",
        "publish (rumqttc, QoS 1), ref run",
        ref_pub.as_secs_f64(),
        rate(ref_pub.as_secs_f64()),
        "-"
    );
    println!(
        "{:<34} {:>9.2} {:>10.0} {:>8}",
        "publish (rumqttc, QoS 1), gw run",
        gw_pub.as_secs_f64(),
        rate(gw_pub.as_secs_f64()),
        "-"
    );
    println!(
        "{:<34} {:>9.2} {:>10.0} {:>8.2}",
        "reference: mosquitto_sub drain", reference.secs, r_ref, 1.0
    );
    println!(
        "{:<34} {:>9.2} {:>10.0} {:>8.2}",
        "gateway -> outbox (fsynced, acked)",
        to_outbox,
        r_out,
        r_out / r_ref
    );
    println!(
        "{:<34} {:>9.2} {:>10.0} {:>8.2}",
        "gateway -> database (written)",
        to_sink,
        r_db,
        r_db / r_ref
    );
    println!();
    println!("gateway  peak RSS (VmHWM) {gw_hwm_mb:.1} MB (target < 100)  CPU {gw_cpu:.2} s");
    println!("mosquitto_sub  CPU {:.2} s", reference.cpu_s);
    println!(
        "broker   CPU {broker_cpu_ref:.2} s during reference drain, {broker_cpu_gw:.2} s during gateway drain"
    );
    println!(
        "database {} distinct points of {n} (verified after the timed part)",
        if verified.is_ok() {
            n.to_string()
        } else {
            distinct.to_string()
        }
    );
    let ratio_ok = r_out / r_ref >= 0.8 && r_db / r_ref >= 0.8;
    let rss_ok = gw_hwm_mb < 100.0;
    println!(
        "targets: ratio >= 0.8 {}, RSS < 100 MB {}",
        if ratio_ok { "met" } else { "MISSED" },
        if rss_ok { "met" } else { "MISSED" }
    );

    let pick = |k: &str| final_metrics.get(k).copied().unwrap_or(0.0);
    let json = serde_json::json!({
        "messages": n,
        "devices": args.devices,
        "gateway_config": { "mqtt.ack_batch": args.ack_batch, "extra": args.config_extra },
        "unix_ms": now_ms(),
        "publish_s": { "reference_run": ref_pub.as_secs_f64(), "gateway_run": gw_pub.as_secs_f64() },
        "reference": { "seconds": reference.secs, "msg_per_s": r_ref, "cpu_s": reference.cpu_s,
                       "broker_cpu_s": broker_cpu_ref },
        "gateway": {
            "to_outbox_s": to_outbox, "to_outbox_msg_per_s": r_out, "to_outbox_ratio": r_out / r_ref,
            "to_database_s": to_sink, "to_database_msg_per_s": r_db, "to_database_ratio": r_db / r_ref,
            "peak_rss_mb": gw_hwm_mb, "cpu_s": gw_cpu, "broker_cpu_s": broker_cpu_gw,
            "database_distinct_points": if verified.is_ok() { n } else { distinct },
            "verify_export_s": verify_s,
            "final_metrics": {
                "mqtt_messages": pick("gateway_mqtt_messages_total"),
                "readings_in": pick("gateway_readings_in_total"),
                "outbox_appended": pick("gateway_outbox_appended_total"),
                "outbox_appended_per_point": per_point,
                "sink_points_written": pick("gateway_sink_points_written_total"),
                "sink_batches": pick("gateway_sink_batches_total"),
                "sink_retries": pick("gateway_sink_retries_total"),
                "outbox_full": pick("gateway_outbox_full_total"),
                "clock_replaced": pick("gateway_clock_replaced_total"),
            },
            "progress": samples,
        },
        "targets": { "ratio_min": 0.8, "rss_max_mb": 100, "ratio_met": ratio_ok, "rss_met": rss_ok },
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("wrote {}", args.out.display());
    verified.map(|_| ())
}

/// `n` native telemetry messages, interleaved across `devices` devices (message `k` is
/// device `k % devices`, its `k / devices`-th message; device time `base_ms + that index`).
fn telemetry(n: usize, devices: usize, base_ms: i64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|k| {
            let (d, i) = (k % devices, k / devices);
            (
                format!("v1/{SITE}/dev{d:05}/telemetry"),
                format!(
                    r#"{{"ts":{},"seq":{},"stream":"grease_trap","metrics":{{"level":{}.5,"battery":90}}}}"#,
                    base_ms + i as i64,
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
) -> Result<Duration> {
    let port = broker.port();
    let client_id = client_id.to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    rt.block_on(async move {
        let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_inflight(1000)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
        let total = messages.len();
        let publisher = tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await?;
            }
            anyhow::Ok(client)
        });
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let mut last = Instant::now();
        while acked < total {
            let ev = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .context("publisher timed out")?;
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => bail!("publisher connection failed after {acked} acks: {e}"),
            }
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                println!("  publishing: {acked} of {total} acked");
            }
        }
        let client = publisher.await??;
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
        anyhow::Ok(())
    })?;
    Ok(t0.elapsed())
}

fn sub_command(broker: &Mosquitto, extra: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(e2e::require_binary("mosquitto_sub")?);
    cmd.args(broker.client_args())
        .args(["-c", "-i", REF_ID, "-q", "1", "-t", "v1/#"])
        .args(extra)
        .stdin(Stdio::null());
    Ok(cmd)
}

/// Runs mosquitto_sub to completion (bounded), e.g. `-E` to register the session and exit.
fn run_sub(broker: &Mosquitto, extra: &[&str], timeout: Duration) -> Result<()> {
    let mut child = sub_command(broker, extra)?
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
fn drain_reference(broker: &Mosquitto, n: usize, timeout: Duration) -> Result<RefResult> {
    let count_arg = n.to_string();
    let cpu0 = children_cpu_seconds();
    let t0 = Instant::now();
    let mut child = sub_command(broker, &["-C", &count_arg])?
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
        ack_batch: usize,
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
client_id = "{GATEWAY_ID}"
ack_batch = {ack_batch}

[influx]
url = "{vm_url}"
api = "v2"
dialect = "victoriametrics"
org = "city"
bucket = "bench"
token = "bench-token"

[devices]
max_clock_skew_s = 3600

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
