#!/usr/bin/python3
"""Helpers of bench/vectorize.sh: prepare the inputs, then score and report.

    /usr/bin/python3 bench/vectorize_score.py prepare CORPUS OUT
        OUT/in/      links to every good image of CORPUS (labels.csv, not corrupted/non_image)
        OUT/in_rgb/  the RGBA ones composited on white (Pillow, as score_svg.py does) as RGB PNGs
    /usr/bin/python3 bench/vectorize_score.py report CORPUS OUT
        scores every SVG of every run in OUT with ../shared/tools/score_svg.py (imported and used
        as it is: its score() renders with rsvg-convert and computes SSIM), then prints per class
        and overall, side by side with ratios: mean and median SSIM (RGB, grey), median bytes,
        median paths, median time and CPU time; then the transparency comparison and the goals.
Runs (directories under OUT, each with a timing file written by vectorize.sh):
    ours_default, ours_quality, ours_rgb         modeld vectorize --json output (.json)
    vtracer_default, vtracer_best, vtracer_rgb   bench/vtracer/run.js output (.jsonl)
"""
import csv
import json
import os
import statistics
import sys
from multiprocessing import Pool

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["simple_geometric", "text_based", "gradient", "complex"]


def good_images(corpus):
    with open(os.path.join(corpus, "labels.csv")) as f:
        return [(r["file"], r["class"]) for r in csv.DictReader(f)
                if r["class"] not in ("corrupted", "non_image")]


def has_alpha(path):
    im = Image.open(path)
    if im.mode not in ("RGBA", "LA") and "transparency" not in im.info:
        return False
    return im.convert("RGBA").getextrema()[3][0] < 255


def prepare(corpus, out):
    os.makedirs(os.path.join(out, "in"), exist_ok=True)
    os.makedirs(os.path.join(out, "in_rgb"), exist_ok=True)
    for name, _ in good_images(corpus):
        src = os.path.join(corpus, name)
        link = os.path.join(out, "in", name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(src), link)
        if has_alpha(src):
            im = Image.open(src).convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            bg.alpha_composite(im)
            bg.convert("RGB").save(os.path.join(out, "in_rgb", name))


def load_timings(out, run):
    """{stem: (ms, cpu_ms)} and the names of files that failed, from a run's timing file."""
    times, failed = {}, []
    jpath = os.path.join(out, run + ".json")
    if os.path.exists(jpath):  # modeld vectorize --json
        with open(jpath) as f:
            text = f.read().strip()
        files = json.loads(text)["files"] if text else []
    else:
        with open(os.path.join(out, run + ".jsonl")) as f:
            files = [json.loads(line) for line in f if line.strip()]
    for r in files:
        stem = os.path.splitext(os.path.basename(r["file"]))[0]
        if r.get("ok", "error" not in r):
            times[stem] = (r["ms"], r["cpu_ms"])
        else:
            failed.append((stem, r.get("error")))
    return times, failed


def score_one(args):
    sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "tools"))
    import score_svg  # the shared scorer, unchanged
    image, svg = args
    try:
        return score_svg.score(image, svg)
    except Exception as e:  # an SVG that does not render scores nothing
        return {"error": str(e)}


def score_run(pool, out, run, inputs):
    """Per-image results of one run: class, ssim, bytes, paths, ms, cpu."""
    times, failed = load_timings(out, run)
    jobs, meta = [], []
    for name, cls in inputs:
        stem = os.path.splitext(name)[0]
        svg = os.path.join(out, run, stem + ".svg")
        if stem in times and os.path.exists(svg):
            jobs.append((os.path.join(out, "in" if not run.endswith("_rgb") else "in_rgb", name), svg))
            meta.append((stem, cls))
    results = {}
    for (stem, cls), s in zip(meta, pool.map(score_one, jobs)):
        if "error" in s:
            failed.append((stem, s["error"]))
            continue
        ms, cpu = times[stem]
        results[stem] = dict(cls=cls, rgb=s["ssim_rgb"], grey=s["ssim_grey"], bytes=s["svg_bytes"],
                             paths=s["paths"], ms=ms, cpu=cpu)
    return results, failed


METRICS = [("rgb", "mean", "ssim_rgb mean"), ("rgb", "median", "ssim_rgb med"),
           ("grey", "mean", "ssim_grey mean"), ("grey", "median", "grey med"),
           ("bytes", "median", "bytes med"), ("paths", "median", "paths med"),
           ("ms", "median", "ms med"), ("cpu", "median", "cpu_ms med")]


def agg(rows, key, how):
    vals = [r[key] for r in rows]
    if not vals:
        return float("nan")
    return statistics.mean(vals) if how == "mean" else statistics.median(vals)


def fmt(v, key):
    if v != v:
        return "-"
    if key in ("rgb", "grey"):
        return f"{v:.4f}"
    if key == "bytes":
        return f"{v / 1024:.1f}K"
    return f"{v:.1f}"


def print_compare(title, a_name, a, b_name, b):
    print(f"\n== {title}")
    head = f"{'class':<22} {'tool':<16}" + "".join(f"{m[2]:>15}" for m in METRICS)
    print(head)
    print("-" * len(head))
    for cls in CLASSES + ["all"]:
        ra = [r for r in a.values() if cls in ("all", r["cls"])]
        rb = [r for r in b.values() if cls in ("all", r["cls"])]
        label = f"{cls} ({len(ra)})"
        va = [agg(ra, k, h) for k, h, _ in METRICS]
        vb = [agg(rb, k, h) for k, h, _ in METRICS]
        print(f"{label:<22} {a_name:<16}" + "".join(f"{fmt(v, m[0]):>15}" for v, m in zip(va, METRICS)))
        print(f"{'':<22} {b_name:<16}" + "".join(f"{fmt(v, m[0]):>15}" for v, m in zip(vb, METRICS)))
        ratios = [(x / y if y else float("nan")) for x, y in zip(va, vb)]
        print(f"{'':<22} {'ratio':<16}" + "".join(f"{r:>15.3f}" for r in ratios))


def transparency(runs, rgba_stems):
    print(f"\n== transparency: the {len(rgba_stems)} RGBA inputs vs the same images composited on "
          "white (RGB)")
    print(f"{'tool':<10} {'mean ssim_rgb RGBA':>20} {'RGB copy':>10} {'gap':>8}")
    gaps = {}
    for tool, rgba_run, rgb_run in (("modeld", "ours_default", "ours_rgb"),
                                    ("vtracer", "vtracer_default", "vtracer_rgb")):
        both = [s for s in rgba_stems if s in runs[rgba_run] and s in runs[rgb_run]]
        m1 = statistics.mean(runs[rgba_run][s]["rgb"] for s in both) if both else float("nan")
        m2 = statistics.mean(runs[rgb_run][s]["rgb"] for s in both) if both else float("nan")
        gaps[tool] = m2 - m1
        print(f"{tool:<10} {m1:>20.4f} {m2:>10.4f} {m2 - m1:>8.4f}")
    return gaps


def worst(runs):
    """The images that most need work: where we trail VTracer, and our RGBA-vs-RGB gaps."""
    d, v, rgb = runs["ours_default"], runs["vtracer_default"], runs["ours_rgb"]
    loss = sorted((d[s]["rgb"] - v[s]["rgb"], s) for s in d if s in v)[:5]
    print("\n== where the default preset trails VTracer default most (ssim_rgb ours - vtracer)")
    print("  " + ", ".join(f"{s} {x:+.4f}" for x, s in loss if x < 0) or "  none")
    gap = sorted(((rgb[s]["rgb"] - d[s]["rgb"], s) for s in rgb if s in d), reverse=True)[:5]
    print("== largest RGBA-vs-RGB gaps of the default preset (ssim_rgb RGB copy - RGBA)")
    print("  " + ", ".join(f"{s} {x:+.4f}" for x, s in gap))


def goals(runs, gaps):
    d, q, v = runs["ours_default"], runs["ours_quality"], runs["vtracer_default"]
    allv = list(d.values())
    print("\n== goals (issue 3)")
    checks = [
        ("default: mean SSIM RGB >= 0.94", agg(allv, "rgb", "mean") >= 0.94),
        ("default: median bytes <= VTracer default's",
         agg(allv, "bytes", "median") <= agg(list(v.values()), "bytes", "median")),
        ("default: median wall time <= VTracer default's",
         agg(allv, "ms", "median") <= agg(list(v.values()), "ms", "median")),
        ("default: median CPU time <= VTracer default's",
         agg(allv, "cpu", "median") <= agg(list(v.values()), "cpu", "median")),
        ("quality: mean SSIM RGB >= 0.96", agg(list(q.values()), "rgb", "mean") >= 0.96),
        ("quality: median bytes <= 30 KB", agg(list(q.values()), "bytes", "median") <= 30 * 1024),
        ("transparency: RGBA within 0.01 of RGB", abs(gaps["modeld"]) <= 0.01),
    ]
    for text, ok in checks:
        print(f"  [{'x' if ok else ' '}] {text}")


def report(corpus, out):
    inputs = good_images(corpus)
    rgba_names = set(os.listdir(os.path.join(out, "in_rgb")))
    rgb_inputs = [(n, c) for n, c in inputs if n in rgba_names]
    runs, failures = {}, {}
    with Pool(max(1, min(4, os.cpu_count() or 1))) as pool:
        for run in ("ours_default", "ours_quality", "vtracer_default", "vtracer_best"):
            runs[run], failures[run] = score_run(pool, out, run, inputs)
        for run in ("ours_rgb", "vtracer_rgb"):
            runs[run], failures[run] = score_run(pool, out, run, rgb_inputs)
    print(f"dev corpus: {len(inputs)} good images ({len(rgb_inputs)} RGBA); scored with "
          "../shared/tools/score_svg.py; bytes in KiB; times per image, one tool after the other")
    print_compare("default preset vs VTracer default", "modeld default", runs["ours_default"],
                  "vtracer default", runs["vtracer_default"])
    print_compare("quality preset vs VTracer best spline settings", "modeld quality",
                  runs["ours_quality"], "vtracer best", runs["vtracer_best"])
    gaps = transparency(runs, {os.path.splitext(n)[0] for n, _ in rgb_inputs})
    worst(runs)
    goals(runs, gaps)
    for run, fails in failures.items():
        for stem, why in fails:
            print(f"FAILED {run}: {stem}: {why}")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(runs, f, indent=1)
    return 1 if any(failures.values()) else 0


def main(argv):
    if len(argv) != 4 or argv[1] not in ("prepare", "report"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "prepare":
        prepare(argv[2], argv[3])
        return 0
    return report(argv[2], argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
