"""onnx_numpy.py - a small, independent ONNX evaluator in numpy for the shipped models.

python3-onnx 1.12 (Debian 12) has no onnx.reference.ReferenceEvaluator, so the expected outputs
written into each manifest's validation samples come from this evaluator instead: it reads the
exported graph (not the PyTorch module) and runs it node by node in float64, then rounds to
float32. It knows exactly the operators the shipped models may use; any other operator is an
error, which is also how the training scripts enforce "common operators only".

Invariants:
  1. Only the graph's initializers and inputs feed the computation (no PyTorch state).
  2. An operator or attribute value outside the supported subset raises, never guesses.
"""
import numpy as np
import onnx
from onnx import numpy_helper

ALLOWED_OPS = {"Gemm", "MatMul", "Add", "Relu", "Conv", "MaxPool", "GlobalAveragePool", "Flatten",
               "Reshape", "Softmax"}


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pad_hw(x, pads, value):
    """pads = [top, left, bottom, right] for an NCHW tensor."""
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _windows(x, kh, kw, sh, sw):
    """All kh x kw windows of x (N, C, H, W) at strides sh, sw: (N, C, OH, OW, kh, kw)."""
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]), writeable=False)


def _conv(x, w, b, a):
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("Conv: only group=1, dilation=1 are supported")
    kh, kw = w.shape[2:]
    sh, sw = a.get("strides", [1, 1])
    x = _pad_hw(x, a.get("pads", [0, 0, 0, 0]), 0.0)
    win = _windows(np.ascontiguousarray(x), kh, kw, sh, sw)
    y = np.einsum("ncyxij,ocij->noyx", win, w, optimize=True)
    return y + b.reshape(1, -1, 1, 1) if b is not None else y


def _maxpool(x, a):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("MaxPool: ceil_mode and dilations are not supported")
    x = _pad_hw(x, a.get("pads", [0, 0, 0, 0]), -np.inf)
    return _windows(np.ascontiguousarray(x), kh, kw, sh, sw).max(axis=(4, 5))


def _gemm(x, w, b, a):
    if a.get("transA", 0):
        x = x.T
    if a.get("transB", 0):
        w = w.T
    y = a.get("alpha", 1.0) * (x @ w)
    return y + a.get("beta", 1.0) * b if b is not None else y


def _softmax(x, a):
    axis = a.get("axis", -1)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _flatten(x, a):
    axis = a.get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _reshape(x, shape):
    shape = [x.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
    return x.reshape(shape)


def run_node(node, args):
    a = _attrs(node)
    op = node.op_type
    if op == "Gemm":
        return _gemm(args[0], args[1], args[2] if len(args) > 2 else None, a)
    if op == "MatMul":
        return args[0] @ args[1]
    if op == "Add":
        return args[0] + args[1]
    if op == "Relu":
        return np.maximum(args[0], 0.0)
    if op == "Conv":
        return _conv(args[0], args[1], args[2] if len(args) > 2 else None, a)
    if op == "MaxPool":
        return _maxpool(args[0], a)
    if op == "GlobalAveragePool":
        return args[0].mean(axis=(2, 3), keepdims=True)
    if op == "Flatten":
        return _flatten(args[0], a)
    if op == "Reshape":
        return _reshape(args[0], args[1])
    if op == "Softmax":
        return _softmax(args[0], a)
    raise ValueError(f"operator {op} is not in the shipped models' subset {sorted(ALLOWED_OPS)}")


def check_ops(model):
    """Raise unless every node is in ALLOWED_OPS; return the sorted set of operators used."""
    ops = {n.op_type for n in model.graph.node}
    bad = ops - ALLOWED_OPS
    if bad:
        raise ValueError(f"exported graph uses operators outside the allowed subset: {sorted(bad)}")
    return sorted(ops)


def evaluate(path, feeds):
    """Run the ONNX file at path on feeds {input name: array}; return {output name: float32}."""
    model = onnx.load(path)
    check_ops(model)
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    env.update({k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()})
    for node in model.graph.node:
        out = run_node(node, [env[i] if i else None for i in node.input])
        env[node.output[0]] = out
    return {o.name: env[o.name].astype(np.float32) for o in model.graph.output}
