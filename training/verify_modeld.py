#!/usr/bin/python3
"""verify_modeld.py - check every shipped model with modeld's own engines: for each
ROOT/<name>/<version>/modeld.json, the artefact's SHA-256 must match the manifest, and
`MODELD infer` on each validation sample's inputs must give the expected outputs within the
manifest's tolerance (absolute, relative where |expected| > 1, as models.h defines it).

Usage: verify_modeld.py MODELD_BIN [ROOT=models]     exit status 0 only when every check passes.
It is the by-hand form of what the registry does at load (VALIDATING) and of
`modeld models validate DIR`, usable before those exist.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def check_version(modeld, vdir):
    with open(os.path.join(vdir, "modeld.json")) as f:
        mf = json.load(f)
    art = os.path.join(vdir, mf["artefact"])
    with open(art, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != mf["sha256"]:
        return [f"sha256 {digest} != manifest {mf['sha256']}"]
    errors, tol = [], mf["validation"]["tolerance"]
    for k, s in enumerate(mf["validation"]["samples"]):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [modeld, "infer", art, "--output", tmp, "--print", "0"]
            for name, data in s["inputs"].items():
                p = os.path.join(tmp, f"in_{name}.npy")
                np.save(p, np.asarray(data, dtype=np.float32))
                cmd += ["--input", f"{name}={p}" if mf["runtime"] == "onnx" else p]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(f"sample {k}: modeld infer failed: {r.stderr.strip()}")
                continue
            outs = sorted(glob.glob(os.path.join(tmp, "*.npy")))
            outs = [o for o in outs if not os.path.basename(o).startswith("in_")]
            for name, want in s["outputs"].items():
                want = np.asarray(want, dtype=np.float64)
                path = os.path.join(tmp, f"{name}.npy")
                if not os.path.exists(path) and len(outs) == 1:  # XGBoost: one unnamed output
                    path = outs[0]
                got = np.load(path).astype(np.float64).reshape(want.shape)
                diff = np.abs(got - want) / np.maximum(1.0, np.abs(want))
                if diff.max() > tol:
                    errors.append(f"sample {k} output {name}: max diff {diff.max():.3g} > {tol}")
    return errors


def main():
    modeld = os.path.abspath(sys.argv[1])
    root = sys.argv[2] if len(sys.argv) > 2 else "models"
    dirs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(root, "*", "*", "modeld.json")))
    if not dirs:
        print(f"verify_modeld: no manifests under {root}", file=sys.stderr)
        return 1
    bad = 0
    for d in dirs:
        errs = check_version(modeld, d)
        print(f"{'ok  ' if not errs else 'FAIL'} {d}" + "".join(f"\n     {e}" for e in errs))
        bad += bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
