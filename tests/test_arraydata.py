"""ArrayData: stride-0 inputs stay cheap through ``rows``/``subset``; ``encode`` runs per batch in training and
evaluation (reproducibly); EpochRecord's ``extra`` is not shared between records."""

from __future__ import annotations

import pytest
import torch

from snnkit_core import ArrayData
from snnkit_core.engine.config import TrainConfig
from snnkit_core.engine.data import indexed_batches
from snnkit_core.engine.training import EpochRecord, build, evaluate, train


def expanded(n=50, t=400, c=30) -> ArrayData:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 1, c, generator=g)
    return ArrayData(base.expand(n, t, c), torch.arange(n) % 3)


# ------------------------------------------------------------------------------------------ rows, subset


def test_rows_match_plain_indexing_without_materialising():
    d = expanded()
    idx = torch.tensor([4, 0, 17, 4])
    r = d.rows(idx)
    assert torch.equal(r, d.x[idx]) and r.shape == (4, 400, 30)
    assert r.stride(1) == 0 and r.untyped_storage().nbytes() == 4 * 30 * 4  # B x C floats, not B x T x C
    dense = ArrayData(torch.rand(6, 5, 3), torch.zeros(6, dtype=torch.int64))  # no stride 0: ordinary indexing
    assert torch.equal(dense.rows(idx[:2].clamp(max=5)), dense.x[idx[:2].clamp(max=5)])


def test_rows_handle_stride_zero_on_any_dimension():
    frame = torch.rand(1, 7, 1)
    x = frame.expand(9, 7, 5)  # the same example repeated (dim 0) and the same value on every channel (dim 2)
    d = ArrayData(x, torch.zeros(9, dtype=torch.int64))
    r = d.rows(torch.tensor([8, 2, 3]))
    assert torch.equal(r, x[torch.tensor([8, 2, 3])]) and r.stride(0) == 0 and r.stride(2) == 0
    assert r.untyped_storage().nbytes() == 7 * 4
    assert ArrayData.compact(x).shape == (1, 7, 1)


def test_rows_refuse_non_integer_indices():
    with pytest.raises(ValueError, match=r"integer indices \(B,\); got torch.bool"):
        expanded().rows(torch.ones(50, dtype=torch.bool))


def test_subset_keeps_an_expand_cheap_and_keeps_encode():
    enc = lambda x, g: x * 2  # noqa: E731
    d = ArrayData(expanded().x, expanded().y, encode=enc)
    sub = d.subset(10, seed=3)
    idx = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:10].sort().values
    assert torch.equal(sub.x, d.x[idx]) and torch.equal(sub.y, d.y[idx]) and sub.encode is enc
    assert sub.x.stride(1) == 0 and sub.x.untyped_storage().nbytes() == 10 * 30 * 4
    assert d.subset(None) is d and d.subset(50) is d


def test_encode_must_be_callable():
    with pytest.raises(TypeError, match="'encode' must be callable"):
        ArrayData(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.int64), encode="poisson")


# ------------------------------------------------------------------------------------------ batches


def bernoulli(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    g = torch.Generator(device=x.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return (torch.rand(x.shape, generator=g, device=x.device) < x).to(x.dtype)


def test_batches_encode_each_batch_after_indexing():
    seen = []

    def enc(x, g):
        seen.append((x.shape, x.stride(1), g))
        return x + 1

    d = ArrayData(expanded().x, expanded().y, encode=enc)
    gen = torch.Generator().manual_seed(0)
    out = list(indexed_batches(d, 16, True, gen))
    assert [s for s, _, _ in seen] == [(16, 400, 30)] * 3 + [(2, 400, 30)]
    assert all(stride == 0 and g is gen for _, stride, g in seen)  # the rows arrive un-materialised
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0][0], d.x[order[:16]] + 1) and torch.equal(out[0][1], d.y[order[:16]])
    plain = list(indexed_batches(expanded(), 16, False, None))  # without encode: x[idx] as before
    assert torch.equal(plain[1][0], expanded().x[16:32]) and plain[1][0].is_contiguous()


def test_batches_move_the_compact_rows_to_the_device_before_encoding():
    seen = []
    d = ArrayData(
        expanded().x, expanded().y, encode=lambda x, g: seen.append(x) or torch.zeros(x.shape, device=x.device)
    )
    (x, y, _), *_ = indexed_batches(d, 16, False, None, torch.device("meta"))  # "meta" stands in for a GPU here
    assert seen[0].device.type == "meta" and seen[0].shape == (16, 400, 30) and seen[0].stride(1) == 0
    assert x.device.type == "meta" and y.device.type == "cpu"  # labels move in to_batch, as before


# ------------------------------------------------------------------------------------------ train, evaluate


def _cfg(**kw):
    base = dict(
        neuron="lif", conn="ff", rules=("bptt",), dataset="tiny", hidden=(8,), epochs=2, batch_size=16, device="cpu"
    )
    base.update(kw)
    return TrainConfig(**base)


def _tiny_with_encode(built, calls):
    """The fake 'tiny' splits with a Bernoulli encoder that records (generator, spikes) of every batch."""

    def enc(x, g):
        out = bernoulli(x.clamp(0, 1), g)
        calls.append((g, out))
        return out

    train_d, test_d = (built.dataset.load(s) for s in ("train", "test"))
    return ArrayData(train_d.x, train_d.y, encode=enc), ArrayData(test_d.x, test_d.y, encode=enc)


def test_evaluate_encodes_every_batch_and_repeats_exactly(fake):
    built = build(_cfg())
    calls: list = []
    _, test_d = _tiny_with_encode(built, calls)
    first = evaluate(built, test_d, 16)
    assert len(calls) == 4 and all(isinstance(g, torch.Generator) for g, _ in calls)
    assert evaluate(built, test_d, 16) == first  # a fixed-seed generator per call: the same spikes every time
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(calls[:4], calls[4:]))
    assert evaluate(built, ArrayData(test_d.x, test_d.y), 16) != first  # the encoded inputs are what was scored


def test_training_encodes_fresh_each_epoch_and_reproducibly(fake):
    def run(calls):
        built = build(_cfg())
        return list(train(_cfg(), built=built, data=_tiny_with_encode(built, calls)))

    calls_a, calls_b = [], []
    a, b = run(calls_a), run(calls_b)
    assert [r.train_loss for r in a] == [r.train_loss for r in b] and [r.test_loss for r in a] == [
        r.test_loss for r in b
    ]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(calls_a, calls_b))
    assert len(calls_a) == 2 * (4 + 4)  # per epoch: 64 training examples in batches of 16, then 64 test examples
    train1, eval1, train2, eval2 = (calls_a[k : k + 4] for k in (0, 4, 8, 12))
    assert train1[0][0] is not train2[0][0] and len({id(g) for g, _ in train1}) == 1  # the loop's per-epoch generator
    sums = lambda calls: sorted(float(s.sum()) for _, s in calls)  # noqa: E731  (shuffled: compare as a multiset)
    assert sums(train1) != sums(train2)  # fresh spikes every epoch
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(eval1, eval2))  # evaluation: the same spikes every epoch


# ------------------------------------------------------------------------------------------ EpochRecord


def test_epoch_record_extra_is_not_shared():
    a = EpochRecord(1, 0.0, 0.0, 0.0, 0.0, 0.0, 1e-3)
    b = EpochRecord(2, 0.0, 0.0, 0.0, 0.0, 0.0, 1e-3)
    a.extra["peak_memory_mb"] = 5.0
    assert b.extra == {} and a.extra is not b.extra
    assert "peak_memory_mb" not in b.to_json() and a.to_json()["peak_memory_mb"] == 5.0


def test_to_moves_the_base_of_an_expand_and_keeps_encode():
    base = torch.rand(6, 1, 5)
    data = ArrayData(base.expand(6, 40, 5), torch.arange(6), encode=lambda x, g: x * 2)
    moved = data.to("meta")  # a device without memory: anything materialised would still show in the strides
    assert moved.x.device.type == "meta" and moved.y.device.type == "meta"
    assert tuple(moved.x.shape) == (6, 40, 5) and moved.x.stride(1) == 0
    assert moved.encode is data.encode
    same = data.to("cpu")
    assert torch.equal(same.x, data.x) and same.x.stride(1) == 0
