"""pcommon.py - what the seven predict models (training/predict/*.py) share: the data
directory and its CSV reader, the input schema (columns, types, units, ranges, categories and
their encoding), the training distribution kept for drift, deterministic XGBoost training and
saving, validation samples, and the manifest + model card (through training/common.py).

Invariants:
  1. A column's position in `columns` is its index in the model's FP32 input row; a category is
     fed as the float index of its value in the column's "values" (encoding "index").
  2. Everything random takes its seed from the caller; XGBoost runs on one thread, so a script
     writes the same bytes on every run (training/README.md, "Reproducibility").
  3. Expected validation outputs come from the saved artefact reloaded into a fresh booster.
"""
import csv
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "training"))
import common  # noqa: E402

QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
DRIFT_BINS = 10


# ---- data ----

def data_dir():
    """build/predict-data, filled by extract.R (Rscript) the first time it is needed."""
    d = os.path.join(ROOT, "build", "predict-data")
    if not os.path.exists(os.path.join(d, "diamonds.csv")):
        subprocess.run(["Rscript", os.path.join(HERE, "extract.R"), d], check=True)
    return d


def read_csv(name):
    """The columns of data_dir()/name as {header: [str, ...]} (empty string = missing)."""
    with open(os.path.join(data_dir(), name), newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    return {h: [r[i] for r in body] for i, h in enumerate(head)}


def num(values):
    """Strings to float64, '' and 'NA' to NaN."""
    return np.array([float(v) if v not in ("", "NA") else np.nan for v in values])


def split3(n, seed, val=0.2, test=0.2):
    """A seeded random train / validation / test split of range(n), each part sorted."""
    perm = np.random.RandomState(seed).permutation(n)
    nt, nv = int(round(n * test)), int(round(n * val))
    return np.sort(perm[nt + nv:]), np.sort(perm[nt:nt + nv]), np.sort(perm[:nt])


# ---- columns and schema ----

def col(name, type_, unit, description, minimum=None, maximum=None, values=None, required=True):
    """One input column. type_: number | integer | category (values: the allowed labels)."""
    c = {"name": name, "type": type_, "unit": unit, "description": description,
         "required": required}
    if type_ == "category":
        c["values"] = list(values)
        c["encoding"] = "index"
    else:
        c["minimum"] = minimum
        c["maximum"] = maximum
    return c


def encode_category(column, labels):
    """Labels (strings) to float indices in column['values']; unknown labels are an error."""
    vals = column["values"]
    index = {v: i for i, v in enumerate(vals)}
    bad = sorted({v for v in labels if v not in index})
    if bad:
        raise ValueError(f"{column['name']}: labels {bad} not in {vals}")
    return np.array([index[v] for v in labels], dtype=np.float64)


def input_schema(columns):
    """The manifest's input_schema: every column with its index, in model-input order."""
    cols = []
    for i, c in enumerate(columns):
        d = {"index": i}
        d.update(c)
        cols.append(d)
    return {
        "columns": cols,
        "unknown_fields": "refused (400 naming the field)",
        "missing": "an optional column that is absent or null is fed as NaN (XGBoost's missing "
                   "value); a required one is a 400 naming the field",
        "category_encoding": "index: the position of the label in the column's values, fed as "
                             "a float (the label string is what callers send)",
        "range": "minimum and maximum are inclusive validity limits; a value outside is a 400 "
                 "naming the field. The training range is in preprocessing.training_distribution",
    }


def distribution(columns, x):
    """The training distribution of each column of x (rows = training rows), for drift (PSI over
    the histogram, KS against the quantiles). Numbers: DRIFT_BINS bins whose inner edges are the
    training deciles (duplicates dropped; the outer bins are open: (-inf, e1), [e_k, +inf));
    categories: the proportion of each value index. Missing values are counted apart."""
    out = {}
    for j, c in enumerate(columns):
        v = x[:, j]
        miss = float(np.mean(np.isnan(v)))
        v = v[~np.isnan(v)]
        if c["type"] == "category":
            counts = np.bincount(v.astype(int), minlength=len(c["values"]))
            out[c["name"]] = {"kind": "category", "missing": _r(miss),
                              "proportions": [_r(p) for p in counts / max(1, len(v))]}
            continue
        inner = np.unique(np.quantile(v, np.linspace(0, 1, DRIFT_BINS + 1)[1:-1]))
        idx = np.searchsorted(inner, v, side="right")
        counts = np.bincount(idx, minlength=len(inner) + 1)
        out[c["name"]] = {
            "kind": "number", "missing": _r(miss),
            "edges": [_r(e) for e in inner],
            "proportions": [_r(p) for p in counts / max(1, len(v))],
            "quantiles": {str(q): _r(np.quantile(v, q)) for q in QUANTILES},
            "mean": _r(np.mean(v)), "std": _r(np.std(v)),
            "min": _r(np.min(v)), "max": _r(np.max(v)),
        }
    return {"rule": "bins: value < edges[0] -> bin 0, edges[k-1] <= value < edges[k] -> bin k, "
                    "value >= edges[-1] -> last bin; categories by value index",
            "train_rows": int(x.shape[0]), "features": out}


def _r(v):
    """A float rounded to 6 significant digits (manifest numbers that are statistics)."""
    return float(f"{float(v):.6g}")


# ---- XGBoost ----

def train_xgb(params, rounds, x, y, weight=None):
    import xgboost as xgb
    p = dict(params)
    p.update({"nthread": 1, "tree_method": p.get("tree_method", "hist")})
    return xgb.train(p, xgb.DMatrix(x, label=y, weight=weight, missing=np.nan),
                     num_boost_round=rounds)


def save_and_reload(booster, out):
    """Save as XGBoost JSON (model.json) and reload into a fresh one-thread booster."""
    import xgboost as xgb
    path = os.path.join(out, "model.json")
    booster.save_model(path)
    return path, xgb.Booster(params={"nthread": 1}, model_file=path)


def predict(served, x):
    import xgboost as xgb
    return served.predict(xgb.DMatrix(np.asarray(x, dtype=np.float32), missing=np.nan))


def contributions(served, x):
    """XGBoost's TreeSHAP contributions (pred_contribs): one column per feature plus the bias,
    summing to the raw margin."""
    import xgboost as xgb
    return served.predict(xgb.DMatrix(np.asarray(x, dtype=np.float32), missing=np.nan),
                          pred_contribs=True)


def complete_rows(x, idx, k):
    """The first k rows of idx with no missing value (JSON has no NaN: samples must be whole)."""
    ok = [int(i) for i in idx if not np.isnan(x[i]).any()]
    return ok[:k]


def samples(served, x, rows, out_name, predict_fn=None):
    """Validation samples: each listed row alone, then all of them as one batch."""
    f = predict_fn or (lambda a: predict(served, a))
    res = []
    for sel in [[r] for r in rows] + [list(rows)]:
        xi = np.asarray(x[sel], dtype=np.float32)
        yi = np.asarray(f(xi), dtype=np.float32).reshape(len(sel), -1)
        res.append({"inputs": {"features": common.tensor(xi)},
                    "outputs": {out_name: common.tensor(yi)}})
    return res


def contribution_samples(served, x, rows, columns):
    """Expected TreeSHAP contributions for a few validation rows, so the server's own
    explanation code can be checked against XGBoost's."""
    c = contributions(served, np.asarray(x[rows], dtype=np.float32))
    return [{"features": common.tensor(x[r:r + 1])[0],
             "contributions": {col["name"]: _r(v) for col, v in zip(columns, c[k][:-1])},
             "bias": _r(c[k][-1])} for k, r in enumerate(rows)]


# ---- manifest ----

def manifest(name, version, description, n_features, out_name, out_width, out_desc, columns,
             pre, post, samples_, metrics, card, labels=None, digest="", training=None):
    doc = {
        "name": name, "version": version, "family": "predict", "runtime": "xgboost",
        "artefact": "model.json", "sha256": digest, "description": description,
        "required": False,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, n_features],
                    "description": "One row per prediction: the input_schema columns in index "
                                   "order, categories as the index of their label, NaN = "
                                   "missing."}],
        "outputs": [{"name": out_name, "datatype": "FP32", "shape": [-1, out_width],
                     "description": out_desc}],
    }
    if labels:
        doc["labels"] = labels
    doc.update({
        "input_schema": input_schema(columns),
        "preprocessing": pre,
        "postprocessing": post,
        "validation": {"tolerance": common.TOLERANCE, "samples": samples_},
        "metrics": metrics,
        "model_card": card,
    })
    if training is not None:
        doc["training"] = training
    return doc


# ---- retraining (the server's POST /api/admin/retrain reads these) ----

TEST_SPLIT = "test.csv"


def training_section(params, rounds, label, metric, test_rows):
    """The manifest's `training`: how the server retrains this model in process (libxgboost's
    C API) on a stored dataset or on feedback: the same objective, parameters and rounds as
    this script, the label column (label: {"column", "values"?: class labels in index order,
    "transform"?: "log"}), the metric compared on the held test split (`test_split`, written
    beside model.json by write_test_split) and its size."""
    p = {k: v for k, v in params.items() if k not in ("objective", "eval_metric")}
    p.setdefault("tree_method", "hist")  # what train_xgb uses
    return {"retrainable": True, "objective": params["objective"], "params": p,
            "rounds": rounds, "label": label, "metric": metric,
            "test_split": TEST_SPLIT, "test_rows": int(test_rows),
            "feature_encoding": "the input_schema columns by name, categories as their label "
                                "(encoded as the index in values), empty = missing",
            "min_feedback_rows": 50}


def not_retrainable(reason):
    """The `training` section of a model the server cannot retrain (POST /api/admin/retrain
    answers 422 naming `model` with this reason)."""
    return {"retrainable": False, "reason": reason}


def _cell(c, v):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if c is not None and c["type"] == "category":
        return c["values"][int(v)]
    if c is not None and c["type"] == "integer":
        return str(int(v))
    return format(float(v), ".9g")


def write_test_split(out, columns, x, labels, label_name, rows, max_rows=None, seed=0):
    """test.csv beside model.json: the held test rows (indices `rows`) with the schema's
    columns decoded as callers send them and the label column (labels[i], as found in the
    data), deterministic; at most max_rows of them (a seeded subsample, kept in order) so the
    committed file stays small. Returns the number of rows written."""
    rows = np.asarray(rows)
    if max_rows is not None and len(rows) > max_rows:
        keep = np.sort(np.random.RandomState(seed).permutation(len(rows))[:max_rows])
        rows = rows[keep]
    with open(os.path.join(out, TEST_SPLIT), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([c["name"] for c in columns] + [label_name])
        for i in rows:
            w.writerow([_cell(c, x[i][k]) for k, c in enumerate(columns)] +
                       [_cell(None, labels[i])])
    return len(rows)


def write(out, doc, extra):
    common.write_manifest(out, doc)
    common.write_card(out, doc, extra)


def band_of(value, bands):
    """The band a value falls in: bands = [{"name", "min"?, "max"?}], min inclusive, max
    exclusive; the first match."""
    for b in bands:
        if ("min" not in b or value >= b["min"]) and ("max" not in b or value < b["max"]):
            return b["name"]
    return None


def matrix(columns, data):
    """The model-input table of a {name: array} data set (categories encoded), float64."""
    return np.column_stack([encode_category(c, data[c["name"]]) if c["type"] == "category"
                            else np.asarray(data[c["name"]], dtype=np.float64)
                            for c in columns])


def regression_metrics(y, p, mape_floor=None):
    """MAE, RMSE, R^2 and MAPE (over |y| >= mape_floor when given: MAPE divides by y)."""
    from sklearn.metrics import r2_score
    m = {"mae": _r(np.mean(np.abs(y - p))), "rmse": _r(np.sqrt(np.mean((y - p) ** 2))),
         "r2": round(float(r2_score(y, p)), 4)}
    keep = np.abs(y) >= (mape_floor or 1e-12)
    m["mape" if mape_floor is None else f"mape_abs_y_ge_{mape_floor:g}"] = \
        _r(100 * np.mean(np.abs((y[keep] - p[keep]) / y[keep])))
    return m
