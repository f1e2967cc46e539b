"""The vectorize training scripts (training/vectorize/) on a tiny data set, with the binary
from $MODELD_BIN: the generators, the SVG labeller, `modeld features`, the quality design through
`modeld vectorize`, the three trainings, their ONNX exports and manifests, and every validation
sample through `modeld infer`. Seconds, not minutes: --tiny is ~25 small images and a handful
of epochs, so the metrics say nothing; the shape of what is written is what is checked."""
import json
import os
import subprocess
import sys

import pytest
import requests

from conftest import Server
from convert_util import bearer, upload_ok

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TRAIN = os.path.join(ROOT, "training")
sys.path.insert(0, TRAIN)
sys.path.insert(0, os.path.join(TRAIN, "vectorize"))
import params  # noqa: E402
import svglabel  # noqa: E402
import verify_modeld  # noqa: E402

VEC_MODELS = ("vectorize-classifier", "vectorize-quality", "vectorize-params")


def test_shipped_vectorize_models_serve_without_fallback():
    """The committed models (models/, newest version of each) pass the pipeline's checks (the
    feature list of preprocessing.features, the tensor names and shapes): a tier-1 conversion
    uses all three and falls back to nothing."""
    newest = {n: max(os.listdir(os.path.join(ROOT, "models", n)), key=int) for n in VEC_MODELS}
    s = Server(["--models-dir", os.path.join(ROOT, "models")])
    try:
        fid = upload_ok(s.url, s.admin_key, "simple_geometric_03.png")
        r = requests.post(s.url + "/api/convert-ai", headers=bearer(s.admin_key), timeout=300,
                          json={"file_id": fid, "tier": 1, "time_budget": 5})
        assert r.status_code == 200, r.text
        m = r.json()["ai_metadata"]
        assert m["fallback_used"] is False, m
        assert m["model_versions"] == newest
        assert m["logo_type"] in svglabel.LABELS and 0 <= m["predicted_quality"] <= 1.2
    finally:
        rc = s.stop()
        s.check_sanitizers()
        assert rc == 0, s.stderr()[-4000:]
        s.cleanup()




def _bin():
    b = os.environ.get("MODELD_BIN") or os.path.join(ROOT, "build", "asan", "modeld")
    return os.path.abspath(b)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run the three scripts with --tiny once; returns the output root."""
    pytest.importorskip("torch", reason="python3-torch (scripts/deps.sh test) trains them")
    tmp = tmp_path_factory.mktemp("vec")
    env = dict(os.environ, MODELD_BIN=_bin(), MODELD_VEC_CACHE=str(tmp / "cache"))
    out = tmp / "models"
    for script in ("classifier.py", "quality.py", "params_model.py"):
        r = subprocess.run([sys.executable, os.path.join(TRAIN, "vectorize", script), "--tiny",
                            str(out)], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{script}: {r.stderr[-3000:]}"
    return tmp


def _version_dir(root, name):
    """The one version directory a script wrote (its VERSION)."""
    (version,) = os.listdir(os.path.join(root, "models", name))
    return os.path.join(root, "models", name, version)


def _manifest(root, name):
    with open(os.path.join(_version_dir(root, name), "modeld.json")) as f:
        return json.load(f)


def _feature_names(root):
    idx = json.load(open(os.path.join(root, "cache", "tiny", "index.json")))
    r = subprocess.run([_bin(), "features", "--json", idx[0]["file"]], capture_output=True,
                       text=True, timeout=60, check=True)
    return list(json.loads(r.stdout.splitlines()[0])["features"])


@pytest.mark.parametrize("name,inp,n_out", [("vectorize-classifier", "features", 4),
                                            ("vectorize-quality", "input", 3),
                                            ("vectorize-params", "features", 10)])
def test_tiny_models_are_complete(trained, name, inp, n_out):
    mf = _manifest(trained, name)
    names = _feature_names(trained)
    assert mf["family"] == "vectorize" and mf["runtime"] == "onnx"
    want = names + (params.NAMES if name == "vectorize-quality" else [])
    assert mf["preprocessing"]["features"] == want
    width = len(names) + (params.N_ENC if name == "vectorize-quality" else 0)
    assert mf["inputs"][0]["name"] == inp and mf["inputs"][0]["shape"] == [-1, width]
    assert mf["outputs"][0]["shape"] == [-1, n_out]
    assert verify_modeld.check_version(_bin(), _version_dir(trained, name)) == []


def test_tiny_quality_rows_cover_the_design(trained):
    rows = [json.loads(line) for line in open(os.path.join(trained, "cache", "tiny",
                                                           "quality.jsonl"))]
    assert rows and all(0 <= r["ssim"] <= 1 and r["bytes"] > 0 and r["ms"] > 0 for r in rows)
    presets = {tuple(params.preset(n)) for n in params.PRESETS}
    assert presets <= {tuple(r["params"]) for r in rows}


def test_classifier_labels_follow_the_svg_precedence():
    svg = '<svg xmlns="http://www.w3.org/2000/svg">'
    shapes = svg + '<rect fill="#f00"/><circle fill="#00f"/></svg>'
    assert svglabel.analyse(shapes)["label"] == "simple_geometric"
    grad = ('<svg xmlns="http://www.w3.org/2000/svg"><defs><linearGradient id="g">'
            '<stop stop-color="#000"/><stop offset="1" stop-color="#fff"/></linearGradient>'
            '</defs><rect fill="url(#g)"/></svg>')
    assert svglabel.analyse(grad)["label"] == "gradient"
    assert svglabel.analyse(grad.replace("<rect", "<text>A</text><rect"))["label"] == "text_based"
    many = "".join(f'<rect fill="#{i:02x}{i:02x}00"/>' for i in range(0, 240, 8))
    assert svglabel.analyse(f'<svg xmlns="http://www.w3.org/2000/svg">{many}</svg>')["label"] \
        == "complex"
    # A gradient whose stops look the same is not a visible gradient; a fade to transparent is.
    flat = grad.replace('stop-color="#fff"', 'stop-color="#010101"')
    assert svglabel.analyse(flat)["label"] == "simple_geometric"
    fade = flat.replace('stop-color="#010101"', 'stop-color="#000" stop-opacity="0"')
    assert svglabel.analyse(fade)["label"] == "gradient"
    # What is only defined (never drawn) does not count.
    hidden = grad.replace('<rect fill="url(#g)"/>', '<rect fill="#00f"/>')
    assert svglabel.analyse(hidden)["label"] == "simple_geometric"


def test_params_decode_mirrors_the_c_rounding():
    v = params.decode([float("nan"), 7.5, -3, 200, 11, 0.4, 3, 2.5, 0.6, 0.2])
    assert list(v) == [3, 8, 0, 180, 10, 1, 3, 3, 1, 0]
