"""Training and evaluation loops for Stage I (one encoder + its head) and Stage II (joint model).

Stage II loss: ``CE(fused) + w * CE(head1) + w * CE(head2)`` (``w = aux_weight``,
0.6 by default).  Loops take a loader yielding ``(x1, x2, y)`` and return
plain floats so the runner can log them.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["make_optimizer", "train_unimodal_epoch", "eval_unimodal", "train_joint_epoch", "eval_joint"]


def make_optimizer(params, *, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4):
    """SGD with momentum or Adam."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def _check_loss(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{where}: loss became {loss.item()}; lower the learning rate")


def train_unimodal_epoch(encoder: nn.Module, head: nn.Module, opt, loader, modality: int, device) -> dict:
    """One epoch of encoder ``modality`` (1 or 2) with its own head; returns loss and train accuracy."""
    encoder.train()
    head.train()
    tot, correct, n = 0.0, 0, 0
    for batch in loader:
        x, y = batch[modality - 1].to(device), batch[2].to(device)
        logits = head(encoder(x))
        loss = F.cross_entropy(logits, y)
        _check_loss(loss, f"Stage I modality {modality}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": tot / n, "acc": correct / n}


@torch.no_grad()
def eval_unimodal(encoder: nn.Module, head: nn.Module, loader, modality: int, device) -> dict:
    encoder.eval()
    head.eval()
    tot, correct, n = 0.0, 0, 0
    for batch in loader:
        x, y = batch[modality - 1].to(device), batch[2].to(device)
        logits = head(encoder(x))
        tot += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": tot / n, "acc": correct / n}


def train_joint_epoch(model: nn.Module, opt, loader, device, aux_weight: float) -> dict:
    model.train()
    tot, correct, n = 0.0, 0, 0
    for x1, x2, y in loader:
        x1, x2, y = x1.to(device), x2.to(device), y.to(device)
        fused, l1, l2 = model(x1, x2)
        loss = F.cross_entropy(fused, y) + aux_weight * (F.cross_entropy(l1, y) + F.cross_entropy(l2, y))
        _check_loss(loss, "Stage II")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        correct += (fused.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": tot / n, "acc": correct / n}


@torch.no_grad()
def eval_joint(model: nn.Module, loader, device) -> dict:
    """Fused accuracy plus each unimodal head's accuracy."""
    model.eval()
    tot, c, c1, c2, n = 0.0, 0, 0, 0, 0
    for x1, x2, y in loader:
        x1, x2, y = x1.to(device), x2.to(device), y.to(device)
        fused, l1, l2 = model(x1, x2)
        tot += F.cross_entropy(fused, y, reduction="sum").item()
        c += (fused.argmax(1) == y).sum().item()
        c1 += (l1.argmax(1) == y).sum().item()
        c2 += (l2.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": tot / n, "acc": c / n, "acc1": c1 / n, "acc2": c2 / n}
