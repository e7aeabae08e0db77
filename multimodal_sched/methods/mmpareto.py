"""MMPareto: multimodal and unimodal gradients integrated by the Pareto (min-norm) rule.

Wei and Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance",
ICML 2024 (Sec. 4, Algorithm 1).

The loss is the uniform sum ``L = L_m + L_u^1 + L_u^2`` (fused cross-entropy plus each
unimodal head's cross-entropy). For each modality ``k``, on the parameters ``theta^k`` of its
encoder (the parameters shared by the multimodal and the unimodal objective) take the two
gradients ``g_m = grad L_m`` and ``g_u = grad L_u^k`` and

* if they do not conflict (``g_m . g_u >= 0``): ``alpha_m = alpha_u = 1/2``;
* if they conflict: the min-norm (Pareto) weights of the two-gradient MGDA problem
  ``min_{a in [0, 1]} ||a g_m + (1 - a) g_u||^2``, in closed form
  ``a = clip((g_u - g_m) . g_u / ||g_m - g_u||^2, 0, 1)``; the combination ``a g_m + (1-a) g_u``
  then has a non-negative inner product with both ``g_m`` and ``g_u`` (a common descent
  direction);
* ``h = 2 (alpha_m g_m + alpha_u g_u)`` (the factor 2 makes the non-conflict case the plain sum);
* magnitude rescaling: the min-norm direction is short, which the paper argues weakens the
  SGD noise that helps generalization, so ``h`` is rescaled to at least the norm of the plain
  sum, ``h <- max(1, ||g_m + g_u|| / ||h||) h``, and the encoder's gradient becomes
  ``gamma * h``.

Heads and fusion keep their ordinary gradients.

Choices and differences from the authors' public code:

* ``gamma`` (default 1.5) is the constant the public code multiplies every encoder gradient
  by, in both cases; ``gamma=1`` keeps only the rescaling. The paper's full text was not
  available to this implementation's author to check it against; ``rescale=False`` drops
  the rescaling step too (plain Pareto integration).
* The public code rescales each parameter tensor by its own norm ratio while the weights are
  computed on the whole encoder; here the encoder's parameters are one group for both.
* The public code uses ``cos > 0`` for "no conflict"; here ``>= 0`` (at exactly 0 both give a
  direction that descends both objectives).

How it runs in the one loop: :meth:`loss` computes ``g_m`` for the encoders with
``torch.autograd.grad`` (keeping the graph) and returns ``L``; the runner's ``backward`` then
leaves ``g_m + g_u`` in each encoder parameter's ``.grad`` (an encoder is reached only by
``L_m`` and its own unimodal loss), so ``after_backward`` recovers ``g_u = .grad - g_m``.

Distributed (DDP): ``.grad`` is the rank-average after DDP's all-reduce, while ``g_m`` is
local; ``after_backward`` averages ``g_m`` over ranks (one extra all-reduce of the encoder
gradients) before splitting, so every rank works on the global-batch ``g_m``, ``g_u`` and
applies the same combination. Requires an unscaled loss (no AMP ``GradScaler`` between
``loss`` and ``after_backward``), since ``g_m`` comes from the unscaled ``L_m``.

Model requirements: ``encoder1``, ``encoder2``, ``head1``, ``head2``, ``fusion`` (any).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import all_reduce_sum, check_bool, check_float, encoder_params, unwrap, world_size

__all__ = ["MMPareto", "pareto_weights"]


def pareto_weights(g_m: torch.Tensor, g_u: torch.Tensor) -> tuple[float, float]:
    """``(alpha_m, alpha_u)``: ``(1/2, 1/2)`` without conflict, else the min-norm weights."""
    if g_m.shape != g_u.shape or g_m.ndim != 1:
        raise ValueError(f"pareto_weights needs two flat gradients of one shape, "
                         f"got {tuple(g_m.shape)} and {tuple(g_u.shape)}")
    g_m, g_u = g_m.double(), g_u.double()
    if float(g_m @ g_u) >= 0:
        return 0.5, 0.5
    diff = g_m - g_u
    a = float((-diff) @ g_u) / float(diff @ diff)
    a = min(1.0, max(0.0, a))
    return a, 1.0 - a


@register
class MMPareto(Strategy):
    name = "mmpareto"
    defaults = {"gamma": 1.5, "rescale": True}

    def __init__(self, **options):
        super().__init__(**options)
        self.gamma = check_float(self.name, "gamma", self.options["gamma"], low=0.0, low_open=True)
        self.rescale = check_bool(self.name, "rescale", self.options["rescale"])
        self._g_m: dict[int, list[torch.Tensor | None]] | None = None
        #: per modality, the last batch's {"cos", "alpha_m", "alpha_u", "conflict", "scale"}
        self.last: dict = {}

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        m = unwrap(model)
        loss_m = F.cross_entropy(out.fused, y)
        loss = loss_m + F.cross_entropy(out.logits1, y) + F.cross_entropy(out.logits2, y)
        if torch.is_grad_enabled():
            params = {k: encoder_params(m, k) for k in (1, 2)}
            flat = params[1] + params[2]
            grads = torch.autograd.grad(loss_m, flat, retain_graph=True, allow_unused=True)
            n1 = len(params[1])
            self._g_m = {1: [None if g is None else g.detach() for g in grads[:n1]],
                         2: [None if g is None else g.detach() for g in grads[n1:]]}
        return loss

    @torch.no_grad()
    def after_backward(self, model, out: JointOutput, y: torch.Tensor) -> None:
        if self._g_m is None:
            raise RuntimeError("mmpareto: after_backward called without a preceding loss() "
                               "in grad mode")
        m = unwrap(model)
        ws = world_size()
        for k in (1, 2):
            params = encoder_params(m, k)
            pairs = [(p, gm) for p, gm in zip(params, self._g_m[k]) if p.grad is not None]
            if not pairs:
                continue
            total = torch.cat([p.grad.reshape(-1) for p, _ in pairs])
            g_m = torch.cat([(torch.zeros_like(p.grad) if gm is None else gm).reshape(-1)
                             for p, gm in pairs]).to(total.dtype)
            if ws > 1:
                all_reduce_sum(g_m).div_(ws)
            g_u = total - g_m
            a_m, a_u = pareto_weights(g_m, g_u)
            h = 2.0 * (a_m * g_m + a_u * g_u)
            scale = self.gamma
            h_norm = float(h.norm())
            if self.rescale and h_norm > 0:
                scale *= max(1.0, float(total.norm()) / h_norm)
            h.mul_(scale)
            dot = float(g_m.double() @ g_u.double())
            denom = float(g_m.norm() * g_u.norm())
            self.last[k] = {"cos": dot / denom if denom > 0 else 0.0, "alpha_m": a_m,
                            "alpha_u": a_u, "conflict": dot < 0, "scale": scale}
            offset = 0
            for p, _ in pairs:
                n = p.grad.numel()
                p.grad.copy_(h[offset:offset + n].view_as(p.grad))
                offset += n
        self._g_m = None
