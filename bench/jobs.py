"""bench/jobs.py - the job queue's throughput (issue 10 benchmark: "jobs per minute at
concurrency 1 and 2"), run by bench/jobs.sh.

Two measurements, each on a fresh server and data dir:
  1. queue overhead: N test jobs that do no work (--test-routes, steps=0) submitted one by one,
     then timed from the first submit to the last SUCCESS: jobs/s of the queue itself (submit,
     fsync'd input, claim, lease, result blob, row updates, polling);
  2. enhancement: M photos (a 256x256 crop-like pattern, x4 with the slim network, png out) with
     --workers 1 and then 2: jobs per minute, and the mean queue wait and run time per job from
     the jobs' own created/started/completed times.
Prints one line per measurement."""
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import serve  # noqa: E402
from PIL import Image

BIN, NPM, CONVERT = sys.argv[1], sys.argv[2], sys.argv[3]
N_EMPTY = int(os.environ.get("BENCH_EMPTY_JOBS", "200"))
N_ENH = int(os.environ.get("BENCH_ENHANCE_JOBS", "12"))


def start(args, models):
    d = tempfile.mkdtemp(prefix="modeld-bench-jobs-")
    os.makedirs(os.path.join(d, "models"))
    if models:
        subprocess.run(["/usr/bin/python3", CONVERT, "--npm", NPM, "--out", os.path.join(d, "models"),
                        "--only", "slim-x4"], check=True, capture_output=True)
    p, url, h = serve([BIN, "serve", "--port", "0", "--data-dir", d, "--access-log=false",
                       "--enhance-rate", "1000:1000", "--rate-admin", "100000:100000"] + args, d,
                      tries=1200)
    return p, url, h, d


def stop(p, d):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    subprocess.run(["rm", "-rf", d])


def wait_all(url, h, ids):
    infos = {}
    while len(infos) < len(ids):
        for jid in ids:
            if jid in infos:
                continue
            j = requests.get(url + "/api/v1/jobs/" + jid, headers=h).json()
            if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
                assert j["status"] == "SUCCESS", j
                infos[jid] = j
        time.sleep(0.02)
    return infos


def iso(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def empty_jobs():
    p, url, h, d = start(["--test-routes", "--workers", "2"], False)
    try:
        t0 = time.time()
        ids = [requests.post(url + "/api/test/jobs", params={"steps": 0}, data=b"x", headers=h).json()["job_id"]
               for _ in range(N_EMPTY)]
        wait_all(url, h, ids)
        dt = time.time() - t0
        print("queue overhead: %d empty jobs (submit + run + SUCCESS) in %.2f s: %.0f jobs/s" % (N_EMPTY, dt, N_EMPTY / dt))
    finally:
        stop(p, d)


def photo():
    img = Image.new("RGB", (256, 256))
    px = img.load()
    for y in range(256):
        for x in range(256):
            px[x, y] = ((x * 3 + y) % 256, (x * y) % 256, (255 - x + y * 2) % 256)
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def enhance_jobs(workers):
    p, url, h, d = start(["--workers", str(workers)], True)
    data = photo()
    try:
        t0 = time.time()
        ids = []
        for i in range(N_ENH):
            r = requests.post(url + "/api/v1/enhance", files={"file": ("p.png", data)},
                              data={"quality": "fast", "upscale": "4", "output_format": "png"}, headers=h)
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        infos = wait_all(url, h, ids)
        dt = time.time() - t0
        runs = [iso(j["completed_at"]) - iso(j["started_at"]) for j in infos.values()]
        print("enhance slim x4 256x256 -> 1024x1024 png, --workers %d: %d jobs in %.1f s = %.1f jobs/min "
              "(mean run %.1f s by the jobs' own times, 1 s resolution)" %
              (workers, N_ENH, dt, N_ENH * 60.0 / dt, sum(runs) / len(runs)))
    finally:
        stop(p, d)


empty_jobs()
if os.path.isdir(os.path.join(NPM, "@upscalerjs", "esrgan-slim")):
    enhance_jobs(1)
    enhance_jobs(2)
else:
    print("enhance: skipped (no @upscalerjs packages in %s)" % NPM)
