"""convert.py - the UpscalerJS ESRGAN networks (npm @upscalerjs/esrgan-{slim,medium,thick} 1.0.0,
MIT, TF.js LayersModel files) converted to ONNX and written as modeld model versions.

    convert.py --npm build/npm/node_modules --out DIR [--verify MODELD] [--only slim-x4,...]

For each package and scale it writes DIR/esrgan-<size>-x<scale>/1/{model.onnx, modeld.json,
MODEL_CARD.md}: one registry model per (network, scale), version "1" = the weights of the npm
release 1.0.0 (src/pipelines/enhance.c reaches them by these names).

The conversion (issue 10 section 3):
  - Conv2D: kernels HWIO -> OIHW; padding 'same' (stride 1, odd kernels) -> symmetric k//2,
    'valid' -> 0; bias kept.
  - Activation relu -> Relu; Add -> Add (chained when more than two inputs);
    Concatenate (axis 3, channels last) -> Concat axis 1 (NCHW).
  - UpSampling2D nearest -> Resize mode nearest, coordinate_transformation_mode asymmetric,
    nearest_mode floor (what Keras's repeat does).
  - PixelShuffle<s>x (tf.depthToSpace NHWC) -> DepthToSpace blocksize s mode DCR.
  - MultiplyBeta -> Mul by beta (0.2).
  - RDN networks (slim, medium) take and return 0..255; RRDN (thick) 0..1: the ONNX graph of an
    RRDN gets a Mul by 1/255 at its input and by 255 at its output, so that every converted model
    has the same interface: image [N, 3, H, W] float32 0..255 -> upscaled [N, 3, sH, sW] in
    0..255, not clamped (the pipeline clamps and rounds).

Invariants:
  1. The expected outputs of the manifest's validation sample come from a numpy evaluation of the
     Keras graph itself (channels last, the TF.js weights as stored), never from the ONNX file:
     a wrong conversion fails the registry's validation.
  2. The same npm files give the same bytes (no randomness; the sample is a fixed crop of the
     package's fixture.png).
  3. --verify runs each package's fixture.png through OUR engine (`modeld infer`) and compares it
     with samples/<s>x/result.png: every pixel within +-1, or the script fails.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
VERSION = "1"
SIZES = ("slim", "medium", "thick")
SCALES = (2, 3, 4, 8)
SAMPLE = 8  # validation sample: an 8x8 crop of fixture.png (cheap at registry load)


# ---- reading the TF.js LayersModel --------------------------------------------------------


def load_tfjs(model_dir):
    """(layers, input name, output name, weights dict name -> float32 array)."""
    with open(os.path.join(model_dir, "model.json")) as f:
        m = json.load(f)
    cfg = m["modelTopology"]["model_config"]["config"]
    weights = {}
    for group in m["weightsManifest"]:
        blob = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            if w["dtype"] != "float32" or "quantization" in w:
                raise SystemExit(f"{model_dir}: weight {w['name']}: only float32 is handled")
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            weights[w["name"]] = np.frombuffer(blob, "<f4", n, off).reshape(w["shape"])
            off += 4 * n
        if off != len(blob):
            raise SystemExit(f"{model_dir}: {len(blob) - off} bytes of weights left over")
    return cfg["layers"], cfg["input_layers"][0][0], cfg["output_layers"][0][0], weights


def inbound(layer):
    nodes = layer["inbound_nodes"]
    return [n[0] for n in nodes[0]] if nodes else []


def check_conv(layer, kernel):
    c = layer["config"]
    if c["strides"] != [1, 1] or c["dilation_rate"] != [1, 1] or c.get("groups", 1) != 1:
        raise SystemExit(f"{layer['name']}: only stride 1, dilation 1, groups 1 are handled")
    if c["activation"] != "linear" or c["data_format"] != "channels_last":
        raise SystemExit(f"{layer['name']}: activation {c['activation']} not handled")
    kh, kw = kernel.shape[:2]
    if c["padding"] == "same" and (kh % 2 == 0 or kw % 2 == 0):
        raise SystemExit(f"{layer['name']}: 'same' padding of an even kernel is asymmetric")
    if c["padding"] not in ("same", "valid"):
        raise SystemExit(f"{layer['name']}: padding {c['padding']}")


# ---- the numpy reference (channels last, Keras semantics) ---------------------------------


def np_conv(x, k, b, same):
    """x [H, W, C], k [kh, kw, C, O] (HWIO), float64 accumulation."""
    kh, kw = k.shape[:2]
    if same:
        x = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, w, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[i:i + h, j:j + w, :].astype(np.float64) @ k[i, j].astype(np.float64)
    return out + b


def reference(layers, in_name, out_name, weights, x, rrdn):
    """Evaluate the Keras graph on x [H, W, 3] in the network's own range."""
    vals = {in_name: x.astype(np.float64)}
    for layer in layers:
        cls, name, src = layer["class_name"], layer["name"], inbound(layer)
        a = [vals[s] for s in src]
        if cls == "InputLayer":
            continue
        if cls == "Conv2D":
            k, b = weights[name + "/kernel"], weights[name + "/bias"]
            vals[name] = np_conv(a[0], k, b, layer["config"]["padding"] == "same")
        elif cls == "Activation":
            vals[name] = np.maximum(a[0], 0)
        elif cls == "Concatenate":
            vals[name] = np.concatenate(a, axis=2)
        elif cls == "Add":
            vals[name] = sum(a)
        elif cls == "MultiplyBeta":
            vals[name] = a[0] * layer["config"].get("beta", 0.2)
        elif cls == "UpSampling2D":
            sy, sx = layer["config"]["size"]
            vals[name] = a[0].repeat(sy, axis=0).repeat(sx, axis=1)
        elif cls.startswith("PixelShuffle"):
            s = layer["config"]["scale"]
            h, w, c = a[0].shape
            t = a[0].reshape(h, w, s, s, c // (s * s)).transpose(0, 2, 1, 3, 4)
            vals[name] = t.reshape(h * s, w * s, c // (s * s))
        else:
            raise SystemExit(f"layer {name}: class {cls} not handled")
    return vals[out_name]


# ---- the ONNX graph -----------------------------------------------------------------------


def to_onnx(layers, in_name, out_name, weights, rrdn, scale):
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    first = in_name
    if rrdn:
        nodes.append(helper.make_node("Mul", [in_name, const("in_scale", np.array(1 / 255, np.float32))],
                                      ["net_in"]))
        first = "net_in"
    rename = {in_name: first}
    for layer in layers:
        cls, name = layer["class_name"], layer["name"]
        src = [rename.get(s, s) for s in inbound(layer)]
        if cls == "InputLayer":
            continue
        if cls == "Conv2D":
            k = weights[name + "/kernel"]
            check_conv(layer, k)
            kh, kw = k.shape[:2]
            pad = [kh // 2, kw // 2, kh // 2, kw // 2] if layer["config"]["padding"] == "same" else [0] * 4
            w = const(name + "/W", k.transpose(3, 2, 0, 1).astype(np.float32))
            b = const(name + "/B", weights[name + "/bias"].astype(np.float32))
            nodes.append(helper.make_node("Conv", [src[0], w, b], [name], name=name,
                                          kernel_shape=[kh, kw], pads=pad, strides=[1, 1]))
        elif cls == "Activation":
            if layer["config"]["activation"] != "relu":
                raise SystemExit(f"{name}: activation {layer['config']['activation']}")
            nodes.append(helper.make_node("Relu", src, [name], name=name))
        elif cls == "Concatenate":
            if layer["config"]["axis"] not in (3, -1):
                raise SystemExit(f"{name}: concatenation on axis {layer['config']['axis']}")
            nodes.append(helper.make_node("Concat", src, [name], name=name, axis=1))
        elif cls == "Add":
            acc = src[0]
            for i, s in enumerate(src[1:]):
                out = name if i == len(src) - 2 else f"{name}/{i}"
                nodes.append(helper.make_node("Add", [acc, s], [out], name=out))
                acc = out
        elif cls == "MultiplyBeta":
            beta = const(name + "/beta", np.array(layer["config"].get("beta", 0.2), np.float32))
            nodes.append(helper.make_node("Mul", [src[0], beta], [name], name=name))
        elif cls == "UpSampling2D":
            if layer["config"]["interpolation"] != "nearest":
                raise SystemExit(f"{name}: interpolation {layer['config']['interpolation']}")
            sy, sx = layer["config"]["size"]
            sc = const(name + "/scales", np.array([1, 1, sy, sx], np.float32))
            nodes.append(helper.make_node("Resize", [src[0], "", sc], [name], name=name, mode="nearest",
                                          coordinate_transformation_mode="asymmetric",
                                          nearest_mode="floor"))
        elif cls.startswith("PixelShuffle"):
            nodes.append(helper.make_node("DepthToSpace", src, [name], name=name,
                                          blocksize=layer["config"]["scale"], mode="DCR"))
        else:
            raise SystemExit(f"layer {name}: class {cls} not handled")
    last = rename.get(out_name, out_name)
    if rrdn:
        nodes.append(helper.make_node("Mul", [last, const("out_scale", np.array(255, np.float32))],
                                      ["upscaled"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["upscaled"]))
    graph = helper.make_graph(
        nodes, "esrgan",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("upscaled", TensorProto.FLOAT,
                                       ["N", 3, f"H*{scale}", f"W*{scale}"])],
        inits)
    # rename the graph input to "image"
    for n in graph.node:
        for i, s in enumerate(n.input):
            if s == in_name:
                n.input[i] = "image"
    graph.input[0].name = "image"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="modeld training/enhance/convert.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


# ---- manifest -----------------------------------------------------------------------------


def short(a):
    return [float(str(np.float32(v))) for v in a] if a.ndim == 1 else [short(r) for r in a]


def load_png(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def manifest(size, scale, sha, arch, sample_in, sample_out):
    name = f"esrgan-{size}-x{scale}"
    return {
        "name": name, "version": VERSION, "family": "enhance", "runtime": "onnx",
        "artefact": "model.onnx", "sha256": sha,
        "description": f"ESRGAN {size} x{scale} super-resolution ({arch.upper()}, DIV2K) from "
                       f"npm @upscalerjs/esrgan-{size} 1.0.0 (MIT), converted to ONNX.",
        "required": False,
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, -1, -1],
                    "description": "RGB, 0..255, NCHW."}],
        "outputs": [{"name": "upscaled", "datatype": "FP32", "shape": [-1, 3, -1, -1],
                     "description": f"RGB x{scale}, about 0..255 (clamp and round)."}],
        "preprocessing": {"range": "0..255", "scale": scale, "architecture": arch},
        "validation": {"tolerance": 1e-3, "samples": [
            {"inputs": {"image": [short(c) for c in sample_in]},
             "outputs": {"upscaled": [short(c) for c in sample_out]}}]},
        "model_card": {
            "data": "DIV2K (trained by the UpscalerJS authors, github.com/idealo/image-super-resolution weights).",
            "intended_use": "Photo upscaling in modeld's enhancement pipeline (pl_enhance).",
            "limits": "Trained on bicubic-downscaled DIV2K; hallucinates texture on heavily "
                      "compressed or noisy photos; not for forensic or medical use."},
    }


def write_version(root, size, scale, model, arch, sample_in, sample_out):
    import common  # training/common.py: the manifest writer shared by the shipped models
    d = os.path.join(root, f"esrgan-{size}-x{scale}", VERSION)
    os.makedirs(d, exist_ok=True)
    art = os.path.join(d, "model.onnx")
    data = model.SerializeToString()
    tmp = art + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, art)
    doc = manifest(size, scale, hashlib.sha256(data).hexdigest(), arch, sample_in, sample_out)
    common.write_manifest(d, doc)
    with open(os.path.join(d, "MODEL_CARD.md"), "w") as f:
        f.write(f"# {doc['name']} {VERSION}\n\n{doc['description']}\n\n"
                f"- input `image` FP32 [-1, 3, -1, -1], 0..255\n"
                f"- output `upscaled` FP32 x{scale}\n\n"
                f"## Data\n\n{doc['model_card']['data']}\n\n"
                f"## Limits\n\n{doc['model_card']['limits']}\n\n"
                f"Made at build time by training/enhance/convert.py (not committed: third-party weights).\n")
    return d


# ---- verification through modeld ---------------------------------------------------------


def verify(modeld, version_dir, pkg, scale):
    """fixture.png through `modeld infer` vs samples/<s>x/result.png: max |diff| <= 1."""
    ref = os.path.join(pkg, "assets", "samples", f"{scale}x", "result.png")
    if not os.path.exists(ref):
        return None
    x = load_png(os.path.join(pkg, "assets", "fixture.png")).transpose(2, 0, 1)[None]
    want = load_png(ref)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "in.npy"), np.ascontiguousarray(x, np.float32))
        cmd = [modeld, "infer", os.path.join(version_dir, "model.onnx"), "--input",
               "image=" + os.path.join(tmp, "in.npy"), "--output", tmp, "--print", "0",
               "--threads", str(os.cpu_count() or 1)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{version_dir}: modeld infer failed: {r.stderr.strip()}")
        y = np.load(os.path.join(tmp, "upscaled.npy"))[0].transpose(1, 2, 0)
    got = np.clip(np.rint(y), 0, 255)
    diff = np.abs(got - want)
    return float(diff.max()), float((diff > 0).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--npm", required=True, help="node_modules holding @upscalerjs/esrgan-*")
    ap.add_argument("--out", required=True, help="models root to write (e.g. DATA_DIR/models)")
    ap.add_argument("--verify", help="modeld binary: check fixture.png against result.png")
    ap.add_argument("--only", help="comma list like slim-x4,thick-x2")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    only = set(a.only.split(",")) if a.only else None
    bad = 0
    for size in SIZES:
        pkg = os.path.join(a.npm, "@upscalerjs", f"esrgan-{size}")
        if not os.path.isdir(pkg):
            raise SystemExit(f"{pkg}: missing (scripts/deps.sh installs it)")
        fixture = load_png(os.path.join(pkg, "assets", "fixture.png"))
        for scale in SCALES:
            if only and f"{size}-x{scale}" not in only:
                continue
            layers, in_name, out_name, w = load_tfjs(os.path.join(pkg, "models", f"x{scale}"))
            rrdn = any(l["class_name"] == "MultiplyBeta" for l in layers)
            model = to_onnx(layers, in_name, out_name, w, rrdn, scale)
            crop = fixture[40:40 + SAMPLE, 40:40 + SAMPLE]
            k = 1 / 255 if rrdn else 1.0
            ref = reference(layers, in_name, out_name, w, crop * k, rrdn) / k
            d = write_version(a.out, size, scale, model, "rrdn" if rrdn else "rdn",
                              crop.transpose(2, 0, 1)[None], ref.transpose(2, 0, 1)[None])
            msg = f"esrgan-{size}-x{scale}: {d}"
            if a.verify:
                res = verify(a.verify, d, pkg, scale)
                if res is None:
                    msg += " (no sample in the package)"
                else:
                    msg += f" fixture vs result.png: max |diff| {res[0]:.0f}, {100 * res[1]:.2f}% pixels differ"
                    bad += res[0] > 1
            print(msg, flush=True)
    if bad:
        raise SystemExit(f"{bad} model(s) differ from the package's sample by more than 1")


if __name__ == "__main__":
    main()
