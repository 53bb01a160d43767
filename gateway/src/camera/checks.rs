//! Per-frame health checks: pure functions over the working image, cheap enough for every frame.
//!
//! [`features`] computes everything once per frame (brightness percentiles, sharpness, flat
//! regions, colour, perceptual hash, edge map); the `is_*` functions compare those figures with
//! [`CheckThresholds`]. [`evaluate`] applies them in order of precedence so one frame yields at
//! most one "picture" condition (black, over-exposed, sky, covered, moved) plus, independently,
//! frozen.

use super::frame::{Frame, WORK_H, WORK_W};
use serde::{Deserialize, Serialize};

/// Side of the square blocks used for flat-region statistics (working pixels).
const BLOCK: usize = 8;
/// Edge maps are computed at half the working resolution.
const EDGE_W: usize = WORK_W / 2;
const EDGE_H: usize = WORK_H / 2;
/// Frozen-frame cells: the working image is split into `CELLS_X` x `CELLS_Y` cells.
const CELLS_X: usize = 8;
const CELLS_Y: usize = 6;

/// Thresholds of the per-frame checks. Defaults are tuned on the fixture set built from real
/// photos (`tests/camera/make_fixtures.py`); every camera may override any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckThresholds {
    /// Black/dark: the 95th luma percentile is below this (0..=255).
    pub black_p95: f32,
    /// Over-exposed: the 5th luma percentile is above this (all white)...
    pub overexposed_p05: f32,
    /// ...or the mean luma is above this while highlights clip (95th percentile above
    /// `overexposed_p95`).
    pub overexposed_mean: f32,
    pub overexposed_p95: f32,
    /// A block is "flat" when its luma standard deviation is below this.
    pub flat_std: f32,
    /// Sky/ceiling: share of the image in flat blocks brighter than `sky_min_luma`.
    pub sky_min_frac: f32,
    pub sky_min_luma: f32,
    /// Sky: mean blue minus red over those bright flat blocks.
    pub sky_blue_bias: f32,
    /// Ceiling (no blue needed): mean luma of those bright flat blocks is above this.
    pub ceiling_min_luma: f32,
    /// Covered: share of the image in flat blocks (hand, tape, cap).
    pub covered_flat_frac: f32,
    /// Covered, with a reference: and at least this much more of the image is flat than in it.
    pub covered_flat_margin: f32,
    /// Blurred: sharpness (`sqrt(Laplacian variance) / (mean luma + 10)`, which does not change
    /// with exposure) below this absolute floor...
    pub blur_sharpness: f32,
    /// ...or below this fraction of the enrolled reference frame's.
    pub blur_ratio_to_reference: f32,
    /// Frozen: a cell "changed" when its mean absolute difference to the previous frame is
    /// above this (grey levels at working resolution, where sensor noise is averaged down).
    pub frozen_cell_diff: f32,
    /// Frozen: at most this share of cells changed (a clock overlay changes only a few).
    pub frozen_max_changed_frac: f32,
    /// Moved: edge-map correlation with the reference below this...
    pub moved_edge_corr: f32,
    /// ...or dHash distance (of 64 bits) to the reference above this while the edge-map
    /// correlation is below `moved_hash_edge_corr`.
    pub moved_hash_distance: u32,
    pub moved_hash_edge_corr: f32,
}

impl Default for CheckThresholds {
    fn default() -> Self {
        CheckThresholds {
            black_p95: 40.0,
            overexposed_p05: 235.0,
            overexposed_mean: 200.0,
            overexposed_p95: 248.0,
            flat_std: 3.0,
            sky_min_frac: 0.6,
            sky_min_luma: 120.0,
            sky_blue_bias: 15.0,
            ceiling_min_luma: 200.0,
            covered_flat_frac: 0.7,
            covered_flat_margin: 0.15,
            blur_sharpness: 0.08,
            blur_ratio_to_reference: 0.5,
            frozen_cell_diff: 0.26,
            frozen_max_changed_frac: 0.15,
            moved_edge_corr: 0.6,
            moved_hash_distance: 10,
            moved_hash_edge_corr: 0.85,
        }
    }
}

/// Everything the checks need from one frame, computed once.
#[derive(Debug, Clone)]
pub struct Features {
    pub mean: f32,
    pub p05: f32,
    pub p50: f32,
    pub p95: f32,
    /// Variance of the 4-neighbour Laplacian.
    pub lap_var: f32,
    /// Luma variance (contrast).
    pub var: f32,
    /// `sqrt(lap_var) / (mean + 10)`: sharpness that does not change with exposure (gain).
    pub sharpness: f32,
    /// Share of blocks that are flat.
    pub flat_frac: f32,
    /// Share of blocks that are flat and brighter than `sky_min_luma`.
    pub bright_flat_frac: f32,
    /// Mean luma and blue-minus-red of the bright flat blocks (0 when there are none).
    pub bright_flat_luma: f32,
    pub bright_flat_blue_bias: f32,
    /// 64-bit difference hash (9x8 luma, left < right).
    pub dhash: u64,
    /// Gradient magnitude at half working resolution, for reference comparison.
    pub edges: Vec<f32>,
}

/// Per-frame figures and the conditions they meet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub black: bool,
    pub overexposed: bool,
    pub sky: bool,
    pub covered: bool,
    pub moved: bool,
    pub frozen: bool,
}

/// An enrolled reference frame: what the camera should see.
#[derive(Debug, Clone)]
pub struct Reference {
    pub dhash: u64,
    pub edges: Vec<f32>,
    pub sharpness: f32,
    pub flat_frac: f32,
}

impl Reference {
    pub fn from_features(f: &Features) -> Self {
        Reference {
            dhash: f.dhash,
            edges: f.edges.clone(),
            sharpness: f.sharpness,
            flat_frac: f.flat_frac,
        }
    }
}

/// Comparison with the previous frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrozenStats {
    pub identical_bytes: bool,
    pub hash_distance: u32,
    /// Share of cells whose mean absolute difference exceeds `frozen_cell_diff`.
    pub changed_cell_frac: f32,
    /// Median over cells of the mean absolute difference.
    pub median_cell_diff: f32,
}

/// Comparison with the reference frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MovedStats {
    pub hash_distance: u32,
    pub edge_corr: f32,
}

pub fn features(frame: &Frame, t: &CheckThresholds) -> Features {
    let g = &frame.gray;
    let n = g.len() as f32;
    let mut hist = [0u32; 256];
    let mut sum = 0f32;
    for &v in g {
        hist[v.clamp(0.0, 255.0) as usize] += 1;
        sum += v;
    }
    let pct = |p: f32| -> f32 {
        let target = (p * n) as u32;
        let mut acc = 0u32;
        for (i, c) in hist.iter().enumerate() {
            acc += c;
            if acc > target {
                return i as f32;
            }
        }
        255.0
    };

    // Laplacian variance.
    let (mut ls, mut ls2, mut ln) = (0f64, 0f64, 0f64);
    for y in 1..WORK_H - 1 {
        for x in 1..WORK_W - 1 {
            let i = y * WORK_W + x;
            let l = 4.0 * g[i] - g[i - 1] - g[i + 1] - g[i - WORK_W] - g[i + WORK_W];
            ls += f64::from(l);
            ls2 += f64::from(l) * f64::from(l);
            ln += 1.0;
        }
    }
    let lap_mean = ls / ln;
    let lap_var = (ls2 / ln - lap_mean * lap_mean) as f32;
    let mean = sum / n;
    let var = g.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;

    // Flat blocks.
    let (bx, by) = (WORK_W / BLOCK, WORK_H / BLOCK);
    let (mut flat, mut bright_flat) = (0u32, 0u32);
    let (mut bf_luma, mut bf_bias) = (0f32, 0f32);
    for j in 0..by {
        for i in 0..bx {
            let (mut s, mut s2, mut r, mut b) = (0f32, 0f32, 0f32, 0f32);
            for y in j * BLOCK..(j + 1) * BLOCK {
                for x in i * BLOCK..(i + 1) * BLOCK {
                    let k = y * WORK_W + x;
                    s += g[k];
                    s2 += g[k] * g[k];
                    r += frame.rgb[0][k];
                    b += frame.rgb[2][k];
                }
            }
            let m = (BLOCK * BLOCK) as f32;
            let mean = s / m;
            let std = (s2 / m - mean * mean).max(0.0).sqrt();
            if std < t.flat_std {
                flat += 1;
                if mean > t.sky_min_luma {
                    bright_flat += 1;
                    bf_luma += mean;
                    bf_bias += (b - r) / m;
                }
            }
        }
    }
    let blocks = (bx * by) as f32;
    let (bright_flat_luma, bright_flat_blue_bias) = if bright_flat > 0 {
        (bf_luma / bright_flat as f32, bf_bias / bright_flat as f32)
    } else {
        (0.0, 0.0)
    };

    Features {
        mean,
        p05: pct(0.05),
        p50: pct(0.5),
        p95: pct(0.95),
        lap_var,
        var,
        sharpness: lap_var.max(0.0).sqrt() / (mean + 10.0),
        flat_frac: flat as f32 / blocks,
        bright_flat_frac: bright_flat as f32 / blocks,
        bright_flat_luma,
        bright_flat_blue_bias,
        dhash: dhash(g),
        edges: edge_map(g),
    }
}

/// 64-bit dHash: area-average to 9x8, one bit per horizontal neighbour pair.
pub fn dhash(g: &[f32]) -> u64 {
    let mut small = [[0f32; 9]; 8];
    for (y, row) in small.iter_mut().enumerate() {
        let (y0, y1) = (y * WORK_H / 8, (y + 1) * WORK_H / 8);
        for (x, cell) in row.iter_mut().enumerate() {
            let (x0, x1) = (x * WORK_W / 9, (x + 1) * WORK_W / 9);
            let mut s = 0f32;
            for yy in y0..y1 {
                s += g[yy * WORK_W + x0..yy * WORK_W + x1].iter().sum::<f32>();
            }
            *cell = s / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    let mut h = 0u64;
    for row in &small {
        for x in 0..8 {
            h = (h << 1) | u64::from(row[x] < row[x + 1]);
        }
    }
    h
}

/// Gradient magnitude (central differences) on the 2x2-averaged working image.
fn edge_map(g: &[f32]) -> Vec<f32> {
    let mut half = vec![0f32; EDGE_W * EDGE_H];
    for y in 0..EDGE_H {
        for x in 0..EDGE_W {
            let k = 2 * y * WORK_W + 2 * x;
            half[y * EDGE_W + x] = (g[k] + g[k + 1] + g[k + WORK_W] + g[k + WORK_W + 1]) * 0.25;
        }
    }
    let mut e = vec![0f32; EDGE_W * EDGE_H];
    for y in 1..EDGE_H - 1 {
        for x in 1..EDGE_W - 1 {
            let k = y * EDGE_W + x;
            let gx = half[k + 1] - half[k - 1];
            let gy = half[k + EDGE_W] - half[k - EDGE_W];
            e[k] = (gx * gx + gy * gy).sqrt();
        }
    }
    e
}

/// Pearson correlation of two equally long maps (0 when either is constant).
pub(crate) fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    let cov = sab / n - (sa / n) * (sb / n);
    let va = saa / n - (sa / n).powi(2);
    let vb = sbb / n - (sb / n).powi(2);
    if va <= 1e-9 || vb <= 1e-9 {
        return 0.0;
    }
    (cov / (va * vb).sqrt()) as f32
}

pub(crate) fn is_black(f: &Features, t: &CheckThresholds) -> bool {
    f.p95 < t.black_p95
}

pub(crate) fn is_overexposed(f: &Features, t: &CheckThresholds) -> bool {
    f.p05 > t.overexposed_p05 || (f.mean > t.overexposed_mean && f.p95 >= t.overexposed_p95)
}

/// Pointed at the sky or a ceiling: mostly bright, flat, and blue (sky) or very bright (ceiling).
pub(crate) fn is_sky(f: &Features, t: &CheckThresholds) -> bool {
    f.bright_flat_frac >= t.sky_min_frac
        && (f.bright_flat_blue_bias >= t.sky_blue_bias || f.bright_flat_luma >= t.ceiling_min_luma)
}

/// Covered (one flat blob over most of the picture) or blurred (little sharpness, absolutely
/// or compared with the enrolled reference).
pub(crate) fn is_covered(f: &Features, reference: Option<&Reference>, t: &CheckThresholds) -> bool {
    let flat_floor = match reference {
        Some(r) => t.covered_flat_frac.max(r.flat_frac + t.covered_flat_margin),
        None => t.covered_flat_frac,
    };
    if f.flat_frac >= flat_floor {
        return true;
    }
    let mut floor = t.blur_sharpness;
    if let Some(r) = reference {
        floor = floor.max(t.blur_ratio_to_reference * r.sharpness);
    }
    f.sharpness < floor
}

pub fn frozen_stats(
    prev_gray: &[f32],
    cur_gray: &[f32],
    prev_hash: u64,
    cur_hash: u64,
    identical_bytes: bool,
    t: &CheckThresholds,
) -> FrozenStats {
    let mut cells = [0f32; CELLS_X * CELLS_Y];
    let (cw, ch) = (WORK_W / CELLS_X, WORK_H / CELLS_Y);
    for y in 0..CELLS_Y * ch {
        let cy = y / ch;
        for x in 0..CELLS_X * cw {
            let k = y * WORK_W + x;
            let d = (prev_gray.get(k).copied().unwrap_or(0.0)
                - cur_gray.get(k).copied().unwrap_or(0.0))
            .abs();
            cells[cy * CELLS_X + x / cw] += d;
        }
    }
    let area = (cw * ch) as f32;
    for c in &mut cells {
        *c /= area;
    }
    let changed = cells.iter().filter(|&&c| c > t.frozen_cell_diff).count();
    let mut sorted = cells;
    sorted.sort_by(f32::total_cmp);
    FrozenStats {
        identical_bytes,
        hash_distance: (prev_hash ^ cur_hash).count_ones(),
        changed_cell_frac: changed as f32 / cells.len() as f32,
        median_cell_diff: sorted[sorted.len() / 2],
    }
}

/// Same picture as the previous frame: bit-identical, or changes confined to a few cells
/// (a clock overlay) while a live camera's sensor noise changes nearly every cell.
pub(crate) fn is_frozen(s: &FrozenStats, t: &CheckThresholds) -> bool {
    s.identical_bytes || (s.hash_distance <= 4 && s.changed_cell_frac <= t.frozen_max_changed_frac)
}

pub(crate) fn moved_stats(f: &Features, r: &Reference) -> MovedStats {
    MovedStats {
        hash_distance: (f.dhash ^ r.dhash).count_ones(),
        edge_corr: correlation(&f.edges, &r.edges),
    }
}

pub(crate) fn is_moved(s: &MovedStats, t: &CheckThresholds) -> bool {
    s.edge_corr < t.moved_edge_corr
        || (s.hash_distance > t.moved_hash_distance && s.edge_corr < t.moved_hash_edge_corr)
}

/// All checks in order of precedence: a black picture is not also reported covered or moved,
/// and a picture that is not a usable view (black, over-exposed, sky, covered) is not reported
/// frozen (a lens cap compresses to identical frames and is already a fault of its own).
pub fn evaluate(
    f: &Features,
    reference: Option<&Reference>,
    frozen: Option<&FrozenStats>,
    t: &CheckThresholds,
) -> (Verdict, Option<MovedStats>) {
    let mut v = Verdict::default();
    let mut moved = None;
    if is_black(f, t) {
        v.black = true;
    } else if is_overexposed(f, t) {
        v.overexposed = true;
    } else if is_sky(f, t) {
        v.sky = true;
    } else if is_covered(f, reference, t) {
        v.covered = true;
    } else {
        if let Some(r) = reference {
            let s = moved_stats(f, r);
            v.moved = is_moved(&s, t);
            moved = Some(s);
        }
        v.frozen = frozen.is_some_and(|s| is_frozen(s, t));
    }
    (v, moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::testutil::{Pic, Rng};

    fn verdict(p: &Pic, reference: Option<&Pic>) -> Verdict {
        let t = CheckThresholds::default();
        let f = features(&p.frame(), &t);
        let r = reference.map(|r| Reference::from_features(&features(&r.frame(), &t)));
        evaluate(&f, r.as_ref(), None, &t).0
    }

    fn frozen(a: &Pic, b: &Pic) -> bool {
        let t = CheckThresholds::default();
        let (fa, fb) = (a.frame(), b.frame());
        let (ha, hb) = (dhash(&fa.gray), dhash(&fb.gray));
        is_frozen(&frozen_stats(&fa.gray, &fb.gray, ha, hb, false, &t), &t)
    }

    #[test]
    fn live_scene_meets_no_condition() {
        let mut rng = Rng(7);
        let scene = Pic::scene(0);
        let v = verdict(
            &scene.noisy(&mut rng, 2.5),
            Some(&scene.noisy(&mut rng, 2.5)),
        );
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn dark_and_black_pictures_are_black() {
        let mut rng = Rng(1);
        let dark = Pic::scene(0)
            .map(|p| p.map(|c| c * 0.1))
            .noisy(&mut rng, 1.5);
        assert!(verdict(&dark, None).black);
        let black = Pic::scene(0)
            .map(|_| [0.0; 3])
            .noisy(&mut rng, 1.5)
            .clock(3);
        assert!(verdict(&black, None).black);
    }

    #[test]
    fn washed_out_picture_is_overexposed() {
        let p = Pic::scene(0).map(|p| p.map(|c| c * 2.0 + 120.0));
        let v = verdict(&p, None);
        assert!(v.overexposed && !v.sky, "{v:?}");
    }

    #[test]
    fn blue_gradient_is_sky_and_not_covered() {
        let mut rng = Rng(2);
        let v = verdict(&Pic::sky().noisy(&mut rng, 2.0), Some(&Pic::scene(0)));
        assert!(v.sky && !v.covered && !v.overexposed, "{v:?}");
    }

    #[test]
    fn covered_lens_is_covered() {
        let mut rng = Rng(3);
        let p = Pic::scene(0).covered().noisy(&mut rng, 1.0);
        assert!(verdict(&p, None).covered);
        assert!(verdict(&p, Some(&Pic::scene(0))).covered);
    }

    #[test]
    fn blurred_scene_is_covered_against_its_reference() {
        let mut rng = Rng(4);
        let scene = Pic::scene(0);
        let p = scene.blurred(12).noisy(&mut rng, 2.0);
        let v = verdict(&p, Some(&scene));
        assert!(v.covered, "{v:?}");
    }

    #[test]
    fn re_aimed_camera_is_moved_but_the_same_view_is_not() {
        let mut rng = Rng(5);
        let reference = Pic::scene(0);
        let moved = verdict(&Pic::scene(60).noisy(&mut rng, 2.0), Some(&reference));
        assert!(moved.moved, "{moved:?}");
        let same = verdict(&Pic::scene(0).noisy(&mut rng, 2.0), Some(&reference));
        assert!(!same.moved);
    }

    #[test]
    fn noisy_static_scene_is_not_frozen() {
        let mut rng = Rng(6);
        let scene = Pic::scene(0);
        let a = scene.noisy(&mut rng, 2.5).clock(1);
        let b = scene.noisy(&mut rng, 2.5).clock(2);
        assert!(!frozen(&a, &b));
    }

    #[test]
    fn bit_identical_frames_are_frozen() {
        let t = CheckThresholds::default();
        let f = Pic::scene(0).frame();
        let h = dhash(&f.gray);
        let s = frozen_stats(&f.gray, &f.gray, h, h, true, &t);
        assert!(is_frozen(&s, &t));
        assert_eq!(s.changed_cell_frac, 0.0);
    }

    #[test]
    fn frozen_picture_under_a_live_clock_is_frozen() {
        let mut rng = Rng(8);
        let still = Pic::scene(0).noisy(&mut rng, 2.5);
        assert!(frozen(&still.clock(1), &still.clock(2)));
    }

    #[test]
    fn dhash_ignores_noise_and_sees_shifts() {
        let mut rng = Rng(9);
        let a = dhash(&Pic::scene(0).noisy(&mut rng, 2.5).frame().gray);
        let b = dhash(&Pic::scene(0).noisy(&mut rng, 2.5).frame().gray);
        let c = dhash(&Pic::scene(80).frame().gray);
        assert!((a ^ b).count_ones() <= 2);
        assert!((a ^ c).count_ones() > 10);
    }
}
