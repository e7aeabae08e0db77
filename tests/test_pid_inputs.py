"""Hard inputs of pid and pid_from_samples, and the per-method options shared
by both backends."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastpid
from fastpid.estimate import pid_from_samples
from fastpid.exceptions import EngineFallbackWarning

torch = pytest.importorskip("torch")

METHODS = ["exact", "cvx", "fastpid", "analytic"]
ATOMS = ("R", "U1", "U2", "S", "I", "I1", "I2")


# ------------------------------------------------------------------ options: one validation per method

def _inputs():
    P = np.random.default_rng(0).random((2, 3, 2))
    return [P, torch.tensor(P)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("value, exc", [(-1.0, ValueError), (0.0, ValueError), ("x", TypeError),
                                        (float("nan"), ValueError)])
def test_feas_tol_is_validated_alike_on_both_backends(method, value, exc):
    for P in _inputs():
        with pytest.raises(exc, match="feas_tol"):
            fastpid.pid(P, method=method, feas_tol=value)


def test_analytic_default_feas_tol_follows_the_dtype():
    P = np.random.default_rng(1).random((3, 3, 2))
    r64 = fastpid.pid(P, method="analytic")
    r32 = fastpid.pid(torch.tensor(P, dtype=torch.float32), method="analytic")
    assert r64.converged and bool(r32.converged)
    assert r64.S == pytest.approx(float(r32.S), abs=1e-5)
    # float32 rounding exceeds the float64 default of 1e-9
    with pytest.warns(fastpid.ConvergenceWarning):
        r = fastpid.pid(torch.tensor(P * 7, dtype=torch.float32), method="analytic", feas_tol=1e-12)
    assert not bool(r.converged)


# ------------------------------------------------------------------ totals that overflow

def test_overflowing_float64_total_gives_the_normalized_answer():
    P = np.random.default_rng(2).uniform(0.1, 1.0, size=(3, 4, 2))
    big = P / P.max() * 1e308  # every cell finite, the total is not
    with np.errstate(over="ignore"):
        assert not np.isfinite(big.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fastpid.pid(big)
    ref = fastpid.pid(P)
    assert r.converged and r.info["status"] == "converged"
    for k in ATOMS:
        assert getattr(r, k) == pytest.approx(getattr(ref, k), abs=1e-12), k
    assert np.allclose(r.q, ref.q, atol=1e-9, rtol=0)


def test_full_1e308_is_the_uniform_distribution():
    r = fastpid.pid(np.full((2, 2, 2), 1e308))
    assert r.converged and np.allclose(r.q, 1 / 8, atol=1e-15, rtol=0)


def test_overflowing_float32_tensor_total_gives_finite_atoms():
    P = np.random.default_rng(3).uniform(0.1, 1.0, size=(2, 2, 3)).astype(np.float32)
    big = torch.tensor(P / P.max() * np.float32(3e38))
    assert not torch.isfinite(big.sum())
    for method in ("exact", "analytic"):
        r = fastpid.pid(big, method=method)
        ref = fastpid.pid(torch.tensor(P), method=method)
        assert bool(r.converged), method
        for k in ATOMS:
            v = getattr(r, k)
            assert bool(torch.isfinite(v)), (method, k)
            assert float(v) == pytest.approx(float(getattr(ref, k)), abs=1e-5), (method, k)


def test_overflowing_batch_member_does_not_change_the_others():
    rng = np.random.default_rng(4)
    P = rng.uniform(0.1, 1.0, size=(3, 2, 3, 2))
    big = P.copy()
    big[1] = big[1] / big[1].max() * 1e308
    r, ref = fastpid.pid(big), fastpid.pid(P)
    assert bool(r.converged.all())
    for k in ATOMS:
        assert np.allclose(getattr(r, k), getattr(ref, k), atol=1e-12, rtol=0), k


# ------------------------------------------------------------------ input types

def test_masked_array_is_refused():
    P = np.ma.masked_array(np.ones((2, 2, 2)), mask=np.zeros((2, 2, 2), bool))
    with pytest.raises(TypeError, match="masked array"):
        fastpid.pid(P)


def test_tensor_that_requires_grad_on_numpy_backend():
    P = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)
    r = fastpid.pid(P, backend="numpy")
    assert r.backend == "numpy" and isinstance(r.S, float)
    assert r.S == pytest.approx(fastpid.pid(P.detach().numpy()).S, abs=0)


def test_torch_mutual_information_has_finite_gradients_at_empty_cells():
    P = torch.tensor([[[0.2, 0.0], [0.1, 0.3]], [[0.0, 0.0], [0.25, 0.15]]],
                     dtype=torch.float64, requires_grad=True)
    fastpid.mutual_information(P[None]).sum().backward()  # a batch of one: a tensor out
    assert bool(torch.isfinite(P.grad).all())
    # along the face of histograms with the same zero cells the gradient is exact
    d = torch.zeros_like(P)
    d[0, 0, 0], d[1, 1, 1] = 1.0, -0.5
    h = 1e-6
    with torch.no_grad():
        fd = (fastpid.mutual_information((P + h * d)[None]) - fastpid.mutual_information((P - h * d)[None])) / (2 * h)
    assert float((P.grad * d).sum()) == pytest.approx(float(fd), abs=1e-8)


def test_engine_fallback_warns():
    P = torch.tensor(np.random.default_rng(5).random((2, 4, 3, 2)))
    with pytest.warns(EngineFallbackWarning, match="re-solved by the Numba engine"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
            r = fastpid.pid(P, engine="torch", max_iter=3)
    assert r.info["numba_fallback"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)
        r = fastpid.pid(P, engine="torch")  # certified by torch itself: no warning
    assert r.info["numba_fallback"] == 0


# ------------------------------------------------------------------ samples

def _samples():
    rng = np.random.default_rng(6)
    x1 = rng.integers(0, 3, 300)
    x2 = rng.integers(0, 3, 300)
    y = (x1 + x2 + (rng.random(300) < 0.2)) % 2
    return x1, x2, y


def test_samples_from_a_tensor_that_requires_grad_are_read_detached():
    x1, x2, y = _samples()
    feats = np.random.default_rng(7).normal(size=(300, 2)) + x1[:, None]
    t = torch.tensor(feats, requires_grad=True)
    est = pid_from_samples(t, x2, torch.tensor(y), bins=4)
    ref = pid_from_samples(feats, x2, y, bins=4)
    assert est.S == ref.S and est.R == ref.R


@pytest.mark.parametrize("labels", [[1, "a"] * 150, np.array([1, "a"] * 150, dtype=object),
                                    [1.0, None] * 150])
def test_mixed_label_types_are_refused(labels):
    x1, x2, y = _samples()
    with pytest.raises(TypeError, match="x1 mixes label types"):
        pid_from_samples(labels, x2, y)


def test_string_labels_are_accepted():
    x1, x2, y = _samples()
    names = np.array(["a", "b", "c"])
    assert pid_from_samples(names[x1].tolist(), x2, y).S == pid_from_samples(x1, x2, y).S


def test_masked_samples_are_refused_unless_nothing_is_masked():
    x1, x2, y = _samples()
    with pytest.raises(TypeError, match="y is a masked array with 1 masked entry"):
        pid_from_samples(x1, x2, np.ma.masked_array(y, mask=np.arange(300) == 5))
    plain = np.ma.masked_array(x1)
    assert pid_from_samples(plain, x2, y).S == pid_from_samples(x1, x2, y).S
