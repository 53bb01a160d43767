//! PUBACKs written by the MQTT source itself, in bulk, instead of through rumqttc's request
//! channel.
//!
//! Why: the gateway must be able to stop reading from the broker (bounded memory) while it
//! keeps acknowledging what it has made durable. rumqttc's event loop reads the socket and
//! drains its request channel in one `select!`, one request per turn against up to ten
//! incoming packets, so acknowledgements sent through `AsyncClient::ack` lag behind intake,
//! and a loop that stops polling stops acknowledging too (the processor then blocks on a full
//! request channel: a deadlock). Here the processor only queues packet ids (never blocks);
//! the source's poll loop writes them straight onto the connection (`EventLoop::network`)
//! between polls, many per flush, also while it has stopped reading.
//!
//! Mosquitto 2.0.11 does not keep to its own `max_inflight_messages` once acknowledgements
//! flow (measured: 17,200 unacknowledged deliveries with a limit of 1,000), so the broker's
//! window cannot be the bound; the source's bounded queue and TCP flow control are.
//!
//! The queue is unbounded on purpose and still bounded in practice: it holds one `u16` per
//! message the gateway took, and the source stops taking messages while its queue to the
//! decoder is full.

use rumqttc::{EventLoop, Packet, PubAck};
use std::time::Duration;

// The acknowledgement and its queue are part of the intake contract, defined by its consumer.
pub(crate) use crate::pipeline::{AckReceiver, AckSender, MqttAck, ack_channel as channel};

/// Acknowledgements waiting to be written on the current connection.
#[derive(Debug, Default)]
pub(crate) struct Unsent {
    acks: Vec<MqttAck>,
}

impl Unsent {
    pub(crate) fn extend(&mut self, more: Vec<MqttAck>) {
        if self.acks.is_empty() {
            self.acks = more;
        } else {
            self.acks.extend(more);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Writes every waiting ack of `connection` with one flush; answers how many were written.
    /// Acks of other connections are dropped. On error the connection is unusable: the caller
    /// drops it (`EventLoop::clean`) and the acks are forgotten with it.
    pub(crate) async fn write(
        &mut self,
        eventloop: &mut EventLoop,
        connection: u64,
        flush_timeout: Duration,
    ) -> Result<usize, WriteError> {
        if self.acks.is_empty() {
            return Ok(0);
        }
        let Some(network) = eventloop.network.as_mut() else {
            // Not connected: whatever arrives next comes on a new connection.
            self.acks.clear();
            return Ok(0);
        };
        let mut written = 0;
        for ack in self.acks.drain(..) {
            if ack.connection != connection {
                continue;
            }
            network
                .write(Packet::PubAck(PubAck::new(ack.pkid)))
                .await
                .map_err(|e| WriteError(e.to_string()))?;
            written += 1;
        }
        match tokio::time::timeout(flush_timeout, network.flush()).await {
            Ok(Ok(())) => Ok(written),
            Ok(Err(e)) => Err(WriteError(e.to_string())),
            Err(_) => Err(WriteError("flush timed out".into())),
        }
    }
}

/// Writing acknowledgements failed; the connection is lost.
#[derive(Debug, thiserror::Error)]
#[error("writing acknowledgements: {0}")]
pub(crate) struct WriteError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_connection_waiting_acks_are_dropped_not_kept_for_the_next() {
        let opts = rumqttc::MqttOptions::new("t", "127.0.0.1", 1);
        let (_client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
        let mut unsent = Unsent::default();
        unsent.extend(vec![MqttAck {
            pkid: 7,
            connection: 1,
        }]);
        let n = unsent
            .write(&mut eventloop, 1, Duration::from_secs(1))
            .await
            .expect("no error without a connection");
        assert_eq!(n, 0);
        assert!(unsent.is_empty());
    }
}
