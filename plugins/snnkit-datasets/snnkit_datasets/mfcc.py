"""MFCC front-end: DCT-II (orthonormal) of the log-mel energies, plus deltas and delta-deltas.

The classic 39-dimensional speech features (13 cepstra + 13 deltas + 13 delta-deltas) that TIMIT frame
classification uses (NRR-SNN). Defaults follow the common HTK/Kaldi-style setup: 25 ms Hamming
windows every 10 ms, pre-emphasis 0.97, 26 mel filters (the HTK triangular filterbank of
:func:`snnkit_datasets.frontends.mel_filterbank`), cepstra c0..c12 (c0 stands in for the energy), and
regression deltas over +-2 frames: ``d_t = sum_n n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)`` with edge frames
repeated. Unlike :func:`frontends.log_mel` it keeps the natural frame rate (one frame per ``hop`` samples),
since phone labels are per 10 ms frame. Normalisation (per-utterance or corpus mean/variance) is left to
the caller.
"""

from __future__ import annotations

import numpy as np

from .frontends import mel_energies, preemphasis


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (n_out, n_in)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def deltas(feat: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas along time of (T, C) features."""
    t_len = feat.shape[0]
    pad = np.pad(feat, ((width, width), (0, 0)), mode="edge")
    num = sum(
        n * (pad[width + n : width + n + t_len] - pad[width - n : width - n + t_len]) for n in range(1, width + 1)
    )
    return num / (2 * sum(n * n for n in range(1, width + 1)))


def frame_signal(wave: np.ndarray, win: int, hop: int) -> np.ndarray:
    """(frames, win) frames every ``hop`` samples; the last partial frame is zero-padded; at least one frame."""
    n_frames = max(1, 1 + int(np.ceil((wave.size - win) / hop))) if wave.size > win else 1
    total = (n_frames - 1) * hop + win
    wave = np.pad(wave, (0, max(0, total - wave.size)))
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    return wave[idx]


def mfcc(wave: np.ndarray, sr: int, n_ceps: int = 13, n_mels: int = 26, win_ms: float = 25.0, hop_ms: float = 10.0,
         n_fft: int | None = None, preemph: float = 0.97, fmin: float = 0.0, fmax: float | None = None,
         with_deltas: bool = True) -> np.ndarray:
    """MFCCs of one utterance: (frames, n_ceps * 3) with deltas (39 by default), else (frames, n_ceps); float32."""
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1:
        raise ValueError(f"mfcc wants a mono waveform (samples,), got shape {wave.shape}")
    wave = preemphasis(wave, preemph)
    win = int(round(sr * win_ms / 1000))
    hop = int(round(sr * hop_ms / 1000))
    n_fft = n_fft or 1 << int(np.ceil(np.log2(win)))
    frames = frame_signal(wave, win, hop) * np.hamming(win)[None, :]
    mel = mel_energies(frames, n_fft, sr, n_mels, fmin, fmax or sr / 2)
    ceps = np.log(np.maximum(mel, 1e-10)) @ dct_matrix(n_ceps, n_mels).T
    if with_deltas:
        d1 = deltas(ceps)
        ceps = np.concatenate([ceps, d1, deltas(d1)], axis=1)
    return ceps.astype(np.float32)


def num_frames(n_samples: int, sr: int, win_ms: float = 25.0, hop_ms: float = 10.0) -> int:
    """How many frames :func:`mfcc` gives for ``n_samples`` samples."""
    win = int(round(sr * win_ms / 1000))
    hop = int(round(sr * hop_ms / 1000))
    return max(1, 1 + int(np.ceil((n_samples - win) / hop))) if n_samples > win else 1
