#!/usr/bin/env bash
# bench/convert_api.sh - the conversion API (issue 4) end to end over HTTP: upload + convert of
# every good dev-corpus image at concurrency 1 and 16 (fresh server each, so no cache hits),
# p50/p99 per size class, throughput, the API's overhead over the library (processing_time the
# server reports, and `modeld vectorize --json -j1` on the same files), and the p99 of a cached
# convert. A client in Python threads (requests); a few minutes on two cores.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing), MODELD_SHARED_DIR,
#      BENCH_OUT (default bench/out/convert_api; wiped at the start).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${MODELD_SHARED_DIR:-$ROOT/../shared}
OUT=${BENCH_OUT:-$ROOT/bench/out/convert_api}
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}

if [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
rm -rf "$OUT"
mkdir -p "$OUT"
/usr/bin/python3 "$ROOT/bench/convert_api.py" "$BIN" "$SHARED/corpus/dev" "$OUT"
