"""Method registry: one module per method, one dispatch point.

A method registers a solver per backend with :func:`register`.  A solver takes
the validated, normalized batch ``p`` of shape (B, n1, n2, ny) plus its own
keyword options and returns a :class:`Solution`.  Adding a method or backend is
one new module plus one import line below; :func:`fastpid.pid` never changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Solution", "register", "get_solver", "available_methods"]


@dataclass
class Solution:
    """Raw output of a solver on a batch (all arrays have leading size B).

    ``converged`` must already account for feasibility (violation within the
    solver's feasibility tolerance); ``gap`` is in bits (NaN if none).
    """

    q: Any
    converged: Any
    violation: Any
    iterations: Any
    gap: Any
    info: dict = field(default_factory=dict)
    atoms: dict | None = None  # set by methods that build differentiable atoms themselves


_REGISTRY: dict[tuple[str, str], Callable[..., Solution]] = {}


def register(name: str, backend: str):
    """Decorator registering ``func`` as method ``name`` on ``backend``."""

    def deco(func):
        _REGISTRY[(name, backend)] = func
        return func

    return deco


def available_methods(backend: str | None = None) -> list[str]:
    return sorted({m for (m, b) in _REGISTRY if backend is None or b == backend})


def get_solver(method: str, backend: str) -> Callable[..., Solution]:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    try:
        return _REGISTRY[(method, backend)]
    except KeyError:
        names = available_methods(backend)
        if method in available_methods():
            raise ValueError(
                f"method {method!r} is not available on the {backend!r} backend; "
                f"methods there: {names}"
            ) from None
        raise ValueError(f"Unknown method {method!r}; choose one of {names}") from None


# Method modules register themselves on import.
from . import analytic, fastpid_adam, cvx, exact  # noqa: E402,F401

import importlib.util as _ilu  # noqa: E402

if _ilu.find_spec("torch") is not None and _ilu.find_spec(__name__ + ".torch_methods") is not None:
    from . import torch_methods  # noqa: F401  (torch solvers register only when torch is installed)
