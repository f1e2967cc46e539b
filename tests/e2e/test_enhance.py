"""End-to-end tests of the photo enhancement routes (issue 10 §4) with the real slim network:
POST /api/v1/enhance and its admission checks (400 naming the field, 413, 415, 422 for
face_enhance, 503 + Retry-After with a tiny memory budget), the job to SUCCESS with a result
exactly 4x (and 2x) the input in the asked format, the preview fitting 400x400, a batch and its
ZIP, /api/v1/config, warm-up (admin only), kill -9 of the server during an enhancement, and the
rate limit (429). The networks are converted from build/npm (scripts/deps.sh) into each
server's data dir; without them these tests are skipped."""
import io
import os
import signal
import subprocess
import time
import zipfile

import pytest
import requests
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NPM = os.path.join(ROOT, "build", "npm", "node_modules")
FACE_CASCADE = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(NPM, "@upscalerjs", "esrgan-slim")),
                                reason="build/npm has no @upscalerjs/esrgan-slim (scripts/deps.sh)")


def data_dir_with_models(tmp_path, only="slim-x4,slim-x2"):
    d = str(tmp_path / "var")
    os.makedirs(os.path.join(d, "models"))
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "training", "enhance", "convert.py"),
                    "--npm", NPM, "--out", os.path.join(d, "models"), "--only", only],
                   check=True, capture_output=True)
    return d


def photo(w=24, h=16, fmt="PNG", mode="RGB"):
    img = Image.new(mode, (w, h))
    for y in range(h):
        for x in range(w):
            px = (x * 10 % 256, y * 15 % 256, (x + y) * 5 % 256)
            img.putpixel((x, y), px + ((255 if x < w // 2 else 128),) if mode == "RGBA" else px)
    b = io.BytesIO()
    img.save(b, fmt)
    return b.getvalue()


def auth(s, key=None):
    return {"Authorization": "Bearer " + (key or s.admin_key)}


def enhance(s, data, key=None, name="p.png", **opts):
    return requests.post(s.url + "/api/v1/enhance", files={"file": (name, data)},
                         data={k: str(v) for k, v in opts.items()}, headers=auth(s, key))


def wait_done(s, jid, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        j = requests.get(s.url + "/api/v1/jobs/" + jid, headers=auth(s)).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            return j
        time.sleep(0.1)
    raise AssertionError("job %s did not finish: %s" % (jid, j))


@pytest.fixture
def enh_server(start_server, tmp_path):
    return start_server("--workers", "2", data_dir=data_dir_with_models(tmp_path))


def test_enhance_x4_exactly_4x_result_preview(enh_server):
    s = enh_server
    r = enhance(s, photo(24, 16), quality="fast", upscale=4, output_format="png")
    assert r.status_code == 202, r.text
    j = r.json()
    assert j["status"] == "QUEUED" and j["quality"] == "fast" and j["upscale"] == 4
    assert j["output_format"] == "png" and j["face_enhance"] is False
    assert j["links"]["result"] == "/api/v1/jobs/%s/result" % j["job_id"]
    done = wait_done(s, j["job_id"])
    assert done["status"] == "SUCCESS", done
    assert done["progress"] == 100
    assert done["result"]["width"] == 96 and done["result"]["height"] == 64
    assert done["result"]["format"] == "png"
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % j["job_id"], headers=auth(s))
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"] == "attachment; filename=enhanced_%s.png" % j["job_id"]
    assert len(r.content) == done["result"]["bytes"]
    assert Image.open(io.BytesIO(r.content)).size == (96, 64)
    p = requests.get(s.url + "/api/v1/jobs/%s/preview" % j["job_id"], headers=auth(s))
    assert p.status_code == 200 and p.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(p.content)).size == (96, 64)   # fits already: same size
    # x2 with the defaults otherwise (balanced needs medium: not installed -> FAILURE named)
    r = enhance(s, photo(30, 20), quality="fast", upscale=2, output_format="webp")
    done = wait_done(s, r.json()["job_id"])
    assert done["status"] == "SUCCESS" and done["result"]["width"] == 60
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % done["job_id"], headers=auth(s))
    assert r.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(r.content)).size == (60, 40)


def test_preview_fits_400(enh_server):
    s = enh_server
    r = enhance(s, photo(150, 60, "JPEG"), name="p.jpg", quality="fast", upscale=4)
    done = wait_done(s, r.json()["job_id"])
    assert done["status"] == "SUCCESS", done
    assert (done["result"]["width"], done["result"]["height"]) == (600, 240)
    p = requests.get(s.url + "/api/v1/jobs/%s/preview" % done["job_id"], headers=auth(s))
    assert Image.open(io.BytesIO(p.content)).size == (400, 160)
    assert p.headers["X-Cache"] == "MISS"
    again = requests.get(s.url + "/api/v1/jobs/%s/preview" % done["job_id"], headers=auth(s))
    assert again.headers["X-Cache"] == "HIT" and again.content == p.content
    assert again.headers["Content-Type"] == p.headers["Content-Type"] == "image/jpeg"
    rc, out, _ = s.keys("create", "--role", "write", "--name", "other")
    other = [x for x in out.split() if x.startswith("mdk_")][0]
    r = requests.get(s.url + "/api/v1/jobs/%s/preview" % done["job_id"], headers=auth(s, other))
    assert r.status_code == 404, r.text  # the cache does not skip the owner check
    requests.delete(s.url + "/api/v1/jobs/" + done["job_id"], headers=auth(s))
    r = requests.get(s.url + "/api/v1/jobs/%s/preview" % done["job_id"], headers=auth(s))
    assert r.status_code == 404, r.text  # nor the job's existence


@pytest.mark.skipif(not os.path.exists(FACE_CASCADE), reason="no opencv-data (scripts/deps.sh)")
def test_face_enhance_finds_the_face(start_server, tmp_path):
    s = start_server("--workers", "1", data_dir=data_dir_with_models(tmp_path, "slim-x2,thick-x2"))
    face = open(os.path.join(HERE, "..", "fixtures", "enhance", "face.jpg"), "rb").read()
    r = enhance(s, face, name="face.jpg", quality="fast", upscale=2, face_enhance="true",
                output_format="png")
    assert r.status_code == 202, r.text
    done = wait_done(s, r.json()["job_id"])
    assert done["status"] == "SUCCESS", done
    assert done["face_enhance"] is True and done["result"]["faces_found"] == 1
    assert (done["result"]["width"], done["result"]["height"]) == (256, 256)


def test_admission_errors(start_server, tmp_path):
    # No face detector here (MODELD_FACE_CASCADE names no file): face_enhance is refused, 422.
    s = start_server("--workers", "1", "--enhance-max-bytes", "64K",
                     data_dir=data_dir_with_models(tmp_path), env={"MODELD_FACE_CASCADE": "/nonexistent.xml"})
    cases = [
        ({"quality": "ultra"}, 400, "quality"),
        ({"quality": "fast", "face_enhance": "true"}, 422, "face_enhance"),
        ({"upscale": "5"}, 400, "upscale"),
        ({"output_format": "gif"}, 400, "output_format"),
        ({"face_enhance": "maybe"}, 400, "face_enhance"),
    ]
    for opts, status, field in cases:
        r = enhance(s, photo(), **opts)
        assert r.status_code == status, (opts, r.text)
        assert r.json()["error"]["field"] == field, r.text
    r = enhance(s, b"GIF89a not supported here")
    assert r.status_code == 415 and r.json()["error"]["field"] == "file"
    r = enhance(s, b"\x89PNG" + b"\0" * (70 * 1024))
    assert r.status_code == 413 and r.json()["error"]["field"] == "file"
    r = requests.post(s.url + "/api/v1/enhance", files={"other": ("a", b"x")}, headers=auth(s))
    assert r.status_code == 400 and r.json()["error"]["field"] == "file"
    r = requests.post(s.url + "/api/v1/enhance", data=b"{}", headers=auth(s))
    assert r.status_code == 415
    cfg = requests.get(s.url + "/api/v1/config", headers=auth(s)).json()
    assert cfg["face_enhance"]["available"] is False and "422" in cfg["face_enhance"]["reason"]
    assert cfg["scales"] == [2, 3, 4, 8] and cfg["qualities"] == ["fast", "balanced", "best"]
    assert cfg["formats"] == ["jpg", "png", "webp"] and cfg["limits"]["max_file_bytes"] == 65536


def test_face_enhance_reports_faces(start_server, tmp_path):
    """With the face detector (Debian's opencv-data cascade), the astronaut's face is found, run
    through the thick network and reported in the result."""
    s = start_server("--workers", "1", data_dir=data_dir_with_models(tmp_path, "slim-x4,thick-x4"))
    if not requests.get(s.url + "/api/v1/config", headers=auth(s)).json()["face_enhance"]["available"]:
        pytest.skip("no face detector on this machine (opencv-data)")
    from skimage import data as skdata
    b = io.BytesIO()
    Image.fromarray(skdata.astronaut()).resize((160, 160)).save(b, "PNG")
    r = enhance(s, b.getvalue(), quality="fast", upscale=4, face_enhance="true", output_format="png")
    assert r.status_code == 202, r.text
    assert r.json()["face_enhance"] is True
    done = wait_done(s, r.json()["job_id"])
    assert done["status"] == "SUCCESS", done
    assert done["result"]["faces_found"] == 1
    assert (done["result"]["width"], done["result"]["height"]) == (640, 640)


def test_memory_budget_503(start_server, tmp_path):
    s = start_server("--workers", "1", "--enhance-memory-budget", "1M",
                     data_dir=data_dir_with_models(tmp_path))
    r = enhance(s, photo(200, 200), quality="fast", upscale=4)
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After") and r.json()["error"]["code"] == "overloaded"
    assert "memory budget" in r.json()["error"]["message"]


def test_memory_budget_sums_jobs_that_run_together(start_server, tmp_path):
    """No workers, so accepted jobs stay QUEUED: with room for two jobs running at once and a
    budget that holds one 24x16 x4 job (about 31 MB) but not two, the second is refused (503 +
    Retry-After, naming the field), a batch of two too; once the queued job is cancelled the
    room is free again. With one job at a time, every job fits."""
    s = start_server("--workers", "0", "--enhance-max-running", "2", "--enhance-memory-budget",
                     "50M", data_dir=data_dir_with_models(tmp_path))
    first = enhance(s, photo(24, 16), quality="fast", upscale=4)
    assert first.status_code == 202, first.text
    r = enhance(s, photo(24, 16), quality="fast", upscale=4)
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After") and r.json()["error"]["code"] == "overloaded"
    assert r.json()["error"]["field"] == "file"
    assert "can run at once" in r.json()["error"]["message"]
    files = [("files", ("p%d.png" % i, photo(24, 16))) for i in range(2)]
    r = requests.post(s.url + "/api/v1/enhance/batch", files=files,
                      data={"quality": "fast", "upscale": "4"}, headers=auth(s))
    assert r.status_code == 503 and r.json()["error"]["field"] == "files", r.text
    assert requests.delete(s.url + "/api/v1/jobs/" + first.json()["job_id"],
                           headers=auth(s)).status_code in (200, 202, 204)
    r = enhance(s, photo(24, 16), quality="fast", upscale=4)
    assert r.status_code == 202, r.text
    s2 = start_server("--workers", "0", "--enhance-max-running", "1", "--enhance-memory-budget",
                      "50M", data_dir=data_dir_with_models(tmp_path / "one"))
    for _ in range(3):
        r = enhance(s2, photo(24, 16), quality="fast", upscale=4)
        assert r.status_code == 202, r.text


def test_batch_zip_and_warmup(enh_server):
    s = enh_server
    files = [("files", ("p%d.png" % i, photo(8 + i, 8))) for i in range(5)]
    r = requests.post(s.url + "/api/v1/enhance/batch", files=files,
                      data={"quality": "fast", "upscale": "2", "output_format": "png"}, headers=auth(s))
    assert r.status_code == 202, r.text
    b = r.json()
    assert len(b["job_ids"]) == 5
    for jid in b["job_ids"]:
        assert wait_done(s, jid)["status"] == "SUCCESS"
    st = requests.get(s.url + "/api/v1/batch/" + b["batch_id"], headers=auth(s)).json()
    assert st["status"] == "SUCCESS" and st["completed"] == 5 and st["progress"] == 100
    z = zipfile.ZipFile(io.BytesIO(requests.get(s.url + "/api/v1/batch/%s/results" % b["batch_id"],
                                                headers=auth(s)).content))
    sizes = sorted(Image.open(io.BytesIO(z.read(n))).size for n in z.namelist())
    assert sizes == sorted(((8 + i) * 2, 16) for i in range(5))
    too_many = [("files", ("p.png", photo(4, 4)))] * 51
    r = requests.post(s.url + "/api/v1/enhance/batch", files=too_many, data={"quality": "fast"},
                      headers=auth(s))
    assert r.status_code == 400 and r.json()["error"]["field"] == "files", r.text
    bad = [("files", ("a.png", photo(4, 4))), ("files", ("b.gif", b"GIF89a..."))]
    r = requests.post(s.url + "/api/v1/enhance/batch", files=bad, data={"quality": "fast"}, headers=auth(s))
    assert r.status_code == 415 and r.json()["error"]["field"] == "files[1]"
    w = requests.post(s.url + "/api/v1/models/warmup?quality=fast&upscale=4", headers=auth(s))
    assert w.status_code == 200, w.text
    assert w.json()["models"][0]["status"] == "ok" and w.json()["models"][0]["model"] == "esrgan-slim-x4"
    rc, out, err = s.keys("create", "--role", "write", "--name", "w")
    k = [x for x in out.split() if x.startswith("mdk_")][0]
    assert requests.post(s.url + "/api/v1/models/warmup", headers=auth(s, k)).status_code == 403


def test_kill_9_during_enhancement_then_restart(start_server, tmp_path):
    d = data_dir_with_models(tmp_path)
    s = start_server("--workers", "1", data_dir=d)
    ids = [enhance(s, photo(160 + i, 120), quality="fast", upscale=4, output_format="png").json()["job_id"]
           for i in range(3)]
    end = time.time() + 120
    while time.time() < end:
        if requests.get(s.url + "/api/v1/jobs/" + ids[0], headers=auth(s)).json()["status"] != "QUEUED":
            break
        time.sleep(0.01)
    s.stop(signal.SIGKILL)   # the first job is running (x4 of 160x120 takes far longer than this)
    s2 = start_server("--workers", "1", data_dir=d, expect_key=False)
    s2.admin_key = s.admin_key
    for i, jid in enumerate(ids):
        done = wait_done(s2, jid)
        assert done["status"] == "SUCCESS", done
        r = requests.get(s2.url + "/api/v1/jobs/%s/result" % jid, headers=auth(s2))
        assert Image.open(io.BytesIO(r.content)).size == ((160 + i) * 4, 480)


def test_rate_limit_429(start_server, tmp_path):
    s = start_server("--workers", "1", "--enhance-rate", "0.01:2", data_dir=data_dir_with_models(tmp_path))
    codes = [enhance(s, photo(4, 4), quality="fast").status_code for _ in range(3)]
    assert codes[:2] == [202, 202] and codes[2] == 429
