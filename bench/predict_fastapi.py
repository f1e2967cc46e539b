"""predict_fastapi.py - the FastAPI + xgboost reference for bench/predict.sh: the shipped tree
models (models/<name>/<newest>/model.json) served the way a FastAPI user would, answering the same
routes with the same JSON as modeld's POST /api/{model} and POST /api/{model}/batch.

Work per request, the same as modeld's (src/pipelines/predict.c):
  1. the X-API-Key header checked (SHA-256 of the key, constant-time compare);
  2. the body parsed with json.loads (not pydantic models: the fastest plain way, so the
     comparison does not handicap FastAPI);
  3. each row checked against the manifest's input_schema exactly as modeld checks it (object,
     no unknown or empty field names, required fields, number / integer / finite / range,
     category labels turned into their index), a bad row named by its field;
  4. one xgboost prediction for all the good rows (Booster.inplace_predict, float32, NaN for
     missing, one thread per worker);
  5. the manifest's postprocessing, through training/predict/postprocess.py (the reference the
     C side is tested against): classification (binary or the revenue-leak patterns) or
     regression;
  6. when the manifest's explanation is xgboost_treeshap: xgboost's pred_contribs (exact
     TreeSHAP) on the good rows, the contributions of the answered group (the flagged pattern
     for revenue-leak), the bias and the top_k reasons with their values;
  7. a prediction_id (uuid4) and request_id per answer.
Not done here but done by modeld: logging the predictions to the store (predict_log_sample,
default 1), request logs and metrics. So the reference does a little less work than modeld.
Served by uvicorn, 2 workers, uvloop, httptools (bench/predict.sh starts it).
Env: BENCH_API_KEY, BENCH_MODELS_DIR, BENCH_PREDICT_MODELS (space-separated names).
"""
import glob
import hashlib
import hmac
import json
import math
import os
import sys
import uuid

import numpy as np
import xgboost as xgb
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "training", "predict"))
import postprocess  # noqa: E402  (the repository's reference postprocessing)

MODELS_DIR = os.environ.get("BENCH_MODELS_DIR", os.path.join(HERE, "..", "models"))
KEY_HASH = hashlib.sha256(os.environ.get("BENCH_API_KEY", "mdk_000000000000_benchkey").encode()).digest()
BATCH_MAX = 10000


class RowError(Exception):
    def __init__(self, code, field, message):
        super().__init__(message)
        self.code, self.field, self.message = code, field, message

    def json(self):
        return {"code": self.code, "field": self.field, "message": self.message}


def load(name):
    paths = glob.glob(os.path.join(MODELS_DIR, name, "*", "modeld.json"))
    path = max(paths, key=lambda p: int(os.path.basename(os.path.dirname(p))))
    with open(path) as f:
        mf = json.load(f)
    bst = xgb.Booster(model_file=os.path.join(os.path.dirname(path), mf["artefact"]))
    bst.set_param({"nthread": 1})
    cols = mf["input_schema"]["columns"]
    for c in cols:
        if c["type"] == "category":
            c["lookup"] = {v: float(k) for k, v in enumerate(c["values"])}
    return {"mf": mf, "bst": bst, "cols": cols, "index": {c["name"]: c for c in cols},
            "post": mf["postprocessing"]}


def column_value(c, v):
    """modeld's column_value (src/pipelines/predict.c): the same checks, the same messages."""
    name = c["name"]
    if v is None:
        if c.get("required"):
            raise RowError("missing_field", name, f"{name} is required")
        return math.nan
    if c["type"] == "category":
        if not isinstance(v, str):
            raise RowError("invalid_parameter", name, f"{name} must be a string (a label)")
        k = c["lookup"].get(v)
        if k is None:
            raise RowError("invalid_parameter", name, f'{name}: unknown label "{v[:64]}"')
        return k
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RowError("invalid_parameter", name, f"{name} must be a number")
    d = float(v)
    if not math.isfinite(d):
        raise RowError("invalid_parameter", name, f"{name} must be finite")
    if c["type"] == "integer" and d != math.floor(d):
        raise RowError("invalid_parameter", name, f"{name} must be an integer")
    if d < c.get("minimum", -math.inf) or d > c.get("maximum", math.inf):
        raise RowError("invalid_parameter", name,
                       f"{name} must be in [{c.get('minimum', -math.inf):g}, "
                       f"{c.get('maximum', math.inf):g}], got {d:g}")
    return d


def schema_row(m, features):
    if not isinstance(features, dict):
        raise RowError("invalid_parameter", "features", "features must be an object")
    for k in features:
        if not k:
            raise RowError("invalid_parameter", "features", "features has a field with an empty name")
        if k not in m["index"]:
            raise RowError("invalid_parameter", k, f"{k[:48]} is not a field of this model")
    return [column_value(c, features.get(c["name"])) for c in m["cols"]]


def postprocess_row(m, raw, row):
    post = m["post"]
    if post["task"] == "classification" and len(raw) > 1:
        named = {c["name"]: row[i] for i, c in enumerate(m["cols"])}
        pred = postprocess.leak(raw, named, post)
        group = next(p["class_index"] for p in post["patterns"] if p["label"] == pred["pattern"])
        return pred, group
    if post["task"] == "classification":
        return postprocess.classification(float(raw[0]), post), 0
    if post["task"] == "regression":
        return postprocess.regression(float(raw[0]), post), 0
    raise ValueError(f"task {post['task']} is not served by this reference")


def explanation(m, contribs, row):
    e = m["post"].get("explanation") or {}
    if e.get("method") != "xgboost_treeshap":
        return None
    cols = m["cols"]
    c = {col["name"]: float(contribs[i]) for i, col in enumerate(cols)}
    reasons = []
    for name, v in postprocess.top_reasons(c, e["top_k"], e.get("mode", "abs")):
        col = m["index"][name]
        x = row[col["index"]]
        val = None if math.isnan(x) else col["values"][int(x)] if col["type"] == "category" else x
        reasons.append({"feature": name, "value": val, "contribution": v})
    return {"method": "xgboost_treeshap", "contributions": c, "bias": float(contribs[len(cols)]),
            "reasons": reasons}


def predict_rows(m, feats):
    """Per item: (prediction, explanation) or a RowError."""
    out, good, rows = [None] * len(feats), [], []
    for i, f in enumerate(feats):
        try:
            rows.append(schema_row(m, f))
            good.append(i)
        except RowError as e:
            out[i] = e
    if not good:
        return out
    x = np.asarray(rows, dtype=np.float32)
    raw = m["bst"].inplace_predict(x, missing=np.nan)
    raw = raw.reshape(len(good), -1)
    want_expl = (m["post"].get("explanation") or {}).get("method") == "xgboost_treeshap"
    contribs = None
    if want_expl:
        contribs = m["bst"].predict(xgb.DMatrix(x, missing=np.nan), pred_contribs=True)
        if contribs.ndim == 2:
            contribs = contribs[:, None, :]
    for g, i in enumerate(good):
        pred, group = postprocess_row(m, raw[g], rows[g])
        expl = explanation(m, contribs[g][group], rows[g]) if want_expl else None
        out[i] = (pred, expl)
    return out


MODELS = {n: load(n) for n in os.environ.get("BENCH_PREDICT_MODELS", "churn profitability revenue-leak").split()}
app = FastAPI()


def error(status, code, field, msg):
    return JSONResponse({"error": {"code": code, "field": field, "message": msg}}, status_code=status)


async def parse(request, name):
    key = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(hashlib.sha256(key.encode()).digest(), KEY_HASH):
        return None, None, error(401, "unauthorized", None, "invalid API key")
    m = MODELS.get(name)
    if m is None:
        return None, None, error(404, "model_not_found", "model", f"{name} not found")
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        return None, None, error(400, "invalid_json", None, f"bad JSON: {e}")
    if not isinstance(body, dict):
        return None, None, error(400, "invalid_parameter", None, "the body must be an object")
    return m, body, None


def envelope(m, name):
    return {"model": name, "version": str(m["mf"]["version"])}


@app.get("/api/health")
async def health():
    return {"status": "ok"}


@app.post("/api/{name}")
async def predict(name: str, request: Request):
    m, body, err = await parse(request, name)
    if err:
        return err
    r = predict_rows(m, [body.get("features")])[0]
    if isinstance(r, RowError):
        return error(400, r.code, r.field, r.message)
    out = envelope(m, name)
    out.update(prediction=r[0], explanation=r[1], prediction_id=str(uuid.uuid4()),
               request_id=str(uuid.uuid4()))
    return out


@app.post("/api/{name}/batch")
async def batch(name: str, request: Request):
    m, body, err = await parse(request, name)
    if err:
        return err
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX:
        return error(400, "invalid_parameter", "items", f"items must hold 1 to {BATCH_MAX} rows")
    ok, bad = [], []
    for i, r in enumerate(predict_rows(m, items)):
        if isinstance(r, RowError):
            bad.append({"index": i, "error": r.json()})
        else:
            ok.append({"index": i, "prediction": r[0], "explanation": r[1],
                       "prediction_id": str(uuid.uuid4())})
    out = envelope(m, name)
    out.update(count=len(ok), predictions=ok, failed=bad, request_id=str(uuid.uuid4()))
    return out
