"""``method="cvx"``: the conic reference solver (CVXPY), posed well.

The BROJA program  min_q  sum_k rel_entr(q_k, s_block(k))  (= -H_q(Y|X1,X2))
subject to q(x1,y) = p(x1,y), q(x2,y) = p(x2,y), with one variable per
*supported* cell only (p(x1,y) > 0 and p(x2,y) > 0).  ``rel_entr`` keeps the
problem in exponential-cone form that SCS and Clarabel solve directly; there is
no log of a variable or division by one.

Solver status is reported in ``info["status"]``; a status other than
"optimal" gives ``converged=False``.  No gradient: torch inputs are solved on
the CPU in float64, the results come back on the input's device and dtype, and
a backward pass through the atoms raises a clear ``RuntimeError``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._validation import check_positive_float, check_positive_int
from ..exceptions import SolverError
from ..information import atoms_from_q
from . import Solution, register
from ._common import NP, TORCH, diagnostics_to_tensors, host64, torch, violation

SOLVERS = ("SCS", "CLARABEL")


@dataclass
class Support:
    """The support of the BROJA program and its constraint matrices.

    Only cells (x1, x2, y) with p(x1, y) > 0 and p(x2, y) > 0 can carry mass in
    a feasible q; everything else is fixed at zero.  For each y the supported
    cells form a complete bipartite graph between {x1: p(x1,y)>0} and
    {x2: p(x2,y)>0}, so the constraint rows have exactly one redundancy per
    label y.
    """

    cells: np.ndarray      # (m, 3) integer (x1, x2, y) of the supported cells
    block: np.ndarray      # (m,) index of the (x1, x2) block of each cell
    n_blocks: int
    A: sp.csr_matrix       # constraint rows: (x1,y) rows then (x2,y) rows, zero rows removed
    c: np.ndarray          # right-hand side p(x1,y), p(x2,y) of those rows


def broja_support(p1: np.ndarray) -> Support:
    """Support and sparse constraints of the BROJA program for one distribution."""
    n1, n2, ny = p1.shape
    a = p1.sum(axis=1)
    b = p1.sum(axis=0)
    mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
    cells = np.argwhere(mask)
    m = len(cells)
    i, j, k = cells[:, 0], cells[:, 1], cells[:, 2]
    blk_id = i * n2 + j
    uniq, block = np.unique(blk_id, return_inverse=True)
    rows1 = i * ny + k
    rows2 = n1 * ny + j * ny + k
    A = sp.csr_matrix(
        (np.ones(2 * m), (np.concatenate([rows1, rows2]), np.concatenate([np.arange(m)] * 2))),
        shape=(n1 * ny + n2 * ny, m),
    )
    rhs = np.concatenate([a.ravel(), b.ravel()])
    keep = np.flatnonzero(rhs > 0)
    return Support(cells=cells, block=block, n_blocks=len(uniq), A=A[keep], c=rhs[keep])


def _solver_kwargs(solver, tol, max_iter):
    if solver == "SCS":
        return dict(eps_abs=tol, eps_rel=tol, max_iters=max_iter)
    return dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=max_iter)


def solve_one(p1, *, solver="SCS", tol=1e-9, max_iter=100_000, verbose=False):
    """Solve one normalized distribution; returns (q, status, iterations, objective)."""
    import cvxpy as cp

    sup = broja_support(p1)
    m = len(sup.cells)
    q = np.zeros_like(p1)
    if m == 0:
        return q, "optimal", 0, 0.0
    blocks = sp.csr_matrix((np.ones(m), (sup.block, np.arange(m))), shape=(sup.n_blocks, m))
    expand = (blocks.T @ blocks).tocsr()  # cell -> total mass of its block
    x = cp.Variable(m, nonneg=True)
    objective = cp.Minimize(cp.sum(cp.rel_entr(x, expand @ x)))
    prob = cp.Problem(objective, [sup.A @ x == sup.c])
    try:
        prob.solve(solver=solver, verbose=verbose, **_solver_kwargs(solver, tol, max_iter))
    except cp.error.SolverError as exc:
        raise SolverError(f"CVXPY solver {solver} failed: {exc}") from None
    if x.value is None:
        raise SolverError(f"CVXPY solver {solver} returned no solution (status {prob.status!r})")
    q[tuple(sup.cells.T)] = np.maximum(x.value, 0.0)
    iters = prob.solver_stats.num_iters if prob.solver_stats is not None else -1
    return q, prob.status, iters or 0, prob.value


def options(
    *,
    solver: str = "SCS",
    tol: float = 1e-9,
    max_iter: int = 100_000,
    feas_tol: float = 1e-7,
    verbose: bool = False,
) -> dict:
    """Conic reference.  ``solver``: "SCS" (default) or "CLARABEL"; ``tol``
    is passed as the solver's absolute/relative accuracy; ``feas_tol`` the max
    marginal violation of q for ``converged``; ``verbose`` the solver's log."""
    solver = str(solver).upper()
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    return dict(
        solver=solver,
        tol=check_positive_float(tol, "tol"),
        max_iter=check_positive_int(max_iter, "max_iter"),
        feas_tol=check_positive_float(feas_tol, "feas_tol"),
        verbose=bool(verbose),
    )


@register("cvx", backend="numpy", options=options)
def solve(p, *, solver, tol, max_iter, feas_tol, verbose) -> Solution:
    B = p.shape[0]
    q = np.empty_like(p)
    status, iters = [], np.zeros(B, dtype=np.int64)
    for i in range(B):
        q[i], st, iters[i], _ = solve_one(p[i], solver=solver, tol=tol, max_iter=max_iter, verbose=verbose)
        status.append(st)
    viol = violation(NP, p, q)
    ok = np.array([s == "optimal" for s in status]) & (viol <= feas_tol)
    return Solution(
        q=q,
        converged=ok,
        violation=viol,
        iterations=iters,
        gap=np.full(B, np.nan),
        info={"status": status[0] if B == 1 else status, "solver": solver, "tol": tol,
              "hint": "the conic solver stopped short: loosen tol or try solver='CLARABEL'"},
    )


if torch is not None:

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

    @register("cvx", backend="torch", options=options)
    def solve_torch(p, **opts) -> Solution:
        """The NumPy solve on a float64 CPU copy; results on p's device and dtype."""
        sol = solve(host64(p), **opts)
        q = torch.as_tensor(sol.q, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            atoms = atoms_from_q(TORCH, p.detach(), q)
        if p.requires_grad:
            anchor = p.sum()  # connects each atom to P so that backward reaches _NoGradient
            atoms = {k: _NoGradient.apply(v, anchor) for k, v in atoms.items()}
        return Solution(q=q, atoms=atoms, info=dict(sol.info), **diagnostics_to_tensors(sol, p))
