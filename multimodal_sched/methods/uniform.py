"""``uniform``: the fused and both unimodal cross-entropies summed with equal weights (paper, section 5.2)."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Strategy, register

__all__ = ["Uniform"]


@register
class Uniform(Strategy):
    """``loss = CE(fused) + (CE(head1) + CE(head2))``."""

    name = "uniform"

    def loss(self, out, y, model):
        return F.cross_entropy(out.fused, y) + (F.cross_entropy(out.logits1, y) + F.cross_entropy(out.logits2, y))
