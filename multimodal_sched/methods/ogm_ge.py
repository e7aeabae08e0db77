"""OGM-GE: on-the-fly gradient modulation with generalization enhancement.

Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022.

Per batch ``B`` (Sec. 3.2 of the paper):

* each modality's score on the true class comes from *its share of the fused linear
  classifier*: ``s_i^u = softmax(W^u z_i^u + b/2)[y_i]`` where ``W^u`` are the fusion
  weights acting on ``z^u`` and ``b`` the fusion bias (the two shares sum to the fused
  logits; :func:`~multimodal_sched.methods._common.fusion_shares`). The auxiliary
  unimodal heads are not used;
* the discrepancy ratio ``rho^1 = sum_i s_i^1 / sum_i s_i^2`` and ``rho^2 = 1 / rho^1``;
* the modulation coefficient, the paper's Eq. (10),
  ``k^u = 1 - tanh(alpha * rho^u)`` if ``rho^u > 1`` else ``1``, so only the dominant
  modality's encoder is slowed;
* the encoder update ``theta^u <- theta^u - lr * (k^u g(theta^u) + h(theta^u))`` where
  ``h`` is Gaussian noise (generalization enhancement, "GE"), applied to both encoders.

The training loss is the fused cross-entropy alone; heads and fusion are not modulated.

Choices and differences from the authors' public code (the paper is followed):

* The noise ``h`` has the covariance of the SGD gradient noise in the paper; here, as in
  the public code, it is isotropic per parameter tensor with the standard deviation of
  that tensor's (unmodulated) gradient entries. ``ge=False`` turns it off (plain OGM).
* The public code modulates only 4-D (convolution) weights; here every encoder
  parameter is modulated, as the paper's ``theta^u`` says.
* The concat split is at ``z1``'s width (the code splits the weight matrix in half).
* ``SumFusion`` has one bias (on ``fc1``); each modality's share takes half of it.
* Epochs count from 1; the window ``[modulation_start, modulation_end]`` is inclusive
  (the code's default 0..50 with 0-based epochs; here 1..50).

Defaults (the authors' README "default modulation setting"): ``alpha=0.1``, modulation
over epochs 1..50, GE on.

Distributed (DDP): ``after_backward`` runs after DDP's all-reduce. The two score sums
are summed over ranks first, so every rank computes the same ratio (that of the global
batch, as one process would) and scales the same averaged gradient; the noise comes from
a generator seeded identically on every rank and drawn in the same order, with its scale
taken from the averaged gradient, so all ranks stay identical.

Model requirements: ``encoder1``, ``encoder2`` and a linear ``fusion`` (``.fc`` on
``[z1, z2]``, or ``.fc1``/``.fc2``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import (all_reduce_sum, check_bool, check_float, check_int, encoder_params,
                      fusion_shares, unwrap)

__all__ = ["OGMGE", "ogm_coefficients"]


def ogm_coefficients(score1: float, score2: float, alpha: float) -> tuple[float, float, float]:
    """``(rho1, k1, k2)`` from the two true-class score sums (Eq. (10))."""
    if not (score1 > 0 and score2 > 0):
        raise ValueError(f"OGM-GE scores must be positive, got {score1} and {score2}")
    rho1 = score1 / score2
    rho2 = score2 / score1
    k1 = 1.0 - math.tanh(alpha * rho1) if rho1 > 1 else 1.0
    k2 = 1.0 - math.tanh(alpha * rho2) if rho2 > 1 else 1.0
    return rho1, k1, k2


@register
class OGMGE(Strategy):
    name = "ogm-ge"
    defaults = {"alpha": 0.1, "modulation_start": 1, "modulation_end": 50, "ge": True, "seed": 0}

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        self.alpha = check_float(self.name, "alpha", o["alpha"], low=0.0, low_open=True)
        self.start = check_int(self.name, "modulation_start", o["modulation_start"], low=1)
        self.end = check_int(self.name, "modulation_end", o["modulation_end"], low=0)
        if self.end < self.start - 1:
            raise ValueError(f"{self.name}: modulation_end ({self.end}) is before "
                             f"modulation_start ({self.start}); use modulation_end = "
                             "modulation_start - 1 for no modulation at all")
        self.ge = check_bool(self.name, "ge", o["ge"])
        self.seed = check_int(self.name, "seed", o["seed"], low=0)
        self.epoch = 0
        self.steps = 0
        self._gen: torch.Generator | None = None
        self._gen_state: torch.Tensor | None = None
        #: the last batch's ratio and coefficients: {"rho1", "k1", "k2", "modulated"}
        self.last: dict = {}

    # ---- hooks ---------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, model) -> None:
        self.epoch = int(epoch)

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        return F.cross_entropy(out.fused, y)

    @torch.no_grad()
    def after_backward(self, model, out: JointOutput, y: torch.Tensor) -> None:
        m = unwrap(model)
        s1, s2 = fusion_shares(m, out.z1.detach(), out.z2.detach())
        idx = y.view(-1, 1)
        scores = torch.stack([F.softmax(s1.float(), dim=1).gather(1, idx).sum(),
                              F.softmax(s2.float(), dim=1).gather(1, idx).sum()]).double()
        all_reduce_sum(scores)
        rho1, k1, k2 = ogm_coefficients(float(scores[0]), float(scores[1]), self.alpha)
        active = self.start <= self.epoch <= self.end
        self.last = {"rho1": rho1, "k1": k1, "k2": k2, "modulated": active}
        self.steps += 1
        if not active:
            return
        for k, coeff in ((1, k1), (2, k2)):
            for p in encoder_params(m, k):
                if p.grad is None:
                    continue
                g = p.grad
                noise = self._noise(g) if self.ge else None
                if coeff != 1.0:
                    g.mul_(coeff)
                if noise is not None:
                    g.add_(noise)

    def _noise(self, g: torch.Tensor) -> torch.Tensor | None:
        std = float(g.float().std()) if g.numel() > 1 else 0.0
        gen = self._generator(g.device)
        z = torch.randn(g.shape, generator=gen, device=g.device, dtype=torch.float32)
        return (z * std).to(g.dtype)

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if self._gen_state is not None:
                gen.set_state(self._gen_state)
                self._gen_state = None
            self._gen = gen
        return self._gen

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = self._gen.get_state() if self._gen is not None else self._gen_state
        return {"epoch": self.epoch, "steps": self.steps,
                "generator": None if state is None else state.clone()}

    def load_state_dict(self, state: dict) -> None:
        expected = {"epoch", "steps", "generator"}
        if set(state) != expected:
            raise ValueError(f"{self.name}: state keys must be {sorted(expected)}, got {sorted(state)}")
        self.epoch, self.steps = int(state["epoch"]), int(state["steps"])
        gen_state = state["generator"]
        if gen_state is not None and not isinstance(gen_state, torch.Tensor):
            raise ValueError(f"{self.name}: 'generator' must be a tensor or None")
        self._gen = None
        self._gen_state = None if gen_state is None else gen_state.clone()
