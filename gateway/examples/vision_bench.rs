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
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN)
}

/// Python side: a small server so both sides are timed in alternating rounds under the same
/// machine load. `k` runs k timed inferences and prints their ms; `q` writes the output, exits.
const PYTHON: &str = r#"
import sys, time, numpy as np, onnxruntime as ort
model, inp, out = sys.argv[1], sys.argv[2], sys.argv[3]
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
x = np.fromfile(inp, dtype=np.float32).reshape(1, 3, 416, 416)
for _ in range(5):
    y = s.run(None, {"images": x})[0]
print("ready", ort.__version__, flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == "q":
        break
    ts = []
    for _ in range(int(line)):
        t = time.perf_counter(); y = s.run(None, {"images": x})[0]; ts.append((time.perf_counter() - t) * 1000.0)
    print(" ".join(f"{v:.4f}" for v in ts), flush=True)
y.astype(np.float32).tofile(out)
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
    // Prepare the input once so the Python side gets the very same tensor.
    {
        let img = decode_image(&bytes, &ImageLimits::default())?;
        letterbox_into(&img, Roi::whole(&img), INPUT, &mut input);
    }
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
    let mut py = Command::new("python3")
        .args(["-c", PYTHON])
        .arg(&model_path)
        .arg(&inp)
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut py_in = py.stdin.take().ok_or("python stdin")?;
    let mut py_out = BufReader::new(py.stdout.take().ok_or("python stdout")?);
    let mut line = String::new();
    py_out.read_line(&mut line)?;
    let py_ver = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["ready", v] => v.to_string(),
        _ => {
            return Err(format!(
                "python baseline did not start (pip install onnxruntime==1.32.0 numpy): {line:?}"
            )
            .into());
        }
    };

    let (mut dec, mut pre, mut inf, mut post, mut plate, mut frame, mut theirs) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut found = 0;
    let mut raw = Vec::new();
    let per_round = 5;
    let rounds = n.div_ceil(per_round) + 1;
    for round in 0..rounds {
        // Ours...
        for _ in 0..per_round {
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
            if round > 0 {
                dec.push(t1 - t0);
                pre.push(t2 - t1);
                inf.push(t3 - t2);
                post.push(t4 - t3);
                plate.push(t5 - t4);
                frame.push(t4 - t0);
            }
            found = dets.len() + read.len();
        }
        // ...then theirs, under the same load.
        writeln!(py_in, "{per_round}")?;
        line.clear();
        py_out.read_line(&mut line)?;
        if round > 0 {
            for v in line.split_whitespace() {
                theirs.push(Duration::from_secs_f64(v.parse::<f64>()? / 1000.0));
            }
        }
    }
    // A parking camera's frame is health-checked and analysed: decoded twice before (health's
    // working image, then the detector's RGB), once now. Alternating rounds, same load.
    let (mut twice, mut once) = (vec![], vec![]);
    for round in 0..rounds {
        for _ in 0..per_round {
            let t0 = Instant::now();
            let w = gateway::camera::frame::decode_jpeg(&bytes)?;
            let img = decode_image(&bytes, &ImageLimits::default())?;
            let t1 = Instant::now();
            let rgb = gateway::camera::frame::decode_rgb(&bytes)?;
            let w2 = gateway::camera::frame::Frame::of(&rgb);
            ImageLimits::default().check_decoded(bytes.len(), &rgb)?;
            let t2 = Instant::now();
            if round > 0 {
                twice.push(t1 - t0);
                once.push(t2 - t1);
            }
            if w.gray != w2.gray || img.dimensions() != rgb.dimensions() {
                return Err("decoding once must give the same working image".into());
            }
        }
    }
    let (twice, once) = (median(twice), median(once));
    writeln!(py_in, "q")?;
    drop(py_in);
    py.wait()?;
    let (dec, pre, inf, post, plate, frame, py_ms) = (
        median(dec),
        median(pre),
        median(inf),
        median(post),
        median(plate),
        median(frame),
        median(theirs),
    );
    println!(
        "{image}: {} frames in alternating rounds of {per_round}, median ms ({found} objects + plates per frame)",
        (rounds - 1) * per_round
    );
    println!(
        "  decode {dec:.2} | preprocess {pre:.2} | inference {inf:.2} | postprocess {post:.3} | plate (det+rec) {plate:.2}"
    );
    println!("  frame without plate (decode..postprocess) {frame:.2}");
    let py_raw: Vec<f32> = std::fs::read(&out)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let diff = raw
        .iter()
        .zip(&py_raw)
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
    println!(
        "parking frame decoding: once (health + detector share it) {once:.2} ms vs twice (before) {twice:.2} ms = {:.2}x",
        once / twice
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "vision", "figure": "yolov3-tiny inference (416x416)",
            "value": inf, "unit": "ms", "lower_is_better": true,
            "reference": format!("Python onnxruntime {py_ver}"), "reference_value": py_ms})
    );
    println!(
        "BENCH {}",
        serde_json::json!({"bench": "vision", "figure": "whole frame (decode..postprocess)",
            "value": frame, "unit": "ms", "lower_is_better": true,
            "reference": format!("Python onnxruntime {py_ver} bare inference"), "reference_value": py_ms})
    );
    Ok(())
}
