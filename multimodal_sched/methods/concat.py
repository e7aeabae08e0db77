"""``concat``: naive fusion, the fused cross-entropy alone (no unimodal terms, no gradient changes)."""
from __future__ import annotations

from .base import Strategy, register

__all__ = ["Concat"]


@register
class Concat(Strategy):
    """``loss = CE(fused)``."""

    name = "concat"
