#!/usr/bin/python3
"""AI conversion benchmark (issue 9 "Benchmark"; not a timed test).

Starts `modeld serve` (MODELD_BIN, default build/release/modeld) with the models in
MODELS_DIR (default: the shipped models/), uploads every image of the corpus (default
../shared/corpus/dev, 512 px images first; LIMIT caps the count) and converts each with the default
preset (POST /api/convert) and with POST /api/convert-ai at tier 1, 2, 3 and auto under the
issue's budgets (0.1 / 0.5 / 2 s; auto 2 s; times BUDGET_SCALE) and target_quality TARGET
(default 1: no early stop); ONLY=tier1,tier2 runs only those modes. Prints per mode: mean SSIM, error reduction
(1 - SSIM) against the default preset, share within the size budget (3x the default's bytes),
median bytes, p50 / p95 time, fallback share, and the routing distribution of auto.
OLD_BIN=<another modeld> starts a second server and sends it the same requests, interleaved
request by request with the first, so that old and new meet the same load: one table each,
each measured against its own default preset, plus the median of the tier-1 stage times.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import requests

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MODELD_BIN", os.path.join(TOP, "build", "release", "modeld"))
CORPUS = os.environ.get("CORPUS", os.path.join(TOP, "..", "shared", "corpus", "dev"))
MODELS_DIR = os.environ.get("MODELS_DIR", os.path.join(TOP, "models"))
LIMIT = int(os.environ.get("LIMIT", "60"))
# target_quality 1: the search uses its whole budget (a reachable target would end it early).
TARGET = float(os.environ.get("TARGET", "1.0"))
MODES = [("tier1", {"tier": 1, "time_budget": 0.1}), ("tier2", {"tier": 2, "time_budget": 0.5}),
         ("tier3", {"tier": 3, "time_budget": 2.0}), ("auto", {"time_budget": 2.0})]
# BUDGET_SCALE multiplies the budgets: a large one (100) lets every tier run its whole plan, so
# the SSIMs measure the tiers' choices whatever the machine's load (not the goals' budgets).
SCALE = float(os.environ.get("BUDGET_SCALE", "1"))
ONLY = [m for m in os.environ.get("ONLY", "").split(",") if m]  # e.g. ONLY=tier1,tier2
MODES = [(m, dict(b, target_quality=TARGET, time_budget=b["time_budget"] * SCALE))
         for m, b in MODES if not ONLY or m in ONLY]


OLD_BIN = os.environ.get("OLD_BIN")


def start(binary=BIN):
    tmp = tempfile.mkdtemp(prefix="modeld-bench-ai-")
    err = open(os.path.join(tmp, "stderr"), "wb")
    p = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                          os.path.join(tmp, "var"), "--models-dir", MODELS_DIR,
                          "--request-timeout", "120s"],
                         stdout=subprocess.PIPE, stderr=err)
    key = None
    for _ in range(600):
        line = p.stdout.readline().decode()
        key = next((w for w in line.split() if w.startswith("mdk_")), None)
        if key:
            break
    for _ in range(600):
        for line in open(os.path.join(tmp, "stderr"), errors="replace"):
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "listening":
                return p, "http://127.0.0.1:%s" % j["port"], key
        time.sleep(0.05)
    raise SystemExit("server did not start")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class Server:
    """One modeld under test and what it answered."""

    def __init__(self, name, binary):
        self.name = name
        self.proc, self.url, key = start(binary)
        self.h = {"Authorization": "Bearer " + key}
        self.rows = {m: [] for m, _ in MODES}
        self.base = []
        self.routes = {}

    def run_image(self, f):
        """Upload f and convert it with the default preset; then yield once per mode."""
        up = requests.post(self.url + "/api/upload", headers=self.h,
                           files={"file": (os.path.basename(f), open(f, "rb"), "image/png")})
        fid = up.json()["file_id"]
        self.base.append(requests.post(self.url + "/api/convert", headers=self.h,
                                       json={"file_id": fid, "preset": "default"}).json())
        yield
        for m, body in MODES:
            t0 = time.time()
            r = requests.post(self.url + "/api/convert-ai", headers=self.h,
                              json=dict(body, file_id=fid))
            wall = time.time() - t0
            j = r.json() if r.status_code == 200 else None
            self.rows[m].append((j, wall))
            if m == "auto" and j:
                t = j["ai_metadata"]["routing"]["selected_tier"]
                self.routes[t] = self.routes.get(t, 0) + 1
            yield

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def report(srv, files):
    rows, base = srv.rows, srv.base
    if len(files) and OLD_BIN:
        print("== %s" % srv.name)
    if os.environ.get("PER_IMAGE"):
        for f, b, *rs in zip(files, base, *(rows[m] for m, _ in MODES)):
            print("%-44s default %.4f %7d  " % (os.path.basename(f), b["ssim"], b["svg_bytes"]) +
                  "  ".join("%s %.4f %7d" % (m, j["ssim"], j["svg_bytes"]) if j else "%s fail" % m
                            for (m, _), (j, _) in zip(MODES, rs)))
    err0 = statistics.mean(1 - b["ssim"] for b in base)
    print("%d images from %s; default preset: mean SSIM %.4f, median bytes %d" %
          (len(files), CORPUS, statistics.mean(b["ssim"] for b in base),
           statistics.median(b["svg_bytes"] for b in base)))
    print("err.red.%: 1 - mean(1 - SSIM) / mean(1 - SSIM of the default preset); per-img: the mean "
          "over images of each one's own reduction")
    print("%-6s %9s %10s %8s %9s %9s %8s %8s %9s %5s %6s" % (
        "mode", "meanSSIM", "err.red.%", "per-img", "in-budget", "med.bytes", "p50 s", "p95 s",
        "fallback", "fail", "convs"))
    for m, _ in MODES:
        ok = [(j, w, b) for (j, w), b in zip(rows[m], base) if j]
        if not ok:
            print("%-6s all failed" % m)
            continue
        err = statistics.mean(1 - j["ssim"] for j, _, _ in ok)
        inb = sum(j["svg_bytes"] <= 3 * b["svg_bytes"] for j, _, b in ok) / len(ok)
        times = [j["processing_time"] for j, _, _ in ok]
        fb = sum(j["ai_metadata"]["fallback_used"] for j, _, _ in ok) / len(ok)
        per = statistics.mean(1 - (1 - j["ssim"]) / max(1e-9, 1 - b["ssim"]) for j, _, b in ok)
        convs = statistics.mean(j["ai_metadata"].get("conversions", 0) for j, _, _ in ok)
        print("%-6s %9.4f %10.1f %8.1f %9.2f %9d %8.3f %8.3f %9.2f %5d %6.1f" % (
            m, statistics.mean(j["ssim"] for j, _, _ in ok), 100 * (1 - err / err0), 100 * per, inb,
            statistics.median(j["svg_bytes"] for j, _, _ in ok), pct(times, 0.5), pct(times, 0.95),
            fb, len(rows[m]) - len(ok), convs))
    t1 = [j for j, _ in rows.get("tier1", []) if j]
    if t1:
        stages = t1[0]["ai_metadata"].get("stage_times_ms", {})
        print("tier1 median stage ms:", ", ".join(
            "%s %.1f" % (k, statistics.median(j["ai_metadata"]["stage_times_ms"][k] for j in t1))
            for k in stages))
    print("auto routing:", ", ".join("tier %s: %d" % (t, n) for t, n in sorted(srv.routes.items())))


def main():
    files = sorted(glob.glob(os.path.join(CORPUS, "*.png")))
    files = [f for f in files if "corrupted" not in f and "non_image" not in f][:LIMIT]
    servers = [Server("new (MODELD_BIN)", BIN)]
    try:
        if OLD_BIN:
            servers.append(Server("old (OLD_BIN)", OLD_BIN))
        for f in files:
            # one request to each server in turn, so both meet the same load
            steps = [s.run_image(f) for s in servers]
            while steps:
                steps = [g for g in steps if next(g, StopIteration) is not StopIteration]
    finally:
        for s in servers:
            s.stop()
    for s in servers:
        report(s, files)


if __name__ == "__main__":
    sys.exit(main())
