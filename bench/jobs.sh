#!/usr/bin/env bash
# bench/jobs.sh - the durable job queue's throughput (issue 10): the queue's own overhead in
# empty jobs per second, and enhancement jobs per minute at --workers 1 and 2 (slim x4 of a
# 256x256 photo). See bench/jobs.py. A minute or two on two cores; not a timed test.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing), BENCH_EMPTY_JOBS (200),
#      BENCH_ENHANCE_JOBS (12).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}
if [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
/usr/bin/python3 "$ROOT/bench/jobs.py" "$BIN" "$ROOT/build/npm/node_modules" "$ROOT/training/enhance/convert.py"
