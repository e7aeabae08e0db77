"""MLA: multimodal learning with alternating unimodal adaptation.

Zhang, Latham, Yao, "Multimodal Representation Learning by Alternating Unimodal
Adaptation", CVPR 2024 (Sec. 3).

Training alternates between the modalities; each step trains one modality's encoder and a
head *shared* by all modalities, with that modality's unimodal loss only:
``L_t = CE(h(z^{m_t}), y)``, ``m_t`` = modality 1 on odd steps, 2 on even steps. So that the
shared head does not forget what it learned from the other modality, its gradient is
projected (orthogonal weight modification, OWM) away from the feature directions already
learned: with ``P`` a ``d x d`` projector, starting at the identity, and ``s`` the mean
(detached) embedding of the batch the head has just been trained on,

    ``P <- P - (P s)(P s)^T / (alpha + s^T P s)``,     ``grad W <- grad W P``

(``W`` the head's ``(n_classes, d)`` weight; ``P`` stays symmetric). The bias is not
projected. At test time the modalities are fused by their prediction uncertainty:
``e^m`` the entropy of ``softmax(h(z^m))``, weights ``w^m = exp(max_j e^j - e^m) /
sum_k exp(max_j e^j - e^k)`` and logits ``sum_m w^m h(z^m)`` (:func:`mla_fused_logits`).

What a Stage II strategy can and cannot express, and the choices made:

* One loss per batch: the strategy alternates modality *between* batches. The authors' code
  runs both modalities on every batch, one optimizer step each; here each modality sees half
  the batches (half the compute, the same number of steps per modality per epoch).
* ``P`` is updated, before projecting step ``t``'s gradient, with the mean embedding of step
  ``t-1``'s batch (the other modality's, which the head learned last); the first step is not
  projected. The authors' code updates ``P`` with the current batch's input instead.
* ``alpha`` is constant (default 0.1, the start of the code's per-epoch decay 0.1 -> 0.01).
* ``normalize=True`` divides ``P`` by its Frobenius norm after each update, as the authors'
  code does, so the projected gradient keeps a usable scale; ``False`` is the plain OWM rule.

Requirements on the model and the runner:

* The shared head is the model's unimodal head, one module for both modalities:
  ``model.head1 is model.head2``, an ``nn.Linear(d, n_classes)`` (any module with a 2-D
  ``.weight`` applied as ``z @ weight.T``), so ``z1`` and ``z2`` must have the same width ``d``.
  The loss reads ``JointOutput.logits1`` / ``logits2``, which the model's forward computes: under
  DDP every parameter the loss uses must be used inside the wrapped forward (a head applied
  in the loss, outside it, makes DDP mark its parameters ready twice). The fused classifier
  gets no gradient under MLA.
* The runner's forward still computes both encoders; the idle one gets no gradient (DDP:
  ``find_unused_parameters=True``). Evaluation should use :func:`mla_fused_logits` on
  ``(logits1, logits2)``, not ``JointOutput.fused``.

Distributed (DDP): the mean embedding ``s`` is averaged over ranks before the update of ``P``
and the projection is applied after DDP's all-reduce, so every rank holds the same ``P`` and
applies the same modified gradient; the alternation depends only on the step count, the same
on every rank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import all_reduce_sum, check_bool, check_float, unwrap, world_size

__all__ = ["MLA", "MLAFusion", "mla_fused_logits", "owm_update"]


def owm_update(P: torch.Tensor, s: torch.Tensor, alpha: float) -> torch.Tensor:
    """``P - (P s)(P s)^T / (alpha + s^T P s)`` for a symmetric ``P`` and a vector ``s``."""
    k = P @ s
    return P - torch.outer(k, k) / (alpha + s @ k)


def _shared_head(model):
    head1, head2 = getattr(model, "head1", None), getattr(model, "head2", None)
    if head1 is None or head1 is not head2:
        raise ValueError("MLA needs one head shared by both modalities: build the model with "
                         "head1 and head2 the same module (nn.Linear(d, n_classes)) and z1, z2 "
                         "of the same width d")
    w = getattr(head1, "weight", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise ValueError("MLA: the shared head must have a 2-D .weight (a linear layer)")
    return head1


@torch.no_grad()
def mla_fused_logits(l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """Test-time fusion of the shared head's two predictions, weighted by their entropies."""
    if l1.shape != l2.shape:
        raise ValueError(f"MLA fusion needs logits of one shape, got {tuple(l1.shape)} and "
                         f"{tuple(l2.shape)}")
    e = torch.stack([-(F.softmax(l, 1) * F.log_softmax(l, 1)).sum(1) for l in (l1, l2)], 1)
    w = F.softmax(-e, dim=1)  # = exp(max e - e^m) / sum_k exp(max e - e^k)
    return w[:, :1] * l1 + w[:, 1:] * l2


class MLAFusion(torch.nn.Module):
    """The model's ``fusion`` under MLA: the shared ``head`` on each embedding, fused by
    :func:`mla_fused_logits` (no parameters of its own, no gradient), so ``model(x1, x2)[0]``
    is MLA's test-time prediction."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, z1, z2):
        return mla_fused_logits(self.head(z1), self.head(z2))


@register
class MLA(Strategy):
    name = "mla"
    defaults = {"alpha": 0.1, "normalize": True}

    def __init__(self, **options):
        super().__init__(**options)
        self.alpha = check_float(self.name, "alpha", self.options["alpha"], low=0.0, low_open=True)
        self.normalize = check_bool(self.name, "normalize", self.options["normalize"])
        self.steps = 0
        self.P: torch.Tensor | None = None
        self._prev: torch.Tensor | None = None  # mean embedding of the last trained batch
        self._cur: torch.Tensor | None = None
        #: the modality trained by the last step (1 or 2)
        self.modality: int | None = None
        #: the last step's {"modality", "projected"}
        self.last: dict = {}

    def setup(self, model, *, n_classes: int, epochs: int) -> None:
        head = _shared_head(unwrap(model))
        if head.weight.shape[0] != n_classes:
            raise ValueError(f"MLA: the shared head has {head.weight.shape[0]} outputs, "
                             f"expected n_classes={n_classes}")

    def current_modality(self) -> int:
        return 1 if self.steps % 2 == 0 else 2

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        _shared_head(unwrap(model))
        if out.z1.shape[1] != out.z2.shape[1]:
            raise ValueError(f"MLA: z1 and z2 must have the same width for the shared head, "
                             f"got {out.z1.shape[1]} and {out.z2.shape[1]}")
        m = self.current_modality()
        z, logits = (out.z1, out.logits1) if m == 1 else (out.z2, out.logits2)
        self.modality = m
        self._cur = z.detach().mean(0).double()
        return F.cross_entropy(logits, y)

    @torch.no_grad()
    def after_backward(self, model, out: JointOutput, y: torch.Tensor) -> None:
        head = _shared_head(unwrap(model))
        if self._cur is None:
            raise RuntimeError("mla: after_backward called without a preceding loss()")
        cur = self._cur
        ws = world_size()
        if ws > 1:
            all_reduce_sum(cur).div_(ws)
        w = head.weight
        d = w.shape[1]
        if self.P is None:
            self.P = torch.eye(d, dtype=torch.float64, device=w.device)
        elif self.P.shape != (d, d):
            raise ValueError(f"MLA: the projector is {tuple(self.P.shape)} but the shared head "
                             f"takes {d} features")
        self.P = self.P.to(w.device)
        if self._prev is not None:
            self.P = owm_update(self.P, self._prev.to(self.P.device), self.alpha)
            if self.normalize:
                self.P = self.P / torch.linalg.matrix_norm(self.P)
            if w.grad is not None:
                w.grad.copy_((w.grad.double() @ self.P).to(w.grad.dtype))
        self.last = {"modality": self.modality, "projected": self._prev is not None}
        self._prev, self._cur = cur, None
        self.steps += 1

    def state_dict(self) -> dict:
        def cp(t):
            return None if t is None else t.detach().clone()
        return {"steps": self.steps, "P": cp(self.P), "prev": cp(self._prev)}

    def load_state_dict(self, state: dict) -> None:
        expected = {"steps", "P", "prev"}
        if set(state) != expected:
            raise ValueError(f"{self.name}: state keys must be {sorted(expected)}, got {sorted(state)}")
        for key in ("P", "prev"):
            if state[key] is not None and not isinstance(state[key], torch.Tensor):
                raise ValueError(f"{self.name}: state[{key!r}] must be a tensor or None")
        self.steps = int(state["steps"])
        self.P = None if state["P"] is None else state["P"].clone()
        self._prev = None if state["prev"] is None else state["prev"].clone()
