"""bench/retrain.py - how long POST /api/admin/retrain takes per retrainable model (issue 11 §4),
run by bench/retrain.sh.

On one fresh server (the shipped models, one worker): for each retrainable model, a stored
dataset of rows of its validation split (tests/fixtures/predict/retrain/<m>.csv: its held test
split would be left out whole as leakage) and, where the full public data
is in build/predict-data (churn: wa_churn.csv, pricing: diamonds.csv; `make models` extracts
them), a dataset of it; one retraining job each with the manifest's rounds. Prints per job the
rows, rounds, the booster's training time (train_seconds, as measured by the job) and the job's
wall time from submission to SUCCESS (reading, training, evaluating both versions on the test
split, writing and loading the new version), plus the metric of both versions.
Not a timed test: the numbers are for the report."""
import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import serve, wait_job  # noqa: E402

BIN, ROOT = sys.argv[1], sys.argv[2]
MODELS = ["churn", "profitability", "pricing", "revenue-leak"]
FULL = {"churn": "wa_churn.csv", "pricing": "diamonds.csv"}


def start():
    d = tempfile.mkdtemp(prefix="modeld-bench-retrain-")
    p, url, h = serve([BIN, "serve", "--port", "0", "--data-dir", os.path.join(d, "var"),
                       "--models-dir", os.path.join(ROOT, "models"), "--access-log=false",
                       "--workers", "1", "--rate-admin", "100000:100000"], d)
    return p, url, h, d


def full_csv(name):
    """The public data as the schema names it; R's NA becomes an empty (missing) cell."""
    path = os.path.join(ROOT, "build", "predict-data", name)
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for r in rows:
        w.writerow(["" if v == "NA" else v for v in r])
    return out.getvalue().encode()


def run(url, h, model, body, label):
    d = requests.post(url + "/api/admin/datasets", headers=h,
                      files={"file": (label, body, "text/csv")})
    assert d.status_code == 201, d.text
    t0 = time.time()
    r = requests.post(url + "/api/admin/retrain", headers=h,
                      json={"model": model, "data": d.json()["dataset_id"]})
    assert r.status_code == 202, r.text
    jid = r.json()["job_id"]
    j = wait_job(url, h, jid)
    wall = time.time() - t0
    assert j["status"] == "SUCCESS", j
    o = requests.get(url + "/api/v1/jobs/%s/result" % jid, headers=h).json()
    print(f"{model:14s} {label:22s} rows {o['train_rows']:6d} (+{o['validation_rows']} "
          f"validation, {o['test_overlap_rows']} test rows left out) rounds {o['rounds']:4d}  "
          f"train {o['train_seconds']:7.3f} s  job {wall:6.2f} s  {o['metric']} new "
          f"{o['new']:.4f} active {o['active']:.4f} -> {o['state']}", flush=True)


def main():
    p, url, h, d = start()
    try:
        for m in MODELS:
            run(url, h, m, open(os.path.join(ROOT, "tests", "fixtures", "predict", "retrain",
                                             m + ".csv"), "rb").read(), "validation rows")
            if m in FULL:
                body = full_csv(FULL[m])
                if body:
                    run(url, h, m, body, "full data (%s)" % FULL[m])
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
