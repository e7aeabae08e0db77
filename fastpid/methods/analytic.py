"""``method="analytic"``: the closed-form conditionally-independent proxy.

q(x1, x2, y) = p(x1, y) p(x2, y) / p(y) (the paper's Phase I, eq. 15).  It is
feasible by construction and instant, but **not optimal**: it maximizes the
joint entropy H(X1, X2, Y), not H(Y | X1, X2), so its synergy is a lower bound
on the BROJA synergy (never above it) and its unique information an upper
bound.  Use it as a starting point or a quick screen, not as the PID.

One implementation serves both backends; on torch, q and the atoms are
differentiable with respect to P.
"""
from __future__ import annotations

import math

from .._validation import check_positive_float
from ..backend import get_backend
from . import Solution, register
from ._common import analytic_q, violation


def options(*, feas_tol: float | None = None) -> dict:
    """``feas_tol``: max marginal violation of q for ``converged``; ``None``
    means 1e-9 for float64 input (every NumPy input) and 1e-6 for float32."""
    if feas_tol is not None:
        feas_tol = check_positive_float(feas_tol, "feas_tol")
    return dict(feas_tol=feas_tol)


@register("analytic", backend="torch", options=options)
@register("analytic", backend="numpy", options=options)
def solve(p, *, feas_tol) -> Solution:
    nx = get_backend(p)
    if feas_tol is None:
        feas_tol = 1e-9 if nx.eps(p) < 1e-10 else 1e-6
    q = analytic_q(nx, p)
    viol = violation(nx, p, q)
    B = p.shape[0]
    return Solution(
        q=q,
        converged=viol <= feas_tol,
        violation=viol,
        iterations=nx.vector(B, 0, p, integer=True),
        gap=nx.vector(B, math.nan, p),
        info={"status": "closed form (not optimal)"},
    )
