//! The kitchen cameras' pictures for the benchmark: the camera-health *judging* fixtures (real
//! photos from the Debian `opencv-doc` package, never used to choose a camera threshold, and
//! their black, covered, sky and moved transformations, built by
//! `tests/camera/make_fixtures.py --source opencv-doc`), scaled to 320x180 once at load so a
//! month of frames decodes quickly. The checks work on a 160x120 image either way.

use super::ScenarioError;
use firmware::sim::CameraView;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const W: u32 = 320;
const H: u32 = 180;

#[derive(Default)]
struct Scene {
    reference: Vec<u8>,
    live: Vec<Arc<[u8]>>,
    black: Vec<Arc<[u8]>>,
    covered: Vec<Arc<[u8]>>,
    sky: Vec<Arc<[u8]>>,
    moved: Vec<Arc<[u8]>>,
}

/// Frames per scene and condition.
pub struct FrameLibrary {
    scenes: Vec<Scene>,
    names: Vec<String>,
}

/// Where the judging fixtures live: `$CAMERA_FIXTURES_DIR/judge`, else
/// `~/.cache/enforcement-gateway/camera-fixtures/v{VERSION of make_fixtures.py}/judge`.
pub(crate) fn fixtures_dir(repo_root: &Path) -> Result<PathBuf, ScenarioError> {
    if let Some(d) = std::env::var_os("CAMERA_FIXTURES_DIR") {
        return Ok(PathBuf::from(d).join("judge"));
    }
    let script = repo_root.join("tests/camera/make_fixtures.py");
    let text = std::fs::read_to_string(&script)?;
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("VERSION = \""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| ScenarioError::Frames("no VERSION in make_fixtures.py".into()))?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| ScenarioError::Frames("HOME is not set".into()))?;
    Ok(home
        .join(".cache/enforcement-gateway/camera-fixtures")
        .join(format!("v{version}"))
        .join("judge"))
}

/// Builds the fixtures with `make_fixtures.py` when they are not there yet; an error (never a
/// silent fallback) when python3, Pillow or numpy is missing.
pub fn ensure_fixtures(repo_root: &Path) -> Result<PathBuf, ScenarioError> {
    let dir = fixtures_dir(repo_root)?;
    if dir.join("labels.tsv").exists() {
        return Ok(dir);
    }
    let st = std::process::Command::new("python3")
        .arg(repo_root.join("tests/camera/make_fixtures.py"))
        .arg(&dir)
        .args(["--source", "opencv-doc"])
        .status()
        .map_err(|e| ScenarioError::Frames(format!("python3 not runnable: {e}")))?;
    if !st.success() {
        return Err(ScenarioError::Frames(
            "make_fixtures.py failed (needs python3 with Pillow and numpy: \
             bash tests/camera/run_eval.sh installs them)"
                .into(),
        ));
    }
    Ok(dir)
}

fn shrink(jpeg: &[u8]) -> Result<Arc<[u8]>, ScenarioError> {
    let img = image::load_from_memory(jpeg)
        .map_err(|e| ScenarioError::Frames(e.to_string()))?
        .to_rgb8();
    let small = image::imageops::resize(&img, W, H, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&small)
        .map_err(|e| ScenarioError::Frames(e.to_string()))?;
    Ok(out.into())
}

impl FrameLibrary {
    /// Loads every scene in `dir/labels.tsv` (or only `only`, when given).
    pub fn load(dir: &Path, only: Option<&[&str]>) -> Result<Self, ScenarioError> {
        let labels = std::fs::read_to_string(dir.join("labels.tsv"))?;
        let mut scenes: BTreeMap<String, Scene> = BTreeMap::new();
        for line in labels.lines().filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = line.split('\t').collect();
            let [scene, _, label, variant, file] = c[..] else {
                return Err(ScenarioError::Frames(format!("bad labels line {line:?}")));
            };
            if only.is_some_and(|o| !o.contains(&scene)) {
                continue;
            }
            let s = scenes.entry(scene.to_string()).or_default();
            let slot = match (label, variant) {
                ("normal", "reference") => {
                    s.reference = std::fs::read(dir.join(file))?;
                    continue;
                }
                ("normal", "live" | "low-noise") => &mut s.live,
                ("black", _) => &mut s.black,
                ("covered", _) => &mut s.covered,
                ("sky", _) => &mut s.sky,
                ("moved", _) => &mut s.moved,
                _ => continue,
            };
            slot.push(shrink(&std::fs::read(dir.join(file))?)?);
        }
        for (name, s) in &mut scenes {
            if s.reference.is_empty()
                || [&s.live, &s.black, &s.covered, &s.sky, &s.moved]
                    .iter()
                    .any(|v| v.len() < 2)
            {
                return Err(ScenarioError::Frames(format!(
                    "scene {name}: needs a reference and two frames of each condition"
                )));
            }
            s.reference = shrink(&s.reference)?.to_vec();
        }
        if scenes.is_empty() {
            return Err(ScenarioError::Frames(format!(
                "no scenes in {}",
                dir.display()
            )));
        }
        Ok(FrameLibrary {
            names: scenes.keys().cloned().collect(),
            scenes: scenes.into_values().collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.scenes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scenes.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The frame the camera's owner enrolled as its view.
    pub(crate) fn reference(&self, scene: usize) -> &[u8] {
        &self.scenes[scene % self.scenes.len()].reference
    }

    /// The `n`-th frame of `scene` showing `view` (consecutive frames differ, so only a
    /// frozen camera repeats itself; [`CameraView::Frozen`] without a last frame is live).
    pub(crate) fn pick(&self, scene: usize, view: CameraView, n: usize) -> Arc<[u8]> {
        let s = &self.scenes[scene % self.scenes.len()];
        let v = match view {
            CameraView::Normal | CameraView::Frozen => &s.live,
            CameraView::Black => &s.black,
            CameraView::Covered => &s.covered,
            CameraView::Sky => &s.sky,
            CameraView::Moved => &s.moved,
        };
        v[n % v.len()].clone()
    }
}
