//! Splits a byte stream of concatenated JPEGs (ffmpeg's `-f image2pipe -c:v mjpeg` output) into
//! whole frames, by walking the JPEG markers: a frame ends at the EOI marker that follows its
//! entropy-coded data, never at an `FF D9` inside a header segment (ICC profiles, thumbnails).
//! Pure and bounded: a frame longer than the limit, or bytes that are not JPEG, are an error
//! and the caller restarts the stream rather than buffering without end.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum SplitError {
    #[error("the stream is not JPEG (no start-of-image marker)")]
    NotJpeg,
    #[error("a frame is longer than {0} bytes")]
    TooLarge(usize),
    #[error("corrupt JPEG marker 0x{0:02X}")]
    Corrupt(u8),
}

/// Accumulates bytes; [`JpegSplitter::next_frame`] takes out each whole frame.
#[derive(Debug)]
pub(crate) struct JpegSplitter {
    buf: Vec<u8>,
    max_frame: usize,
}

enum Scan {
    Frame(usize),
    NeedMore,
}

impl JpegSplitter {
    pub(crate) fn new(max_frame: usize) -> Self {
        JpegSplitter {
            buf: Vec::new(),
            max_frame,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` until one is complete.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>, SplitError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.buf.len() >= 2 && self.buf[..2] != [0xFF, 0xD8] {
            return Err(SplitError::NotJpeg);
        }
        match scan(&self.buf)? {
            Scan::Frame(end) => {
                let rest = self.buf.split_off(end);
                Ok(Some(std::mem::replace(&mut self.buf, rest)))
            }
            Scan::NeedMore if self.buf.len() > self.max_frame => {
                Err(SplitError::TooLarge(self.max_frame))
            }
            Scan::NeedMore => Ok(None),
        }
    }
}

/// Walks the markers of the frame at the start of `b` (which begins with SOI).
fn scan(b: &[u8]) -> Result<Scan, SplitError> {
    let mut i = 2;
    loop {
        // Fill bytes (0xFF repeated) may precede a marker.
        while i + 1 < b.len() && b[i] == 0xFF && b[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= b.len() {
            return Ok(Scan::NeedMore);
        }
        if b[i] != 0xFF {
            return Err(SplitError::Corrupt(b[i]));
        }
        let marker = b[i + 1];
        i += 2;
        match marker {
            0xD9 => return Ok(Scan::Frame(i)),
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | 0xD8 => return Err(SplitError::Corrupt(marker)),
            _ => {}
        }
        if i + 1 >= b.len() {
            return Ok(Scan::NeedMore);
        }
        let len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        if len < 2 {
            return Err(SplitError::Corrupt(marker));
        }
        i += len;
        if marker != 0xDA {
            continue;
        }
        // Entropy-coded data after start-of-scan: `FF 00` is a stuffed byte and `FF D0..D7`
        // a restart marker; any other `FF xx` is the next marker.
        loop {
            if i + 1 >= b.len() {
                return Ok(Scan::NeedMore);
            }
            if b[i] == 0xFF && !matches!(b[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                break;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x as u8).wrapping_mul(7) ^ seed,
                (y as u8).wrapping_mul(13),
                seed,
            ])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&img)
            .expect("encode");
        out
    }

    #[test]
    fn concatenated_frames_come_out_whole_whatever_the_chunking() {
        let frames = [jpeg(64, 48, 1), jpeg(32, 32, 200), jpeg(80, 20, 255)];
        let stream: Vec<u8> = frames.concat();
        for chunk in [1, 7, 1000, stream.len()] {
            let mut s = JpegSplitter::new(1 << 20);
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                s.push(part);
                while let Some(f) = s.next_frame().expect("valid stream") {
                    got.push(f);
                }
            }
            assert_eq!(got, frames.to_vec(), "chunk size {chunk}");
            for f in &got {
                image::load_from_memory(f).expect("each frame decodes");
            }
        }
    }

    #[test]
    fn an_eoi_inside_a_header_segment_does_not_end_the_frame() {
        let f = jpeg(16, 16, 9);
        // A COM segment holding FF D9 right after SOI.
        let mut with_com = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9];
        with_com.extend_from_slice(&f[2..]);
        let mut s = JpegSplitter::new(1 << 20);
        s.push(&with_com);
        s.push(&f);
        assert_eq!(s.next_frame().unwrap(), Some(with_com.clone()));
        assert_eq!(s.next_frame().unwrap(), Some(f));
        assert_eq!(s.next_frame().unwrap(), None);
    }

    #[test]
    fn garbage_and_endless_frames_are_errors_not_growth() {
        let mut s = JpegSplitter::new(1 << 20);
        s.push(b"HTTP/1.1 500 oops");
        assert_eq!(s.next_frame(), Err(SplitError::NotJpeg));

        let f = jpeg(64, 64, 3);
        let mut s = JpegSplitter::new(100);
        s.push(&f[..f.len() - 2]);
        assert_eq!(s.next_frame(), Err(SplitError::TooLarge(100)));
    }
}
