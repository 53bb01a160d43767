//! Reads plates on image files and prints one JSON line per image: every reading (text,
//! per-character probabilities, doubt, candidates, box), the wall time of each run, and where
//! the last run spent it (`stats`: detector and recogniser calls, detector pixels, ms in each).
//! The image is decoded once, outside the timed runs (`decode_ms`), as the baseline's timing
//! leaves out `cv2.imread`.
//! Used by `tests/plates/eval.sh`, which scores these lines against the ground truth.
//!
//!   cargo run --release -p gateway --example plate_eval -- [--runs N] [OPTION VALUE]... IMAGE...
//!
//! Options override `PlateConfig::default()` (for tuning on the tune split only):
//! `--crops "0.04:0.12,0:0"` (crop hypotheses, x:y insets), `--crop-max-side N`,
//! `--crop-border F`, `--tile-above F`, `--tile-side N`, `--det-max-side N`,
//! `--det-threshold F`, `--max-boxes N`, `--rec-min-width N`, `--rec-batch N`, `--crops-until-sure 0|1`,
//! `--tile-unless-found 0|1`, `--crop-upscale-to N`, `--layout-decoding 0|1`,
//! `--require-province 0|1`, `--rectify-above-deg F|off`, `--cross-check 0|1`,
//! `--second-opinion 0|1`, `--second-sure-p F`, `--second-province-p F`, `--second-agree-p F`,
//! `--settle-views 0|1`,
//! `--weak-det-threshold F`, `--special-endings 0|1`, `--double-rows 0|1`, `--dark-blue F` (0: off).
//! `--refine 0|1`, `--refine-agree-p F` (hyperlpr's refinement net, see `PlateConfig::refine`),
//! `--refine-second-alone 0|1`, `--refine-confirm-corrected 0|1` (its two later rules).
//! `--guess-unsure-chars N` (0: keep guesses; see `PlateConfig::guess_unsure_chars`).
//! `--dump-refined 1` adds, to every reading, what both recognisers read on the corners hyperlpr's
//! refinement net finds in its box (`refined`: corners, `ours`, `second`), from a reader with
//! the default config. `--dump-second 1` adds, to every reading, the second recogniser's own per-character reading
//! of the same corners (`second`), from a reader with the default config (so it works with
//! `--second-opinion 0` too): the raw material for choosing a combining rule on the tune split.

use gateway::vision::plate::{PlateConfig, PlateReader, ReadStats};
use gateway::vision::preprocess::{ImageLimits, decode_image};
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 3usize;
    let mut files = Vec::new();
    let mut config = PlateConfig::default();
    let mut dump_second = false;
    let mut dump_refined = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if !a.starts_with("--") {
            files.push(a);
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--runs" => runs = v.parse()?,
            "--crops" => config.crops = parse_crops(&v)?,
            "--crop-max-side" => config.crop_max_side = v.parse()?,
            "--crop-border" => config.crop_border = v.parse()?,
            "--tile-above" => config.tile_above = v.parse()?,
            "--tile-side" => config.tile_side = v.parse()?,
            "--det-max-side" => config.det_max_side = v.parse()?,
            "--det-threshold" => config.det_threshold = v.parse()?,
            "--weak-det-threshold" => config.weak_det_threshold = v.parse()?,
            "--crop-upscale-to" => config.crop_upscale_to = v.parse()?,
            "--rec-min-width" => config.rec_min_width = v.parse()?,
            "--rec-batch" => config.rec_batch = v.parse()?,
            "--max-boxes" => config.max_boxes = v.parse()?,
            "--crops-until-sure" => config.crops_until_sure = v == "1",
            "--tile-unless-found" => config.tile_unless_found = v == "1",
            "--layout-decoding" => config.layout_decoding = v == "1",
            "--require-province" => config.require_province = v == "1",
            "--cross-check" => config.cross_check_rectified = v == "1",
            "--second-opinion" => config.second_opinion = v == "1",
            "--second-sure-p" => config.second_sure_p = v.parse()?,
            "--second-province-p" => config.second_province_p = v.parse()?,
            "--second-agree-p" => config.second_agree_p = v.parse()?,
            "--settle-views" => config.settle_views = v == "1",
            "--special-endings" => config.special_endings = v == "1",
            "--double-rows" => config.double_rows = v == "1",
            "--dark-blue" => config.dark_blue = v.parse()?,
            "--dump-second" => dump_second = v == "1",
            "--dump-refined" => dump_refined = v == "1",
            "--refine" => config.refine = v == "1",
            "--refine-agree-p" => config.refine_agree_p = v.parse()?,
            "--refine-second-alone" => config.refine_second_alone = v == "1",
            "--refine-confirm-corrected" => config.refine_confirm_corrected = v == "1",
            "--guess-unsure-chars" => config.guess_unsure_chars = v.parse()?,
            "--rectify-above-deg" => {
                config.rectify_above_deg = if v == "off" { None } else { Some(v.parse()?) }
            }
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let reader = PlateReader::load_default(config)?;
    let refined = if dump_refined {
        Some(PlateReader::load_default(PlateConfig::default())?)
    } else {
        None
    };
    let second = if dump_second {
        Some(PlateReader::load_default(PlateConfig::default())?)
    } else {
        None
    };
    let limits = ImageLimits::default();
    let out = std::io::stdout();
    let mut out = out.lock();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| format!("{f}: {e}"))?;
        let mut ms = Vec::with_capacity(runs);
        let mut plates = Vec::new();
        let mut stats = ReadStats::default();
        let t = Instant::now();
        let decoded = decode_image(&bytes, &limits);
        let decode_ms = t.elapsed().as_secs_f64() * 1000.0;
        // An unreadable file is reported on its line, the others still run.
        let mut error = decoded.as_ref().err().map(|e| e.to_string());
        if let Ok(img) = &decoded {
            for _ in 0..runs.max(1) {
                stats = ReadStats::default();
                let t = Instant::now();
                match reader.read_counted(img, &mut stats) {
                    Ok(p) => plates = p,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let mut plates_json = serde_json::to_value(&plates)?;
        if let (Some(second), Ok(img), Some(list)) = (&second, &decoded, plates_json.as_array_mut())
        {
            for (p, j) in plates.iter().zip(list.iter_mut()) {
                let chars = second.second_chars(img, p.plate.corners)?;
                j["second"] = serde_json::to_value(chars)?;
            }
        }
        if let (Some(refined), Ok(img), Some(list)) =
            (&refined, &decoded, plates_json.as_array_mut())
        {
            let boxes: Vec<_> = plates.iter().map(|p| p.plate.bbox).collect();
            for (r, j) in refined
                .refined_reads(img, &boxes)?
                .into_iter()
                .zip(list.iter_mut())
            {
                j["refined"] = serde_json::to_value(r)?;
            }
        }
        let line = serde_json::json!({
            "file": f, "ms": ms, "decode_ms": decode_ms, "stats": stats,
            "plates": plates_json, "error": error,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// "0.04:0.12,0:0" -> [(0.04, 0.12), (0.0, 0.0)]
fn parse_crops(v: &str) -> Result<Vec<(f32, f32)>, Box<dyn std::error::Error>> {
    v.split(',')
        .map(|c| {
            let (x, y) = c.split_once(':').ok_or("a crop is x:y")?;
            Ok((x.trim().parse()?, y.trim().parse()?))
        })
        .collect()
}
