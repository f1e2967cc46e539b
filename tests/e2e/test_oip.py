"""End-to-end tests of the Open Inference Protocol routes (KServe "V2" REST) against the
protocol text: server and model metadata, health, infer with JSON tensors and the binary tensor
data extension, errors in the {"error": "<message>"} form, Triton's statistics and model
repository extensions (inline upload, refused artefacts that leave the old version serving),
roles, and active versions surviving a restart."""
import base64
import json
import os
import signal
import struct
import tempfile

import pytest
import requests

from oip_util import (MODEL, keyed_server, binary_request, bearer, floats, infer_body, models_dir, oip_error,
                      split_binary, version_files)

ROWS = [[1.0, 2.0, 3.0, 4.0], [-1.5, 0.25, 0.0, 100.0]]


@pytest.fixture(scope="module")
def srv():
    def version_2(s):  # a known state: version 2 active (a fresh start picks the highest, 3)
        r = requests.post(s.url + "/api/models/%s/versions/2/activate" % MODEL, headers=bearer(s.admin_key))
        assert r.status_code == 200, r.text
    yield from keyed_server(["--models-dir", models_dir()], version_2)


def infer(srv, body, version=None, key=None, **kw):
    path = "/v2/models/%s%s/infer" % (MODEL, "/versions/" + version if version else "")
    return requests.post(srv.url + path, json=body, headers=bearer(key or srv.read_key), **kw)


def active_version(srv):
    r = requests.get(srv.url + "/api/models/" + MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    return r.json()["model"]["active_version"]


# ---- server-level routes ----

def test_server_metadata(srv):
    r = requests.get(srv.url + "/v2")
    assert r.status_code == 200
    j = r.json()
    assert j["name"] == "modeld" and isinstance(j["version"], str) and j["version"]
    assert {"binary_tensor_data", "statistics", "model_repository"} <= set(j["extensions"])


def test_health_live_and_ready(srv):
    for path in ("/v2/health/live", "/v2/health/ready"):
        r = requests.get(srv.url + path)
        assert r.status_code == 200 and r.content == b"", (path, r.text)


def test_unknown_v2_route_is_404(srv):
    r = requests.get(srv.url + "/v2/nothing/here")
    assert r.status_code == 404
    # the OIP error shape, even though no route matched
    assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
    r = requests.delete(srv.url + "/v2/health/live")
    assert r.status_code == 405 and set(r.json()) == {"error"}
    r = requests.get(srv.url + "/v2x")  # not under /v2: the usual error body
    assert r.status_code == 404 and r.json()["success"] is False


# ---- model metadata and readiness ----

def test_model_metadata(srv):
    r = requests.get(srv.url + "/v2/models/" + MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["name"] == MODEL
    assert {"1", "2", "3"} <= set(j["versions"])
    assert j["platform"] == "onnx"
    assert j["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in j["outputs"]] == ["y", "z"]
    assert all(o["datatype"] == "FP32" and o["shape"] == [-1, 4] for o in j["outputs"])


def test_model_version_metadata(srv):
    r = requests.get(srv.url + "/v2/models/%s/versions/1" % MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    assert r.json()["versions"] == ["1"] and r.json()["name"] == MODEL


def test_model_metadata_unknown(srv):
    r = requests.get(srv.url + "/v2/models/nope", headers=bearer(srv.read_key))
    assert r.status_code == 404
    assert "nope" in oip_error(r)
    r = requests.get(srv.url + "/v2/models/%s/versions/99" % MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 404
    oip_error(r)


def test_model_ready(srv):
    for path in ("/v2/models/%s/ready" % MODEL, "/v2/models/%s/versions/2/ready" % MODEL):
        r = requests.get(srv.url + path, headers=bearer(srv.read_key))
        assert r.status_code == 200 and r.content == b"", (path, r.text)
    r = requests.get(srv.url + "/v2/models/nope/ready", headers=bearer(srv.read_key))
    assert r.status_code == 404
    oip_error(r)


def test_metadata_needs_a_key(srv):
    r = requests.get(srv.url + "/v2/models/" + MODEL)
    assert r.status_code == 401
    oip_error(r)


# ---- infer, JSON ----

def test_infer_json(srv):
    r = infer(srv, infer_body(ROWS, id="req-42"))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    assert j["model_name"] == MODEL and j["model_version"] == "2" and j["id"] == "req-42"
    out = {o["name"]: o for o in j["outputs"]}
    assert [o["name"] for o in j["outputs"]] == ["y", "z"]
    for name, f in (("y", lambda v: v + 2), ("z", lambda v: v * 2)):
        assert out[name]["datatype"] == "FP32" and out[name]["shape"] == [2, 4]
        assert out[name]["data"] == pytest.approx([f(v) for row in ROWS for v in row])


def test_infer_without_id_has_no_id(srv):
    r = infer(srv, infer_body(ROWS))
    assert r.status_code == 200 and "id" not in r.json()


def test_infer_nested_data(srv):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": ROWS}]}
    r = infer(srv, body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == pytest.approx([v + 2 for row in ROWS for v in row])


def test_infer_requested_outputs_subset_and_order(srv):
    r = infer(srv, infer_body(ROWS, outputs=[{"name": "z"}, {"name": "y"}]))
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["z", "y"]
    r = infer(srv, infer_body(ROWS, outputs=[{"name": "z"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["z"]


def test_infer_on_a_version(srv):
    # 3 was active at start and is STANDBY since 2 was activated: still loaded, still answers.
    r = infer(srv, infer_body(ROWS), version="3")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["model_version"] == "3"
    assert j["outputs"][0]["data"] == pytest.approx([x + 3 for row in ROWS for x in row])
    # 1 is on disk but was never loaded: unavailable, not a silent answer from another version.
    r = infer(srv, infer_body(ROWS), version="1")
    assert r.status_code == 503
    assert "1" in oip_error(r)


def test_infer_parameters_are_accepted(srv):
    body = infer_body(ROWS, parameters={"priority": 1})
    body["inputs"][0]["parameters"] = {"note": "free-form"}
    assert infer(srv, body).status_code == 200


@pytest.mark.parametrize("mutate,status,words", [
    (lambda b: b["inputs"][0].update(datatype="FP64"), 400, ["'x'", "FP64", "FP32"]),
    (lambda b: b["inputs"][0].update(datatype="FLOAT99"), 400, ["'x'", "datatype"]),
    (lambda b: b["inputs"][0].update(shape=[2, 5]), 400, ["'x'", "shape", "[2,5]"]),
    (lambda b: b["inputs"][0].update(shape=[4]), 400, ["'x'", "shape"]),
    (lambda b: b["inputs"][0].update(shape=[3, 4]), 400, ["'x'", "8", "12"]),
    (lambda b: b["inputs"][0].update(shape=[-2, 4]), 400, ["'x'", "shape"]),
    (lambda b: b["inputs"][0].update(data=["a"] * 8), 400, ["'x'", "element 0"]),
    (lambda b: b["inputs"][0].update(data=5), 400, ["'x'", "array"]),
    (lambda b: b["inputs"][0].pop("data"), 400, ["'x'", "data"]),
    (lambda b: b["inputs"][0].update(name="w"), 400, ["'w'"]),
    (lambda b: b["inputs"].append(dict(b["inputs"][0])), 400, ["inputs"]),
    (lambda b: b.update(inputs=[]), 400, ["inputs"]),
    (lambda b: b.pop("inputs"), 400, ["inputs"]),
    (lambda b: b.update(outputs=[{"name": "nope"}]), 400, ["'nope'"]),
    (lambda b: b.update(outputs=[{"name": "y"}, {"name": "y"}]), 400, ["'y'"]),
    (lambda b: b.update(id=7), 400, ["id"]),
    (lambda b: b["inputs"][0].update(data=[[[[[[[[[[1]]]]]]]]]] * 8), 400, ["'x'", "nested"]),
])
def test_infer_bad_input_named(srv, mutate, status, words):
    body = infer_body(ROWS)
    mutate(body)
    r = infer(srv, body)
    assert r.status_code == status, r.text
    msg = oip_error(r)
    for w in words:
        assert w in msg, (w, msg)


def test_infer_not_json(srv):
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, data=b"{\"inputs\": [",
                      headers=dict(bearer(srv.read_key), **{"Content-Type": "application/json"}))
    assert r.status_code == 400
    assert "JSON" in oip_error(r)


def test_infer_unknown_model_and_version(srv):
    r = requests.post(srv.url + "/v2/models/nope/infer", json=infer_body(ROWS), headers=bearer(srv.read_key))
    assert r.status_code == 404
    oip_error(r)
    r = infer(srv, infer_body(ROWS), version="42")
    assert r.status_code == 404
    oip_error(r)


def test_infer_needs_a_key(srv):
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS))
    assert r.status_code == 401
    oip_error(r)


# ---- binary tensor data extension ----

def test_binary_round_trip(srv):
    body, headers = binary_request(ROWS, outputs=[{"name": "y", "parameters": {"binary_data": True}},
                                                  {"name": "z", "parameters": {"binary_data": True}}],
                                   request_id="bin-1")
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, data=body, headers=dict(bearer(srv.read_key), **headers))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    head, raw = split_binary(r)
    assert head["model_version"] == "2" and head["id"] == "bin-1"
    for o in head["outputs"]:
        assert "data" not in o and o["parameters"]["binary_data_size"] == 32 and o["shape"] == [2, 4]
    assert floats(raw["y"]) == pytest.approx([v + 2 for row in ROWS for v in row])
    assert floats(raw["z"]) == pytest.approx([v * 2 for row in ROWS for v in row])


def test_binary_input_json_output(srv):
    body, headers = binary_request(ROWS)
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, data=body, headers=dict(bearer(srv.read_key), **headers))
    assert r.status_code == 200, r.text
    assert "Inference-Header-Content-Length" not in r.headers
    assert r.json()["outputs"][0]["data"] == pytest.approx([v + 2 for row in ROWS for v in row])


def test_binary_data_output_parameter(srv):
    r = infer(srv, infer_body(ROWS, parameters={"binary_data_output": True}))
    assert r.status_code == 200, r.text
    head, raw = split_binary(r)
    assert set(raw) == {"y", "z"}
    # an output's own binary_data: false overrides the request-wide default
    r = infer(srv, infer_body(ROWS, parameters={"binary_data_output": True},
                              outputs=[{"name": "y", "parameters": {"binary_data": False}}, {"name": "z"}]))
    head, raw = split_binary(r)
    assert set(raw) == {"z"} and head["outputs"][0]["data"][0] == pytest.approx(3.0)


@pytest.mark.parametrize("edit,words", [
    (lambda body, hl: (body, str(hl + 1000)), ["Inference-Header-Content-Length"]),
    (lambda body, hl: (body, "abc"), ["Inference-Header-Content-Length"]),
    (lambda body, hl: (body, "0"), ["Inference-Header-Content-Length"]),
    (lambda body, hl: (body[:-4], str(hl)), ["'x'", "binary_data_size"]),
    (lambda body, hl: (body + b"\0\0\0\0", str(hl)), ["not claimed"]),
])
def test_binary_bad_sizes(srv, edit, words):
    body, headers = binary_request(ROWS)
    body, headers["Inference-Header-Content-Length"] = edit(body, int(headers["Inference-Header-Content-Length"]))
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, data=body, headers=dict(bearer(srv.read_key), **headers))
    assert r.status_code == 400, r.text
    msg = oip_error(r)
    for w in words:
        assert w in msg, (w, msg)


def test_binary_size_mismatch_with_shape(srv):
    data = struct.pack("<4f", 1, 2, 3, 4)
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                   "parameters": {"binary_data_size": len(data)}}]}).encode()
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, data=head + data,
                      headers=dict(bearer(srv.read_key), **{"Inference-Header-Content-Length": str(len(head))}))
    assert r.status_code == 400
    assert "'x'" in oip_error(r) and "32 bytes" in oip_error(r)


def test_binary_size_without_header(srv):
    body = infer_body(ROWS)
    body["inputs"][0]["parameters"] = {"binary_data_size": 32}
    body["inputs"][0].pop("data")
    r = infer(srv, body)
    assert r.status_code == 400 and "Inference-Header-Content-Length" in oip_error(r)


# ---- statistics extension ----

def test_stats(srv):
    for _ in range(3):
        assert infer(srv, infer_body(ROWS)).status_code == 200
    r = requests.get(srv.url + "/v2/models/%s/stats" % MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    stats = {s["version"]: s for s in r.json()["model_stats"]}
    s = stats["2"]
    assert s["name"] == MODEL and s["inference_count"] >= 3 and s["execution_count"] >= s["inference_count"]
    st = s["inference_stats"]
    assert st["success"]["count"] >= 3 and st["success"]["ns"] > 0
    assert st["queue"]["count"] >= 3
    assert isinstance(s["last_inference"], int) and isinstance(s["batch_stats"], list)
    r = requests.get(srv.url + "/v2/models/%s/versions/2/stats" % MODEL, headers=bearer(srv.read_key))
    assert [x["version"] for x in r.json()["model_stats"]] == ["2"]
    r = requests.get(srv.url + "/v2/models/stats", headers=bearer(srv.read_key))
    assert r.status_code == 200 and any(x["name"] == MODEL for x in r.json()["model_stats"])
    r = requests.get(srv.url + "/v2/models/nope/stats", headers=bearer(srv.read_key))
    assert r.status_code == 404
    oip_error(r)


# ---- repository extension ----

def test_repository_index(srv):
    r = requests.post(srv.url + "/v2/repository/index", headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    rows = {(x["name"], x["version"]): x for x in r.json()}
    assert rows[(MODEL, "2")]["state"] == "READY"
    assert all(x["state"] in ("READY", "LOADING", "UNAVAILABLE") and "reason" in x for x in r.json())
    r = requests.post(srv.url + "/v2/repository/index", json={"ready": True}, headers=bearer(srv.read_key))
    assert r.status_code == 200 and all(x["state"] == "READY" for x in r.json())
    r = requests.post(srv.url + "/v2/repository/index", json={"ready": "yes"}, headers=bearer(srv.read_key))
    assert r.status_code == 400 and "ready" in oip_error(r)


def test_repository_roles(srv):
    for key in (srv.read_key, srv.write_key):
        for action in ("load", "unload"):
            r = requests.post(srv.url + "/v2/repository/models/%s/%s" % (MODEL, action), headers=bearer(key))
            assert r.status_code == 403, (action, r.text)
            oip_error(r)
    assert infer(srv, infer_body(ROWS)).status_code == 200


def load(srv, body, name=MODEL):
    return requests.post(srv.url + "/v2/repository/models/%s/load" % name, json=body, headers=bearer(srv.admin_key))


def test_inline_load_then_serve(srv):
    before = active_version(srv)
    r = load(srv, version_files(7))
    assert r.status_code == 200, r.text
    assert active_version(srv) == "7"
    j = infer(srv, infer_body(ROWS)).json()
    assert j["model_version"] == "7"
    assert j["outputs"][0]["data"] == pytest.approx([v + 7 for row in ROWS for v in row])
    # back to where the module started
    r = requests.post(srv.url + "/api/models/%s/versions/%s/activate" % (MODEL, before), headers=bearer(srv.admin_key))
    assert r.status_code == 200, r.text


def _zero_sha(mf):
    mf["sha256"] = "0" * 64


@pytest.mark.parametrize("body_fn,status,words", [
    (lambda: version_files(8, model_bytes=b"\x08\x07garbage that is not a protobuf" * 3), 422, []),
    (lambda: version_files(8, manifest_edit=_zero_sha), 422, ["sha256"]),
    (lambda: version_files(8, expect_k=9), 422, ["validation"]),
    (lambda: version_files(8, manifest_edit=lambda mf: mf.update(inputs="x")), 422, ["inputs"]),
    (lambda: version_files(8, manifest_edit=lambda mf: mf.update(version="9")), None, ["9"]),
    (lambda: version_files(8, manifest_edit=lambda mf: mf.update(name="other")), None, ["other"]),
    (lambda: {"parameters": {"file:8/model.onnx": "!!!not base64!!!"}}, 400, ["base64"]),
    (lambda: {"parameters": {"file:../8/model.onnx": base64.b64encode(b"x").decode()}}, None, []),
    (lambda: {"parameters": {"file:8/../../evil": base64.b64encode(b"x").decode()}}, None, []),
    (lambda: {"parameters": {"shape": "1"}}, 400, ["shape"]),
    (lambda: {"parameters": "files"}, 400, ["parameters"]),
])
def test_refused_upload_keeps_old_version(srv, body_fn, status, words):
    before = active_version(srv)
    r = load(srv, body_fn())
    assert r.status_code >= 400, r.text
    if status:
        assert r.status_code == status, r.text
    msg = oip_error(r)
    for w in words:
        assert w in msg.lower(), (w, msg)
    assert active_version(srv) == before
    j = infer(srv, infer_body(ROWS)).json()
    assert j["model_version"] == before
    assert j["outputs"][0]["data"][0] == pytest.approx(1.0 + int(before))


def test_load_unknown_model(srv):
    r = load(srv, None, name="never-there")
    assert r.status_code == 404
    oip_error(r)


def test_unload_and_load_from_repository(srv):
    r = requests.post(srv.url + "/v2/repository/models/%s/unload" % MODEL, headers=bearer(srv.admin_key))
    assert r.status_code == 200, r.text
    r = requests.get(srv.url + "/v2/models/%s/ready" % MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 400  # the protocol: a 4xx status code indicates false
    oip_error(r)
    r = infer(srv, infer_body(ROWS))
    assert r.status_code == 503
    oip_error(r)
    r = load(srv, None)
    assert r.status_code == 200, r.text
    assert requests.get(srv.url + "/v2/models/%s/ready" % MODEL, headers=bearer(srv.read_key)).status_code == 200
    assert infer(srv, infer_body(ROWS)).status_code == 200
    # put the module's state back
    r = requests.post(srv.url + "/api/models/%s/versions/2/activate" % MODEL, headers=bearer(srv.admin_key))
    assert r.status_code == 200, r.text


# ---- restart ----

def test_restart_keeps_active_versions(start_server):
    mdir = models_dir()
    data_dir = os.path.join(tempfile.mkdtemp(prefix="modeld-e2e-data-"), "var")
    s = start_server("--models-dir", mdir, data_dir=data_dir)
    r = requests.post(s.url + "/api/models/%s/versions/1/activate" % MODEL, headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    r = requests.post(s.url + "/v2/repository/models/%s/load" % MODEL, json=version_files(5),
                      headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    r = requests.post(s.url + "/api/models/%s/versions/1/activate" % MODEL, headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    # kill -9, not a graceful stop: what was answered 200 must already be on disk
    assert s.stop(signal.SIGKILL) == -signal.SIGKILL
    s2 = start_server("--models-dir", mdir, data_dir=data_dir, expect_key=False)
    r = requests.post(s2.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "1"
    # the uploaded version is still on disk under the data dir
    r = requests.post(s2.url + "/v2/models/%s/versions/5/infer" % MODEL, json=infer_body(ROWS),
                      headers=bearer(s.admin_key))
    assert r.status_code in (200, 503), r.text
    r = requests.get(s2.url + "/v2/models/" + MODEL, headers=bearer(s.admin_key))
    assert "5" in r.json()["versions"]
