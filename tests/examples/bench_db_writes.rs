//! Reference for database writes (issue 13): a raw HTTP poster of line protocol, the fastest a
//! client can push the gateway's points into VictoriaMetrics on this machine. One keep-alive
//! connection, uncompressed `POST /api/v2/write` bodies of 5,000 lines (the gateway's default
//! batch), each waited for before the next (as the gateway's writer does), lines shaped like the
//! gateway's. `tests/bench.sh` compares the gateway's MQTT-to-database rate with it.
//!
//!   cargo run --release -p e2e --example bench_db_writes -- [POINTS (200000)]
//!
//! Prints progress, a summary and one `BENCH {json}` line.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let points: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let vm = e2e::VictoriaMetrics::start()?;
    let base = e2e::now_ms() - 3_600_000;
    let bodies: Vec<Vec<u8>> = (0..points)
        .collect::<Vec<_>>()
        .chunks(5_000)
        .map(|chunk| {
            let mut body = String::with_capacity(chunk.len() * 96);
            for &i in chunk {
                body.push_str(&format!(
                    "grease_trap,device=dev{:05},site=bench,source=mqtt level={}.5,battery=90i {}\n",
                    i % 10_000,
                    i / 10_000,
                    base + (i / 10_000) as i64
                ));
            }
            body.into_bytes()
        })
        .collect();
    let mut conn = TcpStream::connect(("127.0.0.1", vm.port()))?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    for body in &bodies {
        let head = format!(
            "POST /api/v2/write?org=city&bucket=bench&precision=ms HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Token bench\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        conn.write_all(body)?;
        read_response(&mut reader)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rate = points as f64 / secs;
    // Outside the timed part: every point is there.
    let n = vm.count_points(r#"{__name__=~"grease_trap_.*",site="bench"}"#)?;
    if n != points * 2 {
        bail!(
            "victoria-metrics holds {n} samples, expected {}",
            points * 2
        );
    }
    println!(
        "raw HTTP poster: {points} points in {secs:.2} s = {rate:.0} points/s ({:.2} s CPU)",
        cpu
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "db_writes", "figure": "raw HTTP line-protocol poster",
            "value": rate, "unit": "points/s", "cpu_s": cpu, "points": points})
    );
    Ok(())
}

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body); fails unless 2xx.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<()> {
    let mut status = String::new();
    r.read_line(&mut status)?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {status:?}"))?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    if !(200..300).contains(&code) {
        bail!("write answered {code}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// User + system CPU seconds of this process (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
