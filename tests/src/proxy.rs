//! A loopback TCP proxy that delays every chunk it forwards: a slow database (or a slow link)
//! between the gateway and a real server, with a delay that can change while traffic flows.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Forwards `127.0.0.1:port()` to `127.0.0.1:upstream`, sleeping [`DelayProxy::set_delay`]
/// before each forwarded chunk (both directions). Stops accepting when dropped; open
/// connections end when either side closes.
pub struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl DelayProxy {
    pub fn start(upstream: u16) -> Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("delay proxy bind")?;
        let port = listener.local_addr()?.port();
        // Non-blocking accept so the loop sees `stop` within ~20 ms.
        listener.set_nonblocking(true)?;
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (delay_ms.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        pipe(&client, &server, d.clone(), s.clone());
                        pipe(&server, &client, d.clone(), s.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(DelayProxy {
            port,
            delay_ms,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Delay before each forwarded chunk from now on (connections already open included).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` in its own thread, delaying each chunk; ends on EOF, an error, or
/// `stop` (checked at least once a second through a read timeout).
fn pipe(from: &TcpStream, to: &TcpStream, delay_ms: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let _ = from.set_read_timeout(Some(Duration::from_secs(1)));
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            };
            let ms = delay_ms.load(Ordering::Relaxed);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn forwards_both_ways_with_the_configured_delay() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_port = upstream.local_addr().unwrap().port();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let proxy = DelayProxy::start(up_port).unwrap();
        proxy.set_delay(Duration::from_millis(100));
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        let t = Instant::now();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        // One delay each way.
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        echo.join().unwrap();
    }
}
