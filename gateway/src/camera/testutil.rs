//! Synthetic pictures for unit tests: a textured "scene", noise, blobs, sky, shifts.

use super::frame::{self, Frame};

pub(crate) const W: usize = 320;
pub(crate) const H: usize = 240;

/// Deterministic noise source (xorshift).
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal (sum of uniforms), standard deviation `sigma`.
    pub(crate) fn gauss(&mut self, sigma: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.next_f32()).sum::<f32>() - 2.0;
        s * sigma * 1.732
    }
}

/// An RGB picture as f32 planes, interleaved on output.
#[derive(Clone)]
pub(crate) struct Pic(pub Vec<[f32; 3]>);

impl Pic {
    /// A textured scene (shapes, gradients, stripes), shifted by `dx` pixels.
    pub(crate) fn scene(dx: i32) -> Pic {
        let mut v = Vec::with_capacity(W * H);
        for y in 0..H as i32 {
            for x in 0..W as i32 {
                let xs = (x + dx) as f32;
                let yf = y as f32;
                let mut l = 60.0 + 0.3 * yf;
                if ((xs / 23.0) as i32 + (yf / 31.0) as i32) % 2 == 0 {
                    l += 50.0;
                }
                l += 25.0 * (xs * 0.21).sin() * (yf * 0.13).cos();
                if (xs - 200.0).powi(2) + (yf - 120.0).powi(2) < 40.0 * 40.0 {
                    l = 220.0;
                }
                v.push([l * 1.05, l, l * 0.9]);
            }
        }
        Pic(v)
    }
    pub(crate) fn map(&self, f: impl Fn([f32; 3]) -> [f32; 3]) -> Pic {
        Pic(self.0.iter().map(|p| f(*p)).collect())
    }
    pub(crate) fn noisy(&self, rng: &mut Rng, sigma: f32) -> Pic {
        Pic(self
            .0
            .iter()
            .map(|p| {
                let n = rng.gauss(sigma);
                [p[0] + n, p[1] + n, p[2] + n]
            })
            .collect())
    }
    /// A bright box with a "clock" in the top-left corner, different for each `t`.
    pub(crate) fn clock(&self, t: u32) -> Pic {
        let mut p = self.clone();
        for y in 4..16 {
            for x in 4..90 {
                let on = ((x / 6) as u32 + t).is_multiple_of(3);
                p.0[y * W + x] = if on { [255.0; 3] } else { [0.0; 3] };
            }
        }
        p
    }
    /// Box blur of radius `r`.
    pub(crate) fn blurred(&self, r: i32) -> Pic {
        let mut out = self.clone();
        for y in 0..H as i32 {
            for x in 0..W as i32 {
                let mut s = [0f32; 3];
                let mut n = 0.0;
                for yy in (y - r).max(0)..=(y + r).min(H as i32 - 1) {
                    for xx in (x - r).max(0)..=(x + r).min(W as i32 - 1) {
                        let q = self.0[yy as usize * W + xx as usize];
                        s[0] += q[0];
                        s[1] += q[1];
                        s[2] += q[2];
                        n += 1.0;
                    }
                }
                out.0[y as usize * W + x as usize] = [s[0] / n, s[1] / n, s[2] / n];
            }
        }
        out
    }
    /// A dark, even blob (tape, a hand in shadow) over all but a corner.
    pub(crate) fn covered(&self) -> Pic {
        let mut p = self.clone();
        for y in 0..H {
            for x in 0..W {
                if x + y > 60 {
                    p.0[y * W + x] = [50.0, 42.0, 38.0];
                }
            }
        }
        p
    }
    /// A blue-to-white sky gradient.
    pub(crate) fn sky() -> Pic {
        Pic((0..W * H)
            .map(|i| {
                let t = (i / W) as f32 / H as f32;
                [80.0 + 140.0 * t, 135.0 + 95.0 * t, 215.0 + 30.0 * t]
            })
            .collect())
    }
    pub(crate) fn rgb8(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|p| p.map(|c| c.clamp(0.0, 255.0).round() as u8))
            .collect()
    }
    pub(crate) fn frame(&self) -> Frame {
        frame::downsample(&self.rgb8(), W, H)
    }
    pub(crate) fn jpeg(&self) -> Vec<u8> {
        let img = image::RgbImage::from_raw(W as u32, H as u32, self.rgb8()).expect("size");
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .expect("encode");
        out
    }
}
