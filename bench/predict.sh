#!/usr/bin/env bash
# Prediction benchmark (issue 11, "Benchmark"): single-row POST /api/{model} and 1,000-row
# POST /api/{model}/batch on the shipped tree models (default churn, profitability, revenue-leak),
# served by modeld, then by FastAPI + xgboost (bench/predict_fastapi.py: uvicorn, 2 workers,
# uvloop, httptools, one xgboost thread each), then a 1,000,000-row bulk CSV through modeld.
#
# What each side does per request (the same work, see predict_fastapi.py's header):
#   both:    API key check (X-API-Key), JSON parse, every row checked against the manifest's
#            input_schema (unknown / missing / type / range / label), the tree model on the good
#            rows in one call, the manifest's postprocessing (probability + band, regression
#            value + band + interval, revenue-leak pattern + amount), TreeSHAP contributions
#            (exact, path-dependent) with the top_k reasons, a prediction_id per answer;
#   modeld:  its own tree walk and TreeSHAP (src/xgb/forest.c, treeshap.c; libxgboost where a
#            model is not supported), and also logs every prediction to its store (the
#            default predict_log_sample = 1), request log and metrics;
#   FastAPI: xgboost 1.7 Booster.inplace_predict and predict(pred_contribs=True), the
#            repository's reference postprocessing (training/predict/postprocess.py).
# Both answers are checked against tests/fixtures/predict/expected.json first, and their batch
# answers against each other (predictions 1e-5, contributions 1e-4, same reasons).
# The server is pinned to CPU 0 and wrk to CPU 1 (taskset), wrk posts the same bytes to both
# (bench/infer.lua); each run lasts BENCH_SECS (default 5; batches BENCH_BATCH_SECS, default 15),
# the median of BENCH_RUNS (default 3) is reported, with req/s, rows/s, p50/p99 and the server's
# CPU per request (from /proc).
# Bulk: a CSV of BENCH_BULK_ROWS (default 1,000,000) churn rows, POST /api/churn/bulk (text/csv)
# to the job's SUCCESS, modeld with one worker (--workers 1, bulk_max_bytes 1G); the bulk result
# carries no explanations (README). Not a timed test: it fails only when a server does not start
# or answers wrongly.
# Env: MODELD_BIN (default build/release/modeld, built when missing), BENCH_SECS,
#      BENCH_BATCH_SECS, BENCH_RUNS,
#      BENCH_MODELS ("churn profitability revenue-leak"), BENCH_CONNS (single, "1 64"),
#      BENCH_BATCH_CONNS ("1 4"), BENCH_SERVERS ("modeld fastapi"; "" runs the bulk only;
#      "modeld-flush0" is modeld with --predict-log-flush-ms 0: each request writes its log row),
#      BENCH_BULK_ROWS (0 skips).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECS:-5}
bsecs=${BENCH_BATCH_SECS:-15} # a FastAPI batch takes seconds: long enough for several
runs=${BENCH_RUNS:-3}
read -r -a models <<<"${BENCH_MODELS:-churn profitability revenue-leak}"
read -r -a conns <<<"${BENCH_CONNS:-1 64}"
read -r -a bconns <<<"${BENCH_BATCH_CONNS:-1 4}"
read -r -a servers <<<"${BENCH_SERVERS-modeld fastapi}" # "" = bulk only
bulk_rows=${BENCH_BULK_ROWS:-1000000}
models_dir=$top/models
fixture=$top/tests/fixtures/predict/expected.json
py=/usr/bin/python3
util=("$py" "$top/bench/predict_util.py")
. "$top/bench/lib.sh" # free_port, wait_up, tree_cpu, wrk_stats, bench_setup, modeld_bin
bench_setup
"${util[@]}" bodies "$models_dir" "$fixture" "$work" "${models[@]}"
key="mdk_000000000000_benchkey"

# run_wrk NAME PID URL KIND MODEL CONNS -> appends "name kind model conns rps p50 p99 cpu errors"
run_wrk() {
  local name=$1 pid=$2 url=$3 kind=$4 model=$5 c=$6 path c0 c1 out
  path=/api/$model
  [ "$kind" = batch ] && path=/api/$model/batch
  local d=$secs
  [ "$kind" = batch ] && d=$bsecs
  for _ in $(seq "$runs"); do
    c0=$(tree_cpu "$pid")
    out=$(BENCH_KEY=$key BENCH_BODY="$work/$model.$kind.json" taskset -c "$wrk_cpu" wrk -t1 \
      -c"$c" -d"${d}s" --latency --timeout 30s -s "$top/bench/infer.lua" "$url$path")
    c1=$(tree_cpu "$pid")
    echo "$name $kind $model $c $(wrk_stats "$c0" "$c1" <<<"$out")" >>"$work/results"
  done
}

bench_server() { # bench_server NAME PID URL
  local m c
  "${util[@]}" check "$3" "$key" "$fixture" "$work" "$1" "${models[@]}"
  for m in "${models[@]}"; do
    for c in "${conns[@]}"; do run_wrk "$1" "$2" "$3" single "$m" "$c"; done
    for c in "${bconns[@]}"; do run_wrk "$1" "$2" "$3" batch "$m" "$c"; done
  done
}

start_modeld() { # start_modeld EXTRA_FLAGS... -> sets mpid, url, key
  modeld_bin
  local port
  port=$(free_port)
  mkdir -p "$work/var"
  (cd "$top" && MODELD_JWT_SECRET=bench-secret-0123456789abcdef0123456789 exec taskset -c \
    "$srv_cpu" "$bin" serve --host 127.0.0.1 --port "$port" --data-dir "$work/var" \
    --models-dir "$models_dir" --rate-admin 1000000000:1000000000 \
    --rate-write 1000000000:1000000000 "$@" \
    >"$work/modeld.out" 2>"$work/modeld.log") &
  mpid=$!
  pids+=("$mpid")
  url="http://127.0.0.1:$port"
  wait_up "$url" || { echo "modeld did not start" >&2; tail -20 "$work/modeld.log" >&2; exit 1; }
  key=$(grep -o 'mdk_[A-Za-z0-9_-]*' "$work/modeld.out" | head -1)
}

stop_modeld() {
  kill -TERM "$mpid"
  wait "$mpid" || true
  rm -rf "$work/var"
}

bench_modeld() { # bench_modeld NAME EXTRA_FLAGS...
  local name=$1
  shift
  start_modeld "$@"
  sleep 1
  bench_server "$name" "$mpid" "$url"
  stop_modeld
}

bench_fastapi() {
  local port fpid
  port=$(free_port)
  (cd "$top/bench" && BENCH_API_KEY=$key BENCH_MODELS_DIR=$models_dir \
    BENCH_PREDICT_MODELS="${models[*]}" exec taskset -c "$srv_cpu" $py -m uvicorn \
    predict_fastapi:app --host 127.0.0.1 --port "$port" --workers 2 --loop uvloop \
    --http httptools --no-access-log >"$work/fastapi.log" 2>&1) &
  fpid=$!
  pids+=("$fpid")
  local url="http://127.0.0.1:$port"
  wait_up "$url" || { echo "uvicorn did not start" >&2; tail -20 "$work/fastapi.log" >&2; exit 1; }
  sleep 1
  bench_server fastapi "$fpid" "$url"
  kill -TERM "$fpid"
  wait "$fpid" || true
}

bench_bulk() {
  [ "$bulk_rows" -gt 0 ] || return 0
  BENCH_MODELS_DIR=$models_dir "${util[@]}" csv "$fixture" churn "$bulk_rows" "$work/bulk.csv"
  start_modeld --workers 1 --bulk-max-bytes 1G
  echo "churn $("${util[@]}" bulk "$url" "$key" "$work/bulk.csv" churn)" >>"$work/bulk"
  stop_modeld
}

echo "predict bench: ${secs}s x ${runs} runs per point; server on CPU $srv_cpu, wrk on CPU" \
  "$wrk_cpu; models ${models[*]}" >&2
for s in "${servers[@]}"; do
  case "$s" in
    modeld) bench_modeld modeld ;;
    # the prediction log written in each request (the write-behind log off), for comparison
    modeld-flush0) bench_modeld modeld-flush0 --predict-log-flush-ms 0 ;;
    fastapi) bench_fastapi ;;
    *) echo "predict.sh: unknown server $s (modeld | modeld-flush0 | fastapi)" >&2; exit 2 ;;
  esac
done
"${util[@]}" cross "$work" "${models[@]}"
bench_bulk
touch "$work/bulk" "$work/results"
echo "machine: $ncpu CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(nproc --all)" \
  "online; AVX flags:$(grep -m1 '^flags' /proc/cpuinfo | grep -oE ' avx[a-z0-9_]*' | tr -d '\n');" \
  "${secs}s (batches ${bsecs}s) x $runs runs per point, median"
echo
"${util[@]}" report "$work/results" "$work/bulk"
