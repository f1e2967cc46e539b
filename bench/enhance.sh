#!/usr/bin/env bash
# bench/enhance.sh - the photo enhancement networks (issue 10 section 3): speed against
# onnxruntime, peak memory of a whole job, and quality against bicubic. Not a timed test.
#
# ENHANCE_PARTS="speed memory quality" picks the parts.
# 1. Builds Release (build/bench) and bench/onnx_bench.c, installs onnxruntime-node (bench/), and
#    converts the ESRGAN networks (training/enhance/convert.py) into build/bench/enhance-models.
# 2. Speed: each network and scale on one 128x128 photo crop (a whole network run, no tiling),
#    modeld's engine (onnx_bench, in process) then onnxruntime (onnx_ort.js), one thread each:
#    median CPU time per run over BENCH_RUNS (3) after 1 warm-up, reported as CPU seconds per
#    input megapixel, and the ratio modeld / onnxruntime. Outputs compared (|a-b| <= 0.05 + 1e-3|b|
#    on 0..255 values).
#    Part "fusion" (after speed) runs modeld again with MODELD_ONNX_NO_UPCONV=1 and
#    MODELD_ONNX_NO_CATCONV=1 (the engine without its two graph fusions: Resize + Conv of
#    src/onnx/kernels/upconv.c, Concat + 1x1 Conv + Add of src/onnx/ops/concat.c): its time, and
#    the largest difference between the fused and unfused outputs of every network (<= 0.01).
#    Part "isa" (after speed) runs modeld again restricted to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 for
#    oneDNN's convolutions and sgemm, OPENBLAS_CORETYPE=Haswell for OpenBLAS, GLIBC_TUNABLES
#    for glibc's memcpy (the Concat copies); our own loops are built without -march, so they
#    are SSE2 either way) while onnxruntime keeps the machine's
#    full ISA (it has no switch): a pessimistic bound for AVX2-only CPUs. It first checks with
#    ONEDNN_VERBOSE that oneDNN honours the cap (no avx512 implementation ran) and lists the
#    implementations used (build/bench/enhance_isa_impls.txt). At AVX2 our own Winograd F(4,3)
#    runs the 3x3 convolutions (src/onnx/kernels/wino.c; MODELD_ONNX_CONV3X3=auto picks it where
#    oneDNN has no Winograd); with ENHANCE_ISA_ONEDNN=1 (default) each network also runs at AVX2
#    with MODELD_ONNX_CONV3X3=onednn (oneDNN's direct AVX2 kernels, as before it). Each AVX2 run
#    is followed by an onnxruntime run of the same network, and the AVX2 ratios are taken against
#    that one. The CPU's model and its AVX2 / AVX-512 flags are printed first.
#    Part "wino" (full ISA): ours with MODELD_ONNX_CONV3X3=onednn (oneDNN's AVX-512 Winograd),
#    =winograd (ours for every 3x3 stride-1 convolution) and auto (ours where it measured faster:
#    up to 32 output channels), alternately, each network in a row; the ratios to onednn.
# 3. Memory: `modeld enhance` of a 2000x2000 (4 MP) photo at x4 per quality: peak RSS (the whole
#    process: networks, tiles, the 8000x8000 result and its encoding) and wall time.
#    ENHANCE_RSS_QUALITIES (default "fast balanced best"; best takes minutes on 2 cores).
# 4. Quality: the 256x256 centre crops of python3-skimage's colour photos, downscaled x4
#    (bicubic, PIL), brought back x4 by each quality and by bicubic: PSNR and SSIM against the
#    crop, and the gain over bicubic.
# Results: build/bench/enhance_*.jsonl and the tables printed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/build/bench"
PY=/usr/bin/python3
RUNS="${BENCH_RUNS:-3}"
NETS="${ENHANCE_NETS:-slim medium thick}"
SCALES="${ENHANCE_SCALES:-2 3 4 8}"
RSS_QUALITIES="${ENHANCE_RSS_QUALITIES:-fast balanced best}"
PARTS="${ENHANCE_PARTS:-speed fusion isa wino memory quality}" # a subset for a quicker look
ISA_ONEDNN="${ENHANCE_ISA_ONEDNN:-1}"
ORT_LIB="$ROOT/bench/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
MODELS="$OUT/enhance-models"
DATA="$OUT/enhance-data"

build() {
  bash "$ROOT/scripts/deps.sh" build
  cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
  cmake --build "$OUT" -j2 --target modeld >/dev/null
  # shellcheck disable=SC2046
  cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I "$ROOT/src" "$ROOT/bench/onnx_bench.c" \
    "$OUT/src/onnx/libmodeld_onnx.a" "$OUT/src/base/libmodeld_base.a" \
    $(pkg-config --libs libprotobuf-c openblas) -ldnnl -fopenmp -lm -lpthread \
    -o "$OUT/onnx_bench"
  if [ ! -f "$ORT_LIB" ]; then
    (cd "$ROOT/bench" && npm install --no-audit --no-fund --ignore-scripts --silent)
  fi
  mkdir -p "$MODELS/models" "$DATA"
  "$PY" "$ROOT/training/enhance/convert.py" --npm "$ROOT/build/npm/node_modules" \
    --out "$MODELS/models" >/dev/null
}

# The inputs: a 128x128 crop (raw float32 NCHW 0..255), a 4 MP photo, the x4 quality set.
make_data() {
  "$PY" - "$DATA" <<'EOF'
import os
import sys

import numpy as np
from PIL import Image

d = sys.argv[1]
sk = "/usr/lib/python3/dist-packages/skimage/data"
photos = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
photos = [p for p in photos if os.path.exists(os.path.join(sk, p))]
ast = np.asarray(Image.open(os.path.join(sk, "astronaut.png")).convert("RGB"))
crop = ast[100:228, 150:278].astype(np.float32).transpose(2, 0, 1)[None]
crop.tofile(os.path.join(d, "crop128.bin"))
Image.open(os.path.join(sk, "coffee.png")).convert("RGB").resize((2000, 2000), Image.BICUBIC) \
    .save(os.path.join(d, "photo4mp.png"))
os.makedirs(os.path.join(d, "q", "lr"), exist_ok=True)
for p in photos:
    im = Image.open(os.path.join(sk, p)).convert("RGB")
    w, h = im.size
    hr = im.crop((w // 2 - 128, h // 2 - 128, w // 2 + 128, h // 2 + 128))
    stem = os.path.splitext(p)[0]
    hr.save(os.path.join(d, "q", stem + ".hr.png"))
    hr.resize((64, 64), Image.BICUBIC).save(os.path.join(d, "q", "lr", stem + ".png"))
EOF
}

speed() {
  : > "$OUT/enhance_speed.jsonl"
  for n in $NETS; do
    for s in $SCALES; do
      local m="$MODELS/models/esrgan-$n-x$s/1/model.onnx"
      echo "== speed $n x$s" >&2
      "$OUT/onnx_bench" "$m" "$DATA/crop128.bin" 1,3,128,128 --threads 1 --runs "$RUNS" \
        --warmup 1 --out "$DATA/$n$s.modeld.bin" |
        sed "s/^{/{\"net\":\"$n\",\"scale\":$s,/" >> "$OUT/enhance_speed.jsonl"
      node "$ROOT/bench/onnx_ort.js" "$m" "$DATA/crop128.bin" 1,3,128,128 --threads 1 \
        --runs "$RUNS" --warmup 1 --out "$DATA/$n$s.ort.bin" |
        sed "s/^{/{\"net\":\"$n\",\"scale\":$s,/" >> "$OUT/enhance_speed.jsonl"
    done
  done
}

fusion() {
  : > "$OUT/enhance_unfused.jsonl"
  for n in $NETS; do
    for s in $SCALES; do
      local m="$MODELS/models/esrgan-$n-x$s/1/model.onnx"
      echo "== unfused $n x$s" >&2
      MODELD_ONNX_NO_UPCONV=1 MODELD_ONNX_NO_CATCONV=1 "$OUT/onnx_bench" "$m" "$DATA/crop128.bin" 1,3,128,128 --threads 1 \
        --runs "$RUNS" --warmup 1 --out "$DATA/$n$s.unfused.bin" |
        sed "s/^{/{\"net\":\"$n\",\"scale\":$s,/; s/\"runtime\":\"modeld\"/\"runtime\":\"unfused\"/" \
        >> "$OUT/enhance_unfused.jsonl"
    done
  done
}

AVX2_ENV=(ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
  "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD")

# One onnx_bench run of network $1 at scale $2 tagged runtime $3 into file $4, with the env
# assignments that follow (ours: onnx_bench, in process).
ours_run() {
  local n=$1 s=$2 tag=$3 f=$4
  shift 4
  env "$@" "$OUT/onnx_bench" "$MODELS/models/esrgan-$n-x$s/1/model.onnx" "$DATA/crop128.bin" \
    1,3,128,128 --threads 1 --runs "$RUNS" --warmup 1 --out "$DATA/$n$s.$tag.bin" |
    sed "s/^{/{\"net\":\"$n\",\"scale\":$s,/; s/\"runtime\":\"modeld\"/\"runtime\":\"$tag\"/" >> "$f"
}

isa() {
  local v="$OUT/enhance_isa_impls.txt" m1
  m1="$MODELS/models/esrgan-$(echo "$NETS" | awk '{print $NF}')-x$(echo "$SCALES" | awk '{print $1}')/1/model.onnx"
  env "${AVX2_ENV[@]}" ONEDNN_VERBOSE=1 "$OUT/onnx_bench" "$m1" \
    "$DATA/crop128.bin" 1,3,128,128 --threads 1 --runs 1 --warmup 0 > "$v.raw"
  grep '^onednn_verbose,info,cpu,isa' "$v.raw" > "$v" || true
  grep '^onednn_verbose,exec' "$v.raw" | cut -d, -f4,5 | sort | uniq -c >> "$v" || true
  cat "$v" >&2
  if grep -qi 'avx512\|amx' <(grep '^onednn_verbose,exec' "$v.raw"); then
    echo "isa: ONEDNN_MAX_CPU_ISA=AVX2 not honoured (avx512 implementations ran)" >&2
    return 1
  fi
  lscpu | sed -n 's/^Model name: *//p' > "$OUT/enhance_isa_cpu.txt"
  for f in avx2 fma avx512f avx512bw avx512vl; do
    if grep -qw "$f" /proc/cpuinfo; then echo "$f: yes"; else echo "$f: no"; fi
  done >> "$OUT/enhance_isa_cpu.txt"
  cat "$OUT/enhance_isa_cpu.txt" >&2
  : > "$OUT/enhance_isa.jsonl"
  for n in $NETS; do
    for s in $SCALES; do
      local m="$MODELS/models/esrgan-$n-x$s/1/model.onnx"
      echo "== avx2 $n x$s" >&2
      ours_run "$n" "$s" avx2 "$OUT/enhance_isa.jsonl" "${AVX2_ENV[@]}" MODELD_ONNX_CONV3X3=auto
      if [ "$ISA_ONEDNN" = 1 ]; then
        ours_run "$n" "$s" avx2_onednn "$OUT/enhance_isa.jsonl" "${AVX2_ENV[@]}" \
          MODELD_ONNX_CONV3X3=onednn
      fi
      node "$ROOT/bench/onnx_ort.js" "$m" "$DATA/crop128.bin" 1,3,128,128 --threads 1 \
        --runs "$RUNS" --warmup 1 --out "$DATA/$n$s.ort.bin" |
        sed "s/^{/{\"net\":\"$n\",\"scale\":$s,/; s/\"runtime\":\"onnxruntime\"/\"runtime\":\"ort_isa\"/" \
        >> "$OUT/enhance_isa.jsonl"
    done
  done
}

# Full ISA: oneDNN's AVX-512 Winograd against ours, alternately per network.
wino() {
  : > "$OUT/enhance_wino.jsonl"
  for n in $NETS; do
    for s in $SCALES; do
      echo "== full ISA, 3x3 by onednn / winograd / auto: $n x$s" >&2
      for mode in onednn winograd auto; do
        ours_run "$n" "$s" "full_$mode" "$OUT/enhance_wino.jsonl" MODELD_ONNX_CONV3X3=$mode
      done
    done
  done
}

memory() {
  : > "$OUT/enhance_rss.jsonl"
  for q in $RSS_QUALITIES; do
    echo "== 4 MP x4 $q" >&2
    /usr/bin/time -f "{\"quality\":\"$q\",\"peak_rss_kb\":%M,\"wall_s\":%e,\"cpu_s\":%U}" \
      -o "$DATA/rss.$q.json" "$OUT/modeld" enhance "$DATA/photo4mp.png" -o "$DATA/photo4mp.$q.jpg" \
      --scale 4 --quality "$q" --data-dir "$MODELS" -q 2>/dev/null >/dev/null
    tail -1 "$DATA/rss.$q.json" >> "$OUT/enhance_rss.jsonl"
  done
}

quality() {
  for q in fast balanced best; do
    echo "== quality $q" >&2
    mkdir -p "$DATA/q/$q"
    "$OUT/modeld" enhance "$DATA/q/lr" -o "$DATA/q/$q" --scale 4 --quality "$q" --format png \
      --data-dir "$MODELS" -q 2>/dev/null >/dev/null
  done
}

report() {
  "$PY" - "$OUT" "$DATA" "$NETS" "$SCALES" <<'EOF'
import glob
import json
import os
import sys

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim

out, data, nets, scales = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
ok = True
rows = [json.loads(l) for l in open(f"{out}/enhance_speed.jsonl")] \
    if os.path.exists(f"{out}/enhance_speed.jsonl") else []
for extra in ("unfused", "isa"):
    rows += [json.loads(l) for l in open(f"{out}/enhance_{extra}.jsonl")] \
        if os.path.exists(f"{out}/enhance_{extra}.jsonl") else []
by = {(r["net"], r["scale"], r["runtime"]): r for r in rows}
mp = 128 * 128 / 1e6
print(f"{'net':7s} {'x':>2s} | {'modeld cpu s/MP':>15s} {'ort cpu s/MP':>12s} {'ratio':>6s} | "
      f"{'peak RSS MB modeld/ort':>22s} | outputs | unfused: ratio, max |fused - unfused|"
      f" | AVX2: ratio, max |avx2 - full|")
for n in nets:
    for s in scales:
        a, b = by.get((n, int(s), "modeld")), by.get((n, int(s), "onnxruntime"))
        if not a or not b:
            continue
        x = np.fromfile(f"{data}/{n}{s}.modeld.bin", "<f4")
        y = np.fromfile(f"{data}/{n}{s}.ort.bin", "<f4")
        same = x.shape == y.shape and bool(np.all(np.abs(x - y) <= 0.05 + 1e-3 * np.abs(y)))
        ok &= same
        u, unf = by.get((n, int(s), "unfused")), " | " + " " * 14
        if u:
            z = np.fromfile(f"{data}/{n}{s}.unfused.bin", "<f4")
            d = float(np.abs(x - z).max()) if x.shape == z.shape else float("inf")
            ok &= d <= 0.01
            unf = f" | {u['cpu_ms'] / b['cpu_ms']:6.2f}, {d:.4f}"
        v, av = by.get((n, int(s), "avx2")), ""
        if v:
            z = np.fromfile(f"{data}/{n}{s}.avx2.bin", "<f4")
            d = float(np.abs(x - z).max()) if x.shape == z.shape else float("inf")
            ok &= d <= 0.05
            w = by.get((n, int(s), "ort_isa"), b) # onnxruntime run right after, else speed's
            av = f" | {v['cpu_ms'] / w['cpu_ms']:6.2f}, {d:.4f}"
        print(f"{n:7s} {s:>2s} | {a['cpu_ms'] / 1e3 / mp:15.2f} {b['cpu_ms'] / 1e3 / mp:12.2f} "
              f"{a['cpu_ms'] / b['cpu_ms']:6.2f} | {a['peak_rss_mb']:10.0f} / {b['peak_rss_mb']:9.0f} | "
              f"{'same' if same else 'DIFFERENT'} (max |diff| {float(np.abs(x - y).max()):.3f}){unf}{av}")
print("\nCPU seconds per input megapixel, one thread, 128x128 input, medians; peak RSS of the "
      "benchmark process.\n")
rows += [json.loads(l) for l in open(f"{out}/enhance_wino.jsonl")] \
    if os.path.exists(f"{out}/enhance_wino.jsonl") else []
by = {(r["net"], r["scale"], r["runtime"]): r for r in rows}
if any(k[2] == "avx2" for k in by):
    cpu = open(f"{out}/enhance_isa_cpu.txt").read().split("\n") \
        if os.path.exists(f"{out}/enhance_isa_cpu.txt") else []
    print("AVX2: ours capped at AVX2 (own Winograd for the 3x3 and 5x5 convs; oneDNN direct AVX2 "
          "kernels) against onnxruntime at full ISA, run by run; CPU: " + ", ".join(c for c in cpu if c))
    print(f"{'net':7s} {'x':>2s} | {'own wino s/MP':>13s} {'oneDNN s/MP':>11s} {'ort s/MP':>9s} | "
          f"{'own/ort':>7s} {'oneDNN/ort':>10s} | max |avx2 - ort|")
    for n in nets:
        for s in scales:
            v, o = by.get((n, int(s), "avx2")), by.get((n, int(s), "avx2_onednn"))
            w = by.get((n, int(s), "ort_isa"))
            if not v or not w:
                continue
            z = np.fromfile(f"{data}/{n}{s}.avx2.bin", "<f4")
            ref = f"{data}/{n}{s}.ort.bin"
            d = float(np.abs(z - np.fromfile(ref, "<f4")).max()) if os.path.exists(ref) else float("nan")
            ok &= not d > 0.05
            od = f"{o['cpu_ms'] / 1e3 / mp:11.2f}" if o else " " * 11
            orr = f"{o['cpu_ms'] / w['cpu_ms']:10.2f}" if o else " " * 10
            print(f"{n:7s} {s:>2s} | {v['cpu_ms'] / 1e3 / mp:13.2f} {od} {w['cpu_ms'] / 1e3 / mp:9.2f} | "
                  f"{v['cpu_ms'] / w['cpu_ms']:7.2f} {orr} | {d:.4f}")
    print()
if any(k[2] == "full_onednn" for k in by):
    print("Full ISA, ours only: 3x3 convolutions by oneDNN (AVX-512 Winograd) / our Winograd for all "
          "/ auto (ours for 3x3 up to 32 output channels); CPU s per MP and ratio to oneDNN:")
    for n in nets:
        for s in scales:
            a, b, c = (by.get((n, int(s), "full_" + k)) for k in ("onednn", "winograd", "auto"))
            if not a or not b or not c:
                continue
            za, zb = (np.fromfile(f"{data}/{n}{s}.full_{k}.bin", "<f4") for k in ("onednn", "winograd"))
            d = float(np.abs(za - zb).max())
            ok &= d <= 0.05
            print(f"  {n:7s} x{s:1s}: {a['cpu_ms'] / 1e3 / mp:7.2f} / {b['cpu_ms'] / 1e3 / mp:7.2f} "
                  f"({b['cpu_ms'] / a['cpu_ms']:.2f}) / {c['cpu_ms'] / 1e3 / mp:7.2f} "
                  f"({c['cpu_ms'] / a['cpu_ms']:.2f}), max |wino - onednn| {d:.4f}")
    print()
if os.path.exists(f"{out}/enhance_rss.jsonl"):
    print("4 MP (2000x2000) x4 job, `modeld enhance` (all cores):")
    for l in open(f"{out}/enhance_rss.jsonl"):
        r = json.loads(l)
        print(f"  {r['quality']:9s} peak RSS {r['peak_rss_kb'] / 1024:7.0f} MB, wall {r['wall_s']:7.1f} s, "
              f"user CPU {r['cpu_s']:7.1f} s")
    print()
res = {}
for hr_path in sorted(glob.glob(f"{data}/q/*.hr.png")):
    stem = os.path.basename(hr_path)[:-7]
    hr = np.asarray(Image.open(hr_path).convert("RGB"))
    lr = Image.open(f"{data}/q/lr/{stem}.png")
    cand = {"bicubic": np.asarray(lr.resize((256, 256), Image.BICUBIC))}
    for q in ("fast", "balanced", "best"):
        p = f"{data}/q/{q}/{stem}_x4.png"
        if os.path.exists(p):
            cand[q] = np.asarray(Image.open(p).convert("RGB"))
    for k, v in cand.items():
        res.setdefault(k, []).append((psnr(hr, v, data_range=255),
                                      ssim(hr, v, channel_axis=2, data_range=255)))
if res:
    base = np.mean([p for p, _ in res["bicubic"]]), np.mean([s for _, s in res["bicubic"]])
    print(f"x4 quality on {len(res['bicubic'])} skimage photos (256x256 centre crops, downscaled x4):")
    print(f"  {'method':9s} {'PSNR dB':>8s} {'gain':>6s} {'SSIM':>7s} {'gain':>7s}")
    for k in ("bicubic", "fast", "balanced", "best"):
        if k in res:
            p, s = np.mean([a for a, _ in res[k]]), np.mean([b for _, b in res[k]])
            print(f"  {k:9s} {p:8.2f} {p - base[0]:+6.2f} {s:7.4f} {s - base[1]:+7.4f}")
sys.exit(0 if ok else 1)
EOF
}

build
make_data
for p in $PARTS; do "$p"; done
report
