//! Shared helpers for the gateway's end-to-end tests: the gateway as a real child process
//! (so it can be SIGKILLed), a QoS 1 publisher, and read-back helpers.

#![allow(dead_code)]

pub mod hook;
pub mod vision;

use anyhow::{Context, Result};
use e2e::{ServerProcess, free_port, http, wait_until};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `gateway` binary running `run --config FILE`.
pub struct GatewayProcess {
    pub proc: ServerProcess,
    pub http: String,
    pub dir: PathBuf,
    /// `GATEWAY_*` variables it runs with (the CLI helpers use them too).
    pub env: Vec<(String, String)>,
}

/// The clue store a test runs the gateway on: its own SQLite (the default), or a PostgreSQL
/// server started for the test (`[clues] store = "postgres"`, through `GATEWAY_CLUES__*`).
pub enum TestStore {
    Sqlite,
    Postgres(Box<e2e::Postgres>, String),
}

/// The audit key the gateways of one test PostgreSQL share (32 bytes, hex).
pub const TEST_AUDIT_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

impl TestStore {
    pub fn postgres() -> Result<TestStore> {
        let pg = e2e::Postgres::start()?;
        let url = pg.create_database("clues")?;
        Ok(TestStore::Postgres(Box::new(pg), url))
    }

    /// The environment that selects this store.
    pub fn env(&self) -> Vec<(&str, &str)> {
        match self {
            TestStore::Sqlite => Vec::new(),
            // Every gateway on one database writes one chain: they share its key.
            TestStore::Postgres(_, url) => vec![
                ("GATEWAY_CLUES__STORE", "postgres"),
                ("GATEWAY_CLUES__URL", url.as_str()),
                ("GATEWAY_CLUES__AUDIT__KEY_ENV", "E2E_AUDIT_KEY"),
                ("E2E_AUDIT_KEY", TEST_AUDIT_KEY),
            ],
        }
    }

    /// Starts a gateway on this store.
    pub fn gateway(&self, dir: &Path, config: &str) -> Result<GatewayProcess> {
        GatewayProcess::start_with_env(dir, config, &self.env())
    }
}

/// Runs each named test `fn name(store: &TestStore) -> Result<()>` twice, as
/// `name::sqlite` and `name::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() -> anyhow::Result<()> {
                super::$name(&super::common::TestStore::Sqlite)
            }
            #[test]
            fn postgres() -> anyhow::Result<()> {
                super::$name(&super::common::TestStore::postgres()?)
            }
        }
    )*};
}

impl GatewayProcess {
    /// Writes `config` (TOML, without `[http]` and `[storage]`, which are added) and starts.
    pub fn start(dir: &Path, config: &str) -> Result<GatewayProcess> {
        Self::start_with_env(dir, config, &[])
    }

    /// [`GatewayProcess::start`] with extra environment variables (through `env`).
    pub fn start_with_env(
        dir: &Path,
        config: &str,
        vars: &[(&str, &str)],
    ) -> Result<GatewayProcess> {
        let port = free_port();
        let storage = dir.join("storage");
        let text = format!(
            "{config}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndir = \"{}\"\n",
            storage.display()
        );
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text)?;
        let bin = env!("CARGO_BIN_EXE_gateway");
        let mut args: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let program = if args.is_empty() {
            bin
        } else {
            args.push(bin.into());
            "env"
        };
        args.extend(["run".into(), "--config".into(), path.display().to_string()]);
        let proc = ServerProcess::spawn("gateway", program, args, dir.join("gateway.log"))?;
        let gw = GatewayProcess {
            proc,
            http: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        gw.wait_healthy()?;
        Ok(gw)
    }

    pub fn wait_healthy(&self) -> Result<()> {
        let url = format!("{}/healthz", self.http);
        wait_until("gateway /healthz", Duration::from_secs(30), || {
            Ok(http::get(&url).ok().filter(|r| r.is_success()).map(|_| ()))
        })
        .with_context(|| self.proc.log_tail(30))
    }

    /// `gateway token create` against this gateway's config; returns the token.
    pub fn token(&self, role: &str, sites: &str) -> Result<String> {
        self.token_named(role, sites, "")
    }

    /// [`GatewayProcess::token`] for a named person (`name` is what the audit log records;
    /// empty for none).
    pub fn token_named(&self, role: &str, sites: &str, name: &str) -> Result<String> {
        let extra: &[&str] = if name.is_empty() {
            &[]
        } else {
            &["--name", name]
        };
        self.token_with(role, sites, extra)
    }

    /// A device token of `sites` bound to no camera (`--relay`): it speaks for every camera
    /// of its sites, as a recorder uploading for several cameras does.
    pub fn relay_token(&self, sites: &str) -> Result<String> {
        self.token_with("device", sites, &["--relay"])
    }

    /// A device token of `site` bound to the one camera `device`.
    pub fn device_token(&self, site: &str, device: &str) -> Result<String> {
        self.token_with("device", site, &["--device", device])
    }

    /// `gateway token create` with further arguments (`--name`, `--device`).
    pub fn token_with(&self, role: &str, sites: &str, extra: &[&str]) -> Result<String> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(["token", "create", "--config"])
            .arg(self.dir.join("gateway.toml"))
            .args(["--role", role])
            .args(extra);
        if !sites.is_empty() {
            cmd.args(["--sites", sites]);
        }
        let out = cmd.output()?;
        anyhow::ensure!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// GET `path` (e.g. `/api/v1/devices`) with a bearer token.
    pub fn get_with_token(&self, path: &str, token: &str) -> Result<http::Response> {
        let auth = format!("Bearer {token}");
        http::request(
            "GET",
            &format!("{}{path}", self.http),
            None,
            &[("Authorization", &auth)],
            http::TIMEOUT,
        )
    }

    /// SIGKILL, no goodbye: nothing is flushed.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn start_again(&mut self) -> Result<()> {
        self.proc.start()?;
        self.wait_healthy()
    }

    /// Metrics and log tail, for failure messages.
    pub fn diagnostics(&self) -> String {
        let metrics = http::get(&format!("{}/metrics", self.http))
            .map(|r| r.text())
            .unwrap_or_else(|e| format!("(no metrics: {e})"));
        let samples: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("gateway_") && !l.contains("_bucket"))
            .collect();
        format!(
            "--- gateway metrics\n{}\n--- gateway log\n{}",
            samples.join("\n"),
            self.proc.log_tail(40)
        )
    }

    /// A Prometheus sample, e.g. `gateway_readings_in_total` or
    /// `gateway_decode_errors_total{reason="bad_json"}`; a name without labels sums every
    /// label set of that name.
    pub fn metric(&self, name_with_labels: &str) -> Result<f64> {
        let text = http::get(&format!("{}/metrics", self.http))?.ok()?.text();
        let exact = name_with_labels.contains('{');
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix(name_with_labels))
            .filter_map(|rest| match rest.strip_prefix(' ') {
                Some(v) => Some(v),
                None if !exact && rest.starts_with('{') => rest.split_once("} ").map(|(_, v)| v),
                None => None,
            })
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum())
    }
}

/// A QoS 1 publisher that waits for every PUBACK before returning.
pub fn publish_all(port: u16, client_id: &str, messages: Vec<(String, Vec<u8>)>) -> Result<usize> {
    let total = messages.len();
    e2e::publish_qos1(
        port,
        client_id,
        messages,
        200,
        Duration::from_secs(300),
        |_, _| {},
    )?;
    Ok(total)
}

/// Native telemetry from `devices` devices for message numbers `range` (device time
/// `base_ms + i`, sequence `i + 1`), interleaved across devices as a fleet would send it.
pub fn telemetry(
    site: &str,
    devices: usize,
    range: std::ops::Range<usize>,
    base_ms: i64,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(devices * range.len());
    for i in range {
        for d in 0..devices {
            let topic = format!("v1/{site}/dev{d:04}/telemetry");
            let payload = format!(
                r#"{{"ts":{},"seq":{},"stream":"grease_trap","metrics":{{"level":{}.5,"battery":90}}}}"#,
                base_ms + i as i64,
                i + 1,
                i
            );
            out.push((topic, payload.into_bytes()));
        }
    }
    out
}

/// Distinct (device, timestamp) pairs of `selector` in VictoriaMetrics: what an InfluxDB
/// would show, since a replayed point with the same series and time overwrites the first.
pub fn distinct_points(
    vm: &e2e::VictoriaMetrics,
    selector: &str,
) -> Result<BTreeSet<(String, i64)>> {
    let mut set = BTreeSet::new();
    for s in vm.export(selector)? {
        let dev = s.label("device").unwrap_or("").to_string();
        for ts in &s.timestamps {
            set.insert((dev.clone(), *ts));
        }
    }
    Ok(set)
}

/// Waits until `selector` holds `n` distinct points.
pub fn wait_distinct(
    vm: &e2e::VictoriaMetrics,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> Result<usize> {
    let mut last = 0;
    wait_until(&format!("{n} distinct points"), timeout, || {
        last = distinct_points(vm, selector)?.len();
        Ok((last >= n).then_some(last))
    })
    .with_context(|| format!("only {last} of {n} distinct points arrived"))
}

/// Config for a gateway reading from `mqtt_url` and writing to VictoriaMetrics (v2 API).
pub fn config(mqtt_url: &str, client_id: &str, vm_url: &str, extra: &str) -> String {
    format!(
        r#"
[mqtt]
url = "{mqtt_url}"
client_id = "{client_id}"
{extra}
[influx]
url = "{vm_url}"
api = "v2"
dialect = "victoriametrics"
org = "city"
bucket = "test"
token = "test-token"
flush_interval_ms = 200
retry_min_ms = 50
retry_max_ms = 1000
"#
    )
}

/// Uploads one camera frame (`path`: `/api/v1/cameras/{id}/frames?site=S`) and returns the
/// answer; panics with the gateway's diagnostics unless it is 200.
pub fn post_jpeg(gw: &GatewayProcess, path: &str, token: &str, body: &[u8]) -> serde_json::Value {
    let auth = format!("Bearer {token}");
    let r = http::request(
        "POST",
        &format!("{}{path}", gw.http),
        Some(("image/jpeg", body)),
        &[("Authorization", &auth)],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e:#}\n{}", gw.diagnostics()));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.diagnostics());
    r.json().unwrap()
}

/// `method` `path` with a bearer token and an optional JSON body: the API tests' one way in.
pub fn call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<http::Response> {
    let auth = format!("Bearer {token}");
    let text = body.map(|b| b.to_string());
    http::request(
        method,
        &format!("{}{path}", gw.http),
        text.as_deref().map(|t| ("application/json", t.as_bytes())),
        &[("Authorization", &auth)],
        http::TIMEOUT,
    )
}
