"""UCF-101 (RGB frames + optical flow, 101 actions).

Get the videos and the official split lists from
https://www.crcv.ucf.edu/data/UCF101.php (``UCF101.rar``,
``UCF101TrainTestSplits-RecognitionTask.zip``).  Expected layout under ``root``::

    root/
      ucfTrainTestlist/                        (or these files directly in root)
        classInd.txt                           "1 ApplyEyeMakeup" ... one class a line
        trainlist01.txt                        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
        testlist01.txt                         "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
      rgb/v_ApplyEyeMakeup_g08_c01/*.jpg       RGB frames of each video, in time order
      flow/v_ApplyEyeMakeup_g08_c01/*.npy      optical flow per frame pair: float array
                                               (2, H, W) or (H, W, 2) = (horizontal, vertical)

``split=1`` picks trainlist01/testlist01 (1, 2 or 3).  ``multimodal-sched
prepare ucf101 --raw UCF101 --out root`` decodes the .avi files (PyAV) into
``rgb/`` frames, converts TV-L1 flow JPEG pairs (``tvl1_flow/{u,v}/<video>/``)
into ``flow/`` arrays and copies the split lists; it does not compute optical
flow (see :mod:`multimodal_sched.data.disk.prepare`).

Inputs: ``n_frames=3`` RGB frames and ``n_flow=3`` flow fields sampled
uniformly (deterministic), resized to ``image_size``; RGB ImageNet-normalized
-> ``(3, 3, H, W)``; flow clipped to +-``flow_clip`` pixels and divided by it
-> ``(3, 2, H, W)``.  The encoders stack the frames along the channel axis
(paper section 5.2).  Val and probe splits are ``val_fraction`` and
``probe_fraction`` of the train list (stratified, ``split_seed``).  A class
folder in a split list that is not in classInd.txt, or a label that disagrees
with classInd.txt, is an error naming the file and line.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.nn import functional as F

from ._common import (DatasetLayoutError, FileDataset, Sample, carve_splits, check_image, check_npy,
                      check_samples, list_frames, load_frames, pick_frames, read_lines, require_dir)
from ..base import finish

__all__ = ["load_ucf101", "read_class_ind", "read_ucf_list"]


def _lists_dir(root: str, lists_dir: str) -> str:
    d = os.path.join(root, lists_dir)
    if os.path.isdir(d):
        return d
    if os.path.isfile(os.path.join(root, "classInd.txt")):
        return root
    raise DatasetLayoutError(f"ucf101: split lists not found: neither {d!r} nor {os.path.join(root, 'classInd.txt')!r} "
                             "exists (unzip UCF101TrainTestSplits-RecognitionTask.zip into the root)")


def read_class_ind(path: str) -> list:
    classes = []
    for i, line in enumerate(read_lines(path, "ucf101 class list"), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetLayoutError(f"ucf101: {path}:{i}: expected 'INDEX ClassName', got {line!r}")
        if int(parts[0]) != i:
            raise DatasetLayoutError(f"ucf101: {path}:{i}: class indices must be 1, 2, ... in order, got {parts[0]}")
        classes.append(parts[1])
    if not classes:
        raise DatasetLayoutError(f"ucf101: class list {path!r} is empty")
    return classes


def read_ucf_list(path: str, classes: list) -> list:
    """``[(video_stem, label), ...]`` from a trainlistNN/testlistNN file."""
    out = []
    for i, line in enumerate(read_lines(path, "ucf101 split list"), 1):
        parts = line.split()
        rel = parts[0].replace("\\", "/")
        if "/" not in rel:
            raise DatasetLayoutError(f"ucf101: {path}:{i}: expected 'ClassName/v_..._gNN_cNN.avi', got {parts[0]!r}")
        cname, fname = rel.split("/", 1)
        if cname not in classes:
            raise DatasetLayoutError(f"ucf101: {path}:{i}: unknown class {cname!r} (not in classInd.txt)")
        label = classes.index(cname)
        if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) != label + 1):
            raise DatasetLayoutError(f"ucf101: {path}:{i}: label {parts[1]!r} disagrees with classInd.txt "
                                     f"({cname} is {label + 1})")
        out.append((os.path.splitext(os.path.basename(fname))[0], label))
    return out


def load_flow(path: str, size: int, clip: float) -> np.ndarray:
    a = np.load(path).astype(np.float32)
    if a.ndim != 3 or 2 not in (a.shape[0], a.shape[-1]):
        raise ValueError(f"flow array {path!r} must be (2, H, W) or (H, W, 2), got {a.shape}")
    if a.shape[0] != 2:
        a = a.transpose(2, 0, 1)
    t = torch.from_numpy(np.ascontiguousarray(a))[None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return (t[0].clamp(-clip, clip) / clip).numpy()


def load_ucf101(root: str, *, seed: int = 0, split: int = 1, split_seed: int = 0, image_size: int = 224,
                n_frames: int = 3, n_flow: int = 3, flow_clip: float = 20.0, val_fraction: float = 0.1,
                probe_fraction: float = 0.1, lists_dir: str = "ucfTrainTestlist", rgb_dir: str = "rgb",
                flow_dir: str = "flow", check: str = "header", max_corrupt: float = 0.05):
    """UCF-101 as a :class:`~multimodal_sched.data.MultimodalData` (modality 1 RGB, 2 optical flow)."""
    require_dir(root, "ucf101 root")
    if split not in (1, 2, 3):
        raise ValueError(f"ucf101: split must be 1, 2 or 3, got {split!r}")
    ldir = _lists_dir(root, lists_dir)
    classes = read_class_ind(os.path.join(ldir, "classInd.txt"))
    rdir = require_dir(os.path.join(root, rgb_dir), "ucf101 RGB frames folder",
                       f"create it with `multimodal-sched prepare ucf101 --raw RAW --out {root}`")
    fdir = require_dir(os.path.join(root, flow_dir), "ucf101 optical-flow folder",
                       f"create it with `multimodal-sched prepare ucf101 --raw RAW --out {root}`")
    train = read_ucf_list(os.path.join(ldir, f"trainlist{split:02d}.txt"), classes)
    test = read_ucf_list(os.path.join(ldir, f"testlist{split:02d}.txt"), classes)
    for name, lst in (("train", train), ("test", test)):
        if not lst:
            raise DatasetLayoutError(f"ucf101: {os.path.join(ldir, f'{name}list{split:02d}.txt')!r} lists no video")
    held = carve_splits(train, [lab for _, lab in train],
                        {"val": val_fraction, "probe": probe_fraction, "train": 1 - val_fraction - probe_fraction},
                        split_seed)
    parts = {"train": held["train"], "val": held["val"], "probe": held["probe"], "test": test}

    def record(item):
        vid, lab = item
        return Sample(vid, lab, {"rgb": list_frames(os.path.join(rdir, vid)),
                                 "flow": list_frames(os.path.join(fdir, vid), (".npy",))})

    def checker(s: Sample, full: bool):
        for role, d in (("rgb", rdir), ("flow", fdir)):
            if not s.files[role]:
                raise FileNotFoundError(f"no {role} files in {os.path.join(d, s.key)!r}")
        for p in (s.files["rgb"] if full else s.files["rgb"][:1]):
            check_image(p, full)
        for p in (s.files["flow"] if full else s.files["flow"][:1]):
            check_npy(p, full)

    def load(s: Sample, train: bool):
        rgb, flow = s.files["rgb"], s.files["flow"]
        x1 = load_frames([rgb[i] for i in pick_frames(len(rgb), n_frames, random=False)], image_size)
        x2 = np.stack([load_flow(flow[i], image_size, flow_clip) for i in pick_frames(len(flow), n_flow, random=False)])
        return x1, torch.from_numpy(x2)

    splits = {n: FileDataset(check_samples([record(it) for it in lst], checker, split=n, dataset="ucf101",
                                           check=check, max_corrupt=max_corrupt), load, train=n == "train")
              for n, lst in parts.items()}
    return finish(splits, classes, "ucf101", {"root": root, "split": split, "image_size": image_size,
                                              "n_frames": n_frames, "n_flow": n_flow, "split_seed": split_seed})
