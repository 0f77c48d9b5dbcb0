"""``shd`` and ``ssc``: the Spiking Heidelberg Digits and Spiking Speech Commands (Cramer et al. 2020).

Expected layout (the published files, decompressed from ``.h5.gz`` or ``.h5.zip``; ``download=true`` does it)::

    <data root>/shd/shd_train.h5  shd_test.h5                 (or --data-dir pointing at that folder)
    <data root>/ssc/ssc_train.h5  ssc_valid.h5  ssc_test.h5

Each file holds ``spikes/times`` and ``spikes/units`` (variable-length arrays, one per example: spike times
in seconds and channel ids 0..699 of the 700-channel cochlea model) and ``labels`` (one integer per example);
a file missing one of them raises :class:`DatasetError` naming the file and the field.

Splits: SSC uses its three files (``train``, ``val`` = ``ssc_valid.h5``, ``test``). SHD has no validation
file: ``val`` is a seeded random fraction (``val_fraction``, ``seed``) of ``shd_train.h5``, and ``train`` is
the rest (never the test set); ``val_fraction=0`` gives the whole training file as ``train``.

Binning (ASRC-SNN's loader): ``steps`` equal time bins over ``[0, duration)`` (250 over 1.4 s by default; spikes at
or after ``duration`` are dropped) and ``channel_bins`` channel groups (700 -> 140 sums groups of 5 adjacent
channels; must divide 700): 700 (no grouping) for SHD and 140 for SSC by default, as ASRC. Values are spike
**counts** per bin (ASRC feeds counts, not 0/1); ``binary=true`` clips them to 1. Storage (``storage``): ``memory``
builds float32 tensors straight from the event lists on every load (a vectorised bincount, seconds); ``disk`` bins
512 examples at a time into a uint8 ``.npy`` in the feature cache (int16 if a count exceeds 255; keyed by the
binning parameters, the file's size and mtime and the selected examples), memory-maps it on later loads and lets
training read each batch's rows (:mod:`snnkit_datasets.diskarray`); ``auto`` (default) picks ``disk`` when the
split is over 4 GiB as float32, as SSC's training set is (75,466 x 250 x 140 x 4 B = 10.6 GB; 2.6 GB as uint8).
Classes: SHD 20 (English digits 0-9 then German 0-9), SSC 35 (the Speech Commands v0.02 words, label order
alphabetical).

Download (opt-in, ``download=true``): a missing ``<prefix>_<split>.h5`` is fetched as zenkelab's
``<prefix>_<split>.h5.zip`` (:data:`BASE_URL`), resumably, verified against :data:`ZIP_MD5`, unpacked with the
path-traversal filter into a temporary folder beside it and renamed into place, so the ``.h5`` appears whole or
not at all. The archive is deleted afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import corpus_dir
from snnkit_datasets.diskarray import cached_array, store_counts, use_disk

from .download import download, extract

CHANNELS = 700
SHD_CLASSES = [f"en-{w}" for w in "zero one two three four five six seven eight nine".split()] + [
    f"de-{w}" for w in "null eins zwei drei vier fuenf sechs sieben acht neun".split()
]
SSC_CLASSES = (
    "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine no off on "
    "one right seven sheila six stop three tree two up visual wow yes zero"
).split()
FIELDS = ("spikes/times", "spikes/units", "labels")

BASE_URL = "https://zenkelab.org/datasets/"
#: md5 of zenkelab's zip archives of the .h5 files, as neuromorphs/tonic tonic/datasets/hsd.py and
#: fangwei123456/spikingjelly spikingjelly/datasets/shd.py both check them (only md5s are published). zenkelab
#: also serves .h5.gz copies, but no public md5 of ssc_train.h5.gz or ssc_test.h5.gz was found, so the .zip
#: archives are used for all five files.
ZIP_MD5 = {"shd_train.h5.zip": "f3252aeb598ac776c1b526422d90eecb",
           "shd_test.h5.zip": "1503a5064faa34311c398fb0a1ed0a6f",
           "ssc_train.h5.zip": "d102be95e7144fcc0553d1f45ba94170",
           "ssc_valid.h5.zip": "b4eee3516a4a90dd0c71a6ac23a8ae43",
           "ssc_test.h5.zip": "a35ff1e9cffdd02a20eb850c17c37748"}


def _open_h5(path: Path):
    """The Heidelberg hdf5 file at ``path``, open, after checking it has all of :data:`FIELDS`."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"cannot open {path} as HDF5 ({exc}); truncated download, or still gzipped?") from None
    missing = [field for field in FIELDS if field not in f]
    if missing:
        f.close()
        raise DatasetError(f"{path} lacks the field {missing[0]!r} (a Heidelberg file has {', '.join(FIELDS)})")
    return f


def read_events(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per-example spike times (s) and units, and the labels, of one Heidelberg hdf5 file."""
    with _open_h5(path) as f:
        try:
            times = list(f["spikes/times"][:])
            units = list(f["spikes/units"][:])
            labels = np.asarray(f["labels"][:], dtype=np.int64)
        except (OSError, ValueError, TypeError) as exc:
            raise DatasetError(f"cannot read the events of {path}: {exc}") from None
    if not (len(times) == len(units) == len(labels)):
        raise DatasetError(
            f"{path}: spikes/times, spikes/units and labels have different lengths ({len(times)}, {len(units)}, "
            f"{len(labels)})"
        )
    return times, units, labels


def read_labels(path: Path) -> np.ndarray:
    """The labels of one Heidelberg hdf5 file (after checking it has all of :data:`FIELDS`)."""
    with _open_h5(path) as f:
        n_t, n_u = len(f["spikes/times"]), len(f["spikes/units"])
        try:
            labels = np.asarray(f["labels"][:], dtype=np.int64)
        except (OSError, ValueError, TypeError) as exc:
            raise DatasetError(f"cannot read the labels of {path}: {exc}") from None
    if not (n_t == n_u == len(labels)):
        raise DatasetError(f"{path}: spikes/times, spikes/units and labels have different lengths ({n_t}, {n_u}, "
                           f"{len(labels)})")
    return labels


def bin_events(times, units, steps: int, duration: float, channel_bins: int = CHANNELS, binary: bool = False,
               chunk: int = 512, source: str = "") -> torch.Tensor:
    """Dense counts (N, steps, channel_bins) float32 from per-example spike times and units."""
    if CHANNELS % channel_bins:
        raise DatasetError(f"channel_bins must divide {CHANNELS}; got {channel_bins}")
    group = CHANNELS // channel_bins
    n = len(times)
    x = torch.zeros((n, steps, channel_bins), dtype=torch.float32)
    flat = x.numpy().reshape(n, -1)
    per = steps * channel_bins
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        t = [np.asarray(a, dtype=np.float64) for a in times[lo:hi]]
        u = [np.asarray(a, dtype=np.int64) for a in units[lo:hi]]
        sizes = [len(a) for a in t]
        if sizes != [len(a) for a in u]:
            raise DatasetError(f"{source}: an example has different numbers of spike times and units")
        if not sum(sizes):
            continue
        tt, uu = np.concatenate(t), np.concatenate(u)
        ex = np.repeat(np.arange(hi - lo), sizes)
        if uu.min() < 0 or uu.max() >= CHANNELS:
            raise DatasetError(f"{source}: spike units must lie in 0..{CHANNELS - 1}; found {uu.min()}..{uu.max()}")
        b = np.floor(tt / duration * steps).astype(np.int64)
        keep = (b >= 0) & (b < steps)
        idx = ex[keep] * per + b[keep] * channel_bins + uu[keep] // group
        flat[lo:hi] = np.bincount(idx, minlength=(hi - lo) * per).reshape(hi - lo, per)
    if binary:
        x.clamp_(max=1.0)
    return x


class _Heidelberg(Dataset):
    source = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
    licence = "CC BY 4.0"
    prefix = ""
    files_by_split: dict[str, str] = {}
    params = (
        Param("steps", 250, "time bins", unit="steps"),
        Param("duration", 1.4, "seconds covered by the bins (later spikes are dropped)", unit="s"),
        Param("channel_bins", 700, "channel groups (700 / channel_bins adjacent channels summed); ASRC: 140",
              unit="channels"),
        Param("binary", False, "clip counts to 0/1"),
        Param("download", False, "download a missing .h5 file from zenkelab.org (needs internet; md5-verified)"),
        Param("storage", "auto", "memory: float32 in RAM; disk: uint8 counts memory-mapped from the feature cache, "
              "read per batch; auto: disk when the split is over 4 GiB as float32", choices=("auto", "memory", "disk")),
    )

    @property
    def input_size(self):
        return self.hparams["channel_bins"]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def folder(self) -> Path:
        return corpus_dir(self.data_dir, self.prefix, f"{self.prefix}_train.h5")

    def path(self, file_split: str) -> Path:
        p = self.folder / f"{self.prefix}_{file_split}.h5"
        if not p.is_file() and self.hparams["download"]:
            self.fetch(p)
        if not p.is_file():
            names = " ".join(f"{self.prefix}_{s}.h5" for s in self.files_by_split.values())
            raise DatasetError(
                f"{self.name.upper()} file {p} not found: expected {self.folder}/ holding {names} (unpacked from "
                f".h5.gz or .h5.zip). Pass --data-dir ROOT (with ROOT/{self.prefix}) or the folder itself, or set "
                f"SNNKIT_DATA; or add --set dataset.download=true to fetch it from {BASE_URL}"
            )
        return p

    def fetch(self, target: Path) -> Path:
        """Download ``<target name>.zip`` into ``<folder>/.download/`` (md5 :data:`ZIP_MD5`), unpack it there and
        rename the ``.h5`` it holds to ``target`` (atomic on one file system); then delete the archive."""
        zip_name = target.name + ".zip"
        staging = target.parent / ".download"
        archive = download(BASE_URL + zip_name, staging / zip_name, md5=ZIP_MD5[zip_name])
        tmp = staging / (target.name + ".x")
        shutil.rmtree(tmp, ignore_errors=True)
        extract(archive, tmp)
        found = sorted(p for p in tmp.rglob(target.name) if p.is_file())
        if not found:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DatasetError(f"{archive} holds no {target.name}")
        os.replace(found[0], target)
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink()
        try:
            staging.rmdir()
        except OSError:  # not empty: another file's download is under way or was interrupted
            pass
        return target

    def _bin(self, path: Path, select=None) -> ArrayData:
        hp = self.hparams
        if hp["storage"] != "memory":  # decide from the labels alone: a cached split is never read as events
            labels = read_labels(path)
            labels = labels if select is None else labels[select]
            if use_disk(hp["storage"], len(labels), hp["steps"], hp["channel_bins"]):
                self._check_labels(path, labels)
                return ArrayData(self._disk_counts(path, len(labels), select), torch.from_numpy(labels))
        times, units, labels = read_events(path)
        if select is not None:
            times = [times[i] for i in select]
            units = [units[i] for i in select]
            labels = labels[select]
        self._check_labels(path, labels)
        x = bin_events(times, units, hp["steps"], hp["duration"], hp["channel_bins"], hp["binary"], source=str(path))
        return ArrayData(x, torch.from_numpy(labels))

    def _check_labels(self, path: Path, labels: np.ndarray) -> None:
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DatasetError(f"{path}: labels must lie in 0..{self.num_classes - 1}; found "
                               f"{labels.min()}..{labels.max()}")

    def _disk_counts(self, path: Path, n: int, select) -> torch.Tensor:
        """The binned counts as a uint8 (int16 if a count exceeds 255) memory map in the feature cache, binned
        512 examples at a time, so no float32 copy of the split is ever made. Keyed by the binning parameters,
        the file's size and mtime, and the selected examples."""
        hp = self.hparams
        st = path.stat()
        key = {k: hp[k] for k in ("steps", "duration", "channel_bins", "binary")}
        key.update(
            file=path.name,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            n=n,
            select=None if select is None else hashlib.sha256(np.asarray(select, np.int64).tobytes()).hexdigest(),
        )
        shape = (n, hp["steps"], hp["channel_bins"])

        def fill(out):
            import h5py

            with h5py.File(path, "r") as f:  # events read 512 examples at a time, never the whole file
                for lo in track(range(0, n, 512), description=f"{self.name}: binning {path.name} to disk"):
                    rows = slice(lo, min(n, lo + 512)) if select is None else np.asarray(select[lo : lo + 512])
                    try:
                        times, units = list(f["spikes/times"][rows]), list(f["spikes/units"][rows])
                    except (OSError, ValueError, TypeError) as exc:
                        raise DatasetError(f"cannot read the events of {path}: {exc}") from None
                    chunk = bin_events(times, units, hp["steps"], hp["duration"], hp["channel_bins"], hp["binary"],
                                       source=str(path))
                    store_counts(out, lo, chunk.numpy())

        return cached_array(self.name, key, shape, fill)

    def identity(self):
        sizes, mtimes = {}, {}
        for s in self.files_by_split.values():
            p = self.path(s)
            st = p.stat()
            sizes[p.name], mtimes[p.name] = st.st_size, st.st_mtime_ns
        return {"name": self.name, "params": dict(self.hparams), "file_sizes": sizes, "file_mtimes_ns": mtimes}


class SHD(_Heidelberg):
    """Spiking Heidelberg Digits: 20 classes (English and German digits), 700 input channels."""

    name = "shd"
    description = ("Spiking Heidelberg Digits: 20 classes, 700 channels binned to 250 steps x 1.4 s "
                   "(val: seeded part of train)")
    prefix = "shd"
    splits = ("train", "val", "test")
    files_by_split = {"train": "train", "test": "test"}
    params = _Heidelberg.params + (
        Param("val_fraction", 0.1, "fraction of shd_train.h5 held out as the val split (0: no val split)"),
        Param("seed", 0, "seed of the val hold-out"),
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        if self.hparams["val_fraction"] == 0:  # no val split: training then carves its own (or runs without one)
            self.splits = ("train", "test")

    @property
    def class_names(self):
        return list(SHD_CLASSES)

    def load(self, split: str) -> ArrayData:
        if split == "val" and self.hparams["val_fraction"] == 0:
            raise DatasetError("shd has no val split with val_fraction=0; set dataset.val_fraction > 0")
        if split not in self.splits:
            raise DatasetError(f"shd has splits {self.splits}, not {split!r}")
        if split == "test":
            return self._bin(self.path("test"))
        path = self.path("train")
        frac = self.hparams["val_fraction"]
        if not 0 <= frac < 1:
            raise DatasetError(f"shd.val_fraction must be in [0, 1); got {frac}")
        import h5py

        try:
            with h5py.File(path, "r") as f:
                n = len(f["labels"]) if "labels" in f else None
        except OSError as exc:
            raise DatasetError(f"cannot open {path} as HDF5 ({exc}); truncated download, or still gzipped?") from None
        if n is None:
            raise DatasetError(f"{path} lacks the field 'labels' (a Heidelberg file has {', '.join(FIELDS)})")
        k = int(round(frac * n))
        if split == "val" and k == 0:
            raise DatasetError("shd has no val split with val_fraction=0; set dataset.val_fraction > 0")
        perm = np.random.default_rng(self.hparams["seed"]).permutation(n)
        select = np.sort(perm[:k] if split == "val" else perm[k:])
        return self._bin(path, select)


class SSC(_Heidelberg):
    """Spiking Speech Commands: 35 classes, 700 input channels; ASRC bins to 250 steps x 140 channels."""

    name = "ssc"
    description = "Spiking Speech Commands: 35 classes, train/valid/test files, binned counts (ASRC: 250 x 140)"
    prefix = "ssc"
    splits = ("train", "val", "test")
    files_by_split = {"train": "train", "val": "valid", "test": "test"}
    #: ASRC's 140 channel groups by default (700 would make the training set 53 GB of float32)
    params = tuple(
        Param(p.name, 140, p.help, unit=p.unit) if p.name == "channel_bins" else p for p in _Heidelberg.params
    )

    @property
    def class_names(self):
        return list(SSC_CLASSES)

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"ssc has splits {self.splits}, not {split!r}")
        return self._bin(self.path(self.files_by_split[split]))


def register(register):
    register(SHD)
    register(SSC)
