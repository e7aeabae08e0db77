"""``cg-digits``: colored-and-gray digits from scikit-learn's bundled 8x8 digits.

In the spirit of CG-MNIST.  Modality 1 is the gray digit with Gaussian noise
``(1, 8, 8)``.  Modality 2 is the same digit tinted with a color ``(3, 8, 8)``
plus (stronger) noise: in the train, val and probe splits the color is the
class's own color with probability ``color_corr`` and a uniformly random
palette color otherwise; in the test split it is always random.  A model that
leans on color (the fast, easy shortcut) therefore fails at test time, which
is the modality competition the scheduler is meant to break.  No download;
deterministic from ``seed``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..base import MultimodalData

__all__ = ["make_cg_digits", "PALETTE"]

# Ten well-separated RGB colors (class c -> PALETTE[c]).
PALETTE = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [0.5, 1.0, 0.5], [1.0, 1.0, 1.0],
])

FRACTIONS = {"train": 0.55, "val": 0.15, "probe": 0.15, "test": 0.15}


def make_cg_digits(*, seed: int = 0, color_corr: float = 0.97, gray_noise: float = 0.35,
                   color_noise: float = 0.5, n_train: int | None = None) -> MultimodalData:
    """Build ``cg-digits``.

    seed : controls the split, the noise and the color draws.
    color_corr : probability that a train/val/probe sample has its class color.
    gray_noise, color_noise : std of the Gaussian pixel noise (images are in [0, 1]).
    n_train : optionally subsample the train split (for quick tests).
    """
    from sklearn.datasets import load_digits

    if not 0.0 <= color_corr <= 1.0:
        raise ValueError(f"color_corr must be in [0, 1], got {color_corr}")
    if gray_noise < 0 or color_noise < 0:
        raise ValueError("gray_noise and color_noise must be >= 0")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    bounds = np.cumsum([int(round(f * len(y))) for f in FRACTIONS.values()])
    idx = dict(zip(FRACTIONS, np.split(perm, bounds[:-1])))
    if n_train is not None:
        idx["train"] = idx["train"][:n_train]
    splits = {}
    for name, ii in idx.items():
        img, lab = x[ii], y[ii]
        n = len(ii)
        gray = img[:, None] + gray_noise * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
        if name == "test":
            cidx = rng.integers(0, 10, n)
        else:
            keep = rng.random(n) < color_corr
            cidx = np.where(keep, lab, rng.integers(0, 10, n))
        col = PALETTE[cidx].astype(np.float32)[:, :, None, None]
        color = img[:, None] * col + color_noise * rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
        splits[name] = TensorDataset(torch.from_numpy(gray), torch.from_numpy(color), torch.from_numpy(lab))
    return MultimodalData(splits=splits, n_classes=10, name="cg-digits",
                          info={"seed": seed, "color_corr": color_corr, "gray_noise": gray_noise,
                                "color_noise": color_noise, "sizes": {k: len(v) for k, v in idx.items()}})
