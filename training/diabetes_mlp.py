#!/usr/bin/python3
"""diabetes_mlp.py - train models/diabetes-mlp: the MLP of bench/onnx_export.py (32 -> 256 ->
256 -> 4, ReLU) on scikit-learn's bundled diabetes data (load_diabetes(scaled=False): 442
patients, 10 baseline measurements, disease progression one year later; Efron et al. 2004,
shipped inside python3-sklearn, nothing downloaded). The regression target is turned into four
classes: the quartile of progression, with the boundaries taken from the training split.

The 32 inputs: the 10 raw measurements in their original units (age, sex, bmi, bp, s1..s6),
then 22 padding columns. Standardisation (training-split mean and standard deviation) is folded
into the first Linear layer, and that layer's weights on the padding columns are exactly zero,
so clients send raw values and whatever they put in columns 10..31 is ignored.

Architecture: exactly bench/onnx_export.py's MLP plus a Softmax (outputs are probabilities).

Usage: diabetes_mlp.py OUTROOT   (writes OUTROOT/diabetes-mlp/1/{model.onnx,modeld.json,MODEL_CARD.md})
"""
import os
import sys

import numpy as np
import onnx
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The network is the benchmark's own class, so the two cannot drift apart.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import common  # noqa: E402
import onnx_numpy  # noqa: E402
from onnx_export import MLP  # noqa: E402

NAME, VERSION, SEED = "diabetes-mlp", "1", 20261207
N_IN, N_FEAT = 32, 10
EPOCHS, BATCH, LR, WD = 100, 32, 1e-4, 1e-2  # chosen by 5-fold CV on the training split
UNITS = ["years", "1 = female-coded, 2 = male-coded (as in the source data)", "kg/m^2",
         "mm Hg", "mg/dl", "mg/dl", "mg/dl", "ratio", "log of mmol/l", "mg/dl"]
MEANING = ["age", "sex", "body mass index", "average blood pressure",
           "total serum cholesterol (tc)", "low-density lipoproteins (ldl)",
           "high-density lipoproteins (hdl)", "total cholesterol / HDL (tch)",
           "log of serum triglycerides (ltg)", "blood sugar level (glu)"]


class Served(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x):
        return torch.softmax(self.mlp(x), dim=1)


def pad(x):
    out = np.zeros((x.shape[0], N_IN), dtype=np.float32)
    out[:, :N_FEAT] = x
    return out


def train(xtr, ytr):
    common.seed_everything(SEED)
    model = MLP()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def fold_standardisation(model, mean, std):
    """First layer on raw inputs: W' = W / std, b' = b - W' @ mean; padding columns zero."""
    lin = model.net[0]
    with torch.no_grad():
        w = lin.weight.double()
        w_raw = torch.zeros_like(w)
        w_raw[:, :N_FEAT] = w[:, :N_FEAT] / torch.from_numpy(std)
        b_raw = lin.bias.double() - w_raw[:, :N_FEAT] @ torch.from_numpy(mean)
        lin.weight.copy_(w_raw.float())
        lin.bias.copy_(b_raw.float())


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    d = load_diabetes(scaled=False)
    x_raw, target = d.data.astype(np.float64), d.target
    idx = np.arange(len(target))
    itr, ite = train_test_split(idx, test_size=0.25, random_state=SEED)
    bounds = np.quantile(target[itr], [0.25, 0.5, 0.75])
    y = np.searchsorted(bounds, target, side="right").astype(np.int64)
    mean, std = x_raw[itr].mean(axis=0), x_raw[itr].std(axis=0)
    model = train(pad((x_raw[itr] - mean) / std), y[itr])
    fold_standardisation(model, mean, std)

    out = common.model_dir(root, NAME, VERSION)
    path = os.path.join(out, "model.onnx")
    xte = pad(x_raw[ite])
    common.export_onnx(Served(model), torch.from_numpy(xte[:1]), path, "features", "probabilities")
    ops = onnx_numpy.check_ops(onnx.load(path))

    prob = onnx_numpy.evaluate(path, {"features": xte})["probabilities"]
    with torch.no_grad():
        ref = Served(model)(torch.from_numpy(xte)).numpy()
    drift = float(np.abs(prob - ref).max())
    assert drift < 1e-5, f"ONNX and PyTorch disagree by {drift}"
    junk = xte.copy()
    junk[:, N_FEAT:] = 1e3
    assert np.array_equal(onnx_numpy.evaluate(path, {"features": junk})["probabilities"], prob), \
        "padding columns must not change the output"
    pred = prob.argmax(axis=1)
    base = LogisticRegression(max_iter=2000).fit((x_raw[itr] - mean) / std, y[itr])
    base_acc = accuracy_score(y[ite], base.predict((x_raw[ite] - mean) / std))
    metrics = {
        "accuracy": round(float(accuracy_score(y[ite], pred)), 4),
        "within_one_quartile": round(float(np.mean(np.abs(pred - y[ite]) <= 1)), 4),
        "macro_f1": round(float(f1_score(y[ite], pred, average="macro")), 4),
        "baseline_logistic_regression_accuracy": round(float(base_acc), 4),
        "chance_accuracy": 0.25,
        "test_samples": int(len(ite)),
        "train_samples": int(len(itr)),
    }
    samples = []
    for i in range(3):
        xi = xte[i:i + 1]
        yi = onnx_numpy.evaluate(path, {"features": xi})["probabilities"]
        samples.append({"inputs": {"features": common.tensor(xi)},
                        "outputs": {"probabilities": common.tensor(yi)}})
    doc = manifest(common.sha256(path), metrics, samples, bounds)
    common.write_manifest(out, doc)
    cm = confusion_matrix(y[ite], pred)
    common.write_card(out, doc, [
        ("Training", f"AdamW lr {LR}, weight decay {WD}, {EPOCHS} epochs, batch {BATCH}, seed "
                     f"{SEED}, one CPU thread, torch.use_deterministic_algorithms(True); epochs, lr "
                     "and weight decay picked among six settings by 5-fold cross-validation on "
                     "the training split only. Random "
                     "75/25 split (train_test_split, same seed). Standardisation folded into the "
                     f"first layer after training. ONNX opset {common.OPSET}, operators: "
                     f"{', '.join(ops)}."),
        ("Confusion matrix (rows: true Q1-Q4, columns: predicted Q1-Q4)",
         common.matrix_block(cm))])
    print(f"{NAME}: {metrics} -> {path}", file=sys.stderr)


def manifest(digest, metrics, samples, bounds):
    b = [round(float(v), 2) for v in bounds]
    return {
        "name": NAME, "version": VERSION, "family": "predict", "runtime": "onnx",
        "artefact": "model.onnx", "sha256": digest,
        "description": "Quartile of diabetes progression one year after baseline, from 10 "
                       "baseline measurements: the benchmark MLP of bench/onnx_export.py "
                       "trained on scikit-learn's diabetes data.",
        "required": False,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, N_IN],
                    "description": "Columns 0..9: age, sex, bmi, bp, s1..s6 in the source "
                                   "data's raw units (see input_schema); columns 10..31 are "
                                   "padding, ignored (send 0)."}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 4],
                     "description": "Probability of each progression quartile Q1..Q4."}],
        "labels": ["Q1", "Q2", "Q3", "Q4"],
        "input_schema": {
            "columns": [{"index": i, "name": n, "meaning": m, "unit": u}
                        for i, (n, m, u) in enumerate(zip(load_diabetes().feature_names,
                                                          MEANING, UNITS))],
            "padding": {"columns": [N_FEAT, N_IN - 1], "value": 0,
                        "note": "zero weights: any value is ignored"}},
        "preprocessing": {"steps": ["none on the client: standardisation (training-split mean "
                                    "and std) is folded into the first layer"]},
        "postprocessing": {
            "predicted_class": "argmax of probabilities; label = labels[argmax]",
            "quartile_bounds": {"unit": "disease progression score of the source data",
                                "Q1": f"< {b[0]}", "Q2": f"{b[0]} .. {b[1]}",
                                "Q3": f"{b[1]} .. {b[2]}", "Q4": f">= {b[2]}"}},
        "validation": {"tolerance": common.TOLERANCE, "samples": samples},
        "metrics": metrics,
        "model_card": {
            "data": "scikit-learn load_diabetes(scaled=False): 442 diabetes patients (Efron, "
                    "Hastie, Johnstone, Tibshirani, 'Least Angle Regression', 2004), 10 "
                    "baseline variables and a quantitative measure of progression one year "
                    "later, bundled with python3-sklearn. Random 75/25 train/test split, seed "
                    f"{SEED}; the quartile boundaries come from the training split.",
            "intended_use": "A small real tabular model to serve, validate, swap and benchmark "
                            "(bench/infer.sh measures it against FastAPI + PyTorch); a demo of "
                            "the predict family through the Open Inference Protocol.",
            "limits": "442 patients from one study: far too little data for clinical use, and "
                      "the quartile task is hard (about half of the test patients are in the "
                      "right quartile, most of the rest in a neighbouring one; a logistic "
                      "regression does about as well, see metrics). Never use it for a "
                      "medical decision. Inputs outside the training ranges extrapolate "
                      "silently."},
    }


if __name__ == "__main__":
    main()
