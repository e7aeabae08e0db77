"""Bootstrap percentile intervals and permutation p-values."""
from __future__ import annotations

import numpy as np

__all__ = ["percentile_interval", "permutation_pvalue", "ATOL"]

# Numerical resolution of the atoms, in bits (well above the default solver
# tolerances): values this close count as ties in p-values, and intervals are
# widened by it, so a quantity that is the same in every replicate (e.g.
# U2 = 0 when X2 carries nothing) gets an interval that contains it.
ATOL = 1e-7


def percentile_interval(boot, confidence, *, shift=0.0):
    """Percentile interval of the bootstrap replicates ``boot`` minus ``shift``.

    With a bias correction, ``shift`` is ``mean(boot) - corrected``: the
    replicate distribution is recentred on the corrected estimate (without it
    the interval would sit at plug-in + bias, i.e. count the bias twice).
    """
    alpha = 1.0 - confidence
    lo, hi = np.quantile(np.asarray(boot, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    return (float(lo - shift - ATOL), float(hi - shift + ATOL))


def permutation_pvalue(observed, null):
    """One-sided p-value of "observed is above chance": (1 + #{null >= observed}) / (1 + n)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(null >= observed - ATOL)) / (1 + null.size))
