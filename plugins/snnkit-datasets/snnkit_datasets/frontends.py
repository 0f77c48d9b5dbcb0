"""Audio front-ends: waveform (samples,) -> features (T, C) in pure numpy/torch.

``log_mel`` is the default front-end of the speech loaders: a mel filterbank over short-time power spectra,
log-compressed, resampled in time to exactly ``steps`` frames (100 by default, as the TI46 experiments use),
and standardised per utterance.
"""

from __future__ import annotations

import numpy as np
import torch


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1), equally spaced on the mel scale (HTK formula)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0, None)
    return fb


def log_mel(
    wave: np.ndarray,
    sr: int,
    n_mels: int = 40,
    steps: int = 100,
    n_fft: int = 256,
    hop: int | None = None,
    fmin: float = 50.0,
    fmax: float | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """Log-mel features of one utterance, shape (steps, n_mels), float32.

    Frames are taken every ``hop`` samples (default: spread so the utterance gives ~``steps`` frames, at
    least n_fft/4) with a Hann window, then linearly interpolated in time to exactly ``steps`` rows.
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"log_mel wants a mono waveform (samples,), got shape {wave.shape}")
    fmax = fmax or sr / 2
    if wave.size < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.size))
    hop = hop or max(n_fft // 4, (wave.size - n_fft) // max(steps - 1, 1))
    n_frames = 1 + (wave.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = wave[idx] * np.hanning(n_fft)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ mel_filterbank(n_mels, n_fft, sr, fmin, fmax).T
    feat = np.log(mel + 1e-10)
    feat = resample_time(feat, steps)
    if normalize:
        feat = (feat - feat.mean()) / (feat.std() + 1e-8)
    return feat.astype(np.float32)


def resample_time(feat: np.ndarray, steps: int) -> np.ndarray:
    """Linear interpolation of (frames, C) to (steps, C)."""
    n = feat.shape[0]
    if n == steps:
        return feat
    if n == 1:
        return np.repeat(feat, steps, axis=0)
    pos = np.linspace(0, n - 1, steps)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return feat[lo] * (1 - w) + feat[hi] * w


def stack(features: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(features)).float()
