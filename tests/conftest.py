"""Shared fixtures for the test suite (kept minimal on purpose)."""
from __future__ import annotations

import numpy as np
import pytest


def dirichlet_histogram(rng, shape, alpha=1.0, zero_frac=0.0):
    """A random joint distribution P[x1, x2, y] drawn from a symmetric
    Dirichlet(alpha) on its cells, with about ``zero_frac`` of the cells set to
    exactly zero (at least one cell always keeps its mass)."""
    P = rng.dirichlet(np.full(int(np.prod(shape)), float(alpha))).reshape(shape)
    if zero_frac > 0:
        P = np.where(rng.random(shape) < zero_frac, 0.0, P)
        if P.sum() == 0:
            P.flat[rng.integers(P.size)] = 1.0
    return P / P.sum()


@pytest.fixture
def rng():
    """A freshly seeded generator per test: reproducible, independent of test order."""
    return np.random.default_rng(20261123)


@pytest.fixture
def make_hist(rng):
    """Factory ``make_hist(shape, alpha=1.0, zero_frac=0.0)`` of random histograms."""

    def make(shape, alpha=1.0, zero_frac=0.0):
        return dirichlet_histogram(rng, shape, alpha, zero_frac)

    return make
