#!/usr/bin/python3
"""quality.py - train models/vectorize-quality: from an image's features and one encoded
parameter set (contract §2), our tracer's SSIM, ln(SVG bytes) and ln(conversion ms) for that
image and set. Tier 2 of pl_vectorize_ai scores hundreds of candidate sets with it in one run.

Data: dataset.quality(): every quality image traced by `modeld vectorize` over the design (the
three presets, 8 anchor sets shared by all images and a Latin hypercube per block of images).
Held out by image (all rows of an image on one side, dataset.group_split). A small MLP: the
standardisation of inputs and outputs is folded into the graph.

Usage: quality.py [--tiny] OUTROOT   (writes OUTROOT/vectorize-quality/1/)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp  # noqa: E402
import params  # noqa: E402
from mlp import common, dataset  # noqa: E402

NAME, VERSION, SEED = "vectorize-quality", "1", 20261208
HIDDEN, EPOCHS, LR, WD = 96, 150, 2e-3, 1e-4
OUTPUTS = ["ssim", "ln_svg_bytes", "ln_convert_ms"]


def table(names, x, index, rows):
    """Inputs [rows, F + 10], targets [rows, 3], image ids and test mask of the quality rows."""
    pos = {r["id"]: i for i, r in enumerate(index)}
    rows = [r for r in rows if r["id"] in pos]
    xin = np.array([np.concatenate([x[pos[r["id"]]], r["params"]]) for r in rows])
    y = np.array([[r["ssim"], np.log(max(r["bytes"], 1)), np.log(max(r["ms"], 0.01))]
                  for r in rows])
    ids = np.array([r["id"] for r in rows])
    te = np.array([index[pos[r["id"]]]["split"] == "test" for r in rows])
    return xin, y, ids, te


def main():
    args = mlp.parse_args(__doc__)
    names, x, index = mlp.load(args.tiny)
    rows = dataset.quality(index, args.tiny)
    xin, y, ids, te = table(names, x, index, rows)
    if args.tiny and not te.any():
        te[ids == ids[-1]] = True
    in_mean, in_std = mlp.standardiser(xin[~te])
    out_mean, out_std = mlp.standardiser(y[~te])
    net = mlp.train((xin[~te] - in_mean) / in_std, ((y[~te] - out_mean) / out_std).astype(np.float32),
                    [xin.shape[1], HIDDEN, HIDDEN, 3], SEED, 2 if args.tiny else EPOCHS,
                    lr=LR, wd=WD)
    mlp.fold(net, in_mean, in_std, out_mean, out_std)

    out = common.model_dir(args.root, NAME, VERSION)
    path = os.path.join(out, "model.onnx")
    ops = mlp.export(net, xin.shape[1], path, "input", "quality")
    pred = mlp.check_export(net, path, "input", "quality", xin[te])
    err = np.abs(pred - y[te])
    base = np.abs(y[~te][:, 0].mean() - y[te][:, 0])
    metrics = {"ssim_mae": round(float(err[:, 0].mean()), 4),
               "ssim_mae_p90": round(float(np.quantile(err[:, 0], 0.9)), 4),
               "ln_svg_bytes_mae": round(float(err[:, 1].mean()), 4),
               "ln_convert_ms_mae": round(float(err[:, 2].mean()), 4),
               "baseline_mean_ssim_mae": round(float(base.mean()), 4),
               "test_images": int(len(set(ids[te]))), "test_rows": int(te.sum()),
               "train_images": int(len(set(ids[~te]))), "train_rows": int((~te).sum())}
    doc = manifest(common.sha256(path), names, metrics,
                   mlp.samples(path, "input", "quality", xin[te]), index, len(set(ids)))
    common.write_manifest(out, doc)
    common.write_card(out, doc, [
        ("Training", f"MLP {xin.shape[1]} -> {HIDDEN} -> {HIDDEN} -> 3 (ReLU); AdamW lr {LR}, "
                     f"weight decay {WD}, cosine schedule, {EPOCHS} epochs, batch 64, MSE on "
                     f"standardised targets, seed {SEED}, one thread. Input and output "
                     "standardisation folded into the first and last layers. ONNX opset "
                     f"{common.OPSET}, operators: {', '.join(ops)}."),
        ("Labels", "Each quality image (up to 640 px, a fixed subset by hash) traced with "
                   "`modeld vectorize DIR --json` (the release build, colour mode, gradients "
                   "on) for each parameter set of the design: presets default, quality and "
                   f"fast; {dataset.N_ANCHOR} anchor sets in the good region; per block of "
                   f"images ({dataset.N_BLOCKS} blocks) {dataset.N_GOOD} Latin-hypercube sets "
                   f"in the good region and {dataset.N_WIDE} over the whole design range "
                   "(training/vectorize/params.py). SSIM is the tracer's own (ssim_rgb, the API's), bytes the SVG's, "
                   "time `timing_ms.convert_total` (trace + SVG + render + SSIM) on this "
                   "shared 2-core machine, two conversions at once. The times are the only "
                   "part that differs between runs; the labels are cached in "
                   "build/vectorize/full/quality.jsonl, so a retrain reuses them.")])
    print(f"{NAME}: {metrics} -> {path}", file=sys.stderr)


def manifest(digest, names, metrics, samples, index, n_images):
    f = len(names)
    return {
        "name": NAME, "version": VERSION, "family": "vectorize", "runtime": "onnx",
        "artefact": "model.onnx", "sha256": digest,
        "description": "Predicted tracer outcome (SSIM, ln SVG bytes, ln conversion ms) of one "
                       "image traced with one parameter set.",
        "required": False,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, f + params.N_ENC],
                    "description": f"Columns 0..{f - 1}: the raw features of vec_features(); "
                                   "then the 10 raw encoded parameters of "
                                   "vec_params_encode() (names in preprocessing.features)."}],
        "outputs": [{"name": "quality", "datatype": "FP32", "shape": [-1, 3],
                     "description": "ssim (0..1, the tracer's SSIM), ln(svg_bytes), "
                                    "ln(convert_ms)."}],
        "preprocessing": {"features": names + params.NAMES,
                          "steps": ["none on the client: standardisation is folded into the "
                                    "first layer"]},
        "postprocessing": {"outputs": OUTPUTS,
                           "note": "exp() of columns 1 and 2 gives bytes and milliseconds; "
                                   "the SSIM is not clamped (clamp to [0, 1] if shown)"},
        "validation": {"tolerance": common.TOLERANCE, "samples": samples},
        "metrics": metrics,
        "model_card": {
            "data": mlp.data_card(index, f" The quality design ran on {n_images} of them."),
            "intended_use": "Tier 2 of pl_vectorize_ai (rank hundreds of candidate parameter "
                            "sets, convert the best few for real) and /api/v2/predict-quality. "
                            "The reported SSIM of a conversion is always measured, never this.",
            "limits": "Parameters outside the design ranges of training/vectorize/params.py "
                      "(e.g. filter_speckle > 16, path_precision > 3) extrapolate. Times are "
                      "those of this machine under load; treat them as relative."},
    }


if __name__ == "__main__":
    main()
