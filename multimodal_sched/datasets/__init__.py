"""The paper's datasets (Table II) read from the user's disk.

``REGISTRY`` maps ``config.dataset`` to a :class:`DatasetSpec`: the loader
(which reads ``config.data_path`` and ``config.dataset_options``), the class
count and the paper's encoders.  Layouts, preparation and the commands that
reproduce Table II are in ``docs/datasets.md`` and in each loader's docstring.

=========  =======================  ========  ==========================================
name       modalities (1, 2)        classes   encoders (paper section 5.2)
=========  =======================  ========  ==========================================
cremad     audio, visual            6         ResNet-18 (1-ch spectrogram), ResNet-18 (frames)
ave        audio, visual            28        ResNet-18 (1-ch spectrogram), ResNet-18 (3 frames stacked)
ucf101     RGB, optical flow        101       ResNet-18 (3 frames stacked), ResNet-18 (3 flows stacked)
cgmnist    gray, colored            10        4-layer CNN, 4-layer CNN
=========  =======================  ========  ==========================================
"""
from __future__ import annotations

import torch

from ._common import DatasetLayoutError
from .ave import AVE_CLASSES, load_ave
from .base import DatasetSpec
from .cgmnist import colorize, load_cgmnist, read_idx, write_idx
from .cremad import CREMAD_CLASSES, load_cremad
from .models import audio_resnet18, cnn4, flow_resnet18, frames_resnet18
from .ucf101 import load_ucf101

__all__ = ["REGISTRY", "DatasetSpec", "DatasetLayoutError", "load_cremad", "load_ave", "load_ucf101",
           "load_cgmnist", "colorize", "read_idx", "write_idx", "CREMAD_CLASSES", "AVE_CLASSES",
           "get_spec", "build_dataset"]


def _pair(f1, f2):
    return lambda s1, s2, width: (f1(s1, width), f2(s2, width))


# Table II settings: lr of Stage I and II, the paper's accuracy of its method and of baselines (%).
REGISTRY = {
    "cremad": DatasetSpec("cremad", 6, ("audio", "visual"), load_cremad, _pair(audio_resnet18, frames_resnet18),
                          {"lr": 1e-3, "accuracy": 83.50, "unimodal1": 56.67, "unimodal2": 50.14, "concat": 59.50}),
    "ave": DatasetSpec("ave", 28, ("audio", "visual"), load_ave, _pair(audio_resnet18, frames_resnet18),
                       {"lr": 1e-2, "accuracy": 73.63, "unimodal1": 59.37, "unimodal2": 30.46, "concat": 62.68}),
    "ucf101": DatasetSpec("ucf101", 101, ("rgb", "flow"), load_ucf101, _pair(frames_resnet18, flow_resnet18),
                          {"lr": 1e-3, "accuracy": 93.78, "unimodal1": 70.55, "unimodal2": 78.60, "concat": 81.80}),
    "cgmnist": DatasetSpec("cgmnist", 10, ("gray", "color"), load_cgmnist, _pair(cnn4, cnn4),
                           {"lr": 1e-2, "accuracy": 95.79, "unimodal1": 99.30, "unimodal2": 60.40, "concat": 53.30}),
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; the file-based datasets are {sorted(REGISTRY)}") from None


def build_dataset(config):
    """``(MultimodalData, (encoder1, encoder2) or None)`` for a config naming a registry dataset.

    Encoders are the paper's when ``config.encoder == "auto"``, else None (the
    runner builds ``config.encoder`` itself).  Errors come before any training.
    """
    spec = get_spec(config.dataset)
    try:
        data = spec.build(config.data_path, seed=config.seed, **config.dataset_options)
    except TypeError as e:
        raise ValueError(f"config.dataset_options {config.dataset_options} do not fit dataset "
                         f"{config.dataset!r}: {e}") from None
    encoders = None
    if config.encoder == "auto":
        with torch.random.fork_rng(devices=[]):   # initial weights fixed by the seed, global RNG untouched
            torch.manual_seed(config.seed)
            encoders = spec.make_encoders(data, config.width)
    return data, encoders
