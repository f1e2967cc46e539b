#!/usr/bin/python3
"""digits_cnn.py - train models/digits-cnn: the CNN of bench/onnx_export.py on scikit-learn's
bundled handwritten digits (load_digits: 1,797 8x8 images, 10 classes; UCI "Optical Recognition
of Handwritten Digits", shipped inside python3-sklearn, nothing downloaded).

Preprocessing (documented in the manifest; clients apply it): pixel values 0..16 / 16, each pixel
to a 2x2 block (16x16), centred on a 64x64 zero canvas (rows and columns 24..39), copied to the 3
channels -> float32 [N, 3, 64, 64]. The 2x2 blocks (rather than filling the canvas) keep a digit
inside the receptive field of the three 3x3 conv blocks before global average pooling.

Architecture: exactly bench/onnx_export.py's CNN (3 conv3x3+BN+ReLU blocks 16/32/64 with two
2x2 max-pools, global average pooling, Linear 64->10) plus a Softmax so the output is class
probabilities. BatchNorm folds into the convolutions at export (eval mode).

Usage: digits_cnn.py OUTROOT   (writes OUTROOT/digits-cnn/1/{model.onnx,modeld.json,MODEL_CARD.md})
"""
import os
import sys

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The network is the benchmark's own class, so the two cannot drift apart.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import common  # noqa: E402
import onnx_numpy  # noqa: E402
from onnx_export import CNN  # noqa: E402

NAME, VERSION, SEED = "digits-cnn", "1", 20261207
EPOCHS, BATCH, LR = 14, 32, 3e-3


class Served(nn.Module):
    """What is exported: the CNN followed by a softmax over the 10 classes."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn

    def forward(self, x):
        return torch.softmax(self.cnn(x), dim=1)


def preprocess(images8x8):
    """[N, 8, 8] values 0..16 -> float32 [N, 3, 64, 64] (see the module docstring)."""
    x = np.asarray(images8x8, dtype=np.float32) / 16.0
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    canvas = np.zeros((x.shape[0], 3, 64, 64), dtype=np.float32)
    canvas[:, :, 24:40, 24:40] = x[:, None, :, :]
    return canvas


def train(xtr, ytr):
    common.seed_everything(SEED)
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        print(f"{NAME}: epoch {epoch + 1}/{EPOCHS} loss {total / len(xt):.4f}", file=sys.stderr)
    return model.eval()


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    d = load_digits()
    idx = np.arange(len(d.target))
    itr, ite = train_test_split(idx, test_size=0.2, random_state=SEED,
                                stratify=d.target)
    x, y = preprocess(d.images), d.target.astype(np.int64)
    model = train(x[itr], y[itr])

    out = common.model_dir(root, NAME, VERSION)
    path = os.path.join(out, "model.onnx")
    common.export_onnx(Served(model), torch.from_numpy(x[ite[:1]]), path, "image", "probabilities")
    ops = onnx_numpy.check_ops(onnx.load(path))

    # Metrics from the exported graph on the whole test split.
    prob = onnx_numpy.evaluate(path, {"image": x[ite]})["probabilities"]
    with torch.no_grad():
        ref = Served(model)(torch.from_numpy(x[ite])).numpy()
    drift = float(np.abs(prob - ref).max())
    assert drift < 1e-5, f"ONNX and PyTorch disagree by {drift}"
    pred = prob.argmax(axis=1)
    metrics = {
        "accuracy": round(float(accuracy_score(y[ite], pred)), 4),
        "macro_f1": round(float(f1_score(y[ite], pred, average="macro")), 4),
        "test_samples": int(len(ite)),
        "train_samples": int(len(itr)),
    }
    # Validation: two held-out digits (different classes) through the exported graph.
    picks = [int(ite[0]), int(next(i for i in ite if y[i] != y[ite[0]]))]
    samples = []
    for i in picks:
        xi = x[i:i + 1]
        yi = onnx_numpy.evaluate(path, {"image": xi})["probabilities"]
        samples.append({"inputs": {"image": common.tensor(xi)},
                        "outputs": {"probabilities": common.tensor(yi)}})
    doc = manifest(common.sha256(path), metrics, samples, ops)
    common.write_manifest(out, doc)
    cm = confusion_matrix(y[ite], pred)
    common.write_card(out, doc, [
        ("Training", f"Adam lr {LR}, cosine schedule, {EPOCHS} epochs, batch {BATCH}, seed {SEED}, "
                     "one CPU thread, torch.use_deterministic_algorithms(True). Stratified 80/20 "
                     "split of the 1,797 images (train_test_split, same seed). ONNX opset "
                     f"{common.OPSET}, operators: {', '.join(ops)}."),
        ("Confusion matrix (rows: true 0-9, columns: predicted 0-9)",
         common.matrix_block(cm))])
    print(f"{NAME}: {metrics} -> {path}", file=sys.stderr)


def manifest(digest, metrics, samples, ops):
    return {
        "name": NAME, "version": VERSION, "family": "generic", "runtime": "onnx",
        "artefact": "model.onnx", "sha256": digest,
        "description": "Handwritten digit classifier (0-9): the benchmark CNN of "
                       "bench/onnx_export.py trained on scikit-learn's 8x8 digits.",
        "required": False,
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 64, 64],
                    "description": "Digit image, light strokes on black, values 0..1; see "
                                   "preprocessing for how an 8x8 digit is laid out."}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10],
                     "description": "Softmax probability of each digit 0..9 (labels order)."}],
        "labels": [str(i) for i in range(10)],
        "preprocessing": {
            "source": "sklearn.datasets.load_digits images: 8x8, integer values 0..16",
            "steps": ["divide by 16 (values 0..1)",
                      "repeat each pixel as a 2x2 block (16x16)",
                      "place at rows 24..39, columns 24..39 of a 64x64 zero canvas",
                      "copy to 3 channels (NCHW float32 [N, 3, 64, 64])"]},
        "postprocessing": {"predicted_class": "argmax of probabilities; label = labels[argmax]"},
        "validation": {"tolerance": common.TOLERANCE, "samples": samples},
        "metrics": metrics,
        "model_card": {
            "data": "scikit-learn load_digits (UCI Optical Recognition of Handwritten Digits, "
                    "its test part: 1,797 8x8 images written by 13 people, 10 classes), bundled with "
                    "python3-sklearn. Stratified 80/20 train/test split, seed "
                    f"{SEED}; metrics are on the 20% test split.",
            "intended_use": "A small real model to serve, validate, swap and benchmark "
                            "(bench/infer.sh measures it against FastAPI + PyTorch); a demo of "
                            "image classification through the Open Inference Protocol.",
            "limits": "Trained only on 8x8, centred, size-normalised digits laid out exactly as "
                      "in preprocessing; photos, other scales or dark-on-light digits are out of "
                      "distribution and get confident wrong answers. 13 writers only. Not for "
                      "any decision about people (cheques, forms)."},
    }


if __name__ == "__main__":
    main()
