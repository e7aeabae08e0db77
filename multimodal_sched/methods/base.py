"""The Stage II strategy interface: how a method plugs into the one joint-training loop.

The runner owns the order of work; a strategy is a small object it calls at fixed points
(the Lightning pattern, see ``STYLE.md``). A strategy never re-writes the loop.

Per Stage II epoch the runner does::

    strategy.on_epoch_start(epoch, model)
    for x1, x2, y in loader:
        out = model.outputs(x1, x2)            # JointOutput(fused, logits1, logits2, z1, z2)
        loss = strategy.loss(out, y, model)    # a scalar tensor
        opt.zero_grad(); loss.backward()       # (DDP: gradients are all-reduced here)
        strategy.after_backward(model, out, y) # may scale / alter encoder gradients in place
        opt.step()
    strategy.on_epoch_end(epoch, metrics)

``setup`` runs once when Stage II starts (after a resume too, before ``load_state_dict``).
Per-epoch state a method keeps (prototypes, running ratios, ...) goes through
``state_dict``/``load_state_dict`` so it checkpoints with the run.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["JointOutput", "Strategy", "STRATEGIES", "register", "get_strategy", "strategy_names"]


class JointOutput(NamedTuple):
    """One forward pass of the joint model: fused logits, unimodal head logits, embeddings."""

    fused: torch.Tensor
    logits1: torch.Tensor
    logits2: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor


class Strategy:
    """Base class: the fused cross-entropy alone (naive fusion), no gradient changes."""

    name = "base"
    #: hyperparameters with their defaults; the config passes overrides by keyword
    defaults: dict = {}

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"strategy {self.name!r} has no option(s) {unknown}; "
                             f"its options are {sorted(self.defaults)}")
        self.options = {**self.defaults, **options}

    # ---- hook points -------------------------------------------------------------------------
    def setup(self, model, *, n_classes: int, epochs: int) -> None:
        """Called once when Stage II starts."""

    def on_epoch_start(self, epoch: int, model) -> None:
        """Called before each Stage II epoch (``epoch`` counts from 1)."""

    def loss(self, out: JointOutput, y: torch.Tensor, model) -> torch.Tensor:
        return F.cross_entropy(out.fused, y)

    def after_backward(self, model, out: JointOutput, y: torch.Tensor) -> None:
        """Called after ``loss.backward()`` and before ``opt.step()``."""

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        """Called after each Stage II epoch with its train metrics."""

    # ---- resumable state ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"strategy {self.name!r} keeps no state, got keys {sorted(state)}")


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy to the registry under ``cls.name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy name {cls.name!r} is registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def get_strategy(name: str, **options) -> Strategy:
    if not isinstance(name, str):
        raise TypeError(f"strategy name must be a str, got {type(name).__name__}")
    if name not in STRATEGIES:
        raise ValueError(f"unknown Stage II strategy {name!r}; choose one of {strategy_names()}")
    return STRATEGIES[name](**options)
