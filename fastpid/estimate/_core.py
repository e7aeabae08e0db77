"""Replicate planning and summaries shared by pid_from_samples and sensitivity.

``plan_replicates`` draws every replicate histogram one configuration needs
(bootstrap, Y-permutation, subsample splits); the caller solves all of them in
one batched call; ``summarize`` turns the solved replicates into the reported
estimate, bias, intervals and p-values.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int
from ._bias import estimate_bias, required_replicates
from ._resample import bootstrap_histograms, inner_bootstrap_histograms, permutation_histograms, split_histograms
from ._stats import corrected_interval, percentile_interval, permutation_pvalue

__all__ = ["check_counts", "plan_replicates", "summarize"]


def check_counts(*, n_boot, n_perm, n_split, bias_correction, n_boot_inner=0):
    """Validate the replicate counts against the chosen correction, before any work.

    Returns ``(n_boot, n_perm, n_split, n_boot_inner)``; ``n_boot_inner`` is set
    to 0 where no second level is drawn (no bootstrap or no correction).
    """
    n_boot = check_positive_int(n_boot, "n_boot", minimum=0)
    n_boot_inner = check_positive_int(n_boot_inner, "n_boot_inner", minimum=0)
    n_perm = check_positive_int(n_perm, "n_perm", minimum=0)
    n_split = check_positive_int(n_split, "n_split", minimum=1)
    needs = required_replicates(bias_correction)
    if "boot" in needs and n_boot == 0:
        raise ValueError("bias_correction='bootstrap' needs bootstrap replicates; pass n_boot > 0 (e.g. 200)")
    if "perm" in needs and n_perm == 0:
        raise ValueError("bias_correction='shuffle' needs permutation replicates; pass n_perm > 0 (e.g. 200)")
    if n_boot == 0 or bias_correction is None:
        n_boot_inner = 0
    return n_boot, n_perm, n_split, n_boot_inner


def plan_replicates(counts, codes, *, n_boot, n_perm, n_split, bias_correction, seed, n_boot_inner=0):
    """Dict block name -> stack (k, n1, n2, ny) of the replicate histograms.

    ``seed`` (int or ``numpy.random.SeedSequence``) gives each kind of
    replicate its own stream, so adding permutations never changes the bootstrap.
    ``n_boot_inner > 0`` adds the block ``"boot_inner"``: that many
    second-level resamples of each bootstrap histogram (see ``summarize``).
    """
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    boot_rng, perm_rng, split_rng, inner_rng = (np.random.default_rng(s) for s in seq.spawn(4))
    blocks = {}
    if n_boot:
        blocks["boot"] = bootstrap_histograms(counts, n_boot, boot_rng)
        if n_boot_inner:
            blocks["boot_inner"] = inner_bootstrap_histograms(blocks["boot"], n_boot_inner, inner_rng)
    if n_perm:
        blocks["perm"] = permutation_histograms(codes, counts.shape, n_perm, perm_rng)
    if "half" in required_replicates(bias_correction):
        n = len(codes[0])
        if n < 8:
            raise ValueError(f"bias_correction='extrapolation' needs at least 8 samples, got {n}")
        blocks["half"] = split_histograms(codes, counts.shape, n_split, 2, split_rng)
        blocks["quarter"] = split_histograms(codes, counts.shape, n_split, 4, split_rng)
    return blocks


def summarize(plugin, reps, *, n_samples, bias_correction, confidence):
    """Reported values, bias, intervals and p-values from solved replicates.

    ``plugin``: dict name -> float; ``reps``: dict block -> dict name -> array.

    Intervals (when ``reps`` has ``"boot"``): without a correction, the
    percentile interval of the bootstrap replicates.  With one, an interval
    centred on the corrected estimate: from the bootstrap distribution of the
    bootstrap-corrected estimator when ``"boot_inner"`` replicates are there
    (:func:`corrected_interval`), else the bootstrap replicates recentred.
    """
    bias = None
    estimate = dict(plugin)
    if bias_correction is not None:
        sizes = (n_samples, n_samples // 2, n_samples // 4)
        bias = estimate_bias(bias_correction, plugin, reps, sizes)
        estimate = {k: plugin[k] - bias[k] for k in plugin}
    intervals = None
    if "boot" in reps:
        intervals = {}
        for k in plugin:
            b = reps["boot"][k]
            if bias is not None and "boot_inner" in reps:
                inner = np.asarray(reps["boot_inner"][k]).reshape(len(b), -1)
                intervals[k] = corrected_interval(b, inner, confidence, center=estimate[k])
            else:
                shift = 0.0 if bias is None else float(np.mean(b)) - estimate[k]
                intervals[k] = percentile_interval(b, confidence, shift=shift)
    pvalues = None
    if "perm" in reps:
        pvalues = {k: permutation_pvalue(plugin[k], reps["perm"][k]) for k in plugin}
    return estimate, bias, intervals, pvalues
