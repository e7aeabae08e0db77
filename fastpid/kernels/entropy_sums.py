"""The entropy sums of :func:`fastpid.information.atoms_from_q` for NumPy
batches in one compiled call, with NumPy's own summation order.

``np.add.reduce`` over a contiguous row starts from the identity 0 and adds
the pairwise sum of the row (eight accumulators up to 128 values, halves above,
a plain loop below 8); :func:`_pairwise` is that algorithm, so every entropy
here is the same float64 as ``-xlogx(m).sum(axis=...)`` of the generic path,
and the atoms are combined with the same additions in the same order
(``tests/test_pid_exact.py`` checks the equality bit for bit)."""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["atoms_from_xlogx_rows"]


@njit(cache=True)
def _pairwise(a, lo, n):
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        m = n - n % 8
        while i < m:
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            r4 += a[lo + i + 4]
            r5 += a[lo + i + 5]
            r6 += a[lo + i + 6]
            r7 += a[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(a, lo, n2) + _pairwise(a, lo + n2, n - n2)


@njit(cache=True)
def atoms_from_xlogx_rows(xl, widths, log2):
    """Atoms (bits) from x log x of the marginals of p (rows 0..B-1) and of q
    (rows B..2B-1), laid side by side in the order 123, 12, 1y, 2y, 1, 2, y.

    Returns an array (7, B): R, U1, U2, S, I, I1, I2."""
    n2b = xl.shape[0]
    B = n2b // 2
    h = np.empty((7, n2b))
    for r in range(n2b):
        row = xl[r]
        lo = 0
        for k in range(7):
            h[k, r] = -(0.0 + _pairwise(row, lo, widths[k]))
            lo += widths[k]
    out = np.empty((7, B))
    for b in range(B):
        c = b + B
        i1 = h[4, b] + h[6, b] - h[2, b]
        i2 = h[5, b] + h[6, b] - h[3, b]
        i12 = h[1, b] + h[6, b] - h[0, b]
        iq = h[1, c] + h[6, c] - h[0, c]
        u1 = h[1, c] + h[3, c] - h[5, c] - h[0, c]
        u2 = h[1, c] + h[2, c] - h[4, c] - h[0, c]
        out[0, b] = (i1 - u1) / log2
        out[1, b] = u1 / log2
        out[2, b] = u2 / log2
        out[3, b] = (i12 - iq) / log2
        out[4, b] = i12 / log2
        out[5, b] = i1 / log2
        out[6, b] = i2 / log2
    return out
