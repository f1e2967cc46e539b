#!/usr/bin/env bash
# bench/crypt.sh - the cost of encryption at rest (issue 13): builds bench/crypt_bench.c at -O2
# against src/base and src/store only and prints MiB/s of writing and reading a 64 MiB blob,
# plain and encrypted (XChaCha20-Poly1305, libsodium secretstream), as CPU time of the process
# (the files stay in the page cache: the disk is not measured). Not a timed test.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -std=c17 -O2 -D_GNU_SOURCE -DMODELD_VERSION='"bench"' -I"$top/src" $(pkg-config --cflags libpq) \
  "$top/bench/crypt_bench.c" "$top"/src/base/*.c "$top"/src/store/*.c \
  -o "$work/crypt_bench" -lsqlite3 -lpq -lsodium -ljansson -lcurl -lpthread -lm
echo "== $(lscpu | sed -n 's/^Model name: *//p'), libsodium $(pkg-config --modversion libsodium)"
"$work/crypt_bench" "$work/data" "${CRYPT_BENCH_MIB:-64}"
