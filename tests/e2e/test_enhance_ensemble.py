"""End-to-end tests of the self-ensemble option of POST /api/v1/enhance (`ensemble`, issue 10
"going further"): a bad value is refused with 400 naming the field, the job shows the option,
the OpenAPI document describes it, and with the real esrgan-thick x2 (quality best) the result
differs from plain best and is closer to the ground truth: tests/fixtures/enhance/ensemble_hr.png
(skimage's astronaut.png, public domain, cropped to (300, 250)-(348, 298)) downscaled x2
bicubically here, then enhanced both ways, PSNR against the crop (measured: bicubic 33.45 dB,
best 32.55, best + ensemble 32.79; thick loses to bicubic on so small an image, its zero-padded
borders are a large part of it). The network is converted from build/npm
(scripts/deps.sh) into the server's data dir; without it these tests are skipped."""
import io
import math
import os
import shutil
import subprocess
import time

import pytest
import requests
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NPM = os.path.join(ROOT, "build", "npm", "node_modules")
HR = os.path.join(HERE, "..", "fixtures", "enhance", "ensemble_hr.png")

pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(NPM, "@upscalerjs", "esrgan-thick")),
                                reason="build/npm has no @upscalerjs/esrgan-thick (scripts/deps.sh)")


@pytest.fixture(scope="module")
def thick_models(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("thick"))
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "training", "enhance", "convert.py"),
                    "--npm", NPM, "--out", d, "--only", "thick-x2"],
                   check=True, capture_output=True)
    return d


@pytest.fixture
def thick_dir(thick_models, tmp_path):
    """A fresh data dir (its server prints its own admin key) holding the converted network."""
    d = str(tmp_path / "var")
    shutil.copytree(thick_models, os.path.join(d, "models"))
    return d


def auth(s):
    return {"Authorization": "Bearer " + s.admin_key}


def enhance(s, data, **opts):
    return requests.post(s.url + "/api/v1/enhance", files={"file": ("p.png", data)},
                         data={k: str(v) for k, v in opts.items()}, headers=auth(s))


def wait_done(s, jid, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        j = requests.get(s.url + "/api/v1/jobs/" + jid, headers=auth(s)).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            return j
        time.sleep(0.2)
    raise AssertionError("job %s did not finish: %s" % (jid, j))


def result(s, jid):
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % jid, headers=auth(s))
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(r.content)).convert("RGB")


def psnr(a, b):
    pa, pb = a.tobytes(), b.tobytes()
    assert len(pa) == len(pb)
    mse = sum((x - y) ** 2 for x, y in zip(pa, pb)) / len(pa)
    return 10 * math.log10(255 * 255 / mse)


def test_ensemble_validated_and_documented(start_server, thick_dir):
    s = start_server("--workers", "1", data_dir=thick_dir)
    lr = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(lr, "PNG")
    for bad in ("maybe", "2", ""):
        r = enhance(s, lr.getvalue(), quality="best", upscale=2, ensemble=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["field"] == "ensemble", r.text
    doc = requests.get(s.url + "/openapi.json", headers=auth(s)).json()
    post = doc["paths"]["/api/v1/enhance"]["post"]
    props = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert props["ensemble"]["type"] == "boolean" and props["ensemble"]["default"] is False
    assert "8" in props["ensemble"]["description"]
    cfg = requests.get(s.url + "/api/v1/config", headers=auth(s)).json()
    assert cfg["defaults"]["ensemble"] is False


def test_ensemble_closer_to_ground_truth(start_server, thick_dir):
    s = start_server("--workers", "2", data_dir=thick_dir)
    hr = Image.open(HR).convert("RGB")
    lr = io.BytesIO()
    hr.resize((hr.width // 2, hr.height // 2), Image.BICUBIC).save(lr, "PNG")
    jobs = {}
    for ens in (False, True):
        r = enhance(s, lr.getvalue(), quality="best", upscale=2, output_format="png",
                    ensemble=str(ens).lower())
        assert r.status_code == 202, r.text
        assert r.json()["ensemble"] is ens
        jobs[ens] = r.json()["job_id"]
    out = {}
    for ens, jid in jobs.items():
        done = wait_done(s, jid)
        assert done["status"] == "SUCCESS", done
        assert done["ensemble"] is ens and done["progress"] == 100
        out[ens] = result(s, jid)
        assert out[ens].size == hr.size
    assert out[True].tobytes() != out[False].tobytes()
    plain, ensemble = psnr(out[False], hr), psnr(out[True], hr)
    assert ensemble > plain, (plain, ensemble)
