#!/usr/bin/env bash
# AI conversion benchmark on the dev corpus (issue 9): per tier and auto, mean SSIM, error
# reduction against the default preset, median bytes, p50/p95 time, routing distribution.
# Builds the release binary unless MODELD_BIN is set; MODELS_DIR, CORPUS and LIMIT as in
# bench/vectorize_ai.py.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MODELD_BIN:-}" ]; then
  make -C "$top" build JOBS="${JOBS:-2}" >/dev/null
  export MODELD_BIN="$top/build/release/modeld"
fi
exec /usr/bin/python3 "$top/bench/vectorize_ai.py"
