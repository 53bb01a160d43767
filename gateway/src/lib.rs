//! The enforcement sensor gateway as a library; `main.rs` only parses the command line.

pub mod config;
pub mod decode;
pub mod metrics;
pub mod pipeline;
pub mod reading;
pub mod source;
pub mod units;
