"""Solving, timing and scoring: one place that calls :func:`fastpid.pid`.

* :data:`METHODS` maps the bench's method names to ``pid`` options.
* :func:`measure` times ``repeat`` solves (JIT warm-up excluded) and records
  the solver's own diagnostics; a solver that raises is recorded, not hidden.
* :class:`Referee` picks the MAE reference for a problem: the most accurate
  solver that ran (or is run for the purpose), never the method being scored.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

import fastpid

__all__ = [
    "METHODS",
    "REFERENCE_ORDER",
    "REFERENCE_POLICY",
    "Measurement",
    "measure",
    "warm_up",
    "Referee",
    "mae",
    "ATOMS",
]

ATOMS = ("R", "U1", "U2", "S")

#: bench method name -> (pid method, pid options).  Recorded in results.json.
METHODS: dict[str, tuple[str, dict]] = {
    "exact": ("exact", {}),
    "fastpid": ("fastpid", {}),  # the paper's defaults; the run's --seed is passed as seed
    "analytic": ("analytic", {}),
    "cvx-scs": ("cvx", {"solver": "SCS", "tol": 1e-6, "max_iter": 10_000}),
    "cvx-clarabel": ("cvx", {"solver": "CLARABEL", "tol": 1e-8}),
}

#: the MAE reference is the first of these that is accurate on the problem
#: (and is not the method being scored)
REFERENCE_ORDER = ("exact", "cvx-clarabel", "cvx-scs")
REF_GAP = 1e-6  # bits: exact's certified duality gap must be at most this
REF_VIOLATION = 1e-6  # max marginal violation of the reference q
REFERENCE_POLICY = (
    f"first accurate solver of {list(REFERENCE_ORDER)} other than the method scored: "
    f"exact if its certified gap <= {REF_GAP:g} bits, a cvx solver if its status is 'optimal'; "
    f"both need marginal violation <= {REF_VIOLATION:g}. If none qualifies, the first one "
    "with finite atoms is used and marked '(unverified)'."
)


@dataclass
class Measurement:
    """One method on one problem: atoms (bits), timings and diagnostics."""

    method: str
    options: dict
    atoms: dict = field(default_factory=dict)  # floats, or arrays for a batch
    I: float = math.nan
    times: list = field(default_factory=list)
    converged: float = math.nan  # bool as 0/1, or the converged fraction of a batch
    violation: float = math.nan  # max over the batch
    iterations: float = math.nan  # mean over the batch
    gap: float = math.nan  # max over the batch
    status: str = ""
    n_warnings: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(np.all(np.isfinite(self.atoms.get(k, np.nan))) for k in ATOMS)

    @property
    def time(self) -> float:
        return float(np.median(self.times)) if self.times else math.nan

    @property
    def time_min(self) -> float:
        return float(np.min(self.times)) if self.times else math.nan


def method_options(method: str, seed: int, extra: dict | None = None) -> tuple[str, dict]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    name, opts = METHODS[method]
    opts = dict(opts)
    if name == "fastpid":
        opts["seed"] = int(seed)
    opts.update(extra or {})
    return name, opts


def _status(info) -> str:
    st = info.get("status", "")
    if isinstance(st, (list, tuple)):
        uniq = sorted({str(s) for s in st})
        return ";".join(uniq)
    return str(st)


def _num(v, reduce=None):
    a = np.asarray(v, dtype=float)
    if a.ndim == 0:
        return float(a)
    return float(reduce(a)) if reduce is not None else a


def measure(P, method: str, *, backend=None, repeat: int = 1, seed: int = 0, extra=None) -> Measurement:
    """Solve ``P`` with ``method`` ``repeat`` times; keep the last result and every time."""
    name, opts = method_options(method, seed, extra)
    m = Measurement(method=method, options=opts)
    res = None
    for _ in range(repeat):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fastpid.ConvergenceWarning)
            t0 = time.perf_counter()
            try:
                res = fastpid.pid(P, method=name, backend=backend, **opts)
            except Exception as exc:  # recorded in the results, never silently replaced
                m.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                m.status = "error"
                return m
            m.times.append(time.perf_counter() - t0)
        m.n_warnings = sum(issubclass(w.category, fastpid.ConvergenceWarning) for w in caught)
    d = res.to_dict()
    m.atoms = {k: _num(d[k]) for k in ATOMS}
    m.I = _num(d["I"], np.mean)
    m.converged = _num(d["converged"], np.mean)
    m.violation = _num(d["violation"], np.max)
    m.iterations = _num(d["iterations"], np.mean)
    gap = np.asarray(d["gap"], dtype=float)
    m.gap = float(np.nanmax(gap)) if np.isfinite(gap).any() else math.nan
    m.status = _status(res.info)
    return m


_WARM: dict[tuple, float] = {}


def warm_up(method: str, backend=None, seed: int = 0) -> float:
    """Solve a tiny problem once so JIT compilation is not timed; returns its seconds."""
    key = (method, backend)
    if key not in _WARM:
        t0 = time.perf_counter()
        measure(fastpid.distributions.and_(), method, backend=backend, seed=seed)
        measure(np.stack([fastpid.distributions.and_()] * 2), method, backend=backend, seed=seed)
        _WARM[key] = time.perf_counter() - t0
    return _WARM[key]


def warm_up_times() -> dict:
    return {f"{m}@{b or 'default'}": round(t, 3) for (m, b), t in _WARM.items()}


def accurate(m: Measurement) -> bool:
    """Is this measurement good enough to serve as the MAE reference?"""
    if not m.ok or not (m.violation <= REF_VIOLATION):
        return False
    if m.method == "exact":
        return math.isfinite(m.gap) and m.gap <= REF_GAP
    if m.method.startswith("cvx"):
        return m.status == "optimal"
    return False


def mae(atoms: dict, ref: dict) -> float:
    """Mean absolute error over R, U1, U2, S (bits); NaN if either is missing."""
    if not atoms or not ref:
        return math.nan
    return float(np.mean([abs(float(np.mean(atoms[k])) - float(np.mean(ref[k]))) for k in ATOMS]))


class Referee:
    """Per-problem cache of measurements and the reference choice.

    ``add`` stores the measurements the run made anyway; ``reference`` runs a
    reference candidate only when the run did not already include it.
    """

    def __init__(self, P, *, backend=None, seed: int = 0, order=REFERENCE_ORDER, extra=None):
        self.P = P
        self.order = tuple(order)
        self.extra = extra or {}
        self.backend = backend
        self.seed = seed
        self.runs: dict[str, Measurement] = {}
        self.extra_runs: list[str] = []  # candidates run only to serve as reference

    def add(self, m: Measurement) -> None:
        self.runs.setdefault(m.method, m)

    def _get(self, method: str) -> Measurement:
        if method not in self.runs:
            warm_up(method, self.backend, self.seed)
            self.runs[method] = measure(self.P, method, backend=self.backend, seed=self.seed,
                                        extra=self.extra.get(method))
            self.extra_runs.append(method)
        return self.runs[method]

    def reference(self, scored: str) -> tuple[str, Measurement | None]:
        """(label, measurement) of the reference for ``scored``; label names the solver."""
        fallback = None
        for cand in self.order:
            if cand == scored:
                continue
            m = self._get(cand)
            if accurate(m):
                return cand, m
            if fallback is None and m.ok:
                fallback = m
        if fallback is not None:
            return f"{fallback.method} (unverified)", fallback
        return "none", None
