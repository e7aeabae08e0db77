"""Torch-backend throughput next to the Numba backend (pytest-benchmark).
Not part of the normal test run:

    python -m pytest benchmarks/test_bench_torch.py --benchmark-enable

Batched solves of 1000 Gaussian-task histograms of 20x20x6 on the CPU:
``method="exact"`` through the NumPy/Numba backend, through the torch backend
(float64 and float32 tensors: the same Numba kernel plus the tensor round
trip), and with a backward pass through the envelope-theorem gradients; and the
batched torch ``method="fastpid"`` (paper defaults) on a smaller batch.
JIT compilation is excluded by a warm-up call.  ``extra_info`` records
histograms per second.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
torch = pytest.importorskip("torch")

import fastpid  # noqa: E402

B = 1000
SHAPE = (20, 20, 6)


@pytest.fixture(scope="module")
def histograms():
    try:
        from fastpid_bench.problems import random_problem

        return np.asarray(random_problem(*SHAPE, seed=0, batch=B, samples=5_000).counts, dtype=np.float64)
    except ImportError:
        return np.random.default_rng(0).random((B,) + SHAPE)


def _pid(P, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
        return fastpid.pid(P, **opts)


def _record(benchmark, n, label, res):
    if benchmark.stats is None:  # --benchmark-disable: the function ran once, untimed
        return
    median = benchmark.stats.stats.median
    conv = res.converged
    conv = float(conv.float().mean()) if hasattr(conv, "float") else float(np.mean(conv))
    benchmark.extra_info.update(variant=label, batch=n, shape=list(SHAPE), histograms_per_s=n / median,
                                converged=conv, torch_threads=torch.get_num_threads())


def test_exact_numba_backend(benchmark, histograms):
    _pid(histograms[:2])
    res = benchmark.pedantic(_pid, args=(histograms,), rounds=3, iterations=1)
    _record(benchmark, B, "numpy/numba exact", res)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_exact_torch_cpu(benchmark, histograms, dtype):
    P = torch.tensor(histograms, dtype=dtype)
    _pid(P[:2])
    res = benchmark.pedantic(_pid, args=(P,), rounds=3, iterations=1)
    _record(benchmark, B, f"torch exact {dtype}", res)


def test_exact_torch_cpu_with_backward(benchmark, histograms):
    def solve_and_backward():
        P = torch.tensor(histograms, requires_grad=True)
        res = _pid(P)
        res.S.sum().backward()
        return res

    res = benchmark.pedantic(solve_and_backward, rounds=3, iterations=1)
    _record(benchmark, B, "torch exact fp64 + backward(S)", res)


def test_fastpid_torch_cpu(benchmark, histograms):
    n = 100  # Algorithm 2 runs up to 2000 Adam steps per batch
    P = torch.tensor(histograms[:n])
    _pid(P[:2], method="fastpid", max_iter=5)
    res = benchmark.pedantic(_pid, args=(P,), kwargs=dict(method="fastpid"), rounds=1, iterations=1)
    _record(benchmark, n, "torch fastpid fp64 (paper defaults)", res)
