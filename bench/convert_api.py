"""Benchmark of the conversion API (issue 4), driven by bench/convert_api.sh.

For every good image of the dev corpus: POST /api/upload then POST /api/convert, first one
request at a time (concurrency 1), then from 16 threads (concurrency 16), each run on a fresh
server so that no answer comes from the cache. Prints per size class (longest side) the p50/p99
latency of upload, convert and the pair, the throughput, and the API overhead:
  - in-server: the server's own duration of the request (its access log) minus the
    processing_time it reports (routing, auth, JSON, store reads, the result write), and
  - vs the library: convert latency minus the time `modeld vectorize --json -j1` takes for the
    same image and parameters (decode + vec_convert, the same call).
Then the cached path: the same conversion repeated, p50/p99 of X-Cache: HIT answers.

usage: convert_api.py BIN CORPUS_DIR OUT_DIR
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

BIN, CORPUS, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
BAD = {"corrupted_magic_garbage.png", "corrupted_truncated.png", "non_image_text.png"}
CLASSES = [("<=128", 128), ("<=256", 256), ("<=512", 512), (">512", 1 << 30)]


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def images():
    out = []
    with open(os.path.join(CORPUS, "labels.csv")) as f:
        next(f)
        for line in f:
            name, _cls, _src, w, h = line.strip().split(",")
            if name not in BAD:
                out.append((name, max(int(w), int(h))))
    return out


def size_class(side):
    return next(label for label, top in CLASSES if side <= top)


class Server:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="modeld-bench-")
        env = dict(os.environ, MODELD_CONVERT_CACHE_ENTRIES="4096")
        self.err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = subprocess.Popen([BIN, "serve", "--port", "0", "--data-dir", os.path.join(self.tmp, "var"),
                                      "--rate-admin", "100000:100000",
                                      "--request-timeout", "600s"],
                                     stdout=subprocess.PIPE, stderr=self.err, env=env, text=True)
        self.key = None
        for line in self.proc.stdout:
            m = re.search(r"(mdk_\S+)", line)
            if m:
                self.key = m.group(1)
                break
        self.url = None
        for _ in range(600):
            text = open(os.path.join(self.tmp, "stderr")).read()
            m = re.search(r'"msg":"listening".*"port":(\d+)', text)
            if m:
                self.url = "http://127.0.0.1:%s" % m.group(1)
                break
            time.sleep(0.05)
        assert self.key and self.url, "server did not start"

    def stop(self):
        """Stop the server; returns {request_id: duration_ms} from its access log."""
        self.proc.terminate()
        self.proc.wait(timeout=60)
        durations = {}
        with open(os.path.join(self.tmp, "stderr")) as f:
            for line in f:
                if '"msg":"request"' in line:
                    j = json.loads(line)
                    durations[j["request_id"]] = j["duration_ms"]
        shutil.rmtree(self.tmp, ignore_errors=True)
        return durations


_local = threading.local()


def session(key):
    """One keep-alive session per thread and server key."""
    if not hasattr(_local, "s"):
        _local.s = {}
    if key not in _local.s:
        _local.s[key] = requests.Session()
        _local.s[key].headers["Authorization"] = "Bearer " + key
    return _local.s[key]


def one(srv, name, converter="vtracer"):
    s = session(srv.key)
    with open(os.path.join(CORPUS, name), "rb") as f:
        data = f.read()
    t0 = time.perf_counter()
    r = s.post(srv.url + "/api/upload", files={"file": (name, data, "image/png")}, timeout=600)
    t1 = time.perf_counter()
    assert r.status_code == 200, r.text
    r2 = s.post(srv.url + "/api/convert", json={"file_id": r.json()["file_id"], "converter": converter}, timeout=600)
    t2 = time.perf_counter()
    assert r2.status_code == 200 and r2.headers["X-Cache"] == "MISS", r2.text
    j = r2.json()
    return {"name": name, "upload_ms": (t1 - t0) * 1e3, "convert_ms": (t2 - t1) * 1e3, "pair_ms": (t2 - t0) * 1e3,
            "server_ms": j["processing_time"] * 1e3, "file_id": r.json()["file_id"],
            "request_id": r2.headers["X-Request-ID"]}


def run(conc, imgs):
    srv = Server()
    try:
        # One warm-up request so that connection set-up and first-use costs are not measured.
        one(srv, "simple_geometric_03.png", converter="potrace")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as ex:
            rows = list(ex.map(lambda n: one(srv, n), [n for n, _ in imgs]))
        wall = time.perf_counter() - t0
        cached = cached_latency(srv, rows[:8]) if conc == 16 else None
    finally:
        durations = srv.stop()
    for r in rows:
        r["handled_ms"] = durations.get(r["request_id"], float("nan"))
    return rows, wall, cached


def cached_latency(srv, rows, rounds=125):
    s = session(srv.key)
    lat = []
    for _ in range(rounds):
        for row in rows:
            t0 = time.perf_counter()
            r = s.post(srv.url + "/api/convert", json={"file_id": row["file_id"], "converter": "vtracer"}, timeout=60)
            lat.append((time.perf_counter() - t0) * 1e3)
            assert r.status_code == 200 and r.headers["X-Cache"] == "HIT"
    return lat


def library_ms(imgs):
    """decode + vec_convert per image from the CLI (same parameters as the API's default preset)."""
    src = os.path.join(OUT, "corpus")
    os.makedirs(src, exist_ok=True)
    for n, _ in imgs:
        shutil.copy(os.path.join(CORPUS, n), src)
    p = subprocess.run([BIN, "vectorize", src, "-o", os.path.join(OUT, "svg"), "-j", "1", "--preset", "default",
                        "--json"], capture_output=True, text=True, timeout=3600)
    data = json.loads(p.stdout)
    files = data["files"] if isinstance(data, dict) else data
    return {os.path.basename(f["file"]): f["ms"] for f in files if f.get("ok")}


def report(title, rows, wall, lib):
    print("\n== %s: %d images, %.1f s wall, %.2f images/s (upload + convert)" % (title, len(rows), wall, len(rows) / wall))
    print("%-7s %4s %21s %21s %21s %19s %19s" % ("size", "n", "upload p50/p99 ms", "convert p50/p99 ms",
                                               "pair p50/p99 ms", "in-server ovh p50", "vs library p50"))
    groups = [(label, [r for r in rows if size_class(r["side"]) == label]) for label, _ in CLASSES] + [("all", rows)]
    for label, rs in groups:
        if not rs:
            continue
        ovh = [r["handled_ms"] - r["server_ms"] for r in rs]
        vs = [r["convert_ms"] - lib[r["name"]] for r in rs if r["name"] in lib]
        print("%-7s %4d %10.1f/%-10.1f %10.1f/%-10.1f %10.1f/%-10.1f %19.2f %19.2f" % (
            label, len(rs), pct([r["upload_ms"] for r in rs], 50), pct([r["upload_ms"] for r in rs], 99),
            pct([r["convert_ms"] for r in rs], 50), pct([r["convert_ms"] for r in rs], 99),
            pct([r["pair_ms"] for r in rs], 50), pct([r["pair_ms"] for r in rs], 99), pct(ovh, 50), pct(vs, 50)))


def main():
    os.makedirs(OUT, exist_ok=True)
    imgs = images()
    side = dict(imgs)
    print("library: modeld vectorize -j1 on %d images ..." % len(imgs), file=sys.stderr)
    lib = library_ms(imgs)
    results = {}
    for conc in (1, 16):
        print("API at concurrency %d ..." % conc, file=sys.stderr)
        rows, wall, cached = run(conc, imgs)
        for r in rows:
            r["side"] = side[r["name"]]
        report("concurrency %d" % conc, rows, wall, lib)
        results[conc] = {"rows": rows, "wall_s": wall}
        if cached:
            print("\n== cached convert (X-Cache: HIT), %d requests, one client: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
                  % (len(cached), pct(cached, 50), pct(cached, 99), max(cached)))
            results["cached_ms"] = {"p50": pct(cached, 50), "p99": pct(cached, 99)}
    lib_total = sum(lib.values())
    print("\nlibrary alone (decode + vec_convert, -j1): %.1f s for %d images, median %.1f ms"
          % (lib_total / 1e3, len(lib), statistics.median(lib.values())))
    print("in-server ovh = the server's duration of the convert request minus its processing_time; at concurrency 16")
    print("it includes the wait in the compute queue. vs library = client latency minus `modeld vectorize` time.")
    print("goals: API overhead <= 5 ms p50 beyond the conversion (in-server column); cached p99 <= 2 ms")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"library_ms": lib, **{str(k): v for k, v in results.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
