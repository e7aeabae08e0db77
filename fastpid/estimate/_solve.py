"""One batched :func:`fastpid.pid` call for a list of histogram stacks.

Stacks of different grid shapes (e.g. several ``bins``) are zero-padded to a
common shape: cells with zero mass change no atom, so padding is exact.
"""
from __future__ import annotations

import numpy as np

from ..api import pid

__all__ = ["QUANTITIES", "solve_stacks"]

QUANTITIES = ("R", "U1", "U2", "S", "I", "I1", "I2")


def solve_stacks(stacks, *, method, solver_options):
    """Solve every histogram of ``stacks`` (list of arrays (k_i, n1, n2, ny)).

    Returns ``(values, converged)``: ``values`` is a list (one per stack) of
    dicts name -> array (k_i,), ``converged`` a list of bool arrays (k_i,).
    """
    sizes = [s.shape[0] for s in stacks]
    if sum(sizes) == 0:
        return [{q: np.zeros(0) for q in QUANTITIES} for _ in stacks], [np.zeros(0, bool) for _ in stacks]
    shape = tuple(max(s.shape[d] for s in stacks) for d in (1, 2, 3))
    batch = np.zeros((sum(sizes),) + shape)
    start = 0
    for s in stacks:
        batch[start : start + s.shape[0], : s.shape[1], : s.shape[2], : s.shape[3]] = s
        start += s.shape[0]
    res = pid(batch, method=method, **solver_options)
    values, conv = [], []
    start = 0
    for k in sizes:
        sl = slice(start, start + k)
        values.append({q: np.asarray(getattr(res, q), dtype=np.float64)[sl] for q in QUANTITIES})
        conv.append(np.asarray(res.converged, dtype=bool)[sl])
        start += k
    return values, conv
