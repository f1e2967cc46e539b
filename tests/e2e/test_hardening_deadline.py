"""Issue 8 §5, "work outlives its deadline", end to end: what an attacker tried against the
server and what must happen now.

- A 6000x6000 all-black PNG (35 KB) and a white 8192x4882 PNG (50 KB) are refused by admission
  (400 image_too_large naming the pixel limit) before any pixel is traced.
- With a larger pixel limit, such a conversion past its deadline answers 504 and its worker is
  freed (the trace is cancelled at its next check): a normal conversion right after succeeds on
  the one worker.
- The pool-wide pixel budget answers 503 overloaded with Retry-After while it is spent.
- SIGTERM's drain respects --drain-timeout: a conversion still running is cancelled and the
  process exits.
- The 1.7 KB cut of a 6000x6000 JPEG with an EOI glued on is truncated_image.
- Tracing parameters accept JSON numbers and plain decimal strings only (§5 "lenient numbers").

Images are built here (convert_util.png_bytes) or come from tests/fixtures; nothing reads
../shared. The big uploads go through a first server with the default deadline, and the tests
run on a second one over the same data dir with the settings under test, so a slow (ASan) upload
never meets a short deadline.
"""
import concurrent.futures as cf
import os
import re
import signal
import time

import pytest
import requests

from convert_util import bearer, code, convert, png_bytes, upload

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")


def metric(s, name):
    text = requests.get(s.url + "/metrics", headers=bearer(s.key), timeout=30).text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def wait_for(pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def uploaded(url, key, data, name):
    r = upload(url, key, data, filename=name)
    assert r.status_code == 200, r.text
    return r.json()["file_id"]


@pytest.fixture(scope="module")
def images():
    return {"zero": png_bytes(6000, 6000), "white": png_bytes(8192, 4882, 255), "small": png_bytes(48, 40)}


@pytest.fixture
def prepared(start_server, images, tmp_path):
    """Start a server, upload the images, stop it; then start(*args) runs a second server on
    the same data dir. Returns (start, file_ids)."""
    data_dir = str(tmp_path / "var")
    first = start_server(data_dir=data_dir)
    ids = {k: uploaded(first.url, first.admin_key, v, k + ".png") for k, v in images.items()}
    assert first.stop() == 0

    def start(*args):
        s = start_server(*args, data_dir=data_dir, expect_key=False)
        s.key = first.admin_key
        return s
    return start, ids


def test_big_images_refused_by_admission(prepared):
    start, ids = prepared
    s = start()
    for name in ("zero", "white"):
        r = convert(s.url, s.key, {"file_id": ids[name]})
        assert r.status_code == 400, r.text
        assert code(r) == "image_too_large"
        assert r.json()["error"]["field"] == "pixels"
        assert "16000000" in r.json()["error"]["message"]
    r = convert(s.url, s.key, {"file_id": ids["small"]})
    assert r.status_code == 200, r.text
    assert metric(s, "modeld_convert_pixels_in_flight") == 0


def test_deadline_cancels_the_work_and_frees_the_worker(prepared):
    start, ids = prepared
    s = start("--compute-threads", "1", "--request-timeout", "2s", "--convert-max-pixels", "40000000")
    for name, conv in (("zero", "vtracer"), ("white", "potrace")):
        r = convert(s.url, s.key, {"file_id": ids[name], "converter": conv})
        assert r.status_code == 504, r.text
        assert code(r) == "timeout"
        # The one worker stops at its next check (seconds), not when the trace would have ended
        # (over a minute for these images under ASan), and gives its pixels back.
        assert wait_for(lambda: metric(s, "modeld_compute_workers_busy") == 0)
        assert metric(s, "modeld_convert_pixels_in_flight") == 0
        r = convert(s.url, s.key, {"file_id": ids["small"], "converter": conv})
        assert r.status_code == 200, r.text


def test_pixel_budget_in_flight_gives_503(prepared):
    start, ids = prepared
    s = start("--compute-threads", "2", "--request-timeout", "4s", "--convert-max-pixels", "36000000",
              "--convert-pixels-in-flight", "36000000")
    with cf.ThreadPoolExecutor(1) as ex:
        big = ex.submit(convert, s.url, s.key, {"file_id": ids["zero"]})
        assert wait_for(lambda: metric(s, "modeld_convert_pixels_in_flight") == 36000000)
        r = convert(s.url, s.key, {"file_id": ids["small"]})
        assert r.status_code == 503, r.text
        assert code(r) == "overloaded"
        assert r.headers["Retry-After"] == "1"
        assert big.result().status_code in (200, 504)
    assert wait_for(lambda: metric(s, "modeld_convert_pixels_in_flight") == 0)
    assert convert(s.url, s.key, {"file_id": ids["small"]}).status_code == 200


def test_drain_timeout_cancels_running_conversions(prepared):
    start, ids = prepared
    s = start("--compute-threads", "1", "--request-timeout", "10m", "--drain-timeout", "1s",
              "--convert-max-pixels", "40000000")
    with cf.ThreadPoolExecutor(1) as ex:
        big = ex.submit(convert, s.url, s.key, {"file_id": ids["white"]})
        assert wait_for(lambda: metric(s, "modeld_convert_pixels_in_flight") > 0)
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=120) == 0
        # 1 s of drain, the cancelled trace's next check, 1 s for the 503s to go out: seconds,
        # where finishing the trace would take over a minute under ASan.
        assert time.time() - t0 < 30
        r = big.result()
    assert r.status_code == 503
    assert code(r) == "unavailable"
    msgs = [l.get("msg") for l in s.log_lines()]
    assert "stopped" in msgs


def test_truncated_big_jpeg_is_refused(server):
    with open(os.path.join(FIXTURES, "image", "cut6000.jpg"), "rb") as f:
        data = f.read()
    assert len(data) == 1702
    r = upload(server.url, server.admin_key, data, filename="cut.jpg", content_type="image/jpeg")
    assert r.status_code == 400, r.text
    assert code(r) == "truncated_image"


@pytest.mark.parametrize("name,value", [
    ("filter_speckle", "0x10"), ("length_threshold", "0x1p3"), ("filter_speckle", " 3"),
    ("filter_speckle", "3 "), ("filter_speckle", "+3"), ("corner_threshold", "1e2"),
    ("filter_speckle", True), ("length_threshold", False), ("max_iterations", None),
    ("path_precision", [2]), ("splice_threshold", {"v": 1}), ("length_threshold", "inf"),
    ("length_threshold", "nan"), ("filter_speckle", ""),
])
def test_lenient_numbers_are_refused(server, name, value):
    fid = uploaded(server.url, server.admin_key, png_bytes(16, 16), "p.png")
    r = convert(server.url, server.admin_key, {"file_id": fid, name: value})
    assert r.status_code == 400, r.text
    assert code(r) == "invalid_parameter"
    assert r.json()["error"]["field"] == name


def test_numbers_and_plain_decimal_strings_are_accepted(server):
    fid = uploaded(server.url, server.admin_key, png_bytes(16, 16), "p.png")
    for body in ({"filter_speckle": 8, "length_threshold": 4.5}, {"filter_speckle": "8", "length_threshold": "4.5"},
                 {"corner_threshold": 90.0, "gradients": False}, {"max_iterations": "5"}):
        r = convert(server.url, server.admin_key, {"file_id": fid, **body})
        assert r.status_code == 200, (body, r.text)
        p = r.json()["parameters"]
        for k, v in body.items():
            if k != "gradients":
                assert float(p[k]) == float(v)
