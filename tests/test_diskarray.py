"""Memory-mapped compact splits (snnkit_datasets.diskarray): the same batches and the same training as in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnkit_core.contract.interfaces import ArrayData
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import indexed_batches
from snnkit_core.engine.training import build, train
from snnkit_datasets.diskarray import CountOverflow, cached_array, open_array, store_counts, use_disk, write_array


def _counts(n=48, t=10, c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.poisson(torch.full((n, t, c), 0.3), generator=g)
    x[y == 1, :, :4] += torch.poisson(torch.full((int((y == 1).sum()), t, 4), 1.0), generator=g)
    x[y == 0, :, 4:] += torch.poisson(torch.full((int((y == 0).sum()), t, 4), 1.0), generator=g)
    return x, y


def _on_disk(tmp_path, x, name="x"):
    path = tmp_path / f"{name}.npy"
    write_array(path, tuple(x.shape), np.uint8, lambda out: store_counts(out, 0, x.numpy()))
    return open_array(path)


def test_memmap_batches_equal_in_memorybatches(tmp_path):
    x, y = _counts()
    xm = _on_disk(tmp_path, x)
    assert xm.dtype == torch.uint8 and torch.equal(xm.float(), x)
    mem, disk = ArrayData(x, y), ArrayData(xm, y)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = list(indexed_batches(mem, 7, True, g1))
    b = list(indexed_batches(disk, 7, True, g2))
    assert len(a) == len(b) == 7
    for (xa, ya, _), (xb, yb, _) in zip(a, b):
        assert xb.dtype == torch.float32 and torch.equal(xa, xb) and torch.equal(ya, yb)
    # subset and to() keep the compact dtype; batch() converts
    sub = disk.subset(10, seed=1)
    assert sub.x.dtype == torch.uint8 and torch.equal(sub.batch(torch.arange(10)), mem.subset(10, seed=1).x)


def test_memmap_training_equals_in_memory_training(fake, tmp_path):
    x, y = _counts()
    xt, yt = _counts(20, seed=1)
    cfg = TrainConfig(neuron="lif", conn="self", rules=("bptt",), dataset="tiny", hidden=(8, 8), epochs=2,
                      batch_size=16, device="cpu")
    mem = list(train(cfg, built=build(cfg), data=(ArrayData(x, y), ArrayData(xt, yt))))
    b = build(cfg)
    disk = list(
        train(cfg, built=b, data=(ArrayData(_on_disk(tmp_path, x), y), ArrayData(_on_disk(tmp_path, xt, "t"), yt)))
    )
    for r1, r2 in zip(mem, disk):
        assert r1.train_loss == r2.train_loss and r1.test_accuracy == r2.test_accuracy
    ref = build(cfg)
    list(train(cfg, built=ref, data=(ArrayData(x, y), ArrayData(xt, yt))))
    for (k, p), q in zip(ref.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(p, q), k


def test_cached_array_reuses_and_widens(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path))
    calls = []

    def fill(out):
        calls.append(out.dtype)
        store_counts(out, 0, np.full((2, 3, 4), 300))

    x = cached_array("demo", {"a": 1}, (2, 3, 4), fill)
    assert x.dtype == torch.int16 and int(x.sum()) == 300 * 24 and calls == [np.uint8, np.int16]
    assert torch.equal(cached_array("demo", {"a": 1}, (2, 3, 4), fill), x) and len(calls) == 2  # mapped, not refilled
    assert not list(tmp_path.rglob("*.tmp*"))  # the overflowed uint8 attempt left nothing behind
    with pytest.raises(CountOverflow):
        cached_array(
            "demo", {"a": 2}, (1, 1, 1), lambda out: store_counts(out, 0, np.full((1, 1, 1), 1e9)), dtypes=(np.uint8,)
        )


def test_float16_features_and_auto_threshold(tmp_path):
    feats = torch.randn(5, 6, 3)
    path = tmp_path / "f.npy"
    write_array(path, (5, 6, 3), np.float16, lambda out: store_counts(out, 0, feats.numpy()))
    d = ArrayData(open_array(path), torch.zeros(5, dtype=torch.int64))
    got = d.batch(torch.tensor([4, 0]))
    assert got.dtype == torch.float32 and torch.allclose(got, feats[[4, 0]], rtol=2**-11, atol=0)
    assert use_disk("auto", 75_466, 250, 140)  # SSC train: 10.6 GB as float32 -> disk
    assert (
        use_disk("auto", 8_156, 250, 140) is False
        and use_disk("disk", 1, 1, 1)
        and not use_disk("memory", 10**9, 250, 700)
    )
