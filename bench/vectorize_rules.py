#!/usr/bin/python3
"""How the AI fallback rules (src/pipelines/ai_models.c, ai__rules_params) were chosen: a grid of
candidate rules on a tuning set of Debian icons that is neither the dev corpus (validation only)
nor the Papirus icons the dev corpus holds.

The tuning set: every 53rd SVG under /usr/share/icons/{oxygen,Adwaita,breeze-dark,hicolor}
(symbolic icons left out), at most 48, rendered with rsvg-convert at 256, 384 or 512 px into a
temporary directory. Each rule (filter_speckle x corner_threshold x layer_difference x
color_precision, the default preset otherwise) is traced with `modeld vectorize DIR --json` and
scored by its SSIM error reduction against the default preset: the mean of per-image reductions
and the pooled one, with the count of images past 3x the default's bytes (the size budget). Prints
the 10 best that keep every image within the size budget, then the 3 best that do not.

    MODELD_BIN=build/release/modeld /usr/bin/python3 bench/vectorize_rules.py
"""
import glob
import itertools
import json
import os
import shutil
import statistics
import subprocess
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MODELD_BIN", os.path.join(TOP, "build", "release", "modeld"))
THEMES = ["/usr/share/icons/%s" % t for t in ("oxygen", "Adwaita", "breeze-dark", "hicolor")]


def tuning_set(out):
    svgs = []
    for t in THEMES:
        for root, _, files in os.walk(t):
            svgs += [os.path.join(root, f) for f in files if f.endswith((".svg", ".svgz"))]
    svgs = [s for s in svgs if "symbolic" not in s][52::53][:48]
    for i, s in enumerate(svgs, 1):
        size = str(256 + (i % 3) * 128)
        subprocess.run(["rsvg-convert", "-w", size, "-h", size, s, "-o",
                        os.path.join(out, "t_%d.png" % i)], capture_output=True)
    return len(glob.glob(os.path.join(out, "*.png")))


def trace(src, dst, args):
    out = subprocess.run([BIN, "vectorize", src, "-o", dst, "--json", "-j", "2", "-q", "--preset",
                          "default"] + args, capture_output=True, text=True).stdout
    return {f["file"]: f for f in json.loads(out)["files"] if f.get("ok")}


def main():
    tmp = tempfile.mkdtemp(prefix="modeld-rules-")
    try:
        src, dst = os.path.join(tmp, "png"), os.path.join(tmp, "svg")
        os.makedirs(src)
        print("tuning set: %d icons" % tuning_set(src))
        base = trace(src, dst, [])
        e0 = statistics.mean(1 - b["ssim_rgb"] for b in base.values())
        rows = []
        for fs, ct, ld, cp in itertools.product([2, 3], [0, 30, 60], [16, 12, 8, 4], [6, 7]):
            r = trace(src, dst, ["--filter_speckle", str(fs), "--corner_threshold", str(ct),
                                 "--layer_difference", str(ld), "--color_precision", str(cp)])
            per = statistics.mean(1 - (1 - r[f]["ssim_rgb"]) / max(1e-9, 1 - b["ssim_rgb"])
                                  for f, b in base.items())
            pooled = 1 - statistics.mean(1 - r[f]["ssim_rgb"] for f in base) / e0
            over = sum(r[f]["svg_bytes"] > 3 * b["svg_bytes"] for f, b in base.items())
            ratio = statistics.median(r[f]["svg_bytes"] / b["svg_bytes"] for f, b in base.items())
            rows.append((per, pooled, over, ratio, fs, ct, ld, cp))
        fmt = ("per-image %.3f pooled %.3f over3x %d bytes x%.2f | filter_speckle %d "
               "corner_threshold %d layer_difference %d color_precision %d")
        ranked = sorted(rows, reverse=True)
        for x in [r for r in ranked if r[2] == 0][:10]:
            print(fmt % x)
        print("past the size budget on some image:")
        for x in [r for r in ranked if r[2] > 0][:3]:
            print(fmt % x)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
