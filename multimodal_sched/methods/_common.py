"""Helpers shared by the Stage II strategies: option checks, cross-rank sums, fusion shares."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

__all__ = ["check_float", "check_int", "check_bool", "all_reduce_sum", "world_size",
           "fusion_shares", "encoder_params", "unwrap"]


def unwrap(model):
    """The module inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper, else ``model``."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                              torch.nn.DataParallel)) else model


def check_float(strategy: str, name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """``value`` as a finite float within ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{strategy}: option {name!r} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{strategy}: option {name!r} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = ">" if low_open else ">="
        raise ValueError(f"{strategy}: option {name!r} must be {bound} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{strategy}: option {name!r} must be <= {high}, got {value}")
    return value


def check_int(strategy: str, name: str, value, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{strategy}: option {name!r} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{strategy}: option {name!r} must be >= {low}, got {value}")
    return int(value)


def check_bool(strategy: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{strategy}: option {name!r} must be True or False, got {value!r}")
    return value


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks in place (a no-op in a single process); returns ``t``."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def fusion_shares(model, z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each modality's share of the fused linear classifier: ``W_u z_u + b / 2``.

    ``ConcatFusion``: ``W = [W_1, W_2]`` split at ``z1``'s width, ``b`` its bias.
    ``SumFusion``: ``W_1 = fc1.weight`` with ``b = fc1.bias``, ``W_2 = fc2.weight`` (no bias).
    The two shares add up to the fused logits exactly.
    """
    fusion = getattr(model, "fusion", None)
    if fusion is None:
        raise ValueError("the model has no 'fusion' attribute; this strategy needs the fused classifier")
    if hasattr(fusion, "fc"):
        w, b = fusion.fc.weight, fusion.fc.bias
        d1 = z1.shape[1]
        if w.shape[1] != d1 + z2.shape[1]:
            raise ValueError(f"fusion.fc takes {w.shape[1]} inputs but z1, z2 have widths "
                             f"{d1} + {z2.shape[1]}")
        w1, w2 = w[:, :d1], w[:, d1:]
    elif hasattr(fusion, "fc1") and hasattr(fusion, "fc2"):
        w1, w2 = fusion.fc1.weight, fusion.fc2.weight
        b = fusion.fc1.bias
        if fusion.fc2.bias is not None:
            b = b + fusion.fc2.bias if b is not None else fusion.fc2.bias
    else:
        raise ValueError(f"fusion {type(fusion).__name__} is not linear (no .fc, nor .fc1/.fc2); "
                         "the modality shares of the fused classifier are undefined")
    s1, s2 = z1 @ w1.t(), z2 @ w2.t()
    if b is not None:
        s1, s2 = s1 + b / 2, s2 + b / 2
    return s1, s2


def encoder_params(model, k: int) -> list[torch.nn.Parameter]:
    enc = getattr(model, f"encoder{k}", None)
    if enc is None:
        raise ValueError(f"the model has no 'encoder{k}' attribute")
    return [p for p in enc.parameters() if p.requires_grad]
