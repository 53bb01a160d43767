//! `gateway rules backtest`: replays recorded readings through the configured rules and reports
//! the clues they would have raised, so thresholds can be tuned before going live.
//!
//! Input is either CSV with a header naming the columns `time_ms, site, device, stream, metric,
//! value` (and optionally `unit`; no quoted fields), or InfluxDB line protocol as the gateway
//! writes it (measurement = stream, tags `site` and `device`, one field per metric; timestamps
//! in ms, µs or ns are recognised by magnitude). Readings are replayed in time order, grouped
//! into messages by (site, device, stream, time), with a tick every [`TICK_MS`] of device time.

use super::RulesError;
use super::engine::{Engine, EngineStats};
use crate::clue::signal::ClueSignal;
use crate::reading::{Name, Quality, Reading, Source, Value};
use std::fmt::Write as _;
use thiserror::Error;

/// Device-time step between ticks during a replay.
pub(crate) const TICK_MS: i64 = 10_000;
/// After the last reading the clock runs on this long, so delayed judgements (a trap drop's
/// grace period) are made; shorter than the default silence timeout on purpose.
pub(crate) const DRAIN_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Error)]
pub enum BacktestError {
    #[error("input line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error(transparent)]
    Rules(#[from] RulesError),
}

fn parse_value(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(f) = s.parse::<f64>()
                && f.is_finite()
            {
                Value::Float(f)
            } else {
                Value::Text(s.to_string())
            }
        }
    }
}

fn reading(site: &str, device: &str, stream: &str, metric: &str, value: Value, t: i64) -> Reading {
    Reading {
        site: site.into(),
        device: device.into(),
        stream: stream.into(),
        metric: metric.into(),
        value,
        unit: Name::default(),
        device_time_ms: t,
        received_time_ms: t,
        source: Source::Gateway,
        sequence: None,
        quality: Quality::default(),
    }
}

fn parse_csv(text: &str) -> Result<Vec<Reading>, BacktestError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or(BacktestError::Parse {
                line: 1,
                reason: format!("CSV header has no `{name}` column"),
            })
    };
    let (ct, cs, cd, cst, cm, cv) = (
        col("time_ms")?,
        col("site")?,
        col("device")?,
        col("stream")?,
        col("metric")?,
        col("value")?,
    );
    let cu = cols.iter().position(|c| *c == "unit");
    let mut out = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| {
            f.get(c).copied().ok_or(BacktestError::Parse {
                line: i + 1,
                reason: format!("expected {} columns", cols.len()),
            })
        };
        let t = get(ct)?.parse::<i64>().map_err(|e| BacktestError::Parse {
            line: i + 1,
            reason: format!("time_ms: {e}"),
        })?;
        let mut r = reading(
            get(cs)?,
            get(cd)?,
            get(cst)?,
            get(cm)?,
            parse_value(get(cv)?),
            t,
        );
        if let Some(u) = cu.and_then(|c| f.get(c)) {
            r.unit = Name::from(*u);
        }
        out.push(r);
    }
    Ok(out)
}

fn parse_line_protocol(text: &str, prefix: &str) -> Result<Vec<Reading>, BacktestError> {
    use influxdb_line_protocol::FieldValue;
    let mut out = Vec::new();
    for (i, line) in influxdb_line_protocol::parse_lines(text).enumerate() {
        let line = line.map_err(|e| BacktestError::Parse {
            line: i + 1,
            reason: e.to_string(),
        })?;
        let measurement = line.series.measurement.as_str();
        let stream = measurement.strip_prefix(prefix).unwrap_or(measurement);
        let tag = |name: &str| {
            line.series
                .tag_set
                .as_ref()
                .and_then(|tags| tags.iter().find(|(k, _)| k.as_str() == name))
                .map(|(_, v)| v.as_str().to_string())
        };
        let (Some(site), Some(device)) = (tag("site"), tag("device")) else {
            return Err(BacktestError::Parse {
                line: i + 1,
                reason: "needs `site` and `device` tags".into(),
            });
        };
        let Some(ts) = line.timestamp else {
            return Err(BacktestError::Parse {
                line: i + 1,
                reason: "needs a timestamp".into(),
            });
        };
        let t = if ts > 100_000_000_000_000_000 {
            ts / 1_000_000
        } else if ts > 100_000_000_000_000 {
            ts / 1_000
        } else {
            ts
        };
        for (name, v) in &line.field_set {
            let value = match v {
                FieldValue::I64(x) => Value::Int(*x),
                FieldValue::U64(x) => i64::try_from(*x).map_or(Value::Float(*x as f64), Value::Int),
                FieldValue::F64(x) => Value::Float(*x),
                FieldValue::String(s) => Value::Text(s.as_str().to_string()),
                FieldValue::Boolean(b) => Value::Bool(*b),
            };
            out.push(reading(&site, &device, stream, name.as_str(), value, t));
        }
    }
    Ok(out)
}

/// Parses CSV (first line starts with a header naming `time_ms`) or line protocol.
pub(crate) fn parse_input(
    text: &str,
    measurement_prefix: &str,
) -> Result<Vec<Reading>, BacktestError> {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first.split(',').any(|c| c.trim() == "time_ms") {
        parse_csv(text)
    } else {
        parse_line_protocol(text, measurement_prefix)
    }
}

/// Replays `readings` (sorted by device time, grouped into messages) through `engine`.
pub(crate) fn replay(engine: &mut Engine, mut readings: Vec<Reading>) -> Vec<ClueSignal> {
    readings.sort_by_key(|r| r.device_time_ms);
    let mut out = Vec::new();
    let Some(first) = readings.first().map(|r| r.device_time_ms) else {
        return out;
    };
    let mut clock = first;
    let mut start = 0;
    while start < readings.len() {
        let head = &readings[start];
        let len = readings[start..]
            .iter()
            .take_while(|r| {
                r.device_time_ms == head.device_time_ms
                    && r.site == head.site
                    && r.device == head.device
                    && r.stream == head.stream
            })
            .count();
        let t = head.device_time_ms;
        while clock + TICK_MS <= t {
            clock += TICK_MS;
            out.extend(engine.on_tick(clock));
        }
        out.extend(engine.on_readings(&readings[start..start + len]));
        start += len;
    }
    let end = clock.max(readings.last().map_or(clock, |r| r.device_time_ms)) + DRAIN_MS;
    while clock < end {
        clock += TICK_MS;
        out.extend(engine.on_tick(clock));
    }
    out
}

/// One line per signal, then a summary.
pub(crate) fn report(signals: &[ClueSignal], stats: EngineStats) -> String {
    let mut s = String::new();
    for sig in signals {
        let _ = match sig {
            ClueSignal::Occurrence(e) => writeln!(
                s,
                "{} {:<6} {:<28} {:<36} {}",
                e.at_ms,
                e.level.as_str(),
                e.rule,
                e.dedup_key,
                e.title
            ),
            ClueSignal::Cleared {
                dedup_key,
                at_ms,
                note,
            } => writeln!(
                s,
                "{at_ms} {:<6} {:<28} {dedup_key:<36} {note}",
                "clear", ""
            ),
        };
    }
    let _ = writeln!(
        s,
        "readings {}  occurrences {}  suppressed (cool-down) {}  cleared {}  explained by pump-out {}  late {}  duplicate {}",
        stats.readings,
        stats.occurrences,
        stats.suppressed,
        stats.cleared,
        stats.pumpout_explained,
        stats.late,
        stats.duplicates
    );
    s
}

/// The whole command: the configured rules (`engine`, `config::Config::rules_engine`), the
/// readings in `input` named with the database's measurement `prefix`, the printed report.
pub fn backtest(mut engine: Engine, prefix: &str, input: &str) -> Result<String, BacktestError> {
    let readings = parse_input(input, prefix)?;
    let signals = replay(&mut engine, readings);
    Ok(report(&signals, engine.stats()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_backtest_replays_csv_and_reports_a_night_cover() {
        // 2024-11-24 18:00 UTC = 02:00 at UTC+8.
        let csv = "time_ms,site,device,stream,metric,value\n\
            1732471200000,mh-1,cover-1,manhole_cover,open,true\n\
            1732471200000,mh-1,cover-1,manhole_cover,tilt_deg,40.0\n\
            1732471500000,mh-1,cover-1,manhole_cover,open,false\n";
        let out = backtest(
            crate::config::Config::default()
                .rules_engine()
                .expect("rules"),
            "",
            csv,
        )
        .expect("backtest");
        assert!(out.contains("high   cover-open"), "{out}");
        assert!(out.contains("clear"), "{out}");
        assert!(out.contains("readings 3"), "{out}");
    }

    #[test]
    fn rules_backtest_reads_line_protocol_in_any_precision() {
        let lp = "manhole_cover,site=mh-1,device=cover-1,source=mqtt open=true,tilt_deg=40 1732471200000000000\n\
                  manhole_cover,site=mh-1,device=cover-1,source=mqtt open=false,tilt_deg=0 1732471500000\n";
        let readings = parse_input(lp, "").expect("parses");
        assert_eq!(readings.len(), 4);
        assert!(
            readings
                .iter()
                .all(|r| r.device_time_ms >= 1_732_471_200_000)
        );
        assert_eq!(readings[0].value, Value::Bool(true));
        let bad = parse_input("time_ms,site\n1,a\n", "");
        assert!(matches!(bad, Err(BacktestError::Parse { .. })));
    }
}
