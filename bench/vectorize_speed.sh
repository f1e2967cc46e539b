#!/usr/bin/env bash
# CPU time of the tracer's stages (bench/vectorize_speed.c), old against new in one run, and
# whether their output is identical.
#   bench/vectorize_speed.sh [IMAGE...]       this tree; default images: the 512 px ones of
#                                             ../shared/corpus/dev (else tests/fixtures/corpus)
#   OLD=<git rev> bench/vectorize_speed.sh    also builds <rev> (git archive) and runs both,
#                                             interleaved image by image (REPS each, best
#                                             kept), then compares their fingerprints (SVG
#                                             hash, bytes, SSIM to 17 digits)
# Env: REPS (default 5), SETS (default "default ai poly quality"), CHECK_DIR (images for the
# fingerprint; default the images timed).
# Built like the CMake release build: -O2, ssim.c at -O3, the same ISA flags.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build() { # tree out
  local t=$1 out=$2 objs=()
  for f in "$t"/src/base/*.c "$t"/src/image/*.c "$t"/src/vectorize/*.c "$top/bench/vectorize_speed.c"; do
    local o="$work/$(basename "$out")_$(echo "$f" | md5sum | cut -c1-8).o" opt=-O2
    case $f in */vectorize/ssim.c) opt=-O3 ;; esac
    gcc -std=c17 $opt -D_GNU_SOURCE -DMODELD_VERSION='"bench"' -I"$t/src" $(pkg-config --cflags cairo) \
      -c "$f" -o "$o" &
    objs+=("$o")
    [ "$(jobs -r | wc -l)" -ge 2 ] && wait -n
  done
  wait
  gcc "${objs[@]}" -o "$out" $(pkg-config --libs cairo) -lspng -lturbojpeg -lwebp -ltiff -lz -ljansson -lcurl -lpthread -lm
}
if [ $# -eq 0 ]; then
  dir="$top/../shared/corpus/dev"
  [ -d "$dir" ] || dir="$top/tests/fixtures/corpus"
  set -- $(/usr/bin/python3 -c '
import sys, glob
from PIL import Image
for f in sorted(glob.glob(sys.argv[1] + "/*.png")):
    try:
        if max(Image.open(f).size) == 512: print(f)
    except Exception: pass' "$dir")
fi
sets=()
for s in ${SETS:-default ai poly quality}; do sets+=(-s "$s"); done
build "$top" "$work/new"
bins=("$work/new")
if [ -n "${OLD:-}" ]; then
  mkdir "$work/oldtree"
  git -C "$top" archive "$OLD" src | tar -x -C "$work/oldtree"
  build "$work/oldtree" "$work/old"
  bins=("$work/old" "$work/new")
fi
for img in "$@"; do
  for b in "${bins[@]}"; do
    "$b" -n "${REPS:-5}" "${sets[@]}" "$img" | grep -v '^TOTAL' | sed "s/^/$(basename "$b") /"
  done
done | tee "$work/times"
/usr/bin/python3 - "$work/times" <<'PY'
import sys, collections
tot = collections.defaultdict(lambda: collections.defaultdict(float))
for line in open(sys.argv[1]):
    w = line.split()
    b, s = w[0], w[2]
    for k, v in zip(w[3::2], w[4::2]):
        tot[(b, s)][k] += float(v)
for (b, s), d in sorted(tot.items()):
    print("TOTAL %-4s %-8s " % (b, s) + " ".join("%s %8.1f" % kv for kv in d.items()) +
          "  trace+svg+render+ssim %8.1f" % (d["trace"] + d["svg"] + d["render"] + d["ssim"]))
PY
if [ -n "${OLD:-}" ]; then
  chk=("$@")
  [ -n "${CHECK_DIR:-}" ] && chk=($(ls "$CHECK_DIR"/*.png))
  "$work/old" -c "${sets[@]}" "${chk[@]}" 2>/dev/null > "$work/fp_old" || true
  "$work/new" -c "${sets[@]}" "${chk[@]}" 2>/dev/null > "$work/fp_new" || true
  if cmp -s "$work/fp_old" "$work/fp_new"; then
    echo "fingerprints identical: $(wc -l < "$work/fp_new") conversions (SVG hash, bytes, SSIM to 17 digits)"
  else
    echo "fingerprints DIFFER:"; diff "$work/fp_old" "$work/fp_new" | head -40
  fi
fi
