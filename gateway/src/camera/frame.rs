//! One camera frame: JPEG bytes decoded once and reduced to a small working image that every
//! health check reads.
//!
//! The working image is [`WORK_W`] x [`WORK_H`] (area average, so sensor noise is averaged down
//! but not rounded away: values are `f32`), in grey plus a per-pixel colour copy for the
//! checks that care about hue (sky). Decoding never panics on outside data: corrupt, truncated
//! or oversized JPEGs give a [`FrameError`].

use std::io::Cursor;
use thiserror::Error;

/// Working image width (pixels).
pub(crate) const WORK_W: usize = 160;
/// Working image height (pixels).
pub(crate) const WORK_H: usize = 120;
/// Largest accepted side of a camera frame; bigger images are refused before decoding.
pub(crate) const MAX_SIDE: u32 = 8192;

/// Why a frame could not be used.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("empty frame (0 bytes)")]
    Empty,
    #[error("not a JPEG (no SOI marker at the start)")]
    NotJpeg,
    #[error("truncated JPEG: no end-of-image marker in the last bytes ({len} bytes received)")]
    Truncated { len: usize },
    #[error("frame too large: {width}x{height} (limit {MAX_SIDE} per side)")]
    TooLarge { width: u32, height: u32 },
    #[error("frame too small: {width}x{height} (need at least 16x16)")]
    TooSmall { width: u32, height: u32 },
    #[error("corrupt JPEG: {0}")]
    Decode(String),
    /// A new camera id on a site that already has `max` cameras: refused before decoding,
    /// so made-up ids cannot grow the gateway's per-camera state without bound.
    #[error("site {site} already has {max} cameras (cameras.max_per_site): camera refused")]
    TooManyCameras { site: String, max: usize },
}

/// A decoded frame reduced to the working resolution.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Size of the JPEG as sent.
    pub width: u32,
    pub height: u32,
    /// Luma (BT.601), row-major, `WORK_W * WORK_H`, 0..=255.
    pub gray: Vec<f32>,
    /// Red, green, blue planes at the working resolution, 0..=255.
    pub rgb: [Vec<f32>; 3],
}

/// Decodes a JPEG and downsamples it. Checks the SOI/EOI markers first so a truncated upload
/// is named as such rather than decoded with a grey tail (the decoder is lenient).
pub fn decode_jpeg(bytes: &[u8]) -> Result<Frame, FrameError> {
    decode_rgb(bytes).map(|rgb| Frame::of(&rgb))
}

/// Decodes a JPEG to full-size RGB with the same checks as [`decode_jpeg`]. A frame that is
/// both health-checked and analysed (parking) is decoded once with this and shared: decoding
/// is the largest cost of a health check on a multi-megapixel frame.
pub fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage, FrameError> {
    if bytes.is_empty() {
        return Err(FrameError::Empty);
    }
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(FrameError::NotJpeg);
    }
    if !has_eoi(bytes) {
        return Err(FrameError::Truncated { len: bytes.len() });
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    // The decoder is fuzzed, but outside data must never take the gateway down: a panic inside
    // it becomes a decode error for this frame only.
    let decoded = std::panic::catch_unwind(move || reader.decode())
        .map_err(|_| FrameError::Decode("decoder panicked".into()))?
        .map_err(|e| match e {
            image::ImageError::Limits(l) => FrameError::Decode(format!(
                "over the decode limits ({MAX_SIDE} px a side): {l}"
            )),
            other => FrameError::Decode(other.to_string()),
        })?;
    let (width, height) = (decoded.width(), decoded.height());
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(FrameError::TooLarge { width, height });
    }
    if width < 16 || height < 16 {
        return Err(FrameError::TooSmall { width, height });
    }
    Ok(decoded.into_rgb8())
}

impl Frame {
    /// The working image of a decoded frame.
    pub fn of(rgb: &image::RgbImage) -> Frame {
        downsample(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)
    }
}

/// An EOI marker (`FF D9`) within the last 64 bytes (some encoders pad after it).
fn has_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Area-average an RGB8 buffer of `w` x `h` down to the working size (one pass over the source).
pub(crate) fn downsample(rgb: &[u8], w: usize, h: usize) -> Frame {
    let n = WORK_W * WORK_H;
    let mut sums = [vec![0u32; n], vec![0u32; n], vec![0u32; n]];
    let mut counts = vec![0u32; n];
    let col_of: Vec<usize> = (0..w).map(|x| x * WORK_W / w).collect();
    for y in 0..h {
        let row = (y * WORK_H / h) * WORK_W;
        let src = &rgb[y * w * 3..(y + 1) * w * 3];
        for (x, px) in src.chunks_exact(3).enumerate() {
            let i = row + col_of[x];
            sums[0][i] += u32::from(px[0]);
            sums[1][i] += u32::from(px[1]);
            sums[2][i] += u32::from(px[2]);
            counts[i] += 1;
        }
    }
    let mut planes = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    for (plane, sum) in planes.iter_mut().zip(sums.iter()) {
        for ((p, s), c) in plane.iter_mut().zip(sum).zip(&counts) {
            *p = if *c == 0 { 0.0 } else { *s as f32 / *c as f32 };
        }
    }
    let gray = (0..n)
        .map(|i| 0.299 * planes[0][i] + 0.587 * planes[1][i] + 0.114 * planes[2][i])
        .collect();
    Frame {
        width: w as u32,
        height: h as u32,
        gray,
        rgb: planes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .expect("encode");
        out
    }

    #[test]
    fn decodes_and_downsamples_to_working_size() {
        let jpeg = encode(640, 480, |x, _| [if x < 320 { 0 } else { 255 }; 3]);
        let f = decode_jpeg(&jpeg).expect("decode");
        assert_eq!((f.width, f.height), (640, 480));
        assert_eq!(f.gray.len(), WORK_W * WORK_H);
        assert!(f.gray[WORK_W * 60 + 10] < 10.0);
        assert!(f.gray[WORK_W * 60 + 150] > 245.0);
    }

    #[test]
    fn truncated_jpeg_is_a_clear_error() {
        let jpeg = encode(320, 240, |x, y| [(x % 255) as u8, (y % 255) as u8, 7]);
        for cut in [0, 1, 3, 100, jpeg.len() / 2, jpeg.len() - 2] {
            let e = decode_jpeg(&jpeg[..cut]).expect_err("must fail");
            let msg = e.to_string();
            assert!(
                msg.contains("truncated") || msg.contains("empty") || msg.contains("not a JPEG"),
                "{cut}: {msg}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let jpeg = encode(64, 64, |x, y| [(x * 3) as u8, (y * 5) as u8, 40]);
        let mut seed = 12345u32;
        for _ in 0..300 {
            let mut b = jpeg.clone();
            for _ in 0..8 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = 2 + (seed as usize >> 8) % (b.len() - 4);
                b[i] = (seed >> 3) as u8;
            }
            let _ = decode_jpeg(&b);
        }
        assert!(matches!(
            decode_jpeg(b"hello world"),
            Err(FrameError::NotJpeg)
        ));
    }
}
