"""The Stage I schedule interface: which modality trains when, decided from val accuracy alone.

Per Stage I epoch the runner does::

    for m in schedule.pop_restores():         # reload modality m's best-val weights
        load best encoder m and head m
    mods = schedule.plan()                    # modalities to train this epoch, or None: Stage I over
    for m in mods:
        guide = schedule.guidance(m)          # None, or (anchor modality a, weight w)
        per batch: loss = CE(head_m(z_m), y) [+ w * schedule.guidance_loss(z_m, z_a)]
        acc = val accuracy of (encoder m, head m)
        if schedule.observe(m, acc):          # True: this epoch is m's new best (the runner stores it)
            store encoder m and head m as m's best

The runner checkpoints :meth:`Schedule.state_dict` with the run, so a resume continues the
same plan.  ``setup(max_epochs=...)`` caps each modality's Stage I epochs
(``config.max_unimodal_epochs``).
"""
from __future__ import annotations

import torch

__all__ = ["Schedule", "SCHEDULES", "register", "get_schedule", "schedule_names"]


class Schedule:
    name = "base"
    defaults: dict = {}

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"method {self.name!r} has no option(s) {unknown}; "
                             f"its options are {sorted(self.defaults)}")
        self.options = {**self.defaults, **options}

    def setup(self, *, max_epochs: int) -> None:
        """Called once before Stage I (and again on resume, before ``load_state_dict``)."""

    def plan(self):
        """Modalities to train in the next Stage I epoch (a tuple), or None when Stage I is over."""
        return None

    def observe(self, m: int, val_acc: float) -> bool:
        """Record one epoch of modality ``m``; True when it is that modality's best so far."""
        return False

    def pop_restores(self) -> list:
        """Modalities whose best weights must be reloaded before the next epoch (then forgotten)."""
        return []

    def guidance(self, m: int):
        """``(anchor, weight)`` when modality ``m``'s training is guided by another's embeddings, else None."""
        return None

    def guidance_loss(self, z: torch.Tensor, z_anchor: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """A JSON-able summary for the run's events."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, got keys {sorted(state)}")


SCHEDULES: dict = {}


def register(cls):
    if cls.name in SCHEDULES:
        raise ValueError(f"schedule name {cls.name!r} is registered twice")
    SCHEDULES[cls.name] = cls
    return cls


def schedule_names() -> list:
    return sorted(SCHEDULES)


def get_schedule(name: str, **options) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown Stage I schedule {name!r}; choose one of {schedule_names()}")
    return SCHEDULES[name](**options)
