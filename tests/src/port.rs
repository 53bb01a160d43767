//! Loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A currently free TCP port on 127.0.0.1 (bind port 0, read it, release it).
///
/// Racy by nature: another process may take it before the server binds.
/// Server starters in this crate retry with a fresh port when that happens.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind("127.0.0.1:0")
            && let Ok(a) = l.local_addr()
        {
            return a.port();
        }
    }
    panic!("no free TCP port on 127.0.0.1");
}

/// Wait until a TCP connect to `addr` succeeds, at most `timeout`.
pub fn wait_for_tcp(addr: impl Into<SocketAddr>, timeout: Duration) -> Result<()> {
    let addr = addr.into();
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("{addr} not accepting after {timeout:?}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// True if something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn is_listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Fail unless `port` is free (used before restarting a server on its old port).
pub fn ensure_free(port: u16) -> Result<()> {
    if is_listening(port) {
        bail!("port {port} is still in use");
    }
    Ok(())
}

/// Run `start(port)` with a fresh free port, retrying up to
/// [`crate::START_ATTEMPTS`] times (a start can fail when another process
/// takes the port between `free_port()` and the server's bind).
pub fn with_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Result<T>) -> Result<T> {
    let mut errors = Vec::new();
    for _ in 0..crate::START_ATTEMPTS {
        match start(free_port()) {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!(
        "{what}: failed to start {} times:\n{}",
        crate::START_ATTEMPTS,
        errors.join("\n---\n")
    )
}
