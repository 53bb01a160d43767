//! Clues: what rules (and vision, and drone findings) tell the clue pool, and the pool itself.
//!
//! `signal` is the contract between producers (rules engine, parking, camera health, drone
//! tasks) and the pool (storage, lifecycle, delivery). Producers never touch the pool directly:
//! they send into the [`signal::ClueSender`] that [`pool::start_pool`] returns.
//!
//! - `lifecycle`: the pure state machine (statuses, actions, transitions).
//! - `audit`: the hash chain and its verification.
//! - `evidence`: content-addressed evidence files.
//! - `store`: the `ClueStore` trait and its SQLite implementation (dedup, audit, outbox).
//! - `pool`: the async service (intake, escalation tick, change broadcast).
//! - `publish`: delivery to the central platform (MQTT, webhook).
//! - `auth`: tokens, roles, site scopes and the axum extractor.
//! - `api`: the clue HTTP routes; `openapi`: the API document.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod evidence;
pub mod lifecycle;
pub mod model;
pub mod openapi;
pub mod pool;
pub mod publish;
pub mod signal;
pub mod store;

pub use pool::{PoolHandle, start_pool};
