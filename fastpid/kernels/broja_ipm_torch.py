"""Batched interior-point solver for the dual of the BROJA program, in torch.

A whole-batch tensor port of the Numba kernel :mod:`fastpid.kernels.broja_ipm`:
the same steps under the same names (``_start``, ``_certify``, ``_predictor``,
``_corrector``, ``_step_lengths``, ``_line_search``, ``_update_multipliers``,
``_finish``) and the same settings (:mod:`fastpid.kernels._constants`).
For each distribution p of the batch (B, n1, n2, ny), with a = p(x1, y),
b = p(x2, y) and the support {a(x1,y) > 0 and b(x2,y) > 0}:

    maximize    D(f, g) = sum a f + sum b g
    subject to  h(x1,x2) = logsumexp_y (f(x1,y) + g(x2,y)) <= 0   for every block,

the Lagrange dual of min F0(q) = sum q log(q / s) over the couplings q of the
two marginals; its block multipliers s(x1,x2) are the block masses of the
primal optimum, q = s softmax_y(f + g).  Primal-dual interior point in
(f, g, s) on the weighted central path s c = mu w (c = -h > 0, w the products
s0 c0 of the centred start f = log a - 1, g = log(b / p(y)), s0 = block masses
of a b / p(y), with f and g shifted per row and column as in the Numba kernel).  Per iteration, for every unfinished distribution at once:

* slacks c and softmax weights pi of every block (``torch.logsumexp``), the
  gap mu = sum s c;
* the Newton matrix M = A B A^T, B block diagonal with blocks
  s (diag(pi) + (1/c - 1) pi pi^T), written densely through strided views;
  rows without supported cells and one redundant (x2, y) row per label (the
  gauge) are identity rows, so every item has the same matrix size; Jacobi
  scaling and batched ``torch.linalg.cholesky_ex``: from BLOCK_MIN_ROWS rows
  on, as the Numba kernel, without forming M (``_factor_blocks``: the larger
  source side leads, its block-diagonal part is factored per source, then
  triangular solves and one Cholesky factor of the Schur complement on the
  smaller side); items whose factorization fails regularized (REG_START, then x REG_GROWTH per retry, up to
  REG_RETRIES retries, as the Numba kernel) and refactored alone; predictor and corrector share the
  factor (batched triangular solves).  Where it needs under half the flops
  (many labels, few blocks; the Numba kernel's ``_structured_cost`` rule for
  the chunk's shape, ``_use_structured``), the same system is solved instead
  as D + U diag(beta) U^T (``_factor_structured``, ``_solve_structured``):
  D block diagonal over the labels, its (n1 + n2)-square label blocks stacked
  into the batch dimension, Jacobi-scaled, Cholesky-factored and inverted in
  one batched call; U one column A pi per block, beta = s (1/c - 1); the
  Woodbury correction with the row-scaled capacitance matrix
  diag(r) (I + diag(beta) U^T D^-1 U), well posed for beta < 0 and beta = 0.
  Items whose structured factor fails are factored densely in that iteration
  (as the Numba kernel).  Directions, projections and certificates use
  whichever factor the item has (``_Factor``, ``_solve_any``); the
  certificate never depends on how the step was found;
* Mehrotra predictor-corrector: sigma = mu_aff / mu, floored at 0.1 (0.3 after
  a damped step), capped at SIGMA_MAX; the corrector (second-order terms, with the
  curvature of the slacks along the affine step, as the Numba kernel) and the
  plain barrier-Newton fallback direction are solved together as two
  right-hand sides, and each item takes the fallback when its corrected
  direction is not a descent direction of the weighted barrier merit
  -(a f + b g) - sigma mu sum w log c; a pure centering step after a step
  shorter than 0.3;
* fraction-to-boundary (eta = max(ETA_MIN, 1 - mu)) on the linearized slacks and
  multipliers, a cap of 4 nats on any |df|, |dg|, then a vectorized Armijo
  backtracking on the merit: the trial steps alpha 0.8^k are evaluated in
  groups (k = 0, 1..5, 6..15, 16..35, 36..59, each only for the items that
  have not yet accepted; a trial must also keep the true slacks above
  (1 - eta) c) and each item takes its first acceptable one; an item whose
  line search fails is certified once more and stops;
* certification, per item, once mu <= 10 tol (or at its last iteration, or
  when it stalls): q = s softmax(f + g) projected onto the marginals by up to
  3 Newton corrections reusing the iteration's factor (a correction that
  would make a cell non-positive is not applied), then alternating scaling
  (20 sweeps at most), then the shifted-dual certificate: (f, g) shifted so
  that the tightest block of each x1 row is active is dual feasible, so its
  value D is a rigorous lower bound on min F0 and gap = F0(q) - D bounds the
  error of I_q(X1,X2;Y) and of every atom;
* stall detection (15 iterations without 1 % progress of mu, then of the
  certified gap), best certified iterate kept; a certified item gets a last
  alternating-scaling squeeze, p itself replaces q when it is better
  (S >= 0 exactly), and is re-certified.

Items stop individually (certified, stalled, failed or out of iterations) and
leave the working set.  The caller (``method="exact"`` in :mod:`fastpid.methods.exact`)
re-solves every item this solver does not certify with the Numba kernel on the
CPU.  All arithmetic is float64 whatever the input dtype, on the input's device.
"""
from __future__ import annotations

import math

import torch

from ._constants import (ARMIJO, BACKTRACK, BLOCK_MIN_ROWS, CERTIFY, ETA_MIN, FINAL_SWEEPS, FINAL_TARGET, FULL_STEP, JAM,
                         LABEL_FLOPS, LS_TRIALS, MAXSTEP, PROGRESS, PROJECT_ROUNDS, REG_GROWTH, REG_RETRIES, REG_START,
                         RESTORE_SWEEPS, SBAND, SIGMA_DAMPED, SIGMA_MAX, SIGMA_MIN, STALL, START_SLACK,
                         WGROWTH)

# line-search trial groups: [k0, k1) exponents of BACKTRACK, evaluated together
# (LS_TRIALS trials in all)
_LS_GROUPS = tuple((k0, min(k1, LS_TRIALS)) for k0, k1 in ((0, 1), (1, 6), (6, 16), (16, 36), (36, LS_TRIALS))
                   if k0 < LS_TRIALS)
_LS_ELEMENTS = 1 << 24  # at most this many trial cells evaluated at once


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
    # out of sweeps: keep the last iterate (as the Numba kernel)
    q[idx], viol[idx] = qi, _violation(qi, ai, bi)
    return q, viol


def _round(q, a, b, mask):
    """Round q exactly onto the marginals, label by label (as the Numba
    kernel): scale down the (x1, y) rows above a, then the (x2, y) columns above
    b, and give the remaining deficits back as their normalized outer product
    on the support."""
    rs = q.sum(2)
    q = q * torch.where(rs > a, a / torch.where(rs > a, rs, 1.0), 1.0)[:, :, None, :]
    cs = q.sum(1)
    q = q * torch.where(cs > b, b / torch.where(cs > b, cs, 1.0), 1.0)[:, None, :, :]
    er = (a - q.sum(2)).clamp(min=0.0)                      # (W, n1, ny)
    ec = (b - q.sum(1)).clamp(min=0.0)                      # (W, n2, ny)
    tot = er.sum(1)                                         # (W, ny)
    add = er[:, :, None, :] * ec[:, None, :, :] / torch.where(tot > 0, tot, 1.0)[:, None, None, :]
    return q + torch.where(mask & (tot > 0)[:, None, None, :], add, 0.0)


def _round_where(q, a, b, mask, viol, target):
    """_round on the items whose violation exceeds ``target``; returns (q, violation)."""
    need = viol > target
    if not bool(need.any()):
        return q, viol
    q, viol = q.clone(), viol.clone()
    idx = need.nonzero().squeeze(1)
    qi = _round(q[idx], a[idx], b[idx], mask[idx])
    q[idx], viol[idx] = qi, _violation(qi, a[idx], b[idx])
    return q, viol


def _certificate(q, mask, a, b, f, g):
    """(F0(q), dual lower bound D) in nats per item, for the dual guess (f, g)
    shifted per x1 row to dual feasibility (max_x2 logsumexp_y(f + g) = 0)."""
    s = torch.where(mask, q, 0.0).sum(-1, keepdim=True)
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


def _keep_better(p, q, mask):
    """p itself is feasible: where it has the lower F0 (e.g. S = 0 exactly)
    and no mass outside the solved support, it replaces q (so S >= 0)."""
    outside = ((p > 0) & ~mask).flatten(1).any(1)

    def f0(x):
        s = x.sum(-1, keepdim=True)
        pos = x > 0
        return torch.where(pos, x * torch.log(torch.where(pos, x, 1.0) / torch.where(s > 0, s, 1.0)),
                           0.0).sum((1, 2, 3))

    use = ~outside & (f0(p) < f0(q))
    return torch.where(use[:, None, None, None], p, q)


def _slacks(mask, blk, f, g):
    """c = -logsumexp_y(f + g) per block (1 on blocks without support, which
    then contribute nothing anywhere) and pi = softmax_y(f + g) on the
    supported cells (0 elsewhere).  Leading dims broadcast."""
    fg = torch.where(mask, f.unsqueeze(-2) + g.unsqueeze(-3), -math.inf)
    lse = torch.logsumexp(fg, dim=-1)
    lse = torch.where(blk, lse, 0.0)
    pi = torch.where(mask, torch.exp(fg - lse[..., None]), 0.0)
    return torch.where(blk, -lse, 1.0), pi


def _barrier(a, b, f, g, c, w, blk, smu):
    """Merit -(a.f + b.g) - smu sum w log c per item (inf if a slack of a
    supported block is not positive).  ``smu`` broadcasts against the leading
    dims."""
    ok = ~blk | (c > 0)
    logc = torch.log(torch.where(blk & ok, c, 1.0))
    val = (-(a * f).sum((-2, -1)) - (b * g).sum((-2, -1))
           - smu * (w * logc).sum((-2, -1)))
    return torch.where(ok.flatten(-2).all(-1), val, math.inf)


def _block_hessian(blk, s, c, pi):
    """Blocks of B: s (diag(pi) + (1/c - 1) pi pi^T), zero on empty blocks;
    (W, n1, n2, ny, ny)."""
    sw = torch.where(blk, s * (1.0 / c - 1.0), 0.0)
    H = sw[..., None, None] * pi[..., :, None] * pi[..., None, :]
    return H + torch.diag_embed(s[..., None] * pi)


def _assemble(H, v1, v2, act):
    """Dense batched S = V A B A^T V + diag(~act) from the per-block matrices
    H of B, V = diag(v1, v2) (v = 0 on the inactive rows, which become
    identity rows).

    The (x1,y) x (x1,y') block of A B A^T is block diagonal with sum_x2 H,
    the (x2,y) x (x2,y') block with sum_x1 H, and the off-diagonal
    (x1,y) x (x2,y') block is H itself: each is scaled on the small per-block
    tensors and written through a strided 5-d view of S."""
    W, n1, n2, ny, _ = H.shape
    nr = (n1 + n2) * ny
    o2 = n1 * ny
    H11 = H.sum(2) * v1[..., :, None] * v1[..., None, :]                       # (W, n1, ny, ny)
    H22 = H.sum(1) * v2[..., :, None] * v2[..., None, :]                       # (W, n2, ny, ny)
    H12 = H * v1[:, :, None, :, None] * v2[:, None, :, None, :]                # (W, n1, n2, ny, ny)
    M = torch.zeros(W, nr, nr, dtype=H.dtype, device=H.device)
    st = (nr * nr, ny * nr, nr, ny, 1)
    M11 = M.as_strided((W, n1, ny, n1, ny), st, 0)
    M22 = M.as_strided((W, n2, ny, n2, ny), st, o2 * nr + o2)
    M12 = M.as_strided((W, n1, ny, n2, ny), st, o2)
    M21 = M.as_strided((W, n2, ny, n1, ny), st, o2 * nr)
    M11.diagonal(dim1=1, dim2=3).copy_(H11.permute(0, 2, 3, 1))
    M22.diagonal(dim1=1, dim2=3).copy_(H22.permute(0, 2, 3, 1))
    M12.copy_(H12.permute(0, 1, 3, 2, 4))
    M21.copy_(H12.permute(0, 2, 4, 1, 3))
    M.diagonal(dim1=1, dim2=2).add_((~act).to(H.dtype))
    return M


def _jacobi(H, act):
    """Jacobi scaling of A B A^T from the diagonals of H: 1/sqrt(diag) on the
    active rows (1 where the diagonal is not positive, as the Numba kernel),
    0 on the inactive ones.  Returns (v1 (W, n1, ny), v2 (W, n2, ny), v (W, nr))."""
    W, n1, n2, ny, _ = H.shape
    hd = H.diagonal(dim1=-2, dim2=-1)                                          # (W, n1, n2, ny)
    d = torch.cat((hd.sum(2).reshape(W, -1), hd.sum(1).reshape(W, -1)), 1)
    v = torch.where(act, torch.where(d > 0, torch.rsqrt(torch.where(d > 0, d, 1.0)), 1.0), 0.0)
    return v[:, : n1 * ny].reshape(W, n1, ny), v[:, n1 * ny:].reshape(W, n2, ny), v


def _with_retries(factor, parts, identities):
    """``factor(*parts)`` -> (outputs, bad (W,) bool) on a batch, then the
    items in ``bad`` refactored alone with a diagonal shift on the parts for
    which ``identities()`` (called only when an item fails) returns an
    identity (None: not shifted), REG_START then x REG_GROWTH, cumulative,
    up to REG_RETRIES retries, as the Numba kernel; items still not positive
    definite get, in each output, the identity of its part or zero
    (identity factors: a scaled gradient step, as the Numba kernel).
    Returns the outputs."""
    outs, bad = factor(*parts)
    if bool(bad.any()):
        eyes = identities()
        idx = bad.nonzero().squeeze(1)
        sub = [x[idx] for x in parts]
        delta = 0.0
        for _attempt in range(REG_RETRIES):
            delta = REG_START if delta == 0.0 else delta * REG_GROWTH
            sub = [x if e is None else x + delta * e for x, e in zip(sub, eyes)]
            outs_i, still = factor(*sub)
            for o, oi in zip(outs, outs_i):
                o[idx] = oi
            bad[idx] = still
            if not bool(still.any()):
                break
            idx, sub = idx[still], [x[still] for x in sub]
        if bool(bad.any()):
            for o, e in zip(outs, eyes):
                o[bad] = 0.0 if e is None else e
    return outs


def _factor(H, act):
    """Jacobi-scaled M = A B A^T (identity on the inactive rows) and its
    batched Cholesky factor, with per-item regularized retries
    (``_with_retries``).  Returns (L, dsc) with M = D^-1 L L^T D^-1 on the
    active rows, D = diag(dsc)."""
    v1, v2, dsc = _jacobi(H, act)
    S = _assemble(H, v1, v2, act)

    def factor(S):
        L, info = torch.linalg.cholesky_ex(S)
        return (L,), info != 0

    (L,) = _with_retries(factor, (S,), lambda: (torch.eye(S.shape[-1], dtype=S.dtype, device=S.device),))
    return L, dsc


class _Blocks:
    """The block (Schur) Cholesky factor of the Jacobi-scaled M (``_factor_blocks``):
    M = [[La, 0], [X^T, Lb]] [[La^T, X], [0, Lb^T]] in the order (leading
    side, trailing side), the leading side the larger one (x2 if n2 > n1,
    as in the Numba kernel): ``La`` (W, n_a, ny, ny) the per-source factors
    of its block-diagonal part, ``X`` (W, n_a ny, n_b ny) = La^-1 M_ab and
    ``Lb`` (W, n_b ny, n_b ny) the Cholesky factor of the Schur complement
    M_bb - X^T X.  Indexing takes items."""

    __slots__ = ("La", "X", "Lb", "lead2")

    def __init__(self, La, X, Lb, lead2):
        self.La, self.X, self.Lb, self.lead2 = La, X, Lb, lead2

    def __getitem__(self, idx):
        return _Blocks(self.La[idx], self.X[idx], self.Lb[idx], self.lead2)

    def solve(self, r):
        """x with M x = r for the scaled rows r (W, nr, R), x1 rows first."""
        W, nr, R = r.shape
        n_a, ny = self.La.shape[1], self.La.shape[2]
        oa = n_a * ny
        if self.lead2:
            ra, rb = r[:, nr - oa:], r[:, : nr - oa]
        else:
            ra, rb = r[:, :oa], r[:, oa:]
        ya = torch.linalg.solve_triangular(self.La, ra.reshape(W, n_a, ny, R), upper=False).reshape(W, oa, R)
        yb = torch.linalg.solve_triangular(self.Lb, rb - self.X.mT @ ya, upper=False)
        xb = torch.linalg.solve_triangular(self.Lb.mT, yb, upper=True)
        xa = torch.linalg.solve_triangular(self.La.mT, (ya - self.X @ xb).reshape(W, n_a, ny, R),
                                           upper=True).reshape(W, oa, R)
        return torch.cat((xb, xa), 1) if self.lead2 else torch.cat((xa, xb), 1)


def _block_diagonal(Hd):
    """Dense (W, n ny, n ny) block-diagonal matrix from its blocks (W, n, ny, ny)."""
    W, n, ny, _ = Hd.shape
    M = torch.zeros(W, n * ny, n * ny, dtype=Hd.dtype, device=Hd.device)
    st = (n * ny * n * ny, ny * n * ny, n * ny, ny, 1)
    M.as_strided((W, n, ny, n, ny), st, 0).diagonal(dim1=1, dim2=3).copy_(Hd.permute(0, 2, 3, 1))
    return M


def _factor_blocks(H, act):
    """The factor of ``_factor`` without forming M: the rows of the larger
    source side lead, and since different sources of one side do not
    couple, their part of M is block diagonal (the per-source sums of H);
    it is factored source by source, X = La^-1 M_ab by batched triangular
    solves and the Schur complement M_bb - X^T X on the smaller side by one
    batched Cholesky factor (the Numba kernel's ``_block_cholesky``, batched).
    The same Jacobi scaling, identity rows for the inactive ones, per-item
    regularized retries (the shift on the whole diagonal) and identity
    factors for items that stay indefinite.  Returns (_Blocks, dsc)."""
    W, n1, n2, ny, _ = H.shape
    v1, v2, dsc = _jacobi(H, act)
    lead2 = n2 > n1
    a1, a2 = act[:, : n1 * ny].reshape(W, n1, ny), act[:, n1 * ny:].reshape(W, n2, ny)
    if lead2:
        Hs, va, vb, aa, ab = H.transpose(1, 2), v2, v1, a2, a1
    else:
        Hs, va, vb, aa, ab = H, v1, v2, a1, a2
    n_a, n_b = Hs.shape[1], Hs.shape[2]
    Maa = Hs.sum(2) * va[..., :, None] * va[..., None, :] + torch.diag_embed((~aa).to(H.dtype))
    Mbb = _block_diagonal(Hs.sum(1) * vb[..., :, None] * vb[..., None, :] + torch.diag_embed((~ab).to(H.dtype)))
    Mab = (Hs * va[:, :, None, :, None] * vb[:, None, :, None, :]).permute(0, 1, 3, 2, 4).reshape(W, n_a, ny, n_b * ny)

    def factor(Maa, Mab, Mbb):
        La, info_a = torch.linalg.cholesky_ex(Maa)
        X = torch.linalg.solve_triangular(La, Mab, upper=False).reshape(Maa.shape[0], n_a * ny, n_b * ny)
        Lb, info_b = torch.linalg.cholesky_ex(Mbb - X.mT @ X)
        bad = (info_a != 0).any(1) | (info_b != 0) | ~torch.isfinite(X).all(2).all(1)
        return (La, X, Lb), bad

    La, X, Lb = _with_retries(factor, (Maa, Mab, Mbb),
                              lambda: (torch.eye(ny, dtype=H.dtype, device=H.device), None,
                                       torch.eye(n_b * ny, dtype=H.dtype, device=H.device)))
    return _Blocks(La, X, Lb, lead2), dsc


def _factor_newton(H, act):
    """The dense path's factor: the block (Schur) factor from BLOCK_MIN_ROWS
    rows on (as the Numba kernel), the dense Cholesky factor below."""
    W, n1, n2, ny, _ = H.shape
    if (n1 + n2 - 1) * ny >= BLOCK_MIN_ROWS:
        return _factor_blocks(H, act)
    return _factor(H, act)


def _solve(L, dsc, rhs):
    """(D^-1 L L^T D^-1) x = rhs for rhs (W, n) or (W, n, R) (two batched
    triangular solves; x = 0 on the inactive rows, where dsc = 0)."""
    vec = rhs.dim() == 2
    r = (rhs[..., None] if vec else rhs) * dsc[:, :, None]
    if isinstance(L, _Blocks):
        x = L.solve(r) * dsc[:, :, None]
    else:
        y = torch.linalg.solve_triangular(L, r, upper=False)
        x = torch.linalg.solve_triangular(L.mT, y, upper=True) * dsc[:, :, None]
    return x[..., 0] if vec else x


# --------------------------------------------------------------------------- structured Newton solve
def _structured_cost(n1, n2, ny):
    """Flops of one structured factorization and of the dense Cholesky factor
    for an item of shape (n1, n2, ny) with full support: the Numba kernel's
    ``_structured_cost`` rule (n1 + n2 - 1 active rows per label, n1 n2
    blocks), applied here to the chunk's shape.  Returns (structured, dense)."""
    m = n1 + n2 - 1
    nb = n1 * n2
    st = ny * (float(m) ** 3 + 2.0 * m * nb + float(nb) * nb + LABEL_FLOPS) + float(nb) ** 3 / 3.0
    return st, float(m * ny) ** 3 / 3.0


def _use_structured(n1, n2, ny):
    """The Numba kernel's choice: structured when it needs under half the flops."""
    st, dense = _structured_cost(n1, n2, ny)
    return st < 0.5 * dense


def _factor_structured(blk, s, c, pi, act):
    """Structured factorization of M = A B A^T = D + U diag(beta) U^T for a
    batch (as the Numba kernel's ``_factor_structured``): D block diagonal
    over the labels, each block the (x1, y), (x2, y) rows of label y
    (A_y diag(s pi_y) A_y^T, an (n1 + n2)-square bipartite system; the labels
    are stacked into the batch dimension, Jacobi-scaled, Cholesky-factored
    and inverted by batched ``torch.linalg`` calls), U one column A pi_b per
    (x1, x2) block b, beta_b = s_b (1/c_b - 1).  The capacitance matrix
    C' = diag(r) (I + diag(beta) G), G = U^T D^-1 U, r_b = 1/beta_b where
    |beta_b| > 1 (else 1), stays well posed for beta of any sign or zero
    (c >= 1); it is LU-factored (``lu_factor_ex``; the Numba kernel inverts it).

    Returns (ok (W,), Dinv (W, ny, m, m), Cf = (LU, pivots) of C', bs (W, nb),
    the scaling r beta of U^T w).  Dinv is zero on the inactive rows and
    columns; ok is False for items with a label block that is not
    numerically positive definite or a capacitance matrix that is singular or
    not finite (the caller factors those items densely, as the Numba kernel)."""
    W, n1, n2, ny = pi.shape
    m, nb = n1 + n2, n1 * n2
    dt, dev = pi.dtype, pi.device
    sp = s[..., None] * pi                                                     # (W, n1, n2, ny)
    actl = torch.cat((act[:, : n1 * ny].reshape(W, n1, ny), act[:, n1 * ny:].reshape(W, n2, ny)), 1)
    actl = actl.transpose(1, 2)                                                # (W, ny, m)
    Dm = torch.zeros(W, ny, m, m, dtype=dt, device=dev)
    diag = torch.cat((sp.sum(2), sp.sum(1)), 1).transpose(1, 2)                # (W, ny, m)
    Dm[..., :n1, n1:] = sp.permute(0, 3, 1, 2)
    Dm[..., n1:, :n1] = sp.permute(0, 3, 2, 1)
    both = actl[..., :, None] & actl[..., None, :]
    Dm = torch.where(both, Dm, 0.0)
    ok = ~(actl & ~(diag > 0)).flatten(1).any(1)
    dg = torch.where(actl, diag, 1.0)
    d = torch.where(dg > 0, torch.rsqrt(torch.where(dg > 0, dg, 1.0)), 1.0)    # Jacobi, 1 on inactive rows
    Ds = Dm * d[..., :, None] * d[..., None, :]
    Ds.diagonal(dim1=-2, dim2=-1).copy_(torch.where(actl, diag * d * d, 1.0))
    Lk, info = torch.linalg.cholesky_ex(Ds.reshape(W * ny, m, m))
    ok = ok & (info.reshape(W, ny) == 0).all(1)
    Lk = torch.where(ok.repeat_interleave(ny)[:, None, None], Lk,
                     torch.eye(m, dtype=dt, device=dev))
    Dinv = torch.cholesky_inverse(Lk).reshape(W, ny, m, m) * d[..., :, None] * d[..., None, :]
    Dinv = torch.where(both, Dinv, 0.0)
    # G = U^T D^-1 U: G[(i,j),(a,b)] = sum_y pi_ijy pi_aby (X11[i,a] + X12[i,b] + X12[a,j] + X22[j,b])
    # (X = D_y^-1 in blocks), as two batched products, over a for the first two terms and over b
    # for the last two; Dk = D^-1 with the labels innermost, read by symmetry (X[r, q] = X[q, r])
    Dk = Dinv.permute(0, 2, 3, 1).contiguous()                                 # (W, m, m, ny)
    Y = (Dk[:, :n1, :n1, None] + Dk[:, :n1, None, n1:]).mul_(pi[:, None])      # (W, a, i, j, y)
    Ga = (Y.reshape(W, n1, nb, ny) @ pi.transpose(2, 3)).reshape(W, n1, n1, n2, n2)  # (W, a, i, j, b)
    Y = (Dk[:, n1:, :n1, None] + Dk[:, n1:, None, n1:]).mul_(pi[:, None])      # (W, b, i, j, y)
    Gb = (Y.reshape(W, n2, nb, ny) @ pi.permute(0, 2, 3, 1)).reshape(W, n2, n1, n2, n1)  # (W, b, i, j, a)
    del Y, Dk
    G = (Ga.permute(0, 2, 3, 1, 4) + Gb.permute(0, 2, 3, 4, 1)).reshape(W, nb, nb)
    beta = torch.where(blk, s * (1.0 / c - 1.0), 0.0).reshape(W, nb)
    big = beta.abs() > 1.0
    Cp = torch.where(big[..., None], G, beta[..., None] * G)
    Cp.diagonal(dim1=-2, dim2=-1).add_(torch.where(big, 1.0 / torch.where(big, beta, 1.0), 1.0))
    LU, piv, cinfo = torch.linalg.lu_factor_ex(Cp)
    ok = ok & (cinfo == 0) & torch.isfinite(LU).flatten(1).all(1) & torch.isfinite(Dinv).flatten(1).all(1)
    Dinv = torch.where(ok[:, None, None, None], Dinv, 0.0)
    LU = torch.where(ok[:, None, None], LU, torch.eye(nb, dtype=dt, device=dev))
    bs = torch.where(big, 1.0, beta)
    return ok, Dinv, (LU, piv), bs


def _solve_structured(Dinv, Cf, bs, pi, rhs):
    """M x = rhs (rhs (W, nr, R)) by the Woodbury identity on the structured
    factor: w = D^-1 rhs, z = C'^-1 (r beta U^T w), x = w - D^-1 U z (zero on
    the inactive rows)."""
    W, n1, n2, ny = pi.shape
    R = rhs.shape[-1]
    o2 = n1 * ny
    rl = torch.cat((rhs[:, :o2].reshape(W, n1, ny, R), rhs[:, o2:].reshape(W, n2, ny, R)), 1).transpose(1, 2)
    w = Dinv @ rl                                                              # (W, ny, m, R)
    w1, w2 = w[:, :, :n1].transpose(1, 2), w[:, :, n1:].transpose(1, 2)        # (W, n1|n2, ny, R)
    tb = pi @ w1 + (pi.transpose(1, 2) @ w2).transpose(1, 2)                   # (W, n1, n2, R)
    z = torch.linalg.lu_solve(Cf[0], Cf[1], tb.reshape(W, n1 * n2, R) * bs[..., None]).reshape(W, n1, n2, R)
    v1 = pi.transpose(2, 3) @ z                                                # (W, n1, ny, R)
    v2 = pi.permute(0, 2, 3, 1) @ z.transpose(1, 2)                            # (W, n2, ny, R)
    x = w - Dinv @ torch.cat((v1, v2), 1).transpose(1, 2)
    x = x.transpose(1, 2)                                                      # (W, m, ny, R)
    return torch.cat((x[:, :n1].reshape(W, o2, R), x[:, n1:].reshape(W, n2 * ny, R)), 1)


class _Factor:
    """The iteration's factor of M for the items of a working set: the
    structured factor (``Dinv``, ``Cf``, ``bs``, ``pi``; None on the dense
    path) and the dense factor (``L``, ``dsc``) of the items in ``dense``
    ((W,) bool: all of them on the dense path, those whose structured factor
    failed otherwise); ``pos`` maps an item to its row of ``L``."""

    __slots__ = ("L", "dsc", "dense", "pos", "Dinv", "Cf", "bs", "pi")

    def __init__(self, L, dsc, dense, Dinv=None, Cf=None, bs=None, pi=None):
        self.L, self.dsc, self.dense = L, dsc, dense
        self.pos = torch.cumsum(dense.to(torch.int64), 0) - 1
        self.Dinv, self.Cf, self.bs, self.pi = Dinv, Cf, bs, pi

    def take(self, idx):
        """The factor of the items ``idx`` (an index tensor)."""
        dense = self.dense[idx]
        sub = self.pos[idx][dense]
        st = (None,) * 4 if self.Dinv is None else (self.Dinv[idx], (self.Cf[0][idx], self.Cf[1][idx]),
                                                       self.bs[idx], self.pi[idx])
        return _Factor(self.L[sub], self.dsc[sub], dense, *st)


def _factor_any(structured, blk, s, c, pi, act):
    """The iteration's factor: on the dense path (``structured`` False) the
    Jacobi-scaled dense Cholesky factor of every item; on the structured path
    the structured factor, and the dense one of the items where it fails."""
    W = pi.shape[0]
    if not structured:
        L, dsc = _factor_newton(_block_hessian(blk, s, c, pi), act)
        return _Factor(L, dsc, torch.ones(W, dtype=torch.bool, device=pi.device))
    ok, Dinv, Cf, bs = _factor_structured(blk, s, c, pi, act)
    dense = ~ok
    if bool(dense.any()):
        di = dense.nonzero().squeeze(1)
        L, dsc = _factor_newton(_block_hessian(blk[di], s[di], c[di], pi[di]), act[di])
    else:
        nr = act.shape[1]
        L = torch.zeros(0, nr, nr, dtype=pi.dtype, device=pi.device)
        dsc = torch.zeros(0, nr, dtype=pi.dtype, device=pi.device)
    return _Factor(L, dsc, dense, Dinv, Cf, bs, pi)


def _solve_any(fac, rhs):
    """M x = rhs for rhs (W, n) or (W, n, R) with the iteration's factor
    (structured or dense per item); x = 0 on the inactive rows."""
    vec = rhs.dim() == 2
    r = rhs[..., None] if vec else rhs
    if fac.Dinv is None:
        x = _solve(fac.L, fac.dsc, r)
    else:
        x = _solve_structured(fac.Dinv, fac.Cf, fac.bs, fac.pi, r)
        if bool(fac.dense.any()):
            x[fac.dense] = _solve(fac.L, fac.dsc, r[fac.dense])
    return x[..., 0] if vec else x


def _rows(u1, u2):
    """Stack (W, n1, ny [, R]) and (W, n2, ny [, R]) into constraint rows (W, nr [, R])."""
    W = u1.shape[0]
    tail = u1.shape[3:]
    return torch.cat((u1.reshape(W, -1, *tail), u2.reshape(W, -1, *tail)), 1)


def _direction(fac, act, a, b, pi, coef):
    """Solve M (df, dg) = (a, b) - A[coef * pi] for coef (W, n1, n2, R) (R
    right-hand sides); returns df (W, n1, ny, R), dg (W, n2, ny, R), zero on
    the dropped rows."""
    W, n1, n2, ny = pi.shape
    cp = coef[:, :, :, None, :] * pi[..., None]              # (W, n1, n2, ny, R)
    full = _rows(a[..., None] - cp.sum(2), b[..., None] - cp.sum(1))
    x = _solve_any(fac, torch.where(act[..., None], full, 0.0))
    R = x.shape[-1]
    return x[:, : n1 * ny].reshape(W, n1, ny, R), x[:, n1 * ny:].reshape(W, n2, ny, R)


def _curvature(pi, df, dg):
    """t = grad h . d and v = d^T hess h d = Var_pi(df + dg) per block."""
    d = df.unsqueeze(-2) + dg.unsqueeze(-3)
    t = (pi * d).sum(-1)
    return t, ((pi * d * d).sum(-1) - t * t).clamp(min=0.0)


def _project(fac, act, a, b, mask, blk, s, c, pi, target, rounds):
    """A feasible q near q0 = s softmax(f + g), per item: corrections
    q += s pi (u + (1/c - 1) pi.u), u = A^T y, A B A^T y = (a, b) - A q (the
    iteration's factor), repeated while the violation exceeds ``target``; a
    correction that would make a cell non-positive is not applied and ends
    that item's projection."""
    W, n1, n2, ny = pi.shape
    q = torch.where(mask, s[..., None] * pi, 0.0)
    run = torch.ones(W, dtype=torch.bool, device=q.device)
    for _ in range(rounds):
        full = _rows(a - q.sum(2), b - q.sum(1))
        rhs = torch.where(act, full, 0.0)
        run = run & (rhs.abs().amax(1) > target)
        if not bool(run.any()):
            break
        idx = run.nonzero().squeeze(1)
        y = _solve_any(fac.take(idx), rhs[idx])
        y1 = y[:, : n1 * ny].reshape(-1, n1, ny)
        y2 = y[:, n1 * ny:].reshape(-1, n2, ny)
        u = y1[:, :, None, :] + y2[:, None, :, :]
        pii, mi = pi[idx], mask[idx]
        beta = (1.0 / c[idx] - 1.0) * (pii * u).sum(-1)
        d = torch.where(mi, s[idx][..., None] * pii * (u + beta[..., None]), 0.0)
        qi = q[idx]
        qn = qi + d
        ok = (~mi | (qn > 0)).flatten(1).all(1)
        q[idx] = torch.where(ok[:, None, None, None] & mi, qn, qi)
        run[idx] = ok
    return q


def _setup(p):
    """Marginals, support mask, supported blocks and active constraint rows."""
    B, n1, n2, ny = p.shape
    a = p.sum(2)
    b = p.sum(1)
    py = a.sum(1)
    inv = torch.where(py > 0, 1.0 / torch.where(py > 0, py, 1.0), 0.0)
    q0 = a[:, :, None, :] * b[:, None, :, :] * inv[:, None, None, :]
    # mass below float64 resolution stays out
    mask = (a > 0)[:, :, None, :] & (b > 0)[:, None, :, :] & (q0 > 0)
    q0 = torch.where(mask, q0, 0.0)
    has1 = mask.any(2)                                      # (B, n1, ny)
    has2 = mask.any(1)                                      # (B, n2, ny)
    # drop one redundant (x2, y) row per label (the gauge): the supported row of largest b
    jbest = torch.where(has2, b, -1.0).argmax(1)            # (B, ny), first maximum
    drop = torch.nn.functional.one_hot(jbest, n2).transpose(1, 2).bool() & has2.any(1)[:, None, :]
    has2 = has2 & ~drop
    act = torch.cat((has1.reshape(B, -1), has2.reshape(B, -1)), 1)
    return a, b, py, mask, q0, act


# --------------------------------------------------------------------------- driver
def solve_batch(p, gap_tol, feas_tol, max_iter, *, chunk=None, structured=None):
    """Solve a batch of normalized distributions ``p`` (B, n1, n2, ny), any
    floating dtype, on ``p.device``; computed in float64.

    ``gap_tol`` is in nats.  Returns float64 / int64 tensors on ``p.device``:
    (q, f, g, iterations, gap_nats, violation, status) with the Numba kernel's
    status codes (0 converged, 1 max_iter, 2 stalled, 3 numerical failure).
    ``structured``: how the Newton systems are solved: None (default) chooses
    by the Numba kernel's flop rule for the chunk's shape (structured per-label
    factors with a Woodbury correction for many labels and few blocks, the
    dense Cholesky factor otherwise), True or False forces one (the certificate
    is the same either way).
    ``chunk``: distributions solved together (default: on CUDA, what fits in
    a sixth of the free device memory at about 4 (n1+n2)^2 ny^2 + 3 n1 n2 ny^2
    + 40 n1 n2 ny float64 numbers per distribution on the dense path, about
    6 ny (n1+n2)^2 + 8 (n1 n2)^2 + 3 n1 n2 ny max(n1, n2) + 40 n1 n2 ny on the
    structured one; on the CPU 2**24 numbers, which keeps the working set
    cache-friendly).
    """
    if structured is not None and not isinstance(structured, bool):
        raise TypeError(f"structured must be None, True or False, got {structured!r}")
    p = p.detach().to(torch.float64)
    B, n1, n2, ny = p.shape
    nr = (n1 + n2) * ny
    if structured is None:
        structured = _use_structured(n1, n2, ny)
    if chunk is None:
        if structured:
            m, nb = n1 + n2, n1 * n2
            per_item = 6 * ny * m * m + 8 * nb * nb + 3 * n1 * n2 * ny * max(n1, n2) + 40 * n1 * n2 * ny
        else:
            per_item = 4 * nr * nr + 3 * n1 * n2 * ny * ny + 40 * n1 * n2 * ny
        budget = 1 << 24
        if p.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(p.device)
            budget = max(budget, free // (8 * 6))
        chunk = max(1, budget // per_item)
    else:
        chunk = max(1, int(chunk))
    outs = [_solve_chunk(p[s:s + chunk], gap_tol, feas_tol, max_iter, structured) for s in range(0, B, chunk)]
    if len(outs) == 1:
        return outs[0]
    return tuple(torch.cat([o[k] for o in outs]) for k in range(7))


def _line_search(a, b, mask, blk, f, g, c, pi, w, df, dg, ax, slope, smu, eta):
    """Vectorized Armijo backtracking on the weighted barrier merit.  Returns
    (found, alpha, f, g, c, pi) with the accepted trial's values (the old ones
    where no trial was accepted)."""
    W, n1, n2, ny = mask.shape
    dev, dt = f.device, f.dtype
    phi = _barrier(a, b, f, g, c, w, blk, smu)
    thr = ARMIJO * slope.clamp(max=0.0)
    floor = (1.0 - eta)[:, None, None] * c
    found = torch.zeros(W, dtype=torch.bool, device=dev)
    alpha = torch.zeros(W, dtype=dt, device=dev)
    fo, go, co, pio = f.clone(), g.clone(), c.clone(), pi.clone()
    for k0, k1 in _LS_GROUPS:
        pending = (~found).nonzero().squeeze(1)
        if pending.numel() == 0:
            break
        pw = torch.pow(torch.tensor(BACKTRACK, dtype=dt, device=dev), torch.arange(k0, k1, dtype=dt, device=dev))
        step = max(1, _LS_ELEMENTS // ((k1 - k0) * n1 * n2 * ny))  # bound the trial tensors
        for s0 in range(0, pending.numel(), step):
            idx = pending[s0:s0 + step]
            al = ax[idx, None] * pw                                           # (Wi, K)
            fn = f[idx, None] + al[..., None, None] * df[idx, None]
            gn = g[idx, None] + al[..., None, None] * dg[idx, None]
            mi, bi = mask[idx, None], blk[idx, None]
            cn, pin = _slacks(mi, bi, fn, gn)
            interior = (~bi | (cn > floor[idx, None])).flatten(-2).all(-1)
            phin = _barrier(a[idx, None], b[idx, None], fn, gn, cn, w[idx, None], bi, smu[idx, None])
            ph = phi[idx, None]
            okk = interior & (phin <= ph + thr[idx, None] * al + 1e-13 * ph.abs())
            anyok = okk.any(1)
            if not bool(anyok.any()):
                continue
            kf = okk.to(torch.int8).argmax(1)
            rows = anyok.nonzero().squeeze(1)
            sel = idx[rows]
            kk = kf[rows]
            alpha[sel] = al[rows, kk]
            fo[sel], go[sel], co[sel], pio[sel] = fn[rows, kk], gn[rows, kk], cn[rows, kk], pin[rows, kk]
            found[sel] = True
    return found, alpha, fo, go, co, pio


def _start(a, b, py, mask, blk, q0):
    """Centred start (as the Numba kernel): f = log a - 1, g = log(b / p(y))
    strictly dual feasible, then f shifted per x1 row and g per x2 column so
    that each has a constraint at slack START_SLACK; s = block masses of
    q0 = a b / p(y); weights w = s c (normalized).  Returns (f, g, c, pi, s, w)."""
    f = torch.where(a > 0, torch.log(torch.where(a > 0, a, 1.0)) - 1.0, 0.0)
    pyd = torch.where(py > 0, py, 1.0)[:, None, :]
    g = torch.where(b > 0, torch.log(torch.where(b > 0, b, 1.0) / pyd), 0.0)
    c, pi = _slacks(mask, blk, f, g)
    cmin = torch.where(blk, c, math.inf).amin(-1)  # (W, n1)
    f = f + torch.where((a > 0) & torch.isfinite(cmin)[..., None], (cmin - START_SLACK)[..., None], 0.0)
    c, pi = _slacks(mask, blk, f, g)
    cmin = torch.where(blk, c, math.inf).amin(-2)  # (W, n2)
    g = g + torch.where((b > 0) & torch.isfinite(cmin)[..., None], (cmin - START_SLACK)[..., None], 0.0)
    c, pi = _slacks(mask, blk, f, g)
    s = q0.sum(-1)
    w = torch.where(blk, s * c, 0.0)
    w = w / w.sum((1, 2), keepdim=True)
    return f, g, c, pi, s, w


def _gap_mu(blk, s, c):
    """mu = sum s c per item."""
    return torch.where(blk, s * c, 0.0).sum((1, 2))


def _reweight(blk, s, c, mu, w):
    """Path weights raised towards s c / mu where that exceeds them (at most
    WGROWTH per iteration), then normalized (as the Numba kernel)."""
    r = torch.where(blk, s * c / mu[:, None, None], 0.0)
    w = torch.where(r > w, torch.minimum(r, WGROWTH * w), w)
    return w / w.sum((1, 2), keepdim=True)


def _certify(fac, act, a, b, mask, blk, s, c, pi, f, g, feas_tol):
    """Certificate of the current iterates (as the Numba kernel): q projected
    onto the marginals, round-off removed by alternating scaling, gap bounded
    with (f, g).  Returns (q, gap, violation)."""
    qc = _project(fac, act, a, b, mask, blk, s, c, pi, 0.1 * feas_tol, PROJECT_ROUNDS)
    qc, vc = _restore(qc, a, b, 0.1 * feas_tol, RESTORE_SWEEPS)
    qc, vc = _round_where(qc, a, b, mask, vc, 0.1 * feas_tol)
    F0, Dv = _certificate(qc, mask, a, b, f, g)
    return qc, F0 - Dv, vc


def _predictor(fac, act, a, b, blk, s, c, pi, mu, prev_alpha):
    """Affine step (sigma = 0): M d = (a, b); slopes t, curvatures va,
    multiplier changes dsa per block, and the centering sigma = mu_aff / mu
    floored (more after a damped step), a pure centering step after a very
    short one.  Returns (t, va, dsa, sigma, corr)."""
    W, n1, n2, ny = pi.shape
    dt, dev = pi.dtype, pi.device
    zero = torch.zeros(W, n1, n2, 1, dtype=dt, device=dev)
    dfa, dga = _direction(fac, act, a, b, pi, zero)
    t, va = _curvature(pi, dfa[..., 0], dga[..., 0])
    dsa = torch.where(blk, s * (t / c - 1.0), 0.0)
    tp = blk & (t > 0)
    ax = torch.where(tp, c / torch.where(tp, t, 1.0), math.inf).flatten(1).amin(1).clamp(max=1.0)
    dn = blk & (dsa < 0)
    asl = torch.where(dn, -s / torch.where(dn, dsa, -1.0), math.inf).flatten(1).amin(1).clamp(max=1.0)
    mu_aff = torch.where(blk, (s + asl[:, None, None] * dsa) * (c - ax[:, None, None] * t), 0.0)
    mu_aff = mu_aff.sum((1, 2)).clamp(min=0.0)
    floor_ = torch.where(prev_alpha >= FULL_STEP, torch.full_like(mu, SIGMA_MIN), torch.full_like(mu, SIGMA_DAMPED))
    sigma = torch.minimum(torch.maximum(mu_aff / mu, floor_), torch.full_like(mu, SIGMA_MAX))
    jam = prev_alpha < JAM
    sigma = torch.where(jam, 1.0, sigma)
    corr = (~jam).to(dt)
    return t, va, dsa, sigma, corr


def _corrector(fac, act, a, b, blk, s, c, pi, w, smu, corr, t, va, dsa):
    """Corrector with the second-order terms (ds_aff dc_aff with dc_aff =
    -(t + va / 2), and s va / 2) and the plain barrier-Newton step (a descent
    direction of the merit) solved together as two right-hand sides; each item
    takes the corrected direction when it is a descent direction.  Returns
    (target, df, dg, tc, slope)."""
    smw = smu[:, None, None] * w
    tgt0 = smw + corr[:, None, None] * (dsa * (t + 0.5 * va) + 0.5 * s * va)
    tgt = torch.stack((tgt0, smw), -1)                              # (W, n1, n2, 2)
    coef = torch.where(blk[..., None], tgt / c[..., None], 0.0)
    df2, dg2 = _direction(fac, act, a, b, pi, coef)
    tc2 = (pi[..., None] * (df2[:, :, None] + dg2[:, None, :])).sum(-2)  # (W, n1, n2, 2)
    slope2 = (-(a[..., None] * df2).sum((1, 2)) - (b[..., None] * dg2).sum((1, 2))
              + torch.where(blk[..., None], smw[..., None] * tc2 / c[..., None], 0.0).sum((1, 2)))
    use0 = (slope2[:, 0] < 0.0) | (corr == 0.0)
    k = torch.where(use0, 0, 1)
    df = torch.where(use0[:, None, None], df2[..., 0], df2[..., 1])
    dg = torch.where(use0[:, None, None], dg2[..., 0], dg2[..., 1])
    tc = torch.where(use0[:, None, None], tc2[..., 0], tc2[..., 1])
    target = torch.where(use0[:, None, None], tgt[..., 0], tgt[..., 1])
    slope = slope2.gather(1, k[:, None])[:, 0]
    return target, df, dg, tc, slope


def _step_lengths(blk, s, c, mu, target, tc, df, dg):
    """Fraction to the boundary (eta = max(ETA_MIN, 1 - mu)) on the linearized
    slacks and multipliers, and the cap of MAXSTEP nats on every |df|, |dg|.
    Returns (ds, alpha_x, alpha_s, eta)."""
    eta = torch.clamp(1.0 - mu, min=ETA_MIN)
    e3 = eta[:, None, None]
    ds = torch.where(blk, (target - s * c + s * tc) / c, 0.0)
    tp = blk & (tc > 0)
    ax = torch.where(tp, e3 * c / torch.where(tp, tc, 1.0), math.inf).flatten(1).amin(1).clamp(max=1.0)
    dn = blk & (ds < 0)
    asl = torch.where(dn, -e3 * s / torch.where(dn, ds, -1.0), math.inf).flatten(1).amin(1).clamp(max=1.0)
    big = torch.maximum(df.abs().flatten(1).amax(1), dg.abs().flatten(1).amax(1))
    ax = torch.where(ax * big > MAXSTEP, MAXSTEP / torch.where(big > 0, big, 1.0), ax)
    return ds, ax, asl, eta


def _update_multipliers(blk, s, c, ds, asl, smu, w, found):
    """s + asl ds kept within [smu w/(SBAND c), SBAND smu w/c] (c the new
    slacks), on the items whose line search found a step."""
    smw = smu[:, None, None] * w
    sn = s + asl[:, None, None] * ds
    lo = smw / (SBAND * c)
    hi = SBAND * smw / c
    sn = torch.where(blk, torch.minimum(torch.maximum(sn, lo), hi), 0.0)
    return torch.where(found[:, None, None], sn, s)


def _solve_chunk(p, gap_tol, feas_tol, max_iter, structured):
    B, n1, n2, ny = p.shape
    dev, dt = p.device, p.dtype
    a, b, py, mask, q0, act = _setup(p)
    blk = mask.any(-1)

    # outputs (filled as items finish)
    q_out = torch.zeros_like(p)
    f_out = torch.zeros(B, n1, ny, dtype=dt, device=dev)
    g_out = torch.zeros(B, n2, ny, dtype=dt, device=dev)
    it_out = torch.zeros(B, dtype=torch.int64, device=dev)
    gap_out = torch.full((B,), math.inf, dtype=dt, device=dev)
    viol_out = _violation(q_out, a, b)
    st_out = torch.full((B,), 3, dtype=torch.int64, device=dev)

    # working set: items with a nonempty support
    orig = blk.flatten(1).any(1).nonzero().squeeze(1)
    if orig.numel() == 0:
        return q_out, f_out, g_out, it_out, gap_out, viol_out, st_out
    pw_, a, b, py, mask, q0, act, blk = (t[orig] for t in (p, a, b, py, mask, q0, act, blk))
    W = orig.numel()
    f, g, c, pi, s, w = _start(a, b, py, mask, blk, q0)
    q = torch.zeros_like(q0)

    it = torch.zeros(W, dtype=torch.int64, device=dev)
    stall = torch.zeros(W, dtype=torch.int64, device=dev)
    prev_alpha = torch.ones(W, dtype=dt, device=dev)
    best_mu = torch.full((W,), math.inf, dtype=dt, device=dev)
    best_gap = torch.full((W,), math.inf, dtype=dt, device=dev)
    best_viol = torch.full((W,), math.inf, dtype=dt, device=dev)
    gap = torch.full((W,), math.inf, dtype=dt, device=dev)
    viol = _violation(q, a, b)
    failed = torch.zeros(W, dtype=torch.bool, device=dev)
    qbest, fbest, gbest = q.clone(), f.clone(), g.clone()

    while True:
        mu = _gap_mu(blk, s, c)
        fac = _factor_any(structured, blk, s, c, pi, act)

        # certification: once mu (the gap of the current pair when q is
        # feasible) is near the tolerance, or when the item is about to stop
        status = torch.full((W,), -1, dtype=torch.int64, device=dev)
        cert = (mu <= CERTIFY * gap_tol) | (it >= max_iter) | (stall >= STALL - 1) | failed
        if bool(cert.any()):
            ci = cert.nonzero().squeeze(1)
            qc, gc, vc = _certify(fac.take(ci), act[ci], a[ci], b[ci], mask[ci], blk[ci], s[ci], c[ci],
                                  pi[ci], f[ci], g[ci], feas_tol)
            q[ci], gap[ci], viol[ci] = qc, gc, vc
            fin = torch.isfinite(gc)
            bg = best_gap[ci]
            better = fin & (vc <= feas_tol) & (gc < bg)
            stall[ci] = torch.where(better & (gc < PROGRESS * bg), 0, stall[ci] + 1)
            if bool(better.any()):
                bi = ci[better]
                best_gap[bi], best_viol[bi] = gc[better], vc[better]
                qbest[bi], fbest[bi], gbest[bi] = qc[better], f[bi], g[bi]
            stc = torch.full_like(ci, -1)
            stc = torch.where(~fin, 3, stc)
            stc = torch.where((stc < 0) & (gc <= gap_tol) & (vc <= feas_tol), 0, stc)
            stc = torch.where((stc < 0) & ((stall[ci] >= STALL) | failed[ci]), 2, stc)
            status[ci] = stc
        # progress is measured on mu until certificates are computed
        nc = ~cert
        stall = torch.where(nc, torch.where(mu < PROGRESS * best_mu, 0, stall + 1), stall)
        best_mu = torch.where(nc, torch.minimum(best_mu, mu), best_mu)
        status = torch.where((status < 0) & (it >= max_iter), 1, status)

        done = status >= 0
        if bool(done.any()):
            fi = done.nonzero().squeeze(1)
            _finish(fi, orig, status, pw_, a, b, mask, q, f, g, it, gap, viol, best_gap, best_viol,
                    qbest, fbest, gbest, gap_tol, feas_tol, (q_out, f_out, g_out, it_out, gap_out, viol_out, st_out))
            rest = (~done).nonzero().squeeze(1)
            if rest.numel() == 0:
                break
            orig = orig[rest]
            (pw_, a, b, py, mask, act, blk, f, g, c, pi, s, w, q, it, stall, prev_alpha, best_mu,
             best_gap, best_viol, gap, viol, failed, qbest, fbest, gbest, mu) = (
                t[rest] for t in (pw_, a, b, py, mask, act, blk, f, g, c, pi, s, w, q, it, stall,
                                  prev_alpha, best_mu, best_gap, best_viol, gap, viol, failed, qbest,
                                  fbest, gbest, mu))
            fac = fac.take(rest)
            W = orig.numel()
        it = it + 1

        w = _reweight(blk, s, c, mu, w)
        t, va, dsa, sigma, corr = _predictor(fac, act, a, b, blk, s, c, pi, mu, prev_alpha)
        smu = sigma * mu
        target, df, dg, tc, slope = _corrector(fac, act, a, b, blk, s, c, pi, w, smu, corr, t, va, dsa)
        ds, ax, asl, eta = _step_lengths(blk, s, c, mu, target, tc, df, dg)
        found, alpha, fn, gn, cn, pin = _line_search(a, b, mask, blk, f, g, c, pi, w, df, dg, ax, slope, smu, eta)
        # items whose line search failed keep their state: certified next, then stop
        failed = failed | ~found
        # a short pure centering step is not followed by another one (as the Numba kernel)
        prev_alpha = torch.where(found, torch.where(corr == 0.0, alpha.clamp(min=JAM), alpha), prev_alpha)
        f, g, c, pi = fn, gn, cn, pin
        s = _update_multipliers(blk, s, c, ds, asl, smu, w, found)
    return q_out, f_out, g_out, it_out, gap_out, viol_out, st_out


def _finish(fi, orig, status, p, a, b, mask, q, f, g, it, gap, viol, best_gap, best_viol,
            qbest, fbest, gbest, gap_tol, feas_tol, outs):
    """Final answers of the items ``fi`` (working-set indices) into ``outs``."""
    q_out, f_out, g_out, it_out, gap_out, viol_out, st_out = outs
    st = status[fi].clone()
    pf, af, bf, mf = p[fi], a[fi], b[fi], mask[fi]
    q_f, f_f, g_f = q[fi].clone(), f[fi].clone(), g[fi].clone()
    gap_f, viol_f = gap[fi].clone(), viol[fi].clone()
    # certified: squeeze the last round-off out of the marginals, keep p if
    # better, and re-certify (else fall back to the best iterate below)
    c0 = st == 0
    if bool(c0.any()):
        ci = c0.nonzero().squeeze(1)
        qc, vr = _restore(q_f[ci], af[ci], bf[ci], FINAL_TARGET, FINAL_SWEEPS)
        qc, _ = _round_where(qc, af[ci], bf[ci], mf[ci], vr, FINAL_TARGET)
        qc = _keep_better(pf[ci], qc, mf[ci])
        vc = _violation(qc, af[ci], bf[ci])
        F0, Dv = _certificate(qc, mf[ci], af[ci], bf[ci], f_f[ci], g_f[ci])
        gc = F0 - Dv
        ok = (gc <= gap_tol) & (vc <= feas_tol)
        q_f[ci] = torch.where(ok[:, None, None, None], qc, q_f[ci])
        gap_f[ci] = torch.where(ok, gc, gap_f[ci])
        viol_f[ci] = torch.where(ok, vc, viol_f[ci])
        st[ci] = torch.where(ok, 0, 2)
    # not certified: hand back the best certified iterate seen
    bgf = best_gap[fi]
    ub = (st != 0) & torch.isfinite(bgf)
    if bool(ub.any()):
        ui = ub.nonzero().squeeze(1)
        w = fi[ui]
        qb = _keep_better(pf[ui], qbest[w], mf[ui])
        F0, Dv = _certificate(qb, mf[ui], af[ui], bf[ui], fbest[w], gbest[w])
        q_f[ui], f_f[ui], g_f[ui] = qb, fbest[w], gbest[w]
        gap_f[ui] = torch.minimum(bgf[ui], F0 - Dv)
        viol_f[ui] = torch.maximum(best_viol[w], _violation(qb, af[ui], bf[ui]))
    o = orig[fi]
    q_out[o], f_out[o], g_out[o] = q_f, f_f, g_f
    it_out[o], gap_out[o], viol_out[o], st_out[o] = it[fi], gap_f, viol_f, st
