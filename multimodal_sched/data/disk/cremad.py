"""CREMA-D (audio + face frames, 6 emotions).

Get it from https://github.com/CheyneyComputerScience/CREMA-D (git-lfs; the
``AudioWAV`` and ``VideoFlash`` folders).  Expected layout under ``root``::

    root/
      AudioWAV/1001_DFA_ANG_XX.wav        the official WAV files (any rate, mono or stereo)
      Image-01-FPS/1001_DFA_ANG_XX/       one folder of frames per clip (*.jpg / *.png),
          00001.jpg ...                   e.g. 1 frame per second; `multimodal-sched prepare
                                          cremad` writes them from VideoFlash/*.flv
      spectrograms/1001_DFA_ANG_XX.npy    optional cache of the audio maps (written by
                                          `prepare`); used instead of the WAV when present
      train.csv, test.csv                 optional split files, one ``clip,EMOTION`` a line
                                          (the OGM-GE format); without them a stratified
                                          random 90/10 split (``split_seed``) is made, like
                                          the paper's 6,698 / 744

The class is the third field of the clip name ``ACTOR_SENTENCE_EMOTION_LEVEL``:
``NEU HAP SAD FEA DIS ANG`` -> 0..5 (the OGM-GE order).  Val and probe splits
(``val_fraction``, ``probe_fraction`` of train, stratified) are held out of
train; the test split is never used for selection or probing.

Audio: log-magnitude STFT (see :mod:`multimodal_sched.data.disk.audio`: 16 kHz,
``n_fft=512``, hop 160, clip cut/padded to ``clip_seconds=3.0`` -> ``(1, 257, 301)``).
Visual: ``n_frames`` frames (paper: 1) resized to ``image_size`` and
ImageNet-normalized -> ``(n_frames, 3, image_size, image_size)``; in train
the frame is drawn at random within its segment, otherwise the segment's middle.
"""
from __future__ import annotations

import os
import re

import numpy as np
import torch

from ._common import (DatasetLayoutError, FileDataset, Sample, carve_splits, check_image, check_npy,
                      check_samples, list_frames, load_frames, pick_frames, read_lines, require_dir)
from .audio import log_spectrogram, n_frames as audio_frames, read_wav
from ..base import finish

__all__ = ["load_cremad", "CREMAD_CLASSES", "cremad_label"]

CREMAD_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
_CLIP = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def cremad_label(clip: str, *, where: str) -> int:
    """Class index of a clip name like ``1001_DFA_ANG_XX``; errors name ``where``."""
    m = _CLIP.match(clip)
    if not m:
        raise DatasetLayoutError(f"cremad: {where!r}: {clip!r} is not a CREMA-D clip name "
                                 "(expected ACTOR_SENTENCE_EMOTION_LEVEL, e.g. 1001_DFA_ANG_XX)")
    emo = m.group(3)
    if emo not in CREMAD_CLASSES:
        raise DatasetLayoutError(f"cremad: {where!r}: unknown emotion {emo!r} in {clip!r}; "
                                 f"expected one of {list(CREMAD_CLASSES)}")
    return CREMAD_CLASSES.index(emo)


def _read_split_csv(path: str) -> list:
    clips = []
    for i, line in enumerate(read_lines(path, "cremad split file"), 1):
        parts = [p.strip() for p in line.split(",")]
        clip = os.path.splitext(parts[0])[0]
        if i == 1 and not _CLIP.match(clip):
            continue   # header line
        label = cremad_label(clip, where=f"{path}:{i}")
        if len(parts) > 1 and parts[1] and parts[1] != CREMAD_CLASSES[label]:
            raise DatasetLayoutError(f"cremad: {path}:{i}: label {parts[1]!r} disagrees with the clip "
                                     f"name {clip!r} (emotion {CREMAD_CLASSES[label]!r})")
        clips.append(clip)
    return clips


def load_cremad(root: str, *, seed: int = 0, split_seed: int = 0, image_size: int = 224, n_frames: int = 1,
                clip_seconds: float = 3.0, frames_dir: str = "Image-01-FPS", val_fraction: float = 0.1,
                probe_fraction: float = 0.1, test_fraction: float = 0.1, check: str = "header",
                max_corrupt: float = 0.05, limit: int | None = None):
    """CREMA-D as a :class:`~multimodal_sched.data.MultimodalData` (modality 1 audio, 2 visual).

    ``seed`` (the run's) is unused: splits come from ``split_seed`` so every run
    sees the same data.  ``limit`` keeps the first N clips (smoke tests).
    """
    require_dir(root, "cremad root")
    wav_dir = os.path.join(root, "AudioWAV")
    spec_dir = os.path.join(root, "spectrograms")
    img_dir = require_dir(os.path.join(root, frames_dir), "cremad frames folder",
                          f"create it with `multimodal-sched prepare cremad --raw RAW --out {root}`")
    has_wav, has_spec = os.path.isdir(wav_dir), os.path.isdir(spec_dir)
    if not (has_wav or has_spec):
        require_dir(wav_dir, "cremad audio folder", "copy the official AudioWAV folder there")
    clips = set()
    for d, ext in ((wav_dir, ".wav"), (spec_dir, ".npy")):
        if os.path.isdir(d):
            clips |= {os.path.splitext(n)[0] for n in os.listdir(d) if n.lower().endswith(ext)}
    if not clips:
        raise DatasetLayoutError(f"cremad: no .wav in {wav_dir!r}" + (f" and no .npy in {spec_dir!r}" if has_spec else ""))
    clips = sorted(clips)
    for c in clips:
        cremad_label(c, where=os.path.join(wav_dir if has_wav else spec_dir, c))
    if limit is not None:
        clips = clips[:limit]

    def record(clip):
        spec = os.path.join(spec_dir, clip + ".npy")
        audio = spec if os.path.isfile(spec) else os.path.join(wav_dir, clip + ".wav")
        frames = list_frames(os.path.join(img_dir, clip))
        return Sample(clip, cremad_label(clip, where=audio), {"audio": audio, "frames": frames})

    train_csv, test_csv = os.path.join(root, "train.csv"), os.path.join(root, "test.csv")
    if os.path.exists(train_csv) or os.path.exists(test_csv):
        train_clips, test_clips = _read_split_csv(train_csv), _read_split_csv(test_csv)
        known = set(clips)
        for path, lst in ((train_csv, train_clips), (test_csv, test_clips)):
            missing = [c for c in lst if c not in known]
            if missing and limit is None:
                raise DatasetLayoutError(f"cremad: {path!r} lists {len(missing)} clip(s) with no audio, e.g. "
                                         f"{missing[0]!r} (looked for {os.path.join(wav_dir, missing[0] + '.wav')!r})")
        parts = {"train": [c for c in train_clips if c in known], "test": [c for c in test_clips if c in known]}
    else:
        parts = carve_splits(clips, [cremad_label(c, where=c) for c in clips],
                             {"test": test_fraction, "train": 1 - test_fraction}, split_seed)
    held = carve_splits(parts["train"], [cremad_label(c, where=c) for c in parts["train"]],
                        {"val": val_fraction, "probe": probe_fraction, "train": 1 - val_fraction - probe_fraction},
                        split_seed + 1)
    parts = {"train": held["train"], "val": held["val"], "probe": held["probe"], "test": parts["test"]}

    def checker(s: Sample, full: bool):
        if not s.files["frames"]:
            raise FileNotFoundError(f"no frames in {os.path.join(img_dir, s.key)!r}")
        a = s.files["audio"]
        if a.endswith(".npy"):
            check_npy(a, full)
        elif full:
            samples = read_wav(a)
            if not np.isfinite(samples).all():
                raise ValueError("audio contains NaN or inf")
        else:   # header and data size only (memory-mapped, nothing decoded)
            from scipy.io import wavfile
            sr, data = wavfile.read(a, mmap=True)
            if data.size == 0:
                raise ValueError("no audio samples")
            del data
        for p in (s.files["frames"] if full else s.files["frames"][:1]):
            check_image(p, full)

    n_spec = audio_frames(clip_seconds)

    def load(s: Sample, train: bool):
        a = s.files["audio"]
        if a.endswith(".npy"):
            spec = np.load(a).astype(np.float32)
            spec = spec[None] if spec.ndim == 2 else spec
            spec = _fit_width(spec, n_spec)
        else:
            spec = log_spectrogram(read_wav(a), clip_seconds=clip_seconds)
        fr = s.files["frames"]
        idx = pick_frames(len(fr), n_frames, random=train)
        return torch.from_numpy(spec), load_frames([fr[i] for i in idx], image_size)

    splits = {}
    for name, lst in parts.items():
        good = check_samples([record(c) for c in lst], checker, split=name, dataset="cremad",
                             check=check, max_corrupt=max_corrupt)
        splits[name] = FileDataset(good, load, train=name == "train")
    return finish(splits, CREMAD_CLASSES, "cremad",
                  {"root": root, "image_size": image_size, "n_frames": n_frames, "clip_seconds": clip_seconds,
                   "split_seed": split_seed, "split_files": os.path.exists(train_csv)})


def _fit_width(spec: np.ndarray, width: int) -> np.ndarray:
    """Cut or pad (with the map's minimum) the time axis to ``width`` frames."""
    t = spec.shape[-1]
    if t >= width:
        return np.ascontiguousarray(spec[..., :width])
    pad = np.full(spec.shape[:-1] + (width - t,), spec.min(), dtype=spec.dtype)
    return np.concatenate([spec, pad], axis=-1)
