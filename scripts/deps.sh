#!/usr/bin/env bash
# Installs every Debian (and npm) package that modeld's build, tests and web tests use,
# when it is missing. Idempotent and quiet when everything is already there.
# Usage: scripts/deps.sh [build|test|bench|models]   (default: test, which includes build)
set -euo pipefail

what=${1:-test}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

BUILD_PKGS=(
  build-essential cmake pkg-config ca-certificates
  libmicrohttpd-dev libwslay-dev libssl-dev libjansson-dev libsqlite3-dev libpq-dev libsodium-dev zlib1g-dev
  libcurl4-openssl-dev libhiredis-dev
  libspng-dev libturbojpeg0-dev libwebp-dev libtiff-dev libcairo2-dev
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libdnnl-dev libopenblas-dev libxgboost-dev
  python3 python3-numpy python3-onnx python3-pil opencv-data
)
TEST_PKGS=(
  clang libclang-rt-14-dev libcmocka-dev
  python3 python3-pytest python3-requests python3-numpy python3-skimage python3-onnx python3-xgboost python3-sklearn
  python3-jsonschema python3-websocket python3-torch python3-pil
  librsvg2-bin libonnx-testdata chromium nodejs curl jq
  postgresql util-linux redis-server nginx-light python3-yaml prometheus kubernetes-client
)
# `make models`: retraining the shipped models (training/).
MODELS_PKGS=(
  python3 python3-numpy python3-torch python3-onnx python3-sklearn python3-xgboost python3-pil
  python3-scipy r-base-core r-cran-modeldata r-cran-ggplot2
  librsvg2-bin fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 fonts-noto-core
  fonts-freefont-ttf fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea
  fonts-lato fonts-open-sans fonts-comfortaa fonts-cantarell fonts-roboto-unhinted fonts-league-spartan
  papirus-icon-theme breeze-icon-theme tango-icon-theme numix-icon-theme adwaita-icon-theme
)
BENCH_PKGS=(
  wrk python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-torch python3-xgboost
  hyperfine
  util-linux procps
)

pkgs=("${BUILD_PKGS[@]}")
case "$what" in
  build) ;;
  test) pkgs+=("${TEST_PKGS[@]}") ;;
  bench) pkgs+=("${TEST_PKGS[@]}" "${MODELS_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  models) pkgs+=("${MODELS_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench|models]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  # nodejs may come from another Debian-compatible source; a working `node` is enough.
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  # Debian's kubectl is in kubernetes-client; a kubectl from another source is enough.
  if [ "$p" = kubernetes-client ] && command -v kubectl >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The /docs page is made with swagger-ui-dist (npm, pinned). `make run` serves it, so the build
# step installs it, into build/npm (git-ignored), where the binary looks for it at run time. A
# machine without npm or the registry still builds and runs: /docs then answers 503 saying this.
# The super-resolution networks of pl_enhance (issue 10) go there too: UpscalerJS's ESRGAN
# packages (MIT, pinned), TF.js LayersModel files that `make enhance-models` converts to ONNX
# (training/enhance/convert.py); third-party weights, never committed. Without them the server
# runs and enhancement answers 503 model_unavailable. One `npm install` for all of them: npm
# prunes what an earlier --no-save install put there; --legacy-peer-deps: the TF.js runtime the
# packages name as a peer (270 MB) is not needed to read their files.
SWAGGER_UI_VERSION=5.36.0 # keep equal to API_DOCS_SWAGGER_UI_VERSION in src/api/docs.h
ESRGAN_VERSION=1.0.0
npm_dir="$(cd "$(dirname "$0")/.." && pwd)/build/npm"
npm_pkgs=("swagger-ui-dist@$SWAGGER_UI_VERSION" "@upscalerjs/esrgan-slim@$ESRGAN_VERSION"
          "@upscalerjs/esrgan-medium@$ESRGAN_VERSION" "@upscalerjs/esrgan-thick@$ESRGAN_VERSION")
npm_missing=0
for p in "${npm_pkgs[@]}"; do
  name=${p%@*} ver=${p##*@}
  if ! grep -qs "\"version\": \"$ver\"" "$npm_dir/node_modules/$name/package.json"; then
    npm_missing=1
  fi
done
if [ $npm_missing = 1 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null || true
  fi
  mkdir -p "$npm_dir"
  if ! npm install --prefix "$npm_dir" --no-audit --no-fund --ignore-scripts --silent --no-save \
      --legacy-peer-deps "${npm_pkgs[@]}"; then
    echo "deps: could not install ${npm_pkgs[*]}: GET /docs answers 503 and enhancement is unavailable" >&2
  fi
fi

# npm packages for the browser test and benchmarks live in tests/web/node_modules.
if [ "$what" != build ] && [ "$what" != models ] && [ -f "$(dirname "$0")/../tests/web/package.json" ]; then
  d="$(dirname "$0")/../tests/web"
  if [ ! -d "$d/node_modules/playwright-core" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    (cd "$d" && npm install --no-audit --no-fund --ignore-scripts --silent)
  fi
fi
exit 0
