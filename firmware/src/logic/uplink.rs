//! Stamping and store-and-forward between the device logic and the radio.
//!
//! Every message gets its timestamp and sequence number when it is created and goes into the
//! ring buffer. While the link is up the buffer drains at once; while it is down, records wait
//! and are replayed in order, marked `replayed`, when it returns. If the ring overflowed, a
//! `buffer_overflow` event saying how many were lost follows the replay.

use crate::logic::ring::Ring;
use crate::protocol::{EventPhase, EventSeverity};
use crate::record::{EventBody, EventKind, Message, Record};

/// A record waiting to be sent, and whether it waited through an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queued {
    pub record: Record,
    pub replayed: bool,
}

#[derive(Debug)]
pub struct Uplink<const N: usize> {
    next_seq: u64,
    link_up: bool,
    ring: Ring<Queued, N>,
    dropped_total: u64,
}

impl<const N: usize> Default for Uplink<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Uplink<N> {
    /// Starts with sequence number 1 and the link up.
    pub const fn new() -> Self {
        Uplink {
            next_seq: 1,
            link_up: true,
            ring: Ring::new(),
            dropped_total: 0,
        }
    }

    pub const fn link_up(&self) -> bool {
        self.link_up
    }

    /// Records waiting to be sent.
    pub const fn pending(&self) -> usize {
        self.ring.len()
    }

    /// Records lost to overflow since start.
    pub const fn dropped_total(&self) -> u64 {
        self.dropped_total + self.ring.dropped() as u64
    }

    /// The link went down or came back. On return, a pending overflow count becomes a
    /// `buffer_overflow` event queued behind the replay.
    pub fn set_link(&mut self, up: bool, ts: i64) {
        if up && !self.link_up {
            // The event itself takes a slot; if that evicts one more record, count it too.
            let dropped = self.ring.take_dropped() + u32::from(self.ring.is_full());
            if dropped > 0 {
                self.dropped_total += dropped as u64;
                self.link_up = true;
                self.push(
                    ts,
                    Message::Event(EventBody {
                        kind: EventKind::BufferOverflow,
                        phase: EventPhase::Alarm,
                        severity: EventSeverity::Warning,
                        value: Some(dropped as f32),
                        message: Some("store-and-forward buffer full; oldest records dropped"),
                    }),
                );
                self.ring.take_dropped();
            }
        }
        self.link_up = up;
    }

    /// Stamps `message` with `ts` and the next sequence number and queues it.
    pub fn push(&mut self, ts: i64, message: Message) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ring.push(Queued {
            record: Record { ts, seq, message },
            replayed: !self.link_up,
        });
        seq
    }

    /// The next record to transmit, if the link is up. Call [`Uplink::ack`] once it is sent.
    pub fn next(&self) -> Option<&Queued> {
        if self.link_up { self.ring.peek() } else { None }
    }

    /// The record from [`Uplink::next`] was handed to the radio.
    pub fn ack(&mut self) -> Option<Queued> {
        self.ring.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metrics, Stream};

    fn tm() -> Message {
        Message::Telemetry {
            stream: Stream::GreaseTrap,
            metrics: Metrics::new(),
        }
    }

    fn drain<const N: usize>(u: &mut Uplink<N>) -> ([(u64, bool); 16], usize) {
        let mut out = [(0, false); 16];
        let mut n = 0;
        while let Some(q) = u.next().copied() {
            out[n] = (q.record.seq, q.replayed);
            n += 1;
            u.ack();
        }
        (out, n)
    }

    #[test]
    fn replays_in_order_after_the_link_returns() {
        let mut u = Uplink::<8>::new();
        u.push(0, tm());
        let (out, n) = drain(&mut u);
        assert_eq!(&out[..n], &[(1, false)]);
        u.set_link(false, 10);
        for t in 0..3 {
            u.push(t, tm());
        }
        assert!(u.next().is_none(), "nothing goes out while down");
        u.set_link(true, 20);
        let (out, n) = drain(&mut u);
        assert_eq!(&out[..n], &[(2, true), (3, true), (4, true)]);
        assert_eq!(u.dropped_total(), 0);
    }

    #[test]
    fn overflow_keeps_the_newest_and_reports_the_loss() {
        let mut u = Uplink::<4>::new();
        u.set_link(false, 0);
        for t in 0..10 {
            u.push(t, tm());
        }
        u.set_link(true, 100);
        let mut seqs = [0u64; 8];
        let mut n = 0;
        let mut overflow = None;
        while let Some(q) = u.next().copied() {
            seqs[n] = q.record.seq;
            n += 1;
            if let Message::Event(e) = q.record.message {
                overflow = Some((e.kind, e.value));
            }
            u.ack();
        }
        // Capacity 4: pushing the overflow event itself evicts one more buffered record.
        assert_eq!(&seqs[..n], &[8, 9, 10, 11]);
        assert_eq!(overflow, Some((EventKind::BufferOverflow, Some(7.0))));
        assert_eq!(u.dropped_total(), 7);
    }
}
