"""The shipped espeak-digits set: size, split by voice, class coverage, loader contract and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cache_path
from snnkit_datasets.espeak_digits import DATA_FILE, EspeakDigits


@pytest.fixture(scope="module")
def npz() -> dict[str, np.ndarray]:
    with np.load(DATA_FILE) as f:
        return {k: f[k] for k in f.files}


def test_file_is_small_enough_to_ship():
    assert DATA_FILE.stat().st_size < 5_000_000


def test_counts_classes_and_voices(npz):
    labels, split = npz["labels"], npz["split"]
    assert len(labels) >= 1000
    assert len(np.unique(labels)) >= 10
    assert len(npz["voice_names"]) >= 8
    assert (split == 0).sum() == 1120 and (split == 1).sum() == 320
    for s in (0, 1):
        assert set(np.unique(labels[split == s])) == set(range(10)), "every class must appear in both splits"


def test_split_is_by_voice(npz):
    train_voices = set(np.unique(npz["voice"][npz["split"] == 0]))
    test_voices = set(np.unique(npz["voice"][npz["split"] == 1]))
    assert train_voices and test_voices
    assert not train_voices & test_voices


def test_offsets_and_audio(npz):
    offsets = npz["offsets"]
    assert offsets[0] == 0 and offsets[-1] == len(npz["audio"]) and np.all(np.diff(offsets) > 0)
    assert int(npz["sample_rate"]) == 8000
    seconds = np.diff(offsets) / 8000
    assert 0.2 < seconds.min() and seconds.max() < 2.0


def test_load_shapes_dtypes_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path))
    ds = EspeakDigits(n_mels=16, steps=20)  # small front-end: the same code path, less work
    assert ds.num_classes == 10 and ds.input_size == 16
    assert ds.class_names[0] == "zero" and ds.class_names[9] == "nine"
    train = ds.load("train")
    assert train.x.shape == (1120, 20, 16) and train.x.dtype == torch.float32
    assert train.y.shape == (1120,) and train.y.dtype == torch.int64
    assert torch.isfinite(train.x).all()

    key = {"n_mels": 16, "steps": 20, "sha256": ds.sha256, "v": 1}
    path = cache_path("espeak-digits", key)
    assert path.is_file() and path.is_relative_to(tmp_path)
    stamp = path.stat().st_mtime_ns
    test = EspeakDigits(n_mels=16, steps=20).load("test")  # a fresh instance reads the cache
    assert test.x.shape == (320, 20, 16) and set(test.y.tolist()) == set(range(10))
    assert path.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.rglob("*.pt"))) == 1


def test_identity(npz):
    ident = EspeakDigits().identity()
    assert ident["name"] == "espeak-digits"
    assert ident["counts"] == {"train": 1120, "test": 320}
    assert ident["audio_sha256"] == str(npz["audio_sha256"])
    assert len(ident["sha256"]) == 64


def test_bad_split_and_missing_or_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError):
        EspeakDigits().load("validation")
    ds = EspeakDigits()
    ds.path = tmp_path / "espeak_digits.npz"
    with pytest.raises(DatasetError, match="missing"):
        ds.load("train")
    ds.path.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="unreadable"):
        ds.load("train")
