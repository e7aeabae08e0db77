"""``method="cvx"``: the conic reference solver (CVXPY), posed well.

The BROJA program  min_q  sum_k rel_entr(q_k, s_block(k))  (= -H_q(Y|X1,X2))
subject to q(x1,y) = p(x1,y), q(x2,y) = p(x2,y), with one variable per
*supported* cell only (p(x1,y) > 0 and p(x2,y) > 0).  ``rel_entr`` keeps the
problem in exponential-cone form that SCS and Clarabel solve directly; there is
no log of a variable or division by one.

Solver status is reported in ``info["status"]``; a status other than
"optimal" gives ``converged=False``.  No gradient: torch inputs are solved on
the CPU and returned detached.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_float, check_positive_int
from ..exceptions import SolverError
from . import Solution, register
from ._common import violation
from .support import broja_support

SOLVERS = ("SCS", "CLARABEL")


def _solver_kwargs(solver, tol, max_iter):
    if solver == "SCS":
        return dict(eps_abs=tol, eps_rel=tol, max_iters=max_iter)
    return dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=max_iter)


def solve_one(p1, *, solver="SCS", tol=1e-9, max_iter=100_000, verbose=False):
    """Solve one normalized distribution; returns (q, status, iterations, objective)."""
    import cvxpy as cp
    import scipy.sparse as sp

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


@register("cvx", backend="numpy")
def solve(
    p,
    *,
    solver: str = "SCS",
    tol: float = 1e-9,
    max_iter: int = 100_000,
    feas_tol: float = 1e-7,
    verbose: bool = False,
) -> Solution:
    """Conic reference.  ``solver``: "SCS" (default) or "CLARABEL"; ``tol``
    is passed as the solver's absolute/relative accuracy."""
    solver = str(solver).upper()
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    tol = check_positive_float(tol, "tol")
    feas_tol = check_positive_float(feas_tol, "feas_tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    B = p.shape[0]
    q = np.empty_like(p)
    status, iters = [], np.zeros(B, dtype=np.int64)
    for i in range(B):
        q[i], st, iters[i], _ = solve_one(p[i], solver=solver, tol=tol, max_iter=max_iter, verbose=verbose)
        status.append(st)
    viol = violation(p, q)
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
