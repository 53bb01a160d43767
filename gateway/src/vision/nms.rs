//! Axis-aligned boxes, IoU and greedy non-maximum suppression.

use serde::{Deserialize, Serialize};

/// A box in image pixels: top-left (`x0`, `y0`) to bottom-right (`x1`, `y1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub(crate) fn from_centre(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        BBox {
            x0: cx - w / 2.0,
            y0: cy - h / 2.0,
            x1: cx + w / 2.0,
            y1: cy + h / 2.0,
        }
    }

    pub(crate) fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub(crate) fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub(crate) fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Middle of the bottom edge: where a vehicle touches the ground (used for zones).
    pub(crate) fn bottom_centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, self.y1)
    }

    pub(crate) fn clamp(&self, w: f32, h: f32) -> Self {
        BBox {
            x0: self.x0.clamp(0.0, w),
            y0: self.y0.clamp(0.0, h),
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
        }
    }

    pub(crate) fn intersection(&self, o: &BBox) -> f32 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        w * h
    }

    pub fn iou(&self, o: &BBox) -> f32 {
        let i = self.intersection(o);
        let u = self.area() + o.area() - i;
        if u <= 0.0 { 0.0 } else { i / u }
    }
}

/// Whether a detector score passes `threshold`, written so that NaN fails: `score < threshold`
/// is false for NaN, which let a NaN score through and, sorted with `total_cmp`, rank first.
pub(crate) fn passes(score: f32, threshold: f32) -> bool {
    score.is_finite() && score >= threshold
}

/// Greedy NMS: indices of the boxes kept, best score first. Boxes with the same `group` (e.g.
/// class) suppress each other when their IoU exceeds `iou`; other groups are left alone.
pub(crate) fn nms(boxes: &[BBox], scores: &[f32], groups: &[usize], iou: f32) -> Vec<usize> {
    let n = boxes.len().min(scores.len()).min(groups.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep: Vec<usize> = Vec::new();
    let mut dead = vec![false; n];
    for (k, &i) in order.iter().enumerate() {
        if dead[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[k + 1..] {
            if !dead[j] && groups[j] == groups[i] && boxes[i].iou(&boxes[j]) > iou {
                dead[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = b(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&b(20.0, 20.0, 30.0, 30.0)), 0.0);
        let half = a.iou(&b(5.0, 0.0, 15.0, 10.0));
        assert!((half - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_per_group() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(1.0, 1.0, 11.0, 11.0),
            b(50.0, 50.0, 60.0, 60.0),
            b(0.0, 0.0, 10.0, 10.0),
        ];
        let scores = [0.6, 0.9, 0.5, 0.4];
        let groups = [0, 0, 0, 1];
        assert_eq!(nms(&boxes, &scores, &groups, 0.45), vec![1, 2, 3]);
        // A looser threshold keeps the overlapping pair.
        assert_eq!(nms(&boxes, &scores, &groups, 0.9).len(), 4);
    }
}
