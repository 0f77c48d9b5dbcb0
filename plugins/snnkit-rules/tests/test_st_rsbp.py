"""ST-RSBP (docs/rules/st-rsbp.md): the S-PSP identity, the per-sample linear system, gradient direction and
batching, contracts."""

import copy

import pytest
import torch

from snnkit.testing import NeuronContract, RuleContract
from snnkit_connectivity.asrc import Dense
from snnkit_core.contract.errors import IncompatibleError, NaNLossError
from snnkit_core.contract.interfaces import Batch
from snnkit_neurons.lif_rsbp import LIFRSBP, rsbp_step
from snnkit_rules.st_rsbp import (
    STRSBP,
    layer_backward,
    poly_table,
    propagation_matrix,
    rsbp_scan,
    solve_batched,
    system_matrix,
)
from snnkit_rules.st_rsbp_psp import reset_weights, s_psp


def _simulate(w, w_rec, x, neuron, lateral=0.0):
    """Step the neuron with rsbp_step and record the pre-reset potential at every spike: (s, Σ_f v(t_f))."""
    T, B, _ = x.shape
    n = neuron
    state = n.initial_state(B, x.device, x.dtype)
    s_prev, ss, vsum = None, [], torch.zeros(B, w.shape[0], dtype=x.dtype)
    for t in range(T):
        r = None
        if s_prev is not None:
            r = s_prev @ w_rec.t() if w_rec is not None else torch.zeros_like(s_prev)
            if lateral:
                r = r - lateral * (s_prev.sum(1, keepdim=True) - s_prev)
        s, v, state = rsbp_step(x[t] @ w.t(), state, r, n.tau_m, n.syn_tau, n.v_th, n.t_ref, n.delay)
        vsum += s * v
        ss.append(s)
        s_prev = s
    return torch.stack(ss), vsum


@pytest.mark.parametrize("recurrent,lateral", [(False, 0.0), (True, 0.0), (False, 1.0)])
def test_spsp_identity_sum_w_e_equals_sum_of_firing_potentials(recurrent, lateral):
    g = torch.Generator().manual_seed(0)
    neuron = LIFRSBP(6, tau_m=16.0, tau_s=4.0, v_th=1.0).double()
    x = (torch.rand(80, 3, 7, generator=g, dtype=torch.float64) < 0.3).double()
    w = torch.rand(6, 7, generator=g, dtype=torch.float64) * 1.5 - 0.3
    w_rec = (torch.rand(6, 6, generator=g, dtype=torch.float64) - 0.5) if recurrent else None
    s, vsum = _simulate(w, w_rec, x, neuron, lateral)
    assert int(s.sum()) > 20 and bool((s.sum(0) > 1).any()), "the test network must fire (several spikes per neuron)"
    a = (w.unsqueeze(0) * s_psp(s, x, neuron.tau_m, neuron.syn_tau, neuron.t_ref, 1)).sum(-1)
    e_own = s_psp(s, s, neuron.tau_m, neuron.syn_tau, neuron.t_ref, 1)
    if recurrent:
        a = a + (w_rec.unsqueeze(0) * e_own).sum(-1)
    if lateral:
        off = 1 - torch.eye(6, dtype=torch.float64)
        a = a - lateral * (off.unsqueeze(0) * e_own).sum(-1)
    torch.testing.assert_close(a, vsum, rtol=1e-10, atol=1e-10)


def test_reset_weights_handle_spikes_inside_the_refractory_window():
    s = torch.zeros(10, 1, 1, dtype=torch.float64)
    s[[2, 4], 0, 0] = 1  # 2 apart: the second spike falls on the last refractory step, so it adds nothing
    A = reset_weights(s, 8.0, 2)[:, 0, 0]
    assert float(A[2]) == 1.0 and float(A[4]) == 0.0


def _system(B=5, N=6, K=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    table = poly_table()
    o_post = torch.randint(0, 30, (B, N), generator=g).double()
    o_pre = torch.randint(0, 30, (B, K), generator=g).double()
    e = torch.rand(B, N, K, generator=g, dtype=torch.float64) * o_post.unsqueeze(2).clamp(max=1) * 3
    e_rec = torch.rand(B, N, N, generator=g, dtype=torch.float64) * 3
    w = torch.rand(N, K, generator=g, dtype=torch.float64) * 2 - 1
    w_rec = torch.rand(N, N, generator=g, dtype=torch.float64) * 2 - 1
    delta = torch.randn(B, N, generator=g, dtype=torch.float64)
    return dict(delta=delta, e=e, o_post=o_post, o_pre=o_pre, w=w, nu_post=5.0, nu_pre=4.0, table=table, e_rec=e_rec,
                w_rec=w_rec)


def _parts(d):
    """Ω - Θ and Φ of layer_backward's inputs, built independently of it (from the equations)."""
    from snnkit_rules.st_rsbp import clamp_away_from_zero, dpoly
    from snnkit_rules.st_rsbp_psp import t_psp_ratio

    s = (d["w"] * dpoly(d["table"], d["o_pre"], d["o_post"], True)).sum(-1)
    s = s + (d["w_rec"] * dpoly(d["table"], d["o_post"], d["o_post"], True)).sum(-1)
    omega = clamp_away_from_zero(1 - s / d["nu_post"])
    a = system_matrix(omega, d["w_rec"], t_psp_ratio(d["e_rec"], d["o_post"], d["o_post"]), d["nu_post"])
    phi = d["w"] * t_psp_ratio(d["e"], d["o_post"], d["o_pre"]) / d["nu_pre"]
    return a, phi


def test_batched_solve_residual_and_paper_orientation():
    d = _system()
    a, phi = _parts(d)
    P = propagation_matrix(a, phi, "paper")
    assert float((a @ P - phi).abs().max()) < 1e-10  # residual of the batched solve (Ω - Θ) P = Φ
    x, nbad, _ = solve_batched(a, d["delta"])
    assert nbad == 0 and float((a @ x.unsqueeze(-1)).squeeze(-1).sub(d["delta"]).abs().max()) < 1e-10
    _, _, delta_pre, _ = layer_backward(**d)
    torch.testing.assert_close(delta_pre, torch.einsum("blk,bl->bk", P, d["delta"]))


def test_reference_orientation_equals_phi_times_inverse():
    d = _system()
    a, phi = _parts(d)
    P_code = phi @ torch.linalg.inv(a)
    torch.testing.assert_close(propagation_matrix(a, phi, "reference"), P_code)
    _, _, delta_pre, _ = layer_backward(**d, orientation="reference")
    torch.testing.assert_close(delta_pre, torch.einsum("blk,bl->bk", P_code, d["delta"]))
    paper = layer_backward(**d)[2]
    assert float((paper - delta_pre).abs().max()) > 1e-6  # the two orientations really differ
    with pytest.raises(IncompatibleError, match="as wide"):
        layer_backward(**_system(K=4), orientation="reference")


def test_singular_system_falls_back_to_pinv_and_never_gives_nan():
    a = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    a[1] = torch.ones(4, 4, dtype=torch.float64)  # rank 1
    a[2, 3] = float("nan")
    rhs = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x, nbad, _ = solve_batched(a, rhs)
    assert nbad == 2 and bool(torch.isfinite(x).all())
    torch.testing.assert_close(x[0], rhs[0])
    torch.testing.assert_close(x[1], torch.linalg.pinv(a[1], rtol=1e-6) @ rhs[1])
    with pytest.raises(NaNLossError, match="singular or ill-conditioned"):
        solve_batched(a, rhs, fallback="error")


def test_bounded_fallbacks_leave_sound_samples_and_bound_the_gain():
    """``clip`` scales an ill-conditioned sample's x down to max_gain·‖rhs‖ along the same direction, ``diagonal``
    replaces it by rhs / diag(a) (the recurrent coupling dropped); a sound sample is solved exactly by both, and a
    singular one takes the diagonal under clip too. The returned gains are those of the direct solve."""
    g = torch.Generator().manual_seed(1)
    a = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1) * 2.0
    a[0, 0, 1] = 0.5                                                          # sound: gain about 0.5
    a[1] = torch.tensor([[1.0, 0.999, 0], [1.0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)  # det 1e-3: gain ~1e3
    a[2] = torch.ones(3, 3, dtype=torch.float64)                              # singular
    rhs = torch.randn(3, 3, dtype=torch.float64, generator=g)
    exact = torch.linalg.solve(a[:2], rhs[:2])
    x, nbad, gains = solve_batched(a, rhs, fallback="clip", max_gain=10.0)
    assert nbad == 2
    torch.testing.assert_close(x[0], exact[0])
    torch.testing.assert_close(gains[:2], exact.norm(dim=-1) / rhs[:2].norm(dim=-1))
    assert float(gains[1]) > 100
    torch.testing.assert_close(x[1].norm(), 10.0 * rhs[1].norm())
    torch.testing.assert_close(x[1] / x[1].norm(), exact[1] / exact[1].norm())
    torch.testing.assert_close(x[2], rhs[2])                                  # diag(a[2]) = 1
    y, nbad, _ = solve_batched(a, rhs, fallback="diagonal", max_gain=10.0)
    assert nbad == 2
    torch.testing.assert_close(y[0], exact[0])
    torch.testing.assert_close(y[1], rhs[1] / a[1].diagonal())
    torch.testing.assert_close(y[2], rhs[2])
    z, nbad, _ = solve_batched(a, rhs, fallback="clip", max_gain=1e6)       # below the cap: the exact solve
    assert nbad == 1
    torch.testing.assert_close(z[1], exact[1])


def test_a_batched_solve_that_raises_is_done_per_sample(monkeypatch):
    """torch's threaded batched CPU LU can raise 'Pivots given to lu_solve ...' on a sound batch (seen with torch
    2.13 and 2 threads); the solve then goes sample by sample, and a sample that still raises takes the fallback."""
    d = _system()
    a = _parts(d)[0]
    want, _, _ = solve_batched(a, d["delta"])
    solve_ex = torch.linalg.solve_ex

    def flaky(m, b):  # the batch raises, and so does sample 0 alone
        if m.dim() == 3 or bool((m == a[0]).all()):
            raise RuntimeError("Pivots given to lu_solve must all be greater or equal to 1.")
        return solve_ex(m, b)

    monkeypatch.setattr(torch.linalg, "solve_ex", flaky)
    x, nbad, _ = solve_batched(a, d["delta"])
    assert nbad == 1 and bool(torch.isfinite(x).all())
    torch.testing.assert_close(x[1:], want[1:])
    torch.testing.assert_close(x[0], torch.linalg.pinv(a[0], rtol=1e-6) @ d["delta"][0])


# ---------------------------------------------------------------------------------------- tiny networks


def _net(hidden=(12, 10), recurrent=True, seed=0, **rule_params):
    from snnkit.testing import _Feedforward
    from snnkit_core.engine.assembly import assemble

    rule = STRSBP(**{"lateral_inhibition": 1.0, "desired": 12.0, "undesired": 2.0, "margin": 1.0, "init_w": 0.0,
                     **rule_params})
    conn = Dense() if recurrent else _Feedforward()
    net = assemble(LIFRSBP, conn, [rule], input_size=8, num_classes=3, hidden=hidden, seed=seed, weight_scale=2.0,
                   neuron_params={"tau_m": 16.0, "tau_s": 4.0, "v_th": 1.0}).double()
    net.plan()
    if recurrent:
        with torch.no_grad():
            for layer in net.layers:
                layer.recurrence.weight.mul_(0.3)
    return net, rule


def _batch(B=6, T=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, 8, generator=g, dtype=torch.float64) < 0.25).double()
    return Batch(x, torch.arange(B) % 3, torch.arange(B))


def _grads(net, rule, batch):
    with torch.no_grad():
        out = net(batch.x)
        counts = out.out_spikes.sum(0)
        from snnkit_rules.st_rsbp import desired_counts

        diff = counts - desired_counts(counts, batch.y, rule.hparams["desired"], rule.hparams["undesired"])
        delta = (diff.abs() > rule.hparams["margin"]).double() * diff / float(rule._layers[-1].neuron.v_th)
        return rule.gradients(net, out, batch.y, delta)


def test_batch_gradient_is_the_sum_of_single_sample_gradients():
    net, rule = _net()
    batch = _batch()
    full = _grads(net, rule, batch)
    assert all(float(g.abs().sum()) > 0 for g in full.values())
    for i in range(len(batch.y)):
        one = _grads(net, rule, Batch(batch.x[:, i:i + 1], batch.y[i:i + 1], batch.index[i:i + 1]))
        for p in full:
            full[p] = full[p] - one[p]
    assert max(float(g.abs().max()) for g in full.values()) < 1e-9


@pytest.mark.parametrize("recurrent", [False, True])
def test_a_small_step_along_minus_grad_lowers_the_loss(recurrent):
    net, rule = _net(recurrent=recurrent)
    batch = _batch(B=12)
    with torch.no_grad():
        before = float(rule.eval_step(net, batch)[0])
    grads = _grads(net, rule, batch)
    lowered = []
    for size in (0.02, 0.05, 0.1):  # relative step: each weight moves by at most size·max|W|
        trial = copy.deepcopy(net)
        with torch.no_grad():
            for (p, g), q in zip(grads.items(), [dict(trial.named_parameters())[n] for n in _names(net, grads)]):
                q.sub_(size * float(p.abs().max()) * g / float(g.abs().max()))
            trial.plan()
            lowered.append(float(rule.eval_step(trial, batch)[0]) < before)
    assert all(lowered), f"loss {before} not lowered at every small step: {lowered}"


def _names(net, grads):
    ids = {id(p): n for n, p in net.named_parameters()}
    return [ids[id(p)] for p in grads]


def test_training_steps_lower_the_loss_and_write_grad_themselves():
    net, rule = _net()
    batch = _batch(B=12)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.02)
    first = float(rule.train_step(net, batch, opt)[0])
    assert all(
        p.grad is not None for p in [net.layers[0].ff.weight, net.layers[1].recurrence.weight, net.output.ff.weight]
    )
    losses = [float(rule.train_step(net, batch, opt)[0]) for _ in range(15)]
    assert min(losses) < 0.75 * first, (first, losses)


def test_records_give_each_recurrent_layers_largest_solve_gain(monkeypatch):
    """describe(): per recurrent layer, gain_max = the largest ‖x‖/‖rhs‖ any sample's solve had in the epoch and
    gain_batch_max = the mean over batches of each batch's largest; layers without a solve report neither."""
    import snnkit_rules.st_rsbp as mod

    seen = []
    real = mod.solve_batched

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(float(out[2].max()))
        return out

    monkeypatch.setattr(mod, "solve_batched", spy)
    net, rule = _net()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    for seed in (1, 2):
        rule.train_step(net, _batch(B=6, seed=seed), opt)
    d = rule.describe(net)["st_rsbp"]
    solved = {k: v for k, v in d.items() if k.startswith("layer") and "gain_max" in v}
    assert len(seen) == 2 * len(solved) and len(solved) >= 1
    per_layer = [seen[i::len(solved)] for i in range(len(solved))]
    for (name, rec), gains in zip(sorted(solved.items(), reverse=True), per_layer):
        assert rec["gain_max"] == pytest.approx(max(gains), rel=1e-3), name
        assert rec["gain_batch_max"] == pytest.approx(sum(gains) / 2, rel=1e-3), name
    assert "gain_max" not in d["output"]


def test_masked_recurrence_trains_only_existing_synapses():
    net, rule = _net()
    rec = net.layers[1].recurrence
    mask = torch.rand(10, 10, generator=torch.Generator().manual_seed(3)) < 0.5
    mask.fill_diagonal_(False)
    rec.mask = mask
    batch = _batch()
    grads = _grads(net, rule, batch)
    assert float(grads[rec.weight][~mask].abs().max()) == 0 and float(grads[rec.weight][mask].abs().sum()) > 0
    cur = torch.rand(30, 2, 10, dtype=torch.float64) * 2
    s_masked, _ = rsbp_scan(net.layers[1].neuron, cur, rec)
    rec.mask = None
    with torch.no_grad():
        saved = rec.weight.clone()
        rec.weight.mul_(mask.double())
    s_zeroed, _ = rsbp_scan(net.layers[1].neuron, cur, rec)
    rec.weight.data.copy_(saved)
    assert torch.equal(s_masked, s_zeroed)


def test_rule_scan_equals_the_reference_scan_without_lateral_inhibition():
    from snnkit_core.contract.scan import reference_scan

    net, rule = _net()
    layer = net.layers[1]
    cur = torch.rand(40, 3, 10, dtype=torch.float64) * 2
    torch.testing.assert_close(rsbp_scan(layer.neuron, cur, layer.recurrence)[0],
                               reference_scan(layer.neuron, cur, layer.recurrence)[1].detach())


def test_too_few_steps_for_the_desired_count_is_refused():
    with pytest.raises(IncompatibleError, match="at most"):
        STRSBP().check_data(60, 8)


def test_boosting_raises_the_weight_of_wrong_samples():
    net, rule = _net(boost=True)
    batch = _batch(B=6)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    rule.train_step(net, batch, opt)
    wrong = rule._wrong[:6].clone()
    rule.on_epoch_end(net, 0)
    w = rule.sample_weight[:6]
    assert bool((w[~wrong] == 1).all()) and (not bool(wrong.any()) or bool((w[wrong] > 1).all()))


# ------------------------------------------------------------------------------------------- contracts


class TestLIFRSBPContract(NeuronContract):
    neuron_cls = LIFRSBP
    params = {"tau_m": 4.0, "tau_s": 2.0, "v_th": 1.0}


class TestSTRSBPContract(RuleContract):
    rule_cls = STRSBP
    params = {"init_w": 0.0}
    neuron_cls = LIFRSBP
    neuron_params = {"tau_m": 4.0, "tau_s": 2.0, "v_th": 0.5}
    conn_cls = Dense


class TestSTRSBPFeedforwardContract(RuleContract):
    rule_cls = STRSBP
    params = {"init_w": 0.0, "boost": True}
    neuron_cls = LIFRSBP
    neuron_params = {"tau_m": 4.0, "tau_s": 2.0, "v_th": 0.5}


class TestSTRSBPReferenceOrientationContract(RuleContract):
    rule_cls = STRSBP
    params = {"init_w": 0.0, "orientation": "reference", "solve_fallback": "error"}
    neuron_cls = LIFRSBP
    neuron_params = {"tau_m": 4.0, "tau_s": 2.0, "v_th": 0.5}
    conn_cls = Dense
