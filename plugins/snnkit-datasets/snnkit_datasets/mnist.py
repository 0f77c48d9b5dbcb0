"""MNIST and Fashion-MNIST as spike-network inputs: ``mnist``, ``fmnist``, ``smnist``, ``psmnist``.

Layout: ``<data root>/mnist/`` holding the four original IDX files ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (gzip or
uncompressed, same names without ``.gz``); ``--data-dir`` may be that folder itself. Fashion-MNIST uses the
same file names in ``<data root>/fashion-mnist/``, falling back to ``/usr/share/datasets/fashion-mnist/``
(Debian package ``dataset-fashion-mnist``).

Splits: the official files, train 60,000 / test 10,000. ``val_size=N`` (default 0) holds out the *last* N
training images as a ``val`` split (splits become train / val / test).

Inputs (pixels scaled to [0, 1]):

* ``smnist``: one pixel per step in row-major order: x (N, 784, 1).
* ``psmnist``: the same after one fixed permutation of the 784 pixels, ``torch.randperm(784)`` from a
  generator seeded with ``perm_seed`` (default 0), identical for every split; the run manifest records
  the seed and the sha256 of the permutation.
* ``mnist`` / ``fmnist``: the whole image every step, x (N, steps, 784) (``steps`` = 400 as in ST-RSBP).
  ``encoding=direct`` repeats the intensities; the tensor is a stride-0 ``expand`` of (N, 1, 784), so it
  costs no memory until a batch is indexed. ``encoding=poisson`` draws Bernoulli spikes with probability
  ``intensity x max_rate`` per step from a generator seeded by ``seed`` (deterministic); it is materialised,
  so it is refused when it would exceed 4 GiB (per-batch sampling needs a core hook, see the docs).

The decoded uint8 images are cached on disk keyed by the files' sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.data import cached, data_root
from snnkit_core.errors import DatasetError

from .idx import read_pair

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OFFICIAL_COUNTS = {"train": 60000, "test": 10000}
PIXELS = 784
#: encoding=poisson materialises (N, steps, 784) float32; above this it refuses instead of exhausting memory
POISSON_MAX_BYTES = 4 * 2**30
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

_VAL = Param("val_size", 0, "training images held out (the last ones) as a 'val' split; 0 = none", unit="images")


class _IdxImages(Dataset):
    """Shared part: finding the four IDX files, decoding and caching them, the splits."""

    folder_name = "mnist"
    corpus = "MNIST"
    system_dirs: tuple[str, ...] = ()
    source = "http://yann.lecun.com/exdb/mnist/"
    licence = "CC BY-SA 3.0 (as commonly stated)"

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        v = self.hparams["val_size"]
        if not 0 <= v < OFFICIAL_COUNTS["train"]:
            raise DatasetError(f"{self.name}: val_size must be in 0..{OFFICIAL_COUNTS['train'] - 1}, got {v}")
        self.splits = ("train", "val", "test") if v else ("train", "test")

    @property
    def num_classes(self):
        return 10

    @property
    def class_names(self):
        return [str(d) for d in range(10)]

    # ------------------------------------------------------------------ files
    def _candidates(self) -> list[Path]:
        out = []
        if self.data_dir:
            out.append(Path(self.data_dir).expanduser())
        out.append(data_root(self.data_dir) / self.folder_name)
        out += [Path(d) for d in self.system_dirs]
        return out

    @staticmethod
    def _file(folder: Path, stem: str) -> Path | None:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
        return None

    def files(self) -> dict[str, tuple[Path, Path]]:
        """``{split: (images, labels)}`` from the first candidate folder that holds all four files."""
        looked = []
        for folder in self._candidates():
            found = {s: tuple(self._file(folder, stem) for stem in stems) for s, stems in FILES.items()}
            if all(p is not None for pair in found.values() for p in pair):
                return found  # type: ignore[return-value]
            if any(p is not None for pair in found.values() for p in pair):
                missing = [stem for s, stems in FILES.items() for stem, p in zip(stems, found[s]) if p is None]
                raise DatasetError(f"{self.corpus} in {folder} is incomplete: missing {', '.join(m + '[.gz]' for m in missing)}")
            looked.append(str(folder))
        names = ", ".join(stem + ".gz" for stems in FILES.values() for stem in stems)
        raise DatasetError(
            f"{self.corpus} not found: looked in {', '.join(looked)}; expected a folder holding {names} "
            f"(gzip or uncompressed). Pass --data-dir ROOT (with ROOT/{self.folder_name}/) or the folder itself, "
            f"or set SNNKIT_DATA."
        )

    def _digests(self, files) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for pair in files.values() for p in pair}

    def _raw(self) -> dict[str, torch.Tensor]:
        if getattr(self, "_raw_memo", None) is not None:
            return self._raw_memo
        files = self.files()
        key = {"corpus": self.folder_name, "files": self._digests(files), "v": 1}

        def compute():
            out = {}
            for split, (img, lbl) in files.items():
                x, y = read_pair(img, lbl)
                out[f"{split}_x"] = torch.from_numpy(np.array(x, dtype=np.uint8).reshape(len(x), PIXELS))
                out[f"{split}_y"] = torch.from_numpy(y.astype(np.int64))
            return out

        self._raw_memo = cached(f"{self.folder_name}-idx", key, compute)
        return self._raw_memo

    def images(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (N, 784), row-major, and int64 labels (N,) of a split."""
        if split not in self.splits:
            raise DatasetError(f"{self.name} has splits {self.splits}, not {split!r}" + ("; set val_size to get 'val'" if split == "val" else ""))
        raw = self._raw()
        if split == "test":
            return raw["test_x"], raw["test_y"]
        x, y, v = raw["train_x"], raw["train_y"], self.hparams["val_size"]
        if v >= len(x):
            raise DatasetError(f"{self.name}: val_size={v} leaves no training images (the train file holds {len(x)})")
        cut = len(x) - v
        return (x[:cut], y[:cut]) if split == "train" else (x[cut:], y[cut:])

    def identity(self):
        return {"name": self.name, "params": dict(self.hparams), "files": self._digests(self.files())}


class SMNIST(_IdxImages):
    """Sequential MNIST: 784 steps of one pixel each (row-major), intensities in [0, 1]."""

    name = "smnist"
    description = "Sequential MNIST: one pixel per step, 784 steps x 1 input, 60k train / 10k test"
    params = (_VAL,)

    @property
    def input_size(self):
        return 1

    def order(self) -> torch.Tensor | None:
        return None

    def load(self, split: str) -> ArrayData:
        img, y = self.images(split)
        perm = self.order()
        if perm is not None:
            img = img[:, perm]
        x = img.to(torch.float32).div_(255.0).unsqueeze(-1)
        return ArrayData(x, y)


class PSMNIST(SMNIST):
    """Permuted sequential MNIST: S-MNIST with one fixed, seeded permutation of the 784 pixel positions."""

    name = "psmnist"
    description = "Permuted sequential MNIST: S-MNIST with a fixed randperm(784) seeded by perm_seed"
    params = (Param("perm_seed", 0, "seed of the generator that draws the pixel permutation"), _VAL)

    def order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.hparams["perm_seed"])
        return torch.randperm(PIXELS, generator=g)

    def identity(self):
        perm = self.order()
        out = super().identity()
        out["permutation"] = {
            "seed": self.hparams["perm_seed"],
            "sha256": hashlib.sha256(perm.to(torch.int64).numpy().tobytes()).hexdigest(),
            "first": perm[:8].tolist(),
        }
        return out


class MNIST(_IdxImages):
    """MNIST as a whole image per time step (``direct``) or as Poisson spike trains (``poisson``)."""

    name = "mnist"
    description = "MNIST, 784 inputs every step for `steps` steps (direct intensities or seeded Poisson spikes)"
    params = (
        Param("steps", 400, "time steps per image (ST-RSBP uses 400)", unit="steps"),
        Param("encoding", "direct", "direct: intensity every step; poisson: Bernoulli spikes p = intensity x max_rate", choices=("direct", "poisson")),
        Param("max_rate", 0.2, "poisson: spike probability per step of a white (255) pixel", unit="spikes/step"),
        Param("seed", 0, "poisson: seed of the spike generator"),
        _VAL,
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        if self.hparams["steps"] < 1:
            raise DatasetError(f"{self.name}: steps must be >= 1, got {self.hparams['steps']}")
        if not 0.0 <= self.hparams["max_rate"] <= 1.0:
            raise DatasetError(f"{self.name}: max_rate is a probability per step, in [0, 1]; got {self.hparams['max_rate']}")

    @property
    def input_size(self):
        return PIXELS

    def load(self, split: str) -> ArrayData:
        img, y = self.images(split)
        n, steps = len(img), self.hparams["steps"]
        intensity = img.to(torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 784)
        if self.hparams["encoding"] == "direct":
            return ArrayData(intensity.expand(n, steps, PIXELS), y)
        need = n * steps * PIXELS * 4
        if need > POISSON_MAX_BYTES:
            raise DatasetError(
                f"{self.name} with encoding=poisson and steps={steps} would materialise {need / 2**30:.1f} GiB for the "
                f"{n} {split} images (x is (N, T, 784) float32; limit {POISSON_MAX_BYTES / 2**30:.0f} GiB). Spikes are not "
                f"yet sampled per batch. Use encoding=direct, or fewer steps."
            )
        g = torch.Generator().manual_seed(self.hparams["seed"] * 1000 + self.splits.index(split))
        p = intensity.mul_(self.hparams["max_rate"])
        x = torch.empty(n, steps, PIXELS)
        for start in range(0, n, 1024):  # chunks keep the temporary uniform draws small
            sl = slice(start, start + 1024)
            x[sl] = (torch.rand(x[sl].shape, generator=g) < p[sl]).to(torch.float32)
        return ArrayData(x, y)


class FMNIST(MNIST):
    """Fashion-MNIST (Zalando) with the same encodings as ``mnist``."""

    name = "fmnist"
    description = "Fashion-MNIST, 784 inputs every step for `steps` steps (direct or seeded Poisson), 10 clothing classes"
    folder_name = "fashion-mnist"
    corpus = "Fashion-MNIST"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    source = "https://github.com/zalandoresearch/fashion-mnist"
    licence = "MIT"

    @property
    def class_names(self):
        return list(FASHION_CLASSES)


def register(register):
    for cls in (MNIST, FMNIST, SMNIST, PSMNIST):
        register(cls)
