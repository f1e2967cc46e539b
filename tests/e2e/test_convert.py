"""Conversion API v1 end to end (issue 4): POST /api/upload with every check in its order,
POST /api/convert with its converters, parameters and errors, the answer cache (X-Cache and
/metrics), GET /api/results/{id}[.svg], roles, and the web page served at "/"."""
import glob
import os
import re
import xml.etree.ElementTree as ET

import pytest
import requests

from convert_util import (BAD_FILES, CONVERT_FIELDS, PARAM_NAMES, UPLOAD_FIELDS, bearer, code, convert, corpus,
                          labels, png_bytes, reencode, upload, upload_ok)


@pytest.fixture(scope="module")
def keys(server):
    """{"admin", "write", "read"} keys of the module's server."""
    out = {"admin": server.admin_key}
    for role in ("write", "read"):
        rc, stdout, stderr = server.keys("create", "--role", role, "--name", "e2e-" + role)
        assert rc == 0, stderr
        out[role] = stdout.strip()
    return out


def blob_files(server):
    root = os.path.join(server.data_dir, "blobs")
    return [p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
            if os.path.isfile(p) and not os.path.relpath(p, root).startswith("tmp" + os.sep)]


# ---- upload ---------------------------------------------------------------------------------

def test_upload_every_good_corpus_image(server, keys):
    for name, (_, w, h) in sorted(labels().items())[:12]:
        data = corpus(name)
        r = upload(server.url, keys["write"], data, filename=name)
        assert r.status_code == 200, (name, r.text)
        j = r.json()
        assert set(j) == UPLOAD_FIELDS
        assert j["success"] is True
        assert (j["filename"], j["format"], j["width"], j["height"], j["size_bytes"]) == (name, "png", w, h, len(data))
        assert re.fullmatch(r"[A-Za-z0-9_-]{8,39}", j["file_id"])


@pytest.mark.parametrize("fmt,name,kw", [("JPEG", "jpeg", {"quality": 90}), ("WEBP", "webp", {}),
                                         ("BMP", "bmp", {}), ("TIFF", "tiff", {})])
def test_upload_other_formats(server, keys, fmt, name, kw):
    data = reencode("simple_geometric_01.png", fmt, **kw)
    r = upload(server.url, keys["write"], data, filename="logo.png", content_type="image/png")
    assert r.status_code == 200, r.text
    assert r.json()["format"] == name  # by magic bytes, whatever the name and type claim
    assert (r.json()["width"], r.json()["height"]) == (448, 448)


def test_upload_raw_body(server, keys):
    data = corpus("simple_geometric_03.png")
    r = requests.post(server.url + "/api/upload?filename=raw.png", data=data,
                      headers={**bearer(keys["write"]), "Content-Type": "image/png"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "raw.png"
    assert r.json()["size_bytes"] == len(data)


def test_upload_same_content_stored_once(server, keys):
    data = corpus("gradient_05.png")
    before = len(blob_files(server))
    ids = {upload(server.url, keys["write"], data, filename="a%d.png" % i).json()["file_id"] for i in range(3)}
    assert len(ids) == 3  # three uploads ...
    assert len(blob_files(server)) == before + 1  # ... one blob


def test_filename_is_metadata_only(server, keys):
    for sent, kept in (("../../../../tmp/modeld-evil.png", "modeld-evil.png"), ("C:\\x\\evil2.png", "evil2.png"),
                       ("..", "image.png")):
        r = upload(server.url, keys["write"], corpus("simple_geometric_02.png"), filename=sent)
        assert r.status_code == 200, r.text
        assert r.json()["filename"] == kept
    assert not os.path.exists("/tmp/modeld-evil.png")


@pytest.mark.parametrize("name,status,err", [("non_image_text.png", 415, "unsupported_format"),
                                             ("corrupted_magic_garbage.png", 400, None),
                                             ("corrupted_truncated.png", 400, None)])
def test_upload_bad_corpus_files(server, keys, name, status, err):
    assert name in BAD_FILES
    r = upload(server.url, keys["write"], corpus(name), filename=name, content_type="image/png")
    assert r.status_code == status, r.text
    j = r.json()
    assert j["success"] is False and j["request_id"]
    if err:
        assert j["error"]["code"] == err
    else:
        assert j["error"]["code"] in ("corrupt_image", "truncated_image")
    assert "/" not in j["error"]["message"] or "image/" in j["error"]["message"]  # no paths leak


def test_upload_dimension_limit(server, keys):
    r = upload(server.url, keys["write"], png_bytes(9000, 1), filename="wide.png")
    assert r.status_code == 400, r.text
    assert code(r) == "image_too_large"
    r = upload(server.url, keys["write"], png_bytes(8000, 6000), filename="48mp.png")  # over 40 MP
    assert r.status_code == 400 and code(r) == "image_too_large"


def test_upload_order_type_before_dimensions(server, keys):
    # A text file is refused as a type (415) even though it is small; a huge valid header is a
    # dimension error (400), not a decode error: the checks run in their documented order.
    assert upload(server.url, keys["write"], b"hello" * 10, filename="x.png").status_code == 415
    assert upload(server.url, keys["write"], png_bytes(9000, 1)[:60], filename="x.png").status_code == 400


def test_upload_malformed_requests(server, keys):
    h = bearer(keys["write"])
    r = requests.post(server.url + "/api/upload", headers=h, timeout=30)
    assert r.status_code == 400 and code(r) == "missing_field"
    r = requests.post(server.url + "/api/upload", headers=h, files={"other": ("a.png", b"x")}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["field"] == "file"
    r = requests.post(server.url + "/api/upload", headers={**h, "Content-Type": "application/json"}, data=b"{}",
                      timeout=30)
    assert r.status_code == 415
    r = requests.post(server.url + "/api/upload", headers={**h, "Content-Type": "multipart/form-data; boundary=B"},
                      data=b"--B\r\nbroken", timeout=30)
    assert r.status_code == 400


def test_upload_too_large(start_server):
    s = start_server(env={"MODELD_UPLOAD_MAX_BYTES": "150000"})
    r = upload(s.url, s.admin_key, corpus("complex_00.png"))  # 198754 bytes: our check
    assert r.status_code == 413 and r.json()["error"]["field"] == "file"
    r = upload(s.url, s.admin_key, corpus("complex_09_photo.png"))  # 393852 bytes: past the body limit
    assert r.status_code == 413
    assert upload(s.url, s.admin_key, corpus("complex_07.png")).status_code == 200


def test_upload_default_limit_is_20mb(server, keys):
    big = png_bytes(16, 16) + bytes(20 * 1024 * 1024)  # trailing bytes after IEND: 20 MB + a bit
    r = upload(server.url, keys["write"], big)
    assert r.status_code == 413


# ---- convert --------------------------------------------------------------------------------

def check_answer(j, width=None):
    assert set(j) == CONVERT_FIELDS
    assert j["success"] is True
    root = ET.fromstring(j["svg"])
    assert root.tag.endswith("svg")
    if width:
        assert root.get("width") in (str(width), "%dpx" % width)
    assert j["svg_bytes"] == len(j["svg"].encode())
    assert 0 < j["ssim"] <= 1
    assert j["processing_time"] > 0
    assert j["path_count"] >= 1
    assert PARAM_NAMES <= set(j["parameters"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,39}", j["result_id"])


def test_convert_converters(server, keys):
    fid = upload_ok(server.url, keys["write"], "papirus_hoppscotch_256.png")
    seen = {}
    for conv in ("vtracer", "potrace", "smart"):
        r = convert(server.url, keys["write"], {"file_id": fid, "converter": conv})
        assert r.status_code == 200, r.text
        check_answer(r.json(), width=256)
        seen[conv] = r.json()["parameters"]["colormode"]
    assert seen["vtracer"] == "color" and seen["potrace"] == "binary"
    assert seen["smart"] in ("color", "binary")


def test_convert_smart_picks_binary_for_black_and_white(server, keys):
    from PIL import Image, ImageDraw
    import io
    im = Image.new("RGB", (160, 80), "white")
    ImageDraw.Draw(im).rectangle((20, 20, 140, 60), fill="black")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    fid = upload(server.url, keys["write"], buf.getvalue()).json()["file_id"]
    r = convert(server.url, keys["write"], {"file_id": fid, "converter": "smart"})
    assert r.status_code == 200 and r.json()["parameters"]["colormode"] == "binary"


def test_convert_parameters_and_defaults(server, keys):
    fid = upload_ok(server.url, keys["write"], "simple_geometric_04.png")
    r = convert(server.url, keys["write"], {"file_id": fid, "converter": "vtracer", "filter_speckle": 10,
                                            "mode": "polygon", "length_threshold": 6.5, "gradients": False})
    assert r.status_code == 200, r.text
    p = r.json()["parameters"]
    assert (p["filter_speckle"], p["mode"], p["length_threshold"], p["gradients"]) == (10, "polygon", 6.5, 0)
    assert p["corner_threshold"] == 60 and p["color_precision"] == 6  # defaults filled in
    r = convert(server.url, keys["write"], {"file_id": fid, "preset": "fast"})
    assert r.status_code == 200 and r.json()["parameters"]["mode"] == "polygon"


@pytest.mark.parametrize("extra,field", [({"corner_threshold": 181}, "corner_threshold"),
                                         ({"filter_speckle": -1}, "filter_speckle"),
                                         ({"color_precision": 2.5}, "color_precision"),
                                         ({"mode": "bezier"}, "mode"),
                                         ({"hierarchical": None}, "hierarchical"),
                                         ({"converter": "autotrace"}, "converter"),
                                         ({"preset": "best"}, "preset"),
                                         ({"unknown_knob": 1}, "unknown_knob")])
def test_convert_bad_parameter_names_field(server, keys, extra, field):
    fid = upload_ok(server.url, keys["write"], "simple_geometric_00.png")
    r = convert(server.url, keys["write"], {"file_id": fid, **extra})
    assert r.status_code == 400, r.text
    assert code(r) == "invalid_parameter"
    assert r.json()["error"]["field"] == field
    assert field in r.json()["error"]["message"]


def test_convert_missing_and_unknown(server, keys):
    h = {**bearer(keys["write"]), "Content-Type": "application/json"}
    r = requests.post(server.url + "/api/convert", headers=h, timeout=30)
    assert r.status_code == 400
    r = requests.post(server.url + "/api/convert", headers=h, data=b"{nope", timeout=30)
    assert r.status_code == 400 and code(r) == "invalid_json"
    r = convert(server.url, keys["write"], {"converter": "vtracer"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "file_id"
    r = convert(server.url, keys["write"], {"file_id": 42})
    assert r.status_code == 400 and r.json()["error"]["field"] == "file_id"
    r = convert(server.url, keys["write"], {"file_id": "f_0123456789abcdef"})
    assert r.status_code == 404 and code(r) == "file_not_found"


def metric(server, name):
    text = requests.get(server.url + "/metrics", timeout=30).text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, name
    return int(m.group(1))


def test_convert_cache(server, keys):
    hits0, misses0 = metric(server, "modeld_convert_cache_hits_total"), metric(server, "modeld_convert_cache_misses_total")
    fid = upload_ok(server.url, keys["write"], "text_based_01.png")
    body = {"file_id": fid, "converter": "vtracer", "corner_threshold": 75}
    a = convert(server.url, keys["write"], body)
    b = convert(server.url, keys["write"], body)
    assert (a.status_code, b.status_code) == (200, 200)
    assert (a.headers["X-Cache"], b.headers["X-Cache"]) == ("MISS", "HIT")
    assert a.json() == b.json()  # the same result, result_id included
    # The same content uploaded again under another file_id shares the cached answer.
    fid2 = upload_ok(server.url, keys["write"], "text_based_01.png")
    c = convert(server.url, keys["write"], {**body, "file_id": fid2})
    assert c.headers["X-Cache"] == "HIT" and c.json()["result_id"] == a.json()["result_id"]
    # Any parameter change is a different conversion.
    d = convert(server.url, keys["write"], {**body, "corner_threshold": 76})
    assert d.headers["X-Cache"] == "MISS" and d.json()["result_id"] != a.json()["result_id"]
    assert metric(server, "modeld_convert_cache_hits_total") - hits0 == 2
    assert metric(server, "modeld_convert_cache_misses_total") - misses0 == 2


# ---- results --------------------------------------------------------------------------------

def test_results_json_and_svg(server, keys):
    fid = upload_ok(server.url, keys["write"], "papirus_gthumb_256.png")
    a = convert(server.url, keys["write"], {"file_id": fid}).json()
    r = requests.get(server.url + "/api/results/" + a["result_id"], headers=bearer(keys["read"]), timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    for k in ("svg", "ssim", "processing_time", "svg_bytes", "path_count", "parameters", "result_id"):
        assert j[k] == a[k], k
    assert j["file_id"] == fid and j["expires_at"] > j["created_at"]
    r = requests.get(server.url + "/api/results/%s.svg" % a["result_id"], headers=bearer(keys["read"]), timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert r.headers["Content-Disposition"] == 'attachment; filename="papirus_gthumb_256.svg"'
    assert r.text == a["svg"]
    for bad in ("r_nope", "r_nope.svg", "..%2F..%2Fmodeld.db", "x" * 300):
        r = requests.get(server.url + "/api/results/" + bad, headers=bearer(keys["read"]), timeout=30)
        assert r.status_code == 404, bad


# ---- roles ----------------------------------------------------------------------------------

def test_roles(server, keys):
    data = corpus("simple_geometric_00.png")
    assert upload(server.url, keys["read"], data).status_code == 403
    r = requests.post(server.url + "/api/upload", files={"file": ("a.png", data)}, timeout=30)
    assert r.status_code == 401
    fid = upload_ok(server.url, keys["write"], "simple_geometric_00.png")
    assert convert(server.url, keys["read"], {"file_id": fid}).status_code == 403
    r = requests.post(server.url + "/api/convert", json={"file_id": fid}, timeout=30)
    assert r.status_code == 401
    rid = convert(server.url, keys["admin"], {"file_id": fid}).json()["result_id"]
    assert requests.get(server.url + "/api/results/" + rid, timeout=30).status_code == 401
    assert requests.get(server.url + "/api/results/" + rid, headers=bearer(keys["read"]), timeout=30).status_code == 200


# ---- the web page ---------------------------------------------------------------------------

@pytest.mark.parametrize("path,ctype", [("/", "text/html; charset=utf-8"), ("/index.html", "text/html; charset=utf-8"),
                                        ("/app.css", "text/css; charset=utf-8"),
                                        ("/app.js", "text/javascript; charset=utf-8")])
def test_web_page_served(server, path, ctype):
    r = requests.get(server.url + path, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == ctype
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] in ("no-cache", "public, max-age=300")
    etag = r.headers["ETag"]
    r2 = requests.get(server.url + path, headers={"If-None-Match": etag}, timeout=30)
    assert r2.status_code == 304 and r2.content == b""


def test_web_page_no_traversal(server):
    for p in ("/..%2FCMakeLists.txt", "/.hidden", "/nope.js", "/%2e%2e/etc/passwd"):
        assert requests.get(server.url + p, timeout=30).status_code == 404, p


def test_presets_and_limits(server, keys):
    r = requests.get(server.url + "/api/presets", headers=bearer(keys["read"]), timeout=30)
    assert r.status_code == 200
    j = r.json()
    assert set(j["presets"]) == {"default", "quality", "fast", "bw"}
    assert j["presets"]["bw"]["colormode"] == "binary"
    assert all(PARAM_NAMES <= set(p) for p in j["presets"].values())
    assert j["limits"] == {"upload_max_bytes": 20 << 20, "max_width": 8192, "max_height": 8192,
                           "max_pixels": 40000000}
    assert requests.get(server.url + "/api/presets", timeout=30).status_code == 401
