#!/usr/bin/env python3
"""Convert hyperlpr 0.0.2's plate recogniser (Caffe, "SegmenationFree-Inception") to ONNX.

Usage:
    convert_caffe_plate_rec.py PROTOTXT CAFFEMODEL OUT.onnx
    convert_caffe_plate_rec.py --verify PROTOTXT CAFFEMODEL OUT.onnx   # compare with OpenCV's dnn

The second opinion on a plate's text (gateway/src/vision/plate_rec2.rs): a CNN trained with CTC
by the HyperLPR authors on other data than our CCPD-trained recogniser, with all 31 provinces.

Graph (opset 13), written from the prototxt by hand; weights read from the caffemodel with a
small protobuf wire-format reader (no Caffe, no protobuf schema needed):
    input  "image": float32 [N, 3, 40, 160], the plate straight, BGR, values 0..1 (hyperlpr
                    resizes its plate crop to 160x40 and divides by 255). The Caffe net takes
                    the image transposed ([N, 3, 160, 40]); the graph transposes it first.
    output "probs": float32 [N, 20, 84], per-step softmax over hyperlpr's 84 classes
                    (`table_chs.chars`, 83 characters; class 83 is the CTC blank). hyperlpr
                    drops the first 2 of the 20 steps before decoding.

Layers handled: Convolution, BatchNorm (Caffe's scale-factor blob and eps), Scale, ReLU, max
Pooling, Concat, Softmax; anything else stops the conversion. The output is byte-for-byte the
same for the same inputs (checked by sha256 in manifest.toml).

`--verify` runs the Caffe model in OpenCV's dnn module (the way hyperlpr itself runs it) and the
ONNX model in onnxruntime on random inputs and prints the largest difference (needs
opencv-python-headless and onnxruntime; not needed for the conversion).
"""

import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


# ------------------------------------------------------------------ prototxt (text format)


def parse_prototxt(path):
    """Protobuf text format to nested dicts: every key maps to a list of values."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tokens = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        elif c in "{}:":
            tokens.append(c)
            i += 1
        elif c == '"':
            j = text.index('"', i + 1)
            tokens.append(("str", text[i + 1 : j]))
            i = j + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in "{}:#":
                j += 1
            tokens.append(text[i:j])
            i = j
    pos = 0

    def block():
        nonlocal pos
        out = {}
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
                v = tokens[pos]
                pos += 1
                if isinstance(v, tuple):
                    v = v[1]
                out.setdefault(key, []).append(v)
            elif tokens[pos] == "{":
                pos += 1
                out.setdefault(key, []).append(block())
                if tokens[pos] != "}":
                    raise SystemExit(f"{path}: unbalanced braces")
                pos += 1
            else:
                raise SystemExit(f"{path}: cannot parse near {key!r}")
        return out

    return block()


def one(d, key, default=None):
    v = d.get(key)
    return default if not v else v[0]


def window(p):
    """Kernel, stride and padding (height and width each) of a convolution or pooling layer's
    parameters: the `_h`/`_w` form when given, else the square one, else Caffe's default."""
    return (
        int(one(p, "kernel_h", one(p, "kernel_size", 1))),
        int(one(p, "kernel_w", one(p, "kernel_size", 1))),
        int(one(p, "stride_h", one(p, "stride", 1))),
        int(one(p, "stride_w", one(p, "stride", 1))),
        int(one(p, "pad_h", one(p, "pad", 0))),
        int(one(p, "pad_w", one(p, "pad", 0))),
    )


# ------------------------------------------------------------------ caffemodel (wire format)


def fields(buf):
    """(field number, wire type, value) of one protobuf message; length-delimited values are bytes."""
    i = 0
    n = len(buf)
    while i < n:
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v = buf[i : i + 8]
            i += 8
        elif wt == 2:
            ln, i = varint(buf, i)
            v = buf[i : i + ln]
            i += ln
        elif wt == 5:
            v = buf[i : i + 4]
            i += 4
        else:
            raise SystemExit(f"caffemodel: wire type {wt} not handled")
        yield num, wt, v


def varint(buf, i):
    shift = 0
    out = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def blob(buf):
    """BlobProto: data (5, float), double_data (8) or raw_data (12, here float16); shape (7: dim 1) or legacy num/channels/height/width (1-4)."""
    data = []
    shape = []
    legacy = {}
    raw, raw_type = None, 1
    for num, wt, v in fields(buf):
        if num == 5:
            data.append(np.frombuffer(v, dtype="<f4").astype(np.float64))
        elif num == 8:  # double_data (this model's convolutions are stored so)
            data.append(np.frombuffer(v, dtype="<f8"))
        elif num == 7:
            for n2, w2, v2 in fields(v):
                if n2 == 1:
                    if w2 == 2:
                        j = 0
                        while j < len(v2):
                            d, j = varint(v2, j)
                            shape.append(d)
                    else:
                        shape.append(v2)
        elif num in (1, 2, 3, 4) and wt == 0:
            legacy[num] = v
        elif num == 10 and wt == 0:
            raw_type = v
        elif num == 12 and wt == 2:
            raw = v
    if raw is not None:
        # OpenCV's caffe.proto: raw_data (12) typed by raw_data_type (10): DOUBLE 0, FLOAT 1, FLOAT16 2.
        dt = {0: "<f8", 1: "<f4", 2: "<f2"}.get(raw_type)
        if dt is None:
            raise SystemExit(f"caffemodel: raw_data_type {raw_type} not handled")
        data.append(np.frombuffer(raw, dtype=dt).astype(np.float64))
    arr = np.concatenate(data) if data else np.zeros(0, np.float32)
    if not shape and legacy:
        shape = [legacy.get(k, 1) for k in (1, 2, 3, 4)]
    if shape and int(np.prod(shape)) == arr.size:
        arr = arr.reshape(shape)
    return arr.astype(np.float32)


def read_caffemodel(path):
    """Layer name -> list of blobs (numpy), from NetParameter.layer (100) or legacy layers (2)."""
    with open(path, "rb") as f:
        buf = f.read()
    out = {}
    for num, wt, v in fields(buf):
        if num not in (100, 2) or wt != 2:
            continue
        name = None
        blobs = []
        # LayerParameter: name 1, blobs 7; V1LayerParameter: name 4, blobs 6.
        name_f, blobs_f = (1, 7) if num == 100 else (4, 6)
        for n2, w2, v2 in fields(v):
            if n2 == name_f and w2 == 2:
                name = v2.decode("utf-8")
            elif n2 == blobs_f and w2 == 2:
                blobs.append(blob(v2))
        if name is not None:
            out[name] = blobs
    return out


# ------------------------------------------------------------------ graph


def convert(prototxt, caffemodel):
    net = parse_prototxt(prototxt)
    weights = read_caffemodel(caffemodel)
    dims = [int(d) for d in net.get("input_dim", [])]
    if dims != [1, 3, 160, 40]:
        raise SystemExit(f"{prototxt}: expected input 1x3x160x40, found {dims}")
    inp = one(net, "input")
    nodes = []
    inits = []
    # Natural orientation in, Caffe's transposed layout inside.
    nodes.append(helper.make_node("Transpose", ["image"], [inp], perm=[0, 1, 3, 2], name="to_caffe_layout"))
    current = {inp: inp}  # blob name -> latest tensor name (in-place layers make new versions)
    version = {}

    def out_name(top):
        version[top] = version.get(top, 0) + 1
        name = top if version[top] == 1 and top not in current else f"{top}__{version[top]}"
        current[top] = name
        return name

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    last = None
    for layer in net["layer"]:
        name = one(layer, "name")
        typ = one(layer, "type")
        bottoms = [current[b] for b in layer.get("bottom", [])]
        tops = layer.get("top", [])
        if len(tops) != 1:
            raise SystemExit(f"layer {name}: {len(tops)} tops")
        blobs = weights.get(name, [])
        if typ == "Convolution":
            p = one(layer, "convolution_param")
            kh, kw, sh, sw, ph, pw = window(p)
            group = int(one(p, "group", 1))
            if one(p, "dilation") is not None:
                raise SystemExit(f"layer {name}: dilation not handled")
            n_out = int(one(p, "num_output"))
            w = blobs[0]
            if w.ndim != 4 or w.shape[0] != n_out or w.shape[2:] != (kh, kw):
                raise SystemExit(f"layer {name}: weight shape {w.shape} does not fit the prototxt")
            ins = [bottoms[0], const(f"{name}.w", w)]
            if one(p, "bias_term", "true") == "true":
                ins.append(const(f"{name}.b", blobs[1].reshape(-1)))
            nodes.append(helper.make_node("Conv", ins, [out_name(tops[0])], name=name,
                                          kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[ph, pw, ph, pw], group=group))
        elif typ == "BatchNorm":
            p = one(layer, "batch_norm_param", {})
            eps = float(one(p, "eps", 1e-5))
            mean, var = blobs[0].reshape(-1), blobs[1].reshape(-1)
            factor = float(blobs[2].reshape(-1)[0]) if len(blobs) > 2 else 1.0
            factor = 0.0 if factor == 0 else 1.0 / factor
            mean, var = mean * factor, var * factor
            # As an affine map per channel: (x - mean) / sqrt(var + eps).
            scale = 1.0 / np.sqrt(var + eps)
            nodes.append(helper.make_node("Mul", [bottoms[0], const(f"{name}.s", scale.reshape(1, -1, 1, 1))],
                                          [f"{name}__mul"], name=f"{name}.mul"))
            nodes.append(helper.make_node("Add", [f"{name}__mul", const(f"{name}.t", (-mean * scale).reshape(1, -1, 1, 1))],
                                          [out_name(tops[0])], name=name))
        elif typ == "Scale":
            p = one(layer, "scale_param", {})
            gamma = blobs[0].reshape(1, -1, 1, 1)
            nodes.append(helper.make_node("Mul", [bottoms[0], const(f"{name}.g", gamma)],
                                          [f"{name}__mul"], name=f"{name}.mul"))
            if one(p, "bias_term", "false") == "true":
                nodes.append(helper.make_node("Add", [f"{name}__mul", const(f"{name}.b", blobs[1].reshape(1, -1, 1, 1))],
                                              [out_name(tops[0])], name=name))
            else:
                nodes.append(helper.make_node("Identity", [f"{name}__mul"], [out_name(tops[0])], name=name))
        elif typ == "ReLU":
            nodes.append(helper.make_node("Relu", bottoms, [out_name(tops[0])], name=name))
        elif typ == "Pooling":
            p = one(layer, "pooling_param")
            if one(p, "pool", "MAX") != "MAX":
                raise SystemExit(f"layer {name}: only max pooling is handled")
            kh, kw, sh, sw, ph, pw = window(p)
            # Caffe rounds pooled sizes up.
            nodes.append(helper.make_node("MaxPool", bottoms, [out_name(tops[0])], name=name,
                                          kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[ph, pw, ph, pw], ceil_mode=1))
        elif typ == "Concat":
            p = one(layer, "concat_param", {})
            nodes.append(helper.make_node("Concat", bottoms, [out_name(tops[0])], name=name,
                                          axis=int(one(p, "axis", 1))))
        elif typ == "Softmax":
            nodes.append(helper.make_node("Softmax", bottoms, [out_name(tops[0])], name=name, axis=1))
        else:
            raise SystemExit(f"layer {name}: type {typ} not handled")
        last = current[tops[0]]
    # [N, 84, 20, 1] -> [N, 20, 84]
    inits.append(numpy_helper.from_array(np.array([0, 84, 20], dtype=np.int64), "out_shape"))
    nodes.append(helper.make_node("Reshape", [last, "out_shape"], ["__r"], name="drop_width"))
    nodes.append(helper.make_node("Transpose", ["__r"], ["probs"], perm=[0, 2, 1], name="steps_first"))
    graph = helper.make_graph(
        nodes, "hyperlpr_segmentation_free_inception",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 40, 160])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 20, 84])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="enforcement-gateway models/convert_caffe_plate_rec.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def verify(prototxt, caffemodel, out):
    import cv2
    import onnxruntime as ort

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(18)
    worst = 0.0
    for _ in range(4):
        img = (rng.random((40, 160, 3)) * 255).astype(np.uint8)
        # hyperlpr's own preparation (segmentation_free_recognition).
        t = img.transpose(1, 0, 2)
        b = cv2.dnn.blobFromImage(t, 1 / 255.0, (40, 160), (0, 0, 0), False, False)
        net.setInput(b)
        ref = net.forward()[0][:, :, 0].T  # [20, 84]
        x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        got = sess.run(None, {"image": x})[0][0]
        worst = max(worst, float(np.abs(got - ref).max()))
    print(f"verify: largest |onnx - opencv dnn| over 4 random plates x 20 steps x 84 classes: {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit("verify: outputs differ")


def main(argv):
    if argv and argv[0] == "--verify":
        if len(argv) != 4:
            raise SystemExit(__doc__)
        onnx.save(convert(argv[1], argv[2]), argv[3])
        verify(*argv[1:4])
        return
    if len(argv) != 3:
        raise SystemExit(__doc__)
    onnx.save(convert(argv[0], argv[1]), argv[2])


if __name__ == "__main__":
    main(sys.argv[1:])
