//! The time-series sink: readings become line protocol ([`line_protocol`]), and batches of lines
//! are written to InfluxDB (v2 API, or v1 for InfluxDB 1.x and compatibles) by [`influx`].
//!
//! Each line is one outbox record. [`InfluxWriter::write_batch`] returns `Ok` only when every line
//! was either accepted by the database or moved to the dead-letter file, so the outbox may then
//! remove the batch.

pub(crate) mod deliver;
pub mod influx;
pub mod line_protocol;

pub use influx::{InfluxWriter, WriteReport};
pub use line_protocol::{Dialect, encode, encode_with};

use std::path::PathBuf;

/// Errors of the sink. Server-side failures are not errors: the writer retries them.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The `[influx]` configuration cannot be used (bad URL, missing database or bucket).
    #[error("influx configuration: {0}")]
    Config(String),
    /// The cancellation token fired before every line was written or dead-lettered.
    #[error("write cancelled before the batch was delivered")]
    Cancelled,
    /// A rejected line could not be made durable in the dead-letter file.
    #[error("dead-letter file {path}: {source}")]
    DeadLetter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// The health probe failed.
    #[error("influx unavailable: {0}")]
    Unavailable(String),
}
