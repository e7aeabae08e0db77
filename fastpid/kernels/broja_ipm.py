"""Primal barrier (interior-point) Newton solver for the BROJA program, in Numba.

Problem (one normalized distribution p of shape (n1, n2, ny)):

    minimize    F0(q) = sum_{x1,x2,y} q log(q / s),   s(x1,x2) = sum_y q   (= -H_q(Y|X1,X2))
    subject to  sum_{x2} q = a := p(x1, y),  sum_{x1} q = b := p(x2, y),  q >= 0,

on the support {a(x1,y) > 0 and b(x2,y) > 0}.  We follow the central path of
F_mu = F0 - mu * sum log q from the feasible, strictly positive start
q0 = a b / p(y).  Structure used:

* The Hessian of F_mu is block diagonal over (x1, x2), each block
  diag(1/q + mu/q^2) - (1/s) 11^T, inverted in closed form (Sherman-Morrison,
  with the denominator sum q mu/(q+mu) formed without cancellation).
* The Newton/KKT step reduces to one symmetric positive-definite system
  M nu = rhs with M = A H^{-1} A^T of size (n1 + n2) ny; for each y one
  (x2, y) row is redundant and is dropped (replaced by an identity row).
* Certificate: the multipliers give dual variables f(x1,y), g(x2,y); after a
  shift that makes them dual feasible (logsumexp_y(f + g) <= 0 on every block)
  the dual value D is a rigorous lower bound on min F0, and
  gap = F0(q) - D bounds the error of I_q(X1,X2;Y) and hence of every atom.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

DEBUG = False
STATUS = {0: "converged", 1: "max_iter reached", 2: "line search stalled", 3: "numerical failure"}


@njit(cache=True)
def _barrier_value(q, mask, mu):
    n1, n2, ny = q.shape
    val = 0.0
    for i in range(n1):
        for j in range(n2):
            s = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    s += q[i, j, k]
            if s <= 0.0:
                continue
            for k in range(ny):
                if mask[i, j, k]:
                    v = q[i, j, k]
                    val += v * np.log(v / s) - mu * np.log(v)
    return val


@njit(cache=True)
def _violation(q, a, b):
    n1, n2, ny = q.shape
    viol = 0.0
    for i in range(n1):
        for k in range(ny):
            acc = a[i, k]
            for j in range(n2):
                acc -= q[i, j, k]
            viol = max(viol, abs(acc))
    for j in range(n2):
        for k in range(ny):
            acc = b[j, k]
            for i in range(n1):
                acc -= q[i, j, k]
            viol = max(viol, abs(acc))
    return viol


@njit(cache=True)
def _scale_sweep(q, a, b):
    """One alternating-scaling sweep (x1,y) then (x2,y): removes round-off
    drift from the marginals while keeping q > 0 on its support."""
    n1, n2, ny = q.shape
    for i in range(n1):
        for k in range(ny):
            s = 0.0
            for j in range(n2):
                s += q[i, j, k]
            if s > 0.0:
                r = a[i, k] / s
                for j in range(n2):
                    q[i, j, k] *= r
    for j in range(n2):
        for k in range(ny):
            s = 0.0
            for i in range(n1):
                s += q[i, j, k]
            if s > 0.0:
                r = b[j, k] / s
                for i in range(n1):
                    q[i, j, k] *= r


@njit(cache=True)
def _certificate(q, mask, a, b, f, g):
    """(F0(q), dual lower bound D) in nats, for dual guess (f, g)."""
    n1, n2, ny = q.shape
    F0 = 0.0
    D = 0.0
    for i in range(n1):
        a_i = 0.0
        for k in range(ny):
            if a[i, k] > 0.0:
                a_i += a[i, k]
                D += a[i, k] * f[i, k]
        t_i = -np.inf
        for j in range(n2):
            s = 0.0
            mx = -np.inf
            for k in range(ny):
                if mask[i, j, k]:
                    s += q[i, j, k]
                    z = f[i, k] + g[j, k]
                    if z > mx:
                        mx = z
            if mx == -np.inf:
                continue
            acc = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    acc += np.exp(f[i, k] + g[j, k] - mx)
                    if q[i, j, k] > 0.0 and s > 0.0:
                        F0 += q[i, j, k] * np.log(q[i, j, k] / s)
            lse = mx + np.log(acc)
            if lse > t_i:
                t_i = lse
        if a_i > 0.0:
            D -= a_i * t_i
    for j in range(n2):
        for k in range(ny):
            if b[j, k] > 0.0:
                D += b[j, k] * g[j, k]
    return F0, D


@njit(cache=True)
def solve_one(p, gap_tol, feas_tol, max_iter, mu_factor):
    """Solve one distribution.  Returns (q, f, g, iterations, gap_nats, violation, status)."""
    n1, n2, ny = p.shape
    a = np.zeros((n1, ny))
    b = np.zeros((n2, ny))
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                a[i, k] += p[i, j, k]
                b[j, k] += p[i, j, k]
    py = np.zeros(ny)
    for i in range(n1):
        for k in range(ny):
            py[k] += a[i, k]
    mask = np.zeros((n1, n2, ny), dtype=np.bool_)
    q = np.zeros((n1, n2, ny))
    m = 0
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if a[i, k] > 0.0 and b[j, k] > 0.0:
                    mask[i, j, k] = True
                    q[i, j, k] = a[i, k] * b[j, k] / py[k]
                    m += 1
    nr = (n1 + n2) * ny
    off2 = n1 * ny
    active = np.zeros(nr, dtype=np.bool_)
    for i in range(n1):
        for k in range(ny):
            active[i * ny + k] = a[i, k] > 0.0
    for k in range(ny):
        jbest = -1
        bbest = 0.0
        for j in range(n2):
            if b[j, k] > 0.0:
                active[off2 + j * ny + k] = True
                if b[j, k] > bbest:
                    bbest = b[j, k]
                    jbest = j
        if jbest >= 0:
            active[off2 + jbest * ny + k] = False  # one redundant row per label

    f = np.zeros((n1, ny))
    g = np.zeros((n2, ny))
    Dinv = np.zeros((n1, n2, ny))
    den = np.zeros((n1, n2))
    grad = np.zeros((n1, n2, ny))
    dq = np.zeros((n1, n2, ny))
    M = np.zeros((nr, nr))
    rhs = np.zeros(nr)
    mu = 0.1 / m
    mu_floor = 0.05 * gap_tol / m  # central-path gap is about mu * m
    status = 1
    gap = np.inf
    viol = 0.0
    it = 0
    while it < max_iter:
        it += 1
        # ---- assemble M = A H^-1 A^T and rhs = -(c - A q) - A H^-1 grad
        M[:, :] = 0.0
        rhs[:] = 0.0
        for i in range(n1):
            for j in range(n2):
                s = 0.0
                for k in range(ny):
                    if mask[i, j, k]:
                        s += q[i, j, k]
                if s <= 0.0:
                    continue
                dn = 0.0
                ug = 0.0
                for k in range(ny):
                    if mask[i, j, k]:
                        v = q[i, j, k]
                        di = v * v / (v + mu)
                        Dinv[i, j, k] = di
                        dn += v * mu / (v + mu)
                        gk = np.log(v / s) - mu / v
                        grad[i, j, k] = gk
                        ug += di * gk
                den[i, j] = dn
                for k in range(ny):
                    if not mask[i, j, k]:
                        continue
                    dk = Dinv[i, j, k]
                    hg = dk * grad[i, j, k] + dk * ug / dn
                    r1 = i * ny + k
                    r2 = off2 + j * ny + k
                    rhs[r1] -= hg
                    rhs[r2] -= hg
                    for k2 in range(ny):
                        if not mask[i, j, k2]:
                            continue
                        h = dk * Dinv[i, j, k2] / dn
                        if k2 == k:
                            h += dk
                        c1 = i * ny + k2
                        c2 = off2 + j * ny + k2
                        M[r1, c1] += h
                        M[r2, c2] += h
                        M[r1, c2] += h
                        M[c2, r1] += h
        # feasibility residual c - A q
        for i in range(n1):
            for k in range(ny):
                acc = a[i, k]
                for j in range(n2):
                    acc -= q[i, j, k]
                rhs[i * ny + k] -= acc
        for j in range(n2):
            for k in range(ny):
                acc = b[j, k]
                for i in range(n1):
                    acc -= q[i, j, k]
                rhs[off2 + j * ny + k] -= acc
        for r in range(nr):
            if not active[r]:
                M[r, :] = 0.0
                M[:, r] = 0.0
                M[r, r] = 1.0
                rhs[r] = 0.0
        # scale rows/cols by the diagonal (Jacobi) for conditioning
        dsc = np.empty(nr)
        for r in range(nr):
            dsc[r] = 1.0 / np.sqrt(M[r, r]) if M[r, r] > 0.0 else 1.0
        for r in range(nr):
            for c in range(nr):
                M[r, c] *= dsc[r] * dsc[c]
            rhs[r] *= dsc[r]
            M[r, r] += 1e-13  # guards against exact zero pivots as blocks empty
        nu = np.linalg.solve(M, rhs)
        for r in range(nr):
            nu[r] *= dsc[r]
        # ---- direction dq = -H^-1 (grad + A^T nu); multipliers f = -nu1, g = -nu2
        for i in range(n1):
            for k in range(ny):
                f[i, k] = -nu[i * ny + k]
        for j in range(n2):
            for k in range(ny):
                g[j, k] = -nu[off2 + j * ny + k]
        dec = 0.0
        amax = 1.0
        for i in range(n1):
            for j in range(n2):
                dn = den[i, j]
                if dn <= 0.0:
                    continue
                ut = 0.0
                for k in range(ny):
                    if mask[i, j, k]:
                        ut += Dinv[i, j, k] * (grad[i, j, k] - f[i, k] - g[j, k])
                for k in range(ny):
                    if mask[i, j, k]:
                        t = grad[i, j, k] - f[i, k] - g[j, k]
                        d = -(Dinv[i, j, k] * t + Dinv[i, j, k] * ut / dn)
                        dq[i, j, k] = d
                        dec -= grad[i, j, k] * d
                        if d < 0.0:
                            lim = -0.995 * q[i, j, k] / d
                            if lim < amax:
                                amax = lim
        if not np.isfinite(dec):
            status = 3
            break
        # ---- backtracking line search on the barrier objective
        F = _barrier_value(q, mask, mu)
        alpha = amax
        accepted = False
        qn = q.copy()
        for _ in range(60):
            for i in range(n1):
                for j in range(n2):
                    for k in range(ny):
                        if mask[i, j, k]:
                            qn[i, j, k] = q[i, j, k] + alpha * dq[i, j, k]
            Fn = _barrier_value(qn, mask, mu)
            if Fn <= F - 0.01 * alpha * dec or abs(Fn - F) <= 1e-15 * (1.0 + abs(F)):
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            status = 2
            break
        q[:, :, :] = qn
        # ---- restore feasibility lost to round-off, then certificate
        viol = _violation(q, a, b)
        sweeps = 0
        while viol > 0.1 * feas_tol and sweeps < 20:
            _scale_sweep(q, a, b)
            viol = _violation(q, a, b)
            sweeps += 1
        F0, Dv = _certificate(q, mask, a, b, f, g)
        gap = F0 - Dv
        if DEBUG:
            print(it, mu, dec, alpha, amax, F0, Dv, gap, viol)
        if gap <= gap_tol and viol <= feas_tol:
            status = 0
            break
        # ---- centring test: shrink mu once the Newton decrement is small
        if dec <= mu * m:
            mu = max(mu * mu_factor, mu_floor)
    return q, f, g, it, gap, viol, status


@njit(cache=True, parallel=True)
def solve_batch(p, gap_tol, feas_tol, max_iter, mu_factor):
    B, n1, n2, ny = p.shape
    q = np.zeros((B, n1, n2, ny))
    f = np.zeros((B, n1, ny))
    g = np.zeros((B, n2, ny))
    iters = np.zeros(B, dtype=np.int64)
    gap = np.zeros(B)
    viol = np.zeros(B)
    status = np.zeros(B, dtype=np.int64)
    for t in prange(B):
        qt, ft, gt, it, gp, vl, st = solve_one(p[t], gap_tol, feas_tol, max_iter, mu_factor)
        q[t] = qt
        f[t] = ft
        g[t] = gt
        iters[t] = it
        gap[t] = gp
        viol[t] = vl
        status[t] = st
    return q, f, g, iters, gap, viol, status
