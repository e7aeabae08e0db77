"""G-Blending: gradient blending of the fused and the unimodal losses, online.

Wang, Tran, Feiszli, "What Makes Training Multi-modal Classification Networks Hard?",
CVPR 2020 (Sec. 4; Proposition 2; Algorithm 1, online Gradient-Blending).

The loss is a weighted sum over the three classifiers ``k in {fused, 1, 2}``:
``L = w_fused CE(fused) + w_1 CE(head1) + w_2 CE(head2)``. Over a stretch of training from
checkpoint ``n`` to ``n + N`` (a "super-epoch"), with ``L^T`` the training and ``L^V`` the
validation loss of classifier ``k``:

* generalization gain ``G_k = L^V_k(n) - L^V_k(n + N)``;
* overfitting change ``O_k = (L^V_k(n+N) - L^T_k(n+N)) - (L^V_k(n) - L^T_k(n))``;
* weights (Proposition 2, with the variance ``sigma_k^2`` estimated by ``O_k^2``):
  ``w_k = G_k / (Z O_k^2)``, ``Z = sum_k G_k / (2 O_k^2)``, so the weights sum to 2.

Online (Algorithm 1): the weights estimated on one super-epoch are used for the next.

Choices:

* Until the first estimate the weights are ``1, 1, 1`` (the uniform loss).
* A classifier that gained nothing on validation (``G_k <= 0``) gets weight 0; ``O_k^2`` is
  floored at ``min_overfit ** 2`` so a classifier that did not overfit at all does not take an
  unbounded weight. If every ``G_k <= 0`` the previous weights are kept.
* The first checkpoint is the end of Stage II's first epoch; ``super_epoch = 5`` epochs by
  default (chosen here).

What the runner must provide: ``on_epoch_end(epoch, metrics)`` with the epoch's *training*
and *validation* cross-entropies of all three classifiers under the keys in
:data:`REQUIRED_METRICS` (a missing key is a ``ValueError`` naming it). Validation data
are therefore needed during Stage II.

Distributed (DDP): only the loss changes and the weights depend only on the metrics, which
the runner reduces over ranks before ``on_epoch_end`` (if it does not, ranks could weight
differently: the losses they pass must be the global ones).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import check_float, check_int

__all__ = ["GBlending", "gblend_weights", "REQUIRED_METRICS"]

KEYS = ("fused", "1", "2")
#: the metrics ``on_epoch_end`` needs: training and validation CE of each classifier
REQUIRED_METRICS = tuple(f"{split}_loss_{k}" for split in ("train", "val") for k in KEYS)


def gblend_weights(before: dict, after: dict, *, min_overfit: float) -> list[float] | None:
    """The three blending weights from two checkpoints' losses, or ``None`` if no classifier
    gained on validation. ``before``/``after`` map ``train_loss_k``/``val_loss_k`` to floats."""
    ratios = []
    for k in KEYS:
        v0, t0 = before[f"val_loss_{k}"], before[f"train_loss_{k}"]
        v1, t1 = after[f"val_loss_{k}"], after[f"train_loss_{k}"]
        g = v0 - v1
        o = (v1 - t1) - (v0 - t0)
        ratios.append(max(g, 0.0) / max(o * o, min_overfit ** 2))
    z = sum(ratios) / 2
    if z <= 0:
        return None
    return [r / z for r in ratios]


@register
class GBlending(Strategy):
    name = "gblending"
    defaults = {"super_epoch": 5, "min_overfit": 1e-3}

    def __init__(self, **options):
        super().__init__(**options)
        self.super_epoch = check_int(self.name, "super_epoch", self.options["super_epoch"], low=1)
        self.min_overfit = check_float(self.name, "min_overfit", self.options["min_overfit"],
                                       low=0.0, low_open=True)
        self.weights = [1.0, 1.0, 1.0]
        self._ref: dict | None = None
        self._ref_epoch: int | None = None
        #: every estimate made: (epoch, weights)
        self.history: list = []

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        wf, w1, w2 = self.weights
        return (wf * F.cross_entropy(out.fused, y) + w1 * F.cross_entropy(out.logits1, y)
                + w2 * F.cross_entropy(out.logits2, y))

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        missing = [k for k in REQUIRED_METRICS if k not in metrics]
        if missing:
            raise ValueError(f"{self.name} needs the training and validation losses of all three "
                             f"classifiers in the epoch metrics; missing {missing}")
        now = {}
        for k in REQUIRED_METRICS:
            v = float(metrics[k])
            if not math.isfinite(v):
                raise ValueError(f"{self.name}: metric {k!r} is not finite ({v})")
            now[k] = v
        if self._ref is None:
            self._ref, self._ref_epoch = now, int(epoch)
            return
        if int(epoch) - self._ref_epoch >= self.super_epoch:
            w = gblend_weights(self._ref, now, min_overfit=self.min_overfit)
            if w is not None:
                self.weights = w
            self.history.append((int(epoch), list(self.weights)))
            self._ref, self._ref_epoch = now, int(epoch)

    def state_dict(self) -> dict:
        return {"weights": list(self.weights), "ref": None if self._ref is None else dict(self._ref),
                "ref_epoch": self._ref_epoch, "history": [(e, list(w)) for e, w in self.history]}

    def load_state_dict(self, state: dict) -> None:
        expected = {"weights", "ref", "ref_epoch", "history"}
        if set(state) != expected:
            raise ValueError(f"{self.name}: state keys must be {sorted(expected)}, got {sorted(state)}")
        w = state["weights"]
        if not (isinstance(w, (list, tuple)) and len(w) == 3):
            raise ValueError(f"{self.name}: state['weights'] must hold three numbers")
        self.weights = [float(x) for x in w]
        self._ref = None if state["ref"] is None else dict(state["ref"])
        self._ref_epoch = None if state["ref_epoch"] is None else int(state["ref_epoch"])
        self.history = [(int(e), [float(x) for x in ws]) for e, ws in state["history"]]
