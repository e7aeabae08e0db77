"""`multimodal-sched prepare`: raw downloads -> loader caches; resumable; PyAV only when a video is decoded."""
import os
import sys

import numpy as np
import pytest
from PIL import Image

from fake_layouts import make_cgmnist, make_cremad
from multimodal_sched.data.disk import load_ave, load_cgmnist, load_cremad, load_ucf101
from multimodal_sched.data.disk.prepare import PrepareError, main as prepare_main, prepare

pytestmark = pytest.mark.filterwarnings("ignore:.*has no sample of:UserWarning")


def test_cremad_from_wav_and_frames_is_resumable(tmp_path):
    raw = make_cremad(str(tmp_path / "raw"), per_class=4)
    out = str(tmp_path / "out")
    res = prepare("cremad", raw, out, progress=False, frame_size=10, clip_seconds=0.2)
    assert res["written"] == 2 * 24 and not res["failed"]
    spec = np.load(os.path.join(out, "spectrograms", "1001_DFA_ANG_XX.npy"))
    assert spec.shape == (257, 21)
    d = load_cremad(out, image_size=10, clip_seconds=0.2)      # reads the cache, no AudioWAV in out
    assert sum(len(s) for s in d.splits.values()) == 24
    # resume: nothing to redo; a lost output (and a stale partial file) is redone alone
    os.remove(os.path.join(out, "spectrograms", "1002_DFA_SAD_XX.npy"))
    open(os.path.join(out, "spectrograms", "1002_DFA_SAD_XX.npy.part.npy"), "wb").close()
    res = prepare("cremad", raw, out, progress=False, frame_size=10, clip_seconds=0.2)
    assert res["written"] == 1 and res["skipped_existing"] == 47


def test_video_without_pyav_says_pip_install_av(tmp_path, monkeypatch):
    raw = make_cremad(str(tmp_path / "raw"), per_class=1)
    import shutil
    shutil.rmtree(os.path.join(raw, "Image-01-FPS"))
    os.makedirs(os.path.join(raw, "VideoFlash"))
    for name in os.listdir(os.path.join(raw, "AudioWAV")):
        open(os.path.join(raw, "VideoFlash", name[:-4] + ".flv"), "wb").write(b"x")
    monkeypatch.setitem(sys.modules, "av", None)          # as if PyAV were not installed
    with pytest.raises(PrepareError, match="pip install av"):
        prepare("cremad", raw, str(tmp_path / "out"), progress=False)
    assert prepare_main(["cremad", "--raw", raw, "--out", str(tmp_path / "out2"), "--no-progress"]) == 2


def test_cgmnist_and_ucf101_prepare(tmp_path):
    raw = make_cgmnist(str(tmp_path / "mraw"), gz=True)
    assert prepare_main(["cgmnist", "--raw", raw, "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    with pytest.raises(ValueError, match=r"\['fps'\] do not apply to 'cgmnist'"):
        prepare("cgmnist", raw, str(tmp_path / "m"), fps=2)
    assert len(load_cgmnist(str(tmp_path / "m"), n_val=20, n_probe=20).splits["test"]) == 60
    # UCF-101 from extracted RGB frames and TV-L1 u/v JPEGs
    from fake_layouts import make_ucf101
    src = make_ucf101(str(tmp_path / "uraw0"))
    raw = str(tmp_path / "uraw")
    os.makedirs(raw)
    os.rename(os.path.join(src, "ucfTrainTestlist"), os.path.join(raw, "ucfTrainTestlist"))
    os.rename(os.path.join(src, "rgb"), os.path.join(raw, "rgb"))
    rng = np.random.default_rng(0)
    for vid in os.listdir(os.path.join(raw, "rgb")):
        for c in "uv":
            d = os.path.join(raw, "tvl1_flow", c, vid)
            os.makedirs(d)
            for i in range(2):
                Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(os.path.join(d, f"frame{i:06d}.jpg"))
    out = str(tmp_path / "u")
    res = prepare("ucf101", raw, out, progress=False, frame_size=8)
    assert not res["failed"] and res["written"] == 2 * 24
    flow = np.load(os.path.join(out, "flow", "v_Archery_g01_c01", "00001.npy"))
    assert flow.shape == (2, 8, 8) and flow.dtype == np.float16 and np.abs(flow).max() <= 20
    d = load_ucf101(out, image_size=8)
    assert tuple(d.splits["train"][0][1].shape) == (3, 2, 8, 8)


def _write_video(path, n_frames=30, fps=10, size=16, audio=False):
    av = pytest.importorskip("av")
    with av.open(path, "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        if audio:
            a_s = c.add_stream("aac", rate=16000)
        for i in range(n_frames):
            img = np.full((size, size, 3), (i * 8) % 255, np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if audio:
            t = np.arange(16000 * n_frames // fps) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            fr = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            fr.sample_rate = 16000
            for p in a_s.encode(fr):
                c.mux(p)
            for p in a_s.encode():
                c.mux(p)


def test_ave_from_mp4_with_pyav(tmp_path):
    pytest.importorskip("av")
    from fake_layouts import make_ave
    src = make_ave(str(tmp_path / "src"), per_class=2, n_classes=2)
    raw = str(tmp_path / "raw")
    os.makedirs(os.path.join(raw, "AVE"))
    for f in ("trainSet.txt", "valSet.txt", "testSet.txt"):
        os.rename(os.path.join(src, f), os.path.join(raw, f))
    for vid in os.listdir(os.path.join(src, "frames")):
        _write_video(os.path.join(raw, "AVE", vid + ".mp4"), audio=True)
    out = str(tmp_path / "out")
    assert prepare_main(["ave", "--raw", raw, "--out", out, "--no-progress", "--frame-size", "12"]) == 0
    vid = sorted(os.listdir(os.path.join(out, "frames")))[0]
    assert len(os.listdir(os.path.join(out, "frames", vid))) == 3          # 3 s of video at 1 fps
    assert np.load(os.path.join(out, "spectrograms", vid + ".npy")).shape == (257, 1001)
    d = load_ave(out, image_size=12)
    assert tuple(d.splits["train"][0][1].shape) == (3, 3, 12, 12)
