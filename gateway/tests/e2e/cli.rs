//! The command line as users and scripts call it.

use e2e::{free_port, http, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
}

#[test]
fn check_config_accepts_the_example_config() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/gateway.example.toml"
    );
    let out = gateway()
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[mqtt]\nurl = \"http://x:1\"\n", "mqtt.url"),
        (
            "[influx]\nbatch_max_lines = \"lots\"\n",
            "influx.batch_max_lines",
        ),
        ("[storage]\nsize = 3\n", "size"),
        (
            "[[mappings]]\nname = \"m\"\ntopic = \"a/{site}\"\nformat = \"json\"\nstream = \"s\"\n[[mappings.fields]]\npath = \"x\"\nmetric = \"x\"\n",
            "mappings[0].topic",
        ),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = gateway()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted: {text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "`{key}` not named in: {err}");
    }
}

#[test]
fn environment_overrides_are_validated_too() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/gateway.example.toml"
    );
    let out = gateway()
        .args(["check-config", "--config", example])
        .env("GATEWAY_MQTT__URL", "ftp://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.url"));
}

#[test]
fn demo_runs_the_simulated_fleet_with_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, mqtt_port) = (free_port(), free_port());
    let mut child = gateway()
        .args([
            "demo",
            "--duration-s",
            "60",
            "--restaurants",
            "2",
            "--manholes",
            "2",
        ])
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--listen", &format!("127.0.0.1:{http_port}")])
        .arg("--data")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http_port}/api/v1/devices");
    // 2 restaurants (trap + camera) and 2 manholes report within seconds. A device is listed
    // from its first message, which may be its "online" state before any reading: wait for a
    // reading of each kind too, not only for the six devices.
    let kinds = ["grease_trap", "manhole_cover", "camera"];
    let seen = wait_until(
        "six demo devices and a reading of each kind",
        Duration::from_secs(30),
        || {
            // The demo leaves an admin token for its user; the API needs it like any other.
            let Ok(token) = std::fs::read_to_string(dir.path().join("admin.token")) else {
                return Ok(None);
            };
            let auth = format!("Bearer {}", token.trim());
            let Ok(r) = http::request(
                "GET",
                &url,
                None,
                &[("Authorization", &auth)],
                http::TIMEOUT,
            ) else {
                return Ok(None);
            };
            let v = r.json()?;
            let Some(devices) = v.as_array().filter(|a| a.len() >= 6) else {
                return Ok(None);
            };
            let streams: Vec<&str> = devices
                .iter()
                .flat_map(|d| d["last_values"].as_object().into_iter().flatten())
                .filter_map(|(_, v)| v["stream"].as_str())
                .collect();
            Ok(kinds.iter().all(|k| streams.contains(k)).then_some(()))
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    seen.unwrap();
}
