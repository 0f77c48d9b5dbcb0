"""``ntidigits``: N-TIDIGITS (Anumula et al. 2018), TIDIGITS played to a 64-channel silicon cochlea (CochleaAMS1b).

Expected layout: the single hdf5 file as distributed::

    <data root>/ntidigits/n-tidigits.hdf5          (or --data-dir pointing at that folder)

Assumed structure (the dataset's own description; verified against nothing larger than that text): the root
holds two datasets ``train_labels`` and ``test_labels`` of string keys, and four groups ``train_timestamps``,
``train_addresses``, ``test_timestamps``, ``test_addresses``, each with one 1-D dataset per key (the
``N`` event times in seconds, and the ``N`` channel addresses 0..63). A key ``<group>-<speaker>-<sample>-
<digits>``, e.g. ``man-im-a-7557``, names the spoken digit string (``1``-``9``, ``z`` = zero, ``o`` = oh).
A missing file, group or key raises :class:`DatasetError` naming it.

ScSr-SNN (AAAI 2021) uses the **single-digit** utterances only (keys whose digit string has one character):
2,475 train / 2,475 test, 11 classes (``zero`` = 0, ``one``..``nine`` = 1..9, ``oh`` = 10, as in
:mod:`snnkit_datasets.tidigits`). Each utterance is binned into ``steps`` (300) equal bins over
``duration`` seconds (1.5 s: 5 ms bins) counted from its first event (``align_start``; events later than
``duration`` are dropped), 64 channels, and **binarised** (1 if at least one spike fell in the bin), as
ScSr does; ``binary=false`` keeps the counts. Addresses outside 0..63 raise :class:`DatasetError` (a stereo
recording would need its ear folded first). The binned tensors are built on each load (about a second;
no disk cache).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import corpus_dir

from .tidigits import CLASS_NAMES

FILE = "n-tidigits.hdf5"
CHANNELS = 64
_KEY = re.compile(r"^[a-z]+-[a-z0-9]+-[a-z0-9]+-([0-9oz]+)$", re.IGNORECASE)


def digit_label(key: str) -> int | None:
    """Class of a single-digit key (``man-im-a-7`` -> 7, ``...-z`` -> 0, ``...-o`` -> 10); None otherwise."""
    m = _KEY.match(key)
    if not m or len(m[1]) != 1:
        return None
    ch = m[1].lower()
    return 0 if ch == "z" else 10 if ch == "o" else int(ch)


class NTIDigits(Dataset):
    """N-TIDIGITS single digits: 64-channel cochlea events binned to 300 steps and binarised (ScSr-SNN)."""

    name = "ntidigits"
    description = "N-TIDIGITS single digits: 11 classes, 2,475/2,475, 64 cochlea channels, 300 binarised 5 ms bins"
    source = ("Anumula et al. 2018, Front. Neurosci. 12:23, https://doi.org/10.3389/fnins.2018.00023 "
              "(download linked there)")
    licence = "as stated by the dataset's distributors (INI Zurich); derived from TIDIGITS, LDC93S10"
    params = (
        Param("steps", 300, "time bins", unit="steps"),
        Param("duration", 1.5, "seconds covered by the bins", unit="s"),
        Param("align_start", True, "count time from each utterance's first event"),
        Param("binary", True, "1 if >= 1 spike in a bin (ScSr); false keeps counts"),
    )

    @property
    def num_classes(self):
        return 11

    @property
    def input_size(self):
        return CHANNELS

    @property
    def class_names(self):
        return list(CLASS_NAMES)

    @property
    def path(self) -> Path:
        p = corpus_dir(self.data_dir, "ntidigits", FILE) / FILE
        if not p.is_file():
            raise DatasetError(
                f"N-TIDIGITS not found: expected {p} (groups train_/test_ timestamps and addresses, datasets "
                f"train_labels, test_labels). Pass --data-dir ROOT (with ROOT/ntidigits/{FILE}) or the folder itself, "
                f"or set SNNKIT_DATA."
            )
        return p

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"ntidigits has splits {self.splits}, not {split!r}")
        import h5py

        path = self.path
        hp = self.hparams
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DatasetError(f"cannot open {path} as HDF5 ({exc}); truncated download?") from None
        with f:
            for field in (f"{split}_labels", f"{split}_timestamps", f"{split}_addresses"):
                if field not in f:
                    raise DatasetError(f"{path} lacks {field!r} (expected train_/test_ labels, timestamps, addresses)")
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f[f"{split}_labels"][:]]
            chosen = [(k, y) for k in keys if (y := digit_label(k)) is not None]
            if not chosen:
                raise DatasetError(f"{path}: no single-digit keys (like man-im-a-7) in {split}_labels")
            x = torch.zeros((len(chosen), hp["steps"], CHANNELS), dtype=torch.float32)
            arr = x.numpy()
            for i, (k, _) in enumerate(chosen):
                try:
                    t = np.asarray(f[f"{split}_timestamps"][k][:], dtype=np.float64)
                    a = np.asarray(f[f"{split}_addresses"][k][:], dtype=np.int64)
                except KeyError:
                    raise DatasetError(f"{path}: key {k!r} of {split}_labels has no timestamps or addresses") from None
                if t.size != a.size:
                    raise DatasetError(f"{path}: {k!r} has {t.size} timestamps but {a.size} addresses")
                if not t.size:
                    continue
                if a.min() < 0 or a.max() >= CHANNELS:
                    raise DatasetError(f"{path}: {k!r} has addresses {a.min()}..{a.max()}, expected 0..{CHANNELS - 1}")
                if hp["align_start"]:
                    t = t - t.min()
                b = np.floor(t / hp["duration"] * hp["steps"]).astype(np.int64)
                keep = (b >= 0) & (b < hp["steps"])
                np.add.at(arr[i], (b[keep], a[keep]), 1.0)
        if hp["binary"]:
            x.clamp_(max=1.0)
        return ArrayData(x, torch.tensor([y for _, y in chosen], dtype=torch.int64))

    def identity(self):
        p = self.path
        st = p.stat()
        return {"name": self.name, "params": dict(self.hparams), "file": p.name, "size": st.st_size,
                "mtime_ns": st.st_mtime_ns}


def register(register):
    register(NTIDigits)
