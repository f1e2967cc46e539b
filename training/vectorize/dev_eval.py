#!/usr/bin/python3
"""dev_eval.py - the shipped vectorize models on ../shared/corpus/dev (validation only: nothing
here feeds back into training or tuning). Not part of `make models`; run it by hand:

    MODELD_BIN=build/release/modeld training/vectorize/dev_eval.py [MODELS_ROOT]

It prints (and writes to build/vectorize/dev_eval.json):
  - classifier: accuracy and confusion matrix against the corpus's labels.csv;
  - quality: MAE of the predicted SSIM over the presets and anchor sets of dataset.anchors(),
    each traced for real on every image;
  - params: the measured SSIM of each image traced with the decoded prediction, against the
    default preset on that image (error reduction, share within 3x the default's bytes).
"""
import csv
import glob
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402
import mlp  # noqa: E402
import params  # noqa: E402
import svglabel  # noqa: E402

DEV = os.path.join(dataset.ROOT, "..", "shared", "corpus", "dev")


def newest(root, name):
    """The highest version directory of a model."""
    return max(glob.glob(os.path.join(root, name, "*")), key=lambda d: int(os.path.basename(d)))


def run(root, name, feed):
    d = newest(root, name)
    with open(os.path.join(d, "modeld.json")) as f:
        mf = json.load(f)
    out = mlp.onnx_numpy.evaluate(os.path.join(d, mf["artefact"]),
                                  {mf["inputs"][0]["name"]: feed.astype(np.float32)})
    return out[mf["outputs"][0]["name"]]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(dataset.ROOT, "models")
    with open(os.path.join(DEV, "labels.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["class"] in svglabel.LABELS]
    files = [os.path.join(DEV, r["file"]) for r in rows]
    feats = dataset.features(files)
    rows = [r for r, p in zip(rows, files) if p in feats]
    recs = [{"id": r["file"][:-4], "file": os.path.join(DEV, r["file"])} for r in rows]
    x = np.array([feats[r["file"]]["values"] for r in recs])
    y = np.array([svglabel.LABELS.index(r["class"]) for r in rows])
    pred = run(root, "vectorize-classifier", x).argmax(axis=1)
    cm = np.zeros((4, 4), dtype=int)
    for a, b in zip(y, pred):
        cm[a, b] += 1
    report = {"images": len(recs), "classifier_accuracy": round(float(np.mean(pred == y)), 4),
              "classifier_confusion": cm.tolist()}

    binary = dataset.modeld_bin()
    keys, table = dataset.anchors()
    meas = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, enc in zip(keys, table):
            meas[k] = dataset.trace_dir(binary, recs, enc, tmp)
        enc_pred = run(root, "vectorize-params", x)
        got = {}
        for r, e in zip(recs, enc_pred):
            got.update(dataset.trace_dir(binary, [r], params.decode(e), tmp))
    ids = [r["id"] for r in recs if all(r["id"] in meas[k] for k in keys) and r["id"] in got]
    pos = {r["id"]: i for i, r in enumerate(recs)}
    xin = np.array([np.concatenate([x[pos[i]], v]) for k, v in zip(keys, table) for i in ids])
    truth = np.array([meas[k][i]["ssim"] for k in keys for i in ids])
    q = run(root, "vectorize-quality", xin)[:, 0]
    report["quality_ssim_mae"] = round(float(np.abs(q - truth).mean()), 4)
    report["quality_rows"] = int(len(truth))
    s_def = np.array([meas["preset:default"][i]["ssim"] for i in ids])
    b_def = np.array([meas["preset:default"][i]["bytes"] for i in ids])
    s_got = np.array([got[i]["ssim"] for i in ids])
    b_got = np.array([got[i]["bytes"] for i in ids])
    s_q = np.array([meas["preset:quality"][i]["ssim"] for i in ids])
    b_q = np.array([meas["preset:quality"][i]["bytes"] for i in ids])
    e_def = (1 - s_def).mean()
    report.update(
        params_mean_ssim_default=round(float(s_def.mean()), 4),
        params_mean_ssim_predicted=round(float(s_got.mean()), 4),
        params_error_reduction=round(float(1 - (1 - s_got).mean() / e_def), 4),
        params_within_3x_bytes=round(float(np.mean(b_got <= 3 * b_def)), 4),
        quality_preset_error_reduction=round(float(1 - (1 - s_q).mean() / e_def), 4),
        quality_preset_within_3x_bytes=round(float(np.mean(b_q <= 3 * b_def)), 4))
    out = os.path.join(dataset.ROOT, "build", "vectorize", "dev_eval.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
