//! Installation data of devices: how each one is built and mounted, as opposed to what it
//! measures. Today only grease traps (see [`trap`]), from two sources: `[[traps]]` in the
//! gateway config and `installation.trap` of a device registry entry (which wins, and changes
//! without a restart). The rules consume both through [`trap::TrapInstalls`].

pub(crate) mod trap;

pub(crate) use trap::{TrapInstall, TrapInstalls};
