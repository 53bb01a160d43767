#!/usr/bin/env python3
"""Convert hyperlpr 0.0.2's plate refinement net (Caffe, "refinenet", an MTCNN ONet) to ONNX.

Usage:
    convert_caffe_refinenet.py PROTOTXT CAFFEMODEL OUT.onnx
    convert_caffe_refinenet.py --verify PROTOTXT CAFFEMODEL OUT.onnx [IMAGE...]   # vs OpenCV's dnn

What it is for (gateway/src/vision/plate_refine.rs): hyperlpr reads a plate from a loose box
(`loose_crop`) that this net turns into the plate's four corners, twice (`finetune`: the second
pass sees the plate centred and levelled by the first). Its corners are another view of where the
plate's text line is, from a model trained by other people than our detector's, and the crop
hyperlpr's recogniser (our second recogniser) was trained on.

Graph (opset 13), written from the prototxt; weights read by the wire-format reader of
convert_caffe_plate_rec.py (no Caffe, no protobuf schema):
    input  "image":   float32 [N, 3, 48, 120], BGR, (v - 127.5) / 128 (hyperlpr's blobFromImage:
                      mean 127.5, scale 0.0078125, no channel swap), the loose crop resized.
    output "corners": float32 [N, 8], the plate's corners as fractions of the input's width and
                      height: x, y of top-left, top-right, bottom-right, bottom-left (hyperlpr's
                      `conv6-3`; its other heads, a plate/no-plate score and a box, are unused
                      by hyperlpr and left out).

Layers handled: Convolution, PReLU, max Pooling (Caffe rounds up), InnerProduct, Dropout
(identity at inference); layers that do not lead to conv6-3 are dropped. The output is
byte-for-byte the same for the same inputs (checked by sha256 in manifest.toml).

`--verify` runs the Caffe model in OpenCV's dnn (as hyperlpr runs it) and the ONNX model in
onnxruntime on 4 random inputs and on each IMAGE (resized to 120x48 as hyperlpr does) and prints
the largest difference (needs opencv-python-headless and onnxruntime; not needed to convert).
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_caffe_plate_rec import one, parse_prototxt, read_caffemodel, window  # noqa: E402

OUTPUT = "conv6-3"


def needed_layers(layers):
    """Names of the layers the output depends on (walked back from OUTPUT's producer)."""
    want = {OUTPUT}
    keep = set()
    for layer in reversed(layers):
        tops = layer.get("top", [])
        if any(t in want for t in tops):
            keep.add(one(layer, "name"))
            want.update(layer.get("bottom", []))
    return keep


def convert(prototxt, caffemodel):
    net = parse_prototxt(prototxt)
    weights = read_caffemodel(caffemodel)
    dims = [int(d) for d in net.get("input_dim", [])]
    if dims != [1, 3, 48, 120]:
        raise SystemExit(f"{prototxt}: expected input 1x3x48x120, found {dims}")
    inp = one(net, "input")
    nodes = []
    inits = []
    current = {inp: "image"}
    version = {}

    def out_name(top):
        version[top] = version.get(top, 0) + 1
        name = top if version[top] == 1 else f"{top}__{version[top]}"
        current[top] = name
        return name

    def const(name, arr, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name))
        return name

    keep = needed_layers(net["layer"])
    flat_now = False  # whether the tensor flowing on is [N, C] (after an inner product)
    for layer in net["layer"]:
        name = one(layer, "name")
        if name not in keep:
            continue
        typ = one(layer, "type")
        bottoms = [current[b] for b in layer.get("bottom", [])]
        tops = layer.get("top", [])
        if len(tops) != 1 or len(bottoms) != 1:
            raise SystemExit(f"layer {name}: {len(bottoms)} bottoms, {len(tops)} tops")
        blobs = weights.get(name, [])
        if typ == "Convolution":
            p = one(layer, "convolution_param")
            kh, kw, sh, sw, ph, pw = window(p)
            if int(one(p, "group", 1)) != 1 or one(p, "dilation") is not None:
                raise SystemExit(f"layer {name}: groups or dilation not handled")
            n_out = int(one(p, "num_output"))
            w = blobs[0]
            if w.ndim != 4 or w.shape[0] != n_out or w.shape[2:] != (kh, kw):
                raise SystemExit(f"layer {name}: weight shape {w.shape} does not fit the prototxt")
            ins = [bottoms[0], const(f"{name}.w", w)]
            if one(p, "bias_term", "true") == "true":
                ins.append(const(f"{name}.b", blobs[1].reshape(-1)))
            nodes.append(helper.make_node("Conv", ins, [out_name(tops[0])], name=name,
                                          kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[ph, pw, ph, pw]))
        elif typ == "PReLU":
            slope = blobs[0].reshape(-1)
            # Per channel: [C, 1, 1] on a feature map, [C] after an inner product ([N, C]).
            shape = (-1,) if flat_now else (-1, 1, 1)
            nodes.append(helper.make_node("PRelu", [bottoms[0], const(f"{name}.slope", slope.reshape(shape))],
                                          [out_name(tops[0])], name=name))
        elif typ == "Pooling":
            p = one(layer, "pooling_param")
            if one(p, "pool", "MAX") != "MAX":
                raise SystemExit(f"layer {name}: only max pooling is handled")
            kh, kw, sh, sw, ph, pw = window(p)
            nodes.append(helper.make_node("MaxPool", bottoms, [out_name(tops[0])], name=name,
                                          kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[ph, pw, ph, pw], ceil_mode=1))
        elif typ == "InnerProduct":
            p = one(layer, "inner_product_param")
            n_out = int(one(p, "num_output"))
            w = blobs[0].reshape(n_out, -1)
            flat = f"{name}__flat"
            nodes.append(helper.make_node("Flatten", bottoms, [flat], name=f"{name}.flatten", axis=1))
            ins = [flat, const(f"{name}.w", w)]
            if one(p, "bias_term", "true") == "true":
                ins.append(const(f"{name}.b", blobs[1].reshape(-1)))
            nodes.append(helper.make_node("Gemm", ins, [out_name(tops[0])], name=name, transB=1))
            flat_now = True
        elif typ == "Dropout":
            nodes.append(helper.make_node("Identity", bottoms, [out_name(tops[0])], name=name))
        else:
            raise SystemExit(f"layer {name}: type {typ} not handled")
    if OUTPUT not in current:
        raise SystemExit(f"{prototxt}: no layer makes {OUTPUT}")
    nodes.append(helper.make_node("Identity", [current[OUTPUT]], ["corners"], name="corners"))
    graph = helper.make_graph(
        nodes, "hyperlpr_refinenet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 48, 120])],
        [helper.make_tensor_value_info("corners", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="enforcement-gateway models/convert_caffe_refinenet.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def verify(prototxt, caffemodel, out, images):
    import cv2
    import onnxruntime as ort

    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(18)
    inputs = [("random", (rng.random((48, 120, 3)) * 255).astype(np.uint8)) for _ in range(4)]
    for path in images:
        img = cv2.imread(path)
        if img is None:
            raise SystemExit(f"verify: cannot read {path}")
        inputs.append((os.path.basename(path), cv2.resize(img, (120, 48))))
    worst = 0.0
    for label, img in inputs:
        # hyperlpr's own preparation (LPR.finetune).
        blob = cv2.dnn.blobFromImage(img, size=(120, 48), swapRB=False, mean=(127.5, 127.5, 127.5),
                                     scalefactor=0.0078125, crop=False)
        net.setInput(blob)
        ref = net.forward(OUTPUT).reshape(-1)
        got = sess.run(None, {"image": blob.astype(np.float32)})[0].reshape(-1)
        diff = float(np.abs(got - ref).max())
        worst = max(worst, diff)
        print(f"verify: {label}: corners {np.round(ref, 3).tolist()} |diff| {diff:.2e}")
    print(f"verify: largest |onnx - opencv dnn| over {len(inputs)} inputs x 8 outputs: {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit("verify: outputs differ")


def main(argv):
    if argv and argv[0] == "--verify":
        if len(argv) < 4:
            raise SystemExit(__doc__)
        onnx.save(convert(argv[1], argv[2]), argv[3])
        verify(argv[1], argv[2], argv[3], argv[4:])
        return
    if len(argv) != 3:
        raise SystemExit(__doc__)
    onnx.save(convert(argv[0], argv[1]), argv[2])


if __name__ == "__main__":
    main(sys.argv[1:])
