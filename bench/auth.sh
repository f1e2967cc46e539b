#!/usr/bin/env bash
# Per-call cost of the auth/store hot path (API-key and JWT checks, rate-limit takes, audit
# appends, uploads). Builds bench/auth_bench.c at -O2 against src/base, src/store and src/auth
# only, runs it on a scratch data dir, prints ns per call.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -std=c17 -O2 -D_GNU_SOURCE -DMODELD_VERSION='"bench"' -I"$top/src" $(pkg-config --cflags libpq) \
  "$top/bench/auth_bench.c" "$top"/src/base/*.c "$top"/src/store/*.c "$top"/src/auth/*.c \
  -o "$work/auth_bench" -lsqlite3 -lpq -lsodium -ljansson -lpthread -lm
"$work/auth_bench" "$work/data"
