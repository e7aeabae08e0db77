"""``method="analytic"``: the closed-form conditionally-independent proxy.

q(x1, x2, y) = p(x1, y) p(x2, y) / p(y) (the paper's Phase I, eq. 15).  It is
feasible by construction and instant, but **not optimal**: it maximizes the
joint entropy H(X1, X2, Y), not H(Y | X1, X2), so its synergy is a lower bound
on the BROJA synergy (never above it) and its unique information an upper
bound.  Use it as a starting point or a quick screen, not as the PID.
"""
from __future__ import annotations

import numpy as np

from . import Solution, register
from ._common import analytic_q, violation


@register("analytic", backend="numpy")
def solve(p, *, feas_tol: float = 1e-9) -> Solution:
    q = analytic_q(p)
    viol = violation(p, q)
    B = p.shape[0]
    return Solution(
        q=q,
        converged=viol <= feas_tol,
        violation=viol,
        iterations=np.zeros(B, dtype=np.int64),
        gap=np.full(B, np.nan),
        info={"status": "closed form (not optimal)"},
    )
