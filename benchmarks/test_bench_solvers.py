"""Solver micro-benchmarks (pytest-benchmark).  Not part of the normal test run:

    python -m pytest benchmarks --benchmark-enable
    python -m pytest benchmarks --benchmark-enable -m "not optional"   # skip 64x64x10

Median wall time of one solve, exact vs cvx-clarabel, on Gaussian-task
histograms of several shapes, and the throughput of the exact solver on a
batch of 1000 histograms of 20x20x6 (the paper's CREMA-D shape).  Numba JIT
compilation is excluded by a warm-up round.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastpid
from fastpid_bench.problems import random_problem

pytest.importorskip("pytest_benchmark")

SHAPES = [(8, 8, 4), (20, 20, 6), (32, 32, 8), pytest.param((64, 64, 10), marks=pytest.mark.optional)]
METHODS = {
    "exact": ("exact", {}),
    "cvx-clarabel": ("cvx", {"solver": "CLARABEL", "tol": 1e-8}),
}


def _solve(P, method):
    name, opts = METHODS[method]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", fastpid.ConvergenceWarning)
        return fastpid.pid(P, method=name, **opts)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("method", list(METHODS))
def test_single_solve(benchmark, method, shape):
    P = random_problem(*shape, seed=0).counts
    _solve(fastpid.distributions.and_(), method)  # JIT warm-up, not timed
    rounds = 5 if np.prod(shape) <= 3000 else 3
    res = benchmark.pedantic(_solve, args=(P, method), rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        method=method, shape=list(shape), cells=int(np.prod(shape)), converged=bool(res.converged),
        violation=float(res.violation), gap=float(res.gap), status=str(res.info.get("status")),
        atoms={k: float(v) for k, v in res.atoms().items()},
    )
    # a failed solve is never timed as a success
    assert bool(res.converged), res.info.get("status")
    assert np.isfinite([res.R, res.U1, res.U2, res.S]).all()
    assert res.violation < 1e-5


def test_batched_exact_throughput(benchmark):
    B = 1000
    P = random_problem(20, 20, 6, seed=0, batch=B, samples=5_000).counts
    _solve(P[:2], "exact")  # JIT warm-up of the batched path
    res = benchmark.pedantic(_solve, args=(P, "exact"), rounds=3, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (one untimed run)
        benchmark.extra_info.update(
            batch=B, shape=[20, 20, 6], histograms_per_s=B / benchmark.stats.stats.median,
            converged_fraction=float(np.mean(res.converged)), max_violation=float(np.max(res.violation)),
        )
    assert res.R.shape == (B,)
    assert bool(np.all(res.converged)), f"{int(np.sum(~res.converged))} of {B} not certified"
    assert np.isfinite(res.S).all()
