"""common.py - what every training script in training/ shares: a deterministic setup, the ONNX
export of a trained PyTorch module, the modeld.json manifest (the format of src/models/models.h)
and MODEL_CARD.md beside it.

Invariants:
  1. Same inputs, same bytes: seeds are fixed, PyTorch runs on one thread with deterministic
     algorithms, JSON is written with a fixed key order and float32 values in their shortest
     round-trip form, so `make models` twice produces identical files.
  2. A manifest's sha256 is the hash of the artefact bytes as written.
  3. Validation expected outputs come from evaluating the exported file (onnx_numpy.evaluate or
     the XGBoost booster reloaded from its JSON), never from the training-time objects alone.
"""
import hashlib
import json
import os
import random

import numpy as np

OPSET = 13
TOLERANCE = 1e-4


def seed_everything(seed):
    """Fix every source of randomness and make PyTorch single-threaded and deterministic."""
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    if torch.get_num_interop_threads() != 1:  # settable once per process
        torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def export_onnx(module, example, path, in_name, out_name):
    """Export module (eval mode: BatchNorm folds into the convolutions) with a free batch dim."""
    import torch
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, example, path, opset_version=OPSET, input_names=[in_name],
                          output_names=[out_name], do_constant_folding=True,
                          dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}})


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _short(x):
    if isinstance(x, list):
        return [_short(v) for v in x]
    return float(str(np.float32(x)))


def tensor(values):
    """A row-major nested list of float32 values in short form (what OIP JSON carries)."""
    return _short(np.asarray(values, dtype=np.float32).tolist())


def _dump(v, indent):
    """JSON with 2-space indentation, except that a list holding no objects stays on one line:
    shapes and labels spaced, tensors (floats, nested lists) without spaces."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_dump(x, indent + 2)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list) and any(isinstance(x, dict) for x in v):
        return "[\n" + ",\n".join(inner + _dump(x, indent + 2) for x in v) + "\n" + pad + "]"
    plain = isinstance(v, list) and all(isinstance(x, (str, int)) for x in v)
    return json.dumps(v, separators=(", ", ": ") if plain else (",", ":"), ensure_ascii=False)


def write_manifest(dirpath, doc):
    """Write modeld.json (key order as given: the order of models.h)."""
    with open(os.path.join(dirpath, "modeld.json"), "w") as f:
        f.write(_dump(doc, 0) + "\n")


def write_card(dirpath, doc, extra):
    """MODEL_CARD.md: the manifest's card, metrics and shapes in prose, plus extra sections."""
    card = doc["model_card"]
    lines = [f"# {doc['name']} {doc['version']}", "", doc["description"], "",
             f"- runtime: `{doc['runtime']}`, artefact `{doc['artefact']}` "
             f"(sha256 `{doc['sha256']}`)", f"- family: `{doc['family']}`",
             f"- required: `{str(doc['required']).lower()}`"]
    for io in ("inputs", "outputs"):
        for t in doc[io]:
            lines.append(f"- {io[:-1]} `{t['name']}` {t['datatype']} {t['shape']}: {t['description']}")
    lines += ["", "## Data", "", card["data"], "", "## Intended use", "", card["intended_use"], "",
              "## Limits", "", card["limits"], "", "## Metrics (held-out test split)", ""]
    lines += [f"- {k}: {v}" for k, v in doc["metrics"].items()]
    for title, body in extra:
        lines += ["", f"## {title}", "", body]
    lines += ["", "Recreate with `make models` (deterministic: identical bytes on every run).", ""]
    with open(os.path.join(dirpath, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join(lines))


def matrix_block(cm):
    """A confusion matrix (rows of integers) as a fenced block of 3-wide columns, for a card."""
    return "```\n" + "\n".join(" ".join(f"{int(v):3d}" for v in row) for row in cm) + "\n```"


def model_dir(root, name, version):
    d = os.path.join(root, name, version)
    os.makedirs(d, exist_ok=True)
    return d
