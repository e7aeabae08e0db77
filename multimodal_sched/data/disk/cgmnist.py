"""CG-MNIST (colored-and-gray MNIST, 10 digits) from MNIST's IDX files.

Get MNIST from https://yann.lecun.com/exdb/mnist/ (or any mirror, e.g.
https://ossci-datasets.s3.amazonaws.com/mnist/).  Expected layout under ``root``::

    root/
      train-images-idx3-ubyte   train-labels-idx1-ubyte     (".gz" allowed; the Kaggle
      t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte       names "train-images.idx3-ubyte" too)

Only MNIST is needed: modality 1 is the gray digit ``(1, 28, 28)`` in [0, 1];
modality 2 is a colored copy made by :func:`colorize` ``(3, 28, 28)``: the
digit's strokes painted in one color on black.  In train, val and probe the
color is the class's color (:data:`~multimodal_sched.data.builtin.cg_digits.PALETTE`)
with probability ``color_corr`` (default 1.0) plus Gaussian jitter
(``jitter`` = 0.1 per channel, clipped to [0, 1]); in test it is a uniformly
random RGB color, so the color shortcut that wins the modality competition in
training is useless at test time.  Colors are fixed by ``seed``.

Splits: val and probe (``n_val`` = ``n_probe`` = 5000) are held out of the
60,000 training digits (stratified, ``split_seed``); test is t10k.  IDX files
are checked before training: a missing file, a wrong magic number, a size that
disagrees with the header, image and label counts that differ, or a label
outside 0..9 is an error naming the file.
"""
from __future__ import annotations

import gzip
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from ..builtin.cg_digits import PALETTE
from ._common import DatasetLayoutError, carve_splits, require_dir
from ..base import finish

__all__ = ["load_cgmnist", "read_idx", "write_idx", "colorize", "ColoredPairs"]

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(root: str, name: str) -> str:
    alts = [name, name + ".gz", name.replace("-idx", ".idx"), name.replace("-idx", ".idx") + ".gz"]
    for a in alts:
        p = os.path.join(root, a)
        if os.path.isfile(p):
            return p
    raise DatasetLayoutError(f"cgmnist: MNIST file {os.path.join(root, name)!r} does not exist "
                             f"(also looked for {alts[1:]}); download MNIST's four IDX files into {root!r}")


def read_idx(path: str) -> np.ndarray:
    """An IDX (ubyte) array; errors name the file."""
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            raw = f.read()
    except OSError as e:
        raise DatasetLayoutError(f"cgmnist: cannot read {path!r}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetLayoutError(f"cgmnist: {path!r} is not an unsigned-byte IDX file (bad magic number "
                                 f"{raw[:4].hex() if len(raw) >= 4 else raw.hex()!r})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetLayoutError(f"cgmnist: {path!r} is truncated (header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape)) if shape else 0
    body = raw[4 + 4 * ndim:]
    if len(body) != n:
        raise DatasetLayoutError(f"cgmnist: {path!r} holds {len(body)} data bytes but its header says "
                                 f"{shape} = {n}; the file is truncated or corrupt (download it again)")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def write_idx(path: str, a: np.ndarray) -> None:
    """Write a uint8 array as IDX (tests and tools)."""
    a = np.asarray(a, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    data = header + a.tobytes()
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        f.write(data)


def colorize(labels: np.ndarray, *, correlated: bool, rng: np.random.Generator, color_corr: float = 1.0,
             jitter: float = 0.1) -> np.ndarray:
    """One RGB color (n, 3) in [0, 1] per digit.

    ``correlated=True`` (train/val/probe): the class color with probability
    ``color_corr`` (else a random palette color), plus N(0, jitter^2) per
    channel.  ``correlated=False`` (test): uniform random RGB.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not correlated:
        return rng.random((n, 3)).astype(np.float32)
    keep = rng.random(n) < color_corr
    idx = np.where(keep, labels, rng.integers(0, len(PALETTE), n))
    return np.clip(PALETTE[idx] + jitter * rng.standard_normal((n, 3)), 0, 1).astype(np.float32)


class ColoredPairs(Dataset):
    """(gray (1, H, W), colored (3, H, W), label) from uint8 digits and per-digit colors."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, colors: np.ndarray):
        self.images, self.colors = images, colors
        self._labels = labels.astype(np.int64)

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        g = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)[None]
        c = g * torch.from_numpy(self.colors[i])[:, None, None]
        return g, c, torch.tensor(self._labels[i])

    @property
    def labels(self) -> np.ndarray:
        return self._labels


def _load_pair(root: str, split: str):
    ip, lp = (_find(root, n) for n in FILES[split])
    images, labels = read_idx(ip), read_idx(lp)
    if images.ndim != 3:
        raise DatasetLayoutError(f"cgmnist: {ip!r} must hold images (n, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetLayoutError(f"cgmnist: {lp!r} must hold labels (n,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetLayoutError(f"cgmnist: {ip!r} has {len(images)} images but {lp!r} has {len(labels)} labels")
    if len(labels) == 0:
        raise DatasetLayoutError(f"cgmnist: {lp!r} is empty (split {split!r})")
    if labels.max() > 9:
        raise DatasetLayoutError(f"cgmnist: {lp!r} has label {int(labels.max())}; MNIST classes are 0..9")
    return images, labels


def load_cgmnist(root: str, *, seed: int = 0, split_seed: int = 0, n_val: int = 5000, n_probe: int = 5000,
                 n_train: int | None = None, color_corr: float = 1.0, jitter: float = 0.1):
    """CG-MNIST as a :class:`~multimodal_sched.data.MultimodalData` (modality 1 gray, 2 colored)."""
    require_dir(root, "cgmnist root")
    if not 0 <= color_corr <= 1:
        raise ValueError(f"cgmnist: color_corr must be in [0, 1], got {color_corr}")
    if jitter < 0:
        raise ValueError(f"cgmnist: jitter must be >= 0, got {jitter}")
    tr_x, tr_y = _load_pair(root, "train")
    te_x, te_y = _load_pair(root, "test")
    n = len(tr_y)
    if n_val + n_probe >= n:
        raise DatasetLayoutError(f"cgmnist: n_val + n_probe = {n_val + n_probe} leaves no training digit "
                                 f"out of {n} in {_find(root, FILES['train'][0])!r}")
    parts = carve_splits(list(range(n)), tr_y, {"val": n_val / n, "probe": n_probe / n,
                                                "train": 1 - (n_val + n_probe) / n}, split_seed)
    if n_train is not None:
        parts["train"] = parts["train"][:n_train]
    rng = np.random.default_rng(seed)
    splits = {}
    for name in ("train", "val", "probe"):
        ii = np.asarray(parts[name], dtype=np.int64)
        if len(ii) == 0:
            raise DatasetLayoutError(f"cgmnist: split {name!r} is empty; lower n_val / n_probe")
        cols = colorize(tr_y[ii], correlated=True, rng=rng, color_corr=color_corr, jitter=jitter)
        splits[name] = ColoredPairs(tr_x[ii], tr_y[ii], cols)
    splits["test"] = ColoredPairs(te_x, te_y, colorize(te_y, correlated=False, rng=rng))
    return finish(splits, tuple(str(d) for d in range(10)), "cgmnist",
                  {"root": root, "color_corr": color_corr, "jitter": jitter, "seed": seed, "split_seed": split_seed})
