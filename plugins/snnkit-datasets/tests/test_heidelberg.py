"""SHD / SSC loaders on synthetic hdf5 files in the published format (vlen spike times and units)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.heidelberg import SHD, SSC, bin_events


def _write(path: Path, n: int, classes: int, seed: int = 0, drop: str | None = None):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = (
            f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
            if drop != "spikes/times"
            else None
        )
        units = (
            f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16)) if drop != "spikes/units" else None
        )
        for i in range(n):
            k = int(rng.integers(5, 40))
            t = np.sort(rng.uniform(0, 1.5, k)).astype(np.float32)
            if times is not None:
                times[i] = t
            if units is not None:
                units[i] = rng.integers(0, 700, k).astype(np.uint16)
        if drop != "labels":
            f.create_dataset("labels", data=(np.arange(n) % classes).astype(np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, dtype=np.uint16))


def test_binning_counts_and_channel_groups():
    times = [np.array([0.0, 0.0, 0.0055, 0.7, 1.3999, 1.4, 2.0]), np.array([], dtype=np.float32)]
    units = [np.array([0, 0, 4, 699, 5, 3, 3]), np.array([], dtype=np.uint16)]
    x = bin_events(times, units, 250, 1.4)
    assert x.shape == (2, 250, 700) and x[0, 0, 0] == 2 and x[0, 0, 4] == 1  # 0.0055 s is in bin 0 (width 5.6 ms)
    assert x[0, 125, 699] == 1 and x[0, 249, 5] == 1 and x.sum() == 5  # t >= 1.4 s dropped
    g = bin_events(times, units, 250, 1.4, channel_bins=140)
    assert g.shape == (2, 250, 140) and g[0, 0, 0] == 3 and g[0, 249, 1] == 1 and g[0, 125, 139] == 1
    assert bin_events(times, units, 250, 1.4, binary=True)[0, 0, 0] == 1
    with pytest.raises(DatasetError, match="divide 700"):
        bin_events(times, units, 10, 1.4, channel_bins=300)


def test_shd_splits_val_held_out_from_train(tmp_path):
    _write(tmp_path / "shd" / "shd_train.h5", 40, 20)
    _write(tmp_path / "shd" / "shd_test.h5", 12, 20, seed=1)
    ds = SHD(data_dir=str(tmp_path))
    assert ds.num_classes == 20 and ds.input_size == 700 and ds.class_names[10] == "de-null"
    tr, va, te = ds.load("train"), ds.load("val"), ds.load("test")
    assert (len(tr), len(va), len(te)) == (36, 4, 12)
    assert tuple(tr.x.shape[1:]) == (250, 700) and tr.x.dtype.is_floating_point and tr.x.max() >= 1
    assert tr.y.dtype.is_floating_point is False and int(tr.y.max()) < 20
    # train and val partition the training file; the same seed gives the same split
    full = SHD(data_dir=str(tmp_path / "shd"), val_fraction=0.0).load("train")
    assert len(full) == 40 and float(tr.x.sum() + va.x.sum()) == float(full.x.sum())
    assert SHD(data_dir=str(tmp_path)).load("val").x.equal(va.x)
    assert not SHD(data_dir=str(tmp_path), seed=1).load("val").x.equal(va.x)
    with pytest.raises(DatasetError, match="no val split"):
        SHD(data_dir=str(tmp_path), val_fraction=0.0).load("val")
    # without its val split, SHD does not announce one (training then carves its own validation from train)
    assert SHD(data_dir=str(tmp_path), val_fraction=0.0).splits == ("train", "test")


def test_ssc_three_files_and_asrc_binning(tmp_path):
    for split, n in (("train", 20), ("valid", 7), ("test", 9)):
        _write(tmp_path / "ssc" / f"ssc_{split}.h5", n, 35, seed=n)
    assert SSC(data_dir=str(tmp_path), channel_bins=700).input_size == 700
    ds = SSC(data_dir=str(tmp_path))  # ASRC's 140 channel groups by default
    assert ds.num_classes == 35 and ds.class_names[0] == "backward" and ds.input_size == 140
    assert [len(ds.load(s)) for s in ("train", "val", "test")] == [20, 7, 9]
    assert tuple(ds.load("val").x.shape[1:]) == (250, 140)
    ident = ds.identity()
    valid = tmp_path / "ssc" / "ssc_valid.h5"
    assert ident["file_sizes"]["ssc_valid.h5"] == valid.stat().st_size > 0
    assert ident["file_mtimes_ns"]["ssc_valid.h5"] == valid.stat().st_mtime_ns  # a same-size rewrite shows in manifests


def test_errors_name_file_and_field(tmp_path):
    with pytest.raises(DatasetError, match=r"shd_train\.h5 not found: expected .* shd_train\.h5 shd_test\.h5"):
        SHD(data_dir=str(tmp_path)).load("train")
    _write(tmp_path / "ssc" / "ssc_test.h5", 3, 35, drop="spikes/units")
    with pytest.raises(DatasetError, match=r"ssc_test\.h5 lacks the field 'spikes/units'"):
        SSC(data_dir=str(tmp_path)).load("test")
    _write(tmp_path / "shd" / "shd_test.h5", 3, 20, drop="labels")
    with pytest.raises(DatasetError, match=r"shd_test\.h5 lacks the field 'labels'"):
        SHD(data_dir=str(tmp_path)).load("test")
    (tmp_path / "shd" / "shd_train.h5").write_bytes(b"\x1f\x8b gzip, not hdf5")
    with pytest.raises(DatasetError, match=r"cannot open .*shd_train\.h5 as HDF5"):
        SHD(data_dir=str(tmp_path)).load("train")


def test_disk_storage_is_the_same_counts_memory_mapped(tmp_path, monkeypatch):
    """storage=disk: uint8 counts in a memory-mapped .npy in the feature cache, equal to the float32 path."""
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    _write(tmp_path / "shd" / "shd_train.h5", 40, 20)
    _write(tmp_path / "shd" / "shd_test.h5", 12, 20, seed=1)
    for split in ("train", "val", "test"):
        mem = SHD(data_dir=str(tmp_path), storage="memory").load(split)
        disk = SHD(data_dir=str(tmp_path), storage="disk").load(split)
        assert disk.x.dtype == torch.uint8 and mem.x.dtype == torch.float32
        assert torch.equal(disk.x.float(), mem.x) and torch.equal(disk.y, mem.y)
    files = sorted((tmp_path / "cache" / "shd").glob("*.npy"))
    assert len(files) == 3 and all(f.name.endswith(".uint8.npy") for f in files)
    assert isinstance(np.load(files[0], mmap_mode="r"), np.memmap)
    # a second load maps the cached file instead of binning again (events are not read)
    monkeypatch.setattr("snnkit_datasets.heidelberg.bin_events", lambda *a, **k: pytest.fail("binned again"))
    again = SHD(data_dir=str(tmp_path), storage="disk").load("test")
    assert torch.equal(again.x, disk.x)


def test_disk_storage_widens_when_a_count_exceeds_255(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "ssc" / "ssc_train.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.uint16))
        t[0], u[0] = np.zeros(300, np.float32), np.zeros(300, np.uint16)  # 300 spikes in one bin
        t[1], u[1] = np.array([0.5], np.float32), np.array([7], np.uint16)
        f.create_dataset("labels", data=np.array([3, 4], np.uint16))
    d = SSC(data_dir=str(tmp_path), storage="disk").load("train")
    assert d.x.dtype == torch.int16 and int(d.x[0, 0, 0]) == 300 and int(d.x.sum()) == 301
    with pytest.raises(Exception, match="storage must be one of"):
        SSC(data_dir=str(tmp_path), storage="ram").load("train")
