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
  costs no memory until a batch is indexed. ``encoding=poisson`` keeps the same intensities and sets
  ``ArrayData.encode`` to :class:`PoissonSpikes`: each batch gets Bernoulli spikes with probability
  ``intensity x max_rate`` per step, drawn when the batch is formed (fresh every epoch, reproducible from the
  run seed, ``seed`` and the split; evaluation sees the same spikes every time). Nothing (N, steps, 784) is
  ever materialised, so the full 60k x 400 training set costs the 188 MB of its intensities.

The decoded uint8 images are cached on disk keyed by the files' sha256, in :meth:`_IdxImages.cache_path`.

Download (opt-in, ``download=true``): when no folder holds the four files, the missing ``.gz`` files are fetched
into ``<data root>/mnist/`` (``fashion-mnist/``), each from the first mirror that works, resumably, and kept only
if its sha256 matches :data:`MNIST_SHA256` / :data:`FASHION_SHA256`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from snnkit_core import ArrayData, Dataset, Param
from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.cache import cache_path, cached, data_root

from .download import download_any
from .idx import read_pair

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OFFICIAL_COUNTS = {"train": 60000, "test": 10000}
PIXELS = 784
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
]

#: Mirrors of the original MNIST files, tried in order: torchvision's (pytorch/vision,
#: torchvision/datasets/mnist.py), the origin, and TensorFlow Datasets' (tensorflow/datasets,
#: tensorflow_datasets/url_checksums/mnist.txt). They serve the same bytes.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
#: sha256 of the four .gz files, from tensorflow/datasets tensorflow_datasets/url_checksums/mnist.txt (sizes
#: 9,912,422 / 28,881 / 1,648,877 / 4,542 bytes). The same files have the md5s pytorch/vision
#: torchvision/datasets/mnist.py checks (f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...); both were checked
#: against the official copies of the files.
MNIST_SHA256 = {"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}
#: Zalando's own host of Fashion-MNIST (the URL that pytorch/vision torchvision/datasets/mnist.py and
#: tensorflow/datasets use)
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
#: sha256 of the four .gz files at FASHION_MIRRORS, from tensorflow/datasets
#: tensorflow_datasets/url_checksums/fashion_mnist.txt (sizes 26,421,880 / 29,515 / 4,422,102 / 5,148 bytes).
#: pytorch/vision torchvision/datasets/mnist.py checks the same URLs by md5 (8d4fb7e6..., 25c81989...,
#: bef4ecab..., bb300cfd...). Debian's dataset-fashion-mnist .gz files differ (other gzip headers).
FASHION_SHA256 = {"train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                  "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                  "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                  "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"}

_VAL = Param("val_size", 0, "training images held out (the last ones) as a 'val' split; 0 = none", unit="images")
_DOWNLOAD = Param(
    "download", False, "download the four IDX files if they are missing (needs internet; sha256-verified)"
)


class _IdxImages(Dataset):
    """Shared part: finding the four IDX files, decoding and caching them, the splits."""

    folder_name = "mnist"
    corpus = "MNIST"
    system_dirs: tuple[str, ...] = ()
    source = "http://yann.lecun.com/exdb/mnist/"
    licence = "CC BY-SA 3.0 (as commonly stated)"
    #: where ``download=true`` fetches ``<mirror><file name>`` from, in order, and the sha256 each file must have
    mirrors: tuple[str, ...] = MNIST_MIRRORS
    sha256: dict[str, str] = MNIST_SHA256

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

    def _scan(self) -> tuple[dict[str, tuple[Path, Path]] | None, Path | None, list[str]]:
        """The first candidate folder holding any of the four files: ``(files, None)`` if it holds all of them,
        ``(None, folder)`` if only some; ``(None, None)`` when none does. Also the folders looked in."""
        looked = []
        for folder in self._candidates():
            found = {s: tuple(self._file(folder, stem) for stem in stems) for s, stems in FILES.items()}
            if all(p is not None for pair in found.values() for p in pair):
                return found, None, looked  # type: ignore[return-value]
            if any(p is not None for pair in found.values() for p in pair):
                return None, folder, looked
            looked.append(str(folder))
        return None, None, looked

    def files(self) -> dict[str, tuple[Path, Path]]:
        """``{split: (images, labels)}`` from the first candidate folder that holds all four files (with
        ``download=true``, after fetching the missing ones)."""
        found, partial, looked = self._scan()
        if found is None and self.hparams["download"] and str(partial) not in self.system_dirs:
            self.fetch(partial)
            found, partial, looked = self._scan()
        if found is not None:
            return found
        if partial is not None:
            missing = [stem for stems in FILES.values() for stem in stems if self._file(partial, stem) is None]
            raise DatasetError(
                f"{self.corpus} in {partial} is incomplete: missing {', '.join(m + '[.gz]' for m in missing)}"
                + ("" if str(partial) in self.system_dirs else "; add --set dataset.download=true to fetch them")
            )
        names = ", ".join(stem + ".gz" for stems in FILES.values() for stem in stems)
        raise DatasetError(
            f"{self.corpus} not found: looked in {', '.join(looked)}; expected a folder holding {names} "
            f"(gzip or uncompressed). Pass --data-dir ROOT (with ROOT/{self.folder_name}/) or the folder itself, "
            f"or set SNNKIT_DATA; or add --set dataset.download=true to fetch them."
        )

    def fetch(self, folder: Path | None = None) -> Path:
        """Download the files missing from ``folder`` (default ``<data root>/<folder_name>/``): each ``.gz`` from
        the first of :attr:`mirrors` that serves it, resumably, kept only if its sha256 is the one in
        :attr:`sha256` (a mismatch leaves no file and raises :class:`DatasetError`). Files already there, gzip
        or not, are left alone."""
        folder = Path(folder) if folder is not None else data_root(self.data_dir) / self.folder_name
        for stems in FILES.values():
            for stem in stems:
                if self._file(folder, stem) is None:
                    name = stem + ".gz"
                    download_any([m + name for m in self.mirrors], folder / name, sha256=self.sha256[name])
        return folder

    def _digests(self, files) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for pair in files.values() for p in pair}

    def _cache_key(self, files) -> dict:
        return {"corpus": self.folder_name, "files": self._digests(files), "v": 1}

    def cache_path(self) -> Path:
        """The file the decoded images are cached in (``$SNNKIT_CACHE/<folder>-idx/<key>.pt``), written by the
        first :meth:`load`. The key hashes the IDX files, so they must be present (else ``DatasetError``)."""
        return cache_path(f"{self.folder_name}-idx", self._cache_key(self.files()))

    def _raw(self) -> dict[str, torch.Tensor]:
        if getattr(self, "_raw_memo", None) is not None:
            return self._raw_memo
        files = self.files()
        key = self._cache_key(files)

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
            raise DatasetError(
                f"{self.name} has splits {self.splits}, not {split!r}"
                + ("; set val_size to get 'val'" if split == "val" else "")
            )
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
    params = (_VAL, _DOWNLOAD)

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
    params = (Param("perm_seed", 0, "seed of the generator that draws the pixel permutation"), _VAL, _DOWNLOAD)

    def order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.hparams["perm_seed"])
        return torch.randperm(PIXELS, generator=g)

    def identity(self):
        perm = self.order()
        out = super().identity()
        out["permutation"] = {"seed": self.hparams["perm_seed"],
                              "sha256": hashlib.sha256(perm.to(torch.int64).numpy().tobytes()).hexdigest(),
                              "first": perm[:8].tolist()}
        return out


class MNIST(_IdxImages):
    """MNIST as a whole image per time step (``direct``) or as Poisson spike trains (``poisson``)."""

    name = "mnist"
    description = "MNIST, 784 inputs every step for `steps` steps (direct intensities or seeded Poisson spikes)"
    params = (
        Param("steps", 400, "time steps per image (ST-RSBP uses 400)", unit="steps"),
        Param("encoding", "direct", "direct: intensity every step; poisson: Bernoulli spikes p = intensity x max_rate",
              choices=("direct", "poisson")),
        Param("max_rate", 0.2, "poisson: spike probability per step of a white (255) pixel", unit="spikes/step"),
        Param("seed", 0, "poisson: seed of the spike generator"),
        Param(
            "mean", 0.0, "direct: input = (intensity - mean)/std, intensity in [0, 1] (TSSL-BP's final code: 0.1307)"
        ),
        Param("std", 1.0, "direct: see mean (TSSL-BP's final code: 0.3081); 0 and 1 leave the intensities as they are"),
        _VAL,
        _DOWNLOAD,
    )

    def __init__(self, data_dir: str | None = None, **params):
        super().__init__(data_dir, **params)
        if self.hparams["steps"] < 1:
            raise DatasetError(f"{self.name}: steps must be >= 1, got {self.hparams['steps']}")
        if not self.hparams["std"] > 0:
            raise DatasetError(f"{self.name}: std must be > 0, got {self.hparams['std']}")
        if self.hparams["encoding"] == "poisson" and (self.hparams["mean"], self.hparams["std"]) != (0.0, 1.0):
            raise DatasetError(f"{self.name}: mean/std normalise direct inputs only; poisson spikes need intensities "
                               f"in [0, 1]")
        if not 0.0 <= self.hparams["max_rate"] <= 1.0:
            raise DatasetError(f"{self.name}: max_rate is a probability per step, in [0, 1]; got "
                               f"{self.hparams['max_rate']}")

    @property
    def input_size(self):
        return PIXELS

    def load(self, split: str) -> ArrayData:
        img, y = self.images(split)
        n, steps = len(img), self.hparams["steps"]
        intensity = img.to(torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 784)
        if (self.hparams["mean"], self.hparams["std"]) != (0.0, 1.0):
            intensity = intensity.sub_(self.hparams["mean"]).div_(self.hparams["std"])
        x = intensity.expand(n, steps, PIXELS)  # stride 0 over time: no (N, steps, 784) copy
        if self.hparams["encoding"] == "direct":
            return ArrayData(x, y)
        seed = self.hparams["seed"] * 1000 + ("train", "val", "test").index(split)
        return ArrayData(x, y, encode=PoissonSpikes(self.hparams["max_rate"], seed))


class PoissonSpikes:
    """``ArrayData.encode`` for intensities in [0, 1]: Bernoulli spikes ``u < intensity x max_rate``, u ~ U[0, 1).

    Each call draws one 62-bit number from the loop's ``generator`` (the training loop's per-epoch one, or
    evaluation's fixed one) and seeds a generator on the batch's device with it and ``seed``, so the spikes
    are reproducible and drawn where the batch lives. With ``generator=None`` every call uses ``seed`` alone.
    """

    def __init__(self, max_rate: float, seed: int):
        self.max_rate = float(max_rate)
        self.seed = int(seed)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        draw = 0 if generator is None else int(torch.randint(0, 2**62, (1,), generator=generator))
        g = torch.Generator(device=x.device).manual_seed((self.seed * 1_000_003 + draw) % 2**63)
        u = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)  # (B, T, C)
        return (u < x * self.max_rate).to(x.dtype)

    def __repr__(self) -> str:
        return f"PoissonSpikes(max_rate={self.max_rate}, seed={self.seed})"


class FMNIST(MNIST):
    """Fashion-MNIST (Zalando) with the same encodings as ``mnist``."""

    name = "fmnist"
    description = ("Fashion-MNIST, 784 inputs every step for `steps` steps (direct or seeded Poisson), "
                   "10 clothing classes")
    folder_name = "fashion-mnist"
    corpus = "Fashion-MNIST"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    source = "https://github.com/zalandoresearch/fashion-mnist"
    licence = "MIT"
    mirrors = FASHION_MIRRORS
    sha256 = FASHION_SHA256

    @property
    def class_names(self):
        return list(FASHION_CLASSES)


def register(register):
    for cls in (MNIST, FMNIST, SMNIST, PSMNIST):
        register(cls)
