//! Clues: what rules (and vision, and drone findings) tell the clue pool, and the pool itself.
//!
//! `signal` is the contract between producers (rules engine, parking, camera health) and the
//! pool (storage, lifecycle, delivery): they send into the [`signal::ClueSender`] that
//! [`pool::start_pool`] returns and never touch the pool. The one exception is the drone job,
//! which calls [`PoolHandle::ingest`] (the same dedup path and transaction) because its flight
//! report needs the id of the clue it raised.
//!
//! - `lifecycle`: the pure state machine (statuses, actions, transitions).
//! - `audit`: the hash chain and its verification; `audit_key`: the key that seals it
//!   (`[clues.audit]`).
//! - `evidence`: content-addressed evidence files.
//! - `store`: small storage traits per concern (clues, audit, delivery, oversight, retention,
//!   tokens) and their SQLite implementation.
//!   `postgres`: the same traits on a PostgreSQL that several gateways share.
//! - `pool`: the async service (intake, escalation tick, change broadcast); `repeats`: plain
//!   repeats held in memory and written once per window.
//! - `publish`: delivery to the central platform (MQTT, webhook).
//! - `auth`: tokens, roles, site scopes and the axum extractor.
//! - `explanations`: records kept outside the pool that explain a clue (pump-outs), shown
//!   on its detail. The clue HTTP routes are `crate::http::clues` (and `http::oversight`,
//!   `http::supervision`).
//! - `oversight`: supervision models over the handling (warnings for supervisors);
//!   `supervision`: notices made from warnings (deadline, acknowledge, fixed, close or
//!   reopen, escalate, overdue levels).
//! - `matters`: the matter catalogue (legal basis, discretion bands, leniency list) and the
//!   assessment of a clue's facts against it.
//! - `decision`: the `decide` action's check against the catalogue, decision statistics.
//! - `org`: units (city, county, township) with sites and departments, token scopes of a
//!   unit or department, dispatch of new clues to lead and assisting departments.
//! - `owner`: owner notification and answers, first-violation leniency advice;
//!   `owner_notify`: notices to the owner through configured channels (webhook to an SMS or
//!   letter service), their durable delivery and its record.
//! - `privacy`: masking of plates and people in evidence images for lesser roles.
//! - `retention`: the evidence purge job (the purge is audited, not the content).
//! - `stays`: parking stays that got a "please move" notice and their outcomes (the notice
//!   itself is delivered through the same outbox, see `crate::notice`).
//! - `text`: clue titles rendered from kind and figures in Chinese and English.

pub mod audit;
pub mod audit_key;
pub mod auth;
pub(crate) mod config;
pub(crate) mod decision;
pub(crate) mod evidence;
pub(crate) mod explanations;
pub(crate) mod lifecycle;
pub(crate) mod masked_cache;
pub(crate) mod matters;
pub mod model;
pub(crate) mod org;
pub(crate) mod oversight;
pub(crate) mod owner;
pub(crate) mod owner_notify;
pub(crate) mod peer_penalty;
pub mod pool;
pub mod postgres;
pub(crate) mod privacy;
pub mod publish;
pub mod repeats;
pub(crate) mod retention;
pub mod signal;
pub(crate) mod stays;
pub mod store;
pub(crate) mod supervision;
pub(crate) mod text;

pub(crate) use pool::{PoolHandle, PoolSetup, start_pool};
