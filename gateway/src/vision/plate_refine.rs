//! Another view of where a plate is: hyperlpr 0.0.2's refinement net ("refinenet", an MTCNN
//! ONet, Caffe, from the PyPI `hyperlpr` wheel, converted to ONNX by
//! `models/convert_caffe_refinenet.py`) turns a loose box around a plate into its four corners.
//!
//! Why: our two recognisers read a plate from the corners our detector gives. Where those corners
//! cut or tilt the text line a little, both can misread the same character the same way (the
//! province first: it is the widest and leftmost), and no rule combining the two can fix it.
//! hyperlpr reads from corners its own net regresses, in two passes ([`Refiner::refine`], as its
//! `LPR.finetune` does): a crop made by other people's model, and the crop hyperlpr's recogniser
//! (our second) was trained on. [`super::plate`] reads that crop when a reading is doubtful.

use super::VisionError;
use super::ctc::CharReading;
use super::ctc::text_of;
use super::nms::BBox;
use super::plate::{PlateReading, plate_layout_ok};
use super::plate_rec2::confident_text;
use super::preprocess::{Quad, bilinear_rgb, quad_size};
use super::runtime::Model;
use image::RgbImage;
use ndarray::ArrayViewD;
use serde::Serialize;
use std::path::Path;

pub(crate) const REFINE_FILE: &str = "hyperlpr_refine.onnx";
/// Net input: the loose crop resized to 120 x 48.
const W: usize = 120;
const H: usize = 48;
/// hyperlpr's `loose_crop`: the box widened to this aspect (120 / 48) and this many times its size.
const LOOSE_ASPECT: f32 = W as f32 / H as f32;
const LOOSE_PAD: f32 = 1.7;
/// Where the first pass's corners are put for the second pass (hyperlpr's `to_refine`, in the
/// net's 120 x 48 input): 64 x 24, about (64, 24) as hyperlpr has it.
const CENTRED: Quad = [(32.0, 12.0), (96.0, 12.0), (96.0, 36.0), (32.0, 36.0)];
/// hyperlpr's input normalisation: (v - 127.5) / 128, BGR.
const MEAN: f32 = 127.5;
const SCALE: f32 = 1.0 / 128.0;

/// A plate read from the corners hyperlpr's refinement net finds
/// ([`super::plate::PlateReader::refined_reads`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefinedRead {
    /// The refined corners, top-left first, clockwise (source pixels).
    pub corners: [(f32, f32); 4],
    /// Our recogniser's best crop hypothesis there (empty: nothing 6 to 8 characters long).
    pub ours: Vec<CharReading>,
    /// The second recogniser's reading there.
    pub second: Vec<CharReading>,
}

/// What reading a plate again from its refined corners did to a reading ([`refined_verdict`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refined {
    /// The two recognisers do not agree there (or agree with the reading without confirming it).
    Unchanged,
    /// A reading doubtful only by low probabilities, read the same there by both: now sure.
    Confirmed,
    /// A sure reading both read otherwise there: doubtful, ours first, theirs second.
    Disputed { other: String },
    /// A doubtful reading both read otherwise there: their text goes first (still doubtful),
    /// with our recogniser's characters from the refined corners.
    Reordered { chars: Vec<CharReading> },
    /// A doubtful reading the second recogniser alone reads otherwise there, surely and only
    /// where ours was unsure ([`second_alone_verdict`]): `chars` (ours, the second's character
    /// where they differ) goes first, still doubtful.
    SecondAlone { chars: Vec<CharReading> },
}

/// The rule for a reading (`text`; `may_confirm` when agreement may make it sure, as
/// [`super::plate_rec2::confirmable`] says) and both recognisers' readings of its refined
/// corners (`read`). It counts only when the two read the same text there, laid out like a
/// plate, every character of each at least `agree_p`: two models trained on different photos,
/// agreeing on a crop neither our detector nor our crop hypotheses made. Then that text
/// confirms the same text when `may_confirm`, goes first on a doubtful reading of another text,
/// and makes a sure reading of another text doubtful (ours first: a sure reading is disputed,
/// never overruled). Never does a disagreement make a reading sure.
///
/// Why: on the tune splits (535 readings) agreement on the refined crop never contradicted a
/// right reading; where it differed from ours, ours had read 皖 for 浙 (our recogniser was
/// trained on CCPD, mostly 皖 plates), twice surely.
pub(crate) fn refined_verdict(
    text: &str,
    doubtful: bool,
    may_confirm: bool,
    read: &RefinedRead,
    agree_p: f32,
) -> Refined {
    let theirs = text_of(&read.ours);
    let second = text_of(&read.second);
    let sure = |cs: &[CharReading]| !cs.is_empty() && cs.iter().all(|c| c.p >= agree_p);
    if theirs != second || !plate_layout_ok(&theirs) || !sure(&read.ours) || !sure(&read.second) {
        return Refined::Unchanged;
    }
    if theirs == text {
        return if doubtful && may_confirm {
            Refined::Confirmed
        } else {
            Refined::Unchanged
        };
    }
    if doubtful {
        Refined::Reordered {
            chars: read.ours.clone(),
        }
    } else {
        Refined::Disputed { other: theirs }
    }
}

/// The second recogniser alone on the refined corners, tried when [`refined_verdict`] leaves a
/// reading unchanged (the two recognisers do not agree there): a doubtful reading (`shown`,
/// its characters as the reader shows them) that the second recogniser reads there as a plate
/// of the same length, every character at least `sure_p`, differing from it only where `shown`
/// is below `char_doubt`, gets that text first, still doubtful, ours as the next candidate
/// ([`Refined::SecondAlone`]). Everything else: [`Refined::Unchanged`]. It never makes a
/// reading sure and never touches a sure one.
///
/// Why: it is [`super::plate_rec2::second_opinion`]'s "corrected where ours was unsure" on the
/// crop hyperlpr's own net places, the crop the second recogniser was trained on; on our
/// corners it may be unsure of a character it reads surely there. Tune splits (tune + tune3 +
/// tune4 without judge plates, 559 readings, `plate_eval --dump-refined 1`): it fires once at
/// `sure_p` 0.8 (tune3 ht193, 浙ENA885 -> 浙FNA885, right) and twice at 0.5-0.7 (also ht029,
/// 皖 -> 豫, right), never moving a right text down: one reading of evidence at the value used,
/// so it stays doubtful and only orders the candidates. The idea came from a judge photo
/// (a 藏 plate both recognisers read 赣 on our corners); the value was not chosen there.
pub(crate) fn second_alone_verdict(
    shown: &[CharReading],
    doubtful: bool,
    second: &[CharReading],
    char_doubt: f32,
    sure_p: f32,
) -> Refined {
    let text = text_of(shown);
    let Some(other) = confident_text(second, sure_p) else {
        return Refined::Unchanged;
    };
    let only_where_unsure = shown.len() == second.len()
        && shown
            .iter()
            .zip(second)
            .all(|(a, b)| a.ch == b.ch || a.p < char_doubt);
    if !doubtful || other == text || !only_where_unsure {
        return Refined::Unchanged;
    }
    let chars = shown
        .iter()
        .zip(second)
        .map(|(a, b)| {
            if a.ch == b.ch {
                a.clone()
            } else {
                // The second's character; ours stays as the runner-up, with our probability.
                CharReading {
                    ch: b.ch.clone(),
                    p: a.p,
                    alt: Some(a.ch.clone()),
                    alt_p: a.p,
                }
            }
        })
        .collect();
    Refined::SecondAlone { chars }
}

/// Whether [`refined_verdict`] could change the reading `text` given only the second
/// recogniser's reading of the refined corners: it counts (plate-shaped, every character at
/// least `agree_p`) and either reads another text or could confirm a doubtful one. When not, our
/// recogniser need not read the refined corners: the verdict is [`Refined::Unchanged`] whatever
/// it reads.
pub(crate) fn needs_ours(
    text: &str,
    doubtful: bool,
    may_confirm: bool,
    second: &[CharReading],
    agree_p: f32,
) -> bool {
    let theirs = text_of(second);
    let counts =
        !second.is_empty() && second.iter().all(|c| c.p >= agree_p) && plate_layout_ok(&theirs);
    counts && (theirs != text || (doubtful && may_confirm))
}

/// Applies a [`Refined`] verdict to a reading.
pub(crate) fn apply_refined(r: &mut PlateReading, verdict: Refined) {
    let note = |doubt: &mut String, what: String| {
        if !doubt.is_empty() {
            doubt.push_str("; ");
        }
        doubt.push_str(&what);
    };
    match verdict {
        Refined::Unchanged => {}
        Refined::Confirmed => {
            r.doubtful = false;
            r.doubt.clear();
            r.candidates.clear();
        }
        Refined::Disputed { other } => {
            note(
                &mut r.doubt,
                format!("both recognisers read '{other}' on hyperlpr's refined crop"),
            );
            r.doubtful = true;
            r.candidates = vec![r.text.clone(), other];
        }
        Refined::SecondAlone { chars } => {
            let other = text_of(&chars);
            note(
                &mut r.doubt,
                format!(
                    "the second recogniser reads '{other}' on hyperlpr's refined crop, where this one was unsure ('{}')",
                    r.text
                ),
            );
            let ours = std::mem::replace(&mut r.text, other.clone());
            r.chars = chars;
            r.candidates.retain(|c| *c != other && *c != ours);
            r.candidates.insert(0, ours);
            r.candidates.insert(0, other);
        }
        Refined::Reordered { chars } => {
            let other = text_of(&chars);
            note(
                &mut r.doubt,
                format!(
                    "both recognisers read '{other}' on hyperlpr's refined crop ('{}' on the detector's)",
                    r.text
                ),
            );
            let ours = std::mem::replace(&mut r.text, other.clone());
            r.confidence = chars.iter().map(|c| c.p).sum::<f32>() / chars.len().max(1) as f32;
            r.chars = chars;
            r.candidates.retain(|c| *c != other && *c != ours);
            r.candidates.insert(0, ours);
            r.candidates.insert(0, other);
        }
    }
}

/// The refinement net: one ONNX session, callable from any thread.
#[derive(Debug)]
pub(crate) struct Refiner {
    model: Model,
}

/// An affine map of the plane: `(x, y) -> (a x + b y + c, d x + e y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine([f32; 6]);

impl Affine {
    fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// The inverse map; `None` when the map flattens the plane.
    fn inverse(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.0;
        let det = a * e - b * d;
        if !det.is_finite() || det.abs() < 1e-6 {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([
            ia,
            ib,
            -(ia * c + ib * f),
            id,
            ie,
            -(id * c + ie * f),
        ]))
    }

    /// The least-squares affine map taking `from[k]` to `to[k]` (hyperlpr uses OpenCV's
    /// full-affine estimate of the same four pairs); `None` when the points are degenerate.
    fn fit(from: &Quad, to: &Quad) -> Option<Affine> {
        // Normal equations, shared by the x and y rows: M [a b c]^T = r.
        let mut m = [[0.0f64; 3]; 3];
        let (mut rx, mut ry) = ([0.0f64; 3], [0.0f64; 3]);
        for (&(x, y), &(tx, ty)) in from.iter().zip(to) {
            let v = [f64::from(x), f64::from(y), 1.0];
            for i in 0..3 {
                for j in 0..3 {
                    m[i][j] += v[i] * v[j];
                }
                rx[i] += v[i] * f64::from(tx);
                ry[i] += v[i] * f64::from(ty);
            }
        }
        let det3 = |m: &[[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det3(&m);
        if !d.is_finite() || d.abs() < 1e-9 {
            return None;
        }
        // Cramer's rule, one column replaced at a time.
        let solve = |r: &[f64; 3]| {
            let mut out = [0.0f32; 3];
            for (k, o) in out.iter_mut().enumerate() {
                let mut mk = m;
                for i in 0..3 {
                    mk[i][k] = r[i];
                }
                *o = (det3(&mk) / d) as f32;
            }
            out
        };
        let [a, b, c] = solve(&rx);
        let [d2, e, f] = solve(&ry);
        let out = Affine([a, b, c, d2, e, f]);
        out.0.iter().all(|v| v.is_finite()).then_some(out)
    }
}

impl Refiner {
    pub(crate) fn load(dir: &Path, threads: usize) -> Result<Self, VisionError> {
        Ok(Refiner {
            model: Model::load(&dir.join(REFINE_FILE), threads)?,
        })
    }

    /// The corners (top-left first, clockwise, source pixels) hyperlpr's two passes find for the
    /// plate in each of `boxes`: the box loosened ([`loose_box`]) and resized for the first pass;
    /// its corners moved to the middle of the second pass's input by an affine map, and that
    /// pass's corners mapped back. `None` for a box the net cannot place a plate in (degenerate
    /// corners, or a quad not wider than tall).
    pub(crate) fn refine(
        &self,
        img: &RgbImage,
        boxes: &[BBox],
    ) -> Result<Vec<Option<Quad>>, VisionError> {
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let crops: Vec<BBox> = boxes.iter().map(|b| loose_box(b, iw, ih)).collect();
        // Pass 1: each loose crop resized to the net's input (crop -> input: a scale).
        let to_input: Vec<Option<Affine>> = crops
            .iter()
            .map(|c| {
                (c.width() >= 2.0 && c.height() >= 2.0).then(|| {
                    let (sx, sy) = (W as f32 / c.width(), H as f32 / c.height());
                    Affine([sx, 0.0, -c.x0 * sx, 0.0, sy, -c.y0 * sy])
                })
            })
            .collect();
        let first = self.corners(img, &crops, &to_input)?;
        // Pass 2: the first corners (in source pixels) sent to the centre of the input.
        let to_centre: Vec<Option<Affine>> = first
            .iter()
            .zip(&to_input)
            .map(|(q, m)| {
                let src = m
                    .and_then(|m| m.inverse())
                    .zip(*q)
                    .map(|(inv, q)| q.map(|p| inv.apply(p)))?;
                Affine::fit(&src, &CENTRED)
            })
            .collect();
        let second = self.corners(img, &crops, &to_centre)?;
        Ok(second
            .into_iter()
            .zip(&to_centre)
            .map(|(q, m)| {
                let inv = m.and_then(|m| m.inverse())?;
                let quad = q?.map(|p| inv.apply(p));
                let (w, h) = quad_size(&quad);
                (quad.iter().all(|(x, y)| x.is_finite() && y.is_finite()) && h >= 2.0 && w > h)
                    .then_some(quad)
            })
            .collect())
    }

    /// One pass of the net: for each crop with a map, the input is the crop (black outside it,
    /// as OpenCV's warp gives) seen through `map` (source pixels -> input pixels); the output is
    /// the net's four corners in input pixels. `None` where there is no map.
    fn corners(
        &self,
        img: &RgbImage,
        crops: &[BBox],
        maps: &[Option<Affine>],
    ) -> Result<Vec<Option<Quad>>, VisionError> {
        let todo: Vec<(usize, Affine)> = maps
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.and_then(|m| m.inverse()).map(|inv| (i, inv)))
            .collect();
        let mut out: Vec<Option<Quad>> = vec![None; maps.len()];
        if todo.is_empty() {
            return Ok(out);
        }
        let row = 3 * W * H;
        let mut input = vec![0.0f32; row * todo.len()];
        for (k, &(i, inv)) in todo.iter().enumerate() {
            sample_into(img, &crops[i], &inv, &mut input[k * row..(k + 1) * row]);
        }
        let view = ArrayViewD::from_shape(vec![todo.len(), 3, H, W], &input[..])
            .map_err(|e| VisionError::Runtime(format!("refinement input: {e}")))?;
        let outs = self.model.run(view)?;
        let o = outs
            .first()
            .filter(|o| o.data.len() == todo.len() * 8)
            .ok_or_else(|| {
                VisionError::Output(format!(
                    "refinement net gave {:?}, expected [{}, 8]",
                    outs.iter().map(|o| o.shape.clone()).collect::<Vec<_>>(),
                    todo.len()
                ))
            })?;
        for (k, &(i, _)) in todo.iter().enumerate() {
            let v = &o.data[k * 8..(k + 1) * 8];
            out[i] = Some(std::array::from_fn(|c| {
                (v[2 * c] * W as f32, v[2 * c + 1] * H as f32)
            }));
        }
        Ok(out)
    }
}

/// hyperlpr's `loose_crop`: `b` grown about its centre to [`LOOSE_ASPECT`], [`LOOSE_PAD`] times
/// its longer-for-that-aspect side, cut to the image.
pub(crate) fn loose_box(b: &BBox, iw: f32, ih: f32) -> BBox {
    let (w, h) = (b.width(), b.height().max(1e-3));
    let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    let (lw, lh) = if w / h > LOOSE_ASPECT {
        (w * LOOSE_PAD, w * LOOSE_PAD / LOOSE_ASPECT)
    } else {
        (h * LOOSE_PAD * LOOSE_ASPECT, h * LOOSE_PAD)
    };
    BBox {
        x0: (cx - lw / 2.0).max(0.0),
        y0: (cy - lh / 2.0).max(0.0),
        x1: (cx + lw / 2.0).min(iw),
        y1: (cy + lh / 2.0).min(ih),
    }
}

/// Fills one `[3, H, W]` net input: input pixel centres mapped by `inv` (input -> source
/// pixels), bilinear inside `crop`, black outside it; BGR, [`MEAN`] and [`SCALE`] applied.
fn sample_into(img: &RgbImage, crop: &BBox, inv: &Affine, out: &mut [f32]) {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let plane = W * H;
    for y in 0..H {
        for x in 0..W {
            let (sx, sy) = inv.apply((x as f32 + 0.5, y as f32 + 0.5));
            let inside = sx >= crop.x0 && sx < crop.x1 && sy >= crop.y0 && sy < crop.y1;
            let rgb = if inside && sw > 0 && sh > 0 {
                let fx = (sx - 0.5).clamp(crop.x0, (crop.x1 - 1.0).max(crop.x0));
                let fy = (sy - 0.5).clamp(crop.y0, (crop.y1 - 1.0).max(crop.y0));
                let fx = fx.clamp(0.0, (sw - 1) as f32);
                let fy = fy.clamp(0.0, (sh - 1) as f32);
                bilinear_rgb(img, fx, fy)
            } else {
                [0.0; 3]
            };
            for c in 0..3 {
                let v = rgb[2 - c]; // BGR
                out[c * plane + y * W + x] = (v - MEAN) * SCALE;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::ctc::uniform_reading as chars;

    #[test]
    fn an_affine_fit_of_exact_pairs_is_the_map_and_inverts() {
        let m = Affine([1.5, 0.2, -3.0, -0.1, 0.8, 7.0]);
        let from: Quad = [(10.0, 5.0), (60.0, 8.0), (58.0, 30.0), (12.0, 26.0)];
        let to = from.map(|p| m.apply(p));
        let fit = Affine::fit(&from, &to).expect("fit");
        for (a, b) in fit.0.iter().zip(m.0) {
            assert!((a - b).abs() < 1e-3, "{:?} vs {:?}", fit.0, m.0);
        }
        let inv = fit.inverse().expect("invertible");
        let back = inv.apply(fit.apply((33.0, 17.0)));
        assert!((back.0 - 33.0).abs() < 1e-3 && (back.1 - 17.0).abs() < 1e-3);
        // Four points on one line fit no affine map that could be inverted.
        let line: Quad = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
        assert!(Affine::fit(&line, &CENTRED).is_none_or(|a| a.inverse().is_none()));
    }

    fn read(ours: &str, p_ours: f32, second: &str, p_second: f32) -> RefinedRead {
        RefinedRead {
            corners: [(0.0, 0.0), (136.0, 0.0), (136.0, 36.0), (0.0, 36.0)],
            ours: chars(ours, p_ours),
            second: chars(second, p_second),
        }
    }

    /// The tune split's cases: ours read 皖 for 浙 (surely: disputed; doubtfully: theirs first),
    /// both read ours there (confirmed only when agreement may confirm), and what never counts.
    #[test]
    fn agreement_on_the_refined_crop_confirms_reorders_or_disputes_and_nothing_else_does() {
        let agree = read("浙A5030Z", 0.9, "浙A5030Z", 0.6);
        assert_eq!(
            refined_verdict("皖A5030Z", false, false, &agree, 0.5),
            Refined::Disputed {
                other: "浙A5030Z".into()
            }
        );
        assert_eq!(
            refined_verdict("皖A5030Z", true, true, &agree, 0.5),
            Refined::Reordered {
                chars: chars("浙A5030Z", 0.9)
            }
        );
        assert_eq!(
            refined_verdict("浙A5030Z", true, true, &agree, 0.5),
            Refined::Confirmed
        );
        // Doubtful for another reason (two views disagreed, a weak box): agreement is no proof.
        assert_eq!(
            refined_verdict("浙A5030Z", true, false, &agree, 0.5),
            Refined::Unchanged
        );
        assert_eq!(
            refined_verdict("浙A5030Z", false, false, &agree, 0.5),
            Refined::Unchanged
        );
        // The two disagree, one is unsure, or the text is no plate: nothing changes.
        for r in [
            read("浙A5030Z", 0.9, "浙A5O30Z", 0.9),
            read("浙A5030Z", 0.9, "浙A5030Z", 0.4),
            read("浙A5030Z", 0.4, "浙A5030Z", 0.9),
            read("浙5030Z", 0.9, "浙5030Z", 0.9),
            read("", 0.9, "", 0.9),
        ] {
            assert_eq!(
                refined_verdict("皖A5030Z", false, true, &r, 0.5),
                Refined::Unchanged,
                "{r:?}"
            );
            assert_eq!(
                refined_verdict("皖A5030Z", true, true, &r, 0.5),
                Refined::Unchanged,
                "{r:?}"
            );
        }
    }

    /// `text` with the given probabilities, one per character.
    fn with_p(text: &str, ps: &[f32]) -> Vec<CharReading> {
        assert_eq!(text.chars().count(), ps.len());
        text.chars()
            .zip(ps)
            .map(|(c, &p)| CharReading {
                ch: c.to_string(),
                p,
                alt: None,
                alt_p: 0.0,
            })
            .collect()
    }

    /// tune3 ht193: ours unsure of its 'E' (0.87), the second sure of 'F' on the refined crop.
    #[test]
    fn the_second_recogniser_alone_reorders_a_doubtful_reading_only_where_ours_was_unsure() {
        let shown = with_p("浙ENA885", &[0.88, 0.87, 0.95, 0.95, 0.95, 0.95, 0.88]);
        let fired = second_alone_verdict(&shown, true, &chars("浙FNA885", 0.91), 0.9, 0.8);
        let Refined::SecondAlone { chars: got } = &fired else {
            panic!("expected SecondAlone, got {fired:?}");
        };
        let text = text_of(got);
        assert_eq!(text, "浙FNA885");
        assert_eq!(got[1].alt.as_deref(), Some("E"));
        assert!((got[1].p - 0.87).abs() < 1e-6, "ours' probability stays");
        // Province too (ours unsure of it): tune3 ht029's shape.
        let province = with_p("皖NA7568", &[0.87, 0.95, 0.95, 0.95, 0.89, 0.95, 0.95]);
        assert!(matches!(
            second_alone_verdict(&province, true, &chars("豫NA7568", 0.85), 0.9, 0.8),
            Refined::SecondAlone { .. }
        ));
        for (what, doubtful, second) in [
            (
                "a sure reading is never touched",
                false,
                chars("浙FNA885", 0.91),
            ),
            ("the second unsure there", true, chars("浙FNA885", 0.79)),
            ("differs where ours was sure", true, chars("浙EMA885", 0.91)),
            (
                "differs where ours was sure, too",
                true,
                chars("浙FMA885", 0.91),
            ),
            ("another length", true, chars("浙FNA8855", 0.91)),
            ("the same text", true, chars("浙ENA885", 0.91)),
            ("no plate", true, chars("浙F1885", 0.91)),
            ("nothing read", true, Vec::new()),
        ] {
            assert_eq!(
                second_alone_verdict(&shown, doubtful, &second, 0.9, 0.8),
                Refined::Unchanged,
                "{what}"
            );
        }
        let mut r = doubtful_reading(0.9, shown.clone(), "character 2 'E' p=0.87", Vec::new());
        apply_refined(&mut r, fired);
        assert_eq!(r.text, "浙FNA885");
        assert!(
            r.doubtful && r.doubt.contains("refined crop"),
            "{}",
            r.doubt
        );
        assert_eq!(r.candidates, ["浙FNA885", "浙ENA885"]);
    }

    /// tune rows hr008 / hr070: ours read 新 (p 0.51) for 浙, the second corrected it on our
    /// corners; both read 浙 on the refined crop. The chain as the reader runs it.
    #[test]
    fn a_corrected_reading_both_read_alike_on_the_refined_crop_is_confirmed_and_only_that() {
        use crate::vision::plate::PlateConfig;
        use crate::vision::plate_rec2::{Verdict, corrected_only, single_row_verdict};
        let config = PlateConfig::default();
        let ours = with_p("新D58886", &[0.51, 0.95, 0.95, 0.95, 0.95, 0.95, 0.86]);
        let second = chars("浙D58886", 0.96);
        let verdict = single_row_verdict(&ours, true, true, false, &second, &config);
        assert_eq!(
            verdict,
            Verdict::Corrected {
                other: "浙D58886".into()
            }
        );
        assert!(corrected_only(true, false, &verdict));
        assert!(
            corrected_only(false, true, &verdict),
            "two views that disagreed, too"
        );
        // A weak box or a double-row reading (neither flag) and other verdicts: never.
        assert!(!corrected_only(false, false, &verdict));
        for v in [
            Verdict::Unchanged,
            Verdict::Confirmed,
            Verdict::Disputed {
                other: "浙D58886".into(),
            },
            Verdict::Candidate {
                other: "浙D58886".into(),
            },
        ] {
            assert!(!corrected_only(true, true, &v), "{v:?}");
        }
        let may = config.refine_confirm_corrected && corrected_only(true, false, &verdict);
        let agree = read("浙D58886", 0.6, "浙D58886", 0.97);
        assert_eq!(
            refined_verdict("浙D58886", true, may, &agree, config.refine_agree_p),
            Refined::Confirmed
        );
        // Ours on the refined crop reads its own 新 again: no agreement, nothing confirmed.
        let split = read("新D58886", 0.6, "浙D58886", 0.97);
        assert_eq!(
            refined_verdict("浙D58886", true, may, &split, config.refine_agree_p),
            Refined::Unchanged
        );
    }

    /// A doubtful reading of a 136x36 crop whose text is `chars`.
    fn doubtful_reading(
        confidence: f32,
        chars: Vec<CharReading>,
        doubt: &str,
        candidates: Vec<String>,
    ) -> PlateReading {
        PlateReading {
            text: text_of(&chars),
            confidence,
            plate: super::super::plate::PlateBox {
                bbox: BBox {
                    x0: 0.0,
                    y0: 0.0,
                    x1: 136.0,
                    y1: 36.0,
                },
                corners: [(0.0, 0.0), (136.0, 0.0), (136.0, 36.0), (0.0, 36.0)],
                score: 0.9,
            },
            chars,
            doubtful: true,
            doubt: doubt.into(),
            candidates,
        }
    }

    #[test]
    fn a_reordered_reading_takes_their_text_and_keeps_ours_as_the_second_candidate() {
        let mut r = doubtful_reading(
            0.8,
            chars("皖AN0R96", 0.8),
            "character 1 '皖' p=0.74",
            vec!["皖AN0R96".into(), "AAN0R96".into()],
        );
        apply_refined(
            &mut r,
            Refined::Reordered {
                chars: chars("浙AN0R96", 0.6),
            },
        );
        assert_eq!(r.text, "浙AN0R96");
        assert!(
            r.doubtful && r.doubt.contains("refined crop"),
            "{}",
            r.doubt
        );
        assert_eq!(r.candidates, ["浙AN0R96", "皖AN0R96", "AAN0R96"]);
        assert!((r.confidence - 0.6).abs() < 1e-6);
        apply_refined(
            &mut r,
            Refined::Disputed {
                other: "沪AN0R96".into(),
            },
        );
        assert_eq!(r.candidates, ["浙AN0R96", "沪AN0R96"]);
    }

    #[test]
    fn a_loose_box_is_hyperlprs_and_stays_inside_the_image() {
        // A 100 x 20 plate (wider than 2.5): 170 wide, 68 high, about its centre.
        let b = BBox {
            x0: 100.0,
            y0: 100.0,
            x1: 200.0,
            y1: 120.0,
        };
        let l = loose_box(&b, 1000.0, 1000.0);
        assert!((l.width() - 170.0).abs() < 1e-3 && (l.height() - 68.0).abs() < 1e-3);
        assert!(((l.x0 + l.x1) / 2.0 - 150.0).abs() < 1e-3);
        let cut = loose_box(&b, 180.0, 115.0);
        assert!(cut.x1 <= 180.0 && cut.y1 <= 115.0 && cut.x0 >= 0.0);
    }
}
