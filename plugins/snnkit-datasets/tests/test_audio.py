"""read_audio / read_any: a WAV whose data chunk is cut short is an error naming the file and both sizes
(libsndfile alone returns the samples that are there), and well-formed variants still load."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.audio import read_audio
from snnkit_datasets.sphere import read_any


def _wav(path: Path, n=4000, sr=8000, channels=1, subtype="PCM_16") -> np.ndarray:
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(path, data, sr, subtype=subtype)
    return wave


def _data_chunk(raw: bytes) -> tuple[int, int]:
    """(offset of the samples, declared size) of a RIFF file's data chunk."""
    pos = 12
    while raw[pos : pos + 4] != b"data":
        pos += 8 + struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
    return pos + 8, struct.unpack("<I", raw[pos + 4 : pos + 8])[0]


@pytest.mark.parametrize("cut", ["half", "one byte", "header only"])
def test_wav_cut_inside_the_audio_is_an_error(tmp_path, cut):
    p = tmp_path / "clip.wav"
    _wav(p)
    raw = p.read_bytes()
    start, declared = _data_chunk(raw)
    keep = {"half": len(raw) // 2, "one byte": len(raw) - 1, "header only": start}[cut]
    p.write_bytes(raw[:keep])
    assert len(sf.read(p)[0]) < 4000 if cut != "header only" else True  # what libsndfile alone would return
    with pytest.raises(DatasetError) as err:
        read_audio(p)
    msg = str(err.value)
    assert (
        str(p) in msg and f"declares a data chunk of {declared} bytes" in msg and f"holds {keep - start} bytes" in msg
    )
    assert "4000 samples" in msg
    with pytest.raises(DatasetError, match=r"clip\.wav is truncated"):
        read_any(p)  # TIMIT/TI46/TIDIGITS files converted to WAV go through the same check


def test_stereo_float_cut_counts_frames(tmp_path):
    p = tmp_path / "st.wav"
    _wav(p, n=1000, channels=2, subtype="FLOAT")  # 8-byte frames, with a fact chunk before data
    raw = p.read_bytes()
    p.write_bytes(raw[:-20])
    with pytest.raises(DatasetError, match=r"st\.wav is truncated: .*\(1000 samples; 997 present\)"):
        read_audio(p)


def test_complete_variants_still_load(tmp_path):
    p = tmp_path / "ok.wav"
    wave = _wav(p)
    x, sr = read_audio(p)
    assert sr == 8000 and len(x) == 4000 and np.allclose(x, wave, atol=1e-4)
    # a chunk after the data (LIST metadata) and an odd-sized chunk before it (padded to even length)
    raw = p.read_bytes()
    start, declared = _data_chunk(raw)
    odd = b"junk" + struct.pack("<I", 3) + b"abc\0"
    body = raw[12 : start - 8] + odd + raw[start - 8 :] + b"LIST" + struct.pack("<I", 4) + b"INFO"
    q = tmp_path / "chunks.wav"
    q.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    assert np.array_equal(read_audio(q)[0], x)
    # a streamed WAV (data size 0xFFFFFFFF: length unknown) is not called truncated
    s = tmp_path / "stream.wav"
    s.write_bytes(raw[: start - 4] + struct.pack("<I", 0xFFFFFFFF) + raw[start:])
    assert len(read_audio(s)[0]) == 4000
    # FLAC is left to libsndfile, which reports its own truncation
    f = tmp_path / "a.flac"
    sf.write(f, wave, 8000)
    assert len(read_audio(f)[0]) == 4000
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"a\.flac"):
        read_audio(f)


def _fsdd() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = (Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "datasets") / "fsdd"
    return p if (p / "recordings").is_dir() else None


@pytest.mark.skipif(_fsdd() is None, reason="../shared/datasets/fsdd is not present")
def test_real_fsdd_file_cut_in_half(tmp_path):
    src = _fsdd() / "recordings" / "0_jackson_10.wav"
    p = tmp_path / src.name
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"0_jackson_10\.wav is truncated: its WAV header declares a data chunk of "
                       r"10902 bytes, the file holds 5429 bytes of it \(5451 samples; 2714 present\)"):
        read_audio(p)
