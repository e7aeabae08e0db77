"""What every benchmark script records about each solve it times.

``solve(P, **options)`` runs ``fastpid.pid`` and returns ``(result, record)``;
``record`` holds ``converged`` (per item), the solver ``status`` (per item) and
the number of ``ConvergenceWarning``s raised, which are caught and counted here
rather than silenced.  Scripts report a time as a success only for solves whose
record says ``converged``; the others are counted and listed as failures.
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

import fastpid


def _items(v, n):
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    return a.reshape(-1).tolist() if a.ndim else [a.item()] * n


def solve(P, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fastpid.ConvergenceWarning)
        res = fastpid.pid(P, **options)
    conv = _items(res.converged, 1)
    status = res.info.get("status")
    status = [str(s) for s in status] if isinstance(status, (list, tuple, np.ndarray)) else [str(status)] * len(conv)
    n_warn = sum(issubclass(w.category, fastpid.ConvergenceWarning) for w in caught)
    for w in caught:  # anything else is passed on unchanged
        if not issubclass(w.category, fastpid.ConvergenceWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return res, {"converged": [bool(c) for c in conv], "status": status, "convergence_warnings": n_warn}


def all_converged(record) -> bool:
    return all(record["converged"])


def summary(records) -> dict:
    """Counts over several records: solves, converged, statuses."""
    conv = [c for r in records for c in r["converged"]]
    st = Counter(s for r in records for s in r["status"])
    return {"solves": len(conv), "converged": int(sum(conv)), "status": dict(st)}
