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

__all__ = ["atoms_from_xlogx_rows", "atoms_from_rows_log", "marginal_rows", "normalize_checked"]


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


@njit(cache=True)
def normalize_checked(P):
    """``P / P.sum()`` for a C-contiguous float64 array when every cell is >= 0
    (no NaN) and the total is finite and > 0, with the total summed as
    ``np.add.reduce`` over the whole array sums it (identity 0, then the
    pairwise row sum).  Returns p, or an empty array for input the caller must
    check in detail."""
    n = P.size
    a = P.reshape(n)
    ok = True
    for i in range(n):
        if not a[i] >= 0.0:
            ok = False
            break
    t = 0.0 + _pairwise(a, np.int64(0), np.int64(n)) if ok else 0.0
    if not (t > 0.0 and t < np.inf):
        return np.empty((0, 0, 0))
    out = np.empty_like(P)
    o = out.reshape(n)
    for i in range(n):
        o[i] = a[i] / t
    return out


@njit(cache=True)
def marginal_rows(p, q):
    """The rows :func:`fastpid.information._atoms_numpy` builds from p and q of
    shape (n1, n2, ny): for each of p (row 0) and q (row 1) the cells and the
    marginals 12, 1y, 2y, 1, 2, y laid side by side, each summed in the order
    of ``np.add.reduce`` on a C-contiguous (2, n1, n2, ny) array (a pairwise
    sum along the contiguous axis, a running sum over the others, both from
    the identity 0).  Returns ``(rows, widths, positive)`` with ``positive``
    the entries of ``rows`` that are > 0, in C order (``rows[rows > 0]``)."""
    n1, n2, ny = p.shape
    N = n1 * n2 * ny
    widths = np.empty(7, dtype=np.int64)
    widths[0] = N
    widths[1] = n1 * n2
    widths[2] = n1 * ny
    widths[3] = n2 * ny
    widths[4] = n1
    widths[5] = n2
    widths[6] = ny
    W = N + n1 * n2 + n1 * ny + n2 * ny + n1 + n2 + ny
    rows = np.zeros((2, W))
    for r in range(2):
        x = p if r == 0 else q
        flat = x.reshape(N)
        row = rows[r]
        for k in range(N):
            row[k] = flat[k]
        o12 = N
        o1y = o12 + n1 * n2
        o2y = o1y + n1 * ny
        o1 = o2y + n2 * ny
        o2 = o1 + n1
        oy = o2 + n2
        for i in range(n1):
            row[o1 + i] = 0.0 + _pairwise(flat, i * n2 * ny, n2 * ny)
            for j in range(n2):
                lo = (i * n2 + j) * ny
                s = _pairwise(flat, lo, ny)
                row[o12 + i * n2 + j] = 0.0 + s
                row[o2 + j] += s
                for y in range(ny):
                    v = flat[lo + y]
                    row[o1y + i * ny + y] += v
                    row[o2y + j * ny + y] += v
                    row[oy + y] += v
    npos = 0
    for r in range(2):
        for k in range(W):
            if rows[r, k] > 0.0:
                npos += 1
    positive = np.empty(npos)
    npos = 0
    for r in range(2):
        for k in range(W):
            if rows[r, k] > 0.0:
                positive[npos] = rows[r, k]
                npos += 1
    return rows, widths, positive


@njit(cache=True)
def atoms_from_rows_log(rows, log_positive, widths, log2):
    """:func:`atoms_from_xlogx_rows` of x log x of ``rows`` as
    :meth:`fastpid.backend.NumpyBackend.xlogx` forms it: ``x * log x`` where
    x > 0 (``log_positive`` = ``np.log(rows[rows > 0])``), 0 elsewhere."""
    xl = np.zeros_like(rows)
    n = 0
    for r in range(rows.shape[0]):
        for k in range(rows.shape[1]):
            v = rows[r, k]
            if v > 0.0:
                xl[r, k] = v * log_positive[n]
                n += 1
    return atoms_from_xlogx_rows(xl, widths, log2)
