//! Per-frame vision latency, split by stage, against Python onnxruntime on the same model and
//! the same input tensor in the same run.
//!
//!   bash models/fetch.sh
//!   cargo run --release -p gateway --example vision_bench -- [IMAGE] [ITERATIONS]
//!
//! IMAGE defaults to Debian darknet's `/usr/share/darknet/data/dog.jpg`. Needs `python3` with
//! `onnxruntime==1.32.0` and `numpy` for the baseline. Both sides use ONNX Runtime's default
//! thread count and full graph optimisation.

use gateway::vision::detector::{Detector, DetectorConfig, INPUT};
use gateway::vision::plate::{PlateConfig, PlateReader};
use gateway::vision::preprocess::{ImageLimits, Roi, decode_image, letterbox_into};
use gateway::vision::runtime::models_dir;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN)
}

const PYTHON: &str = r#"
import sys, time, numpy as np, onnxruntime as ort
model, inp, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
x = np.fromfile(inp, dtype=np.float32).reshape(1, 3, 416, 416)
for _ in range(5):
    y = s.run(None, {"images": x})[0]
ts = []
for _ in range(n):
    t = time.perf_counter(); y = s.run(None, {"images": x})[0]; ts.append(time.perf_counter() - t)
y.astype(np.float32).tofile(out)
print(sorted(ts)[len(ts) // 2] * 1000.0, ort.__version__)
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = args
        .next()
        .unwrap_or_else(|| "/usr/share/darknet/data/dog.jpg".to_string());
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let dir = models_dir();
    let model_path = dir.join("yolov3-tiny.onnx");
    let bytes = std::fs::read(&image).map_err(|e| format!("{image}: {e}"))?;

    let t = Instant::now();
    let detector = Detector::load(&model_path, DetectorConfig::default())?;
    let plates = PlateReader::load(&dir, PlateConfig::default())?;
    println!(
        "models loaded in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );

    let side = INPUT as usize;
    let mut input = vec![0.0f32; 3 * side * side];
    let (mut dec, mut pre, mut inf, mut post, mut plate, mut frame) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut found = 0;
    let mut raw = Vec::new();
    for i in 0..n + 5 {
        let t0 = Instant::now();
        let img = decode_image(&bytes, &ImageLimits::default())?;
        let t1 = Instant::now();
        let lb = letterbox_into(&img, Roi::whole(&img), INPUT, &mut input);
        let t2 = Instant::now();
        raw = detector.infer(&input, 1)?;
        let t3 = Instant::now();
        let dets = detector.postprocess(&raw, &lb, img.width() as f32, img.height() as f32);
        let t4 = Instant::now();
        let read = plates.read(&img)?;
        let t5 = Instant::now();
        if i >= 5 {
            dec.push(t1 - t0);
            pre.push(t2 - t1);
            inf.push(t3 - t2);
            post.push(t4 - t3);
            plate.push(t5 - t4);
            frame.push(t4 - t0);
        }
        found = dets.len() + read.len();
    }
    let (dec, pre, inf, post, plate, frame) = (
        median(dec),
        median(pre),
        median(inf),
        median(post),
        median(plate),
        median(frame),
    );
    println!("{image}: {n} frames, median ms (found {found} objects + plates per frame)");
    println!(
        "  decode {dec:.2} | preprocess {pre:.2} | inference {inf:.2} | postprocess {post:.3} | plate (det+rec) {plate:.2}"
    );
    println!("  frame without plate (decode..postprocess) {frame:.2}");

    // The Python baseline on the very same tensor.
    let tmp = std::env::temp_dir().join(format!("vision-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let inp = tmp.join("input.f32");
    let out = tmp.join("output.f32");
    std::fs::write(
        &inp,
        input
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    let py = Command::new("python3")
        .args(["-c", PYTHON])
        .arg(&model_path)
        .arg(&inp)
        .arg(&out)
        .arg(n.to_string())
        .output()?;
    if !py.status.success() {
        return Err(format!(
            "python baseline failed (pip install onnxruntime==1.32.0 numpy): {}",
            String::from_utf8_lossy(&py.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&py.stdout);
    let mut parts = stdout.split_whitespace();
    let py_ms: f64 = parts.next().ok_or("no python timing")?.parse()?;
    let py_ver = parts.next().unwrap_or("?");
    let theirs: Vec<f32> = std::fs::read(&out)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let diff = raw
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "python onnxruntime {py_ver} bare inference {py_ms:.2} ms (same input; max |diff| {diff:.1e})"
    );
    println!(
        "ratio: our inference / theirs = {:.2}x; our whole frame (decode+preprocess+inference+postprocess) / their bare inference = {:.2}x",
        inf / py_ms,
        frame / py_ms
    );
    Ok(())
}
