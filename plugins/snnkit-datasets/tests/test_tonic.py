"""The ``tonic`` dataset: Tonic's own classes on synthetic files (no download), binned with Tonic's ToFrame."""

from __future__ import annotations

import json
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError, MissingDependencyError

tonic = pytest.importorskip("tonic")

from snnkit_datasets.tonic_data import Tonic, parse_kwargs, parse_transforms  # noqa: E402

CLASSES = 3


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))


def _events(rng, label, n=60):
    """Spike times (s) in 0..1 s on 10 channels: class c fires mostly on channels 3c..3c+2."""
    t = np.sort(rng.uniform(0, 1.0, n)).astype(np.float32)
    u = np.where(rng.random(n) < 0.8, 3 * label + rng.integers(0, 3, n), rng.integers(0, 10, n)).astype(np.uint16)
    return t, u


def write_shd(root, per_class=(8, 4), seed=0):
    """Synthetic SHD files in Tonic's layout ``<root>/SHD/``: the .h5 files with Tonic's fields, and empty .zip
    files beside them, which is all Tonic's SHD class checks before reading (so it never downloads)."""
    rng = np.random.default_rng(seed)
    folder = root / "SHD"
    folder.mkdir(parents=True)
    out = {}
    for split, n in zip(("train", "test"), per_class):
        labels = np.repeat(np.arange(CLASSES), n)
        ev = [_events(rng, int(y)) for y in labels]
        with h5py.File(folder / f"shd_{split}.h5", "w") as f:
            vt = h5py.vlen_dtype(np.float32)
            vu = h5py.vlen_dtype(np.uint16)
            f.create_dataset("spikes/times", (len(ev),), dtype=vt)[:] = [e[0] for e in ev]
            f.create_dataset("spikes/units", (len(ev),), dtype=vu)[:] = [e[1] for e in ev]
            f.create_dataset("labels", data=labels.astype(np.uint16))
            f.create_dataset("extra/keys", data=np.array([b"a", b"b", b"c"]))
            f.create_dataset("extra/speaker", data=np.zeros(len(labels), np.uint16))
        (folder / f"shd_{split}.h5.zip").write_bytes(b"")
        out[split] = (ev, labels)
    return out


def test_shd_through_tonic_bins_like_toframe(tmp_path):
    truth = write_shd(tmp_path)
    ds = Tonic(data_dir=str(tmp_path), name="SHD", steps=20, time_window=50_000.0)
    assert ds.input_size == 700 and ds.num_classes == 3 and ds.class_names == ["a", "b", "c"]
    assert ds.splits == ("train", "test")  # validation is carved by the training run
    test = ds.load("test")
    assert tuple(test.x.shape) == (12, 20, 700) and test.y.tolist() == truth["test"][1].tolist()
    # by hand: 50 ms bins from 0, so bin = floor(t / 0.05); the last 0.0 .. 1.0 s falls in bins 0..19
    t, u = truth["test"][0][5]
    want = np.zeros((20, 700))
    b = np.floor(t.astype(np.float64) * 1e6 / 50_000).astype(int)
    np.add.at(want, (b[b < 20], u[b < 20].astype(int)), 1)
    assert np.array_equal(test.x[5].float().numpy(), want)
    assert float(test.x.sum()) == sum(np.sum(np.floor(e[0].astype(np.float64) * 1e6 / 50_000) < 20)
                                      for e in truth["test"][0])


def test_n_time_bins_and_binary_and_transforms(tmp_path):
    truth = write_shd(tmp_path)
    ds = Tonic(data_dir=str(tmp_path), name="SHD", steps=8, time_window=0.0, binary=True)
    x = ds.load("train").x
    ev = tonic.io.make_structured_array(truth["train"][0][0][0].astype(np.float64) * 1e6,
                                        truth["train"][0][0][1], 1, dtype=tonic.datasets.SHD.dtype)
    ref = tonic.transforms.ToFrame(sensor_size=(700, 1, 1), n_time_bins=8)(ev).reshape(8, -1)
    assert np.array_equal(x[0].float().numpy(), np.minimum(ref, 1)) and float(x.max()) == 1.0
    # a Tonic transform before binning: Downsample halves the channels, so the sensor size is given
    down = Tonic(data_dir=str(tmp_path), name="SHD", steps=8, time_window=0.0,
                 transforms="Downsample(sensor_size=(700, 1, 1), target_size=(350, 1))", sensor_size="350,1,1")
    xd = down.load("train").x
    assert tuple(xd.shape[1:]) == (8, 350)
    assert float(xd.sum()) == float(Tonic(data_dir=str(tmp_path), name="SHD", steps=8, time_window=0.0)
                                    .load("train").x.float().sum())  # downsampling merges channels, keeps events


def test_cache_is_used_and_keyed(tmp_path, monkeypatch):
    write_shd(tmp_path)
    ds = Tonic(data_dir=str(tmp_path), name="SHD", steps=10, time_window=100_000.0)
    first = ds.load("train").x.clone()
    calls = []

    def binned_again(self, *args):
        calls.append(1)
        raise RuntimeError("binned again")

    monkeypatch.setattr(Tonic, "bin_into", binned_again)
    again = Tonic(data_dir=str(tmp_path), name="SHD", steps=10, time_window=100_000.0).load("train")
    assert not calls and torch.equal(again.x, first) and len(again.y) == 24
    # other binning: a new key, so it bins again (and meets the stub)
    with pytest.raises(RuntimeError, match="binned again"):
        Tonic(data_dir=str(tmp_path), name="SHD", steps=11, time_window=100_000.0).load("train")
    assert calls


def test_errors_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="dataset.download=true"):
        Tonic(data_dir=str(tmp_path), name="SHD").load("train")
    with pytest.raises(DatasetError, match="no dataset 'SHX'.*SHD"):
        Tonic(data_dir=str(tmp_path), name="SHX").load("train")
    with pytest.raises(DatasetError, match="dataset.name=SHD"):
        Tonic(data_dir=str(tmp_path)).load("train")
    with pytest.raises(DatasetError, match="not a class of tonic.transforms"):
        parse_transforms("Nope(a=1)")
    with pytest.raises(DatasetError, match="literals"):
        parse_kwargs("single_digits=os.system('x')")
    assert parse_kwargs("single_digits=True, n=3") == {"single_digits": True, "n": 3}
    assert parse_kwargs("{'single_digits': True}") == {"single_digits": True}
    monkeypatch.setitem(sys.modules, "tonic", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install snnkit-datasets\[tonic\]"):
        Tonic(data_dir=str(tmp_path), name="SHD").load("train")


OWN = '''
import numpy as np
from tonic.dataset import Dataset
from tonic.io import make_structured_array


class Blobs(Dataset):
    """A Tonic dataset of one's own with a `split` argument and a validation split, events made on the fly."""

    sensor_size = (4, 2, 2)
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])

    def __init__(self, save_to, split="train", transform=None, target_transform=None):
        super().__init__(save_to, transform=transform, target_transform=target_transform)
        self.n = {"train": 10, "valid": 4, "test": 6}[split]

    def __getitem__(self, i):
        y = i % 2
        k = 5 + i
        ev = make_structured_array(np.full(k, y * 2), np.zeros(k, int), np.arange(k) * 1000, np.full(k, y),
                                   dtype=self.dtype)
        return ev, y

    def __len__(self):
        return self.n
'''


def test_own_class_with_split_argument(tmp_path, monkeypatch):
    (tmp_path / "blobs_mod.py").write_text(textwrap.dedent(OWN))
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = Tonic(data_dir=str(tmp_path), name="blobs_mod:Blobs", steps=4, time_window=2000.0, val_split="valid")
    assert ds.splits == ("train", "val", "test") and ds.input_size == 16 and ds.num_classes == 2
    val = ds.load("val")
    assert tuple(val.x.shape) == (4, 4, 16) and val.y.tolist() == [0, 1, 0, 1]
    # item 1: 6 events at x=2, y=0, p=1, t=0..5 ms -> channel p*h*w + y*w + x = 1*8 + 0 + 2 = 10, 2 per 2 ms bin
    assert val.x[1][:, 10].tolist() == [2, 2, 2, 0] and float(val.x[1].sum()) == 6


def test_train_through_the_cli(tmp_path):
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    write_shd(tmp_path, per_class=(20, 6))
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--dataset", "tonic", "--set", "dataset.name=SHD", "--set", "dataset.steps=20",
        "--set", "dataset.time_window=50000", "--data-dir", str(tmp_path), "--neuron", "lif", "--conn", "ff",
        "--rule", "bptt", "--hidden", "16", "--epochs", "2", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "test_accuracy" in rows[-1]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["validation"]["source"] == "carved from train"


def test_same_tensors_as_snnkit_shd_loader(tmp_path):
    """Tonic's SHD with 250 bins of 5.6 ms and snnkit's own ``shd`` (250 bins over 1.4 s) read this file alike (an
    event within 1 us of a bin edge could differ: Tonic keeps whole microseconds; none is in this file)."""
    from snnkit_datasets.heidelberg import SHD

    write_shd(tmp_path)
    via_tonic = Tonic(data_dir=str(tmp_path), name="SHD").load("test")
    own = SHD(data_dir=str(tmp_path / "SHD"), storage="memory").load("test")
    assert torch.equal(via_tonic.x.float(), own.x) and torch.equal(via_tonic.y, own.y)


def test_ntidigits_through_tonic_as_the_docs_show(tmp_path):
    """Tonic's NTIDIGITS18 with the documented settings: ToFrame's bins of Tonic's integer-microsecond times, and
    snnkit's own ``ntidigits`` (float seconds) agrees but for events within 1 us of a bin edge; the two number zero
    and oh the other way round."""
    from snnkit_datasets.ntidigits import NTIDigits

    rng = np.random.default_rng(1)
    folder = tmp_path / "NTIDIGITS18"
    folder.mkdir()
    events = []
    with h5py.File(folder / "n-tidigits.hdf5", "w") as f:
        for split in ("train", "test"):
            keys = [f"man-im-a-{d}" for d in "z123456789o"] + ["woman-ab-b-7557"]
            f.create_dataset(f"{split}_labels", data=np.array([k.encode() for k in keys]))
            for k in keys:
                n = int(rng.integers(10, 60))
                t, a = np.sort(rng.uniform(0.2, 1.2, n)), rng.integers(0, 64, n)
                f.create_dataset(f"{split}_timestamps/{k}", data=t)
                f.create_dataset(f"{split}_addresses/{k}", data=a.astype(np.uint8))
                if split == "test" and len(k.rsplit("-", 1)[1]) == 1:
                    events.append((t, a))
    ds = Tonic(data_dir=str(tmp_path), name="NTIDIGITS18", kwargs="single_digits=True", steps=300,
               time_window=5000.0, align_start=True, binary=True)
    via_tonic = ds.load("test")
    assert ds.input_size == 64 and tuple(via_tonic.x.shape) == (11, 300, 64)
    want = np.zeros((11, 300, 64))
    for i, (t, a) in enumerate(events):  # by hand: Tonic keeps whole microseconds; 5 ms bins from the first event
        us = (t * 1e6).astype(np.int64)
        b = (us - us[0]) // 5000
        want[i, b[b < 300], a[b < 300]] = 1
    assert np.array_equal(via_tonic.x.float().numpy(), want)
    own = NTIDigits(data_dir=str(folder)).load("test")
    differ = int((via_tonic.x.float() != own.x).sum())
    assert differ <= 4 and float(own.x.sum()) > 300  # a rare event on a bin edge moves: 2 entries per event
    swap = torch.tensor([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0])  # Tonic: o = 0, z = 10; snnkit: zero = 0, oh = 10
    assert torch.equal(swap[via_tonic.y], own.y)
    with pytest.raises(DatasetError, match="single_digits=True"):  # digit strings are not classes
        Tonic(data_dir=str(tmp_path), name="NTIDIGITS18", steps=300, time_window=5000.0).load("test")
