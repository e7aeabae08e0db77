"""Shared pieces of the real-dataset loaders: errors, file checks, decoding, the sample dataset.

Loaders build an *index* (one record per sample: the files it reads and its
label), check every record before training starts, and wrap the good ones in a
:class:`FileDataset` whose ``__getitem__`` decodes the files.

Checks before training (all raise :class:`DatasetLayoutError`, a ``ValueError``
that names the path):

* a missing root, folder or split file;
* an empty split (no sample listed, or none left after skipping);
* an unreadable index file (split list, class list, IDX header);
* a class name not in the dataset's class list.

Per-sample files (WAV, spectrogram, frames, flow) are checked by opening them
(``check="header"``: the file header only; ``check="full"``: decode everything;
``check="exists"``: existence and size only).  A sample whose files fail is
*skipped* and counted: the count and the first few paths are logged with
``logging.WARNING``.  More than ``max_corrupt`` skipped samples in a split (a
fraction when < 1, else a count) is an error: something is wrong with the copy,
not with a few files.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "DatasetLayoutError", "Sample", "FileDataset", "require_dir", "require_file", "list_frames",
    "load_image", "load_frames", "pick_frames", "check_samples", "IMAGENET_MEAN", "IMAGENET_STD",
    "IMAGE_EXTS", "carve_splits",
]

log = logging.getLogger("multimodal_sched.data.disk")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class DatasetLayoutError(ValueError):
    """The files under a dataset root do not have the expected layout (the message names the path)."""


def require_dir(path: str, what: str, hint: str = "") -> str:
    if not os.path.isdir(path):
        kind = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise DatasetLayoutError(f"{what}: {path!r} {kind}" + (f"; {hint}" if hint else ""))
    return path


def require_file(path: str, what: str, hint: str = "") -> str:
    if not os.path.isfile(path):
        kind = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise DatasetLayoutError(f"{what}: {path!r} {kind}" + (f"; {hint}" if hint else ""))
    if not os.access(path, os.R_OK):
        raise DatasetLayoutError(f"{what}: {path!r} is not readable (check its permissions)")
    return path


def read_lines(path: str, what: str) -> list:
    """Non-blank lines of a text file, stripped; a clear error if it cannot be read."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [ln.strip() for ln in f if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetLayoutError(f"{what}: cannot read {path!r} as text: {e}") from None


def list_frames(folder: str, exts: Sequence[str] = IMAGE_EXTS) -> list:
    """Sorted frame files of a folder (by name; zero-padded numbering sorts right)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names if n.lower().endswith(tuple(exts)))


def pick_frames(n_available: int, n: int, *, random: bool) -> list:
    """Indices of ``n`` frames out of ``n_available``.

    ``random=False``: uniformly spaced (segment centers), deterministic.
    ``random=True``: one random frame per segment, drawn from torch's global
    RNG (so a run's RNG state, which the scheduler checkpoints, fixes it).
    """
    edges = np.linspace(0, n_available, n + 1)
    if not random:
        return [min(n_available - 1, int((a + b) / 2)) for a, b in zip(edges[:-1], edges[1:])]
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        lo, hi = int(a), max(int(a) + 1, int(np.ceil(b)))
        out.append(min(n_available - 1, lo + int(torch.randint(hi - lo, (1,)).item())))
    return out


def load_image(path: str, size: int, *, mode: str = "RGB") -> np.ndarray:
    """An image resized to ``size x size``, as float32 (C, H, W) in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert(mode)
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_frames(paths: Sequence[str], size: int, *, normalize: bool = True) -> torch.Tensor:
    """Frames -> (T, 3, size, size) float tensor, ImageNet-normalized when ``normalize``."""
    arr = np.stack([load_image(p, size) for p in paths])
    if normalize:
        arr = (arr - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def check_image(path: str, full: bool) -> None:
    from PIL import Image

    with Image.open(path) as im:
        if full:
            im.load()
        else:
            im.verify()


def check_npy(path: str, full: bool) -> None:
    a = np.load(path, mmap_mode=None if full else "r", allow_pickle=False)
    if full and not np.isfinite(a).all():
        raise ValueError("contains NaN or inf")


@dataclass
class Sample:
    """One indexed sample: a key (clip or video id), its label and the files it reads."""

    key: str
    label: int
    files: dict = field(default_factory=dict)   # role -> path or list of paths


def check_samples(samples: list, checker: Callable[[Sample, bool], None], *, split: str, dataset: str,
                  check: str = "header", max_corrupt: float = 0.05) -> list:
    """Run ``checker(sample, full)`` on every sample; skip (and log) the failures.

    Returns the good samples.  Raises :class:`DatasetLayoutError` when the split
    is empty or when more than ``max_corrupt`` samples fail.
    """
    if check not in ("exists", "header", "full"):
        raise ValueError(f"check must be 'exists', 'header' or 'full', got {check!r}")
    if not samples:
        raise DatasetLayoutError(f"{dataset}: split {split!r} is empty (no sample listed)")
    good, bad = [], []
    for s in samples:
        try:
            for role, p in s.files.items():
                for q in (p if isinstance(p, (list, tuple)) else [p]):
                    if not os.path.isfile(q):
                        raise FileNotFoundError(f"{role} file {q!r} does not exist")
                    if os.path.getsize(q) == 0:
                        raise ValueError(f"{role} file {q!r} is empty")
            if check != "exists":
                checker(s, check == "full")
        except Exception as e:  # noqa: BLE001 - any decode failure makes the sample corrupt
            bad.append((s, e))
        else:
            good.append(s)
    limit = max_corrupt * len(samples) if max_corrupt < 1 else max_corrupt
    if bad:
        first = "; ".join(f"{s.key}: {e}" for s, e in bad[:5])
        msg = (f"{dataset}: split {split!r}: skipped {len(bad)} of {len(samples)} sample(s) with "
               f"missing or unreadable files (first: {first})")
        if len(bad) > limit or not good:
            raise DatasetLayoutError(msg + f"; that is more than max_corrupt={max_corrupt}, so the copy "
                                     "looks broken (re-run `multimodal-sched prepare` or raise max_corrupt)")
        log.warning("%s", msg)
    return good


class FileDataset(Dataset):
    """A torch Dataset over indexed samples: ``load(sample, train) -> (x1, x2)``, label from the index."""

    def __init__(self, samples: list, load: Callable, *, train: bool):
        self.samples, self.load, self.train = list(samples), load, train

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        try:
            x1, x2 = self.load(s, self.train)
        except Exception as e:
            paths = [p for v in s.files.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
            raise RuntimeError(f"cannot load sample {s.key!r} (files {paths[:4]}): {e}") from e
        return x1, x2, torch.tensor(s.label, dtype=torch.long)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


def carve_splits(items: list, labels: Sequence[int], fractions: dict, seed: int) -> dict:
    """Split ``items`` into named parts of the given fractions (stratified by label, deterministic).

    The last name takes the remainder.  A part with a positive fraction gets at
    least one item of each class that has at least one item per part.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    names = list(fractions)
    out = {n: [] for n in names}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for n in names[:-1]:
            k = int(round(fractions[n] * len(idx)))
            if k == 0 and fractions[n] > 0 and len(idx) >= len(names):
                k = 1
            out[n].extend(idx[start:start + k].tolist())
            start += k
        out[names[-1]].extend(idx[start:].tolist())
    return {n: [items[i] for i in sorted(v)] for n, v in out.items()}
