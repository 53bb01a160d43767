//! Links to devices: how the requests of one poll reach a unit id.
//!
//! - TCP: each device task owns its own connection, so devices poll in parallel even when
//!   several unit ids sit behind one TCP gateway address (same `url`, different `unit`); a
//!   dead unit cannot hold a connection another unit needs.
//! - RTU: one serial port is one half-duplex bus. Every device on a port shares one
//!   [`SerialBus`]; a poll holds its (FIFO-fair) lock for all its requests, so requests never
//!   interleave on the wire and devices on the bus take turns in arrival order.
//!
//! After a timeout, a transport error or a malformed reply the connection is dropped and
//! reopened at the next poll: a late or partial reply must never be read as the answer to the
//! next request.

use super::config::{Endpoint, Parity, RegisterKind, SerialSettings};
use super::plan::Block;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Mutex;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

/// Why one request of a poll produced no data.
#[derive(Debug, Error)]
pub(crate) enum RequestError {
    /// The device answered with a Modbus exception; the link is fine.
    #[error("exception {code} ({name})", code = u8::from(*.0), name = .0)]
    Exception(ExceptionCode),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(String),
    #[error("transport: {0}")]
    Transport(#[from] std::io::Error),
    /// The reply did not match the request (header, function, length).
    #[error("bad reply: {0}")]
    BadReply(String),
    /// Not sent because an earlier request of the same poll broke the link.
    #[error("not sent: link broken earlier in this poll")]
    NotSent,
}

impl RequestError {
    /// True when the device answered (so it is alive), even if with an exception.
    pub(crate) fn device_answered(&self) -> bool {
        matches!(self, RequestError::Exception(_))
    }

    /// Short label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            RequestError::Exception(_) => "exception",
            RequestError::Timeout(_) => "timeout",
            RequestError::Connect(_) => "connect",
            RequestError::Transport(_) => "transport",
            RequestError::BadReply(_) => "bad_reply",
            RequestError::NotSent => "not_sent",
        }
    }
}

/// The data of one successful request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// One serial port shared by every device on it.
pub(crate) struct SerialBus {
    settings: SerialSettings,
    ctx: Mutex<Option<Context>>,
}

impl std::fmt::Debug for SerialBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialBus")
            .field("settings", &self.settings)
            .finish()
    }
}

impl SerialBus {
    pub(crate) fn new(settings: SerialSettings) -> Arc<SerialBus> {
        Arc::new(SerialBus {
            settings,
            ctx: Mutex::new(None),
        })
    }

    fn open(&self) -> Result<Context, RequestError> {
        use tokio_serial::SerialPortBuilderExt;
        let s = &self.settings;
        let port = tokio_serial::new(&s.path, s.baud)
            .parity(match s.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            })
            .data_bits(match s.data_bits {
                5 => tokio_serial::DataBits::Five,
                6 => tokio_serial::DataBits::Six,
                7 => tokio_serial::DataBits::Seven,
                _ => tokio_serial::DataBits::Eight,
            })
            .stop_bits(if s.stop_bits == 2 {
                tokio_serial::StopBits::Two
            } else {
                tokio_serial::StopBits::One
            })
            .open_native_async()
            .map_err(|e| RequestError::Connect(format!("{}: {e}", s.path)))?;
        Ok(tokio_modbus::client::rtu::attach(port))
    }
}

/// How one device reaches its unit id.
pub(crate) enum Link {
    Tcp {
        host: String,
        port: u16,
        ctx: Option<Context>,
    },
    Rtu(Arc<SerialBus>),
}

impl Link {
    /// A link for `endpoint`; RTU devices on one port must be given the same `bus`.
    pub(crate) fn new(endpoint: &Endpoint, bus: Option<Arc<SerialBus>>) -> Link {
        match (endpoint, bus) {
            (Endpoint::Rtu(_), Some(bus)) => Link::Rtu(bus),
            (Endpoint::Rtu(s), None) => Link::Rtu(SerialBus::new(s.clone())),
            (Endpoint::Tcp { host, port }, _) => Link::Tcp {
                host: host.clone(),
                port: *port,
                ctx: None,
            },
        }
    }

    /// Sends every block's request to `unit`, in order, with exclusive use of the link.
    /// Returns one result per block. Never panics on what the device sends.
    pub(crate) async fn poll(
        &mut self,
        unit: u8,
        blocks: &[Block],
        timeout: Duration,
        metrics: &Metrics,
    ) -> Vec<Result<Data, RequestError>> {
        match self {
            Link::Tcp { host, port, ctx } => {
                if ctx.is_none() {
                    match connect_tcp(host, *port, unit, timeout).await {
                        Ok(c) => *ctx = Some(c),
                        Err(e) => return fail_all(blocks.len(), e),
                    }
                }
                run_blocks(ctx, unit, blocks, timeout, metrics).await
            }
            Link::Rtu(bus) => {
                // The lock is the bus queue: tokio's Mutex is FIFO-fair.
                let mut guard = bus.ctx.lock().await;
                if guard.is_none() {
                    match bus.open() {
                        Ok(c) => *guard = Some(c),
                        Err(e) => return fail_all(blocks.len(), e),
                    }
                }
                run_blocks(&mut guard, unit, blocks, timeout, metrics).await
            }
        }
    }

    /// Closes the connection (TCP) so the next poll reconnects.
    pub(crate) async fn close(&mut self) {
        match self {
            Link::Tcp { ctx, .. } => {
                if let Some(mut c) = ctx.take() {
                    let _ = c.disconnect().await;
                }
            }
            Link::Rtu(_) => {}
        }
    }
}

fn fail_all(n: usize, first: RequestError) -> Vec<Result<Data, RequestError>> {
    let mut out = Vec::with_capacity(n);
    out.push(Err(first));
    out.extend((1..n).map(|_| Err(RequestError::NotSent)));
    out
}

async fn connect_tcp(
    host: &str,
    port: u16,
    unit: u8,
    timeout: Duration,
) -> Result<Context, RequestError> {
    let attempt = async {
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("host name resolved to no address"))?;
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit)).await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(RequestError::Connect(format!("{host}:{port}: {e}"))),
        Err(_) => Err(RequestError::Connect(format!(
            "{host}:{port}: no connection within {timeout:?}"
        ))),
    }
}

async fn run_blocks(
    ctx: &mut Option<Context>,
    unit: u8,
    blocks: &[Block],
    timeout: Duration,
    metrics: &Metrics,
) -> Vec<Result<Data, RequestError>> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let Some(c) = ctx.as_mut() else {
            out.push(Err(RequestError::NotSent));
            continue;
        };
        c.set_slave(Slave(unit));
        metrics.modbus_requests_total.inc();
        let r = match tokio::time::timeout(timeout, request(c, b)).await {
            Ok(r) => r,
            Err(_) => Err(RequestError::Timeout(timeout)),
        };
        if let Err(e) = &r
            && !e.device_answered()
        {
            // Drop the connection: whatever arrives late belongs to this request.
            if let Some(mut c) = ctx.take() {
                let _ = tokio::time::timeout(Duration::from_millis(100), c.disconnect()).await;
            }
        }
        out.push(r);
    }
    out
}

async fn request(c: &mut Context, b: &Block) -> Result<Data, RequestError> {
    let (start, n) = (b.start, b.count);
    // `Client::call` rather than the `Reader` helpers: those `debug_assert` on the reply's
    // length and `unreachable!` on a mismatching response, so a device sending a short reply
    // would panic the task (found by the garbage-slave test).
    let req = match b.kind {
        RegisterKind::Holding => Request::ReadHoldingRegisters(start, n),
        RegisterKind::Input => Request::ReadInputRegisters(start, n),
        RegisterKind::Coil => Request::ReadCoils(start, n),
        RegisterKind::Discrete => Request::ReadDiscreteInputs(start, n),
    };
    let data = match c.call(req).await {
        Ok(Ok(Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w))) => {
            Data::Words(w)
        }
        Ok(Ok(Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits))) => Data::Bits(bits),
        Ok(Ok(other)) => {
            return Err(RequestError::BadReply(clip(format!(
                "unexpected response {other:?}"
            ))));
        }
        Ok(Err(code)) => return Err(RequestError::Exception(code)),
        Err(tokio_modbus::Error::Transport(e)) => {
            return Err(if e.kind() == std::io::ErrorKind::InvalidData {
                RequestError::BadReply(clip(e.to_string()))
            } else {
                RequestError::Transport(e)
            });
        }
        Err(tokio_modbus::Error::Protocol(e)) => {
            return Err(RequestError::BadReply(clip(e.to_string())));
        }
    };
    // Coil replies are padded to whole bytes, so more bits than asked is normal; fewer is not.
    let got = match &data {
        Data::Words(w) => w.len(),
        Data::Bits(b) => b.len(),
    };
    if got < usize::from(n) {
        return Err(RequestError::BadReply(format!(
            "asked for {n} values at {start}, got {got}"
        )));
    }
    Ok(data)
}

/// Protocol errors quote the whole decoded reply; keep log lines short.
fn clip(mut s: String) -> String {
    const MAX: usize = 160;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_short_messages_and_cuts_long_ones_on_a_char_boundary() {
        assert_eq!(super::clip("short".into()), "short");
        let long = "é".repeat(200);
        let c = super::clip(long);
        assert!(c.len() <= 163 && c.ends_with("..."));
    }
}
