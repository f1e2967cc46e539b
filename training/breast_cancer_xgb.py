#!/usr/bin/python3
"""breast_cancer_xgb.py - train models/breast-cancer-xgb: gradient-boosted trees (XGBoost,
binary:logistic) on scikit-learn's bundled Wisconsin diagnostic breast cancer data
(load_breast_cancer: 569 fine-needle-aspirate images described by 30 cell-nucleus features;
shipped inside python3-sklearn, nothing downloaded). The output is the probability that the
sample is malignant.

It is the shipped model of the "xgboost" runtime, so the registry serves both runtimes.
Deterministic: one thread, the exact tree method, fixed seed; the model is saved as XGBoost
JSON and the validation outputs come from that file reloaded into a fresh booster.

Usage: breast_cancer_xgb.py OUTROOT
  (writes OUTROOT/breast-cancer-xgb/1/{model.json,modeld.json,MODEL_CARD.md})
"""
import os
import sys

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

NAME, VERSION, SEED = "breast-cancer-xgb", "1", 20261207
PARAMS = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "subsample": 1.0,
          "tree_method": "exact", "nthread": 1, "seed": SEED % 2**31, "eval_metric": "logloss"}
ROUNDS = 60


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    np.random.seed(SEED)
    d = load_breast_cancer()
    x = d.data.astype(np.float32)
    y = (d.target == 0).astype(np.float32)  # sklearn: 0 = malignant; here 1 = malignant
    idx = np.arange(len(y))
    itr, ite = train_test_split(idx, test_size=0.25, random_state=SEED, stratify=y)
    booster = xgb.train(PARAMS, xgb.DMatrix(x[itr], label=y[itr]), num_boost_round=ROUNDS)

    out = common.model_dir(root, NAME, VERSION)
    path = os.path.join(out, "model.json")
    booster.save_model(path)
    served = xgb.Booster(params={"nthread": 1}, model_file=path)
    prob = served.predict(xgb.DMatrix(x[ite])).astype(np.float32)
    pred = (prob >= 0.5).astype(np.float32)
    metrics = {
        "accuracy": round(float(accuracy_score(y[ite], pred)), 4),
        "roc_auc": round(float(roc_auc_score(y[ite], prob)), 4),
        "f1_malignant": round(float(f1_score(y[ite], pred)), 4),
        "test_samples": int(len(ite)),
        "train_samples": int(len(itr)),
    }
    samples = []
    for i in range(3):
        xi = x[ite[i]:ite[i] + 1]
        yi = served.predict(xgb.DMatrix(xi)).astype(np.float32).reshape(1, 1)
        samples.append({"inputs": {"features": common.tensor(xi)},
                        "outputs": {"probability": common.tensor(yi)}})
    doc = manifest(common.sha256(path), metrics, samples, list(d.feature_names))
    common.write_manifest(out, doc)
    cm = confusion_matrix(y[ite], pred)
    common.write_card(out, doc, [
        ("Training", f"xgboost {xgb.__version__}, {ROUNDS} rounds, parameters "
                     f"{PARAMS}. Stratified 75/25 split (train_test_split, same seed)."),
        ("Confusion matrix (rows: true benign, malignant; columns: predicted)",
         common.matrix_block(cm))])
    print(f"{NAME}: {metrics} -> {path}", file=sys.stderr)


def manifest(digest, metrics, samples, names):
    return {
        "name": NAME, "version": VERSION, "family": "predict", "runtime": "xgboost",
        "artefact": "model.json", "sha256": digest,
        "description": "Probability that a breast mass is malignant, from 30 features of a "
                       "fine-needle aspirate (XGBoost trees on the Wisconsin diagnostic data).",
        "required": False,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 30],
                    "description": "The 30 features in input_schema order (raw units of the "
                                   "source data; NaN = missing)."}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1],
                     "description": "Probability of the class 'malignant'."}],
        "labels": ["malignant"],
        "input_schema": {"columns": [{"index": i, "name": n} for i, n in enumerate(names)]},
        "postprocessing": {"predicted_class": "malignant when probability >= 0.5, else benign"},
        "validation": {"tolerance": common.TOLERANCE, "samples": samples},
        "metrics": metrics,
        "model_card": {
            "data": "scikit-learn load_breast_cancer: the Wisconsin Diagnostic Breast Cancer "
                    "data (Street, Wolberg, Mangasarian 1993; UCI), 569 samples (212 malignant, "
                    "357 benign), 30 real-valued features computed from digitised images of "
                    "fine-needle aspirates, bundled with python3-sklearn. Stratified 75/25 "
                    f"train/test split, seed {SEED}; metrics are on the test split.",
            "intended_use": "A small real XGBoost model so the registry serves its second "
                            "runtime from `make run`; a demo of tabular prediction through the "
                            "Open Inference Protocol.",
            "limits": "569 samples from one hospital (University of Wisconsin) in the early "
                      "1990s, features from one "
                      "imaging and segmentation procedure: other sources are out of "
                      "distribution. A teaching data set: never use it for a diagnosis."},
    }


if __name__ == "__main__":
    main()
