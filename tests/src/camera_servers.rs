//! Servers a pulled camera is fetched from, on loopback:
//! - [`SnapshotServer`]: lighttpd (Debian `lighttpd`) serving files with HTTP Digest
//!   authentication (`mod_auth`, htdigest user file), like an IP camera's snapshot URL.
//! - [`RtspServer`]: GStreamer's RTSP server (Debian `gir1.2-gst-rtsp-server-1.0`), streaming
//!   one JPEG as Motion-JPEG over RTP (`tests/camera/rtsp_server.py`, system Python).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::port::{is_listening, with_free_port};
use crate::process::ServerProcess;
use crate::wait::require_binary;

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// lighttpd with Digest (MD5) auth over every path; files go in [`SnapshotServer::docroot`].
pub struct SnapshotServer {
    port: u16,
    process: ServerProcess,
    dir: TempDir,
}

impl SnapshotServer {
    /// Realm `camera`, one user.
    pub fn start(user: &str, password: &str) -> Result<Self> {
        let bin = require_binary("lighttpd")?;
        with_free_port("lighttpd", |port| {
            let dir = tempfile::Builder::new().prefix("e2e-lighttpd-").tempdir()?;
            let root = dir.path().join("www");
            std::fs::create_dir_all(&root)?;
            let ha1 = md5_hex(format!("{user}:camera:{password}").as_bytes())?;
            let users = dir.path().join("htdigest");
            std::fs::write(&users, format!("{user}:camera:{ha1}\n"))?;
            let conf = dir.path().join("lighttpd.conf");
            std::fs::write(
                &conf,
                format!(
                    r#"server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_auth", "mod_authn_file")
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{users}"
auth.require = ("/" => ("method" => "digest", "realm" => "camera", "require" => "valid-user"))
mimetype.assign = (".jpg" => "image/jpeg")
"#,
                    root = root.display(),
                    users = users.display()
                ),
            )?;
            let mut process = ServerProcess::spawn(
                "lighttpd",
                &bin,
                vec!["-D".into(), "-f".into(), conf.display().to_string()],
                dir.path().join("lighttpd.log"),
            )?;
            process.wait_ready(READY_TIMEOUT, || Ok(is_listening(port)))?;
            Ok(SnapshotServer { port, process, dir })
        })
    }

    pub fn docroot(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// `http://127.0.0.1:PORT/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// `md5sum` of `data` (the htdigest file's HA1), without an MD5 crate in the harness.
fn md5_hex(data: &[u8]) -> Result<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("md5sum")?;
    child.stdin.take().context("stdin")?.write_all(data)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A GStreamer RTSP server streaming `jpeg` at rtsp://127.0.0.1:PORT/cam.
pub struct RtspServer {
    port: u16,
    process: ServerProcess,
    _dir: TempDir,
}

impl RtspServer {
    pub fn start(jpeg: &Path) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("camera/rtsp_server.py");
        // The `gi` bindings are Debian's, for the system Python.
        let python = PathBuf::from("/usr/bin/python3");
        anyhow::ensure!(
            python.is_file(),
            "/usr/bin/python3 missing; run `bash tests/run-all.sh` once to install the test servers"
        );
        let jpeg = jpeg.to_path_buf();
        with_free_port("rtsp server", |port| {
            let dir = tempfile::Builder::new().prefix("e2e-rtsp-").tempdir()?;
            let log = dir.path().join("rtsp.log");
            let mut process = ServerProcess::spawn(
                "rtsp-server",
                &python,
                vec![
                    script.display().to_string(),
                    "--port".into(),
                    port.to_string(),
                    "--jpeg".into(),
                    jpeg.display().to_string(),
                ],
                &log,
            )?;
            let log_path = log.clone();
            process.wait_ready(READY_TIMEOUT, || {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                Ok(text.contains("ready rtsp://") && is_listening(port))
            })?;
            Ok(RtspServer {
                port,
                process,
                _dir: dir,
            })
        })
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: the stream breaks mid-session, as a camera losing power.
    pub fn kill(&mut self) {
        self.process.kill()
    }

    /// Starts again on the same port.
    pub fn start_again(&mut self) -> Result<()> {
        crate::port::ensure_free(self.port)?;
        let offset = self.process.log_len();
        self.process.start()?;
        let port = self.port;
        let log = self.process.log_path().to_path_buf();
        self.process.wait_ready(READY_TIMEOUT, || {
            let text = std::fs::read(&log).unwrap_or_default();
            let since = text.get(offset as usize..).unwrap_or_default();
            Ok(String::from_utf8_lossy(since).contains("ready rtsp://") && is_listening(port))
        })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}
