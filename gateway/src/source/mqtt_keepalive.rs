//! Keeps rumqttc's keep-alive check from dropping a broker connection that is alive.
//!
//! rumqttc 0.25 sends a PINGREQ every `keep_alive` whether or not traffic flows, and when the
//! next one is due while the last PINGRESP has not been read it fails the connection ("Last
//! pingreq isn't acked", `StateError::AwaitPingResp`). The broker writes the PINGRESP behind
//! everything it has already queued for us; under a backlog that is thousands of publishes
//! (mosquitto 2.0.11 writes far past its `max_inflight_messages`). So a gateway that reads
//! slower than one keep-alive's worth of that queue (a loaded or throttled machine), or that
//! stopped reading for a while (its hand-off to the decoder full, the process not scheduled),
//! dropped a healthy connection, and each reconnect made the broker resend everything in
//! flight: under load the gateway reconnected again and again instead of draining.
//!
//! Two rules, through rumqttc's public `MqttState::await_pingresp`:
//! - a packet read from the broker proves the connection alive: the ping counts as answered;
//! - after the source spent at least half a keep-alive not reading, an unanswered ping proves
//!   nothing (the answer may be waiting unread): it is forgotten and the next ping starts over.
//!
//! A broker that goes silent is still detected: a whole keep-alive in which the source waits on
//! the socket and reads nothing fails the connection as before (one keep-alive later at most
//! when the source had paused). The broker's own check (1.5 x keep-alive without a packet from
//! us) is unaffected: pings and acknowledgements keep going out.

use rumqttc::MqttState;
use std::time::{Duration, Instant};

/// When the source last stopped reading from the broker, and how long a pause voids a ping.
pub(crate) struct Liveness {
    pause: Duration,
    stopped_reading: Instant,
}

impl Liveness {
    pub(crate) fn new(keep_alive: Duration) -> Self {
        Liveness {
            pause: keep_alive / 2,
            stopped_reading: Instant::now(),
        }
    }

    /// Call before waiting on the connection: forgets an unanswered ping if the source has
    /// not read for at least half a keep-alive since [`Liveness::stopped_reading`].
    pub(crate) fn before_reading(&self, state: &mut MqttState) {
        if self.stopped_reading.elapsed() >= self.pause {
            state.await_pingresp = false;
        }
    }

    /// Call when a wait on the connection ends (an event, an error, or acks to write).
    pub(crate) fn stopped_reading(&mut self) {
        self.stopped_reading = Instant::now();
    }

    /// Call for every packet read from the broker: the connection is alive.
    pub(crate) fn packet_read(state: &mut MqttState) {
        state.await_pingresp = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{PingReq, Request, StateError};

    /// rumqttc's own keep-alive step: what the event loop does when a ping is due.
    fn ping_due(state: &mut MqttState) -> Result<(), StateError> {
        state
            .handle_outgoing_packet(Request::PingReq(PingReq))
            .map(|_| ())
    }

    #[test]
    fn rumqttc_fails_a_second_ping_without_an_answer() {
        let mut state = MqttState::new(10, true);
        ping_due(&mut state).unwrap();
        assert!(matches!(
            ping_due(&mut state),
            Err(StateError::AwaitPingResp)
        ));
    }

    #[test]
    fn a_packet_read_counts_as_the_answer() {
        let mut state = MqttState::new(10, true);
        ping_due(&mut state).unwrap();
        Liveness::packet_read(&mut state);
        ping_due(&mut state).expect("alive: data arrived since the ping");
    }

    #[test]
    fn a_pause_in_reading_voids_the_ping_but_a_short_one_does_not() {
        let mut state = MqttState::new(10, true);
        ping_due(&mut state).unwrap();
        let mut live = Liveness::new(Duration::from_secs(3600));
        live.stopped_reading();
        live.before_reading(&mut state);
        assert!(state.await_pingresp, "a short pause keeps the ping pending");
        // Half a keep-alive of zero: any pause is long enough.
        let mut live = Liveness::new(Duration::ZERO);
        live.stopped_reading();
        live.before_reading(&mut state);
        ping_due(&mut state).expect("after a pause the unanswered ping is forgotten");
        // The new ping is checked again: a broker that stays silent still fails the connection.
        assert!(matches!(
            ping_due(&mut state),
            Err(StateError::AwaitPingResp)
        ));
    }
}
