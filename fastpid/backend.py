"""The array-backend seam: one place that knows about NumPy and PyTorch.

Algorithms that must run on both are written once against a :class:`Backend`
(``nx``), in the spirit of POT's ``ot.backend``.  ``get_backend`` picks the
backend from the input type; ``torch`` registers only when it imports, so
``import fastpid`` never needs torch.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Backend", "NumpyBackend", "get_backend", "backend_names"]


class Backend:
    """Array API used by the validation, information and method code.

    Every array a method sees is a batch (B, ...) of the backend's own type
    (float64 ndarrays for NumPy; float32/float64 tensors on the input's device
    for torch, possibly attached to an autograd graph).
    """

    name = "abstract"

    def is_array(self, a) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class NumpyBackend(Backend):
    name = "numpy"

    def is_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def coerce(self, P, name):
        """Convert array-like input (a tensor included: detached, on the CPU)
        to a float64 ndarray, refusing non-numeric and complex input with a
        TypeError.  The shape is kept as given (0-D stays 0-D)."""
        if hasattr(P, "detach") and hasattr(P, "cpu"):
            P = P.detach().cpu().numpy()
        if isinstance(P, np.ma.MaskedArray):
            raise TypeError(
                f"{name} is a masked array; fastpid does not guess what masked cells mean: "
                f"pass {name}.filled(0) (masked cells carry no mass) or a plain array"
            )
        try:
            arr = np.asarray(P)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array-like of real numbers: {exc}") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            kind = "complex" if arr.dtype.kind == "c" else f"non-numeric (dtype {arr.dtype})"
            raise TypeError(f"{name} must hold real numbers, got {kind} input")
        if arr.dtype.kind == "b":
            raise TypeError(f"{name} must hold counts or probabilities, got a boolean array")
        return np.asarray(arr, dtype=np.float64, order="C")

    def to_numpy(self, a):
        return np.asarray(a)

    def to_scalar(self, a):
        """One element of a result array as the user gets it: a Python number."""
        return a.item()

    def detach(self, a):
        return a

    def eps(self, a) -> float:
        """Machine epsilon of a's floating dtype."""
        return float(np.finfo(a.dtype).eps)

    def vector(self, n, value, like, *, integer=False):
        """A length-n vector filled with ``value`` (like's float dtype, or int64)."""
        return np.full(n, value, dtype=np.int64 if integer else like.dtype)

    def reciprocal(self, a):
        """1 / a where a > 0, and 0 where a == 0."""
        return np.divide(1.0, a, out=np.zeros_like(a), where=a > 0)

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


_BACKENDS: dict[str, Backend] = {"numpy": NumpyBackend()}

try:  # torch is optional
    import torch as _torch

    class TorchBackend(Backend):
        name = "torch"

        def is_array(self, a) -> bool:
            return isinstance(a, _torch.Tensor)

        def coerce(self, P, name):
            """Keep float32/float64 tensors as they are (device and dtype
            follow the input); integer tensors become float64; anything else
            goes through the NumPy checks first."""
            if not isinstance(P, _torch.Tensor):
                P = _torch.as_tensor(NumpyBackend().coerce(P, name))
            if P.is_complex():
                raise TypeError(f"{name} must hold real numbers, got a complex tensor")
            if P.dtype == _torch.bool:
                raise TypeError(f"{name} must hold counts or probabilities, got a boolean tensor")
            if not P.is_floating_point():
                return P.to(_torch.float64)
            if P.dtype not in (_torch.float32, _torch.float64):
                return P.to(_torch.float32)
            return P

        def to_numpy(self, a):
            return a.detach().cpu().numpy()

        def to_scalar(self, a):
            """One element of a result tensor as the user gets it: a 0-D
            tensor (device and autograd graph kept)."""
            return a

        def detach(self, a):
            return a.detach()

        def eps(self, a) -> float:
            return float(_torch.finfo(a.dtype).eps)

        def vector(self, n, value, like, *, integer=False):
            dtype = _torch.int64 if integer else like.dtype
            return _torch.full((n,), value, dtype=dtype, device=like.device)

        def reciprocal(self, a):
            pos = a > 0
            return _torch.where(pos, 1.0 / _torch.where(pos, a, _torch.ones_like(a)), _torch.zeros_like(a))

        def safe_log(self, x):
            """log x where x > 0, and 0 where x == 0 (the slope convention of 0 log 0)."""
            pos = x > 0
            return _torch.where(pos, _torch.log(_torch.where(pos, x, _torch.ones_like(x))), _torch.zeros_like(x))

        def xlogx(self, a):
            """x log x with 0 log 0 = 0 and slope 0 at 0 (``torch.special.xlogy``
            has a NaN gradient there), so autograd through the atoms stays
            finite at empty cells."""
            return a * self.safe_log(a)

        def sum(self, a, axis=None):
            if axis is None:
                return a.sum()
            return a.sum(dim=axis)

        def abs(self, a):
            return a.abs()

        def amax(self, a, axis=None):
            if axis is None:
                return a.max()
            return a.amax(dim=axis)

        def maximum(self, a, b):
            return _torch.maximum(a, b)

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
