"""bench/serve_util.py - starting `modeld serve` for the Python benchmarks (bench/jobs.py,
bench/bulk.py, bench/retrain.py) and waiting for a job: the server writes stdout and stderr to files in its temporary
directory (a chatty log never blocks it on a pipe), binds port 0, and prints the bootstrap
admin key of a fresh data dir; serve() waits for both."""
import os
import subprocess
import time

import requests


def serve(cmd, d, tries=2400):
    """Start cmd (a `modeld serve ... --port 0` command line) with its output in the directory d
    and wait until it listens and has printed its admin key. Returns (process, base URL,
    Authorization header for that key)."""
    err = open(os.path.join(d, "stderr"), "wb")
    out = open(os.path.join(d, "stdout"), "wb")
    p = subprocess.Popen(cmd, stdout=out, stderr=err)
    port = key = None
    for _ in range(tries):
        text = open(os.path.join(d, "stderr")).read()
        if '"msg":"listening"' in text:
            port = int(text.split('"msg":"listening"')[1].split('"port":')[1].split(",")[0])
        for w in open(os.path.join(d, "stdout")).read().split():
            if w.startswith("mdk_"):
                key = w
        if port and key:
            break
        time.sleep(0.05)
    return p, "http://127.0.0.1:%d" % port, {"Authorization": "Bearer " + key}


def wait_job(url, h, jid):
    """Poll GET /api/v1/jobs/{jid} until the job ends; returns its last state (a dict)."""
    while True:
        j = requests.get(url + "/api/v1/jobs/" + jid, headers=h).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            return j
        time.sleep(0.05)
