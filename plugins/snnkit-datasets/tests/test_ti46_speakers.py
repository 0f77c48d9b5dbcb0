"""TI46's speaker-independent split (dataset.split=speaker) on synthetic SPHERE files in the LDC layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.sphere import write_sphere
from snnkit_datasets.ti46 import TI46Digits


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _write(root: Path, speakers=("f1", "m1", "f2"), sr=12500) -> Path:
    """ti20 digits 00-01; per speaker 2 train tokens and 1 test token; each speaker has its own pitch."""
    for k, spk in enumerate(speakers):
        for i, code in enumerate(("00", "01")):
            tr, te = (root / "ti46" / "ti20" / s / spk for s in ("train", "test"))
            tr.mkdir(parents=True, exist_ok=True)
            te.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(sr * 0.1)) / sr
            wave = 0.3 * np.sin(2 * np.pi * (300 + 400 * i + 1500 * k) * t)
            for tok in range(2):
                write_sphere(tr / f"{code}{spk}set{tok}.sph", wave * (1 + 0.1 * tok), sr)
            write_sphere(te / f"{code}{spk}s1t0.sph", wave * 0.9, sr)
    return root


def test_speaker_split_pools_both_folders_and_holds_out_whole_speakers(tmp_path):
    root = _write(tmp_path)
    kw = dict(data_dir=str(root), features="log-mel", channels=8, steps=10)
    corpus = TI46Digits(**kw)
    assert (len(corpus.load("train")), len(corpus.load("test"))) == (3 * 2 * 2, 3 * 2 * 1)
    ds = TI46Digits(split="speaker", test_speakers="m1", **kw)
    train, test = ds.load("train"), ds.load("test")
    assert (len(train), len(test)) == (2 * 2 * 3, 1 * 2 * 3)  # a speaker's 2 train + 1 test tokens per word
    assert torch.bincount(test.y).tolist() == [3, 3]
    assert not any(torch.equal(a, b) for a in test.x for b in train.x)
    ident = ds.identity()
    assert ident["test_speakers"] == ["m1"] and ident["train_speakers"] == ["f1", "f2"]


@pytest.mark.parametrize("value, message", [("m9", "unknown: m9"), ("f1,m1,f2", "not all")])
def test_bad_test_speakers(tmp_path, value, message):
    root = _write(tmp_path)
    ds = TI46Digits(data_dir=str(root), features="log-mel", channels=8, steps=10, split="speaker", test_speakers=value)
    with pytest.raises(DatasetError, match=message) as exc:
        ds.load("test")
    assert "f1, f2, m1" in str(exc.value)
