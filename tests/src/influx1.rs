//! A Debian InfluxDB 1.x (`influxd` 1.6) server per test.
//!
//! Only the v1 API exists: `/write?db=` (strict line protocol parser) and
//! `/query`. Everything lives in a temp dir; the RPC (backup) listener is bound
//! to its own free loopback port so parallel tests never collide on :8088.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::http;
use crate::port::{free_port, with_free_port};
use crate::process::ServerProcess;
use crate::wait::{require_binary, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Influx1Options {
    /// Database created at start (`None`: none).
    pub database: Option<String>,
    /// Raw TOML appended to the generated config.
    pub extra_config: String,
}

impl Default for Influx1Options {
    fn default() -> Self {
        Influx1Options {
            database: Some("e2e".into()),
            extra_config: String::new(),
        }
    }
}

/// One series of a `/query` result.
#[derive(Debug, Clone, Deserialize)]
pub struct QuerySeries {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

impl QuerySeries {
    /// Rows as column -> value maps (tags not included).
    pub fn rows(&self) -> Vec<BTreeMap<String, Value>> {
        self.values
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct Influx1 {
    port: u16,
    database: Option<String>,
    process: ServerProcess,
    dir: TempDir,
}

impl Influx1 {
    /// Server with database `e2e` created.
    pub fn start() -> Result<Self> {
        Self::start_with(Influx1Options::default())
    }

    pub fn start_with(opts: Influx1Options) -> Result<Self> {
        let bin = require_binary("influxd")?;
        let mut influx = with_free_port("influxd", |port| {
            let dir = tempfile::Builder::new().prefix("e2e-influx1-").tempdir()?;
            let conf = dir.path().join("influxdb.conf");
            std::fs::write(
                &conf,
                config(dir.path(), port, free_port(), &opts.extra_config),
            )?;
            let mut process = ServerProcess::spawn(
                "influxd",
                &bin,
                vec!["-config".into(), conf.display().to_string()],
                dir.path().join("influxd.log"),
            )?;
            wait_ping(&mut process, port)?;
            Ok(Influx1 {
                port,
                database: None,
                process,
                dir,
            })
        })?;
        if let Some(db) = &opts.database {
            influx.create_database(db)?;
            influx.database = Some(db.clone());
        }
        Ok(influx)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The database created at start.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    crate::process::server_lifecycle!("influxd", |p, port, _| wait_ping(p, port));

    pub fn create_database(&self, name: &str) -> Result<()> {
        self.post_query(&format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    /// Run a statement through `POST /query` (for CREATE/DROP/...).
    pub fn post_query(&self, q: &str) -> Result<Value> {
        let body = http::form(&[("q", q)]);
        let v = http::post(
            &format!("{}/query", self.url()),
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        )?
        .ok()
        .with_context(|| format!("influxd: {q}"))?
        .json()?;
        check_errors(&v).with_context(|| format!("influxd: {q}"))?;
        Ok(v)
    }

    /// Write line protocol to `db` (`precision`: ns, u, ms, s). Fails on any
    /// status other than 204 with InfluxDB's error message.
    pub fn write(&self, db: &str, body: &str, precision: &str) -> Result<()> {
        let url = format!(
            "{}/write?{}",
            self.url(),
            http::form(&[("db", db), ("precision", precision)])
        );
        http::post(&url, "text/plain", body.as_bytes())?
            .ok()
            .context("influxd /write")?;
        Ok(())
    }

    /// `SELECT ...` on `db`; all series of the first statement.
    pub fn query(&self, db: &str, q: &str) -> Result<Vec<QuerySeries>> {
        let url = format!(
            "{}/query?{}",
            self.url(),
            http::form(&[("db", db), ("q", q), ("epoch", "ms")])
        );
        let v = http::get(&url)?.ok()?.json()?;
        check_errors(&v).with_context(|| format!("influxd: {q}"))?;
        let series = v
            .pointer("/results/0/series")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(series).with_context(|| format!("unexpected result: {v}"))
    }

    /// Number of rows returned by `SELECT * FROM "measurement"` (tags included).
    pub fn count_rows(&self, db: &str, measurement: &str) -> Result<usize> {
        Ok(self
            .query(db, &format!("SELECT * FROM \"{measurement}\""))?
            .iter()
            .map(|s| s.values.len())
            .sum())
    }

    /// Poll until `measurement` holds at least `n` rows.
    pub fn wait_for_rows(
        &self,
        db: &str,
        measurement: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<usize> {
        wait_until(&format!("{n} rows in {db}.{measurement}"), timeout, || {
            let c = self.count_rows(db, measurement)?;
            Ok((c >= n).then_some(c))
        })
    }
}

fn check_errors(v: &Value) -> Result<()> {
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("{e}");
    }
    if let Some(results) = v.get("results").and_then(Value::as_array) {
        for r in results {
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                bail!("{e}");
            }
        }
    }
    Ok(())
}

fn wait_ping(process: &mut ServerProcess, port: u16) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/ping");
    process.wait_ready(READY_TIMEOUT, || {
        let r = http::request("GET", &url, None, &[], Duration::from_secs(2))?;
        Ok(r.status == 204)
    })
}

fn config(dir: &Path, http_port: u16, rpc_port: u16, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"# generated by the e2e harness
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  index-version = "inmem"
  query-log-enabled = false
  cache-max-memory-size = 104857600

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

{extra}
"#
    )
}
