"""GSC loader: synthetic WAV folders in the official layout (lists, 12-class / all-word labels, silence, errors)
and the real 200-clip v0.01 sample in ../shared/datasets when it is there."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.gsc import GSC, gsc_features, pad_frames


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNKIT_DATA", raising=False)


WORDS = {"yes": 300, "go": 500, "bed": 700, "cat": 900}  # two commands, two "unknown" words


def _write_gsc(root: Path, sr=16000, noise=True, per_word=5) -> Path:
    """Clips 0, 1 of each word -> validation list, 2 -> testing list, the rest train."""
    folder = root / "gsc"
    rng = np.random.default_rng(0)
    val, test = [], []
    for w, f0 in WORDS.items():
        (folder / w).mkdir(parents=True)
        for i in range(per_word):
            n = sr if i % 2 == 0 else int(0.8 * sr)  # some clips shorter than 1 s, as in the real corpus
            t = np.arange(n) / sr
            wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(n)
            name = f"{i:08x}_nohash_0.wav"
            sf.write(folder / w / name, wave, sr, subtype="PCM_16")
            (val if i < 2 else test if i == 2 else []).append(f"{w}/{name}")
    (folder / "validation_list.txt").write_text("\n".join(val + ["zero/absent_nohash_0.wav"]) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(test) + "\n")
    if noise:
        (folder / "_background_noise_").mkdir()
        for k in range(2):
            sf.write(folder / "_background_noise_" / f"noise{k}.wav", 0.1 * rng.standard_normal(int(2.5 * sr)), sr,
                     subtype="PCM_16")
    return root


def test_splits_follow_the_lists_and_twelve_class_labels(tmp_path):
    root = _write_gsc(tmp_path)
    ds = GSC(data_dir=str(root), silence_clips=3)
    tr, va, te = (ds.load(s) for s in ("train", "val", "test"))
    assert (len(va), len(te)) == (8, 4)  # 2 + 1 per word; list entries absent on disk are ignored
    assert len(tr) == 4 * 2 + 2 * 3  # 2 clips per word + 3 silence crops from each of 2 noise files
    assert tuple(tr.x.shape[1:]) == (101, 40) and tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    names = ds.class_names
    assert names[:2] == ["unknown", "silence"] and len(names) == ds.num_classes == 12
    assert torch.bincount(tr.y, minlength=12).tolist() == [4, 6, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2]  # yes = 2, go = 11
    assert 1 not in va.y.tolist() + te.y.tolist()  # silence only in training
    x = tr.x[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(unbiased=False)) - 1) < 1e-3  # z-scored per utterance


def test_all_words_mode_and_corpus_folder_itself(tmp_path):
    root = _write_gsc(tmp_path, noise=False)
    ds = GSC(data_dir=str(root / "gsc"), classes="all")
    assert ds.class_names == ["bed", "cat", "go", "yes"] and ds.num_classes == 4
    te = ds.load("test")
    assert sorted(te.y.tolist()) == [0, 1, 2, 3]


def test_features_frames_and_padding():
    wave = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert gsc_features(wave).shape == (101, 40)  # 1 s at hop 160, centred: exactly 101 frames
    short = gsc_features(wave[:8000])
    assert short.shape == (101, 40) and np.allclose(short[60:], short[100])  # zero-padded (then z-scored) tail
    assert pad_frames(np.ones((120, 3)), 101, normalize=False).shape == (101, 3)
    assert np.array_equal(pad_frames(np.ones((2, 3)), 4, normalize=False)[2:], np.zeros((2, 3)))


def test_wrong_sample_rate_names_the_file(tmp_path):
    root = _write_gsc(tmp_path, sr=8000, per_word=1)
    with pytest.raises(
        DatasetError, match=r"00000000_nohash_0.wav has sample rate 8000 Hz; this dataset expects 16000"
    ):
        GSC(data_dir=str(root)).load("train")


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"Google Speech Commands not found: .*<word>/<speaker>_nohash_<n>.wav, "
                                           r"validation_list.txt"):
        GSC(data_dir=str(tmp_path)).load("train")
    root = _write_gsc(tmp_path / "a", noise=False, per_word=1)
    with pytest.raises(DatasetError, match=r"_background_noise_/\*.wav, which is missing or empty.*silence_clips=0"):
        GSC(data_dir=str(root)).load("train")
    (root / "gsc" / "validation_list.txt").unlink()
    with pytest.raises(DatasetError, match="validation_list.txt is missing"):
        GSC(data_dir=str(root), silence_clips=0).load("train")
    root = _write_gsc(tmp_path / "b", per_word=1)
    (root / "gsc" / "yes" / "bad name.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"unexpected file name .*bad name.wav"):
        GSC(data_dir=str(root)).load("train")
    with pytest.raises(DatasetError, match="splits"):
        GSC(data_dir=str(root)).load("validation")


def test_registered_by_name():
    from snnkit_core.contract.plugins import get_registry

    assert get_registry().get("dataset", "gsc") is GSC


# -------------------------------------------------------------------------------------------- real data


def _sample() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = (
        Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"
    ) / "speech-commands-v0.01-sample"
    return p if (p / "testing_list.txt").is_file() else None


def _hash_rule(rel: str) -> str:
    """The upstream README's partition rule (SHA-1 of the speaker part), independent of the lists."""
    base = re.sub(r"_nohash_.*$", "", rel.split("/")[1])
    pct = (int(hashlib.sha1(base.encode()).hexdigest(), 16) % (2**27)) * (100.0 / (2**27 - 1))
    return "val" if pct < 10 else "test" if pct < 20 else "train"


@pytest.mark.skipif(_sample() is None, reason="../shared/datasets/speech-commands-v0.01-sample is not present")
def test_real_sample_split_counts_match_its_lists():
    ds = GSC(data_dir=str(_sample()), classes="all")
    clips = ds.clips()
    assert len(clips) == 200 and all(split == _hash_rule(rel) for rel, split in clips)
    sizes = {s: len(ds.load(s)) for s in ds.splits}
    assert sizes == {"train": 143, "val": 28, "test": 29}
    assert ds.num_classes == 20 and ds.class_names[0] == "bed"
    tr = ds.load("train")
    assert tuple(tr.x.shape[1:]) == (101, 40) and torch.isfinite(tr.x).all()
    twelve = GSC(data_dir=str(_sample()), silence_clips=0)
    words = twelve.words()
    y = torch.tensor([twelve.label(rel.split("/")[0], words) for rel, _ in twelve.clips()])  # labels without features
    counts = torch.bincount(y, minlength=12).tolist()
    assert counts[0] == 100 and counts[1] == 0 and counts[2:] == [10] * 10  # 10 commands x 10 clips, 10 other words


# ------------------------------------------------------------------ truncated clips, cache key, progress


def test_clip_cut_mid_audio_names_the_file(tmp_path):
    root = _write_gsc(tmp_path, per_word=1, noise=False)
    bad = root / "gsc" / "go" / "00000000_nohash_0.wav"
    bad.write_bytes(bad.read_bytes()[:20000])  # of 32044 bytes
    with pytest.raises(DatasetError, match=r"go/00000000_nohash_0\.wav is truncated: .*declares a data chunk of 32000 "
                       r"bytes, the file holds 19956"):
        GSC(data_dir=str(root), silence_clips=0).load("train")


def test_same_size_rewrite_is_not_served_from_the_cache(tmp_path, progress_seen):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write_gsc(tmp_path, per_word=2)
    ds = GSC(data_dir=str(root), silence_clips=2)
    hook, seen = progress_seen
    with preprocessing_progress(hook):
        ds.load("train")
        ds.load("val")  # cached: no loop
    assert seen == [(8, 8, "gsc: clip features"), (2, 2, "gsc: background noise")]
    p = root / "gsc" / "cat" / "00000001_nohash_0.wav"
    size, mtime = p.stat().st_size, p.stat().st_mtime_ns
    wave, _ = sf.read(p)
    sf.write(p, wave, 8000, subtype="PCM_16")  # the same samples at 8 kHz: the same number of bytes
    os.utime(p, ns=(mtime + 3_000_000_000, mtime + 3_000_000_000))
    assert p.stat().st_size == size
    with pytest.raises(DatasetError, match=r"cat/00000001_nohash_0\.wav has sample rate 8000 Hz; this dataset expects "
                                           r"16000"):
        ds.load("train")


def test_disk_storage_maps_float16_features_in_the_same_order(tmp_path, monkeypatch):
    root = _write_gsc(tmp_path)
    for split in ("train", "val", "test"):
        mem = GSC(data_dir=str(root), silence_clips=3, storage="memory").load(split)
        disk = GSC(data_dir=str(root), silence_clips=3, storage="disk").load(split)
        assert disk.x.dtype == torch.float16 and torch.equal(disk.y, mem.y)
        # float16 keeps 11 significant bits: |error| <= 2^-11 |x| (z-scored features, |x| < 10)
        assert torch.allclose(disk.x.float(), mem.x, rtol=2**-11, atol=1e-7)
    files = sorted((tmp_path / "cache" / "gsc").glob("*.float16.npy"))
    assert len(files) == 3
    monkeypatch.setattr("snnkit_datasets.gsc.gsc_features", lambda *a, **k: pytest.fail("features computed again"))
    again = GSC(data_dir=str(root), silence_clips=3, storage="disk").load("test")  # mapped from the cache
    assert torch.equal(again.x, disk.x)
