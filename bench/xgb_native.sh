#!/usr/bin/env bash
# Tree models: our own tree walk (src/xgb/forest.c, what xgb_predict uses) and TreeSHAP
# (src/xgb/treeshap.c, what xgb_contributions uses) against libxgboost
# (xgb_predict_reference) on every shipped XGBoost model, one thread, 1 row and 1000 rows per
# call: median microseconds per call and the speed-up. The two are first compared (1e-5).
# BUILD_DIR (default build/release) must hold a Release build of modeld_{base,xgb}.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target modeld_base modeld_xgb >/dev/null
gcc -std=c17 -O2 -D_GNU_SOURCE -I"$top/src" "$top/bench/xgb_native_bench.c" \
  "$build/src/xgb/libmodeld_xgb.a" "$build/src/base/libmodeld_base.a" \
  -o "$work/xgb_native_bench" -lxgboost -ljansson -fopenmp -lpthread -lm

OMP_NUM_THREADS=1 "$work/xgb_native_bench" "$top/models" breast-cancer-xgb churn profitability \
  revenue-leak pricing budget demand anomaly
