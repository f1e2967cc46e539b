#!/usr/bin/python3
"""budget.py - train models/budget: diminishing-returns response curves of five marketing
channels, for allocating a total budget, on the synthetic weekly marketing data of
synth.marketing (true curves A * (1 - exp(-x / S)) plus seasonality and noise; the process is
written there and in README.md; fixed seed).

Two fitted parts, both from the training split:
  1. the response curves, fitted jointly by least squares (scipy curve_fit):
         return = base + s1 * week_sin + s2 * week_cos + sum_c a_c * (1 - exp(-b_c * spend_c))
     Their parameters are in postprocessing.channels: the server's optimiser (marginal-return
     greedy, postprocess.allocate_budget) needs no model run at all;
  2. an XGBoost regression of the same return on the same columns (monotone increasing in every
     spend), the artefact: a what-if prediction for any allocation (the server reports it for
     the optimum as a cross-check).
Metrics on the test split: MAE and MAPE of both, and how far the fitted curve parameters are from
the generator's.

Usage: budget.py OUTROOT   (writes OUTROOT/budget/1/...)
"""
import os
import sys

import numpy as np
from scipy.optimize import curve_fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402
import synth  # noqa: E402

NAME, VERSION, SEED, WEEKS, REGIONS = "budget", "1", 20261215, 208, 12
CH = synth.CHANNELS
PARAMS = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.1, "subsample": 0.8,
          "min_child_weight": 5, "seed": SEED,
          "monotone_constraints": "(" + ",".join(["1"] * len(CH) + ["0", "0"]) + ")"}
ROUNDS = 150


def columns():
    c = pc.col
    cols = [c(ch, "number", "k EUR/week", f"spend on {ch} in the week", 0, 100000) for ch in CH]
    cols += [c("week_sin", "number", None, "sin(2 pi week_of_year / 52)", -1, 1),
             c("week_cos", "number", None, "cos(2 pi week_of_year / 52)", -1, 1)]
    return cols


def curve_model(x, *p):
    """x: (7, n) = spends then week_sin, week_cos; p = base, s1, s2, a_1, b_1, ..., a_5, b_5."""
    y = p[0] + p[1] * x[5] + p[2] * x[6]
    for k in range(len(CH)):
        y = y + p[3 + 2 * k] * (1 - np.exp(-p[4 + 2 * k] * x[k]))
    return y


def fit_curves(x, y):
    p0 = [float(np.mean(y)) / 2, 0.0, 0.0]
    lo, hi = [-np.inf] * 3, [np.inf] * 3
    for k in range(len(CH)):
        p0 += [float(np.std(y)), 1.0 / max(1e-3, float(np.median(x[:, k])))]
        lo += [0.0, 1e-6]
        hi += [np.inf, 10.0]
    p, _ = curve_fit(curve_model, x.T, y, p0=p0, bounds=(lo, hi), maxfev=20000)
    return p


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    data, truth = synth.marketing(WEEKS, REGIONS, SEED)
    x, y = pc.matrix(cols, data), truth["return"]
    itr, iva, ite = pc.split3(len(y), SEED)
    p = fit_curves(x[itr], y[itr])
    booster = pc.train_xgb(PARAMS, ROUNDS, x[itr], y[itr])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)
    m_x = pc.regression_metrics(y[ite], pc.predict(served, x[ite]).astype(np.float64))
    m_c = pc.regression_metrics(y[ite], curve_model(x[ite].T, *p))
    metrics = {"xgb_mae": m_x["mae"], "xgb_mape": m_x["mape"], "xgb_r2": m_x["r2"],
               "curves_mae": m_c["mae"], "curves_mape": m_c["mape"], "curves_r2": m_c["r2"]}
    channels = []
    for k, ch in enumerate(CH):
        a, b = float(f"{p[3 + 2 * k]:.6g}"), float(f"{p[4 + 2 * k]:.6g}")
        ta, ts = synth.TRUE_CURVES[ch]
        metrics[f"{ch}_a_rel_error"] = round(abs(a - ta) / ta, 4)
        metrics[f"{ch}_b_rel_error"] = round(abs(b - 1 / ts) * ts, 4)
        seen = x[itr, k]
        channels.append({"name": ch, "column_index": k, "a": a, "b": b,
                         "spend_seen": [pc._r(seen.min()), pc._r(np.quantile(seen, 0.99))]})
    metrics.update({"test_samples": int(len(ite)), "validation_samples": int(len(iva)),
                    "train_samples": int(len(itr))})
    post = {
        "task": "budget_allocation",
        "output": "the model: predicted weekly return (k EUR gross margin) of one allocation",
        "unit": "k EUR/week",
        "response_curve": "return_c(x) = a * (1 - exp(-b * x)), x = spend in k EUR/week: concave "
                          "and increasing, marginal return a * b * exp(-b * x)",
        "baseline": {"base": pc._r(p[0]), "week_sin": pc._r(p[1]), "week_cos": pc._r(p[2]),
                     "rule": "predicted total = base + week_sin * sin + week_cos * cos + sum_c "
                             "return_c(x_c); the baseline does not change the allocation"},
        "channels": channels,
        "optimiser": {
            "method": "marginal-return greedy on the concave curves",
            "input": "total (k EUR/week, > 0), per channel optional min (default 0) and max "
                     "(default total); channels not named are fixed at 0 when the caller lists "
                     "channels, all five are used otherwise",
            "feasibility": "0 <= min <= max per channel and sum(min) <= total <= sum(max), else "
                           "400 naming the field",
            "steps": "x_c = min_c, then the remainder R = total - sum(min) is spent in increments "
                     "d = R / steps (default steps 1000, at most 100000); each increment goes to "
                     "the channel with the largest gain return_c(x_c + d_c) - return_c(x_c), "
                     "d_c = min(d, max_c - x_c) > 0, ties to the lower column_index, until R is "
                     "spent (|R| <= 1e-9 * total)",
            "optimality": "on concave increasing curves, exact for the increment grid (checked "
                          "against brute force in tests/e2e/test_predict_postprocess.py)",
            "report": "per channel spend, predicted return_c, marginal return at the optimum; "
                      "the predicted total; the model's what-if prediction for the allocation "
                      "(week_sin, week_cos from the caller's week_of_year, default 0 and 1)",
        },
        "extrapolation": "spend_seen is [min, 99th percentile] of the training spends; an "
                         "allocation beyond it is extrapolated (say so in the answer)",
    }
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    # Drift of budget requests (src/pipelines/predict_drift.c) also compares the requested
    # total with the training weeks' total spend, a column the model itself does not take.
    total = x[itr][:, :len(CH)].sum(axis=1, keepdims=True)
    pre["training_distribution"]["features"]["total"] = pc.distribution(
        [{"name": "total", "type": "number"}], total)["features"]["total"]
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 3), "return")
    true = ", ".join(f"{ch}: a {a}, b {1 / s:.4g}" for ch, (a, s) in synth.TRUE_CURVES.items())
    card = {
        "data": f"Synthetic: synth.marketing({WEEKS} weeks, {REGIONS} regions, seed {SEED}), a "
                "documented process (training/predict/README.md): weekly spend on five channels "
                "varied around planned levels, return = baseline with yearly seasonality + "
                "saturating channel responses + noise (sd 6). Random 60/20/20 split.",
        "intended_use": "Split a marketing budget across channels to maximise the predicted "
                        "return, honouring per-channel minimums and maximums.",
        "limits": "Simulated responses: no carry-over (adstock) between weeks, no interactions "
                  "between channels. Beyond the spends seen in training the curves are "
                  "extrapolations.",
    }
    doc = pc.manifest(NAME, VERSION, "Marketing budget allocation: fitted diminishing-returns "
                      "curves per channel for the optimiser, and an XGBoost what-if model.",
                      len(cols), "return", 1, "Predicted weekly return (k EUR).", cols, pre,
                      post, samp, metrics, card, digest=pc.common.sha256(path),
                      training=pc.not_retrainable(
                          "the allocation comes from response curves fitted per channel "
                          "(postprocessing.channels), not from the booster: retraining the "
                          "booster alone would not change an answer"))
    pc.write(out, doc, [("Training", f"curves: scipy.optimize.curve_fit; xgboost {ROUNDS} "
                                     f"rounds, parameters {PARAMS}, one thread."),
                        ("Generator's true curves (a, b)", true)])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
