"""AGM: adaptive gradient modulation through Shapley mono-modal responses.

Li, Li, Hu, Lei, Li, Zhou, "Boosting Multi-modal Model Performance with Adaptive Gradient
Modulation", ICCV 2023 (arXiv 2308.07686), Sec. 3 and Fig. 1.

Where this module comes from: the paper's full text was not available where this module was
written, so its equation numbers are not cited; the formulas below are the paper's Sec. 3 as
its Fig. 1 and abstract describe it (Shapley-based mono-modal responses from muted inputs, a
per-modality gradient coefficient from the current and the running discrepancy of the
modalities), made precise by the authors' public code (``lihong2303/AGM_ICCV2023``,
``run/CREMAD_main.py`` and ``model/CREMAD_net.py``), read, not copied.

Per batch ``B``, with ``f(x1, x2)`` the fused logits and ``0`` a muted (all-zero) input:

* the mono-modal responses (two-player Shapley values, plus half the empty coalition's
  output so that they add up to the fused logits, as in the public code)::

      phi1 = (f(x1, x2) - f(0, x2) + f(x1, 0)) / 2
      phi2 = (f(x1, x2) - f(x1, 0) + f(0, x2)) / 2          # phi1 + phi2 = f(x1, x2)

* each modality's score, the mean cross-entropy of its response on the true class,
  ``s_m = -mean_i log max(softmax(phi_m)_i[y_i], 1e-8)`` (lower is better);
* the discrepancy ratio ``r_1 = exp(s_2 - s_1)``, ``r_2 = 1 / r_1`` (``r_m > 1``: modality
  ``m`` currently ahead), and the same ratio ``rbar_m`` from the running means
  ``sbar_m`` of the scores over all earlier Stage II batches;
* the coefficient ``k_m = exp(alpha * min(rbar_m - r_m, 10))``: a modality further ahead than
  its running average is slowed (``k < 1``), one further behind is sped up (``k > 1``);
* the update: the fused cross-entropy is back-propagated through ``phi1`` and ``phi2`` with
  their gradients scaled by ``k_1`` and ``k_2`` (``CE(phi1 + phi2, y)`` with a gradient scale on
  each term), so every parameter - both encoders and the fusion layer - gets
  ``k_1 dphi1 + k_2 dphi2`` instead of ``df``. With ``k_1 = k_2 = 1`` this is exactly the
  gradient of the fused cross-entropy (the muted terms cancel).

The training loss is the fused cross-entropy alone; the unimodal heads are not used.

Choices (the paper leaves them open or the public code differs):

* Muting is on the input, as in the paper: the muted modality's input is all zeros, which a
  late-fusion model turns into the constant embedding ``c_m = encoder_m(0)``, computed once per
  batch from a single zero sample with the encoder in eval mode (as the public code runs its
  muted passes). The unmuted modality reuses this batch's training-mode embedding, so each
  batch costs two extra fusion evaluations and one zero-sample encoder pass, not three full
  forward passes (the same when encoders have no batch norm or dropout). Gradients flow
  through the muted passes, as in the public code.
* The running means start with the first Stage II batch (its coefficients are 1); the public
  code starts them at 0, so its first batch compares with a ratio of 1.
* Defaults: ``alpha = 1.0`` (the public code's default; its README's AV-MNIST example uses 2.5),
  modulation over Stage II epochs 1..20 inclusive (the public code's 0..20 window over epochs
  counted from 1). Outside the window the loss is the plain fused cross-entropy and the running
  means still advance.

Distributed (DDP): the change is to the loss (a gradient scale inside the graph), so it happens
before DDP's all-reduce; the two score sums and the sample count are summed over ranks first,
so every rank uses the global batch's coefficients (those one process would compute), and the
all-reduced gradient is the single-process one.

Model requirements: ``encoder1``, ``encoder2`` and any ``fusion(z1, z2)`` (AGM needs no linear
fusion; that is its point against OGM-GE).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import JointOutput, Strategy, register
from ._common import all_reduce_sum, check_float, check_int, unwrap

__all__ = ["AGM", "agm_coefficients", "shapley_responses"]

#: the public code caps the exponent of the coefficient at 10
EXPONENT_CAP = 10.0
#: the smallest true-class probability a score takes (the public code's floor)
P_FLOOR = 1e-8


def agm_coefficients(s1: float, s2: float, sbar1: float, sbar2: float, alpha: float) -> tuple[float, float]:
    """``(k1, k2)`` from this batch's scores ``s`` and the running means ``sbar`` (lower is better)."""
    for name, v in (("s1", s1), ("s2", s2), ("sbar1", sbar1), ("sbar2", sbar2)):
        if not math.isfinite(v):
            raise ValueError(f"AGM score {name} must be finite, got {v}")
    # the ratios are exp of score differences; each difference is capped so exp never overflows
    d, dbar = max(min(s2 - s1, 700.0), -700.0), max(min(sbar2 - sbar1, 700.0), -700.0)
    r1, r2 = math.exp(d), math.exp(-d)
    rbar1, rbar2 = math.exp(dbar), math.exp(-dbar)
    k1 = math.exp(alpha * min(rbar1 - r1, EXPONENT_CAP))
    k2 = math.exp(alpha * min(rbar2 - r2, EXPONENT_CAP))
    return k1, k2


def shapley_responses(fusion, z1: torch.Tensor, z2: torch.Tensor, c1: torch.Tensor,
                      c2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phi1, phi2)`` of the fused logits, ``c_m`` the muted modality's embedding (one row)."""
    full = fusion(z1, z2)
    only1 = fusion(z1, c2.expand_as(z2))      # f(x1, 0)
    only2 = fusion(c1.expand_as(z1), z2)      # f(0, x2)
    return (full - only2 + only1) / 2, (full - only1 + only2) / 2


class _ScaleGrad(torch.autograd.Function):
    """Identity forward, gradient times ``k`` backward."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


@register
class AGM(Strategy):
    name = "agm"
    defaults = {"alpha": 1.0, "modulation_start": 1, "modulation_end": 20}

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
        self.epoch = 0
        self.batches = 0                  # Stage II batches seen (the running means' count)
        self.sbar = [0.0, 0.0]            # running means of the two scores
        self._inputs: dict[int, tuple] = {}
        self._hooks: list = []
        #: the last batch's scores and coefficients: {"s1", "s2", "k1", "k2", "modulated"}
        self.last: dict = {}

    # ---- hooks ---------------------------------------------------------------------------------
    def setup(self, model, *, n_classes: int, epochs: int) -> None:
        m = unwrap(model)
        for k in (1, 2):
            if getattr(m, f"encoder{k}", None) is None:
                raise ValueError(f"agm: the model has no 'encoder{k}' attribute")
        if not callable(getattr(m, "fusion", None)):
            raise ValueError("agm: the model has no 'fusion' layer; AGM's mono-modal responses "
                             "are read from the fused output")
        for h in self._hooks:
            h.remove()
        # the muted input needs each encoder's sample shape: remember it from the forward pass
        self._hooks = [getattr(m, f"encoder{k}").register_forward_pre_hook(self._remember(k))
                       for k in (1, 2)]

    def _remember(self, k: int):
        def hook(module, args):
            x = args[0]
            self._inputs[k] = (tuple(x.shape[1:]), x.dtype, x.device)
        return hook

    def on_epoch_start(self, epoch: int, model) -> None:
        self.epoch = int(epoch)

    def _muted(self, model, k: int) -> torch.Tensor:
        """``encoder_k(0)`` for one all-zero sample, in eval mode (with gradients)."""
        if k not in self._inputs:
            raise RuntimeError("agm: setup() must run before the first forward pass (the muted "
                               "input takes its shape from the encoder's input)")
        shape, dtype, device = self._inputs[k]
        enc = getattr(model, f"encoder{k}")
        was = enc.training
        enc.eval()
        try:
            return enc(torch.zeros((1, *shape), dtype=dtype, device=device))
        finally:
            enc.train(was)

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        m = unwrap(model)
        phi1, phi2 = shapley_responses(m.fusion, out.z1, out.z2, self._muted(m, 1), self._muted(m, 2))
        with torch.no_grad():
            idx = y.view(-1, 1)
            nll = [-(F.softmax(p.detach().float(), dim=1).gather(1, idx).clamp_min(P_FLOOR).log()).sum()
                   for p in (phi1, phi2)]
            sums = torch.stack([*nll, torch.tensor(float(len(y)), device=nll[0].device)]).double()
            all_reduce_sum(sums)
        s1, s2 = float(sums[0] / sums[2]), float(sums[1] / sums[2])
        if self.batches == 0:
            k1 = k2 = 1.0
        else:
            k1, k2 = agm_coefficients(s1, s2, self.sbar[0], self.sbar[1], self.alpha)
        n = self.batches
        self.sbar = [(self.sbar[0] * n + s1) / (n + 1), (self.sbar[1] * n + s2) / (n + 1)]
        self.batches = n + 1
        active = self.start <= self.epoch <= self.end
        self.last = {"s1": s1, "s2": s2, "k1": k1, "k2": k2, "modulated": active}
        if not active:
            return F.cross_entropy(out.fused, y)
        return F.cross_entropy(_ScaleGrad.apply(phi1, k1) + _ScaleGrad.apply(phi2, k2), y)

    # ---- resumable state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.batches, "sbar": list(self.sbar)}

    def load_state_dict(self, state: dict) -> None:
        expected = {"epoch", "batches", "sbar"}
        if set(state) != expected:
            raise ValueError(f"{self.name}: state keys must be {sorted(expected)}, got {sorted(state)}")
        sbar = state["sbar"]
        if not (isinstance(sbar, (list, tuple)) and len(sbar) == 2):
            raise ValueError(f"{self.name}: 'sbar' must be a pair of floats, got {sbar!r}")
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
        self.sbar = [float(sbar[0]), float(sbar[1])]
