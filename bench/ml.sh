#!/usr/bin/env bash
# Tree-model inference: the XGBoost adapter (src/xgb over libxgboost) and our ai.onnx.ml
# TreeEnsembleClassifier (src/onnx) against onnxruntime-node, on one 300-tree XGBoost model
# (3 classes, depth 6, 20 features; bench/ml_model.py). Prints load times and, for 1 row and
# for 1000 rows, median wall time and CPU time per call, one thread everywhere. Both modeld
# paths are first checked against XGBoost's own probabilities.
# BUILD_DIR (default build/release) must hold a Release build of modeld_{base,xgb,onnx}.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -d "$top/tests/fixtures/onnx_ml/node_modules/onnxruntime-node" ]; then
  (cd "$top/tests/fixtures/onnx_ml" && npm install --no-audit --no-fund --ignore-scripts --silent)
fi
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target modeld_base modeld_xgb modeld_onnx >/dev/null
gcc -std=c17 -O2 -D_GNU_SOURCE -I"$top/src" "$top/bench/ml_bench.c" \
  "$build/src/onnx/libmodeld_onnx.a" "$build/src/xgb/libmodeld_xgb.a" "$build/src/base/libmodeld_base.a" \
  -o "$work/ml_bench" -lprotobuf-c -ldnnl -lopenblas -lxgboost -ljansson -fopenmp -lpthread -lm

/usr/bin/python3 "$top/bench/ml_model.py" "$work"
echo "modeld:"
OMP_NUM_THREADS=1 "$work/ml_bench" "$work"
node "$top/bench/ml_ort.js" "$work"
