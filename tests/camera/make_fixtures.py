#!/usr/bin/env python3
"""Labelled camera-health fixtures built from real photos and their transformations.

Two sets of photos, kept apart on purpose:
- `--source skimage` (default), the TUNING scenes: the sample photos shipped inside the
  scikit-image package (`skimage/data/`), taken from an installed scikit-image if there is one,
  else from its wheel fetched with `pip download scikit-image==0.26.0 --no-deps` (sha256
  pinned below; read as a zip; nothing is installed). The camera-health thresholds in
  `gateway/src/camera/checks.rs` were chosen on these.
- `--source opencv-doc`, the JUDGING scenes: the sample photos of OpenCV's documentation
  (`examples/data/`), from the Debian package `opencv-doc` fetched with `apt-get download`
  (sha256 pinned below; read as an ar + tar archive; nothing is installed). Never used to
  choose a threshold: they only judge.

Writes 1280x720 JPEGs and `labels.tsv` (scene, order, label, variant, file) into OUT:
normal (live static scene: sensor noise, a ticking timestamp overlay, slight flicker),
black (darkened, lens black), overexposed, covered (blurred, hand, tape), sky (blue-white
gradient, roofline, white ceiling), moved (pan, rotation, tilt+zoom), frozen (bit-identical
repeats, the same picture re-encoded, a frozen picture under a live clock overlay) and
truncated (a JPEG cut short). The first frame of every frozen run is labelled normal: a
freeze is only visible from the second repeat on.

Requires: Pillow, numpy (and apt-get for the judging scenes).
Usage: make_fixtures.py OUT_DIR [--source skimage|opencv-doc]
"""

import glob
import hashlib
import io
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

VERSION = "6"
SKIMAGE = "scikit-image==0.26.0"
# sha256 of the wheels this script accepts (pip picks one per platform).
SKIMAGE_SHA256 = {
    "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl":
        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
}
OPENCV_DOC = "opencv-doc=4.6.0+dfsg-12"
OPENCV_DOC_SHA256 = "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"
# Real photographs among OpenCV's sample data (no drawings, charts or calibration boards).
JUDGE_SCENES = [
    "home.jpg",
    "building.jpg",
    "fruits.jpg",
    "messi5.jpg",
    "baboon.jpg",
    "leuvenA.jpg",
    "aloeL.jpg",
    "basketball1.png",
    "box_in_scene.png",
    "board.jpg",
    "rubberwhale1.png",
    "squirrel_cls.jpg",
]
W, H = 1280, 720
SCENES = [
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
]
QUALITY = 85


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha(path, want):
    got = sha256(path)
    if got != want:
        sys.exit(f"{path}: sha256 {got}, expected {want} (delete it to fetch again)")


def opencv_doc_photos(cache):
    """Returns {name: bytes} for JUDGE_SCENES from the opencv-doc Debian package."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    found = glob.glob(os.path.join(debs, "opencv-doc_*.deb"))
    if not found:
        print(f"fetching {OPENCV_DOC} (96 MB) with apt-get download ...", file=sys.stderr)
        subprocess.run(["apt-get", "download", OPENCV_DOC], cwd=debs, check=True)
        found = glob.glob(os.path.join(debs, "opencv-doc_*.deb"))
    if not found:
        sys.exit("apt-get download opencv-doc left no package")
    deb = found[0]
    check_sha(deb, OPENCV_DOC_SHA256)
    data = None
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            sys.exit(f"{deb}: not an ar archive")
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            body = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith("data.tar"):
                data = (name, body)
    if data is None:
        sys.exit(f"{deb}: no data.tar member")
    name, body = data
    if name.endswith(".xz"):
        body = lzma.decompress(body)
        mode = "r:"
    else:
        mode = "r:*"
    photos = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode=mode) as t:
        for m in t.getmembers():
            base = os.path.basename(m.name)
            if base in JUDGE_SCENES and "/examples/data/" in m.name and m.isfile():
                photos[base] = t.extractfile(m).read()
    missing = [n for n in JUDGE_SCENES if n not in photos]
    if missing:
        sys.exit(f"photos missing from {deb}: {missing}")
    return photos


def photo_sources(cache):
    """Returns {name: bytes} for SCENES."""
    try:
        import skimage  # noqa: F401

        d = os.path.join(os.path.dirname(skimage.__file__), "data")
        found = {n: open(os.path.join(d, n), "rb").read() for n in SCENES if os.path.exists(os.path.join(d, n))}
        if len(found) == len(SCENES):
            return found
    except ImportError:
        pass
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    pkgs = glob.glob(os.path.join(wheels, "scikit_image-*")) + glob.glob(os.path.join(wheels, "scikit-image-*"))
    if not pkgs:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", wheels, SKIMAGE],
            check=True,
        )
        pkgs = glob.glob(os.path.join(wheels, "scikit_image-*")) + glob.glob(os.path.join(wheels, "scikit-image-*"))
    if not pkgs:
        sys.exit("no scikit-image package downloaded")
    pkg = pkgs[0]
    want = SKIMAGE_SHA256.get(os.path.basename(pkg))
    if want is None:
        sys.exit(f"{pkg}: no sha256 pinned for this file in make_fixtures.py (SKIMAGE_SHA256)")
    check_sha(pkg, want)
    found = {}
    if pkg.endswith(".whl"):
        with zipfile.ZipFile(pkg) as z:
            for n in SCENES:
                found[n] = z.read("skimage/data/" + n)
    else:
        with tarfile.open(pkg) as t:
            for m in t.getmembers():
                base = os.path.basename(m.name)
                if base in SCENES and "/skimage/data/" in m.name:
                    found[base] = t.extractfile(m).read()
    missing = [n for n in SCENES if n not in found]
    if missing:
        sys.exit(f"photos missing from {pkg}: {missing}")
    return found


def cover(img, w, h):
    """Scale to cover w x h, centre-crop."""
    s = max(w / img.width, h / img.height)
    img = img.resize((max(w, round(img.width * s)), max(h, round(img.height * s))), Image.BICUBIC)
    x, y = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((x, y, x + w, y + h))


def font():
    try:
        return ImageFont.load_default(size=30)
    except TypeError:
        return ImageFont.load_default()


FONT = None


def overlay(img, t):
    """The camera's clock overlay, top left, white with a dark outline."""
    img = img.copy()
    d = ImageDraw.Draw(img)
    text = f"2026-11-26 08:{t // 60 % 60:02d}:{t % 60:02d}  CAM-01"
    d.text((24, 20), text, font=FONT, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return img


def noisy(rng, img, sigma=2.5, flicker=0.01):
    a = np.asarray(img, dtype=np.float32)
    gain = 1.0 + rng.uniform(-flicker, flicker)
    luma_noise = rng.normal(0, sigma, a.shape[:2])[..., None]
    chroma_noise = rng.normal(0, sigma * 0.4, a.shape)
    a = a * gain + luma_noise + chroma_noise
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def jpeg(img, q=QUALITY):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=q)
    return b.getvalue()


def scale(img, k, add=0.0):
    a = np.asarray(img, dtype=np.float32) * k + add
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def gradient(top, bottom):
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    a = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    return Image.fromarray(np.broadcast_to(a, (H, W, 3)).astype(np.uint8))


def blob(base, colour, cover_box, blur, texture_rng):
    """A close object over the lens: a soft-edged, slightly shaded blob of one colour."""
    mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(mask).ellipse(cover_box, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(blur))
    shade = np.linspace(0.85, 1.1, W, dtype=np.float32)[None, :, None]
    obj = np.broadcast_to(np.array(colour, np.float32), (H, W, 3)) * shade
    obj = obj + texture_rng.normal(0, 1.0, (H, W, 1))
    obj = Image.fromarray(np.clip(obj, 0, 255).astype(np.uint8))
    return Image.composite(obj, base, mask)


def main():
    global FONT
    args = sys.argv[1:]
    source = "skimage"
    if len(args) == 3 and args[1] == "--source":
        source = args[2]
        args = args[:1]
    if len(args) != 1 or source not in ("skimage", "opencv-doc"):
        sys.exit(__doc__)
    out = args[0]
    os.makedirs(out, exist_ok=True)
    # The cache root: camera-fixtures/ (OUT is camera-fixtures/vN or camera-fixtures/vN/SET).
    cache = os.path.abspath(out.rstrip("/"))
    while os.path.basename(cache) != "camera-fixtures" and os.path.dirname(cache) != cache:
        cache = os.path.dirname(cache)
    if os.path.basename(cache) != "camera-fixtures":
        cache = os.path.dirname(os.path.abspath(out.rstrip("/")))
    FONT = font()
    if source == "skimage":
        photos, scenes, seed = photo_sources(cache), SCENES, 20261126
    else:
        photos, scenes, seed = opencv_doc_photos(cache), JUDGE_SCENES, 20261204
    rows = []
    rng = np.random.default_rng(seed)
    for scene_no, name in enumerate(scenes):
        scene = os.path.splitext(name)[0]
        src = Image.open(io.BytesIO(photos[name])).convert("RGB")
        big = cover(src, int(W * 1.3), int(H * 1.3))
        ox, oy = (big.width - W) // 2, (big.height - H) // 2
        base = big.crop((ox, oy, ox + W, oy + H))
        clock = scene_no * 1000
        order = 0

        def put(label, variant, data):
            nonlocal order
            fname = f"{scene}_{order:03d}_{label}_{variant}.jpg"
            with open(os.path.join(out, fname), "wb") as f:
                f.write(data)
            rows.append((scene, order, label, variant, fname))
            order += 1

        def live(img, sigma=2.5):
            nonlocal clock
            clock += 1
            return jpeg(overlay(noisy(rng, img, sigma), clock))

        # The reference (enrolled) frame first, then a live static sequence.
        for i in range(8):
            put("normal", "live" if i else "reference", live(base))
        # Frozen: bit-identical repeats.
        frame = live(base)
        put("normal", "before-freeze", frame)
        for _ in range(3):
            put("frozen", "identical", frame)
        # Frozen: the same picture re-encoded (encoder rate control).
        pic = overlay(noisy(rng, base), clock)
        put("normal", "before-freeze", jpeg(pic, 85))
        for q in (83, 87):
            put("frozen", "reencoded", jpeg(pic, q))
        # Frozen picture under a live clock overlay (DVR freeze).
        still = noisy(rng, base)
        for i in range(3):
            clock += 1
            put("normal" if i == 0 else "frozen", "before-freeze" if i == 0 else "clock-only", jpeg(overlay(still, clock)))
        # A cleaner (low-noise) live sensor: still not frozen.
        for _ in range(4):
            put("normal", "low-noise", live(base, sigma=1.5))
        # Dark / black.
        put("black", "darkened", live(scale(base, 0.12)))
        put("black", "lens-black", live(scale(base, 0.0), sigma=1.5))
        # Over-exposed.
        put("overexposed", "washed-out", live(scale(base, 2.2, 110)))
        put("overexposed", "glare", live(scale(base, 1.5, 170)))
        # Covered or blurred.
        put("covered", "blur-10", live(base.filter(ImageFilter.GaussianBlur(10))))
        put("covered", "blur-18", live(base.filter(ImageFilter.GaussianBlur(18))))
        put("covered", "hand", live(blob(base, (190, 140, 115), (-200, -150, W + 150, H + 250), 60, rng)))
        put("covered", "tape", live(blob(base, (45, 45, 50), (-300, -300, W + 200, H + 300), 30, rng)))
        # Sky / ceiling.
        put("sky", "blue", live(gradient((80, 135, 215), (215, 230, 245))))
        roof = gradient((100, 150, 225), (200, 220, 240))
        ImageDraw.Draw(roof).polygon([(0, H), (0, int(H * 0.86)), (W // 2, int(H * 0.9)), (W, int(H * 0.84)), (W, H)], fill=(40, 38, 35))
        put("sky", "roofline", live(roof))
        ceiling = gradient((222, 222, 218), (236, 236, 232))
        ImageDraw.Draw(ceiling).rectangle((W // 2 - 200, H // 2 - 12, W // 2 + 200, H // 2 + 12), fill=(250, 250, 250))
        put("sky", "ceiling", live(ceiling))
        # Moved / re-aimed.
        dx = int(W * 0.15)
        put("moved", "pan", live(big.crop((ox + dx, oy, ox + dx + W, oy + H))))
        rot = big.rotate(10, resample=Image.BICUBIC).crop((ox, oy, ox + W, oy + H))
        put("moved", "rotate", live(rot))
        zoom = cover(src, int(W * 1.5), int(H * 1.5))
        zx, zy = (zoom.width - W) // 2, (zoom.height - H) // 2 - int(H * 0.15)
        put("moved", "tilt-zoom", live(zoom.crop((zx, zy, zx + W, zy + H))))
        # Back to normal, then a truncated upload.
        put("normal", "live", live(base))
        whole = live(base)
        put("truncated", "cut", whole[: len(whole) * 55 // 100])
    with open(os.path.join(out, "labels.tsv.tmp"), "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    os.replace(os.path.join(out, "labels.tsv.tmp"), os.path.join(out, "labels.tsv"))
    print(f"wrote {len(rows)} frames to {out}")


if __name__ == "__main__":
    main()
