#!/usr/bin/python3
"""infer_util.py - the Python half of bench/infer.sh (request bodies, answer checks, the
registry's load statistics, the final table). Subcommands:

  body MODELS_DIR NAME OUT          OIP request body for NAME from its first validation sample
  check URL KEY MODELS_DIR NAME     POST the body to URL/v2/models/NAME/infer; the answer must
                                    name the model and give the manifest's expected outputs
  wait-ready URL KEY NAME...        wait (60 s at most) until GET /v2/models/NAME/ready is 200
  loadstats URL KEY NAME...         print "NAME load_seconds validation_seconds" from
                                    GET /api/models/NAME (stats of the active version)
  second-version SRC DST VERSION    copy the version directory SRC to DST as VERSION (same
                                    artefact, the manifest's "version" changed)
  swaps URL KEY NAME V1 V2 N SECS   N activations alternating V1 and V2 (the inactive one
                                    first), spread over SECS; prints "N failed"
  report RESULTS RSS LOADSTATS SWAPS  print the markdown tables and the issue's goals
Exit status 1 with a message on any failed check.
"""
import glob
import json
import os
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request

import numpy as np


def manifest(models_dir, name):
    paths = glob.glob(os.path.join(models_dir, name, "*", "modeld.json"))
    if not paths:
        sys.exit(f"infer_util: no manifest for {name} under {models_dir}")
    newest = max(paths, key=lambda p: int(os.path.basename(os.path.dirname(p))))
    with open(newest) as f:
        return json.load(f)


def body(models_dir, name):
    mf = manifest(models_dir, name)
    s = mf["validation"]["samples"][0]
    req = {"id": "bench", "inputs": []}
    for t in mf["inputs"]:
        x = np.asarray(s["inputs"][t["name"]], dtype=np.float32)
        req["inputs"].append({"name": t["name"], "shape": list(x.shape), "datatype": t["datatype"],
                              "data": [float(v) for v in x.reshape(-1)]})
    return mf, req


def http(method, url, key, data=None):
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cmd_body(models_dir, name, out):
    with open(out, "w") as f:
        json.dump(body(models_dir, name)[1], f, separators=(",", ":"))


def cmd_check(url, key, models_dir, name):
    mf, req = body(models_dir, name)
    status, raw = http("POST", f"{url}/v2/models/{name}/infer", key, json.dumps(req).encode())
    if status != 200:
        sys.exit(f"infer_util: {url} {name}: HTTP {status}: {raw[:300]!r}")
    ans = json.loads(raw)
    if ans.get("model_name") != name or "model_version" not in ans:
        sys.exit(f"infer_util: {url} {name}: answer names {ans.get('model_name')!r} "
                 f"version {ans.get('model_version')!r}")
    outs = {o["name"]: o for o in ans.get("outputs", [])}
    tol = mf["validation"]["tolerance"]
    for t in mf["outputs"]:
        want = np.asarray(mf["validation"]["samples"][0]["outputs"][t["name"]], dtype=np.float64)
        o = outs.get(t["name"])
        shape = list(o.get("shape", [])) if o else None
        if o is None or o.get("datatype") != t["datatype"] or shape != list(want.shape):
            sys.exit(f"infer_util: {url} {name}: output {t['name']} missing or wrong "
                     f"datatype/shape: {json.dumps(o)[:200]}")
        got = np.asarray(o["data"], dtype=np.float64).reshape(want.shape)
        diff = float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max())
        if diff > tol:
            sys.exit(f"infer_util: {url} {name}: output {t['name']} differs by {diff} > {tol}")


def cmd_wait_ready(url, key, names):
    if http("GET", f"{url}/v2", key)[0] == 404:
        sys.exit(f"infer_util: {url} has no Open Inference Protocol routes (GET /v2 is 404): "
                 "this modeld predates issue 8's registry and OIP")
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            try:
                status, _ = http("GET", f"{url}/v2/models/{name}/ready", key)
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() > deadline:
                sys.exit(f"infer_util: {url}: model {name} not ready after 60 s (last HTTP {status})")
            time.sleep(0.1)


def find_stats(doc, version):
    """The stats object with load_seconds of the given (active) version, wherever the route
    puts it: {"stats": {"<version>": {...}}}, {"stats": [{"version": ...}]} or {"stats": {...}}."""
    if isinstance(doc, dict):
        if "load_seconds" in doc and doc.get("version", version) == version:
            return doc
        st = doc.get("stats")
        if isinstance(st, dict) and version in st and isinstance(st[version], dict):
            return st[version]
        for v in doc.values():
            r = find_stats(v, version)
            if r is not None:
                return r
    elif isinstance(doc, list):
        for v in doc:
            r = find_stats(v, version)
            if r is not None:
                return r
    return None


def find_key(doc, key):
    if isinstance(doc, dict):
        if key in doc and isinstance(doc[key], (str, int)):
            return str(doc[key])
        for v in doc.values():
            r = find_key(v, key)
            if r is not None:
                return r
    return None


def cmd_loadstats(url, key, names):
    for name in names:
        status, raw = http("GET", f"{url}/api/models/{name}", key)
        if status != 200:
            sys.exit(f"infer_util: GET /api/models/{name}: HTTP {status}: {raw[:200]!r}")
        doc = json.loads(raw)
        version = find_key(doc, "active_version") or ""
        st = find_stats(doc, version)
        if st is None or "validation_seconds" not in st:
            sys.exit(f"infer_util: GET /api/models/{name}: no stats with load_seconds and "
                     f"validation_seconds for version {version!r}")
        print(name, float(st["load_seconds"]), float(st["validation_seconds"]))


def cmd_second_version(src, dst, version):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "modeld.json")
    with open(path) as f:
        mf = json.load(f)
    mf["version"] = version
    with open(path, "w") as f:
        json.dump(mf, f, indent=2)


def cmd_swaps(url, key, name, v1, v2, n, secs):
    n, gap, failed = int(n), float(secs) / int(n), 0
    status, raw = http("GET", f"{url}/api/models/{name}", key)
    active = find_key(json.loads(raw), "active_version") if status == 200 else None
    order = (v2, v1) if active == v1 else (v1, v2)  # every activation is a real swap
    t0 = time.monotonic()
    for i in range(n):
        v = order[i % 2]
        status, raw = http("POST", f"{url}/api/models/{name}/versions/{v}/activate", key, b"{}")
        if status != 200:
            failed += 1
            print(f"infer_util: activate {name} {v}: HTTP {status}: {raw[:200]!r}", file=sys.stderr)
        time.sleep(max(0.0, t0 + (i + 1) * gap - time.monotonic()))
    print(n, failed)


def cmd_report(results, rss_file, loadstats_file, swaps_file):
    rows = {}
    with open(results) as f:
        for line in f:
            server, model, c, rps, p50, p99, cpu, errs = line.split()
            rows.setdefault((server, model, int(c)), []).append(
                (float(rps), float(p50), float(p99), float(cpu), int(errs)))

    def med(k, i):
        return statistics.median(r[i] for r in rows[k])

    def errs(k):
        return sum(r[4] for r in rows[k])

    rss = dict(line.split()[:2] for line in open(rss_file)) if os.path.exists(rss_file) else {}
    models = sorted({k[1] for k in rows}, key=lambda m: (m != os.environ.get("BENCH_MLP"), m))
    conns = sorted({k[2] for k in rows})
    print("| model | conns | modeld req/s | FastAPI req/s | ratio | modeld p50 / p99 ms | "
          "FastAPI p50 / p99 ms | modeld CPU µs/req | FastAPI CPU µs/req | CPU ratio | errors m/f |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {}
    for m in models:
        for c in conns:
            mk, fk = ("modeld", m, c), ("fastapi", m, c)
            cell = lambda k, fmt, i: (fmt % med(k, i)) if k in rows else "-"  # noqa: E731
            lat = lambda k: f"{med(k, 1):.2f} / {med(k, 2):.2f}" if k in rows else "-"  # noqa: E731
            both = mk in rows and fk in rows
            ratio = med(mk, 0) / med(fk, 0) if both else None
            cpu = med(fk, 3) / med(mk, 3) if both and med(mk, 3) > 0 else None
            if ratio is not None:
                best[m] = max(best.get(m, 0), ratio)
            print(f"| {m} | {c} | {cell(mk, '%.0f', 0)} | {cell(fk, '%.0f', 0)} | "
                  f"{'x%.1f' % ratio if ratio else '-'} | {lat(mk)} | {lat(fk)} | "
                  f"{cell(mk, '%.0f', 3)} | {cell(fk, '%.0f', 3)} | "
                  f"{'1/%.1f' % cpu if cpu else '-'} | "
                  f"{errs(mk) if mk in rows else '-'}/{errs(fk) if fk in rows else '-'} |")
    if rss:
        print("\n| RSS MB | idle (models loaded) | after load |\n|---|---:|---:|")
        for s, label in (("modeld", "modeld"), ("fastapi", "FastAPI (workers + master)")):
            if f"{s}_idle" in rss:
                print(f"| {label} | {int(rss[f'{s}_idle']) / 1024:.1f} | "
                      f"{int(rss.get(f'{s}_load', 0)) / 1024:.1f} |")
    loads = []
    if os.path.exists(loadstats_file):
        loads = [line.split() for line in open(loadstats_file) if line.strip()]
    if loads:
        print("\n| model (modeld registry) | load ms | validate ms | total ms |\n|---|---:|---:|---:|")
        for name, ld, va in loads:
            print(f"| {name} | {float(ld) * 1e3:.1f} | {float(va) * 1e3:.1f} | "
                  f"{(float(ld) + float(va)) * 1e3:.1f} |")
    swaps = open(swaps_file).read().split() if os.path.exists(swaps_file) else []
    if swaps:
        n, failed, rps, _, p99, _, errs = swaps
        print(f"\nSwaps under load ({os.environ.get('BENCH_MLP')}, 64 connections): {n} "
              f"activations alternating two versions, {failed} failed; {float(rps):.0f} req/s, "
              f"p99 {float(p99):.2f} ms, {errs} failed requests")
    print("\nGoals of issue 8 (informative, not pass/fail):")
    mlp, cnn = os.environ.get("BENCH_MLP"), os.environ.get("BENCH_CNN")
    for m, goal in ((mlp, 10), (cnn, 3)):
        if m in best:
            print(f"- {m}: best modeld/FastAPI req/s ratio x{best[m]:.1f} (goal >= x{goal}): "
                  f"{'met' if best[m] >= goal else 'NOT met'}")
    if loads:
        worst = max(float(ld) + float(va) for _, ld, va in loads)
        print(f"- load + validate, slowest shipped model {worst * 1e3:.1f} ms (goal < 100 ms): "
              f"{'met' if worst < 0.1 else 'NOT met'}")
    if swaps:
        print(f"- {swaps[0]} swaps under load: {swaps[1]} failed swaps, {swaps[6]} failed "
              f"requests (goal 0): {'met' if swaps[1] == '0' and swaps[6] == '0' else 'NOT met'}")
    if "modeld_idle" in rss:
        mb = int(rss["modeld_idle"]) / 1024
        print(f"- modeld idle RSS with all shipped models {mb:.1f} MB (goal <= 50 MB): "
              f"{'met' if mb <= 50 else 'NOT met'}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "body":
        cmd_body(*args)
    elif cmd == "check":
        cmd_check(*args)
    elif cmd == "wait-ready":
        cmd_wait_ready(args[0], args[1], args[2:])
    elif cmd == "loadstats":
        cmd_loadstats(args[0], args[1], args[2:])
    elif cmd == "second-version":
        cmd_second_version(*args)
    elif cmd == "swaps":
        cmd_swaps(*args)
    elif cmd == "report":
        cmd_report(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
