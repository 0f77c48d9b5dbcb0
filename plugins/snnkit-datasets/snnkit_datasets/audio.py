"""Reading audio with soundfile, with errors that name the file and what was expected.

libsndfile quietly shortens a RIFF WAV whose ``data`` chunk is cut off (a half-copied file loads as half the
audio), so :func:`read_audio` first checks the WAV header itself: a ``data`` chunk that declares more bytes
than the file holds raises :class:`DatasetError` naming the file, the declared and the present size. Any
format also fails when soundfile returns fewer frames than the file's header announces.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from snnkit_core.contract.errors import DatasetError

#: a ``data`` chunk size that means "unknown" (streamed WAV, or RF64's placeholder), not a real length
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def check_wav_complete(path: Path) -> None:
    """Raise :class:`DatasetError` if ``path`` is a RIFF/RIFX WAVE file whose ``data`` chunk is shorter than its
    header declares. Other files (FLAC, SPHERE, RF64) and headers too damaged to walk are left to the decoder."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return
            endian = "<" if head[:4] == b"RIFF" else ">"
            block_align = 0
            pos = 12
            for _ in range(1000):  # real files have a handful of chunks
                hdr = f.read(8)
                if len(hdr) < 8:
                    return  # no data chunk found: the decoder reports what is wrong
                cid, csize = hdr[:4], struct.unpack(endian + "I", hdr[4:])[0]
                pos += 8
                if cid == b"fmt ":
                    fmt = f.read(min(csize, 16))
                    if len(fmt) >= 14:
                        block_align = struct.unpack(endian + "H", fmt[12:14])[0]
                    f.seek(pos)
                elif cid == b"data":
                    present = size - pos
                    if csize not in _UNKNOWN_SIZES and present < csize:
                        if block_align:
                            frames = f" ({csize // block_align} samples; {present // block_align} present)"
                        else:
                            frames = ""
                        raise DatasetError(
                            f"audio file {path} is truncated: its WAV header declares a data chunk of {csize} bytes, "
                            f"the file holds {present} bytes of it{frames}. Copy or download the file again."
                        )
                    return
                pos += csize + (csize & 1)  # chunks are padded to an even length
                f.seek(pos)
    except OSError as exc:
        raise DatasetError(f"cannot read audio file {path}: {exc}") from None


#: fewer samples than this (one 256-point analysis window, the smallest the front-ends use) give no feature frame
MIN_SAMPLES = 256


def read_audio(path: Path, expected_sr: int | None = None, min_samples: int = MIN_SAMPLES) -> tuple[np.ndarray, int]:
    """Mono float64 waveform in [-1, 1] and its sample rate; stereo is averaged to mono. A file shorter than
    ``min_samples`` is refused (it would be silently zero-padded into a frame of nothing)."""
    path = Path(path)
    check_wav_complete(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr, declared = f.samplerate, f.frames
            data = f.read(dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DatasetError(f"cannot read audio file {path}: {exc} (truncated or not a WAV/FLAC/SPHERE file?)") from None
    if data.shape[0] == 0:
        raise DatasetError(f"audio file {path} holds no samples (truncated?)")
    if data.shape[0] < declared:
        raise DatasetError(
            f"audio file {path} is truncated: its header announces {declared} samples, only {data.shape[0]} could be "
            f"read"
        )
    if expected_sr is not None and sr != expected_sr:
        raise DatasetError(f"audio file {path} has sample rate {sr} Hz; this dataset expects {expected_sr} Hz")
    if data.shape[0] < min_samples:
        raise DatasetError(
            f"audio file {path} holds {data.shape[0]} samples ({1e3 * data.shape[0] / sr:.1f} ms at {sr} Hz), fewer "
            f"than one "
            f"{min_samples}-sample analysis frame, so it gives no features; remove or replace it (truncated?)"
        )
    if not np.isfinite(data).all():  # a float WAV can hold NaN / inf: every feature of it would be NaN
        raise DatasetError(f"audio file {path} holds NaN or infinite samples; remove or replace it")
    return data.mean(axis=1), sr
