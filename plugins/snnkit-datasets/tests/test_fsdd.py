"""FSDD loader: split sizes and shapes on synthetic WAVs in the real layout, errors, and the real copy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snnkit_core.contract.errors import DatasetError
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


# ------------------------------------------------------------------ truncated audio, cache key, progress


def test_wav_cut_mid_audio_names_the_file_and_both_sizes(tmp_path):
    # libsndfile alone loads such a file as the first half of the audio, silently
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0])
    bad = root / "fsdd" / "recordings" / "4_ann_0.wav"
    raw = bad.read_bytes()
    declared = int.from_bytes(raw[40:44], "little")  # the data chunk's size, right after a 16-byte fmt chunk
    assert raw[36:40] == b"data" and declared == len(raw) - 44
    bad.write_bytes(raw[: len(raw) // 2])
    present = len(raw) // 2 - 44
    with pytest.raises(DatasetError, match=rf"4_ann_0\.wav is truncated: .*declares a data chunk of {declared} bytes, "
                       rf"the file holds {present} bytes"):
        FSDD(data_dir=str(root)).load("test")


def _rewrite(path: Path, wave, sr: int, mtime_ns: int | None = None) -> None:
    size = path.stat().st_size
    sf.write(path, wave, sr, subtype="PCM_16")
    assert path.stat().st_size == size  # same size: a key of names and sizes would not see the change
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


class _Recorder:
    """A preprocessing progress hook that records (total, description, items seen) per loop."""

    def __init__(self):
        self.calls = []

    def __call__(self, iterable, total=None, description=""):
        seen = []
        self.calls.append((total, description, seen))
        for item in iterable:
            seen.append(item)
            yield item


def _cache_files(tmp_path) -> list[Path]:
    return sorted((tmp_path / "cache" / "fsdd").glob("*.pt"))


def test_same_size_rewrite_at_another_rate_is_not_served_from_the_cache(tmp_path):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0])
    ds = FSDD(data_dir=str(root), n_mels=16, steps=20)
    ds.load("test")
    p = root / "fsdd" / "recordings" / "7_ann_0.wav"
    wave, _ = sf.read(p)
    _rewrite(p, wave, 16000, mtime_ns=p.stat().st_mtime_ns + 5_000_000_000)  # same samples and bytes, new rate
    rec = _Recorder()
    with pytest.raises(DatasetError, match=r"7_ann_0\.wav has sample rate 16000 Hz; this dataset expects 8000"):
        with preprocessing_progress(rec):
            ds.load("test")
    assert rec.calls and rec.calls[0][0] == 10  # it recomputed instead of returning the stale features


def test_cache_key_follows_mtime_and_content(tmp_path):
    from snnkit_core.contract.dataset import preprocessing_progress

    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0])
    ds = FSDD(data_dir=str(root), n_mels=16, steps=20)
    files = ds.files()
    first = ds.load("test").x.clone()
    key0 = ds._cache_params(files)
    assert len(_cache_files(tmp_path)) == 1
    p = root / "fsdd" / "recordings" / "2_ann_0.wav"
    st = p.stat()

    # 1. the same bytes, touched: the stat identity changes, so the key does, and the loader recomputes
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    key1 = ds._cache_params(files)
    assert key1["files"] != key0["files"] and key1["sha256"] == key0["sha256"]
    rec = _Recorder()
    with preprocessing_progress(rec):
        again = ds.load("test")
    assert [c[0] for c in rec.calls] == [10] and len(_cache_files(tmp_path)) == 2
    assert torch.equal(again.x, first)

    # 2. other audio of the same size with the old mtime restored (cp -p, rsync -t): FSDD's content digest catches it
    wave, sr = sf.read(p)
    _rewrite(p, -wave[::-1], sr, mtime_ns=st.st_mtime_ns + 7_000_000_000)
    key2 = ds._cache_params(files)
    assert key2["files"] == key1["files"] and key2["sha256"] != key1["sha256"]
    rec = _Recorder()
    with preprocessing_progress(rec):
        changed = ds.load("test")
    assert [c[0] for c in rec.calls] == [10] and len(_cache_files(tmp_path)) == 3
    assert not torch.equal(changed.x, first)


def test_progress_hook_sees_every_file_once_and_no_hook_changes_nothing(tmp_path, monkeypatch):
    from snnkit_core.contract.dataset import preprocessing_progress, track

    root = _write_fsdd(tmp_path)  # 10 digits x 2 speakers x 7 takes
    items = [1, 2, 3]
    assert track(items, 3, "x") is items  # no hook: the iterable itself
    rec = _Recorder()
    with preprocessing_progress(rec):
        hooked = FSDD(data_dir=str(root), n_mels=16, steps=20).load("train")
        FSDD(data_dir=str(root), n_mels=16, steps=20).load("test")  # from the cache: no loop, no call
    assert len(rec.calls) == 1
    total, description, seen = rec.calls[0]
    assert total == len(seen) == 140 and len(set(seen)) == 140 and "fsdd" in description
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache2"))  # computed again, outside the hook
    plain = FSDD(data_dir=str(root), n_mels=16, steps=20).load("train")
    assert len(rec.calls) == 1 and torch.equal(plain.x, hooked.x) and torch.equal(plain.y, hooked.y)


def test_load_splits_passes_progress_through(tmp_path):
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.data import load_protocol_splits
    from snnkit_core.engine.training import build

    root = _write_fsdd(tmp_path, speakers=("ann",), takes=range(0, 6))
    cfg = TrainConfig(dataset="fsdd", data_dir=str(root), hidden=(4, 4, 4), epochs=1, device="cpu", val_fraction=0.0,
                      params={"dataset": {"n_mels": 8, "steps": 10}})
    rec = _Recorder()
    train, _, test, _ = load_protocol_splits(build(cfg), progress=rec)
    assert (len(train), len(test)) == (10, 50)
    assert [c[0] for c in rec.calls] == [60]  # one pass over all files (both splits share the cache entry)
    again = load_protocol_splits(build(cfg))  # progress=None: works, and the cached load reports nothing
    assert torch.equal(again[0].x, train.x) and len(rec.calls) == 1


def test_data_prepare_drives_a_progress_bar(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import snnkit_cli.data_cmds as data_cmds
    import snnkit_cli.main as cli_main

    root = _write_fsdd(tmp_path, speakers=("ann",), takes=range(0, 6))
    calls = []

    class Recording(data_cmds.RichProgress):
        def __call__(self, iterable, total=None, description=""):
            calls.append((total, description))
            yield from iterable

    monkeypatch.setattr(data_cmds, "RichProgress", Recording)  # the data command's module renders the bar
    res = CliRunner().invoke(cli_main.cli, ["data", "prepare", "fsdd", "--data-dir", str(root), "--set", "n_mels=8"])
    assert res.exit_code == 0, res.output
    assert (60, "fsdd: log-mel features") in calls and (1, "preparing fsdd/train") in calls
    assert "fsdd/test: 50 examples" in res.output


# ---- ST-RSBP's front-end: Lyon cochleagram features and BSA spikes (ti46.py's pipeline, shared)


def test_cochlea_features_and_bsa_spikes(tmp_path):
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=range(0, 6))
    ds = FSDD(data_dir=str(root), features="cochlea", channels=24, steps=30)
    assert ds.input_size == 24
    real = ds.load("test")
    assert tuple(real.x.shape[1:]) == (30, 24) and float(real.x.max()) > 0
    # the same numbers as the TI46 pipeline on the same wave (no second copy of the front-end)
    from snnkit_datasets.audio import read_audio
    from snnkit_datasets.ti46 import encode_bsa, speech_features

    files = sorted((root / "fsdd" / "recordings").glob("*.wav"))
    first_test = next(p for p in files if p.stem.endswith("_0"))
    wave, sr = read_audio(first_test, 8000)
    np.testing.assert_allclose(real.x[0].numpy(), speech_features(wave, sr, "cochlea", 24, 30), rtol=1e-6)
    spikes = FSDD(data_dir=str(root), features="cochlea", channels=24, steps=30, encoding="bsa").load("test")
    assert set(spikes.x.unique().tolist()) <= {0.0, 1.0} and float(spikes.x.sum()) > 0
    torch.testing.assert_close(spikes.x, encode_bsa(real.x))


def test_default_stays_log_mel(tmp_path):
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=range(0, 6))
    ds = FSDD(data_dir=str(root), n_mels=16, steps=20)
    assert ds.hparams["features"] == "log-mel" and ds.hparams["encoding"] == "real" and ds.input_size == 16
    x = ds.load("test").x
    assert tuple(x.shape[1:]) == (20, 16) and float(x.min()) < 0  # log-mel values, not spikes


def test_too_many_cochlea_channels_for_8khz_is_a_clear_error(tmp_path):
    root = _write_fsdd(tmp_path, speakers=("ann",), takes=[0])
    with pytest.raises(ValueError, match="Lyon channels do not fit"):
        FSDD(data_dir=str(root), features="cochlea", channels=78).load("test")
