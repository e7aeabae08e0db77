"""The paper's datasets (Table II) read from the user's disk; ``prepare`` builds their caches.

=========  =======================  ========  ==========================================
name       modalities (1, 2)        classes   encoders (paper section 5.2)
=========  =======================  ========  ==========================================
cremad     audio, visual            6         ResNet-18 (1-ch spectrogram), ResNet-18 (frames)
ave        audio, visual            28        ResNet-18 (1-ch spectrogram), ResNet-18 (3 frames stacked)
ucf101     RGB, optical flow        101       ResNet-18 (3 frames stacked), ResNet-18 (3 flows stacked)
cgmnist    gray, colored            10        4-layer CNN, 4-layer CNN
=========  =======================  ========  ==========================================

Layouts, preparation and the commands that reproduce Table II are in ``docs/datasets.md`` and
in each loader's docstring.
"""
from __future__ import annotations

from ...models import paper_encoder
from ..base import DatasetSpec
from ._common import DatasetLayoutError
from .ave import AVE_CLASSES, load_ave
from .cgmnist import colorize, load_cgmnist, read_idx, write_idx
from .cremad import CREMAD_CLASSES, load_cremad
from .ucf101 import load_ucf101

__all__ = ["DISK_DATASETS", "DatasetLayoutError", "load_cremad", "load_ave", "load_ucf101", "load_cgmnist",
           "colorize", "read_idx", "write_idx", "CREMAD_CLASSES", "AVE_CLASSES"]


def _root_required(load, name):
    def checked(root, **kw):
        if root is None:
            raise DatasetLayoutError(f"dataset {name!r} reads files: set config.data_path to its root "
                                     "folder (see docs/datasets.md for the layout)")
        return load(root, **kw)
    return checked


def _pair(f1, f2):
    def encoders(s1, s2, width):
        return paper_encoder(f1, s1, width), paper_encoder(f2, s2, width)
    return encoders


def _spec(name, n_classes, modalities, load, enc, paper):
    return DatasetSpec(name, "disk", _root_required(load, name), n_classes, modalities, enc, paper)


# Table II settings: lr of Stage I and II, the paper's accuracy of its method and of baselines (%).
DISK_DATASETS = {s.name: s for s in (
    _spec("cremad", 6, ("audio", "visual"), load_cremad, _pair("audio", "frames"),
          {"lr": 1e-3, "accuracy": 83.50, "unimodal1": 56.67, "unimodal2": 50.14, "concat": 59.50}),
    _spec("ave", 28, ("audio", "visual"), load_ave, _pair("audio", "frames"),
          {"lr": 1e-2, "accuracy": 73.63, "unimodal1": 59.37, "unimodal2": 30.46, "concat": 62.68}),
    _spec("ucf101", 101, ("rgb", "flow"), load_ucf101, _pair("frames", "flow"),
          {"lr": 1e-3, "accuracy": 93.78, "unimodal1": 70.55, "unimodal2": 78.60, "concat": 81.80}),
    _spec("cgmnist", 10, ("gray", "color"), load_cgmnist, _pair("cnn4", "cnn4"),
          {"lr": 1e-2, "accuracy": 95.79, "unimodal1": 99.30, "unimodal2": 60.40, "concat": 53.30}),
)}
