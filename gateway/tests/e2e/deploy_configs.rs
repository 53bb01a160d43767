//! The production broker setup in `deploy/` against the REAL mosquitto.
//!
//! `deploy/mosquitto/mosquitto.conf` and `deploy/mosquitto/acl` are used as shipped, only
//! with paths moved into a temp dir and the listeners moved to free ports. The CA, server
//! certificate, gateway user and devices are created by `deploy/make-ca.sh`,
//! `deploy/provision-user.sh` and `deploy/provision-device.sh`, exactly as an operator would.
//!
//! Proves: a device publishes under its own `v1/{site}/{device}/` over TLS and the gateway
//! (shared subscription on the loopback listener) receives it; a device publishing under
//! another device's topic is not delivered; a wrong password and an unknown user are refused;
//! a certificate device (mutual TLS, CN as username) is confined the same way and cannot
//! connect without its certificate. Also: the provisioning scripts are idempotent and
//! refuse ids that would break the ACL pattern, and the Grafana dashboard is valid JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{ServerProcess, free_port, require_binary, wait_until};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// Run `cmd` with a deadline; returns its output whatever the exit status.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "{cmd:?} timed out after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Paths of one deployment laid out under a temp dir (stands in for /etc/mosquitto etc.).
struct Layout {
    _tmp: tempfile::TempDir,
    conf_dir: PathBuf,
    data_dir: PathBuf,
    out_dir: PathBuf,
}

impl Layout {
    fn new() -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("deploy-configs-")
            .tempdir()?;
        let conf_dir = tmp.path().join("etc-mosquitto");
        let data_dir = tmp.path().join("var-lib-mosquitto");
        let out_dir = tmp.path().join("devices");
        std::fs::create_dir_all(&data_dir)?;
        Ok(Layout {
            _tmp: tmp,
            conf_dir,
            data_dir,
            out_dir,
        })
    }

    /// Run a deploy script; its `key=value` stdout lines as a map.
    fn script(&self, name: &str, args: &[&str]) -> Result<BTreeMap<String, String>> {
        let out = self.script_raw(name, args)?;
        if !out.status.success() {
            bail!(
                "{name} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn script_raw(&self, name: &str, args: &[&str]) -> Result<Output> {
        run_bounded(
            Command::new("bash")
                .arg(deploy_dir().join(name))
                .args(args)
                .env("MQTT_CONF_DIR", &self.conf_dir)
                .env("OUT_DIR", &self.out_dir)
                .env("BROKER_HOST", "127.0.0.1")
                .env_remove("DEVICE_PASSWORD")
                .env_remove("USER_PASSWORD"),
            Duration::from_secs(60),
        )
    }

    fn passwd_lines(&self) -> usize {
        std::fs::read_to_string(self.conf_dir.join("passwd"))
            .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0)
    }
}

struct Ports {
    tls: u16,
    cert: u16,
    local: u16,
}

/// `deploy/mosquitto/mosquitto.conf` with its paths under `layout` and its listeners on
/// `ports`. Every rewrite must hit, so a config change that breaks this test is noticed.
fn adapted_config(layout: &Layout, ports: &Ports) -> Result<String> {
    let src = std::fs::read_to_string(deploy_dir().join("mosquitto/mosquitto.conf"))?;
    let mut hits = [0usize; 3];
    let mut out = String::from("# adapted by gateway/tests/e2e/deploy_configs.rs\nuser root\n");
    for line in src.lines() {
        let line = match line.trim_end() {
            "listener 8883" => {
                hits[0] += 1;
                format!("listener {} 127.0.0.1", ports.tls)
            }
            "listener 8884" => {
                hits[1] += 1;
                format!("listener {} 127.0.0.1", ports.cert)
            }
            "listener 1883 127.0.0.1" => {
                hits[2] += 1;
                format!("listener {} 127.0.0.1", ports.local)
            }
            other => other
                .replace(
                    "/etc/mosquitto/",
                    &format!("{}/", layout.conf_dir.display()),
                )
                .replace(
                    "/var/lib/mosquitto/",
                    &format!("{}/", layout.data_dir.display()),
                ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    if hits != [1, 1, 1] {
        bail!("deploy mosquitto.conf listeners changed (8883/8884/1883 found {hits:?} times)");
    }
    if out
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains("/etc/mosquitto") || l.contains("/var/lib/mosquitto"))
    {
        bail!("unadapted absolute path left in the config");
    }
    Ok(out)
}

struct Broker {
    process: ServerProcess,
    ports: Ports,
}

fn start_broker(layout: &Layout) -> Result<Broker> {
    let bin = require_binary("mosquitto")?;
    let mut errors = Vec::new();
    for attempt in 0..e2e::START_ATTEMPTS {
        let ports = Ports {
            tls: free_port(),
            cert: free_port(),
            local: free_port(),
        };
        let conf = layout.conf_dir.join(format!("test-{attempt}.conf"));
        std::fs::write(&conf, adapted_config(layout, &ports)?)?;
        let mut process = ServerProcess::spawn(
            "mosquitto",
            &bin,
            vec!["-c".into(), conf.display().to_string()],
            layout.data_dir.join(format!("mosquitto-{attempt}.log")),
        )?;
        let ready = process.wait_ready(Duration::from_secs(15), || {
            Ok([ports.tls, ports.cert, ports.local]
                .iter()
                .all(|p| e2e::port::is_listening(*p)))
        });
        match ready {
            Ok(()) => return Ok(Broker { process, ports }),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!("mosquitto did not start:\n{}", errors.join("\n---\n"))
}

/// `mosquitto_sub -v` in the background, output collected in a file.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(args: &[String], out: PathBuf) -> Result<Self> {
        let bin = require_binary("mosquitto_sub")?;
        let file = std::fs::File::create(&out)?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::null())
            .spawn()
            .context("spawn mosquitto_sub")?;
        Ok(Subscriber { child, out })
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_for(&self, line: &str, timeout: Duration) -> Result<()> {
        wait_until(&format!("gateway receives `{line}`"), timeout, || {
            Ok(self.lines().iter().any(|l| l == line).then_some(()))
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `mosquitto_pub` at QoS 1, MQTT 5 (a denied publish is answered with a PUBACK
/// reason code, which mosquitto_pub reports as "Publish ... failed: Not authorized").
fn publish(conn: &[String], topic: &str, payload: &str) -> Result<Output> {
    let bin = require_binary("mosquitto_pub")?;
    run_bounded(
        Command::new(bin)
            .args(conn)
            .args(["-V", "mqttv5", "-q", "1", "-t", topic, "-m", payload]),
        Duration::from_secs(20),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn deploy_broker_confines_each_device_to_its_own_topics() -> Result<()> {
    require_binary("mosquitto_passwd")?;
    require_binary("openssl")?;
    let layout = Layout::new()?;

    let ca = layout.script("make-ca.sh", &["localhost", "127.0.0.1"])?;
    let ca_file = ca["ca_file"].clone();
    let gw = layout.script("provision-user.sh", &["gateway"])?;
    let a = layout.script("provision-device.sh", &["r-001", "trap-1"])?;
    let b = layout.script("provision-device.sh", &["r-001", "trap-2"])?;
    let c = layout.script("provision-device.sh", &["r-002", "cam-1", "--cert"])?;
    assert_eq!(a["username"], "r-001/trap-1");
    assert_eq!(c["username"], "r-002/cam-1");

    let mut broker = start_broker(&layout)?;
    let ports = &broker.ports;

    let local = |user: &str, password: &str| {
        strings(&[
            "-h",
            "127.0.0.1",
            "-p",
            &ports.local.to_string(),
            "-u",
            user,
            "-P",
            password,
        ])
    };
    let tls_password = |user: &str, password: &str| {
        strings(&[
            "-h",
            "127.0.0.1",
            "-p",
            &ports.tls.to_string(),
            "--cafile",
            &ca_file,
            "-u",
            user,
            "-P",
            password,
        ])
    };
    let tls_cert = strings(&[
        "-h",
        "127.0.0.1",
        "-p",
        &ports.cert.to_string(),
        "--cafile",
        &c["ca_file"],
        "--cert",
        &c["client_cert_file"],
        "--key",
        &c["client_key_file"],
    ]);
    let dev_a = tls_password(&a["username"], &a["password"]);
    let dev_b = tls_password(&b["username"], &b["password"]);

    // The gateway: loopback listener, shared subscription as in the scale-out setup.
    let mut sub_args = local("gateway", &gw["password"]);
    sub_args.extend(strings(&[
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-v",
        "-t",
        "$share/gateways/v1/#",
    ]));
    let sub = Subscriber::start(&sub_args, layout.data_dir.join("gateway-sub.out"))?;

    // Until the subscription is in place, device A's own messages may go nowhere: probe.
    let mut probe = 0;
    wait_until(
        "gateway subscription active",
        Duration::from_secs(20),
        || {
            probe += 1;
            let payload = format!("probe-{probe}");
            let out = publish(&dev_a, "v1/r-001/trap-1/state", &payload)?;
            if !out.status.success() || !stderr(&out).is_empty() {
                bail!("device A publish failed: {}", stderr(&out));
            }
            std::thread::sleep(Duration::from_millis(200));
            let want = format!("v1/r-001/trap-1/state {payload}");
            Ok(sub.lines().contains(&want).then_some(()))
        },
    )
    .with_context(|| broker.process.log_tail(30))?;

    // 1. Own topic over TLS with a password: accepted and delivered to the gateway.
    let own = publish(&dev_a, "v1/r-001/trap-1/telemetry", "a-own")?;
    assert!(own.status.success(), "own publish: {}", stderr(&own));
    assert!(stderr(&own).is_empty(), "own publish: {}", stderr(&own));
    sub.wait_for("v1/r-001/trap-1/telemetry a-own", Duration::from_secs(10))?;

    // 2. Device A under device B's topic, another site, and the clue topic: all refused.
    for topic in [
        "v1/r-001/trap-2/telemetry",
        "v1/r-999/trap-1/telemetry",
        "v1/r-001/trap-1x/telemetry",
        "clues/v1/r-001/high",
        "gateway/dead-letter",
    ] {
        let out = publish(&dev_a, topic, "a-forged")?;
        assert!(
            stderr(&out).contains("Not authorized"),
            "A publishing on {topic} must be refused, got status {} stderr {:?}",
            out.status,
            stderr(&out)
        );
    }
    // Device B's own message after the forged ones: once it arrived, the forged ones
    // (published earlier on the same broker) would have too.
    let b_own = publish(&dev_b, "v1/r-001/trap-2/telemetry", "b-own")?;
    assert!(
        stderr(&b_own).is_empty(),
        "B own publish: {}",
        stderr(&b_own)
    );
    sub.wait_for("v1/r-001/trap-2/telemetry b-own", Duration::from_secs(10))?;

    // 3. Wrong password, unknown user, no credentials: connection refused.
    for (what, conn) in [
        (
            "wrong password",
            tls_password(&a["username"], "not-the-password"),
        ),
        ("unknown user", tls_password("r-001/trap-9", "whatever")),
        ("device password of another device", {
            tls_password(&a["username"], &b["password"])
        }),
        (
            "no credentials",
            strings(&[
                "-h",
                "127.0.0.1",
                "-p",
                &ports.tls.to_string(),
                "--cafile",
                &ca_file,
            ]),
        ),
    ] {
        let out = publish(&conn, "v1/r-001/trap-1/telemetry", "refused")?;
        assert!(
            !out.status.success(),
            "{what}: connection must be refused, stderr {:?}",
            stderr(&out)
        );
        let err = stderr(&out).to_lowercase();
        assert!(
            err.contains("not authori") || err.contains("refused"),
            "{what}: unexpected error {err:?}"
        );
    }

    // 4. Certificate device (mutual TLS, CN = "r-002/cam-1" is the username): same confinement.
    let c_own = publish(&tls_cert, "v1/r-002/cam-1/event", "c-own")?;
    assert!(
        c_own.status.success() && stderr(&c_own).is_empty(),
        "cert device own publish: {} {}",
        c_own.status,
        stderr(&c_own)
    );
    sub.wait_for("v1/r-002/cam-1/event c-own", Duration::from_secs(10))?;
    let c_forged = publish(&tls_cert, "v1/r-001/trap-1/event", "c-forged")?;
    assert!(
        stderr(&c_forged).contains("Not authorized"),
        "cert device publishing as another: {:?}",
        stderr(&c_forged)
    );
    // Without a certificate the mutual-TLS listener refuses the handshake.
    let no_cert = publish(
        &strings(&[
            "-h",
            "127.0.0.1",
            "-p",
            &ports.cert.to_string(),
            "--cafile",
            &ca_file,
            "-u",
            &a["username"],
            "-P",
            &a["password"],
        ]),
        "v1/r-001/trap-1/event",
        "no-cert",
    )?;
    assert!(
        !no_cert.status.success(),
        "cert listener without a certificate"
    );

    // The device listener is TLS: plain MQTT on it is refused.
    let plain = publish(
        &strings(&[
            "-h",
            "127.0.0.1",
            "-p",
            &ports.tls.to_string(),
            "-u",
            &a["username"],
            "-P",
            &a["password"],
        ]),
        "v1/r-001/trap-1/telemetry",
        "plain",
    )?;
    assert!(!plain.status.success(), "plain MQTT on the TLS listener");

    // Final marker, then check nothing forged or refused ever reached the gateway.
    let last = publish(&dev_a, "v1/r-001/trap-1/telemetry", "a-last")?;
    assert!(stderr(&last).is_empty(), "{}", stderr(&last));
    sub.wait_for("v1/r-001/trap-1/telemetry a-last", Duration::from_secs(10))?;
    let got = sub.lines();
    for bad in ["a-forged", "c-forged", "refused", "no-cert", "plain"] {
        assert!(
            !got.iter().any(|l| l.ends_with(&format!(" {bad}"))),
            "`{bad}` reached the gateway: {got:#?}"
        );
    }
    broker.process.check_alive()?;
    Ok(())
}

#[test]
fn provisioning_is_idempotent_and_refuses_ids_that_break_the_acl() -> Result<()> {
    require_binary("mosquitto_passwd")?;
    require_binary("openssl")?;
    let layout = Layout::new()?;
    layout.script("make-ca.sh", &[])?;
    let ca_again = layout.script_raw("make-ca.sh", &[])?;
    assert!(String::from_utf8_lossy(&ca_again.stdout).contains("CA exists"));

    let first = layout.script("provision-device.sh", &["s-1", "d-1"])?;
    assert_eq!(first["publish_under"], "v1/s-1/d-1/");
    let hash = std::fs::read_to_string(layout.conf_dir.join("passwd"))?;
    let again = layout.script("provision-device.sh", &["s-1", "d-1"])?;
    assert_eq!(again["password"], "(unchanged)");
    assert_eq!(
        std::fs::read_to_string(layout.conf_dir.join("passwd"))?,
        hash,
        "re-provisioning must not change the password"
    );
    let rotated = layout.script("provision-device.sh", &["s-1", "d-1", "--rotate"])?;
    assert_ne!(rotated["password"], first["password"]);
    assert_eq!(layout.passwd_lines(), 1);

    let cert = layout.script("provision-device.sh", &["s-1", "cam", "--cert"])?;
    let pem = std::fs::read(&cert["client_cert_file"])?;
    layout.script("provision-device.sh", &["s-1", "cam", "--cert"])?;
    assert_eq!(std::fs::read(&cert["client_cert_file"])?, pem);

    let acl = std::fs::read_to_string(layout.conf_dir.join("acl"))?;
    assert_eq!(acl.matches("pattern write v1/%u/#").count(), 1, "{acl}");

    for (site, device) in [
        ("a/b", "d"),
        ("s", "#"),
        ("s", "+"),
        ("", "d"),
        ("s", "d e"),
    ] {
        let out = layout.script_raw("provision-device.sh", &[site, device])?;
        assert!(
            !out.status.success(),
            "id {site:?}/{device:?} must be refused"
        );
    }
    assert_eq!(layout.passwd_lines(), 1);
    Ok(())
}

#[test]
fn grafana_dashboard_is_a_dashboard() -> Result<()> {
    let text = std::fs::read_to_string(deploy_dir().join("grafana/gateway-dashboard.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let panels = v["panels"].as_array().context("panels")?;
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut ids = std::collections::HashSet::new();
    for p in panels {
        assert!(p["title"].is_string(), "panel without title: {p}");
        if p["type"] != "row" {
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "{p}"
            );
        }
        assert!(ids.insert(p["id"].as_i64().context("panel id")?));
    }
    assert!(v["title"].is_string() && v["uid"].is_string());
    Ok(())
}
