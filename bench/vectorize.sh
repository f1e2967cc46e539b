#!/usr/bin/env bash
# bench/vectorize.sh - `modeld vectorize` against VTracer (@neplex/vectorizer 0.1.0) on every
# good image of ../shared/corpus/dev, one tool after the other, each SVG scored with
# ../shared/tools/score_svg.py. Prints per class and overall: mean and median SSIM (RGB, grey),
# median bytes, paths, time and CPU time, side by side with ratios; then our quality preset
# against VTracer's best spline settings, the RGBA-vs-RGB transparency comparison, and the
# issue's goals. A few minutes on two cores.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing), MODELD_SHARED_DIR,
#      BENCH_OUT (default bench/out/vectorize; wiped at the start).
# Both tools run single-threaded over the files (modeld -j1) so times compare per image.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${MODELD_SHARED_DIR:-$ROOT/../shared}
CORPUS=$SHARED/corpus/dev
OUT=${BENCH_OUT:-$ROOT/bench/out/vectorize}
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}
PY=/usr/bin/python3
VT=$ROOT/bench/vtracer

if [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
if [ ! -d "$VT/node_modules/@neplex/vectorizer" ]; then
  echo "installing VTracer (npm @neplex/vectorizer)" >&2
  (cd "$VT" && npm install --no-audit --no-fund --ignore-scripts --silent)
fi

rm -rf "$OUT"
mkdir -p "$OUT"
$PY "$ROOT/bench/vectorize_score.py" prepare "$CORPUS" "$OUT"

# modeld: exit status 1 means some file failed; the report names it, so keep going.
ours() { # run-name input-dir [options...]
  local run=$1 dir=$2
  shift 2
  echo "modeld vectorize: $run" >&2
  "$BIN" vectorize "$dir" -o "$OUT/$run" -j1 --no-quality --json -q "$@" >"$OUT/$run.json" || true
}
vtracer() { # run-name settings input-dir
  echo "vtracer: $1" >&2
  node "$VT/run.js" "$2" "$OUT/$1" "$3"/*.png >"$OUT/$1.jsonl" || true
}

ours ours_default "$OUT/in"
ours ours_quality "$OUT/in" --preset quality
ours ours_rgb "$OUT/in_rgb"
vtracer vtracer_default default "$OUT/in"
vtracer vtracer_best best "$OUT/in"
vtracer vtracer_rgb default "$OUT/in_rgb"

echo "scoring" >&2
$PY "$ROOT/bench/vectorize_score.py" report "$CORPUS" "$OUT"
