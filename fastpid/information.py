"""Shannon quantities of joint distributions p[x1, x2, y], in bits.

The batch-level functions work on arrays of shape (B, n1, n2, ny) for any
backend (NumPy or torch); :func:`mutual_information` is the public helper that
validates and normalizes a user's histogram first.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import _BACKENDS, get_backend
from .kernels.entropy_sums import atoms_from_xlogx_rows

_NP = _BACKENDS["numpy"]


__all__ = [
    "LOG2",
    "mutual_information",
    "conditional_mutual_information",
    "marginal_violation",
    "atoms_from_q",
]

LOG2 = math.log(2.0)


def _negent(nx, p, axes):
    """Entropy (nats) of the marginal of batch p over the kept axes: sum out
    ``axes`` first, then -sum x log x over the rest (batch axis 0 kept)."""
    m = nx.sum(p, axis=axes) if axes else p
    rest = tuple(range(1, m.ndim))
    return -nx.sum(nx.xlogx(m), axis=rest)


def _entropies(nx, p):
    """Dictionary of the entropies (nats) needed for the PID of batch p."""
    return {
        "123": _negent(nx, p, ()),
        "12": _negent(nx, p, (3,)),
        "1y": _negent(nx, p, (2,)),
        "2y": _negent(nx, p, (1,)),
        "1": _negent(nx, p, (2, 3)),
        "2": _negent(nx, p, (1, 3)),
        "y": _negent(nx, p, (1, 2)),
    }


def _mi_terms(nx, p):
    """I(X1;Y), I(X2;Y), I(X1,X2;Y) in nats for batch p."""
    h = _entropies(nx, p)
    i1 = h["1"] + h["y"] - h["1y"]
    i2 = h["2"] + h["y"] - h["2y"]
    i12 = h["12"] + h["y"] - h["123"]
    return i1, i2, i12


def marginal_violation(nx, p, q):
    """Max absolute violation of q(x1,y)=p(x1,y) and q(x2,y)=p(x2,y), per batch item."""
    d1 = nx.amax(nx.abs(nx.sum(q, axis=2) - nx.sum(p, axis=2)), axis=(1, 2))
    d2 = nx.amax(nx.abs(nx.sum(q, axis=1) - nx.sum(p, axis=1)), axis=(1, 2))
    return nx.maximum(d1, d2)


def atoms_from_q(nx, p, q):
    """PID atoms in bits from the data p and the optimizer q (batch arrays).

    Each atom follows its definition on q directly: U1 = I_q(X1;Y|X2),
    U2 = I_q(X2;Y|X1), R = I_p(X1;Y) - U1, S = I_p(X1,X2;Y) - I_q(X1,X2;Y).
    The identities R+U2 = I2 and R+U1+U2+S = I therefore hold only as well as q
    satisfies the marginal constraints: they are a real check, not a tautology.
    """
    if nx.name == "numpy" and _fast_numpy_ok(p, q):
        return _atoms_numpy(p, q)
    i1, i2, i12 = _mi_terms(nx, p)
    hq = _entropies(nx, q)
    iq = hq["12"] + hq["y"] - hq["123"]
    u1 = hq["12"] + hq["2y"] - hq["2"] - hq["123"]
    u2 = hq["12"] + hq["1y"] - hq["1"] - hq["123"]
    r = i1 - u1
    s = i12 - iq
    out = dict(R=r, U1=u1, U2=u2, S=s, I=i12, I1=i1, I2=i2)
    return {k: v / LOG2 for k, v in out.items()}


# marginals kept by _entropies, in its order: (summed axes) of a batch (B, n1, n2, ny)
_MARGINALS = (("123", ()), ("12", (3,)), ("1y", (2,)), ("2y", (1,)), ("1", (2, 3)), ("2", (1, 3)), ("y", (1, 2)))


def _fast_numpy_ok(p, q) -> bool:
    return (type(p) is np.ndarray and type(q) is np.ndarray and p.dtype == np.float64
            and q.dtype == np.float64 and p.ndim == 4 and p.shape == q.shape
            and p.flags.c_contiguous and q.flags.c_contiguous)


def _atoms_numpy(p, q):
    """:func:`atoms_from_q` for C-contiguous float64 ndarrays with fewer NumPy
    calls (a small problem's atoms in ~25 µs instead of ~150 µs), bit for bit
    the same numbers: p and q are stacked along the batch axis (each marginal is
    the same reduction of the same contiguous rows), x log x is taken once over
    all the marginals laid side by side (elementwise, so the same values), and
    the entropies (NumPy's pairwise row sums) and their combinations are one
    compiled call (:mod:`fastpid.kernels.entropy_sums`).
    ``tests/test_pid_exact.py`` checks the equality against the generic path."""
    B = p.shape[0]
    x = np.concatenate((p, q))  # (2B, n1, n2, ny), C order
    add = np.add.reduce
    rows = [x.reshape(2 * B, -1)] + [add(x, axis=ax).reshape(2 * B, -1) for _, ax in _MARGINALS[1:]]
    widths = np.array([r.shape[1] for r in rows], dtype=np.int64)
    xl = _NP.xlogx(np.concatenate(rows, axis=1))
    out = atoms_from_xlogx_rows(xl, widths, LOG2)
    return dict(R=out[0], U1=out[1], U2=out[2], S=out[3], I=out[4], I1=out[5], I2=out[6])


def mutual_information(P, *, sources="both"):
    """Mutual information (bits) between the sources and Y for a histogram.

    Parameters
    ----------
    P : array-like (n1, n2, ny) or (..., n1, n2, ny)
        Nonnegative counts or probabilities (normalized internally).
    sources : {"x1", "x2", "both"}
        ``"x1"`` gives I(X1;Y), ``"x2"`` gives I(X2;Y), ``"both"`` I(X1,X2;Y).
    """
    from ._validation import check_distribution

    choices = {"x1": 0, "x2": 1, "both": 2}
    if sources not in choices:
        raise ValueError(f"sources must be one of {sorted(choices)}, got {sources!r}")
    nx = get_backend(P)
    p, batch_shape = check_distribution(P, nx)
    value = _mi_terms(nx, p)[choices[sources]] / LOG2
    return _unbatch(nx, value, batch_shape)


def conditional_mutual_information(P, *, given="x2"):
    """I(X1;Y|X2) (``given="x2"``) or I(X2;Y|X1) (``given="x1"``) in bits, of P itself."""
    from ._validation import check_distribution

    if given not in ("x1", "x2"):
        raise ValueError(f"given must be 'x1' or 'x2', got {given!r}")
    nx = get_backend(P)
    p, batch_shape = check_distribution(P, nx)
    h = _entropies(nx, p)
    if given == "x2":
        value = h["12"] + h["2y"] - h["2"] - h["123"]
    else:
        value = h["12"] + h["1y"] - h["1"] - h["123"]
    return _unbatch(nx, value / LOG2, batch_shape)


def _unbatch(nx, value, batch_shape):
    if batch_shape == ():
        return float(value[0])
    return value.reshape(batch_shape)
