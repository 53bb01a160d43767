//! COCO object detector (yolov3-tiny converted by `models/convert_yolov3_tiny.py`): letterbox,
//! one session run (batched for tiles), decode, per-class NMS, keep street classes.

use super::VisionError;
use super::nms::{BBox, nms, passes};
use super::preprocess::{Letterbox, Roi, letterbox_into};
use super::runtime::{Model, models_dir};
use super::tiles::{Tile, merge_tiles, tile_grid};
use image::RgbImage;
use ndarray::ArrayViewD;
use serde::Serialize;
use std::path::Path;

/// Model file in the models folder.
pub(crate) const MODEL_FILE: &str = "yolov3-tiny.onnx";
/// Network input side.
pub const INPUT: u32 = 416;
/// Rows in the model output (13x13x3 + 26x26x3).
pub(crate) const ROWS: usize = 2535;
const STRIDE: usize = 85;

/// COCO labels in class-index order (`coco.names`).
pub(crate) const COCO_LABELS: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorbike",
    "aeroplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "sofa",
    "pottedplant",
    "bed",
    "diningtable",
    "toilet",
    "tvmonitor",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

pub(crate) const PERSON: usize = 0;
pub(crate) const BICYCLE: usize = 1;
pub(crate) const CAR: usize = 2;
pub(crate) const MOTORCYCLE: usize = 3;
pub(crate) const BUS: usize = 5;
pub(crate) const TRUCK: usize = 7;

/// The class index of a COCO label; spaces are ignored (`"dining table"` is the file's
/// `diningtable`) and case too.
pub(crate) fn class_of(label: &str) -> Option<usize> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let want = norm(label);
    COCO_LABELS.iter().position(|l| norm(l) == want)
}

/// Classes the street rules use: people, bicycles and motor vehicles.
pub(crate) const STREET_CLASSES: [usize; 6] = [PERSON, BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK];

pub(crate) fn is_vehicle(class_id: usize) -> bool {
    matches!(class_id, CAR | MOTORCYCLE | BUS | TRUCK)
}

/// One detected object, in source-image pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub class_id: usize,
    pub label: &'static str,
    /// Darknet score: objectness x class probability.
    pub score: f32,
    pub bbox: BBox,
}

/// Detector settings.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Minimum score (Darknet's demo uses 0.25 for yolov3-tiny).
    pub score_threshold: f32,
    pub nms_iou: f32,
    /// Keep only these classes (empty = all 80).
    pub classes: Vec<usize>,
    /// 0: the shared pool (see `runtime::THREADS_ENV`); more: a pool of its own.
    pub threads: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            score_threshold: 0.25,
            nms_iou: 0.45,
            classes: STREET_CLASSES.to_vec(),
            threads: 0,
        }
    }
}

/// The COCO detector; load once, call from any thread.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    config: DetectorConfig,
}

impl Detector {
    /// Loads `yolov3-tiny.onnx` from the models folder ([`models_dir`]).
    pub(crate) fn load_default(config: DetectorConfig) -> Result<Self, VisionError> {
        Self::load(&models_dir().join(MODEL_FILE), config)
    }

    pub fn load(path: &Path, config: DetectorConfig) -> Result<Self, VisionError> {
        Ok(Detector {
            model: Model::load(path, config.threads)?,
            config,
        })
    }

    /// Detects objects in the whole image.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        let mut input = vec![0.0f32; 3 * (INPUT * INPUT) as usize];
        let lb = letterbox_into(img, Roi::whole(img), INPUT, &mut input);
        let raw = self.infer(&input, 1)?;
        Ok(self.postprocess(&raw, &lb, img.width() as f32, img.height() as f32))
    }

    /// Detects objects of `classes` (empty: all 80) in the whole image, whatever classes the
    /// detector was configured with: one loaded model serves rules that look for different
    /// objects (vehicles for parking, tables and chairs for shop fronts).
    pub(crate) fn detect_with(
        &self,
        img: &RgbImage,
        classes: &[usize],
    ) -> Result<Vec<Detection>, VisionError> {
        let mut input = vec![0.0f32; 3 * (INPUT * INPUT) as usize];
        let lb = letterbox_into(img, Roi::whole(img), INPUT, &mut input);
        let raw = self.infer(&input, 1)?;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let dets = decode(&raw, &lb, self.config.score_threshold, classes, w, h);
        Ok(suppress(dets, self.config.nms_iou))
    }

    /// Runs the network on `batch` prepared inputs (`[batch, 3, 416, 416]`, RGB 0..1) and
    /// returns the raw `[batch, 2535, 85]` output.
    pub fn infer(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, VisionError> {
        let s = INPUT as usize;
        let view = ArrayViewD::from_shape(vec![batch, 3, s, s], input)
            .map_err(|e| VisionError::Runtime(format!("input shape: {e}")))?;
        let mut out = self.model.run(view)?;
        let first = out
            .drain(..)
            .next()
            .ok_or_else(|| VisionError::Output("no output".into()))?;
        if first.shape != [batch, ROWS, STRIDE] {
            return Err(VisionError::Output(format!(
                "expected [{batch}, {ROWS}, {STRIDE}], got {:?}",
                first.shape
            )));
        }
        Ok(first.data)
    }

    /// Decodes one image's raw output, maps boxes back through the letterbox, applies NMS.
    pub fn postprocess(&self, raw: &[f32], lb: &Letterbox, w: f32, h: f32) -> Vec<Detection> {
        let c = &self.config;
        let dets = decode(raw, lb, c.score_threshold, &c.classes, w, h);
        suppress(dets, c.nms_iou)
    }

    /// Detects on overlapping `tile`-pixel tiles (for large drone stills) plus one pass over the
    /// whole image, batching `batch` inputs per run, and merges the results
    /// ([`merge_tiles`]).
    pub fn detect_tiled(
        &self,
        img: &RgbImage,
        tile: u32,
        overlap: u32,
        batch: usize,
    ) -> Result<Vec<Detection>, VisionError> {
        let mut tiles = tile_grid(img.width(), img.height(), tile, overlap);
        if tiles.len() > 1 {
            // One pass over the whole (downscaled) image too: objects larger than a tile are
            // seen whole only there.
            tiles.push(Tile {
                x: 0,
                y: 0,
                w: img.width(),
                h: img.height(),
            });
        }
        let per = 3 * (INPUT * INPUT) as usize;
        let batch = batch.max(1);
        let mut found: Vec<(Tile, Vec<Detection>)> = Vec::with_capacity(tiles.len());
        for (n, chunk) in tiles.chunks(batch).enumerate() {
            let mut input = vec![0.0f32; per * chunk.len()];
            let mut boxes = Vec::with_capacity(chunk.len());
            for (i, t) in chunk.iter().enumerate() {
                let roi = Roi {
                    x: t.x as f32,
                    y: t.y as f32,
                    w: t.w as f32,
                    h: t.h as f32,
                };
                boxes.push(letterbox_into(
                    img,
                    roi,
                    INPUT,
                    &mut input[i * per..(i + 1) * per],
                ));
            }
            let raw = self.infer(&input, chunk.len())?;
            for (i, (t, lb)) in chunk.iter().zip(&boxes).enumerate() {
                let rows = &raw[i * ROWS * STRIDE..(i + 1) * ROWS * STRIDE];
                let dets = decode(
                    rows,
                    lb,
                    self.config.score_threshold,
                    &self.config.classes,
                    img.width() as f32,
                    img.height() as f32,
                );
                found.push((*t, dets));
            }
            tracing::debug!(done = (n + 1) * batch, of = tiles.len(), "tiles");
        }
        Ok(merge_tiles(found, self.config.nms_iou))
    }
}

/// Decodes raw rows (cx, cy, w, h, objectness, 80 probabilities; input pixels) into detections
/// in source pixels: one per class of `classes` whose score (objectness x probability) passes
/// `threshold`, as Darknet does, so one box can come out as both a car and a truck (NMS is per
/// class; the parking tracker takes such twins as one vehicle, `dwell::same_vehicle`).
/// The letterbox maps input pixels to source pixels; boxes are clamped to `w` x `h`.
pub(crate) fn decode(
    raw: &[f32],
    lb: &Letterbox,
    threshold: f32,
    classes: &[usize],
    w: f32,
    h: f32,
) -> Vec<Detection> {
    let mut out = Vec::new();
    for row in raw.chunks_exact(STRIDE) {
        let obj = row[4];
        // A box no number can place (NaN or infinite) is no object.
        let placed = row[..4].iter().all(|v| v.is_finite());
        if !(placed && passes(obj, threshold)) {
            continue;
        }
        for (class_id, &p) in row[5..].iter().enumerate() {
            let score = obj * p;
            if !passes(score, threshold) || !(classes.is_empty() || classes.contains(&class_id)) {
                continue;
            }
            let (x0, y0) = lb.to_source(row[0] - row[2] / 2.0, row[1] - row[3] / 2.0);
            let (x1, y1) = lb.to_source(row[0] + row[2] / 2.0, row[1] + row[3] / 2.0);
            let bbox = BBox { x0, y0, x1, y1 }.clamp(w, h);
            if bbox.area() <= 0.0 {
                continue;
            }
            out.push(Detection {
                class_id,
                label: COCO_LABELS.get(class_id).copied().unwrap_or("?"),
                score,
                bbox,
            });
        }
    }
    out
}

/// Per-class NMS, best score first.
pub(crate) fn suppress(dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    let boxes: Vec<BBox> = dets.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = dets.iter().map(|d| d.score).collect();
    let groups: Vec<usize> = dets.iter().map(|d| d.class_id).collect();
    let keep = nms(&boxes, &scores, &groups, iou);
    let mut slots: Vec<Option<Detection>> = dets.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_maps_through_the_letterbox_and_filters_classes() {
        let lb = Letterbox {
            size: 416,
            scale: (0.5, 0.5),
            pad_x: 0.0,
            pad_y: 104.0,
        };
        let mut raw = vec![0.0f32; 3 * STRIDE];
        // Row 0: a car at input (208, 208) 100x50, objectness 0.9, p(car) 0.8.
        raw[..5].copy_from_slice(&[208.0, 208.0, 100.0, 50.0, 0.9]);
        raw[5 + CAR] = 0.8;
        // Row 1: a strong dog (not a street class).
        raw[STRIDE..STRIDE + 5].copy_from_slice(&[50.0, 150.0, 20.0, 20.0, 0.9]);
        raw[STRIDE + 5 + 16] = 0.9;
        let d = decode(&raw, &lb, 0.25, &STREET_CLASSES, 832.0, 416.0);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].label, "car");
        assert!((d[0].score - 0.72).abs() < 1e-6);
        assert_eq!(
            d[0].bbox,
            BBox {
                x0: 316.0,
                y0: 158.0,
                x1: 516.0,
                y1: 258.0
            }
        );
        assert_eq!(decode(&raw, &lb, 0.25, &[], 832.0, 416.0).len(), 2);
    }

    /// NaN compares false with the threshold: `obj < threshold` let a NaN row through, and its
    /// NaN box (area NaN, not <= 0) and score (first under `total_cmp`) came out as a detection.
    #[test]
    fn a_row_that_is_not_a_number_is_no_detection() {
        let lb = Letterbox {
            size: 416,
            scale: (0.5, 0.5),
            pad_x: 0.0,
            pad_y: 104.0,
        };
        let car = [208.0, 208.0, 100.0, 50.0, 0.9];
        for (k, bad) in [
            (4, f32::NAN),
            (5 + CAR, f32::NAN),
            (0, f32::NAN),
            (2, f32::INFINITY),
        ] {
            let mut raw = vec![0.0f32; 2 * STRIDE];
            raw[..5].copy_from_slice(&car);
            raw[5 + CAR] = 0.8;
            raw[k] = bad;
            // Row 1: a real car elsewhere.
            raw[STRIDE..STRIDE + 5].copy_from_slice(&[50.0, 150.0, 20.0, 20.0, 0.9]);
            raw[STRIDE + 5 + CAR] = 0.9;
            let d = decode(&raw, &lb, 0.25, &STREET_CLASSES, 832.0, 416.0);
            assert_eq!(d.len(), 1, "value {bad} at {k}: {d:?}");
            assert!((d[0].score - 0.81).abs() < 1e-6, "{d:?}");
        }
    }

    #[test]
    fn labels_are_found_with_or_without_spaces() {
        assert_eq!(class_of("dining table"), Some(60));
        assert_eq!(class_of("diningtable"), Some(60));
        assert_eq!(class_of("Potted Plant"), Some(58));
        assert_eq!(class_of("truck"), Some(TRUCK));
        assert_eq!(class_of("table"), None);
    }
}
