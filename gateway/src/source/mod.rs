//! Sources: everything that turns device traffic into `Reading`s.

pub mod modbus;
