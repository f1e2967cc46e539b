#!/usr/bin/env bash
# bench/onnx.sh - modeld's ONNX engine against onnxruntime on three exported networks.
#
# 1. Builds the engine (Release, build/bench) and the in-process driver bench/onnx_bench.c.
# 2. Installs onnxruntime-node into bench/node_modules (npm, --ignore-scripts: the CPU runtime
#    ships inside the npm package; nothing is fetched from any other host).
# 3. Exports the MLP, the CNN classifier and the ESPCN x2 net with Debian's PyTorch.
# 4. For each model and 1 / 2 intra-op threads, runs modeld then onnxruntime, one after the
#    other, each in its own process: median of BENCH_RUNS (200) runs after BENCH_WARMUP (20),
#    wall and CPU time per inference, load time and peak RSS.
# 5. Checks that both runtimes give the same outputs (|a-b| <= 1e-5 + 1e-3|b|) and prints the table.
# Results: build/bench/onnx_results.jsonl. Timing is not pass/fail (the machine is shared);
# only an output mismatch or a failed run makes the script fail.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/build/bench"
RUNS="${BENCH_RUNS:-200}"
WARMUP="${BENCH_WARMUP:-20}"
THREADS="${BENCH_THREADS:-1 2}"
MODELS="${BENCH_MODELS:-mlp cnn espcn}"
PY=/usr/bin/python3
ORT_LIB="$ROOT/bench/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"

build_driver() {
  cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$OUT" -j2 --target modeld_onnx modeld_base >/dev/null
  # shellcheck disable=SC2046
  cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I "$ROOT/src" "$ROOT/bench/onnx_bench.c" \
    "$OUT/src/onnx/libmodeld_onnx.a" "$OUT/src/base/libmodeld_base.a" \
    $(pkg-config --libs libprotobuf-c openblas) -ldnnl -fopenmp -lm -lpthread \
    -o "$OUT/onnx_bench"
}

install_ort() {
  if [ ! -f "$ORT_LIB" ]; then
    (cd "$ROOT/bench" && npm install --no-audit --no-fund --ignore-scripts --silent)
  fi
  if [ ! -f "$ORT_LIB" ]; then
    echo "onnx.sh: onnxruntime-node did not ship $ORT_LIB" >&2
    exit 1
  fi
}

export_models() {
  local stamp="$OUT/models/.exported"
  if [ ! -f "$stamp" ] || [ "$ROOT/bench/onnx_export.py" -nt "$stamp" ]; then
    "$PY" "$ROOT/bench/onnx_export.py" "$OUT/models"
    touch "$stamp"
  fi
}

run_all() {
  : > "$OUT/onnx_results.jsonl"
  for m in $MODELS; do
    local base="$OUT/models/$m" dims
    dims="$(cat "$base.shape")"
    for t in $THREADS; do
      echo "== $m, $t thread(s)" >&2
      "$OUT/onnx_bench" "$base.onnx" "$base.in.bin" "$dims" --threads "$t" --runs "$RUNS" \
        --warmup "$WARMUP" --out "$base.modeld.$t.bin" |
        sed "s/^{/{\"model\":\"$m\",/" >> "$OUT/onnx_results.jsonl"
      node "$ROOT/bench/onnx_ort.js" "$base.onnx" "$base.in.bin" "$dims" --threads "$t" \
        --runs "$RUNS" --warmup "$WARMUP" --out "$base.ort.$t.bin" |
        sed "s/^{/{\"model\":\"$m\",/" >> "$OUT/onnx_results.jsonl"
    done
  done
}

report() {
  "$PY" - "$OUT" "$THREADS" <<'EOF'
import json
import sys

import numpy as np

out, threads = sys.argv[1], sys.argv[2].split()
rows = [json.loads(l) for l in open(f"{out}/onnx_results.jsonl")]
ok = True
for m in sorted({r["model"] for r in rows}, key=["mlp", "cnn", "espcn"].index):
    for t in threads:
        a = np.fromfile(f"{out}/models/{m}.modeld.{t}.bin", "<f4")
        b = np.fromfile(f"{out}/models/{m}.ort.{t}.bin", "<f4")
        same = a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-5 + 1e-3 * np.abs(b)))
        diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
        print(f"outputs {m:5s} {t} thread(s): {'same' if same else 'DIFFERENT'} "
              f"(max |diff| {diff:.2e}, {b.size} values)")
        ok &= same
print()
hdr = (f"{'model':6s} {'thr':>3s} | {'modeld wall':>11s} {'ort wall':>9s} | {'modeld cpu':>10s} "
       f"{'ort cpu':>8s} {'cpu ratio':>9s} | {'load ms':>15s} | {'peak RSS MB':>13s}")
print(hdr)
print("-" * len(hdr))
by = {(r["model"], r["threads"], r["runtime"]): r for r in rows}
for m in ["mlp", "cnn", "espcn"]:
    for t in threads:
        md, ort = by.get((m, int(t), "modeld")), by.get((m, int(t), "onnxruntime"))
        if not md or not ort:
            continue
        print(f"{m:6s} {t:>3s} | {md['wall_ms']:11.4f} {ort['wall_ms']:9.4f} | "
              f"{md['cpu_ms']:10.4f} {ort['cpu_ms']:8.4f} {md['cpu_ms'] / ort['cpu_ms']:9.2f} | "
              f"{md['load_ms']:6.1f} / {ort['load_ms']:6.1f} | {md['peak_rss_mb']:5.1f} / "
              f"{ort['peak_rss_mb']:5.1f}")
print("\ntimes in ms per inference, medians; load and RSS: modeld / onnxruntime. onnxruntime's "
      "wall time includes its Node binding.")
sys.exit(0 if ok else 1)
EOF
}

mkdir -p "$OUT/models"
build_driver
install_ort
export_models
run_all
report
