"""NIST SPHERE audio files (TI46, TIDIGITS, TIMIT), read without libsndfile.

A SPHERE file is an ASCII header followed by raw samples::

    NIST_1A\\n
       1024\\n                      header size in bytes (the samples start there)
    sample_rate -i 16000\\n         one "name -type value" field per line: -i int, -r real, -sN string
    sample_count -i 46797\\n
    sample_n_bytes -i 2\\n
    sample_byte_format -s2 01\\n    01 = little-endian, 10 = big-endian, 1 = single byte
    sample_coding -s3 pcm\\n        pcm (default), ulaw; "pcm,embedded-shorten-v2.00" is compressed
    channel_count -i 1\\n
    end_head\\n

Uncompressed PCM (1, 2 or 4 bytes) and mu-law are decoded here. Shorten-compressed files (how LDC shipped
TI46 and TIDIGITS on CD) raise :class:`DatasetError` telling how to decompress them with NIST's ``sph2pipe``
(``sph2pipe -f sph in.sph out.sph``, or ``-f wav``). A truncated file (fewer bytes than the header
promises) raises :class:`DatasetError` naming the file. Files that are not SPHERE (RIFF WAV, FLAC) are
read through :func:`snnkit_datasets.audio.read_audio`, so a corpus converted to WAV loads too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnkit_core.contract.errors import DatasetError

MAGIC = b"NIST_1A"


def parse_header(raw: bytes, path: Path | str = "<bytes>") -> dict:
    """The header fields of a SPHERE file as a dict (ints for -i, floats for -r, str otherwise)."""
    if not raw.startswith(MAGIC):
        raise DatasetError(f"{path} is not a NIST SPHERE file (no NIST_1A magic)")
    lines = raw[:64].split(b"\n")
    try:
        size = int(lines[1].strip())
    except (IndexError, ValueError):
        raise DatasetError(f"{path}: malformed SPHERE header (no header size on line 2)") from None
    if len(raw) < size:
        raise DatasetError(f"{path} is truncated: the SPHERE header says {size} bytes, the file has {len(raw)}")
    fields: dict = {"header_size": size}
    for line in raw[:size].split(b"\n")[2:]:
        line = line.strip().decode("ascii", "replace")
        if not line or line.startswith(";"):
            continue
        if line == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        name, kind, value = parts
        try:
            if kind == "-i":
                fields[name] = int(value)
            elif kind == "-r":
                fields[name] = float(value)
            else:
                fields[name] = value
        except ValueError:
            raise DatasetError(f"{path}: malformed SPHERE header field {line!r}") from None
    else:
        raise DatasetError(f"{path}: SPHERE header has no end_head line (truncated or corrupt header)")
    return fields


def _ulaw_decode(u: np.ndarray) -> np.ndarray:
    u = ~u.astype(np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    sample = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return sample / 32768.0


def read_sphere(path: Path | str, expected_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float64 waveform in [-1, 1] and the sample rate of a NIST SPHERE file (channels averaged)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    h = parse_header(raw, path)
    coding = str(h.get("sample_coding", "pcm")).lower()
    if "shorten" in coding or "wavpack" in coding or "shortpack" in coding:
        raise DatasetError(
            f"{path} is compressed SPHERE ({coding}); decompress the corpus first with NIST's sph2pipe, e.g. "
            f"`sph2pipe -f sph IN OUT` (or `-f wav`) for every file, keeping the same folder layout"
        )
    if coding not in ("pcm", "ulaw", "mu-law"):
        raise DatasetError(f"{path}: unsupported SPHERE sample_coding {coding!r} (pcm and ulaw are supported)")
    for key in ("sample_rate", "sample_count"):
        if key not in h:
            raise DatasetError(f"{path}: SPHERE header lacks {key}")
    sr = int(h["sample_rate"])
    channels = int(h.get("channel_count", 1))
    nbytes = int(h.get("sample_n_bytes", 1 if coding != "pcm" else 2))
    count = int(h["sample_count"])
    need = count * channels * nbytes
    body = raw[h["header_size"] :]
    if len(body) < need:
        raise DatasetError(
            f"{path} is truncated: the header promises {count} samples x {channels} channel(s) x {nbytes} bytes "
            f"= {need} bytes, the file holds {len(body)}"
        )
    body = body[:need]
    if coding != "pcm":
        x = _ulaw_decode(np.frombuffer(body, dtype=np.uint8))
    else:
        order = str(h.get("sample_byte_format", "01"))
        endian = ">" if order == "10" else "<"
        if nbytes == 1:
            x = np.frombuffer(body, dtype=np.int8) / 128.0
        elif nbytes in (2, 4):
            x = np.frombuffer(body, dtype=f"{endian}i{nbytes}") / float(2 ** (8 * nbytes - 1))
        else:
            raise DatasetError(f"{path}: unsupported sample_n_bytes {nbytes}")
    if x.size == 0:
        raise DatasetError(f"{path} holds no samples")
    x = x.reshape(count, channels).mean(axis=1)
    if expected_sr is not None and sr != expected_sr:
        raise DatasetError(f"audio file {path} has sample rate {sr} Hz; this dataset expects {expected_sr} Hz")
    return x.astype(np.float64), sr


def write_sphere(path: Path | str, wave: np.ndarray, sr: int, byte_format: str = "01", coding: str = "pcm") -> None:
    """Write 16-bit PCM SPHERE (a 1024-byte header as LDC uses); for tests and conversions."""
    pcm = np.clip(np.round(np.asarray(wave, dtype=np.float64) * 32767), -32768, 32767)
    pcm = pcm.astype(">i2" if byte_format == "10" else "<i2")
    fields = ["NIST_1A", "   1024", "database_id -s5 TIMIT", "channel_count -i 1", f"sample_count -i {pcm.size}",
              f"sample_rate -i {sr}", f"sample_min -i {int(pcm.min(initial=0))}",
              f"sample_max -i {int(pcm.max(initial=0))}", "sample_n_bytes -i 2",
              f"sample_byte_format -s2 {byte_format}", "sample_sig_bits -i 16",
              f"sample_coding -s{len(coding)} {coding}", "end_head"]
    head = ("\n".join(fields) + "\n").encode("ascii")
    Path(path).write_bytes(head.ljust(1024, b" ") + pcm.tobytes())


def read_any(path: Path | str, expected_sr: int | None = None) -> tuple[np.ndarray, int]:
    """SPHERE if the file starts with NIST_1A, else RIFF WAV / FLAC through soundfile."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(7)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    if head == MAGIC:
        return read_sphere(path, expected_sr)
    from .audio import read_audio

    return read_audio(path, expected_sr)
