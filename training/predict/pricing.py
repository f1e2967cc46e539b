#!/usr/bin/python3
"""pricing.py - train models/pricing: a price-response model for diamonds (ggplot2::diamonds,
53,940 stones with their prices, real and public; extracted by extract.R).

Two fitted parts:
  1. the market value v of a stone: XGBoost regression of ln(price) on carat, cut, colour,
     clarity and the measurements; the model outputs ln(v);
  2. the willingness to pay around that value: ln(WTP) - ln(v) follows a logistic distribution
     whose location mu and scale s are fitted (maximum likelihood) on the validation split's
     residuals ln(price) - ln(v). The share of buyers who accept price p is then
         Q(p) = 1 / (1 + exp((ln p - ln v - mu) / s))
     (expected volume = quantity * Q(p)), and the price elasticity of volume at p is
         e(p) = d ln Q / d ln p = -(1 - Q(p)) / s.
The server evaluates revenue p * Q(p) (or margin (p - unit_cost) * Q(p)) on a price grid within
the caller's bounds and returns the best grid point with its elasticity (postprocessing.grid);
postprocess.py has the reference implementation.

Metrics on the test split: MAE and MAPE of the value in USD, R^2 of ln(price), and the
calibration of Q: the largest gap between the share of test stones whose actual price is >= p
and the mean predicted Q(p), over prices p = v * r for r in 0.5..1.5.

Usage: pricing.py OUTROOT   (writes OUTROOT/pricing/1/...)
"""
import os
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402

NAME, VERSION, SEED = "pricing", "1", 20261214
PARAMS = {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "subsample": 0.8,
          "colsample_bytree": 0.9, "min_child_weight": 3, "seed": SEED}
ROUNDS = 150
CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
COLOURS = ["D", "E", "F", "G", "H", "I", "J"]
CLARITIES = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]


def columns():
    c = pc.col
    return [
        c("carat", "number", "ct", "weight of the stone", 0.01, 10),
        c("cut", "category", None, "quality of the cut (worst to best)", values=CUTS),
        c("color", "category", None, "colour grade (D best to J worst)", values=COLOURS),
        c("clarity", "category", None, "clarity grade (worst to best)", values=CLARITIES),
        c("depth", "number", "%", "total depth: z / mean(x, y)", 0, 100),
        c("table", "number", "%", "width of the top relative to the widest point", 0, 100),
        c("x", "number", "mm", "length", 0, 20),
        c("y", "number", "mm", "width", 0, 60),
        c("z", "number", "mm", "depth", 0, 40),
    ]


def q_of(lnp, lnv, mu, s):
    return 1.0 / (1.0 + np.exp((lnp - lnv - mu) / s))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    d = pc.read_csv("diamonds.csv")
    data = {k: (v if k in ("cut", "color", "clarity") else pc.num(v)) for k, v in d.items()}
    x, price = pc.matrix(cols, data), pc.num(d["price"])
    y = np.log(price)
    itr, iva, ite = pc.split3(len(y), SEED)
    booster = pc.train_xgb(PARAMS, ROUNDS, x[itr], y[itr])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)
    resid = y[iva] - pc.predict(served, x[iva]).astype(np.float64)
    mu, s = (float(f"{v:.6g}") for v in stats.logistic.fit(resid))
    lnv = pc.predict(served, x[ite]).astype(np.float64)
    metrics = pc.regression_metrics(price[ite], np.exp(lnv))
    metrics["r2_log_price"] = pc.regression_metrics(y[ite], lnv)["r2"]
    gaps = [abs(np.mean(price[ite] >= np.exp(lnv) * r) - np.mean(q_of(np.log(r) + lnv, lnv, mu, s)))
            for r in np.linspace(0.5, 1.5, 21)]
    metrics["wtp_calibration_max_gap"] = round(float(np.max(gaps)), 4)
    metrics.update({"test_samples": int(len(ite)), "validation_samples": int(len(iva)),
                    "train_samples": int(len(itr))})
    post = {
        "task": "price_response",
        "output": "ln(v): the natural log of the stone's predicted market value v in USD",
        "value": "v = exp(output), USD",
        "willingness_to_pay": {"distribution": "logistic", "of": "ln(WTP) - ln(v)",
                               "location": mu, "scale": s},
        "volume": "Q(p) = 1 / (1 + exp((ln p - ln v - location) / scale)): the share of buyers "
                  "who accept price p; expected volume = quantity * Q(p) (quantity: the "
                  "caller's number of prospective buyers, default 1)",
        "objective": "revenue = p * quantity * Q(p); margin = (p - unit_cost) * quantity * Q(p) "
                     "when the caller gives unit_cost (then margin is maximised)",
        "elasticity": "e(p) = d ln Q / d ln p = -(1 - Q(p)) / scale, reported at the optimum",
        "grid": {"bounds": "the caller's min_price and max_price (0 < min_price < max_price); "
                           "default [0.5 v, 1.5 v]",
                 "points": "p_i = min_price + i * (max_price - min_price) / (steps - 1), "
                           "i = 0 .. steps - 1",
                 "default_steps": 101, "min_steps": 2, "max_steps": 1001,
                 "optimum": "the grid point with the largest objective; ties go to the lower "
                            "price"},
        "explanation": {
            "method": "xgboost_treeshap",
            "how": "XGBoost pred_contribs on ln(v): one contribution per column plus a bias; "
                   "exp(contribution) is the factor that column multiplies the value by",
            "reasons": "the top_k columns by |contribution|",
            "mode": "abs",
            "top_k": 3,
            "samples": pc.contribution_samples(served, x, pc.complete_rows(x, ite, 2), cols),
        },
    }
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 3), "log_value")
    card = {
        "data": "ggplot2::diamonds (R package ggplot2, MIT): 53,940 round diamonds with their "
                "prices (USD, about 2008) and the 4 Cs and measurements. Random 60/20/20 split, "
                f"seed {SEED}; the value model is trained on the training split, the "
                "willingness-to-pay distribution fitted on the validation split, metrics on the "
                "test split.",
        "intended_use": "Suggest a price for a stone from its grading: the expected volume and "
                        "revenue (or margin) over a price grid, the optimum, and the elasticity "
                        "there.",
        "limits": "Prices are listed prices, not transactions: the willingness-to-pay spread is "
                  "the price spread of comparable stones (an assumption: buyers are spread as "
                  "sellers' prices are). 2008 US prices; stones over 5 ct are rare in the data.",
    }
    # 3,000 of the 10,788 test rows keep the committed file small (about 180 KB).
    ntest = pc.write_test_split(out, cols, x, price, "price", ite, max_rows=3000, seed=SEED)
    training = pc.training_section(PARAMS, ROUNDS, {"column": "price", "transform": "log"},
                                   "mae", ntest)
    doc = pc.manifest(NAME, VERSION, "Price response for diamonds: predicted market value and a "
                      "fitted willingness-to-pay curve, for a recommended price over a grid.",
                      len(cols), "log_value", 1, "ln of the predicted market value (USD).", cols,
                      pre, post, samp, metrics, card, digest=pc.common.sha256(path),
                      training=training)
    pc.write(out, doc, [("Training", f"xgboost, {ROUNDS} rounds, parameters {PARAMS}, one "
                                     f"thread. Willingness to pay: logistic(location {mu}, "
                                     f"scale {s}) fitted by scipy.stats.logistic.fit.")])
    print(f"{NAME}: {metrics} mu={mu} s={s}", file=sys.stderr)


if __name__ == "__main__":
    main()
