#!/usr/bin/env bash
# Time of the AI feature extractor (vec_features) per image: builds bench/features_bench.c at
# -O2 against src/base, src/image and src/vectorize and runs it on the images given, or on the
# 512 px images of ../shared/corpus/dev (else tests/fixtures/corpus) when none are given.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -std=c17 -O2 -D_GNU_SOURCE -DMODELD_VERSION='"bench"' -I"$top/src" \
  $(pkg-config --cflags cairo) "$top/bench/features_bench.c" "$top"/src/base/*.c \
  "$top"/src/image/*.c "$top"/src/vectorize/*.c -o "$work/features_bench" \
  $(pkg-config --libs cairo) -lspng -lturbojpeg -lwebp -ltiff -lz -lpthread -lm
if [ $# -eq 0 ]; then
  dir="$top/../shared/corpus/dev"
  [ -d "$dir" ] || dir="$top/tests/fixtures/corpus"
  set -- $(ls "$dir"/*.png | head -40)
fi
"$work/features_bench" "$@"
