//! Bounded polling and small environment checks.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

/// Poll `check` every 50..250 ms until it returns `Ok(Some(value))`, or fail
/// after `timeout` with `what` and the last error or "condition not met".
///
/// `Ok(None)` means "not yet"; `Err` also means "not yet" but is remembered
/// and reported if the deadline passes.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    let mut last = String::from("condition not met");
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Milliseconds since the Unix epoch (recent timestamps: VictoriaMetrics
/// drops points outside its retention window).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Find `name` on PATH (plus /usr/sbin, /usr/bin), or fail with a hint to run
/// `tests/run-all.sh`, which installs the test servers.
pub fn require_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.push(PathBuf::from("/usr/bin"));
    dirs.push(PathBuf::from("/sbin"));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "`{name}` not found on PATH; run `bash tests/run-all.sh` once to install the test servers"
    )
}
