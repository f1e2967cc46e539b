#!/usr/bin/env bash
# HTTP platform benchmark (issue 2): wrk against GET /api/health and an authenticated small JSON
# POST (POST /api/auth/token with X-API-Key and body "{}") on modeld, then on the same two
# routes in FastAPI under uvicorn (2 workers, uvloop, httptools; bench/fastapi_app.py).
# The server is pinned to CPU 0 and wrk to CPU 1 (taskset); 64 and 256 connections; each run
# lasts BENCH_SECS (default 5) and the median of BENCH_RUNS (default 3) is reported.
# modeld runs as in production: auth, rate limiting (limits high enough not to refuse),
# metrics and the JSON access log (to a file) all on.
# Prints requests/s, p50/p99 latency, server CPU time per request (from /proc, the figure that
# does not depend on the load generator), RSS (idle and after load) and modeld/FastAPI ratios.
# Env: MODELD_BIN (default build/release/modeld, built when missing), BENCH_SECS, BENCH_RUNS.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECS:-5}
runs=${BENCH_RUNS:-3}
conns=(64 256)
py=/usr/bin/python3
. "$top/bench/lib.sh"  # free_port, wait_up, tree_cpu, tree_rss, wrk_stats, bench_setup, modeld_bin
modeld_bin
bench_setup

key="mdk_000000000000_benchkey"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
LUA

# run_wrk NAME PID URL PATH CONNS -> appends "name route conns rps p50_ms p99_ms cpu_us_per_req errors" to results
run_wrk() {
  local name=$1 pid=$2 url=$3 path=$4 c=$5 script=()
  [ "$path" = /api/auth/token ] && script=(-s "$work/post.lua")
  for r in $(seq "$runs"); do
    local c0 c1 out
    c0=$(tree_cpu "$pid")
    out=$(BENCH_KEY=$key taskset -c "$wrk_cpu" wrk -t1 -c"$c" -d"${secs}s" --latency "${script[@]}" "$url$path")
    c1=$(tree_cpu "$pid")
    echo "$name $path $c $(wrk_stats "$c0" "$c1" <<<"$out")" >>"$work/results"
  done
}

bench_server() {  # bench_server NAME PID URL
  for path in /api/health /api/auth/token; do
    for c in "${conns[@]}"; do run_wrk "$1" "$2" "$3" "$path" "$c"; done
  done
}

echo "http bench: ${secs}s x ${runs} runs per point; server on CPU $srv_cpu, wrk on CPU $wrk_cpu" >&2

# ---- modeld ----
port=$(free_port)
data="$work/var"
mkdir -p "$data"
# A known bench key: create it with `modeld keys`, whose output is the new key.
MODELD_JWT_SECRET=bench-secret-0123456789abcdef0123456789 taskset -c "$srv_cpu" "$bin" serve --host 127.0.0.1 \
  --port "$port" --data-dir "$data" --rate-admin 1000000000:1000000000 \
  >"$work/modeld.out" 2>"$work/modeld.log" &
mpid=$!
pids+=("$mpid")
wait_up "http://127.0.0.1:$port" || { echo "modeld did not start" >&2; cat "$work/modeld.log" >&2; exit 1; }
key=$(grep -o 'mdk_[A-Za-z0-9_-]*' "$work/modeld.out" | head -1)
sleep 1
m_idle=$(tree_rss "$mpid")
bench_server modeld "$mpid" "http://127.0.0.1:$port"
m_load=$(tree_rss "$mpid")
kill -TERM "$mpid"; wait "$mpid" || true

# ---- FastAPI / uvicorn ----
port=$(free_port)
(cd "$top/bench" && BENCH_API_KEY=$key exec taskset -c "$srv_cpu" $py -m uvicorn fastapi_app:app --host 127.0.0.1 \
  --port "$port" --workers 2 --loop uvloop --http httptools >"$work/fastapi.log" 2>&1) &
fpid=$!
pids+=("$fpid")
wait_up "http://127.0.0.1:$port" || { echo "uvicorn did not start" >&2; cat "$work/fastapi.log" >&2; exit 1; }
sleep 1
f_idle=$(tree_rss "$fpid")
bench_server fastapi "$fpid" "http://127.0.0.1:$port"
f_load=$(tree_rss "$fpid")
kill -TERM "$fpid"; wait "$fpid" || true

$py - "$work/results" "$m_idle" "$m_load" "$f_idle" "$f_load" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
m_idle, m_load, f_idle, f_load = (int(x) / 1024 for x in sys.argv[2:6])
res = {}
for name, path, c, rps, p50, p99, cpu, errs in rows:
    res.setdefault((name, path, int(c)), []).append((float(rps), float(p50), float(p99), float(cpu), int(errs)))
def med(k, i):
    return statistics.median(r[i] for r in res[k])
print("%-8s %-16s %5s %10s %9s %9s %11s %6s" % ("server", "route", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req", "errors"))
for k in sorted(res, key=lambda k: (k[1], k[2], k[0] != "modeld")):
    print("%-8s %-16s %5d %10.0f %9.3f %9.3f %11.1f %6d" % (k[0], k[1], k[2], med(k, 0), med(k, 1), med(k, 2),
                                                          med(k, 3), sum(r[4] for r in res[k])))
print("\nRSS MB: modeld idle %.1f, after load %.1f; FastAPI (2 workers + master) idle %.1f, after load %.1f"
      % (m_idle, m_load, f_idle, f_load))
print("\nratios modeld / FastAPI:")
for path in ("/api/health", "/api/auth/token"):
    for c in (64, 256):
        m, f = ("modeld", path, c), ("fastapi", path, c)
        if m in res and f in res:
            print("  %-16s c=%-4d req/s x%.1f   CPU per request 1/%.1f   p50 %.3f vs %.3f ms"
                  % (path, c, med(m, 0) / med(f, 0), med(f, 3) / med(m, 3), med(m, 1), med(f, 1)))
PY
