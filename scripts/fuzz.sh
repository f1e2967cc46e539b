#!/usr/bin/env bash
# Runs every libFuzzer target in build/fuzz for N seconds each (default 5), starting from the
# seeds in tests/fuzz/corpus/<target>/ when present. New inputs go to a scratch directory so
# the committed seeds stay small. Fails if any target finds a crash, leak or timeout.
set -euo pipefail
secs=${1:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
count=0
for bin in "$top"/build/fuzz/tests/fuzz/*_fuzz; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  seeds="$top/tests/fuzz/corpus/$name"
  mkdir -p "$scratch/$name"
  args=("$scratch/$name")
  [ -d "$seeds" ] && args+=("$seeds")
  echo "fuzz: $name for ${secs}s"
  if ! (cd "$scratch" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=0 "${args[@]}" >"$scratch/$name.log" 2>&1); then
    echo "fuzz: $name FAILED"; tail -50 "$scratch/$name.log"; status=1
  fi
  count=$((count + 1))
done
echo "fuzz: $count targets run"
exit $status
