//! Real-model fixtures shared by the vision tests: the models from `models/fetch.sh` and
//! sample photos from Debian packages (e.g. darknet's `dog.jpg`).

use gateway::vision::runtime::models_dir;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd` with a deadline; panics with its status when it fails or overruns.
pub fn run_bounded(mut cmd: Command, limit: Duration, what: &str) {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => panic!("{what}: failed with {status}"),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                panic!("{what}: still running after {limit:?}, killed");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The models folder, fetched and verified once per test process.
pub fn models() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("models/fetch.sh"));
        run_bounded(cmd, Duration::from_secs(600), "models/fetch.sh");
        models_dir()
    })
}

/// A file from a Debian package: the installed copy, else `apt-get download` + `dpkg-deb -x`
/// into the cache (no root needed).
pub fn debian_file(package: &str, path: &str) -> PathBuf {
    let installed = PathBuf::from(path);
    if installed.is_file() {
        return installed;
    }
    let dir = models_dir().join("..").join("test-data").join(package);
    let extracted = dir.join("root").join(path.trim_start_matches('/'));
    if extracted.is_file() {
        return extracted;
    }
    std::fs::create_dir_all(&dir).expect("test-data dir");
    let mut dl = Command::new("apt-get");
    dl.args(["download", package]).current_dir(&dir);
    run_bounded(
        dl,
        Duration::from_secs(300),
        &format!("apt-get download {package}"),
    );
    let deb = std::fs::read_dir(&dir)
        .expect("read test-data")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {package} produced no .deb"));
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(dir.join("root"));
    run_bounded(x, Duration::from_secs(120), "dpkg-deb -x");
    assert!(extracted.is_file(), "{path} not in {package}");
    extracted
}

pub fn dog_jpg() -> Vec<u8> {
    let p = debian_file("darknet", "/usr/share/darknet/data/dog.jpg");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
