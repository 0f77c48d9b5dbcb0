"""IDX reader and the MNIST family (mnist, fmnist, smnist, psmnist): synthetic IDX files in the real format, and
the real copies when ../shared/datasets (or $SNNKIT_TEST_DATA) and /usr/share/datasets/fashion-mnist exist."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from snnkit_core.contract.errors import DatasetError
from snnkit_datasets.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_pair
from snnkit_datasets.mnist import FMNIST, MNIST, PSMNIST, SMNIST, PoissonSpikes

STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNKIT_DATA", raising=False)


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | arr.ndim)
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = True, magic: int | None = None) -> Path:
    data = idx_bytes(arr, magic)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_corpus(folder: Path, n_train=30, n_test=10, gz=True, seed=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        img, lbl = STEMS[split]
        write_idx(folder / (img + (".gz" if gz else "")), x, gz)
        write_idx(folder / (lbl + (".gz" if gz else "")), y, gz)
        out[split] = (x, y)
    return out


# ------------------------------------------------------------------------------------------- idx reader


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_images_and_labels(tmp_path, gz):
    x = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    y = np.array([7, 0, 9], dtype=np.uint8)
    xi, yi = read_pair(write_idx(tmp_path / "i", x, gz), write_idx(tmp_path / "l", y, gz))
    assert np.array_equal(xi, x) and np.array_equal(yi, y)


def test_idx_wrong_magic_names_file_and_expected(tmp_path):
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz has magic number 0x00000801; expected "
                                           r"0x00000803"):
        read_idx(labels, IMAGES_MAGIC, (28, 28))
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DatasetError, match=r"junk has magic number 0x504b0304; expected 0x00000801"):
        read_idx(junk, LABELS_MAGIC, ())


def test_idx_truncated_raw_and_gzip(tmp_path):
    x = np.zeros((5, 28, 28), np.uint8)
    raw = write_idx(tmp_path / "raw-idx3-ubyte", x, gz=False)
    raw.write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"raw-idx3-ubyte is truncated: shape \(5, 28, 28\) needs 3920 data bytes "
                                           r"after the header, found 3820"):
        read_idx(raw, IMAGES_MAGIC, (28, 28))
    gz = write_idx(tmp_path / "g-idx3-ubyte.gz", x)
    gz.write_bytes(gz.read_bytes()[:-12])
    with pytest.raises(DatasetError, match=r"g-idx3-ubyte.gz is a damaged or truncated gzip file"):
        read_idx(gz, IMAGES_MAGIC, (28, 28))
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(DatasetError, match="too short for an IDX header"):
        read_idx(short)


def test_idx_shape_count_and_label_checks(tmp_path):
    img = write_idx(tmp_path / "img", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match=r"holds 5 images but .*lbl holds 4 labels; expected the same count"):
        read_pair(img, write_idx(tmp_path / "lbl", np.zeros(4, np.uint8)))
    small = write_idx(tmp_path / "small", np.zeros((5, 14, 14), np.uint8))
    with pytest.raises(DatasetError, match=r"small holds an array of shape \(5, 14, 14\); expected \(n, 28, 28\)"):
        read_idx(small, IMAGES_MAGIC, (28, 28))
    with pytest.raises(DatasetError, match=r"holds label 10; expected labels 0..9"):
        read_pair(
            write_idx(tmp_path / "i1", np.zeros((1, 28, 28), np.uint8)),
            write_idx(tmp_path / "l1", np.array([10], np.uint8)),
        )
    extra = tmp_path / "extra"
    extra.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="1 bytes after the end"):
        read_idx(extra, LABELS_MAGIC, ())


# ------------------------------------------------------------------------------------ synthetic corpora


def test_smnist_shapes_values_and_layouts(tmp_path):
    truth = write_corpus(tmp_path / "mnist")
    ds = SMNIST(data_dir=str(tmp_path))
    tr, te = ds.load("train"), ds.load("test")
    assert tuple(tr.x.shape) == (30, 784, 1) and tuple(te.x.shape) == (10, 784, 1)
    assert tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    x, y = truth["train"]
    assert torch.allclose(tr.x[3, :, 0], torch.from_numpy(x[3].reshape(-1) / 255.0).float())  # row-major pixels
    assert tr.y.tolist() == y.tolist() and ds.input_size == 1 and ds.num_classes == 10
    # the corpus folder itself, and uncompressed files
    assert len(SMNIST(data_dir=str(tmp_path / "mnist")).load("test")) == 10
    write_corpus(tmp_path / "raw" / "mnist", gz=False)
    assert len(SMNIST(data_dir=str(tmp_path / "raw")).load("train")) == 30


def test_val_split_holds_out_the_last_training_images(tmp_path):
    write_corpus(tmp_path / "mnist")
    full = SMNIST(data_dir=str(tmp_path)).load("train")
    ds = SMNIST(data_dir=str(tmp_path), val_size=8)
    assert ds.splits == ("train", "val", "test")
    tr, va = ds.load("train"), ds.load("val")
    assert (len(tr), len(va)) == (22, 8) and torch.equal(va.x, full.x[22:])
    assert SMNIST(data_dir=str(tmp_path)).splits == ("train", "test")
    with pytest.raises(DatasetError, match="set val_size"):
        SMNIST(data_dir=str(tmp_path)).load("val")
    with pytest.raises(DatasetError, match="leaves no training images"):
        SMNIST(data_dir=str(tmp_path), val_size=30).load("train")


def test_psmnist_permutation_is_fixed_seeded_and_recorded(tmp_path):
    write_corpus(tmp_path / "mnist")
    s = SMNIST(data_dir=str(tmp_path)).load("train")
    a, b, c = (PSMNIST(data_dir=str(tmp_path), perm_seed=k) for k in (0, 0, 1))
    perm = torch.randperm(784, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.order(), perm) and torch.equal(a.load("train").x[:, :, 0], s.x[:, perm, 0])
    assert torch.equal(a.load("test").x, b.load("test").x)  # same permutation every time, every split
    ia, ib, ic = a.identity()["permutation"], b.identity()["permutation"], c.identity()["permutation"]
    assert ia == ib and ia["seed"] == 0 and ic["seed"] == 1 and ia["sha256"] != ic["sha256"]
    assert ia["sha256"] == hashlib.sha256(perm.numpy().astype(np.int64).tobytes()).hexdigest()
    assert sorted(a.order().tolist()) == list(range(784))


def test_mnist_direct_is_a_free_expand(tmp_path):
    write_corpus(tmp_path / "mnist")
    d = MNIST(data_dir=str(tmp_path), steps=400).load("train")
    assert tuple(d.x.shape) == (30, 400, 784) and d.x.stride(1) == 0  # no (N, T, 784) copy
    assert d.encode is None
    batch = d.x[torch.tensor([2, 5])]
    assert torch.equal(batch[:, 0], batch[:, 399]) and batch.shape == (2, 400, 784)


def digit_like(n: int, seed: int = 0) -> np.ndarray:
    """(n, 28, 28) uint8 looking like MNIST: black background, a saturated stroke with anti-aliased grey edges."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 28, 28), np.uint8)
    for k in range(n):
        r, c = rng.integers(6, 16, size=2)
        img[k, r : r + 8, c : c + 3] = 255  # stroke
        img[k, r : r + 8, c - 1] = 64  # edges: the grey levels real digits have
        img[k, r : r + 8, c + 3] = 160
    return img


def write_digit_corpus(folder: Path, n_train=40, n_test=20):
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        img, lbl = STEMS[split]
        write_idx(folder / (img + ".gz"), digit_like(n, seed))
        write_idx(folder / (lbl + ".gz"), (np.arange(n) % 10).astype(np.uint8))


def test_poisson_keeps_intensities_and_samples_spikes_per_batch(tmp_path):
    write_digit_corpus(tmp_path / "mnist")
    direct = MNIST(data_dir=str(tmp_path), steps=300).load("train")
    d = MNIST(data_dir=str(tmp_path), steps=300, encoding="poisson", max_rate=0.5).load("train")
    # memory: x is the stride-0 intensity tensor, (N, 784) floats of storage, not (N, steps, 784)
    assert d.x.stride(1) == 0 and torch.equal(d.x, direct.x)
    assert d.x.untyped_storage().nbytes() == 40 * 784 * 4
    assert isinstance(d.encode, PoissonSpikes)
    spikes = d.encode(d.x, torch.Generator().manual_seed(3))
    assert spikes.shape == (40, 300, 784) and spikes.dtype == torch.float32
    assert set(spikes.unique().tolist()) == {0.0, 1.0}
    intensity = d.x[:, 0]  # (N, 784)
    rate = spikes.mean(1)  # firing probability per pixel, (N, 784)
    assert float(rate[intensity == 0].max()) == 0.0  # black background never fires
    for level in (64, 160, 255):  # each grey level fires at level/255 x max_rate (binomial tolerance, > 5 sigma)
        sel = (intensity * 255).round() == level
        p = level / 255 * 0.5
        n = int(sel.sum()) * 300
        assert n > 10_000 and abs(float(rate[sel].mean()) - p) < 5 * (p * (1 - p) / n) ** 0.5, level


def test_poisson_spikes_are_reproducible_and_fresh_per_generator(tmp_path):
    write_digit_corpus(tmp_path / "mnist")
    ds = MNIST(data_dir=str(tmp_path), steps=20, encoding="poisson", max_rate=0.8)
    tr, te = ds.load("train"), ds.load("test")
    x = tr.x[:8]
    g = lambda k: torch.Generator().manual_seed(k)  # noqa: E731
    assert torch.equal(tr.encode(x, g(1)), tr.encode(x, g(1)))
    assert not torch.equal(tr.encode(x, g(1)), tr.encode(x, g(2)))  # the loop's per-epoch generator: fresh spikes
    assert torch.equal(tr.encode(x, None), tr.encode(x, None))  # no generator: the encoder's seed alone
    other = MNIST(data_dir=str(tmp_path), steps=20, encoding="poisson", max_rate=0.8, seed=1).load("train")
    assert not torch.equal(tr.encode(x, g(1)), other.encode(x, g(1)))  # the dataset's seed matters
    # the test split as evaluate() draws it (a generator seeded the same on every call): the same spikes each time
    from snnkit_core.engine.data import indexed_batches

    def eval_pass():
        return [bx for bx, _, _ in indexed_batches(te, 7, False, torch.Generator().manual_seed(0))]

    first, second = eval_pass(), eval_pass()
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, second))
    assert set(torch.cat(first).unique().tolist()) == {0.0, 1.0}


def test_poisson_needs_no_size_limit_and_subset_stays_cheap(tmp_path):
    write_corpus(tmp_path / "mnist")
    # 30 x 100,000 x 784 float32 would be 9.4 GB if materialised; the loader keeps 30 x 784 floats
    d = MNIST(data_dir=str(tmp_path), steps=100_000, encoding="poisson").load("train")
    assert d.x.shape == (30, 100_000, 784) and d.x.untyped_storage().nbytes() == 30 * 784 * 4
    sub = d.subset(10, seed=0)
    assert len(sub) == 10 and sub.x.stride(1) == 0 and sub.encode is d.encode
    assert sub.x.untyped_storage().nbytes() == 10 * 784 * 4
    idx = torch.randperm(30, generator=torch.Generator().manual_seed(0))[:10].sort().values
    assert torch.equal(sub.x[:, 0], d.x[idx, 0]) and torch.equal(sub.y, d.y[idx])


def test_cache_path_is_the_file_written(tmp_path):
    write_corpus(tmp_path / "mnist")
    write_corpus(tmp_path / "fashion-mnist", seed=1)
    cache = tmp_path / "cache"
    for cls, folder in ((MNIST, "mnist-idx"), (SMNIST, "mnist-idx"), (PSMNIST, "mnist-idx"),
                        (FMNIST, "fashion-mnist-idx")):
        ds = cls(data_dir=str(tmp_path))
        path = ds.cache_path()
        assert path.parent == cache / folder and path.suffix == ".pt"
        ds.load("test")
        assert path.is_file(), cls.name
    assert SMNIST(data_dir=str(tmp_path)).cache_path() == MNIST(data_dir=str(tmp_path)).cache_path()  # shared
    assert sorted(p.name for p in (cache / "mnist-idx").glob("*.pt")) == [
        MNIST(data_dir=str(tmp_path)).cache_path().name
    ]
    assert FMNIST(data_dir=str(tmp_path)).cache_path() != MNIST(data_dir=str(tmp_path)).cache_path()
    with pytest.raises(DatasetError, match="MNIST not found"):
        MNIST(data_dir=str(tmp_path / "empty")).cache_path()


def test_fmnist_reads_its_own_folder_with_its_class_names(tmp_path):
    write_corpus(tmp_path / "fashion-mnist", n_train=20)
    ds = FMNIST(data_dir=str(tmp_path), steps=5)
    assert tuple(ds.load("train").x.shape) == (20, 5, 784) and ds.class_names[9] == "Ankle boot"


def test_direct_input_normalisation_mean_std(tmp_path):
    """TSSL-BP's final Fashion-MNIST loader feeds (x - 0.1307)/0.3081; mean/std make that settable."""
    raw = write_corpus(tmp_path / "fashion-mnist", n_train=12)
    plain = FMNIST(data_dir=str(tmp_path), steps=5).load("train").x
    norm = FMNIST(data_dir=str(tmp_path), steps=5, mean=0.1307, std=0.3081).load("train").x
    want = (torch.from_numpy(raw["train"][0].reshape(12, 784)).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(norm[:, 3], want)
    torch.testing.assert_close(norm, (plain - 0.1307) / 0.3081)
    assert norm.stride(1) == 0  # still a free expand over time
    with pytest.raises(DatasetError, match="std must be > 0"):
        FMNIST(data_dir=str(tmp_path), std=0.0)
    with pytest.raises(DatasetError, match="direct inputs only"):
        FMNIST(data_dir=str(tmp_path), encoding="poisson", mean=0.5)


def test_missing_and_incomplete_folders_name_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"MNIST not found: looked in .*expected a folder holding "
                                           r"train-images-idx3-ubyte.gz"):
        SMNIST(data_dir=str(tmp_path)).load("train")
    write_corpus(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"incomplete: missing t10k-labels-idx1-ubyte\[.gz\]"):
        SMNIST(data_dir=str(tmp_path)).load("train")


def test_registered_by_name():
    from snnkit_core.contract.plugins import get_registry

    reg = get_registry()
    for name, cls in (("mnist", MNIST), ("fmnist", FMNIST), ("smnist", SMNIST), ("psmnist", PSMNIST)):
        assert reg.get("dataset", name) is cls
        assert cls.description and cls.source and cls.licence


# -------------------------------------------------------------------------------------------- real data


def _shared() -> Path | None:
    env = os.environ.get("SNNKIT_TEST_DATA")
    p = Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"
    return p if (p / "mnist" / "train-images-idx3-ubyte.gz").is_file() else None


@pytest.mark.skipif(_shared() is None, reason="../shared/datasets/mnist is not present")
def test_real_mnist_official_counts_and_smnist_time():
    t0 = time.perf_counter()
    ds = SMNIST(data_dir=str(_shared()))
    tr, te = ds.load("train"), ds.load("test")
    elapsed = time.perf_counter() - t0
    print(f"S-MNIST preprocessing (decode + cache + float) on CPU: {elapsed:.2f}s")
    assert (len(tr), len(te)) == (60000, 10000) and tuple(tr.x.shape[1:]) == (784, 1)
    assert torch.bincount(tr.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(te.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert 0.0 <= float(tr.x.min()) and float(tr.x.max()) == 1.0
    ident = PSMNIST(data_dir=str(_shared() / "mnist")).identity()
    assert (
        ident["files"]["train-images-idx3-ubyte.gz"]
        == "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    )


@pytest.mark.skipif(_shared() is None, reason="../shared/datasets/mnist is not present")
def test_real_mnist_poisson_rate_follows_intensity():
    te = MNIST(data_dir=str(_shared()), steps=100, encoding="poisson", max_rate=0.2).load("test")
    assert te.x.stride(1) == 0 and te.x.untyped_storage().nbytes() == 10000 * 784 * 4
    x = te.x[:200]
    spikes = te.encode(x, torch.Generator().manual_seed(0))
    assert set(spikes.unique().tolist()) == {0.0, 1.0}
    rate, intensity = spikes.mean(1), x[:, 0]  # (200, 784)
    assert float(rate[intensity == 0].max()) == 0.0
    for lo, hi in ((0.05, 0.35), (0.35, 0.7), (0.7, 1.01)):  # intensity bins: rate = mean intensity x max_rate
        sel = (intensity >= lo) & (intensity < hi)
        assert abs(float(rate[sel].mean()) - float(intensity[sel].mean()) * 0.2) < 0.005, (lo, hi)


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist is not "
                                                                                   "installed")
def test_real_fashion_mnist_from_the_debian_package(tmp_path):
    ds = FMNIST(data_dir=str(tmp_path), steps=3)  # nothing under the data root: falls back to /usr/share
    tr, te = ds.load("train"), ds.load("test")
    assert (len(tr), len(te)) == (60000, 10000) and tuple(tr.x.shape[1:]) == (3, 784)
    assert torch.bincount(te.y).tolist() == [1000] * 10
