"""params.py - the tracer's parameters as the vectorize models see them (ai_contract.md §2): ten
floats in a fixed order, raw units, no scaling. Mirrors vec_params_encode / vec_params_decode and
the presets of src/vectorize/params.c.

Invariants:
  1. NAMES is the order of the encoding everywhere (C, Python, the models' columns).
  2. decode() rounds and clamps exactly as vec_params_decode does: integers floor(v + 0.5) then
     clamp, length_threshold is clamped but not rounded, the two flags are 1 when >= 0.5, and a
     NaN takes the default preset's value.
  3. The design (lhs) depends only on its seed and size: the same seed gives the same sets.
"""
import numpy as np

NAMES = ["filter_speckle", "color_precision", "layer_difference", "corner_threshold",
         "length_threshold", "max_iterations", "splice_threshold", "path_precision",
         "hierarchical_cutout", "mode_polygon"]
N_ENC = len(NAMES)
# Valid range of each encoded value (src/vectorize/params.c PARAMS).
LO = np.array([0, 1, 0, 0, 3.5, 1, 0, 0, 0, 0], dtype=np.float64)
HI = np.array([128, 8, 255, 180, 10, 20, 180, 8, 1, 1], dtype=np.float64)
INTEGER = np.array([True, True, True, True, False, True, True, True, True, True])
# The part of each range the design samples: the full ranges include settings no logo wants
# (filter_speckle 128 erases everything but the largest shapes; path_precision 8 only adds bytes).
DESIGN_LO = np.array([0, 4, 2, 10, 3.5, 2, 10, 0, 0, 0], dtype=np.float64)
DESIGN_HI = np.array([16, 8, 64, 120, 8.0, 20, 120, 3, 1, 1], dtype=np.float64)
# The region where logos trace well (around the default and quality presets): most of the design
# and every anchor set is drawn here, so the models are most accurate where the optimum lies.
GOOD_LO = np.array([0, 6, 2, 30, 3.5, 5, 20, 1, 0, 0], dtype=np.float64)
GOOD_HI = np.array([4, 8, 16, 90, 5.0, 15, 90, 3, 1, 0], dtype=np.float64)

_BASE = dict(filter_speckle=4, color_precision=6, layer_difference=16, corner_threshold=60,
             length_threshold=4.0, max_iterations=10, splice_threshold=45, path_precision=2,
             hierarchical_cutout=0, mode_polygon=0)
# vec_params_preset() in src/vectorize/params.c, as encoded (gradients stays 1: contract §2).
PRESETS = {
    "default": dict(_BASE, path_precision=1, length_threshold=3.5, filter_speckle=3),
    "quality": dict(_BASE, filter_speckle=2, color_precision=7, layer_difference=8,
                    length_threshold=3.5, path_precision=1),
    "fast": dict(_BASE, filter_speckle=6, color_precision=5, layer_difference=24, mode_polygon=1,
                 length_threshold=6.0, path_precision=1),
}


def preset(name):
    """The encoded vector of a preset (float64 [10])."""
    return np.array([PRESETS[name][n] for n in NAMES], dtype=np.float64)


def decode(enc):
    """Round and clamp encoded vectors ([..., 10]) into valid parameter values (float64)."""
    v = np.asarray(enc, dtype=np.float64)
    v = np.where(np.isnan(v), preset("default"), v)
    flags = np.array([False] * 8 + [True, True])
    out = np.clip(np.where(INTEGER & ~flags, np.floor(v + 0.5), v), LO, HI)
    return np.where(flags, (v >= 0.5).astype(np.float64), out)


def cli_args(enc):
    """`modeld vectorize` options for one decoded vector (colour mode, gradients on)."""
    v = decode(enc)
    args = ["--colormode", "color", "--gradients", "1",
            "--hierarchical", "cutout" if v[8] else "stacked",
            "--mode", "polygon" if v[9] else "spline"]
    for i, name in enumerate(NAMES[:8]):
        args += [f"--{name}", f"{v[i]:g}" if INTEGER[i] else f"{v[i]:.2f}"]
    return args


def lhs(n, rng, lo=DESIGN_LO, hi=DESIGN_HI):
    """A Latin-hypercube design of n decoded vectors over lo..hi: each coordinate's range is
    cut into n strata and every stratum is used once."""
    u = (np.argsort(rng.random((N_ENC, n)), axis=1).T + rng.random((n, N_ENC))) / n
    span = hi - lo
    ints = np.minimum(lo + np.floor(u * (span + 1)), hi)
    out = decode(np.where(INTEGER, ints, lo + u * span))
    out[:, 4] = np.round(out[:, 4], 2)  # as cli_args writes it
    return out
