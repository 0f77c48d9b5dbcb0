"""ST-RSBP's fast paths against the reference computation: the C forward (spikes identical to the torch loop over
the network's currents), the C S-PSPs, and the factored backward pieces (equal to the formulas they replace), then
whole training steps: the gradients the rule writes with every fast path on and with every one replaced by its
reference agree within 1e-6 (float32) / 1e-12 (float64), relative to the largest."""

import shutil

import pytest
import torch

import snnkit_rules.st_rsbp as st
from snnkit_connectivity.asrc import Dense
from snnkit_core.contract.implementations import find
from snnkit_core.contract.interfaces import Batch
from snnkit_core.contract.plugins import get_registry
from snnkit_neurons.lif_rsbp import LIFRSBP
from snnkit_rules.st_rsbp import (
    STRSBP,
    desired_counts,
    dpoly,
    phi_t,
    poly_table,
    rsbp_scan,
    system_matrix,
    system_matrix_from_psp,
    weighted_dpoly,
)
from snnkit_rules.st_rsbp_psp import psp_trace, reset_weights, spike_response, t_psp_ratio

DTYPES = [torch.float32, torch.float64]


@pytest.fixture
def c_kernels():
    """The two registered C functions ``(forward, response)`` (skips without a C compiler)."""
    get_registry()
    fwd, resp = find("lif-rsbp", "st-rsbp-forward", "cpu"), find("lif-rsbp", "st-rsbp-response", "cpu")
    if fwd is None or resp is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail("a C compiler is here but the C scans did not build (see snnkit info lif-rsbp)")
        pytest.skip("no C compiler: st-rsbp runs its torch code only")
    return fwd.scan, resp.scan


class _Rec:  # a dense recurrence as recurrent_matrix reads it
    structure, mask = "dense", None

    def __init__(self, w):
        self.w = w

    def effective_weight(self):
        return self.w


def _trains(dt, T=150, B=4, K=30, N=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, K, generator=g) < 0.2).to(dt)
    w = (torch.rand(N, K, generator=g) * 0.8 - 0.2).to(dt)
    w_rec = (torch.rand(N, N, generator=g) - 0.5).to(dt)
    return x, w, w_rec


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("recurrent,lateral,delay", [(False, 0.0, True), (True, 0.0, True), (True, 1.0, True),
                                                     (False, 1.0, False)])
def test_c_forward_spikes_equal_the_torch_loop(dt, recurrent, lateral, delay, c_kernels):
    fast = c_kernels[0]
    x, w, w_rec = _trains(dt)
    n = LIFRSBP(20, tau_m=16.0, tau_s=4.0, v_th=1.0, delay=delay).to(dt)
    rec = _Rec(w_rec) if recurrent else None
    cur = x @ w.t()
    ref = rsbp_scan(n, cur, rec, lateral, use_c=False)[0]
    assert 100 < int(ref.sum()) < ref.numel() // 2, "the test layer must fire, and not at every step"
    args = (w_rec if recurrent else None, lateral, n.tau_m, n.syn_tau, n.v_th, n.t_ref, n.delay)
    assert torch.equal(fast(None, None, cur, *args), ref)  # from the currents
    assert torch.equal(fast(x, w, None, *args), ref)  # from the input trains, the product over nonzero inputs
    assert torch.equal(rsbp_scan(n, cur, rec, lateral)[0], ref)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("delay", [0, 1])
def test_c_spike_response_equals_reset_weights_times_psp_trace(dt, delay, c_kernels):
    x, w, w_rec = _trains(dt)
    s = rsbp_scan(LIFRSBP(20, tau_m=16.0, tau_s=4.0, v_th=1.0).to(dt), x @ w.t(), _Rec(w_rec), use_c=False)[0]
    s[[3, 5], 0, 0] = 1  # a spike inside the refractory window (reset_weights' special case)
    for pre in (x, s):
        ref = spike_response(reset_weights(s, 16.0, 2), psp_trace(pre, 16.0, 4.0, delay))
        got = c_kernels[1](s, pre, 16.0, 4.0, 2, delay)
        tol = 1e-6 if dt == torch.float32 else 1e-12
        assert float((got - ref).abs().max()) <= tol * float(ref.abs().max())


def _system(dt, B=3, N=9, K=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    o_post = torch.randint(0, 30, (B, N), generator=g).to(dt)
    o_pre = torch.randint(0, 30, (B, K), generator=g).to(dt)
    e = torch.rand(B, N, K, generator=g, dtype=dt) * o_post.unsqueeze(2).clamp(max=1) * 3  # 0 where l is silent
    e_rec = torch.rand(B, N, N, generator=g, dtype=dt) * o_post.unsqueeze(2).clamp(max=1) * 3
    w = torch.rand(N, K, generator=g, dtype=dt) * 2 - 1
    w_rec = torch.rand(N, N, generator=g, dtype=dt) * 2 - 1
    v = torch.randn(B, N, generator=g, dtype=dt)
    return o_post, o_pre, e, e_rec, w, w_rec, v


@pytest.mark.parametrize("dt", DTYPES)
def test_factored_backward_pieces_equal_the_formulas(dt):
    o_post, o_pre, e, e_rec, w, w_rec, v = _system(dt)
    assert bool((o_post == 0).any()) and bool((o_pre == 0).any())
    table = poly_table(dt)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for clip in (False, True):
        torch.testing.assert_close(weighted_dpoly(table, o_pre, o_post, w, clip),
                                   (w * dpoly(table, o_pre, o_post, clip)).sum(-1), **tol)
    phi = w * t_psp_ratio(e, o_post, o_pre) / 4.0
    torch.testing.assert_close(phi_t(e, w, o_post, o_pre, 4.0, v), torch.einsum("blk,bl->bk", phi, v), **tol)
    omega = torch.rand(3, 9, dtype=dt) + 0.5
    assert torch.equal(system_matrix_from_psp(omega, w_rec, e_rec, o_post, 5.0),
                       system_matrix(omega, w_rec, t_psp_ratio(e_rec, o_post, o_post), 5.0))


def _reference(monkeypatch):
    """Every fast path replaced by what it replaces: no C (torch loop and torch S-PSPs), the formulas of Ω and Φ."""
    monkeypatch.setattr(st, "find", lambda *a, **k: None)
    monkeypatch.setattr(st, "weighted_dpoly", lambda table, a, b, w, clip_post: (
        w * dpoly(table, a, b, clip_post)).sum(-1))
    monkeypatch.setattr(st, "phi_t", lambda e, w, op, oq, nu, v: torch.einsum(
        "blk,bl->bk", w * t_psp_ratio(e, op, oq) / nu, v))
    monkeypatch.setattr(st, "system_matrix_from_psp", lambda om, wr, er, o, nu: system_matrix(
        om, wr, t_psp_ratio(er, o, o), nu))


def _step_grads(dt, seed=0):
    from snnkit_core.engine.assembly import assemble

    rule = STRSBP(lateral_inhibition=1.0, desired=12.0, undesired=2.0, margin=1.0, init_w=0.0)
    net = assemble(LIFRSBP, Dense(), [rule], input_size=24, num_classes=4, hidden=(30, 20), seed=seed,
                   weight_scale=2.0, neuron_params={"tau_m": 16.0, "tau_s": 4.0, "v_th": 1.0}).to(dt)
    net.plan()
    with torch.no_grad():
        for layer in net.layers:
            layer.recurrence.weight.mul_(0.3)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(100, 8, 24, generator=g) < 0.25).to(dt)
    batch = Batch(x, torch.arange(8) % 4, torch.arange(8))
    out, counts, *_ = rule._forward(net, batch)
    diff = counts - desired_counts(counts, batch.y, 12.0, 2.0)
    delta = (diff.abs() > 1.0).to(dt) * diff / float(rule._layers[-1].neuron.v_th)
    grads = rule.gradients(net, out, batch.y, delta)
    return [t.s for t in out.traces], [grads[p] for p in net.parameters() if p in grads]


def _rel(a, b):
    return float((a - b).abs().max()) / float(b.abs().max())


@pytest.mark.parametrize("seed", [0, 1])
def test_training_step_gradients_equal_the_reference(seed, monkeypatch, c_kernels):
    """float64: every gradient within 1e-12 of the reference's. float32: within 1e-6 of the float64 reference's,
    or, where the problem is ill-conditioned enough that the float32 reference itself is further off (a solve
    amplifies rounding; seed 0: 2e-5), within 4x the float32 reference's own error."""
    got = {dt: _step_grads(dt, seed) for dt in DTYPES}
    with monkeypatch.context() as m:
        _reference(m)
        ref = {dt: _step_grads(dt, seed) for dt in DTYPES}
    for dt in DTYPES:
        assert all(torch.equal(a, b) for a, b in zip(got[dt][0], ref[dt][0], strict=True))
        assert sum(int(s.sum()) for s in got[dt][0]) > 200
        assert len(got[dt][1]) == len(ref[dt][1]) == 5  # 3 feedforward, 2 recurrent
    truth = ref[torch.float64][1]
    for a, b in zip(got[torch.float64][1], truth, strict=True):
        assert _rel(a, b) <= 1e-12
    for a, r, b in zip(got[torch.float32][1], ref[torch.float32][1], truth, strict=True):
        assert _rel(a.double(), b) <= max(1e-6, 4 * _rel(r.double(), b))


def test_omega_floor_keeps_the_sign_of_delta_and_bounds_its_gain():
    """The continuation that diverged: as counts rose, Ω_l = 1 - (1/ν)Σ_j w_lj ∂e_lj/∂o_l crossed 0 in more
    neurons, and δ/Ω flipped sign or grew up to 1e4x there. With ``omega_floor`` Ω is raised to the floor instead."""
    o_post, o_pre, e, e_rec, w, w_rec, v = _system(torch.float64, B=4, N=9, K=11)
    table = poly_table(torch.float64)
    w = w.abs() * 3  # large positive weights: Σ_j w ∂e/∂o > ν, so Ω < 0 in many neurons
    omega_raw = 1 - weighted_dpoly(table, o_pre, o_post, w, False) / 1.0
    assert bool((omega_raw < 0).any()) and bool((omega_raw > 0.25).any())
    fired = (o_post > 0).double()
    grads = {}
    for floor in (0.0, 0.25):
        gw, _, _, _ = st.layer_backward(v, e, o_post, o_pre, w, 1.0, 1.0, table, omega_floor=floor)
        grads[floor] = gw
    # grad_w row l = Σ_b (δ_bl/Ω_bl) e_bl: with the floor it equals the same sum with Ω raised to 0.25
    want = torch.einsum("bl,blj->lj", v / omega_raw.clamp(min=0.25), e)
    torch.testing.assert_close(grads[0.25], want)
    flipped = torch.einsum("bl,blj->lj", v / omega_raw, e)
    assert float((grads[0.0] - flipped).abs().max()) < 1e-9 * float(flipped.abs().max())  # the reference flips
    assert float((grads[0.25] - grads[0.0]).abs().max()) > 1e-3 and bool(fired.any())


def test_the_recipe_raises_omega_to_a_floor_and_the_bare_rule_keeps_the_reference_clamp():
    assert STRSBP.recipe["rule.st-rsbp.omega_floor"] == 0.25
    assert STRSBP().hparams["omega_floor"] == 0.0
