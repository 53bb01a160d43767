//! Reads plates on image files and prints one JSON line per image: every reading (text,
//! per-character probabilities, doubt, candidates, box) and the wall time of each run.
//! Used by `tests/plates/eval.sh`, which scores these lines against the ground truth.
//!
//!   cargo run --release -p gateway --example plate_eval -- [--runs N] [OPTION VALUE]... IMAGE...
//!
//! Options override `PlateConfig::default()` (for tuning on the tune split only):
//! `--crops "0.04:0.12,0:0"` (crop hypotheses, x:y insets), `--crop-max-side N`,
//! `--crop-border F`, `--tile-above F`, `--tile-side N`, `--det-max-side N`,
//! `--det-threshold F`.

use gateway::vision::plate::{PlateConfig, PlateReader};
use gateway::vision::preprocess::{ImageLimits, decode_image};
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 3usize;
    let mut files = Vec::new();
    let mut config = PlateConfig::default();
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
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let reader = PlateReader::load_default(config)?;
    let limits = ImageLimits::default();
    let out = std::io::stdout();
    let mut out = out.lock();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| format!("{f}: {e}"))?;
        let mut ms = Vec::with_capacity(runs);
        let mut plates = Vec::new();
        let mut error = None;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            match decode_image(&bytes, &limits).and_then(|img| reader.read(&img)) {
                Ok(p) => plates = p,
                Err(e) => {
                    // An unreadable file is reported on its line, the others still run.
                    error = Some(e.to_string());
                    break;
                }
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let line = serde_json::json!({ "file": f, "ms": ms, "plates": plates, "error": error });
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
