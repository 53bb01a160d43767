//! Device-side logic for the enforcement sensors, `no_std` first.
//!
//! The wire protocol lives here so that the firmware that encodes a message and the gateway that
//! decodes it share one definition and cannot drift apart.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod protocol;
