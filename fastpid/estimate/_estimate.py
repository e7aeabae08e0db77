"""pid_from_samples: PID of sampled data with bias correction, intervals, p-values."""
from __future__ import annotations

import numpy as np

from ..api import pid
from ._core import check_counts, plan_replicates, summarize
from ._inputs import check_confidence, check_seed, encode_samples
from ._result import PIDEstimate
from ._resample import flat_cells
from ._solve import QUANTITIES, solve_stacks

__all__ = ["pid_from_samples"]


def pid_from_samples(
    x1,
    x2,
    y,
    *,
    bins=20,
    discretizer="kmeans",
    pca_dims=None,
    normalize=None,
    seed: int = 0,
    method: str = "exact",
    n_boot: int = 0,
    n_perm: int = 0,
    bias_correction: str | None = None,
    confidence: float = 0.95,
    n_split: int = 10,
    n_boot_inner: int = 1,
    **solver_options,
) -> PIDEstimate:
    """Bivariate PID (BROJA, bits) estimated from samples.

    Parameters
    ----------
    x1, x2 : array-like, shape (n_samples,) or (n_samples, n_features)
        1-D: discrete labels, used as they are.  2-D: continuous features,
        binned by ``discretizer`` (for one continuous feature pass ``x.reshape(-1, 1)``).
    y : array-like, shape (n_samples,)
        Discrete class labels (at least two classes).  Labels are all numbers
        or all strings.  Torch tensors are read detached (no gradient flows
        through an estimate); a masked array with masked entries is refused
        (drop those samples from x1, x2 and y together).
    bins : int or (int, int)
        Number of bins (k-means clusters) for 2-D sources; a pair sets x1 and x2 apart.
    discretizer : {"kmeans", "quantile", "uniform"} or None
        How 2-D sources are binned.  ``"quantile"``/``"uniform"`` bin a single
        feature (use ``pca_dims=1`` for several).  ``None``: only labels accepted.
    pca_dims : int, (int, int) or None
        Project 2-D sources onto this many principal components before binning.
    normalize : {None, "l2"}
        ``"l2"``: scale every sample of a 2-D source to unit length before
        projecting and binning it (usual for neural-network embeddings).
    seed : int
        Seeds the discretizers (k-means, PCA) and every resampling.
    method : str
        The :func:`fastpid.pid` method for every solve; ``**solver_options`` go to it.
    n_boot : int
        Bootstrap replicates (resampling the binned samples; the bins stay
        fixed).  ``> 0`` gives ``intervals``.  All replicates of every kind are
        solved in one batched :func:`fastpid.pid` call.
    n_perm : int
        Y-permutation replicates; ``> 0`` gives ``pvalues`` for each quantity
        being above chance (null: Y independent of (X1, X2)).
    bias_correction : {"bootstrap", "shuffle", "extrapolation"} or None
        See :mod:`fastpid.estimate._bias` for what each corrects and does not.
        ``"bootstrap"`` needs ``n_boot > 0``, ``"shuffle"`` needs ``n_perm > 0``,
        ``"extrapolation"`` solves ``6 * n_split`` subsample histograms.
    confidence : float
        Level of the percentile intervals (default 0.95).
    n_boot_inner : int
        With a ``bias_correction`` and ``n_boot > 0``: second-level bootstrap
        resamples per bootstrap replicate (default 1; adds ``n_boot * n_boot_inner``
        solves).  The intervals then come from the bootstrap distribution of
        the bias-corrected estimator, so they include the variability of the
        correction itself, which is first-order where an atom sits at a
        non-differentiable point of the PID (e.g. U1 = U2 = 0 with I1 = I2,
        noisy RDN).  ``0``: the bootstrap replicates of the plug-in, recentred
        on the corrected estimate (cheaper; under-covers at such points).

    Returns
    -------
    PIDEstimate

    Notes
    -----
    The intervals do not include the variability of the discretization itself
    (the bins are fitted once); use :func:`fastpid.estimate.sensitivity` to see
    how the atoms move with ``bins`` and ``pca_dims``.
    """
    seed = check_seed(seed)
    confidence = check_confidence(confidence)
    n_boot, n_perm, n_split, n_boot_inner = check_counts(
        n_boot=n_boot, n_perm=n_perm, n_split=n_split, bias_correction=bias_correction,
        n_boot_inner=n_boot_inner,
    )
    joint, codes = encode_samples(x1, x2, y, discretizer=discretizer, bins=bins, pca_dims=pca_dims, seed=seed,
                                  normalize=normalize)
    shape = joint.shape
    counts = np.bincount(flat_cells(codes, shape), minlength=int(np.prod(shape))).reshape(shape).astype(np.float64)
    n = len(codes[0])

    result = pid(counts, method=method, **solver_options)
    plugin = {k: float(getattr(result, k)) for k in QUANTITIES}
    blocks = plan_replicates(
        counts, codes, n_boot=n_boot, n_perm=n_perm, n_split=n_split,
        bias_correction=bias_correction, seed=seed, n_boot_inner=n_boot_inner,
    )
    names = list(blocks)
    values, conv = solve_stacks([blocks[b] for b in names], method=method, solver_options=solver_options)
    reps = dict(zip(names, values))
    estimate, bias, intervals, pvalues = summarize(
        plugin, reps, n_samples=n, bias_correction=bias_correction, confidence=confidence
    )
    info = {
        "converged": bool(result.converged),
        "replicates_converged": {b: int(c.sum()) for b, c in zip(names, conv)},
        "replicates_total": {b: int(c.size) for b, c in zip(names, conv)},
    }
    return PIDEstimate(
        result=result, estimate=estimate, plugin=plugin, bias=bias, intervals=intervals,
        pvalues=pvalues, confidence=confidence, bias_correction=bias_correction,
        histogram=counts, discretizer=joint, n_samples=n, n_boot=n_boot, n_perm=n_perm,
        seed=seed, method=method, replicates=reps, info=info,
    )
