//! An RTSP stream read through ffmpeg as a child process: ffmpeg connects, decodes, keeps one
//! frame every `interval_s` (`-vf fps=1/N`) and writes it as JPEG to its stdout, which
//! [`JpegSplitter`] cuts into frames.
//!
//! Why ffmpeg and not an RTSP crate: cameras speak H.264/H.265 (and MJPEG) over RTSP with
//! every vendor quirk; ffmpeg is the reference client and decoder, packaged by Debian, and a
//! child process keeps a decoder crash out of the gateway. The price: the credentials are in
//! ffmpeg's command line (visible in `ps` to users of the same machine), and they are scrubbed
//! from anything ffmpeg prints before it reaches our logs.
//!
//! The child is killed when the reader is closed or dropped (`kill_on_drop`), so neither a
//! reconnect nor shutdown leaves an ffmpeg behind. A stream that stays open without frames for
//! [`RtspReader::stall_after`] counts as lost.

use super::PullError;
use super::config::{MAX_FRAME_BYTES, PullSource, RtspTransport};
use super::jpeg_stream::JpegSplitter;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// The last lines ffmpeg wrote on stderr, bounded.
const STDERR_KEEP: usize = 2048;

pub(crate) struct RtspReader {
    child: Child,
    stdout: ChildStdout,
    splitter: JpegSplitter,
    stderr: Arc<Mutex<String>>,
    stall_after: Duration,
}

/// The URL ffmpeg gets: the configured one with the credentials put in.
fn url_with_credentials(src: &PullSource) -> Result<String, PullError> {
    let mut url = url::Url::parse(&src.url).map_err(|e| PullError::Spawn(e.to_string()))?;
    if let Some(user) = &src.username {
        url.set_username(user)
            .map_err(|()| PullError::Spawn("the URL cannot carry a username".into()))?;
        url.set_password(src.password.as_deref())
            .map_err(|()| PullError::Spawn("the URL cannot carry a password".into()))?;
    }
    Ok(url.to_string())
}

/// ffmpeg's arguments for `src`.
pub(crate) fn ffmpeg_args(src: &PullSource, url: &str) -> Vec<String> {
    let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .map(String::from)
        .to_vec();
    let transport = match src.rtsp_transport {
        RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
    };
    a.extend([
        "-rtsp_transport".into(),
        transport.into(),
        // Socket I/O timeout, in microseconds.
        "-timeout".into(),
        (src.timeout_ms * 1000).to_string(),
        "-i".into(),
        url.into(),
        "-an".into(),
        "-sn".into(),
        "-dn".into(),
        "-vf".into(),
        format!("fps=1/{}", src.interval_s),
        "-f".into(),
        "image2pipe".into(),
        "-c:v".into(),
        "mjpeg".into(),
        "-q:v".into(),
        "3".into(),
        "pipe:1".into(),
    ]);
    a
}

impl RtspReader {
    /// Starts ffmpeg on `src`'s stream.
    pub(crate) fn open(src: &PullSource, ffmpeg: &str) -> Result<RtspReader, PullError> {
        let url = url_with_credentials(src)?;
        let mut child = Command::new(ffmpeg)
            .args(ffmpeg_args(src, &url))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| PullError::Spawn(format!("`{ffmpeg}`: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| PullError::Spawn("no stdout".into()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let keep = stderr.clone();
            let secrets = secrets_of(src, &url);
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = scrub(&line, &secrets);
                    tracing::debug!(target: "ffmpeg", "{line}");
                    let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                    k.push_str(&line);
                    k.push('\n');
                    if k.len() > STDERR_KEEP {
                        let cut = k.len() - STDERR_KEEP;
                        let cut = (cut..k.len()).find(|i| k.is_char_boundary(*i)).unwrap_or(0);
                        k.drain(..cut);
                    }
                }
            });
        }
        Ok(RtspReader {
            child,
            stdout,
            splitter: JpegSplitter::new(MAX_FRAME_BYTES),
            stderr,
            stall_after: Self::stall_after(src),
        })
    }

    /// No frame for this long: the stream is lost (ffmpeg may hang on a dead peer).
    pub(crate) fn stall_after(src: &PullSource) -> Duration {
        Duration::from_secs(src.interval_s * 2 + 5) + Duration::from_millis(src.timeout_ms)
    }

    /// The next frame; an error means the stream is over (close the reader and reconnect).
    pub(crate) async fn next_frame(&mut self) -> Result<Vec<u8>, PullError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.splitter.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(PullError::Stream(e.to_string())),
            }
            let read = tokio::time::timeout(self.stall_after, self.stdout.read(&mut buf)).await;
            match read {
                Err(_) => return Err(PullError::Stalled(self.stall_after.as_secs())),
                Ok(Err(e)) => return Err(PullError::Stream(e.to_string())),
                Ok(Ok(0)) => {
                    // Let stderr's reader catch up with ffmpeg's last words.
                    let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait())
                        .await
                        .ok()
                        .and_then(Result::ok);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let said = self.last_words();
                    return Err(PullError::Stream(match status {
                        Some(s) => format!("ffmpeg exited ({s}): {said}"),
                        None => format!("ffmpeg closed its output: {said}"),
                    }));
                }
                Ok(Ok(n)) => self.splitter.push(&buf[..n]),
            }
        }
    }

    fn last_words(&self) -> String {
        let k = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        k.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(nothing on stderr)")
            .to_string()
    }

    /// Kills ffmpeg and reaps it.
    pub(crate) async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Strings that must not reach a log: the password and the URL that carries it.
fn secrets_of(src: &PullSource, url_with_creds: &str) -> Vec<(String, String)> {
    let mut s = Vec::new();
    if src.username.is_some() {
        s.push((url_with_creds.to_string(), src.redacted_url()));
    }
    if let Some(p) = src.password.as_deref().filter(|p| !p.is_empty()) {
        s.push((p.to_string(), "***".into()));
        // ffmpeg may print the percent-encoded form.
        if let Some(enc) = url::Url::parse(url_with_creds)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
            .filter(|enc| enc != p)
        {
            s.push((enc, "***".into()));
        }
    }
    s
}

fn scrub(line: &str, secrets: &[(String, String)]) -> String {
    secrets.iter().fold(line.to_string(), |l, (secret, with)| {
        l.replace(secret, with)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::pull::config::PullAuth;

    fn src() -> PullSource {
        PullSource {
            site: "s".into(),
            camera: "c".into(),
            url: "rtsp://10.0.0.5:554/live/ch1".into(),
            interval_s: 4,
            username: Some("admin".into()),
            password: Some("p@ss word".into()),
            auth: PullAuth::Auto,
            timeout_ms: 3000,
            rtsp_transport: RtspTransport::Tcp,
        }
    }

    #[test]
    fn ffmpeg_gets_credentials_logs_do_not() {
        let s = src();
        let url = url_with_credentials(&s).unwrap();
        assert!(
            url.starts_with("rtsp://admin:p%40ss%20word@10.0.0.5:554/"),
            "{url}"
        );
        let args = ffmpeg_args(&s, &url);
        let at = |k: &str| args[args.iter().position(|a| a == k).unwrap() + 1].clone();
        assert_eq!(at("-i"), url);
        assert_eq!(at("-vf"), "fps=1/4");
        assert_eq!(at("-rtsp_transport"), "tcp");
        assert_eq!(at("-timeout"), "3000000");
        let secrets = secrets_of(&s, &url);
        let line = format!("[rtsp @ 0x1] method DESCRIBE failed: 401 {url} p@ss word");
        let clean = scrub(&line, &secrets);
        assert!(
            !clean.contains("p@ss") && !clean.contains("p%40ss"),
            "{clean}"
        );
        assert!(clean.contains("rtsp://10.0.0.5:554/live/ch1"), "{clean}");
    }

    #[tokio::test]
    async fn a_missing_ffmpeg_is_a_spawn_error() {
        let e = RtspReader::open(&src(), "/nonexistent/ffmpeg-street22")
            .err()
            .expect("no such program");
        assert_eq!(e.reason(), "spawn");
    }
}
