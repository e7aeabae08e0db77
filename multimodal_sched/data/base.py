"""The dataset container, the registry entry, and the step that wraps checked file splits."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

__all__ = ["MultimodalData", "DatasetSpec", "SPLITS", "KINDS", "finish"]

log = logging.getLogger("multimodal_sched.data")

SPLITS = ("train", "val", "probe", "test")
#: where a registered dataset comes from: generated in memory, a folder on disk, one array file
KINDS = ("builtin", "disk", "file")


@dataclass
class MultimodalData:
    """Named splits of a two-modality classification task.

    splits : dict with ``train``, ``val``, ``test`` and ``probe`` (each a torch
        Dataset yielding ``(x1, x2, y)`` with integer ``y`` in ``0..n_classes-1``).
    n_classes : number of classes.
    name : short name recorded in the run directory.
    info : free-form metadata (generation parameters).
    """

    splits: dict
    n_classes: int
    name: str = "user"
    info: dict = field(default_factory=dict)

    def sample(self, modality: int) -> torch.Tensor:
        """One training sample of a modality, with a batch axis (for dry forward passes)."""
        x = self.splits["train"][0][modality - 1]
        return torch.as_tensor(x).unsqueeze(0)

    def __len__(self):
        return len(self.splits["train"])


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of the dataset registry (``multimodal_sched.data.DATASETS``).

    name : ``config.dataset``.
    kind : ``"builtin"`` (``load(*, seed, **options)``), ``"disk"`` (``load(root, *, seed,
        **options)``, root = ``config.data_path``, a folder) or ``"file"`` (``load(path)``,
        ``config.data_path`` names one file).
    n_classes : class count of the paper's setting (disk sets; checked against the loaded data).
    modalities : names of modality 1 and 2.
    encoders : ``encoders(shape1, shape2, width) -> (encoder1, encoder2)``, the paper's models
        (disk sets); None: the runner builds ``config.encoder`` itself.
    paper : the paper's Table II hyperparameters and accuracies (%).
    """

    name: str
    kind: str
    load: Callable
    n_classes: int | None = None
    modalities: tuple = ("1", "2")
    encoders: Callable | None = None
    paper: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"DatasetSpec {self.name!r}: kind must be one of {list(KINDS)}, got {self.kind!r}")

    def build(self, data_path=None, *, seed: int = 0, **options) -> MultimodalData:
        try:
            if self.kind == "builtin":
                data = self.load(seed=seed, **options)
            elif self.kind == "disk":
                data = self.load(data_path, seed=seed, **options)
            else:
                data = self.load(data_path, **options)
        except TypeError as e:
            raise ValueError(f"config.dataset_options {options} do not fit dataset {self.name!r}: {e}") from None
        if self.n_classes is not None and data.n_classes != self.n_classes:
            log.warning("%s: %d classes found in the class list, the paper's setting has %d",
                        self.name, data.n_classes, self.n_classes)
        return data

    def make_encoders(self, data: MultimodalData, width: int):
        shapes = [tuple(data.sample(m).shape[1:]) for m in (1, 2)]
        return self.encoders(shapes[0], shapes[1], width)


def finish(splits: dict, classes, name: str, info: dict) -> MultimodalData:
    """Wrap checked FileDatasets; warn about classes a split lacks; log the sizes."""
    n_classes = len(classes)
    for split, ds in splits.items():
        y = ds.labels
        absent = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
        if absent:
            shown = [classes[i] for i in absent[:5]]
            warnings.warn(f"{name}: split {split!r} has no sample of {len(absent)} class(es), e.g. {shown}",
                          UserWarning, stacklevel=3)
    sizes = {k: len(v) for k, v in splits.items()}
    log.info("%s: %s samples, %d classes", name, sizes, n_classes)
    return MultimodalData(splits=splits, n_classes=n_classes, name=name,
                          info={**info, "sizes": sizes, "classes": list(classes)})
