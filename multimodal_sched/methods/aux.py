"""``aux`` (the default): the fused cross-entropy plus ``weight`` times both unimodal ones.

The unimodal heads keep training in Stage II, so each encoder keeps a signal of its own
while the fusion layer learns; ``weight = 0.6`` unless ``stage2_options`` says otherwise.
"""
from __future__ import annotations

import torch.nn.functional as F

from .base import Strategy, register

__all__ = ["Aux"]


@register
class Aux(Strategy):
    """``loss = CE(fused) + weight * (CE(head1) + CE(head2))``."""

    name = "aux"
    defaults = {"weight": 0.6}

    def __init__(self, **options):
        super().__init__(**options)
        w = self.options["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
            raise ValueError(f"strategy 'aux': option weight must be a number >= 0, got {w!r}")

    def loss(self, out, y, model):
        w = self.options["weight"]
        return F.cross_entropy(out.fused, y) + w * (F.cross_entropy(out.logits1, y) + F.cross_entropy(out.logits2, y))
