#!/usr/bin/env bash
# bench/retrain.sh - retraining time per retrainable model (issue 11 §4): one POST
# /api/admin/retrain per model on its shipped test split, and on the full public data where
# build/predict-data has it (see bench/retrain.py). A minute or so on two cores; not a timed
# test.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}
if [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
/usr/bin/python3 "$ROOT/bench/retrain.py" "$BIN" "$ROOT"
