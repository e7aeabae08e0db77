"""Helpers shared by the method modules (both backends)."""
from __future__ import annotations

import numpy as np

from ..backend import backend_names, get_backend
from ..information import marginal_violation

NP = get_backend(np.zeros(1))

if "torch" in backend_names():
    import torch

    TORCH = get_backend(torch.zeros(1))
else:  # pragma: no cover - exercised only without torch
    torch = None
    TORCH = None


def marginals(nx, p):
    """a = p(x1, y) of shape (B, n1, ny), b = p(x2, y) of shape (B, n2, ny)."""
    return nx.sum(p, axis=2), nx.sum(p, axis=1)


def analytic_q(nx, p):
    """q(x1,x2,y) = p(x1,y) p(x2,y) / p(y): the conditionally independent
    (maximum joint entropy) member of the feasible set, batched (differentiable
    on torch)."""
    a, b = marginals(nx, p)
    inv = nx.reciprocal(nx.sum(a, axis=1))  # 1 / p(y), 0 where p(y) = 0
    return a[:, :, None, :] * b[:, None, :, :] * inv[:, None, None, :]


def violation(nx, p, q):
    """Max marginal violation of q per item (outside any autograd graph)."""
    return marginal_violation(nx, nx.detach(p), nx.detach(q))


def host64(t):
    """Detached float64 C-contiguous NumPy copy of a tensor."""
    return np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float64).numpy())


def diagnostics_to_tensors(sol, ref) -> dict:
    """The per-item diagnostics of a NumPy :class:`Solution` as tensors on ref's device."""

    def tensor(a, dtype):
        return torch.as_tensor(np.asarray(a), dtype=dtype, device=ref.device)

    return dict(
        converged=tensor(np.asarray(sol.converged, dtype=bool), torch.bool),
        violation=tensor(sol.violation, ref.dtype),
        iterations=tensor(np.asarray(sol.iterations, dtype=np.int64), torch.int64),
        gap=tensor(sol.gap, ref.dtype),
    )
