"""``synthetic``: two modalities from the sparse-coding data model of the paper's theory.

Each modality ``r`` lives in ``R^dim`` with an orthonormal dictionary ``M_r``
(drawn from the seed).  Its first ``n_classes`` atoms carry the label; the
rest are nuisance features.  A sample of class ``y`` is

    x_r = b_r * strength_r * M_r[:, y] + sum_{j in S} c_j M_r[:, n_classes + j] + noise * eps

where ``b_r ~ Bernoulli(presence_r)`` says whether the label signal is present
in that modality for that sample (independently per modality, so the two
modalities are complementary), ``S`` is a random set of ``sparsity`` nuisance
atoms with coefficients ``c_j ~ N(0, nuisance^2)`` and ``eps ~ N(0, I)``.
A larger ``strength_r`` makes modality ``r`` learned faster (it wins the
competition); ``presence_r`` bounds what it can reach alone.  All splits
share one distribution.  Deterministic from ``seed``.

The defaults (strength 1.0 / 5.0, presence 1.0 / 0.7, 1,000 training samples) are the paper's
Section 3 setting in small: with sum fusion and the fused loss alone, the weak modality's branch
inside the jointly trained model scores below the same branch trained alone
(``benchmarks/synthetic_suppression.py``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..base import MultimodalData

__all__ = ["make_synthetic"]

SIZES = {"train": 1000, "val": 600, "probe": 600, "test": 1000}


def make_synthetic(*, seed: int = 0, n_classes: int = 4, dim: int = 32,
                   strength1: float = 1.0, strength2: float = 5.0,
                   presence1: float = 1.0, presence2: float = 0.7,
                   sparsity: int = 4, nuisance: float = 1.0, noise: float = 1.0,
                   n_train: int | None = None) -> MultimodalData:
    if n_classes < 2 or dim < n_classes + sparsity:
        raise ValueError(f"need n_classes >= 2 and dim >= n_classes + sparsity, got {n_classes}, {dim}, {sparsity}")
    for name, p in (("presence1", presence1), ("presence2", presence2)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    dicts = [np.linalg.qr(rng.standard_normal((dim, dim)))[0] for _ in range(2)]
    n_nuis = dim - n_classes
    sizes = dict(SIZES)
    if n_train is not None:
        sizes["train"] = n_train
    splits = {}
    for name, n in sizes.items():
        y = rng.integers(0, n_classes, n)
        xs = []
        for M, s, p in zip(dicts, (strength1, strength2), (presence1, presence2)):
            b = (rng.random(n) < p).astype(np.float64)
            x = (b * s)[:, None] * M[:, y].T
            coef = np.zeros((n, n_nuis))
            for i in range(n):
                j = rng.choice(n_nuis, size=sparsity, replace=False)
                coef[i, j] = nuisance * rng.standard_normal(sparsity)
            x = x + coef @ M[:, n_classes:].T + noise * rng.standard_normal((n, dim))
            xs.append(torch.from_numpy(x.astype(np.float32)))
        splits[name] = TensorDataset(xs[0], xs[1], torch.from_numpy(y.astype(np.int64)))
    return MultimodalData(splits=splits, n_classes=n_classes, name="synthetic",
                          info={"seed": seed, "strength1": strength1, "strength2": strength2,
                                "presence1": presence1, "presence2": presence2, "dim": dim,
                                "sparsity": sparsity, "nuisance": nuisance, "noise": noise,
                                "sizes": sizes})
