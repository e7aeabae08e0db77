"""Result types of :mod:`fastpid.estimate`: PIDEstimate and SensitivityReport."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..result import ATOMS, PIDResult, _plain
from ._solve import QUANTITIES

__all__ = ["PIDEstimate", "SensitivityReport"]


def _require_pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_frame() needs pandas: pip install 'fastpid[estimate]' (or use to_dict())") from None
    return pd


@dataclass(frozen=True, repr=False)
class PIDEstimate:
    """PID estimated from samples, in bits, with its uncertainty.

    Attributes
    ----------
    result : PIDResult
        The plug-in PID of ``histogram`` (solver certificate included).
    estimate : dict
        Reported values of R, U1, U2, S, I, I1, I2: ``plugin - bias`` when a
        ``bias_correction`` was chosen, else the plug-in values.  Also
        available as attributes ``.R``, ``.U1``, ``.U2``, ``.S``.
    plugin, bias : dict
        Plug-in values and the estimated bias (``None`` without correction).
    intervals : dict or None
        name -> (low, high) bootstrap percentile interval at ``confidence``
        (with a correction: centred on the corrected estimate, spread of the
        bootstrap-corrected estimator, see ``n_boot_inner``);
        ``None`` when ``n_boot == 0``.
    pvalues : dict or None
        name -> permutation p-value of "the plug-in value is above chance"
        (null: Y independent of (X1, X2)); ``None`` when ``n_perm == 0``.
    histogram : ndarray (n1, n2, ny)
        Sample counts on the fitted grid.
    discretizer : fastpid.discretize.JointDiscretizer
        The fitted bins; ``discretizer.histogram(x1, x2, y)`` applies them to new data.
    replicates : dict
        Replicate values: block ("boot", "boot_inner", "perm", "half", "quarter")
        -> name -> array ("boot_inner": ``n_boot_inner`` per bootstrap replicate, in order).
    """

    result: PIDResult
    estimate: dict
    plugin: dict
    bias: dict | None
    intervals: dict | None
    pvalues: dict | None
    confidence: float
    bias_correction: str | None
    histogram: np.ndarray
    discretizer: Any
    n_samples: int
    n_boot: int
    n_perm: int
    seed: int
    method: str
    replicates: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    R = property(lambda self: self.estimate["R"])
    U1 = property(lambda self: self.estimate["U1"])
    U2 = property(lambda self: self.estimate["U2"])
    S = property(lambda self: self.estimate["S"])

    def to_dict(self, *, include_replicates: bool = False) -> dict:
        """Plain-Python, JSON-serializable dict (histogram as nested lists)."""
        out = {
            "estimate": dict(self.estimate),
            "plugin": dict(self.plugin),
            "bias": None if self.bias is None else dict(self.bias),
            "intervals": None if self.intervals is None else {k: list(v) for k, v in self.intervals.items()},
            "pvalues": None if self.pvalues is None else dict(self.pvalues),
            "confidence": self.confidence,
            "bias_correction": self.bias_correction,
            "histogram": _plain(self.histogram),
            "shape": list(self.histogram.shape),
            "n_samples": self.n_samples,
            "n_boot": self.n_boot,
            "n_perm": self.n_perm,
            "seed": self.seed,
            "method": self.method,
            "discretizer": repr(self.discretizer),
            "result": self.result.to_dict(),
            "info": _plain(self.info),
        }
        if include_replicates:
            out["replicates"] = _plain(self.replicates)
        return out

    def to_frame(self):
        """pandas DataFrame, one row per quantity (R, U1, U2, S, I, I1, I2)."""
        pd = _require_pandas()
        rows = []
        for k in QUANTITIES:
            row = {"quantity": k, "estimate": self.estimate[k], "plugin": self.plugin[k]}
            row["bias"] = np.nan if self.bias is None else self.bias[k]
            lo, hi = (np.nan, np.nan) if self.intervals is None else self.intervals[k]
            row["ci_low"], row["ci_high"] = lo, hi
            row["pvalue"] = np.nan if self.pvalues is None else self.pvalues[k]
            rows.append(row)
        return pd.DataFrame(rows).set_index("quantity")

    def __repr__(self) -> str:
        parts = []
        for k in ATOMS:
            s = f"{k}={self.estimate[k]:.4f}"
            if self.intervals is not None:
                lo, hi = self.intervals[k]
                s += f" [{lo:.4f}, {hi:.4f}]"
            if self.pvalues is not None:
                s += f" (p={self.pvalues[k]:.3g})"
            parts.append(s)
        corr = f", bias_correction={self.bias_correction!r}" if self.bias_correction else ""
        return (
            f"PIDEstimate({', '.join(parts)} bits; n_samples={self.n_samples}, "
            f"grid={tuple(self.histogram.shape)}{corr}, method={self.method!r})"
        )


@dataclass(frozen=True, repr=False)
class SensitivityReport:
    """Atoms as a function of ``bins`` and ``pca_dims``: one row per configuration.

    ``columns`` maps a column name to a NumPy array: ``bins``, ``pca_dims``
    (-1 for none), ``n1``, ``n2``, ``ny``, then for each quantity ``q`` in R,
    U1, U2, S, I, I1, I2: ``q`` (reported value), ``q_plugin`` and, when
    available, ``q_low``/``q_high`` (interval) and ``q_p`` (p-value).
    """

    columns: dict
    confidence: float
    bias_correction: str | None
    n_samples: int
    method: str
    discretizer: str | None

    def __len__(self):
        return len(self.columns["bins"])

    def to_dict(self) -> dict:
        return {
            "columns": _plain(self.columns),
            "confidence": self.confidence,
            "bias_correction": self.bias_correction,
            "n_samples": self.n_samples,
            "method": self.method,
            "discretizer": self.discretizer,
        }

    def to_frame(self):
        """pandas DataFrame with one row per (bins, pca_dims)."""
        return _require_pandas().DataFrame(self.columns)

    def plot(self, ax=None, *, atoms=ATOMS):
        """Atoms against ``bins`` (one panel line per atom and pca_dims), with
        interval bands when available.  Needs matplotlib; returns the Axes."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("plot() needs matplotlib: pip install 'fastpid[bench]' (or use to_frame() for the numbers)") from None
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        c = self.columns
        for d in np.unique(c["pca_dims"]):
            m = c["pca_dims"] == d
            order = np.argsort(c["bins"][m])
            b = c["bins"][m][order]
            tag = "" if d < 0 else f", pca_dims={d}"
            for k in atoms:
                (line,) = ax.plot(b, c[k][m][order], marker="o", label=f"{k}{tag}")
                if f"{k}_low" in c:
                    ax.fill_between(b, c[f"{k}_low"][m][order], c[f"{k}_high"][m][order],
                                    color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bins (k)")
        ax.set_ylabel("bits")
        corr = f" ({self.bias_correction}-corrected)" if self.bias_correction else " (plug-in)"
        ax.set_title(f"PID vs discretization, N={self.n_samples}{corr}")
        ax.legend(fontsize="small", ncol=2)
        return ax

    def __repr__(self):
        return (
            f"SensitivityReport({len(self)} configurations, bins={sorted(set(self.columns['bins'].tolist()))}, "
            f"bias_correction={self.bias_correction!r}, method={self.method!r})"
        )
