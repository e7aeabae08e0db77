"""Input validation shared by every method and backend.

One helper per kind of input, messages in scikit-learn style: what was found,
what is required.  Nothing here fixes bad input silently.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_distribution", "check_positive_int", "check_positive_float"]


def _first_index(mask) -> tuple:
    idx = np.argwhere(np.asarray(mask))[0]
    return tuple(int(i) for i in idx)


def check_distribution(P, nx, *, name: str = "P"):
    """Validate a joint histogram and return it normalized.

    Parameters
    ----------
    P : array-like or tensor of shape (n1, n2, ny) or (..., n1, n2, ny)
        Nonnegative finite counts or probabilities.
    nx : Backend
        The backend that owns ``P``.

    Returns
    -------
    p : array of shape (B, n1, n2, ny)
        Each distribution divided by its total mass (float64 for NumPy; the
        input's floating dtype for torch).  A total that overflows the dtype
        is avoided by dividing by the largest cell first.
    batch_shape : tuple
        The leading shape ``(...)`` (``()`` for a single distribution).
    """
    arr = nx.coerce(P, name)
    if arr.ndim < 3:
        raise ValueError(
            f"Expected {name} with shape (n1, n2, ny) or (..., n1, n2, ny), "
            f"got {arr.ndim}-D input of shape {tuple(arr.shape)} instead"
        )
    shape = tuple(int(s) for s in arr.shape)
    if any(s == 0 for s in shape):
        raise ValueError(f"{name} has an empty axis: shape {shape}; every axis needs at least one value")
    batch_shape = shape[:-3]
    flat = arr.reshape((-1,) + shape[-3:])
    if type(arr) is np.ndarray:
        # NumPy fast path (one pass over the cells): the smallest cell is >= 0
        # only if no cell is NaN or negative, and the totals are finite and > 0
        # only if no cell is +inf and no distribution is empty; anything else
        # goes through the detailed checks below, which name the problem.
        with np.errstate(over="ignore"):  # an overflowing total is handled below
            totals = flat.sum(axis=(1, 2, 3))
        if flat.min() >= 0:
            t = totals.item() if totals.size == 1 else None
            if (0 < t < np.inf) if t is not None else bool(((totals > 0) & (totals < np.inf)).all()):
                return flat / totals.reshape(-1, 1, 1, 1), batch_shape
    host = nx.to_numpy(arr)
    finite = np.isfinite(host)
    if not finite.all():
        where = _first_index(~finite)
        raise ValueError(f"{name} contains NaN or infinite mass (value {host[where]} at index {where})")
    neg = host < 0
    if neg.any():
        where = _first_index(neg)
        raise ValueError(
            f"{name} contains negative mass (value {host[where]!r} at index {where}); "
            "counts and probabilities must be >= 0"
        )
    with np.errstate(over="ignore"):  # an overflowing total is handled below
        totals = nx.sum(flat, axis=(1, 2, 3))
    tot_host = np.asarray(nx.to_numpy(totals))
    if (tot_host <= 0).any():
        b = int(np.argmax(tot_host <= 0))
        index = tuple(int(i) for i in np.unravel_index(b, batch_shape))
        where = "" if not batch_shape else f" (batch index {index})"
        raise ValueError(f"{name} has zero total mass{where}; there is no distribution to decompose")
    if not np.isfinite(tot_host).all():
        # the total overflows the dtype although every cell is finite: divide
        # each distribution by its largest cell first (the answer is that of P / max P)
        flat = flat / nx.amax(flat, axis=(1, 2, 3)).reshape(-1, 1, 1, 1)
        totals = nx.sum(flat, axis=(1, 2, 3))
    p = flat / totals.reshape(-1, 1, 1, 1)
    return p, batch_shape


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value
