#!/usr/bin/python3
"""profitability.py - train models/profitability: a client's expected margin (% of net revenue)
with a band (profitable / marginal / loss) and the drivers (TreeSHAP contributions), on the
synthetic client-profitability data of synth.profitability (the process is written there and in
README.md; fixed seed).

XGBoost regression (reg:squarederror). Metrics on the test split: MAE, RMSE, R^2 (percentage
points), MAPE over clients whose |margin| >= 5 points (MAPE is meaningless near 0), band accuracy.

Usage: profitability.py OUTROOT   (writes OUTROOT/profitability/1/...)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402
import synth  # noqa: E402

NAME, VERSION, SEED, ROWS = "profitability", "1", 20261212, 8000
PARAMS = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.9, "min_child_weight": 3, "seed": SEED}
ROUNDS = 200
BANDS = [{"name": "loss", "max": 0.0}, {"name": "marginal", "min": 0.0, "max": 15.0},
         {"name": "profitable", "min": 15.0}]


def columns():
    c = pc.col
    return [
        c("industry", "category", None, "client industry", values=synth.INDUSTRIES),
        c("region", "category", None, "client region", values=synth.REGIONS),
        c("contract_type", "category", None, "how the work is sold", values=synth.CONTRACTS),
        c("annual_revenue_k", "number", "k EUR/year", "gross revenue from the client", 0, 100000),
        c("hourly_rate", "number", "EUR/h", "average billed hourly rate", 1, 2000),
        c("discount_pct", "number", "%", "average discount granted", 0, 100),
        c("staff_seniority_years", "number", "years", "average seniority of assigned staff",
          0, 50),
        c("utilisation", "number", "share 0..1", "billable share of the hours logged", 0, 1),
        c("scope_changes", "integer", "count/year", "scope changes during the year", 0, 1000),
        c("tickets_per_month", "integer", "count/month", "support tickets", 0, 10000),
        c("payment_delay_days", "number", "days", "average days past the due date", 0, 730),
        c("tenure_months", "integer", "months", "length of the relationship", 0, 1200),
    ]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    data, target = synth.profitability(ROWS, SEED)
    x, y = pc.matrix(cols, data), target["margin_pct"]
    itr, iva, ite = pc.split3(len(y), SEED)
    booster = pc.train_xgb(PARAMS, ROUNDS, x[itr], y[itr])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)
    p = pc.predict(served, x[ite]).astype(np.float64)
    metrics = pc.regression_metrics(y[ite], p, mape_floor=5)
    bands_true = [pc.band_of(v, BANDS) for v in y[ite]]
    bands_pred = [pc.band_of(v, BANDS) for v in p]
    metrics["band_accuracy"] = round(float(np.mean([a == b for a, b in
                                                    zip(bands_true, bands_pred)])), 4)
    metrics.update({"test_samples": int(len(ite)), "validation_samples": int(len(iva)),
                    "train_samples": int(len(itr))})
    resid = y[iva] - pc.predict(served, x[iva])
    post = {
        "task": "regression",
        "output": "expected margin of the client, % of net revenue (after discounts)",
        "unit": "%",
        "bands": BANDS,
        "band_rule": "the first band with min <= margin < max (min, max optional)",
        "interval": {"rule": "margin + residual quantile: the validation split's residuals "
                             "(actual - predicted)",
                     "residual_quantiles": {str(q): pc._r(np.quantile(resid, q))
                                            for q in (0.05, 0.1, 0.5, 0.9, 0.95)}},
        "explanation": {
            "method": "xgboost_treeshap",
            "how": "XGBoost pred_contribs: one contribution per column (margin points) plus a "
                   "bias (the mean prediction), summing to the predicted margin",
            "reasons": "the top_k columns by |contribution|, with sign (+ raises the margin)",
            "mode": "abs",
            "top_k": 3,
            "samples": pc.contribution_samples(served, x, pc.complete_rows(x, ite, 2), cols),
        },
    }
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 3), "margin_pct")
    card = {
        "data": f"Synthetic: synth.profitability({ROWS}, seed {SEED}), a documented process "
                "(training/predict/README.md) for the clients of a services firm: revenue, "
                "rates, discounts, staffing, scope changes, support load, payment delays and "
                "tenure determine the margin, plus noise (sd 3 points). Random 60/20/20 split; "
                "metrics on the test split.",
        "intended_use": "Estimate a client's margin, band it, and show which attributes drive "
                        "it; a demo of regression with explanations.",
        "limits": "Trained on simulated data whose rules are known: it learns those rules, not "
                  "any real firm's economics. Retrain on your own client history (POST "
                  "/api/admin/retrain) before trusting the numbers.",
    }
    ntest = pc.write_test_split(out, cols, x, y, "margin_pct", ite)
    training = pc.training_section(PARAMS, ROUNDS, {"column": "margin_pct"}, "mae", ntest)
    doc = pc.manifest(NAME, VERSION, "Expected client margin (% of net revenue) with a band "
                      "and its drivers (XGBoost on a documented synthetic process).", len(cols),
                      "margin_pct", 1, "Predicted margin in % of net revenue.", cols, pre, post,
                      samp, metrics, card, digest=pc.common.sha256(path), training=training)
    pc.write(out, doc, [("Training", f"xgboost, {ROUNDS} rounds, parameters {PARAMS}, one "
                                     "thread.")])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
