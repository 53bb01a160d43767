//! Reads plates on image files and prints one JSON line per image: every reading (text,
//! per-character probabilities, doubt, candidates, box) and the wall time of each run.
//! Used by `tests/plates/eval.sh`, which scores these lines against the ground truth.
//!
//!   cargo run --release -p gateway --example plate_eval -- [--runs N] IMAGE...

use gateway::vision::plate::{PlateConfig, PlateReader};
use gateway::vision::preprocess::{ImageLimits, decode_image};
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 3usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().ok_or("--runs needs a number")?.parse()?;
        } else {
            files.push(a);
        }
    }
    let reader = PlateReader::load_default(PlateConfig::default())?;
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
