"""``method="fastpid"``: the paper's Algorithm 2, faithfully, in NumPy.

Analytic start Q_init = p(x1,y)p(x2,y)/p(y), logits theta = log Q_init, and
``max_iter`` Adam steps on -H(Y|X1,X2) of the Sinkhorn projection of
softmax(theta), back-propagated (by hand, exactly) through ``sinkhorn_iters``
alternating scaling sweeps.  Stops when max|Q_proj - Q_old| < ``tol``.

Honest diagnostics: ``violation`` is measured on the returned q, and
``converged`` is True only if the tolerance test fired *and* the violation is
at most ``feas_tol``.  With the paper's default of 10 sweeps the projection is
inexact, Adam exploits the infeasibility, and long runs can drift away from the
optimum (even above the true synergy); see the README's measurements.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_float, check_positive_int
from . import Solution, register
from ._common import analytic_q, marginals, violation

INITS = ("analytic", "uniform", "gaussian")


def _sinkhorn_forward(Q, a, b, sweeps):
    """Alternating scaling to the (x1,y) then (x2,y) marginals.
    Returns the projected Q and the tape needed for the backward pass."""
    tape = []
    for _ in range(sweeps):
        S1 = Q.sum(axis=1)
        r1 = np.divide(a, S1, out=np.zeros_like(S1), where=S1 > 0)
        tape.append((1, Q, S1, r1))
        Q = Q * r1[:, None, :]
        S2 = Q.sum(axis=0)
        r2 = np.divide(b, S2, out=np.zeros_like(S2), where=S2 > 0)
        tape.append((0, Q, S2, r2))
        Q = Q * r2[None, :, :]
    return Q, tape


def _sinkhorn_backward(G, tape):
    """Gradient w.r.t. the Sinkhorn input, given dL/d(output) = G."""
    for axis, Q, S, r in reversed(tape):
        expand = (slice(None), None, slice(None)) if axis == 1 else (None, slice(None), slice(None))
        c = np.divide((G * Q).sum(axis=axis), S, out=np.zeros_like(S), where=S > 0)
        G = r[expand] * (G - c[expand])
    return G


def _neg_cond_entropy_grad(Q):
    """L = sum Q log Q - sum s log s (s = Q summed over y) and dL/dQ = log(Q/s)."""
    s = Q.sum(axis=2)
    pos = Q > 0
    logq = np.zeros_like(Q)
    logq[pos] = np.log(Q[pos])
    logs = np.log(np.where(s > 0, s, 1.0))
    loss = float((Q * logq).sum() - (s * logs).sum())
    grad = np.where(pos, logq - logs[:, :, None], 0.0)
    return loss, grad


def _softmax(theta):
    m = np.max(theta)
    e = np.exp(theta - m)
    return e / e.sum()


def _initial_logits(p1, init, rng):
    if init == "analytic":
        q0 = analytic_q(p1[None])[0]
        with np.errstate(divide="ignore"):
            return np.log(q0)
    if init == "uniform":
        return np.zeros_like(p1)
    return rng.standard_normal(p1.shape)


def solve_one(p1, *, max_iter, lr, tol, sinkhorn_iters, init, rng, betas=(0.9, 0.999), eps=1e-8):
    """Algorithm 2 on one normalized distribution; returns (q, iterations, stopped_by_tol)."""
    a, b = marginals(p1[None])
    a, b = a[0], b[0]
    theta = _initial_logits(p1, init, rng)
    q_old = analytic_q(p1[None])[0] if init == "analytic" else _softmax(theta)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    finite = np.isfinite(theta)
    stopped = False
    it = 0
    for it in range(1, max_iter + 1):
        Q = _softmax(theta)
        Qp, tape = _sinkhorn_forward(Q, a, b, sinkhorn_iters)
        _, gQp = _neg_cond_entropy_grad(Qp)
        gQ = _sinkhorn_backward(gQp, tape)
        g = Q * (gQ - (Q * gQ).sum())
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mhat = m / (1 - betas[0] ** it)
        vhat = v / (1 - betas[1] ** it)
        theta = np.where(finite, theta - lr * mhat / (np.sqrt(vhat) + eps), theta)
        # Algorithm 2 compares Q_k,proj with Q_old; read literally (Q_old = Q_init
        # and Q_0,proj = Q_init) it would always stop after one step, which
        # contradicts the paper's reported iteration counts (419, 959, ...).
        # We therefore compare consecutive projected iterates from k = 1 on.
        if it > 1 and np.max(np.abs(Qp - q_old)) < tol:
            stopped = True
            break
        q_old = Qp
    q, _ = _sinkhorn_forward(_softmax(theta), a, b, sinkhorn_iters)
    return q, it, stopped


@register("fastpid", backend="numpy")
def solve(
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
    """The paper's FastPID (Algorithm 2) with its defaults.

    Parameters
    ----------
    max_iter : Adam steps (paper: 2000).
    lr : Adam learning rate (paper: 0.1).
    tol : stop when max|Q_proj - Q_old| < tol (paper: 1e-5).
    sinkhorn_iters : alternating scaling sweeps per projection (paper: 10).
    init : "analytic" (paper), "uniform" or "gaussian" (Table IX ablation).
    seed : seed of the "gaussian" start.
    feas_tol : the returned q counts as converged only if its marginal
        violation is at most this.
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    sinkhorn_iters = check_positive_int(sinkhorn_iters, "sinkhorn_iters")
    lr = check_positive_float(lr, "lr")
    tol = check_positive_float(tol, "tol")
    feas_tol = check_positive_float(feas_tol, "feas_tol")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    rng = np.random.default_rng(seed)
    B = p.shape[0]
    q = np.empty_like(p)
    iters = np.zeros(B, dtype=np.int64)
    stopped = np.zeros(B, dtype=bool)
    for i in range(B):
        q[i], iters[i], stopped[i] = solve_one(
            p[i], max_iter=max_iter, lr=lr, tol=tol, sinkhorn_iters=sinkhorn_iters, init=init, rng=rng
        )
    viol = violation(p, q)
    return Solution(
        q=q,
        converged=stopped & (viol <= feas_tol),
        violation=viol,
        iterations=iters,
        gap=np.full(B, np.nan),
        info={
            "status": "paper Algorithm 2",
            "max_iter": max_iter, "lr": lr, "tol": tol,
            "sinkhorn_iters": sinkhorn_iters, "init": init, "feas_tol": feas_tol,
            "hint": "FastPID's Sinkhorn projection is inexact: raise sinkhorn_iters, "
                    "or use method='exact' for a certified answer",
        },
    )
