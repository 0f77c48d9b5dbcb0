"""``tonic``: any dataset of the Tonic library (neuromorphs/tonic) by name, binned into (T, channels) tensors.

Needs the optional extra: ``pip install snnkit-datasets[tonic]``.

Which dataset: ``name`` is a class of ``tonic.datasets`` (``SHD``, ``SSC``, ``NTIDIGITS18``, ``NMNIST``,
``DVSGesture``, ...) or, for a Tonic dataset of your own, an import path ``package.module:ClassName`` (a class
built on ``tonic.dataset.Dataset``, whose items are ``(events, target)``). ``kwargs`` are the class's other
keyword arguments, written like a call's: ``single_digits=True`` (Python literals only). The class is constructed
with ``save_to`` = ``--data-dir`` (else ``$SNNKIT_DATA/tonic``, else ``~/.cache/snnkit/data/tonic``); Tonic keeps
each dataset in ``<save_to>/<ClassName>/``, so a folder Tonic downloaded into before is found where it is. Tonic
downloads a missing dataset only with ``download=true``; otherwise the error names the folder it looked in.

Splits: the dataset's own. A class with a ``train`` argument is built with ``train=True`` for ``train`` and
``train=False`` for ``test``; a class with a ``split`` argument with ``split="train"`` and ``split="test"``, and,
when ``val_split`` names its validation value (SSC: ``valid``), with that for ``val``. Without a ``val`` split the
training run carves its validation set from ``train`` (``val_fraction``, stratified and seeded).

Events: ``transforms`` is a chain of ``tonic.transforms`` applied to each recording before binning, written like
calls and separated by ``;`` (``Downsample(spatial_factor=0.5); RefractoryPeriod(delta=1000)``). Binning is
Tonic's own ``ToFrame`` with ``steps`` frames: with ``time_window`` > 0, frames of that length (in the events'
time unit; Tonic uses microseconds) from time 0 (or from each recording's first event with ``align_start``) to
``steps * time_window``, later events dropped (``ToFrame(time_window=w, start_time=s, end_time=s + steps * w)``);
with ``time_window`` = 0, each recording's own span from first to last event cut into ``steps`` equal frames
(``ToFrame(n_time_bins=steps)``). A frame (polarities x height x width) is flattened to ``channels`` =
``p * h * w`` values (700 for SHD, 64 for N-TIDIGITS, 2 x 34 x 34 for N-MNIST); ``binary=true`` clips counts to 1.
A recording with no events gives an all-zero example. ``sensor_size`` overrides the class's own (needed after a
transform that changes it, such as ``Downsample``).

Cache: each split's frames are written once to the feature cache as a compact ``.npy`` (uint8 counts; int16 or
float32 when values need it) and memory-mapped on later loads (:mod:`snnkit_datasets.diskarray`); the labels
beside them. The key covers the class, its keyword arguments, the transforms, the binning, the split, the Tonic
version and the size and mtime of every file in the dataset's folder (for a class of your own, of its source
file too), so changing any of them bins again.

Labels: the item's target as an integer (a target that is not one raises :class:`DatasetError`; for N-TIDIGITS
pass ``single_digits=True``). Classes: ``num_classes`` when given, else the length of the dataset's ``classes``
list when it has one, else the largest training label + 1.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.dataset import track
from snnkit_core.contract.errors import DatasetError, MissingDependencyError
from snnkit_datasets.cache import cached, data_root, files_identity
from snnkit_datasets.diskarray import cached_array, store_counts

INSTALL = "pip install snnkit-datasets[tonic]"


def import_tonic():
    """The ``tonic`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import tonic
    except ImportError as exc:
        raise MissingDependencyError(f"the tonic dataset needs the Tonic library ({exc}); install it with "
                                     f"`{INSTALL}`") from None
    return tonic


def _call_args(text: str, what: str) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword literals of ``f(<text>)``; :class:`DatasetError` on anything but literals."""
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError) as exc:
        raise DatasetError(f"tonic: cannot read {what} {text!r} ({exc}); write key=value pairs with Python "
                           f"literals, e.g. single_digits=True, spatial_factor=0.5") from None
    if any(k is None for k in kwargs):
        raise DatasetError(f"tonic: {what} {text!r} uses ** ; write the key=value pairs out")
    return args, kwargs


def parse_kwargs(text: str) -> dict[str, Any]:
    """``"single_digits=True, n=3"`` (or a dict's repr, as a config file's table arrives) -> a dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = ast.literal_eval(text)
        except (SyntaxError, ValueError) as exc:
            raise DatasetError(f"tonic: cannot read kwargs {text!r} ({exc})") from None
        if not isinstance(value, dict):
            raise DatasetError(f"tonic: kwargs {text!r} is not a table of keyword arguments")
        return value
    args, kwargs = _call_args(text, "kwargs")
    if args:
        raise DatasetError(f"tonic: kwargs {text!r} has positional values; write key=value pairs")
    return kwargs


def parse_transforms(text: str) -> list:
    """``"Downsample(spatial_factor=0.5); RefractoryPeriod(delta=1000)"`` -> the Tonic transform objects."""
    transforms = import_tonic().transforms
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, paren, rest = part.partition("(")
        name = name.strip()
        if paren and not rest.rstrip().endswith(")"):
            raise DatasetError(f"tonic: transform {part!r} lacks its closing parenthesis")
        cls = getattr(transforms, name, None)
        if not name.isidentifier() or not inspect.isclass(cls):
            known = ", ".join(n for n in dir(transforms) if n[:1].isupper() and inspect.isclass(getattr(transforms, n)))
            raise DatasetError(f"tonic: {name!r} is not a class of tonic.transforms; known: {known}")
        args, kwargs = _call_args(rest.rstrip()[:-1] if paren else "", f"the arguments of {name}")
        try:
            out.append(cls(*args, **kwargs))
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"tonic: cannot build {part!r}: {exc}") from None
    return out


def dataset_class(name: str):
    """The Tonic dataset class called ``name``: ``tonic.datasets.<name>`` or ``package.module:Class``."""
    if not name:
        raise DatasetError("tonic needs a dataset: --set dataset.name=SHD (a class of tonic.datasets, or "
                           "package.module:Class for a Tonic dataset of your own)")
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DatasetError(f"tonic: cannot import {name!r} ({exc}); give package.module:ClassName") from None
    else:
        datasets = import_tonic().datasets
        cls = getattr(datasets, name, None)
        if not inspect.isclass(cls):
            known = ", ".join(n for n in dir(datasets) if n[:1].isupper() and inspect.isclass(getattr(datasets, n)))
            raise DatasetError(f"tonic: tonic.datasets has no dataset {name!r}; known: {known}")
    return cls


def frames(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int, window: float,
           align_start: bool) -> np.ndarray:
    """One recording's events as (steps, p * h * w) counts, through Tonic's ``ToFrame`` (module docstring)."""
    to_frame = import_tonic().transforms.ToFrame
    channels = int(np.prod(sensor_size))
    if len(events) == 0:
        return np.zeros((steps, channels), dtype=np.int16)
    if window > 0:
        start = float(events["t"][0]) if align_start else 0.0
        f = to_frame(sensor_size=sensor_size, time_window=window, start_time=start, end_time=start + steps * window)
    else:
        f = to_frame(sensor_size=sensor_size, n_time_bins=steps)
    out = np.asarray(f(events.copy()))
    out = out.reshape(out.shape[0], -1)
    if out.shape != (steps, channels):
        raise DatasetError(f"tonic: ToFrame gave frames of shape {out.shape}, expected ({steps}, {channels}); check "
                           f"sensor_size (a transform like Downsample changes it)")
    return out


class Tonic(Dataset):
    # no class docstring: `snnkit info tonic` then prints the module's, which explains every option

    name = "tonic"
    description = "any Tonic dataset (SHD, SSC, NTIDIGITS18, NMNIST, ...) by class name, binned with ToFrame"
    source = "https://github.com/neuromorphs/tonic (each dataset's own source and licence: see its class)"
    licence = "that of the chosen dataset"
    params = (
        Param("name", "", "Tonic dataset: a class of tonic.datasets (SHD, SSC, NTIDIGITS18, NMNIST, ...) or "
              "package.module:Class"),
        Param("kwargs", "", "the class's other keyword arguments, as key=value literals (single_digits=True)"),
        Param("transforms", "", "tonic.transforms before binning, ';'-separated calls "
              "(Downsample(spatial_factor=0.5))"),
        Param("steps", 250, "time bins (ToFrame frames)", unit="steps"),
        Param("time_window", 5600.0, "length of one bin in the events' time unit (Tonic: us; 5600 x 250 = 1.4 s); "
              "0: each recording's own span in `steps` equal bins (ToFrame n_time_bins)", unit="us"),
        Param("align_start", False, "with time_window: count time from each recording's first event instead of 0"),
        Param("binary", False, "clip counts to 0/1"),
        Param("sensor_size", "", "x,y,p sensor size after the transforms (default: the class's sensor_size)"),
        Param("val_split", "", "the class's `split` value for its validation set (SSC: valid); empty: no val split"),
        Param("num_classes", 0, "number of classes (0: the dataset's classes list, else largest train label + 1)"),
        Param("download", False, "let Tonic download a missing dataset (needs internet)"),
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        self._labels: dict[str, torch.Tensor] = {}
        self._classes: list[str] | None = None
        if self.hparams["val_split"]:
            self.splits = ("train", "val", "test")

    # ------------------------------------------------------------------ the Tonic class
    @property
    def save_to(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else data_root() / "tonic"

    def tonic_class(self):
        """The chosen class, wrapped so that a missing dataset is an error (not a download) unless allowed."""
        cls = dataset_class(self.hparams["name"])
        if self.hparams["download"]:
            return cls
        folder = self.save_to / cls.__name__

        def refuse(_self, *args, **kwargs):
            raise DatasetError(f"tonic: {cls.__name__} not found in {folder}/ (Tonic's layout for save_to="
                               f"{self.save_to}). Pass --data-dir SAVE_TO (the folder above {cls.__name__}/), or add "
                               f"--set dataset.download=true to let Tonic download it")

        # same class name: Tonic keeps a dataset in <save_to>/<class name>/
        return type(cls.__name__, (cls,), {"download": refuse, "__module__": cls.__module__})

    def split_kwargs(self, cls, split: str) -> dict[str, Any]:
        params = inspect.signature(cls.__init__).parameters
        if "train" in params:
            if split == "val":
                raise DatasetError(f"tonic: {cls.__name__} has train/test only; leave val_split empty (training "
                                   f"carves val_fraction of train)")
            return {"train": split == "train"}
        if "split" in params:
            return {"split": self.hparams["val_split"] if split == "val" else split}
        raise DatasetError(f"tonic: {cls.__name__} takes neither `train` nor `split`, so it has no train/test "
                           f"split for snnkit to use; split it yourself and use the arrays dataset")

    def open(self, split: str):
        """The Tonic dataset object of ``split`` (events untransformed; snnkit applies ``transforms``)."""
        if split not in self.splits:
            raise DatasetError(f"tonic has splits {self.splits}, not {split!r}")
        cls = self.tonic_class()
        kwargs = {**parse_kwargs(self.hparams["kwargs"]), **self.split_kwargs(cls, split)}
        try:
            return cls(save_to=str(self.save_to), **kwargs)
        except DatasetError:
            raise
        except (TypeError, ValueError, KeyError, OSError) as exc:
            raise DatasetError(f"tonic: cannot open {cls.__name__}({kwargs}) in {self.save_to}: {exc}") from None

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        given = self.hparams["sensor_size"]
        if given:
            try:
                size = tuple(int(v) for v in given.replace("(", "").replace(")", "").split(","))
            except ValueError:
                size = ()
            if len(size) != 3:
                raise DatasetError(f"tonic.sensor_size wants three integers x,y,p; got {given!r}")
            return size
        size = getattr(dataset_class(self.hparams["name"]), "sensor_size", None)
        if size is None:
            raise DatasetError(f"tonic: {self.hparams['name']} declares no sensor_size; give --set "
                               f"dataset.sensor_size=X,Y,P")
        return tuple(int(v) for v in size)

    # ------------------------------------------------------------------ the interface
    @property
    def input_size(self) -> int:
        return int(np.prod(self.sensor_size))

    @property
    def num_classes(self) -> int:
        if self.hparams["num_classes"]:
            return self.hparams["num_classes"]
        names = self.class_names_from_dataset()
        if names:
            return len(names)
        return int(self.labels("train").max()) + 1 if len(self.labels("train")) else 1

    @property
    def class_names(self) -> list[str]:
        names = self.class_names_from_dataset()
        k = self.num_classes
        return names if names and len(names) == k else [str(i) for i in range(k)]

    def class_names_from_dataset(self) -> list[str] | None:
        if self._classes is None:
            classes = getattr(self.open("train"), "classes", None)
            self._classes = [c.decode() if isinstance(c, bytes) else str(c) for c in classes] if classes is not None \
                and len(classes) else []
        return self._classes or None

    def labels(self, split: str) -> torch.Tensor:
        if split not in self._labels:
            self._labels[split] = self.load(split).y
        return self._labels[split]

    def load(self, split: str) -> ArrayData:
        ds = self.open(split)
        key = self.cache_key(ds, split)
        shape = (len(ds), self.hparams["steps"], self.input_size)
        box: dict[str, torch.Tensor] = {}

        def fill(out: np.ndarray) -> None:
            box["y"] = self.bin_into(ds, out)

        x = cached_array("tonic", key, shape, fill)
        y = cached("tonic", {**key, "part": "labels"}, lambda: {"y": box["y"] if "y" in box else self.bin_into(ds)})
        y = y["y"]
        self._labels[split] = y
        k = self.hparams["num_classes"]
        if k and len(y) and (y.min() < 0 or y.max() >= k):
            raise DatasetError(f"tonic: {split} labels lie in {int(y.min())}..{int(y.max())}, outside "
                               f"0..{k - 1} (num_classes={k})")
        return ArrayData(x, y)

    def bin_into(self, ds, out: np.ndarray | None = None) -> torch.Tensor:
        """Bin every recording of ``ds`` into ``out`` (when given) and return the labels."""
        hp = self.hparams
        transforms = parse_transforms(hp["transforms"])
        size, labels = self.sensor_size, []
        for i in track(range(len(ds)), description=f"tonic: binning {hp['name']}"):
            events, target = ds[i]
            try:
                labels.append(int(target))
            except (TypeError, ValueError):
                raise DatasetError(f"tonic: {hp['name']} item {i} has the target {target!r}, not an integer class "
                                   f"(N-TIDIGITS: --set dataset.kwargs=single_digits=True)") from None
            if out is None:
                continue
            for t in transforms:
                events = t(events)
            f = frames(events, size, hp["steps"], hp["time_window"], hp["align_start"])
            store_counts(out, i, (np.minimum(f, 1) if hp["binary"] else f)[None])
        return torch.tensor(labels, dtype=torch.int64)

    def cache_key(self, ds, split: str) -> dict[str, Any]:
        tonic = import_tonic()
        cls = dataset_class(self.hparams["name"])
        folder = Path(getattr(ds, "location_on_system", self.save_to / cls.__name__))
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        source = inspect.getsourcefile(cls)
        if not cls.__module__.startswith("tonic.") and source:
            files.append(Path(source))
        return {"class": f"{cls.__module__}:{cls.__qualname__}", "tonic": tonic.__version__, "split": split,
                "params": {k: v for k, v in self.hparams.items() if k not in ("download", "num_classes")},
                "files": files_identity(files), "n": len(ds)}

    def identity(self):
        ds = self.open("train")
        return {"name": self.name, "params": dict(self.hparams), "train": self.cache_key(ds, "train")}


def register(register):
    register(Tonic)
