"""sensitivity: the atoms as a function of bins and PCA dims, in one solve."""
from __future__ import annotations

import numpy as np

from ._core import check_counts, plan_replicates, summarize
from ._inputs import check_confidence, check_samples, check_seed, encode_samples
from ._result import SensitivityReport
from ._resample import flat_cells
from ._solve import QUANTITIES, solve_stacks

__all__ = ["sensitivity"]


def _as_list(v, name):
    vals = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
    if not vals:
        raise ValueError(f"{name} must list at least one value")
    return vals


def sensitivity(
    x1,
    x2,
    y,
    *,
    bins=(2, 4, 8, 16, 32),
    pca_dims=(None,),
    discretizer="kmeans",
    seed: int = 0,
    method: str = "exact",
    n_boot: int = 0,
    n_perm: int = 0,
    bias_correction: str | None = None,
    confidence: float = 0.95,
    n_split: int = 10,
    n_boot_inner: int = 1,
    **solver_options,
) -> SensitivityReport:
    """PID from samples for every combination of ``bins`` x ``pca_dims``.

    Each configuration is discretized separately (same seed), then the
    histograms of all configurations -- and their bootstrap / permutation /
    split replicates when requested -- are zero-padded to one grid and solved
    in a single batched :func:`fastpid.pid` call.  Options are those of
    :func:`pid_from_samples`; ``bins`` and ``pca_dims`` take lists.  At least
    one source must be 2-D (continuous), otherwise nothing depends on ``bins``.

    Returns a :class:`SensitivityReport` (``to_frame()``, ``plot()``).
    """
    seed = check_seed(seed)
    confidence = check_confidence(confidence)
    n_boot, n_perm, n_split, n_boot_inner = check_counts(
        n_boot=n_boot, n_perm=n_perm, n_split=n_split, bias_correction=bias_correction,
        n_boot_inner=n_boot_inner,
    )
    bins_list = _as_list(bins, "bins")
    pca_list = _as_list(pca_dims, "pca_dims")
    if np.asarray(x1).ndim == 1 and np.asarray(x2).ndim == 1:
        raise ValueError("sensitivity needs at least one 2-D (continuous) source; with labels only, bins have no effect")
    configs = [(b, d) for d in pca_list for b in bins_list]
    for b, d in configs:  # fail fast on every configuration before fitting any
        check_samples(x1, x2, y, discretizer=discretizer, bins=b, pca_dims=d)

    stacks, layout = [], []
    for b, d in configs:
        joint, codes = encode_samples(x1, x2, y, discretizer=discretizer, bins=b, pca_dims=d, seed=seed)
        shape = joint.shape
        counts = np.bincount(flat_cells(codes, shape), minlength=int(np.prod(shape))).reshape(shape)
        blocks = plan_replicates(
            counts.astype(np.float64), codes, n_boot=n_boot, n_perm=n_perm, n_split=n_split,
            bias_correction=bias_correction, seed=seed, n_boot_inner=n_boot_inner,
        )
        layout.append((shape, ["point"] + list(blocks)))
        stacks.append(counts[None].astype(np.float64))
        stacks.extend(blocks.values())
    values, _ = solve_stacks(stacks, method=method, solver_options=solver_options)

    n = len(np.asarray(y))
    rows = []
    it = iter(values)
    for (b, d), (shape, names) in zip(configs, layout):
        solved = {name: next(it) for name in names}
        plugin = {k: float(solved["point"][k][0]) for k in QUANTITIES}
        reps = {k: v for k, v in solved.items() if k != "point"}
        est, _, intervals, pvalues = summarize(
            plugin, reps, n_samples=n, bias_correction=bias_correction, confidence=confidence
        )
        row = {"bins": b, "pca_dims": -1 if d is None else d, "n1": shape[0], "n2": shape[1], "ny": shape[2]}
        for k in QUANTITIES:
            row[k] = est[k]
            row[f"{k}_plugin"] = plugin[k]
            if intervals is not None:
                row[f"{k}_low"], row[f"{k}_high"] = intervals[k]
            if pvalues is not None:
                row[f"{k}_p"] = pvalues[k]
        rows.append(row)
    columns = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    return SensitivityReport(
        columns=columns, confidence=confidence, bias_correction=bias_correction,
        n_samples=n, method=method, discretizer=discretizer,
    )
