"""Bias corrections of the plug-in PID atoms.

The plug-in estimate (the PID of the sample histogram) is biased upward for
every information term: finite samples make Y look dependent on the sources
even when it is not, and that spurious information lands mostly in the
synergy and unique atoms.  Each correction below estimates the bias ``b`` of
every quantity (R, U1, U2, S, I, I1, I2) and reports ``plug-in - b``.  All are
linear in the replicate atoms, so the identities R+U1 = I1, R+U2 = I2 and
R+U1+U2+S = I still hold for the corrected values.  Corrected atoms may be
slightly negative; they are reported as they are (not clipped), because
clipping would bias them upward again.

``"bootstrap"`` (Efron):  b = mean(bootstrap atoms) - plug-in.
    Corrects the leading O(1/N) bias term, which for mutual information is
    the Miller-Madow term (cells - 1)/(2N ln 2), estimated for each atom from
    the data rather than from cell counts.  Does *not* correct higher-order
    terms, nor the bias from cells the sample never visited (severe
    undersampling, N well below n1*n2*ny): the bootstrap cannot see them.
    Needs ``n_boot > 0`` and reuses the bootstrap replicates.

At a non-differentiable point of the PID (e.g. U1 = U2 = 0 with I1 = I2,
noisy RDN) the atoms' bias is of order N^-1/2, as large as their standard
error, and no correction here removes it (none can without inflating the
variance as much: Hirano & Porter 2012); the bootstrap removes about a
third of it.  The intervals account for the resulting variability of the
correction (``n_boot_inner``); see docs/estimate.md.

``"shuffle"``:  b = mean atoms of Y-permuted histograms.
    The bias the estimator shows when Y is independent of (X1, X2) with the
    same marginals -- exactly the bias to remove for uninformative data, and
    close to the O(1/N) bias of weakly informative data.  For strongly
    informative data it overestimates the bias of I (fewer effective cells)
    and so under-reports.  Needs ``n_perm > 0`` and reuses the permutation
    test's replicates.

``"extrapolation"`` (Strong et al. 1998; Panzeri & Treves 1996):
    quadratic extrapolation in 1/N: the atoms at N, N/2 and N/4 samples
    (averaged over ``n_split`` random disjoint splits) are fitted with
    a + b/N + c/N^2 and a is reported.  Corrects the first two orders of the
    bias; increases the variance (the weight on the full-sample estimate is
    about 8/3) and is unreliable when N/4 samples badly undersample the grid.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BIAS_CORRECTIONS", "required_replicates", "estimate_bias"]

BIAS_CORRECTIONS = ("bootstrap", "shuffle", "extrapolation")

_NEEDS = {"bootstrap": ("boot",), "shuffle": ("perm",), "extrapolation": ("half", "quarter")}


def required_replicates(kind):
    """The replicate blocks a correction needs (empty for ``None``)."""
    if kind is None:
        return ()
    if kind not in _NEEDS:
        raise ValueError(f"Unknown bias_correction {kind!r}; choose one of {list(BIAS_CORRECTIONS)} or None")
    return _NEEDS[kind]


def _extrapolate(sizes, values):
    """Value at 1/N = 0 of the quadratic through (1/sizes[i], values[i])."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    w = np.ones(3)
    for i in range(3):
        for j in range(3):
            if j != i:
                w[i] *= (0.0 - x[j]) / (x[i] - x[j])
    return float(np.dot(w, values))


def estimate_bias(kind, plugin, reps, sizes=None):
    """Bias of each quantity in ``plugin`` (dict name -> float).

    ``reps`` maps a replicate block name to a dict name -> array of replicate
    values; ``sizes`` = (N, N/2, N/4) sample sizes for ``"extrapolation"``.
    """
    out = {}
    for k, v in plugin.items():
        if kind == "bootstrap":
            out[k] = float(np.mean(reps["boot"][k])) - v
        elif kind == "shuffle":
            out[k] = float(np.mean(reps["perm"][k]))
        elif kind == "extrapolation":
            vals = [v, float(np.mean(reps["half"][k])), float(np.mean(reps["quarter"][k]))]
            out[k] = v - _extrapolate(sizes, vals)
        else:  # pragma: no cover - guarded by required_replicates
            raise ValueError(kind)
    return out
