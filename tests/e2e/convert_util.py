"""Helpers shared by the conversion API tests (test_convert*.py): corpus paths, auth headers,
uploads, converts and small image builders."""
import csv
import io
import os
import struct
import zlib

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
# A copy of ../shared/corpus/dev kept in the repository, so the tests need nothing outside it.
CORPUS = os.environ.get("MODELD_CORPUS_DIR") or os.path.join(HERE, "..", "fixtures", "corpus")
BAD_FILES = ("corrupted_magic_garbage.png", "corrupted_truncated.png", "non_image_text.png")
UPLOAD_FIELDS = {"success", "file_id", "filename", "format", "width", "height", "size_bytes"}
CONVERT_FIELDS = {"success", "svg", "ssim", "processing_time", "svg_bytes", "path_count", "parameters",
                  "result_id"}
PARAM_NAMES = {"colormode", "hierarchical", "mode", "filter_speckle", "color_precision", "layer_difference",
               "corner_threshold", "length_threshold", "max_iterations", "splice_threshold", "path_precision"}


def bearer(key):
    return {"Authorization": "Bearer " + key}


def code(r):
    return r.json()["error"]["code"]


def corpus(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        return f.read()


def labels():
    """{file: (class, width, height)} for the good corpus images."""
    out = {}
    with open(os.path.join(CORPUS, "labels.csv")) as f:
        for row in csv.DictReader(f):
            if row["class"] not in ("corrupted", "non_image"):
                out[row["file"]] = (row["class"], int(row["width"]), int(row["height"]))
    return out


def upload(url, key, data, filename="image.png", content_type="image/png", timeout=120):
    return requests.post(url + "/api/upload", headers=bearer(key), timeout=timeout,
                         files={"file": (filename, data, content_type)})


def upload_ok(url, key, name):
    r = upload(url, key, corpus(name), filename=name)
    assert r.status_code == 200, r.text
    return r.json()["file_id"]


def convert(url, key, body, timeout=300):
    return requests.post(url + "/api/convert", headers=bearer(key), json=body, timeout=timeout)


def png_bytes(width, height, value=0):
    """A valid 8-bit greyscale PNG of the given size, every pixel `value` (0 black, 255 white;
    compresses to almost nothing, so a 36 MP image is a 35 KB file)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\x00" + bytes([value]) * width
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def reencode(name, fmt, **kw):
    """A corpus image saved in another format (Pillow, a Debian package)."""
    from PIL import Image
    im = Image.open(os.path.join(CORPUS, name))
    if fmt in ("JPEG", "BMP"):
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()
