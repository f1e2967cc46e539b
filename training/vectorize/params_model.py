#!/usr/bin/python3
"""params_model.py - train models/vectorize-params: from an image's features, a good starting
parameter set (the 10 encoded values of contract §2; the pipeline rounds and clamps them with
vec_params_decode). Tier 1 of pl_vectorize_ai converts once with it.

How: a regression straight to the best measured set averages between unlike optima (tried:
4 % error reduction against the default preset). So the model chooses among K prototype sets
instead (the three presets and the anchor sets of dataset.anchors(), each measured on every
quality image): an MLP scores the prototypes, a sharp Softmax turns the scores into weights and
a MatMul with the prototype table gives the parameters, so one ONNX graph (Gemm, Relu, Softmax,
MatMul) outputs the parameters themselves, nearly always one prototype exactly.

Target of an image: a soft choice, softmax((u_k - max u) / TAU) over the prototypes, where u_k is
the measured SSIM of prototype k, minus 1 when its SVG is over 3x the default preset's bytes on
that image (issue 9's size budget).

Evaluation is measured, not predicted: every held-out image is traced for real with the decoded
output, and its SSIM error (1 - SSIM) compared with the default preset's on that image.

Usage: params_model.py [--tiny] OUTROOT   (writes OUTROOT/vectorize-params/3/)
"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp  # noqa: E402
import params  # noqa: E402
from mlp import common, dataset  # noqa: E402

NAME, VERSION, SEED = "vectorize-params", "3", 20261209
HIDDEN, EPOCHS, LR, WD = 64, 300, 2e-3, 1e-3
SIZE_BUDGET = 3.0
TAU = 0.004   # SSIM difference that counts as a near tie between prototypes
SHARP = 8.0   # scale of the scores before the Softmax in training
ARGMAX = 4.0  # extra scale in the exported graph: the output is (nearly) the top prototype, not
              # a blend of two half-chosen ones (measured: a blend scores below its parts)


def utilities(rows, keys):
    """ids, U [n, K] (SSIM, minus 1 over the size budget), SSIM [n, K], default bytes [n]."""
    by = {}
    for r in rows:
        by.setdefault(r["id"], {})[r["design"]] = r
    ids = sorted(i for i, d in by.items() if all(k in d for k in keys))
    ssim = np.array([[by[i][k]["ssim"] for k in keys] for i in ids])
    size = np.array([[by[i][k]["bytes"] for k in keys] for i in ids], dtype=np.float64)
    base = np.array([by[i]["preset:default"]["bytes"] for i in ids], dtype=np.float64)
    u = ssim - (size > SIZE_BUDGET * base[:, None])
    return np.array(ids), u, ssim, base


def soft_targets(u):
    z = (u - u.max(axis=1, keepdims=True)) / TAU
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def served(net, table):
    """features -> softmax(ARGMAX * SHARP * scores) @ table (a torch module for the export;
    the scale is folded into the last Linear so the graph has no Mul)."""
    import torch
    last = [m for m in net if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(SHARP * ARGMAX)
        last.bias.mul_(SHARP * ARGMAX)

    class _S(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("table", torch.from_numpy(table.astype(np.float32)))

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1) @ self.table
    return _S().eval()


def train_soft(x, t, layers, epochs):
    """The MLP of mlp.train with a soft-target cross-entropy."""
    import torch
    common.seed_everything(SEED)
    net = mlp.build(layers)
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    gen = torch.Generator().manual_seed(SEED)
    xt, tt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(t)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            logp = torch.log_softmax(SHARP * net(xt[idx]), dim=1)
            (-(tt[idx] * logp).sum(dim=1).mean()).backward()
            opt.step()
        sched.step()
    return net.eval()


def measure(index, ids, enc, tiny, binary=None):
    """Trace each image (by id) with its own decoded parameter set; {id: measurement}."""
    binary = binary or dataset.modeld_bin()
    rec = {r["id"]: r for r in index}
    out = {}
    with tempfile.TemporaryDirectory(dir=dataset.cache_dir(tiny)) as tmp:
        for image_id, e in zip(ids, enc):
            out.update(dataset.trace_dir(binary, [rec[image_id]], params.decode(e), tmp))
    return out


def main():
    args = mlp.parse_args(__doc__)
    names, x, index = mlp.load(args.tiny)
    keys, table = dataset.anchors()
    ids, u, ssim, base = utilities(dataset.quality(index, args.tiny), keys)
    pos = {r["id"]: i for i, r in enumerate(index)}
    xin = np.array([x[pos[i]] for i in ids])
    te = np.array([index[pos[i]]["split"] == "test" for i in ids])
    if args.tiny and not te.any():
        te[-2:] = True
    mean, std = mlp.standardiser(xin[~te])
    net = train_soft((xin[~te] - mean) / std, soft_targets(u[~te]),
                     [xin.shape[1], HIDDEN, HIDDEN, len(keys)], 2 if args.tiny else EPOCHS)
    mlp.fold(net, mean, std)
    model = served(net, table)

    out = common.model_dir(args.root, NAME, VERSION)
    path = os.path.join(out, "model.onnx")
    ops = mlp.export(model, xin.shape[1], path, "features", "params")
    pred = mlp.check_export(model, path, "features", "params", xin[te])
    got = measure(index, ids[te], pred, args.tiny)
    k = [j for j, i in enumerate(ids[te]) if i in got]
    t_ids = ids[te][k]
    s_pred = np.array([got[i]["ssim"] for i in t_ids])
    in_budget = np.array([got[i]["bytes"] <= SIZE_BUDGET * b for i, b in zip(t_ids, base[te][k])])
    s_def = ssim[te][k][:, keys.index("preset:default")]
    s_q = ssim[te][k][:, keys.index("preset:quality")]
    s_best = np.where(u[te][k] > 0, ssim[te][k], -1).max(axis=1)
    e_def = (1 - s_def).mean()

    def red(s):
        return round(float(1 - (1 - s).mean() / e_def), 4)
    metrics = {"mean_ssim_default": round(float(s_def.mean()), 4),
               "mean_ssim_predicted": round(float(s_pred.mean()), 4),
               "error_reduction_vs_default": red(s_pred),
               "error_reduction_quality_preset": red(s_q),
               "error_reduction_best_prototype": red(s_best),
               "within_size_budget": round(float(in_budget.mean()), 4),
               "better_or_equal_default": round(float(np.mean(s_pred >= s_def)), 4),
               "prototypes": len(keys),
               "test_images": int(len(t_ids)), "train_images": int((~te).sum())}
    doc = manifest(common.sha256(path), names, metrics,
                   mlp.samples(path, "features", "params", xin[te]), index, len(ids))
    common.write_manifest(out, doc)
    rows = "\n".join(f"| {k} | " + " | ".join(f"{v:g}" for v in vec) + " |"
                     for k, vec in zip(keys, table))
    common.write_card(out, doc, [
        ("Training", mlp.training_text(
            f"MLP {xin.shape[1]} -> {HIDDEN} -> {HIDDEN} -> {len(keys)} prototype scores "
            f"(ReLU), x{SHARP:g} (x{SHARP * ARGMAX:g} in the exported graph), Softmax, MatMul "
            "with the prototype table", f"cross-entropy on soft targets (tau {TAU})", SEED,
            EPOCHS, LR, WD, ops)),
        ("Prototypes (encoded, contract order)", "| set | " + " | ".join(params.NAMES) +
         " |\n|" + "---|" * (len(params.NAMES) + 1) + "\n" + rows),
        ("How the metrics are measured", "Each held-out image is traced with `modeld "
         "vectorize` (release build) with the decoded output; SSIM is the tracer's. "
         "error_reduction = 1 - mean(1 - SSIM) / mean(1 - SSIM of the default preset); "
         "quality_preset is the quality preset on every image (whatever its size), "
         "best_prototype the best prototype within the size budget per image, measured: the "
         "ceiling of this model.")])
    print(f"{NAME}: {metrics} -> {path}", file=sys.stderr)


def manifest(digest, names, metrics, samples, index, n_images):
    return mlp.manifest({
        "name": NAME, "version": VERSION,
        "description": "A starting parameter set for our tracer from an image's features (the "
                       "encoded parameters of vec_params_encode).",
        "inputs": [mlp.tensor_io("features", len(names), "The raw features of vec_features(), "
                                 "in the order of preprocessing.features.")],
        "outputs": [mlp.tensor_io("params", params.N_ENC, "Encoded parameters (contract order: "
                                  + ", ".join(params.NAMES) + "), unrounded: decode with "
                                  "vec_params_decode (round + clamp).")],
        "steps": ["none on the client: standardisation is folded into the first layer"],
        "post": {"steps": ["vec_params_decode: round the integers, clamp to the valid ranges, "
                           "flags at 0.5; colour mode, gradients on"]},
        "card": {
            "data": mlp.data_card(index, f" Targets from the quality design on {n_images} "
                                         "of them (see vectorize-quality)."),
            "intended_use": "Tier 1 of pl_vectorize_ai (one conversion with these "
                            "parameters) and the seed of tiers 2 and 3.",
            "limits": "It chooses among a fixed table of prototype sets (see below), so it "
                      "cannot be better than the best of them; it does not guarantee the size "
                      "budget (tiers 2 and 3 check it with real conversions)."}},
        digest, names, samples, metrics)


if __name__ == "__main__":
    main()
