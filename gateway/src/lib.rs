//! The enforcement sensor gateway as a library; `main.rs` only parses the command line.

pub mod config;
pub mod decode;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod reading;
pub mod units;
