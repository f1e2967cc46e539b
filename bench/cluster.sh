#!/usr/bin/env bash
# bench/cluster.sh - the cluster benchmark (issue 12 §3; not a timed test): a throwaway
# PostgreSQL, redis-server, nginx on deploy/nginx/modeld.conf and the release modeld on loopback
# (bench/cluster.py): through nginx, requests/s of a small JSON route and of cached conversions
# with 1 and 2 serve nodes, jobs per minute with 1 and 2 workers, with the CPU seconds of each
# process group; then the job-claim overhead of PostgreSQL against SQLite (bench/store_claim.sh).
# Everything shares this machine's CPUs: on 2 cores, two nodes cannot scale as two machines.
#
# Env: MODELD_BIN (default build/release/modeld, built if missing), BENCH_SECS (5),
#      BENCH_CONNS (32), BENCH_JOBS (100).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MODELD_BIN:-$ROOT/build/release/modeld}
if [ ! -x "$BIN" ]; then
  echo "building $BIN" >&2
  cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/release" -j2 --target modeld >/dev/null
fi
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs); nginx $(nginx -v 2>&1 | sed 's/.*\///')," \
     "PostgreSQL $(ls /usr/lib/postgresql | sort -V | tail -n 1), $(redis-server --version | cut -d' ' -f1-3)"
/usr/bin/python3 "$ROOT/bench/cluster.py" "$BIN"
echo
echo "== job claims: PostgreSQL against SQLite (bench/store_claim.sh)"
bash "$ROOT/bench/store_claim.sh"
