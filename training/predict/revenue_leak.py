#!/usr/bin/python3
"""revenue_leak.py - train models/revenue-leak: for a billing record (invoice line + the contract
terms behind it), the probability that revenue leaked, the pattern (unbilled hours, discount
beyond policy, expired rate, duplicate credit) and the estimated leaked amount, on the synthetic
billing data of synth.revenue_leak (injected leak patterns and legitimate look-alikes; the
process is written there and in README.md; fixed seed).

XGBoost multi:softprob over 5 classes (none + the 4 patterns). The server derives: leak
probability = 1 - p(none); pattern = the most probable leak class; estimated amount = the sum
over patterns of p(pattern) * the pattern's amount formula (postprocessing.patterns).
Metrics on the test split: AUC and F1 of leak vs none, pattern accuracy on true leaks, MAE of the
estimated amount on true leaks.

Usage: revenue_leak.py OUTROOT   (writes OUTROOT/revenue-leak/1/...)
"""
import os
import sys

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402
import postprocess  # noqa: E402
import synth  # noqa: E402

NAME, VERSION, SEED, ROWS = "revenue-leak", "1", 20261213, 30000
PARAMS = {"objective": "multi:softprob", "num_class": 5, "max_depth": 4, "eta": 0.15,
          "subsample": 0.8, "colsample_bytree": 0.9, "min_child_weight": 2, "seed": SEED,
          "eval_metric": "mlogloss"}
ROUNDS = 60
# The amount each pattern leaks, as the server computes it from the row's own columns (EUR):
# max(0, (value - minus) * prod(times) * scale / divide_by) (postprocess.pattern_amount).
PATTERNS = [
    {"label": "unbilled_hours", "class_index": 1,
     "amount": "(hours_logged - hours_billed) * list_rate",
     "terms": {"value": "hours_logged", "minus": "hours_billed", "times": ["list_rate"]}},
    {"label": "discount_beyond_policy", "class_index": 2,
     "amount": "(discount_pct - policy_max_discount_pct) / 100 * hours_billed * billed_rate",
     "terms": {"value": "discount_pct", "minus": "policy_max_discount_pct",
               "times": ["hours_billed", "billed_rate"], "scale": 0.01}},
    {"label": "expired_rate", "class_index": 3,
     "amount": "(list_rate - billed_rate) * hours_billed",
     "terms": {"value": "list_rate", "minus": "billed_rate", "times": ["hours_billed"]}},
    {"label": "duplicate_credit", "class_index": 4,
     "amount": "credit_amount / credit_count (the average credit; 0 without credits)",
     "terms": {"value": "credit_amount", "divide_by": "credit_count"}},
]


def columns():
    c = pc.col
    return [
        c("customer_tier", "category", None, "customer tier (sets the discount policy)",
          values=synth.TIERS),
        c("policy_max_discount_pct", "number", "%", "largest discount the policy allows", 0, 100),
        c("list_rate", "number", "EUR/h", "rate of the customer's current rate card", 0, 10000),
        c("billed_rate", "number", "EUR/h", "rate on the invoice", 0, 10000),
        c("rate_card_age_days", "integer", "days", "age of the rate card billed", 0, 10000),
        c("hours_logged", "number", "h", "hours on timesheets for the period", 0, 10000),
        c("hours_billed", "number", "h", "hours on the invoice", 0, 10000),
        c("writeoff_approved", "integer", "0 or 1", "1 if a write-off approval is on file", 0, 1),
        c("discount_pct", "number", "%", "discount on the invoice", 0, 100),
        c("exception_approved", "integer", "0 or 1",
          "1 if a discount exception approval is on file", 0, 1),
        c("credit_count", "integer", "count", "credit notes in the period", 0, 1000),
        c("credit_amount", "number", "EUR", "total of the credit notes", 0, 1e7),
        c("days_since_same_credit", "number", "days",
          "days since an earlier credit of the same amount (999: none)", 0, 999),
        c("invoice_amount", "number", "EUR", "invoice total after discount and credits",
          -1e7, 1e8),
    ]


def amounts(data):
    """The amount each pattern would have leaked, per row (n x 4), by the server's rule."""
    n = len(data["list_rate"])
    rows = [{k: float(v[i]) for k, v in data.items() if k != "customer_tier"} for i in range(n)]
    return np.array([[postprocess.pattern_amount(p["terms"], r) for p in PATTERNS]
                     for r in rows])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    data, truth = synth.revenue_leak(ROWS, SEED)
    x, y = pc.matrix(cols, data), truth["label"]
    itr, iva, ite = pc.split3(len(y), SEED)
    booster = pc.train_xgb(PARAMS, ROUNDS, x[itr], y[itr])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)
    prob = pc.predict(served, x[ite]).astype(np.float64)
    leak_p = 1 - prob[:, 0]
    thr = 0.5
    leak, true_leak = leak_p >= thr, y[ite] > 0
    est = np.sum(prob[:, 1:] * amounts(data)[ite], axis=1)
    pattern = 1 + np.argmax(prob[:, 1:], axis=1)
    metrics = {
        "roc_auc_leak": round(float(roc_auc_score(true_leak, leak_p)), 4),
        "f1_leak": round(float(f1_score(true_leak, leak)), 4),
        "pattern_accuracy_on_leaks": round(float(np.mean(pattern[true_leak] ==
                                                         y[ite][true_leak])), 4),
        "amount_mae_on_leaks_eur": pc._r(np.mean(np.abs(est[true_leak] -
                                                        truth["leaked_amount"][ite][true_leak]))),
        "amount_mape_on_leaks": pc._r(100 * np.mean(np.abs(
            est[true_leak] - truth["leaked_amount"][ite][true_leak]) /
            truth["leaked_amount"][ite][true_leak])),
        "leak_rate_test": round(float(true_leak.mean()), 4),
        "test_samples": int(len(ite)), "validation_samples": int(len(iva)),
        "train_samples": int(len(itr)),
    }
    post = {
        "task": "classification",
        "output": "probabilities of the 5 classes (labels order): none, then the 4 patterns",
        "leak_probability": "1 - probability[0]",
        "threshold": thr,
        "threshold_rule": "the record is flagged when leak_probability >= threshold",
        "pattern_rule": "the leak class with the largest probability (classes 1..4)",
        "patterns": PATTERNS,
        "estimated_amount": "sum over patterns of probability[class_index] * amount, EUR, "
                            "amount = max(0, (row[value] - row[minus]) * prod(row[times]) * "
                            "scale / row[divide_by]) from the pattern's terms (absent: minus 0, "
                            "times [], scale 1, no division; divide_by <= 0 gives 0)",
        "bands": [{"name": "low", "max": 0.2}, {"name": "review", "min": 0.2, "max": 0.5},
                  {"name": "likely", "min": 0.5}],
        "band_rule": "on leak_probability: the first band with min <= p < max",
        "explanation": {
            "method": "xgboost_treeshap",
            "how": "XGBoost pred_contribs for the flagged pattern's class (one contribution per "
                   "column plus a bias, in that class's margin)",
            "reasons": "the top_k columns with the largest positive contributions",
            "mode": "positive",
            "top_k": 3,
        },
    }
    leak_rows = [int(i) for i in ite if y[i] > 0][:2]
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 2) + leak_rows, "probability")
    card = {
        "data": f"Synthetic: synth.revenue_leak({ROWS}, seed {SEED}), a documented process "
                "(training/predict/README.md): billing records of a services firm with 3.5% "
                "leaks of each of four kinds injected, and legitimate look-alikes (approved "
                "write-offs, discount exceptions, grandfathered rates) whose approval is on file "
                "only 60% of the time. Random 60/20/20 split; metrics on the test split.",
        "intended_use": "Flag invoice lines for a billing review, say which leak pattern and "
                        "about how much money; rank the review queue by expected amount.",
        "limits": "Simulated data: the four patterns and their look-alikes are the only ones it "
                  "knows. Real leaks have other shapes; retrain on reviewed cases (feedback).",
    }
    # 2,500 of the 6,000 test rows keep the committed file small (about 250 KB).
    pattern = [synth.LEAK_PATTERNS[int(v)] for v in y]
    ntest = pc.write_test_split(out, cols, x, pattern, "pattern", ite, max_rows=2500, seed=SEED)
    training = pc.training_section(PARAMS, ROUNDS, {"column": "pattern",
                                                    "values": synth.LEAK_PATTERNS},
                                   "roc_auc_leak", ntest)
    doc = pc.manifest(NAME, VERSION, "Revenue leakage per billing record: leak probability, "
                      "pattern and estimated amount (XGBoost, 5 classes, synthetic billing data).",
                      len(cols), "probability", 5, "Class probabilities: none, unbilled_hours, "
                      "discount_beyond_policy, expired_rate, duplicate_credit.", cols, pre, post,
                      samp, metrics, card, labels=synth.LEAK_PATTERNS,
                      digest=pc.common.sha256(path), training=training)
    pc.write(out, doc, [("Training", f"xgboost, {ROUNDS} rounds, parameters {PARAMS}, one "
                                     "thread.")])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
