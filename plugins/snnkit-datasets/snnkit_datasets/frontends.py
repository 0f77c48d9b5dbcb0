"""Audio front-ends: waveform (samples,) -> features (T, C) in pure numpy/torch.

``log_mel`` is the default front-end of the speech loaders: a mel filterbank over short-time power spectra,
log-compressed, resampled in time to exactly ``steps`` frames (100 by default, as the TI46 experiments use),
and standardised per utterance.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1), equally spaced on the mel scale (HTK formula); read-only, made
    once per setting (a loader calls it for every utterance)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0, None)
    fb.flags.writeable = False
    return fb


def log_mel(wave: np.ndarray, sr: int, n_mels: int = 40, steps: int = 100, n_fft: int = 256, hop: int | None = None,
            fmin: float = 50.0, fmax: float | None = None, normalize: bool = True) -> np.ndarray:
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


def preemphasis(wave: np.ndarray, coef: float) -> np.ndarray:
    """y[n] = x[n] - coef·x[n-1] (y[0] = x[0]); coef 0 returns the wave unchanged."""
    return np.append(wave[:1], wave[1:] - coef * wave[:-1]) if coef else wave


def mel_energies(frames: np.ndarray, n_fft: int, sr: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Linear mel energies of windowed frames (F, win): power |FFT_{n_fft}|² / n_fft through ``n_mels``
    triangular filters over fmin..fmax, shape (F, n_mels)."""
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2 / n_fft
    # einsum, not a BLAS product: this (F, 2049) x (2049, n_mels) product is small enough that BLAS threads only
    # contend, and on a loaded machine made the fbank-l1 front end ~9x slower
    return np.einsum("fk,mk->fm", power, mel_filterbank(n_mels, n_fft, sr, fmin, float(fmax)))


def fbank_l1(wave: np.ndarray, sr: int, n_filters: int = 39, frames: int = 39, n_fft: int = 4096,
             preemph: float = 0.97) -> np.ndarray:
    """NRR-SNN's TIDigits input (docs/methods/nrr-snn.md): linear mel filter-bank energies, shape (frames, n_filters).

    The frame length is chosen per utterance so that exactly ``frames`` Hamming windows at 50 % overlap cover it:
    hop h = ⌊N / (frames + 1)⌋ samples, window 2h, frame i = samples [i·h, i·h + 2h), so (frames + 1)·h ≤ N.
    Each frame (after pre-emphasis y[n] = x[n] - 0.97·x[n-1], python_speech_features' default) gives the power
    spectrum |FFT_{n_fft}|² / n_fft, and ``n_filters`` triangular mel filters over 0..sr/2 give its energies
    (linear: no log). Each band is then L1-normalised over the frames: E[:, b] / Σ_i E[i, b], so every column
    sums to 1 (dimensionless).
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"fbank_l1 wants a mono waveform (samples,), got shape {wave.shape}")
    wave = preemphasis(wave, preemph)
    hop = wave.size // (frames + 1)
    if hop < 1:
        raise ValueError(f"fbank_l1: an utterance of {wave.size} samples is too short for {frames} frames at 50 % "
                         f"overlap")
    win = 2 * hop
    n_fft = max(n_fft, win)
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    energy = mel_energies(wave[idx] * np.hamming(win)[None, :], n_fft, sr, n_filters, 0.0, sr / 2)
    energy = np.maximum(energy, np.finfo(np.float64).eps)
    return (energy / energy.sum(axis=0, keepdims=True)).astype(np.float32)
