"""Users' own data: arrays, tensors or torch Datasets per split, converted and validated; ``.npz`` files."""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .base import SPLITS, MultimodalData

__all__ = ["as_multimodal_data", "load_npz"]


def _tensor(a, name: str, split: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    if t.ndim == 0:
        raise ValueError(f"{split}: {name} must have a sample axis, got a scalar")
    return t


def _from_arrays(split: str, triple) -> TensorDataset:
    if not (isinstance(triple, (tuple, list)) and len(triple) == 3):
        raise ValueError(f"split {split!r} must be a tuple (x1, x2, y) or a torch Dataset, got {type(triple).__name__}")
    x1, x2, y = (_tensor(a, n, split) for a, n in zip(triple, ("x1", "x2", "y")))
    n1, n2, ny = len(x1), len(x2), len(y)
    if not (n1 == n2 == ny):
        raise ValueError(f"split {split!r}: x1, x2 and y must have the same length, got {n1}, {n2}, {ny}")
    if n1 == 0:
        raise ValueError(f"split {split!r} is empty")
    for name, x in (("x1", x1), ("x2", x2)):
        if not x.is_floating_point():
            x = x.float()
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).reshape(len(x), -1).any(1).sum())
            raise ValueError(f"split {split!r}: {name} contains NaN or inf in {bad} sample(s); clean or impute them first")
    if y.is_floating_point():
        if not torch.all(y == torch.round(y)):
            raise ValueError(f"split {split!r}: y must hold integer class labels, got non-integer floats")
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise ValueError(f"split {split!r}: y must be 1-D class labels, got shape {tuple(y.shape)}")
    y = y.reshape(-1).long()
    return TensorDataset(x1.float(), x2.float(), y)


def _scan_dataset(split: str, ds) -> tuple:
    """Check a torch Dataset item by item; returns (labels array)."""
    try:
        n = len(ds)
    except TypeError:
        raise ValueError(f"split {split!r}: the Dataset must define __len__") from None
    if n == 0:
        raise ValueError(f"split {split!r} is empty")
    ys = np.empty(n, dtype=np.int64)
    for i in range(n):
        item = ds[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise ValueError(f"split {split!r}: item {i} must be a tuple (x1, x2, y), got {type(item).__name__}")
        for name, x in zip(("x1", "x2"), item[:2]):
            x = torch.as_tensor(x)
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise ValueError(f"split {split!r}: {name} of item {i} contains NaN or inf")
        yv = float(torch.as_tensor(item[2]).reshape(-1)[0]) if torch.as_tensor(item[2]).numel() == 1 else math.nan
        if not (math.isfinite(yv) and yv == round(yv)):
            raise ValueError(f"split {split!r}: label of item {i} must be one integer, got {item[2]!r}")
        ys[i] = int(yv)
    return ys


class _LongLabels(Dataset):
    """Wraps a user Dataset so x are float tensors and y a long scalar."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x1, x2, y = self.ds[i]
        return (torch.as_tensor(x1).float(), torch.as_tensor(x2).float(),
                torch.as_tensor(y).reshape(()).long())


def as_multimodal_data(data, *, n_classes: int | None = None, name: str = "user") -> MultimodalData:
    """Convert and validate users' data.

    ``data``: a :class:`MultimodalData`, or a dict with splits ``train``,
    ``val``, ``test`` and optionally ``probe`` (defaults to ``val``: held out,
    never the test set), each a tuple of arrays/tensors ``(x1, x2, y)`` or a
    torch ``Dataset`` yielding ``(x1, x2, y)``.

    Raises ``ValueError`` naming the split and the problem for mismatched
    lengths, NaN/inf features, non-integer labels or labels outside
    ``0..n_classes-1``; warns (``UserWarning``) when a split lacks a class.
    """
    if isinstance(data, MultimodalData):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict of splits or a MultimodalData, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split name(s) {unknown}; expected some of {list(SPLITS)}")
    missing = [s for s in ("train", "val", "test") if s not in data]
    if missing:
        raise ValueError(f"data is missing split(s) {missing}; give train, val and test (probe is optional)")
    splits, labels = {}, {}
    for split in ("train", "val", "test", "probe"):
        if split not in data:
            continue
        v = data[split]
        if isinstance(v, Dataset) and not isinstance(v, (tuple, list)):
            labels[split] = _scan_dataset(split, v)
            splits[split] = _LongLabels(v)
        else:
            ds = _from_arrays(split, v)
            labels[split] = ds.tensors[2].numpy()
            splits[split] = ds
    probe_is_val = "probe" not in splits
    if probe_is_val:
        splits["probe"] = splits["val"]
    if n_classes is None:
        n_classes = int(labels["train"].max()) + 1
    for split, y in labels.items():
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"split {split!r}: labels must be in 0..{n_classes - 1}, found values in "
                             f"[{int(y.min())}, {int(y.max())}]; relabel to consecutive integers from 0")
        absent = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
        if absent:
            warnings.warn(f"split {split!r} has no sample of class(es) {absent}", UserWarning, stacklevel=2)
    shapes = [tuple(torch.as_tensor(x).shape) for x in splits["train"][0][:2]]
    for split, ds in splits.items():
        got = [tuple(torch.as_tensor(x).shape) for x in ds[0][:2]]
        if got != shapes:
            raise ValueError(f"split {split!r}: sample shapes {got} differ from train's {shapes}")
    return MultimodalData(splits=splits, n_classes=n_classes, name=name)


def load_npz(path: str) -> MultimodalData:
    """Read an ``.npz`` file with arrays ``x1_train, x2_train, y_train`` (same for ``val``,
    ``test`` and optionally ``probe``) and validate it like :func:`as_multimodal_data`."""
    if not path or not os.path.isfile(path):
        raise ValueError(f"config.data_path: file not found: {path!r}")
    z = np.load(path)
    splits = {}
    for s in SPLITS:
        if f"y_{s}" in z:
            splits[s] = (z[f"x1_{s}"], z[f"x2_{s}"], z[f"y_{s}"])
    return as_multimodal_data(splits, name=os.path.basename(path))
