//! Installation data of devices: how each one is built and mounted, as opposed to what it
//! measures. Today only grease traps (`[[traps]]`, see [`trap`]); a device registry is meant
//! to own this data later (one record per device with its installation), and the rules keep
//! consuming it through [`trap::TrapInstalls`] whatever holds it.

pub mod trap;

pub use trap::{TrapInstall, TrapInstalls};
