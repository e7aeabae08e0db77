"""Real-dataset loaders on tiny fake layouts: shapes, splits, and every layout error before training."""
import logging
import os

import numpy as np
import pytest

from fake_layouts import make_ave, make_cgmnist, make_cremad, make_ucf101
from multimodal_sched.data.disk import (DISK_DATASETS, DatasetLayoutError, colorize, load_ave, load_cgmnist, load_cremad,
                                       load_ucf101, read_idx)
from multimodal_sched.data.disk.audio import log_spectrogram, n_frames

pytestmark = pytest.mark.filterwarnings("ignore:.*has no sample of:UserWarning")


# ----------------------------------------------------------------------------- shapes
def test_spectrogram_settings():
    spec = log_spectrogram(np.zeros(16000 * 3, np.float32) + 0.1, clip_seconds=3.0)
    assert spec.shape == (1, 257, 301) == (1, 257, n_frames(3.0))
    assert spec.dtype == np.float32 and np.isfinite(spec).all()


def test_cremad_loads(tmp_path):
    d = load_cremad(make_cremad(str(tmp_path / "c")), image_size=12, clip_seconds=0.2)
    assert d.n_classes == 6 and set(d.splits) == {"train", "val", "probe", "test"}
    x1, x2, y = d.splits["train"][0]
    assert tuple(x1.shape) == (1, 257, n_frames(0.2)) and tuple(x2.shape) == (1, 3, 12, 12)
    keys = [set(s.key for s in ds.samples) for ds in d.splits.values()]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 24          # disjoint, all used
    assert abs(float(x2.mean())) < 3                                      # normalized


def test_cremad_split_files_and_spectrogram_cache(tmp_path):
    root = make_cremad(str(tmp_path / "c"), csv=True)
    d = load_cremad(root, image_size=12, clip_seconds=0.2)
    test_keys = {s.key for s in d.splits["test"].samples}
    assert test_keys == {ln.split(",")[0] for ln in open(os.path.join(root, "test.csv"))}
    # a spectrogram cache replaces the WAV
    clip = sorted(test_keys)[0]
    os.makedirs(os.path.join(root, "spectrograms"))
    np.save(os.path.join(root, "spectrograms", clip + ".npy"), np.ones((257, 5), np.float32))
    d = load_cremad(root, image_size=12, clip_seconds=0.2)
    s = next(i for i, s in enumerate(d.splits["test"].samples) if s.key == clip)
    x1 = d.splits["test"][s][0]
    assert tuple(x1.shape) == (1, 257, n_frames(0.2)) and float(x1[0, 0, 0]) == 1.0


def test_ave_loads(tmp_path):
    d = load_ave(make_ave(str(tmp_path / "a")), image_size=12)
    assert d.n_classes == 28
    x1, x2, _ = d.splits["train"][0]
    assert tuple(x1.shape) == (1, 17, 20) and tuple(x2.shape) == (3, 3, 12, 12)
    assert len(d.splits["val"]) + len(d.splits["probe"]) == 8


def test_ucf101_loads(tmp_path):
    d = load_ucf101(make_ucf101(str(tmp_path / "u")), image_size=8)
    assert d.n_classes == 101
    x1, x2, _ = d.splits["train"][0]
    assert tuple(x1.shape) == (3, 3, 8, 8) and tuple(x2.shape) == (3, 2, 8, 8)
    assert float(x2.abs().max()) <= 1.0
    assert len(d.splits["test"]) == 6


@pytest.mark.parametrize("gz", [False, True])
def test_cgmnist_loads_and_colors(tmp_path, gz):
    d = load_cgmnist(make_cgmnist(str(tmp_path / "m"), gz=gz), n_val=30, n_probe=30)
    g, c, y = d.splits["train"][0]
    assert tuple(g.shape) == (1, 28, 28) and tuple(c.shape) == (3, 28, 28)
    assert len(d.splits["train"]) == 240 and len(d.splits["test"]) == 60
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    train_c = colorize(labels, correlated=True, rng=rng, jitter=0.05)
    test_c = colorize(labels, correlated=False, rng=rng)
    # class-correlated in train: colors of a class are close; random in test
    spread = lambda cols: np.mean([cols[labels == k].std(0).mean() for k in range(10)])  # noqa: E731
    assert spread(train_c) < 0.07 < spread(test_c)


def test_registry_names_and_classes():
    assert {n: s.n_classes for n, s in DISK_DATASETS.items()} == {"cremad": 6, "ave": 28, "ucf101": 101, "cgmnist": 10}


# ----------------------------------------------------------------------------- errors
def test_missing_root_and_folders(tmp_path):
    with pytest.raises(DatasetLayoutError, match="cremad root.*does not exist"):
        load_cremad(str(tmp_path / "nope"))
    root = make_cremad(str(tmp_path / "c"))
    os.rename(os.path.join(root, "Image-01-FPS"), os.path.join(root, "x"))
    with pytest.raises(DatasetLayoutError, match="Image-01-FPS.*prepare cremad"):
        load_cremad(root)
    root = make_ave(str(tmp_path / "a"))
    os.rename(os.path.join(root, "spectrograms"), os.path.join(root, "x"))
    with pytest.raises(DatasetLayoutError, match="spectrograms"):
        load_ave(root)
    root = make_ucf101(str(tmp_path / "u"))
    os.rename(os.path.join(root, "flow"), os.path.join(root, "x"))
    with pytest.raises(DatasetLayoutError, match="optical-flow folder.*flow"):
        load_ucf101(root)
    os.remove(os.path.join(root, "ucfTrainTestlist", "classInd.txt"))
    with pytest.raises(DatasetLayoutError, match="classInd.txt"):
        load_ucf101(root)
    with pytest.raises(DatasetLayoutError, match="t10k-images-idx3-ubyte"):
        os.makedirs(tmp_path / "m")
        make_cgmnist(str(tmp_path / "m"))
        os.remove(tmp_path / "m" / "t10k-images-idx3-ubyte")
        load_cgmnist(str(tmp_path / "m"), n_val=10, n_probe=10)


def test_unknown_class_names(tmp_path):
    root = make_cremad(str(tmp_path / "c"))
    open(os.path.join(root, "AudioWAV", "1091_DFA_BOR_XX.wav"), "wb").close()
    with pytest.raises(DatasetLayoutError, match="unknown emotion 'BOR'.*1091_DFA_BOR_XX"):
        load_cremad(root)
    root = make_ave(str(tmp_path / "a"))
    with open(os.path.join(root, "testSet.txt"), "a") as f:
        f.write("Kazoo&abc&good&0&10\n")
    with pytest.raises(DatasetLayoutError, match=r"testSet.txt:\d+: unknown category 'Kazoo'"):
        load_ave(root)
    root = make_ucf101(str(tmp_path / "u"))
    with open(os.path.join(root, "ucfTrainTestlist", "trainlist01.txt"), "a") as f:
        f.write("Juggling/v_Juggling_g01_c01.avi 5\n")
    with pytest.raises(DatasetLayoutError, match=r"trainlist01.txt:\d+: unknown class 'Juggling'"):
        load_ucf101(root)


def test_label_disagreement_and_bad_lines(tmp_path):
    root = make_ucf101(str(tmp_path / "u"))
    p = os.path.join(root, "ucfTrainTestlist", "trainlist01.txt")
    lines = open(p).read().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 7"
    open(p, "w").write("\n".join(lines) + "\n")
    with pytest.raises(DatasetLayoutError, match="trainlist01.txt:1: label '7' disagrees"):
        load_ucf101(root)
    root = make_ave(str(tmp_path / "a"))
    with open(os.path.join(root, "valSet.txt"), "a") as f:
        f.write("Bark&only-three&good\n")
    with pytest.raises(DatasetLayoutError, match="valSet.txt:.*expected 5 fields"):
        load_ave(root)


def test_empty_splits(tmp_path):
    root = make_ave(str(tmp_path / "a"))
    open(os.path.join(root, "trainSet.txt"), "w").close()
    with pytest.raises(DatasetLayoutError, match="trainSet.txt.*lists no video"):
        load_ave(root)
    root = make_cremad(str(tmp_path / "c"), csv=True)
    open(os.path.join(root, "train.csv"), "w").close()
    with pytest.raises(DatasetLayoutError, match="split 'train' is empty"):
        load_cremad(root)
    root = make_ucf101(str(tmp_path / "u"))
    open(os.path.join(root, "ucfTrainTestlist", "testlist01.txt"), "w").close()
    with pytest.raises(DatasetLayoutError, match="testlist01.txt.*lists no video"):
        load_ucf101(root)


def test_unreadable_idx_files(tmp_path):
    root = make_cgmnist(str(tmp_path / "m"))
    p = os.path.join(root, "train-labels-idx1-ubyte")
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-5])
    with pytest.raises(DatasetLayoutError, match="train-labels-idx1-ubyte.*truncated"):
        load_cgmnist(root)
    open(p, "wb").write(b"\x89PNG garbage")
    with pytest.raises(DatasetLayoutError, match="train-labels-idx1-ubyte.*magic"):
        read_idx(p)
    root = make_cgmnist(str(tmp_path / "m2"), n_train=50)
    with pytest.raises(DatasetLayoutError, match="leaves no training digit"):
        load_cgmnist(root)


def test_corrupt_samples_skipped_and_counted(tmp_path, caplog):
    root = make_cremad(str(tmp_path / "c"), per_class=6)
    clip = "1001_DFA_ANG_XX"
    open(os.path.join(root, "AudioWAV", clip + ".wav"), "wb").write(b"RIFF not really a wav")
    with caplog.at_level(logging.WARNING, logger="multimodal_sched.data.disk"):
        d = load_cremad(root, image_size=12, clip_seconds=0.2, max_corrupt=0.5)
    assert clip not in {s.key for ds in d.splits.values() for s in ds.samples}
    assert sum(ds.__len__() for ds in d.splits.values()) == 35
    assert "skipped 1 of" in caplog.text and clip in caplog.text
    # an unreadable frame, and a frame folder with no frame
    root = make_ucf101(str(tmp_path / "u"), train_per_class=10)
    vid = "v_Archery_g01_c01"
    open(os.path.join(root, "rgb", vid, "frame000001.jpg"), "wb").write(b"not a jpeg")
    for f in os.listdir(os.path.join(root, "flow", "v_Archery_g02_c01")):
        os.remove(os.path.join(root, "flow", "v_Archery_g02_c01", f))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multimodal_sched.data.disk"):
        d = load_ucf101(root, image_size=8, max_corrupt=0.2)
    assert "skipped" in caplog.text and vid in caplog.text and "v_Archery_g02_c01" in caplog.text
    # too many corrupt samples is an error, not a silent skip
    with pytest.raises(DatasetLayoutError, match="skipped .* more than max_corrupt"):
        load_ucf101(root, image_size=8, max_corrupt=0)
