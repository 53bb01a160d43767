//! End-to-end test harness: real servers on loopback, one set per test.
//!
//! Every server runs in its own temp dir on a free 127.0.0.1 port, logs to a
//! file in that dir, and is killed when its guard drops (also on panic). All
//! waits are bounded; errors name the server and include its log tail.
//!
//! The same calls run in `tests/tests/harness.rs` (doc tests are off: see the crate's `Cargo.toml`):
//!
//! ```rust,ignore
//! use std::time::Duration;
//! let vm = e2e::VictoriaMetrics::start().unwrap();
//! vm.write_lines("grease_trap,site=s1,device=d1 level=3 1700000000000", "ms").unwrap();
//! let series = vm.wait_for_points("grease_trap_level", 1, Duration::from_secs(10)).unwrap();
//! assert_eq!(series[0].label("site"), Some("s1"));
//! ```

pub mod camera_servers;
pub mod http;
pub mod influx1;
pub mod mosquitto;
pub mod port;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod publish;
pub mod skip;
pub mod victoria;
pub mod wait;

pub use camera_servers::{RtspServer, SnapshotServer};
pub use influx1::{Influx1, Influx1Options, QuerySeries};
pub use mosquitto::{Mosquitto, MosquittoOptions, MqttSubscriber, TlsFiles};
pub use port::{free_port, wait_for_tcp};
pub use postgres::{Postgres, PostgresOptions};
pub use process::ServerProcess;
pub use proxy::DelayProxy;
pub use publish::publish_qos1;
pub use skip::skip_outside_ci;
pub use victoria::{ExportedSeries, VictoriaMetrics, VictoriaOptions};
pub use wait::{now_ms, require_binary, wait_until};

/// How many times a server start is retried with a fresh port when the
/// first attempt fails (typically another test grabbed the port between
/// `free_port()` and the server's bind).
pub const START_ATTEMPTS: usize = 3;
