"""One dataset registry: every dataset a config can name, and users' own data.

``DATASETS`` maps ``config.dataset`` to a :class:`DatasetSpec`:

* ``builtin/``: generated in memory, no download (``cg-digits``, ``synthetic``);
* ``disk/``: the paper's datasets read from ``config.data_path`` (``cremad``, ``ave``,
  ``ucf101``, ``cgmnist``) and ``prepare``, which builds their caches from raw downloads;
* ``arrays.py``: users' own data, ``run(config, data=...)`` or ``dataset="npz"`` (one file).

Every dataset is a :class:`MultimodalData`: named splits (``train``, ``val``, ``probe``,
``test``), each a torch ``Dataset`` yielding ``(x1, x2, y)``.
"""
from __future__ import annotations

import torch

from .arrays import as_multimodal_data, load_npz
from .base import KINDS, SPLITS, DatasetSpec, MultimodalData
from .builtin import make_cg_digits, make_synthetic
from .disk import DISK_DATASETS, DatasetLayoutError

__all__ = ["DATASETS", "DatasetSpec", "MultimodalData", "DatasetLayoutError", "as_multimodal_data", "load_npz",
           "make_cg_digits", "make_synthetic", "get_spec", "dataset_names", "build_dataset", "SPLITS", "KINDS"]

DATASETS = {
    "cg-digits": DatasetSpec("cg-digits", "builtin", make_cg_digits, modalities=("gray", "color")),
    "synthetic": DatasetSpec("synthetic", "builtin", make_synthetic),
    "npz": DatasetSpec("npz", "file", load_npz),
    **DISK_DATASETS,
}


def dataset_names(kind: str | None = None) -> list:
    """Registered names, optionally of one kind (``builtin``, ``disk`` or ``file``)."""
    return [n for n, s in DATASETS.items() if kind is None or s.kind == kind]


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; choose one of {dataset_names()} "
                         "or pass your own data with run(config, data=...)") from None


def build_dataset(config, data=None):
    """``(MultimodalData, (encoder1, encoder2) or None)`` for a config (or users' ``data``).

    Encoders are the paper's for a disk dataset when ``config.encoder == "auto"``, else None
    (the runner builds ``config.encoder`` itself).  Errors come before any training.
    """
    if data is not None:
        return as_multimodal_data(data), None
    spec = get_spec(config.dataset)
    mdata = spec.build(config.data_path, seed=config.seed, **config.dataset_options)
    encoders = None
    if spec.encoders is not None and config.encoder == "auto":
        with torch.random.fork_rng(devices=[]):   # initial weights fixed by the seed, global RNG untouched
            torch.manual_seed(config.seed)
            encoders = spec.make_encoders(mdata, config.width)
    return mdata, encoders
