"""The registry entry of a real dataset and the step that turns checked splits into MultimodalData."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..data.base import MultimodalData
from ._common import DatasetLayoutError

__all__ = ["DatasetSpec", "finish"]

log = logging.getLogger("multimodal_sched.datasets")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset on the user's disk.

    name : registry name (``config.dataset``).
    n_classes : number of classes (checked against the loaded data).
    modalities : names of modality 1 and 2.
    load : ``load(root, *, seed, **options) -> MultimodalData``.
    encoders : ``encoders(shape1, shape2, width) -> (encoder1, encoder2)`` (the paper's models).
    paper : the paper's Table II hyperparameters and accuracy (for docs and reproduction configs).
    """

    name: str
    n_classes: int
    modalities: tuple
    load: Callable
    encoders: Callable
    paper: dict = field(default_factory=dict)

    def build(self, root, *, seed: int = 0, **options) -> MultimodalData:
        if root is None:
            raise DatasetLayoutError(f"dataset {self.name!r} reads files: set config.data_path to its root "
                                     "folder (see docs/datasets.md for the layout)")
        data = self.load(root, seed=seed, **options)
        if data.n_classes != self.n_classes:
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
