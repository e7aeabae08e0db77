"""``method="exact"`` (the default): certified interior-point BROJA solver.

A primal-dual interior-point method on the dual of the BROJA program (one
smooth log-sum-exp constraint per (x1, x2) block; the primal q is recovered as
block mass times softmax), exploiting its Kronecker structure: one
(n1 + n2)·ny Cholesky factor per Newton step (see
:mod:`fastpid.kernels.broja_ipm`), compiled with Numba and parallel over a
batch.  Every answer carries a certificate: ``violation`` (max marginal
violation of q) and ``gap`` (duality gap in bits, a rigorous bound on the error
of I_q(X1,X2;Y) and therefore of each atom for a feasible q).  ``converged``
means ``gap <= tol`` and ``violation <= feas_tol``.
"""
from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController

from .._validation import check_positive_float, check_positive_int
from ..information import LOG2
from ..kernels.broja_ipm import STATUS, solve_batch, solve_one
from . import Solution, register

# below this many distributions the thread pool costs more than it saves
PARALLEL_MIN_BATCH = 8

_BLAS_CONTROLLER = None


def _single_blas_thread():
    """Context limiting BLAS to one thread (the controller is built once: ~4 ms)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (loads the OpenBLAS numba's LAPACK calls use)

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


@register("exact", backend="numpy")
def solve(
    p,
    *,
    tol: float = 1e-7,
    feas_tol: float = 1e-12,
    max_iter: int = 200,
) -> Solution:
    """Certified interior-point solve.

    Parameters
    ----------
    tol : target duality gap in bits (bounds the error of every atom).
    feas_tol : max allowed marginal violation of q.
    max_iter : cap on Newton iterations (a warning is issued when reached).
    """
    tol = check_positive_float(tol, "tol")
    feas_tol = check_positive_float(feas_tol, "feas_tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    p = np.ascontiguousarray(p, dtype=np.float64)
    # One BLAS thread: the Cholesky factors are small, a multi-threaded
    # OpenBLAS only spins (3x slower measured on 20x20x6), and inside the
    # parallel batch it would nest BLAS threads in numba's worker threads.
    with _single_blas_thread():
        if p.shape[0] >= PARALLEL_MIN_BATCH:
            out = solve_batch(p, tol * LOG2, feas_tol, max_iter)
        else:  # a few problems: no thread-pool start-up
            outs = [solve_one(pt, tol * LOG2, feas_tol, max_iter) for pt in p]
            out = tuple(np.asarray([o[k] for o in outs]) for k in range(7))
    q, f, g, iters, gap, viol, status = out
    st = [STATUS[int(s)] for s in status]
    return Solution(
        q=q,
        converged=(status == 0),
        violation=viol,
        iterations=iters,
        gap=gap / LOG2,
        info={
            "status": st[0] if len(st) == 1 else st,
            "tol": tol, "feas_tol": feas_tol,
            "dual_f": f, "dual_g": g,
            "hint": "increase max_iter or loosen tol / feas_tol",
        },
    )
