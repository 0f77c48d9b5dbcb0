"""tssl-bp's C scan (the lif implementations of kind tssl-bp-forward / tssl-bp-backward that snnkit-neurons
registers, one call per direction; the rule reaches them through the implementation registry) against the rule's
torch loops
(tssl_forward / tssl_backward, the oracle): identical spikes and PSC, gradients within 1e-6 (float32) / 1e-12
(float64) relative to the tensor's largest gradient (at least 1), and the same branch diagnostics, for every
backward form, with and without the self term, T = 1, and more elements than one C block (512)."""

from __future__ import annotations

import shutil

import pytest
import torch

from snnkit_core.contract.implementations import find
from snnkit_core.contract.plugins import get_registry
from snnkit_rules import tssl_bp
from snnkit_rules.tssl_bp import TSSLBP, TrainingStats, TSSLScan, tssl_backward, tssl_forward

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
TAU_S, VTH = 3.0, 1.0


class tssl_cpu:  # noqa: N801 - the two registered C scans, called as the rule calls them
    @staticmethod
    def forward(*args):
        return find("lif", "tssl-bp-forward", "cpu").scan(*args)

    @staticmethod
    def backward(*args):
        return find("lif", "tssl-bp-backward", "cpu").scan(*args)


@pytest.fixture(autouse=True)
def _c_library():
    get_registry()
    if find("lif", "tssl-bp-forward", "cpu") is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail("a C compiler is here but the C scans did not build (see snnkit info lif)")
        pytest.skip("no C compiler: tssl-bp runs its torch loops only")


def _inputs(T, B, N, dtype, self_term, seed=0):
    g = torch.Generator().manual_seed(seed)
    cur = (1.6 * torch.rand(T, B, N, generator=g, dtype=torch.float64) - 0.1).to(dtype)
    leak = (0.6 + 0.3 * torch.rand(N, generator=g, dtype=torch.float64)).to(dtype)
    ws = (0.6 * torch.randn(N, generator=g, dtype=torch.float64)).to(dtype) if self_term else None
    g_a = torch.randn(T, B, N, generator=g, dtype=torch.float64).to(dtype)
    return cur, leak, ws, g_a


def _opts(form, **kw):
    opts = dict(TSSLBP(backward=form, **kw)._opts(form), layer=0)
    return opts


def _oracle(cur, leak, ws, g_a, opts):
    u, s, a, urp = tssl_forward(cur, ws, leak, TAU_S, VTH)
    stats = TrainingStats()
    G = tssl_backward(g_a, u, s, a, urp, ws, leak, TAU_S, VTH, dict(opts, stats=stats))
    g_ws = None
    if ws is not None:
        g_ws = (G * torch.cat([torch.zeros_like(a[:1]), a[:-1]])).sum((0, 1))
    return a, s, G, g_ws, (G * urp).sum((0, 1)), stats


def _fast(cur, leak, ws, g_a, opts):
    cur = cur.clone().requires_grad_()
    leak = leak.clone().requires_grad_()
    ws = ws.clone().requires_grad_() if ws is not None else None
    stats = TrainingStats()
    a, s = TSSLScan.apply(cur, ws, leak, TAU_S, VTH, dict(opts, stats=stats))
    a.backward(g_a)
    return a.detach(), s, cur.grad, (ws.grad if ws is not None else None), leak.grad, stats


def _close(name, want, got, dtype):
    scale = max(1.0, want.abs().max().item())
    err = (want - got).abs().max().item()
    assert err <= TOL[dtype] * scale, f"{name}: {err:.3g} > {TOL[dtype]:g} x {scale:.3g}"


CASES = [("surrogate", {}), ("2021", {}), ("2021", {"warmup": 0.0}), ("2020", {"warmup_rate_2020": 0.1}),
         ("2020", {"warmup_rate_2020": 0.99})]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("self_term", [True, False], ids=["self", "no-self"])
@pytest.mark.parametrize("form,kw", CASES, ids=["surrogate", "2021", "2021-no-warmup", "2020-exact", "2020-surrogate"])
@pytest.mark.parametrize("shape", [(30, 3, 7), (1, 2, 5), (12, 3, 200)], ids=["T30", "T1", "blocks"])
def test_c_scan_equals_the_torch_loops(shape, form, kw, self_term, dtype):
    cur, leak, ws, g_a = _inputs(*shape, dtype, self_term)
    assert tssl_cpu.forward(cur, ws, leak, TAU_S, VTH) is not None  # the C path really runs
    opts = _opts(form, **kw)
    want = _oracle(cur, leak, ws, g_a, opts)
    got = _fast(cur, leak, ws, g_a, opts)
    assert torch.equal(want[1], got[1]), "spikes differ"
    assert torch.equal(want[0], got[0]), "PSC differs"
    if shape[0] > 1:
        assert 0.05 < float(got[1].mean()) < 0.9
    _close("dL/dI", want[2], got[2], dtype)
    assert float(got[2].abs().max()) > 0
    if self_term:
        _close("dL/dw_s", want[3], got[3], dtype)
    _close("dL/dleak", want[4], got[4], dtype)
    for key in ("exact_spike", "exact_silent", "bounded"):
        assert float(got[5].sums[0][key]) == pytest.approx(float(want[5].sums[0][key]), abs=1e-6), key


def test_the_c_backward_is_the_one_that_runs_and_a_wrong_form_would_be_caught():
    """The 2021 and surrogate forms give different gradients on the same saved trace, so the C call must run the
    form it is asked for (guards against a form switch that silently falls to the default)."""
    cur, leak, ws, g_a = _inputs(30, 3, 7, torch.float64, True)
    u, s, a = tssl_cpu.forward(cur, ws, leak, TAU_S, VTH)
    G21 = tssl_cpu.backward(g_a, u, s, a, ws, leak, TAU_S, VTH, _opts("2021"))[0]
    Gsu = tssl_cpu.backward(g_a, u, s, a, ws, leak, TAU_S, VTH, _opts("surrogate"))[0]
    assert (G21 - Gsu).abs().max() > 1e-3
    u, s, a, urp = tssl_forward(cur, ws, leak, TAU_S, VTH)
    torch.testing.assert_close(
        G21, tssl_backward(g_a, u, s, a, urp, ws, leak, TAU_S, VTH, _opts("2021")), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("form", ["surrogate", "2021", "2020"])
def test_without_the_c_library_the_node_runs_the_torch_loops_with_the_same_results(form, monkeypatch):
    cur, leak, ws, g_a = _inputs(20, 3, 7, torch.float64, True)
    opts = _opts(form)
    fast = _fast(cur, leak, ws, g_a, opts)
    monkeypatch.setattr(tssl_bp, "find", lambda *args: None)  # as where the C library cannot be had
    slow = _fast(cur, leak, ws, g_a, opts)
    assert torch.equal(fast[1], slow[1]) and torch.equal(fast[0], slow[0])
    for name, i in (("dL/dI", 2), ("dL/dw_s", 3), ("dL/dleak", 4)):
        _close(name, slow[i], fast[i], torch.float64)
