"""Probing: frozen encoders -> embeddings -> discrete codes -> PID estimate with intervals.

Every probe goes through :mod:`fastpid`'s own estimator, so the scheduler and a
user of :func:`fastpid.estimate.pid_from_samples` share one discretizer: per
modality the embeddings are L2-normalized (``normalize="l2"``), projected on
their ``pca_dims`` leading principal components and cut into ``k`` k-means cells
(``binning="quantile"``: ``k`` quantile bins of the first component), seeded;
the atoms are bias-corrected and get bootstrap percentile intervals
(``n_boot`` replicates, all solved in one batched :func:`fastpid.pid` call).
All PID values are in bits.

**Choosing k.**  A plug-in PID of a ``k x k x ny`` table with few samples per
cell is mostly bias (two *independent* codes show bits of "synergy").
``k=None`` picks the largest ``k <= 20`` (the authors' public code's value)
with ``k * k * ny <= n / 5``, i.e. at least five samples per cell on average,
and never fewer than 2 clusters: :func:`choose_k`.
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch

import fastpid
from fastpid.estimate import pid_from_samples

__all__ = ["probe", "probe_estimate", "observation", "choose_k", "embed", "embed_labeled", "embed_pair",
           "PID_METHODS", "BINNINGS", "K_MAX", "SAMPLES_PER_CELL"]

log = logging.getLogger(__name__)

BINNINGS = ("kmeans", "quantile")
PID_METHODS = tuple(fastpid.available_methods())
K_MAX = 20             # the authors' public code's clusters per modality
SAMPLES_PER_CELL = 5   # k * k * ny <= n / SAMPLES_PER_CELL
ATOMS = ("R", "U1", "U2", "S", "I", "I1", "I2")
SIGNAL_KEYS = {"pid": ATOMS, "mi": ("I", "I1", "I2")}


def choose_k(n: int, ny: int, *, k_max: int = K_MAX) -> int:
    """Clusters per modality for ``n`` probe samples and ``ny`` classes.

    The largest ``k <= k_max`` with ``k * k * ny <= n / SAMPLES_PER_CELL``, at
    least 2.  E.g. 1,000 samples of 10 classes give k = 4; 270 give k = 2.
    """
    if n < 1 or ny < 1:
        raise ValueError(f"choose_k needs n >= 1 samples and ny >= 1 classes, got n={n}, ny={ny}")
    k = int(math.isqrt(int(n // (SAMPLES_PER_CELL * ny))))
    return max(2, min(k_max, k))


def _device_of(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def embed(encoder: torch.nn.Module, loader, modality: int) -> np.ndarray:
    """Embeddings (n, d) of one modality from a loader yielding (x1, x2, y).

    The encoder is put in eval mode for the pass and restored afterwards; it
    runs on whatever device its parameters are on.
    """
    return _embed_loader({modality: encoder}, loader)[0][modality]


def embed_labeled(encoder: torch.nn.Module, loader, modality: int) -> tuple:
    """``(embeddings (n, d), labels (n,))`` of one modality, as :func:`embed`."""
    zs, y = _embed_loader({modality: encoder}, loader)
    return zs[modality], y


def _check_embeddings(z, name):
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d) embeddings, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf; the encoder diverged (lower the learning rate)")
    return z


def probe_estimate(z1, z2, y, *, k: int | None = None, pca_dims: int = 5, seed: int = 0,
                   binning: str = "kmeans", normalize: str | None = "l2", n_boot: int = 200,
                   bias_correction: str | None = "bootstrap", confidence: float = 0.95,
                   pid_method: str = "exact") -> "fastpid.estimate.PIDEstimate":
    """PID estimate (bits) of embeddings ``z1, z2`` (n, d) with labels ``y``.

    ``k=None``: :func:`choose_k`.  ``n_boot=0`` gives no intervals (and needs
    ``bias_correction=None`` or ``"extrapolation"``).  Returns a
    :class:`fastpid.estimate.PIDEstimate`: ``.estimate``, ``.plugin``,
    ``.intervals`` and the plug-in solve's certificate in ``.result``.
    """
    z1, z2 = _check_embeddings(z1, "z1"), _check_embeddings(z2, "z2")
    y = np.asarray(y).ravel()
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    n, ny = len(y), len(np.unique(y))
    if k is None:
        k = choose_k(n, ny)
    elif k > n:
        raise ValueError(f"k={k} clusters need at least {k} probe samples, got {n}; "
                         "use a larger probe split or a smaller k")
    dims = 1 if binning == "quantile" else pca_dims
    pcs = tuple(max(1, min(dims, z.shape[1], n)) for z in (z1, z2))
    # Constant embeddings (an encoder that has collapsed) carry no information: one code.
    xs = [np.zeros(n, dtype=np.int64) if np.allclose(z, z[0]) else z for z in (z1, z2)]
    with warnings.catch_warnings():
        # fewer distinct points than k: scikit-learn warns and returns duplicate centres; fine for a histogram
        warnings.simplefilter("ignore", category=UserWarning)
        from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
        warnings.simplefilter("ignore", category=SkConvergenceWarning)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fastpid.ConvergenceWarning)
            est = pid_from_samples(
                xs[0], xs[1], y, bins=k, discretizer=binning, pca_dims=pcs, normalize=normalize, seed=seed,
                method=pid_method, n_boot=n_boot, bias_correction=bias_correction, confidence=confidence)
    for w in caught:
        if issubclass(w.category, fastpid.ConvergenceWarning):
            log.warning("probe: fastpid.pid(method=%r) did not converge: %s", pid_method, w.message)
        else:  # not ours to judge: pass it on unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return est


def observation(est, *, signal: str = "pid") -> dict:
    """What the controller observes at a probe, as a JSON-ready dict.

    Keys: the atoms (``signal="pid"``: R, U1, U2, S, I, I1, I2; ``"mi"``: I, I1,
    I2) as reported estimates; ``plugin`` and ``interval`` (name -> [lo, hi],
    ``None`` without bootstrap) of the same quantities; ``n`` samples, ``k``
    clusters per modality (``[k1, k2]``), ``converged`` (the plug-in solve).
    """
    if signal not in SIGNAL_KEYS:
        raise ValueError(f"signal must be one of {list(SIGNAL_KEYS)}, got {signal!r}")
    keys = SIGNAL_KEYS[signal]
    obs = {q: float(est.estimate[q]) for q in keys}
    obs["plugin"] = {q: float(est.plugin[q]) for q in keys}
    obs["interval"] = (None if est.intervals is None
                       else {q: [float(est.intervals[q][0]), float(est.intervals[q][1])] for q in keys})
    obs["n"] = int(est.n_samples)
    obs["k"] = [int(est.histogram.shape[0]), int(est.histogram.shape[1])]
    obs["converged"] = bool(est.result.converged)
    return obs


def probe(encoder1: torch.nn.Module, encoder2: torch.nn.Module, loader, **options):
    """PID estimate of two frozen encoders on a probe loader yielding ``(x1, x2, y)``.

    ``options`` go to :func:`probe_estimate`.  Use a held-out probe split,
    never the test set.  Encoders run on their own device, in eval mode,
    without gradients; their training mode is restored afterwards.
    """
    z1, z2, y = embed_pair(encoder1, encoder2, loader)
    return probe_estimate(z1, z2, y, **options)


def embed_pair(encoder1: torch.nn.Module, encoder2: torch.nn.Module, loader):
    """One pass over ``loader``: embeddings of both frozen encoders and the labels (numpy)."""
    zs, y = _embed_loader({1: encoder1, 2: encoder2}, loader)
    return zs[1], zs[2], y


def _embed_loader(encoders: dict, loader) -> tuple:
    """``({modality: embeddings}, labels)`` in one pass, encoders in eval mode, no gradients."""
    modes = {m: e.training for m, e in encoders.items()}
    for e in encoders.values():
        e.eval()
    zs, ys = {m: [] for m in encoders}, []
    try:
        with torch.no_grad():
            for batch in loader:
                for m, e in encoders.items():
                    z = e(batch[m - 1].to(_device_of(e)))
                    if z.ndim != 2:
                        raise ValueError(f"encoder{m} must return a 2-D (batch, dim) tensor, "
                                         f"got shape {tuple(z.shape)}")
                    zs[m].append(z.detach().float().cpu().numpy())
                yb = batch[2]
                ys.append(np.asarray(yb.cpu() if hasattr(yb, "cpu") else yb).ravel())
    finally:
        for m, e in encoders.items():
            e.train(modes[m])
    return {m: np.concatenate(z) for m, z in zs.items()}, np.concatenate(ys)
