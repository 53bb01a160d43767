//! A minimal blocking HTTP/1.1 client for loopback test servers.
//!
//! Plain `std::net`, one connection per request (`Connection: close`),
//! Content-Length and chunked bodies. Enough for VictoriaMetrics and
//! InfluxDB admin/query calls without pulling an HTTP stack into tests.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Default per-request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Fail with status and body unless 2xx.
    pub fn ok(self) -> Result<Self> {
        if self.is_success() {
            Ok(self)
        } else {
            bail!("HTTP {}: {}", self.status, self.text().trim())
        }
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response is not JSON: {}", self.text()))
    }
}

pub fn get(url: &str) -> Result<Response> {
    request("GET", url, None, &[], TIMEOUT)
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    request("POST", url, Some((content_type, body)), &[], TIMEOUT)
}

/// Form-encode `pairs` for a query string or an x-www-form-urlencoded body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encode everything but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One HTTP request to an `http://host:port/path?query` URL.
pub fn request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("bad address in {url}"))?
        .next()
        .ok_or_else(|| anyhow!("no address for {url}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("{method} {url}: connect"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: e2e-harness\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let payload = match body {
        Some((ct, b)) => {
            head.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
            b
        }
        None => {
            if method != "GET" && method != "HEAD" {
                head.push_str("Content-Length: 0\r\n");
            }
            &[][..]
        }
    };
    head.push_str("\r\n");
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(payload));

    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if let Err(e) = sent {
        // A server may answer before it has read the whole body (413 on Content-Length, 507,
        // 401) and close: the write then fails with a broken pipe, but the answer was sent
        // and is what the caller wants to see, as curl shows it. Only without one is the
        // write error the result.
        return match parse_response(&raw) {
            Ok(r) => Ok(r),
            Err(_) => Err(e).with_context(|| format!("{method} {url}: send")),
        };
    }
    read.with_context(|| format!("{method} {url}: read response"))?;
    parse_response(&raw).with_context(|| format!("{method} {url}: parse response"))
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no header terminator in {} bytes", raw.len()))?;
    let head = std::str::from_utf8(&raw[..split]).context("non-UTF-8 headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let body = &raw[split + 4..];
    resp.body = if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)?
    } else if let Some(n) = resp.header("content-length").and_then(|v| v.parse().ok()) {
        body[..body.len().min(n)].to_vec()
    } else {
        body.to_vec()
    };
    Ok(resp)
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk header"))?;
        let size_str = std::str::from_utf8(&body[..eol])?;
        let size_str = size_str.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_str, 16)
            .with_context(|| format!("bad chunk size {size_str:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "abcde");
    }

    #[test]
    fn encodes_query() {
        assert_eq!(
            form(&[("q", "SELECT * FROM \"m\"")]),
            "q=SELECT%20%2A%20FROM%20%22m%22"
        );
    }
}
