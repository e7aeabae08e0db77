"""Batched primal-dual barrier interior-point solver for BROJA, in torch.

A whole-batch tensor port of the primal-dual barrier method of the Numba
kernel :mod:`fastpid.kernels.broja_ipm` as of commit 1df9f55 (that kernel has
since been reformulated; the two are validated against each other on results
and certificates, not iterates).  Problem, for each distribution p of the batch
(B, n1, n2, ny):

    minimize    F0(q) = sum q log(q / s),   s(x1,x2) = sum_y q   (= -H_q(Y|X1,X2))
    subject to  sum_{x2} q = a := p(x1, y),  sum_{x1} q = b := p(x2, y),  q >= 0,

on the support {a(x1,y) > 0 and b(x2,y) > 0}, from the feasible, strictly
positive q0 = a b / p(y): primal q > 0, multipliers f(x1,y), g(x2,y) of the
marginal constraints, bound multipliers z > 0, barrier parameter mu with
IPOPT's monotone rule mu <- max(min(0.2 mu, mu^1.5), 1e-12/m) once the
barrier subproblem is solved to 10 mu, z kept in IPOPT's band
[mu/(ZBAND q), ZBAND mu/q], backtracking on the barrier merit
phi_mu = F0 - mu sum log q.  Certificate: q is made feasible by alternating
scaling and (f, g), shifted so that logsumexp_y(f + g) <= 0 on every block, is
dual feasible, so its value D is a rigorous lower bound on min F0 and
gap = F0(q) - D bounds the error of I_q(X1,X2;Y) and of every atom.  It runs on
the input tensor's device (CUDA included); only imported lazily from the torch
code paths.

Per iteration, for every unfinished distribution at once:

* per-block Newton terms: W^-1 = diag(dinv) + dinv dinv^T / den with
  dinv = q/(1+z), den = sum q z/(1+z) (Sherman-Morrison, no cancellation) and
  the barrier gradient gv = log(q/s) - mu/q;
* the Schur matrix M = A W^-1 A^T on all (n1 + n2) ny constraint rows, dense
  and batched; rows without supported cells and one redundant (x2, y) row per
  label are replaced by identity rows (zero right-hand side), so every item
  has the same matrix size;
* Jacobi scaling and ``torch.linalg.cholesky_ex``; items whose factorization
  fails get a diagonal regularization (1e-14, then x100 per retry, up to 7
  retries) and are refactored alone; the Newton step is
  iteratively refined on the primal residual (3 sweeps, 8 when some item of
  the batch was regularized);
* a vectorized backtracking line search on the barrier merit: trial steps
  alpha_max 0.5^k are evaluated in groups (k = 0, then 1..8, 9..24, 25..49,
  each only for the items that have not yet accepted) and each item takes its
  first Armijo-acceptable one;
* the dual step on z clipped to IPOPT's band, per-item monotone mu rule
  mu <- max(min(0.2 mu, mu^1.5), 1e-12/m), Sinkhorn restore and the shifted-
  dual certificate (rigorous duality gap), per-item stall / best-iterate
  bookkeeping (stop after 15 iterations without 1% progress of the gap; an
  uncertified item returns its best certified iterate);
* from mu < 1e-6/m on, at each new mu (at most 3 times per item), a crossover
  ("polish"): drop the (x1, x2) blocks guessed empty at the optimum, take up
  to 4 Newton steps on the reduced smooth problem, fit the dual to its exact
  stationarity and certify against all blocks (batched over the items that
  trigger it).

Items stop individually (certified, stalled, failed or out of iterations) and
are removed from the working set.  The caller (:func:`fastpid.methods.torch_methods.solve_exact`)
re-solves every item this solver does not certify with the Numba kernel on the
CPU.  All arithmetic is float64 whatever the input dtype.
"""
from __future__ import annotations

import math

import torch

ZBAND = 1e10  # IPOPT's band for z
# line-search trial groups: [k0, k1) exponents of 0.5, evaluated together
_LS_GROUPS = ((0, 1), (1, 9), (9, 25), (25, 50))
_LS_ELEMENTS = 1 << 25  # at most this many trial cells evaluated at once


# --------------------------------------------------------------------------- small helpers
def _violation(q, a, b):
    """Max marginal violation per item (B,)."""
    r1 = (a - q.sum(-2)).abs().flatten(-2).amax(-1)
    r2 = (b - q.sum(-3)).abs().flatten(-2).amax(-1)
    return torch.maximum(r1, r2)


def _restore(q, a, b, target, max_sweeps):
    """Alternating scaling sweeps, per item until its violation <= target
    (at most ``max_sweeps``), on the items that need them only.  Returns
    (q, violation); ``q`` is not modified in place."""
    viol = _violation(q, a, b)
    need = viol > target
    if not bool(need.any()):
        return q, viol
    q = q.clone()
    viol = viol.clone()
    idx = need.nonzero().squeeze(1)
    qi, ai, bi = q[idx], a[idx], b[idx]
    for _ in range(max_sweeps):
        s1 = qi.sum(2)
        qi = qi * torch.where(s1 > 0, ai / torch.where(s1 > 0, s1, 1.0), 1.0)[:, :, None, :]
        s2 = qi.sum(1)
        qi = qi * torch.where(s2 > 0, bi / torch.where(s2 > 0, s2, 1.0), 1.0)[:, None, :, :]
        vi = _violation(qi, ai, bi)
        done = vi <= target
        if bool(done.any()):
            q[idx[done]], viol[idx[done]] = qi[done], vi[done]
            keep = ~done
            if not bool(keep.any()):
                return q, viol
            idx, qi, ai, bi = idx[keep], qi[keep], ai[keep], bi[keep]
    # out of sweeps: keep the last iterate (as the per-item loop of the Numba kernel)
    q[idx], viol[idx] = qi, _violation(qi, ai, bi)
    return q, viol


def _certificate(q, mask, a, b, f, g):
    """(F0(q), dual lower bound D) in nats per item, for the dual guess (f, g)
    shifted per x1 row to dual feasibility (max_x2 logsumexp_y(f + g) = 0)."""
    s = q.sum(-1, keepdim=True)
    pos = mask & (q > 0) & (s > 0)
    ratio = torch.where(pos, q / torch.where(s > 0, s, 1.0), 1.0)
    F0 = torch.where(pos, q * torch.log(ratio), 0.0).sum((1, 2, 3))
    fg = torch.where(mask, f[:, :, None, :] + g[:, None, :, :], -math.inf)
    lse = torch.logsumexp(fg, dim=-1)                       # (B, n1, n2), -inf on empty blocks
    t = lse.amax(2)                                          # (B, n1)
    apos = a > 0
    ai = torch.where(apos, a, 0.0).sum(2)                    # (B, n1)
    D = (torch.where(apos, a * f, 0.0).sum((1, 2))
         + torch.where(b > 0, b * g, 0.0).sum((1, 2))
         - torch.where(ai > 0, ai * t, 0.0).sum(1))
    return F0, D


def _barrier(q, mask, mu):
    """phi_mu(q) = F0(q) - mu sum log q over the last three dims; ``mu``
    broadcasts against the leading dims.  Non-positive q on the support gives
    NaN/inf (never accepted by the line search)."""
    s = q.sum(-1, keepdim=True)
    ok = mask & (s > 0)
    qq = torch.where(ok, q, 1.0)
    ss = torch.where(s > 0, s, 1.0)
    val = qq * torch.log(qq / ss) - mu[..., None, None, None] * torch.log(qq)
    return torch.where(ok, val, 0.0).sum((-3, -2, -1))


def _A(v):
    """Constraint operator on (B, n1, n2, ny): stacked (x1,y) and (x2,y) sums, (B, nr)."""
    B = v.shape[0]
    return torch.cat((v.sum(2).reshape(B, -1), v.sum(1).reshape(B, -1)), dim=1)


def _AT(nu, n1, n2, ny):
    """Adjoint of :func:`_A`: nu (B, nr) -> (B, n1, n2, ny)."""
    B = nu.shape[0]
    nu1 = nu[:, : n1 * ny].reshape(B, n1, ny)
    nu2 = nu[:, n1 * ny:].reshape(B, n2, ny)
    return nu1[:, :, None, :] + nu2[:, None, :, :]


def _winv(dinv, dd, v):
    """W^-1 v blockwise, W^-1 = diag(dinv) + dinv dinv^T * dd (dd = 1/den, 0 on empty blocks)."""
    ut = (dinv * v).sum(-1, keepdim=True)
    return torch.where(dd[..., None] > 0, dinv * (v + ut * dd[..., None]), 0.0)


def _assemble(dinv, dd, actf, on=None):
    """Dense batched M = A W^-1 A^T, inactive rows/cols replaced by identity
    (W^-1 = diag(dinv) + dinv dinv^T dd on the blocks ``on``, default dd > 0).

    With H(x1,x2) the ny x ny blocks of W^-1: the (x1,y) x (x1,y') block of M
    is block diagonal with sum_x2 H, the (x2,y) x (x2,y') block with sum_x1 H,
    and the off-diagonal (x1,y) x (x2,y') block is H itself; each is written
    through a strided 5-d view of M."""
    W, n1, n2, ny = dinv.shape
    if on is None:
        on = dd > 0
    H = dinv[..., :, None] * dinv[..., None, :] * dd[..., None, None]
    H = H + torch.diag_embed(torch.where(on[..., None], dinv, 0.0))   # (W, n1, n2, ny, ny)
    nr = (n1 + n2) * ny
    o2 = n1 * ny
    M = torch.zeros(W, nr, nr, dtype=dinv.dtype, device=dinv.device)
    st = (nr * nr, ny * nr, nr, ny, 1)
    M11 = M.as_strided((W, n1, ny, n1, ny), st, 0)
    M22 = M.as_strided((W, n2, ny, n2, ny), st, o2 * nr + o2)
    M12 = M.as_strided((W, n1, ny, n2, ny), st, o2)
    M21 = M.as_strided((W, n2, ny, n1, ny), st, o2 * nr)
    M11.diagonal(dim1=1, dim2=3).copy_(H.sum(2).permute(0, 2, 3, 1))
    M22.diagonal(dim1=1, dim2=3).copy_(H.sum(1).permute(0, 2, 3, 1))
    M12.copy_(H.permute(0, 1, 3, 2, 4))
    M21.copy_(H.permute(0, 2, 4, 1, 3))
    M.mul_(actf[:, :, None] * actf[:, None, :])
    M.diagonal(dim1=1, dim2=2).add_(1.0 - actf)
    return M


def _factor(M):
    """Jacobi scaling + batched Cholesky with per-item regularized retries.

    Returns (L, dsc, regularized, hopeless): items that are still not positive
    definite after 7 retries are flagged ``hopeless``: their solves return
    zero (no multiplier update, as the Numba kernel's skip-all fallback)."""
    d = torch.diagonal(M, dim1=1, dim2=2)
    dsc = torch.where(d > 0, torch.rsqrt(torch.where(d > 0, d, 1.0)), 1.0)
    S = M * dsc[:, :, None] * dsc[:, None, :]
    L, info = torch.linalg.cholesky_ex(S)
    bad = info != 0
    regularized = bad.clone()
    if bool(bad.any()):
        n = S.shape[-1]
        eye = torch.eye(n, dtype=S.dtype, device=S.device)
        idx = bad.nonzero().squeeze(1)
        Sb = S[idx]
        delta = 0.0
        for _attempt in range(7):
            delta = 1e-14 if delta == 0.0 else delta * 100.0
            Sb = Sb + delta * eye
            Lb, infob = torch.linalg.cholesky_ex(Sb)
            L[idx] = Lb
            still = infob != 0
            bad[idx] = still
            if not bool(still.any()):
                break
            idx, Sb = idx[still], Sb[still]
        if bool(bad.any()):
            L[bad] = eye
    return L, dsc, regularized, bad


def _solve(L, dsc, hopeless, rhs):
    x = torch.cholesky_solve((rhs * dsc)[..., None], L)[..., 0] * dsc
    return torch.where(hopeless[:, None], 0.0, x)


def _newton_step(q, z, mask, mu, a, b, act, actf):
    """Newton step of the barrier problem for the batch: M nu = -r - A W^-1 gv,
    dq = -W^-1 (gv + A^T nu), iteratively refined on the primal residual.
    Returns (dq, df, dg, amax, gv, qs): new multipliers df = -nu1, dg = -nu2,
    the largest step keeping q > 0 (capped at 1), the barrier gradient and q
    with ones off the support."""
    W, n1, n2, ny = q.shape
    mu4 = mu[:, None, None, None]
    s = q.sum(-1)
    qs = torch.where(mask, q, 1.0)
    dinv = torch.where(mask, q / (1.0 + z), 0.0)
    den = torch.where(s > 0, torch.where(mask, q * z / (1.0 + z), 0.0).sum(-1), 0.0)
    dd = torch.where(den > 0, 1.0 / torch.where(den > 0, den, 1.0), 0.0)
    gv = torch.where(mask, torch.log(qs / torch.where(s > 0, s, 1.0)[..., None]) - mu4 / qs, 0.0)
    L, dsc, regd, hopeless = _factor(_assemble(dinv, dd, actf))
    r = torch.cat(((a - q.sum(2)).reshape(W, -1), (b - q.sum(1)).reshape(W, -1)), 1)
    rhs = torch.where(act, -r - _A(_winv(dinv, dd, gv)), 0.0)
    nu = _solve(L, dsc, hopeless, rhs)
    sweeps = 8 if bool(regd.any()) else 3
    for sweep in range(sweeps):
        dq = -_winv(dinv, dd, gv + _AT(nu, n1, n2, ny))
        if sweep == sweeps - 1:
            break
        rc = torch.where(act, _A(dq) - r, 0.0)
        nu = nu + _solve(L, dsc, hopeless, rc)
    df = -nu[:, : n1 * ny].reshape(W, n1, ny)
    dg = -nu[:, n1 * ny:].reshape(W, n2, ny)
    neg = mask & (dq < 0)
    lim = torch.where(neg, -q / torch.where(neg, dq, -1.0), math.inf)
    amax = lim.flatten(1).amin(1).clamp(max=1.0)
    return dq, df, dg, amax, gv, qs


def _dual_fit(q, mp, act, actf, f, g):
    """Least-change dual update: the smallest (df, dg) on the active rows with
    f + df + g + dg = log(q/s) on the cells ``mp`` (exact stationarity of the
    reduced problem), starting from the interior-point multipliers, which lie
    near the centre of the optimal dual face."""
    W, n1, n2, ny = q.shape
    s = torch.where(mp, q, 0.0).sum(-1, keepdim=True)
    cell = mp & (s > 0)
    res = torch.where(cell, torch.log(torch.where(cell, q, 1.0) / torch.where(s > 0, s, 1.0))
                      - f[:, :, None, :] - g[:, None, :, :], 0.0)
    one = cell.to(q.dtype)
    N = _assemble(one, torch.zeros_like(s[..., 0]), actf, on=cell.any(-1))
    N = N + 1e-12 * torch.diag_embed(actf)
    L, dsc, _, hopeless = _factor(N)
    d = _solve(L, dsc, hopeless, torch.where(act, _A(res), 0.0))
    return f + d[:, : n1 * ny].reshape(W, n1, ny), g + d[:, n1 * ny:].reshape(W, n2, ny)


def _polish(q, z, mask, a, b, act, actf, f, g, gap_tol, feas_tol, rule, budget):
    """Crossover, batched: drop the (x1, x2) blocks guessed empty at the
    optimum (``rule`` 0: keep a block if some cell has q >= z, strict
    complementarity; rule 1: keep it if its mass is at least 1e-3 of the
    largest block of its x1 row, for degenerate optima), take Newton steps on
    the reduced smooth problem (Hessian regularized by 1e-7 in place of z),
    fit the dual to its exact stationarity and certify against ALL blocks.  ``budget`` (per item)
    caps the steps.  Returns (q, f, g, iterations, gap, violation, success)."""
    W, n1, n2, ny = q.shape
    dt, dev = q.dtype, q.device
    blk = mask.any(-1)
    sij = torch.where(mask, q, 0.0).sum(-1)
    if rule == 0:
        keep = (mask & (q >= z)).any(-1)
    else:
        keep = sij >= 1e-3 * sij.amax(2, keepdim=True)
    mp = mask & (keep | ~blk)[..., None]
    qp = torch.where(mp, q, 0.0)
    actp = act & torch.cat((mp.any(2).reshape(W, -1), mp.any(1).reshape(W, -1)), 1)
    actpf = actp.to(dt)
    zreg = torch.full_like(q, 1e-7)
    zero = torch.zeros(W, dtype=dt, device=dev)
    running = budget > 0
    success = torch.zeros(W, dtype=torch.bool, device=dev)
    its = budget.clone()
    q_out, f_out, g_out = qp.clone(), f.clone(), g.clone()
    gap_out = torch.full((W,), math.inf, dtype=dt, device=dev)
    viol_out = torch.full((W,), math.inf, dtype=dt, device=dev)
    for it in range(1, int(budget.max()) + 1):
        running = running & (budget >= it)
        if not bool(running.any()):
            break
        dq, _, _, amax, _, _ = _newton_step(qp, zreg, mp, zero, a, b, actp, actpf)
        alpha = torch.clamp(0.995 * amax, max=1.0)
        qp = torch.where(running[:, None, None, None] & mp, qp + alpha[:, None, None, None] * dq, qp)
        qr, viol = _restore(qp, a, b, 0.1 * feas_tol, 50)
        fw, gw = _dual_fit(qr, mp, act, actf, f, g)
        F0, Dv = _certificate(qr, mask, a, b, fw, gw)
        gap = F0 - Dv
        tried = running & (viol <= feas_tol)
        upd = running
        q_out = torch.where(upd[:, None, None, None], torch.where(tried[:, None, None, None], qr, qp), q_out)
        f_out = torch.where(tried[:, None, None], fw, f_out)
        g_out = torch.where(tried[:, None, None], gw, g_out)
        gap_out = torch.where(tried, gap, gap_out)
        viol_out = torch.where(upd, viol, viol_out)
        win = tried & (gap <= gap_tol)
        its = torch.where(win, it, its)
        success |= win
        running = running & ~win & ~(tried & (alpha < 1e-3))
    return q_out, f_out, g_out, its, gap_out, viol_out, success


def _setup(p):
    """Marginals, support mask, starting point q0 = a b / p(y) and active rows."""
    B, n1, n2, ny = p.shape
    a = p.sum(2)
    b = p.sum(1)
    py = a.sum(1)
    inv = torch.where(py > 0, 1.0 / torch.where(py > 0, py, 1.0), 0.0)
    q0 = a[:, :, None, :] * b[:, None, :, :] * inv[:, None, None, :]
    mask = (a > 0)[:, :, None, :] & (b > 0)[:, None, :, :] & (q0 > 0)
    q = torch.where(mask, q0, 0.0)
    has1 = mask.any(2)                                      # (B, n1, ny)
    has2 = mask.any(1)                                      # (B, n2, ny)
    # drop one redundant (x2, y) row per label: the supported row of largest b
    jbest = torch.where(has2, b, -1.0).argmax(1)            # (B, ny), first maximum
    drop = torch.nn.functional.one_hot(jbest, n2).transpose(1, 2).bool() & has2.any(1)[:, None, :]
    has2 = has2 & ~drop
    act = torch.cat((has1.reshape(B, -1), has2.reshape(B, -1)), 1)
    return a, b, mask, q, act


# --------------------------------------------------------------------------- driver
def solve_batch(p, gap_tol, feas_tol, max_iter, *, chunk=None):
    """Solve a batch of normalized distributions ``p`` (B, n1, n2, ny), any
    floating dtype, on ``p.device``; computed in float64.

    ``gap_tol`` is in nats.  Returns float64 / int64 tensors on ``p.device``:
    (q, f, g, iterations, gap_nats, violation, status) with the Numba kernel's
    status codes (0 converged, 1 max_iter, 2 stalled, 3 numerical failure).
    ``chunk``: distributions solved together (default: on CUDA, what fits in
    a sixth of the free device memory at about 4 (n1+n2)^2 ny^2 + 2 n1 n2 ny^2
    + 40 n1 n2 ny float64 numbers per distribution; on the CPU 2**24 numbers,
    which keeps the working set cache-friendly).
    """
    p = p.detach().to(torch.float64)
    B, n1, n2, ny = p.shape
    nr = (n1 + n2) * ny
    if chunk is None:
        per_item = 4 * nr * nr + 2 * n1 * n2 * ny * ny + 40 * n1 * n2 * ny
        budget = 1 << 24
        if p.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(p.device)
            budget = max(budget, free // (8 * 6))
        chunk = max(1, budget // per_item)
    else:
        chunk = max(1, int(chunk))
    outs = [_solve_chunk(p[s:s + chunk], gap_tol, feas_tol, max_iter) for s in range(0, B, chunk)]
    if len(outs) == 1:
        return outs[0]
    return tuple(torch.cat([o[k] for o in outs]) for k in range(7))


def _solve_chunk(p, gap_tol, feas_tol, max_iter):
    B, n1, n2, ny = p.shape
    dev, dt = p.device, p.dtype
    a, b, mask, q, act = _setup(p)
    m = mask.sum((1, 2, 3)).to(dt)

    # outputs (filled as items finish)
    q_out = torch.zeros_like(p)
    f_out = torch.zeros(B, n1, ny, dtype=dt, device=dev)
    g_out = torch.zeros(B, n2, ny, dtype=dt, device=dev)
    it_out = torch.zeros(B, dtype=torch.int64, device=dev)
    gap_out = torch.full((B,), math.inf, dtype=dt, device=dev)
    viol_out = _violation(q, a, b)
    st_out = torch.full((B,), 3, dtype=torch.int64, device=dev)

    # working set: items with a nonempty support
    orig = (m > 0).nonzero().squeeze(1)
    if orig.numel() == 0:
        return q_out, f_out, g_out, it_out, gap_out, viol_out, st_out
    a, b, mask, q, act, m = a[orig], b[orig], mask[orig], q[orig], act[orig], m[orig]
    mu = 0.1 / m
    z = torch.where(mask, mu[:, None, None, None] / torch.where(mask, q, 1.0), 0.0)
    W = orig.numel()
    f = torch.zeros(W, n1, ny, dtype=dt, device=dev)
    g = torch.zeros(W, n2, ny, dtype=dt, device=dev)
    it = torch.zeros(W, dtype=torch.int64, device=dev)
    stall = torch.zeros(W, dtype=torch.int64, device=dev)
    best_gap = torch.full((W,), math.inf, dtype=dt, device=dev)
    best_viol = torch.full((W,), math.inf, dtype=dt, device=dev)
    qbest, fbest, gbest = q.clone(), f.clone(), g.clone()
    gap = torch.full((W,), math.inf, dtype=dt, device=dev)
    viol = torch.zeros(W, dtype=dt, device=dev)
    actf = act.to(dt)
    tried = torch.zeros(W, dtype=torch.bool, device=dev)
    npol = torch.zeros(W, dtype=torch.int64, device=dev)

    while True:
        it += 1
        mu4 = mu[:, None, None, None]
        dq, df, dg, amax, gv, qs = _newton_step(q, z, mask, mu, a, b, act, actf)

        # vectorized backtracking on the barrier merit
        slope = (gv * dq).sum((1, 2, 3))
        tau = torch.clamp(1.0 - mu, min=0.99)
        alpha0 = torch.clamp(tau * amax, max=1.0)
        phi = _barrier(q, mask, mu)
        thr = 1e-4 * slope.clamp(max=0.0)
        alpha = torch.zeros_like(alpha0)
        found = torch.zeros(W, dtype=torch.bool, device=dev)
        for k0, k1 in _LS_GROUPS:
            pending = (~found).nonzero().squeeze(1)
            if pending.numel() == 0:
                break
            pw = torch.pow(0.5, torch.arange(k0, k1, dtype=dt, device=dev))
            step = max(1, _LS_ELEMENTS // ((k1 - k0) * n1 * n2 * ny))  # bound the trial tensor
            for s0 in range(0, pending.numel(), step):
                idx = pending[s0:s0 + step]
                al = alpha0[idx, None] * pw                                       # (Wi, K)
                qn = q[idx, None] + al[..., None, None, None] * dq[idx, None]
                phin = _barrier(qn, mask[idx, None], mu[idx, None].expand_as(al))
                ph = phi[idx, None]
                okk = (phin <= ph + thr[idx, None] * al) | ((phin - ph).abs() <= 1e-14 * (1.0 + ph.abs()))
                anyok = okk.any(1)
                kf = okk.to(torch.int8).argmax(1)
                sel = idx[anyok]
                alpha[sel] = al[anyok, kf[anyok]]
                found[sel] = True
        qn = torch.where(mask, q + alpha[:, None, None, None] * dq, 0.0)

        # dual step on z, clipped to IPOPT's band
        tau4 = tau[:, None, None, None]
        d = torch.where(mask, (mu4 - q * z - z * dq) / qs, 0.0)
        negz = mask & (d < 0)
        limz = torch.where(negz, -tau4 * z / torch.where(negz, d, -1.0), math.inf)
        amax_z = limz.flatten(1).amin(1).clamp(max=1.0)
        qns = torch.where(mask, qn, 1.0)
        zz = torch.minimum(torch.maximum(z + amax_z[:, None, None, None] * d, mu4 / (ZBAND * qns)),
                           ZBAND * mu4 / qns)
        zz = torch.where(mask, zz, 0.0)
        err = torch.where(mask, (qn * zz - mu4).abs(), 0.0).flatten(1).amax(1)
        # items whose line search failed keep their state (they stop as stalled)
        keep = found[:, None, None, None]
        q = torch.where(keep, qn, q)
        z = torch.where(keep, zz, z)
        f = torch.where(found[:, None, None], df, f)
        g = torch.where(found[:, None, None], dg, g)

        # restore + certificate
        qr, viol_new = _restore(q, a, b, 0.1 * feas_tol, 50)
        F0, Dv = _certificate(qr, mask, a, b, f, g)
        gap_new = F0 - Dv
        viol = torch.where(found, viol_new, viol)
        gap = torch.where(found, gap_new, gap)
        feas = viol <= feas_tol
        stall = torch.where(found & feas & (gap < 0.99 * best_gap), 0, stall + 1)
        better = found & feas & (gap < best_gap)
        if bool(better.any()):
            best_gap = torch.where(better, gap, best_gap)
            best_viol = torch.where(better, viol, best_viol)
            qbest = torch.where(better[:, None, None, None], qr, qbest)
            fbest = torch.where(better[:, None, None], f, fbest)
            gbest = torch.where(better[:, None, None], g, gbest)

        status = torch.full((W,), -1, dtype=torch.int64, device=dev)
        conv = found & (gap <= gap_tol) & feas
        status = torch.where(~found, 2, status)
        status = torch.where(found & ~torch.isfinite(gap), 3, status)
        status = torch.where((status < 0) & conv, 0, status)
        status = torch.where((status < 0) & (stall >= 15), 2, status)
        status = torch.where((status < 0) & (it >= max_iter), 1, status)
        q = torch.where((status == 0)[:, None, None, None], qr, q)

        # subproblem solved well enough: shrink mu superlinearly
        shrink = (status < 0) & (-slope <= mu * m) & (err <= 10.0 * mu)
        mu = torch.where(shrink, torch.maximum(torch.minimum(0.2 * mu, mu ** 1.5), 1e-12 / m), mu)
        # crossover at each new mu once mu < 1e-6/m (at most 3 times per item)
        tried = tried & ~shrink
        cand = (status < 0) & (mu < 1e-6 / m) & ~tried & (npol < 3)
        if bool(cand.any()):
            tried = tried | cand
            npol = npol + cand.to(npol.dtype)
            ci = cand.nonzero().squeeze(1)
            pending = torch.ones(ci.numel(), dtype=torch.bool, device=dev)
            for rule in (0, 1):
                budget = torch.clamp(max_iter - it[ci], max=4)
                sub = pending & (budget > 0)
                if not bool(sub.any()):
                    break
                ii = ci[sub]
                qp, fp, gp, pit, pgap, pviol, okp = _polish(
                    q[ii], z[ii], mask[ii], a[ii], b[ii], act[ii], actf[ii], f[ii], g[ii],
                    gap_tol, feas_tol, rule, budget[sub])
                it[ii] += pit
                wi = ii[okp]
                q[wi], f[wi], g[wi], gap[wi], viol[wi] = qp[okp], fp[okp], gp[okp], pgap[okp], pviol[okp]
                status[wi] = 0
                pending[sub.nonzero().squeeze(1)[okp]] = False
            status = torch.where((status < 0) & (it >= max_iter), 1, status)

        fin = status >= 0
        if bool(fin.any()):
            fi = fin.nonzero().squeeze(1)
            st = status[fi]
            q_f, f_f, g_f, gap_f, viol_f = q[fi], f[fi], g[fi], gap[fi], viol[fi]
            # not certified: hand back the best certified iterate seen
            usebest = (st != 0) & torch.isfinite(best_gap[fi])
            ub4 = usebest[:, None, None, None]
            q_f = torch.where(ub4, qbest[fi], q_f)
            f_f = torch.where(usebest[:, None, None], fbest[fi], f_f)
            g_f = torch.where(usebest[:, None, None], gbest[fi], g_f)
            gap_f = torch.where(usebest, best_gap[fi], gap_f)
            viol_f = torch.where(usebest, best_viol[fi], viol_f)
            # certified: squeeze the last round-off out of the marginals and re-certify
            c = st == 0
            if bool(c.any()):
                ci = c.nonzero().squeeze(1)
                ai, bi, mi = a[fi][ci], b[fi][ci], mask[fi][ci]
                qc, vc = _restore(q_f[ci], ai, bi, 1e-16, 200)
                F0c, Dc = _certificate(qc, mi, ai, bi, f_f[ci], g_f[ci])
                gc = F0c - Dc
                q_f[ci], viol_f[ci], gap_f[ci] = qc, vc, gc
                st[ci] = torch.where((gc <= gap_tol) & (vc <= feas_tol), 0, 2)
            o = orig[fi]
            q_out[o], f_out[o], g_out[o] = q_f, f_f, g_f
            it_out[o], gap_out[o], viol_out[o], st_out[o] = it[fi], gap_f, viol_f, st
            rest = (~fin).nonzero().squeeze(1)
            if rest.numel() == 0:
                break
            orig = orig[rest]
            (a, b, mask, q, act, actf, m, mu, z, f, g, it, stall, best_gap, best_viol,
             qbest, fbest, gbest, gap, viol, tried, npol) = (
                t[rest] for t in (a, b, mask, q, act, actf, m, mu, z, f, g, it, stall, best_gap,
                                  best_viol, qbest, fbest, gbest, gap, viol, tried, npol))
            W = orig.numel()
    return q_out, f_out, g_out, it_out, gap_out, viol_out, st_out
