"""The event-driven feedforward product against the dense one: same forward, same gradients, every mode."""

from __future__ import annotations

import pytest
import torch

from snnkit_connectivity import spike_product as sp

needs_c = pytest.mark.skipif(sp.lib() is None, reason="the event-driven product's C library cannot be built here")
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def _spikes(shape, rate, dtype, seed=0, values=False):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=gen) < rate).to(dtype)
    return x * torch.randn(shape, generator=gen, dtype=dtype) if values else x


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rate", [0.0, 0.03, 0.3, 1.0])
@pytest.mark.parametrize("values", [False, True])
def test_forward_and_gradients_match_the_dense_product(dtype, rate, values):
    """(T, B, K) spikes (or nonzero values at the same places) through W: forward equal to the dense product to the
    rounding of another summation order, ∂L/∂x and ∂L/∂W within 1e-6 (float32) / 1e-12 (float64) of the
    tensor's largest entry; bias included."""
    T, B, K, N = 7, 5, 33, 19
    x = _spikes((T, B, K), rate, dtype, values=values)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(N, K, dtype=dtype, generator=gen)
    b = torch.randn(N, dtype=dtype, generator=gen)
    g = torch.randn(T, B, N, dtype=dtype, generator=gen)
    outs, grads = [], []
    for fn in (sp.spike_linear, torch.nn.functional.linear):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, w, b))
        out = fn(xi, wi, bi)
        out.backward(g)
        outs.append(out.detach())
        grads.append((xi.grad, wi.grad, bi.grad))
    assert outs[0].shape == (T, B, N)
    assert _rel(outs[0], outs[1]) <= TOL[dtype] if rate else torch.equal(outs[0], outs[1])
    for a, ref in zip(grads[0], grads[1]):
        assert _rel(a, ref) <= TOL[dtype]
    if rate and not values:  # binary input: each output entry is a sum of weights, exact up to its order
        assert torch.equal(outs[0] > 0.1, outs[1] > 0.1)


@needs_c
def test_a_dropped_input_entry_would_be_caught():
    """The comparison above can fail: the same product with one spike removed differs beyond the tolerance."""
    x = _spikes((40, 16), 0.2, torch.float64)
    w = torch.randn(8, 16, dtype=torch.float64)
    k = int(x[3].nonzero()[0])
    y = x.clone()
    y[3, k] = 0
    assert _rel(sp.spike_linear(y, w), x @ w.t()) > 1e-3


@needs_c
def test_spike_linear_modes_and_what_it_records():
    torch.manual_seed(0)
    lin = sp.SpikeLinear(24, 12, bias=False, mode="sparse")
    x = _spikes((30, 24), 0.1, torch.float32)
    torch.testing.assert_close(lin(x), x @ lin.weight.t(), rtol=0, atol=1e-5)
    assert lin.describe()["spike_product"]["sparse_calls"] == 1
    lin.mode = "dense"
    lin(x)
    assert lin.describe()["spike_product"] == {"mode": "dense", "sparse_calls": 1, "dense_calls": 1}
    auto = sp.SpikeLinear(24, 12, bias=False)
    auto(x)
    d = auto.describe()["spike_product"]
    assert d["last_rate"] == pytest.approx(float((x != 0).float().mean()), abs=1e-4)
    assert d["crossing_rate"] in (0.0, *sp.CALIBRATION_RATES)
    assert d["sparse_calls"] == int(d["last_rate"] < d["crossing_rate"])  # chose by the measured crossing
    with pytest.raises(ValueError, match="auto, dense, sparse"):
        sp.SpikeLinear(3, 3, mode="events")


def test_auto_is_dense_where_the_c_product_cannot_run():
    lin = sp.SpikeLinear(6, 4)
    x = _spikes((5, 6), 0.1, torch.float32).to(torch.bfloat16)
    lin.to(torch.bfloat16)(x)
    assert lin.calls == {"sparse": 0, "dense": 1}


@needs_c
def test_crossing_rate_is_measured_once_per_shape_and_thread_count(monkeypatch, tmp_path):
    """Once per machine: a later process (a fresh in-memory table) reads the kept crossing instead of timing
    again, so a resume or a rerun chooses, and sums, alike."""
    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path))
    calls = []
    real = sp._median_time
    monkeypatch.setattr(sp, "_median_time", lambda fn, repeats=3: calls.append(1) or real(fn, 1))
    monkeypatch.setattr(sp, "_crossings", {})
    first = sp.crossing_rate(20, 10, torch.float32, rows=64)
    n = len(calls)
    assert n >= 2 and sp.crossing_rate(20, 10, torch.float32, rows=64) == first and len(calls) == n
    assert first in (0.0, *sp.CALIBRATION_RATES)
    monkeypatch.setattr(sp, "_crossings", {})
    assert sp.crossing_rate(20, 10, torch.float32, rows=64) == first and len(calls) == n
    monkeypatch.setattr(sp, "_crossings", {})
    assert sp.crossing_rate(20, 11, torch.float32, rows=64) in (0.0, *sp.CALIBRATION_RATES) and len(calls) > n
