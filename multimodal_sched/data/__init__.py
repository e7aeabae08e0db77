"""Datasets for the scheduler: built-in offline sets and users' own data.

Every dataset is a :class:`MultimodalData`: named splits (``train``, ``val``,
``probe``, ``test``), each a torch ``Dataset`` yielding ``(x1, x2, y)``.
"""
from .base import SPLITS, MultimodalData, as_multimodal_data
from .cg_digits import make_cg_digits
from .synthetic import make_synthetic

DATASETS = {"cg-digits": make_cg_digits, "synthetic": make_synthetic}

__all__ = ["MultimodalData", "as_multimodal_data", "make_cg_digits", "make_synthetic", "DATASETS", "SPLITS"]
