"""FSDD's speaker-independent split (dataset.split=speaker): held-out speakers, manifest record, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.fsdd import FSDD


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _write(root: Path, speakers=("ann", "bob", "cid"), takes=(0, 1, 5, 6), sr=8000) -> Path:
    rec = root / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(10):
        for k, spk in enumerate(speakers):
            for take in takes:
                t = np.arange(int(sr * 0.2)) / sr
                # each speaker's "voice": a pitch offset, so the rows can be traced back to their speaker
                wave = 0.3 * np.sin(2 * np.pi * (200 + 80 * d + 1000 * k) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(rec / f"{d}_{spk}_{take}.wav", wave, sr, subtype="PCM_16")
    return root


def test_speaker_split_holds_out_whole_speakers(tmp_path):
    root = _write(tmp_path)
    std = FSDD(data_dir=str(root), n_mels=16, steps=10)
    spk = FSDD(data_dir=str(root), n_mels=16, steps=10, split="speaker", test_speakers="cid")
    assert (len(std.load("train")), len(std.load("test"))) == (10 * 3 * 2, 10 * 3 * 2)  # takes 0-4 test
    train, test = spk.load("train"), spk.load("test")
    assert (len(train), len(test)) == (10 * 2 * 4, 10 * 1 * 4)
    assert torch.bincount(test.y).tolist() == [4] * 10
    # the test rows are exactly cid's recordings: no row of train equals one of test
    every = torch.cat([std.load("train").x, std.load("test").x])
    assert len(every) == len(train) + len(test)
    assert not any(torch.equal(a, b) for a in test.x for b in train.x)
    ident = spk.identity()
    assert (
        ident["test_speakers"] == ["cid"] and ident["train_speakers"] == ["ann", "bob"] and ident["val_speakers"] == []
    )
    assert "test_speakers" not in std.identity() and spk.splits == ("train", "test")


def test_val_speakers_make_a_speaker_independent_val_split(tmp_path):
    root = _write(tmp_path)
    ds = FSDD(data_dir=str(root), n_mels=16, steps=10, split="speaker", test_speakers="cid", val_speakers="bob")
    assert ds.splits == ("train", "val", "test")
    train, val, test = ds.load("train"), ds.load("val"), ds.load("test")
    assert (len(train), len(val), len(test)) == (40, 40, 40)
    assert not any(torch.equal(a, b) for a in val.x for b in train.x)
    assert not any(torch.equal(a, b) for a in val.x for b in test.x)
    ident = ds.identity()
    assert (ident["train_speakers"], ident["val_speakers"], ident["test_speakers"]) == (["ann"], ["bob"], ["cid"])
    with pytest.raises(DatasetError, match="both a test and a val speaker"):
        FSDD(data_dir=str(root), split="speaker", test_speakers="cid", val_speakers="cid").load("val")
    with pytest.raises(DatasetError, match="at least one for training"):
        FSDD(data_dir=str(root), split="speaker", test_speakers="cid", val_speakers="ann,bob").load("val")
    with pytest.raises(DatasetError, match="needs split=speaker"):
        FSDD(data_dir=str(root), val_speakers="bob")


@pytest.mark.parametrize("value, message", [("zed", "unknown: zed"), ("ann,bob,cid", "at least one for training"),
                                            (" , ", "one or more")])
def test_bad_test_speakers_name_the_speakers_present(tmp_path, value, message):
    root = _write(tmp_path, takes=(0,))
    ds = FSDD(data_dir=str(root), n_mels=16, steps=10, split="speaker", test_speakers=value)
    with pytest.raises(DatasetError, match=message) as exc:
        ds.load("test")
    assert "ann, bob, cid" in str(exc.value)


def test_split_choice_is_checked():
    from snnkit_core.contract.errors import ConfigError

    with pytest.raises(ConfigError, match="takes, speaker"):
        FSDD(split="speakers")


def test_training_run_records_the_held_out_speakers(tmp_path):
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    root = _write(tmp_path)
    cfg = TrainConfig(dataset="fsdd", data_dir=str(root), hidden=(8, 8, 8), epochs=1, device="cpu",
                      params={"dataset": {"split": "speaker", "test_speakers": "bob", "n_mels": 8, "steps": 10}})
    list(train(cfg, tmp_path / "run"))
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["dataset"]["test_speakers"] == ["bob"] and man["dataset"]["train_speakers"] == ["ann", "cid"]
    assert man["validation"]["counts"] == {"train": 70, "val": 10, "test": 40}  # one per class: round(0.1 x 8)
    # with val_speakers the dataset's own val split is used: the epoch is chosen on an unheard voice
    cfg = cfg.evolve(params={"dataset": {**cfg.params["dataset"], "val_speakers": "cid"}})
    list(train(cfg, tmp_path / "run2"))
    man = json.loads((tmp_path / "run2" / "manifest.json").read_text())
    assert man["validation"]["source"] == "dataset" and man["validation"]["counts"] == {"train": 40, "val": 40,
                                                                                        "test": 40}
    assert man["dataset"]["val_speakers"] == ["cid"]


def _shared() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
    return p if (p / "fsdd" / "recordings").is_dir() else None


@pytest.mark.skipif(_shared() is None, reason="../shared/datasets/fsdd is not present")
def test_real_fsdd_speaker_split_default_speakers():
    files = sorted((_shared() / "fsdd" / "recordings").glob("*.wav"))
    ds = FSDD(data_dir=str(_shared()), split="speaker")
    assert ds.held_out_speakers(files) == ["george", "jackson"]
    n_test = sum(1 for p in files if p.name.split("_")[1] in ("george", "jackson"))
    assert n_test == 1000
