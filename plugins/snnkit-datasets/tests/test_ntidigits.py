"""N-TIDIGITS loader on a synthetic hdf5 file in the distributed layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.ntidigits import NTIDigits, digit_label


def _write(path: Path, drop: str | None = None, bad_address: bool = False):
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for split, spk in (("train", "im"), ("test", "ac")):
            keys = [f"man-{spk}-a-{d}" for d in "z123456789o"] + [f"woman-{spk}-b-7557", f"boy-{spk}-a-4"]
            if drop != f"{split}_labels":
                f.create_dataset(f"{split}_labels", data=np.array([k.encode() for k in keys]))
            for k in keys:
                n = int(rng.integers(10, 60))
                t = np.sort(rng.uniform(0.2, 1.2, n))
                a = rng.integers(0, 64, n)
                if bad_address:
                    a[0] = 64
                f.create_dataset(f"{split}_timestamps/{k}", data=t)
                if not (drop == "address" and k.endswith("-5")):
                    f.create_dataset(f"{split}_addresses/{k}", data=a.astype(np.uint8 if not bad_address else np.int64))


def test_key_parsing():
    assert digit_label("man-im-a-7") == 7 and digit_label("girl-xx-b-z") == 0 and digit_label("woman-ab-a-o") == 10
    assert digit_label("man-im-a-7557") is None and digit_label("junk") is None


def test_single_digits_binned_and_binarised(tmp_path):
    _write(tmp_path / "ntidigits" / "n-tidigits.hdf5")
    ds = NTIDigits(data_dir=str(tmp_path))
    tr, te = ds.load("train"), ds.load("test")
    assert len(tr) == len(te) == 12  # 11 single digits + boy-..-4; the 4-digit string is skipped
    assert tuple(tr.x.shape[1:]) == (300, 64) and set(np.unique(tr.x.numpy())) <= {0.0, 1.0}
    assert sorted(set(tr.y.tolist())) == list(range(11)) and ds.class_names[10] == "oh"
    assert tr.x[:, 0].sum(axis=1).min() >= 1  # aligned to the first event: every utterance spikes in bin 0
    counts = NTIDigits(data_dir=str(tmp_path / "ntidigits"), binary=False, steps=10).load("train")
    assert counts.x.max() > 1 and tuple(counts.x.shape[1:]) == (10, 64)
    st = (tmp_path / "ntidigits" / "n-tidigits.hdf5").stat()
    assert ds.identity()["size"] == st.st_size and ds.identity()["mtime_ns"] == st.st_mtime_ns


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"ntidigits/n-tidigits\.hdf5"):
        NTIDigits(data_dir=str(tmp_path)).load("train")
    _write(tmp_path / "a" / "ntidigits" / "n-tidigits.hdf5", drop="test_labels")
    with pytest.raises(DatasetError, match="lacks 'test_labels'"):
        NTIDigits(data_dir=str(tmp_path / "a")).load("test")
    _write(tmp_path / "b" / "ntidigits" / "n-tidigits.hdf5", drop="address")
    with pytest.raises(DatasetError, match="'man-im-a-5' of train_labels has no timestamps or addresses"):
        NTIDigits(data_dir=str(tmp_path / "b")).load("train")
    _write(tmp_path / "c" / "ntidigits" / "n-tidigits.hdf5", bad_address=True)
    with pytest.raises(DatasetError, match="expected 0..63"):
        NTIDigits(data_dir=str(tmp_path / "c")).load("train")
