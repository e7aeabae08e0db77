"""Method registry: one module per method, both backends inside, one dispatch point.

A method module defines its options once, as a function of keyword-only
arguments that returns them validated, and registers an implementation per
backend with :func:`register`.  An implementation takes the validated,
normalized batch ``p`` of shape (B, n1, n2, ny) (an ndarray, or a tensor on the
input's device) plus the validated options and returns a :class:`Solution`.
Adding a method or backend is one new module plus one import line below;
:func:`fastpid.pid` never changes.
"""
from __future__ import annotations

import functools
import inspect
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


def register(name: str, backend: str, options: Callable[..., dict]):
    """Decorator registering ``impl(p, **validated_options)`` as method ``name``
    on ``backend``.  The registered solver has the signature ``(p, **options)``
    of ``options`` (so :func:`fastpid.pid` reports unknown options), validates
    them with ``options`` and calls ``impl``."""

    def deco(impl):
        defaults = []  # options() without arguments, validated once on first use

        @functools.wraps(impl)
        def solver(p, **opts):
            if opts:
                return impl(p, **options(**opts))
            if not defaults:
                defaults.append(options())
            return impl(p, **defaults[0])

        params = [inspect.Parameter("p", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [prm for prm in inspect.signature(options).parameters.values()
                   if prm.kind == prm.KEYWORD_ONLY]
        solver.__signature__ = inspect.Signature(params)
        _REGISTRY[(name, backend)] = solver
        return impl

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


# Method modules register themselves on import (their torch implementations
# only when torch is installed).
from . import analytic, fastpid_adam, cvx, exact  # noqa: E402,F401
