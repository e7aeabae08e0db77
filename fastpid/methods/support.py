"""The support of the BROJA program and its constraint matrices.

Only cells (x1, x2, y) with p(x1, y) > 0 and p(x2, y) > 0 can carry mass in a
feasible q; everything else is fixed at zero.  For each y the supported cells
form a complete bipartite graph between {x1: p(x1,y)>0} and {x2: p(x2,y)>0},
so the constraint rows have exactly one redundancy per label y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class Support:
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
