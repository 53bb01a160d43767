//! A mosquitto broker per test, plus `mosquitto_pub`/`mosquitto_sub` helpers.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::port::{is_listening, with_free_port};
use crate::process::ServerProcess;
use crate::wait::{require_binary, wait_until};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Options for [`Mosquitto::start_with`].
#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// Username/password pairs (mosquitto_passwd). Non-empty disables anonymous access.
    pub users: Vec<(String, String)>,
    /// TLS-only listener with a generated CA and server certificate.
    pub tls: bool,
    /// With `tls`: clients must present a certificate signed by the test CA
    /// (`require_certificate true`); a client cert/key is generated too.
    pub require_client_cert: bool,
    /// Seconds between persistence saves; `None` = 5. The database is
    /// always saved on a clean stop (SIGTERM); `kill()` loses changes since
    /// the last save.
    pub autosave_interval_secs: Option<u32>,
    /// Raw lines appended to the generated mosquitto.conf.
    pub extra_config: Vec<String>,
}

impl MosquittoOptions {
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn require_client_cert(mut self) -> Self {
        self.tls = true;
        self.require_client_cert = true;
        self
    }

    pub fn config_line(mut self, line: &str) -> Self {
        self.extra_config.push(line.into());
        self
    }
}

/// Generated PEM files of a TLS broker.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running mosquitto on 127.0.0.1 with persistence in its own temp dir.
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    opts: MosquittoOptions,
    tls: Option<TlsFiles>,
    process: ServerProcess,
    // Last: removed after the process is killed.
    dir: TempDir,
}

impl Mosquitto {
    /// Anonymous, plain TCP broker.
    pub fn start() -> Result<Self> {
        Self::start_with(MosquittoOptions::default())
    }

    pub fn start_with(opts: MosquittoOptions) -> Result<Self> {
        let bin = require_binary("mosquitto")?;
        with_free_port("mosquitto", |port| {
            let dir = tempfile::Builder::new()
                .prefix("e2e-mosquitto-")
                .tempdir()?;
            let tls = if opts.tls {
                Some(generate_tls(dir.path())?)
            } else {
                None
            };
            if !opts.users.is_empty() {
                write_passwords(dir.path(), &opts.users)?;
            }
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(&conf, config(dir.path(), port, &opts, tls.as_ref()))?;
            let log = dir.path().join("mosquitto.log");
            let offset = 0;
            let mut process = ServerProcess::spawn(
                "mosquitto",
                &bin,
                vec!["-c".into(), conf.display().to_string()],
                log,
            )?;
            wait_running(&mut process, port, offset)?;
            Ok(Mosquitto {
                port,
                opts: opts.clone(),
                tls,
                process,
                dir,
            })
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`, or `mqtts://127.0.0.1:PORT` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// CA certificate to trust (TLS only).
    pub fn ca_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    pub fn options(&self) -> &MosquittoOptions {
        &self.opts
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    crate::process::server_lifecycle!("mosquitto", wait_running);

    /// Connection arguments for mosquitto_pub / mosquitto_sub.
    pub fn client_args(&self) -> Vec<String> {
        let mut a = vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
        ];
        if let Some((u, p)) = self.opts.users.first() {
            a.extend(["-u".into(), u.clone(), "-P".into(), p.clone()]);
        }
        if let Some(t) = &self.tls {
            a.extend(["--cafile".into(), t.ca_cert.display().to_string()]);
            if self.opts.require_client_cert {
                a.extend([
                    "--cert".into(),
                    t.client_cert.display().to_string(),
                    "--key".into(),
                    t.client_key.display().to_string(),
                ]);
            }
        }
        a
    }

    /// Publish one message with `mosquitto_pub` (waits for the ack at QoS > 0).
    pub fn publish(&self, topic: &str, payload: &str, qos: u8, retain: bool) -> Result<()> {
        let bin = require_binary("mosquitto_pub")?;
        let mut args = self.client_args();
        args.extend([
            "-t".into(),
            topic.into(),
            "-m".into(),
            payload.into(),
            "-q".into(),
            qos.to_string(),
        ]);
        if retain {
            args.push("-r".into());
        }
        let mut child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn mosquitto_pub")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                let out = child.wait_with_output()?;
                bail!(
                    "mosquitto_pub to {topic} failed ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mosquitto_pub to {topic} timed out");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publish many messages on one topic through a single `mosquitto_pub -l`
    /// connection and wait until the broker acknowledged all of them (QoS 1/2),
    /// bounded by `timeout`. Payloads must not contain newlines.
    ///
    /// `mosquitto_pub -l` disconnects at end of input before the last acks
    /// arrive, so stdin stays open until every PUBACK is seen.
    pub fn publish_many<I, S>(
        &self,
        topic: &str,
        payloads: I,
        qos: u8,
        timeout: Duration,
    ) -> Result<usize>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let bin = require_binary("mosquitto_pub")?;
        let stdbuf = require_binary("stdbuf")?;
        let mut args = vec!["-oL".to_string(), bin.display().to_string(), "-d".into()];
        args.extend(self.client_args());
        args.extend([
            "-t".into(),
            topic.into(),
            "-q".into(),
            qos.to_string(),
            "-l".into(),
        ]);
        let mut child = Command::new(stdbuf)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn mosquitto_pub -l")?;
        let acks = Arc::new(AtomicUsize::new(0));
        let reader = child.stdout.take().map(|out| {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    if line.contains("received PUBACK") || line.contains("received PUBCOMP") {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        });
        let mut sent = 0usize;
        {
            let Some(stdin) = child.stdin.as_mut() else {
                bail!("mosquitto_pub: no stdin");
            };
            let mut w = std::io::BufWriter::new(stdin);
            for p in payloads {
                writeln!(w, "{}", p.as_ref()).context("write to mosquitto_pub")?;
                sent += 1;
            }
            w.flush().context("flush to mosquitto_pub")?;
        }
        let result = if qos == 0 {
            std::thread::sleep(Duration::from_millis(500));
            Ok(sent)
        } else {
            wait_until(&format!("{sent} PUBACKs from mosquitto"), timeout, || {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("mosquitto_pub exited early ({status})");
                }
                let n = acks.load(Ordering::Relaxed);
                Ok((n >= sent).then_some(sent))
            })
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(r) = reader {
            let _ = r.join();
        }
        result.with_context(|| {
            format!(
                "publish_many to {topic}: {} of {sent} acked",
                acks.load(Ordering::Relaxed)
            )
        })
    }

    /// Start a `mosquitto_sub` on `filter` (QoS 1) and wait until subscribed.
    pub fn subscribe(&self, filter: &str) -> Result<MqttSubscriber> {
        MqttSubscriber::start(self, filter, &[])
    }
}

/// A background `mosquitto_sub -v` collecting `(topic, payload)` lines.
/// Killed on drop. Payloads containing newlines are split across entries.
#[derive(Debug)]
pub struct MqttSubscriber {
    process: ServerProcess,
    _dir: TempDir,
}

impl MqttSubscriber {
    /// `extra` is passed to mosquitto_sub as is (e.g. `-i id -c` for a persistent session).
    pub fn start(broker: &Mosquitto, filter: &str, extra: &[&str]) -> Result<Self> {
        let bin = require_binary("mosquitto_sub")?;
        let stdbuf = require_binary("stdbuf")?;
        let dir = tempfile::Builder::new().prefix("e2e-mqttsub-").tempdir()?;
        let mut args = vec![
            "-oL".to_string(),
            bin.display().to_string(),
            "-d".into(),
            "-v".into(),
        ];
        args.extend(broker.client_args());
        args.extend(["-q".into(), "1".into(), "-t".into(), filter.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut process =
            ServerProcess::spawn("mosquitto_sub", stdbuf, args, dir.path().join("sub.log"))?;
        process.wait_ready(READY_TIMEOUT, || {
            Ok(process_log_contains(
                &dir.path().join("sub.log"),
                "Subscribed (mid",
            ))
        })?;
        Ok(MqttSubscriber { process, _dir: dir })
    }

    /// All messages received so far.
    pub fn messages(&self) -> Vec<(String, String)> {
        let text = self.process.log_since(0);
        text.lines()
            .filter(|l| {
                !l.starts_with("Client ")
                    && !l.starts_with("Subscribed (mid")
                    && !l.starts_with("=== e2e:")
            })
            .filter_map(|l| l.split_once(' ').or(Some((l, ""))))
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    }

    /// Wait until at least `n` messages arrived; returns all of them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<(String, String)>> {
        wait_until(&format!("{n} MQTT messages"), timeout, || {
            let m = self.messages();
            Ok((m.len() >= n).then_some(m))
        })
        .with_context(|| format!("received only {}", self.messages().len()))
    }

    pub fn stop(&mut self) -> Result<()> {
        self.process.stop()
    }
}

fn process_log_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
}

fn wait_running(process: &mut ServerProcess, port: u16, offset: u64) -> Result<()> {
    let log_path = process.log_path().to_path_buf();
    process.wait_ready(READY_TIMEOUT, || {
        let text = std::fs::read(&log_path).unwrap_or_default();
        let since = text.get(offset as usize..).unwrap_or_default();
        let running = String::from_utf8_lossy(since).contains(" running");
        Ok(running && is_listening(port))
    })
}

/// The generated mosquitto.conf. See deploy/mosquitto/mosquitto.conf for
/// why these limits matter in production.
fn config(dir: &Path, port: u16, opts: &MosquittoOptions, tls: Option<&TlsFiles>) -> String {
    let mut c = vec![
        "# generated by the e2e harness".to_string(),
        // Run as root (tests, CI) without dropping to the `mosquitto` user,
        // which could not write the temp dir. Ignored when not root.
        "user root".into(),
        "per_listener_settings false".into(),
        "persistence true".into(),
        format!("persistence_location {}/", dir.display()),
        format!(
            "autosave_interval {}",
            opts.autosave_interval_secs.unwrap_or(5)
        ),
        // Broker -> client QoS 1/2 window. The default 20 stalls a consumer that
        // acks in batches (it waits for a batch the broker will not send).
        "max_inflight_messages 1000".into(),
        // Queue everything for offline persistent sessions (default 1000 drops the rest).
        "max_queued_messages 0".into(),
        "max_queued_bytes 0".into(),
        "queue_qos0_messages false".into(),
        "set_tcp_nodelay true".into(),
        "log_dest stderr".into(),
        "log_type error".into(),
        "log_type warning".into(),
        "log_type notice".into(),
        "log_type information".into(),
        "connection_messages true".into(),
        "log_timestamp_format %Y-%m-%dT%H:%M:%S".into(),
        format!("listener {port} 127.0.0.1"),
    ];
    if opts.users.is_empty() {
        c.push("allow_anonymous true".into());
    } else {
        c.push("allow_anonymous false".into());
        c.push(format!("password_file {}", dir.join("passwd").display()));
    }
    if let Some(t) = tls {
        c.push(format!("cafile {}", t.ca_cert.display()));
        c.push(format!("certfile {}", t.server_cert.display()));
        c.push(format!("keyfile {}", t.server_key.display()));
        if opts.require_client_cert {
            c.push("require_certificate true".into());
        }
    }
    c.extend(opts.extra_config.iter().cloned());
    c.push(String::new());
    c.join("\n")
}

/// Write a mosquitto password file `dir/passwd` for `users` (mosquitto_passwd -b).
pub fn write_passwords(dir: &Path, users: &[(String, String)]) -> Result<()> {
    let bin = require_binary("mosquitto_passwd")?;
    let file = dir.join("passwd");
    for (i, (u, p)) in users.iter().enumerate() {
        let mut cmd = Command::new(&bin);
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd
            .arg(&file)
            .arg(u)
            .arg(p)
            .stdin(Stdio::null())
            .output()
            .context("run mosquitto_passwd")?;
        if !out.status.success() {
            bail!(
                "mosquitto_passwd for {u} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// Generate a CA, a server cert (SAN 127.0.0.1, localhost) and a client cert
/// with the `openssl` CLI (P-256 keys: fast).
pub fn generate_tls(dir: &Path) -> Result<TlsFiles> {
    let openssl = require_binary("openssl")?;
    let f = |n: &str| dir.join(n);
    std::fs::write(
        f("ca.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n\
         [dn]\nCN = e2e test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )?;
    std::fs::write(
        f("server.ext"),
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
    )?;
    std::fs::write(
        f("client.ext"),
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = clientAuth\n",
    )?;
    let p = |p: PathBuf| p.display().to_string();
    let run = |args: Vec<String>| -> Result<()> {
        let out = Command::new(&openssl)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("run openssl")?;
        if !out.status.success() {
            bail!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut a = s(&["req", "-x509", "-days", "3650", "-config"]);
    a.push(p(f("ca.cnf")));
    a.extend(s(&ec));
    a.extend([
        "-keyout".into(),
        p(f("ca.key")),
        "-out".into(),
        p(f("ca.crt")),
    ]);
    run(a)?;
    for (name, cn) in [("server", "localhost"), ("client", "e2e-client")] {
        let mut a = s(&["req", "-new", "-subj"]);
        a.push(format!("/CN={cn}"));
        a.extend(s(&ec));
        a.extend([
            "-keyout".into(),
            p(f(&format!("{name}.key"))),
            "-out".into(),
            p(f(&format!("{name}.csr"))),
        ]);
        run(a)?;
        let mut a = s(&["x509", "-req", "-days", "3650", "-CAcreateserial", "-in"]);
        a.extend([
            p(f(&format!("{name}.csr"))),
            "-CA".into(),
            p(f("ca.crt")),
            "-CAkey".into(),
            p(f("ca.key")),
            "-extfile".into(),
            p(f(&format!("{name}.ext"))),
            "-out".into(),
            p(f(&format!("{name}.crt"))),
        ]);
        run(a)?;
    }
    Ok(TlsFiles {
        ca_cert: f("ca.crt"),
        server_cert: f("server.crt"),
        server_key: f("server.key"),
        client_cert: f("client.crt"),
        client_key: f("client.key"),
    })
}
