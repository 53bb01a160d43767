//! Overlapping tiles for large images (drone stills) and merging their detections.

use super::detector::Detection;
use super::nms::BBox;

/// A tile of the source image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Starting offsets along one axis: tiles of `tile` pixels overlapping by at least `overlap`,
/// the last one flush with the edge, so every pixel is covered and no tile sticks out.
fn starts(len: u32, tile: u32, overlap: u32) -> Vec<u32> {
    if len <= tile {
        return vec![0];
    }
    let step = tile.saturating_sub(overlap).max(1);
    let span = len - tile;
    let n = span.div_ceil(step) + 1;
    // Spread the tiles evenly so overlaps are equal (and >= `overlap`).
    (0..n)
        .map(|i| ((u64::from(span) * u64::from(i)) / u64::from(n - 1)) as u32)
        .collect()
}

/// Tiles covering a `width` x `height` image. An image smaller than a tile is one tile of its
/// own size.
pub(crate) fn tile_grid(width: u32, height: u32, tile: u32, overlap: u32) -> Vec<Tile> {
    if width == 0 || height == 0 || tile == 0 {
        return Vec::new();
    }
    let xs = starts(width, tile, overlap);
    let ys = starts(height, tile, overlap);
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &y in &ys {
        for &x in &xs {
            out.push(Tile {
                x,
                y,
                w: tile.min(width - x),
                h: tile.min(height - y),
            });
        }
    }
    out
}

/// Intersection over the smaller box's area (1 when one box contains the other).
pub(super) fn overlap_of_smaller(a: &BBox, b: &BBox) -> f32 {
    let smaller = a.area().min(b.area());
    if smaller <= 0.0 {
        0.0
    } else {
        a.intersection(b) / smaller
    }
}

/// Whether `b` touches an edge of `t` that lies inside the image (`w` x `h`): the tile saw only
/// part of the object.
fn is_cut(b: &BBox, t: &Tile, w: u32, h: u32) -> bool {
    const EPS: f32 = 2.0;
    let (x0, y0) = (t.x as f32, t.y as f32);
    let (x1, y1) = ((t.x + t.w) as f32, (t.y + t.h) as f32);
    (t.x > 0 && b.x0 <= x0 + EPS)
        || (t.y > 0 && b.y0 <= y0 + EPS)
        || (t.x + t.w < w && b.x1 >= x1 - EPS)
        || (t.y + t.h < h && b.y1 >= y1 - EPS)
}

/// Merges per-tile detections (already in source-image pixels) so an object seen by several
/// tiles is reported once. Boxes cut by an inner tile edge rank after whole ones, then by score;
/// a box is dropped when a better-ranked box of the same class overlaps it by more than `iou`,
/// or covers more than 60% of the smaller of the two (a cut box inside the whole one).
pub(crate) fn merge_tiles(per_tile: Vec<(Tile, Vec<Detection>)>, iou: f32) -> Vec<Detection> {
    let w = per_tile.iter().map(|(t, _)| t.x + t.w).max().unwrap_or(0);
    let h = per_tile.iter().map(|(t, _)| t.y + t.h).max().unwrap_or(0);
    let mut all: Vec<(bool, Detection)> = per_tile
        .into_iter()
        .flat_map(|(t, dets)| {
            dets.into_iter()
                .map(move |d| (is_cut(&d.bbox, &t, w, h), d))
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.score.total_cmp(&a.1.score)));
    let mut keep: Vec<Detection> = Vec::with_capacity(all.len());
    for (_, d) in all {
        let dup = keep.iter().any(|k| {
            k.class_id == d.class_id
                && (k.bbox.iou(&d.bbox) > iou || overlap_of_smaller(&k.bbox, &d.bbox) > 0.6)
        });
        if !dup {
            keep.push(d);
        }
    }
    keep.sort_by(|a, b| b.score.total_cmp(&a.score));
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_with_the_requested_overlap() {
        let t = tile_grid(4000, 3000, 1024, 128);
        let xs: Vec<u32> = t.iter().filter(|t| t.y == 0).map(|t| t.x).collect();
        assert_eq!(*xs.first().expect("x"), 0);
        let last = t.last().expect("tile");
        assert_eq!(last.x + last.w, 4000);
        assert_eq!(last.y + last.h, 3000);
        for w in xs.windows(2) {
            assert!(w[0] + 1024 - w[1] >= 128, "overlap {:?}", w);
        }
        // Every pixel of a sample grid lies in some tile.
        for y in (0..3000).step_by(97) {
            for x in (0..4000).step_by(89) {
                assert!(
                    t.iter()
                        .any(|t| x >= t.x && x < t.x + t.w && y >= t.y && y < t.y + t.h)
                );
            }
        }
    }

    #[test]
    fn small_image_is_one_tile() {
        assert_eq!(
            tile_grid(300, 200, 416, 64),
            vec![Tile {
                x: 0,
                y: 0,
                w: 300,
                h: 200
            }]
        );
        assert!(tile_grid(0, 200, 416, 64).is_empty());
    }

    fn car(x0: f32, x1: f32, score: f32) -> Detection {
        Detection {
            class_id: 2,
            label: "car",
            score,
            bbox: BBox {
                x0,
                y0: 100.0,
                x1,
                y1: 150.0,
            },
        }
    }

    #[test]
    fn object_on_a_tile_seam_is_reported_once() {
        let a = Tile {
            x: 0,
            y: 0,
            w: 1024,
            h: 1024,
        };
        let b = Tile {
            x: 896,
            y: 0,
            w: 1024,
            h: 1024,
        };
        // One car seen whole by both tiles; another cut by tile a's right edge, whole in b.
        let merged = merge_tiles(
            vec![
                (a, vec![car(900.0, 1000.0, 0.8), car(1000.0, 1024.0, 0.5)]),
                (b, vec![car(902.0, 1001.0, 0.7), car(1000.0, 1100.0, 0.9)]),
            ],
            0.45,
        );
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(merged[0].score, 0.9);
        assert_eq!(merged[1].score, 0.8);
    }
}
