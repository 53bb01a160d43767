//! Drivers for documented parts, generic over embedded-hal 1.0 traits. No global state; each
//! returns a typed error that wraps the bus error.

pub mod accel;
pub mod camera;
pub mod cover;
pub mod current_loop;
pub mod ultrasonic;
