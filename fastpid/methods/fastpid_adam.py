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

The torch implementation runs the same algorithm batched on the input's device
(each distribution with its own Adam state and stopping test), with the Adam
gradient from autograd through the Sinkhorn sweeps; its atoms are
differentiable with respect to P through the final projection onto p's
marginals (the optimized logits are treated as constants).
"""
from __future__ import annotations

import math

import numpy as np

from .._validation import check_positive_float, check_positive_int
from . import Solution, register
from ._common import NP, TORCH, analytic_q, marginals, torch, violation

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
        q0 = analytic_q(NP, p1[None])[0]
        with np.errstate(divide="ignore"):
            return np.log(q0)
    if init == "uniform":
        return np.zeros_like(p1)
    return rng.standard_normal(p1.shape)


def solve_one(p1, *, max_iter, lr, tol, sinkhorn_iters, init, rng, betas=(0.9, 0.999), eps=1e-8):
    """Algorithm 2 on one normalized distribution; returns (q, iterations, stopped_by_tol)."""
    a, b = marginals(NP, p1[None])
    a, b = a[0], b[0]
    theta = _initial_logits(p1, init, rng)
    q_old = analytic_q(NP, p1[None])[0] if init == "analytic" else _softmax(theta)
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


def options(
    *,
    max_iter: int = 2000,
    lr: float = 0.1,
    tol: float = 1e-5,
    sinkhorn_iters: int = 10,
    init: str = "analytic",
    seed: int = 0,
    feas_tol: float = 1e-6,
) -> dict:
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
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return dict(
        max_iter=check_positive_int(max_iter, "max_iter"),
        lr=check_positive_float(lr, "lr"),
        tol=check_positive_float(tol, "tol"),
        sinkhorn_iters=check_positive_int(sinkhorn_iters, "sinkhorn_iters"),
        init=init,
        seed=check_positive_int(seed, "seed", minimum=0),
        feas_tol=check_positive_float(feas_tol, "feas_tol"),
    )


def _solution(nx, p, q, stopped, iters, opts) -> Solution:
    """Diagnostics of a finished run (either backend)."""
    viol = violation(nx, p, q)
    return Solution(
        q=q,
        converged=stopped & (viol <= opts["feas_tol"]),
        violation=viol,
        iterations=iters,
        gap=nx.vector(p.shape[0], math.nan, p),
        info={
            "status": "paper Algorithm 2",
            **{k: opts[k] for k in ("max_iter", "lr", "tol", "sinkhorn_iters", "init", "feas_tol")},
            "hint": "FastPID's Sinkhorn projection is inexact: raise sinkhorn_iters, "
                    "or use method='exact' for a certified answer",
        },
    )


@register("fastpid", backend="numpy", options=options)
def solve(p, **opts) -> Solution:
    """Algorithm 2 on each distribution of the batch in turn (validated options)."""
    rng = np.random.default_rng(opts["seed"])
    B = p.shape[0]
    q = np.empty_like(p)
    iters = np.zeros(B, dtype=np.int64)
    stopped = np.zeros(B, dtype=bool)
    for i in range(B):
        q[i], iters[i], stopped[i] = solve_one(
            p[i], max_iter=opts["max_iter"], lr=opts["lr"], tol=opts["tol"],
            sinkhorn_iters=opts["sinkhorn_iters"], init=opts["init"], rng=rng,
        )
    return _solution(NP, p, q, stopped, iters, opts)


if torch is not None:

    def _safe_div(num, den):
        pos = den > 0
        return torch.where(pos, num / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(den))

    def _sinkhorn_torch(Q, a, b, sweeps):
        """``sweeps`` alternating scalings of batch Q to the (x1,y) then (x2,y) marginals."""
        for _ in range(sweeps):
            Q = Q * _safe_div(a, Q.sum(2))[:, :, None, :]
            Q = Q * _safe_div(b, Q.sum(1))[:, None, :, :]
        return Q

    def _neg_cond_entropy_torch(Q):
        """sum over the batch of sum Q log Q - sum s log s (s = Q summed over y)."""
        return TORCH.xlogx(Q).sum() - TORCH.xlogx(Q.sum(3)).sum()

    @register("fastpid", backend="torch", options=options)
    def solve_torch(p, **opts) -> Solution:
        """Algorithm 2 batched in torch (validated options).

        Each distribution runs its own Adam state and stops on its own test
        (max|Q_proj - Q_old| < tol); the batch runs until all have stopped or
        ``max_iter``.
        """
        max_iter, lr, tol, sweeps = opts["max_iter"], opts["lr"], opts["tol"], opts["sinkhorn_iters"]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        B = p.shape[0]
        shape = p.shape
        dev, dt = p.device, p.dtype
        pd = p.detach()
        a, b = marginals(TORCH, pd)
        if opts["init"] == "analytic":
            q_old = analytic_q(TORCH, pd)
            theta = torch.log(q_old)
        elif opts["init"] == "uniform":
            theta = torch.zeros_like(pd)
            q_old = torch.softmax(theta.reshape(B, -1), dim=1).reshape(shape)
        else:
            rng = np.random.default_rng(opts["seed"])
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
                Qp = _sinkhorn_torch(Q, a, b, sweeps)
                (grad,) = torch.autograd.grad(_neg_cond_entropy_torch(Qp), th)
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
        q = _sinkhorn_torch(Q, *marginals(TORCH, p), sweeps)
        return _solution(TORCH, p, q, stopped, iters, opts)
