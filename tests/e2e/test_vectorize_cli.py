"""End-to-end tests of `modeld vectorize` (the binary from $MODELD_BIN, as make e2e sets it):
one file, a directory with good and broken images, --json, parameters by VTracer name with
range errors, and the exit codes 0 / 1 / 2."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("MODELD_CORPUS_DIR") or os.path.join(HERE, "..", "fixtures", "corpus")


def _bin():
    b = os.environ.get("MODELD_BIN") or os.path.join(HERE, "..", "..", "build", "asan", "modeld")
    return os.path.abspath(b)


def run(*args):
    return subprocess.run([_bin(), "vectorize", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="modeld-vec-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_one_file_json(tmp):
    out = os.path.join(tmp, "a.svg")
    r = run(os.path.join(CORPUS, "simple_geometric_03.png"), "-o", out, "--json",
            "--filter_speckle", "2", "--path-precision=1")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] is True and res["output"] == out
    svg = open(out, encoding="utf8").read()
    assert svg.startswith("<svg") or svg.startswith("<?xml")
    assert res["svg_bytes"] == len(svg.encode())
    assert res["paths"] >= 1
    assert 0.8 < res["ssim_rgb"] <= 1.0 and 0.8 < res["ssim_grey"] <= 1.0
    assert set(res["timing_ms"]) >= {"decode", "svg", "render", "ssim", "convert_total"}


def test_directory_with_broken_files(tmp):
    src = os.path.join(tmp, "in")
    os.mkdir(src)
    for name in ("simple_geometric_03.png", "papirus_famitracker_64.png", "corrupted_truncated.png",
                 "non_image_text.png"):
        shutil.copy(os.path.join(CORPUS, name), src)
    open(os.path.join(src, "notes.txt"), "w").write("not selected: not an image extension")
    out = os.path.join(tmp, "out")
    r = run(src, "-o", out, "-j", "2")
    assert r.returncode == 1
    # each failure named with its error on stderr, and marked in the table
    assert "corrupted_truncated.png: truncated_image" in r.stderr
    assert "non_image_text.png: unsupported_format" in r.stderr
    assert "FAILED: truncated_image" in r.stdout
    assert "mean of 2 (2 failed)" in r.stdout
    assert sorted(os.listdir(out)) == ["papirus_famitracker_64.svg", "simple_geometric_03.svg"]


def test_directory_json_summary(tmp):
    src = os.path.join(tmp, "in")
    os.mkdir(src)
    shutil.copy(os.path.join(CORPUS, "text_based_05.png"), src)
    r = run(src, "-o", os.path.join(tmp, "out"), "--json", "--no-quality", "--preset", "fast")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["summary"]["ok"] == 1 and res["summary"]["failed"] == 0
    assert res["params"]["mode"] == "polygon"  # the fast preset
    assert "ssim_rgb" not in res["files"][0]


@pytest.mark.parametrize("args, needle", [
    (["--filter_speckle", "500"], "filter_speckle"),
    (["--corner_threshold", "abc"], "corner_threshold"),
    (["--no_such_param", "1"], "no_such_param"),
    (["--preset", "nope"], "preset"),
    (["-j", "0"], "-j"),
])
def test_usage_errors(tmp, args, needle):
    r = run(os.path.join(CORPUS, "simple_geometric_03.png"), "-o", os.path.join(tmp, "x.svg"), *args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert not os.path.exists(os.path.join(tmp, "x.svg"))


def test_no_input_and_missing_file(tmp):
    assert run().returncode == 2
    r = run(os.path.join(tmp, "missing.png"), "-o", os.path.join(tmp, "x.svg"))
    assert r.returncode == 1
    assert "file_not_found" in r.stderr
    r = run(os.path.join(CORPUS), "--json")  # a directory needs -o
    assert r.returncode == 2


def test_svg_to_stdout():
    r = run(os.path.join(CORPUS, "papirus_famitracker_64.png"), "-o", "-")
    assert r.returncode == 0
    assert "</svg>" in r.stdout and "ssim" not in r.stdout


def test_other_formats_and_name_collisions(tmp):
    """JPEG, BMP, WebP and TIFF inputs (chosen by magic, not name), and inputs whose names differ
    only in the extension keep it in the output name instead of overwriting each other."""
    from PIL import Image
    src = os.path.join(tmp, "in")
    os.mkdir(src)
    im = Image.open(os.path.join(CORPUS, "text_based_05.png")).convert("RGB")
    im.save(os.path.join(src, "logo.png"))
    im.save(os.path.join(src, "logo.jpg"), quality=95)
    im.save(os.path.join(src, "b.bmp"))
    im.save(os.path.join(src, "w.webp"), lossless=True)
    im.save(os.path.join(src, "t.tiff"))
    im.save(os.path.join(src, "named_wrong.jpg"), "PNG")
    out = os.path.join(tmp, "out")
    r = run(src, "-o", out, "--json", "--no-quality")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["b.svg", "logo.jpg.svg", "logo.png.svg", "named_wrong.svg",
                                       "t.svg", "w.svg"]
    assert json.loads(r.stdout)["summary"]["ok"] == 6


def _bmp(path, w, h, colour):
    """An uncompressed 24-bit BMP: a square of `colour` (R, G, B) in the middle of white."""
    import struct
    row = (w * 3 + 3) & ~3
    px = bytearray()
    for y in range(h):
        line = bytearray()
        for x in range(w):
            inside = w // 4 <= x < 3 * w // 4 and h // 4 <= y < 3 * h // 4
            r, g, b = colour if inside else (255, 255, 255)
            line += bytes((b, g, r))
        px += line + bytes(row - len(line))
    hdr = struct.pack("<2sIHHIIiiHHIIiiII", b"BM", 54 + len(px), 0, 0, 54, 40, w, h, 1, 24, 0, len(px),
                      2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(hdr + px)


def test_converter_option(tmp):
    """--converter runs the API's converters (pl_vectorize): smart picks binary for black on
    white and colour for red, potrace is always binary, and a bad name is a usage error."""
    black, red = os.path.join(tmp, "black.bmp"), os.path.join(tmp, "red.bmp")
    _bmp(black, 40, 32, (0, 0, 0))
    _bmp(red, 40, 32, (220, 30, 30))
    out = os.path.join(tmp, "o.svg")
    r = run(black, "-o", out, "--json", "--converter", "smart")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["smart_colormode"] == "binary"
    r = run(red, "-o", out, "--json", "--converter=smart")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["smart_colormode"] == "color"
    assert "dc1e1e" in open(out).read().lower()
    r = run(red, "-o", out, "--json", "--converter", "potrace")
    assert r.returncode == 0, r.stderr
    assert "smart_colormode" not in json.loads(r.stdout)
    assert "dc1e1e" not in open(out).read().lower()  # black and white only
    r = run(red, "-o", out, "--json")  # default vtracer: colour, as before
    assert r.returncode == 0 and "dc1e1e" in open(out).read().lower()
    r = run(red, "-o", out, "--converter", "magic")
    assert r.returncode == 2 and "converter" in r.stderr
