"""The shipped models (models/<name>/<version>/) against their manifests, with the binary from
$MODELD_BIN (make e2e sets it to the ASan build): every manifest has the fields of
src/models/models.h and no others, names and versions are well formed, the artefact's SHA-256
matches, and every validation sample run through `modeld infer` gives the expected outputs
within the manifest's tolerance (training/verify_modeld.py does the runs)."""
import glob
import json
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "training"))
import verify_modeld  # noqa: E402

REQUIRED = {"name", "version", "family", "runtime", "artefact", "sha256", "inputs", "outputs",
            "validation"}
ALLOWED = REQUIRED | {"description", "required", "labels", "preprocessing", "postprocessing",
                      "input_schema", "metrics", "model_card", "training"}
DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"}
VERSIONS = sorted(os.path.dirname(p)
                  for p in glob.glob(os.path.join(ROOT, "models", "*", "*", "modeld.json")))


def _bin():
    b = os.environ.get("MODELD_BIN") or os.path.join(ROOT, "build", "asan", "modeld")
    return os.path.abspath(b)


def test_there_are_shipped_models():
    runtimes = set()
    for d in VERSIONS:
        with open(os.path.join(d, "modeld.json")) as f:
            runtimes.add(json.load(f)["runtime"])
    assert runtimes == {"onnx", "xgboost"}


@pytest.mark.parametrize("vdir", VERSIONS, ids=lambda d: "/".join(d.split(os.sep)[-2:]))
def test_manifest_fields(vdir):
    with open(os.path.join(vdir, "modeld.json")) as f:
        mf = json.load(f)
    assert REQUIRED <= set(mf) <= ALLOWED, set(mf) ^ ALLOWED
    assert mf["name"] == os.path.basename(os.path.dirname(vdir))
    assert mf["version"] == os.path.basename(vdir)
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", mf["name"])
    assert re.fullmatch(r"[0-9A-Za-z._-]{1,32}", mf["version"])
    assert mf["family"] in {"generic", "vectorize", "enhance", "predict"}
    assert mf["runtime"] in {"onnx", "xgboost"}
    assert re.fullmatch(r"[0-9a-f]{64}", mf["sha256"])
    for t in mf["inputs"] + mf["outputs"]:
        assert t["datatype"] in DATATYPES and all(isinstance(d, int) and d >= -1 for d in t["shape"])
    if "labels" in mf:
        assert len(mf["labels"]) == mf["outputs"][0]["shape"][-1]
    assert set(mf["model_card"]) == {"data", "intended_use", "limits"}
    val = mf["validation"]
    assert 0 < val["tolerance"] <= 1e-3 and val["samples"]
    for s in val["samples"]:
        assert set(s["inputs"]) == {t["name"] for t in mf["inputs"]}
        assert set(s["outputs"]) == {t["name"] for t in mf["outputs"]}


@pytest.mark.parametrize("vdir", VERSIONS, ids=lambda d: "/".join(d.split(os.sep)[-2:]))
def test_validation_samples_through_modeld(vdir):
    assert verify_modeld.check_version(_bin(), vdir) == []


@pytest.mark.parametrize("vdir", VERSIONS, ids=lambda d: "/".join(d.split(os.sep)[-2:]))
def test_training_section(vdir):
    """A retrainable model (POST /api/admin/retrain) ships its held test split with the schema's
    columns and the label; the others say why they are not retrainable."""
    with open(os.path.join(vdir, "modeld.json")) as f:
        mf = json.load(f)
    t = mf.get("training")
    if t is None:  # not a business model of training/predict/: refused as not retrainable
        return
    if not t["retrainable"]:
        assert t["reason"]
        return
    assert t["metric"] in {"roc_auc", "roc_auc_leak", "mae"} and 1 <= t["rounds"] <= 5000
    with open(os.path.join(vdir, t["test_split"])) as f:
        header = f.readline().strip().split(",")
        rows = sum(1 for line in f if line.strip())
    cols = [c["name"] for c in mf["input_schema"]["columns"]]
    assert header == cols + [t["label"]["column"]]
    assert rows == t["test_rows"] > 0
    assert os.path.getsize(os.path.join(vdir, t["test_split"])) <= 300 * 1024
