"""``udi``: Unidirectional Dynamic Interaction, a sequential schedule with anchor guidance.

Wang, Zhang, Liang, Qian, Hu, "Balanced Multimodal Learning: An Unidirectional Dynamic
Interaction Perspective", arXiv:2509.02281 (2025).  UDI drops the joint loss during the
modalities' training: the *anchor* modality is trained alone to convergence, then the other
modality is trained guided by the (frozen) anchor's learned representations through an
unsupervised loss whose weight adapts during training (the "dynamic interaction").

Only the paper's abstract was available to this implementation; every detail below is a
choice made here, not the paper's equation:

* **Anchor phase.** Modality ``anchor`` (option, default 1) trains alone (encoder + unimodal
  head, cross-entropy) until its val accuracy plateaus (``patience``, ``min_delta`` as in
  :mod:`~multimodal_sched.schedules.sequential`) or reaches ``max_unimodal_epochs``; its
  best-val weights are reloaded and it is frozen from then on (no further Stage I updates).
* **Guided phase.** The other modality ``o`` trains with
  ``L = CE(head_o(z_o), y) + lambda_t * L_u(z_o, z_a)``, ``z_a`` the anchor encoder's embedding of
  the same samples (eval mode, no gradient).  The unsupervised loss compares the batch's
  similarity structure, which does not need the two embeddings to have one width:
  ``L_u = mean_{i,j} (K(z_o)_{ij} - K(z_a)_{ij})^2`` with ``K(z)_{ij}`` the cosine similarity of
  rows ``i`` and ``j`` (labels are not used).
* **Dynamic interaction weight.** Per epoch, from val accuracy:
  ``lambda_t = weight * max(0, acc_a - acc_o(t-1)) / acc_a``, ``acc_a`` the anchor's best val
  accuracy and ``acc_o(t-1)`` the guided modality's val accuracy after its previous epoch
  (0 before the first, so ``lambda_1 = weight``).  The guidance is strongest while the guided
  modality lags the anchor and vanishes once it catches up.  ``weight`` defaults to 1.
* The guided modality also stops at its plateau (best-val weights reloaded).  Then Stage II
  runs ``config.stage2`` for ``stage2_epochs`` (the paper's final fusion step is not specified
  in the abstract; the run's usual Stage II is used, ``stage2: concat`` gives the fused loss alone).

Distributed (DDP): the plan and ``lambda_t`` depend only on rank-summed val accuracies, so all
ranks agree.  The guidance changes the *loss* of the guided modality's step (inside DDP's
forward/backward; nothing is modified after the all-reduce).  ``K`` is computed on each rank's
shard of the batch, so under DDP the pairs across shards are left out: the guidance term then
differs from a single-process run with the same global batch (as BatchNorm statistics do).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import register
from .sequential import Sequential, _check_float

__all__ = ["UDI", "similarity_loss"]


def similarity_loss(z: torch.Tensor, z_anchor: torch.Tensor) -> torch.Tensor:
    """``mean_{ij} (K(z) - K(z_anchor))^2`` with ``K`` the row-wise cosine similarity matrix."""
    if z.ndim != 2 or z_anchor.ndim != 2 or z.shape[0] != z_anchor.shape[0]:
        raise ValueError(f"udi: embeddings must be (batch, dim) with one batch size, got {tuple(z.shape)} "
                         f"and {tuple(z_anchor.shape)}")
    a, b = F.normalize(z, dim=1), F.normalize(z_anchor, dim=1)
    return ((a @ a.t() - b @ b.t()) ** 2).mean()


@register
class UDI(Sequential):
    name = "udi"
    defaults = {"anchor": 1, "patience": 3, "min_delta": 0.0, "weight": 1.0}

    def __init__(self, **options):
        super().__init__(**options)
        self.weight = _check_float("weight", self.name, self.options["weight"], 0.0)

    def _order(self):
        a = self.options["anchor"]
        if a not in (1, 2) or isinstance(a, bool):
            raise ValueError(f"method {self.name!r}: option 'anchor' must be 1 or 2, got {a!r}")
        return [a, 3 - a]

    def interaction_weight(self) -> float:
        """``lambda_t`` for the guided modality's next epoch."""
        a, o = self.order
        acc_a = self.best[a] or 0.0
        if acc_a <= 0:
            return 0.0
        acc_o = self.last[o] or 0.0
        return self.weight * max(0.0, acc_a - acc_o) / acc_a

    def guidance(self, m: int):
        if self.stage != 1 or m != self.order[1]:
            return None
        return self.order[0], self.interaction_weight()

    def guidance_loss(self, z, z_anchor):
        return similarity_loss(z, z_anchor)

    def describe(self) -> dict:
        d = super().describe()
        if self.stage == 1:
            d["interaction_weight"] = self.interaction_weight()
        return d
