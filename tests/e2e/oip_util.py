"""Helpers for the model registry / Open Inference Protocol end-to-end tests: a temporary copy
of the test models (tests/fixtures/models/oip-add, made by gen_oip_models.py), keys, and
request builders for JSON and binary-extension infer calls."""
import base64
import json
import os
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "models")
MODEL = "oip-add"

sys.path.insert(0, FIXTURES)
import gen_oip_models  # noqa: E402  (the same generator made the fixture files)


def models_dir(versions=("1", "2", "3")):
    """A fresh temporary models/ root holding oip-add with the given versions."""
    root = tempfile.mkdtemp(prefix="modeld-models-")
    for v in versions:
        shutil.copytree(os.path.join(FIXTURES, MODEL, v), os.path.join(root, MODEL, v))
    return root


def bearer(key):
    return {"Authorization": "Bearer " + key} if key else {}


def make_key(server, role):
    rc, out, err = server.keys("create", "--role", role, "--name", "e2e-" + role)
    assert rc == 0, err
    return out.strip()


def keyed_server(args, setup=None):
    """The body of a module fixture (`yield from keyed_server([...])`): a server with a read
    and a write key (s.read_key, s.write_key), setup(s) run before the tests, then stopped and
    checked for sanitizer reports and a clean exit."""
    from conftest import Server
    s = Server(args)
    s.read_key = make_key(s, "read")
    s.write_key = make_key(s, "write")
    if setup:
        setup(s)
    yield s
    rc = s.stop()
    s.check_sanitizers()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()


def infer_body(rows, **extra):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
                        "data": [v for row in rows for v in row]}]}
    body.update(extra)
    return body


def binary_request(rows, outputs=None, params=None, request_id=None):
    """(body bytes, headers) for an infer call whose input x travels as binary data."""
    data = b"".join(struct.pack("<4f", *row) for row in rows)
    head = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
                        "parameters": {"binary_data_size": len(data)}}]}
    if outputs is not None:
        head["outputs"] = outputs
    if params is not None:
        head["parameters"] = params
    if request_id is not None:
        head["id"] = request_id
    h = json.dumps(head).encode()
    return h + data, {"Inference-Header-Content-Length": str(len(h)),
                      "Content-Type": "application/octet-stream"}


def split_binary(resp):
    """(json header, {output name: raw bytes}) of a binary-extension answer."""
    n = int(resp.headers["Inference-Header-Content-Length"])
    head = json.loads(resp.content[:n])
    off, raw = n, {}
    for o in head["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is not None:
            raw[o["name"]] = resp.content[off:off + size]
            off += size
    assert off == len(resp.content)
    return head, raw


def floats(raw):
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))


def version_files(k, version=None, expect_k=None, manifest_edit=None, model_bytes=None):
    """Triton-style inline load parameters for a model computing y = x + k, published as
    `version` (default str(k)); expect_k changes what the validation samples expect."""
    version = version or str(k)
    data = model_bytes if model_bytes is not None else gen_oip_models.make_model(k)
    mf = gen_oip_models.manifest(expect_k if expect_k is not None else k, gen_oip_models.make_model(k))
    mf["version"] = version
    if model_bytes is not None:
        import hashlib
        mf["sha256"] = hashlib.sha256(data).hexdigest()
    if manifest_edit:
        manifest_edit(mf)
    return {"parameters": {"config": json.dumps(mf),
                           "file:%s/model.onnx" % version: base64.b64encode(data).decode()}}


def oip_error(resp):
    """The message of an OIP error answer, checking its shape: exactly {"error": str}."""
    j = resp.json()
    assert set(j) == {"error"} and isinstance(j["error"], str) and j["error"], j
    return j["error"]
