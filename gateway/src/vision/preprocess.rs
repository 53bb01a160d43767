//! Image decoding with limits, and fast bilinear resize straight into planar f32 tensors
//! (letterbox for the detector, plain resize for plates).

use super::VisionError;
use image::{ImageFormat, RgbImage};

/// Limits applied before a camera frame or drone still is decoded.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Largest accepted encoded size in bytes.
    pub max_bytes: usize,
    /// Largest accepted width or height in pixels.
    pub max_side: u32,
    /// Largest accepted pixel count (width x height).
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        // A 48 MP drone still fits (8000 x 6000); a decompression bomb does not.
        ImageLimits {
            max_bytes: 64 << 20,
            max_side: 12_000,
            max_pixels: 64_000_000,
        }
    }
}

impl ImageLimits {
    /// The limits [`decode_image`] applies, for an image some other path already decoded
    /// (a camera frame decoded once for health and parking).
    pub fn check_decoded(&self, bytes: usize, img: &RgbImage) -> Result<(), VisionError> {
        let (w, h) = img.dimensions();
        if bytes > self.max_bytes {
            return Err(VisionError::Image(format!(
                "{bytes} bytes is over the {} byte limit",
                self.max_bytes
            )));
        }
        if w == 0
            || h == 0
            || w > self.max_side
            || h > self.max_side
            || u64::from(w) * u64::from(h) > self.max_pixels
        {
            return Err(VisionError::Image(format!(
                "{w}x{h} is outside the limits ({} px per side, {} px)",
                self.max_side, self.max_pixels
            )));
        }
        Ok(())
    }
}

/// Decodes a JPEG or PNG into RGB. Corrupt, truncated, unsupported or oversized images are
/// rejected with [`VisionError::Image`]; the dimensions are checked before pixels are decoded.
pub fn decode_image(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::Image("empty body".into()));
    }
    if bytes.len() > limits.max_bytes {
        return Err(VisionError::Image(format!(
            "{} bytes is over the {} byte limit",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| VisionError::Image("not a JPEG or PNG image".into()))?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(VisionError::Image(format!("unsupported format {format:?}")));
    }
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if format == ImageFormat::Jpeg && !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        // zune-jpeg fills a truncated scan with grey instead of failing: a half frame must not
        // become evidence.
        return Err(VisionError::Image(
            "truncated JPEG (no end-of-image marker)".into(),
        ));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(4));
    reader.limits(l.clone());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| VisionError::Image(format!("unreadable header: {e}")))?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(VisionError::Image(format!(
            "{w}x{h} is outside the limits ({} px per side, {} px)",
            limits.max_side, limits.max_pixels
        )));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(l);
    let img = reader
        .decode()
        .map_err(|e| VisionError::Image(format!("decoding {w}x{h} {format:?}: {e}")))?;
    Ok(img.into_rgb8())
}

/// A region of the source image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Roi {
    pub fn whole(img: &RgbImage) -> Self {
        Roi {
            x: 0.0,
            y: 0.0,
            w: img.width() as f32,
            h: img.height() as f32,
        }
    }
}

/// How source pixels become tensor values: `out[c] = src[order[c]] * scale[c] + bias[c]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normalize {
    /// Source channel (0 = R, 1 = G, 2 = B) for each output channel.
    pub order: [usize; 3],
    pub scale: [f32; 3],
    pub bias: [f32; 3],
}

impl Normalize {
    /// RGB in 0..1 (Darknet).
    pub(crate) const RGB_UNIT: Normalize = Normalize {
        order: [0, 1, 2],
        scale: [1.0 / 255.0; 3],
        bias: [0.0; 3],
    };
}

/// A planar `[3, height, width]` destination and where the resized picture goes in it.
#[derive(Debug)]
pub(crate) struct Plane<'a> {
    pub data: &'a mut [f32],
    pub width: usize,
    pub height: usize,
}

/// Bilinear resize of `roi` into a `dst_w x dst_h` window at (`off_x`, `off_y`) of `plane`
/// (pixel-centre alignment, edges clamped). Pixels of the plane outside the window are left as
/// they are.
pub(crate) fn resize_into(
    img: &RgbImage,
    roi: Roi,
    plane: &mut Plane<'_>,
    (off_x, off_y, dst_w, dst_h): (usize, usize, usize, usize),
    norm: &Normalize,
) {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    if sw == 0 || sh == 0 || dst_w == 0 || dst_h == 0 {
        return;
    }
    let dst_w = dst_w.min(plane.width.saturating_sub(off_x));
    let dst_h = dst_h.min(plane.height.saturating_sub(off_y));
    let raw = img.as_raw();
    let fx = roi.w / dst_w as f32;
    let fy = roi.h / dst_h as f32;
    let axis = |i: usize, f: f32, start: f32, len: usize| -> (usize, usize, f32) {
        let s = (start + (i as f32 + 0.5) * f - 0.5).clamp(0.0, (len - 1) as f32);
        let i0 = s.floor() as usize;
        let i1 = (i0 + 1).min(len - 1);
        (i0, i1, s - i0 as f32)
    };
    let xs: Vec<(usize, usize, f32)> = (0..dst_w).map(|x| axis(x, fx, roi.x, sw)).collect();
    let plane_len = plane.width * plane.height;
    for y in 0..dst_h {
        let (y0, y1, wy) = axis(y, fy, roi.y, sh);
        let r0 = &raw[y0 * sw * 3..(y0 + 1) * sw * 3];
        let r1 = &raw[y1 * sw * 3..(y1 + 1) * sw * 3];
        let row = (off_y + y) * plane.width + off_x;
        for (x, &(x0, x1, wx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let s = norm.order[c];
                let a = f32::from(r0[x0 * 3 + s]);
                let b = f32::from(r0[x1 * 3 + s]);
                let cc = f32::from(r1[x0 * 3 + s]);
                let d = f32::from(r1[x1 * 3 + s]);
                let top = a + (b - a) * wx;
                let bot = cc + (d - cc) * wx;
                let v = top + (bot - top) * wy;
                plane.data[c * plane_len + row + x] = v * norm.scale[c] + norm.bias[c];
            }
        }
    }
}

/// A quadrilateral of the source image: top-left, top-right, bottom-right, bottom-left corners.
pub(crate) type Quad = [(f32, f32); 4];

/// Mean width (top and bottom edges) and height (left and right edges) of `q`.
pub(crate) fn quad_size(q: &Quad) -> (f32, f32) {
    let d = |a: (f32, f32), b: (f32, f32)| (a.0 - b.0).hypot(a.1 - b.1);
    (
        (d(q[0], q[1]) + d(q[3], q[2])) / 2.0,
        (d(q[0], q[3]) + d(q[1], q[2])) / 2.0,
    )
}

/// The point of `quad` at `(u, v)` of the unit square (bilinear blend of the corners).
pub(crate) fn quad_point(q: &Quad, u: f32, v: f32) -> (f32, f32) {
    let lerp =
        |a: (f32, f32), b: (f32, f32), t: f32| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
    lerp(lerp(q[0], q[1], u), lerp(q[3], q[2], u), v)
}

/// Like [`resize_into`], but takes the quadrilateral `quad` of `img` and straightens it into the
/// window: a plate seen from the side or turned reaches the recogniser level and square. The
/// window's pixel centres map to `quad` bilinearly (for a plate's small perspective this is
/// within a pixel of the true homography); an axis-aligned rectangle gives what
/// [`resize_into`] gives for that rectangle.
pub(crate) fn warp_into(
    img: &RgbImage,
    quad: &Quad,
    plane: &mut Plane<'_>,
    (off_x, off_y, dst_w, dst_h): (usize, usize, usize, usize),
    norm: &Normalize,
) {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    if sw == 0 || sh == 0 || dst_w == 0 || dst_h == 0 {
        return;
    }
    let dst_w = dst_w.min(plane.width.saturating_sub(off_x));
    let dst_h = dst_h.min(plane.height.saturating_sub(off_y));
    let plane_len = plane.width * plane.height;
    for y in 0..dst_h {
        let v = (y as f32 + 0.5) / dst_h as f32;
        let row = (off_y + y) * plane.width + off_x;
        for x in 0..dst_w {
            let (sx, sy) = quad_point(quad, (x as f32 + 0.5) / dst_w as f32, v);
            let fx = (sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let fy = (sy - 0.5).clamp(0.0, (sh - 1) as f32);
            let rgb = bilinear_rgb(img, fx, fy);
            for c in 0..3 {
                let val = rgb[norm.order[c]];
                plane.data[c * plane_len + row + x] = val * norm.scale[c] + norm.bias[c];
            }
        }
    }
}

/// The RGB value of `img` at `(fx, fy)` (pixel coordinates already within the image, pixel
/// centres at whole numbers), blended bilinearly from the four pixels around it.
pub(crate) fn bilinear_rgb(img: &RgbImage, fx: f32, fy: f32) -> [f32; 3] {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let px = |x: usize, y: usize, c: usize| f32::from(raw[(y * sw + x) * 3 + c]);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(sw - 1), (y0 + 1).min(sh - 1));
    let (wx, wy) = (fx - x0 as f32, fy - y0 as f32);
    std::array::from_fn(|c| {
        let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * wx;
        let bot = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * wx;
        top + (bot - top) * wy
    })
}

/// Where a letterboxed picture sits in the square network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub size: u32,
    /// Input pixels per source pixel, across and down: the picture's whole-pixel size over the
    /// region's, so the two differ by the rounding of the shorter side.
    pub scale: (f32, f32),
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    /// Maps a point of the network input back to source-image pixels.
    pub(crate) fn to_source(self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.pad_x) / self.scale.0,
            (y - self.pad_y) / self.scale.1,
        )
    }
}

/// Letterboxes `roi` of `img` into `out` (`[3, size, size]`, RGB 0..1, grey 0.5 borders), as
/// Darknet does: the longer side (relative to the input) fills it, the other is
/// `other * size / longer` rounded down, computed so that a whole result stays whole (in f32,
/// 720 x (416 / 1280) is 233.99998: a 1280 x 720 frame lost its last row and boxes came back
/// 3 px high at its bottom).
pub fn letterbox_into(img: &RgbImage, roi: Roi, size: u32, out: &mut [f32]) -> Letterbox {
    let s = size as usize;
    out[..3 * s * s].fill(0.5);
    let (rw, rh, fs) = (f64::from(roi.w), f64::from(roi.h), f64::from(size));
    let (nw, nh) = if rw >= rh {
        (fs, (rh * fs / rw).floor())
    } else {
        ((rw * fs / rh).floor(), fs)
    };
    let fit = |v: f64| -> usize {
        if v.is_finite() {
            (v as usize).clamp(1, s)
        } else {
            1
        }
    };
    let (nw, nh) = (fit(nw), fit(nh));
    let (dx, dy) = ((s - nw) / 2, (s - nh) / 2);
    let mut plane = Plane {
        data: &mut out[..3 * s * s],
        width: s,
        height: s,
    };
    resize_into(img, roi, &mut plane, (dx, dy, nw, nh), &Normalize::RGB_UNIT);
    let scale = (
        nw as f32 / roi.w.max(f32::MIN_POSITIVE),
        nh as f32 / roi.h.max(f32::MIN_POSITIVE),
    );
    Letterbox {
        size,
        scale,
        pad_x: dx as f32 - roi.x * scale.0,
        pad_y: dy as f32 - roi.y * scale.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_centres_a_wide_image_and_maps_back() {
        let img = RgbImage::from_pixel(832, 416, image::Rgb([255, 0, 0]));
        let mut out = vec![0.0; 3 * 416 * 416];
        let lb = letterbox_into(&img, Roi::whole(&img), 416, &mut out);
        assert_eq!(lb.scale, (0.5, 0.5));
        assert_eq!(lb.pad_y, 104.0);
        // Grey above, red inside.
        assert_eq!(out[0], 0.5);
        assert_eq!(out[208 * 416 + 10], 1.0);
        assert_eq!(out[416 * 416 + 208 * 416 + 10], 0.0);
        let (x, y) = lb.to_source(208.0, 208.0);
        assert!((x - 416.0).abs() < 1e-3 && (y - 208.0).abs() < 1e-3);
    }

    /// The picture's edges map back to the frame's on both axes. A 1280 x 720 camera frame at
    /// 416 / 1280 is 416 x 234 (Darknet: 720 * 416 / 1280); in f32 that product is 233.99998,
    /// truncated to 233, and boxes were mapped back by the asked-for scale: the frame's bottom
    /// came out at 716.9. A 1920 x 1078 frame's picture is 233.6 rows, a whole number of pixels
    /// either way: mapped back by its own size, not by the scale.
    #[test]
    fn letterboxed_picture_edges_map_back_to_the_frame_edges() {
        for (w, h, pic_h) in [(1280, 720, 234), (2560, 1440, 234), (1920, 1078, 233)] {
            let img = RgbImage::new(w, h);
            let mut out = vec![0.0; 3 * 416 * 416];
            let lb = letterbox_into(&img, Roi::whole(&img), 416, &mut out);
            let top = (416 - pic_h) / 2;
            // Grey border above the picture, picture (black) from `top` on.
            assert_eq!(out[(top as usize - 1) * 416], 0.5, "{w} x {h}");
            assert_eq!(out[top as usize * 416], 0.0, "{w} x {h}");
            assert_eq!(out[(top + pic_h - 1) as usize * 416], 0.0, "{w} x {h}");
            assert_eq!(out[(top + pic_h) as usize * 416], 0.5, "{w} x {h}");
            let (x0, y0) = lb.to_source(0.0, top as f32);
            let (x1, y1) = lb.to_source(416.0, (top + pic_h) as f32);
            let near = |a: f32, b: u32| (a - b as f32).abs() < 1e-2;
            assert!(near(x0, 0) && near(y0, 0), "{w} x {h}: {x0} {y0}");
            assert!(near(x1, w) && near(y1, h), "{w} x {h}: {x1} {y1}");
        }
    }

    /// On an axis-aligned rectangle the warp is the resize; on a turned quad it straightens:
    /// a diagonal stripe sampled along its own direction comes out as one flat row.
    #[test]
    fn warping_a_rectangle_is_resizing_and_a_turned_quad_is_straightened() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 7]));
        let norm = Normalize::RGB_UNIT;
        let (w, h) = (17, 9);
        let mut a = vec![0.0; 3 * w * h];
        let mut b = vec![0.0; 3 * w * h];
        let roi = Roi {
            x: 3.0,
            y: 4.0,
            w: 25.0,
            h: 12.0,
        };
        let quad = [(3.0, 4.0), (28.0, 4.0), (28.0, 16.0), (3.0, 16.0)];
        let plane = |d| Plane {
            data: d,
            width: w,
            height: h,
        };
        resize_into(&img, roi, &mut plane(&mut a), (0, 0, w, h), &norm);
        warp_into(&img, &quad, &mut plane(&mut b), (0, 0, w, h), &norm);
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
        // Red grows with x + y. The quad's top edge runs along x + y = 40 and its bottom along
        // x + y = 60 (a plate turned 45 degrees): straightened, each row is one red value.
        let diag = RgbImage::from_fn(64, 64, |x, y| image::Rgb([((x + y) * 2) as u8, 0, 0]));
        let turned = [(10.0, 30.0), (30.0, 10.0), (40.0, 20.0), (20.0, 40.0)];
        let mut c = vec![0.0; 3 * 8 * 4];
        let mut p = Plane {
            data: &mut c,
            width: 8,
            height: 4,
        };
        warp_into(&diag, &turned, &mut p, (0, 0, 8, 4), &norm);
        assert!(
            c[..8].iter().all(|r| (r - c[0]).abs() < 1e-5),
            "{:?}",
            &c[..8]
        );
        assert!(c[8] > c[0], "rows further down the quad are redder");
    }

    #[test]
    fn rejects_garbage_truncated_and_huge_images() {
        let l = ImageLimits::default();
        assert!(decode_image(b"", &l).is_err());
        assert!(decode_image(b"hello world, not an image", &l).is_err());
        let img = RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30]));
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .expect("encode");
        assert_eq!(
            decode_image(&jpeg, &l).expect("decode").dimensions(),
            (64, 48)
        );
        let cut = &jpeg[..jpeg.len() / 2];
        assert!(matches!(decode_image(cut, &l), Err(VisionError::Image(_))));
        let small = ImageLimits { max_side: 32, ..l };
        let err = decode_image(&jpeg, &small).expect_err("too big");
        assert!(err.to_string().contains("image rejected"), "{err}");
    }
}
