"""The array-backend seam: one place that knows about NumPy and PyTorch.

Algorithms that must run on both written once against a :class:`Backend`
(``nx``), in the spirit of POT's ``ot.backend``.  ``get_backend`` picks the
backend from the input type; ``torch`` registers only when it imports, so
``import fastpid`` never needs torch.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Backend", "NumpyBackend", "get_backend", "backend_names"]


class Backend:
    """Minimal array API used by the information and validation code."""

    name = "abstract"

    def is_array(self, a) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class NumpyBackend(Backend):
    name = "numpy"

    def is_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def asarray(self, a, dtype=None):
        return np.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def xlogx(self, a):
        """Elementwise a*log(a) with 0*log(0)=0."""
        out = np.zeros_like(a)
        pos = a > 0
        out[pos] = a[pos] * np.log(a[pos])
        return out

    def sum(self, a, axis=None):
        return a.sum(axis=axis)

    def abs(self, a):
        return np.abs(a)

    def amax(self, a, axis=None):
        return a.max(axis=axis)

    def maximum(self, a, b):
        return np.maximum(a, b)

    def isfinite(self, a):
        return np.isfinite(a)

    def coerce(self, P, name):
        """Convert array-like input to a float64 ndarray, refusing
        non-numeric and complex input with a TypeError."""
        try:
            arr = np.asarray(P)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array-like of real numbers: {exc}") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            kind = "complex" if arr.dtype.kind == "c" else f"non-numeric (dtype {arr.dtype})"
            raise TypeError(f"{name} must hold real numbers, got {kind} input")
        if arr.dtype.kind == "b":
            raise TypeError(f"{name} must hold counts or probabilities, got a boolean array")
        return np.ascontiguousarray(arr, dtype=np.float64)


_BACKENDS: dict[str, Backend] = {"numpy": NumpyBackend()}

try:  # torch is optional
    import torch as _torch

    class TorchBackend(Backend):
        name = "torch"

        def is_array(self, a) -> bool:
            return isinstance(a, _torch.Tensor)

        def asarray(self, a, dtype=None):
            return _torch.as_tensor(a, dtype=dtype)

        def to_numpy(self, a):
            return a.detach().cpu().numpy()

        def xlogx(self, a):
            return _torch.special.xlogy(a, a)

        def sum(self, a, axis=None):
            if axis is None:
                return a.sum()
            return a.sum(dim=axis)

        def abs(self, a):
            return a.abs()

        def amax(self, a, axis=None):
            if axis is None:
                return a.max()
            if isinstance(axis, tuple):
                return a.amax(dim=axis)
            return a.amax(dim=axis)

        def maximum(self, a, b):
            return _torch.maximum(a, b)

        def isfinite(self, a):
            return _torch.isfinite(a)

        def coerce(self, P, name):
            """Keep float32/float64 tensors as they are (device and dtype
            follow the input); integer tensors become float64."""
            if not isinstance(P, _torch.Tensor):
                P = self.coerce_foreign(P, name)
            if P.is_complex():
                raise TypeError(f"{name} must hold real numbers, got a complex tensor")
            if P.dtype == _torch.bool:
                raise TypeError(f"{name} must hold counts or probabilities, got a boolean tensor")
            if not P.is_floating_point():
                return P.to(_torch.float64)
            if P.dtype not in (_torch.float32, _torch.float64):
                return P.to(_torch.float32)
            return P

        def coerce_foreign(self, P, name):
            return _torch.as_tensor(NumpyBackend().coerce(P, name))

    _BACKENDS["torch"] = TorchBackend()
except ImportError:  # pragma: no cover - exercised only without torch
    pass


def backend_names() -> list[str]:
    """Names of the backends available in this environment."""
    return list(_BACKENDS)


def get_backend(P, backend: str | None = None) -> Backend:
    """Backend for input ``P``: torch tensors go to ``"torch"``, anything else
    array-like to ``"numpy"``; ``backend`` overrides the choice."""
    if backend is not None:
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string or None, got {type(backend).__name__}")
        if backend not in _BACKENDS:
            hint = " (install torch: pip install 'fastpid[torch]')" if backend == "torch" else ""
            raise ValueError(
                f"Unknown backend {backend!r}; available: {sorted(_BACKENDS)}{hint}"
            )
        return _BACKENDS[backend]
    if "torch" in _BACKENDS and _BACKENDS["torch"].is_array(P):
        return _BACKENDS["torch"]
    return _BACKENDS["numpy"]
