"""Small NumPy helpers shared by the method modules."""
from __future__ import annotations

import numpy as np

from ..backend import get_backend
from ..information import marginal_violation

_NP = get_backend(np.zeros(1))


def marginals(p):
    """a = p(x1, y) of shape (B, n1, ny), b = p(x2, y) of shape (B, n2, ny)."""
    return p.sum(axis=2), p.sum(axis=1)


def analytic_q(p):
    """q(x1,x2,y) = p(x1,y) p(x2,y) / p(y): the conditionally independent
    (maximum joint entropy) member of the feasible set, batched."""
    a, b = marginals(p)
    py = a.sum(axis=1)  # (B, ny)
    inv = np.divide(1.0, py, out=np.zeros_like(py), where=py > 0)
    return a[:, :, None, :] * b[:, None, :, :] * inv[:, None, None, :]


def violation(p, q):
    return marginal_violation(_NP, p, q)
