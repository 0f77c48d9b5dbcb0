"""FSDD loader: split sizes and shapes on synthetic WAVs in the real layout, errors, and the real copy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snnkit_core.errors import DatasetError
from snnkit_datasets.download import extract
from snnkit_datasets.fsdd import FSDD


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _write_fsdd(root: Path, speakers=("ann", "bob"), takes=range(0, 7), sr=8000) -> Path:
    rec = root / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(10):
        for spk in speakers:
            for take in takes:
                t = np.arange(int(sr * rng.uniform(0.2, 0.5))) / sr
                wave = 0.3 * np.sin(2 * np.pi * (200 + 80 * d) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(rec / f"{d}_{spk}_{take}.wav", wave, sr, subtype="PCM_16")
    return root


def test_split_sizes_and_shapes(tmp_path):
    root = _write_fsdd(tmp_path)
    ds = FSDD(data_dir=str(root), n_mels=16, steps=20)
    train, test = ds.load("train"), ds.load("test")
    assert len(test) == 10 * 2 * 5 and len(train) == 10 * 2 * 2  # takes 0-4 test, 5-6 train
    assert tuple(train.x.shape[1:]) == (20, 16) and train.x.dtype.is_floating_point
    assert sorted(set(test.y.tolist())) == list(range(10))
    # --data-dir may also point at the corpus folder itself
    assert len(FSDD(data_dir=str(root / "fsdd"), n_mels=16, steps=20).load("test")) == 100


def test_wrong_sample_rate_names_the_file(tmp_path):
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0], sr=16000)
    with pytest.raises(DatasetError, match=r"0_ann_0\.wav has sample rate 16000 Hz; this dataset expects 8000"):
        FSDD(data_dir=str(root)).load("test")


def test_truncated_wav_is_an_error(tmp_path):
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0])
    bad = root / "fsdd" / "recordings" / "3_ann_0.wav"
    bad.write_bytes(bad.read_bytes()[:30])
    with pytest.raises(DatasetError, match="3_ann_0.wav"):
        FSDD(data_dir=str(root)).load("test")


def test_missing_directory_names_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"fsdd/recordings/ holding \{digit\}_\{speaker\}_\{take\}.wav"):
        FSDD(data_dir=str(tmp_path)).load("train")


def test_archive_extraction_refuses_path_traversal(tmp_path):
    import tarfile

    evil = tmp_path / "evil.tar"
    payload = tmp_path / "x.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tf:
        tf.add(payload, arcname="../../escape.txt")
    with pytest.raises(DatasetError, match="outside"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path.parent / "escape.txt").exists()


def _shared() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
    return p if (p / "fsdd" / "recordings").is_dir() else None


@pytest.mark.skipif(_shared() is None, reason="../shared/datasets/fsdd is not present")
def test_real_fsdd_official_split():
    ds = FSDD(data_dir=str(_shared()))
    train, test = ds.load("train"), ds.load("test")
    assert (len(train), len(test)) == (2700, 300)
    assert tuple(train.x.shape[1:]) == (100, 40)
    assert np.bincount(test.y.numpy()).tolist() == [30] * 10
