//! The gateway's integration tests, in one binary: each module is one area (its former test
//! file), tested through real servers and, mostly, the real `gateway` binary.
//!
//! Why one binary: every test binary links the whole gateway library, and 27 of them spent
//! most of a fresh CI build linking (see `tests/README.md`, "Integration tests"). New
//! integration tests go here as a module (`mod my_area;` below, `my_area.rs` beside this file),
//! not as a new file in `gateway/tests/`.
//!
//! - Run one area: `cargo nextest run -p gateway --test e2e mqtt_to_database::`.
//! - Benchmarks are `#[ignore]` tests in their area and print figures, e.g.
//!   `cargo test -p gateway --release --test e2e clue_bench:: -- --ignored --nocapture`.
//! - Shared helpers: [`common`] (gateway process, stores, vision models) and [`modbus_common`]
//!   (Modbus slaves). Fixture files stay in `gateway/tests/fixtures/`.

#[macro_use]
mod common;
mod modbus_common;

mod camera_api;
mod camera_health_eval;
mod cli;
mod clue_api;
mod clue_bench;
mod clue_store_postgres;
mod dashboard_api;
mod dashboard_browser;
mod decisions_api;
mod demo_clues;
mod deploy_configs;
mod drone_api;
mod http_routes;
mod influx_real;
mod influx_writer;
mod lorawan_registry;
mod maintenance_works;
mod modbus_decode;
mod modbus_faults;
mod modbus_to_database;
mod mqtt_connection;
mod mqtt_to_database;
mod muck_permits;
mod notices_api;
mod org_api;
mod oversight_api;
mod owner_notices_api;
mod parking_api;
mod pulled_cameras;
mod reload_and_pumpouts;
mod resilience;
mod scale_out;
mod security;
mod simulator_to_database;
mod street_enforcement;
mod vision_models;
