//! Ultrasonic distance sensor with UART output: DFRobot A02YYUW, and the JSN-SR04T / AJ-SR04M
//! in their serial mode (9600 8N1).
//!
//! Each measurement is a 4-byte frame: `0xFF, DATA_H, DATA_L, SUM` with distance in mm =
//! `DATA_H << 8 | DATA_L` and `SUM = (0xFF + DATA_H + DATA_L) & 0xFF`. The sensor streams frames
//! every ~100 ms, so a reader that starts mid-frame, or loses a byte, has to resynchronise on
//! the next header. A `0xFF` can also appear inside a frame (DATA_H/DATA_L/SUM), so after a bad
//! checksum the parser rescans the bytes it already has rather than discarding them.

use embedded_hal_nb::serial::Read;

/// Frame header byte.
pub const HEADER: u8 = 0xFF;

/// The checksum of a frame's first three bytes.
pub const fn checksum(h: u8, l: u8) -> u8 {
    HEADER.wrapping_add(h).wrapping_add(l)
}

/// The four bytes the sensor sends for `distance_mm`.
pub const fn frame(distance_mm: u16) -> [u8; 4] {
    let [h, l] = distance_mm.to_be_bytes();
    [HEADER, h, l, checksum(h, l)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A complete frame whose checksum did not match.
    Checksum { expected: u8, got: u8 },
}

/// Byte-at-a-time frame parser with resynchronisation. Pure; the driver feeds it.
#[derive(Debug, Clone, Default)]
pub struct FrameParser {
    buf: [u8; 4],
    len: usize,
}

impl FrameParser {
    pub const fn new() -> Self {
        FrameParser {
            buf: [0; 4],
            len: 0,
        }
    }

    /// Feeds one byte; returns a distance in mm when a frame completes, or an error for a
    /// complete frame with a bad checksum.
    pub fn push(&mut self, byte: u8) -> Option<Result<u16, FrameError>> {
        if self.len == 0 && byte != HEADER {
            return None; // hunting for a header
        }
        self.buf[self.len] = byte;
        self.len += 1;
        if self.len < 4 {
            return None;
        }
        let [_, h, l, sum] = self.buf;
        let expected = checksum(h, l);
        if sum == expected {
            self.len = 0;
            return Some(Ok(u16::from_be_bytes([h, l])));
        }
        // Resync: keep the bytes after the false header, starting at the next 0xFF among them.
        let rest = self.buf;
        self.len = 0;
        if let Some(i) = rest[1..].iter().position(|&b| b == HEADER) {
            for &b in &rest[1 + i..] {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Some(Err(FrameError::Checksum { expected, got: sum }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART reported an error (framing, overrun, noise, parity).
    Serial(E),
    Frame(FrameError),
}

/// A02YYUW-style sensor on a non-blocking serial port (`embedded_hal_nb::serial::Read`).
pub struct A02yyuw<S> {
    serial: S,
    parser: FrameParser,
}

impl<S: Read<u8>> A02yyuw<S> {
    pub fn new(serial: S) -> Self {
        A02yyuw {
            serial,
            parser: FrameParser::new(),
        }
    }

    /// Reads available bytes until a frame completes. `WouldBlock` when the UART has no more
    /// bytes yet; a partial frame is kept for the next call.
    pub fn read_mm(&mut self) -> nb::Result<u16, Error<S::Error>> {
        loop {
            let byte = self.serial.read().map_err(|e| e.map(Error::Serial))?;
            match self.parser.push(byte) {
                None => continue,
                Some(Ok(mm)) => return Ok(mm),
                Some(Err(e)) => return Err(nb::Error::Other(Error::Frame(e))),
            }
        }
    }

    pub fn release(self) -> S {
        self.serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_helper_matches_the_datasheet_example() {
        // A02YYUW datasheet: FF 07 A1 A7 = 0x07A1 = 1953 mm.
        assert_eq!(frame(1953), [0xFF, 0x07, 0xA1, 0xA7]);
    }

    #[test]
    fn parser_resyncs_on_a_header_inside_a_bad_frame() {
        let mut p = FrameParser::new();
        let mut out = [None; 9];
        for (o, b) in out
            .iter_mut()
            .zip([0x12, 0xFF, 0xFF, 0x07, 0xA1, 0xA7, 0xFF, 0x00, 0x1E])
        {
            *o = p.push(b);
        }
        assert_eq!(out[1..4], [None, None, None]);
        assert_eq!(
            out[4],
            Some(Err(FrameError::Checksum {
                expected: 0x05,
                got: 0xA1
            }))
        );
        assert_eq!(out[5], Some(Ok(1953)));
        assert_eq!(out[8], None, "frame not complete yet");
        assert_eq!(p.push(0x1D), Some(Ok(30)));
    }
}
