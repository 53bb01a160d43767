//! The enforcement sensor gateway as a library; `main.rs` only parses the command line.

pub mod api;
pub mod app;
pub mod camera;
pub mod clock;
pub mod clue;
pub mod config;
pub mod dashboard;
pub mod decode;
#[cfg(feature = "demo")]
pub mod demo;
pub mod devices;
pub mod drone;
pub mod history;
pub mod install;
pub mod metrics;
pub mod normalize;
pub mod outbox;
pub mod pipeline;
pub mod reading;
pub mod registry;
pub mod rules;
pub mod sink;
pub mod source;
pub mod units;
pub mod vision;
