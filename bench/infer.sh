#!/usr/bin/env bash
# Inference benchmark (issue 8): Open Inference Protocol `POST /v2/models/{m}/infer` (JSON tensors)
# on the shipped MLP and CNN (models/diabetes-mlp and models/digits-cnn: exactly the networks of
# bench/onnx_export.py, trained), served by modeld's model registry, then by FastAPI + PyTorch
# speaking the same protocol (bench/infer_fastapi.py: uvicorn, 2 workers, uvloop, httptools, one
# torch thread each; the torch nets are built from the same ONNX weights and checked against the
# manifests' validation samples). Both answers are checked against the expected outputs first.
# The server is pinned to CPU 0 and wrk to CPU 1 (taskset); 1 and 64 connections; each run lasts
# BENCH_SECS (default 5), the median of BENCH_RUNS (default 3) is reported. Both servers check the
# API key (X-API-Key) on every request, as in production.
# Prints req/s, p50/p99, server CPU per request (from /proc), RSS (idle with every shipped model
# loaded, and after load), the registry's load + validation time of each shipped model
# (GET /api/models/{name} stats: load_seconds, validation_seconds) and the modeld/FastAPI ratios,
# as markdown tables; then 100 swaps under load: a copy of the MLP as version 2 in the data dir,
# and POST /api/models/{name}/versions/{v}/activate alternating 2 and 1 during a 64-connection
# run (failed swaps and failed requests counted). Not a timed test: numbers depend on the machine; it fails only when a server
# does not start or answers wrongly.
# Env: MODELD_BIN (default build/release/modeld, built when missing), BENCH_SECS, BENCH_RUNS,
#      BENCH_CONNS ("1 64"), BENCH_SERVERS ("modeld fastapi"), BENCH_MLP, BENCH_CNN (model names),
#      BENCH_SWAPS (100; 0 skips the swap run).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECS:-5}
runs=${BENCH_RUNS:-3}
read -r -a conns <<<"${BENCH_CONNS:-1 64}"
read -r -a servers <<<"${BENCH_SERVERS:-modeld fastapi}"
export BENCH_MLP=${BENCH_MLP:-diabetes-mlp} BENCH_CNN=${BENCH_CNN:-digits-cnn}
models_dir=$top/models
py=/usr/bin/python3
util=("$py" "$top/bench/infer_util.py")
. "$top/bench/lib.sh"  # free_port, wait_up, tree_cpu, tree_rss, wrk_stats, bench_setup, modeld_bin
bench_setup

shipped=()
for d in "$models_dir"/*/; do shipped+=("$(basename "$d")"); done
for m in "$BENCH_MLP" "$BENCH_CNN"; do "${util[@]}" body "$models_dir" "$m" "$work/$m.json"; done
key="mdk_000000000000_benchkey"

# run_wrk NAME PID URL MODEL CONNS -> appends "name model conns rps p50 p99 cpu_us errors" to results
run_wrk() {
  local name=$1 pid=$2 url=$3 model=$4 c=$5 c0 c1 out
  for _ in $(seq "$runs"); do
    c0=$(tree_cpu "$pid")
    out=$(BENCH_KEY=$key BENCH_BODY="$work/$model.json" taskset -c "$wrk_cpu" wrk -t1 -c"$c" \
      -d"${secs}s" --latency -s "$top/bench/infer.lua" "$url/v2/models/$model/infer")
    c1=$(tree_cpu "$pid")
    echo "$name $model $c $(wrk_stats "$c0" "$c1" <<<"$out")" >>"$work/results"
  done
}

bench_server() {  # bench_server NAME PID URL
  local m c
  for m in "$BENCH_MLP" "$BENCH_CNN"; do
    "${util[@]}" check "$3" "$key" "$models_dir" "$m"
    for c in "${conns[@]}"; do run_wrk "$1" "$2" "$3" "$m" "$c"; done
  done
}

# The serve flag naming the shipped models directory, if this build has one (else modeld finds
# the repository's models/ itself, as it finds web/).
models_flag() {
  local f
  f=$("$bin" serve --help 2>&1 | grep -oE -- '--[a-z-]*models[a-z-]*' | head -1 || true)
  [ -n "$f" ] && echo "$f=$models_dir"
  return 0
}

bench_modeld() {
  modeld_bin
  local port data mpid flag
  port=$(free_port)
  data="$work/var"
  mkdir -p "$data/models/$BENCH_MLP"
  # A second version of the MLP for the swap run: the registry finds it in <data-dir>/models/.
  "${util[@]}" second-version "$models_dir/$BENCH_MLP/1" "$data/models/$BENCH_MLP/2" 2
  flag=$(models_flag)
  # From the repository root, where `make run` starts it (a default models/ is found there).
  (cd "$top" && MODELD_JWT_SECRET=bench-secret-0123456789abcdef0123456789 exec taskset -c "$srv_cpu" \
    "$bin" serve --host 127.0.0.1 --port "$port" --data-dir "$data" \
    --rate-admin 1000000000:1000000000 ${flag:+"$flag"} >"$work/modeld.out" 2>"$work/modeld.log") &
  mpid=$!
  pids+=("$mpid")
  local url="http://127.0.0.1:$port"
  wait_up "$url" || { echo "modeld did not start" >&2; tail -20 "$work/modeld.log" >&2; exit 1; }
  key=$(grep -o 'mdk_[A-Za-z0-9_-]*' "$work/modeld.out" | head -1)
  "${util[@]}" wait-ready "$url" "$key" "${shipped[@]}" || { tail -20 "$work/modeld.log" >&2; exit 1; }
  "${util[@]}" loadstats "$url" "$key" "${shipped[@]}" >"$work/loadstats"
  sleep 1
  echo "modeld_idle $(tree_rss "$mpid")" >>"$work/rss"
  bench_server modeld "$mpid" "$url"
  echo "modeld_load $(tree_rss "$mpid")" >>"$work/rss"
  swap_under_load "$url"
  kill -TERM "$mpid"; wait "$mpid" || true
}

swap_under_load() {  # swap_under_load URL
  local n=${BENCH_SWAPS:-100} d=$((secs * 2)) w
  [ "$n" -gt 0 ] || return 0
  BENCH_KEY=$key BENCH_BODY="$work/$BENCH_MLP.json" taskset -c "$wrk_cpu" wrk -t1 -c64 -d"${d}s" \
    --latency -s "$top/bench/infer.lua" "$1/v2/models/$BENCH_MLP/infer" >"$work/swap.wrk" &
  w=$!
  sleep 0.5
  "${util[@]}" swaps "$1" "$key" "$BENCH_MLP" 1 2 "$n" "$((d - 1))" >"$work/swaps"
  wait "$w"
  echo "$(cat "$work/swaps") $(wrk_stats 0 0 <"$work/swap.wrk")" >"$work/swapres"
}

bench_fastapi() {
  local port fpid
  port=$(free_port)
  (cd "$top/bench" && BENCH_API_KEY=$key BENCH_MODELS_DIR=$models_dir exec taskset -c "$srv_cpu" \
    $py -m uvicorn infer_fastapi:app --host 127.0.0.1 --port "$port" --workers 2 --loop uvloop \
    --http httptools >"$work/fastapi.log" 2>&1) &
  fpid=$!
  pids+=("$fpid")
  local url="http://127.0.0.1:$port"
  wait_up "$url" || { echo "uvicorn did not start" >&2; tail -20 "$work/fastapi.log" >&2; exit 1; }
  sleep 1
  echo "fastapi_idle $(tree_rss "$fpid")" >>"$work/rss"
  bench_server fastapi "$fpid" "$url"
  echo "fastapi_load $(tree_rss "$fpid")" >>"$work/rss"
  kill -TERM "$fpid"; wait "$fpid" || true
}

echo "infer bench: ${secs}s x ${runs} runs per point; server on CPU $srv_cpu, wrk on CPU $wrk_cpu;" \
  "models $BENCH_MLP, $BENCH_CNN; shipped: ${shipped[*]}" >&2
for s in "${servers[@]}"; do
  case "$s" in
    modeld) bench_modeld ;;
    fastapi) bench_fastapi ;;
    *) echo "infer.sh: unknown server $s (modeld | fastapi)" >&2; exit 2 ;;
  esac
done
echo "machine: $ncpu CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(nproc --all) online;" \
  "${secs}s x $runs runs per point, median"
echo
"${util[@]}" report "$work/results" "$work/rss" "$work/loadstats" "$work/swapres"
