"""Discretizers: turn samples of one variable into integer codes 0..k-1.

Every discretizer follows the scikit-learn convention: ``fit(x)`` learns its
state (attributes ending in ``_``) and returns ``self``; ``transform(x)``
applies the *same* bins to new data; ``n_codes_`` is the number of codes.

* :class:`LabelEncoder` -- 1-D discrete labels (any sortable values).
* :class:`QuantileDiscretizer`, :class:`UniformDiscretizer` -- one continuous
  feature (shape ``(n,)`` float or ``(n, 1)``), equal-mass or equal-width bins.
* :class:`KMeansDiscretizer` -- k-means cells of 2-D features (scikit-learn).

``normalize="l2"`` (continuous discretizers) first scales every sample to unit
Euclidean length (an all-zero sample, e.g. a dead ReLU embedding, stays at the origin, as in
scikit-learn's ``normalize``) (the usual preprocessing of neural-network embeddings, whose
norm often tracks training time rather than content); ``pca_dims`` then projects
the features onto their leading principal components (scikit-learn PCA, fitted
with the same seed).
scikit-learn is an optional dependency (``pip install fastpid[estimate]``),
imported only when k-means or PCA is used.

:class:`JointDiscretizer` bundles the fitted encoders of ``x1``, ``x2`` and
``y`` so the bins of an estimate can be applied to new data.
"""
from __future__ import annotations

import numpy as np

from ._validation import check_positive_int

__all__ = [
    "DISCRETIZERS",
    "LabelEncoder",
    "QuantileDiscretizer",
    "UniformDiscretizer",
    "KMeansDiscretizer",
    "JointDiscretizer",
    "make_discretizer",
]

DISCRETIZERS = ("kmeans", "quantile", "uniform")
NORMALIZATIONS = (None, "l2")


def _require_sklearn(what: str):
    try:
        import sklearn  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{what} needs scikit-learn, an optional dependency of fastpid; "
            "install it with `pip install fastpid[estimate]` (or pass "
            "discretizer='quantile'/'uniform' without pca_dims)"
        ) from None


def check_features(x, name: str) -> np.ndarray:
    """2-D finite float array (n_samples, n_features); 1-D input becomes one column."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers to be binned, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_features), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{name} contains NaN or infinite values ({int(bad.any(axis=1).sum())} row(s), "
            f"first at row {row}); drop or impute them before estimating"
        )
    return arr


class LabelEncoder:
    """Codes for discrete labels: ``labels_[code]`` is the original label."""

    kind = None

    def fit(self, x, *, name: str = "x"):
        x = self._check(x, name)
        self.labels_ = np.unique(x)
        self.n_codes_ = len(self.labels_)
        return self

    def transform(self, x, *, name: str = "x") -> np.ndarray:
        x = self._check(x, name)
        codes = np.searchsorted(self.labels_, x)
        codes = np.minimum(codes, self.n_codes_ - 1)
        unseen = self.labels_[codes] != x
        if unseen.any():
            raise ValueError(
                f"{name} has label(s) not seen when fitting: {np.unique(x[unseen])[:5].tolist()}; "
                f"known labels: {self.labels_[:10].tolist()}"
            )
        return codes.astype(np.int64)

    def fit_transform(self, x, *, name: str = "x") -> np.ndarray:
        return self.fit(x, name=name).transform(x, name=name)

    @staticmethod
    def _check(x, name):
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of discrete labels, got shape {x.shape}")
        if x.dtype.kind == "f":
            if not np.isfinite(x).all():
                raise ValueError(f"{name} contains NaN or infinite labels")
            if not np.all(x == np.round(x)):
                raise ValueError(
                    f"{name} is 1-D with non-integer float values; 1-D inputs are discrete labels. "
                    f"For a continuous feature pass {name}.reshape(-1, 1) with a discretizer, "
                    "or cast the labels to int"
                )
        return x

    def __repr__(self):
        n = getattr(self, "n_codes_", None)
        return f"LabelEncoder(n_codes_={n})"


class _Continuous:
    """Shared PCA step and bookkeeping of the continuous discretizers."""

    kind = ""

    def __init__(self, bins: int = 20, *, pca_dims: int | None = None, seed: int = 0,
                 normalize: str | None = None):
        self.bins = check_positive_int(bins, "bins", minimum=2)
        self.pca_dims = None if pca_dims is None else check_positive_int(pca_dims, "pca_dims")
        self.seed = seed
        self.normalize = check_normalize(normalize)

    def fit(self, x, *, name: str = "x"):
        x = self._normalize(check_features(x, name))
        n, d = x.shape
        if n < self.bins:
            raise ValueError(
                f"{name} has {n} samples, fewer than bins={self.bins}; "
                "use fewer bins or more samples"
            )
        self.n_features_in_ = d
        self.pca_ = None
        if self.pca_dims is not None:
            if self.pca_dims > min(n, d):
                raise ValueError(
                    f"pca_dims={self.pca_dims} exceeds min(n_samples, n_features)={min(n, d)} of {name}"
                )
            _require_sklearn("pca_dims")
            from sklearn.decomposition import PCA

            self.pca_ = PCA(n_components=self.pca_dims, random_state=self.seed).fit(x)
        self._fit(self._project(x), name)
        return self

    def transform(self, x, *, name: str = "x") -> np.ndarray:
        if not hasattr(self, "n_codes_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        x = check_features(x, name)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {x.shape[1]} features, but the discretizer was fitted on "
                f"{self.n_features_in_}"
            )
        return self._transform(self._project(self._normalize(x))).astype(np.int64)

    def fit_transform(self, x, *, name: str = "x") -> np.ndarray:
        return self.fit(x, name=name).transform(x, name=name)

    def _project(self, x):
        return x if self.pca_ is None else self.pca_.transform(x)

    def _normalize(self, x):
        if self.normalize is None:
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)   # an all-zero sample stays at the origin

    def __repr__(self):
        return (
            f"{type(self).__name__}(bins={self.bins}, pca_dims={self.pca_dims}, seed={self.seed}, "
            f"normalize={self.normalize!r}, n_codes_={getattr(self, 'n_codes_', None)})"
        )


class _OneFeatureBins(_Continuous):
    """Bins of one feature given by interior edges ``edges_`` (k - 1 values)."""

    def _fit(self, z, name):
        if z.shape[1] != 1:
            raise ValueError(
                f"discretizer={self.kind!r} bins one feature, but {name} has {z.shape[1]} "
                "features; pass pca_dims=1 or use discretizer='kmeans'"
            )
        edges = np.unique(self._edges(z[:, 0]))
        self.edges_ = edges
        self.n_codes_ = len(edges) + 1

    def _transform(self, z):
        return np.searchsorted(self.edges_, z[:, 0], side="right")


class QuantileDiscretizer(_OneFeatureBins):
    """Equal-mass bins of one feature (ties merge bins, so ``n_codes_ <= bins``)."""

    kind = "quantile"

    def _edges(self, v):
        return np.quantile(v, np.arange(1, self.bins) / self.bins)


class UniformDiscretizer(_OneFeatureBins):
    """Equal-width bins of one feature over the fitted range."""

    kind = "uniform"

    def _edges(self, v):
        lo, hi = float(v.min()), float(v.max())
        return np.linspace(lo, hi, self.bins + 1)[1:-1] if hi > lo else np.array([])


class KMeansDiscretizer(_Continuous):
    """k-means cells (``bins`` clusters, ``n_init`` restarts, seeded) of the features."""

    kind = "kmeans"

    def __init__(self, bins: int = 20, *, pca_dims: int | None = None, seed: int = 0,
                 normalize: str | None = None, n_init: int = 4):
        super().__init__(bins, pca_dims=pca_dims, seed=seed, normalize=normalize)
        self.n_init = check_positive_int(n_init, "n_init")

    def _fit(self, z, name):
        _require_sklearn("discretizer='kmeans'")
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=self.bins, n_init=self.n_init, random_state=self.seed).fit(z)
        self.kmeans_ = km
        self.n_codes_ = self.bins

    def _transform(self, z):
        return self.kmeans_.predict(z)


_KINDS = {"kmeans": KMeansDiscretizer, "quantile": QuantileDiscretizer, "uniform": UniformDiscretizer}


def check_normalize(normalize):
    """``normalize`` must be one of ``NORMALIZATIONS``."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}, got {normalize!r}")
    return normalize


def make_discretizer(kind, *, bins: int = 20, pca_dims: int | None = None, seed: int = 0,
                     normalize: str | None = None):
    """An unfitted discretizer: ``kind`` in ``DISCRETIZERS``, or ``None`` for labels."""
    if kind is None:
        if pca_dims is not None or normalize is not None:
            raise ValueError("pca_dims and normalize need a continuous discretizer ('kmeans', 'quantile', 'uniform')")
        return LabelEncoder()
    if kind not in _KINDS:
        raise ValueError(f"Unknown discretizer {kind!r}; choose one of {list(DISCRETIZERS)} or None")
    return _KINDS[kind](bins, pca_dims=pca_dims, seed=seed, normalize=normalize)


class JointDiscretizer:
    """The fitted encoders of ``x1``, ``x2`` (features or labels) and ``y`` (labels).

    ``transform(x1, x2, y)`` gives the codes of new samples in the fitted bins;
    ``histogram(x1, x2, y)`` their count tensor with the fitted shape
    ``(n1, n2, ny)``, ready for :func:`fastpid.pid`.
    """

    def __init__(self, x1, x2, y):
        self.x1, self.x2, self.y = x1, x2, y

    @property
    def shape(self) -> tuple:
        return (self.x1.n_codes_, self.x2.n_codes_, self.y.n_codes_)

    def transform(self, x1, x2, y):
        c1 = self.x1.transform(x1, name="x1")
        c2 = self.x2.transform(x2, name="x2")
        cy = self.y.transform(y, name="y")
        if not len(c1) == len(c2) == len(cy):
            raise ValueError(
                f"x1, x2 and y must have the same number of samples, got {len(c1)}, {len(c2)}, {len(cy)}"
            )
        return c1, c2, cy

    def histogram(self, x1, x2, y) -> np.ndarray:
        c1, c2, cy = self.transform(x1, x2, y)
        n1, n2, ny = self.shape
        flat = (c1 * n2 + c2) * ny + cy
        return np.bincount(flat, minlength=n1 * n2 * ny).reshape(n1, n2, ny).astype(np.float64)

    def __repr__(self):
        return f"JointDiscretizer(x1={self.x1!r}, x2={self.x2!r}, y={self.y!r})"
