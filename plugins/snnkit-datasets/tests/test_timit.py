"""TIMIT frame-level phone loader on synthetic files in the LDC93S1 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.sphere import write_sphere
from snnkit_datasets.timit import FOLD, PHONES_39, PHONES_61, TIMIT, frame_labels, windows

SR = 16000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _utt(d: Path, name: str, sr=SR):
    """0.3 s: h# 0-800, q 800-1600, iy 1600-3200, ix 3200-4000, h# 4000-4800 samples -> 29 frames (10 ms),
    5 of them q."""
    rng = np.random.default_rng(len(name))
    write_sphere(d / f"{name}.WAV", 0.1 * rng.standard_normal(int(0.3 * sr)), sr)
    (d / f"{name}.PHN").write_text("0 800 h#\n800 1600 q\n1600 3200 iy\n3200 4000 ix\n4000 4800 h#\n")


def _write(root: Path, sr=SR) -> Path:
    for split, spk in (("TRAIN", "FCJF0"), ("TRAIN", "MDAC0"), ("TEST", "MDAB0"), ("TEST", "FAKS0")):
        d = root / "timit" / split / "DR1" / spk
        d.mkdir(parents=True)
        for u in ("SA1", "SI1027", "SX127"):
            _utt(d, u, sr)
    return root


def test_folding_table():
    assert len(PHONES_61) == 61 and len(PHONES_39) == 39
    assert (
        FOLD["ao"] == "aa" and FOLD["ix"] == "ih" and FOLD["zh"] == "sh" and FOLD["h#"] == "sil" and FOLD["q"] is None
    )
    assert FOLD["epi"] == FOLD["pau"] == FOLD["bcl"] == "sil" and FOLD["nx"] == FOLD["en"] == "n"


def test_frame_labels_by_centre_sample():
    segs = [(0, 800, "h#"), (800, 1600, "q"), (1600, 3200, "iy"), (3200, 4000, "ix"), (4000, 4800, "h#")]
    lab = frame_labels(segs, 30)
    sil, iy, ih = (PHONES_39.index(p) for p in ("sil", "iy", "ih"))
    # frame i centres at 160 i + 200 samples
    assert lab[0] == sil and lab[3] == sil and lab[4] == -1 and lab[8] == -1 and lab[9] == iy and lab[18] == iy
    assert lab[19] == ih and lab[23] == ih and lab[24] == sil and lab[29] == sil


def test_windows_splits_and_labels(tmp_path):
    root = _write(tmp_path)
    ds = TIMIT(data_dir=str(root))
    assert ds.num_classes == 39 and ds.input_size == 39
    tr = ds.load("train")
    # 2 speakers x 2 SI/SX utterances x (29 frames - 5 q frames); SA dropped
    assert len(tr) == 2 * 2 * 24 and tuple(tr.x.shape[1:]) == (11, 39)
    assert tr.x.storage_offset() == 0 and tr.x.stride(0) == 39  # a view of the frame stream
    assert set(tr.y.tolist()) == {PHONES_39.index(p) for p in ("sil", "iy", "ih")}
    te = ds.load("test")
    assert len(te) == 2 * 24  # core test set: MDAB0 only
    assert len(TIMIT(data_dir=str(root / "timit"), test_set="full", include_sa=True).load("test")) == 2 * 3 * 24
    # a redistributed copy: timit/data/TRAIN/..., with RIFF duplicates named SI1027.WAV.wav
    import shutil

    import soundfile as sf

    alt = tmp_path / "alt" / "timit" / "data"
    shutil.copytree(root / "timit", alt)
    sf.write(alt / "TRAIN" / "DR1" / "FCJF0" / "SI1027.WAV.wav", np.zeros(4800), SR, subtype="PCM_16")
    assert len(TIMIT(data_dir=str(tmp_path / "alt")).load("train")) == len(tr)
    causal = TIMIT(data_dir=str(root), window=4, label_at="last", stride=2).load("train")
    assert len(causal) == 48 and tuple(causal.x.shape[1:]) == (4, 39)
    # the label frame is the last of a causal window and the centre of a centred one
    frames = tr.x[:, 5]
    assert np.allclose(causal.x[1, -1].numpy(), frames[2].numpy())


def test_windows_view_matches_gathered_frames():
    import torch

    f = torch.arange(20.0).reshape(10, 2)
    d = windows(f, torch.arange(10), 3)
    assert len(d) == 10 and d.x[0, :, 0].tolist() == [0, 0, 2] and d.x[4, :, 0].tolist() == [6, 8, 10]
    assert d.x[9, :, 0].tolist() == [16, 18, 18]


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"timit/\{TRAIN,TEST\}/DR<1-8>/<speaker>/<utterance>\.\{WAV,PHN\}"):
        TIMIT(data_dir=str(tmp_path)).load("train")
    root = _write(tmp_path / "a")
    (root / "timit" / "TRAIN" / "DR1" / "FCJF0" / "SI1027.PHN").unlink()
    with pytest.raises(DatasetError, match=r"SI1027\.WAV has no matching \.PHN"):
        TIMIT(data_dir=str(root)).load("train")
    root = _write(tmp_path / "b", sr=8000)
    with pytest.raises(DatasetError, match="sample rate 8000 Hz; this dataset expects 16000"):
        TIMIT(data_dir=str(root)).load("train")
    root = _write(tmp_path / "c")
    (root / "timit" / "TEST" / "DR1" / "MDAB0" / "SX127.PHN").write_text("0 800 xyz\n")
    with pytest.raises(DatasetError, match=r"SX127\.PHN:1: expected"):
        TIMIT(data_dir=str(root)).load("test")


def test_preprocessing_reports_each_utterance(tmp_path, progress_seen):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write(tmp_path)
    hook, seen = progress_seen
    with preprocessing_progress(hook):
        TIMIT(data_dir=str(root)).load("train")
    assert seen == [(4, 4, "timit: MFCC frames")]
