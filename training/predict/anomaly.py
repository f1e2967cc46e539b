#!/usr/bin/python3
"""anomaly.py - train models/anomaly: an anomaly score and flag for a day of business metrics,
with the metrics most out of their usual range, on the synthetic daily metrics of
synth.business_metrics (an online shop with anomalies injected into 3% of days; the process is
written there and in README.md; fixed seed).

An isolation forest (scikit-learn IsolationForest, unsupervised: the injected labels are used only
to choose the flag threshold on the validation split and to measure the test split) exported as
an XGBoost JSON tree ensemble, so the server evaluates it with the xgboost runtime:
  * each isolation tree becomes one XGBoost regression tree over the same features, nodes
    renumbered breadth-first (XGBoost wants a node's right child right after its left one);
  * sklearn sends x left when x <= t (x as float32); XGBoost when x < s (float32): s is the
    float32 just above the largest float32 <= t, the same partition for every float32 input;
  * a leaf at depth d that held n training samples gets (d + c(n)) / T, T = number of trees,
    c the average path length of an unsuccessful BST search (c(1) = 0, c(2) = 1, c(n) =
    2 (ln(n - 1) + 0.5772156649) - 2 (n - 1) / n), base_score 0: the model's output is the mean
    path length E[h(x)] of sklearn's score_samples;
  * the server's score: s(x) = 2^(-E[h(x)] / c(max_samples)) (Liu et al. 2008; sklearn's
    -score_samples), in (0, 1], higher = more anomalous; flag when s >= threshold.
The export is checked: the XGBoost output reproduces sklearn's path lengths within 1e-4.

Metrics on the test split: precision at k (k = the number of true anomalies, and k = 10), ROC
AUC, and precision / recall / F1 of the flag.

Usage: anomaly.py OUTROOT   (writes OUTROOT/anomaly/1/...)
"""
import json
import os
import sys

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcommon as pc  # noqa: E402
import synth  # noqa: E402

NAME, VERSION, SEED, DAYS = "anomaly", "1", 20261217, 6000
TREES, MAX_SAMPLES = 100, 256
EULER = 0.5772156649015329


def columns():
    c = pc.col
    return [
        c("sessions", "integer", "visits/day", "web sessions", 0, 1e9),
        c("orders", "integer", "orders/day", "orders placed", 0, 1e9),
        c("revenue", "number", "EUR/day", "gross revenue", 0, 1e12),
        c("avg_order_value", "number", "EUR", "revenue / orders", 0, 1e7),
        c("conversion_rate", "number", "share", "orders / sessions", 0, 1e6),
        c("refund_rate", "number", "share 0..1", "share of orders refunded", 0, 1),
        c("discount_share", "number", "share 0..1", "share of revenue given as discounts", 0, 1),
        c("new_customer_share", "number", "share 0..1", "share of orders by new customers",
          0, 1),
        c("day_of_week", "category", None, "day of the week",
          values=["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                  "Sunday"]),
    ]


def c_len(n):
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + EULER) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def split_value(t):
    """The float32 s with (x <= t) == (x < s) for every float32 x."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return np.nextafter(f, np.float32(np.inf))


def export_tree(tree, tid, n_feat, n_trees):
    """One sklearn tree as an XGBoost 1.7 JSON tree (breadth-first node order)."""
    t = tree.tree_
    order, depth, k = [0], {0: 0}, 0
    while k < len(order):
        i = order[k]
        if t.children_left[i] != -1:
            for ch in (t.children_left[i], t.children_right[i]):
                depth[ch] = depth[i] + 1
                order.append(ch)
        k += 1
    new = {old: j for j, old in enumerate(order)}
    nn = len(order)
    L, R, P = [-1] * nn, [-1] * nn, [2147483647] * nn
    cond, feat, bw, hess = [0.0] * nn, [0] * nn, [0.0] * nn, [0.0] * nn
    for j, i in enumerate(order):
        hess[j] = float(t.n_node_samples[i])
        if t.children_left[i] != -1:
            L[j], R[j] = new[t.children_left[i]], new[t.children_right[i]]
            P[L[j]] = P[R[j]] = j
            feat[j] = int(t.feature[i])
            cond[j] = float(split_value(t.threshold[i]))
        else:
            v = float(np.float32((depth[i] + c_len([t.n_node_samples[i]])[0]) / n_trees))
            cond[j] = bw[j] = v
    return {"base_weights": bw, "categories": [], "categories_nodes": [],
            "categories_segments": [], "categories_sizes": [], "default_left": [1] * nn,
            "id": tid, "left_children": L, "loss_changes": [0.0] * nn, "parents": P,
            "right_children": R, "split_conditions": cond, "split_indices": feat,
            "split_type": [0] * nn, "sum_hessian": hess,
            "tree_param": {"num_deleted": "0", "num_feature": str(n_feat),
                           "num_nodes": str(nn), "size_leaf_vector": "0"}}


def export(forest, x_template, path):
    """Write the forest as XGBoost JSON: the learner of a 1-round booster trained on the same
    columns (so every field is XGBoost's own), its trees replaced."""
    import xgboost as xgb
    b = pc.train_xgb({"objective": "reg:squarederror", "base_score": 0.0, "max_depth": 1},
                     1, x_template, np.zeros(len(x_template)))
    doc = json.loads(b.save_raw("json"))
    n_feat = x_template.shape[1]
    model = doc["learner"]["gradient_booster"]["model"]
    model["trees"] = [export_tree(e, k, n_feat, len(forest.estimators_))
                      for k, e in enumerate(forest.estimators_)]
    model["tree_info"] = [0] * len(model["trees"])
    model["gbtree_model_param"]["num_trees"] = str(len(model["trees"]))
    doc["learner"]["attributes"] = {}
    doc["learner"]["learner_model_param"]["base_score"] = "0E0"
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    return xgb.Booster(params={"nthread": 1}, model_file=path)


def precision_at(k, y, s):
    top = np.argsort(-s, kind="stable")[:k]
    return round(float(np.mean(y[top])), 4)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "models"
    cols = columns()
    data, truth = synth.business_metrics(DAYS, SEED)
    data["day_of_week"] = np.array(cols[-1]["values"])[data["day_of_week"].astype(int)]
    x, y = pc.matrix(cols, data), truth["anomaly"]
    itr, iva, ite = pc.split3(len(y), SEED)
    forest = IsolationForest(n_estimators=TREES, max_samples=MAX_SAMPLES, random_state=SEED % 2**31)
    forest.fit(x[itr].astype(np.float32))
    out = pc.common.model_dir(root, NAME, VERSION)
    path = os.path.join(out, "model.json")
    served = export(forest, x[itr], path)
    cmax = float(c_len([MAX_SAMPLES])[0])
    eh = pc.predict(served, x).astype(np.float64)
    want = -forest.score_samples(x.astype(np.float32))
    got = 2.0 ** (-eh / cmax)
    assert np.max(np.abs(got - want)) < 1e-4, np.max(np.abs(got - want))
    sv, st = got[iva], got[ite]
    grid = np.round(np.arange(0.4, 0.85, 0.005), 3)
    thr = float(grid[int(np.argmax([f1_score(y[iva], sv >= g) for g in grid]))])
    k = int(y[ite].sum())
    metrics = {
        "precision_at_k": precision_at(k, y[ite], st), "k": k,
        "precision_at_10": precision_at(10, y[ite], st),
        "roc_auc": round(float(roc_auc_score(y[ite], st)), 4),
        "precision": round(float(precision_score(y[ite], st >= thr)), 4),
        "recall": round(float(recall_score(y[ite], st >= thr)), 4),
        "f1": round(float(f1_score(y[ite], st >= thr)), 4),
        "threshold": thr,
        "sklearn_export_max_score_diff": float(f"{np.max(np.abs(got - want)):.2g}"),
        "test_samples": int(len(ite)), "validation_samples": int(len(iva)),
        "train_samples": int(len(itr)),
    }
    xtr = x[itr]
    ranges = {}
    for j, c in enumerate(cols):
        if c["type"] == "category":
            continue
        v = xtr[:, j]
        med = float(np.median(v))
        scale = 1.4826 * float(np.median(np.abs(v - med)))
        ranges[c["name"]] = {"median": pc._r(med), "scale": pc._r(scale),
                             "p01": pc._r(np.quantile(v, 0.01)),
                             "p99": pc._r(np.quantile(v, 0.99))}
    post = {
        "task": "anomaly",
        "output": "E[h(x)]: the mean isolation path length of the row over the forest's trees",
        "score": "s = 2^(-output / c_max_samples), in (0, 1]; about 0.5 and below is usual, "
                 "near 1 is anomalous (Liu, Ting, Zhou 2008; scikit-learn's -score_samples)",
        "c_max_samples": float(f"{cmax:.10g}"), "max_samples": MAX_SAMPLES, "trees": TREES,
        "threshold": thr,
        "flag_rule": "anomalous when s >= threshold (F1-optimal on the validation split)",
        "explanation": {
            "method": "robust_z",
            "how": "per numeric column z = |x - median| / scale (scale = 1.4826 * the median "
                   "absolute deviation on the training split; a scale of 0 counts as the "
                   "smallest positive one); the columns with z > min_z, largest first, at most "
                   "top_k, each with its value, usual range [p01, p99] and z",
            "min_z": 3.0, "top_k": 3,
            "ranges": ranges,
        },
    }
    pre = {"training_distribution": pc.distribution(cols, xtr)}
    anomalous = [int(ite[np.argmax(np.where(y[ite] == 1, st, -1.0))])]  # the clearest one
    samp = pc.samples(served, x, pc.complete_rows(x, ite, 2) + anomalous, "path_length")
    card = {
        "data": f"Synthetic: synth.business_metrics({DAYS} days, seed {SEED}), a documented "
                "process (training/predict/README.md): daily sessions, orders, revenue, rates "
                "and shares of an online shop with weekly seasonality, and 3% of days given one "
                "of five anomalies (revenue spike, orders drop, refund surge, tracking outage, "
                "discount abuse). Random 60/20/20 split; the forest never sees the labels.",
        "intended_use": "Score each day's metrics and flag unusual days for a look, naming the "
                        "metrics furthest from their usual range.",
        "limits": "It knows one simulated shop's usual: retrain on your own history. "
                  "Anomalies that keep every metric inside its usual range and only break a "
                  "rarer relation are hard for it; trends are not modelled (the level is "
                  "stationary).",
    }
    doc = pc.manifest(NAME, VERSION, "Anomaly score and flag for daily business metrics "
                      "(an isolation forest served as XGBoost trees), with the metrics most out "
                      "of range.", len(cols), "path_length", 1,
                      "Mean isolation path length E[h(x)] (lower = more anomalous).", cols, pre,
                      post, samp, metrics, card, digest=pc.common.sha256(path),
                      training=pc.not_retrainable(
                          "an isolation forest (scikit-learn) exported as trees, not a booster "
                          "libxgboost can train; training/predict/anomaly.py rebuilds it"))
    pc.write(out, doc, [("Training", f"scikit-learn IsolationForest(n_estimators={TREES}, "
                                     f"max_samples={MAX_SAMPLES}, random_state={SEED % 2**31}) "
                                     "exported to XGBoost JSON (anomaly.py, export).")])
    print(f"{NAME}: {metrics}", file=sys.stderr)


if __name__ == "__main__":
    main()
