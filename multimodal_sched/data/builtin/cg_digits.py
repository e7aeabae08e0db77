"""``cg-digits``: colored-and-gray digits grown from scikit-learn's bundled 8x8 digits (CG-MNIST-like).

Modality 1 is the gray digit ``(1, 8, 8)`` with Gaussian noise.  Modality 2 is the same digit
(an independently augmented copy) painted with a color ``(3, 8, 8)`` plus weaker noise.  In the
train and probe splits (and val, unless ``val="shifted"``) the color is the class's own palette
color with probability ``color_corr`` and a random RGB color otherwise; in the test split it is
always a random RGB color (a random direction in RGB, scaled so its largest channel is 1, as the
palette colors are).  A model that leans on color (the fast, easy shortcut) fails at test time:
the modality competition the scheduler is meant to break.  The colored digit keeps its shape, so
the color modality alone stays above chance on test.

Growth: the 1,797 digits are first split by ``FRACTIONS`` into disjoint groups (no digit appears
in two splits), then each split is grown by ``COPIES`` augmented copies of each of its digits
(a fresh rotation of up to ``max_rotation`` degrees, a fresh sub-pixel shift of up to
``max_shift`` pixels, fresh noise): about 6,000 train, 1,200 val, 1,200 probe and 1,200 test
samples with the defaults.  No download; numpy/scipy only; deterministic from ``seed``.

``val="shifted"``: the val split gets random colors like test (a shift-aware validation split,
for model selection under the test distribution's color shift); ``"iid"`` (default): val is
drawn like train.  ``MultimodalData.info["val"]`` records which.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..base import MultimodalData

__all__ = ["make_cg_digits", "PALETTE", "FRACTIONS", "COPIES", "VAL_SPLITS"]

# Ten well-separated RGB colors (class c -> PALETTE[c]); each has largest channel 1.
PALETTE = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [0.5, 1.0, 0.5], [1.0, 1.0, 1.0],
])

#: share of the 1,797 base digits in each split (disjoint)
FRACTIONS = {"train": 0.55, "val": 0.15, "probe": 0.15, "test": 0.15}
#: augmented copies of each base digit per split
COPIES = {"train": 6, "val": 4, "probe": 4, "test": 4}
#: what ``val=`` accepts: drawn like train, or with the test split's random colors
VAL_SPLITS = ("iid", "shifted")


def _augment(img: np.ndarray, rng: np.random.Generator, max_rotation: float, max_shift: float) -> np.ndarray:
    """A random rotation (degrees) and sub-pixel shift of each image (n, h, w), bilinear, zero outside."""
    from scipy.ndimage import map_coordinates

    n, h, w = img.shape
    ang = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    cos, sin = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    # output pixel (y, x) reads the source at R(-angle) (y, x) - shift
    sy = cos * yy - sin * xx + cy - shift[:, 0, None, None]
    sx = sin * yy + cos * xx + cx - shift[:, 1, None, None]
    si = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], sy.shape)
    out = map_coordinates(img.astype(np.float64), [si, sy, sx], order=1, mode="constant", cval=0.0)
    return out.astype(np.float32)


def _random_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random RGB colors (n, 3): uniform in the cube, scaled so the largest channel is 1."""
    c = rng.random((n, 3)) + 1e-3
    return c / c.max(axis=1, keepdims=True)


def make_cg_digits(*, seed: int = 0, color_corr: float = 0.95, gray_noise: float = 0.15,
                   color_noise: float = 0.3, max_rotation: float = 12.0, max_shift: float = 1.0,
                   val: str = "iid", copies: dict | None = None,
                   n_train: int | None = None) -> MultimodalData:
    """Build ``cg-digits``.

    seed : controls the split, the augmentation, the noise and the color draws.
    color_corr : probability that a train/probe (and iid val) sample has its class color.
    gray_noise, color_noise : std of the Gaussian pixel noise (images are in [0, 1]).
    max_rotation, max_shift : augmentation range (degrees, pixels).
    val : ``"iid"`` (val drawn like train) or ``"shifted"`` (val with random colors, like test).
    copies : augmented copies per base digit of some splits, e.g. ``{"train": 2}``
        (default :data:`COPIES`).
    n_train : optionally keep only the first ``n_train`` train samples (for quick tests).
    """
    from sklearn.datasets import load_digits

    if not (isinstance(color_corr, (int, float)) and 0.0 <= color_corr <= 1.0):
        raise ValueError(f"color_corr must be in [0, 1], got {color_corr!r}")
    for name, v in (("gray_noise", gray_noise), ("color_noise", color_noise),
                    ("max_rotation", max_rotation), ("max_shift", max_shift)):
        if not (isinstance(v, (int, float)) and v >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")
    if val not in VAL_SPLITS:
        raise ValueError(f"val must be one of {list(VAL_SPLITS)}, got {val!r}")
    reps = dict(COPIES)
    if copies is not None:
        if not isinstance(copies, dict) or set(copies) - set(COPIES):
            raise ValueError(f"copies must be a dict with some of the keys {list(COPIES)}, got {copies!r}")
        for k, v in copies.items():
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"copies[{k!r}] must be an integer >= 1, got {v!r}")
        reps.update(copies)
    if n_train is not None and not (isinstance(n_train, int) and n_train >= 2):
        raise ValueError(f"n_train must be None or an integer >= 2, got {n_train!r}")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    bounds = np.cumsum([int(round(f * len(y))) for f in FRACTIONS.values()])
    base = dict(zip(FRACTIONS, np.split(perm, bounds[:-1])))
    splits, sizes = {}, {}
    for name, ii in base.items():
        ii = np.tile(ii, reps[name])
        ii = ii[rng.permutation(len(ii))]
        if name == "train" and n_train is not None:
            ii = ii[:n_train]
        lab, n = y[ii], len(ii)
        g = _augment(x[ii], rng, max_rotation, max_shift)
        c = _augment(x[ii], rng, max_rotation, max_shift)   # the same digit, its own augmentation
        gray = g[:, None] + gray_noise * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
        if name == "test" or (name == "val" and val == "shifted"):
            col = _random_colors(rng, n)
        else:
            keep = rng.random(n) < color_corr
            col = np.where(keep[:, None], PALETTE[lab], _random_colors(rng, n))
        color = (c[:, None] * col.astype(np.float32)[:, :, None, None]
                 + color_noise * rng.standard_normal((n, 3, 8, 8)).astype(np.float32))
        splits[name] = TensorDataset(torch.from_numpy(gray), torch.from_numpy(color), torch.from_numpy(lab))
        sizes[name] = n
    return MultimodalData(splits=splits, n_classes=10, name="cg-digits",
                          info={"seed": seed, "color_corr": color_corr, "gray_noise": gray_noise,
                                "color_noise": color_noise, "max_rotation": max_rotation,
                                "max_shift": max_shift, "val": val, "copies": reps, "sizes": sizes})
