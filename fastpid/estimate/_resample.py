"""Replicate histograms: bootstrap, Y-permutation and subsample splits.

All functions return stacks ``(k, n1, n2, ny)`` on the grid of the original
histogram (cells a replicate never visits stay at zero), so every replicate of
every kind can be solved together in one batched :func:`fastpid.pid` call.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "flat_cells", "bootstrap_histograms", "inner_bootstrap_histograms", "permutation_histograms", "split_histograms",
]


def flat_cells(codes, shape):
    """Flat cell index (x1 * n2 + x2) * ny + y of every sample."""
    c1, c2, cy = codes
    _, n2, ny = shape
    return (c1 * n2 + c2) * ny + cy


def _bincount_rows(rows_of_cells, size):
    """Histogram of each row of an int matrix (k, n) of cell indices -> (k, size)."""
    k = rows_of_cells.shape[0]
    offset = (np.arange(k, dtype=np.int64) * size)[:, None]
    return np.bincount((rows_of_cells + offset).ravel(), minlength=k * size).reshape(k, size)


def bootstrap_histograms(counts, n_boot, rng):
    """Histograms of ``n_boot`` resamples (with replacement) of the N samples.

    Resampling N rows with replacement gives exactly a Multinomial(N, counts / N)
    histogram, so the stack is drawn directly from it.
    """
    flat = np.asarray(counts, dtype=np.float64).ravel()
    n = int(round(flat.sum()))
    draws = rng.multinomial(n, flat / flat.sum(), size=n_boot)
    return draws.reshape((n_boot,) + counts.shape).astype(np.float64)


def inner_bootstrap_histograms(boot, n_inner, rng):
    """Second-level bootstrap: ``n_inner`` resamples of each histogram of the
    stack ``boot`` (k, n1, n2, ny), drawn from its own cell frequencies.

    Returns ``(k * n_inner, n1, n2, ny)``; rows ``j * n_inner ... (j + 1) * n_inner - 1``
    are the resamples of ``boot[j]``.
    """
    k = boot.shape[0]
    flat = boot.reshape(k, -1)
    n = int(round(flat[0].sum())) if k else 0
    pvals = np.repeat(flat / np.maximum(flat.sum(axis=1, keepdims=True), 1.0), n_inner, axis=0)
    return rng.multinomial(n, pvals).reshape((k * n_inner,) + boot.shape[1:]).astype(np.float64)


def permutation_histograms(codes, shape, n_perm, rng):
    """Histograms with ``y`` randomly permuted across samples ``n_perm`` times.

    Keeps the joint (x1, x2) sample and the class frequencies; destroys every
    dependence between Y and the sources (the null of the permutation test).
    """
    c1, c2, cy = codes
    _, n2, ny = shape
    ys = rng.permuted(np.broadcast_to(cy, (n_perm, len(cy))), axis=1)
    cells = (c1 * n2 + c2)[None, :] * ny + ys
    return _bincount_rows(cells, int(np.prod(shape))).reshape((n_perm,) + tuple(shape)).astype(np.float64)


def split_histograms(codes, shape, n_split, parts, rng):
    """Histograms of the ``parts`` disjoint equal parts of ``n_split`` random
    reorderings of the samples (remainder samples dropped): ``(n_split * parts, ...)``."""
    cells = flat_cells(codes, shape)
    n = len(cells)
    m = n // parts
    order = np.argsort(rng.random((n_split, n)), axis=1)[:, : m * parts]
    sub = cells[order].reshape(n_split * parts, m)
    return _bincount_rows(sub, int(np.prod(shape))).reshape((n_split * parts,) + tuple(shape)).astype(np.float64)
