"""mlp.py - what the three vectorize training scripts share: the command line, a small
deterministic MLP trainer, its ONNX export with the normalisation inside the graph (contract §3:
the C side feeds raw features and raw encoded parameters), and the manifest pieces.

Invariants:
  1. Input standardisation (training-split mean / std) is folded into the first Gemm and output
     de-standardisation into the last, so the exported graph is Gemm / Relu (/ Softmax) only.
  2. Training is deterministic: common.seed_everything, full-batch order from a seeded generator.
  3. The expected outputs of validation samples come from onnx_numpy on the exported file.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import common  # noqa: E402
import dataset  # noqa: E402
import onnx_numpy  # noqa: E402


def parse_args(doc):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("root", nargs="?", default="models", help="write ROOT/<name>/<version>/")
    ap.add_argument("--tiny", action="store_true",
                    help="a few images and epochs (the test of the script, seconds)")
    return ap.parse_args()


def build(layers):
    """Linear layers of the given widths with a ReLU between each two."""
    from torch import nn
    mods = []
    for i in range(len(layers) - 1):
        mods.append(nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def train(x, y, layers, seed, epochs, loss="mse", lr=3e-3, wd=1e-4, batch=64, weight=None):
    """Train an MLP on standardised x (float32 arrays); y is int64 classes (loss "ce") or
    standardised float targets (loss "mse"). Returns the module in eval mode."""
    import torch
    from torch import nn
    common.seed_everything(seed)
    model = build(layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    w = torch.from_numpy(weight.astype(np.float32)) if weight is not None else None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            out = model(xt[idx])
            if loss == "ce":
                err = nn.functional.cross_entropy(out, yt[idx], weight=w)
            else:
                err = nn.functional.mse_loss(out, yt[idx])
            err.backward()
            opt.step()
        sched.step()
    return model.eval()


def fold(model, in_mean, in_std, out_mean=None, out_std=None):
    """Make model take raw inputs (first Linear: W/std, b - W/std @ mean) and, when out_mean is
    given, give raw outputs (last Linear: W*std, b*std + mean). Computed in float64."""
    import torch
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        first = lins[0]
        w = first.weight.double() / torch.from_numpy(in_std)
        b = first.bias.double() - w @ torch.from_numpy(in_mean)
        first.weight.copy_(w.float())
        first.bias.copy_(b.float())
        if out_mean is not None:
            last = lins[-1]
            s, m = torch.from_numpy(out_std), torch.from_numpy(out_mean)
            last.weight.copy_((last.weight.double() * s[:, None]).float())
            last.bias.copy_((last.bias.double() * s + m).float())


def standardiser(x):
    """(mean, std) of the columns of x; a constant column gets std 1 (it carries nothing)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-9, std, 1.0)


def export(module, n_in, path, in_name, out_name):
    """ONNX export; returns the sorted operators (only onnx_numpy's subset is allowed)."""
    import onnx
    import torch
    common.export_onnx(module, torch.zeros((1, n_in), dtype=torch.float32), path, in_name,
                       out_name)
    return onnx_numpy.check_ops(onnx.load(path))


def check_export(module, path, in_name, out_name, x):
    """The ONNX file and the module agree on x; returns the ONNX outputs."""
    import torch
    got = onnx_numpy.evaluate(path, {in_name: x.astype(np.float32)})[out_name]
    with torch.no_grad():
        ref = module(torch.from_numpy(x.astype(np.float32))).numpy()
    drift = float(np.abs(got - ref).max())
    assert drift < 1e-3 * max(1.0, float(np.abs(ref).max())), f"ONNX vs PyTorch drift {drift}"
    return got


def samples(path, in_name, out_name, x, n=3):
    out = []
    for i in range(min(n, len(x))):
        xi = x[i:i + 1].astype(np.float32)
        yi = onnx_numpy.evaluate(path, {in_name: xi})[out_name]
        out.append({"inputs": {in_name: common.tensor(xi)},
                    "outputs": {out_name: common.tensor(yi)}})
    return out


def load(tiny):
    """The image index with features: (feature names, X [n, F], records)."""
    index = dataset.build_images(tiny)
    return dataset.feature_matrix(index)


def data_card(index, extra=""):
    n = len(index)
    n_test = sum(r["split"] == "test" for r in index)
    kinds = {}
    for r in index:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    parts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return (f"{n} images made by training/vectorize (dataset.py, seed {dataset.SEED}): "
            f"{parts}. Synthetic logos are SVG rendered with rsvg-convert; icons come from "
            "Debian's papirus, breeze, tango, numix and adwaita icon themes, rendered at "
            "64..1024 px on white or transparent backgrounds, 12 % re-encoded as JPEG. Labels "
            "come from the SVG structure (svglabel.py). Split by group (a synthetic seed or an "
            f"icon name): {n - n_test} train, {n_test} held out. ../shared/corpus/dev is not "
            "used (its icons are excluded by name); openclipart is never used." + extra)


def tensor_io(name, width, description):
    """One inputs[] / outputs[] entry of a manifest: FP32 [-1, width]."""
    return {"name": name, "datatype": "FP32", "shape": [-1, width], "description": description}


def manifest(m, digest, features, samples, metrics):
    """A vectorize model's modeld.json in the key order of src/models/models.h, from the
    model's own pieces m: name, version, description, inputs, outputs, labels (optional),
    steps (preprocessing), post (postprocessing), card (data, intended_use, limits).
    features: the input columns' names (the pipeline compares them with its own)."""
    doc = {"name": m["name"], "version": m["version"], "family": "vectorize", "runtime": "onnx",
           "artefact": "model.onnx", "sha256": digest, "description": m["description"],
           "required": False, "inputs": m["inputs"], "outputs": m["outputs"]}
    if "labels" in m:
        doc["labels"] = m["labels"]
    doc.update({"preprocessing": {"features": features, "steps": m["steps"]},
                "postprocessing": m["post"],
                "validation": {"tolerance": common.TOLERANCE, "samples": samples},
                "metrics": metrics, "model_card": m["card"]})
    return doc


def training_text(arch, loss, seed, epochs, lr, wd, ops, folded="the first layer", batch=64):
    """The "Training" section of a model card."""
    return (f"{arch}; {loss}; AdamW lr {lr}, weight decay {wd}, cosine schedule, {epochs} "
            f"epochs, batch {batch}, seed {seed}, one CPU thread, deterministic algorithms. "
            f"Standardisation folded into {folded}. ONNX opset {common.OPSET}, operators: "
            f"{', '.join(ops)}.")
