"""WAV reading (scipy) and the log-magnitude STFT spectrogram used for the audio modality.

Settings (paper section 5.2: audio resampled to 16 kHz, 512-point STFT):

* ``SAMPLE_RATE = 16000`` Hz; other rates are resampled with
  ``scipy.signal.resample_poly``; stereo is averaged to mono; integer PCM is
  scaled to [-1, 1].
* ``N_FFT = 512`` (257 frequency bins), ``HOP = 160`` samples (10 ms),
  periodic Hann window of 512 samples, centered frames (the signal is
  reflect-padded by ``N_FFT // 2`` on each side).
* the clip is cut or zero-padded to ``clip_seconds`` (CREMA-D: 3.0 s, so the
  map is 257 x 301; the paper reports 257 x 299 without stating its hop).
* value: ``log(|STFT| + 1e-7)`` (natural log of the magnitude), float32, shape
  ``(1, 257, frames)`` with ``frames = 1 + clip_samples // HOP``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SAMPLE_RATE", "N_FFT", "HOP", "read_wav", "log_spectrogram", "wav_to_spectrogram", "n_frames"]

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160
EPS = 1e-7


def read_wav(path: str, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` (scipy.io.wavfile + resample_poly)."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    sr, a = wavfile.read(path)
    if a.size == 0:
        raise ValueError("no audio samples")
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        a = (a.astype(np.float32) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1)
    if sr != sample_rate:
        g = gcd(int(sr), int(sample_rate))
        a = resample_poly(a, sample_rate // g, int(sr) // g).astype(np.float32)
    return a


def n_frames(clip_seconds: float, *, sample_rate: int = SAMPLE_RATE, hop: int = HOP) -> int:
    return 1 + int(round(clip_seconds * sample_rate)) // hop


def log_spectrogram(samples: np.ndarray, *, clip_seconds: float, sample_rate: int = SAMPLE_RATE,
                    n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """``(1, n_fft // 2 + 1, frames)`` float32 log-magnitude STFT of a clip cut/padded to ``clip_seconds``."""
    n = int(round(clip_seconds * sample_rate))
    x = np.zeros(n, dtype=np.float32)
    m = min(n, len(samples))
    x[:m] = samples[:m]
    pad = n_fft // 2
    x = np.pad(x, pad, mode="reflect") if n > pad else np.pad(x, pad)
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)   # periodic Hann
    spec = np.abs(np.fft.rfft(x[idx] * win, axis=1)).T     # (freq, frames)
    return np.log(spec + EPS).astype(np.float32)[None]


def wav_to_spectrogram(path: str, *, clip_seconds: float, **kw) -> np.ndarray:
    return log_spectrogram(read_wav(path), clip_seconds=clip_seconds, **kw)
