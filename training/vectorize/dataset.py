"""dataset.py - the training data of the three vectorize models, made here and cached under
build/vectorize/<full|tiny>/ (never in git):

  images/<id>.png   every training image (synthetic generators and Debian icon themes)
  index.json        one record per image: id, source, size, background, label, split, ...
  quality.jsonl     our tracer's measurements: one line per (image, parameter set)

and the features of each image from `modeld features --json` (the C extractor; recomputed on
every run because it is fast and follows the C code).

Invariants:
  1. Deterministic: the plan (which images, sizes, backgrounds, parameter sets) depends only on
     SEED and the installed Debian packages; the PNGs depend on those and librsvg.
  2. Train / test split by group, never by row: a group is a synthetic seed or an icon name (the
     same icon in two themes is one group), and the quality rows of one image all fall on the
     side of its group, so held-out metrics are on images never trained on.
  3. ../shared/corpus/dev is validation only: the Papirus icons it was made from are excluded
     by name, and nothing here reads it.
  4. The quality cache is append-only and keyed by (image id, design index); a run only adds
     what is missing, so an interrupted `make models` resumes.
"""
import concurrent.futures as cf
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import params  # noqa: E402
import svggen  # noqa: E402
import svglabel  # noqa: E402

SEED = 20261207
JOBS = 2  # this machine has 2 shared cores
SIZES = [64, 96, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024]
SIZE_W = [1, 1, 2, 2, 3, 3, 3, 3, 4, 2, 1, 1]
# Per kind: how many images (full, tiny).
COUNTS = {"geometric": (300, 4), "text": (520, 4), "gradient": (280, 4),
          "illustration": (200, 3), "photo": (100, 2)}
ICON_THEMES = {  # theme: (directories under /usr/share/icons, full count, tiny count)
    "Papirus": (["Papirus/64x64/apps", "Papirus/64x64/places", "Papirus/64x64/devices",
                 "Papirus/64x64/mimetypes"], 220, 2),
    "breeze": (["breeze/apps/48", "breeze/places/64", "breeze/devices/64",
                "breeze/mimetypes/64", "breeze/actions/32"], 140, 1),
    "Tango": (["Tango/scalable"], 110, 1),
    "Numix": (["Numix/64"], 160, 1),
    "Adwaita": (["Adwaita/scalable"], 80, 1),
}
ICON_DIR = "/usr/share/icons"
DEV_LABELS = os.path.join(ROOT, "..", "shared", "corpus", "dev", "labels.csv")
JPEG_P = 0.12  # share of images re-encoded as JPEG (an uploaded JPEG logo)
WIDE_TEXT_P = 0.5  # share of word marks on a wide canvas, 1.5:1 .. 3.5:1
TEST_SHARE = 5  # one group in TEST_SHARE is held out
QUALITY_MAX_SIDE = 640  # the quality design runs on images up to this size ...
QUALITY_IMAGES = (300, 12)  # ... and on at most this many of them (full, tiny)
# Per image: the 3 presets, the ANCHORS (below; the same for every image), and its block's
# N_GOOD + N_WIDE Latin-hypercube points (good region, whole design range).
N_GOOD, N_WIDE, N_BLOCKS = 4, 3, 8


def cache_dir(tiny):
    """build/vectorize/<tiny|full>, or $MODELD_VEC_CACHE/<tiny|full> (the tests' temp dir)."""
    base = os.environ.get("MODELD_VEC_CACHE") or os.path.join(ROOT, "build", "vectorize")
    return os.path.join(base, "tiny" if tiny else "full")


def modeld_bin():
    """The release binary (make models builds it), or $MODELD_BIN."""
    b = os.environ.get("MODELD_BIN") or os.path.join(ROOT, "build", "release", "modeld")
    if not os.access(b, os.X_OK):
        raise SystemExit(f"dataset: no modeld binary at {b} (run `make build` or set MODELD_BIN)")
    return b


def group_split(group):
    """'test' for one group in TEST_SHARE (by a hash of the group name), else 'train'."""
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16)
    return "test" if h % TEST_SHARE == 0 else "train"


def excluded_icon_names():
    """Icon names the dev corpus was made from (validation only: never trained on)."""
    names = set()
    if os.path.exists(DEV_LABELS):
        with open(DEV_LABELS) as f:
            for line in f:
                src = line.split(",")[2] if line.count(",") >= 2 else ""
                if src.endswith(".svg"):
                    names.add(os.path.basename(src)[:-4])
    # Fixed fallback: the dev corpus's icons by name, in case ../shared is absent here.
    names |= {"ADLplug", "cyberpunk-2077", "dillo", "distributor-logo-ms-dos", "famitracker",
              "folder-indigo-locked", "football", "gnome-do", "gthumb", "hakuneko-desktop",
              "hoppscotch", "preferences-plugin", "resharper", "rolled-out", "sengi",
              "supermeatboy", "system-shutdown", "text-x-tex", "trashindicator",
              "tumiki-fighters"}
    return names


def icon_files(theme, dirs):
    """Sorted unique SVG files of a theme (symlinks resolved, sizes 200 B .. 150 kB)."""
    seen, out = set(), []
    skip = excluded_icon_names()
    for d in dirs:
        for dp, dn, fn in os.walk(os.path.join(ICON_DIR, d), followlinks=True):
            dn.sort()
            for f in sorted(fn):
                p = os.path.join(dp, f)
                real = os.path.realpath(p)
                if not f.endswith(".svg") or real in seen or f[:-4] in skip:
                    continue
                if os.path.isfile(real) and 200 <= os.path.getsize(real) <= 150_000:
                    seen.add(real)
                    out.append(p)
    return out


def plan(tiny):
    """The list of images to make (deterministic; see invariant 1)."""
    rng = np.random.default_rng(SEED)
    w = np.array(SIZE_W, dtype=np.float64) / sum(SIZE_W)
    items = []

    def common(item_id, group):
        size = int(rng.choice(SIZES[:4] if tiny else SIZES, p=None if tiny else w))
        bg = str(rng.choice(["white", "transparent", "colour"], p=[0.45, 0.4, 0.15]))
        jpeg = int(rng.integers(25, 85)) if rng.random() < JPEG_P else 0
        return {"id": item_id, "group": group, "split": group_split(group), "size": size,
                "height": size, "background": bg, "jpeg_quality": jpeg}

    for kind, counts in COUNTS.items():
        for i in range(counts[1] if tiny else counts[0]):
            it = common(f"{kind}_{i:04d}", f"{kind}_{i:04d}")
            it.update(kind=kind, seed=int(rng.integers(0, 2**31)), source=f"svggen.{kind}")
            wide, ratio = rng.random() < WIDE_TEXT_P, rng.uniform(1.5, 3.5)
            if kind == "text" and wide:
                it["height"] = max(16, int(round(it["size"] / ratio)))
            items.append(it)
    for theme, (dirs, full, small) in ICON_THEMES.items():
        files = icon_files(theme, dirs)
        pick = sorted(rng.choice(len(files), size=min(small if tiny else full, len(files)),
                                 replace=False)) if files else []
        for j in pick:
            name = os.path.basename(files[j])[:-4]
            it = common(f"icon_{theme}_{name}", f"icon:{name}")
            if it["background"] == "colour":
                it["background"] = "white"
            it.update(kind="icon", seed=0, source=files[j][len(ICON_DIR) + 1:])
            items.append(it)
    return items


def render_svg(svg, width, height, background, out):
    """rsvg-convert at width x height; white background unless transparent."""
    cmd = ["rsvg-convert", "-w", str(width), "-h", str(height), "-o", out]
    if background == "white":
        cmd += ["-b", "white"]
    subprocess.run(cmd, input=svg.encode(), check=True, capture_output=True, timeout=60)


def jpeg_roundtrip(path, quality):
    """Composite on white, save as JPEG at quality and decode again, as a PNG at path."""
    from PIL import Image
    im = Image.open(path).convert("RGBA")
    flat = Image.new("RGB", im.size, (255, 255, 255))
    flat.paste(im, mask=im.split()[3])
    buf = io.BytesIO()
    flat.save(buf, format="JPEG", quality=quality)
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(path, format="PNG")


def source_svg(item):
    """The SVG text of a planned image (regenerated from its seed), or None for a photo."""
    rng = np.random.default_rng(item["seed"])
    if item["kind"] == "icon":
        with open(os.path.join(ICON_DIR, item["source"]), encoding="utf-8", errors="replace") as f:
            return f.read()
    if item["kind"] == "text":
        return svggen.text(rng, item["size"], item["background"], item["height"])
    if item["kind"] == "photo":
        return None
    return svggen.GENERATORS[item["kind"]](rng, item["size"], item["background"])


def make_image(item, out, render):
    """Label one planned image from its source and, when render, draw it to out; returns the
    record (the plan's fields plus file, label and the SVG statistics)."""
    from PIL import Image
    rec = dict(item, file=out)
    svg = source_svg(item)
    if svg is None:
        if render:
            rng = np.random.default_rng(item["seed"])
            Image.fromarray(svggen.photo(rng, item["size"])).save(out, format="PNG")  # square
        rec.update(label="complex", elements=None, colours=None)
    else:
        info = svglabel.analyse(svg.encode())
        if render:
            render_svg(svg, item["size"], item["height"], item["background"], out)
        rec.update(label=info["label"], elements=info["elements"], colours=info["colours"])
    if render and item["jpeg_quality"]:
        jpeg_roundtrip(out, item["jpeg_quality"])
    return rec


def build_images(tiny=False):
    """Make the images (reusing a PNG whose plan record is unchanged) and label every image
    again from its source (cheap: the labeller may have changed); writes and returns index.json."""
    d = cache_dir(tiny)
    idx_path = os.path.join(d, "index.json")
    img_dir = os.path.join(d, "images")
    os.makedirs(img_dir, exist_ok=True)
    old = {}
    if os.path.exists(idx_path):
        with open(idx_path) as f:
            old = {r["id"]: r for r in json.load(f)}
    index, failed = [], []
    with cf.ThreadPoolExecutor(JOBS) as ex:
        jobs = []
        for it in plan(tiny):
            out = os.path.join(img_dir, it["id"] + ".png")
            prev = old.get(it["id"])
            same = prev is not None and all(prev.get(k) == v for k, v in it.items())
            jobs.append((it, ex.submit(make_image, it, out, not (same and os.path.exists(out)))))
        for item, fut in jobs:
            try:
                index.append(fut.result())
            except (subprocess.CalledProcessError, ValueError, OSError) as e:
                failed.append(f"{item['id']}: {e}")  # an icon librsvg cannot read
    if failed:
        print(f"dataset: {len(failed)} sources skipped, e.g. {failed[0]}", file=sys.stderr)
    with open(idx_path + ".tmp", "w") as f:
        json.dump(index, f, indent=0)
    os.replace(idx_path + ".tmp", idx_path)
    return index


def features(files, binary=None):
    """{file: {"names": [...], "values": [...], "width", "height"}} from `modeld features
    --json`, in batches of 200 files; a file the extractor rejects is left out."""
    binary = binary or modeld_bin()
    out = {}
    for i in range(0, len(files), 200):
        r = subprocess.run([binary, "features", "--json", *files[i:i + 200]],
                           capture_output=True, text=True, timeout=600)
        for line in r.stdout.splitlines():
            rec = json.loads(line)
            if "features" in rec:
                out[rec["file"]] = {"names": list(rec["features"]),
                                    "values": [float(v) for v in rec["features"].values()],
                                    "width": rec["width"], "height": rec["height"]}
    return out


def feature_matrix(index, binary=None):
    """(names, X [n, F] float64, kept records) for the index's images."""
    feats = features([r["file"] for r in index], binary)
    kept = [r for r in index if r["file"] in feats]
    if not kept:
        raise SystemExit("dataset: `modeld features` gave no features")
    names = feats[kept[0]["file"]]["names"]
    x = np.array([feats[r["file"]]["values"] for r in kept], dtype=np.float64)
    return names, x, kept


def quality_images(index, tiny):
    """The images the quality design runs on: up to QUALITY_MAX_SIDE px, a fixed subset by a
    hash of the id (the same images on every run)."""
    small = [r for r in index if max(r["size"], r["height"]) <= QUALITY_MAX_SIDE]
    small.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
    return sorted(small[:QUALITY_IMAGES[1] if tiny else QUALITY_IMAGES[0]], key=lambda r: r["id"])


def _block(image_id):
    return int(hashlib.sha256(("block:" + image_id).encode()).hexdigest()[:8], 16) % N_BLOCKS


# The anchor sets (encoded, contract order), on top of the three presets: a hand-made grid
# around the default and quality presets in the directions that buy SSIM for few bytes, picked
# from the measurements of a first, random design on the training split (which showed that
# filter_speckle <= 1 gains the most SSIM but often breaks the 3x size budget, and that
# path_precision, length_threshold and the flags rarely pay), plus corner_threshold 0.
ANCHORS = [
    # fs cp  ld  ct   lt   mi  st  pp cut poly
    [2, 8, 8, 60, 3.5, 10, 45, 1, 0, 0],
    [2, 7, 4, 60, 3.5, 10, 45, 1, 0, 0],
    [1, 7, 8, 60, 3.5, 10, 45, 1, 0, 0],
    [1, 6, 16, 60, 3.5, 10, 45, 1, 0, 0],
    [2, 7, 8, 60, 3.5, 10, 45, 2, 0, 0],
    [3, 8, 6, 60, 3.5, 10, 45, 1, 0, 0],
    [1, 8, 12, 60, 4.0, 10, 45, 1, 0, 0],
    [0, 6, 16, 60, 3.5, 10, 45, 1, 0, 0],
    [2, 7, 12, 45, 3.5, 10, 30, 1, 0, 0],
    [2, 6, 8, 60, 3.5, 10, 45, 1, 0, 0],
    [3, 7, 4, 60, 3.5, 10, 45, 1, 0, 0],
    [4, 8, 8, 60, 3.5, 10, 45, 2, 0, 0],
    # corner_threshold 0 (every vertex a corner: no smoothing of small features), found by
    # ai-serve's measurements: much less SSIM error for about 1.2x the bytes
    [2, 6, 16, 0, 3.5, 10, 45, 1, 0, 0],
    [2, 7, 8, 0, 3.5, 10, 45, 1, 0, 0],
    [1, 7, 8, 0, 3.5, 10, 45, 1, 0, 0],
    [3, 8, 8, 0, 3.5, 10, 45, 1, 0, 0],
]
N_ANCHOR = len(ANCHORS)
# The portfolio of the tiers (src/pipelines/ai_models.c PORTFOLIO, chosen by
# bench/vectorize_portfolio.py on the training split): tier 2 converts its head, so the quality
# model must rank exactly these well on one image. Measured on every quality image.
PORTFOLIO = [
    [2, 6, 8, 0, 3.5, 10, 45, 1, 0, 0], [2, 8, 16, 0, 3.5, 10, 45, 1, 0, 0],
    [3, 6, 8, 60, 3.5, 10, 45, 1, 0, 1], [3, 6, 4, 0, 3.5, 10, 45, 1, 0, 0],
    [2, 6, 4, 0, 3.5, 10, 45, 1, 0, 0], [2, 6, 12, 0, 3.5, 10, 45, 1, 0, 0],
    [2, 6, 16, 60, 3.5, 10, 45, 1, 0, 1], [2, 6, 16, 0, 3.5, 10, 45, 1, 0, 0],
    [2, 8, 8, 0, 3.5, 10, 45, 1, 0, 0], [2, 7, 8, 60, 3.5, 10, 45, 1, 0, 0],
]
# Per block of images: this many neighbours of the portfolio (one or two steps away in a few
# coordinates), so that the model sees the good region densely where tier 2 and 3 search.
N_NEAR = 5


def anchors():
    """The presets and the anchor sets: (keys, decoded vectors [3 + N_ANCHOR, 10]), measured
    on every quality image (vectorize-params chooses among them)."""
    keys = [f"preset:{n}" for n in params.PRESETS] + [f"anchor:{k}" for k in range(N_ANCHOR)]
    vecs = [params.preset(n) for n in params.PRESETS] + \
        list(params.decode(np.array(ANCHORS, dtype=np.float64)))
    seen = {tuple(v) for v in vecs}
    for k, v in enumerate(params.decode(np.array(PORTFOLIO, dtype=np.float64))):
        if tuple(v) not in seen:  # a portfolio set that is already an anchor is measured once
            seen.add(tuple(v))
            keys.append(f"portfolio:{k}")
            vecs.append(v)
    return keys, np.vstack(vecs)


def near(n, rng):
    """n decoded neighbours of the portfolio: a portfolio set with 2 or 3 of filter_speckle,
    color_precision, layer_difference, corner_threshold, splice_threshold, path_precision and
    max_iterations moved one step (the steps the tiers' coordinate search takes)."""
    steps = {0: [-1, 1], 1: [-1, 1], 2: [-4, 4, 8], 3: [15, 30, 45], 6: [-15, 15],
             7: [1], 5: [-3, 3]}
    out = []
    for _ in range(n):
        v = np.array(PORTFOLIO[int(rng.integers(0, len(PORTFOLIO)))], dtype=np.float64)
        for c in rng.choice(sorted(steps), size=int(rng.integers(2, 4)), replace=False):
            v[c] += steps[int(c)][int(rng.integers(0, len(steps[int(c)])))]
        out.append(params.decode(np.clip(v, params.DESIGN_LO, params.DESIGN_HI)))
    return np.array(out)


def design(tiny):
    """[(key, decoded parameter vector, block or None)]: the presets and anchors run on every
    image; each block of images gets its own Latin-hypercube points."""
    keys, vecs = anchors()
    out = [(k, v, None) for k, v in zip(keys, vecs)]
    n_good, n_wide, n_near = (1, 1, 1) if tiny else (N_GOOD, N_WIDE, N_NEAR)
    for b in range(N_BLOCKS):
        good = params.lhs(n_good, np.random.default_rng(SEED + 100 + b), params.GOOD_LO,
                          params.GOOD_HI)
        wide = params.lhs(n_wide, np.random.default_rng(SEED + 200 + b))
        close = near(n_near, np.random.default_rng(SEED + 300 + b))
        out += [(f"good:{b}:{k}", v, b) for k, v in enumerate(good)]
        out += [(f"wide:{b}:{k}", v, b) for k, v in enumerate(wide)]
        out += [(f"near:{b}:{k}", v, b) for k, v in enumerate(close)]
    return out


def _key(image_sha, enc):
    """Cache key: the image's bytes (by SHA-256) and the exact parameter values, so a change of
    the images or of the design never reuses a measurement of something else."""
    return image_sha, tuple(round(float(v), 4) for v in enc)


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _load_quality(path):
    rows = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if "image_sha" in r:
                        rows[_key(r["image_sha"], r["params"])] = r
    return rows


def trace_dir(binary, images, enc, tmp):
    """One `modeld vectorize DIR --json` run of one parameter set over images (hard links in a
    scratch directory); returns {image id: measurement}."""
    src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    for d in (src, dst):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    for r in images:
        try:
            os.link(r["file"], os.path.join(src, r["id"] + ".png"))
        except OSError:  # another file system
            shutil.copyfile(r["file"], os.path.join(src, r["id"] + ".png"))
    cmd = [binary, "vectorize", src, "-o", dst, "--json", "-q", "-j", str(JOBS),
           *params.cli_args(enc)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    out = {}
    for f in json.loads(res.stdout)["files"]:
        if f.get("ok"):
            out[os.path.basename(f["file"])[:-4]] = {
                "ssim": f["ssim_rgb"], "bytes": f["svg_bytes"], "paths": f["paths"],
                "ms": f["timing_ms"]["convert_total"]}
    return out


def quality(index, tiny=False, binary=None):
    """Run (or reuse from quality.jsonl) the tracer over the design; returns the rows
    [{id, design, params, ssim, bytes, paths, ms}] of the quality images."""
    binary = binary or modeld_bin()
    path = os.path.join(cache_dir(tiny), "quality.jsonl")
    rows = _load_quality(path)
    imgs = quality_images(index, tiny)
    sha = {r["id"]: file_sha(r["file"]) for r in imgs}
    out = []
    with tempfile.TemporaryDirectory(dir=cache_dir(tiny)) as tmp, open(path, "a") as log:
        for key, enc, block in design(tiny):
            mine = [r for r in imgs if block is None or _block(r["id"]) == block]
            todo = [r for r in mine if _key(sha[r["id"]], enc) not in rows]
            if todo:
                for image_id, m in sorted(trace_dir(binary, todo, enc, tmp).items()):
                    r = {"id": image_id, "image_sha": sha[image_id],
                         "params": [float(v) for v in enc], **m}
                    rows[_key(sha[image_id], enc)] = r
                    log.write(json.dumps(r) + "\n")
                log.flush()
            out += [dict(rows[_key(sha[r["id"]], enc)], id=r["id"], design=key) for r in mine
                    if _key(sha[r["id"]], enc) in rows]
    return sorted(out, key=lambda r: (r["id"], r["design"]))
