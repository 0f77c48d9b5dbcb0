"""TI46 loaders on synthetic SPHERE files in the LDC93S9 layout, and the SPHERE reader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.sphere import parse_header, read_any, read_sphere, write_sphere
from snnkit_datasets.ti46 import TI46Alpha, TI46Digits


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _tone(f, sr=12500, dur=0.12, seed=0):
    t = np.arange(int(sr * dur)) / sr
    return 0.3 * np.sin(2 * np.pi * f * t) + 0.005 * np.random.default_rng(seed).standard_normal(t.size)


def _write_ti46(root: Path, sr=12500) -> Path:
    """ti20: digits 00-02 plus one command word (10, ignored); ti_alpha: letters a-c. Speakers f1, m2."""
    for sub, codes in (("ti20", ["00", "01", "02", "10"]), ("ti_alpha", ["0a", "0b", "0c"])):
        for spk in ("f1", "m2"):
            for i, code in enumerate(codes):
                tr = root / "ti46" / sub / "train" / spk
                te = root / "ti46" / sub / "test" / spk
                tr.mkdir(parents=True, exist_ok=True)
                te.mkdir(parents=True, exist_ok=True)
                for tok in range(2):
                    write_sphere(tr / f"{code}{spk}set{tok}.sph", _tone(300 + 400 * i, sr, seed=tok), sr)
                write_sphere(te / f"{code}{spk}s1t0.sph", _tone(300 + 400 * i, sr), sr)
                write_sphere(te / f"{code}{spk}s2t1.sph", _tone(300 + 400 * i, sr, seed=5), sr)
    return root


def test_sphere_header_and_samples_round_trip(tmp_path):
    w = np.linspace(-0.5, 0.5, 1000)
    for order in ("01", "10"):
        p = tmp_path / f"x{order}.sph"
        write_sphere(p, w, 16000, byte_format=order)
        h = parse_header(p.read_bytes(), p)
        assert h["header_size"] == 1024 and h["sample_rate"] == 16000 and h["sample_count"] == 1000
        assert h["sample_n_bytes"] == 2 and h["sample_byte_format"] == order and h["sample_coding"] == "pcm"
        x, sr = read_sphere(p)
        assert sr == 16000 and np.allclose(x, w, atol=1e-4)
    # libsndfile agrees on the uncompressed file, and read_any dispatches both ways
    import soundfile as sf

    ref, _ = sf.read(str(tmp_path / "x01.sph"))
    assert np.allclose(ref, read_any(tmp_path / "x01.sph")[0], atol=1e-6)
    sf.write(tmp_path / "y.wav", w, 8000, subtype="PCM_16")
    assert read_any(tmp_path / "y.wav")[1] == 8000


def test_sphere_errors_name_the_file(tmp_path):
    p = tmp_path / "cut.sph"
    write_sphere(p, np.zeros(500), 12500)
    p.write_bytes(p.read_bytes()[:1500])
    with pytest.raises(DatasetError, match=r"cut\.sph is truncated"):
        read_sphere(p)
    p.write_bytes(p.read_bytes()[:600])
    with pytest.raises(DatasetError, match=r"cut\.sph is truncated"):
        read_sphere(p)
    q = tmp_path / "shn.sph"
    write_sphere(q, np.zeros(10), 12500, coding="pcm,embedded-shorten-v2.00")
    with pytest.raises(DatasetError, match="shn.sph is compressed.*sph2pipe"):
        read_sphere(q)
    r = tmp_path / "no.sph"
    r.write_bytes(b"RIFF....")
    with pytest.raises(DatasetError, match="not a NIST SPHERE"):
        read_sphere(r)


def test_ti46_splits_labels_and_shapes(tmp_path):
    root = _write_ti46(tmp_path)
    alpha = TI46Alpha(data_dir=str(root))
    assert alpha.num_classes == 26 and alpha.input_size == 78 and alpha.class_names[:3] == ["a", "b", "c"]
    tr, te = alpha.load("train"), alpha.load("test")
    assert len(tr) == 3 * 2 * 2 and len(te) == 3 * 2 * 2
    assert tuple(tr.x.shape[1:]) == (100, 78) and tr.x.min() >= 0 and sorted(set(tr.y.tolist())) == [0, 1, 2]
    digits = TI46Digits(data_dir=str(root / "ti46"), features="log-mel", channels=20, steps=30)
    d = digits.load("train")
    assert digits.num_classes == 10 and len(d) == 3 * 2 * 2 and tuple(d.x.shape[1:]) == (30, 20)  # code 10 ignored
    assert sorted(set(d.y.tolist())) == [0, 1, 2]
    spikes = TI46Digits(data_dir=str(root), encoding="bsa").load("test")
    assert set(np.unique(spikes.x.numpy())) <= {0.0, 1.0} and spikes.x.sum() > 0
    ident = digits.identity()
    assert ident["train_files"] == 12 and ident["test_files"] == 12


def test_ti46_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"ti46/ti_alpha/\{train,test\}/<speaker"):
        TI46Alpha(data_dir=str(tmp_path)).load("train")
    root = tmp_path / "r"
    spk = root / "ti46" / "ti20" / "train" / "f1"
    spk.mkdir(parents=True)
    write_sphere(spk / "00f1set0.sph", _tone(500, 16000), 16000)
    with pytest.raises(DatasetError, match=r"00f1set0\.sph has sample rate 16000 Hz; this dataset expects 12500"):
        TI46Digits(data_dir=str(root)).load("train")
    write_sphere(spk / "zero_f1.sph", _tone(500), 12500)
    with pytest.raises(DatasetError, match="unexpected file name .*zero_f1.sph"):
        TI46Digits(data_dir=str(root)).load("train")


def test_same_size_rewrite_recomputes_and_progress_names_the_split(tmp_path, progress_seen):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write_ti46(tmp_path)
    ds = TI46Digits(data_dir=str(root), features="log-mel", channels=8, steps=10)
    hook, seen = progress_seen
    with preprocessing_progress(hook):
        ds.load("train")
        ds.load("train")  # cached
    assert seen == [(12, 12, "ti46-digits/train: log-mel")]
    p = root / "ti46" / "ti20" / "train" / "m2" / "01m2set1.sph"
    size, mtime = p.stat().st_size, p.stat().st_mtime_ns
    write_sphere(p, _tone(700, 16000, dur=0.12 * 12500 / 16000), 16000)  # "-i 16000" is as long as "-i 12500"
    os.utime(p, ns=(mtime + 3_000_000_000, mtime + 3_000_000_000))
    assert p.stat().st_size == size
    with pytest.raises(DatasetError, match=r"01m2set1\.sph has sample rate 16000 Hz; this dataset expects 12500"):
        ds.load("train")
