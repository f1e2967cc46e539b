"""bench/bulk.py - a 1,000,000-row bulk prediction end to end (issue 11 benchmark: "a
1,000,000-row bulk CSV in <= 10 s"), run by bench/bulk.sh.

Writes a churn CSV of N rows (default 1,000,000) to a temporary file, starts `modeld serve`
(--workers 1) on a fresh data dir, uploads the file as a raw text/csv body streamed from disk,
waits for the job and prints one line per server binary given: the upload's wall time, the
job's run time (its own started/completed times), the server's peak RSS (VmHWM) and the result's
size. Extra server arguments come from BENCH_BULK_ARGS (e.g. "--predict-log-sample 0")."""
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import serve, wait_job  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_BULK_ROWS", "1000000"))
EXTRA = shlex.split(os.environ.get("BENCH_BULK_ARGS", ""))


def churn_csv(path, n):
    cases = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict", "expected.json")))
    base = next(c["features"] for c in cases["cases"] if c.get("model") == "churn")
    cols = list(base)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for i in range(n):
            r = dict(base)
            r["tenure"] = i % 72
            r["monthly_charges"] = 20.0 + (i % 100)
            r["total_charges"] = round(r["monthly_charges"] * (i % 72 + 1), 2)
            w.writerow([r[c] for c in cols])


def start(binary):
    d = tempfile.mkdtemp(prefix="modeld-bench-bulk-")
    p, url, h = serve([binary, "serve", "--port", "0", "--data-dir", os.path.join(d, "var"),
                       "--access-log=false", "--workers", "1",
                       "--models-dir", os.path.join(ROOT, "models")] + EXTRA, d, tries=1200)
    return p, url, h, d


def hwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) >> 10
    return -1


def iso(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def run(binary, path):
    p, url, h, d = start(binary)
    try:
        t0 = time.time()
        with open(path, "rb") as f:
            r = requests.post(url + "/api/churn/bulk", data=f,
                              headers=dict(h, **{"Content-Type": "text/csv"}))
        up = time.time() - t0
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]
        j = wait_job(url, h, jid)
        done = time.time() - t0
        assert j["status"] == "SUCCESS", j
        res = requests.get(url + "/api/v1/jobs/" + jid + "/result", headers=h, stream=True)
        size = sum(len(c) for c in res.iter_content(1 << 20))
        run_s = iso(j["completed_at"]) - iso(j["started_at"])
        print("%s: %d rows (%.0f MB) upload %.2f s, job run %.0f s (1 s resolution), submit to"
              " done %.1f s, peak RSS %d MB, result %.0f MB"
              % (binary, N, os.path.getsize(path) / 1e6, up, run_s, done, hwm(p.pid), size / 1e6),
              flush=True)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        subprocess.run(["rm", "-rf", d])


def main():
    with tempfile.TemporaryDirectory(prefix="modeld-bench-bulk-csv-") as t:
        path = os.path.join(t, "rows.csv")
        churn_csv(path, N)
        for b in sys.argv[1:]:
            run(b, path)


main()
