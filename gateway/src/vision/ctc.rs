//! CTC decoding of the plate recogniser's output (`[steps, classes]` probabilities, class 0 the
//! blank, class `i` the dictionary's entry `i - 1`).
//!
//! Greedy decoding takes the likeliest class at every step. On small, blurred plates it can
//! swallow a character (the letter after the province merges into it) or double one, and the
//! text is then no plate at all. [`best_path_in_layout`] finds the likeliest alignment whose text
//! follows a layout (which classes may stand at which place, which lengths are complete): the
//! constrained Viterbi path. It equals the greedy path whenever that one already fits, and any
//! character it adds was not the likeliest class at its steps, so its probability stays at or
//! below one half and the reading stays doubtful (see `plate::assess`): a lead, never a sure read.
//! A character it adds by splitting a run of one class in two (a doubled digit) was the likeliest
//! class at its steps, but the blank that splits the run was not: [`chars_of_path`] bounds it by
//! that blank.

use serde::Serialize;

/// One recognised character: its probability and the runner-up at the same place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CharReading {
    pub ch: String,
    /// Probability of `ch` (0..1).
    pub p: f32,
    /// The second most likely character there, when it is not the CTC blank.
    pub alt: Option<String>,
    pub alt_p: f32,
}

/// The text of a reading, its characters in order.
pub(crate) fn text_of(chars: &[CharReading]) -> String {
    chars.iter().map(|c| c.ch.as_str()).collect()
}

/// `text` read with probability `p` at every character and no runner-up (tests of the rules
/// built on readings).
#[cfg(test)]
pub(crate) fn uniform_reading(text: &str, p: f32) -> Vec<CharReading> {
    text.chars()
        .map(|c| CharReading {
            ch: c.to_string(),
            p,
            alt: None,
            alt_p: 0.0,
        })
        .collect()
}

/// Greedy CTC decoding keeping, per character, the best probability over its run of steps and
/// the runner-up class (not blank) at that step.
pub(crate) fn ctc_chars(
    probs: &[f32],
    steps: usize,
    classes: usize,
    dict: &[String],
) -> Vec<CharReading> {
    let path: Vec<usize> = probs
        .chunks_exact(classes)
        .take(steps)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0usize, f32::MIN),
                    |acc, (i, &v)| {
                        if v > acc.1 { (i, v) } else { acc }
                    },
                )
                .0
        })
        .collect();
    chars_of_path(probs, classes, dict, &path)
}

/// The characters an alignment spells: repeats collapsed, blanks dropped; each character's
/// probability is its best over its run of steps, with the likeliest other character (not the
/// blank) at that step as runner-up.
///
/// A character that repeats the one before it across blanks none of which was the likeliest
/// class at its step (an alignment that split one run of `8`s into two, as
/// [`best_path_in_layout`] does to reach a plate's length) is at most as likely as the likeliest
/// of those blanks: that blank is all the evidence of a second character, and it was not the
/// likeliest class, so the character stays at or below one half like any other the layout adds.
/// On a greedy path every blank is the likeliest class at its step: nothing changes there.
pub(crate) fn chars_of_path(
    probs: &[f32],
    classes: usize,
    dict: &[String],
    path: &[usize],
) -> Vec<CharReading> {
    let mut out: Vec<CharReading> = Vec::new();
    let mut prev = 0usize;
    // The last character's label and the blank steps since it: their likeliest blank
    // probability, and whether any was the likeliest class of its step.
    let (mut last_label, mut gap_p, mut gap_read) = (0usize, 0.0f32, false);
    // The bound on the current character's probability (see above).
    let mut cap = 1.0f32;
    for (row, &label) in probs.chunks_exact(classes).zip(path) {
        if label == 0 {
            gap_p = gap_p.max(row[0]);
            gap_read |= row.iter().skip(1).all(|&v| row[0] >= v);
        } else if label < classes {
            let p = row[label];
            // Runner-up among characters only: the blank competing means "maybe no
            // character", not another one.
            let (alt_i, alt_p) = row
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| *i != label)
                .fold(
                    (0, 0.0f32),
                    |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                );
            let alt = if alt_i == 0 {
                None
            } else {
                dict.get(alt_i - 1).cloned()
            };
            if label == prev {
                let p = p.min(cap);
                if let Some(last) = out.last_mut()
                    && p > last.p
                {
                    last.p = p;
                    last.alt = alt;
                    last.alt_p = alt_p;
                }
            } else if let Some(c) = dict.get(label - 1) {
                cap = if label == last_label && !gap_read {
                    gap_p
                } else {
                    1.0
                };
                out.push(CharReading {
                    ch: c.clone(),
                    p: p.min(cap),
                    alt,
                    alt_p,
                });
                (last_label, gap_p, gap_read) = (label, 0.0, false);
            }
        }
        prev = label;
    }
    out
}

/// Which texts an alignment may spell: the classes allowed at each place, the classes that end a
/// text at their place, and the complete lengths.
#[derive(Debug, Clone)]
pub(crate) struct PathLayout {
    classes: usize,
    /// `allowed[pos][class]`: `class` may be character `pos + 1`.
    allowed: Vec<Vec<bool>>,
    /// `ends[pos][class]`: nothing may follow `class` as character `pos + 1`.
    ends: Vec<Vec<bool>>,
    complete: Vec<bool>,
}

impl PathLayout {
    /// `allows(class, place)` (place from 1) for every non-blank class and place up to the
    /// longest complete length; `ends(class, place)` where that class ends a text.
    pub(crate) fn new(
        classes: usize,
        lengths: &[usize],
        allows: impl Fn(usize, usize) -> bool,
        ends: impl Fn(usize, usize) -> bool,
    ) -> Self {
        let max_len = lengths.iter().copied().max().unwrap_or(0);
        let table = |f: &dyn Fn(usize, usize) -> bool| -> Vec<Vec<bool>> {
            (1..=max_len)
                .map(|pos| (0..classes).map(|c| c != 0 && f(c, pos)).collect())
                .collect()
        };
        let allowed = table(&allows);
        let ends = table(&ends);
        let mut complete = vec![false; max_len + 1];
        for &l in lengths {
            complete[l] = true;
        }
        PathLayout {
            classes,
            allowed,
            ends,
            complete,
        }
    }

    fn max_len(&self) -> usize {
        self.allowed.len()
    }
}

/// Where an alignment state came from (for the backtrack).
#[derive(Debug, Clone, Copy, PartialEq)]
enum From {
    Start,
    /// A character state: `(length, class)`.
    Char(usize, usize),
    /// A blank after `(length, class)`.
    Blank(usize, usize),
}

/// The likeliest alignment (one label per step, 0 = blank) whose text fits `layout`, or `None`
/// when no alignment of `steps` steps can spell a complete text.
pub(crate) fn best_path_in_layout(
    probs: &[f32],
    steps: usize,
    classes: usize,
    layout: &PathLayout,
) -> Option<Vec<usize>> {
    if classes != layout.classes || steps == 0 || probs.len() < steps * classes {
        return None;
    }
    let kmax = layout.max_len();
    let lp = |t: usize, c: usize| probs[t * classes + c].max(1e-30).ln();
    let idx = |k: usize, c: usize| k * classes + c;
    let n = (kmax + 1) * classes;
    let neg = f32::NEG_INFINITY;
    // Scores of the states after the current step: the last step emitted class c as the k-th
    // character (`ch`), or a blank after it (`bl`); `start`: blanks only so far.
    let mut ch = vec![neg; n];
    let mut bl = vec![neg; n];
    let mut start = lp(0, 0);
    let mut back_ch = vec![From::Start; steps * n];
    let mut back_bl = vec![From::Start; steps * n];
    for c in 1..classes {
        if layout.allowed[0][c] {
            ch[idx(1, c)] = lp(0, c);
        }
    }
    let (mut nch, mut nbl) = (vec![neg; n], vec![neg; n]);
    for t in 1..steps {
        let blank = lp(t, 0);
        for k in 1..=kmax {
            // Best ways to end the (k-1)-th character so that a new one may follow: after a
            // blank (any class), or straight after a character (a different class).
            let mut best_bl = (neg, From::Start);
            let mut top = [(neg, 0usize); 2];
            if k == 1 {
                best_bl = (start, From::Start);
            } else {
                for c in 1..classes {
                    if layout.ends[k - 2][c] {
                        continue;
                    }
                    let b = bl[idx(k - 1, c)];
                    if b > best_bl.0 {
                        best_bl = (b, From::Blank(k - 1, c));
                    }
                    let v = ch[idx(k - 1, c)];
                    if v > top[0].0 {
                        top[1] = top[0];
                        top[0] = (v, c);
                    } else if v > top[1].0 {
                        top[1] = (v, c);
                    }
                }
            }
            for c in 1..classes {
                let i = idx(k, c);
                // Blank after this character.
                let (b, from) = if bl[i] >= ch[i] {
                    (bl[i], From::Blank(k, c))
                } else {
                    (ch[i], From::Char(k, c))
                };
                nbl[i] = b + blank;
                back_bl[t * n + i] = from;
                if !layout.allowed[k - 1][c] {
                    nch[i] = neg;
                    continue;
                }
                let mut best = (ch[i], From::Char(k, c));
                if best_bl.0 > best.0 {
                    best = best_bl;
                }
                let direct = if top[0].1 != c { top[0] } else { top[1] };
                if k > 1 && direct.0 > best.0 {
                    best = (direct.0, From::Char(k - 1, direct.1));
                }
                nch[i] = best.0 + lp(t, c);
                back_ch[t * n + i] = best.1;
            }
        }
        start += blank;
        std::mem::swap(&mut ch, &mut nch);
        std::mem::swap(&mut bl, &mut nbl);
    }
    let mut end = (neg, From::Start);
    for k in 1..=kmax {
        if !layout.complete[k] {
            continue;
        }
        for c in 1..classes {
            let i = idx(k, c);
            if ch[i] > end.0 {
                end = (ch[i], From::Char(k, c));
            }
            if bl[i] > end.0 {
                end = (bl[i], From::Blank(k, c));
            }
        }
    }
    if end.0 == neg {
        return None;
    }
    let mut path = vec![0usize; steps];
    let mut state = end.1;
    for t in (0..steps).rev() {
        state = match state {
            From::Start => break,
            From::Char(k, c) => {
                path[t] = c;
                if t == 0 {
                    break;
                }
                back_ch[t * n + idx(k, c)]
            }
            From::Blank(k, c) => {
                if t == 0 {
                    break;
                }
                back_bl[t * n + idx(k, c)]
            }
        };
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Vec<String> {
        ["浙", "E", "P", "8", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Rows of probabilities over blank + `dict()`, one per step, from (class, p) pairs: the
    /// rest of each row is spread over the other classes.
    fn rows(steps: &[&[(usize, f32)]]) -> Vec<f32> {
        let classes = dict().len() + 1;
        let mut out = Vec::new();
        for s in steps {
            let used: f32 = s.iter().map(|(_, p)| p).sum();
            let others = classes - s.len();
            let mut row = vec![(1.0 - used) / others as f32; classes];
            for &(c, p) in s.iter() {
                row[c] = p;
            }
            out.extend(row);
        }
        out
    }

    /// Province (class 1) first, then letters (2, 3), then anything; three or four characters.
    fn layout() -> PathLayout {
        PathLayout::new(
            6,
            &[3, 4],
            |c, pos| match pos {
                1 => c == 1,
                2 => c == 2 || c == 3,
                _ => c >= 2,
            },
            |_, _| false,
        )
    }

    #[test]
    fn greedy_collapses_repeats_and_drops_blanks() {
        let p = rows(&[
            &[(1, 0.9)],
            &[(1, 0.8)],
            &[(0, 0.9)],
            &[(4, 0.7)],
            &[(4, 0.95)],
        ]);
        let got = ctc_chars(&p, 5, 6, &dict());
        assert_eq!(text_of(&got), "浙8");
        assert!((got[1].p - 0.95).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn a_swallowed_letter_is_restored_by_the_layout_and_stays_doubtful() {
        // 浙, then E just under the blank, then 8 and 0: greedy reads 浙80, which lacks the
        // letter that must follow the province.
        let p = rows(&[
            &[(1, 0.9)],
            &[(0, 0.55), (2, 0.4)],
            &[(4, 0.9)],
            &[(0, 0.9)],
            &[(5, 0.9)],
        ]);
        let greedy = ctc_chars(&p, 5, 6, &dict());
        assert_eq!(text_of(&greedy), "浙80");
        let path = best_path_in_layout(&p, 5, 6, &layout()).expect("a path fits");
        let got = chars_of_path(&p, 6, &dict(), &path);
        assert_eq!(text_of(&got), "浙E80");
        assert!(got[1].p <= 0.5, "the restored letter is not sure: {got:?}");
    }

    /// A digit doubled by the layout out of one run of steps (8 8 8 read as one 8; the layout
    /// wants one more character, so the path puts a blank where 8 was likeliest): the second 8
    /// stands only on that blank's probability, and stays doubtful like any character the
    /// layout adds (it came out at 0.9, a sure read of a character no step showed apart).
    #[test]
    fn a_digit_split_from_one_run_by_the_layout_stays_doubtful() {
        let four = PathLayout::new(6, &[4], |c, pos| (pos == 1) == (c == 1), |_, _| false);
        let p = rows(&[
            &[(1, 0.9)],
            &[(2, 0.9)],
            &[(4, 0.9), (0, 0.05)],
            &[(4, 0.9), (0, 0.06)],
            &[(4, 0.9), (0, 0.05)],
        ]);
        assert_eq!(text_of(&ctc_chars(&p, 5, 6, &dict())), "浙E8");
        let path = best_path_in_layout(&p, 5, 6, &four).expect("fits");
        let got = chars_of_path(&p, 6, &dict(), &path);
        assert_eq!(text_of(&got), "浙E88");
        assert!((got[2].p - 0.9).abs() < 1e-6, "{got:?}");
        assert!(got[3].p <= 0.5, "the split-off 8 is not sure: {got:?}");
        // A blank the greedy path read too splits a repeat on its own evidence: kept as it is.
        let p = rows(&[
            &[(1, 0.9)],
            &[(2, 0.9)],
            &[(4, 0.9)],
            &[(0, 0.6), (4, 0.3)],
            &[(4, 0.9)],
        ]);
        let got = chars_of_path(
            &p,
            6,
            &dict(),
            &best_path_in_layout(&p, 5, 6, &four).unwrap(),
        );
        assert_eq!(text_of(&got), "浙E88");
        assert!((got[3].p - 0.9).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn a_greedy_path_that_fits_is_kept() {
        let p = rows(&[&[(1, 0.9)], &[(3, 0.8)], &[(0, 0.9)], &[(4, 0.9)]]);
        let path = best_path_in_layout(&p, 4, 6, &layout()).expect("fits");
        assert_eq!(text_of(&chars_of_path(&p, 6, &dict(), &path)), "浙P8");
        assert_eq!(text_of(&ctc_chars(&p, 4, 6, &dict())), "浙P8");
    }

    #[test]
    fn a_repeated_character_needs_a_blank_between() {
        // 浙 E 8 8 with a blank between the eights: four characters.
        let p = rows(&[
            &[(1, 0.9)],
            &[(2, 0.9)],
            &[(4, 0.9)],
            &[(0, 0.9)],
            &[(4, 0.9)],
        ]);
        let path = best_path_in_layout(&p, 5, 6, &layout()).expect("fits");
        assert_eq!(text_of(&chars_of_path(&p, 6, &dict(), &path)), "浙E88");
    }

    #[test]
    fn too_few_steps_for_any_complete_text_gives_none() {
        let p = rows(&[&[(1, 0.9)], &[(2, 0.9)]]);
        assert!(best_path_in_layout(&p, 2, 6, &layout()).is_none());
        // A layout for other classes than the model's is refused, not indexed out of bounds.
        assert!(best_path_in_layout(&p, 2, 9, &layout()).is_none());
    }

    #[test]
    fn nothing_follows_a_class_that_ends_the_text() {
        let l = PathLayout::new(
            6,
            &[3, 4],
            |c, pos| pos > 1 || c == 1,
            |c, pos| c == 5 && pos > 2,
        );
        // 浙 E 0 8: "0" may only end a text, so the four-character read is not allowed and the
        // likeliest three-character one is taken.
        let p = rows(&[&[(1, 0.9)], &[(2, 0.9)], &[(5, 0.9)], &[(4, 0.6)]]);
        let path = best_path_in_layout(&p, 4, 6, &l).expect("fits");
        let t = text_of(&chars_of_path(&p, 6, &dict(), &path));
        assert!(t == "浙E0" || t == "浙E8", "{t}");
        assert_ne!(t.chars().count(), 4);
    }
}
