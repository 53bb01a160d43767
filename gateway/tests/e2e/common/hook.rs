//! A webhook receiver on loopback for the delivery tests (clues, street notices).

use anyhow::{Result, bail};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

/// A webhook receiver: answers 500 to the first `fail_first` requests, then 200; records
/// `(status answered, signature header, body)`.
pub struct Hook {
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<(u16, String, String)>>>,
}

impl Hook {
    pub fn start(port: u16, fail_first: usize) -> Result<Hook> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = seen.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut s) = stream else { continue };
                let Ok((sig, body)) = read_request(&mut s) else {
                    continue;
                };
                let status = if n < fail_first { 500 } else { 200 };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if let Ok(mut v) = rec.lock() {
                    v.push((status, sig, body));
                }
            }
        });
        Ok(Hook { seen })
    }

    pub fn acknowledged(&self) -> Vec<Value> {
        self.seen
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(st, _, _)| *st == 200)
                    .filter_map(|(_, _, b)| serde_json::from_str(b).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn read_request(s: &mut std::net::TcpStream) -> Result<(String, String)> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("closed");
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                let sig = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("x-gateway-signature")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).to_string();
                return Ok((sig, body));
            }
        }
    }
}
