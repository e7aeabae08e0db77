"""``sequential``: train modality A to a validation plateau, then modality B, then joint Stage II; no PID.

The baseline the PID controller has to beat: if a plain "one modality at a time, each until it
stops improving" schedule does as well, the probes are not what helps.

* Modality ``order[0]`` trains alone (its encoder and unimodal head, cross-entropy, ``lr_stage1``)
  until its val accuracy has not improved by more than ``min_delta`` for ``patience`` epochs in
  a row, or it reaches ``max_unimodal_epochs``; its best-val weights (encoder and head) are then
  reloaded (early stopping). Then ``order[1]`` the same way, then Stage II with ``config.stage2``
  for ``stage2_epochs``.
* Options (``config.method_options``): ``order`` (default ``[1, 2]``), ``patience`` (3),
  ``min_delta`` (0.0, in accuracy).

Distributed (DDP): the plan depends only on the val accuracies, which the runner sums over
ranks before :meth:`observe`, so every rank follows the same plan; training is the runner's
ordinary Stage I step (gradients all-reduced by DDP, nothing changed after).
"""
from __future__ import annotations

import math

from .base import Schedule, register

__all__ = ["Sequential"]


def _check_int(name, owner, v, low):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"method {owner!r}: option {name!r} must be an integer >= {low}, got {v!r}")
    return v


def _check_float(name, owner, v, low):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low:
        raise ValueError(f"method {owner!r}: option {name!r} must be a finite number >= {low}, got {v!r}")
    return float(v)


@register
class Sequential(Schedule):
    name = "sequential"
    defaults = {"order": [1, 2], "patience": 3, "min_delta": 0.0}

    def __init__(self, **options):
        super().__init__(**options)
        self.patience = _check_int("patience", self.name, self.options["patience"], 1)
        self.min_delta = _check_float("min_delta", self.name, self.options["min_delta"], 0.0)
        self.order = self._order()
        self.max_epochs = None
        self.stage = 0                      # index into order; len(order) when Stage I is over
        self.best = {1: None, 2: None}      # best val accuracy per modality
        self.last = {1: None, 2: None}      # last val accuracy per modality
        self.since = {1: 0, 2: 0}           # epochs since the best
        self.epochs = {1: 0, 2: 0}
        self.best_epoch = {1: 0, 2: 0}      # the modality epoch of that best
        self.pending = []                   # modalities to restore to their best weights
        self.finished = []                  # {"modality", "epochs", "best_epoch", "best_val_acc", "reason"}

    def _order(self):
        o = self.options["order"]
        if not (isinstance(o, (list, tuple)) and sorted(o) == [1, 2]
                and all(isinstance(m, int) and not isinstance(m, bool) for m in o)):
            raise ValueError(f"method {self.name!r}: option 'order' must be [1, 2] or [2, 1], got {o!r}")
        return [int(m) for m in o]

    def setup(self, *, max_epochs: int) -> None:
        self.max_epochs = _check_int("max_epochs", self.name, max_epochs, 1)

    def plan(self):
        return None if self.stage >= len(self.order) else (self.order[self.stage],)

    def observe(self, m: int, val_acc: float) -> bool:
        if self.max_epochs is None:
            raise RuntimeError(f"{self.name}: setup(max_epochs=...) was not called")
        if self.plan() != (m,):
            raise ValueError(f"{self.name}: modality {m} trained but the plan is {self.plan()}")
        val_acc = float(val_acc)
        self.epochs[m] += 1
        self.last[m] = val_acc
        improved = self.best[m] is None or val_acc > self.best[m] + self.min_delta
        if improved:
            self.best[m], self.since[m], self.best_epoch[m] = val_acc, 0, self.epochs[m]
        else:
            self.since[m] += 1
        reason = ("plateau" if self.since[m] >= self.patience
                  else "max_unimodal_epochs" if self.epochs[m] >= self.max_epochs else None)
        if reason is not None:
            self.finished.append({"modality": m, "epochs": self.epochs[m], "best_epoch": self.best_epoch[m],
                                  "best_val_acc": self.best[m], "reason": reason})
            self.pending.append(m)
            self.stage += 1
        return improved

    def pop_restores(self) -> list:
        out, self.pending = self.pending, []
        return out

    def describe(self) -> dict:
        return {"stage": self.stage, "plan": self.plan(), "finished": [dict(f) for f in self.finished]}

    # ---- state ---------------------------------------------------------------------------------
    _KEYS = ("stage", "best", "last", "since", "epochs", "pending", "finished", "best_epoch")

    def state_dict(self) -> dict:
        return {"stage": self.stage, "best": dict(self.best), "last": dict(self.last), "since": dict(self.since),
                "epochs": dict(self.epochs), "pending": list(self.pending),
                "finished": [dict(f) for f in self.finished], "best_epoch": dict(self.best_epoch)}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self._KEYS):
            raise ValueError(f"{self.name}: state keys must be {sorted(self._KEYS)}, got {sorted(state)}")
        self.stage = int(state["stage"])
        self.best, self.last = dict(state["best"]), dict(state["last"])
        self.since, self.epochs = dict(state["since"]), dict(state["epochs"])
        self.pending = list(state["pending"])
        self.finished = [dict(f) for f in state["finished"]]
        self.best_epoch = dict(state["best_epoch"])
