"""``multimodal-sched prepare DATASET --raw DIR --out DIR``: raw downloads -> the caches the loaders read.

What each dataset needs in ``--raw`` and what lands in ``--out``:

=========  =============================================  ===============================================
dataset    --raw (the download)                           --out (the loader's root)
=========  =============================================  ===============================================
cremad     AudioWAV/*.wav, VideoFlash/*.flv               spectrograms/<clip>.npy, Image-01-FPS/<clip>/*.jpg,
           (or frames already in Image-01-FPS/<clip>/)    train.csv/test.csv copied when present
ave        AVE/*.mp4 (audio and video), trainSet.txt,     spectrograms/<id>.npy, frames/<id>/*.jpg,
           valSet.txt, testSet.txt (or audio/<id>.wav)    the three split files
ucf101     UCF-101/<Class>/*.avi, ucfTrainTestlist/,      rgb/<video>/*.jpg, flow/<video>/*.npy,
           tvl1_flow/{u,v}/<video>/*.jpg (TV-L1 flow)     ucfTrainTestlist/
cgmnist    the four MNIST IDX files (.gz or not)          the four IDX files, uncompressed
=========  =============================================  ===============================================

* WAV -> spectrogram uses scipy only (:mod:`.audio`: 16 kHz, ``n_fft=512``,
  hop 160, log-magnitude; CREMA-D clips cut/padded to 3 s, AVE to 10 s).
  Image frames are copied with PIL (resized so the short side is ``frame_size``).
* Video files (.flv, .mp4, .avi) are decoded with PyAV (``pip install av``),
  imported only when a video has to be decoded; frames are kept at ``fps``
  frames per second (CREMA-D 1, AVE 1, UCF-101 all frames unless ``fps``).
* Optical flow is not computed here (the paper's UCF-101 flow is TV-L1): the
  widely distributed TV-L1 JPEG pairs (``u``/``v``, 0..255 mapping
  -``flow_bound``..+``flow_bound`` pixels) are converted to float16
  ``(2, H, W)`` arrays.
* Resumable: every item is written to a temporary name and renamed when
  complete; items whose output exists are skipped (``--force`` redoes them).
  A progress bar counts items; failures are collected, logged with the path,
  and reported at the end (exit status 1) without stopping the others.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil

import numpy as np

from ._common import DatasetLayoutError, IMAGE_EXTS, list_frames, require_dir
from .audio import SAMPLE_RATE, log_spectrogram, read_wav

__all__ = ["prepare", "PREPARERS", "PrepareError", "require_av"]

log = logging.getLogger("multimodal_sched.data.disk.prepare")

VIDEO_EXTS = (".flv", ".mp4", ".avi", ".mkv", ".webm", ".mov")


class PrepareError(RuntimeError):
    """Preparation cannot proceed (missing optional dependency or input)."""


def require_av():
    """Import PyAV or say how to install it."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise PrepareError("decoding video files needs PyAV, which is not installed: run `pip install av` "
                           "(WAV files and image frames are prepared without it)") from None
    return av


# ------------------------------------------------------------------ atomic writers
def _save_npy(path: str, a: np.ndarray) -> None:
    tmp = path + ".part.npy"
    np.save(tmp, a)
    os.replace(tmp, path)


def _save_frames(folder: str, images) -> int:
    """Write PIL images as 00001.jpg ... into ``folder`` atomically (via ``folder.part``)."""
    tmp = folder + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = 0
    for n, im in enumerate(images, 1):
        im.convert("RGB").save(os.path.join(tmp, f"{n:05d}.jpg"), quality=95)
    if n == 0:
        shutil.rmtree(tmp)
        raise ValueError("no frame decoded")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return n


def _resize_short(im, size: int | None):
    if not size:
        return im
    w, h = im.size
    s = size / min(w, h)
    if abs(s - 1) < 1e-6:
        return im
    from PIL import Image
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)


# ------------------------------------------------------------------ decoders
def video_frames(path: str, *, fps: float | None, frame_size: int | None):
    """PIL frames of a video at ``fps`` frames per second (all frames when None), via PyAV."""
    av = require_av()
    with av.open(path) as container:
        stream = container.streams.video[0]
        next_t = 0.0
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else next_t
            if fps is None or t + 1e-6 >= next_t:
                yield _resize_short(frame.to_image(), frame_size)
                if fps is not None:
                    next_t += 1.0 / fps


def video_audio(path: str, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio of a video file at ``sample_rate``, via PyAV."""
    av = require_av()
    with av.open(path) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        res = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            for f in res.resample(frame):
                chunks.append(f.to_ndarray().reshape(-1))
        for f in res.resample(None):
            chunks.append(f.to_ndarray().reshape(-1))
    if not chunks:
        raise ValueError("no audio decoded")
    return np.concatenate(chunks).astype(np.float32)


def image_frames(folder: str, frame_size: int | None):
    from PIL import Image
    for p in list_frames(folder, IMAGE_EXTS):
        with Image.open(p) as im:
            yield _resize_short(im.convert("RGB"), frame_size)


# ------------------------------------------------------------------ the job runner
def _run_jobs(jobs: list, *, desc: str, progress: bool, force: bool) -> dict:
    """``jobs``: (output path, function writing it, input path).  Skips done outputs; collects failures."""
    from tqdm.auto import tqdm

    done = skipped = 0
    failed = []
    for out, fn, src in tqdm(jobs, desc=desc, disable=not progress, unit="item"):
        if not force and os.path.exists(out):
            skipped += 1
            continue
        try:
            fn()
            done += 1
        except PrepareError:
            raise
        except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
            failed.append((src, str(e)))
            log.warning("prepare %s: %s failed: %s", desc, src, e)
    return {"written": done, "skipped_existing": skipped, "failed": failed}


def _copy(src: str, dst: str) -> None:
    if os.path.exists(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


def _spec_job(out_path, samples_fn, seconds):
    return lambda: _save_npy(out_path, log_spectrogram(samples_fn(), clip_seconds=seconds)[0])


# ------------------------------------------------------------------ per dataset
def prepare_cremad(raw, out, *, progress=True, force=False, fps=1.0, frame_size=256, clip_seconds=3.0):
    wav_dir = require_dir(os.path.join(raw, "AudioWAV"), "cremad raw audio", "expected the official AudioWAV folder")
    wavs = sorted(glob.glob(os.path.join(wav_dir, "*.wav")))
    if not wavs:
        raise DatasetLayoutError(f"cremad: no .wav file in {wav_dir!r}")
    os.makedirs(os.path.join(out, "spectrograms"), exist_ok=True)
    os.makedirs(os.path.join(out, "Image-01-FPS"), exist_ok=True)
    jobs = []
    for w in wavs:
        clip = os.path.splitext(os.path.basename(w))[0]
        jobs.append((os.path.join(out, "spectrograms", clip + ".npy"),
                     _spec_job(os.path.join(out, "spectrograms", clip + ".npy"), lambda w=w: read_wav(w), clip_seconds), w))
        fdir = os.path.join(out, "Image-01-FPS", clip)
        src_frames = os.path.join(raw, "Image-01-FPS", clip)
        if os.path.isdir(src_frames):
            jobs.append((fdir, lambda s=src_frames, d=fdir: _save_frames(d, image_frames(s, frame_size)), src_frames))
        else:
            vids = [p for p in glob.glob(os.path.join(raw, "VideoFlash", clip + ".*")) if p.lower().endswith(VIDEO_EXTS)]
            if not vids:
                log.warning("cremad: no video and no frame folder for %s (looked in %s)", clip,
                            os.path.join(raw, "VideoFlash"))
                continue
            jobs.append((fdir, lambda v=vids[0], d=fdir: _save_frames(d, video_frames(v, fps=fps, frame_size=frame_size)),
                         vids[0]))
    for f in ("train.csv", "test.csv"):
        _copy(os.path.join(raw, f), os.path.join(out, f))
    return _run_jobs(jobs, desc="cremad", progress=progress, force=force)


def prepare_ave(raw, out, *, progress=True, force=False, fps=1.0, frame_size=256, clip_seconds=10.0):
    from .ave import SPLIT_FILES, read_ave_split

    split_src = {}
    for fname in SPLIT_FILES.values():
        cands = [os.path.join(raw, fname), os.path.join(raw, "AVE_Dataset", fname)]
        src = next((c for c in cands if os.path.isfile(c)), None)
        if src is None:
            raise DatasetLayoutError(f"ave: split file {cands[0]!r} does not exist")
        split_src[fname] = src
    ids = sorted({vid for src in split_src.values() for vid, _ in read_ave_split(src)})
    vid_dir = next((d for d in (os.path.join(raw, "AVE"), os.path.join(raw, "AVE_Dataset", "AVE"), raw)
                    if os.path.isdir(d) and glob.glob(os.path.join(d, "*.mp4"))), os.path.join(raw, "AVE"))
    os.makedirs(os.path.join(out, "spectrograms"), exist_ok=True)
    os.makedirs(os.path.join(out, "frames"), exist_ok=True)
    jobs = []
    for vid in ids:
        video = os.path.join(vid_dir, vid + ".mp4")
        wav = os.path.join(raw, "audio", vid + ".wav")
        spec = os.path.join(out, "spectrograms", vid + ".npy")
        audio_fn = (lambda w=wav: read_wav(w)) if os.path.isfile(wav) else (lambda v=video: video_audio(v))
        jobs.append((spec, _spec_job(spec, audio_fn, clip_seconds), wav if os.path.isfile(wav) else video))
        fdir = os.path.join(out, "frames", vid)
        src_frames = os.path.join(raw, "frames", vid)
        if os.path.isdir(src_frames):
            jobs.append((fdir, lambda s=src_frames, d=fdir: _save_frames(d, image_frames(s, frame_size)), src_frames))
        else:
            jobs.append((fdir, lambda v=video, d=fdir: _save_frames(d, video_frames(v, fps=fps, frame_size=frame_size)), video))
    for fname, src in split_src.items():
        _copy(src, os.path.join(out, fname))
    return _run_jobs(jobs, desc="ave", progress=progress, force=force)


def _tvl1_to_npy(u_dir: str, v_dir: str, out_dir: str, bound: float) -> None:
    from PIL import Image
    us, vs = list_frames(u_dir), list_frames(v_dir)
    if not us or len(us) != len(vs):
        raise ValueError(f"flow folders {u_dir!r} and {v_dir!r} must hold the same non-zero number of images "
                         f"(got {len(us)} and {len(vs)})")
    tmp = out_dir + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for i, (pu, pv) in enumerate(zip(us, vs), 1):
        a = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0 * 2 * bound - bound for p in (pu, pv)]
        np.save(os.path.join(tmp, f"{i:05d}.npy"), np.stack(a).astype(np.float16))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def prepare_ucf101(raw, out, *, progress=True, force=False, fps=None, frame_size=256, flow_bound=20.0):
    lists = next((d for d in (os.path.join(raw, "ucfTrainTestlist"), raw)
                  if os.path.isfile(os.path.join(d, "classInd.txt"))), None)
    if lists is None:
        raise DatasetLayoutError(f"ucf101: {os.path.join(raw, 'ucfTrainTestlist', 'classInd.txt')!r} does not exist "
                                 "(unzip UCF101TrainTestSplits-RecognitionTask.zip into --raw)")
    vroot = os.path.join(raw, "UCF-101")
    flow_root = os.path.join(raw, "tvl1_flow")
    require_dir(flow_root, "ucf101 TV-L1 flow", "optical flow is not computed here; put the TV-L1 u/v JPEGs there "
                                               "(tvl1_flow/u/<video>/*.jpg, tvl1_flow/v/<video>/*.jpg)")
    videos = sorted(glob.glob(os.path.join(vroot, "*", "*.avi")))
    frame_src = os.path.join(raw, "rgb")
    names = sorted(os.listdir(frame_src)) if os.path.isdir(frame_src) else [os.path.splitext(os.path.basename(v))[0] for v in videos]
    if not names:
        raise DatasetLayoutError(f"ucf101: no video in {vroot!r} (expected UCF-101/<Class>/*.avi) and no {frame_src!r}")
    by_name = {os.path.splitext(os.path.basename(v))[0]: v for v in videos}
    os.makedirs(os.path.join(out, "rgb"), exist_ok=True)
    os.makedirs(os.path.join(out, "flow"), exist_ok=True)
    jobs = []
    for name in names:
        rdir = os.path.join(out, "rgb", name)
        if os.path.isdir(os.path.join(frame_src, name)):
            jobs.append((rdir, lambda s=os.path.join(frame_src, name), d=rdir: _save_frames(d, image_frames(s, frame_size)),
                         os.path.join(frame_src, name)))
        else:
            jobs.append((rdir, lambda v=by_name[name], d=rdir: _save_frames(d, video_frames(v, fps=fps, frame_size=frame_size)),
                         by_name[name]))
        fdir = os.path.join(out, "flow", name)
        u, v = os.path.join(flow_root, "u", name), os.path.join(flow_root, "v", name)
        jobs.append((fdir, lambda u=u, v=v, d=fdir: _tvl1_to_npy(u, v, d, flow_bound), u))
    os.makedirs(os.path.join(out, "ucfTrainTestlist"), exist_ok=True)
    for f in os.listdir(lists):
        if f.endswith(".txt"):
            _copy(os.path.join(lists, f), os.path.join(out, "ucfTrainTestlist", f))
    return _run_jobs(jobs, desc="ucf101", progress=progress, force=force)


def prepare_cgmnist(raw, out, *, progress=True, force=False):
    from .cgmnist import FILES, _find, read_idx, write_idx

    require_dir(raw, "cgmnist raw folder")
    os.makedirs(out, exist_ok=True)
    jobs = []
    for names in FILES.values():
        for n in names:
            src = _find(raw, n)
            dst = os.path.join(out, n)
            jobs.append((dst, lambda s=src, d=dst: (write_idx(d + ".part", read_idx(s)), os.replace(d + ".part", d)), src))
    return _run_jobs(jobs, desc="cgmnist", progress=progress, force=force)


PREPARERS = {"cremad": prepare_cremad, "ave": prepare_ave, "ucf101": prepare_ucf101, "cgmnist": prepare_cgmnist}


def prepare(dataset: str, raw: str, out: str, *, progress: bool = True, force: bool = False, **options) -> dict:
    """Turn a raw download into the loader's layout; returns counts (written, skipped, failed)."""
    if dataset not in PREPARERS:
        raise ValueError(f"unknown dataset {dataset!r}; prepare supports {sorted(PREPARERS)}")
    require_dir(raw, f"{dataset} --raw folder")
    if os.path.abspath(raw) == os.path.abspath(out):
        raise ValueError("--out must differ from --raw")
    import inspect

    fn = PREPARERS[dataset]
    allowed = set(inspect.signature(fn).parameters) - {"raw", "out", "progress", "force"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"option(s) {unknown} do not apply to {dataset!r}; it takes {sorted(allowed) or 'none'}")
    os.makedirs(out, exist_ok=True)
    return fn(raw, out, progress=progress, force=force, **options)


def main(argv=None) -> int:
    """``multimodal-sched prepare`` (also ``python -m multimodal_sched.data.disk.prepare``)."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(prog="multimodal-sched prepare", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(args, sys.stdout, json)


def add_arguments(p) -> None:
    p.add_argument("dataset", choices=sorted(PREPARERS))
    p.add_argument("--raw", required=True, help="the raw download (see docs/datasets.md)")
    p.add_argument("--out", required=True, help="the dataset root the loader will read (config data_path)")
    p.add_argument("--force", action="store_true", help="redo items whose output exists")
    p.add_argument("--fps", type=float, help="video frames kept per second (cremad/ave default 1, ucf101 all)")
    p.add_argument("--frame-size", type=int, help="short side of saved frames in pixels (default 256)")
    p.add_argument("--no-progress", action="store_true")


def run_from_args(args, stream, json_mod) -> int:
    opts = {}
    if getattr(args, "fps", None) is not None:
        opts["fps"] = args.fps
    if getattr(args, "frame_size", None) is not None:
        opts["frame_size"] = args.frame_size
    try:
        res = prepare(args.dataset, args.raw, args.out, progress=not args.no_progress, force=args.force, **opts)
    except (ValueError, PrepareError, TypeError) as e:
        logging.getLogger("multimodal_sched").error("%s", e)
        return 2
    stream.write(json_mod.dumps({"written": res["written"], "skipped_existing": res["skipped_existing"],
                                 "failed": [f"{s}: {e}" for s, e in res["failed"]]}, indent=2) + "\n")
    return 1 if res["failed"] else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
