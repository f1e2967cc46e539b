#!/usr/bin/env bash
# The write-behind prediction log against writing each request's log row in the request:
# single-row POST /api/churn (every prediction logged, predict_log_sample 1) on two modeld
# servers side by side, one with --predict-log-flush-ms 50 (the default) and one with 0, both
# pinned to CPU 0, wrk to CPU 1. The load goes to one server at a time, alternating
# BENCH_ROUNDS times (default 6) per connection count, BENCH_SECS each (default 4), so that
# a loaded machine disturbs both alike; the median of the rounds is reported: req/s, p99 and
# the server's CPU per request (user + sys from /proc, the figure a busy machine disturbs
# least). Not a timed test.
# Env: MODELD_BIN (default build/release/modeld), BENCH_CONNS ("1 16"), BENCH_ROUNDS,
#      BENCH_SECS, BENCH_FLUSH_MS (50).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECS:-4}
rounds=${BENCH_ROUNDS:-6}
flush=${BENCH_FLUSH_MS:-50}
read -r -a conns <<<"${BENCH_CONNS:-1 16}"
py=/usr/bin/python3
. "$top/bench/lib.sh"
bench_setup
"$py" "$top/bench/predict_util.py" bodies "$top/models" "$top/tests/fixtures/predict/expected.json" \
  "$work" churn
modeld_bin

start() { # start NAME FLUSH_MS -> sets the NAME's pid, url and key in $work/NAME.*
  local port
  port=$(free_port)
  mkdir -p "$work/$1"
  (cd "$top" && MODELD_JWT_SECRET=bench-secret-0123456789abcdef0123456789 exec taskset -c \
    "$srv_cpu" "$bin" serve --host 127.0.0.1 --port "$port" --data-dir "$work/$1" \
    --models-dir "$top/models" --rate-admin 1000000000:1000000000 \
    --rate-write 1000000000:1000000000 --predict-log-flush-ms "$2" \
    >"$work/$1.out" 2>"$work/$1.log") &
  pids+=("$!")
  echo "$!" >"$work/$1.pid"
  echo "http://127.0.0.1:$port" >"$work/$1.url"
  wait_up "http://127.0.0.1:$port" || { echo "modeld did not start" >&2; exit 1; }
  grep -o 'mdk_[A-Za-z0-9_-]*' "$work/$1.out" | head -1 >"$work/$1.key"
}

start behind "$flush"
start inline 0
sleep 1
: >"$work/results"
for c in "${conns[@]}"; do
  for _ in $(seq "$rounds"); do
    for name in behind inline; do
      pid=$(cat "$work/$name.pid")
      c0=$(tree_cpu "$pid")
      out=$(BENCH_KEY=$(cat "$work/$name.key") BENCH_BODY="$work/churn.single.json" \
        taskset -c "$wrk_cpu" wrk -t1 -c"$c" -d"${secs}s" --latency --timeout 30s \
        -s "$top/bench/infer.lua" "$(cat "$work/$name.url")/api/churn")
      c1=$(tree_cpu "$pid")
      echo "$name $c $(wrk_stats "$c0" "$c1" <<<"$out")" >>"$work/results"
    done
  done
done
echo "prediction log: --predict-log-flush-ms $flush (behind) vs 0 (inline); churn single rows;" \
  "$rounds alternating rounds of ${secs}s per point, median; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$work/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, c, rps, p50, p99, cpu, errs = line.split()
    rows.setdefault((int(c), name), []).append((float(rps), float(p99), float(cpu), int(errs)))
print("| conns | log | req/s | p99 ms | CPU µs/req | errors |")
print("|---|---|---|---|---|---|")
med = {}
for (c, name), v in sorted(rows.items()):
    m = [statistics.median(x[i] for x in v) for i in range(3)]
    med[(c, name)] = m
    print(f"| {c} | {name} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.0f} | {sum(x[3] for x in v)} |")
for c in sorted({c for c, _ in med}):
    b, i = med.get((c, "behind")), med.get((c, "inline"))
    if b and i and b[2] > 0 and i[0] > 0:
        print(f"conns {c}: behind/inline throughput {b[0] / i[0]:.2f}x, CPU per request "
              f"{b[2] / i[2]:.2f}x")
EOF
