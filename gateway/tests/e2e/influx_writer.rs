//! `InfluxWriter` against a scripted in-test HTTP server (axum): retries, Retry-After, 413 splits,
//! 400/422 bisection with dead-lettering, gzip, URLs and authentication, cancellation.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gateway::config::{InfluxApi, InfluxConfig};
use gateway::metrics::Metrics;
use gateway::sink::{InfluxWriter, SinkError};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One request as the server saw it (body gunzipped when `Content-Encoding: gzip`).
#[derive(Debug, Clone)]
struct Req {
    uri: String,
    headers: HeaderMap,
    lines: Vec<String>,
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: String::new(),
        delay: Duration::ZERO,
    }
}

type Script = dyn Fn(&Req, usize) -> Reply + Send + Sync;

struct Shared {
    script: Box<Script>,
    requests: Mutex<Vec<Req>>,
    /// Lines of the requests answered 2xx, in order.
    accepted: Mutex<Vec<String>>,
}

struct Server {
    url: String,
    shared: Arc<Shared>,
}

impl Server {
    async fn start(script: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Server {
        let shared = Arc::new(Shared {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { url, shared }
    }

    fn requests(&self) -> Vec<Req> {
        self.shared.requests.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<String> {
        self.shared.accepted.lock().unwrap().clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("body is valid gzip");
        out
    } else {
        String::from_utf8(body.to_vec()).unwrap()
    };
    let req = Req {
        uri: uri.to_string(),
        headers,
        lines: raw.split('\n').map(str::to_string).collect(),
    };
    let n = {
        let mut r = shared.requests.lock().unwrap();
        r.push(req.clone());
        r.len() - 1
    };
    let rep = (shared.script)(&req, n);
    if !rep.delay.is_zero() {
        tokio::time::sleep(rep.delay).await;
    }
    if (200..300).contains(&rep.status) {
        shared.accepted.lock().unwrap().extend(req.lines.clone());
    }
    let mut resp = (StatusCode::from_u16(rep.status).unwrap(), rep.body).into_response();
    for (k, v) in rep.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

fn config(url: &str, api: InfluxApi) -> InfluxConfig {
    InfluxConfig {
        url: url.to_string(),
        api,
        org: "city".into(),
        bucket: "enforcement".into(),
        token: Some("s3cret-token".into()),
        database: "gw".into(),
        gzip: false,
        timeout_ms: 2_000,
        retry_min_ms: 10,
        retry_max_ms: 50,
        ..InfluxConfig::default()
    }
}

fn lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "m,site=s,device=d{i} v={i}i {}",
                1_700_000_000_000i64 + i as i64
            )
            .into_bytes()
        })
        .collect()
}

fn as_strings(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect()
}

struct Fixture {
    writer: InfluxWriter,
    metrics: Arc<Metrics>,
    dir: tempfile::TempDir,
}

fn writer(cfg: &InfluxConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let writer = InfluxWriter::new(cfg, dir.path(), metrics.clone()).unwrap();
    Fixture {
        writer,
        metrics,
        dir,
    }
}

impl Fixture {
    fn dead_letters(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rejected-lines.lp")).unwrap_or_default()
    }

    fn metric(&self, needle: &str) -> bool {
        self.metrics.encode().contains(needle)
    }
}

#[tokio::test]
async fn retry_after_429_is_honoured_then_204() {
    let server = Server::start(|_, n| {
        if n == 0 {
            let mut r = reply(429);
            r.headers.push(("retry-after", "1".into()));
            r
        } else {
            reply(204)
        }
    })
    .await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let batch = lines(5);
    let started = Instant::now();
    let report = f
        .writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "retried after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "retried after {elapsed:?}"
    );
    assert_eq!((report.written, report.retries, report.requests), (5, 1, 2));
    assert_eq!(server.accepted(), as_strings(&batch));
    assert!(f.metric("gateway_sink_retries_total{reason=\"http_429\"} 1"));
    assert!(f.metric("gateway_sink_points_written_total 5"));
    assert!(f.metric("gateway_sink_batches_total 1"));
}

#[tokio::test]
async fn retry_after_http_date_on_503() {
    let server = Server::start(|_, n| {
        if n == 0 {
            let mut r = reply(503);
            let at = std::time::SystemTime::now() + Duration::from_secs(2);
            r.headers.push(("retry-after", httpdate::fmt_http_date(at)));
            r
        } else {
            reply(204)
        }
    })
    .await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let started = Instant::now();
    let report = f
        .writer
        .write_batch(&lines(1), &CancellationToken::new())
        .await
        .unwrap();
    // HTTP dates have one-second resolution: the wait is between 1 and 2 seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.written, 1);
    assert!(f.metric("gateway_sink_retries_total{reason=\"http_503\"} 1"));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = Server::start(|_, n| if n < 3 { reply(500) } else { reply(204) }).await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let batch = lines(7);
    let report = f
        .writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((report.written, report.retries, report.requests), (7, 3, 4));
    assert_eq!(report.dead_lettered, 0);
    // Every attempt carried the whole batch; only the last one was accepted.
    for r in server.requests() {
        assert_eq!(r.lines, as_strings(&batch));
    }
    assert_eq!(server.accepted(), as_strings(&batch));
    assert!(f.metric("gateway_sink_retries_total{reason=\"http_5xx\"} 3"));
    assert!(f.dead_letters().is_empty());
}

#[tokio::test]
async fn payload_too_large_splits_until_it_fits() {
    const MAX: usize = 3;
    let server = Server::start(|req, _| {
        if req.lines.len() > MAX || req.lines.iter().any(|l| l.contains("HUGE")) {
            let mut r = reply(413);
            r.body = r#"{"code":"request too large","message":"body exceeds limit"}"#.into();
            r
        } else {
            reply(204)
        }
    })
    .await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let mut batch = lines(10);
    batch.insert(4, b"m,site=s,device=HUGE v=1i 1700000000000".to_vec());
    let report = f
        .writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    let mut good = as_strings(&batch);
    good.remove(4);
    assert_eq!(server.accepted(), good, "good lines land once, in order");
    assert_eq!((report.written, report.dead_lettered), (10, 1));
    assert!(report.splits >= 3, "{report:?}");
    assert!(server.requests().iter().all(|r| r.lines.len() <= 11));
    let dl = f.dead_letters();
    assert!(dl.contains("status=413: body exceeds limit"), "{dl}");
    assert!(
        dl.ends_with("m,site=s,device=HUGE v=1i 1700000000000\n"),
        "{dl}"
    );
    assert!(f.metric("gateway_sink_rejected_lines_total 1"));
    assert!(f.metric(&format!("gateway_sink_splits_total {}", report.splits)));
}

/// Answers 400 (or `status`) like InfluxDB 2.x when any line of the body contains `BAD`.
async fn rejecting_server(status: u16) -> Server {
    Server::start(
        move |req, _| match req.lines.iter().find(|l| l.contains("BAD")) {
            Some(line) => {
                let mut r = reply(status);
                r.body = serde_json::json!({
                    "code": "invalid",
                    "message": format!("unable to parse '{line}': bad\nthing"),
                })
                .to_string();
                r
            }
            None => reply(204),
        },
    )
    .await
}

#[tokio::test]
async fn bad_lines_are_isolated_by_bisection_and_dead_lettered() {
    let server = rejecting_server(400).await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let mut batch = lines(16);
    batch[3] = b"m,site=s,device=BAD1 v=oops 1700000000000".to_vec();
    batch[12] = b"m,site=s,device=BAD2 v=\"x\" 1700000000000".to_vec();
    let report = f
        .writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    let all = as_strings(&batch);
    let good: Vec<String> = all.iter().filter(|l| !l.contains("BAD")).cloned().collect();
    assert_eq!(
        server.accepted(),
        good,
        "exactly the good lines, once each, in order"
    );
    assert_eq!((report.written, report.dead_lettered), (14, 2));
    let dl = f.dead_letters();
    let records: Vec<&str> = dl.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(records, vec![all[3].as_str(), all[12].as_str()], "{dl}");
    let comments: Vec<&str> = dl
        .lines()
        .filter(|l| l.starts_with("# rejected "))
        .collect();
    assert_eq!(comments.len(), 2, "{dl}");
    assert!(
        comments[0].contains("status=400: unable to parse 'm,site=s,device=BAD1"),
        "{dl}"
    );
    assert!(
        comments[0].contains("bad\\nthing"),
        "message kept on one line: {dl}"
    );
    assert!(comments[0].contains("GMT (unix_ms="), "{dl}");
    assert!(f.metric("gateway_sink_rejected_lines_total 2"));
    assert!(f.metric("gateway_sink_points_written_total 14"));
}

#[tokio::test]
async fn unprocessable_entity_is_bisected_too() {
    let server = rejecting_server(422).await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let mut batch = lines(5);
    batch[4] = b"m,device=BAD v=1i 1".to_vec();
    let report = f
        .writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((report.written, report.dead_lettered), (4, 1));
    assert_eq!(server.accepted(), as_strings(&batch[..4]));
    assert!(f.dead_letters().contains("status=422"));
}

#[tokio::test]
async fn gzip_v2_url_and_token() {
    let server = Server::start(|_, _| reply(204)).await;
    let mut cfg = config(&format!("{}/", server.url), InfluxApi::V2);
    cfg.gzip = true;
    let f = writer(&cfg);
    let mut batch = lines(50);
    batch.push("m,site=日本\\ 🎉 s=\"multi\nline\" 1".as_bytes().to_vec());
    f.writer
        .write_batch(&batch, &CancellationToken::new())
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["authorization"], "Token s3cret-token");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        r.uri,
        "/api/v2/write?org=city&bucket=enforcement&precision=ms"
    );
    // The server split the decoded body on '\n': the quoted newline shows up as two pieces.
    assert_eq!(r.lines.join("\n"), as_strings(&batch).join("\n"));
}

#[tokio::test]
async fn v1_url_and_basic_auth() {
    let server = Server::start(|_, _| reply(204)).await;
    let mut cfg = config(&server.url, InfluxApi::V1);
    cfg.username = Some("writer".into());
    cfg.password = Some("pa:ss".into());
    cfg.token = None;
    let f = writer(&cfg);
    f.writer
        .write_batch(&lines(2), &CancellationToken::new())
        .await
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.uri, "/write?db=gw&precision=ms");
    // base64("writer:pa:ss")
    assert_eq!(r.headers["authorization"], "Basic d3JpdGVyOnBhOnNz");
    assert!(r.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn wrong_token_is_retried_never_dropped() {
    let server = Server::start(|_, n| match n {
        0 => reply(401),
        1 => reply(403),
        2 => reply(404),
        _ => reply(204),
    })
    .await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let report = f
        .writer
        .write_batch(&lines(3), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (report.written, report.retries, report.dead_lettered),
        (3, 3, 0)
    );
    assert!(f.metric("gateway_sink_retries_total{reason=\"auth\"} 2"));
    assert!(f.metric("gateway_sink_retries_total{reason=\"not_found\"} 1"));
}

#[tokio::test]
async fn timeouts_are_retried() {
    let server = Server::start(|_, n| {
        let mut r = reply(204);
        if n == 0 {
            r.delay = Duration::from_millis(1_500);
        }
        r
    })
    .await;
    let mut cfg = config(&server.url, InfluxApi::V2);
    cfg.timeout_ms = 300;
    let f = writer(&cfg);
    let report = f
        .writer
        .write_batch(&lines(1), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((report.written, report.retries), (1, 1));
    assert!(f.metric("gateway_sink_retries_total{reason=\"timeout\"} 1"));
}

#[tokio::test]
async fn cancelled_while_retrying() {
    let server = Server::start(|_, _| reply(503)).await;
    let f = writer(&config(&server.url, InfluxApi::V2));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let res = f.writer.write_batch(&lines(2), &cancel).await;
    assert!(matches!(res, Err(SinkError::Cancelled)), "{res:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        server.requests().len() >= 2,
        "kept retrying until cancelled"
    );
    assert!(server.accepted().is_empty());
}

#[tokio::test]
async fn connection_refused_is_retried_until_cancelled() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = writer(&config(&format!("http://127.0.0.1:{port}"), InfluxApi::V2));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let res = f.writer.write_batch(&lines(1), &cancel).await;
    assert!(matches!(res, Err(SinkError::Cancelled)), "{res:?}");
    assert!(f.metric("gateway_sink_retries_total{reason=\"connect\"}"));
    assert!(f.writer.ping().await.is_err());
}

#[tokio::test]
async fn empty_batch_sends_nothing_and_ping_works() {
    let server = Server::start(|req, _| {
        if req.uri == "/ping" {
            reply(204)
        } else {
            reply(500)
        }
    })
    .await;
    let f = writer(&config(&server.url, InfluxApi::V1));
    let report = f
        .writer
        .write_batch(&[], &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.requests, 0);
    f.writer.ping().await.unwrap();
    assert_eq!(server.requests().len(), 1);
}
