//! Self-tests of the e2e harness: each server starts, answers, stops, and
//! restarts on the same port with its data kept.

use std::time::{Duration, Instant};

use e2e::{Influx1, Mosquitto, MosquittoOptions, VictoriaMetrics, free_port, now_ms, wait_for_tcp};

const T: Duration = Duration::from_secs(20);

#[test]
fn free_port_is_bindable() {
    let p = free_port();
    let l = std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    wait_for_tcp(l.local_addr().unwrap(), Duration::from_secs(1)).unwrap();
}

#[test]
fn mosquitto_pub_sub_round_trip_and_restart() {
    let started = Instant::now();
    let mut broker = Mosquitto::start().unwrap();
    eprintln!("mosquitto ready in {:?}", started.elapsed());
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.port()));
    let sub = broker.subscribe("v1/#").unwrap();
    broker
        .publish("v1/s1/d1/telemetry", r#"{"seq":1}"#, 1, false)
        .unwrap();
    let got = sub.wait_for(1, T).unwrap();
    assert_eq!(got[0], ("v1/s1/d1/telemetry".into(), r#"{"seq":1}"#.into()));
    drop(sub);

    // A persistent session queues QoS 1 messages while its client is away,
    // (50,000: far beyond mosquitto's default limit of 1000), also across a
    // clean broker restart.
    let mut sub = e2e::MqttSubscriber::start(&broker, "q/#", &["-i", "e2e-persist", "-c"]).unwrap();
    sub.stop().unwrap();
    let n = 50_000;
    let acked = broker
        .publish_many(
            "q/x",
            (0..n).map(|i| format!("m{i}")),
            1,
            Duration::from_secs(90),
        )
        .unwrap();
    assert_eq!(acked, n);
    let port = broker.port();
    broker.restart().unwrap();
    assert_eq!(broker.port(), port);
    let sub = e2e::MqttSubscriber::start(&broker, "q/#", &["-i", "e2e-persist", "-c"]).unwrap();
    let got = sub.wait_for(n, Duration::from_secs(90)).unwrap();
    assert_eq!(got.len(), n);
    assert_eq!(got[n - 1].1, format!("m{}", n - 1));
}

#[test]
fn mosquitto_tls_and_password() {
    let broker = Mosquitto::start_with(
        MosquittoOptions::default()
            .user("dev1", "secret")
            .require_client_cert(),
    )
    .unwrap();
    assert!(broker.url().starts_with("mqtts://127.0.0.1:"));
    assert!(broker.ca_path().unwrap().exists());
    let sub = broker.subscribe("a/b").unwrap();
    broker.publish("a/b", "hello", 1, false).unwrap();
    assert_eq!(sub.wait_for(1, T).unwrap()[0].1, "hello");

    // Wrong password is refused.
    let out = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "--cafile",
            broker.ca_path().unwrap().to_str().unwrap(),
            "--cert",
            broker.tls_files().unwrap().client_cert.to_str().unwrap(),
            "--key",
            broker.tls_files().unwrap().client_key.to_str().unwrap(),
            "-u",
            "dev1",
            "-P",
            "wrong",
            "-t",
            "a/b",
            "-m",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn victoria_write_export_restart() {
    let started = Instant::now();
    let mut vm = VictoriaMetrics::start().unwrap();
    eprintln!("victoria-metrics ready in {:?}", started.elapsed());
    let ts = now_ms();
    vm.write_lines(
        &format!("grease_trap,site=s1,device=d1 level=42.5 {ts}\n"),
        "ms",
    )
    .unwrap();
    let series = vm.wait_for_points("grease_trap_level", 1, T).unwrap();
    assert_eq!(series[0].label("site"), Some("s1"));
    assert_eq!(series[0].values, vec![42.5]);
    assert_eq!(series[0].timestamps, vec![ts]);

    let port = vm.port();
    vm.restart().unwrap();
    assert_eq!(vm.port(), port);
    // Right after a restart the data may take a moment to be searchable again.
    let t0 = Instant::now();
    let again = vm
        .wait_for_points(r#"{__name__="grease_trap_level",device="d1"}"#, 1, T)
        .unwrap();
    eprintln!(
        "victoria-metrics data searchable {:?} after restart",
        t0.elapsed()
    );
    assert_eq!(again[0].values, vec![42.5]);
    let r = vm.wait_for_query("grease_trap_level", T).unwrap();
    assert_eq!(r.len(), 1);
}

#[test]
fn influx1_write_query_restart() {
    let started = Instant::now();
    let mut influx = Influx1::start().unwrap();
    eprintln!("influxd ready in {:?}", started.elapsed());
    let db = influx.database().unwrap().to_string();
    let ts = now_ms();
    influx
        .write(
            &db,
            &format!("manhole_cover,site=s1,device=c1 tilt=12.5 {ts}\n"),
            "ms",
        )
        .unwrap();
    // The strict parser rejects bad lines with 400.
    assert!(influx.write(&db, "bad line without fields", "ms").is_err());

    let port = influx.port();
    influx.restart().unwrap();
    assert_eq!(influx.port(), port);
    let series = influx.query(&db, "SELECT * FROM manhole_cover").unwrap();
    let rows = series[0].rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["tilt"], serde_json::json!(12.5));
    assert_eq!(rows[0]["site"], serde_json::json!("s1"));
    assert_eq!(rows[0]["time"], serde_json::json!(ts));
}

#[test]
fn kill_leaves_port_free_and_start_again_works() {
    let mut vm = VictoriaMetrics::start().unwrap();
    vm.kill();
    assert!(!e2e::port::is_listening(vm.port()));
    vm.start_again().unwrap();
    assert!(e2e::port::is_listening(vm.port()));
}

// The deploy broker config is tested with its ACL and provisioning scripts in
// gateway/tests/e2e/deploy_configs.rs.

#[test]
fn postgres_query_database_and_restart_keep_data() {
    let mut pg = e2e::Postgres::start().unwrap();
    let url = pg.create_database("harness").unwrap();
    assert!(url.ends_with("/harness"), "{url}");
    pg.psql(
        "harness",
        "CREATE TABLE t (v int); INSERT INTO t VALUES (41), (1)",
    )
    .unwrap();
    pg.restart().unwrap();
    assert_eq!(pg.psql("harness", "SELECT sum(v) FROM t").unwrap(), "42");
    let err = pg.psql("harness", "SELECT * FROM missing").unwrap_err();
    assert!(err.to_string().contains("missing"), "{err:#}");
}
