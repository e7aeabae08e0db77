"""AVE, the Audio-Visual Event dataset (audio + video, 28 events).

Get it from https://github.com/YapengTian/AVE-ECCV18 (``AVE_Dataset.zip``:
the videos and ``trainSet.txt``, ``valSet.txt``, ``testSet.txt``).  Expected
layout under ``root``::

    root/
      trainSet.txt  valSet.txt  testSet.txt   one video a line: Category&VideoID&Quality&Start&End
                                              (a header line starting with "Category" is skipped)
      spectrograms/<VideoID>.npy              precomputed audio map, 2-D (freq, time) or (1, freq, time)
      frames/<VideoID>/*.jpg                  frames of the video (*.jpg / *.png), in time order

``multimodal-sched prepare ave --raw AVE_Dataset --out root`` writes the
spectrograms (16 kHz, ``n_fft=512``, hop 160, log-magnitude, the whole 10 s
clip -> ``(257, 1001)``) and 1 fps frames from ``AVE/*.mp4`` and copies the
split files.  Spectrograms are cut or padded to ``spec_frames`` time frames
(default: the first train sample's width).  Visual: ``n_frames=3`` frames
sampled uniformly (segment centers, deterministic, as in the paper), resized to
``image_size`` and ImageNet-normalized -> ``(3, 3, H, W)``.

Classes: the 28 AVE categories in :data:`AVE_CLASSES` (the dataset's order);
any other category name in a split file is an error naming the file and line.
Probe split: ``probe_fraction`` of valSet (stratified, fixed by ``split_seed``);
the rest of valSet is the val split used for model selection.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ._common import (DatasetLayoutError, FileDataset, Sample, carve_splits, check_image, check_npy,
                      check_samples, list_frames, load_frames, pick_frames, read_lines, require_dir)
from ..base import finish
from .cremad import _fit_width

__all__ = ["load_ave", "AVE_CLASSES", "read_ave_split"]

AVE_CLASSES = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)

SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}


def read_ave_split(path: str, classes=AVE_CLASSES) -> list:
    """``[(video_id, label), ...]`` from an AVE split file; errors name the file and line."""
    out = []
    for i, line in enumerate(read_lines(path, "ave split file"), 1):
        parts = line.split("&")
        if i == 1 and parts[0].strip().lower() == "category":
            continue
        if len(parts) != 5:
            raise DatasetLayoutError(f"ave: {path}:{i}: expected 5 fields Category&VideoID&Quality&Start&End, "
                                     f"got {len(parts)} in {line!r}")
        cat, vid = parts[0].strip(), parts[1].strip()
        if cat not in classes:
            raise DatasetLayoutError(f"ave: {path}:{i}: unknown category {cat!r}; expected one of the "
                                     f"{len(classes)} AVE categories, e.g. {list(classes[:3])}")
        try:
            float(parts[3]), float(parts[4])
        except ValueError:
            raise DatasetLayoutError(f"ave: {path}:{i}: Start/End must be numbers, got {parts[3]!r}, {parts[4]!r}") from None
        out.append((vid, classes.index(cat)))
    return out


def load_ave(root: str, *, seed: int = 0, split_seed: int = 0, image_size: int = 224, n_frames: int = 3,
             spec_frames: int | None = None, probe_fraction: float = 0.5, spec_dir: str = "spectrograms",
             frames_dir: str = "frames", check: str = "header", max_corrupt: float = 0.05):
    """AVE as a :class:`~multimodal_sched.data.MultimodalData` (modality 1 audio, 2 visual)."""
    require_dir(root, "ave root")
    sdir = require_dir(os.path.join(root, spec_dir), "ave spectrogram folder",
                       f"create it with `multimodal-sched prepare ave --raw RAW --out {root}`")
    fdir = require_dir(os.path.join(root, frames_dir), "ave frames folder",
                       f"create it with `multimodal-sched prepare ave --raw RAW --out {root}`")
    lists = {}
    for split, fname in SPLIT_FILES.items():
        path = os.path.join(root, fname)
        lists[split] = read_ave_split(path)
        if not lists[split]:
            raise DatasetLayoutError(f"ave: split file {path!r} lists no video")
    held = carve_splits(lists["val"], [lab for _, lab in lists["val"]],
                        {"probe": probe_fraction, "val": 1 - probe_fraction}, split_seed)
    parts = {"train": lists["train"], "val": held["val"], "probe": held["probe"], "test": lists["test"]}

    def record(item):
        vid, lab = item
        return Sample(vid, lab, {"audio": os.path.join(sdir, vid + ".npy"),
                                 "frames": list_frames(os.path.join(fdir, vid))})

    def checker(s: Sample, full: bool):
        if not s.files["frames"]:
            raise FileNotFoundError(f"no frames in {os.path.join(fdir, s.key)!r}")
        check_npy(s.files["audio"], full)
        for p in (s.files["frames"] if full else s.files["frames"][:1]):
            check_image(p, full)

    checked = {n: check_samples([record(it) for it in lst], checker, split=n, dataset="ave",
                                check=check, max_corrupt=max_corrupt) for n, lst in parts.items()}
    width = spec_frames
    if width is None:
        a = np.load(checked["train"][0].files["audio"], mmap_mode="r")
        width = int(a.shape[-1])

    def load(s: Sample, train: bool):
        spec = np.load(s.files["audio"]).astype(np.float32)
        if spec.ndim == 2:
            spec = spec[None]
        spec = _fit_width(spec, width)
        fr = s.files["frames"]
        return torch.from_numpy(spec), load_frames([fr[i] for i in pick_frames(len(fr), n_frames, random=False)],
                                                   image_size)

    splits = {n: FileDataset(v, load, train=n == "train") for n, v in checked.items()}
    return finish(splits, AVE_CLASSES, "ave", {"root": root, "image_size": image_size, "n_frames": n_frames,
                                               "spec_frames": width, "split_seed": split_seed})
