"""TIDIGITS isolated-digit loader on synthetic files in the LDC93S10 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.sphere import write_sphere
from snnkit_datasets.tidigits import TIDigits, nrr_fbank

SR = 20000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _wave(k, dur=0.1):
    t = np.arange(int(SR * dur)) / SR
    return 0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t)


def _write(root: Path, sr=SR) -> Path:
    digits = ["z", "1", "2", "o"]
    for split, group, spk in (("train", "man", "ae"), ("train", "girl", "bf"), ("test", "woman", "ac")):
        d = root / "tidigits" / split / group / spk
        d.mkdir(parents=True)
        for k, ch in enumerate(digits):
            for prod in "ab":
                write_sphere(d / f"{ch}{prod}.wav", _wave(k), sr)  # SPHERE with a .wav suffix, as on the CD
        write_sphere(d / "12za.wav", _wave(0), sr)  # connected digits: ignored
    sf.write(root / "tidigits" / "test" / "woman" / "ac" / "9a.wav", _wave(5), sr, subtype="PCM_16")  # RIFF copy
    return root


def test_isolated_digits_classes_and_splits(tmp_path):
    root = _write(tmp_path)
    ds = TIDigits(data_dir=str(root), channels=16, steps=20)
    assert ds.num_classes == 11 and ds.class_names[0] == "zero" and ds.class_names[10] == "oh"
    tr, te = ds.load("train"), ds.load("test")
    assert len(tr) == 2 * 4 * 2 and len(te) == 4 * 2 + 1
    assert tuple(tr.x.shape[1:]) == (20, 16)
    assert sorted(set(tr.y.tolist())) == [0, 1, 2, 10] and 9 in te.y.tolist()
    no_oh = TIDigits(data_dir=str(root / "tidigits"), include_oh=False, features="nrr-fbank")
    x = no_oh.load("train")
    assert no_oh.num_classes == 10 and 10 not in x.y.tolist() and tuple(x.x.shape[1:]) == (39, 39)
    rnd = TIDigits(data_dir=str(root), split="random", channels=8, steps=10)
    a, b = rnd.load("train"), rnd.load("test")
    assert len(a) + len(b) == 25 and len(a) == round(0.7 * 25)


def test_nrr_fbank_is_l1_normalised_per_band():
    f = nrr_fbank(_wave(3, 0.4) + 0.01, SR)
    assert f.shape == (39, 39) and np.allclose(f.sum(axis=0), 1.0, atol=1e-5) and (f >= 0).all()


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"\{man,woman,boy,girl\}/<speaker>/<digit><a\|b>\.wav"):
        TIDigits(data_dir=str(tmp_path)).load("train")
    root = _write(tmp_path / "r", sr=16000)
    with pytest.raises(DatasetError, match=r"has sample rate 16000 Hz; this dataset expects 20000"):
        TIDigits(data_dir=str(root)).load("test")


def test_preprocessing_reports_each_file(tmp_path, progress_seen):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write(tmp_path)
    hook, seen = progress_seen
    with preprocessing_progress(hook):
        TIDigits(data_dir=str(root), channels=8, steps=10).load("test")
    assert seen == [(9, 9, "tidigits/test: log-mel")]
