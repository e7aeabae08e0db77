"""Primal-dual interior-point solver for the BROJA program, in Numba.

Problem (one normalized distribution p of shape (n1, n2, ny)):

    minimize    F0(q) = sum_{x1,x2,y} q log(q / s),   s(x1,x2) = sum_y q   (= -H_q(Y|X1,X2))
    subject to  sum_{x2} q = a := p(x1, y),  sum_{x1} q = b := p(x2, y),  q >= 0,

on the support {a(x1,y) > 0 and b(x2,y) > 0}.  A primal-dual barrier method
(IPOPT's monotone strategy: primal q > 0, multipliers f(x1,y), g(x2,y) of the
marginal constraints, bound multipliers z > 0, backtracking on the barrier
merit) started from the feasible, strictly positive q0 = a b / p(y), with a
crossover ("polish") that drops the (x1, x2) blocks whose mass vanishes and
solves the remaining smooth problem by Newton's method.  Structure used:

* The Newton matrix is block diagonal over (x1, x2), each block
  diag((1 + z)/q) - (1/s) 11^T, inverted in closed form (Sherman-Morrison,
  with the denominator sum q z/(1+z) formed without cancellation).
* The Newton/KKT step reduces to one symmetric positive-definite system
  M nu = rhs with M = A W^{-1} A^T of size (n1 + n2) ny; for each y one
  (x2, y) row is redundant and is dropped (replaced by an identity row).
  M is Jacobi-scaled, factored by LAPACK Cholesky (regularized and retried if
  it is numerically semi-definite) and each step is iteratively refined on the
  primal residual, so round-off does not leak into the marginals; a final
  alternating-scaling pass removes what is left before the certificate.
* Certificate: the multipliers give dual variables f(x1,y), g(x2,y); after a
  shift that makes them dual feasible (logsumexp_y(f + g) <= 0 on every block)
  the dual value D is a rigorous lower bound on min F0, and
  gap = F0(q) - D bounds the error of I_q(X1,X2;Y) and hence of every atom.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

ZBAND = 1e10  # IPOPT keeps z within [mu/(ZBAND q), ZBAND mu/q]
STATUS = {0: "converged", 1: "max_iter reached", 2: "stalled at working precision", 3: "numerical failure"}


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
def _restore(q, a, b, target, max_sweeps):
    """Alternating scaling sweeps (x1,y) then (x2,y) until the marginal
    violation is below ``target``: removes round-off drift while keeping the
    support and positivity of q.  Returns the final violation."""
    n1, n2, ny = q.shape
    viol = _violation(q, a, b)
    sweeps = 0
    while viol > target and sweeps < max_sweeps:
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
        viol = _violation(q, a, b)
        sweeps += 1
    return viol


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
def _block_sums(q, mask, s):
    n1, n2, ny = q.shape
    for i in range(n1):
        for j in range(n2):
            acc = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    acc += q[i, j, k]
            s[i, j] = acc


@njit(cache=True)
def _newton_terms(q, mask, z, mu, s, dinv, den, gv):
    """Per-block pieces of the Newton step: W^-1 = diag(dinv) + dinv dinv^T/den
    for W = diag((1 + z)/q) - 11^T/s, and the barrier gradient
    gv = log(q/s) - mu/q (den = sum q z/(1+z), formed without cancellation)."""
    n1, n2, ny = q.shape
    _block_sums(q, mask, s)
    for i in range(n1):
        for j in range(n2):
            dn = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    v = q[i, j, k]
                    zz = z[i, j, k]
                    dinv[i, j, k] = v / (1.0 + zz)
                    dn += v * zz / (1.0 + zz)
                    gv[i, j, k] = np.log(v / s[i, j]) - mu / v
            den[i, j] = dn if s[i, j] > 0.0 else 0.0


@njit(cache=True)
def _assemble(mask, dinv, den, ridx, M):
    """M = A W^-1 A^T with W^-1 = diag(dinv) + dinv dinv^T / den per block,
    on the active constraint rows only (``ridx`` maps a row to its index in M,
    -1 for rows dropped as empty or redundant)."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    M[:, :] = 0.0
    for i in range(n1):
        for j in range(n2):
            dn = den[i, j]
            if dn <= 0.0:
                continue
            for k in range(ny):
                if not mask[i, j, k]:
                    continue
                dk = dinv[i, j, k]
                r1 = ridx[i * ny + k]
                r2 = ridx[off2 + j * ny + k]
                for k2 in range(ny):
                    if not mask[i, j, k2]:
                        continue
                    h = dk * dinv[i, j, k2] / dn
                    if k2 == k:
                        h += dk
                    c1 = ridx[i * ny + k2]
                    c2 = ridx[off2 + j * ny + k2]
                    if r1 >= 0 and c1 >= 0:
                        M[r1, c1] += h
                    if r2 >= 0 and c2 >= 0:
                        M[r2, c2] += h
                    if r1 >= 0 and c2 >= 0:
                        M[r1, c2] += h
                        M[c2, r1] += h


@njit(cache=True)
def _factor(M):
    """Jacobi-scale and Cholesky-factor M (LAPACK through NumPy).  If M is not
    numerically positive definite, as interior-point systems become near
    degenerate optima, fall back to a Cholesky that skips tiny pivots, as
    interior-point codes do: the skipped components of the solution are zero.
    Returns (L, scale, skip, lapack_ok)."""
    n = M.shape[0]
    dsc = np.empty(n)
    for r in range(n):
        dsc[r] = 1.0 / np.sqrt(M[r, r]) if M[r, r] > 0.0 else 1.0
    S = np.empty((n, n))
    for r in range(n):
        for c in range(n):
            S[r, c] = M[r, c] * dsc[r] * dsc[c]
    skip = np.zeros(n, dtype=np.bool_)
    delta = 0.0
    for attempt in range(8):
        try:
            L = np.linalg.cholesky(S)
            return np.ascontiguousarray(L), np.ascontiguousarray(L.T), dsc, skip, attempt == 0
        except Exception:
            # regularize and retry; iterative refinement in _step removes
            # the bias this introduces
            delta = 1e-14 if delta == 0.0 else delta * 100.0
            for r in range(n):
                S[r, r] += delta
    for r in range(n):  # hopeless: identity keeps the iteration finite
        skip[r] = True
    L = np.eye(n)
    return L, L.copy(), dsc, skip, False


@njit(cache=True)
def _solve_factored(L, U, dsc, skip, lapack_ok, rhs):
    """Solve with the factor from :func:`_factor`: forward substitution on the
    rows of L, back substitution on the rows of U = L^T (both contiguous)."""
    n = L.shape[0]
    y = np.zeros(n)
    for i in range(n):
        if skip[i]:
            continue
        acc = rhs[i] * dsc[i]
        Li = L[i]
        for k in range(i):
            acc -= Li[k] * y[k]
        y[i] = acc / Li[i]
    x = np.zeros(n)
    for i in range(n - 1, -1, -1):
        if skip[i]:
            continue
        acc = y[i]
        Ui = U[i]
        for k in range(i + 1, n):
            acc -= Ui[k] * x[k]
        x[i] = acc / Ui[i]
    for r in range(n):
        x[r] *= dsc[r]
    return x


@njit(cache=True)
def _apply_winv(q, mask, dinv, den, v, out):
    """out = W^-1 v blockwise, W^-1 = diag(dinv) + dinv dinv^T / den."""
    n1, n2, ny = q.shape
    for i in range(n1):
        for j in range(n2):
            dn = den[i, j]
            if dn <= 0.0:
                continue
            ut = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    ut += dinv[i, j, k] * v[i, j, k]
            for k in range(ny):
                if mask[i, j, k]:
                    out[i, j, k] = dinv[i, j, k] * (v[i, j, k] + ut / dn)


@njit(cache=True)
def _step(q, mask, a, b, ridx, dinv, den, gv, fac, dq, df, dg):
    """Newton step dq = -W^-1 (gv + A^T nu) with A dq = c - A q, using the
    factorization ``fac`` of M = A W^-1 A^T, plus iterative refinement on the
    primal residual so that round-off in an ill-conditioned M does not leak
    into the marginals.  Fills dq and the multipliers df = -nu1, dg = -nu2;
    returns the largest step keeping q > 0."""
    L, U, dsc, skip, ok = fac
    n1, n2, ny = q.shape
    na = L.shape[0]
    nr = ridx.shape[0]
    off2 = n1 * ny
    w = np.zeros((n1, n2, ny))
    _apply_winv(q, mask, dinv, den, gv, w)
    # full-length residual r = c - A q and A W^-1 gv, then compressed
    r = np.zeros(nr)
    aw = np.zeros(nr)
    for i in range(n1):
        for k in range(ny):
            acc = a[i, k]
            for j in range(n2):
                acc -= q[i, j, k]
                if mask[i, j, k]:
                    aw[i * ny + k] += w[i, j, k]
            r[i * ny + k] = acc
    for j in range(n2):
        for k in range(ny):
            acc = b[j, k]
            for i in range(n1):
                acc -= q[i, j, k]
                if mask[i, j, k]:
                    aw[off2 + j * ny + k] += w[i, j, k]
            r[off2 + j * ny + k] = acc
    rhs = np.zeros(na)
    for t in range(nr):
        if ridx[t] >= 0:
            rhs[ridx[t]] = -r[t] - aw[t]
    nuc = _solve_factored(L, U, dsc, skip, ok, rhs)
    nu = np.zeros(nr)
    t3 = np.zeros((n1, n2, ny))
    sweeps = 3 if ok else 8
    for sweep in range(sweeps):
        for t in range(nr):
            nu[t] = nuc[ridx[t]] if ridx[t] >= 0 else 0.0
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        t3[i, j, k] = gv[i, j, k] + nu[i * ny + k] + nu[off2 + j * ny + k]
        _apply_winv(q, mask, dinv, den, t3, dq)
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        dq[i, j, k] = -dq[i, j, k]
        if sweep == sweeps - 1:
            break
        # primal residual rho = r - A dq on the active rows
        rho = r.copy()
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        rho[i * ny + k] -= dq[i, j, k]
                        rho[off2 + j * ny + k] -= dq[i, j, k]
        big = 0.0
        rc = np.zeros(na)
        for t in range(nr):
            if ridx[t] >= 0:
                rc[ridx[t]] = -rho[t]
                big = max(big, abs(rho[t]))
        if big < 1e-16:
            break
        dnu = _solve_factored(L, U, dsc, skip, ok, rc)
        for t in range(na):
            nuc[t] += dnu[t]
    for i in range(n1):
        for k in range(ny):
            df[i, k] = -nu[i * ny + k]
    for j in range(n2):
        for k in range(ny):
            dg[j, k] = -nu[off2 + j * ny + k]
    amax = 1.0
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if mask[i, j, k]:
                    d = dq[i, j, k]
                    if d < 0.0:
                        lim = -q[i, j, k] / d
                        if lim < amax:
                            amax = lim
    return amax


@njit(cache=True)
def _dual_fit(q, mp, ridx, f, g):
    """Least-change dual update: the smallest (df, dg) with
    f + df + g + dg = log(q/s) on every cell of the kept blocks (exact
    stationarity of the reduced problem), starting from the interior-point
    multipliers, which lie near the centre of the optimal dual face."""
    n1, n2, ny = q.shape
    off2 = n1 * ny
    na = 0
    for t in range(ridx.shape[0]):
        if ridx[t] >= 0:
            na += 1
    N = np.zeros((na, na))
    rhs = np.zeros(na)
    for i in range(n1):
        for j in range(n2):
            s = 0.0
            for k in range(ny):
                if mp[i, j, k]:
                    s += q[i, j, k]
            if s <= 0.0:
                continue
            for k in range(ny):
                if not mp[i, j, k]:
                    continue
                res = np.log(q[i, j, k] / s) - f[i, k] - g[j, k]
                r1 = ridx[i * ny + k]
                r2 = ridx[off2 + j * ny + k]
                if r1 >= 0:
                    N[r1, r1] += 1.0
                    rhs[r1] += res
                if r2 >= 0:
                    N[r2, r2] += 1.0
                    rhs[r2] += res
                if r1 >= 0 and r2 >= 0:
                    N[r1, r2] += 1.0
                    N[r2, r1] += 1.0
    for r in range(na):
        N[r, r] += 1e-12
    L, U, dsc, skip, ok = _factor(N)
    d = _solve_factored(L, U, dsc, skip, ok, rhs)
    for i in range(n1):
        for k in range(ny):
            t = ridx[i * ny + k]
            if t >= 0:
                f[i, k] += d[t]
    for j in range(n2):
        for k in range(ny):
            t = ridx[off2 + j * ny + k]
            if t >= 0:
                g[j, k] += d[t]


@njit(cache=True)
def _polish(q, z, mask, a, b, ridx, f, g, gap_tol, feas_tol, M, rule, max_it):
    """Crossover: guess which (x1, x2) blocks are empty at the optimum, drop
    them to exactly zero, solve the remaining smooth problem by (slightly
    regularized) Newton steps on F0, fit the dual to its exact stationarity and
    certify against ALL blocks (a wrong guess simply fails the certificate).
    ``rule`` 0 keeps a block if some cell has q >= z (strict complementarity);
    rule 1 keeps it if its mass is at least 1e-3 of the largest block in its
    x1 row (for degenerate optima where q and z both vanish).
    Returns (q, f, g, iterations, gap, violation, success)."""
    n1, n2, ny = q.shape
    qp = q.copy()
    mp = mask.copy()
    for i in range(n1):
        smax = 0.0
        for j in range(n2):
            sij = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    sij += q[i, j, k]
            smax = max(smax, sij)
        for j in range(n2):
            keep = False
            cnt = 0
            sij = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    cnt += 1
                    sij += q[i, j, k]
                    if q[i, j, k] >= z[i, j, k]:
                        keep = True
            if rule == 1:
                keep = sij >= 1e-3 * smax
            if cnt > 0 and not keep:
                for k in range(ny):
                    mp[i, j, k] = False
                    qp[i, j, k] = 0.0
    s = np.zeros((n1, n2))
    dinv = np.zeros((n1, n2, ny))
    den = np.zeros((n1, n2))
    gv = np.zeros((n1, n2, ny))
    dq = np.zeros((n1, n2, ny))
    df = np.zeros((n1, ny))
    dg = np.zeros((n2, ny))
    qn = qp.copy()
    qr = qp.copy()
    fw = f.copy()
    gw = g.copy()
    gap = np.inf
    viol = np.inf
    zreg = np.full((n1, n2, ny), 1e-7)  # Hessian regularization in place of z
    for it in range(1, max_it + 1):
        _newton_terms(qp, mp, zreg, 0.0, s, dinv, den, gv)
        _assemble(mp, dinv, den, ridx, M)
        fac = _factor(M)
        amax = _step(qp, mp, a, b, ridx, dinv, den, gv, fac, dq, df, dg)
        # full Newton steps (the reduced problem is smooth near its optimum);
        # only the fraction-to-boundary rule limits them
        alpha = min(1.0, 0.995 * amax)
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mp[i, j, k]:
                        qn[i, j, k] = qp[i, j, k] + alpha * dq[i, j, k]
        qp[:, :, :] = qn
        qr[:, :, :] = qp
        viol = _restore(qr, a, b, 0.1 * feas_tol, 50)
        if viol > feas_tol:
            continue
        fw[:, :] = f
        gw[:, :] = g
        _dual_fit(qr, mp, ridx, fw, gw)
        F0, Dv = _certificate(qr, mask, a, b, fw, gw)
        gap = F0 - Dv
        if gap <= gap_tol:
            return qr, fw, gw, it, gap, viol, True
        if alpha < 1e-3:
            break
    return qp, fw, gw, max_it, gap, viol, False


@njit(cache=True)
def _barrier(q, mask, mu):
    """phi_mu(q) = F0(q) - mu sum log q  (the merit function)."""
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
def solve_one(p, gap_tol, feas_tol, max_iter):
    """Solve one distribution.  Returns (q, f, g, iterations, gap_nats, violation, status).

    Primal-dual barrier method (IPOPT's monotone strategy): for a fixed mu,
    Newton steps on the primal-dual system with the primal-dual Hessian
    diag((1+z)/q) - 11^T/s, backtracking on the barrier merit phi_mu; once the
    subproblem error is below 10 mu, mu <- min(0.2 mu, mu^1.5).  Every
    iteration checks the certificate; from mu < 1e-6 on, a crossover is tried
    at each new mu.
    """
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
    nr = (n1 + n2) * ny
    off2 = n1 * ny
    has = np.zeros(nr, dtype=np.bool_)
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if a[i, k] > 0.0 and b[j, k] > 0.0:
                    v = a[i, k] * b[j, k] / py[k]
                    if v > 0.0:  # mass below float64 resolution stays out
                        mask[i, j, k] = True
                        q[i, j, k] = v
                        has[i * ny + k] = True
                        has[off2 + j * ny + k] = True
                        m += 1
    # active rows: those carrying supported cells, minus one redundant
    # (x2, y) row per label (the supported cells of a label form a complete
    # bipartite graph, so exactly one row per label is implied by the others)
    ridx = np.full(nr, -1, dtype=np.int64)
    for k in range(ny):
        jbest = -1
        bbest = 0.0
        for j in range(n2):
            if has[off2 + j * ny + k] and b[j, k] > bbest:
                bbest = b[j, k]
                jbest = j
        if jbest >= 0:
            has[off2 + jbest * ny + k] = False
    na = 0
    for t in range(nr):
        if has[t]:
            ridx[t] = na
            na += 1
    if m == 0:
        return q, np.zeros((n1, ny)), np.zeros((n2, ny)), 0, np.inf, _violation(q, a, b), 3
    f = np.zeros((n1, ny))
    g = np.zeros((n2, ny))
    z = np.zeros((n1, n2, ny))
    s = np.zeros((n1, n2))
    dinv = np.zeros((n1, n2, ny))
    den = np.zeros((n1, n2))
    gv = np.zeros((n1, n2, ny))
    dq = np.zeros((n1, n2, ny))
    qn = np.zeros((n1, n2, ny))
    df = np.zeros((n1, ny))
    dg = np.zeros((n2, ny))
    M = np.zeros((na, na))
    mu = 0.1 / m
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if mask[i, j, k]:
                    z[i, j, k] = mu / q[i, j, k]
    status = 1
    gap = np.inf
    viol = 0.0
    it = 0
    tried_polish = False
    n_polish = 0
    stall = 0
    qr = q.copy()
    qbest = q.copy()
    fbest = f.copy()
    gbest = g.copy()
    best_gap = np.inf
    best_viol = np.inf
    while it < max_iter:
        it += 1
        _newton_terms(q, mask, z, mu, s, dinv, den, gv)
        _assemble(mask, dinv, den, ridx, M)
        fac = _factor(M)
        amax = _step(q, mask, a, b, ridx, dinv, den, gv, fac, dq, df, dg)
        # df, dg are the new multipliers themselves here (gv holds no f, g)
        slope = 0.0
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        slope += gv[i, j, k] * dq[i, j, k]
        tau = max(0.99, 1.0 - mu)
        alpha = min(1.0, tau * amax)
        phi = _barrier(q, mask, mu)
        ok = False
        for _ in range(50):
            for i in range(n1):
                for j in range(n2):
                    for k in range(ny):
                        if mask[i, j, k]:
                            qn[i, j, k] = q[i, j, k] + alpha * dq[i, j, k]
            phin = _barrier(qn, mask, mu)
            if phin <= phi + 1e-4 * alpha * min(slope, 0.0) or abs(phin - phi) <= 1e-14 * (1.0 + abs(phi)):
                ok = True
                break
            alpha *= 0.5
        if not ok:
            status = 2
            break
        # dual step: z towards mu/q along the linearization, kept in IPOPT's band
        amax_z = 1.0
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        v = q[i, j, k]
                        d = (mu - v * z[i, j, k] - z[i, j, k] * dq[i, j, k]) / v
                        gv[i, j, k] = d
                        if d < 0.0 and -tau * z[i, j, k] / d < amax_z:
                            amax_z = -tau * z[i, j, k] / d
        err = 0.0
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        v = qn[i, j, k]
                        zz = z[i, j, k] + amax_z * gv[i, j, k]
                        lo = mu / (ZBAND * v)
                        hi = ZBAND * mu / v
                        zz = min(max(zz, lo), hi)
                        z[i, j, k] = zz
                        q[i, j, k] = v
                        err = max(err, abs(v * zz - mu))
        for i in range(n1):
            for k in range(ny):
                f[i, k] = df[i, k]
        for j in range(n2):
            for k in range(ny):
                g[j, k] = dg[j, k]
        qr[:, :, :] = q
        viol = _restore(qr, a, b, 0.1 * feas_tol, 50)
        F0, Dv = _certificate(qr, mask, a, b, f, g)
        gap = F0 - Dv
        if not np.isfinite(gap):
            status = 3
            break
        if viol <= feas_tol and gap < 0.99 * best_gap:
            stall = 0
        else:
            stall += 1
        if viol <= feas_tol and gap < best_gap:
            best_gap = gap
            best_viol = viol
            qbest[:, :, :] = qr
            fbest[:, :] = f
            gbest[:, :] = g
        if gap <= gap_tol and viol <= feas_tol:
            q[:, :, :] = qr
            status = 0
            break
        if stall >= 15:
            status = 2  # no progress at working precision
            break
        # subproblem solved well enough: shrink mu superlinearly
        if -slope <= mu * m and err <= 10.0 * mu:
            mu = max(min(0.2 * mu, mu ** 1.5), 1e-12 / m)
            tried_polish = False
        if mu < 1e-6 / m and not tried_polish and n_polish < 3:
            tried_polish = True
            n_polish += 1
            done = False
            for rule in range(2):
                budget = min(4, max_iter - it)
                if budget <= 0:
                    break
                qp, fp, gp, pit, pgap, pviol, okp = _polish(
                    q, z, mask, a, b, ridx, f, g, gap_tol, feas_tol, M, rule, budget
                )
                it += pit
                if okp:
                    q[:, :, :] = qp
                    f[:, :] = fp
                    g[:, :] = gp
                    gap = pgap
                    viol = pviol
                    status = 0
                    done = True
                    break
            if done:
                break
    if status != 0 and best_gap < np.inf:
        # not certified to tol: hand back the best certified iterate seen
        return qbest, fbest, gbest, it, best_gap, best_viol, status
    if status == 0:
        # squeeze the last round-off out of the marginals (a slightly
        # infeasible q can sit below the optimum and show a negative gap)
        viol = _restore(q, a, b, 1e-16, 200)
        F0, Dv = _certificate(q, mask, a, b, f, g)
        gap = F0 - Dv
        if not (gap <= gap_tol and viol <= feas_tol):
            status = 2
    return q, f, g, it, gap, viol, status


@njit(cache=True, parallel=True)
def solve_batch(p, gap_tol, feas_tol, max_iter):
    B, n1, n2, ny = p.shape
    q = np.zeros((B, n1, n2, ny))
    f = np.zeros((B, n1, ny))
    g = np.zeros((B, n2, ny))
    iters = np.zeros(B, dtype=np.int64)
    gap = np.zeros(B)
    viol = np.zeros(B)
    status = np.zeros(B, dtype=np.int64)
    for t in prange(B):
        qt, ft, gt, it, gp, vl, st = solve_one(p[t], gap_tol, feas_tol, max_iter)
        q[t] = qt
        f[t] = ft
        g[t] = gt
        iters[t] = it
        gap[t] = gp
        viol[t] = vl
        status[t] = st
    return q, f, g, iters, gap, viol, status
