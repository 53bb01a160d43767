//! Helpers for the Modbus integration tests: real slaves from `tests/modbus/slave.py`
//! (pymodbus), socat pseudo-terminal pairs for RTU, and a reading collector.
#![allow(dead_code)]

use gateway::metrics::Metrics;
use gateway::pipeline::Intake;
use gateway::reading::{Reading, Value};
use gateway::source::modbus::{
    DataType, DeviceConfig, ModbusConfig, RegisterConfig, RegisterKind, WordOrder, spawn_all,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SLAVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/modbus/slave.py");

/// A running `slave.py`; killed on drop.
pub struct Slave {
    child: Child,
}

impl Slave {
    fn start(args: &[&str]) -> Slave {
        let mut child = Command::new("python3")
            .arg(SLAVE)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed (with pymodbus, see tests/modbus/slave.py)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.next().and_then(Result::ok);
            let _ = tx.send(ready);
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(l)) if l.trim() == "ready" => Slave { child },
            other => {
                let _ = child.kill();
                panic!(
                    "slave {args:?} did not start ({other:?}); is pymodbus installed? \
                     pip install \"pymodbus[serial]>=3.10,<4\""
                )
            }
        }
    }

    pub fn tcp(port: u16, mode: &str) -> Slave {
        Slave::start(&["--tcp", &port.to_string(), "--mode", mode])
    }

    pub fn rtu(path: &Path, mode: &str) -> Slave {
        Slave::start(&["--rtu", path.to_str().expect("utf-8 path"), "--mode", mode])
    }

    /// An RTU slave on which only `units` answer; other unit ids get no reply.
    pub fn rtu_units(path: &Path, units: &str) -> Slave {
        Slave::start(&[
            "--rtu",
            path.to_str().expect("utf-8 path"),
            "--units",
            units,
        ])
    }

    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A socat pty pair: the gateway opens `a`, the slave `b`. Killed on drop.
pub struct PtyPair {
    child: Child,
    _dir: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    pub fn new() -> PtyPair {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat must be installed");
        let t0 = Instant::now();
        while !(a.exists() && b.exists()) {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("socat did not create the pty pair");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            child,
            _dir: dir,
            a,
            b,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ORDERS: [WordOrder; 4] = [
    WordOrder::ABCD,
    WordOrder::CDAB,
    WordOrder::BADC,
    WordOrder::DCBA,
];
pub const TYPES: [DataType; 5] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::F32,
];
pub const COILS: [u8; 16] = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1];
pub const DISCRETE: [u8; 16] = [0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0];

/// The value `slave.py` holds for a type (in every order).
pub fn held(t: DataType) -> Value {
    match t {
        DataType::U16 => Value::Int(54321),
        DataType::I16 => Value::Int(-12345),
        DataType::U32 => Value::Int(3_000_000_000),
        DataType::I32 => Value::Int(-123_456_789),
        DataType::F32 => Value::Float(f64::from(-1234.5678f32)),
    }
}

pub fn reg(
    metric: String,
    kind: RegisterKind,
    address: u16,
    t: DataType,
    o: WordOrder,
) -> RegisterConfig {
    RegisterConfig {
        metric,
        kind,
        address,
        data_type: t,
        order: o,
        scale: 1.0,
        offset: 0.0,
        unit: String::new(),
    }
}

/// Every type in every order from one register kind (the slave's layout:
/// address = order * 10 + type * 2), named `{kind}_{type}_{order}`.
pub fn typed_registers(kind: RegisterKind) -> Vec<RegisterConfig> {
    let mut out = Vec::new();
    for (o, order) in ORDERS.iter().enumerate() {
        for (t, ty) in TYPES.iter().enumerate() {
            let address = u16::try_from(o * 10 + t * 2).unwrap();
            out.push(reg(
                format!("{kind:?}_{ty:?}_{order:?}").to_lowercase(),
                kind,
                address,
                *ty,
                *order,
            ));
        }
    }
    out
}

/// Every metric `typed_registers` plus the 16 coils and discrete inputs yields, and its value.
pub fn expected_values() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for kind in [RegisterKind::Holding, RegisterKind::Input] {
        for order in ORDERS {
            for ty in TYPES {
                out.push((
                    format!("{kind:?}_{ty:?}_{order:?}").to_lowercase(),
                    held(ty),
                ));
            }
        }
    }
    for (i, b) in COILS.iter().enumerate() {
        out.push((format!("coil_{i}"), Value::Bool(*b == 1)));
    }
    for (i, b) in DISCRETE.iter().enumerate() {
        out.push((format!("discrete_{i}"), Value::Bool(*b == 1)));
    }
    out
}

/// The full map: holding + input typed registers, 16 coils, 16 discrete inputs.
pub fn full_map() -> Vec<RegisterConfig> {
    let mut regs = typed_registers(RegisterKind::Holding);
    regs.extend(typed_registers(RegisterKind::Input));
    for i in 0..16u16 {
        regs.push(reg(
            format!("coil_{i}"),
            RegisterKind::Coil,
            i,
            DataType::U16,
            WordOrder::ABCD,
        ));
        regs.push(reg(
            format!("discrete_{i}"),
            RegisterKind::Discrete,
            i,
            DataType::U16,
            WordOrder::ABCD,
        ));
    }
    regs
}

pub fn device(name: &str, url: &str, unit: u8, registers: Vec<RegisterConfig>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        site: "test-site".into(),
        url: url.into(),
        unit,
        stream: "grease_trap".into(),
        interval_ms: 100,
        timeout_ms: 300,
        backoff_max_ms: 400,
        offline_after_failures: 2,
        merge: true,
        max_gap: 8,
        max_registers: 125,
        max_bits: 2000,
        registers,
    }
}

/// Every intake received, with its arrival time.
#[derive(Clone, Default)]
pub struct Collected(pub Arc<Mutex<Vec<Arrival>>>);

/// One intake's readings and when the collector saw it.
pub type Arrival = (Instant, Vec<Reading>);

impl Collected {
    /// Arrival times of data polls (not presence) of `device`.
    pub fn data_times(&self, device: &str) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| {
                r.first()
                    .is_some_and(|r| r.device == device && r.stream != "state")
            })
            .map(|(t, _)| *t)
            .collect()
    }

    /// The presence values reported for `device`, in order.
    pub fn presence(&self, device: &str) -> Vec<bool> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| r.iter())
            .filter(|r| r.device == device && r.stream == "state" && r.metric == "online")
            .filter_map(|r| match r.value {
                Value::Bool(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    /// The latest data poll of `device`.
    pub fn last_poll(&self, device: &str) -> Option<Vec<Reading>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, r)| {
                r.first()
                    .is_some_and(|r| r.device == device && r.stream != "state")
            })
            .map(|(_, r)| r.clone())
    }

    /// Waits until `f` holds, up to `timeout`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, f: impl Fn(&Collected) -> bool) {
        let t0 = Instant::now();
        while !f(self) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Gateway side: the device tasks and a collector draining the intake channel.
pub struct Running {
    pub handles: Vec<JoinHandle<()>>,
    pub cancel: CancellationToken,
    pub collected: Collected,
    pub metrics: Arc<Metrics>,
    collector: JoinHandle<()>,
}

impl Running {
    pub fn start(devices: Vec<DeviceConfig>) -> Running {
        // Logs show up with a failing test's output (RUST_LOG overrides the level).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "gateway=info".into()),
            )
            .with_test_writer()
            .try_init();
        let cfg = ModbusConfig { devices };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Intake>(1024);
        let metrics = Arc::new(Metrics::new());
        let cancel = CancellationToken::new();
        let collected = Collected::default();
        let c = collected.clone();
        let collector = tokio::spawn(async move {
            while let Some(i) = rx.recv().await {
                c.0.lock().unwrap().push((Instant::now(), i.readings));
            }
        });
        let handles = spawn_all(&cfg, tx, metrics.clone(), cancel.clone());
        Running {
            handles,
            cancel,
            collected,
            metrics,
            collector,
        }
    }

    /// Cancels every device task and waits for all of them (and the collector) to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        for h in self.handles {
            tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .expect("device task did not stop within 5 s")
                .expect("device task panicked");
        }
        tokio::time::timeout(Duration::from_secs(5), self.collector)
            .await
            .expect("collector did not end")
            .expect("collector panicked");
    }
}

/// Asserts that a poll holds exactly the expected values.
pub fn assert_poll_matches(poll: &[Reading], expected: &[(String, Value)]) {
    for (metric, want) in expected {
        let got = poll
            .iter()
            .find(|r| &r.metric == metric)
            .unwrap_or_else(|| panic!("metric {metric} missing from poll"));
        assert_eq!(&got.value, want, "metric {metric}");
    }
    assert_eq!(poll.len(), expected.len(), "unexpected extra readings");
    let t = poll[0].device_time_ms;
    assert!(
        poll.iter().all(|r| r.device_time_ms == t),
        "one device time per poll"
    );
}
