"""Canonical distributions with known PID, as arrays P[x1, x2, y].

Known BROJA atoms (bits):
========  =====  ====  ====  =====
name      R      U1    U2    S
========  =====  ====  ====  =====
xor       0      0     0     1
and_      0.311  0     0     0.5      (R = h(1/4) - 1/2 exactly)
or_       same as and_
rdn       1      0     0     0
unq       0      1     0     0
copy      0      1     1     0
========  =====  ====  ====  =====
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["xor", "and_", "or_", "rdn", "unq", "copy", "noisy", "nbit_xor", "nbit_copy", "KNOWN"]


def _table(rows, shape):
    P = np.zeros(shape)
    for x1, x2, y in rows:
        P[x1, x2, y] += 1.0
    return P / P.sum()


def xor():
    """Y = X1 xor X2, uniform bits: pure synergy (S = 1 bit)."""
    return _table([(x1, x2, x1 ^ x2) for x1 in (0, 1) for x2 in (0, 1)], (2, 2, 2))


def and_():
    """Y = X1 and X2, uniform bits: R = 0.311, S = 0.5 bits."""
    return _table([(x1, x2, x1 & x2) for x1 in (0, 1) for x2 in (0, 1)], (2, 2, 2))


def or_():
    """Y = X1 or X2, uniform bits: R = 0.311, S = 0.5 bits."""
    return _table([(x1, x2, x1 | x2) for x1 in (0, 1) for x2 in (0, 1)], (2, 2, 2))


def rdn():
    """X1 = X2 = Y, one uniform bit: pure redundancy (R = 1 bit)."""
    return _table([(v, v, v) for v in (0, 1)], (2, 2, 2))


def unq():
    """Y = X1, X2 an independent bit: U1 = 1 bit."""
    return _table([(x1, x2, x1) for x1 in (0, 1) for x2 in (0, 1)], (2, 2, 2))


def copy():
    """Y = (X1, X2) (4 labels), independent bits: U1 = U2 = 1 bit."""
    return _table([(x1, x2, 2 * x1 + x2) for x1 in (0, 1) for x2 in (0, 1)], (2, 2, 4))


def nbit_xor(n: int):
    """Y = X1 xor X2 on n-bit words: S = n bits."""
    k = 2 ** n
    return _table([(x1, x2, x1 ^ x2) for x1 in range(k) for x2 in range(k)], (k, k, k))


def nbit_copy(n: int):
    """Y = (X1, X2) on n-bit words: U1 = U2 = n bits."""
    k = 2 ** n
    return _table([(x1, x2, x1 * k + x2) for x1 in range(k) for x2 in range(k)], (k, k, k * k))


def noisy(P, eps: float):
    """Mix P with the uniform distribution on its cells: (1-eps) P + eps U."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    P = np.asarray(P, dtype=float)
    return (1.0 - eps) * P / P.sum() + eps / P.size


# AND/OR: U1 = U2 = 0, so R = I(X1;Y) = h(1/4) - 1/2 and S = I(X1,X2;Y) - R = 1/2.
_AND_R = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)) - 0.5
KNOWN = {
    "xor": dict(R=0.0, U1=0.0, U2=0.0, S=1.0),
    "and_": dict(R=_AND_R, U1=0.0, U2=0.0, S=0.5),
    "or_": dict(R=_AND_R, U1=0.0, U2=0.0, S=0.5),
    "rdn": dict(R=1.0, U1=0.0, U2=0.0, S=0.0),
    "unq": dict(R=0.0, U1=1.0, U2=0.0, S=0.0),
    "copy": dict(R=0.0, U1=1.0, U2=1.0, S=0.0),
}
