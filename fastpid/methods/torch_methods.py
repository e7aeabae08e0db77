"""Torch backend of every method: tensors in, tensors out, on the input's device.

Registered for ``backend="torch"`` (chosen automatically for a ``torch.Tensor``
input).  Each solver takes the validated, normalized batch ``p`` (B, n1, n2, ny)
-- still attached to the autograd graph of the user's ``P`` -- and returns a
:class:`~fastpid.methods.Solution` whose arrays are tensors on ``p.device``.

``"exact"``
    Option ``engine``: ``"numba"`` solves with the certified NumPy/Numba
    interior-point kernel on the CPU in float64 (a detach / copy round trip;
    results are moved back to the input's device and dtype); ``"torch"`` with
    a batched torch port of the same dual interior point
    (:mod:`fastpid.kernels.broja_ipm_torch`) on the input's device, in float64,
    re-solving with Numba whatever it does not certify; ``"auto"`` (default)
    picks torch for CUDA tensors and Numba for CPU tensors (faster there).
    Gradients of every atom with respect
    to ``P`` come from the envelope theorem in :class:`_ExactAtoms`: with
    V(p) = min_q sum q log(q/s) = -H_q*(Y|X1,X2), dV/dp(x1,x2,y) = f(x1,y) +
    g(x2,y), the multipliers of the two marginal constraints.  Nothing is
    differentiated through solver iterations; ``q`` is returned detached.
``"fastpid"``
    The paper's Algorithm 2 written in torch, using autograd through the
    Sinkhorn sweeps for the Adam gradient; the returned atoms are
    differentiable through the final Sinkhorn projection onto p's marginals
    (the optimized logits are treated as constants).
``"analytic"``
    The closed form q = p(x1,y) p(x2,y) / p(y), in torch, differentiable.
``"cvx"``
    CVXPY on the CPU; results are detached and a backward pass through them
    raises a clear ``RuntimeError``.

See ``docs/torch.md`` for gradient semantics on the boundary (zero cells) and
the float32 tolerances.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch

from .._validation import check_positive_float, check_positive_int
from ..backend import get_backend
from ..information import LOG2, atoms_from_q, marginal_violation
from . import Solution, register
from . import cvx as _np_cvx
from . import exact as _np_exact

__all__ = ["ATOM_KEYS", "exact_atoms"]

_NX = get_backend(torch.zeros(1))
ATOM_KEYS = ("R", "U1", "U2", "S", "I", "I1", "I2")


# --------------------------------------------------------------------------- helpers
def _host64(t: torch.Tensor) -> np.ndarray:
    """Detached float64 C-contiguous NumPy copy of a tensor."""
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float64).numpy())


def _tensor(a, ref: torch.Tensor, dtype=None) -> torch.Tensor:
    """NumPy array -> tensor on ref's device (dtype: ref's unless given)."""
    return torch.as_tensor(np.asarray(a), dtype=dtype or ref.dtype, device=ref.device)


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """log x where x > 0, and 0 where x == 0 (the slope convention of 0 log 0)."""
    pos = x > 0
    return torch.where(pos, torch.log(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def _xlogx(x: torch.Tensor) -> torch.Tensor:
    """x log x with 0 log 0 = 0 and a finite (zero) gradient at 0."""
    return x * _safe_log(x)


def _with_signature(func, template, extra: dict | None = None, drop=()):
    """Give ``func(p, **options)`` the keyword-only signature of the NumPy
    solver ``template`` (plus ``extra``), so ``pid`` validates options the same
    way on both backends and new NumPy options show up here automatically."""
    params = [inspect.Parameter("p", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name, prm in inspect.signature(template).parameters.items():
        if prm.kind == prm.KEYWORD_ONLY and name not in drop:
            params.append(prm)
    for name, default in (extra or {}).items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    func.__signature__ = inspect.Signature(params)
    return func


def _diagnostics_to_tensors(sol: Solution, ref: torch.Tensor) -> dict:
    return dict(
        converged=_tensor(np.asarray(sol.converged, dtype=bool), ref, torch.bool),
        violation=_tensor(sol.violation, ref),
        iterations=_tensor(np.asarray(sol.iterations, dtype=np.int64), ref, torch.int64),
        gap=_tensor(sol.gap, ref),
    )


# --------------------------------------------------------------------------- envelope gradients
def _slopes(pn: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> dict:
    """Gradients (nats, up to an additive constant per distribution) of the
    closed-form information terms and of I_q* with respect to p, at p = pn.

    Entropy terms: dH(m)/dp = -log m - 1, with log 0 := 0 (zero-mass terms have
    slope 0, torch.special.xlogy's convention).  V = min_q sum q log(q/s):
    dV/dp = f(x1,y) + g(x2,y) on the BROJA support {p(x1,y) > 0, p(x2,y) > 0},
    0 outside it.  The additive constants (the -1's, and any uniform shift of
    the duals) cancel in the chain through the normalization p = P / sum(P).
    """
    a = pn.sum(2)                      # (B, n1, ny)
    b = pn.sum(1)                      # (B, n2, ny)
    py = a.sum(1)                      # (B, ny)
    p1 = a.sum(2)                      # (B, n1)
    p2 = b.sum(2)                      # (B, n2)
    p12 = pn.sum(3)                    # (B, n1, n2)
    ly = _safe_log(py)[:, None, None, :]
    s_i1 = _safe_log(a)[:, :, None, :] - _safe_log(p1)[:, :, None, None] - ly
    s_i2 = _safe_log(b)[:, None, :, :] - _safe_log(p2)[:, None, :, None] - ly
    s_i = _safe_log(pn) - _safe_log(p12)[..., None] - ly
    supp = (a[:, :, None, :] > 0) & (b[:, None, :, :] > 0)
    s_v = torch.where(supp, f[:, :, None, :] + g[:, None, :, :], torch.zeros_like(pn))
    s_iq = s_v - ly                     # I_q* = H(Y) + V
    return dict(I=s_i, I1=s_i1, I2=s_i2, Iq=s_iq)


class _ExactAtoms(torch.autograd.Function):
    """Atoms (R, U1, U2, S, I, I1, I2) in bits of the optimizer ``q`` as a
    differentiable function of the (possibly unnormalized) histogram ``p``.

    Forward: the atoms of the solved ``q`` (float64, no solver in the graph).
    Backward: envelope theorem, U1 = Iq - I2, U2 = Iq - I1, R = I1 + I2 - Iq,
    S = I - Iq with Iq = H(Y) + V and dV/dp = f + g, chained through p / sum(p).
    """

    @staticmethod
    def forward(ctx, p, q, f, g):
        P = p.detach().to(torch.float64)
        T = P.sum(dim=(1, 2, 3), keepdim=True)
        pn = P / T
        atoms = atoms_from_q(_NX, pn, q.to(torch.float64))
        ctx.save_for_backward(pn, T, f.to(torch.float64), g.to(torch.float64))
        ctx.out_dtype = p.dtype
        return tuple(atoms[k].to(p.dtype) for k in ATOM_KEYS)

    @staticmethod
    def backward(ctx, *grads):
        pn, T, f, g = ctx.saved_tensors
        s = _slopes(pn, f, g)
        w = {}
        for k, gr in zip(ATOM_KEYS, grads):
            w[k] = None if gr is None else gr.to(torch.float64)[:, None, None, None]
        G = torch.zeros_like(pn)

        def add(key, term):
            nonlocal G
            if w[key] is not None:
                G = G + w[key] * term

        add("U1", s["Iq"] - s["I2"])
        add("U2", s["Iq"] - s["I1"])
        add("R", s["I1"] + s["I2"] - s["Iq"])
        add("S", s["I"] - s["Iq"])
        add("I", s["I"])
        add("I1", s["I1"])
        add("I2", s["I2"])
        G = G / LOG2
        # chain through the normalization pn = P / T: dF/dP = (G - <G, pn>) / T
        G = (G - (G * pn).sum(dim=(1, 2, 3), keepdim=True)) / T
        return G.to(ctx.out_dtype), None, None, None


def exact_atoms(p: torch.Tensor, q: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> dict:
    """Differentiable atoms (bits) from a solved BROJA optimum.

    ``p`` (B, n1, n2, ny) nonnegative (normalized internally); ``q`` the optimizer
    and ``f`` (B, n1, ny), ``g`` (B, n2, ny) the multipliers of the (x1,y) and
    (x2,y) marginal constraints, with f + g = log q(y|x1,x2) on the support.
    """
    out = _ExactAtoms.apply(p, q.detach(), f.detach(), g.detach())
    return dict(zip(ATOM_KEYS, out))


# --------------------------------------------------------------------------- exact
EXACT_ENGINES = ("auto", "torch", "numba")


def _resolve_engine(engine, p: torch.Tensor) -> str:
    """"auto": the native torch solver on CUDA tensors, the Numba kernel on CPU
    tensors (faster there: see docs/torch.md for the measurements)."""
    if not isinstance(engine, str) or engine not in EXACT_ENGINES:
        raise ValueError(f"engine must be one of {EXACT_ENGINES}, got {engine!r}")
    if engine == "auto":
        return "torch" if p.device.type == "cuda" else "numba"
    return engine


def _numpy_exact_defaults() -> dict:
    return {
        name: prm.default
        for name, prm in inspect.signature(_np_exact.solve).parameters.items()
        if prm.kind == prm.KEYWORD_ONLY
    }


def solve_exact(p, engine="auto", **options) -> Solution:
    """``method="exact"`` on tensors: atoms with envelope-theorem gradients.

    ``engine="numba"``: the certified NumPy/Numba solver on a float64 CPU copy
    of ``p``, results moved back to ``p``'s device and dtype.
    ``engine="torch"``: the batched torch port of the dual interior point
    (:mod:`fastpid.kernels.broja_ipm_torch`) on ``p``'s device, in float64;
    the distributions it does not certify within ``max_iter`` are re-solved
    by the Numba kernel on the CPU (``info["numba_fallback"]``).
    ``engine="auto"`` (default): torch on CUDA tensors, Numba on CPU tensors.
    Other options: those of the NumPy ``method="exact"``.
    """
    if _resolve_engine(engine, p) == "torch":
        return _solve_exact_torch(p, **options)
    sol = _np_exact.solve(_host64(p), **options)
    q64 = torch.as_tensor(sol.q, dtype=torch.float64, device=p.device)
    f64 = torch.as_tensor(sol.info["dual_f"], dtype=torch.float64, device=p.device)
    g64 = torch.as_tensor(sol.info["dual_g"], dtype=torch.float64, device=p.device)
    info = dict(sol.info)
    info["dual_f"], info["dual_g"] = f64, g64
    info["engine"] = "numba"
    info["compute"] = "Numba kernel on the CPU in float64 (tensor round trip)"
    atoms = exact_atoms(p, q64, f64, g64)
    return Solution(q=q64.to(p.dtype), atoms=atoms, info=info, **_diagnostics_to_tensors(sol, p))


def _solve_exact_torch(p, **options) -> Solution:
    """Native batched torch interior point on ``p.device`` (float64 inside),
    with a Numba re-solve of every distribution it leaves uncertified."""
    from ..kernels.broja_ipm import STATUS
    from ..kernels.broja_ipm_torch import solve_batch

    opts = {**_numpy_exact_defaults(), **options}
    tol = check_positive_float(opts["tol"], "tol")
    feas_tol = check_positive_float(opts["feas_tol"], "feas_tol")
    max_iter = check_positive_int(opts["max_iter"], "max_iter")
    pd = p.detach()
    q64, f64, g64, iters, gap, viol, st = solve_batch(pd, tol * LOG2, feas_tol, max_iter)
    gap = gap / LOG2
    status = [STATUS[int(s)] for s in st.cpu()]
    converged = st == 0
    idx = (~converged).nonzero().squeeze(1)
    n_fb = int(idx.numel())
    if n_fb:
        # never hand back an uncertified torch answer: the Numba kernel
        # re-solves those distributions on the CPU
        sol = _np_exact.solve(_host64(pd[idx]), **options)
        dev = p.device
        as64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=dev)  # noqa: E731
        q64[idx] = as64(sol.q)
        f64[idx] = as64(sol.info["dual_f"])
        g64[idx] = as64(sol.info["dual_g"])
        iters[idx] = iters[idx] + torch.as_tensor(np.asarray(sol.iterations, dtype=np.int64), device=dev)
        gap[idx] = as64(sol.gap)
        viol[idx] = as64(sol.violation)
        converged[idx] = torch.as_tensor(np.asarray(sol.converged, dtype=bool), device=dev)
        fb_status = sol.info["status"]
        fb_status = [fb_status] if isinstance(fb_status, str) else list(fb_status)
        for t, s in zip(idx.tolist(), fb_status):
            status[t] = s
    info = {
        "status": status[0] if len(status) == 1 else status,
        "tol": tol, "feas_tol": feas_tol,
        "dual_f": f64, "dual_g": g64,
        "engine": "torch",
        "compute": f"batched torch interior point on {p.device} in float64",
        "numba_fallback": n_fb,
        "numba_fallback_index": idx.tolist(),
        "hint": "increase max_iter or loosen tol / feas_tol",
    }
    atoms = exact_atoms(p, q64, f64, g64)
    return Solution(
        q=q64.to(p.dtype),
        atoms=atoms,
        info=info,
        converged=converged,
        violation=viol.to(p.dtype),
        iterations=iters,
        gap=gap.to(p.dtype),
    )


# --------------------------------------------------------------------------- analytic
@register("analytic", backend="torch")
def solve_analytic(p, *, feas_tol: float | None = None) -> Solution:
    """Closed form q = p(x1,y) p(x2,y) / p(y) in torch (differentiable; not optimal).

    ``feas_tol``: 1e-9 for float64 input (as NumPy), 1e-6 for float32 unless given.
    """
    if feas_tol is None:
        feas_tol = 1e-9 if p.dtype == torch.float64 else 1e-6
    feas_tol = check_positive_float(feas_tol, "feas_tol")
    q = _analytic_q(p)
    viol = marginal_violation(_NX, p.detach(), q.detach())
    B = p.shape[0]
    return Solution(
        q=q,
        converged=viol <= feas_tol,
        violation=viol,
        iterations=torch.zeros(B, dtype=torch.int64, device=p.device),
        gap=torch.full((B,), math.nan, dtype=p.dtype, device=p.device),
        info={"status": "closed form (not optimal)"},
        atoms=_atoms_autograd(p, q),
    )


def _analytic_q(p):
    a = p.sum(2)
    b = p.sum(1)
    py = a.sum(1)
    inv = torch.where(py > 0, 1.0 / torch.where(py > 0, py, torch.ones_like(py)), torch.zeros_like(py))
    return a[:, :, None, :] * b[:, None, :, :] * inv[:, None, None, :]


class _ZeroSlopeTorch(type(_NX)):
    """The torch backend with an x log x whose slope at 0 is 0 (instead of
    xlogy's NaN), so autograd through the atoms stays finite at empty cells."""

    def xlogx(self, a):
        return _xlogx(a)


_NX_SAFE = _ZeroSlopeTorch()


def _atoms_autograd(p, q):
    """atoms_from_q, differentiable with finite gradients when cells or
    marginals of p or q are empty (zero-mass terms have slope 0)."""
    return atoms_from_q(_NX_SAFE, p, q)


# --------------------------------------------------------------------------- cvx
class _NoGradient(torch.autograd.Function):
    """Identity forward; backward raises: the conic solver has no gradient."""

    @staticmethod
    def forward(ctx, x, anchor):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(
            "method='cvx' is not differentiable: its atoms come from a CVXPY solve on the CPU "
            "and are detached from P. Use method='exact' (envelope-theorem gradients) or "
            "method='fastpid' for gradients, or detach the result."
        )


def solve_cvx(p, **options) -> Solution:
    sol = _np_cvx.solve(_host64(p), **options)
    q = torch.as_tensor(sol.q, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        atoms = atoms_from_q(_NX, p.detach(), q)
    if p.requires_grad:
        anchor = p.sum()  # connects each atom to P so that backward reaches _NoGradient
        atoms = {k: _NoGradient.apply(v, anchor) for k, v in atoms.items()}
    return Solution(q=q, atoms=atoms, info=dict(sol.info), **_diagnostics_to_tensors(sol, p))


register("cvx", backend="torch")(_with_signature(solve_cvx, _np_cvx.solve))
register("exact", backend="torch")(
    _with_signature(solve_exact, _np_exact.solve, extra={"engine": "auto"})
)


# --------------------------------------------------------------------------- fastpid (Algorithm 2)
FASTPID_INITS = ("analytic", "uniform", "gaussian")


def _safe_div(num, den):
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(den))


def _sinkhorn(Q, a, b, sweeps):
    """``sweeps`` alternating scalings of batch Q to the (x1,y) then (x2,y) marginals."""
    for _ in range(sweeps):
        Q = Q * _safe_div(a, Q.sum(2))[:, :, None, :]
        Q = Q * _safe_div(b, Q.sum(1))[:, None, :, :]
    return Q


def _neg_cond_entropy(Q):
    """sum over the batch of sum Q log Q - sum s log s (s = Q summed over y)."""
    return _xlogx(Q).sum() - _xlogx(Q.sum(3)).sum()


@register("fastpid", backend="torch")
def solve_fastpid(
    p,
    *,
    max_iter: int = 2000,
    lr: float = 0.1,
    tol: float = 1e-5,
    sinkhorn_iters: int = 10,
    init: str = "analytic",
    seed: int = 0,
    feas_tol: float = 1e-6,
) -> Solution:
    """The paper's FastPID (Algorithm 2) in torch, batched; options and
    diagnostics as the NumPy ``method="fastpid"``.

    Each distribution runs its own Adam state and stops on its own test
    (max|Q_proj - Q_old| < tol); the batch runs until all have stopped or
    ``max_iter``.  The Adam gradient is obtained by autograd through the
    ``sinkhorn_iters`` sweeps.  The returned atoms are differentiable with
    respect to P through the final projection (logits held fixed) and the
    information terms.
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    sinkhorn_iters = check_positive_int(sinkhorn_iters, "sinkhorn_iters")
    lr = check_positive_float(lr, "lr")
    tol = check_positive_float(tol, "tol")
    feas_tol = check_positive_float(feas_tol, "feas_tol")
    if init not in FASTPID_INITS:
        raise ValueError(f"init must be one of {FASTPID_INITS}, got {init!r}")
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    B = p.shape[0]
    shape = p.shape
    dev, dt = p.device, p.dtype
    pd = p.detach()
    a, b = pd.sum(2), pd.sum(1)
    if init == "analytic":
        q_old = _analytic_q(pd)
        theta = torch.log(q_old)
    elif init == "uniform":
        theta = torch.zeros_like(pd)
        q_old = torch.softmax(theta.reshape(B, -1), dim=1).reshape(shape)
    else:
        rng = np.random.default_rng(seed)
        theta = torch.as_tensor(rng.standard_normal(tuple(shape)), dtype=dt, device=dev)
        q_old = torch.softmax(theta.reshape(B, -1), dim=1).reshape(shape)
    finite = torch.isfinite(theta)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    active = torch.ones(B, dtype=torch.bool, device=dev)
    stopped = torch.zeros(B, dtype=torch.bool, device=dev)
    iters = torch.zeros(B, dtype=torch.int64, device=dev)
    for it in range(1, max_iter + 1):
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            Q = torch.softmax(th.reshape(B, -1), dim=1).reshape(shape)
            Qp = _sinkhorn(Q, a, b, sinkhorn_iters)
            (grad,) = torch.autograd.grad(_neg_cond_entropy(Qp), th)
        with torch.no_grad():
            Qp = Qp.detach()
            act = active[:, None, None, None]
            m_new = beta1 * m + (1 - beta1) * grad
            v_new = beta2 * v + (1 - beta2) * grad * grad
            mhat = m_new / (1 - beta1 ** it)
            vhat = v_new / (1 - beta2 ** it)
            th_new = torch.where(finite, theta - lr * mhat / (torch.sqrt(vhat) + eps), theta)
            m = torch.where(act, m_new, m)
            v = torch.where(act, v_new, v)
            theta = torch.where(act, th_new, theta)
            iters = torch.where(active, torch.full_like(iters, it), iters)
            # as the NumPy solver: consecutive projected iterates, tested from k = 1 on
            # (a literal Q_old = Q_init comparison would stop after one step)
            stop_now = active & ((Qp - q_old).abs().amax(dim=(1, 2, 3)) < tol) & (it > 1)
            q_old = torch.where(act, Qp, q_old)
            stopped |= stop_now
            active &= ~stop_now
        if not bool(active.any()):
            break
    # final projection, differentiable w.r.t. P through the marginals (logits fixed)
    Q = torch.softmax(theta.detach().reshape(B, -1), dim=1).reshape(shape)
    q = _sinkhorn(Q, p.sum(2), p.sum(1), sinkhorn_iters)
    viol = marginal_violation(_NX, pd, q.detach())
    return Solution(
        q=q,
        converged=stopped & (viol <= feas_tol),
        violation=viol,
        iterations=iters,
        gap=torch.full((B,), math.nan, dtype=dt, device=dev),
        info={
            "status": "paper Algorithm 2",
            "max_iter": max_iter, "lr": lr, "tol": tol,
            "sinkhorn_iters": sinkhorn_iters, "init": init, "feas_tol": feas_tol,
            "hint": "FastPID's Sinkhorn projection is inexact: raise sinkhorn_iters, "
                    "or use method='exact' for a certified answer",
        },
        atoms=_atoms_autograd(p, q),
    )

