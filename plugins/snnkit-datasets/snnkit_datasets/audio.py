"""Reading audio with soundfile, with errors that name the file and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from snnkit_core.errors import DatasetError


def read_audio(path: Path, expected_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float64 waveform in [-1, 1] and its sample rate; stereo is averaged to mono."""
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DatasetError(f"cannot read audio file {path}: {exc} (truncated or not a WAV/FLAC/SPHERE file?)") from None
    if data.shape[0] == 0:
        raise DatasetError(f"audio file {path} holds no samples (truncated?)")
    if expected_sr is not None and sr != expected_sr:
        raise DatasetError(f"audio file {path} has sample rate {sr} Hz; this dataset expects {expected_sr} Hz")
    return data.mean(axis=1), sr
