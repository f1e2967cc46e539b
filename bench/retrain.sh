#!/usr/bin/env bash
# bench/retrain.sh - retraining time per retrainable model (issue 11 §4): one POST
# /api/admin/retrain per model on rows of its validation split, and on the full public data where
# build/predict-data has it (see bench/retrain.py). A minute or so on two cores; not a timed
# test.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing: bench/lib.sh modeld_bin).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$top/bench/lib.sh"
modeld_bin
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
"$py" "$top/bench/retrain.py" "$bin" "$top"
