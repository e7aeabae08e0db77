"""Bootstrap intervals and permutation p-values."""
from __future__ import annotations

import numpy as np

__all__ = ["percentile_interval", "corrected_interval", "permutation_pvalue", "ATOL"]

# Numerical resolution of the atoms, in bits (well above the default solver
# tolerances): values this close count as ties in p-values, and intervals are
# widened by it, so a quantity that is the same in every replicate (e.g.
# U2 = 0 when X2 carries nothing) gets an interval that contains it.
ATOL = 1e-7


def _tails(confidence):
    alpha = 1.0 - confidence
    return [alpha / 2, 1 - alpha / 2]


def percentile_interval(boot, confidence, *, shift=0.0):
    """Percentile interval of the bootstrap replicates ``boot`` minus ``shift``.

    Without a bias correction ``shift`` is 0 (the plain percentile interval).
    With one and no second-level replicates (``n_boot_inner=0``), ``shift`` is
    ``mean(boot) - corrected``: the replicate distribution is recentred on the
    corrected estimate (without it the interval would sit at plug-in + bias,
    i.e. count the bias twice).
    """
    lo, hi = np.quantile(np.asarray(boot, dtype=np.float64), _tails(confidence))
    return (float(lo - shift - ATOL), float(hi - shift + ATOL))


def corrected_interval(boot, inner, confidence, *, center):
    """Interval from the bootstrap distribution of the bias-corrected estimator.

    ``boot`` (B,): first-level replicates theta*_j; ``inner`` (B, C): C
    second-level replicates theta**_jc resampled from replicate j.  Replicate
    j of the bootstrap-corrected estimator is ``c*_j = 2 theta*_j - mean_c theta**_jc``
    (the correction applied inside the bootstrap world, a double bootstrap:
    Efron & Tibshirani 1993 ch. 10; Hall 1992 ch. 1).  Where the bias is a
    smooth function of the distribution, ``c*_j`` is ``theta*_j`` minus a
    near-constant and this
    reduces to the recentred percentile interval; where it is not (an atom at
    a non-differentiable point of the PID, e.g. U1 = U2 = 0 with I1 = I2),
    the correction varies from replicate to replicate as much as the
    estimate does, and that variability belongs in the interval.

    The C inner replicates estimate each replicate's bias with Monte Carlo
    noise of variance about ``var(theta*) / C``; it is removed by shrinking
    the ``c*`` about their mean by ``sqrt(1 - var(theta*) / (C var(c*)))``
    (variance matching).  The percentile interval of the result is centred
    so that its mean sits at ``center``, the reported (corrected) estimate.
    """
    boot = np.asarray(boot, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64).reshape(boot.size, -1)
    cstar = 2.0 * boot - inner.mean(axis=1)
    mean_c = float(cstar.mean())
    var_c = float(cstar.var())
    noise = float(boot.var()) / inner.shape[1]
    lam = float(np.sqrt(max(0.0, 1.0 - noise / var_c))) if var_c > 0 else 0.0
    lo, hi = np.quantile(cstar, _tails(confidence)) - mean_c
    return (float(center + lam * lo - ATOL), float(center + lam * hi + ATOL))


def permutation_pvalue(observed, null):
    """One-sided p-value of "observed is above chance": (1 + #{null >= observed}) / (1 + n)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(null >= observed - ATOL)) / (1 + null.size))
