//! `[[cameras.sources]]`: cameras the gateway fetches frames from itself.
//!
//! ```toml
//! [cameras]
//! ffmpeg = "ffmpeg"              # the RTSP reader (a child process per RTSP source)
//! source_retry_min_ms = 1000     # back-off after a failed fetch or a lost stream ...
//! source_retry_max_ms = 60000    # ... doubling (full jitter) up to this
//!
//! [[cameras.sources]]            # an HTTP snapshot URL (NVR, ONVIF snapshot URI)
//! site = "street-9"
//! camera = "cam-12"
//! url = "http://10.0.0.12/ISAPI/Streaming/channels/101/picture"
//! interval_s = 5
//! username = "viewer"
//! password = "..."
//! auth = "auto"                  # auto (answer the server's challenge) | basic | digest
//!
//! [[cameras.sources]]            # an RTSP stream: one frame every interval_s through ffmpeg
//! site = "street-9"
//! camera = "cam-13"
//! url = "rtsp://10.0.0.13:554/Streaming/Channels/102"
//! interval_s = 10
//! rtsp_transport = "tcp"
//! ```

use crate::config_error::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a snapshot source authenticates (RTSP sources leave it to ffmpeg, which answers both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullAuth {
    /// Ask without credentials and answer the challenge the camera names (Digest preferred).
    #[default]
    Auto,
    /// Send Basic credentials with every request (cleartext over `http://`).
    Basic,
    /// Only ever answer a Digest challenge; a camera that asks for Basic is an error.
    Digest,
}

/// RTSP media transport; TCP (interleaved) passes NAT and firewalls, UDP loses frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

/// One pulled camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSource {
    pub site: String,
    pub camera: String,
    /// `http(s)://` a snapshot URL answering one JPEG; `rtsp(s)://` a stream.
    pub url: String,
    /// One frame every this many seconds.
    #[serde(default = "default_interval_s")]
    pub interval_s: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub auth: PullAuth,
    /// One snapshot request, or connecting to a stream, may take this long.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub rtsp_transport: RtspTransport,
}

fn default_interval_s() -> u64 {
    5
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// What a source's URL says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Snapshot,
    Rtsp,
}

/// Larger snapshots are refused (a camera answering with a video or an error page by mistake).
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

impl PullSource {
    pub(crate) fn kind(&self) -> Option<SourceKind> {
        let scheme = self.url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "http" | "https" => Some(SourceKind::Snapshot),
            "rtsp" | "rtsps" => Some(SourceKind::Rtsp),
            _ => None,
        }
    }

    /// The URL without credentials, for logs, metrics and the dashboard.
    pub(crate) fn redacted_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => "(unparsable url)".into(),
        }
    }

    /// Checks one entry; `key` is its path, e.g. `cameras.sources[2]`.
    pub(crate) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (k, v) in [("site", &self.site), ("camera", &self.camera)] {
            if v.trim().is_empty() || v.contains('/') {
                return Err(invalid(
                    format!("{key}.{k}"),
                    "must be non-empty, without '/'",
                ));
            }
        }
        let parsed = url::Url::parse(&self.url)
            .map_err(|e| invalid(format!("{key}.url"), format!("not a URL: {e}")))?;
        if self.kind().is_none() {
            return Err(invalid(
                format!("{key}.url"),
                format!(
                    "scheme `{}` is not http, https, rtsp or rtsps",
                    parsed.scheme()
                ),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("{key}.url"), "has no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                format!("{key}.url"),
                "holds credentials: use `username` and `password` (kept out of logs)",
            ));
        }
        if !(1..=3600).contains(&self.interval_s) {
            return Err(invalid(format!("{key}.interval_s"), "must be in 1..=3600"));
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err(invalid(
                format!("{key}.timeout_ms"),
                "must be in 100..=120000",
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid(format!("{key}.password"), "set without `username`"));
        }
        if self.auth != PullAuth::Auto && self.username.is_none() {
            return Err(invalid(format!("{key}.auth"), "needs `username`"));
        }
        if self.kind() == Some(SourceKind::Rtsp) && self.auth != PullAuth::Auto {
            return Err(invalid(
                format!("{key}.auth"),
                "only for http(s) snapshots; ffmpeg answers an RTSP camera's challenge itself",
            ));
        }
        Ok(())
    }
}

/// Checks every source and that no camera is pulled twice.
pub(crate) fn validate_sources(sources: &[PullSource]) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        let key = format!("cameras.sources[{i}]");
        s.validate(&key)?;
        if !seen.insert((s.site.as_str(), s.camera.as_str())) {
            return Err(invalid(
                format!("{key}.camera"),
                format!("{}/{} is pulled twice", s.site, s.camera),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn sources_load_with_defaults_and_bad_keys_are_named() {
        let c = Config::from_toml(
            r#"
            [[cameras.sources]]
            site = "s1"
            camera = "c1"
            url = "http://127.0.0.1:9/snap.jpg"
            username = "u"
            password = "p"
            auth = "digest"
            [[cameras.sources]]
            site = "s1"
            camera = "c2"
            url = "rtsp://127.0.0.1:8554/cam"
            interval_s = 10
            "#,
        )
        .expect("load");
        let s = &c.cameras.sources;
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind(), Some(SourceKind::Snapshot));
        assert_eq!(s[0].auth, PullAuth::Digest);
        assert_eq!(s[0].interval_s, 5);
        assert_eq!(s[1].kind(), Some(SourceKind::Rtsp));
        assert_eq!(s[1].rtsp_transport, RtspTransport::Tcp);

        let bad = |body: &str| {
            Config::from_toml(&format!(
                "[[cameras.sources]]\nsite = \"s1\"\ncamera = \"c1\"\n{body}\n"
            ))
            .expect_err(body)
            .to_string()
        };
        let e = bad("url = \"ftp://h/x\"");
        assert!(
            e.contains("cameras.sources[0].url") && e.contains("ftp"),
            "{e}"
        );
        let e = bad("url = \"http://u:secret@h/x\"");
        assert!(
            e.contains("cameras.sources[0].url") && !e.contains("secret"),
            "{e}"
        );
        let e = bad("url = \"http://h/x\"\ninterval_s = 0");
        assert!(e.contains("cameras.sources[0].interval_s"), "{e}");
        let e = bad("url = \"http://h/x\"\nauth = \"digest\"");
        assert!(e.contains("cameras.sources[0].auth"), "{e}");
        let e = bad("url = \"rtsp://h/x\"\nusername = \"u\"\nauth = \"basic\"");
        assert!(e.contains("cameras.sources[0].auth"), "{e}");
        let e = bad("url = \"http://h/x\"\nintervall_s = 3");
        assert!(e.contains("intervall_s"), "{e}");
        let e = Config::from_toml(
            "[[cameras.sources]]\nsite = \"s\"\ncamera = \"c\"\nurl = \"http://h/a\"\n\
             [[cameras.sources]]\nsite = \"s\"\ncamera = \"c\"\nurl = \"http://h/b\"\n",
        )
        .expect_err("twice")
        .to_string();
        assert!(e.contains("cameras.sources[1].camera"), "{e}");
    }

    #[test]
    fn redacted_url_drops_credentials() {
        let s = PullSource {
            site: "s".into(),
            camera: "c".into(),
            url: "rtsp://admin:pw@10.1.2.3:554/live".into(),
            interval_s: 5,
            username: None,
            password: None,
            auth: PullAuth::Auto,
            timeout_ms: 1000,
            rtsp_transport: RtspTransport::Tcp,
        };
        let r = s.redacted_url();
        assert!(!r.contains("pw") && !r.contains("admin"), "{r}");
        assert!(r.starts_with("rtsp://10.1.2.3:554/live"), "{r}");
    }
}
