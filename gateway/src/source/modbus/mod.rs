//! Modbus ingest: TCP and RTU devices polled with per-device register maps.
//!
//! - [`config`]: `[[modbus.devices]]` keys and their validation.
//! - [`decode`]: pure register decoding (types, word orders, scale, units).
//! - [`plan`]: merges registers into as few requests as the protocol limits allow.
//! - [`bus`]: TCP connections and shared serial buses.
//! - [`poller`]: one task per device, presence and back-off; [`spawn_all`] starts them.

pub(crate) mod bus;
pub(crate) mod config;
pub mod decode;
pub(crate) mod plan;
pub(crate) mod poller;

pub use config::{
    DataType, DeviceConfig, Endpoint, ModbusConfig, RegisterConfig, RegisterKind, WordOrder,
};
pub use poller::{DevicePoller, PollOutcome, Presence, spawn_all};
