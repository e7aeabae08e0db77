"""PID from samples: discretization, bias correction, intervals, p-values.

>>> import numpy as np
>>> from fastpid.estimate import pid_from_samples
>>> rng = np.random.default_rng(0)
>>> x1, x2 = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
>>> est = pid_from_samples(x1, x2, x1 ^ x2, n_boot=100, n_perm=100, bias_correction="bootstrap")
>>> est.S > 0.9 and est.pvalues["S"] < 0.05
True

Public API: :func:`pid_from_samples` (returns :class:`PIDEstimate`),
:func:`sensitivity` (returns :class:`SensitivityReport`), ``BIAS_CORRECTIONS``.
The discretizers live in :mod:`fastpid.discretize`.  scikit-learn (k-means,
PCA) and pandas (``to_frame``) are optional and imported only when used.
"""
from ._bias import BIAS_CORRECTIONS
from ._estimate import pid_from_samples
from ._result import PIDEstimate, SensitivityReport
from ._sensitivity import sensitivity

__all__ = ["pid_from_samples", "sensitivity", "PIDEstimate", "SensitivityReport", "BIAS_CORRECTIONS"]
