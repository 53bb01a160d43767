//! The hand-off between sources and the processing stage.
//!
//! Every source (MQTT, Modbus, camera, drone) sends `Intake` values into one bounded channel.
//! The processor normalizes them, makes them durable in the outbox, updates the live device
//! table, and only then fires the acknowledgement, so a source never reports data as taken
//! before it is safe on disk. The channel is bounded: a slow disk slows intake visibly.

use crate::reading::Reading;

/// What to do once an intake is durable (or deliberately discarded as malformed/duplicate).
#[derive(Debug)]
pub enum Ack {
    /// Nothing to acknowledge (polled sources such as Modbus).
    None,
    /// Send the MQTT PUBACK for this message.
    Mqtt(rumqttc::Publish),
}

/// Readings from one source message (one MQTT publish, one Modbus poll of one device).
#[derive(Debug)]
pub struct Intake {
    pub readings: Vec<Reading>,
    pub ack: Ack,
}

/// Sending half of the intake channel, cloned into every source.
pub type IntakeSender = tokio::sync::mpsc::Sender<Intake>;
