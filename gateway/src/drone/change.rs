//! Change between two flights over the same task area (new rooftop structures, new sheds,
//! dumped material): each flight's frames are projected onto a **geo-aligned ground grid** of
//! the task's area (cells of a fixed size in metres, anchored at the area's south-west corner),
//! so two flights with different paths, headings and heights give comparable cells. The grids
//! are compared block by block after normalizing each to zero mean and unit variance over the
//! cells both flights saw (this cancels overall exposure and sun differences); connected blocks
//! that differ by more than a threshold become **candidate** regions for a person to review.
//! They are candidates, not findings: shadows, parked cars and vegetation change too.

use super::georef::{Camera, Pose, enu_to_wgs84, ground_to_pixel, pixel_to_ground, wgs84_to_enu};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest grid (cells); a larger area gets proportionally larger cells.
pub(crate) const MAX_CELLS: usize = 4_000_000;

/// A region that changed between two flights, for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChangeCandidate {
    pub task_id: u64,
    pub previous_flight: u64,
    /// Centre of the region.
    pub lat: f64,
    pub lon: f64,
    pub area_m2: f64,
    /// Mean normalized difference of the region's blocks.
    pub score: f32,
    /// Always `candidate`: a person decides what it is.
    pub status: String,
    pub clue_id: Option<i64>,
}

/// Mean brightness of the ground per cell, accumulated over a flight's frames.
#[derive(Debug, Clone)]
pub(crate) struct GroundGrid {
    /// South-west corner.
    pub origin_lat: f64,
    pub origin_lon: f64,
    pub cell_m: f64,
    pub cols: usize,
    pub rows: usize,
    sum: Vec<f32>,
    count: Vec<u32>,
}

fn luma(img: &RgbImage, x: f64, y: f64) -> Option<f32> {
    if x < 0.0 || y < 0.0 || x >= img.width() as f64 || y >= img.height() as f64 {
        return None;
    }
    let p = img.get_pixel(x as u32, y as u32).0;
    Some(0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
}

impl GroundGrid {
    /// A grid over `(min_lat, min_lon, max_lat, max_lon)`; `None` for an empty area.
    pub(crate) fn new(bounds: (f64, f64, f64, f64), cell_m: f64) -> Option<GroundGrid> {
        let (min_lat, min_lon, max_lat, max_lon) = bounds;
        let (w, h) = wgs84_to_enu(min_lat, min_lon, max_lat, max_lon);
        if !(w > 0.0 && h > 0.0 && cell_m > 0.0) {
            return None;
        }
        let mut cell = cell_m;
        while (w / cell).ceil() * (h / cell).ceil() > MAX_CELLS as f64 {
            cell *= 1.5;
        }
        let (cols, rows) = ((w / cell).ceil() as usize, (h / cell).ceil() as usize);
        Some(GroundGrid {
            origin_lat: min_lat,
            origin_lon: min_lon,
            cell_m: cell,
            cols,
            rows,
            sum: vec![0.0; cols * rows],
            count: vec![0; cols * rows],
        })
    }

    /// Projects one frame onto the cells it covers. Returns the cells touched (0 when the frame
    /// does not look at the area, or looks too close to the horizon to map).
    pub(crate) fn add_frame(&mut self, img: &RgbImage, cam: &Camera, pose: &Pose) -> usize {
        let corners = [
            (0.0, 0.0),
            (cam.width as f64, 0.0),
            (0.0, cam.height as f64),
            (cam.width as f64, cam.height as f64),
        ];
        let mut ground = Vec::with_capacity(4);
        for (u, v) in corners {
            match pixel_to_ground(cam, pose, u, v) {
                Some(g) => ground.push(g),
                None => return 0,
            }
        }
        // Aircraft position in grid coordinates.
        let (ae, an) = wgs84_to_enu(self.origin_lat, self.origin_lon, pose.lat, pose.lon);
        let min_e = ground.iter().map(|g| g.0).fold(f64::MAX, f64::min) + ae;
        let max_e = ground.iter().map(|g| g.0).fold(f64::MIN, f64::max) + ae;
        let min_n = ground.iter().map(|g| g.1).fold(f64::MAX, f64::min) + an;
        let max_n = ground.iter().map(|g| g.1).fold(f64::MIN, f64::max) + an;
        let c = self.cell_m;
        let i0 = ((min_e / c).floor().max(0.0) as usize).min(self.cols);
        let i1 = ((max_e / c).ceil().max(0.0) as usize).min(self.cols);
        let j0 = ((min_n / c).floor().max(0.0) as usize).min(self.rows);
        let j1 = ((max_n / c).ceil().max(0.0) as usize).min(self.rows);
        let mut touched = 0;
        // Sub-samples per cell side: averages the pixels of a cell instead of picking one.
        const SUB: usize = 3;
        for j in j0..j1 {
            for i in i0..i1 {
                let mut s = 0.0;
                let mut n = 0;
                for sj in 0..SUB {
                    for si in 0..SUB {
                        let e = (i as f64 + (si as f64 + 0.5) / SUB as f64) * c - ae;
                        let no = (j as f64 + (sj as f64 + 0.5) / SUB as f64) * c - an;
                        if let Some((u, v)) = ground_to_pixel(cam, pose, e, no)
                            && let Some(l) = luma(img, u, v)
                        {
                            s += l;
                            n += 1;
                        }
                    }
                }
                if n == SUB * SUB {
                    let k = j * self.cols + i;
                    self.sum[k] += s / n as f32;
                    self.count[k] += 1;
                    touched += 1;
                }
            }
        }
        touched
    }

    /// Mean per cell; NaN where no frame saw it.
    pub(crate) fn means(&self) -> Vec<f32> {
        self.sum
            .iter()
            .zip(&self.count)
            .map(|(s, n)| if *n == 0 { f32::NAN } else { s / *n as f32 })
            .collect()
    }

    pub(crate) fn seen(&self) -> usize {
        self.count.iter().filter(|n| **n > 0).count()
    }

    /// Saves the means: `cols u32, rows u32, cell_m f64, then f32 per cell`, little-endian.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(16 + 4 * self.sum.len());
        out.extend_from_slice(&(self.cols as u32).to_le_bytes());
        out.extend_from_slice(&(self.rows as u32).to_le_bytes());
        out.extend_from_slice(&self.cell_m.to_le_bytes());
        for m in self.means() {
            out.extend_from_slice(&m.to_le_bytes());
        }
        super::upload::write_atomic(path, &out)
    }
}

/// Means saved by [`GroundGrid::save`], if the file exists and has this grid's shape.
pub(crate) fn load_means(path: &Path, grid: &GroundGrid) -> Option<Vec<f32>> {
    let b = std::fs::read(path).ok()?;
    let cols = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let rows = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?) as usize;
    let cell = f64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    if cols != grid.cols || rows != grid.rows || (cell - grid.cell_m).abs() > 1e-9 {
        return None;
    }
    let body = b.get(16..)?;
    if body.len() != 4 * cols * rows {
        return None;
    }
    Some(
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Zero mean, unit variance over the cells where `mask` holds.
fn normalize(v: &[f32], mask: &[bool]) -> Vec<f32> {
    let n = mask.iter().filter(|m| **m).count().max(1) as f64;
    let mean = v
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x as f64)
        .sum::<f64>()
        / n;
    let var = v
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(x, _)| (*x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt().max(1.0);
    v.iter().map(|x| ((*x as f64 - mean) / sd) as f32).collect()
}

/// A changed region in grid cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Region {
    /// Centre, metres east and north of the grid origin.
    pub east_m: f64,
    pub north_m: f64,
    pub area_m2: f64,
    pub score: f32,
}

/// Compares two flights' means over the same grid.
pub(crate) fn compare(
    grid: &GroundGrid,
    before: &[f32],
    after: &[f32],
    block: usize,
    threshold: f32,
    min_area_m2: f64,
) -> Vec<Region> {
    let mask: Vec<bool> = before
        .iter()
        .zip(after)
        .map(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    if mask.iter().filter(|m| **m).count() < 16 {
        return Vec::new();
    }
    let (za, zb) = (normalize(before, &mask), normalize(after, &mask));
    let (bc, br) = (grid.cols.div_ceil(block), grid.rows.div_ceil(block));
    let mut score = vec![f32::NAN; bc * br];
    for by in 0..br {
        for bx in 0..bc {
            let (mut s, mut n, mut cells) = (0.0f32, 0usize, 0usize);
            for j in by * block..((by + 1) * block).min(grid.rows) {
                for i in bx * block..((bx + 1) * block).min(grid.cols) {
                    cells += 1;
                    let k = j * grid.cols + i;
                    if mask[k] {
                        s += (za[k] - zb[k]).abs();
                        n += 1;
                    }
                }
            }
            if n * 2 >= cells && n > 0 {
                score[by * bc + bx] = s / n as f32;
            }
        }
    }
    let marked: Vec<bool> = score.iter().map(|s| *s > threshold).collect();
    let mut seen = vec![false; marked.len()];
    let block_m = block as f64 * grid.cell_m;
    let mut out = Vec::new();
    for start in 0..marked.len() {
        if !marked[start] || seen[start] {
            continue;
        }
        let mut stack = vec![start];
        seen[start] = true;
        let (mut n, mut se, mut sn, mut ss) = (0usize, 0.0, 0.0, 0.0f32);
        while let Some(k) = stack.pop() {
            let (x, y) = (k % bc, k / bc);
            n += 1;
            se += (x as f64 + 0.5) * block_m;
            sn += (y as f64 + 0.5) * block_m;
            ss += score[k];
            let mut push = |nx: usize, ny: usize| {
                let q = ny * bc + nx;
                if marked[q] && !seen[q] {
                    seen[q] = true;
                    stack.push(q);
                }
            };
            if x > 0 {
                push(x - 1, y);
            }
            if x + 1 < bc {
                push(x + 1, y);
            }
            if y > 0 {
                push(x, y - 1);
            }
            if y + 1 < br {
                push(x, y + 1);
            }
        }
        let area = n as f64 * block_m * block_m;
        if area >= min_area_m2 {
            out.push(Region {
                east_m: se / n as f64,
                north_m: sn / n as f64,
                area_m2: area,
                score: ss / n as f32,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

impl GroundGrid {
    /// WGS84 of a point given in metres from the grid origin.
    pub(crate) fn to_wgs84(&self, east_m: f64, north_m: f64) -> (f64, f64) {
        enu_to_wgs84(self.origin_lat, self.origin_lon, east_m, north_m)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Ground brightness at a point (metres east/north of `ORIGIN`): a texture, plus a bright
    /// 8 x 6 m "new roof" centred at (40, 30) when `roof` is set.
    fn ground(e: f64, n: f64, roof: bool) -> u8 {
        if roof && (36.0..44.0).contains(&e) && (27.0..33.0).contains(&n) {
            return 245;
        }
        let v =
            120.0 + 50.0 * (e / 3.1).sin() * (n / 4.3).cos() + 30.0 * ((e + 2.0 * n) / 7.7).sin();
        v.clamp(0.0, 255.0) as u8
    }

    pub(crate) const ORIGIN: (f64, f64) = (22.5400, 114.0500);

    /// A frame of the synthetic ground as the camera at `pose` sees it.
    pub(crate) fn render(cam: &Camera, pose: &Pose, roof: bool, gain: f32) -> RgbImage {
        let (ae, an) = wgs84_to_enu(ORIGIN.0, ORIGIN.1, pose.lat, pose.lon);
        RgbImage::from_fn(cam.width, cam.height, |x, y| {
            let (e, n) = pixel_to_ground(cam, pose, x as f64 + 0.5, y as f64 + 0.5)
                .unwrap_or((f64::NAN, f64::NAN));
            let v = (ground(e + ae, n + an, roof) as f32 * gain).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn a_new_roof_between_two_differently_flown_flights_is_one_candidate() {
        let cam = Camera {
            width: 640,
            height: 480,
            hfov_deg: 72.0,
        };
        let (lat_top, lon_right) = enu_to_wgs84(ORIGIN.0, ORIGIN.1, 80.0, 60.0);
        let bounds = (ORIGIN.0, ORIGIN.1, lat_top, lon_right);
        let at = |e: f64, n: f64, yaw: f64, alt: f64| {
            let (lat, lon) = enu_to_wgs84(ORIGIN.0, ORIGIN.1, e, n);
            Pose {
                lat,
                lon,
                rel_alt_m: alt,
                yaw_deg: yaw,
                pitch_deg: -90.0,
                roll_deg: 0.0,
            }
        };
        let mut before = GroundGrid::new(bounds, 0.5).expect("grid");
        let mut after = before.clone();
        // Before: heading north at 60 m; after: heading 20 deg at 55 m, 3 m further east and
        // with a darker exposure.
        for p in [at(25.0, 30.0, 0.0, 60.0), at(55.0, 30.0, 0.0, 60.0)] {
            assert!(before.add_frame(&render(&cam, &p, false, 1.0), &cam, &p) > 1000);
        }
        for p in [at(28.0, 30.0, 20.0, 55.0), at(58.0, 30.0, 20.0, 55.0)] {
            assert!(after.add_frame(&render(&cam, &p, true, 0.85), &cam, &p) > 1000);
        }
        let regions = compare(&before, &before.means(), &after.means(), 6, 0.9, 4.0);
        assert_eq!(regions.len(), 1, "{regions:?}");
        let r = &regions[0];
        assert!(
            (r.east_m - 40.0).abs() < 3.0 && (r.north_m - 30.0).abs() < 3.0,
            "{r:?}"
        );
        assert!(r.area_m2 >= 20.0 && r.area_m2 <= 120.0, "{r:?}");
        // The same flight compared with itself changes nothing.
        assert!(compare(&before, &before.means(), &before.means(), 6, 0.9, 4.0).is_empty());
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("grid.bin");
        after.save(&path).expect("save");
        let loaded = load_means(&path, &after).expect("load");
        assert_eq!(loaded.len(), after.cols * after.rows);
        assert!(load_means(&path, &GroundGrid::new(bounds, 1.0).expect("g")).is_none());
    }
}
