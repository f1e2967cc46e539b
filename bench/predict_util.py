#!/usr/bin/python3
"""predict_util.py - the Python half of bench/predict.sh (request bodies, answer checks, the bulk
CSV and its timing, the final table). Subcommands:

  bodies MODELS_DIR FIXTURE OUTDIR NAME...   OUTDIR/NAME.single.json (the fixture's first case of
                                    NAME) and OUTDIR/NAME.batch.json (1,000 rows: the fixture's
                                    cases of NAME in turn, numbers scaled by 0.8..1.2 within the
                                    schema's range, integers rounded)
  check URL KEY FIXTURE OUTDIR SERVER NAME...  POST each single body: the prediction and the
                                    contributions must be the fixture's (1e-5 relative, 1e-4 for
                                    contributions); POST each batch body: 1,000 answers, no
                                    failures; the first 50 predictions and contributions are saved
                                    as OUTDIR/SERVER.NAME.answers.json for the cross-check
  cross OUTDIR NAME...              modeld's and FastAPI's saved batch answers must agree (1e-5
                                    relative on predictions, 1e-4 on contributions, same reasons)
  csv FIXTURE NAME ROWS OUT         a bulk CSV of ROWS rows of NAME (varied like the batch body)
  bulk URL KEY CSV NAME             POST the CSV to /api/NAME/bulk (text/csv), wait for the job;
                                    prints "rows seconds" (upload to SUCCESS)
  report RESULTS BULK               the markdown tables, the ratios and the issue's goals
Exit status 1 with a message on any failed check.
"""
import csv
import json
import math
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

BATCH = 1000


def cases(fixture, name):
    with open(fixture) as f:
        got = [c for c in json.load(f)["cases"] if c.get("model") == name]
    if not got:
        sys.exit(f"predict_util: no fixture case for {name}")
    return got


def schema(models_dir, name):
    with open(os.path.join(models_dir, name, "1", "modeld.json")) as f:
        return {c["name"]: c for c in json.load(f)["input_schema"]["columns"]}


def vary(feats, cols, i):
    """Row i: the case's values, numbers scaled by a deterministic factor in 0.8..1.2."""
    out = {}
    for k, v in feats.items():
        c = cols[k]
        if c["type"] == "category" or v is None or isinstance(v, bool):
            out[k] = v
            continue
        f = 0.8 + 0.4 * (((i * 7919 + len(k) * 104729) % 1000) / 999.0)
        x = v * f
        x = min(max(x, c.get("minimum", -math.inf)), c.get("maximum", math.inf))
        out[k] = int(round(x)) if c["type"] == "integer" else round(x, 4)
        if c["type"] == "integer" and "maximum" in c and out[k] > c["maximum"]:
            out[k] = int(c["maximum"])
    return out


def rows_of(models_dir, fixture, name, n):
    cs, cols = cases(fixture, name), schema(models_dir, name)
    return [vary(cs[i % len(cs)]["features"], cols, i) for i in range(n)]


def bodies(models_dir, fixture, outdir, names):
    for n in names:
        with open(os.path.join(outdir, n + ".single.json"), "w") as f:
            json.dump({"features": cases(fixture, n)[0]["features"]}, f)
        with open(os.path.join(outdir, n + ".batch.json"), "w") as f:
            json.dump({"items": rows_of(models_dir, fixture, n, BATCH)}, f)


def post(url, key, data, ctype="application/json"):
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"X-API-Key": key, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def close(a, b, tol):
    if isinstance(a, bool) or isinstance(a, str) or a is None:
        return a == b
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    return isinstance(b, (int, float)) and abs(a - b) <= tol * max(1.0, abs(b))


def check(url, key, fixture, outdir, server, names):
    for n in names:
        with open(os.path.join(outdir, n + ".single.json"), "rb") as f:
            st, body = post(f"{url}/api/{n}", key, f.read())
        if st != 200:
            sys.exit(f"{server} {n}: single answered {st}: {body[:300]!r}")
        a, want = json.loads(body), cases(fixture, n)[0]
        if not close(a["prediction"], want["prediction"], 1e-5):
            sys.exit(f"{server} {n}: prediction {a['prediction']} != {want['prediction']}")
        e = want.get("explanation")
        if e and not close(a["explanation"]["contributions"], e["contributions"], 1e-4):
            sys.exit(f"{server} {n}: contributions differ from the fixture's")
        with open(os.path.join(outdir, n + ".batch.json"), "rb") as f:
            st, body = post(f"{url}/api/{n}/batch", key, f.read())
        if st != 200:
            sys.exit(f"{server} {n}: batch answered {st}: {body[:300]!r}")
        b = json.loads(body)
        if b["count"] != BATCH or b["failed"]:
            sys.exit(f"{server} {n}: batch count {b['count']}, failed {b['failed'][:3]}")
        keep = [{k: p[k] for k in ("index", "prediction", "explanation")} for p in b["predictions"][:50]]
        with open(os.path.join(outdir, f"{server}.{n}.answers.json"), "w") as f:
            json.dump(keep, f)


def cross(outdir, names):
    for n in names:
        got = {}
        for s in ("modeld", "fastapi"):
            p = os.path.join(outdir, f"{s}.{n}.answers.json")
            if not os.path.exists(p):
                return  # one server only: nothing to compare
            with open(p) as f:
                got[s] = json.load(f)
        for a, b in zip(got["modeld"], got["fastapi"]):
            if not close(a["prediction"], b["prediction"], 1e-5):
                sys.exit(f"{n} row {a['index']}: modeld {a['prediction']} != fastapi {b['prediction']}")
            ea, eb = a["explanation"], b["explanation"]
            if (ea is None) != (eb is None):
                sys.exit(f"{n} row {a['index']}: one server explains, the other does not")
            if ea and not close(ea["contributions"], eb["contributions"], 1e-4):
                sys.exit(f"{n} row {a['index']}: contributions differ")
            if ea and [r["feature"] for r in ea["reasons"]] != [r["feature"] for r in eb["reasons"]]:
                sys.exit(f"{n} row {a['index']}: reasons differ")


def write_csv(models_dir, fixture, name, nrows, out):
    base = rows_of(models_dir, fixture, name, BATCH)
    cols = list(base[0])
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for i in range(nrows):
            r = base[i % BATCH]
            w.writerow([r[c] for c in cols])


def bulk(url, key, path, name):
    with open(path, "rb") as f:
        data = f.read()
    t0 = time.monotonic()
    st, body = post(f"{url}/api/{name}/bulk", key, data, "text/csv")
    if st != 202:
        sys.exit(f"bulk {name}: answered {st}: {body[:300]!r}")
    jid = json.loads(body)["job_id"]
    while True:
        req = urllib.request.Request(f"{url}/api/v1/jobs/{jid}", headers={"X-API-Key": key})
        with urllib.request.urlopen(req, timeout=60) as r:
            j = json.loads(r.read())
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            break
        time.sleep(0.05)
    secs = time.monotonic() - t0
    if j["status"] != "SUCCESS":
        sys.exit(f"bulk {name}: job {j['status']}: {j}")
    print(data.count(b"\n") - 1, f"{secs:.2f}")


def report(results, bulkfile):
    rows = {}
    with open(results) as f:
        for line in f:
            server, kind, model, c, rps, p50, p99, cpu, errs = line.split()
            rows.setdefault((kind, model, int(c), server), []).append(
                (float(rps), float(p50), float(p99), float(cpu), int(errs)))
    med = {k: [statistics.median(x[i] for x in v) for i in range(4)] + [sum(x[4] for x in v)]
           for k, v in rows.items()}
    print("| kind | model | conns | server | req/s | rows/s | p50 ms | p99 ms | CPU µs/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (kind, model, c, server), (rps, p50, p99, cpu, errs) in sorted(med.items()):
        per = BATCH if kind == "batch" else 1
        print(f"| {kind} | {model} | {c} | {server} | {rps:.0f} | {rps * per:.0f} | {p50:.3f} | "
              f"{p99:.3f} | {cpu:.0f} | {errs} |")
    print()
    print("| kind | model | conns | modeld/FastAPI throughput | FastAPI/modeld CPU per request | goal |")
    print("|---|---|---|---|---|---|")
    for (kind, model, c, server), m in sorted(med.items()):
        f = med.get((kind, model, c, "fastapi"))
        if server != "modeld" or not f:
            continue
        goal = ("≥ 30×, p99 ≤ 2 ms" if kind == "single" else "≥ 10×")
        if f[0] <= 0:  # FastAPI finished no request in the run
            print(f"| {kind} | {model} | {c} | n/a (FastAPI: 0 req/s) | "
                  f"{f[3] / max(m[3], 1e-9):.1f}× | {goal}: n/a |")
            continue
        ok = m[0] / f[0] >= (30 if kind == "single" else 10) and (kind != "single" or m[2] <= 2.0)
        print(f"| {kind} | {model} | {c} | {m[0] / f[0]:.1f}× | {f[3] / max(m[3], 1e-9):.1f}× | "
              f"{goal}: {'met' if ok else 'NOT met'} |")
    if bulkfile and os.path.exists(bulkfile) and os.path.getsize(bulkfile):
        print()
        with open(bulkfile) as f:
            for line in f:
                model, n, secs, cpu = (line.split() + ["nan"])[:4]
                print(f"bulk CSV ({model}, modeld): {int(n):,} rows in {float(secs):.2f} s, "
                      f"server CPU {float(cpu):.2f} s "
                      f"({int(n) / float(secs):,.0f} rows/s; goal 1,000,000 rows ≤ 10 s: "
                      f"{'met' if int(n) >= 1000000 and float(secs) <= 10 else 'NOT met' if int(n) >= 1000000 else 'fewer rows'})")


def main(a):
    cmd = a[0] if a else ""
    if cmd == "bodies":
        bodies(a[1], a[2], a[3], a[4:])
    elif cmd == "check":
        check(a[1], a[2], a[3], a[4], a[5], a[6:])
    elif cmd == "cross":
        cross(a[1], a[2:])
    elif cmd == "csv":
        write_csv(os.environ.get("BENCH_MODELS_DIR", "models"), a[1], a[2], int(a[3]), a[4])
    elif cmd == "bulk":
        bulk(a[1], a[2], a[3], a[4])
    elif cmd == "report":
        report(a[1], a[2] if len(a) > 2 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
