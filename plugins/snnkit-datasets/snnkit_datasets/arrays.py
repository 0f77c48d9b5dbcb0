"""``arrays``: your own data from one ``.npz`` or ``.pt`` file.

Where: ``--data-dir FILE`` or ``--set dataset.path=FILE`` (or ``--data-dir`` naming a folder that holds
exactly one ``.npz``/``.pt`` file). ``.pt`` files are read with ``torch.load(weights_only=True)`` and must
hold a dict; ``.npz`` files are read without pickle (no object arrays).

Keys, per split ``train``, ``test`` (both required) and ``val`` (optional):

* dense: ``x_<split>`` (N, T, C), any real or bool dtype (converted to float32, must be finite), and
  ``y_<split>`` (N,) integers;
* or spike events: ``events_<split>`` plus ``y_<split>``, with scalars ``num_channels`` and ``steps``. In a
  ``.pt`` file ``events_<split>`` is a list of N integer tensors (k, 2) of ``(channel, time step)`` pairs; in
  an ``.npz`` file it is all events concatenated, (K, 2), with ``events_<split>_offsets`` (N + 1,) so that
  example i is ``events[offsets[i]:offsets[i+1]]``. Events are binned to (steps, num_channels) counts
  (two events in one bin give 2).

Larger than memory: a **folder of ``.npy`` files** named by the same keys (``x_train.npy``, ``y_train.npy``,
``x_test.npy``, ...; ``--data-dir FOLDER``) is memory-mapped, not read: an ``x`` in uint8, int8, int16, float16
or float32 stays in that dtype on disk and :meth:`ArrayData.batch` reads and converts only each batch's rows
(other dtypes are converted in memory). The manifest then identifies the files by name, size and mtime
instead of a content hash.

Optional ``class_names`` (list / array of strings) fixes the number of classes; otherwise it is the largest
*training* label + 1, and a val/test label beyond it is an error (a class never trained on cannot be
learnt). Splits ``train`` and ``test`` must hold at least one example. Every split must have the same C.
Labels must lie in 0..num_classes-1. Errors name the key, the shape or value found and what was expected.
Nothing is cached: the file already is the data.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.errors import DatasetError, torch_error_reason
from snnkit_datasets.cache import files_identity

SPLITS = ("train", "val", "test")
#: dtypes a memory-mapped x keeps (converted to float32 per batch)
COMPACT = (torch.uint8, torch.int8, torch.int16, torch.float16, torch.float32)


def _shape(a) -> tuple:
    return tuple(getattr(a, "shape", ()))


class Arrays(Dataset):
    """Arrays you supply: dense (N, T, C) inputs or spike events, with integer labels."""

    name = "arrays"
    description = "your own data: one .npz/.pt file with x_train/y_train/x_test/y_test (N,T,C) or spike events"
    source = "(your file)"
    licence = "(yours)"
    params = (Param("path", "", "the .npz or .pt file (default: the single such file in --data-dir)"),)

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        self._memo: dict[str, Any] | None = None
        try:
            keys = set(self._read())
        except DatasetError:
            keys = set()  # reported by load(); construction stays cheap and side-effect free
        self.splits = tuple(s for s in SPLITS if s != "val" or {"x_val", "events_val"} & keys)

    # ----------------------------------------------------------------------- file
    def file(self) -> Path:
        given = self.hparams["path"] or self.data_dir
        if not given:
            raise DatasetError("arrays needs a file: pass --set dataset.path=FILE.npz (or .pt)")
        p = Path(given).expanduser()
        if p.is_dir() and (p / "x_train.npy").is_file():
            return p  # a folder of memory-mapped .npy arrays
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in (".npz", ".pt") and q.is_file())
            if len(found) != 1 and p.suffix in (".npz", ".pt"):  # a folder named like a data file
                raise DatasetError(f"arrays: {p} is a folder, not a {p.suffix} file; give the file itself (or the "
                                   "folder that holds it) as --data-dir")
            if len(found) != 1:
                raise DatasetError(
                    f"arrays: {p} holds {len(found)} .npz/.pt files "
                    f"({', '.join(q.name for q in found[:5]) or 'none'}); "
                    f"expected exactly one. Pass --set dataset.path=FILE instead."
                )
            p = found[0]
        if not p.is_file():
            raise DatasetError(f"arrays: {p} does not exist; expected a .npz or .pt file")
        if p.suffix not in (".npz", ".pt"):
            raise DatasetError(f"arrays: {p} is neither .npz nor .pt")
        return p

    def _read(self) -> dict[str, Any]:
        if self._memo is not None:
            return self._memo
        p = self.file()
        if p.is_dir():
            try:
                data = {q.stem: np.load(q, mmap_mode="c", allow_pickle=False) for q in sorted(p.glob("*.npy"))}
            except ValueError as exc:
                raise DatasetError(
                    f"{p}: {exc}. Object arrays are not read from .npy files (they need pickle)."
                ) from None
            except OSError as exc:
                raise DatasetError(f"cannot map the .npy files in {p}: {exc}") from None
        elif p.suffix == ".npz":
            if not zipfile.is_zipfile(p):
                with open(p, "rb") as f:
                    head = f.read(8)
                if head.startswith(b"PK"):
                    raise DatasetError(f"cannot read {p} as .npz: the zip archive is truncated or damaged (its "
                                       f"directory is missing); copy or write it again")
                npy = head.startswith(b"\x93NUMPY")
                kind = "an .npy array, not an .npz archive" if npy else "not an .npz (zip) archive"
                raise DatasetError(
                    f"cannot read {p}: it is {kind} (it starts with {head!r}); write it with numpy.savez"
                )
            try:
                with np.load(p, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
            except ValueError as exc:
                raise DatasetError(
                    f"{p}: {exc}. Object arrays are not read (they need pickle): store events as events_<split> (K, 2) "
                    f"with events_<split>_offsets (N + 1,), or use a .pt file."
                ) from None
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise DatasetError(f"cannot read {p} as .npz: {exc} (truncated?)") from None
        else:
            try:
                data = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
                raise DatasetError(
                    f"cannot read {p} with torch.load(weights_only=True): {torch_error_reason(exc)}"
                ) from None
            if not isinstance(data, dict):
                raise DatasetError(f"{p} holds a {type(data).__name__}; expected a dict with x_train, y_train, x_test, "
                                   f"y_test")
        self._memo = data
        return data

    # ----------------------------------------------------------------------- validation
    def _scalar(self, key: str) -> int:
        data, p = self._read(), self.file()
        if key not in data:
            raise DatasetError(f"{p}: spike events need the scalar {key!r}, which is missing")
        v = data[key]
        try:
            arr = np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v)
            value = arr.reshape(()).item()
            ok = arr.dtype.kind in "iuf" and float(value) == int(value) and int(value) >= 1
        except (ValueError, TypeError, OverflowError):
            ok = False
        if not ok:
            raise DatasetError(f"{p}: {key!r} must be a positive integer; found {v!r}")
        return int(value)

    def _tensor(self, key: str) -> torch.Tensor:
        v, p = self._read()[key], self.file()
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, np.memmap) and v.dtype.kind in "biuf":
            return torch.from_numpy(v)  # no copy: stays a map of the file
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            return torch.from_numpy(np.array(v))
        raise DatasetError(f"{p}: {key!r} is a {type(v).__name__} of dtype {getattr(v, 'dtype', '?')}; expected a "
                           f"numeric array")

    def _labels(self, split: str, n: int | None) -> torch.Tensor:
        key, p = f"y_{split}", self.file()
        if key not in self._read():
            raise DatasetError(f"{p}: {key!r} is missing; expected integer labels (N,)")
        y = self._tensor(key)
        if y.ndim != 1 or (n is not None and y.shape[0] != n):
            want = f"({n},)" if n is not None else "(N,)"
            raise DatasetError(f"{p}: {key!r} has shape {_shape(y)}; expected {want} (one label per example)")
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
            raise DatasetError(f"{p}: {key!r} has dtype {y.dtype}; expected integers (class indices)")
        return y.to(torch.int64)

    def _dense(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        key, p = f"x_{split}", self.file()
        x = self._tensor(key)
        if x.ndim != 3:
            raise DatasetError(
                f"{p}: {key!r} has shape {_shape(x)}; expected (N, T, C): examples, time steps, channels"
            )
        if x.dtype.is_complex:
            raise DatasetError(f"{p}: {key!r} has dtype {x.dtype}; expected real numbers")
        if not (p.is_dir() and x.dtype in COMPACT):  # a mapped compact x stays on disk, made float32 per batch
            x = x.to(torch.float32)
        if x.dtype.is_floating_point and not all(torch.isfinite(x[i : i + 1024]).all() for i in range(0, len(x), 1024)):
            raise DatasetError(f"{p}: {key!r} holds NaN or infinite values")
        return x, self._labels(split, x.shape[0])

    def _events(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        data, p, key = self._read(), self.file(), f"events_{split}"
        channels, steps = self._scalar("num_channels"), self._scalar("steps")
        ev = data[key]
        if isinstance(ev, (list, tuple)):
            per = [e if isinstance(e, torch.Tensor) else torch.as_tensor(np.asarray(e)) for e in ev]
            for i, e in enumerate(per):
                if e.ndim != 2 or e.shape[1] != 2:
                    raise DatasetError(f"{p}: {key}[{i}] has shape {_shape(e)}; expected (k, 2) pairs (channel, time "
                                       f"step)")
            lengths = torch.tensor([len(e) for e in per], dtype=torch.int64)
            flat = torch.cat(per) if per else torch.zeros(0, 2, dtype=torch.int64)
        else:
            flat = self._tensor(key)
            if flat.ndim != 2 or flat.shape[1] != 2:
                raise DatasetError(f"{p}: {key!r} has shape {_shape(flat)}; expected (K, 2) (channel, time step) with "
                                   f"{key}_offsets, or a list of (k, 2) in a .pt file")
            okey = f"{key}_offsets"
            if okey not in data:
                raise DatasetError(f"{p}: {okey!r} is missing; expected (N + 1,) offsets into {key!r}")
            off = self._tensor(okey).to(torch.int64)
            if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(flat) or (off[1:] < off[:-1]).any():
                raise DatasetError(f"{p}: {okey!r} (shape {_shape(off)}) must rise from 0 to {len(flat)} = the number "
                                   f"of events")
            lengths = off[1:] - off[:-1]
        if flat.dtype.is_floating_point:
            if not torch.equal(flat, flat.round()):
                raise DatasetError(f"{p}: {key!r} holds non-integer channel or time values; expected integer (channel, "
                                   f"time step)")
        elif flat.dtype == torch.bool or flat.dtype.is_complex:
            raise DatasetError(f"{p}: {key!r} has dtype {flat.dtype}; expected integers")
        flat = flat.to(torch.int64)
        ch, t = flat[:, 0], flat[:, 1]
        if len(flat) and (ch.min() < 0 or ch.max() >= channels):
            raise DatasetError(f"{p}: {key!r} has channel {int(ch.min() if ch.min() < 0 else ch.max())}; expected "
                               f"0..{channels - 1} (num_channels = {channels})")
        if len(flat) and (t.min() < 0 or t.max() >= steps):
            raise DatasetError(f"{p}: {key!r} has time step {int(t.min() if t.min() < 0 else t.max())}; expected "
                               f"0..{steps - 1} (steps = {steps})")
        n = len(lengths)
        example = torch.repeat_interleave(torch.arange(n), lengths)
        x = torch.zeros(n * steps * channels)
        x.index_put_(((example * steps + t) * channels + ch,), torch.ones(len(flat)), accumulate=True)
        return x.view(n, steps, channels), self._labels(split, n)

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        data, p = self._read(), self.file()
        has_x, has_ev = f"x_{split}" in data, f"events_{split}" in data
        if has_x and has_ev:
            raise DatasetError(f"{p} holds both x_{split} and events_{split}; keep one")
        if not (has_x or has_ev):
            raise DatasetError(
                f"{p}: split {split!r} is missing: expected x_{split} (N, T, C) and y_{split} (N,), or events_{split}; "
                f"keys found: {', '.join(sorted(data)) or '(none)'}"
            )
        return self._dense(split) if has_x else self._events(split)

    def _all(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if getattr(self, "_checked", None) is not None:
            return self._checked
        p = self.file()
        out = {s: self._split(s) for s in self.splits}
        c = {s: x.shape[2] for s, (x, _) in out.items()}
        if len(set(c.values())) > 1:
            raise DatasetError(f"{p}: the splits have different channel counts C {c}; expected one input size")
        for s, (x, _) in out.items():
            if s in ("train", "test") and x.shape[0] == 0:
                raise DatasetError(f"{p}: the {s} split holds 0 examples "
                                   f"({'x' if f'x_{s}' in self._read() else 'events'}_{s} has N = 0); expected at "
                                   f"least one")
        k = self.num_classes_from(out)
        if "class_names" not in self._read():  # classes are the training labels: a label only seen in test is an error
            seen = sorted({int(v) for v in out["train"][1].unique()})
            if k > len(out["train"][1]):  # e.g. one label 10**9: a readout of 10**9 classes, most never seen
                raise DatasetError(f"{p}: y_train holds label {k - 1}, which makes {k:,} classes, more than its "
                                   f"{len(out['train'][1])} examples ({len(seen)} distinct labels); labels are class "
                                   "indices 0..K-1: renumber them (numpy.unique(y, return_inverse=True)) or declare "
                                   "the classes with class_names")
            for s, (_, y) in out.items():
                extra = sorted({int(v) for v in y.unique()} - set(seen)) if len(y) else []
                if s != "train" and extra and max(extra) >= k:
                    raise DatasetError(
                        f"{p}: y_{s} holds label {extra[-1]}, which y_train never uses (training labels: 0..{k - 1}); "
                        f"a class "
                        f"the network never trains on cannot be learnt. Add class_names to declare every class, or fix "
                        f"y_{s}."
                    )
        for s, (_, y) in out.items():
            if len(y) and (y.min() < 0 or y.max() >= k):
                bad = int(y.min() if y.min() < 0 else y.max())
                raise DatasetError(
                    f"{p}: y_{s} holds label {bad}; expected 0..{k - 1}"
                    + (f" ({k} class_names)" if "class_names" in self._read() else "")
                )
        self._checked = out
        return out

    def _names(self) -> list[str] | None:
        data = self._read()
        if "class_names" not in data:
            return None
        v = data["class_names"]
        names = (
            [str(s) for s in (v.tolist() if isinstance(v, np.ndarray) else v)]
            if isinstance(v, (np.ndarray, list, tuple))
            else None
        )
        if not names:
            raise DatasetError(f"{self.file()}: 'class_names' must be a non-empty list of strings; found {v!r}")
        return names

    def num_classes_from(self, out) -> int:
        names = self._names()
        if names is not None:
            return len(names)
        y = out["train"][1]  # the training labels define the classes (other splits are checked against them)
        return int(y.max()) + 1 if len(y) else 0

    # ----------------------------------------------------------------------- interface
    @property
    def num_classes(self):
        return self.num_classes_from(self._all())

    @property
    def input_size(self):
        return self._all()["train"][0].shape[2]

    @property
    def class_names(self):
        return self._names() or [str(i) for i in range(self.num_classes)]

    def load(self, split: str) -> ArrayData:
        if split not in self.splits:
            raise DatasetError(f"arrays: this file has splits {self.splits}, not {split!r}")
        x, y = self._all()[split]
        return ArrayData(x, y)

    def identity(self):
        p = self.file()
        if p.is_dir():  # mapped arrays may be gigabytes: identified by name, size and mtime, not read
            files = sorted(p.glob("*.npy"))
            return {"name": self.name, "params": dict(self.hparams), "folder": str(p),
                    "bytes": sum(q.stat().st_size for q in files), "files_identity": files_identity(files, p)}
        return {"name": self.name, "params": dict(self.hparams), "file": str(p), "bytes": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def register(register):
    register(Arrays)
