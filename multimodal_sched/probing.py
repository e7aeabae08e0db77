"""Probing: frozen encoders -> embeddings -> discrete codes -> joint histogram -> PID.

The discretization is the scheduler's own (scikit-learn), independent of any
``fastpid`` estimator: per modality, embeddings are L2-normalized, reduced with
PCA to ``pca_dims`` dimensions and clustered with k-means (``k`` clusters,
seeded).  ``binning="quantile"`` instead cuts the first principal component at
its ``k``-quantiles.  The codes and the labels form a count tensor
``P[x1, x2, y]`` given to :func:`fastpid.pid`.  All PID values are in bits.

The paper (section 5.2) projects features through an extra 64-d MLP before PID;
here the encoder embedding is used directly (PCA already makes the widths equal).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

import fastpid

__all__ = ["probe", "probe_embeddings", "probe_histogram", "discretize", "embed", "embed_labeled", "embed_pair",
           "PID_METHODS"]

log = logging.getLogger(__name__)

BINNINGS = ("kmeans", "quantile")
PID_METHODS = tuple(fastpid.available_methods())


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


def discretize(z: np.ndarray, *, k: int = 20, pca_dims: int = 5, seed: int = 0,
               binning: str = "kmeans") -> np.ndarray:
    """Discrete codes (n,) in 0..k-1 for embeddings ``z`` (n, d)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {z.shape}")
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    n = z.shape[0]
    if k > n:
        raise ValueError(f"k={k} clusters need at least {k} probe samples, got {n}; use a larger probe split or a smaller k")
    if not np.isfinite(z).all():
        raise ValueError("embeddings contain NaN or inf; the encoder diverged (lower the learning rate)")
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    dims = max(1, min(pca_dims, z.shape[1], n))
    zc = z - z.mean(axis=0)
    if np.allclose(zc, 0):
        return np.zeros(n, dtype=np.int64)  # constant embeddings carry no information
    pcs = PCA(n_components=dims, svd_solver="full", random_state=seed).fit_transform(z)
    if binning == "quantile":
        c = pcs[:, 0]
        edges = np.quantile(c, np.linspace(0, 1, k + 1)[1:-1])
        return np.searchsorted(edges, c, side="right").astype(np.int64)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed)
    with warnings.catch_warnings():
        # Fewer distinct points than k: sklearn warns and returns duplicate centers; fine for a histogram.
        warnings.simplefilter("ignore", category=UserWarning)
        from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
        warnings.simplefilter("ignore", category=SkConvergenceWarning)
        return km.fit_predict(pcs).astype(np.int64)


def probe_histogram(z1, z2, y, *, k: int = 20, pca_dims: int = 5, seed: int = 0,
                    binning: str = "kmeans") -> np.ndarray:
    """Count tensor ``P[x1, x2, y]`` of the discretized embeddings and labels."""
    y = np.asarray(y).ravel()
    c1 = discretize(z1, k=k, pca_dims=pca_dims, seed=seed, binning=binning)
    c2 = discretize(z2, k=k, pca_dims=pca_dims, seed=seed + 1, binning=binning)
    counts, _ = fastpid.joint_histogram(c1, c2, y)
    return counts


def observe_counts(counts, *, signal: str = "pid", pid_method: str = "exact") -> dict:
    """What the controller observes at a probe: the PID atoms (``signal="pid"``)
    or the per-modality mutual informations (``"mi"``) of a count tensor, in bits."""
    if signal == "pid":
        res = pid_of_counts(counts, pid_method=pid_method)
        obs = {k: float(getattr(res, k)) for k in ("R", "U1", "U2", "S", "I", "I1", "I2")}
        obs["converged"] = bool(res.converged)
        return obs
    return {"I1": float(fastpid.mutual_information(counts, sources="x1")),
            "I2": float(fastpid.mutual_information(counts, sources="x2")),
            "I": float(fastpid.mutual_information(counts, sources="both"))}


def pid_of_counts(counts, *, pid_method: str = "exact"):
    """``fastpid.pid`` on a count tensor; solver warnings are logged and the
    result's ``converged`` flag is what the caller should record."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fastpid.ConvergenceWarning)
        res = fastpid.pid(counts, method=pid_method)
    for w in caught:
        if issubclass(w.category, fastpid.ConvergenceWarning):
            log.warning("probe: fastpid.pid(method=%r) did not converge: %s", pid_method, w.message)
        else:  # not ours to judge: pass it on unchanged
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return res


def probe_embeddings(z1, z2, y, *, k: int = 20, pca_dims: int = 5, seed: int = 0,
                     binning: str = "kmeans", pid_method: str = "exact"):
    """PID (bits) of the discretized embeddings ``z1, z2`` with labels ``y``."""
    counts = probe_histogram(z1, z2, y, k=k, pca_dims=pca_dims, seed=seed, binning=binning)
    return pid_of_counts(counts, pid_method=pid_method)


def probe(encoder1: torch.nn.Module, encoder2: torch.nn.Module, loader, *, k: int = 20,
          pca_dims: int = 5, seed: int = 0, binning: str = "kmeans", pid_method: str = "exact"):
    """PID of two frozen encoders on a probe loader yielding ``(x1, x2, y)``.

    Returns a :class:`fastpid.PIDResult` (bits).  Use a held-out probe split,
    never the test set.  Encoders run on their own device, in eval mode, without
    gradients; their training mode is restored afterwards.
    """
    z1, z2, y = embed_pair(encoder1, encoder2, loader)
    return probe_embeddings(z1, z2, y, k=k, pca_dims=pca_dims, seed=seed, binning=binning, pid_method=pid_method)


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
