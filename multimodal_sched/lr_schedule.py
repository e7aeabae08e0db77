"""StepLR as a pure function of completed epochs (nothing to checkpoint, so resume stays exact).

The paper (section 5.2) divides the learning rate by 10 every 30 epochs:
``step_lr(base, epoch, step=30, gamma=0.1)``.  Stage I counts each encoder's
own epochs; Stage II counts Stage II epochs.
"""
from __future__ import annotations

__all__ = ["step_lr", "set_lr"]


def step_lr(base_lr: float, epochs_done: int, step: int | None, gamma: float = 0.1) -> float:
    """``base_lr * gamma ** (epochs_done // step)``; ``base_lr`` when ``step`` is None or 0."""
    if not step:
        return base_lr
    return base_lr * gamma ** (epochs_done // step)


def set_lr(optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
