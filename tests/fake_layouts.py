"""Tiny fake copies of the real datasets' layouts (generated files, no download).

Each ``make_*`` writes a few samples per class into ``root`` in the layout its
loader documents and returns ``root``.  Signals are weakly class-dependent so
a model can learn something, but the tests only check that the pipeline runs.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image
from scipy.io import wavfile

from multimodal_sched.data.disk import AVE_CLASSES, CREMAD_CLASSES, write_idx


def _img(path, rng, c, size=12, ext_mode="RGB"):
    a = (rng.random((size, size, 3)) * 60 + 30 * c).clip(0, 255).astype(np.uint8)
    Image.fromarray(a, ext_mode).save(path)


def make_cremad(root, *, per_class=4, frames=2, rate=8000, seconds=0.2, seed=0, csv=False):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "AudioWAV"))
    clips = []
    for c, emo in enumerate(CREMAD_CLASSES):
        for i in range(per_class):
            clip = f"{1001 + i:04d}_DFA_{emo}_XX"
            t = np.arange(int(rate * seconds)) / rate
            x = 0.3 * np.sin(2 * np.pi * (200 + 150 * c) * t) + 0.05 * rng.standard_normal(len(t))
            wavfile.write(os.path.join(root, "AudioWAV", clip + ".wav"), rate, (x * 32767).astype(np.int16))
            d = os.path.join(root, "Image-01-FPS", clip)
            os.makedirs(d)
            for f in range(frames):
                _img(os.path.join(d, f"{f + 1:05d}.jpg"), rng, c)
            clips.append((clip, emo))
    if csv:
        for name, part in (("train.csv", clips[::2] + clips[1::4]), ("test.csv", clips[3::4])):
            with open(os.path.join(root, name), "w") as f:
                f.writelines(f"{c},{e}\n" for c, e in part)
    return root


def make_ave(root, *, per_class=2, n_classes=4, frames=3, seed=0, spec_shape=(17, 20)):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "spectrograms"))
    lines = {"trainSet.txt": [], "valSet.txt": [], "testSet.txt": []}
    for c in range(n_classes):
        for split in lines:
            for i in range(per_class):
                vid = f"{split[:2]}{c:02d}{i}xYz"
                np.save(os.path.join(root, "spectrograms", vid + ".npy"),
                        (rng.standard_normal(spec_shape) + c).astype(np.float32))
                d = os.path.join(root, "frames", vid)
                os.makedirs(d)
                for f in range(frames):
                    _img(os.path.join(d, f"{f:05d}.png"), rng, c)
                lines[split].append(f"{AVE_CLASSES[c]}&{vid}&good&0&10")
    for name, ls in lines.items():
        with open(os.path.join(root, name), "w") as f:
            f.write("\n".join(ls) + "\n")
    return root


UCF_CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", "Archery"] + [f"Action{i:03d}" for i in range(98)]


def make_ucf101(root, *, n_classes=3, train_per_class=6, test_per_class=2, frames=3, seed=0, size=12):
    rng = np.random.default_rng(seed)
    ld = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(ld)
    with open(os.path.join(ld, "classInd.txt"), "w") as f:
        f.writelines(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES))
    train, test = [], []
    for c in range(n_classes):
        cname = UCF_CLASSES[c]
        for g in range(train_per_class + test_per_class):
            vid = f"v_{cname}_g{g + 1:02d}_c01"
            (train if g < train_per_class else test).append((cname, vid, c))
            rd, fd = os.path.join(root, "rgb", vid), os.path.join(root, "flow", vid)
            os.makedirs(rd)
            os.makedirs(fd)
            for f in range(frames):
                _img(os.path.join(rd, f"frame{f + 1:06d}.jpg"), rng, c)
                shape = (2, size, size) if f % 2 == 0 else (size, size, 2)   # both orders accepted
                np.save(os.path.join(fd, f"flow{f + 1:06d}.npy"), (rng.standard_normal(shape) * (c + 1)).astype(np.float32))
    with open(os.path.join(ld, "trainlist01.txt"), "w") as f:
        f.writelines(f"{cn}/{v}.avi {c + 1}\n" for cn, v, c in train)
    with open(os.path.join(ld, "testlist01.txt"), "w") as f:
        f.writelines(f"{cn}/{v}.avi\n" for cn, v, c in test)
    return root


def make_cgmnist(root, *, n_train=300, n_test=60, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):   # a bar whose position encodes the digit, plus noise
            x[i, 4 + 2 * c: 6 + 2 * c, 6:22] = 255
            x[i] = np.maximum(x[i], (rng.random((28, 28)) * 40).astype(np.uint8))
        sfx = ".gz" if gz else ""
        write_idx(os.path.join(root, f"{split}-images-idx3-ubyte{sfx}"), x)
        write_idx(os.path.join(root, f"{split}-labels-idx1-ubyte{sfx}"), y)
    return root
