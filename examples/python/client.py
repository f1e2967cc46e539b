#!/usr/bin/env python3
"""client.py - a small Python client of modeld's business predictions (issue 11), with requests.

Use it as a library (ModeldClient) or run it: each step prints one JSON line of what it got.

    export MODELD_URL=http://127.0.0.1:8080 MODELD_KEY=mdk_...      # a write key (admin for all)
    python3 examples/python/client.py single batch bulk              # the default steps
    python3 examples/python/client.py bulk --callback-url http://127.0.0.1:9000/hook
    MODELD_ADMIN_KEY=mdk_... python3 examples/python/client.py schedule retrain \\
        --retrain-csv tests/fixtures/predict/retrain/churn.csv

Steps (model --model, default churn; rows from --csv, default examples/data/churn.csv):
  single    POST /api/{model} with the first row           -> prediction, reasons
  batch     POST /api/{model}/batch with every row         -> predictions + failed rows
  bulk      POST /api/{model}/bulk (multipart file, callback_url) -> job; waits for it
            (GET /api/v1/jobs/{id}) and reads its CSV result (GET /api/v1/jobs/{id}/result)
  schedule  POST /api/admin/datasets (the CSV) + POST /api/admin/schedule {model, cron,
            input: dataset id, callback_url?}, GET /api/admin/schedules, then
            DELETE /api/admin/schedules/{id} (unless --keep-schedule)
  retrain   POST /api/admin/datasets (--retrain-csv: the schema's columns + the label) +
            POST /api/admin/retrain {model, data: dataset id} -> job; waits for it and lists
            the model's versions (GET /api/models/{model})
The admin steps need an admin key (MODELD_ADMIN_KEY, default MODELD_KEY). A callback is POSTed
only to hosts on the server's --callback-allow-hosts; verify_signature() checks its header.
"""
import argparse
import csv
import hashlib
import hmac
import io
import json
import os
import sys
import time

import requests


class ModeldError(Exception):
    """A non-2xx answer: status, the error's code, field and message."""

    def __init__(self, status, body):
        err = (body or {}).get("error") or {}
        self.status, self.code = status, err.get("code")
        self.field, self.message = err.get("field"), err.get("message")
        super().__init__("HTTP %d %s (field %s): %s" % (status, self.code, self.field, self.message))


class ModeldClient:
    def __init__(self, url, key, admin_key=None, timeout=60):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.key, self.admin_key = key, admin_key or key
        self.timeout = timeout

    def _call(self, method, path, admin=False, expect=(200, 201, 202), **kw):
        headers = kw.pop("headers", {})
        headers["Authorization"] = "Bearer " + (self.admin_key if admin else self.key)
        r = self.s.request(method, self.url + path, headers=headers, timeout=self.timeout, **kw)
        if r.status_code not in expect:
            try:
                body = r.json()
            except ValueError:
                body = None
            raise ModeldError(r.status_code, body)
        return r

    # ---- models and predictions -------------------------------------------------------------
    def model(self, name):
        return self._call("GET", "/api/models/" + name).json()["model"]

    def predict(self, model, features, options=None):
        body = {"features": features}
        if options:
            body["options"] = options
        return self._call("POST", "/api/" + model, json=body).json()

    def batch(self, model, items, options=None):
        body = {"items": items}
        if options:
            body["options"] = options
        return self._call("POST", "/api/%s/batch" % model, json=body).json()

    # ---- bulk jobs --------------------------------------------------------------------------
    def bulk(self, model, csv_bytes, callback_url=None, filename="rows.csv"):
        data = {"callback_url": callback_url} if callback_url else None
        return self._call("POST", "/api/%s/bulk" % model, data=data,
                          files={"file": (filename, csv_bytes, "text/csv")}).json()

    def job(self, job_id, admin=False):
        return self._call("GET", "/api/v1/jobs/" + job_id, admin=admin).json()

    def wait_job(self, job_id, admin=False, timeout=600, every=0.2):
        end = time.time() + timeout
        while True:
            j = self.job(job_id, admin=admin)
            if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
                return j
            if time.time() > end:
                raise TimeoutError("job %s still %s" % (job_id, j["status"]))
            time.sleep(every)

    def job_result_csv(self, job_id):
        r = self._call("GET", "/api/v1/jobs/%s/result" % job_id)
        return list(csv.DictReader(io.StringIO(r.text)))

    # ---- datasets, schedules, retraining (admin) --------------------------------------------
    def upload_dataset(self, csv_bytes, name):
        r = self._call("POST", "/api/admin/datasets", admin=True, params={"name": name},
                       data=csv_bytes, headers={"Content-Type": "text/csv"}).json()
        return r

    def schedule(self, model, cron, input_id, callback_url=None):
        body = {"model": model, "cron": cron, "input": input_id}
        if callback_url:
            body["callback_url"] = callback_url
        return self._call("POST", "/api/admin/schedule", admin=True, json=body).json()

    def schedules(self):
        return self._call("GET", "/api/admin/schedules", admin=True).json()

    def delete_schedule(self, schedule_id):
        return self._call("DELETE", "/api/admin/schedules/" + schedule_id, admin=True).json()

    def retrain(self, model, data, params=None):
        body = {"model": model, "data": data}
        if params:
            body["params"] = params
        return self._call("POST", "/api/admin/retrain", admin=True, json=body).json()


def dataset_id(answer):
    """The id in POST /api/admin/datasets' answer."""
    return answer.get("dataset_id") or answer.get("id")


def verify_signature(secret, header, body, now=None, max_age=300):
    """True when X-Modeld-Signature (t=<unix s>,v1=<hex>) is HMAC-SHA256 of "<t>." + body with
    the server's MODELD_CALLBACK_SECRET, and t is recent."""
    f = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(secret.encode(), f["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    now = time.time() if now is None else now
    return hmac.compare_digest(mac, f["v1"]) and abs(now - int(f["t"])) <= max_age


def typed_rows(schema, text):
    """CSV rows as feature objects: cells of number / integer columns as numbers (a cell that is
    not one is sent as it is, so the server names the field), empty cells left out."""
    types = {c["name"]: c.get("type") for c in schema.get("columns", [])}
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        item = {}
        for k, v in row.items():
            if v is None or v == "":
                continue
            if types.get(k) in ("number", "integer"):
                try:
                    v = float(v)
                    v = int(v) if types[k] == "integer" and v.is_integer() else v
                except ValueError:
                    pass
            item[k] = v
        out.append(item)
    return out


# ---- the steps ---------------------------------------------------------------------------------

def step_single(c, a, rows):
    ans = c.predict(a.model, rows[0])
    return {"prediction": ans["prediction"], "prediction_id": ans["prediction_id"],
            "version": ans["version"],
            "reasons": (ans.get("explanation") or {}).get("reasons")}


def step_batch(c, a, rows):
    ans = c.batch(a.model, rows)
    return {"count": ans["count"], "failed": ans["failed"],
            "first": ans["predictions"][0]["prediction"] if ans["predictions"] else None}


def step_bulk(c, a, text):
    job = c.bulk(a.model, text.encode(), callback_url=a.callback_url,
                 filename=os.path.basename(a.csv))
    done = c.wait_job(job["job_id"])
    out = {"job_id": job["job_id"], "status": done["status"]}
    if done["status"] == "SUCCESS":
        res = c.job_result_csv(job["job_id"])
        out["rows"] = len(res)
        out["errors"] = [{"row": int(r["row"]), "field": r["error_field"], "error": r["error"]}
                         for r in res if r.get("error_code")]
    return out


def step_schedule(c, a, text):
    ds = c.upload_dataset(text.encode(), os.path.basename(a.csv))
    sc = c.schedule(a.model, a.cron, dataset_id(ds), callback_url=a.callback_url)
    listed = [s["schedule_id"] for s in c.schedules()["schedules"]]
    out = {"dataset_id": dataset_id(ds), "schedule_id": sc["schedule_id"],
           "next_run": sc["next_run"], "listed": sc["schedule_id"] in listed}
    if not a.keep_schedule:
        out["deleted"] = c.delete_schedule(sc["schedule_id"])["deleted"]
    return out


def step_retrain(c, a, _text):
    if not a.retrain_csv:
        raise SystemExit("retrain: give --retrain-csv (the schema's columns and the label column)")
    with open(a.retrain_csv, "rb") as f:
        ds = c.upload_dataset(f.read(), os.path.basename(a.retrain_csv))
    job = c.retrain(a.model, dataset_id(ds))
    done = c.wait_job(job["job_id"], admin=True)
    m = c.model(a.model)
    return {"dataset_id": dataset_id(ds), "job_id": job["job_id"], "status": done["status"],
            "error": done.get("error"), "active_version": m["active_version"],
            "versions": m["versions"]}


STEPS = {"single": step_single, "batch": step_batch, "bulk": step_bulk,
         "schedule": step_schedule, "retrain": step_retrain}
HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("steps", nargs="*", default=["single", "batch", "bulk"], choices=list(STEPS))
    p.add_argument("--url", default=os.environ.get("MODELD_URL", "http://127.0.0.1:8080"))
    p.add_argument("--key", default=os.environ.get("MODELD_KEY"))
    p.add_argument("--admin-key", default=os.environ.get("MODELD_ADMIN_KEY"))
    p.add_argument("--model", default="churn")
    p.add_argument("--csv", default=os.path.join(HERE, "..", "data", "churn.csv"))
    p.add_argument("--callback-url", default=os.environ.get("MODELD_CALLBACK_URL"))
    p.add_argument("--cron", default="0 3 * * *")
    p.add_argument("--keep-schedule", action="store_true")
    p.add_argument("--retrain-csv", default=os.environ.get("RETRAIN_CSV"))
    a = p.parse_args(argv)
    if not a.key:
        p.error("give --key or set MODELD_KEY")
    c = ModeldClient(a.url, a.key, a.admin_key)
    with open(a.csv, encoding="utf-8") as f:
        text = f.read()
    rows = typed_rows(c.model(a.model)["manifest"]["input_schema"], text)
    rc = 0
    for name in a.steps:
        try:
            arg = rows if name in ("single", "batch") else text
            out = {"step": name, "ok": True, **STEPS[name](c, a, arg)}
        except ModeldError as e:
            out = {"step": name, "ok": False, "status": e.status, "code": e.code,
                   "field": e.field, "message": e.message}
            rc = 1
        print(json.dumps(out), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
