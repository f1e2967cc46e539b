#!/usr/bin/env bash
# AI conversion benchmark on the dev corpus (issue 9): per tier and auto, mean SSIM, error
# reduction against the default preset, median bytes, p50/p95 time, routing distribution.
# Builds the release binary unless MODELD_BIN is set; MODELS_DIR, CORPUS and LIMIT as in
# bench/vectorize_ai.py.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MODELD_BIN:-}" ]; then
  make -C "$top" build JOBS="${JOBS:-2}" >/dev/null
  export MODELD_BIN="$top/build/release/modeld"
fi
# CORPUS=build/dev512: the dev images whose longer side is 512 px (the goals' size), symlinked
# there on first use.
if [ "${CORPUS:-}" = build/dev512 ] || [ "${CORPUS:-}" = "$top/build/dev512" ]; then
  export CORPUS="$top/build/dev512"
  if [ ! -d "$CORPUS" ]; then
    mkdir -p "$CORPUS"
    /usr/bin/python3 - "$top/../shared/corpus/dev" "$CORPUS" <<'PY'
import glob, os, sys
from PIL import Image
for f in sorted(glob.glob(sys.argv[1] + "/*.png")):
    try:
        if max(Image.open(f).size) == 512:
            os.symlink(os.path.abspath(f), os.path.join(sys.argv[2], os.path.basename(f)))
    except (OSError, ValueError):
        pass  # the corpus's deliberately broken files
PY
  fi
fi
exec /usr/bin/python3 "$top/bench/vectorize_ai.py"
