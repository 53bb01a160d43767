//! Writes batches of line protocol to InfluxDB over HTTP, and never loses a line.
//!
//! * API v2: `POST {url}/api/v2/write?org=&bucket=&precision=ms`, `Authorization: Token ..`
//!   (`org` and `bucket` are both required).
//! * API v1 (InfluxDB 1.x, VictoriaMetrics, the v1-compatible endpoint of 2.x):
//!   `POST {url}/write?db=&precision=ms`, HTTP basic auth when `username` is set (kept out of the
//!   URL so credentials never reach logs or error messages), else `Authorization: Token ..` when
//!   a token is set.
//! * `Content-Encoding: gzip` when `gzip = true`.
//!
//! Outcomes, per request:
//! * 2xx: the lines are written.
//! * 413: the batch is split in halves, recursively; a single line that is still too large goes to
//!   the dead-letter file.
//! * 400 / 422: the bad lines are found by bisection (halve, retry each half) so the good lines of
//!   the batch still land; a single rejected line goes to the dead-letter file
//!   (`rejected-lines.lp`, appended after a `#` comment with the time and the server's message,
//!   fsynced). InfluxDB 1.x answers 400 after a *partial* write (it stores the good lines of the
//!   request); re-sending them during bisection is harmless because points are idempotent.
//! * connect errors, timeouts, 408, 429, 5xx (503 included): retried forever (until the
//!   cancellation token fires) with full-jitter exponential back-off between `retry_min_ms` and
//!   `retry_max_ms`, or after the server's `Retry-After` (seconds or HTTP date) when present.
//! * 401 / 403 / 404 and any other status: a configuration problem (token, credentials, org,
//!   bucket, database, URL). Logged as an error and retried with back-off: data is never dropped
//!   because a token is wrong.
//!
//! # Why not the `influxdb2` crate
//!
//! The design pins `influxdb2` for the v2 path and its `write_line_protocol_with_precision` does
//! take a raw body, but it cannot do what this writer needs:
//! * its error (`RequestError::Http { status, text }`) drops the response headers, so
//!   `Retry-After` on 429/503 cannot be honoured;
//! * the variant that accepts extra headers is private, so `Content-Encoding: gzip` cannot be set
//!   on a pre-compressed body;
//! * it has no v1 `/write?db=` endpoint (InfluxDB 1.x, the only real server available to our
//!   tests, and VictoriaMetrics' primary endpoint), so reqwest would be needed anyway;
//! * it would add a second HTTP stack configuration (its own reqwest features) for one POST.
//!
//! So both paths use `reqwest` directly; the request is a single POST either way.

use super::SinkError;
use crate::backoff::{Backoff, Jitter};
use crate::config_error::{ConfigError, invalid};
use crate::metrics::{Metrics, Reason};
use crate::outbox::Records;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use std::fmt;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Which InfluxDB write API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// `/api/v2/write?org=&bucket=` with `Authorization: Token`.
    V2,
    /// `/write?db=` for InfluxDB 1.x and compatible servers.
    V1,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    pub url: String,
    pub api: InfluxApi,
    pub org: String,
    pub bucket: String,
    pub token: Option<String>,
    pub database: String,
    /// v1 basic credentials, when the server requires them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Prepended to every measurement name (e.g. `city_`).
    pub measurement_prefix: String,
    /// Which line-protocol parser the server has: `influxdb` (InfluxDB 1.x/2.x, default) or
    /// `victoriametrics` (escapes backslashes and newlines differently; see `sink::line_protocol`).
    pub dialect: crate::sink::line_protocol::Dialect,
    pub batch_max_lines: usize,
    pub batch_max_bytes: usize,
    /// A partial batch is written after this long (sooner once the intake goes quiet; see
    /// `sink::deliver`).
    pub flush_interval_ms: u64,
    /// Batches on their way to the database at once, committed in order (issue 24: one at a
    /// time, the sink's requests and cursor commits took as long as the whole intake). Memory:
    /// up to this many batches of `batch_max_bytes`; 2 by default (4 held ~10 MB more RSS in
    /// the 1,000,000-message backlog check and was no faster there).
    pub max_in_flight: usize,
    pub gzip: bool,
    pub timeout_ms: u64,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: "http://127.0.0.1:8086".into(),
            api: InfluxApi::V2,
            org: "city".into(),
            bucket: "enforcement".into(),
            token: None,
            database: "enforcement".into(),
            username: None,
            password: None,
            measurement_prefix: String::new(),
            dialect: Default::default(),
            batch_max_lines: 5_000,
            batch_max_bytes: 1024 * 1024,
            flush_interval_ms: 1_000,
            max_in_flight: 2,
            gzip: true,
            timeout_ms: 10_000,
            retry_min_ms: 200,
            retry_max_ms: 30_000,
        }
    }
}

impl InfluxConfig {
    /// Checks what serde cannot; keys are named from the root (`influx.*`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let i = self;
        let u = url::Url::parse(&i.url).map_err(|e| invalid("influx.url", e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(invalid("influx.url", "must be http:// or https://"));
        }
        match i.api {
            InfluxApi::V2 => {
                if i.bucket.is_empty() {
                    return Err(invalid("influx.bucket", "required with api = \"v2\""));
                }
                if i.org.is_empty() {
                    return Err(invalid("influx.org", "required with api = \"v2\""));
                }
            }
            InfluxApi::V1 if i.database.is_empty() => {
                return Err(invalid("influx.database", "required with api = \"v1\""));
            }
            InfluxApi::V1 => {}
        }
        if i.batch_max_lines == 0 {
            return Err(invalid("influx.batch_max_lines", "must be at least 1"));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&i.max_in_flight) {
            return Err(invalid(
                "influx.max_in_flight",
                format!("must be 1..={MAX_IN_FLIGHT}"),
            ));
        }
        if i.batch_max_bytes < 1024 {
            return Err(invalid("influx.batch_max_bytes", "must be at least 1024"));
        }
        if i.retry_min_ms == 0 || i.retry_min_ms > i.retry_max_ms {
            return Err(invalid(
                "influx.retry_min_ms",
                "must be > 0 and <= retry_max_ms",
            ));
        }
        Ok(())
    }
}

/// Upper bound for `influx.max_in_flight`: each batch in flight may hold `batch_max_bytes`.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// Name of the dead-letter file inside the dead-letter directory.
pub(crate) const DEAD_LETTER_FILE: &str = "rejected-lines.lp";

/// A server's `Retry-After` is honoured up to this long.
pub(crate) const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// What happened to one `write_batch` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Lines accepted by the database.
    pub written: usize,
    /// Lines refused by the database and moved to the dead-letter file.
    pub dead_lettered: usize,
    /// HTTP requests sent (first attempts, retries and split halves).
    pub requests: usize,
    /// Requests that failed and were retried after a delay.
    pub retries: usize,
    /// Times a batch was halved (413, or bisection after 400/422).
    pub splits: usize,
}

/// Parses a `Retry-After` value: delay-seconds (`"120"`) or an HTTP date, relative to `now`.
/// A date in the past means "now" (zero); anything unparsable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them rather than ignore the hint.
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The result of one HTTP request.
#[derive(Debug)]
enum Outcome {
    Accepted,
    /// 413: the body is too large.
    TooLarge(String),
    /// 400 / 422: at least one line is refused.
    Rejected {
        status: u16,
        message: String,
    },
    /// Anything worth retrying unchanged (including configuration errors).
    Retry {
        reason: &'static str,
        status: Option<u16>,
        message: String,
        retry_after: Option<Duration>,
    },
}

enum Auth {
    None,
    /// `Authorization` header value (marked sensitive).
    Header(HeaderValue),
    Basic {
        username: String,
        password: Option<String>,
    },
}

/// Writes line-protocol batches to InfluxDB; see the module documentation.
pub struct InfluxWriter {
    client: reqwest::Client,
    api: InfluxApi,
    write_url: Url,
    ping_url: Url,
    auth: Auth,
    gzip: bool,
    backoff: Backoff,
    dead_letter_path: PathBuf,
    dead_letter_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for InfluxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials.
        f.debug_struct("InfluxWriter")
            .field("api", &self.api)
            .field("write_url", &self.write_url.as_str())
            .field("gzip", &self.gzip)
            .field("backoff", &self.backoff)
            .field("dead_letter_path", &self.dead_letter_path)
            .finish_non_exhaustive()
    }
}

impl InfluxWriter {
    /// Checks the configuration and prepares the HTTP client; creates `dead_letter_dir`.
    pub fn new(
        cfg: &InfluxConfig,
        dead_letter_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SinkError> {
        let base = Url::parse(cfg.url.trim())
            .map_err(|e| SinkError::Config(format!("influx.url {:?}: {e}", cfg.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SinkError::Config(format!(
                "influx.url {:?}: scheme must be http or https",
                cfg.url
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(SinkError::Config(
                "influx.url must not contain credentials: use influx.token or influx.username/password"
                    .into(),
            ));
        }
        let endpoint = |path: &str| -> Result<Url, SinkError> {
            let mut u = base.clone();
            let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
            u.set_path(&joined);
            u.set_query(None);
            Ok(u)
        };
        let mut write_url;
        match cfg.api {
            InfluxApi::V2 => {
                // Both are required: InfluxDB 2.x answers 400 without an org, and a request-level
                // 400 would be taken for bad lines and bisected into the dead-letter file.
                for (key, value) in [("bucket", &cfg.bucket), ("org", &cfg.org)] {
                    if value.trim().is_empty() {
                        return Err(SinkError::Config(format!(
                            "influx.{key} is empty (api = \"v2\")"
                        )));
                    }
                }
                write_url = endpoint("api/v2/write")?;
                write_url
                    .query_pairs_mut()
                    .append_pair("org", &cfg.org)
                    .append_pair("bucket", &cfg.bucket)
                    .append_pair("precision", "ms");
            }
            InfluxApi::V1 => {
                if cfg.database.trim().is_empty() {
                    return Err(SinkError::Config(
                        "influx.database is empty (api = \"v1\")".into(),
                    ));
                }
                write_url = endpoint("write")?;
                write_url
                    .query_pairs_mut()
                    .append_pair("db", &cfg.database)
                    .append_pair("precision", "ms");
            }
        }
        let ping_url = endpoint("ping")?;

        let token_header = |token: &str| -> Result<HeaderValue, SinkError> {
            let mut v =
                HeaderValue::from_str(&format!("Token {}", token.trim())).map_err(|_| {
                    SinkError::Config(
                        "influx.token contains characters not allowed in a header".into(),
                    )
                })?;
            v.set_sensitive(true);
            Ok(v)
        };
        let token = cfg.token.as_deref().filter(|t| !t.trim().is_empty());
        let auth = match (cfg.api, cfg.username.as_deref(), token) {
            (InfluxApi::V1, Some(user), _) if !user.is_empty() => Auth::Basic {
                username: user.to_string(),
                password: cfg.password.clone(),
            },
            (_, _, Some(t)) => Auth::Header(token_header(t)?),
            _ => Auth::None,
        };
        if matches!(auth, Auth::None) && cfg.api == InfluxApi::V2 {
            tracing::warn!(
                "influx.token is not set: InfluxDB v2 will answer 401 (fine for VictoriaMetrics)"
            );
        }

        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("enforcement-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::Client(e.to_string()))?;

        std::fs::create_dir_all(dead_letter_dir).map_err(|source| SinkError::DeadLetter {
            path: dead_letter_dir.to_path_buf(),
            source,
        })?;

        Ok(InfluxWriter {
            client,
            api: cfg.api,
            write_url,
            ping_url,
            auth,
            gzip: cfg.gzip,
            backoff: Backoff::from_millis(cfg.retry_min_ms, cfg.retry_max_ms)
                .with_jitter(Jitter::Full),
            dead_letter_path: dead_letter_dir.join(DEAD_LETTER_FILE),
            dead_letter_lock: tokio::sync::Mutex::new(()),
            metrics,
        })
    }

    /// Where rejected lines are appended.
    pub fn dead_letter_path(&self) -> &Path {
        &self.dead_letter_path
    }

    /// Health probe: `GET {url}/ping` (InfluxDB 1.x and 2.x, VictoriaMetrics) answers 2xx.
    pub async fn ping(&self) -> Result<(), SinkError> {
        let resp = self
            .client
            .get(self.ping_url.clone())
            .send()
            .await
            .map_err(|e| SinkError::Unavailable(e.without_url().to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(SinkError::Unavailable(format!(
                "/ping answered {}",
                resp.status()
            )))
        }
    }

    /// Writes `lines` (each one line of line protocol, without newline). Returns `Ok` only when
    /// every line was accepted by the database or moved to the dead-letter file; retries
    /// server and network failures until then, or returns `Err(SinkError::Cancelled)` when
    /// `cancel` fires first (lines already written stay written; the caller re-sends the batch,
    /// which is harmless because points are idempotent).
    pub async fn write_batch(
        &self,
        lines: &[Vec<u8>],
        cancel: &CancellationToken,
    ) -> Result<WriteReport, SinkError> {
        self.write_records(&lines.iter().collect(), cancel).await
    }

    /// [`InfluxWriter::write_batch`] for records as the outbox reads them: one buffer, each
    /// line followed by a newline, so a request body is one copy (issue 24).
    pub(crate) async fn write_records(
        &self,
        lines: &Records,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, SinkError> {
        let mut report = WriteReport::default();
        // Stack of line ranges still to deliver; the top is sent next, so lines keep their order.
        let mut todo: Vec<Range<usize>> = Vec::new();
        if !lines.is_empty() {
            todo.push(0..lines.len());
        }
        while let Some(range) = todo.pop() {
            let chunk = range.clone();
            let (body, gzip) = self.body(lines.joined(range.clone()));
            let mut attempt: u32 = 0;
            loop {
                if cancel.is_cancelled() {
                    return Err(SinkError::Cancelled);
                }
                report.requests += 1;
                let started = Instant::now();
                let outcome = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(SinkError::Cancelled),
                    outcome = self.send(body.clone(), gzip) => outcome,
                };
                match outcome {
                    Outcome::Accepted => {
                        self.metrics
                            .sink_write_latency_seconds
                            .observe(started.elapsed().as_secs_f64());
                        self.metrics.sink_batches_total.inc();
                        self.metrics
                            .sink_points_written_total
                            .inc_by(chunk.len() as u64);
                        report.written += chunk.len();
                        if attempt > 0 {
                            tracing::info!(
                                lines = chunk.len(),
                                attempt,
                                "influx write succeeded after retries"
                            );
                        }
                        break;
                    }
                    Outcome::TooLarge(message) | Outcome::Rejected { message, .. }
                        if chunk.len() > 1 =>
                    {
                        let mid = range.start + chunk.len() / 2;
                        tracing::debug!(
                            lines = chunk.len(),
                            error = %message,
                            "influx refused the batch; splitting it in halves"
                        );
                        todo.push(mid..range.end);
                        todo.push(range.start..mid);
                        self.metrics.sink_splits_total.inc();
                        report.splits += 1;
                        break;
                    }
                    Outcome::TooLarge(message) => {
                        self.dead_letter(lines.joined(range.start..range.start + 1), 413, &message)
                            .await?;
                        report.dead_lettered += 1;
                        break;
                    }
                    Outcome::Rejected { status, message } => {
                        self.dead_letter(
                            lines.joined(range.start..range.start + 1),
                            status,
                            &message,
                        )
                        .await?;
                        report.dead_lettered += 1;
                        break;
                    }
                    Outcome::Retry {
                        reason,
                        status,
                        message,
                        retry_after,
                    } => {
                        let delay = match retry_after {
                            Some(d) => d.clamp(self.backoff.min(), RETRY_AFTER_CAP),
                            None => self.backoff.delay(attempt),
                        };
                        self.metrics
                            .sink_retries_total
                            .get_or_create(&Reason::of(reason))
                            .inc();
                        report.retries += 1;
                        self.log_retry(reason, status, &message, attempt, delay);
                        attempt = attempt.saturating_add(1);
                        tokio::select! {
                            biased;
                            _ = cancel.cancelled() => return Err(SinkError::Cancelled),
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    fn log_retry(
        &self,
        reason: &str,
        status: Option<u16>,
        message: &str,
        attempt: u32,
        delay: Duration,
    ) {
        let delay_ms = delay.as_millis() as u64;
        match status {
            Some(401 | 403) => tracing::error!(
                status,
                error = %message,
                attempt,
                delay_ms,
                "influx refused our credentials: check influx.token (v2) or influx.username/password \
                 (v1) and their write permission; retrying, no data is dropped"
            ),
            Some(404) => tracing::error!(
                status,
                error = %message,
                attempt,
                delay_ms,
                url = %self.write_url,
                "influx write endpoint, org, bucket or database not found: check influx.url, \
                 influx.api, influx.org/bucket or influx.database; retrying, no data is dropped"
            ),
            _ => tracing::warn!(
                reason,
                status,
                error = %message,
                attempt,
                delay_ms,
                "influx write failed; retrying"
            ),
        }
    }

    /// The body for lines already joined with `\n` (`Records::joined`); gzipped when
    /// configured (the flag says whether it is).
    fn body(&self, joined: &[u8]) -> (Bytes, bool) {
        let len = joined.len();
        if !self.gzip {
            return (Bytes::copy_from_slice(joined), false);
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(len / 4 + 64),
            flate2::Compression::fast(),
        );
        match enc.write_all(joined).and_then(|()| enc.finish()) {
            Ok(gz) => (Bytes::from(gz), true),
            // Cannot happen when writing into a Vec; never send a truncated body anyway.
            Err(e) => {
                tracing::warn!(error = %e, "gzip failed; sending the batch uncompressed");
                (Bytes::copy_from_slice(joined), false)
            }
        }
    }

    async fn send(&self, body: Bytes, gzip: bool) -> Outcome {
        let mut req = self
            .client
            .post(self.write_url.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        if gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Header(v) => req.header(AUTHORIZATION, v.clone()),
            Auth::Basic { username, password } => req.basic_auth(username, password.as_deref()),
        };
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                let reason = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return Outcome::Retry {
                    reason,
                    status: None,
                    message: error_chain(&e.without_url()),
                    retry_after: None,
                };
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Outcome::Accepted;
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = match resp.text().await {
            Ok(text) => server_message(&text),
            Err(e) => format!("(body unreadable: {})", e.without_url()),
        };
        let reason = match status {
            413 => return Outcome::TooLarge(message),
            400 | 422 => return Outcome::Rejected { status, message },
            429 => "http_429",
            503 => "http_503",
            500..=599 => "http_5xx",
            408 => "timeout",
            401 | 403 => "auth",
            404 => "not_found",
            _ => "http_other",
        };
        Outcome::Retry {
            reason,
            status: Some(status),
            message,
            retry_after,
        }
    }

    /// Appends one rejected line to the dead-letter file after a comment, and fsyncs it.
    async fn dead_letter(&self, line: &[u8], status: u16, message: &str) -> Result<(), SinkError> {
        let _guard = self.dead_letter_lock.lock().await;
        let now = SystemTime::now();
        let unix_ms = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut record = format!(
            "# rejected {} (unix_ms={unix_ms}) status={status}: {}\n",
            httpdate::fmt_http_date(now),
            one_line(message)
        )
        .into_bytes();
        record.extend_from_slice(line);
        record.push(b'\n');
        let path = self.dead_letter_path.clone();
        let result = tokio::task::spawn_blocking({
            let path = path.clone();
            move || -> std::io::Result<()> {
                let created = !path.exists();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                f.write_all(&record)?;
                f.sync_data()?;
                if created && let Some(dir) = path.parent() {
                    // Make the new directory entry durable too.
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        result.map_err(|source| SinkError::DeadLetter {
            path: path.clone(),
            source,
        })?;
        self.metrics.sink_rejected_lines_total.inc();
        tracing::warn!(
            status,
            error = %message,
            file = %path.display(),
            "influx refused a line; moved it to the dead-letter file"
        );
        Ok(())
    }
}

/// `{"error": ".."}` (1.x) or `{"message": ".."}` (2.x) when the body is such JSON, else the text;
/// at most 1,000 characters.
fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_string))
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    match text.char_indices().nth(1000) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Keeps a message on one line (the dead-letter comment must not break the file).
fn one_line(s: &str) -> String {
    s.replace('\r', "\\r").replace('\n', "\\n")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        // The obsolete RFC 850 and asctime forms are accepted too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(r#"{"error":"unable to parse 'x'"}"#),
            "unable to parse 'x'"
        );
        assert_eq!(
            server_message(r#"{"code":"invalid","message":"bad line"}"#),
            "bad line"
        );
        assert_eq!(server_message("  plain text\n"), "plain text");
        assert_eq!(server_message(&"é".repeat(2000)).chars().count(), 1001);
        assert_eq!(one_line("a\nb\r"), "a\\nb\\r");
    }

    #[test]
    fn writer_and_its_futures_are_send() {
        fn is_send_sync<T: Send + Sync>(_: &T) {}
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let w = InfluxWriter::new(
            &cfg(InfluxApi::V2, "http://127.0.0.1:9"),
            dir.path(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        is_send_sync(&w);
        let cancel = CancellationToken::new();
        let lines = vec![b"m f=1".to_vec()];
        is_send(&w.write_batch(&lines, &cancel));
        let records: Records = lines.iter().collect();
        is_send(&w.write_records(&records, &cancel));
        is_send(&w.ping());
    }

    fn cfg(api: InfluxApi, url: &str) -> InfluxConfig {
        InfluxConfig {
            url: url.into(),
            api,
            token: Some("secret-token".into()),
            ..InfluxConfig::default()
        }
    }

    #[test]
    fn urls_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let w = InfluxWriter::new(&cfg(InfluxApi::V2, "http://h:8086/"), dir.path(), m.clone())
            .unwrap();
        assert_eq!(
            w.write_url.as_str(),
            "http://h:8086/api/v2/write?org=city&bucket=enforcement&precision=ms"
        );
        assert_eq!(w.ping_url.as_str(), "http://h:8086/ping");
        assert!(!format!("{w:?}").contains("secret-token"));

        let mut c = cfg(InfluxApi::V1, "https://h/prefix");
        c.database = "my db&x".into();
        let w = InfluxWriter::new(&c, dir.path(), m.clone()).unwrap();
        assert_eq!(
            w.write_url.as_str(),
            "https://h/prefix/write?db=my+db%26x&precision=ms"
        );

        let mut v2 = cfg(InfluxApi::V2, "http://h");
        v2.org = " ".into();
        assert!(matches!(
            InfluxWriter::new(&v2, dir.path(), m.clone()),
            Err(SinkError::Config(_))
        ));
        c.database = String::new();
        assert!(matches!(
            InfluxWriter::new(&c, dir.path(), m.clone()),
            Err(SinkError::Config(_))
        ));
        assert!(matches!(
            InfluxWriter::new(&cfg(InfluxApi::V2, "ftp://h"), dir.path(), m.clone()),
            Err(SinkError::Config(_))
        ));
        assert!(matches!(
            InfluxWriter::new(&cfg(InfluxApi::V2, "http://u:p@h"), dir.path(), m.clone()),
            Err(SinkError::Config(_))
        ));
        assert!(matches!(
            InfluxWriter::new(&cfg(InfluxApi::V2, "not a url"), dir.path(), m),
            Err(SinkError::Config(_))
        ));
    }
}
