"""Interior-point solver for the dual of the BROJA program, in Numba.

Primal (one normalized distribution p of shape (n1, n2, ny)):

    minimize    F0(q) = sum_{x1,x2,y} q log(q / s),   s(x1,x2) = sum_y q   (= -H_q(Y|X1,X2))
    subject to  sum_{x2} q = a := p(x1, y),  sum_{x1} q = b := p(x2, y),  q >= 0,

on the support {a(x1,y) > 0 and b(x2,y) > 0}.  F0 is positively homogeneous
on each (x1, x2) block, so its Lagrange dual is

    maximize    D(f, g) = sum a f + sum b g
    subject to  h(x1,x2) = logsumexp_y (f(x1,y) + g(x2,y)) <= 0   for every block,

a smooth convex program with (n1 + n2) ny variables and one constraint per
block, whose multipliers are the block masses s(x1, x2) of the primal
optimum: q = s softmax_y(f + g).  We solve it by a primal-dual interior-point
method in (f, g, s) on the weighted central path s (-h) = mu w, with w the
products s0 (-h0) at the start (so the start is exactly centred and every
block is driven relative to its own scale: masses spanning many decades make
the unweighted path impractical).  The start: f = log a, g = log(b / p(y))
(so softmax(f + g) = q0 / s0 for q0 = a b / p(y), which is primal feasible
with s0 its block masses), then f shifted per x1 row and g per x2 column so
that each row and column has a constraint at slack 0.5 (this shortens the
path: ~13 instead of ~15 steps at 20x20x6).

* Mehrotra's predictor-corrector: an affine step gives sigma = mu_aff / mu
  (floored at 0.1, or 0.3 after a damped step); the corrector carries the
  second-order terms, ds_aff dc_aff and the curvature of the slacks along the
  affine step (without it, blocks of tiny mass whose slack the linear model
  overestimates cut every step short), and falls back to the plain Newton step of the barrier
  merit -(a f + b g) - sigma mu sum w log(-h) when the corrected direction is
  not a descent direction for it;
* fraction-to-boundary on the true (nonlinear) slacks, a cap of 4 nats on the
  change of any f or g per step (a Newton step on exponentials overshoots
  where a softmax weight is tiny, and walking back costs about a nat per
  step), Armijo backtracking on the merit, and a pure centering step after a
  step shorter than 0.3 (jamming).

Unlike a primal method it has one complementarity pair per block, not per
cell, so cells that are tiny but positive at the optimum cost nothing, and
blocks that are empty at the optimum are strictly inactive constraints: no
crossover is needed.

Each iteration is the same named steps as the torch port
(:mod:`fastpid.kernels.broja_ipm_torch`), with the settings of
:mod:`fastpid.kernels._constants`: ``_certify`` (when due), ``_predictor``,
``_corrector``, ``_step_lengths``, ``_line_search``, ``_update_multipliers``;
``_start`` before the loop and ``_finish`` after it.

Structure used:

* The Newton matrix is A B A^T, A the marginal (Kronecker) map, B block
  diagonal over (x1, x2) with blocks diag(q) + (1/c - 1) q q^T / s
  (c = -h > 0, q = s softmax): assembled directly on the active rows, where
  for each y one (x2, y) row is dropped (the gauge f(., y) + t, g(., y) - t
  leaves everything unchanged).  It is Jacobi-scaled and factored once per
  iteration (regularized and retried if it is numerically semi-definite):
  the rows of the larger source side come first, and since different
  sources of one side do not couple, that part is block diagonal, so the
  factor is formed source by source plus a LAPACK Cholesky of the Schur
  complement on the smaller side (``_block_cholesky``; the same factor as a
  dense Cholesky, without the work on the zero blocks; tiny matrices take
  LAPACK's dense Cholesky directly); predictor and corrector share the
  factor.  Where it needs
  fewer flops (many labels, few blocks: ``_structured_cost``), the same
  system is solved instead as D + U diag(beta) U^T: D block diagonal over
  the labels (inverted per label), U one column A pi per block and beta = s (1/c - 1), by
  the Woodbury identity: while every slack c < 1 (beta > 0, the usual case)
  the capacitance matrix diag(1/beta) + U^T D^-1 U is symmetric positive
  definite and is Cholesky-factored from its lower triangle; otherwise a
  row-scaled form that stays well posed for beta < 0 and beta = 0 is
  inverted (``_factor_structured``); a label whose block is singular (a
  disconnected support graph) sends that iteration to the dense factor.
* Certificate (once mu = sum s (-h), the gap of the current primal-dual pair
  when q is feasible, is within 10x of the tolerance): q = s softmax(f + g)
  is projected onto the marginals by Newton corrections that reuse the
  iteration's factor (multiplicative, so the support and positivity are
  kept), then alternating scaling removes the round-off (where it converges
  too slowly, on nearly decomposable supports, an exact rounding label by
  label finishes); (f, g), shifted so
  that the tightest constraint of each x1 row is active, is dual feasible,
  so its value D is a rigorous lower bound on min F0, and gap = F0(q) - D
  bounds the error of I_q(X1,X2;Y) and hence of every atom.  p itself is
  feasible, so q is replaced by p when p is better (S >= 0 exactly).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._constants import (ARMIJO, BACKTRACK, CERTIFY, ETA_MIN, FINAL_SWEEPS, FINAL_TARGET, FULL_STEP, JAM,
                         BLOCK_MIN_ROWS, LABEL_FLOPS, LS_TRIALS, MAXSTEP, PROGRESS, PROJECT_ROUNDS, REG_GROWTH, REG_RETRIES, REG_START,
                         RESTORE_SWEEPS, SBAND, SCHUR_PANEL, SIGMA_DAMPED, SIGMA_MAX, SIGMA_MIN, STALL, START_SLACK, STATUS,
                         WGROWTH)

__all__ = ["STATUS", "solve_batch", "solve_one"]


@njit(cache=True)
def _copy2(dst, src):
    """dst[...] = src for 2-d arrays (explicit loops: Numba's generic slice
    assignment costs seconds of compile time per signature)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def _copy3(dst, src):
    """dst[...] = src for 3-d arrays (see ``_copy2``)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            for k in range(dst.shape[2]):
                dst[i, j, k] = src[i, j, k]


@njit(cache=True)
def _fill2(dst, value):
    """dst[...] = value for a 2-d array (see ``_copy2``)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = value


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
    violation is below ``target``: removes the residual infeasibility while
    keeping the support and positivity of q.  Returns the final violation."""
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
def _round(q, a, b, mask):
    """Round q exactly onto the marginals, label by label (the constraints of
    different labels are independent): scale down the (x1, y) rows above a and
    then the (x2, y) columns above b, and give the remaining deficits back as
    their outer product (normalized), which lies on the support.  Keeps q >= 0
    and moves it by at most about twice its violation; used where alternating
    scaling converges too slowly (nearly decomposable supports)."""
    n1, n2, ny = q.shape
    er = np.empty(n1)
    ec = np.empty(n2)
    for k in range(ny):
        for i in range(n1):
            acc = 0.0
            for j in range(n2):
                acc += q[i, j, k]
            if acc > a[i, k]:
                r = a[i, k] / acc
                for j in range(n2):
                    q[i, j, k] *= r
        for j in range(n2):
            acc = 0.0
            for i in range(n1):
                acc += q[i, j, k]
            if acc > b[j, k]:
                r = b[j, k] / acc
                for i in range(n1):
                    q[i, j, k] *= r
        tot = 0.0
        for i in range(n1):
            acc = a[i, k]
            for j in range(n2):
                acc -= q[i, j, k]
            er[i] = max(acc, 0.0)
            tot += er[i]
        for j in range(n2):
            acc = b[j, k]
            for i in range(n1):
                acc -= q[i, j, k]
            ec[j] = max(acc, 0.0)
        if tot > 0.0:
            for i in range(n1):
                for j in range(n2):
                    if mask[i, j, k]:
                        q[i, j, k] += er[i] * ec[j] / tot


@njit(cache=True)
def _certificate(q, mask, a, b, f, g):
    """(F0(q), dual lower bound D) in nats, for the dual guess (f, g) shifted
    per x1 row to feasibility (max_x2 logsumexp_y(f + g) = 0)."""
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
def _slacks(mask, f, g, c, pi):
    """c = -logsumexp_y(f + g) per block (inf for blocks without support) and
    pi = softmax_y(f + g) on the supported cells."""
    n1, n2, ny = mask.shape
    for i in range(n1):
        for j in range(n2):
            mx = -np.inf
            for k in range(ny):
                if mask[i, j, k]:
                    t = f[i, k] + g[j, k]
                    if t > mx:
                        mx = t
            if mx == -np.inf:
                c[i, j] = np.inf
                continue
            acc = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    e = np.exp(f[i, k] + g[j, k] - mx)
                    pi[i, j, k] = e
                    acc += e
            for k in range(ny):
                if mask[i, j, k]:
                    pi[i, j, k] /= acc
            c[i, j] = -(mx + np.log(acc))


@njit(cache=True)
def _dual_value(a, b, f, g):
    """a.f + b.g (the dual objective, or its slope along (f, g) = a step)."""
    n1, ny = a.shape
    n2 = b.shape[0]
    val = 0.0
    for i in range(n1):
        for k in range(ny):
            val += a[i, k] * f[i, k]
    for j in range(n2):
        for k in range(ny):
            val += b[j, k] * g[j, k]
    return val


@njit(cache=True)
def _residual(a, b, mask, v, full):
    """full = (a, b) - A v, the stacked marginal rows ((x1, y) rows, then
    (x2, y) rows) minus the marginals of the cell values v."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    for i in range(n1):
        for k in range(ny):
            full[i * ny + k] = a[i, k]
    for j in range(n2):
        for k in range(ny):
            full[off2 + j * ny + k] = b[j, k]
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if mask[i, j, k]:
                    full[i * ny + k] -= v[i, j, k]
                    full[off2 + j * ny + k] -= v[i, j, k]


@njit(cache=True)
def _barrier(a, b, f, g, c, w, smu):
    """Merit -(a.f + b.g) - smu sum w log c  (inf if some slack is not positive)."""
    n1, n2 = c.shape
    val = -_dual_value(a, b, f, g)
    for i in range(n1):
        for j in range(n2):
            cij = c[i, j]
            if cij == np.inf:
                continue
            if cij <= 0.0:
                return np.inf
            val -= smu * w[i, j] * np.log(cij)
    return val


@njit(cache=True)
def _assemble(mask, s, c, pi, ridx, M):
    """Lower triangle of M = A B A^T on the active rows (``ridx`` maps a row
    (x1,y) -> i*ny+y, (x2,y) -> n1*ny + j*ny + y to its index in M, -1 if
    dropped; the rows of one side come before those of the other, in source
    and then label order), with
    B = s (diag(pi) + (1/c - 1) pi pi^T) per block.  Only the lower triangle
    is read by the Cholesky factorization."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    na = M.shape[0]
    for r in range(na):
        for col in range(r + 1):
            M[r, col] = 0.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf:
                continue
            sij = s[i, j]
            wij = sij * (1.0 / c[i, j] - 1.0)
            for k in range(ny):
                if not mask[i, j, k]:
                    continue
                pk = pi[i, j, k]
                r1 = ridx[i * ny + k]
                r2 = ridx[off2 + j * ny + k]
                for k2 in range(ny):
                    if not mask[i, j, k2]:
                        continue
                    h = wij * pk * pi[i, j, k2]
                    if k2 == k:
                        h += sij * pk
                    c1 = ridx[i * ny + k2]
                    c2 = ridx[off2 + j * ny + k2]
                    if k2 <= k:
                        if r1 >= 0 and c1 >= 0:
                            M[r1, c1] += h
                        if r2 >= 0 and c2 >= 0:
                            M[r2, c2] += h
                    if r1 >= 0 and c2 >= 0:
                        if c2 > r1:
                            M[c2, r1] += h
                        else:
                            M[r1, c2] += h


@njit(cache=True)
def _jacobi_scale(M, d, lower):
    """M_rc <- (M_rc d_r) d_c in place, on the lower triangle only if ``lower``;
    False if an entry is not finite (LAPACK's Cholesky does not refuse inf or
    NaN).  With d = diag(M)^-1/2 that order keeps every product finite
    (|M_rc| <= sqrt(M_rr M_cc)), where d_r d_c alone overflows for masses near
    the underflow limit."""
    n = M.shape[0]
    finite = True
    for r in range(n):
        for col in range(r + 1 if lower else n):
            M[r, col] = (M[r, col] * d[r]) * d[col]
            if not np.isfinite(M[r, col]):
                finite = False
    return finite


@njit(cache=True)
def _factor_scaled(M, bst, blocks):
    """Jacobi-scale the lower triangle of M in place and Cholesky-factor it:
    by LAPACK's dense Cholesky through NumPy (which reads the lower
    triangle only), or, with ``blocks``, by the block factor of
    ``_block_cholesky`` on the leading sources ``bst``.  If it is not
    numerically positive definite, as interior-point systems become near the
    optimum, add a small diagonal shift and retry (this only perturbs the
    search direction, never the certificate).  Returns (L, scale)."""
    n = M.shape[0]
    dsc = np.empty(n)
    for r in range(n):
        dsc[r] = 1.0 / np.sqrt(M[r, r]) if M[r, r] > 0.0 else 1.0
    if not _jacobi_scale(M, dsc, True):  # the lower triangle is all either factor reads
        return np.eye(n), dsc
    L = np.empty((n, n)) if blocks else np.empty((0, 0))
    delta = 0.0
    for attempt in range(1 + REG_RETRIES):
        if blocks:
            if _block_cholesky(M, bst, L):
                return L, dsc
        else:
            try:
                return np.linalg.cholesky(M), dsc
            except Exception:
                pass
        delta = REG_START if delta == 0.0 else delta * REG_GROWTH
        for r in range(n):
            M[r, r] += delta
    return np.eye(n), dsc  # hopeless: a scaled gradient step keeps the iteration finite


@njit(cache=True)
def _factor(M):
    """``_factor_scaled`` by LAPACK's dense Cholesky."""
    return _factor_scaled(M, np.zeros(1, dtype=np.int64), False)


@njit(cache=True)
def _lead_blocks(ridx, n1, n2, ny):
    """Row ranges of the sources of the side whose rows come first in the
    Newton matrix (x2 if n2 > n1, else x1; see ``_support``): the rows of
    its source i are rows bst[i]:bst[i + 1], in order, and bst[-1] is the
    number of its rows.  In that part of the matrix different sources do
    not couple: it is block diagonal."""
    x2 = n2 > n1
    ns = n2 if x2 else n1
    off = n1 * ny if x2 else 0
    bst = np.zeros(ns + 1, dtype=np.int64)
    for i in range(ns):
        cnt = 0
        for k in range(ny):
            if ridx[off + i * ny + k] >= 0:
                cnt += 1
        bst[i + 1] = bst[i] + cnt
    return bst


@njit(cache=True, fastmath=True)
def _dot(x, y, n):
    """sum_k<n x[k] y[k] (vectorized: fastmath lets the sum be reordered)."""
    acc = 0.0
    for k in range(n):
        acc += x[k] * y[k]
    return acc


@njit(cache=True)
def _small_cholesky(A, L):
    """Lower Cholesky factor of the small matrix whose lower triangle is A,
    into the lower triangle of L (the row-oriented textbook algorithm:
    cheaper than a LAPACK call, with its allocations, at a source's few
    rows).  False, as LAPACK, if a pivot is not positive (or not finite)."""
    m = A.shape[0]
    for r in range(m):
        Lr = L[r]
        for q in range(r + 1):
            acc = A[r, q] - _dot(Lr, L[q], q)
            if q < r:
                L[r, q] = acc / L[q, q]
            elif acc > 0.0 and acc < np.inf:
                L[r, r] = np.sqrt(acc)
            else:
                return False
    return True


@njit(cache=True, fastmath=True)
def _spd_inverse(L, U, Ai, m):
    """Ai[:m, :m] = (L L^T)^-1 from the lower Cholesky factor L[:m, :m]:
    U = L^-T (upper; its rows are the columns of L^-1), then
    Ai = U U^T, the lower triangle from contiguous row products and mirrored
    (the per-label inverses of the structured solve, without a LAPACK call
    per label)."""
    for j in range(m):  # columns j of L^-1, stored as rows of U
        U[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, m):
            acc = 0.0
            for k in range(j, i):
                acc -= L[i, k] * U[j, k]
            U[j, i] = acc / L[i, i]
    for r in range(m):
        Ur = U[r]
        for q in range(r + 1):
            Uq = U[q]
            acc = 0.0
            for k in range(r, m):
                acc += Ur[k] * Uq[k]
            Ai[r, q] = acc
            Ai[q, r] = acc


@njit(cache=True, fastmath=True)
def _lower_solve_rows(Li, X, r0):
    """X[r0:r0 + m] <- Li^-1 X[r0:r0 + m] (Li lower triangular m x m), by
    rows: each row of X is a contiguous axpy."""
    m = Li.shape[0]
    for q in range(m):
        Xq = X[r0 + q]
        for k in range(q):
            lqk = Li[q, k]
            Xk = X[r0 + k]
            for u in range(Xq.shape[0]):
                Xq[u] -= lqk * Xk[u]
        inv = 1.0 / Li[q, q]
        for u in range(Xq.shape[0]):
            Xq[u] *= inv


@njit(cache=True)
def _block_cholesky(M, bst, L):
    """Cholesky factor L (lower, dense storage) of the lower triangle of M
    using that its leading part (the rows of the larger source side, see
    ``_support``; "1" below) is block diagonal over the sources: M11 =
    diag(M_i), rows bst[i]:bst[i + 1].  With L_i = chol(M_i), the other rows
    of L's leading columns are W = M21 L11^-T (W^T = L11^-1 M21^T: one small
    triangular solve per source, on contiguous panels of M21^T) and the
    trailing block is chol(M22 - W W^T), the Schur complement on the smaller
    side, W W^T formed from gemm panels on and below the diagonal.  This is
    the factor LAPACK's dense Cholesky computes (the same elimination order)
    without its work on the zero blocks (below ``BLOCK_MIN_ROWS`` rows the
    dense call is faster; the README's speed section has the measured
    ratios, from ``benchmarks/compare_checkouts.py``).  False if a factor is
    not numerically positive definite."""
    n = M.shape[0]
    n1 = bst.shape[0] - 1
    n1a = bst[n1]
    n2a = n - n1a
    npan = max(1, (n2a + SCHUR_PANEL - 1) // SCHUR_PANEL)
    width = max(1, (n2a + npan - 1) // npan)
    WT = np.zeros((npan, max(n1a, 1), width))  # panels of W^T (leading rows, trailing columns)
    for r in range(n2a):
        Mr = M[n1a + r]
        WI = WT[r // width]
        u = r % width
        for q in range(n1a):
            WI[q, u] = Mr[q]
    for i in range(n1):
        r0 = bst[i]
        m = bst[i + 1] - r0
        if m == 0:
            continue
        Li = L[r0:r0 + m, r0:r0 + m]
        if not _small_cholesky(M[r0:r0 + m, r0:r0 + m], Li):
            return False
        for r in range(m):  # zeros left of the diagonal block (only the lower triangle is read)
            for q in range(r0):
                L[r0 + r, q] = 0.0
        for I in range(npan):
            _lower_solve_rows(Li, WT[I], r0)
    for r in range(n2a):
        Lr = L[n1a + r]
        WI = WT[r // width]
        u = r % width
        for q in range(n1a):
            Lr[q] = WI[q, u]
    if n2a == 0:
        return True
    S = np.zeros((n2a, n2a))
    for r in range(n2a):
        for q in range(r + 1):
            S[r, q] = M[n1a + r, n1a + q]
    if n1a > 0:
        for I in range(npan):
            for J in range(I + 1):
                prod = np.dot(WT[I].T, WT[J])
                for r in range(width):
                    rr = I * width + r
                    if rr >= n2a:
                        break
                    Sr = S[rr]
                    Pr = prod[r]
                    for q in range(min(width, rr - J * width + 1)):
                        Sr[J * width + q] -= Pr[q]
    try:
        Ls = np.linalg.cholesky(S)
    except Exception:
        return False
    for r in range(n2a):
        for q in range(r + 1):
            L[n1a + r, n1a + q] = Ls[r, q]
    return True


@njit(cache=True)
def _factor_blocks(M, bst):
    """``_factor_scaled`` by the block factor of ``_block_cholesky``."""
    return _factor_scaled(M, bst, True)


@njit(cache=True, fastmath=True)
def _solve_factored(L, dsc, rhs):
    """Solve (D^-1 L L^T D^-1) x = rhs: forward substitution on the rows of L,
    back substitution for L^T by columns (again rows of L, contiguous)."""
    n = L.shape[0]
    y = np.empty(n)
    for i in range(n):
        acc = rhs[i] * dsc[i]
        Li = L[i]
        for k in range(i):
            acc -= Li[k] * y[k]
        y[i] = acc / Li[i]
    for i in range(n - 1, -1, -1):
        y[i] /= L[i, i]
        xi = y[i]
        Li = L[i]
        for k in range(i):
            y[k] -= Li[k] * xi
    for r in range(n):
        y[r] *= dsc[r]
    return y


@njit(cache=True)
def _label_structure(mask, ridx):
    """Static data of the structured Newton solve: per label y the compact
    indices of its active rows (lrow[y, :lcnt[y]], x1 rows first), the
    supported blocks (blist, (nb, 2)) and the local positions of a block's
    (x1, y) and (x2, y) rows in label y (pos1, pos2; -1 if the row is not
    active or the cell is not supported)."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    m = n1 + n2
    lrow = np.full((ny, m), -1, dtype=np.int64)
    lcnt = np.zeros(ny, dtype=np.int64)
    loc = np.full((ny, m), -1, dtype=np.int64)
    for k in range(ny):
        for i in range(n1):
            r = ridx[i * ny + k]
            if r >= 0:
                loc[k, i] = lcnt[k]
                lrow[k, lcnt[k]] = r
                lcnt[k] += 1
        for j in range(n2):
            r = ridx[off2 + j * ny + k]
            if r >= 0:
                loc[k, n1 + j] = lcnt[k]
                lrow[k, lcnt[k]] = r
                lcnt[k] += 1
    nb = 0
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if mask[i, j, k]:
                    nb += 1
                    break
    blist = np.zeros((nb, 2), dtype=np.int64)
    pos1 = np.full((nb, ny), -1, dtype=np.int64)
    pos2 = np.full((nb, ny), -1, dtype=np.int64)
    t = 0
    for i in range(n1):
        for j in range(n2):
            has = False
            for k in range(ny):
                if mask[i, j, k]:
                    has = True
            if not has:
                continue
            blist[t, 0] = i
            blist[t, 1] = j
            for k in range(ny):
                if mask[i, j, k]:
                    pos1[t, k] = loc[k, i]
                    pos2[t, k] = loc[k, n1 + j]
            t += 1
    return lrow, lcnt, blist, pos1, pos2


@njit(cache=True)
def _structured_cost(mask, lcnt, nb):
    """Flops of one structured factorization (per-label inverses, the
    products D_k^-1 W_k, the lower triangle of the capacitance matrix and its
    Cholesky factor, plus a fixed cost per label for the small LAPACK calls
    and allocations, which dominates at a few rows per label) and of the
    dense Cholesky factor."""
    ny = mask.shape[2]
    na = 0
    st = 0.0
    for k in range(ny):
        na += lcnt[k]
        st += float(lcnt[k]) ** 3 + 2.0 * float(lcnt[k]) * nb + float(nb) * nb + LABEL_FLOPS
    st += float(nb) ** 3 / 3.0
    return st, float(na) ** 3 / 3.0


@njit(cache=True, fastmath=True)
def _accumulate_capacitance(G, T, pos1, pos2, blist, pi, k, lower):
    """G[t, u] += pi_t,k (T[p1_t, u] + T[p2_t, u]) for label k (T = Dinv_k W_k),
    on the lower triangle u <= t only if ``lower``."""
    nb = blist.shape[0]
    for t in range(nb):
        p1 = pos1[t, k]
        p2 = pos2[t, k]
        if p1 < 0 and p2 < 0:
            continue
        pv = pi[blist[t, 0], blist[t, 1], k]
        top = t + 1 if lower else nb
        Gt = G[t]
        if p1 >= 0 and p2 >= 0:
            T1 = T[p1]
            T2 = T[p2]
            for u in range(top):
                Gt[u] += pv * (T1[u] + T2[u])
        else:
            T1 = T[p1] if p1 >= 0 else T[p2]
            for u in range(top):
                Gt[u] += pv * T1[u]


@njit(cache=True)
def _factor_structured(mask, s, c, pi, lrow, lcnt, blist, pos1, pos2):
    """Structured factorization of M = A B A^T = D + U diag(beta) U^T: D is
    block diagonal over the labels (each block the (x1, y), (x2, y) rows of
    that label: A_y diag(s pi_y) A_y^T), U has one column A pi_b per (x1, x2)
    block b, beta_b = s_b (1/c_b - 1), and by the Woodbury identity
    M^-1 = D^-1 - D^-1 U (diag(1/beta) + G)^-1 U^T D^-1, G = U^T D^-1 U.

    Returns (mode, Dinv (ny, m, m), beta, C, csc):

    * mode 2 (every beta_b > 0, i.e. every slack c_b < 1, as on the way to
      the optimum): C is the Cholesky factor of the Jacobi-scaled symmetric
      positive definite capacitance matrix diag(1/beta) + G (scale csc), of
      which only the lower triangle is assembled;
    * mode 1 (some c_b >= 1: beta_b <= 0 makes diag(1/beta) + G indefinite
      or undefined): C is the inverse of the row-scaled capacitance matrix
      C' = diag(r) (I + diag(beta) G), r_b = 1/beta_b where |beta_b| > 1
      (else 1), well posed for beta of any sign or zero; also the fallback
      when the mode-2 factor fails numerically;
    * mode 0: some label's D block is not numerically positive definite (a
      label whose support graph is disconnected), or C' is singular: the
      caller then factors M densely."""
    n1, n2, ny = mask.shape
    m = n1 + n2
    nb = blist.shape[0]
    Dinv = np.zeros((ny, m, m))
    beta = np.zeros(nb)
    csc = np.ones(nb)
    G = np.zeros((nb, nb))
    q1v = np.empty(nb, dtype=np.int64)
    q2v = np.empty(nb, dtype=np.int64)
    pvk = np.empty(nb)
    Lk = np.zeros((m, m))
    Uk = np.zeros((m, m))
    allpos = True
    for t in range(nb):
        i = blist[t, 0]
        j = blist[t, 1]
        beta[t] = s[i, j] * (1.0 / c[i, j] - 1.0)
        if not beta[t] > 0.0:
            allpos = False
    for k in range(ny):
        nk = lcnt[k]
        if nk == 0:
            continue
        D = np.zeros((nk, nk))
        for t in range(nb):
            p1 = pos1[t, k]
            p2 = pos2[t, k]
            if p1 < 0 and p2 < 0:
                continue
            v = s[blist[t, 0], blist[t, 1]] * pi[blist[t, 0], blist[t, 1], k]
            if p1 >= 0:
                D[p1, p1] += v
            if p2 >= 0:
                D[p2, p2] += v
            if p1 >= 0 and p2 >= 0:
                D[p1, p2] += v
                D[p2, p1] += v
        d = np.empty(nk)
        for r in range(nk):
            if not D[r, r] > 0.0:
                return 0, Dinv, beta, G, csc
            d[r] = 1.0 / np.sqrt(D[r, r])
        if not _jacobi_scale(D, d, False):
            return 0, Dinv, beta, G, csc
        if not _small_cholesky(D, Lk):
            return 0, Dinv, beta, G, csc
        _spd_inverse(Lk, Uk, Dinv[k], nk)
        for r in range(nk):
            for q in range(nk):
                Dinv[k, r, q] *= d[r] * d[q]
        # G += W_k^T Dinv_k W_k, W_k the columns pi_b of U restricted to
        # label k (two entries per column: the block's x1 and x2 rows); the
        # lower triangle only where the symmetric form will be factored
        T = np.zeros((nk, nb))
        for u in range(nb):
            q1v[u] = pos1[u, k]
            q2v[u] = pos2[u, k]
            pvk[u] = pi[blist[u, 0], blist[u, 1], k]
        for r in range(nk):
            Dr = Dinv[k, r]
            Tr = T[r]
            for u in range(nb):
                acc = 0.0
                if q1v[u] >= 0:
                    acc += Dr[q1v[u]]
                if q2v[u] >= 0:
                    acc += Dr[q2v[u]]
                Tr[u] = pvk[u] * acc
        _accumulate_capacitance(G, T, pos1, pos2, blist, pi, k, allpos)
    if allpos:
        K = G.copy()
        for t in range(nb):
            K[t, t] += 1.0 / beta[t]
            csc[t] = 1.0 / np.sqrt(K[t, t])
        if _jacobi_scale(K, csc, True):
            try:
                return 2, Dinv, beta, np.linalg.cholesky(K), csc
            except Exception:
                pass
        for t in range(nb):  # the symmetric factor failed: the row-scaled form, from the full G
            csc[t] = 1.0
            for u in range(t + 1, nb):
                G[t, u] = G[u, t]
    for t in range(nb):
        big = abs(beta[t]) > 1.0
        for u in range(nb):
            G[t, u] = G[t, u] if big else beta[t] * G[t, u]
        G[t, t] += 1.0 / beta[t] if big else 1.0
    try:
        Cinv = np.linalg.inv(G)
    except Exception:
        return 0, Dinv, beta, G, csc
    for t in range(nb):
        for u in range(nb):
            if not np.isfinite(Cinv[t, u]):
                return 0, Dinv, beta, Cinv, csc
    return 1, Dinv, beta, Cinv, csc


@njit(cache=True)
def _solve_structured(fac, rhs):
    """M x = rhs by the Woodbury identity on the structured factor:
    w = D^-1 rhs, z = (diag(1/beta) + G)^-1 U^T w (mode 2: by the Cholesky
    factor; mode 1: z = C'^-1 r (beta U^T w)), x = w - D^-1 U z."""
    mode = fac[0]
    Dinv = fac[3]
    lrow, lcnt, blist, pos1, pos2 = fac[4], fac[5], fac[6], fac[7], fac[8]
    beta, Cfac, pi, csc = fac[9], fac[10], fac[11], fac[13]
    na = rhs.shape[0]
    ny = lcnt.shape[0]
    nb = blist.shape[0]
    w = np.zeros(na)
    for k in range(ny):
        nk = lcnt[k]
        for r in range(nk):
            acc = 0.0
            for q in range(nk):
                acc += Dinv[k, r, q] * rhs[lrow[k, q]]
            w[lrow[k, r]] = acc
    tb = np.zeros(nb)
    for t in range(nb):
        i = blist[t, 0]
        j = blist[t, 1]
        acc = 0.0
        for k in range(ny):
            p1 = pos1[t, k]
            p2 = pos2[t, k]
            if p1 < 0 and p2 < 0:
                continue
            e = 0.0
            if p1 >= 0:
                e += w[lrow[k, p1]]
            if p2 >= 0:
                e += w[lrow[k, p2]]
            acc += pi[i, j, k] * e
        if mode == 2:
            tb[t] = acc
        else:
            tb[t] = acc if abs(beta[t]) > 1.0 else beta[t] * acc
    if mode == 2:
        z = _solve_factored(Cfac, csc, tb)
    else:
        z = np.zeros(nb)
        for t in range(nb):
            acc = 0.0
            for u in range(nb):
                acc += Cfac[t, u] * tb[u]
            z[t] = acc
    v = np.zeros(na)
    for t in range(nb):
        i = blist[t, 0]
        j = blist[t, 1]
        for k in range(ny):
            pv = pi[i, j, k] * z[t]
            if pos1[t, k] >= 0:
                v[lrow[k, pos1[t, k]]] += pv
            if pos2[t, k] >= 0:
                v[lrow[k, pos2[t, k]]] += pv
    x = w
    for k in range(ny):
        nk = lcnt[k]
        for r in range(nk):
            acc = 0.0
            for q in range(nk):
                acc += Dinv[k, r, q] * v[lrow[k, q]]
            x[lrow[k, r]] -= acc
    return x


@njit(cache=True)
def _msolve(fac, rhs):
    """Solve M x = rhs with the iteration's factor (dense or structured)."""
    if fac[0] != 0:
        return _solve_structured(fac, rhs)
    return _solve_factored(fac[1], fac[2], rhs)


@njit(cache=True)
def _direction(fac, ridx, a, b, mask, c, pi, coef, df, dg):
    """Solve M (df, dg) = (a, b) - A[coef * pi] (coef per block) and scatter
    the solution back to (n1, ny), (n2, ny) (dropped rows get 0)."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    nr = ridx.shape[0]
    v = np.zeros((n1, n2, ny))
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf or coef[i, j] == 0.0:
                continue
            for k in range(ny):
                if mask[i, j, k]:
                    v[i, j, k] = coef[i, j] * pi[i, j, k]
    full = np.empty(nr)
    _residual(a, b, mask, v, full)
    rhs = np.empty(fac[12])
    for t in range(nr):
        if ridx[t] >= 0:
            rhs[ridx[t]] = full[t]
    x = _msolve(fac, rhs)
    for i in range(n1):
        for k in range(ny):
            t = ridx[i * ny + k]
            df[i, k] = x[t] if t >= 0 else 0.0
    for j in range(n2):
        for k in range(ny):
            t = ridx[off2 + j * ny + k]
            dg[j, k] = x[t] if t >= 0 else 0.0


@njit(cache=True)
def _curvature(mask, c, pi, df, dg, t, v):
    """t = grad h . d and v = d^T hess h d = Var_pi(df + dg) per block."""
    n1, n2, ny = mask.shape
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf:
                t[i, j] = 0.0
                v[i, j] = 0.0
                continue
            acc = 0.0
            acc2 = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    d = df[i, k] + dg[j, k]
                    acc += pi[i, j, k] * d
                    acc2 += pi[i, j, k] * d * d
            t[i, j] = acc
            v[i, j] = max(acc2 - acc * acc, 0.0)


@njit(cache=True)
def _slope(mask, c, pi, df, dg, t):
    """t = grad h . (df, dg) = sum_y pi (df + dg) per block."""
    n1, n2, ny = mask.shape
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf:
                t[i, j] = 0.0
                continue
            acc = 0.0
            for k in range(ny):
                if mask[i, j, k]:
                    acc += pi[i, j, k] * (df[i, k] + dg[j, k])
            t[i, j] = acc


@njit(cache=True)
def _support(p):
    """Marginals a = p(x1,y), b = p(x2,y), the supported cells, the map of
    active constraint rows and the number of supported blocks."""
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
    nr = (n1 + n2) * ny
    off2 = n1 * ny
    has = np.zeros(nr, dtype=np.bool_)
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                # mass below float64 resolution stays out
                if a[i, k] > 0.0 and b[j, k] > 0.0 and a[i, k] * b[j, k] / py[k] > 0.0:
                    mask[i, j, k] = True
                    has[i * ny + k] = True
                    has[off2 + j * ny + k] = True
    # the supported cells of a label form a complete bipartite graph: one
    # (x2, y) row per label is implied by the others (the gauge direction)
    for k in range(ny):
        jbest = -1
        bbest = 0.0
        for j in range(n2):
            if has[off2 + j * ny + k] and b[j, k] > bbest:
                bbest = b[j, k]
                jbest = j
        if jbest >= 0:
            has[off2 + jbest * ny + k] = False
    # the rows of the larger source side come first: the block (Schur)
    # factor eliminates them, source by source (``_block_cholesky``)
    ridx = np.full(nr, -1, dtype=np.int64)
    na = 0
    lead = off2 if n2 > n1 else 0
    for u in range(nr):
        t = (u + lead) % nr
        if has[t]:
            ridx[t] = na
            na += 1
    return a, b, py, mask, ridx, na


@njit(cache=True)
def _project(fac, ridx, a, b, mask, s, c, pi, q, target, rounds):
    """A feasible q near q0 = s softmax(f + g): corrections q += B A^T y with
    A B A^T y = (a, b) - A q, using the iteration's factor (B's blocks are
    diag(q0) + (1/c - 1) q0 q0^T / s, so a correction is q0 (u + (1/c - 1)
    pi.u), u = A^T y), repeated while the violation exceeds ``target``; a
    correction that would make a cell non-positive is not applied (the
    alternating scaling that follows does the rest)."""
    n1, n2, ny = mask.shape
    off2 = n1 * ny
    nr = ridx.shape[0]
    for i in range(n1):
        for j in range(n2):
            for k in range(ny):
                if mask[i, j, k]:
                    q[i, j, k] = s[i, j] * pi[i, j, k]
    full = np.empty(nr)
    rhs = np.empty(fac[12])
    yf = np.zeros(nr)
    dq = np.zeros((n1, n2, ny))
    for _ in range(rounds):
        _residual(a, b, mask, q, full)
        res = 0.0
        for t in range(nr):
            if ridx[t] >= 0:
                rhs[ridx[t]] = full[t]
                res = max(res, abs(full[t]))
        if res <= target:
            return
        y = _msolve(fac, rhs)
        for t in range(nr):
            yf[t] = y[ridx[t]] if ridx[t] >= 0 else 0.0
        for i in range(n1):
            for j in range(n2):
                if c[i, j] == np.inf:
                    continue
                ubar = 0.0
                for k in range(ny):
                    if mask[i, j, k]:
                        ubar += pi[i, j, k] * (yf[i * ny + k] + yf[off2 + j * ny + k])
                beta = (1.0 / c[i, j] - 1.0) * ubar
                for k in range(ny):
                    if mask[i, j, k]:
                        d = s[i, j] * pi[i, j, k] * (yf[i * ny + k] + yf[off2 + j * ny + k] + beta)
                        if not q[i, j, k] + d > 0.0:
                            return
                        dq[i, j, k] = d
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    if mask[i, j, k]:
                        q[i, j, k] += dq[i, j, k]


@njit(cache=True)
def _shift_to_slack(c, m, v):
    """Shift v[r, :] (where the marginal m[r, :] > 0) by a constant per row r
    of c so that the row's tightest constraint gets slack START_SLACK (c is
    the block slacks with rows x1, or its transpose for rows x2)."""
    for r in range(c.shape[0]):
        cmin = np.inf
        for col in range(c.shape[1]):
            cmin = min(cmin, c[r, col])
        if cmin < np.inf:
            for k in range(v.shape[1]):
                if m[r, k] > 0.0:
                    v[r, k] += cmin - START_SLACK


@njit(cache=True)
def _keep_better(p, q, mask):
    """p itself is feasible: if it has the lower F0 (no smaller I(X1,X2;Y)
    than q, e.g. S = 0 exactly), copy it into q, so that S >= 0 always."""
    n1, n2, ny = p.shape
    fp = 0.0
    fq = 0.0
    for i in range(n1):
        for j in range(n2):
            sp = 0.0
            sq = 0.0
            for k in range(ny):
                if p[i, j, k] > 0.0 and not mask[i, j, k]:
                    return  # p has mass outside the solved support (underflow)
                sp += p[i, j, k]
                sq += q[i, j, k]
            for k in range(ny):
                if p[i, j, k] > 0.0:
                    fp += p[i, j, k] * np.log(p[i, j, k] / sp)
                if q[i, j, k] > 0.0:
                    fq += q[i, j, k] * np.log(q[i, j, k] / sq)
    if fp < fq:
        _copy3(q, p)


@njit(cache=True)
def _start(a, b, py, mask, f, g, c, pi, s, w):
    """Centred start: f = log a - 1, g = log(b / p(y)) is strictly dual
    feasible, and s = block masses of q0 = a b / p(y) makes q = s softmax(f + g)
    = q0 primal feasible.  f is then shifted by a constant per x1 row and g per
    x2 column (softmax, hence q0, unchanged) so that every row and every column
    has a constraint at slack START_SLACK: a start gap near sum s0 log(max/s0)
    rather than the entropy of the block masses.  Weights of the central path
    s c = mu w: w = s c normalized, so the start is exactly centred (mu = 1) and
    each block is driven relative to its own scale (masses spanning many
    decades make the plain path s c = mu impractical).  Fills f, g, c, pi, s, w."""
    n1, n2, ny = mask.shape
    for i in range(n1):
        for k in range(ny):
            if a[i, k] > 0.0:
                f[i, k] = np.log(a[i, k]) - 1.0
    for j in range(n2):
        for k in range(ny):
            if b[j, k] > 0.0:
                g[j, k] = np.log(b[j, k] / py[k])
    _slacks(mask, f, g, c, pi)
    _shift_to_slack(c, a, f)
    _slacks(mask, f, g, c, pi)
    _shift_to_slack(c.T, b, g)
    _slacks(mask, f, g, c, pi)
    wsum = 0.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] < np.inf:
                acc = 0.0
                for k in range(ny):
                    if mask[i, j, k]:
                        acc += a[i, k] * b[j, k] / py[k]
                s[i, j] = acc
                w[i, j] = acc * c[i, j]
                wsum += w[i, j]
    for i in range(n1):
        for j in range(n2):
            w[i, j] /= wsum


@njit(cache=True)
def _gap_mu(s, c):
    """mu = sum s c, the duality gap of (q = s softmax(f + g), f, g) when q is
    feasible."""
    n1, n2 = c.shape
    mu = 0.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] < np.inf:
                mu += s[i, j] * c[i, j]
    return mu


@njit(cache=True)
def _reweight(s, c, mu, w):
    """Raise the path weight of every block whose product s c exceeds mu w
    towards s c / mu (by at most WGROWTH per iteration; weights are never
    lowered), then normalize.  The start weights estimate a block's scale by
    its start mass; a block whose optimal mass is decades larger (it carries a
    marginal that a b / p(y) puts elsewhere) is otherwise held at s c = mu w
    with a tiny w: its slack is pinned near zero with no barrier to keep it
    inside, and its fraction-to-boundary cuts every step of every block short
    (jamming, an uncertified stop).  Any positive weights define a path to
    an optimum, so this changes only the route."""
    n1, n2 = c.shape
    tot = 0.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] < np.inf:
                r = s[i, j] * c[i, j] / mu
                if r > w[i, j]:
                    w[i, j] = min(r, WGROWTH * w[i, j])
                tot += w[i, j]
    for i in range(n1):
        for j in range(n2):
            w[i, j] /= tot


@njit(cache=True)
def _certify(fac, ridx, a, b, mask, s, c, pi, f, g, q, feas_tol):
    """Certificate of the current iterate: q = s softmax(f + g) projected onto
    the marginals (Newton corrections with the iteration's factor), round-off
    removed by alternating scaling, gap bounded with (f, g).  Fills q; returns
    (gap, violation)."""
    _project(fac, ridx, a, b, mask, s, c, pi, q, 0.1 * feas_tol, PROJECT_ROUNDS)
    viol = _restore(q, a, b, 0.1 * feas_tol, RESTORE_SWEEPS)
    if viol > 0.1 * feas_tol:
        _round(q, a, b, mask)
        viol = _violation(q, a, b)
    F0, Dv = _certificate(q, mask, a, b, f, g)
    return F0 - Dv, viol


@njit(cache=True)
def _predictor(fac, ridx, a, b, mask, s, c, pi, mu, prev_alpha, coef, df, dg, t, va, dsa):
    """Affine step (sigma = 0): M d = (a, b); its slopes t, curvatures va and
    multiplier changes dsa per block; the centering sigma = mu_aff / mu,
    floored (the nonlinear constraints rarely allow the long steps Mehrotra's
    (mu_aff/mu)^3 asks for; more after a damped step), and a pure centering
    step after a very short one.  Returns (sigma, corr), corr = 0 for a pure
    centering step."""
    n1, n2, ny = mask.shape
    _fill2(coef, 0.0)
    _direction(fac, ridx, a, b, mask, c, pi, coef, df, dg)
    _curvature(mask, c, pi, df, dg, t, va)
    ax = 1.0
    asl = 1.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf:
                continue
            dsa[i, j] = s[i, j] * (t[i, j] / c[i, j] - 1.0)
            if t[i, j] > 0.0 and c[i, j] / t[i, j] < ax:
                ax = c[i, j] / t[i, j]
            if dsa[i, j] < 0.0 and -s[i, j] / dsa[i, j] < asl:
                asl = -s[i, j] / dsa[i, j]
    mu_aff = 0.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] < np.inf:
                mu_aff += (s[i, j] + asl * dsa[i, j]) * (c[i, j] - ax * t[i, j])
    mu_aff = max(mu_aff, 0.0)
    sigma = mu_aff / mu
    sigma = min(max(sigma, SIGMA_MIN if prev_alpha >= FULL_STEP else SIGMA_DAMPED), SIGMA_MAX)
    corr = 1.0
    if prev_alpha < JAM:
        sigma = 1.0
        corr = 0.0
    return sigma, corr


@njit(cache=True)
def _corrector(fac, ridx, a, b, mask, s, c, pi, w, smu, corr, t, va, dsa, coef, target, df, dg, tc):
    """Corrector with the second-order terms: M d = (a, b) - A[(target/c) pi]
    with target = smu w - ds_aff dc_aff + s v_aff / 2, where the slack change
    of the affine step to second order is dc_aff = -(t + v_aff / 2), v_aff =
    d_aff^T hess h d_aff (the curvature of the log-sum-exp: a block whose slack
    the linear model overestimates is pushed back inside).  Without these terms
    d is the Newton step of the barrier merit, a descent direction: the
    corrector falls back to it when the corrected d is not one.  Fills target,
    df, dg, tc (slopes); returns the merit's directional derivative."""
    n1, n2, ny = mask.shape
    slope = 0.0
    for attempt in range(2):
        for i in range(n1):
            for j in range(n2):
                if c[i, j] == np.inf:
                    continue
                if attempt == 0:
                    second = dsa[i, j] * (t[i, j] + 0.5 * va[i, j]) + 0.5 * s[i, j] * va[i, j]
                    target[i, j] = smu * w[i, j] + corr * second
                else:
                    target[i, j] = smu * w[i, j]
                coef[i, j] = target[i, j] / c[i, j]
        _direction(fac, ridx, a, b, mask, c, pi, coef, df, dg)
        _slope(mask, c, pi, df, dg, tc)
        slope = -_dual_value(a, b, df, dg)
        for i in range(n1):
            for j in range(n2):
                if c[i, j] < np.inf:
                    slope += smu * w[i, j] * tc[i, j] / c[i, j]
        if slope < 0.0 or corr == 0.0:
            break
    return slope


@njit(cache=True)
def _step_lengths(s, c, mu, target, tc, df, dg, ds):
    """Fraction to the boundary (eta = max(ETA_MIN, 1 - mu)) on the linearized
    slacks and multipliers, and a cap of MAXSTEP nats on the change of every
    dual variable (a Newton step on exponentials can overshoot by many nats
    where a softmax weight is tiny, and walking back costs ~1 nat per step).
    Fills the multiplier changes ds; returns (alpha_x, alpha_s, eta)."""
    n1, n2 = c.shape
    eta = max(ETA_MIN, 1.0 - mu)
    ax = 1.0
    asl = 1.0
    for i in range(n1):
        for j in range(n2):
            if c[i, j] == np.inf:
                continue
            ds[i, j] = (target[i, j] - s[i, j] * c[i, j] + s[i, j] * tc[i, j]) / c[i, j]
            if tc[i, j] > 0.0 and eta * c[i, j] / tc[i, j] < ax:
                ax = eta * c[i, j] / tc[i, j]
            if ds[i, j] < 0.0 and -eta * s[i, j] / ds[i, j] < asl:
                asl = -eta * s[i, j] / ds[i, j]
    big = 0.0
    for i in range(df.shape[0]):
        for k in range(df.shape[1]):
            big = max(big, abs(df[i, k]))
    for j in range(dg.shape[0]):
        for k in range(dg.shape[1]):
            big = max(big, abs(dg[j, k]))
    if ax * big > MAXSTEP:
        ax = MAXSTEP / big
    return ax, asl, eta


@njit(cache=True)
def _line_search(a, b, mask, f, g, c, w, df, dg, ax, slope, smu, eta, fn, gn, cn, pin):
    """Armijo backtracking (LS_TRIALS trials alpha BACKTRACK^k) on the weighted
    barrier merit, keeping the true slacks above (1 - eta) c.  Fills the
    trial's (fn, gn, cn, pin); returns (found, alpha)."""
    n1, n2, ny = mask.shape
    phi = _barrier(a, b, f, g, c, w, smu)
    for _ in range(LS_TRIALS):
        for i in range(n1):
            for k in range(ny):
                fn[i, k] = f[i, k] + ax * df[i, k]
        for j in range(n2):
            for k in range(ny):
                gn[j, k] = g[j, k] + ax * dg[j, k]
        _slacks(mask, fn, gn, cn, pin)
        interior = True
        for i in range(n1):
            for j in range(n2):
                if cn[i, j] < np.inf and not cn[i, j] > (1.0 - eta) * c[i, j]:
                    interior = False
        if interior:
            phin = _barrier(a, b, fn, gn, cn, w, smu)
            if phin <= phi + ARMIJO * ax * min(slope, 0.0) + 1e-13 * abs(phi):
                return True, ax
        ax *= BACKTRACK
    return False, ax


@njit(cache=True)
def _update_multipliers(s, c, ds, asl, smu, w):
    """s += asl ds, kept within the band [smu w/(SBAND c), SBAND smu w/c]
    (c the new slacks)."""
    n1, n2 = c.shape
    for i in range(n1):
        for j in range(n2):
            if c[i, j] < np.inf:
                v = s[i, j] + asl * ds[i, j]
                lo = smu * w[i, j] / (SBAND * c[i, j])
                s[i, j] = min(max(v, lo), SBAND * smu * w[i, j] / c[i, j])


@njit(cache=True)
def _finish(p, a, b, mask, q, f, g, it, gap, viol, status, qbest, fbest, gbest, best_gap, best_viol,
            gap_tol, feas_tol):
    """Final answer.  Certified: squeeze the last round-off out of the
    marginals (a slightly infeasible q can sit below the optimum and show a
    negative gap), keep p if better, re-certify.  Otherwise (or if that fails)
    the best certified iterate seen.  Returns (q, f, g, it, gap, viol, status)."""
    if status == 0:
        if _restore(q, a, b, FINAL_TARGET, FINAL_SWEEPS) > FINAL_TARGET:
            _round(q, a, b, mask)
        _keep_better(p, q, mask)
        viol = _violation(q, a, b)
        F0, Dv = _certificate(q, mask, a, b, f, g)
        gap = F0 - Dv
        if gap <= gap_tol and viol <= feas_tol:
            return q, f, g, it, gap, viol, 0
        status = 2
    if best_gap < np.inf:
        _keep_better(p, qbest, mask)
        F0, Dv = _certificate(qbest, mask, a, b, fbest, gbest)
        return qbest, fbest, gbest, it, min(best_gap, F0 - Dv), max(best_viol, _violation(qbest, a, b)), status
    return q, f, g, it, gap, viol, status


@njit(cache=True)
def solve_one(p, gap_tol, feas_tol, max_iter):
    """Solve one distribution.  Returns (q, f, g, iterations, gap_nats, violation, status)."""
    n1, n2, ny = p.shape
    a, b, py, mask, ridx, na = _support(p)
    q = np.zeros((n1, n2, ny))
    f = np.zeros((n1, ny))
    g = np.zeros((n2, ny))
    if not mask.any():
        return q, f, g, 0, np.inf, _violation(q, a, b), 3
    c = np.zeros((n1, n2))
    pi = np.zeros((n1, n2, ny))
    s = np.zeros((n1, n2))
    w = np.zeros((n1, n2))
    _start(a, b, py, mask, f, g, c, pi, s, w)
    lrow, lcnt, blist, pos1, pos2 = _label_structure(mask, ridx)
    cost_structured, cost_dense = _structured_cost(mask, lcnt, blist.shape[0])
    use_structured = cost_structured < 0.5 * cost_dense
    bst = _lead_blocks(ridx, n1, n2, ny)
    use_blocks = na >= BLOCK_MIN_ROWS
    M = np.empty((0, 0)) if use_structured else np.empty((na, na))
    Dinv = np.zeros((1, 1, 1))
    beta = np.zeros(1)
    Cinv = np.zeros((1, 1))
    csc = np.ones(1)
    df = np.zeros((n1, ny))
    dg = np.zeros((n2, ny))
    fn = np.zeros((n1, ny))
    gn = np.zeros((n2, ny))
    cn = np.zeros((n1, n2))
    pin = np.zeros((n1, n2, ny))
    t = np.zeros((n1, n2))
    va = np.zeros((n1, n2))
    tc = np.zeros((n1, n2))
    coef = np.zeros((n1, n2))
    dsa = np.zeros((n1, n2))
    ds = np.zeros((n1, n2))
    target = np.zeros((n1, n2))
    qbest = q.copy()
    fbest = f.copy()
    gbest = g.copy()
    best_gap = np.inf
    best_viol = np.inf
    gap = np.inf
    viol = np.inf
    status = 1
    stall = 0
    prev_alpha = 1.0
    best_mu = np.inf
    failed = False
    it = 0
    while True:
        mu = _gap_mu(s, c)
        mode = 0
        if use_structured:
            mode, Dinv, beta, Cinv, csc = _factor_structured(mask, s, c, pi, lrow, lcnt, blist, pos1, pos2)
        if mode != 0:
            L, dsc = _factor(np.eye(1))
        else:
            if M.shape[0] != na:
                M = np.empty((na, na))
            _assemble(mask, s, c, pi, ridx, M)
            L, dsc = _factor_blocks(M, bst) if use_blocks else _factor(M)
        fac = (mode, L, dsc, Dinv, lrow, lcnt, blist, pos1, pos2, beta, Cinv, pi, na, csc)
        # certification: once mu (the gap of the current pair when q is
        # feasible) is near the tolerance, or when the iteration is about to stop
        if mu <= CERTIFY * gap_tol or it >= max_iter or stall >= STALL - 1 or failed:
            gap, viol = _certify(fac, ridx, a, b, mask, s, c, pi, f, g, q, feas_tol)
            if not np.isfinite(gap):
                status = 3
                break
            if viol <= feas_tol and gap < best_gap:
                stall = 0 if gap < PROGRESS * best_gap else stall + 1
                best_gap = gap
                best_viol = viol
                _copy3(qbest, q)
                _copy2(fbest, f)
                _copy2(gbest, g)
            else:
                stall += 1
            if gap <= gap_tol and viol <= feas_tol:
                status = 0
                break
            if stall >= STALL or failed:
                status = 2  # no progress at working precision
                break
        else:
            # progress is measured on mu until certificates are computed
            stall = 0 if mu < PROGRESS * best_mu else stall + 1
            best_mu = min(best_mu, mu)
        if it >= max_iter:
            break
        it += 1
        _reweight(s, c, mu, w)
        sigma, corr = _predictor(fac, ridx, a, b, mask, s, c, pi, mu, prev_alpha, coef, df, dg, t, va, dsa)
        smu = sigma * mu
        slope = _corrector(fac, ridx, a, b, mask, s, c, pi, w, smu, corr, t, va, dsa, coef, target, df, dg, tc)
        ax, asl, eta = _step_lengths(s, c, mu, target, tc, df, dg, ds)
        found, ax = _line_search(a, b, mask, f, g, c, w, df, dg, ax, slope, smu, eta, fn, gn, cn, pin)
        if not found:
            failed = True  # certify the current iterate, then stop
            continue
        # a short pure centering step is not followed by another one (at the
        # centre the centering direction vanishes and the steps would shrink
        # forever): the next step is a corrector again
        prev_alpha = ax if corr != 0.0 else max(ax, JAM)
        _copy2(f, fn)
        _copy2(g, gn)
        _copy2(c, cn)
        _copy3(pi, pin)
        _update_multipliers(s, c, ds, asl, smu, w)
    return _finish(p, a, b, mask, q, f, g, it, gap, viol, status, qbest, fbest, gbest, best_gap, best_viol,
                   gap_tol, feas_tol)


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
