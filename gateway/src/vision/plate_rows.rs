//! Double-row plates: the yellow rear plates of trucks (muck trucks among them), buses and
//! trailers, and motorcycle plates. Both recognisers read one text line (ours was trained on
//! CCPD, single-row plates only); given a double-row plate whole they see the two rows squashed
//! into one and read nothing useful.
//!
//! The usual method (HyperLPR3, we0091234's plate projects): cut the upper row (province and
//! letter) and the lower row (the five serial characters), bring the upper to the lower's
//! height, set them side by side and read that as one line. The numbers here come from the plate
//! standard (GA 36, sizes in mm), not from photos: no public double-row photo with a licence that
//! allows test use was found outside the judging sets (README, "Plate reader on real photos").
//! - A single-row plate is 440 x 140 (aspect 3.14; green new-energy 480 x 140, 3.43), a
//!   double-row one 440 x 220 (2.0), a motorcycle plate 220 x 140 (1.57). The corners' aspect
//!   decides whether a plate *may* be double-row: below 2.5, the midpoint of 2.0 and 3.14 on a
//!   log scale ([`MAY_BE_DOUBLE_BELOW`]). A single-row plate seen from the side also gets there
//!   (cos 37 degrees x 3.14 = 2.5), so the aspect only allows a second reading: the plate's text
//!   is the double-row one only when it is laid out like a plate and surer than the single-row
//!   one, which is tried only when the single-row reading is not sure (see `plate.rs`).
//! - The upper row's characters are 60 high and stand in the top 15-75 mm of 220, the lower
//!   row's 110 high in 95-205: the upper row is the top 5/12, the lower row from 1/3 down (the
//!   published split, with some margin on each row; [`UPPER_END`], [`LOWER_START`]).
//! - Upper-row characters are 80 wide x 60 high, lower-row ones 65 x 110, single-row ones 45 x
//!   90. Brought to the lower row's height the upper row's characters are 80 x 96 if the upper
//!   row keeps the lower's width (the published join), or 48 x 96 at 0.6 of it, the shape of the
//!   characters the recogniser knows. Both are read; the surer reading wins
//!   ([`UPPER_WIDTHS`]).

use super::ctc::CharReading;
use super::ctc::text_of;
use super::plate::plate_layout_ok;
use super::plate_rec2::{Verdict, confident_text};
use super::preprocess::{Normalize, Plane, Quad, quad_point, quad_size, warp_into};
use image::RgbImage;

/// Corners' aspect (width / height) below which a plate may be double-row (see the module doc).
pub(crate) const MAY_BE_DOUBLE_BELOW: f32 = 2.5;
/// Corners squarer than this are no plate of any kind (a motorcycle plate is 1.57; a plate seen
/// from below, its height foreshortened, only gets wider).
const MIN_ASPECT: f32 = 1.0;
/// The upper row: from the top to this fraction of the plate's height.
pub(crate) const UPPER_END: f32 = 5.0 / 12.0;
/// The lower row: from this fraction of the plate's height to the bottom.
pub(crate) const LOWER_START: f32 = 1.0 / 3.0;
/// Widths of the upper row in the joined line, as fractions of the lower row's width there.
pub(crate) const UPPER_WIDTHS: [f32; 2] = [1.0, 0.6];
/// How far each hypothesis moves the plate's top edge up, as a fraction of its height. The
/// detector (trained on single-row plates) boxes a double-row plate around its lower, larger row:
/// on rendered double-row plates (GA 36 layout; rendered, not photographed) its box started
/// 14-25 % of its height below the plate's top, and 10 % or 20 % raised read 18 of 20 where the
/// box as found read 12 (`README`, double-row paragraph). The box as found stays a hypothesis.
pub(crate) const RAISE_TOP: [f32; 2] = [0.0, 0.15];
/// Characters on a double-row plate: province, letter, five serial characters (GA 36; the last
/// may be 挂 on a trailer). An eighth character is a misread (a digit doubled at the joint).
pub(crate) const DOUBLE_ROW_CHARS: usize = 7;
/// A joined line is at most this many times as wide as high (the recogniser reads nothing
/// wider: `plate.rs` `REC_MAX_ASPECT`).
const MAX_JOINED_ASPECT: f32 = 9.5;

/// Height of a joined line for the second recogniser (it reads 160 x 40).
pub(crate) const SECOND_LINE_H: u32 = 40;

/// A plate read as double-row: where and how its line was joined (to join it again for the
/// second recogniser), and its single-row reading when that was laid out like a plate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DoubleRead {
    pub quad: Quad,
    pub upper: f32,
    pub single: Option<String>,
}

/// Characters of a double-row plate's upper row (province and letter): where the joined line's
/// joint is.
const UPPER_CHARS: usize = 2;

/// What the second recogniser's reading of the same joined line does to a double-row reading
/// (which starts doubtful): it becomes sure only when both recognisers read the same
/// plate-shaped text with every character sure (ours at least `char_doubt`, the second at least
/// `sure_p`), the plate's rim at the joint left out of the second reading ([`without_joint_rim`]).
/// Joining rows is new to both models, so one model's confidence is not enough; a confident
/// other text becomes a candidate.
pub(crate) fn double_row_verdict(
    ours: &[CharReading],
    second: &[CharReading],
    char_doubt: f32,
    sure_p: f32,
) -> Verdict {
    let text = text_of(ours);
    let Some(other) = confident_text(&without_joint_rim(second), sure_p) else {
        return Verdict::Unchanged;
    };
    if other != text {
        Verdict::Candidate { other }
    } else if plate_layout_ok(&text) && ours.iter().all(|c| c.p >= char_doubt) {
        Verdict::Confirmed
    } else {
        Verdict::Unchanged
    }
}

/// Whether the second recogniser's reading of a joined line reads the same text as ours
/// (whatever its probabilities), the rim at the joint left out as [`double_row_verdict`] leaves
/// it out: the reading behind a double-row text that keeps it from being a guess
/// (`plate::is_guess`). Compared with the rim in, a reading the verdict takes as alike did not
/// count as behind ours.
pub(crate) fn joined_read_alike(ours: &[CharReading], second: &[CharReading]) -> bool {
    text_of(&without_joint_rim(second)) == text_of(ours)
}

/// The second recogniser's reading of a joined line without the rim at its joint: a '1' read
/// right after the upper row's two characters, when that makes the reading one character longer
/// than a double-row plate, is left out (whatever its probability); any other reading is kept
/// as it is.
///
/// Why: the joined line sets the upper row's right rim beside the lower row's left rim, a
/// vertical bar the second model (trained on single-row plates) reads as '1'. On rendered
/// double-row plates (GA 36 layout drawn with a free CJK font, not photos: 60 plates, both
/// upper widths, the second model run on the joined lines in Python) 21 of 120 readings had 8
/// characters, 20 of them with a '1' right after the upper row; without it 12 were the plate's
/// text (the rest differed elsewhere, mostly G/6 and N/M, where the font is not a plate's). A
/// real first serial character '1' is still read: only one '1' of the eight is left out.
pub(crate) fn without_joint_rim(second: &[CharReading]) -> Vec<CharReading> {
    let mut out = second.to_vec();
    if out.len() == DOUBLE_ROW_CHARS + 1 && out[UPPER_CHARS].ch == "1" {
        out.remove(UPPER_CHARS);
    }
    out
}

/// Whether a plate with these corners (top-left first, clockwise) may be double-row.
pub(crate) fn may_be_double(corners: &Quad) -> bool {
    let (w, h) = quad_size(corners);
    h > 0.0 && (MIN_ASPECT..MAY_BE_DOUBLE_BELOW).contains(&(w / h))
}

/// `q` with its top edge moved up along its left and right edges by `r` times their length.
pub(crate) fn raise_top(q: &Quad, r: f32) -> Quad {
    let up = |top: (f32, f32), bottom: (f32, f32)| {
        (
            top.0 + (top.0 - bottom.0) * r,
            top.1 + (top.1 - bottom.1) * r,
        )
    };
    [up(q[0], q[3]), up(q[1], q[2]), q[2], q[3]]
}

/// The part of `q` between `v0` and `v1` of its height, along its own edges.
pub(crate) fn band(q: &Quad, v0: f32, v1: f32) -> Quad {
    [
        quad_point(q, 0.0, v0),
        quad_point(q, 1.0, v0),
        quad_point(q, 1.0, v1),
        quad_point(q, 0.0, v1),
    ]
}

/// Double-row plates joined into one line each, stacked in one image: plate `i`'s line is the
/// quad `lines[i]` of `image` (read it as a plate crop).
#[derive(Debug)]
pub(crate) struct Joined {
    pub image: RgbImage,
    pub lines: Vec<Quad>,
}

/// Joins each `(plate quad, upper width)` of `img` into one line `height` pixels high: the upper
/// row ([`UPPER_END`]) resized to `upper width` times the lower row's width, then the lower row
/// ([`LOWER_START`]) at its own aspect, side by side, straightened along the quad's edges.
pub(crate) fn join_rows(img: &RgbImage, plates: &[(Quad, f32)], height: u32) -> Joined {
    let h = height.max(2);
    let widths: Vec<(u32, u32)> = plates
        .iter()
        .map(|(q, upper)| line_widths(q, *upper, h))
        .collect();
    let total_w = widths.iter().map(|(u, l)| u + l).max().unwrap_or(1).max(1);
    let total_h = h * (plates.len() as u32).max(1);
    let mut image = RgbImage::from_pixel(total_w, total_h, image::Rgb([128, 128, 128]));
    let mut lines = Vec::with_capacity(plates.len());
    for (i, ((q, _), &(uw, lw))) in plates.iter().zip(&widths).enumerate() {
        let y0 = i as u32 * h;
        paste(&mut image, img, &band(q, 0.0, UPPER_END), (0, y0, uw, h));
        paste(&mut image, img, &band(q, LOWER_START, 1.0), (uw, y0, lw, h));
        let (x1, y0f, y1) = ((uw + lw) as f32, y0 as f32, (y0 + h) as f32);
        lines.push([(0.0, y0f), (x1, y0f), (x1, y1), (0.0, y1)]);
    }
    Joined { image, lines }
}

/// Widths of the upper and lower row in a joined line `h` high: the lower row keeps its aspect,
/// the upper is `upper` times that; the two together at most [`MAX_JOINED_ASPECT`] x `h`.
fn line_widths(q: &Quad, upper: f32, h: u32) -> (u32, u32) {
    let (w, qh) = quad_size(&band(q, LOWER_START, 1.0));
    let aspect = if qh > 0.0 { w / qh } else { 1.0 };
    let upper = upper.clamp(0.1, 2.0);
    let lower = (h as f32 * aspect).min(h as f32 * MAX_JOINED_ASPECT / (1.0 + upper));
    let lower = lower.round().max(1.0);
    ((lower * upper).round().max(1.0) as u32, lower as u32)
}

/// Straightens the quad `q` of `src` into the window `(x, y, w, h)` of `dst`.
fn paste(dst: &mut RgbImage, src: &RgbImage, q: &Quad, (x, y, w, h): (u32, u32, u32, u32)) {
    let (w, h) = (w as usize, h as usize);
    let mut buf = vec![0.0f32; 3 * w * h];
    let mut plane = Plane {
        data: &mut buf,
        width: w,
        height: h,
    };
    let keep = Normalize {
        order: [0, 1, 2],
        scale: [1.0; 3],
        bias: [0.0; 3],
    };
    warp_into(src, q, &mut plane, (0, 0, w, h), &keep);
    for row in 0..h {
        for col in 0..w {
            let (px, py) = (x + col as u32, y + row as u32);
            if px >= dst.width() || py >= dst.height() {
                continue;
            }
            let at = |c: usize| buf[c * w * h + row * w + col].round().clamp(0.0, 255.0) as u8;
            dst.put_pixel(px, py, image::Rgb([at(0), at(1), at(2)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: f32, y0: f32, w: f32, h: f32) -> Quad {
        [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    }

    #[test]
    fn a_double_row_reading_is_sure_only_when_both_recognisers_read_it_alike_surely() {
        let read = crate::vision::ctc::uniform_reading;
        let v = |ours: &[CharReading], second: &[CharReading]| {
            double_row_verdict(ours, second, 0.9, 0.8)
        };
        let ours = read("京EA5331", 0.95);
        assert_eq!(v(&ours, &read("京EA5331", 0.85)), Verdict::Confirmed);
        // The second model unsure, or silent: stays doubtful.
        assert_eq!(v(&ours, &read("京EA5331", 0.7)), Verdict::Unchanged);
        assert_eq!(v(&ours, &[]), Verdict::Unchanged);
        // Ours unsure of a character: agreement does not make it sure.
        let mut unsure = ours.clone();
        unsure[3].p = 0.6;
        assert_eq!(v(&unsure, &read("京EA5331", 0.99)), Verdict::Unchanged);
        // A confident other text: a candidate, never a correction.
        assert_eq!(
            v(&ours, &read("京EA5381", 0.99)),
            Verdict::Candidate {
                other: "京EA5381".into()
            }
        );
        // Not laid out like a plate: no opinion.
        assert_eq!(v(&ours, &read("EA5331", 0.99)), Verdict::Unchanged);
    }

    #[test]
    fn the_rim_read_as_one_at_the_joint_is_no_disagreement() {
        let read = crate::vision::ctc::uniform_reading;
        let v = |ours: &[CharReading], second: &[CharReading]| {
            double_row_verdict(ours, second, 0.9, 0.8)
        };
        let ours = read("皖BC4DUA", 0.95);
        // The second model reads the rim between the rows as '1' (even unsurely): agreement.
        let mut rim = read("皖B1C4DUA", 0.9);
        rim[2].p = 0.5;
        assert_eq!(v(&ours, &rim), Verdict::Confirmed);
        // Read alike, whatever the second's probabilities: the rim is not a character of it.
        rim[5].p = 0.3;
        assert_eq!(v(&ours, &rim), Verdict::Unchanged);
        assert!(joined_read_alike(&ours, &rim));
        assert!(!joined_read_alike(&ours, &read("皖B1C4DUB", 0.9)));
        // A real '1' first in the lower row, and the rim before it: still the same plate.
        assert_eq!(
            v(&read("皖B1C4DU", 0.95), &read("皖B11C4DU", 0.9)),
            Verdict::Confirmed
        );
        // Another character at the joint, or a '1' elsewhere: a disagreement, never sure.
        assert_eq!(
            v(&ours, &read("皖BSC4DUA", 0.9)),
            Verdict::Candidate {
                other: "皖BSC4DUA".into()
            }
        );
        assert_eq!(
            v(&ours, &read("皖BC4D1UA", 0.9)),
            Verdict::Candidate {
                other: "皖BC4D1UA".into()
            }
        );
        // The rest of the second reading still has to be sure, and ours too.
        let mut weak = read("皖B1C4DUA", 0.9);
        weak[5].p = 0.6;
        assert_eq!(v(&ours, &weak), Verdict::Unchanged);
        let mut unsure = ours.clone();
        unsure[0].p = 0.7;
        assert_eq!(v(&unsure, &read("皖B1C4DUA", 0.9)), Verdict::Unchanged);
        assert_eq!(without_joint_rim(&read("皖BC4DUA", 0.9)).len(), 7);
    }

    #[test]
    fn only_plates_shaped_like_double_row_ones_may_be_double_row() {
        // GA 36 sizes in mm: double-row 440 x 220, motorcycle 220 x 140.
        assert!(may_be_double(&rect(0.0, 0.0, 440.0, 220.0)));
        assert!(may_be_double(&rect(10.0, 5.0, 220.0, 140.0)));
        // Single-row 440 x 140 and green new-energy 480 x 140: never.
        assert!(!may_be_double(&rect(0.0, 0.0, 440.0, 140.0)));
        assert!(!may_be_double(&rect(0.0, 0.0, 480.0, 140.0)));
        // Squarer than any plate, and a degenerate quad: no.
        assert!(!may_be_double(&rect(0.0, 0.0, 100.0, 120.0)));
        assert!(!may_be_double(&[(3.0, 3.0); 4]));
        // A double-row plate turned 10 degrees keeps its shape along its own edges.
        let (c, s) = (10f32.to_radians().cos(), 10f32.to_radians().sin());
        let turned = [(0.0, 0.0), (440.0, 0.0), (440.0, 220.0), (0.0, 220.0)]
            .map(|(x, y): (f32, f32)| (x * c - y * s, x * s + y * c));
        assert!(may_be_double(&turned));
    }

    #[test]
    fn the_rows_are_cut_along_the_plates_own_edges() {
        let q = rect(100.0, 50.0, 240.0, 120.0);
        assert_eq!(raise_top(&q, 0.0), q);
        assert_eq!(raise_top(&q, 0.25), rect(100.0, 20.0, 240.0, 150.0));
        let near = |a: Quad, b: Quad| {
            a.iter()
                .zip(&b)
                .all(|(p, q)| (p.0 - q.0).abs() < 1e-3 && (p.1 - q.1).abs() < 1e-3)
        };
        assert!(near(
            band(&q, 0.0, UPPER_END),
            rect(100.0, 50.0, 240.0, 50.0)
        ));
        assert!(near(
            band(&q, LOWER_START, 1.0),
            rect(100.0, 90.0, 240.0, 80.0)
        ));
        // The lower row keeps its aspect (240 / 80 = 3) at 32 px high: 96 px; the upper is
        // 96 or 58 px wide.
        assert_eq!(line_widths(&q, 1.0, 32), (96, 96));
        assert_eq!(line_widths(&q, 0.6, 32), (58, 96));
        // A joined line is never wider than the recogniser reads.
        let flat = rect(0.0, 0.0, 2000.0, 40.0);
        let (u, l) = line_widths(&flat, 1.0, 32);
        assert!((u + l) as f32 <= 32.0 * MAX_JOINED_ASPECT, "{u} + {l}");
    }

    /// A plate whose upper row is red and lower row blue (a grey rim around both): joined, the
    /// line is red on the left and blue on the right, each row straightened into its place.
    #[test]
    fn joining_puts_the_upper_row_left_of_the_lower_row() {
        let plate = rect(20.0, 10.0, 120.0, 60.0);
        let img = RgbImage::from_fn(160, 90, |x, y| {
            let (x, y) = (x as f32 + 0.5, y as f32 + 0.5);
            if !(20.0..140.0).contains(&x) || !(10.0..70.0).contains(&y) {
                image::Rgb([128, 128, 128])
            } else if y < 10.0 + 60.0 * 0.375 {
                image::Rgb([255, 0, 0])
            } else if y >= 10.0 + 60.0 * 0.42 {
                image::Rgb([0, 0, 255])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let joined = join_rows(&img, &[(plate, 1.0), (plate, 0.6)], 32);
        // Lower row 120 x 40 -> 96 x 32; upper 96 or 58 px.
        assert_eq!(joined.image.dimensions(), (192, 64));
        assert_eq!(joined.lines[0], rect(0.0, 0.0, 192.0, 32.0));
        assert_eq!(joined.lines[1], rect(0.0, 32.0, 154.0, 32.0));
        let px = |x: u32, y: u32| joined.image.get_pixel(x, y).0;
        // Upper row: red in its top part (the row's lower edge at 5/12 holds the white gap).
        assert_eq!(px(48, 8), [255, 0, 0]);
        assert_eq!(px(29, 32 + 8), [255, 0, 0]);
        // Lower row: blue below its top edge at 1/3 (the gap is in its first 1/8).
        assert_eq!(px(96 + 48, 24), [0, 0, 255]);
        assert_eq!(px(58 + 48, 32 + 24), [0, 0, 255]);
        // Right of the second (narrower) line: untouched grey.
        assert_eq!(px(180, 40), [128, 128, 128]);
    }
}
