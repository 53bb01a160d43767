//! Pure state machines: fed with readings and a millisecond clock, no I/O, no allocation.
//! Each one is small enough to test with a recorded sequence and a fake clock.

pub mod debounce;
pub mod device;
pub mod geometry;
pub mod hysteresis;
pub mod median;
pub mod report;
pub mod ring;
pub mod tilt;
pub mod uplink;
