"""PMR: prototypical modal rebalance.

Fan, Xu, Zhang, Qiao, Wang, "PMR: Prototypical Modal Rebalance for Multimodal Learning",
CVPR 2023 (Sec. 3).

* Class prototypes per modality: the mean embedding of each class,
  ``c_k^u = mean_{i: y_i = k} z_i^u``.
* Prototypical probabilities (a non-parametric classifier):
  ``p_k^u(x) = exp(-d(z^u, c_k^u)) / sum_j exp(-d(z^u, c_j^u))`` with ``d`` the Euclidean
  distance; the prototypical cross-entropy ``L_PCE^u = -mean_i log p_{y_i}^u(x_i)``.
* Imbalance ratio on the batch, from the prototypical scores on the true class:
  ``rho = sum_i p_{y_i}^1(x_i) / sum_i p_{y_i}^2(x_i)``.
* The slower modality is stimulated through its PCE and the faster one regularized by the
  entropy of its prototypical distribution (kept high early on, against premature
  convergence): with ``rho > 1`` (modality 1 faster), ``beta^2 = beta (rho - 1)``,
  ``gamma^1 = gamma (rho - 1)`` and ``beta^1 = gamma^2 = 0``; symmetrically with ``1/rho``.
* Loss: ``L = CE(fused) + sum_u beta^u L_PCE^u - sum_u gamma^u H(p^u)``, ``H`` the mean
  per-sample entropy; the entropy term only for epochs ``<= entropy_epochs``, the whole
  modulation only inside ``[modulation_start, modulation_end]``.

Choices (details the one-loop interface forces or the paper leaves open):

* Prototypes. The paper computes them from the training set with the current encoders. The
  strategy sees only the batches the runner feeds it, so the prototypes used in epoch ``t``
  are the class means of the (detached) embeddings of all training batches of epoch ``t-1``,
  blended with the previous prototypes as ``c <- (1 - m) c_new + m c_old`` (``m =
  prototype_momentum``; the authors' code also carries prototypes across updates with a
  momentum coefficient, 0.2). The first Stage II epoch therefore trains with ``CE(fused)``
  alone while it gathers the first prototypes; a class not seen in an epoch keeps its
  previous prototype, and no prototypes exist until every class has been seen.
* Coefficients linear in the imbalance ``rho - 1`` as above; the authors' public code uses a
  0/1 switch instead (``beta`` on the slower modality's PCE, no entropy term). The paper is
  followed.
* Defaults: ``beta = 1`` (the code's ``alpha``), modulation over epochs 1..100 (the code's
  window), ``gamma = 1`` and ``entropy_epochs = 10`` chosen here (the paper gives no single
  value here to copy).

Distributed (DDP): only the loss changes. The two score sums are summed over ranks inside
:meth:`loss` (every rank calls it once per step), so all ranks use the global-batch
coefficients; the per-class sums of an epoch are summed over ranks in
:meth:`on_epoch_start`, so every rank holds the same prototypes. Gradients are then
all-reduced by DDP as usual.

Model requirements: ``JointOutput`` embeddings ``z1``, ``z2`` (any widths); nothing else.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import all_reduce_sum, check_float, check_int

__all__ = ["PMR", "pmr_coefficients", "prototype_log_probs"]


def prototype_log_probs(z: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """``log p_k(x)`` for each row of ``z``: log-softmax of minus the Euclidean distances."""
    return F.log_softmax(-torch.cdist(z, protos.to(device=z.device, dtype=z.dtype)), dim=1)


def pmr_coefficients(rho: float, beta: float, gamma: float, entropy_on: bool):
    """``(beta1, beta2, gamma1, gamma2)`` from the imbalance ratio ``rho = S1 / S2``."""
    if not rho > 0:
        raise ValueError(f"PMR imbalance ratio must be positive, got {rho}")
    g = 1.0 if entropy_on else 0.0
    if rho > 1:
        return 0.0, beta * (rho - 1), g * gamma * (rho - 1), 0.0
    if rho < 1:
        inv = 1.0 / rho
        return beta * (inv - 1), 0.0, 0.0, g * gamma * (inv - 1)
    return 0.0, 0.0, 0.0, 0.0


@register
class PMR(Strategy):
    name = "pmr"
    defaults = {"beta": 1.0, "gamma": 1.0, "entropy_epochs": 10, "modulation_start": 1,
                "modulation_end": 100, "prototype_momentum": 0.2}

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        self.beta = check_float(self.name, "beta", o["beta"], low=0.0)
        self.gamma = check_float(self.name, "gamma", o["gamma"], low=0.0)
        self.entropy_epochs = check_int(self.name, "entropy_epochs", o["entropy_epochs"], low=0)
        self.start = check_int(self.name, "modulation_start", o["modulation_start"], low=1)
        self.end = check_int(self.name, "modulation_end", o["modulation_end"], low=0)
        if self.end < self.start - 1:
            raise ValueError(f"{self.name}: modulation_end ({self.end}) is before "
                             f"modulation_start ({self.start})")
        self.momentum = check_float(self.name, "prototype_momentum", o["prototype_momentum"],
                                    low=0.0, high=1.0)
        if self.momentum == 1.0:
            raise ValueError(f"{self.name}: prototype_momentum must be < 1 "
                             "(1 would never update the prototypes)")
        self.n_classes: int | None = None
        self.epoch = 0
        self.protos: list[torch.Tensor | None] = [None, None]
        self._sums: list[torch.Tensor | None] = [None, None]
        self._counts: torch.Tensor | None = None
        #: the last batch's {"rho", "beta1", "beta2", "gamma1", "gamma2"} (empty before prototypes)
        self.last: dict = {}

    # ---- hooks ---------------------------------------------------------------------------------
    def setup(self, model, *, n_classes: int, epochs: int) -> None:
        self.n_classes = check_int(self.name, "n_classes", n_classes, low=2)

    def on_epoch_start(self, epoch: int, model) -> None:
        self.epoch = int(epoch)
        if self._counts is None:
            return
        counts = all_reduce_sum(self._counts.clone())
        seen = counts > 0
        for u in (0, 1):
            sums = all_reduce_sum(self._sums[u].clone())
            new = sums / counts.clamp(min=1).unsqueeze(1)
            old = self.protos[u]
            if old is None:
                if bool(seen.all()):
                    self.protos[u] = new
            else:
                old = old.to(new.device)
                upd = (1 - self.momentum) * new + self.momentum * old
                self.protos[u] = torch.where(seen.unsqueeze(1), upd, old)
        self._sums, self._counts = [None, None], None

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        self._accumulate(out, y)  # validates the labels first
        loss = F.cross_entropy(out.fused, y)
        active = self.start <= self.epoch <= self.end
        if not active or self.protos[0] is None or self.protos[1] is None:
            self.last = {}
            return loss
        logp1 = prototype_log_probs(out.z1, self.protos[0])
        logp2 = prototype_log_probs(out.z2, self.protos[1])
        idx = y.view(-1, 1)
        with torch.no_grad():
            scores = torch.stack([logp1.gather(1, idx).exp().sum(),
                                  logp2.gather(1, idx).exp().sum()]).double()
            all_reduce_sum(scores)
        rho = float(scores[0] / scores[1])
        b1, b2, g1, g2 = pmr_coefficients(rho, self.beta, self.gamma,
                                          self.epoch <= self.entropy_epochs)
        self.last = {"rho": rho, "beta1": b1, "beta2": b2, "gamma1": g1, "gamma2": g2}
        for b, logp in ((b1, logp1), (b2, logp2)):
            if b:
                loss = loss + b * F.nll_loss(logp, y)
        for g, logp in ((g1, logp1), (g2, logp2)):
            if g:
                entropy = -(logp.exp() * logp).sum(1).mean()
                loss = loss - g * entropy
        return loss

    @torch.no_grad()
    def _accumulate(self, out: JointOutput, y: torch.Tensor) -> None:
        c = self.n_classes
        if c is None:
            raise RuntimeError("pmr: setup(model, n_classes=..., epochs=...) was not called")
        if int(y.max()) >= c or int(y.min()) < 0:
            raise ValueError(f"pmr: labels must lie in [0, {c}), got [{int(y.min())}, {int(y.max())}]")
        dev = out.z1.device
        if self._counts is not None and self._counts.device != dev:  # e.g. state loaded on CPU
            self._counts = self._counts.to(dev)
            self._sums = [t.to(dev) for t in self._sums]
        if self._counts is None:
            self._counts = torch.zeros(c, dtype=torch.float64, device=dev)
            self._sums = [torch.zeros(c, out.z1.shape[1], dtype=torch.float64, device=dev),
                          torch.zeros(c, out.z2.shape[1], dtype=torch.float64, device=dev)]
        self._counts.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        self._sums[0].index_add_(0, y, out.z1.detach().double())
        self._sums[1].index_add_(0, y, out.z2.detach().double())

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        def cp(t):
            return None if t is None else t.detach().clone()
        return {"epoch": self.epoch, "protos": [cp(t) for t in self.protos],
                "sums": [cp(t) for t in self._sums], "counts": cp(self._counts)}

    def load_state_dict(self, state: dict) -> None:
        expected = {"epoch", "protos", "sums", "counts"}
        if set(state) != expected:
            raise ValueError(f"{self.name}: state keys must be {sorted(expected)}, got {sorted(state)}")
        for key in ("protos", "sums"):
            v = state[key]
            if not (isinstance(v, (list, tuple)) and len(v) == 2
                    and all(t is None or isinstance(t, torch.Tensor) for t in v)):
                raise ValueError(f"{self.name}: state[{key!r}] must be a pair of tensors or None")
        self.epoch = int(state["epoch"])
        self.protos = [None if t is None else t.clone() for t in state["protos"]]
        self._sums = [None if t is None else t.clone() for t in state["sums"]]
        self._counts = None if state["counts"] is None else state["counts"].clone()
