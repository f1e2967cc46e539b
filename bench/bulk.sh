#!/usr/bin/env bash
# bench/bulk.sh - a 1,000,000-row churn CSV through POST /api/churn/bulk (issue 11 goal: <= 10 s),
# with the upload time, the job's run time and the server's peak RSS, for each binary given
# (default build/release/modeld, built if missing): pass an older build too to compare. See
# bench/bulk.py. Not a timed test.
#
# Env: BENCH_BULK_ROWS (1000000), BENCH_BULK_ARGS (extra `modeld serve` arguments, e.g.
#      "--predict-log-sample 0").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}
if [ $# -eq 0 ] && [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
if [ $# -eq 0 ]; then set -- "$BIN"; fi
/usr/bin/python3 "$ROOT/bench/bulk.py" "$@"
