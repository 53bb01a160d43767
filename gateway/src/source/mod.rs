//! Sources: everything that produces readings. Each sends [`crate::pipeline::Intake`] values.

pub mod modbus;
pub mod mqtt;
pub(crate) mod mqtt_acks;
mod mqtt_keepalive;
