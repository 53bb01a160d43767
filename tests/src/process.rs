//! A guarded server child process.
//!
//! stdout and stderr go to `log_path` (appended across restarts, with a marker
//! line per start). The process is killed when the guard drops, also during a
//! test panic. A tiny `sh` watchdog kills the server within ~1 s if the test
//! process itself dies without unwinding (SIGKILL, abort, timeout).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long `stop()` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

pub struct ServerProcess {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
    watchdog: Option<Child>,
    starts: u32,
}

impl ServerProcess {
    /// Spawn `program args...` now, logging to `log_path`.
    pub fn spawn(
        name: &str,
        program: impl Into<PathBuf>,
        args: Vec<String>,
        log_path: impl Into<PathBuf>,
    ) -> Result<Self> {
        let mut p = ServerProcess {
            name: name.to_string(),
            program: program.into(),
            args,
            log_path: log_path.into(),
            child: None,
            watchdog: None,
            starts: 0,
        };
        p.start()?;
        Ok(p)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Start again with the same program and arguments (same port, same
    /// data dir). Fails if it is already running.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("{} is already running (pid {:?})", self.name, self.pid());
        }
        self.reap();
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("{}: open log {}", self.name, self.log_path.display()))?;
        writeln!(
            log,
            "=== e2e: start #{} of {}: {} {}",
            self.starts,
            self.name,
            self.program.display(),
            self.args.join(" ")
        )?;
        let err = log.try_clone()?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("{}: spawn {}", self.name, self.program.display()))?;
        let pid = child.id();
        self.child = Some(child);
        // Watchdog: exits when the server exits; kills the server when we die.
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do \
               if ! kill -0 {me} 2>/dev/null; then kill -9 {pid} 2>/dev/null; exit 0; fi; \
               sleep 1; done",
            me = std::process::id()
        );
        self.watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(())
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Error (with log tail) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!(
                "{} exited unexpectedly ({status}); log tail:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        if self.child.is_none() {
            bail!("{} is not running", self.name);
        }
        Ok(())
    }

    /// Poll `ready` until it returns true, failing early (with the log tail)
    /// if the process exits, and after `timeout`.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not ready");
        loop {
            self.check_alive()?;
            match ready() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready after {timeout:?} ({last}); log tail:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.stop_within(STOP_GRACE)
    }

    pub fn stop_within(&mut self, grace: Duration) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + grace;
            loop {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.reap();
                    bail!(
                        "{} did not stop within {grace:?} of SIGTERM, killed; log tail:\n{}",
                        self.name,
                        self.log_tail(20)
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        self.reap();
        Ok(())
    }

    /// SIGKILL now (a crash: no chance to flush anything). Idempotent.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.reap();
    }

    /// Send an arbitrary signal (e.g. `libc::SIGHUP` to reload, `SIGSTOP`/`SIGCONT` to freeze).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            signal(pid, sig);
        }
    }

    /// Current size of the log file (use with [`Self::log_since`]).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log_path)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Log text written after byte `offset` (e.g. since the last start).
    pub fn log_since(&self, offset: u64) -> String {
        let Ok(mut f) = File::open(&self.log_path) else {
            return String::new();
        };
        let _ = f.seek(SeekFrom::Start(offset));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The last `lines` lines of the log file.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path, lines)
    }

    fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.try_wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("log", &self.log_path)
            .finish()
    }
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Last `lines` lines of a file (reads at most the final 64 KiB).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The lifecycle methods every server wrapper (`Mosquitto`, `VictoriaMetrics`, `Influx1`)
/// offers, written once. Expands inside the wrapper's `impl`; the wrapper needs `port: u16` and
/// `process: ServerProcess` fields. `$ready(process, port, log_offset)` waits until a
/// (re)started server answers; `log_offset` is where this start's log output begins.
macro_rules! server_lifecycle {
    ($name:literal, $ready:expr) => {
        pub fn process(&mut self) -> &mut $crate::process::ServerProcess {
            &mut self.process
        }

        pub fn log_tail(&self, lines: usize) -> String {
            self.process.log_tail(lines)
        }

        /// Clean stop: SIGTERM (mosquitto saves its persistence database), SIGKILL after a bound.
        pub fn stop(&mut self) -> anyhow::Result<()> {
            self.process.stop()
        }

        /// Crash: SIGKILL, nothing saved since the last autosave.
        pub fn kill(&mut self) {
            self.process.kill()
        }

        /// Start again on the same port with the same config and data dir.
        pub fn start_again(&mut self) -> anyhow::Result<()> {
            use anyhow::Context as _;
            $crate::port::ensure_free(self.port).context(concat!($name, " restart"))?;
            let offset = self.process.log_len();
            self.process.start()?;
            let ready: fn(&mut $crate::process::ServerProcess, u16, u64) -> anyhow::Result<()> =
                $ready;
            ready(&mut self.process, self.port, offset)
        }

        /// `stop()` then `start_again()`.
        pub fn restart(&mut self) -> anyhow::Result<()> {
            self.stop()?;
            self.start_again()
        }
    };
}
pub(crate) use server_lifecycle;
