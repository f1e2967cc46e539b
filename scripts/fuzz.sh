#!/usr/bin/env bash
# Runs every libFuzzer target in build/fuzz for N seconds each (default 5), starting from the
# seeds in tests/fuzz/corpus/<target>/ when present. New inputs go to a scratch directory so
# the committed seeds stay small. Fails if any target finds a crash, leak or timeout (the
# crashing input is copied to build/fuzz/findings/<target>/ to be kept as a seed once fixed).
# Usage: scripts/fuzz.sh [SECS] [TARGET...]   FUZZ_JOBS=N runs N targets at once (default 1).
set -euo pipefail
secs=${1:-5}
shift || true
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FUZZ_JOBS:-1}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run_one() { # bin -> 0 | 1
  local bin=$1 name seeds
  name=$(basename "$bin")
  seeds="$top/tests/fuzz/corpus/$name"
  mkdir -p "$scratch/$name"
  local args=("$scratch/$name")
  [ -d "$seeds" ] && args+=("$seeds")
  echo "fuzz: $name for ${secs}s"
  if ! (cd "$scratch" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$scratch/$name-" "${args[@]}" >"$scratch/$name.log" 2>&1); then
    echo "fuzz: $name FAILED"; tail -50 "$scratch/$name.log"
    mkdir -p "$top/build/fuzz/findings/$name"
    cp "$scratch/$name"-* "$top/build/fuzz/findings/$name/" 2>/dev/null || true
    return 1
  fi
  echo "fuzz: $name ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name.log" | grep -o '[0-9]*$') runs)"
}
export -f run_one
export secs top scratch

bins=()
if [ $# -gt 0 ]; then
  for t in "$@"; do bins+=("$top/build/fuzz/tests/fuzz/$t"); done
else
  for bin in "$top"/build/fuzz/tests/fuzz/*_fuzz; do [ -x "$bin" ] && bins+=("$bin"); done
fi
status=0
printf '%s\n' "${bins[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || status=1
echo "fuzz: ${#bins[@]} targets run"
exit $status
