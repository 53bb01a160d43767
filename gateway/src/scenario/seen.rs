//! What the kitchen cameras actually showed, so the ground truth asks only for what a camera
//! could have shown. The simulator seeds picture problems (black, frozen, covered, sky, moved)
//! independently of outages, so one may fall wholly inside another: a camera moved while it was
//! black, or frozen while it was offline, never shows the problem in a single frame. Tuning
//! seeds 15 and 16 each missed one such problem (frozen inside an outage and a black picture;
//! moved inside a black picture).
//!
//! The rule: a picture problem is *seen* when the camera delivered frames showing it that span
//! at least the camera health's `hold_ms` (the time a condition must hold before a clue), with
//! no frame showing something else between them. A problem that was not seen becomes the
//! innocent `{problem}_unseen`: a clue about it is right (see `score::optional_problem`), no
//! clue is no miss. The same guard band as the firmware's `sensor_cut_at_line`: what no
//! instrument configured this way can see is not asked of it.

use firmware::sim::{CameraView, Truth, TruthClass};
use std::collections::HashMap;

/// The picture a problem shows, for the camera picture problems.
pub fn view_of(problem: &str) -> Option<CameraView> {
    Some(match problem {
        "camera_black" => CameraView::Black,
        "camera_frozen" => CameraView::Frozen,
        "camera_covered" => CameraView::Covered,
        "camera_sky" => CameraView::Sky,
        "camera_moved" => CameraView::Moved,
        _ => return None,
    })
}

/// The innocent name of a picture problem that was never shown long enough.
pub fn unseen_name(problem: &str) -> Option<&'static str> {
    Some(match problem {
        "camera_black" => "camera_black_unseen",
        "camera_frozen" => "camera_frozen_unseen",
        "camera_covered" => "camera_covered_unseen",
        "camera_sky" => "camera_sky_unseen",
        "camera_moved" => "camera_moved_unseen",
        _ => return None,
    })
}

/// Every frame each camera delivered, in time order: (site, device) -> (time, what it showed).
#[derive(Debug, Default)]
pub struct Shown {
    frames: HashMap<(String, String), Vec<(i64, CameraView)>>,
}

impl Shown {
    /// Notes a frame delivered at `at_ms` (called in time order).
    pub fn frame(&mut self, site: &str, device: &str, at_ms: i64, view: CameraView) {
        self.frames
            .entry((site.to_string(), device.to_string()))
            .or_default()
            .push((at_ms, view));
    }

    /// The longest time `view` was shown in `[from, to]`: from the first to the last of a run
    /// of delivered frames showing it with no other picture between them.
    fn longest_shown(&self, site: &str, device: &str, view: CameraView, from: i64, to: i64) -> i64 {
        let Some(frames) = self.frames.get(&(site.to_string(), device.to_string())) else {
            return 0;
        };
        let mut best = 0;
        let mut run_start = None;
        for &(at, v) in frames.iter().filter(|(at, _)| *at >= from && *at <= to) {
            if v == view {
                let s = *run_start.get_or_insert(at);
                best = best.max(at - s);
            } else {
                run_start = None;
            }
        }
        best
    }

    /// Turns the picture problems that were never shown for `hold_ms` into their innocent
    /// `_unseen` records (see the module docs).
    pub fn mark_unseen(&self, truth: &mut [Truth], hold_ms: i64) {
        for t in truth
            .iter_mut()
            .filter(|t| t.class == TruthClass::Violation)
        {
            let (Some(view), Some(unseen)) = (view_of(&t.problem), unseen_name(&t.problem)) else {
                continue;
            };
            if self.longest_shown(&t.site, &t.device, view, t.start_ms, t.end_ms) < hold_ms {
                t.problem = unseen.to_string();
                t.class = TruthClass::Innocent;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn moved(start: i64, end: i64) -> Truth {
        Truth {
            problem: "camera_moved".into(),
            class: TruthClass::Violation,
            site: "r-008".into(),
            device: "cam-1".into(),
            start_ms: start,
            end_ms: end,
        }
    }

    /// Frames every 10 min from 0 to `to` showing `f(t)` (`None`: no frame delivered).
    fn shown(to: i64, f: impl Fn(i64) -> Option<CameraView>) -> Shown {
        let mut s = Shown::default();
        for t in (0..=to).step_by(10 * MIN as usize) {
            if let Some(v) = f(t) {
                s.frame("r-008", "cam-1", t, v);
            }
        }
        s
    }

    #[test]
    fn a_problem_hidden_by_another_picture_or_an_outage_is_unseen_and_a_shown_one_stays() {
        let hold = 15 * MIN;
        // Seed 16's shape: moved from 60 to 142 min inside a black picture from 30 to 255.
        let s = shown(300 * MIN, |t| {
            Some(if (30 * MIN..255 * MIN).contains(&t) {
                CameraView::Black
            } else if (60 * MIN..142 * MIN).contains(&t) {
                CameraView::Moved
            } else {
                CameraView::Normal
            })
        });
        let mut truth = vec![moved(60 * MIN, 142 * MIN)];
        s.mark_unseen(&mut truth, hold);
        assert_eq!(truth[0].problem, "camera_moved_unseen");
        assert_eq!(truth[0].class, TruthClass::Innocent);

        // Seed 15's shape: no frame at all (offline) for all but the last 10 min.
        let s = shown(300 * MIN, |t| {
            if t < 130 * MIN {
                None
            } else if t < 142 * MIN {
                Some(CameraView::Moved)
            } else {
                Some(CameraView::Normal)
            }
        });
        let mut truth = vec![moved(60 * MIN, 142 * MIN)];
        s.mark_unseen(&mut truth, hold);
        assert_eq!(truth[0].problem, "camera_moved_unseen");

        // Shown for 20 min (three frames), then hidden: seen, it stays a violation.
        let s = shown(300 * MIN, |t| {
            Some(if (60 * MIN..=80 * MIN).contains(&t) {
                CameraView::Moved
            } else {
                CameraView::Black
            })
        });
        let mut truth = vec![moved(60 * MIN, 142 * MIN)];
        s.mark_unseen(&mut truth, hold);
        assert_eq!(truth[0].problem, "camera_moved");
        assert_eq!(truth[0].class, TruthClass::Violation);

        // Two frames 10 min apart are not 15 min of showing; a gap without frames (an
        // outage) does not break a run, another picture does.
        let s = shown(300 * MIN, |t| match t / MIN {
            60 | 70 => Some(CameraView::Moved),
            80 | 90 => None,
            100 => Some(CameraView::Moved),
            _ => Some(CameraView::Normal),
        });
        assert_eq!(
            s.longest_shown("r-008", "cam-1", CameraView::Moved, 0, 300 * MIN),
            40 * MIN
        );
        let s = shown(300 * MIN, |t| match t / MIN {
            60 | 70 => Some(CameraView::Moved),
            80 => Some(CameraView::Normal),
            90 => Some(CameraView::Moved),
            _ => Some(CameraView::Normal),
        });
        let mut truth = vec![moved(60 * MIN, 100 * MIN)];
        s.mark_unseen(&mut truth, hold);
        assert_eq!(truth[0].problem, "camera_moved_unseen");
    }
}
