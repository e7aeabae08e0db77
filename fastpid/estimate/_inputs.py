"""Validation and encoding of the samples given to :func:`pid_from_samples`.

Everything is checked before any fitting starts: lengths, NaN, one class, the
option values.  1-D ``x1``/``x2`` are discrete labels; 2-D ones are continuous
features binned by the chosen discretizer.

What each input may be (:func:`as_samples`): an array-like or a torch tensor
(read as its values, detached and copied to the CPU: an estimate from samples
carries no gradient); a masked array only without masked entries (which
samples to drop is the caller's choice, made on x1, x2 and y together); labels
all numbers or all strings, never a mix.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_positive_int
from ..discretize import (DISCRETIZERS, JointDiscretizer, LabelEncoder, check_features, check_normalize,
                          make_discretizer)

__all__ = ["as_samples", "check_samples", "encode_samples", "check_confidence", "check_seed"]


def _label_kind(v) -> str:
    if isinstance(v, (str, bytes, np.str_, np.bytes_)):
        return "string"
    if isinstance(v, numbers.Number):
        return "number"
    return type(v).__name__


def as_samples(x, name):
    """``x`` as an ndarray of samples, by the rules of the module docstring."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(x))
        if n_masked:
            raise TypeError(
                f"{name} is a masked array with {n_masked} masked entr{'y' if n_masked == 1 else 'ies'}; "
                "drop those samples from x1, x2 and y together and pass plain arrays"
            )
        return np.asarray(x.data)
    arr = np.asarray(x)
    if arr.dtype == object or (not isinstance(x, np.ndarray) and arr.dtype.kind in "US"):
        kinds = sorted({_label_kind(v) for v in np.asarray(x, dtype=object).ravel()})
        if len(kinds) > 1:
            raise TypeError(
                f"{name} mixes label types ({', '.join(kinds)}); labels must be all numbers "
                "or all strings"
            )
    return arr


def _n_rows(x, name):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{name} must be an array of samples, got a scalar")
    return x.shape[0]


def _pair(value, name, *, minimum):
    """An int or a pair of ints (one per source)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (for x1, x2), got {value!r}")
        return tuple(check_positive_int(v, name, minimum=minimum) for v in value)
    v = check_positive_int(value, name, minimum=minimum)
    return (v, v)


def check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a nonnegative int, got {seed!r}")
    return int(seed)


def check_confidence(confidence):
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    return float(confidence)


def check_samples(x1, x2, y, *, discretizer, bins, pca_dims):
    """Fail fast on everything that does not need fitting; returns (bins, pca_dims) pairs."""
    x1, x2, y = as_samples(x1, "x1"), as_samples(x2, "x2"), as_samples(y, "y")
    if discretizer is not None and discretizer not in DISCRETIZERS:
        raise ValueError(f"Unknown discretizer {discretizer!r}; choose one of {list(DISCRETIZERS)} or None")
    bins = _pair(bins, "bins", minimum=2)
    pca = (None, None) if pca_dims is None else _pair(pca_dims, "pca_dims", minimum=1)
    n = [_n_rows(v, k) for k, v in (("x1", x1), ("x2", x2), ("y", y))]
    if not n[0] == n[1] == n[2]:
        raise ValueError(f"x1, x2 and y must have the same number of samples, got {n[0]}, {n[1]}, {n[2]}")
    if n[0] < 2:
        raise ValueError(f"need at least 2 samples, got {n[0]}")
    for name, x, b in (("x1", x1, bins[0]), ("x2", x2, bins[1])):
        x = np.asarray(x)
        if x.ndim == 2:
            if discretizer is None:
                raise ValueError(
                    f"{name} is 2-D (continuous features) but discretizer=None; choose one of "
                    f"{list(DISCRETIZERS)}, or pass 1-D discrete labels"
                )
            check_features(x, name)
            if n[0] < b:
                raise ValueError(
                    f"{n[0]} samples are fewer than bins={b} for {name}; use fewer bins or more samples"
                )
        elif x.ndim != 1:
            raise ValueError(f"{name} must be 1-D labels or 2-D features (n_samples, n_features), got shape {x.shape}")
        else:
            LabelEncoder._check(x, name)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}")
    LabelEncoder._check(y, "y")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"y has a single class ({classes[0]!r}); a constant target carries no information, "
            "so the PID needs at least 2 classes"
        )
    return bins, pca


def encode_samples(x1, x2, y, *, discretizer, bins, pca_dims, seed, normalize=None):
    """Fit the discretizers and return ``(JointDiscretizer, (c1, c2, cy))``."""
    x1, x2, y = as_samples(x1, "x1"), as_samples(x2, "x2"), as_samples(y, "y")
    check_normalize(normalize)
    bins, pca = check_samples(x1, x2, y, discretizer=discretizer, bins=bins, pca_dims=pca_dims)
    enc = []
    for k, x in enumerate((x1, x2)):
        if np.asarray(x).ndim == 1:
            enc.append(LabelEncoder())
        else:
            enc.append(make_discretizer(discretizer, bins=bins[k], pca_dims=pca[k], seed=seed,
                                        normalize=normalize))
    joint = JointDiscretizer(enc[0], enc[1], LabelEncoder())
    codes = (
        joint.x1.fit_transform(x1, name="x1"),
        joint.x2.fit_transform(x2, name="x2"),
        joint.y.fit_transform(y, name="y"),
    )
    return joint, codes
