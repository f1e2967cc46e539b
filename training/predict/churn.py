#!/usr/bin/python3
"""churn.py - train models/churn: the probability that a telecom customer leaves, with a risk
band and the reasons (TreeSHAP contributions), from modeldata::wa_churn (IBM Watson telco
customer churn, 7043 customers, real and public; extracted by extract.R).

Binary XGBoost (binary:logistic) on 19 columns; the decision threshold is the one that maximises
F1 on the validation split. Metrics (AUC, F1, accuracy, log loss) on the test split.

Usage: churn.py OUTROOT   (writes OUTROOT/churn/1/{model.json,modeld.json,MODEL_CARD.md})
"""
import os
import sys

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402

NAME, VERSION, SEED = "churn", "1", 20261211
PARAMS = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.8, "min_child_weight": 5, "seed": SEED, "eval_metric": "logloss"}
ROUNDS = 150
BANDS = [{"name": "low", "max": 0.3}, {"name": "medium", "min": 0.3, "max": 0.6},
         {"name": "high", "min": 0.6}]
YES_NO = ["No", "Yes"]
SERVICE = ["No", "No internet service", "Yes"]


def columns():
    c = pc.col
    flag = "0 or 1"
    return [
        c("female", "integer", flag, "1 if the customer is female", 0, 1),
        c("senior_citizen", "integer", flag, "1 if the customer is 65 or older", 0, 1),
        c("partner", "integer", flag, "1 if the customer has a partner", 0, 1),
        c("dependents", "integer", flag, "1 if the customer has dependents", 0, 1),
        c("tenure", "integer", "months", "months the customer has stayed", 0, 600),
        c("phone_service", "integer", flag, "1 if the customer has a phone service", 0, 1),
        c("multiple_lines", "category", None, "multiple phone lines",
          values=["No", "No phone service", "Yes"]),
        c("internet_service", "category", None, "internet service type",
          values=["DSL", "Fiber optic", "No"]),
        c("online_security", "category", None, "online security add-on", values=SERVICE),
        c("online_backup", "category", None, "online backup add-on", values=SERVICE),
        c("device_protection", "category", None, "device protection add-on", values=SERVICE),
        c("tech_support", "category", None, "tech support add-on", values=SERVICE),
        c("streaming_tv", "category", None, "streaming TV", values=SERVICE),
        c("streaming_movies", "category", None, "streaming movies", values=SERVICE),
        c("contract", "category", None, "contract term",
          values=["Month-to-month", "One year", "Two year"]),
        c("paperless_billing", "integer", flag, "1 if billed without paper", 0, 1),
        c("payment_method", "category", None, "how the customer pays",
          values=["Bank transfer (automatic)", "Credit card (automatic)", "Electronic check",
                  "Mailed check"]),
        c("monthly_charges", "number", "USD/month", "amount charged each month", 0, 1000),
        c("total_charges", "number", "USD", "total charged so far (absent for new customers)",
          0, 100000, required=False),
    ]


def load(cols):
    d = pc.read_csv("wa_churn.csv")
    x = np.column_stack([pc.encode_category(c, d[c["name"]]) if c["type"] == "category"
                         else pc.num(d[c["name"]]) for c in cols])
    y = (np.array(d["churn"]) == "Yes").astype(np.float32)
    return x, y


def best_threshold(y, p):
    grid = np.round(np.arange(0.1, 0.91, 0.01), 2)
    f1s = [f1_score(y, p >= t) for t in grid]
    return float(grid[int(np.argmax(f1s))])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    x, y = load(cols)
    itr, iva, ite = pc.split3(len(y), SEED)
    booster = pc.train_xgb(PARAMS, ROUNDS, x[itr], y[itr])
    out = pc.common.model_dir(root, NAME, VERSION)
    path, served = pc.save_and_reload(booster, out)
    thr = best_threshold(y[iva], pc.predict(served, x[iva]))
    p = pc.predict(served, x[ite])
    metrics = {
        "roc_auc": round(float(roc_auc_score(y[ite], p)), 4),
        "f1": round(float(f1_score(y[ite], p >= thr)), 4),
        "accuracy": round(float(accuracy_score(y[ite], p >= thr)), 4),
        "log_loss": round(float(log_loss(y[ite], p)), 4),
        "threshold": thr,
        "churn_rate_test": round(float(y[ite].mean()), 4),
        "test_samples": int(len(ite)), "validation_samples": int(len(iva)),
        "train_samples": int(len(itr)),
    }
    post = {
        "task": "classification",
        "output": "probability (0..1) that the customer churns (wa_churn churn == 'Yes')",
        "positive_label": "churn",
        "threshold": thr,
        "threshold_rule": "predicted churn when probability >= threshold (the F1-optimal "
                          "threshold on the validation split)",
        "bands": BANDS,
        "band_rule": "the first band with min <= probability < max (min, max optional)",
        "explanation": {
            "method": "xgboost_treeshap",
            "how": "XGBoost pred_contribs on the row: one contribution per input column plus a "
                   "bias, in log-odds, summing to logit(probability)",
            "reasons": "the top_k columns with the largest positive contributions (they push "
                       "towards churn), each with its value and contribution",
            "mode": "positive",
            "top_k": 3,
            "samples": pc.contribution_samples(served, x, pc.complete_rows(x, ite, 2), cols),
        },
    }
    pre = {"training_distribution": pc.distribution(cols, x[itr])}
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 3), "probability")
    card = {
        "data": "modeldata::wa_churn (R package modeldata, MIT; originally IBM Watson Analytics "
                "telco customer churn): 7043 customers of a telecom company, 19 attributes and "
                f"whether they left. Random 60/20/20 train/validation/test split, seed {SEED}; "
                "metrics are on the test split.",
        "intended_use": "Rank customers by churn risk for retention offers and explain each score "
                        "with its strongest reasons.",
        "limits": "One anonymised US telecom, one snapshot; churn rates and product lines "
                  "elsewhere differ. The contributions explain the model, not causes. "
                  "Probabilities are not recalibrated.",
    }
    labels = np.where(y == 1, "Yes", "No")
    ntest = pc.write_test_split(out, cols, x, labels, "churn", ite)
    training = pc.training_section(PARAMS, ROUNDS, {"column": "churn", "values": ["No", "Yes"]},
                                   "roc_auc", ntest)
    doc = pc.manifest(NAME, VERSION, "Probability that a telecom customer churns, with a risk band "
                      "and the reasons (XGBoost on wa_churn).", len(cols), "probability", 1,
                      "Probability of churn.", cols, pre, post, samp, metrics, card,
                      labels=["churn"], digest=pc.common.sha256(path), training=training)
    pc.write(out, doc, [("Training", f"xgboost, {ROUNDS} rounds, parameters {PARAMS}, one "
                                     "thread.")])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
