//! Modbus polling benchmark against local pymodbus slaves (`tests/modbus/slave.py`).
//!
//! ```text
//! cargo run --release -p gateway --example modbus_bench -- [DEVICES] [REGISTERS] [SECONDS] [SLAVES]
//! ```
//! Defaults: 200 devices x 20 registers (every type in every word order, holding registers
//! 0..40) at 1 Hz for 20 s, spread over 4 slave processes, once with request merging and once
//! without. Reports the gateway process's CPU share, poll latency p50/p99 (from the
//! `modbus_poll_seconds` histogram, interpolated within buckets), requests and polls per second.

#[path = "../tests/e2e/modbus_common/mod.rs"]
mod modbus_common;

use gateway::source::modbus::RegisterKind;
use modbus_common::*;
use std::time::{Duration, Instant};

/// User + system CPU time of this process, in seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// (upper bound, cumulative count) of every `_bucket` line of a histogram, and the count.
fn histogram(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect()
}

/// Quantile from the difference of two cumulative histograms (Prometheus-style interpolation).
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, c - b)
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in &buckets {
        if *c >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let within = if c - prev.1 > 0.0 {
                (rank - prev.1) / (c - prev.1)
            } else {
                1.0
            };
            return prev.0 + (le - prev.0) * within;
        }
        prev = (*le, *c);
    }
    prev.0
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn run(devices: usize, registers: usize, seconds: u64, ports: &[u16], merge: bool) {
    let regs: Vec<_> = typed_registers(RegisterKind::Holding)
        .into_iter()
        .take(registers)
        .collect();
    let devs = (0..devices)
        .map(|i| {
            let port = ports[i % ports.len()];
            let mut d = device(
                &format!("bench-{i}"),
                &format!("tcp://127.0.0.1:{port}"),
                u8::try_from(i % 247 + 1).unwrap_or(1),
                regs.clone(),
            );
            d.interval_ms = 1000;
            d.timeout_ms = 1000;
            d.backoff_max_ms = 5000;
            d.merge = merge;
            d
        })
        .collect();
    let run = Running::start(devs);
    // Warm-up: every device connected and polled at least once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m0 = run.metrics.encode();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let m1 = run.metrics.encode();
    let (cpu1, wall) = (cpu_seconds(), t0.elapsed().as_secs_f64());
    let h0 = histogram(&m0, "gateway_modbus_poll_seconds");
    let h1 = histogram(&m1, "gateway_modbus_poll_seconds");
    let requests = counter(&m1, "gateway_modbus_requests_total")
        - counter(&m0, "gateway_modbus_requests_total");
    let ok = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("gateway_modbus_polls_total") && l.contains("result=\"ok\""))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>()
    };
    let polls_ok = ok(&m1) - ok(&m0);
    let polls_all =
        counter(&m1, "gateway_modbus_polls_total") - counter(&m0, "gateway_modbus_polls_total");
    let readings = run.collected.0.lock().map(|v| v.len()).unwrap_or(0);
    println!(
        "merge={merge:<5} devices={devices} registers={registers} window={wall:.1}s \
         cpu={:.1}% of one core  p50={:.2}ms p99={:.2}ms  requests/s={:.0} \
         polls/s={:.1} (ok {:.1}, expected {devices})  requests/poll={:.1}  intakes={readings}",
        100.0 * (cpu1 - cpu0) / wall,
        1e3 * quantile(&h0, &h1, 0.50),
        1e3 * quantile(&h0, &h1, 0.99),
        requests / wall,
        polls_all / wall,
        polls_ok / wall,
        if polls_all > 0.0 {
            requests / polls_all
        } else {
            0.0
        },
    );
    // Machine-readable row for tests/bench.sh.
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "modbus", "merge": merge, "devices": devices,
            "registers": registers, "cpu_pct": 100.0 * (cpu1 - cpu0) / wall,
            "p50_ms": 1e3 * quantile(&h0, &h1, 0.50), "p99_ms": 1e3 * quantile(&h0, &h1, 0.99),
            "requests_per_s": requests / wall, "polls_ok_per_s": polls_ok / wall})
    );
    run.stop().await;
}

#[tokio::main]
async fn main() {
    // Warnings only: 200 devices coming online would otherwise print 400 lines.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "gateway=warn".into()),
        )
        .try_init();
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (devices, registers, seconds, slaves) = (
        usize::try_from(arg(0, 200)).unwrap_or(200),
        usize::try_from(arg(1, 20)).unwrap_or(20).min(20),
        arg(2, 20),
        usize::try_from(arg(3, 4)).unwrap_or(4).max(1),
    );
    let ports: Vec<u16> = (0..slaves).map(|_| e2e::free_port()).collect();
    let _slaves: Vec<Slave> = ports.iter().map(|p| Slave::tcp(*p, "normal")).collect();
    println!("{slaves} pymodbus slave processes on 127.0.0.1; gateway CPU measured in-process");
    for merge in [true, false] {
        run(devices, registers, seconds, &ports, merge).await;
    }
}
