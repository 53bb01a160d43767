//! Real-model tests: the ONNX Runtime library and models from `models/fetch.sh` (run here when
//! the cache lacks them, bounded to 10 minutes), a real photo from Debian's `darknet` package and
//! Chinese plates rendered with Pillow and Debian's `fonts-wqy-zenhei` (rendered, not real photos).
//! Nothing is skipped: a missing prerequisite fails the test with the reason.

use gateway::vision::VisionError;
use gateway::vision::detector::{Detection, Detector, DetectorConfig};
use gateway::vision::nms::BBox;
use gateway::vision::plate::{PlateConfig, PlateReader, ReadStats};
use gateway::vision::preprocess::{ImageLimits, decode_image};
use gateway::vision::runtime::Model;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::vision::{debian_file, dog_jpg, models, repo, run_bounded};

fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        Detector::load(
            &models().join("yolov3-tiny.onnx"),
            DetectorConfig::default(),
        )
        .expect("detector")
    })
}

fn best<'a>(dets: &'a [Detection], label: &str) -> Option<&'a Detection> {
    dets.iter()
        .filter(|d| d.label == label)
        .max_by(|a, b| a.score.total_cmp(&b.score))
}

#[test]
fn detects_the_car_bicycle_and_dog_in_darknets_photo() {
    let img = decode_image(&dog_jpg(), &ImageLimits::default()).expect("decode dog.jpg");
    assert_eq!(img.dimensions(), (768, 576));
    let started = Instant::now();
    let dets = detector().detect(&img).expect("detect");
    eprintln!(
        "dog.jpg: {} detections in {:?}",
        dets.len(),
        started.elapsed()
    );
    for d in &dets {
        eprintln!("  {} {:.2} {:?}", d.label, d.score, d.bbox);
    }
    // Darknet's yolov3-tiny on this photo reports the parked car (top right), the bicycle; the
    // dog is not a street class and is filtered out.
    let car = best(&dets, "car").expect("a car");
    let parked = BBox {
        x0: 466.0,
        y0: 71.0,
        x1: 679.0,
        y1: 170.0,
    };
    assert!(
        car.score > 0.5 && car.bbox.iou(&parked) > 0.5,
        "car {car:?}"
    );
    let bike = best(&dets, "bicycle").expect("a bicycle");
    assert!(
        bike.score > 0.4 && bike.bbox.x0 < 250.0 && bike.bbox.x1 > 500.0,
        "{bike:?}"
    );
    assert!(best(&dets, "dog").is_none() && best(&dets, "person").is_none());

    let all = Detector::load(
        &models().join("yolov3-tiny.onnx"),
        DetectorConfig {
            classes: vec![],
            ..DetectorConfig::default()
        },
    )
    .expect("detector, all classes")
    .detect(&img)
    .expect("detect");
    assert!(best(&all, "dog").is_some_and(|d| d.score > 0.4), "{all:?}");
}

#[test]
fn finds_people_and_keeps_only_street_classes_in_other_photos() {
    // Darknet's person.jpg: a person, a horse and a dog; kite.jpg: people on a beach with kites.
    let read = |name: &str| {
        let p = debian_file("darknet", &format!("/usr/share/darknet/data/{name}"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        decode_image(&bytes, &ImageLimits::default()).expect("decode")
    };
    let person = detector()
        .detect(&read("person.jpg"))
        .expect("detect person.jpg");
    eprintln!("person.jpg: {person:?}");
    assert!(
        best(&person, "person").is_some_and(|d| d.score > 0.7),
        "{person:?}"
    );
    assert!(
        person.iter().all(|d| d.label == "person"),
        "horse and dog are filtered: {person:?}"
    );
    let kite = detector()
        .detect(&read("kite.jpg"))
        .expect("detect kite.jpg");
    assert!(
        kite.iter().filter(|d| d.label == "person").count() >= 2,
        "{kite:?}"
    );
    assert!(kite.iter().all(|d| d.label != "kite"));
}

#[test]
fn detects_on_tiles_of_a_large_still() {
    // A 3x enlargement (2304x1728) stands in for a drone still: the detector runs on overlapping
    // 832 px tiles (batched) and the merged boxes land where the objects are.
    let img = decode_image(&dog_jpg(), &ImageLimits::default()).expect("decode");
    let big = image::imageops::resize(&img, 2304, 1728, image::imageops::FilterType::Triangle);
    let started = Instant::now();
    let dets = detector().detect_tiled(&big, 832, 160, 4).expect("tiled");
    eprintln!(
        "tiled 2304x1728: {} detections in {:?}",
        dets.len(),
        started.elapsed()
    );
    for d in &dets {
        eprintln!("  {} {:.2} {:?}", d.label, d.score, d.bbox);
    }
    let car = best(&dets, "car").expect("car on tiles");
    let parked = BBox {
        x0: 466.0 * 3.0,
        y0: 71.0 * 3.0,
        x1: 679.0 * 3.0,
        y1: 170.0 * 3.0,
    };
    assert!(car.bbox.iou(&parked) > 0.7, "car {car:?}");
    let bike = best(&dets, "bicycle").expect("the bicycle, larger than a tile");
    assert!(bike.bbox.x1 - bike.bbox.x0 > 900.0, "{bike:?}");
    let cars_there = dets
        .iter()
        .filter(|d| d.label == "car" && d.bbox.iou(&parked) > 0.4)
        .count();
    assert_eq!(cars_there, 1, "the car is reported once: {dets:?}");
}

#[test]
fn a_car_parked_in_a_zone_of_a_real_photo_raises_an_overstay_clue() {
    use gateway::clue::signal::{ClueSignal, Evidence};
    use gateway::vision::dwell::{DwellEvent, DwellTracker, Frame, ParkingConfig, sightings};
    use gateway::vision::zone::Zone;
    // The parked car at the top right of dog.jpg stands in a kerb zone; the camera posts the
    // same view every 30 s for ten minutes. Detector -> sightings -> dwell, as the intake will.
    let jpeg = bytes::Bytes::from(dog_jpg());
    let img = decode_image(&jpeg, &ImageLimits::default()).expect("decode");
    let dets = detector().detect(&img).expect("detect");
    let zone = Zone {
        id: "kerb-north".into(),
        polygon: vec![
            [440.0, 120.0],
            [768.0, 120.0],
            [768.0, 200.0],
            [440.0, 200.0],
        ],
    };
    let mut tracker = DwellTracker::new(ParkingConfig::new("street-9", "cam-dog", vec![zone]));
    let t0 = 1_767_250_000_000i64;
    let mut events = Vec::new();
    for k in 0..=20 {
        let frame = Frame {
            at_ms: t0 + k * 30_000,
            image: jpeg.clone(),
            sightings: sightings(&dets, &[]),
            regions: Vec::new(),
        };
        events.extend(tracker.observe(&frame).into_iter().map(|e| (k * 30, e)));
    }
    let warned: Vec<(i64, u64)> = events
        .iter()
        .filter_map(|(t, e)| match e {
            DwellEvent::Persuade(n) => Some((*t, n.stay)),
            _ => None,
        })
        .collect();
    let clues: Vec<_> = events
        .iter()
        .filter_map(|(t, e)| match e {
            DwellEvent::Clue(ClueSignal::Occurrence(c)) => Some((*t, c)),
            _ => None,
        })
        .collect();
    eprintln!(
        "notices {warned:?}; clues at {:?}",
        clues
            .iter()
            .map(|c| (c.0, &c.1.dedup_key))
            .collect::<Vec<_>>()
    );
    // yolov3-tiny boxes the pickup at the top right twice: a large "car" and a smaller "truck"
    // inside it (IoU 0.27). Nested boxes of different classes are kept apart on purpose (a car
    // in front of a bus looks the same), so this is one or two stays; each is warned once at
    // 1 minute and raised once at 8, under its own dedup key, and nothing leaves.
    assert!(!warned.is_empty() && warned.len() <= 2, "{warned:?}");
    assert!(warned.iter().all(|(t, _)| *t == 60));
    assert_eq!(clues.len(), warned.len());
    assert!(clues.iter().all(|(t, _)| *t == 480));
    if let [a, b] = clues.as_slice() {
        assert_ne!(a.1.dedup_key, b.1.dedup_key);
    }
    assert!(!events.iter().any(|(_, e)| matches!(e, DwellEvent::Left(_))));
    let (at, clue) = clues[0];
    assert_eq!(at, 480);
    assert_eq!(clue.kind, "parking.overstay");
    let Evidence::File {
        bytes,
        content_type,
        ..
    } = &clue.evidence[0]
    else {
        panic!("first evidence {:?}", clue.evidence[0]);
    };
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(bytes.as_slice(), &jpeg[..]);
}

fn rendered_plates() -> (PathBuf, Vec<(String, String)>) {
    let font = debian_file(
        "fonts-wqy-zenhei",
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    );
    // One folder per call: tests of one process (cargo test) render at the same time, and each
    // removes its folder when done.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("gateway-plates-{}-{call}", std::process::id()));
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("gateway/tests/fixtures/render_plates.py"))
        .arg(&font)
        .arg(&out)
        .args(["40", "8"]);
    run_bounded(
        cmd,
        Duration::from_secs(120),
        "render_plates.py (pip: Pillow)",
    );
    let labels = std::fs::read_to_string(out.join("labels.txt")).expect("labels");
    let list = labels
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    (out, list)
}

#[test]
fn reads_rendered_chinese_plates() {
    let reader = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let (dir, plates) = rendered_plates();
    assert_eq!(plates.len(), 40);
    let (mut exact, mut found, mut chars_ok, mut chars) = (0, 0, 0, 0);
    let started = Instant::now();
    for (file, want) in &plates {
        let bytes = std::fs::read(dir.join(file)).expect("read plate image");
        let img = decode_image(&bytes, &ImageLimits::default()).expect("decode");
        let got = reader.read(&img).expect("read plate");
        let text = got.first().map(|r| r.text.clone()).unwrap_or_default();
        if !got.is_empty() {
            found += 1;
        }
        chars += want.chars().count();
        chars_ok += want
            .chars()
            .zip(text.chars())
            .filter(|(a, b)| a == b)
            .count();
        if &text == want {
            exact += 1;
        } else {
            eprintln!("{file}: want {want}, got {got:?}");
        }
    }
    let n = plates.len();
    eprintln!(
        "rendered plates: detected {found}/{n}, read exactly {exact}/{n} ({:.0}%), characters {:.1}%, {:?} per plate",
        100.0 * exact as f64 / n as f64,
        100.0 * chars_ok as f64 / chars as f64,
        started.elapsed() / n as u32
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(found >= n * 9 / 10, "detected only {found}/{n}");
    assert!(exact >= n * 8 / 10, "read exactly only {exact}/{n}");
}

/// A plate's reading must not depend on the other crops of its frame (issue 18): the recogniser
/// reads several crops per call, and a row padded to a wider mate's width reads differently
/// (the padding becomes more CTC steps). With the default minimum width every plate row is
/// 320 px, so the minimum is lowered here to give the plate a row narrower than its mate's.
#[test]
fn a_plate_reads_the_same_alone_and_beside_a_wider_crop() {
    let reader = PlateReader::load(
        models(),
        PlateConfig {
            rec_min_width: 32,
            second_opinion: false,
            ..PlateConfig::default()
        },
    )
    .expect("plate reader");
    let (dir, plates) = rendered_plates();
    let mut compared = 0;
    for (file, _) in plates.iter().take(5) {
        let bytes = std::fs::read(dir.join(file)).expect("read plate image");
        let img = decode_image(&bytes, &ImageLimits::default()).expect("decode");
        let Some(found) = reader.read(&img).expect("read plate").into_iter().next() else {
            continue;
        };
        let plate = found.plate.corners;
        // A 288 x 32 strip of the frame's top left: a 288 px row, wider than the plate's.
        let strip = [(0.0, 0.0), (288.0, 0.0), (288.0, 32.0), (0.0, 32.0)];
        let alone = reader.recognize(&img, &[plate]).expect("alone");
        let beside = reader.recognize(&img, &[strip, plate]).expect("beside");
        assert!(!alone[0].is_empty(), "{file}: the plate reads as nothing");
        assert_eq!(
            alone[0], beside[1],
            "{file}: read alone vs beside a wider crop"
        );
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared >= 4, "only {compared} of 5 rendered plates found");
}

/// Rows per frame are bounded (`PlateConfig::max_boxes`): a frame with more plate boxes than the
/// bound reads only the boxes the detector is surest of, at most `crops + 1` recogniser rows
/// each. Two rendered plates side by side, bound 1: one plate read, the surer one.
#[test]
fn a_frame_reads_at_most_max_boxes_plates_the_surest_first() {
    let (dir, plates) = rendered_plates();
    let load = |f: &str| {
        let bytes = std::fs::read(dir.join(f)).expect("read plate image");
        decode_image(&bytes, &ImageLimits::default()).expect("decode")
    };
    let (a, b) = (load(&plates[0].0), load(&plates[1].0));
    let mut frame = image::RgbImage::new(a.width() + b.width(), a.height().max(b.height()));
    image::imageops::replace(&mut frame, &a, 0, 0);
    image::imageops::replace(&mut frame, &b, i64::from(a.width()), 0);
    let _ = std::fs::remove_dir_all(&dir);
    let all = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let mut stats = ReadStats::default();
    let both = all.read_counted(&frame, &mut stats).expect("read");
    let mut texts: Vec<&str> = both.iter().map(|r| r.text.as_str()).collect();
    texts.sort();
    let mut want = [plates[0].1.as_str(), plates[1].1.as_str()];
    want.sort();
    assert_eq!(texts, want, "both plates read without a tight bound");
    assert!(stats.boxes >= 2, "{stats:?}");
    let config = PlateConfig {
        max_boxes: 1,
        ..PlateConfig::default()
    };
    // Our corners' crop hypotheses + the upright cross-check, and (`PlateConfig::refine`) the
    // crop hypotheses again on the refined corners; one second-recogniser row on each.
    let hypotheses = 2 * config.crops.len() as u32 + 1;
    let one = PlateReader::load(models(), config).expect("plate reader");
    let mut stats = ReadStats::default();
    let got = one.read_counted(&frame, &mut stats).expect("read");
    let surest = both
        .iter()
        .max_by(|x, y| x.plate.score.total_cmp(&y.plate.score))
        .expect("two readings");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].text, surest.text);
    assert!(stats.rec_rows <= hypotheses, "{stats:?}");
    assert!(stats.rec2_rows <= 2, "{stats:?}");
}

/// The second recogniser (hyperlpr's, converted from Caffe at set-up) must read plates through
/// our crop of the detector's corners: a wrong channel order, orientation, scale or blank class
/// in `plate_rec2` reads nothing right. It reads these rendered glyphs (wqy-zenhei squeezed to
/// the plate's character box) worse than real plates: 22 of 40 when this was written, mostly
/// M read as N, W as N or V, Q as 0; hence the 40 % floor. And combining it with ours must not
/// add a sure misread.
#[test]
fn the_second_recogniser_reads_rendered_plates_and_combining_adds_no_sure_misread() {
    let reader = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let alone = PlateReader::load(
        models(),
        PlateConfig {
            second_opinion: false,
            ..PlateConfig::default()
        },
    )
    .expect("plate reader without the second opinion");
    let (dir, plates) = rendered_plates();
    let n = plates.len();
    let (mut second_exact, mut found) = (0, 0);
    let (mut sure_wrong, mut sure_wrong_alone, mut sure_exact, mut sure_exact_alone) = (0, 0, 0, 0);
    for (file, want) in &plates {
        let bytes = std::fs::read(dir.join(file)).expect("read plate image");
        let img = decode_image(&bytes, &ImageLimits::default()).expect("decode");
        let got = reader.read(&img).expect("read plate");
        let mine = alone.read(&img).expect("read plate alone");
        let Some(first) = got.first() else {
            continue;
        };
        found += 1;
        let second = reader
            .second_reading(&img, first.plate.corners)
            .expect("second reading");
        if second.as_ref().is_some_and(|(t, _)| t == want) {
            second_exact += 1;
        } else {
            eprintln!("{file}: want {want}, second recogniser {second:?}");
        }
        for (reads, wrong, exact) in [
            (&got, &mut sure_wrong, &mut sure_exact),
            (&mine, &mut sure_wrong_alone, &mut sure_exact_alone),
        ] {
            for r in reads.iter().filter(|r| !r.doubtful) {
                if &r.text == want {
                    *exact += 1;
                } else {
                    *wrong += 1;
                    eprintln!("{file}: want {want}, sure {} ({})", r.text, r.doubt);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "rendered plates: {found}/{n} found; second recogniser exact {second_exact}; \
         sure and exact {sure_exact} combined / {sure_exact_alone} alone; \
         sure but wrong {sure_wrong} combined / {sure_wrong_alone} alone"
    );
    assert!(found >= n * 9 / 10, "found only {found}/{n}");
    assert!(
        second_exact >= found * 4 / 10,
        "second recogniser read only {second_exact}/{found} exactly"
    );
    assert!(
        sure_wrong <= sure_wrong_alone,
        "combining added sure misreads: {sure_wrong} vs {sure_wrong_alone}"
    );
}

/// hyperlpr's refinement net (converted from Caffe at set-up, `plate_refine`) must find the
/// plate in a loose box around it: its corners land on the detector's (a wrong channel order,
/// input scale, corner order or affine map between its two passes puts them elsewhere or gives
/// none), and the second recogniser reads the plate from them.
#[test]
fn the_refinement_net_finds_rendered_plates_where_the_detector_does() {
    let reader = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let (dir, plates) = rendered_plates();
    let (mut placed, mut found, mut second_exact, mut worst) = (0, 0, 0, 0.0f32);
    for (file, want) in plates.iter().take(20) {
        let bytes = std::fs::read(dir.join(file)).expect("read plate image");
        let img = decode_image(&bytes, &ImageLimits::default()).expect("decode");
        let Some(first) = reader.read(&img).expect("read plate").into_iter().next() else {
            continue;
        };
        found += 1;
        let refined = reader
            .refined_reads(&img, &[first.plate.bbox])
            .expect("refined read");
        let [Some(r)] = refined.as_slice() else {
            eprintln!("{file}: the refinement net placed no plate");
            continue;
        };
        // Corner distance in plate heights (the detector's corners as reference).
        let d = &first.plate.corners;
        let h = ((d[3].1 - d[0].1) + (d[2].1 - d[1].1)) / 2.0;
        let off = r
            .corners
            .iter()
            .zip(d)
            .map(|(a, b)| (a.0 - b.0).hypot(a.1 - b.1) / h.max(1.0))
            .fold(0.0f32, f32::max);
        worst = worst.max(off);
        let text: String = r.second.iter().map(|c| c.ch.as_str()).collect();
        if &text == want {
            second_exact += 1;
        } else {
            eprintln!("{file}: want {want}, second recogniser on the refined corners {text}");
        }
        if off < 0.5 {
            placed += 1;
        } else {
            eprintln!("{file}: refined corners {:?}, detector's {d:?}", r.corners);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "refinement: {placed}/{found} within half a plate height of the detector's corners \
         (worst {worst:.2}); second recogniser exact on them {second_exact}/{found}"
    );
    assert!(found >= 18, "found only {found}/20");
    assert!(placed >= found * 9 / 10, "placed only {placed}/{found}");
    // It reads these rendered glyphs poorly (8 of 20 when this was written, as on our corners).
    assert!(
        second_exact >= found / 4,
        "second recogniser read only {second_exact}/{found} exactly on refined corners"
    );
}

#[test]
fn missing_models_and_library_give_a_clear_error() {
    let _ = models();
    let err = Model::load(Path::new("/nonexistent/yolo.onnx"), 1).expect_err("missing model");
    assert!(matches!(err, VisionError::MissingModel { .. }));
    assert!(err.to_string().contains("models/fetch.sh"), "{err}");
    let err = PlateReader::load(Path::new("/nonexistent"), PlateConfig::default())
        .expect_err("missing dir");
    assert!(
        err.to_string().contains("/nonexistent/clp_dict.txt"),
        "{err}"
    );
}

#[test]
fn corrupt_truncated_and_enormous_frames_are_rejected() {
    let jpeg = dog_jpg();
    let limits = ImageLimits::default();
    let cut = decode_image(&jpeg[..jpeg.len() * 2 / 3], &limits).expect_err("truncated");
    assert!(cut.to_string().contains("truncated"), "{cut}");
    let mut garbled = jpeg.clone();
    for b in garbled.iter_mut().skip(600).take(4000) {
        *b = 0x5a;
    }
    // Corrupt entropy data may decode to noise, but the header survives: what must not happen
    // is a panic. Garbage that is not an image at all is refused.
    let _ = decode_image(&garbled, &limits);
    assert!(decode_image(&jpeg[100..], &limits).is_err());
    // A PNG whose header claims 100000 x 100000 pixels is refused before any pixel is decoded.
    let mut png = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let started = Instant::now();
    let huge = decode_image(&png, &limits).expect_err("enormous");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(huge.to_string().contains("limit"), "{huge}");
}

/// The registry part of the plate evaluation set (tests/plates/groundtruth.tsv): real images
/// with no Chinese plate (Debian darknet's samples, Vietnamese street scenes from the PyPI
/// litealpr sdist, and split judge4's images from four more PyPI archives: a car with a Czech
/// plate, a street with a bus, text, sample photos), fetched and sha256-checked by
/// tests/plates/fetch.sh.
fn plate_free_photos() -> Vec<(String, PathBuf)> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/plates/fetch.sh"))
        .env("PLATES_NO_BASELINE", "1");
    run_bounded(cmd, Duration::from_secs(600), "tests/plates/fetch.sh");
    let dir = std::env::var_os("ENFORCEMENT_PLATES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| models().join("../plates"))
        .join("images");
    let truth = std::fs::read_to_string(repo().join("tests/plates/groundtruth.tsv"))
        .expect("groundtruth.tsv");
    truth
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let registry = matches!(
                c.get(2),
                Some(&"debian-darknet" | &"pypi-litealpr" | &"pypi-file")
            );
            (registry && c.get(8) == Some(&"-")).then(|| {
                let ext = Path::new(c[3]).extension().and_then(|e| e.to_str());
                let file = dir.join(format!("{}.{}", c[0], ext.unwrap_or("jpg")));
                (c[0].to_string(), file)
            })
        })
        .collect()
}

#[test]
fn no_sure_plate_on_real_photos_without_a_chinese_plate() {
    let reader = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let photos = plate_free_photos();
    assert_eq!(photos.len(), 50, "plate-free rows in groundtruth.tsv");
    let mut doubtful = 0;
    for (id, file) in &photos {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{id}: {e}"));
        let img = decode_image(&bytes, &ImageLimits::default()).expect("decode");
        let got = reader.read(&img).expect("read");
        let sure: Vec<_> = got.iter().filter(|r| !r.doubtful).collect();
        assert!(sure.is_empty(), "{id}: false plate(s) {sure:?}");
        for r in &got {
            assert!(
                !r.candidates.is_empty(),
                "{id}: doubtful reading without candidates"
            );
        }
        doubtful += got.len();
    }
    eprintln!(
        "{} plate-free photos: no sure plate, {doubtful} doubtful readings",
        photos.len()
    );
}

/// Frames of any size the decoder accepts are read without an error or a panic: a pixel, a
/// line, slivers either way, a plate-crop shape too small to hold a plate, and a wide sliver
/// past the tiling bound (the detector's input then has a side of a few pixels). What they show
/// does not matter; a camera sending one must not fail the frame.
#[test]
fn odd_frame_shapes_read_without_an_error() {
    let reader = PlateReader::load(models(), PlateConfig::default()).expect("plate reader");
    let noise = |w: u32, h: u32| {
        image::RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * 7919 + y * 104_729) % 251) as u8;
            image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(90)])
        })
    };
    for (w, h) in [
        (1, 1),
        (2, 2),
        (3, 1),
        (1, 3),
        (2000, 1),
        (1, 2000),
        (3000, 3),
        (3, 3000),
        (30, 10),
        (9, 3),
        (641, 2),
        (1000, 17),
    ] {
        let img = noise(w, h);
        let got = reader.read(&img);
        assert!(got.is_ok(), "{w} x {h}: {got:?}");
    }
}
