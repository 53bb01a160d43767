//! The enforcement sensor gateway as a library; `main.rs` only parses the command line.
//!
//! # Layout
//!
//! The two flows and the invariants are in `ARCHITECTURE.md` at the repository root; this is
//! the map of modules, in the order a reading meets them.
//!
//! - Wiring: [`app`] (start, reload, ordered shutdown), [`config`] (the root of the TOML file,
//!   loading, environment overrides, validation; each component owns its section),
//!   [`config_error`] (the error every section reports), [`clock`], [`metrics`], [`backoff`]
//!   (the one retry delay policy), [`disk`] (free-space floors).
//! - Intake: [`source`] (MQTT, Modbus), [`decode`] (payload mappings, LoRaWAN), [`registry`]
//!   (known devices), [`reading`] (the one normalized record), [`normalize`] (sequence and
//!   clock checks), [`units`].
//! - The processing stage: [`pipeline`] (intake channel, processor: durable, then ack),
//!   [`outbox`] (the disk-backed queue), [`sink`] (InfluxDB delivery from the outbox),
//!   [`devices`] and [`history`] (the live device table and recent readings).
//! - Judging: [`rules`] (the rules engine and its task), [`camera`] (frame health, parking
//!   dwell), [`vision`] (ONNX models, detection, plates, tracking), [`drone`] (flights,
//!   uploads, tasks), [`install`] (how each device is built and mounted, e.g. grease
//!   traps).
//! - Clues: [`clue`] (signals in, the pool, storage by concern in `clue::store`, lifecycle,
//!   audit chain, delivery to the platform, oversight, retention, tokens and roles);
//!   [`notice`] (street notices: parking's "please move" recorded per stay and delivered
//!   through the clue outbox, and the stays' outcomes).
//! - Serving people: [`http`], the one HTTP layer: the route table and `AppState`
//!   (`http/mod.rs`), the one error type (`http::error::ApiError`), the token extractor
//!   (`http::auth`), one file of handlers per resource (`http::clues`, `http::cameras`,
//!   `http::drone`, ...), the API document (`http::openapi`) and the dashboard's static files
//!   (`http::web`). Domain modules expose services (the clue pool, the registry, the camera
//!   service, the drone stores), never routes. [`dashboard`]: the `[dashboard]` section and
//!   where the `web/` pages are.
//!
//! Layers, lowest first (a module imports only lower ones; `ARCHITECTURE.md`, "Layers"):
//! leaves (`reading`, `units`, `clock`, `backoff`, `metrics`, `disk`, `config_error`); core
//! (`clue`, `normalize`, `outbox`, `install`); models and devices (`vision`, `sink`,
//! `registry`, `decode`, `history`, `devices`); intake (`pipeline`, then `source`); producers
//! (`notice`, `rules`, `drone`, `camera`); serving (`dashboard`, `http`); the root `config`;
//! wiring (`app`, `demo`, `scenario`). No component imports `config`: it is handed its
//! section. `tests/tools/module-cycles.py` (run by `tests/run-all.sh`) fails on any cycle.
//!
//! Producers of clues hold a `clue::signal::ClueSender`, never the pool (the drone job is the
//! one named exception, see `clue`); only `app` sees every part.

pub mod app;
pub(crate) mod backoff;
pub mod camera;
pub mod clock;
pub mod clue;
pub mod config;
pub(crate) mod config_error;
pub(crate) mod dashboard;
pub mod decode;
#[cfg(feature = "demo")]
pub mod demo;
pub(crate) mod devices;
pub(crate) mod disk;
pub mod drone;
pub(crate) mod growth;
pub(crate) mod history;
pub(crate) mod http;
pub(crate) mod install;
pub mod metrics;
pub(crate) mod normalize;
pub(crate) mod notice;
pub(crate) mod outbox;
pub mod pipeline;
pub(crate) mod prefetch;
pub mod reading;
pub mod registry;
pub mod rules;
#[cfg(feature = "demo")]
pub mod scenario;
pub mod sink;
pub mod source;
pub(crate) mod units;
pub mod vision;
