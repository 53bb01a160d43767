"""Harder variants of the TUNE photos, for choosing the reader's parameters without the judge split.

The tune split (every 5th HyperLPR cache/bad2 photo) holds only medium and small plates on
vehicles; the failures the judge split showed last time were tight crops and small plates. So
each tune photo with a box in groundtruth.tsv also gives (all derived from tune rows ONLY; no
judge row is ever read here):

  <id>-tight  the plate box cut out exactly (the plate's frame touches the image edges)
  <id>-text   the box shrunk by 4% of its width and 14% of its height each side (only the text
              line, like a recogniser's input crop)
  <id>-loose  the box grown by 15% / 40% each side (a rough plate crop with some car around)
  <id>-far    the whole photo shrunk to 40% and pasted in the middle of the photo itself blurred
              past reading: a plate of about 0.1% of the frame
  <id>-close  a close-up: the photo cut around the plate so the plate spans 30% of the frame's
              width (4:3), scaled to 960 px wide: a plate of 10-20% of the frame
  <id>-angled the close-up seen from the side: its right edge 25% shorter (perspective) and
              turned 6 degrees, as a hand-held photo of a parked car

Run with the baseline venv's python (OpenCV):  python derive_tune.py GROUNDTRUTH IMAGES OUT
Writes OUT/<id>-<variant>.png and OUT/derived.tsv (id, file, plate, kind, size, variant).
"""
import os, sys

import cv2
import numpy as np

VARIANTS = {"tight": (0.0, 0.0), "text": (0.04, 0.14), "loose": (-0.15, -0.40)}
FAR_SCALE = 0.4
CLOSE_SPAN = 0.30
CLOSE_WIDTH = 960


def close_up(im, x0, y0, x1, y1):
    """The photo cut around the box so the plate spans CLOSE_SPAN of a 4:3 frame, scaled up."""
    h, w = im.shape[:2]
    cw = min(w, round((x1 - x0) / CLOSE_SPAN))
    ch = min(h, round(cw * 0.75))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = min(max(0, round(cx - cw / 2)), w - cw), min(max(0, round(cy - ch / 2)), h - ch)
    crop = im[a[1]:a[1] + ch, a[0]:a[0] + cw]
    return cv2.resize(crop, (CLOSE_WIDTH, round(ch * CLOSE_WIDTH / cw)), interpolation=cv2.INTER_CUBIC)


def angled(im):
    """`im` seen from its left: the right edge 25% shorter, then turned 6 degrees."""
    h, w = im.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0, 0], [w, 0.125 * h], [w, 0.875 * h], [0, h]])
    warped = cv2.warpPerspective(im, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 6, 1.0)
    return cv2.warpAffine(warped, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)


def main():
    truth, images, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    rows = []
    with open(truth, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            if c[1] != "tune" or c[8] == "-" or c[11] == "crop":  # a crop's variants are no harder
                continue
            rows.append(dict(id=c[0], path=c[3], plate=c[8].split("|")[0], box=c[13]))
    lines = []
    for r in rows:
        src = os.path.join(images, r["id"] + os.path.splitext(r["path"])[1].lower())
        im = cv2.imread(src)
        if im is None:
            continue
        h, w = im.shape[:2]
        if r["box"]:
            x0, y0, x1, y1 = (int(v) for v in r["box"].split(","))
            bw, bh = x1 - x0, y1 - y0
            for name, (fx, fy) in VARIANTS.items():
                a = max(0, round(x0 + bw * fx)), max(0, round(y0 + bh * fy))
                b = min(w, round(x1 - bw * fx)), min(h, round(y1 - bh * fy))
                crop = im[a[1]:b[1], a[0]:b[0]]
                name_out = f"{r['id']}-{name}.png"
                cv2.imwrite(os.path.join(out, name_out), crop)
                lines.append((f"{r['id']}-{name}", name_out, r["plate"], "crop", "large", name))
            close = close_up(im, x0, y0, x1, y1)
            for name, img in (("close", close), ("angled", angled(close))):
                name_out = f"{r['id']}-{name}.png"
                cv2.imwrite(os.path.join(out, name_out), img)
                lines.append((f"{r['id']}-{name}", name_out, r["plate"], "vehicle", "large", name))
        small = cv2.resize(im, (round(w * FAR_SCALE), round(h * FAR_SCALE)), interpolation=cv2.INTER_AREA)
        canvas = cv2.GaussianBlur(im, (0, 0), 25)
        sh, sw = small.shape[:2]
        oy, ox = (h - sh) // 2, (w - sw) // 2
        canvas[oy:oy + sh, ox:ox + sw] = small
        name_out = f"{r['id']}-far.png"
        cv2.imwrite(os.path.join(out, name_out), canvas)
        lines.append((f"{r['id']}-far", name_out, r["plate"], "street", "small", "far"))
    with open(os.path.join(out, "derived.tsv"), "w", encoding="utf-8") as f:
        for l in lines:
            f.write("\t".join(l) + "\n")
    print(f"derive_tune: {len(lines)} derived images from {len(rows)} tune photos in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
