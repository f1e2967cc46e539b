"""End-to-end tests of `modeld enhance` (the binary from $MODELD_BIN) with the stand-in networks of
tests/fixtures/enhance copied into a temporary data dir: one file at x4 is exactly 4x, the output
format follows the extension or --format, a directory with a broken file, --face on a real face,
and the exit codes 0 / 1 / 2. (The real ESRGAN networks are made at build time and are not needed.)"""
import os
import shutil
import subprocess
import tempfile

import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "enhance")


def _bin():
    b = os.environ.get("MODELD_BIN") or os.path.join(HERE, "..", "..", "build", "asan", "modeld")
    return os.path.abspath(b)


@pytest.fixture
def data():
    d = tempfile.mkdtemp(prefix="modeld-enh-")
    for m in ("esrgan-slim-x2", "esrgan-slim-x4", "esrgan-thick-x2"):
        shutil.copytree(os.path.join(FIX, m), os.path.join(d, "models", m))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(data, *args):
    return subprocess.run([_bin(), "enhance", *args, "--data-dir", data, "--quality", "fast"],
                          capture_output=True, text=True, timeout=300)


def photo(path, size=(30, 20)):
    im = Image.new("RGB", size)
    im.putdata([(x * 8 % 256, y * 12 % 256, (x + y) * 5 % 256) for y in range(size[1])
                for x in range(size[0])])
    im.save(path)


def test_x4_is_exactly_four_times(data):
    src, out = os.path.join(data, "in.png"), os.path.join(data, "out.jpg")
    photo(src)
    r = run(data, src, "-o", out, "--scale", "4")
    assert r.returncode == 0, r.stderr
    assert "120x80" in r.stdout
    im = Image.open(out)
    assert im.format == "JPEG" and im.size == (120, 80)


def test_format_option_and_webp(data):
    src, out = os.path.join(data, "in.bmp"), os.path.join(data, "out.img")
    photo(src, (17, 9))
    r = run(data, src, "-o", out, "--scale", "2", "--format", "webp")
    assert r.returncode == 0, r.stderr
    im = Image.open(out)
    assert im.format == "WEBP" and im.size == (34, 18)


def test_directory_with_a_broken_file(data):
    d, o = os.path.join(data, "photos"), os.path.join(data, "big")
    os.makedirs(d)
    photo(os.path.join(d, "a.png"))
    photo(os.path.join(d, "b.jpg"), (8, 8))
    with open(os.path.join(d, "c.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot really")
    r = run(data, d, "-o", o, "--scale", "2", "--format", "png")
    assert r.returncode == 1
    err = r.stderr.lower()
    assert "c.png" in err and ("corrupt" in err or "truncated" in err)
    assert Image.open(os.path.join(o, "a_x2.png")).size == (60, 40)
    assert Image.open(os.path.join(o, "b_x2.png")).size == (16, 16)
    assert not os.path.exists(os.path.join(o, "c_x2.png"))


def test_face(data):
    out = os.path.join(data, "face.png")
    r = run(data, os.path.join(FIX, "face.jpg"), "-o", out, "--scale", "2", "--face")
    assert r.returncode == 0, r.stderr
    assert "1 face" in r.stdout
    assert Image.open(out).size == (256, 256)


def test_usage_errors(data):
    src = os.path.join(data, "in.png")
    photo(src)
    for bad in (["--scale", "5"], ["--quality", "ultra"], ["--format", "gif"],
                ["--jpeg-quality", "0"]):
        r = subprocess.run([_bin(), "enhance", src, *bad, "--data-dir", data],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, bad
        assert bad[0] in r.stderr


def test_missing_network(data):
    src = os.path.join(data, "in.png")
    photo(src)
    r = subprocess.run([_bin(), "enhance", src, "-o", os.path.join(data, "o.png"), "--scale", "8",
                        "--data-dir", data], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "model_not_found" in r.stderr
