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
ATOMS = ("R", "U1", "U2", "S")
AGREE_F32 = 1e-6   # bits: float32 input against the float64 solve (docs/torch.md)


@pytest.fixture(scope="module")
def histograms():
    from fastpid_bench.problems import random_problem

    return np.asarray(random_problem(*SHAPE, seed=0, batch=B, samples=5_000).counts, dtype=np.float64)


@pytest.fixture(scope="module")
def reference(histograms):
    """The NumPy/Numba exact solve of the same batch: every item certified."""
    res = _pid(histograms)
    assert bool(np.all(res.converged)), f"{int(np.sum(~res.converged))} of {B} not certified"
    return res


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _assert_certified_and_agree(res, ref, tol):
    """Every item certified, each atom within ``tol`` bits plus both gaps of the reference."""
    assert bool(np.all(_np(res.converged))), f"{int(np.sum(~_np(res.converged)))} of {B} not certified"
    slack = tol + np.maximum(_np(res.gap), 0) + np.maximum(_np(ref.gap), 0)
    for k in ATOMS:
        err = np.abs(_np(getattr(res, k)).astype(np.float64) - _np(getattr(ref, k)))
        assert bool(np.all(err <= slack)), (k, float(err.max()))


def _pid(P, **opts):
    """One timed solve.  A ConvergenceWarning is recorded, not hidden: each test
    asserts ``converged`` (exact) or records its fraction (fastpid)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastpid.ConvergenceWarning)  # converged is asserted / recorded below
        return fastpid.pid(P, **opts)


def _record(benchmark, n, label, res):
    if benchmark.stats is None:  # --benchmark-disable: the function ran once, untimed
        return
    median = benchmark.stats.stats.median
    conv = res.converged
    conv = float(conv.float().mean()) if hasattr(conv, "float") else float(np.mean(conv))
    benchmark.extra_info.update(variant=label, batch=n, shape=list(SHAPE), histograms_per_s=n / median,
                                converged=conv, torch_threads=torch.get_num_threads())


def test_exact_numba_backend(benchmark, histograms, reference):
    res = benchmark.pedantic(_pid, args=(histograms,), rounds=3, iterations=1)
    _record(benchmark, B, "numpy/numba exact", res)
    _assert_certified_and_agree(res, reference, 1e-12)  # deterministic: the same answer every run


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_exact_torch_cpu(benchmark, histograms, reference, dtype):
    P = torch.tensor(histograms, dtype=dtype)
    _pid(P[:2])
    res = benchmark.pedantic(_pid, args=(P,), rounds=3, iterations=1)
    _record(benchmark, B, f"torch exact {dtype}", res)
    assert res.S.dtype == dtype
    _assert_certified_and_agree(res, reference, 1e-12 if dtype == torch.float64 else AGREE_F32)


def test_exact_torch_cpu_with_backward(benchmark, histograms, reference):
    grads = []

    def solve_and_backward():
        P = torch.tensor(histograms, requires_grad=True)
        res = _pid(P)
        res.S.sum().backward()
        grads.append(P.grad)
        return res

    res = benchmark.pedantic(solve_and_backward, rounds=3, iterations=1)
    _record(benchmark, B, "torch exact fp64 + backward(S)", res)
    _assert_certified_and_agree(res, reference, 1e-12)
    g = grads[-1].numpy()
    assert g.shape == histograms.shape and np.all(np.isfinite(g))
    # the gradient of three items against central differences of S along a random direction
    rng = np.random.default_rng(1)
    for i in range(3):
        D = rng.standard_normal(SHAPE) * (histograms[i] > 0)
        h = 1e-4 * np.abs(histograms[i][histograms[i] > 0]).min()
        Sp, Sm = (float(fastpid.pid(histograms[i] + t * D, tol=1e-12).S) for t in (h, -h))
        fd = (Sp - Sm) / (2 * h)
        an = float(np.sum(g[i] * D))
        assert abs(fd - an) <= 1e-5 * max(1.0, abs(an)), (i, fd, an)


def test_fastpid_torch_cpu(benchmark, histograms, reference):
    n = 100  # Algorithm 2 runs up to 2000 Adam steps per batch
    P = torch.tensor(histograms[:n])
    _pid(P[:2], method="fastpid", max_iter=5)
    res = benchmark.pedantic(_pid, args=(P,), kwargs=dict(method="fastpid"), rounds=1, iterations=1)
    _record(benchmark, n, "torch fastpid fp64 (paper defaults)", res)
    # FastPID is an approximation without a certificate: its atoms are finite,
    # and its synergy is never below the exact one by more than the exact gap
    # (q minimizes I_q over the feasible set, so S = I - I_q is smallest at q*).
    S = _np(res.S)
    assert np.all(np.isfinite(S))
    ref_S, ref_gap = _np(reference.S)[:n], _np(reference.gap)[:n]
    assert np.all(S >= ref_S - ref_gap - 1e-6), float((ref_S - S).max())
