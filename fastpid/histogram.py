"""Joint histograms from discrete samples."""
from __future__ import annotations

import numpy as np

__all__ = ["joint_histogram"]


def _codes(x, name):
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of discrete labels, got shape {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite labels")
    labels, codes = np.unique(x, return_inverse=True)
    return labels, codes.ravel()


def joint_histogram(x1, x2, y):
    """Count tensor P[x1, x2, y] from three 1-D arrays of discrete labels.

    Labels need not be 0..k-1 (any sortable values).  Returns
    ``(counts, (labels1, labels2, labels_y))`` where ``labels*[i]`` is the
    original value of index ``i`` along that axis.
    """
    l1, c1 = _codes(x1, "x1")
    l2, c2 = _codes(x2, "x2")
    ly, cy = _codes(y, "y")
    n = len(c1)
    if not (len(c2) == n and len(cy) == n):
        raise ValueError(f"x1, x2 and y must have the same length, got {len(c1)}, {len(c2)}, {len(cy)}")
    if n == 0:
        raise ValueError("joint_histogram needs at least one sample, got empty arrays")
    counts = np.zeros((len(l1), len(l2), len(ly)))
    np.add.at(counts, (c1, c2, cy), 1.0)
    return counts, (l1, l2, ly)
