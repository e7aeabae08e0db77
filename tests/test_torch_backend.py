"""The torch backend: tensors in, tensors out, agreement with NumPy, gradients.

Skipped as a module when torch is not installed; CUDA tests are marked
``cuda`` and skip without a GPU.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastpid  # noqa: E402
from fastpid import ConvergenceWarning  # noqa: E402

KEYS = ("R", "U1", "U2", "S", "I", "I1", "I2")
AGREE_F64 = 1e-8    # bits: torch float64 vs NumPy (the acceptance bound)
AGREE_F32 = 1e-5    # bits: float32 input vs NumPy float64 (documented in docs/torch.md)
GAP_TOL = 1e-9      # bits: certified gap asked of both solves in agreement tests
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _np(v):
    return v.detach().cpu().double().numpy() if hasattr(v, "detach") else np.asarray(v)


def _max_atom_diff(r1, r2):
    return max(float(np.max(np.abs(_np(getattr(r1, k)) - _np(getattr(r2, k))))) for k in KEYS)


def _assert_exact_agree(r, ref, tol):
    """Atoms agree to ``tol`` bits; where a solve stopped short of its gap
    target, to within the certified gaps (each answer is within its gap of
    the optimum, so the two are within the sum)."""
    gaps = np.nan_to_num(_np(r.gap), nan=np.inf) + np.nan_to_num(np.asarray(ref.gap), nan=np.inf)
    both = _np(r.converged).astype(bool) & np.asarray(ref.converged, dtype=bool)
    assert np.all(np.isfinite(gaps)), "the exact solver returned no certificate"
    bound = np.where(both, tol, np.maximum(tol, gaps + tol))
    for k in KEYS:
        d = np.abs(_np(getattr(r, k)) - _np(getattr(ref, k)))
        assert np.all(d <= bound), (k, float(d.max()))


def _interior(rng, shape, n):
    """n strictly positive histograms whose BROJA optimum is interior (every
    (x1, x2) block of q* keeps mass), so V is smooth there and gradcheck applies."""
    out = []
    while len(out) < n:
        P = rng.uniform(0.5, 1.5, size=(8,) + shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = fastpid.pid(P)
        blocks = r.q.sum(axis=-1).reshape(8, -1).min(axis=1)
        out.extend(P[(r.converged) & (blocks > 1e-3)])
    return np.stack(out[:n])


def _random_batch(rng, B, shape, zero_frac=0.15):
    P = rng.random((B,) + shape)
    P[rng.random(P.shape) < zero_frac] = 0.0
    P[..., 0, 0, 0] += 0.1  # never an all-zero histogram
    return P


# --------------------------------------------------------------------------- types, dtypes, devices
def test_tensor_in_tensors_out_float64():
    rng = np.random.default_rng(0)
    P = torch.tensor(rng.random((3, 3, 4, 2)))
    r = fastpid.pid(P)
    assert r.backend == "torch" and r.method == "exact"
    for k in KEYS:
        v = getattr(r, k)
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float64 and v.shape == (3,)
    assert r.q.shape == P.shape and r.q.dtype == torch.float64
    assert r.converged.dtype == torch.bool and bool(r.converged.all())
    assert r.iterations.dtype == torch.int64


@pytest.mark.parametrize("method", ["exact", "analytic", "fastpid"])
def test_float32_stays_float32(method):
    rng = np.random.default_rng(1)
    P = torch.tensor(rng.random((2, 2, 3, 2)), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = fastpid.pid(P, method=method)
    for k in KEYS:
        assert getattr(r, k).dtype == torch.float32
    assert r.q.dtype == torch.float32 and r.violation.dtype == torch.float32


def test_single_histogram_gives_zero_dim_tensors():
    P = torch.tensor(fastpid.distributions.xor(), dtype=torch.float64)
    r = fastpid.pid(P)
    assert isinstance(r.S, torch.Tensor) and r.S.ndim == 0
    assert abs(float(r.S) - 1.0) < 1e-8
    assert isinstance(r.converged, bool) and isinstance(r.iterations, int)


def test_leading_batch_dims():
    rng = np.random.default_rng(2)
    P = torch.tensor(rng.random((2, 3, 2, 2, 3)))
    r = fastpid.pid(P, tol=GAP_TOL)
    assert r.S.shape == (2, 3) and r.q.shape == P.shape
    _assert_exact_agree(r, fastpid.pid(P.numpy(), tol=GAP_TOL), AGREE_F64)


def test_backend_numpy_override_gives_numpy():
    P = torch.tensor(fastpid.distributions.xor(), dtype=torch.float64)
    r = fastpid.pid(P, backend="numpy")
    assert r.backend == "numpy" and isinstance(r.S, float) and isinstance(r.q, np.ndarray)
    rb = fastpid.pid(P.unsqueeze(0), backend="numpy")
    assert isinstance(rb.S, np.ndarray)


def test_backend_torch_override_accepts_numpy():
    r = fastpid.pid(fastpid.distributions.xor(), backend="torch")
    assert isinstance(r.S, torch.Tensor) and r.S.dtype == torch.float64


def test_unknown_option_is_rejected():
    P = torch.ones(2, 2, 2)
    with pytest.raises(TypeError, match="Unknown option"):
        fastpid.pid(P, method="exact", bogus=1)
    with pytest.raises(TypeError, match="Unknown option"):
        fastpid.pid(P, method="fastpid", bogus=1)


# --------------------------------------------------------------------------- agreement with NumPy
@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 2), (5, 3, 3)])
def test_exact_float64_agrees_with_numpy(shape):
    rng = np.random.default_rng(hash(shape) % 2**32)
    P = _random_batch(rng, 16, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = fastpid.pid(P, tol=GAP_TOL)
        r = fastpid.pid(torch.tensor(P), tol=GAP_TOL)
    _assert_exact_agree(r, ref, AGREE_F64)
    # q* need not be unique (the objective is not strictly convex): compare feasibility only
    assert float(r.violation.max()) <= 1e-10


def test_exact_float32_agrees_within_documented_tolerance():
    rng = np.random.default_rng(3)
    P = _random_batch(rng, 32, (4, 5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = fastpid.pid(P, tol=GAP_TOL)
        r = fastpid.pid(torch.tensor(P, dtype=torch.float32), tol=GAP_TOL)
    _assert_exact_agree(r, ref, AGREE_F32)


def test_analytic_agrees_with_numpy():
    rng = np.random.default_rng(4)
    P = _random_batch(rng, 8, (3, 3, 2))
    ref = fastpid.pid(P, method="analytic")
    r = fastpid.pid(torch.tensor(P), method="analytic")
    assert _max_atom_diff(r, ref) < 1e-12


@pytest.mark.parametrize("init", ["analytic", "uniform", "gaussian"])
def test_fastpid_float64_agrees_with_numpy(init):
    rng = np.random.default_rng(5)
    P = rng.random((3, 2, 3, 2)) + 0.05
    opts = dict(method="fastpid", init=init, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = fastpid.pid(P, **opts)
        r = fastpid.pid(torch.tensor(P), **opts)
    assert _max_atom_diff(r, ref) < 1e-6
    assert np.max(np.abs(_np(r.q) - ref.q)) < 1e-6
    assert np.array_equal(_np(r.iterations), ref.iterations)
    assert np.array_equal(_np(r.converged), ref.converged)
    assert np.allclose(_np(r.violation), ref.violation, rtol=1e-6, atol=1e-12)


def test_fastpid_gradients_match_central_differences():
    """FastPID's atoms are differentiated through the final projection with the
    logits held fixed.  One Adam step from the uniform init sets the logits to
    -lr g / (|g| + 1e-8): constant in P up to Adam's 1e-8 smoothing, so there
    the documented gradient is the derivative of the returned atoms, and
    gradcheck's central differences must match it (measured mismatch 5e-6, all
    from the smoothing: 1e-9 with it set to 0; gradients are up to 0.27)."""
    rng = np.random.default_rng(6)
    P = torch.tensor(rng.random((2, 3, 3, 2)) + 0.05, requires_grad=True)

    def atoms(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # one step never meets tol
            r = fastpid.pid(x, method="fastpid", init="uniform", max_iter=1)
        return r.R, r.U1, r.U2, r.S

    assert torch.autograd.gradcheck(atoms, (P,), eps=1e-6, atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------- cvx: detached
def test_cvx_returns_tensors_and_refuses_backward():
    P = torch.tensor(fastpid.distributions.xor(), dtype=torch.float64, requires_grad=True)
    r = fastpid.pid(P, method="cvx", solver="CLARABEL")
    assert isinstance(r.S, torch.Tensor) and abs(r.S.item() - 1.0) < 1e-6
    assert not r.q.requires_grad
    with pytest.raises(RuntimeError, match="not differentiable"):
        r.S.backward()


# --------------------------------------------------------------------------- gradients of exact
def _atoms_fn(**opts):
    def fn(x):
        with warnings.catch_warnings():  # tol=1e-12 is below what the kernel certifies
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = fastpid.pid(x, **opts)
        return tuple(getattr(r, k) for k in KEYS)

    return fn


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 3, 2), (3, 2, 3), (3, 3, 2)])
def test_gradcheck_exact(shape):
    rng = np.random.default_rng(sum(shape) * 7)
    P = torch.tensor(_interior(rng, shape, 2), requires_grad=True)
    assert torch.autograd.gradcheck(_atoms_fn(tol=1e-12), (P,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_single_histogram_unnormalized_counts():
    rng = np.random.default_rng(11)
    P = torch.tensor(_interior(rng, (2, 2, 3), 1)[0] * 40.0, requires_grad=True)
    assert torch.autograd.gradcheck(_atoms_fn(tol=1e-12), (P,), eps=1e-5, atol=1e-6, rtol=1e-3)


def test_grad_S_matches_central_differences_on_larger_histograms():
    rng = np.random.default_rng(12)
    P = _interior(rng, (6, 5, 4), 2)
    Pt = torch.tensor(P, requires_grad=True)
    S = _atoms_fn(tol=1e-11)
    S(Pt)[3].sum().backward()
    grad = Pt.grad.numpy()
    h = 1e-4  # P entries are O(1): truncation error ~1e-8, solver noise / h ~1e-6
    cells = [tuple(int(rng.integers(s)) for s in P.shape) for _ in range(12)]
    for idx in cells:
        e = np.zeros_like(P)
        e[idx] = h
        fd = (S(torch.tensor(P + e))[3].sum() - S(torch.tensor(P - e))[3].sum()).item() / (2 * h)
        assert abs(fd - grad[idx]) < 1e-5 + 1e-3 * abs(fd), (idx, fd, grad[idx])


def test_gradients_are_scale_invariant():
    """Atoms depend on P only through P / sum(P): grads are orthogonal to P
    (the additive gauge of the duals cancels) and scale like 1/c."""
    rng = np.random.default_rng(13)
    P = torch.tensor(rng.random((3, 3, 3, 2)) + 0.1, requires_grad=True)
    r = fastpid.pid(P)
    for k in KEYS:
        (g,) = torch.autograd.grad(getattr(r, k).sum(), P, retain_graph=True)
        assert torch.allclose((g * P).sum(dim=(1, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    P2 = (5.0 * P.detach()).requires_grad_(True)
    fastpid.pid(P2).S.sum().backward()
    (g1,) = torch.autograd.grad(r.S.sum(), P)
    assert torch.allclose(P2.grad * 5.0, g1, atol=1e-10)


def test_gradients_finite_with_zero_cells():
    """Zero cells and zero marginals: gradients stay finite (documented
    boundary convention) and the atoms match NumPy."""
    rng = np.random.default_rng(14)
    P = _random_batch(rng, 6, (3, 3, 3), zero_frac=0.35)
    Pt = torch.tensor(P, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = fastpid.pid(Pt, tol=GAP_TOL)
        ref = fastpid.pid(P, tol=GAP_TOL)
    sum(getattr(r, k).sum() for k in KEYS).backward()
    assert torch.isfinite(Pt.grad).all()
    _assert_exact_agree(r, ref, AGREE_F64)


def test_float32_gradients():
    rng = np.random.default_rng(15)
    P64 = torch.tensor(_interior(rng, (3, 2, 2), 2), requires_grad=True)
    P32 = P64.detach().float().requires_grad_(True)
    fastpid.pid(P64).S.sum().backward()
    fastpid.pid(P32).S.sum().backward()
    assert P32.grad.dtype == torch.float32
    assert torch.allclose(P32.grad.double(), P64.grad, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_exact_on_device(dtype):
    rng = np.random.default_rng(20)
    P = _random_batch(rng, 8, (3, 4, 2))
    Pc = torch.tensor(P, dtype=dtype, device="cuda", requires_grad=True)
    r = fastpid.pid(Pc, tol=GAP_TOL)
    for k in KEYS:
        assert getattr(r, k).device.type == "cuda" and getattr(r, k).dtype == dtype
    assert r.q.device.type == "cuda"
    r.S.sum().backward()
    assert Pc.grad.device.type == "cuda" and torch.isfinite(Pc.grad).all()
    _assert_exact_agree(r, fastpid.pid(P, tol=GAP_TOL), AGREE_F64 if dtype == torch.float64 else AGREE_F32)


@pytest.mark.cuda
@needs_cuda
def test_cuda_fastpid_matches_cpu():
    rng = np.random.default_rng(21)
    P = torch.tensor(rng.random((4, 3, 3, 2)) + 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rc = fastpid.pid(P.cuda(), method="fastpid", max_iter=200)
        r = fastpid.pid(P, method="fastpid", max_iter=200)
    assert rc.S.device.type == "cuda"
    assert _max_atom_diff(rc, r) < 1e-6
