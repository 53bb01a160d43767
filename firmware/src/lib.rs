//! Device-side logic for the enforcement sensors, `no_std` first.
//!
//! The wire protocol lives here so that the firmware that encodes a message and the gateway that
//! decodes it share one definition and cannot drift apart.
//!
//! Layers, from the pins up:
//! - [`drivers`]: parts on embedded-hal 1.0 traits (ultrasonic UART sensor, 4-20 mA transmitter,
//!   cover switch, LIS3DH accelerometer, camera status). No global state, typed errors.
//! - [`logic`]: pure state machines fed with readings and a millisecond clock (debounce, median,
//!   hysteresis, deadband reporting, trap geometry, store-and-forward) and the three device
//!   programs built from them ([`logic::device`]).
//! - [`record`] and [`encode`]: what a device sends, and its JSON encoding without allocation.
//! - [`protocol`]: topics and the owned message types the gateway decodes into.
//! - `sim` (feature `sim`): a host simulator that runs the same device programs on simulated pins
//!   and buses and publishes over MQTT.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod drivers;
pub mod encode;
pub mod logic;
pub mod protocol;
pub mod record;
#[cfg(feature = "sim")]
pub mod sim;
