"""infer_fastapi.py - the FastAPI + PyTorch reference for bench/infer.sh: the same shipped models
served the way a FastAPI user would, speaking the same Open Inference Protocol (KServe V2) JSON.

Routes: GET /api/health, GET /v2/health/ready, POST /v2/models/{name}/infer, where the request is
{"id"?, "inputs": [{"name", "shape", "datatype": "FP32", "data": [row-major, flat or nested]}]}
and the answer {"model_name", "model_version", "id", "outputs": [{"name", "shape", "datatype",
"data": [flat]}]}. The X-API-Key header is checked (SHA-256 of the key, constant-time compare) as
modeld checks it, so both servers do the same work per request.

The models come from the repository's models/ directory (BENCH_MODELS_DIR): each ONNX model's
graph (a chain of Gemm / Conv / Relu / MaxPool / GlobalAveragePool / Flatten / Softmax) is turned
into the equivalent torch.nn.Sequential with the same weights, and at start-up every validation
sample of its modeld.json must come out within the manifest's tolerance, so both servers answer
with the same model. Requests are parsed with json.loads (not pydantic models): the fastest plain
way, so the comparison does not handicap FastAPI. One PyTorch thread per worker.
"""
import glob
import hashlib
import hmac
import json
import os
import uuid

import numpy as np
import onnx
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from onnx import numpy_helper
from torch import nn

torch.set_num_threads(1)
MODELS_DIR = os.environ.get("BENCH_MODELS_DIR", os.path.join(os.path.dirname(__file__), "..", "models"))
KEY_HASH = hashlib.sha256(os.environ.get("BENCH_API_KEY", "mdk_000000000000_benchkey").encode()).digest()


def to_torch(path):
    """The ONNX chain at path as an nn.Sequential with the same weights."""
    g = onnx.load(path).graph
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    layers, cur = [], g.input[0].name
    for n in g.node:
        if n.input[0] != cur:
            raise ValueError(f"{path}: node {n.name} does not continue the chain")
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ValueError(f"{path}: Gemm attributes {a} not supported")
            wt = w[n.input[1]] if a.get("transB", 0) else w[n.input[1]].T
            lin = nn.Linear(wt.shape[1], wt.shape[0])
            lin.weight.data.copy_(wt)
            lin.bias.data.copy_(w[n.input[2]])
            layers.append(lin)
        elif n.op_type == "Conv":
            k = w[n.input[1]]
            p = a.get("pads", [0, 0, 0, 0])
            if p[:2] != p[2:] or a.get("group", 1) != 1:
                raise ValueError(f"{path}: Conv attributes {a} not supported")
            conv = nn.Conv2d(k.shape[1], k.shape[0], tuple(k.shape[2:]),
                             stride=tuple(a.get("strides", [1, 1])), padding=tuple(p[:2]))
            conv.weight.data.copy_(k)
            conv.bias.data.copy_(w[n.input[2]])
            layers.append(conv)
        elif n.op_type == "Relu":
            layers.append(nn.ReLU())
        elif n.op_type == "MaxPool":
            k = tuple(a["kernel_shape"])
            layers.append(nn.MaxPool2d(k, tuple(a.get("strides", k))))
        elif n.op_type == "GlobalAveragePool":
            layers.append(nn.AdaptiveAvgPool2d(1))
        elif n.op_type == "Flatten":
            layers.append(nn.Flatten(a.get("axis", 1)))
        elif n.op_type == "Softmax":
            layers.append(nn.Softmax(dim=a.get("axis", -1)))
        else:
            raise ValueError(f"{path}: operator {n.op_type} not supported by the reference")
        cur = n.output[0]
    return nn.Sequential(*layers).eval()


def load_models(root, names):
    """The newest version of each model in names (the ones the benchmark drives: the repository
    ships others, e.g. the vectorize MLPs, whose operators this reference does not implement)."""
    models = {}
    for mf_path in sorted(glob.glob(os.path.join(root, "*", "*", "modeld.json"))):
        with open(mf_path) as f:
            mf = json.load(f)
        if mf["runtime"] != "onnx" or mf["name"] not in names:
            continue
        prev = models.get(mf["name"])
        if prev and int(prev["manifest"]["version"]) > int(mf["version"]):
            continue
        net = to_torch(os.path.join(os.path.dirname(mf_path), mf["artefact"]))
        for k, s in enumerate(mf["validation"]["samples"]):
            x = torch.tensor(s["inputs"][mf["inputs"][0]["name"]], dtype=torch.float32)
            with torch.inference_mode():
                y = net(x).numpy()
            want = np.asarray(s["outputs"][mf["outputs"][0]["name"]], dtype=np.float32)
            diff = float((np.abs(y - want) / np.maximum(1.0, np.abs(want))).max())
            if diff > mf["validation"]["tolerance"]:
                raise ValueError(f"{mf['name']}: validation sample {k} differs by {diff}")
        models[mf["name"]] = {"manifest": mf, "net": net}
    return models


MODELS = load_models(MODELS_DIR, {os.environ.get("BENCH_MLP", "diabetes-mlp"),
                                  os.environ.get("BENCH_CNN", "digits-cnn")})
app = FastAPI()


def error(status, msg):
    return JSONResponse({"error": msg}, status_code=status)


@app.get("/api/health")
async def health():
    return {"status": "ok"}


@app.get("/v2/health/ready")
async def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    key = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(hashlib.sha256(key.encode()).digest(), KEY_HASH):
        return error(401, "invalid API key")
    m = MODELS.get(name)
    if m is None:
        return error(404, f"model {name} not found")
    mf = m["manifest"]
    try:
        req = json.loads(await request.body())
        inp = req["inputs"][0]
        want = mf["inputs"][0]
        if inp["name"] != want["name"] or inp["datatype"] != want["datatype"]:
            return error(400, f"inputs[0]: expected {want['name']} {want['datatype']}")
        shape = [int(d) for d in inp["shape"]]
        x = torch.tensor(inp["data"], dtype=torch.float32).reshape(shape)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        return error(400, f"bad request: {e}")
    if len(shape) != len(want["shape"]) or any(w not in (-1, s) for w, s in zip(want["shape"], shape)):
        return error(400, f"inputs[0].shape {shape} does not match {want['shape']}")
    with torch.inference_mode():
        y = m["net"](x)
    out = mf["outputs"][0]
    return {"model_name": name, "model_version": mf["version"], "id": req.get("id") or str(uuid.uuid4()),
            "outputs": [{"name": out["name"], "shape": list(y.shape), "datatype": "FP32",
                         "data": y.reshape(-1).tolist()}]}
