"""The result type returned by :func:`fastpid.pid`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["PIDResult", "ATOMS"]

ATOMS = ("R", "U1", "U2", "S")


@dataclass(frozen=True, repr=False)
class PIDResult:
    """Bivariate PID of a joint distribution P[x1, x2, y], in bits.

    For a single distribution every numeric field is a Python scalar; for a
    batch ``(..., n1, n2, ny)`` each is an array (NumPy or torch, following the
    input) of shape ``(...)``.

    Attributes
    ----------
    R, U1, U2, S : redundancy, unique information of X1 and of X2, synergy.
    I, I1, I2 : I(X1,X2;Y), I(X1;Y), I(X2;Y) of the input distribution.
    q : the optimizing distribution (same shape as P, normalized to sum 1).
    converged : whether the solver met its tolerances *and* q is feasible.
    violation : max absolute marginal-constraint violation of q.
    iterations : iterations the solver used.
    gap : duality / optimality gap in bits where the method certifies one, else NaN.
    method, backend : what actually ran.
    info : solver metadata (status strings, tolerances, solver name).
    """

    R: Any
    U1: Any
    U2: Any
    S: Any
    I: Any
    I1: Any
    I2: Any
    q: Any
    converged: Any
    violation: Any
    iterations: Any
    gap: Any
    method: str
    backend: str
    info: dict = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, values: dict) -> "PIDResult":
        """The result with these field values (every field, in field order),
        without the per-field ``object.__setattr__`` of the frozen
        dataclass's ``__init__``: for the short path of :func:`fastpid.pid`."""
        self = object.__new__(cls)
        self.__dict__.update(values)
        return self

    @property
    def batch_shape(self) -> tuple:
        r = self.R
        return () if np.isscalar(r) or getattr(r, "ndim", 0) == 0 else tuple(r.shape)

    def atoms(self) -> dict:
        """The four atoms as a dict ``{"R":…, "U1":…, "U2":…, "S":…}``."""
        return {k: getattr(self, k) for k in ATOMS}

    def to_dict(self, *, include_q: bool = False) -> dict:
        """Plain-Python dict (lists for arrays), JSON-serializable."""
        out = {}
        for f in fields(self):
            if f.name == "q" and not include_q:
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def __repr__(self) -> str:
        if self.batch_shape == ():
            atoms = ", ".join(f"{k}={_fmt6(getattr(self, k))}" for k in ATOMS)
            g = float(_plain(self.gap))
            gap = "nan" if g != g else f"{g:.1e}"
            return (
                f"PIDResult({atoms} bits; I={_fmt6(self.I)}, converged={self.converged}, "
                f"violation={float(_plain(self.violation)):.1e}, gap={gap}, iterations={self.iterations}, "
                f"method={self.method!r}, backend={self.backend!r})"
            )
        conv = _plain(self.converged)
        n_ok = int(np.sum(conv))
        n = int(np.size(conv))
        return (
            f"PIDResult(batch_shape={self.batch_shape}, converged {n_ok}/{n}, "
            f"max violation={float(np.max(_plain(self.violation))):.1e}, "
            f"method={self.method!r}, backend={self.backend!r})"
        )


def _fmt6(v) -> str:
    """Six decimals, without printing round-off below them as '-0.000000'."""
    text = f"{float(_plain(v)):.6f}"  # detached: no autograd warning for tensors
    return "0.000000" if text == "-0.000000" else text


def _plain(v):
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
