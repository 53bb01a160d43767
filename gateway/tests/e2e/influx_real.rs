//! `InfluxWriter` + the line-protocol encoder against real servers (the `e2e` harness):
//! tricky tags and strings through API v1 to InfluxDB 1.6 (strict parser) are all accepted and
//! read back equal; API v2 to VictoriaMetrics lands the expected number of points.

use gateway::config::{InfluxApi, InfluxConfig};
use gateway::metrics::Metrics;
use gateway::reading::{Quality, Reading, Source, Value};
use gateway::sink::line_protocol::{Identifier, identifier_as_stored, identifier_as_stored_in};
use gateway::sink::{Dialect, InfluxWriter, encode, encode_with};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TRICKY: &[&str] = &[
    "plain",
    "with space",
    "comma,inside",
    "equals=inside",
    "a,b=c d",
    "double\"quote",
    "'single'",
    "back\\slash",
    "two\\\\backslashes",
    "back\\ space",
    "back\\,comma",
    "back\\=equals",
    "trailing\\",
    "new\nline",
    "carriage\r\nreturn",
    "tab\there",
    "日本語 站点",
    "emoji 🚰🎉",
    "#hash",
    " leading and trailing ",
];

const TRICKY_TEXT: &[&str] = &[
    "",
    "plain",
    "quote \" inside",
    "backslash \\ inside",
    "ends with backslash \\",
    "escaped quote \\\" mix",
    "multi\nline\r\ntext\n",
    "comma, equals= space",
    "日本語 🎉 ünïcødé",
    "\\n is not a newline",
];

fn reading(stream: &str, site: &str, device: &str, metric: &str, value: Value, ts: i64) -> Reading {
    Reading {
        site: site.into(),
        device: device.into(),
        stream: stream.into(),
        metric: metric.into(),
        value,
        unit: Default::default(),
        device_time_ms: ts,
        received_time_ms: ts,
        source: Source::Mqtt,
        sequence: None,
        quality: Quality::default(),
    }
}

/// One point as written: measurement, time, tags and fields by the name InfluxDB stores.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    measurement: String,
    time: i64,
    columns: BTreeMap<String, Json>,
}

fn writer_for(url: &str, api: InfluxApi, dir: &std::path::Path) -> (InfluxWriter, Arc<Metrics>) {
    let cfg = InfluxConfig {
        url: url.to_string(),
        api,
        org: "city".into(),
        bucket: "enforcement".into(),
        token: Some("unused-by-these-servers".into()),
        database: "e2e".into(),
        measurement_prefix: "city_".into(),
        gzip: true,
        retry_min_ms: 50,
        retry_max_ms: 500,
        ..InfluxConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    (
        InfluxWriter::new(&cfg, dir, metrics.clone()).unwrap(),
        metrics,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_tags_and_strings_round_trip_through_influxdb_1_6() {
    let influx = tokio::task::spawn_blocking(e2e::Influx1::start)
        .await
        .unwrap()
        .expect("influxd 1.x starts");
    let dir = tempfile::tempdir().unwrap();
    let (writer, metrics) = writer_for(&influx.url(), InfluxApi::V1, dir.path());

    let streams = [
        "grease_trap",
        "manhole cover",
        "cam,era=1",
        "q\"uote\\back",
        "日本 🎉",
        "#x",
    ];
    let base = e2e::now_ms() - 3_600_000;
    let mut readings = Vec::new();
    let mut expected = Vec::new();
    let mut ts = base;
    for (i, stream) in streams.iter().enumerate() {
        for (j, tag) in TRICKY.iter().enumerate() {
            ts += 1;
            // Vary which position carries the tricky string; one reading per point has an empty site.
            let site = if j == 0 {
                ""
            } else {
                TRICKY[(i + j) % TRICKY.len()]
            };
            let device = *tag;
            let text = TRICKY_TEXT[(i + j) % TRICKY_TEXT.len()];
            let level = [0.1, 12.345, -0.0, 1e21, 5e-324, 42.0, -7.25e-9][(i + j) % 7];
            let metric_name = ["level mm", "a,b=c", "weird\\", "time"][j % 4];
            let values = [
                (metric_name, Value::Float(level)),
                ("count", Value::Int((j as i64 - 10) * 1_000_000_007)),
                ("ok", Value::Bool(j % 2 == 0)),
                ("note", Value::Text(text.into())),
                ("nan", Value::Float(f64::NAN)),
            ];
            let mut columns = BTreeMap::new();
            for (k, v) in [("site", site), ("device", device), ("source", "mqtt")] {
                if !v.is_empty() {
                    columns.insert(
                        k.to_string(),
                        Json::String(identifier_as_stored(v, Identifier::Key).into_owned()),
                    );
                }
            }
            for (metric, value) in values {
                readings.push(reading(stream, site, device, metric, value.clone(), ts));
                let stored_key = match metric {
                    "time" => "time_".to_string(),
                    m => identifier_as_stored(m, Identifier::Key).into_owned(),
                };
                let json = match value {
                    Value::Float(f) if f.is_finite() => serde_json::json!(f),
                    Value::Float(_) => continue,
                    Value::Int(v) => serde_json::json!(v),
                    Value::Bool(v) => serde_json::json!(v),
                    Value::Text(s) => serde_json::json!(s),
                };
                columns.insert(stored_key, json);
            }
            expected.push(Point {
                measurement: identifier_as_stored(
                    &format!("city_{stream}"),
                    Identifier::Measurement,
                )
                .into_owned(),
                time: ts,
                columns,
            });
        }
    }
    let lines = encode(&readings, "city_");
    assert_eq!(lines.len(), expected.len());

    let report = writer
        .write_batch(&lines, &CancellationToken::new())
        .await
        .unwrap();
    let dead = std::fs::read_to_string(writer.dead_letter_path()).unwrap_or_default();
    assert_eq!(
        report.dead_lettered, 0,
        "InfluxDB 1.6 refused lines:\n{dead}"
    );
    assert_eq!(report.written, lines.len());
    assert_eq!(report.requests, 1, "{report:?}");
    assert!(metrics.encode().contains(&format!(
        "gateway_sink_points_written_total {}",
        lines.len()
    )));

    // Read everything back; `epoch=ms` (the harness) gives integer times.
    let series = tokio::task::spawn_blocking(move || {
        let s = influx.query("e2e", "SELECT * FROM /.*/").unwrap();
        drop(influx);
        s
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    for s in &series {
        for row in s.rows() {
            let mut columns = BTreeMap::new();
            let mut time = 0;
            for (k, v) in row {
                if k == "time" {
                    time = v.as_i64().unwrap();
                } else if !v.is_null() {
                    columns.insert(k, v);
                }
            }
            got.push(Point {
                measurement: s.name.clone(),
                time,
                columns,
            });
        }
    }
    got.sort_by_key(|p| p.time);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.measurement, e.measurement);
        assert_eq!(g.time, e.time, "{e:?}");
        assert_eq!(
            g.columns.keys().collect::<Vec<_>>(),
            e.columns.keys().collect::<Vec<_>>()
        );
        for (k, want) in &e.columns {
            let have = &g.columns[k];
            match (want.as_f64(), have.as_f64()) {
                // -0.0 comes back as 0 in JSON; compare numerically, exactly.
                (Some(w), Some(h)) if want.is_f64() => assert_eq!(w, h, "{k} in {e:?}"),
                _ => assert_eq!(have, want, "{k} in {e:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_isolated_by_influxdb_1_6() {
    let influx = tokio::task::spawn_blocking(e2e::Influx1::start)
        .await
        .unwrap()
        .expect("influxd 1.x starts");
    let dir = tempfile::tempdir().unwrap();
    let (writer, _metrics) = writer_for(&influx.url(), InfluxApi::V1, dir.path());
    let ts = e2e::now_ms() - 60_000;
    let readings: Vec<Reading> = (0..20)
        .map(|i| {
            reading(
                "trap",
                "s1",
                &format!("d{i}"),
                "level",
                Value::Float(i as f64),
                ts,
            )
        })
        .collect();
    let mut lines = encode(&readings, "");
    // A type conflict: `level` is a float field, this line makes it a string.
    lines[7] = format!("trap,device=d7,site=s1 level=\"text\" {ts}").into_bytes();
    let report = writer
        .write_batch(&lines, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (report.written, report.dead_lettered),
        (19, 1),
        "{report:?}"
    );
    let dead = std::fs::read_to_string(writer.dead_letter_path()).unwrap();
    assert!(dead.contains("status=400"), "{dead}");
    assert!(dead.contains("field type conflict"), "{dead}");
    assert!(dead.ends_with(&format!("trap,device=d7,site=s1 level=\"text\" {ts}\n")));
    let rows = tokio::task::spawn_blocking(move || influx.count_rows("e2e", "trap").unwrap())
        .await
        .unwrap();
    assert_eq!(rows, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_api_to_victoria_metrics_lands_every_point() {
    let vm = tokio::task::spawn_blocking(e2e::VictoriaMetrics::start)
        .await
        .unwrap()
        .expect("victoria-metrics starts");
    let dir = tempfile::tempdir().unwrap();
    let (writer, _metrics) = writer_for(&vm.url(), InfluxApi::V2, dir.path());
    writer.ping().await.expect("victoria-metrics answers /ping");

    let base = e2e::now_ms() - 600_000;
    let mut readings = Vec::new();
    for i in 0..300 {
        let site = TRICKY[i % TRICKY.len()];
        let device = format!("dev {}", i % 7);
        let ts = base + i as i64 * 1000;
        readings.push(reading(
            "grease_trap",
            site,
            &device,
            "level",
            Value::Float(i as f64 / 10.0),
            ts,
        ));
        readings.push(reading(
            "grease_trap",
            site,
            &device,
            "count",
            Value::Int(i as i64),
            ts,
        ));
        readings.push(reading(
            "grease_trap",
            site,
            &device,
            "note",
            Value::Text(TRICKY_TEXT[i % TRICKY_TEXT.len()].into()),
            ts,
        ));
    }
    // VictoriaMetrics' own escaping rules (see `Dialect`); with the InfluxDB dialect it would
    // silently skip the lines whose tags hold a backslash before a separator, and the points
    // whose strings hold a newline, while answering 204.
    let lines = encode_with(&readings, "city_", Dialect::VictoriaMetrics);
    assert_eq!(lines.len(), 300);
    // Several batches, as the outbox would send them.
    let mut written = 0;
    for chunk in lines.chunks(64) {
        let r = writer
            .write_batch(chunk, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(r.dead_lettered, 0);
        written += r.written;
    }
    assert_eq!(written, 300);
    let series = tokio::task::spawn_blocking(move || {
        let s = vm
            .wait_for_points("city_grease_trap_level", 300, Duration::from_secs(20))
            .unwrap();
        let counts = vm.count_points("city_grease_trap_count").unwrap();
        (s, counts)
    })
    .await
    .unwrap();
    let (level, counts) = series;
    assert_eq!(level.iter().map(|s| s.values.len()).sum::<usize>(), 300);
    assert_eq!(counts, 300);
    // Tags survive as labels, exactly (after the documented newline / trailing-backslash rules).
    let sites: std::collections::BTreeSet<String> = level
        .iter()
        .filter_map(|s| s.label("site"))
        .map(str::to_string)
        .collect();
    let want: std::collections::BTreeSet<String> = TRICKY
        .iter()
        .map(|t| identifier_as_stored_in(t, Identifier::Key, Dialect::VictoriaMetrics).into_owned())
        .collect();
    assert_eq!(sites, want);
}
