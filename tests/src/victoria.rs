//! A VictoriaMetrics single-node server per test (Influx line protocol sink).
//!
//! VictoriaMetrics maps line protocol `m,tag=v field=1` to the metric
//! `m_field` with labels `tag="v"` (plus `db="..."` when the write URL has
//! `?db=`). Fresh rows become searchable after an in-memory flush (about a
//! second); the read helpers call `/internal/force_flush` first and poll.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tempfile::TempDir;

use crate::http;
use crate::port::with_free_port;
use crate::process::ServerProcess;
use crate::wait::{require_binary, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct VictoriaOptions {
    /// `-retentionPeriod`: points older than this are rejected at write time.
    pub retention: String,
    /// Extra command-line flags.
    pub extra_args: Vec<String>,
}

impl Default for VictoriaOptions {
    fn default() -> Self {
        VictoriaOptions {
            retention: "100y".into(),
            extra_args: Vec::new(),
        }
    }
}

/// One series from `/api/v1/export` (JSON lines).
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedSeries {
    /// Labels, including `__name__`.
    pub metric: BTreeMap<String, String>,
    pub values: Vec<f64>,
    /// Milliseconds since the epoch.
    pub timestamps: Vec<i64>,
}

impl ExportedSeries {
    pub fn name(&self) -> &str {
        self.metric
            .get("__name__")
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metric.get(key).map(String::as_str)
    }
}

#[derive(Debug)]
pub struct VictoriaMetrics {
    port: u16,
    process: ServerProcess,
    dir: TempDir,
}

impl VictoriaMetrics {
    pub fn start() -> Result<Self> {
        Self::start_with(VictoriaOptions::default())
    }

    pub fn start_with(opts: VictoriaOptions) -> Result<Self> {
        let bin = require_binary("victoria-metrics")?;
        with_free_port("victoria-metrics", |port| {
            let dir = tempfile::Builder::new().prefix("e2e-victoria-").tempdir()?;
            let mut args = vec![
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.path().join("data").display()),
                format!("-retentionPeriod={}", opts.retention),
                // Small caches: many servers run in parallel on a small machine.
                "-memory.allowedPercent=5".into(),
                // Make fresh points visible to /api/v1/query at once (default 30s).
                "-search.latencyOffset=0s".into(),
                "-search.disableCache".into(),
                "-loggerLevel=WARN".into(),
            ];
            args.extend(opts.extra_args.iter().cloned());
            let mut process =
                ServerProcess::spawn("victoria-metrics", &bin, args, dir.path().join("vm.log"))?;
            wait_healthy(&mut process, port)?;
            Ok(VictoriaMetrics { port, process, dir })
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// InfluxDB v2 write endpoint (`/api/v2/write`), as the gateway uses it.
    pub fn influx_v2_write_url(&self) -> String {
        format!("{}/api/v2/write", self.url())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    crate::process::server_lifecycle!("victoria-metrics", |p, port, _| wait_healthy(p, port));

    /// Write line protocol through `/write` (Influx v1 API). `precision`:
    /// `ns`, `us`, `ms` or `s`.
    pub fn write_lines(&self, body: &str, precision: &str) -> Result<()> {
        let url = format!("{}/write?precision={precision}", self.url());
        http::post(&url, "text/plain", body.as_bytes())?
            .ok()
            .context("victoria-metrics /write")?;
        Ok(())
    }

    /// Make recently written rows searchable now.
    pub fn force_flush(&self) -> Result<()> {
        http::get(&format!("{}/internal/force_flush", self.url()))?
            .ok()
            .context("victoria-metrics /internal/force_flush")?;
        Ok(())
    }

    /// All series matching a series selector, e.g. `grease_trap_level` or
    /// `{__name__=~"grease_trap_.*",site="s1"}`. Flushes first.
    pub fn export(&self, selector: &str) -> Result<Vec<ExportedSeries>> {
        self.force_flush()?;
        let url = format!(
            "{}/api/v1/export?{}",
            self.url(),
            http::form(&[("match[]", selector), ("start", "0")])
        );
        let resp = http::get(&url)?
            .ok()
            .with_context(|| format!("victoria-metrics export {selector}"))?;
        resp.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad export line {l}")))
            .collect()
    }

    /// Number of points over all series matching `selector`.
    pub fn count_points(&self, selector: &str) -> Result<usize> {
        Ok(self.export(selector)?.iter().map(|s| s.values.len()).sum())
    }

    /// Poll until at least `n` points match `selector`, at most `timeout`.
    pub fn wait_for_points(
        &self,
        selector: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ExportedSeries>> {
        let mut last = 0;
        wait_until(&format!("{n} points for {selector}"), timeout, || {
            let series = self.export(selector)?;
            last = series.iter().map(|s| s.values.len()).sum();
            Ok((last >= n).then_some(series))
        })
        .with_context(|| {
            format!(
                "victoria-metrics had {last}; log tail:\n{}",
                self.log_tail(20)
            )
        })
    }

    /// Instant PromQL/MetricsQL query; returns the `data.result` array.
    ///
    /// Even after a flush, `/api/v1/query` sees a fresh point 1-2 s later
    /// than `/api/v1/export` does: use [`Self::wait_for_query`] or the
    /// export helpers to read back what a test just wrote.
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>> {
        self.force_flush()?;
        let url = format!(
            "{}/api/v1/query?{}",
            self.url(),
            http::form(&[("query", promql)])
        );
        let v = http::get(&url)?.ok()?.json()?;
        match v.pointer("/data/result").and_then(|r| r.as_array()) {
            Some(a) => Ok(a.clone()),
            None => bail!("unexpected query response: {v}"),
        }
    }
}

impl VictoriaMetrics {
    /// Poll [`Self::query`] until it returns at least one series.
    pub fn wait_for_query(
        &self,
        promql: &str,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>> {
        wait_until(&format!("query {promql} to return data"), timeout, || {
            let r = self.query(promql)?;
            Ok((!r.is_empty()).then_some(r))
        })
    }
}

fn wait_healthy(process: &mut ServerProcess, port: u16) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/health");
    process.wait_ready(READY_TIMEOUT, || {
        let r = http::request("GET", &url, None, &[], Duration::from_secs(2))?;
        Ok(r.status == 200)
    })
}
