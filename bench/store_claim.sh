#!/usr/bin/env bash
# bench/store_claim.sh - job claim overhead of the PostgreSQL store against SQLite (issue 12):
# builds bench/store_claim_bench.c at -O2 against src/base and src/store only, runs it on a
# scratch SQLite data dir, then on a throwaway PostgreSQL (tests/pg/pgtmp.sh: unix socket,
# fsync off, as the test server is) and prints microseconds per call: insert, claim, claim +
# succeed with one caller, and the throughput of 4 callers with a store handle each (as 4
# worker processes). Not a timed test.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -std=c17 -O2 -D_GNU_SOURCE -DMODELD_VERSION='"bench"' -I"$top/src" $(pkg-config --cflags libpq) \
  "$top/bench/store_claim_bench.c" "$top"/src/base/*.c "$top"/src/store/*.c \
  -o "$work/store_claim_bench" -lsqlite3 -lpq -lsodium -ljansson -lpthread -lm
echo "== SQLite (WAL, synchronous=NORMAL)"
"$work/store_claim_bench" "$work/sqlite"
echo "== PostgreSQL $(ls /usr/lib/postgresql | sort -V | tail -n 1) (unix socket, fsync off)"
"$top/tests/pg/pgtmp.sh" sh -c '"$0" "$1" "$MODELD_TEST_PG"' "$work/store_claim_bench" "$work/pg"
