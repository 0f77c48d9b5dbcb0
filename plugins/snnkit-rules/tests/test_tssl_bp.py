"""tssl-bp against a plain, independent float64 implementation of the spec (ScSr eq. 13-19, 21;
docs/rules/tssl-bp.md).

The oracle below is written with loops over samples, neurons and time, the conv sums as direct O(T²) sums and
R through the closed form (next spike p), so it shares no code path with the rule's reverse-time recursion.
Each term can be scaled (0 = dropped, -1 = sign-flipped) to show that the comparison would catch it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnkit_connectivity.scsr import FeedForward, SelfRecurrence, SrSc
from snnkit_core.contract.compat import check_compatible
from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.scan import reference_scan
from snnkit_core.engine.network import Network
from snnkit_neurons.lif import LIF
from snnkit_rules.bip import BIP
from snnkit_rules.tssl_bp import TSSLBP, TSSLScan, desired_spikes, tssl_forward

TAU_M, TAU_S, VTH = 4.0, 3.0, 1.0


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------- the oracle


def eps(n, tau_s):
    return (1 / tau_s) * (1 - 1 / tau_s) ** n


def o_psc(x, tau_s):
    """x (T, ...) -> normalised PSC, plain loop."""
    out = np.zeros_like(x)
    prev = np.zeros_like(x[0])
    for t in range(x.shape[0]):
        prev = (1 - 1 / tau_s) * prev + x[t] / tau_s
        out[t] = prev
    return out


def o_layer_forward(I, ws, th, tau_s=TAU_S, vth=VTH):
    """Per neuron: u = θ ũ[t-1] + I + w_s a[t-1]; hard reset; normalised PSC. I (T, B, N)."""
    T, B, N = I.shape
    u, s, a, urp = (np.zeros((T, B, N)) for _ in range(4))
    for b in range(B):
        for i in range(N):
            ur, ap = 0.0, 0.0
            for t in range(T):
                urp[t, b, i] = ur
                u[t, b, i] = th[i] * ur + (I[t, b, i] + ws[i] * ap)
                s[t, b, i] = 1.0 if u[t, b, i] > vth else 0.0
                ur = u[t, b, i] * (1 - s[t, b, i])
                ap = (1 - 1 / tau_s) * ap + s[t, b, i] / tau_s
                a[t, b, i] = ap
    return u, s, a, urp


def f_sur(u, width=0.2, vth=VTH):
    z = min(max((vth - u) / width, -8.0), 8.0)
    return math.exp(z) / (width * (1 + math.exp(z)) ** 2)


def o_layer_backward(g_ext, u, s, a, urp, ws, th, tau_s=TAU_S, bound=8.0, warm=0.25, width=0.2, k=None, th_intra=None):
    """The 2021 closed form with the self folding, per neuron, reverse time. Returns G (T, B, N).

    k: term scales {"inter", "intra", "self"}; th_intra: leak used in the intra/leak-path terms (default θ_i).
    """
    k = {"inter": 1.0, "intra": 1.0, "self": 1.0, **(k or {})}
    T, B, N = u.shape
    G = np.zeros((T + 1, B, N))
    for b in range(B):
        for i in range(N):
            thi = th[i] if th_intra is None else th_intra
            R = np.zeros(T)
            gt = np.zeros(T)
            for t in range(T - 1, -1, -1):
                gt[t] = g_ext[t, b, i] + k["self"] * ws[i] * G[t + 1, b, i]
                conv = sum(eps(kk - t, tau_s) * gt[kk] for kk in range(t, T))
                later = [p for p in range(t + 1, T) if s[p, b, i]]
                p = later[0] if later else None
                if s[t, b, i]:
                    phi = min(1 / (u[t, b, i] - urp[t, b, i]), bound)
                    intra = (1 - thi) * u[t, b, i] * thi ** (p - t - 1) * R[p] if p is not None else 0.0
                    R[t] = phi * (k["inter"] * conv + k["intra"] * intra)
                else:
                    R[t] = thi ** (p - t) * R[p] if p is not None else 0.0
                G[t, b, i] = R[t] if a[t, b, i] >= warm / tau_s else f_sur(u[t, b, i], width) * conv
    return G[:T]


def o_layer_backward_2020(g_ext, u, s, urp, ws, th, tau_s=TAU_S, bound=10.0, rate=0.1, width=0.2):
    """The 2020 form with explicit matrices P_inter, D, P_intra = P_inter·D per neuron, self term folded in."""
    T, B, N = u.shape
    active = s.mean() > rate
    G = np.zeros((T + 1, B, N))
    for b in range(B):
        for i in range(N):
            P = np.array([[eps(kk - m, tau_s) if kk >= m else 0.0 for kk in range(T)] for m in range(T)])
            D = np.zeros((T, T))
            for kk in range(T):
                prev = [j for j in range(kk) if s[j, b, i]]
                if s[kk, b, i] and prev:
                    j = prev[-1]
                    D[j, kk] = (1 - th[i]) * u[j, b, i] * th[i] ** (kk - j - 1)
            M = P + P @ D
            gt = np.zeros(T)
            for t in range(T - 1, -1, -1):
                gt[t] = g_ext[t, b, i] + ws[i] * G[t + 1, b, i]
                ga = sum(M[t, kk] * gt[kk] for kk in range(t, T))
                if active:
                    du = u[t, b, i] - urp[t, b, i]
                    G[t, b, i] = ga * min(max(1 / du, -bound), bound) * s[t, b, i] if s[t, b, i] else 0.0
                else:
                    G[t, b, i] = ga * f_sur(u[t, b, i], width)
    return G[:T]


def o_target(T, B, K, y, tau_s, double=True):
    d = np.array([0.0, 1.0] * 5 * (T // 10))
    f = o_psc(d, tau_s)
    if double:
        f = o_psc(f, tau_s)
    tgt = np.zeros((T, B, K))
    for b in range(B):
        tgt[:, b, y[b]] = f
    return tgt


def o_network(x, y, P, k=None, th_intra=None, warm_hidden=0.25, warm_out=0.25, width_hidden=0.2, width_out=0.2):
    """Forward + backward of input -> 3 srsc hidden layers -> output, float64 numpy. P: numpy parameters.

    k scales: inter, intra, self (in every hidden layer), skip (the l -> l+2 error path), bip (∂L/∂θ).
    Returns (loss, grads dict).
    """
    k = {"inter": 1.0, "intra": 1.0, "self": 1.0, "skip": 1.0, "bip": 1.0, **(k or {})}
    a0 = o_psc(x, TAU_S)
    hs, acts = [], [a0]
    for l in range(3):
        I = acts[-1] @ P[f"W{l}"].T
        if l == 2:
            I = I + acts[1] @ P["Wskip"].T
        u, s, a, urp = o_layer_forward(I, P[f"ws{l}"], P[f"th{l}"])
        hs.append((u, s, a, urp))
        acts.append(a)
    K = P["Wout"].shape[0]
    Iout = acts[-1] @ P["Wout"].T
    no = np.zeros(K)
    uo, so, ao, urpo = o_layer_forward(Iout, no, P["thout"])
    T, B = x.shape[:2]
    tgt = o_target(T, B, K, y, TAU_S)
    loss = 0.5 * ((ao - tgt) ** 2).sum() / B
    g = {}
    Go = o_layer_backward(ao - tgt, uo, so, ao, urpo, no, P["thout"], k={kk: k[kk] for kk in ("inter", "intra")},
                          warm=warm_out, width=width_out)
    g["Wout"] = np.einsum("tbk,tbn->kn", Go, acts[3])
    g_ext = {2: Go @ P["Wout"]}
    Gs = {}
    for l in (2, 1, 0):
        u, s, a, urp = hs[l]
        G = o_layer_backward(g_ext[l], u, s, a, urp, P[f"ws{l}"], P[f"th{l}"], k=k, th_intra=th_intra, warm=warm_hidden,
                             width=width_hidden)
        Gs[l] = G
        g[f"W{l}"] = np.einsum("tbk,tbn->kn", G, acts[l])
        a_prev = np.concatenate([np.zeros_like(a[:1]), a[:-1]])
        g[f"ws{l}"] = (G * a_prev).sum((0, 1))
        g[f"th{l}"] = k["bip"] * (G * urp).sum((0, 1))
        if l == 2:
            g["Wskip"] = np.einsum("tbk,tbn->kn", G, acts[1])
        if l >= 1:
            g_ext[l - 1] = G @ P[f"W{l}"]
            if l == 2:
                g_ext[0] = None
        if l == 1:
            g_ext[0] = G @ P["W1"] + k["skip"] * Gs[2] @ P["Wskip"]
    da0 = Gs[0] @ P["W0"]
    g["x"] = np.zeros_like(x)
    for t in range(T):
        g["x"][t] = sum(eps(kk - t, TAU_S) * da0[kk] for kk in range(t, T))
    return loss, g


# ------------------------------------------------------------------------------ the rule's network


def make_net(conn=None, hidden=(5, 5, 5), C=4, K=3, seed=0, bip=True, scale=1.5, **rule_params):
    torch.manual_seed(seed)
    net = Network(C, hidden, K, lambda n: LIF(n, tau_m=TAU_M, tau_s=TAU_S, v_th=VTH), conn or SrSc(init_scale=0.6),
                  readout="spiking", weight_scale=scale)
    rule_params.setdefault("backward", "2021")  # the oracle is the 2021 form; other forms are asked for by name
    rule = TSSLBP(grad_clip=0.0, **rule_params)
    rules = [rule]
    if bip:
        b = BIP()
        b.setup(net)
        rules.append(b)
        g = torch.Generator().manual_seed(seed + 1)
        for layer in net.layers:
            layer.neuron.leak.data = 0.6 + 0.3 * torch.rand(layer.size, generator=g)
    rule.setup(net)
    net.plan(rules=[rule])  # a rule set up outside assembly joins the plan explicitly
    net.double()
    return net, rule


def params_np(net):
    P = {}
    for l, layer in enumerate(net.layers):
        P[f"W{l}"] = layer.ff.weight.detach().numpy().copy()
        rec = layer.recurrence
        P[f"ws{l}"] = rec.weight.detach().numpy().copy() if rec is not None else np.zeros(layer.size)
        P[f"th{l}"] = layer.neuron.leak.detach().numpy().copy()
    P["Wskip"] = (
        net.layers[2].skip_in["0"].weight.detach().numpy().copy()
        if "0" in net.layers[2].skip_in
        else np.zeros((net.layers[2].size, net.layers[0].size))
    )
    P["Wout"] = net.output.ff.weight.detach().numpy().copy()
    P["thout"] = net.output.neuron.leak.detach().numpy().copy()
    return P


def rule_grads(net, rule, x, y):
    x = x.clone().requires_grad_(True)
    out = net(x)
    loss = rule.loss(out, y)
    net.zero_grad()
    rule.backward(loss, out, y, net)
    g = {"x": x.grad.numpy()}
    for l, layer in enumerate(net.layers):
        g[f"W{l}"] = layer.ff.weight.grad.numpy()
        if layer.recurrence is not None:
            g[f"ws{l}"] = layer.recurrence.weight.grad.numpy()
        if layer.neuron.leak.grad is not None:
            g[f"th{l}"] = layer.neuron.leak.grad.numpy()
    if "0" in net.layers[2].skip_in:
        g["Wskip"] = net.layers[2].skip_in["0"].weight.grad.numpy()
    g["Wout"] = net.output.ff.weight.grad.numpy()
    return float(loss.detach()), g, out


def data(T=20, B=2, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 6 * (torch.rand(T, B, C, generator=g, dtype=torch.float64) < 0.3).double()
    y = torch.tensor([0, 2])[:B]
    return x, y


@pytest.fixture(scope="module")
def case():
    net, rule = make_net(seed=3, scale=1.5)
    x, y = data(seed=3)
    loss, g, out = rule_grads(net, rule, x, y)
    P = params_np(net)
    o_loss, o_g = o_network(x.numpy(), y.numpy(), P)
    return dict(net=net, rule=rule, x=x, y=y, loss=loss, g=g, out=out, P=P, o_loss=o_loss, o_g=o_g)


def maxdiff(g1, g2):
    return max(float(np.abs(g1[k] - g2[k]).max()) for k in g2 if k in g1)


GRAD_KEYS = ["x", "W0", "W1", "W2", "Wskip", "Wout", "ws0", "ws1", "ws2", "th0", "th1", "th2"]


def test_case_is_rich(case):
    """The tiny case exercises every branch: multiple spikes per neuron, silent stretches, both warm-up sides."""
    for l, tr in enumerate(case["out"].hidden):
        s = tr.s.detach()
        assert 0.05 < float(s.mean()) < 0.7, (l, float(s.mean()))
        assert int((s.sum(0) >= 2).sum()) >= 3  # neurons with several spikes: intra-neuron terms
        warm = tr.y.detach() < 0.25 / TAU_S
        assert warm.any() and (~warm).any()
    assert case["out"].out_spikes.sum() > 0


def test_gradients_equal_independent_oracle(case):
    assert case["loss"] == pytest.approx(case["o_loss"], rel=1e-12)
    assert sorted(case["g"]) == sorted(GRAD_KEYS)
    for key in GRAD_KEYS:
        np.testing.assert_allclose(case["g"][key], case["o_g"][key], rtol=1e-9, atol=1e-12, err_msg=key)
        assert np.abs(case["o_g"][key]).max() > 1e-6, key  # every gradient is exercised


@pytest.mark.parametrize("term", ["inter", "intra", "self", "skip", "bip"])
@pytest.mark.parametrize("scale", [0.0, -1.0], ids=["dropped", "flipped"])
def test_a_dropped_or_flipped_term_is_detected(case, term, scale):
    _, bad = o_network(case["x"].numpy(), case["y"].numpy(), case["P"], k={term: scale})
    assert maxdiff(case["g"], bad) > 1e-4


def test_per_neuron_leak_in_intra_terms_is_detected(case):
    """BIP: the intra-neuron terms must use each neuron's own θ_i, not the initial constant."""
    _, bad = o_network(case["x"].numpy(), case["y"].numpy(), case["P"], th_intra=1 - 1 / TAU_M)
    assert maxdiff(case["g"], bad) > 1e-4


@pytest.mark.parametrize("backward, warm_hidden, warm_out, "
                         "width_out", [("surrogate", 1e9, 1e9, 0.5), ("hybrid", 1e9, 0.25, 0.2)])
def test_surrogate_and_hybrid_backward_equal_the_oracle(backward, warm_hidden, warm_out, width_out):
    """surrogate: G = f(u)·conv at every (neuron, step) = the oracle with the warm-up branch everywhere, with the
    surrogate form's width 0.5; hybrid: that in the hidden layers, the exact 2021 branch (warm-up width 0.2) in the
    output layer. Both differ from 2021."""
    net, rule = make_net(seed=3, scale=1.5, backward=backward)
    x, y = data(seed=3)
    loss, g, _ = rule_grads(net, rule, x, y)
    P = params_np(net)
    _, want = o_network(x.numpy(), y.numpy(), P, warm_hidden=warm_hidden, warm_out=warm_out, width_hidden=0.5,
                        width_out=width_out)
    for key in GRAD_KEYS:
        np.testing.assert_allclose(g[key], want[key], rtol=1e-9, atol=1e-12, err_msg=key)
    _, g2021 = o_network(x.numpy(), y.numpy(), P)
    assert maxdiff(g, g2021) > 1e-4


def test_diagnostics_per_layer_in_describe():
    """describe() reports this epoch's training facts per layer, then starts afresh; evaluation adds nothing."""
    net, rule = make_net(seed=3, scale=1.5, backward="2021", bip=False)
    x, y = data(seed=3)
    assert rule.describe(net) == {}
    for _ in range(2):
        rule_grads(net, rule, x, y)
    d = rule.describe(net)["tssl"]
    assert list(d) == ["layer0", "layer1", "layer2", "output"]
    s_out = net(x).hidden[0].s.detach()  # grad enabled but the net is in training mode: counted, then reset below
    rule.describe(net)
    for _name, row in d.items():
        assert 0 <= row["silent"] <= 1 and 0 <= row["saturated"] <= 1 and 0 < row["spike_rate"] < 1
        assert row["exact_spike"] == pytest.approx(
            row["spike_rate"]
        )  # 2021: every spike step with a >= 1/(4τs) is exact
        assert row["exact_spike"] + row["exact_silent"] + row["surrogate"] == pytest.approx(1.0)
        assert row["grad_norm"] > 0 and row["grad_norm_max"] >= row["grad_norm"]
    assert d["layer0"]["spike_rate"] == pytest.approx(float(s_out.mean()), rel=1e-9)
    with torch.no_grad():
        net(x)
    assert rule.describe(net) == {}  # nothing recorded without gradients
    net2, rule2 = make_net(seed=3, scale=1.5, backward="surrogate", bip=False)
    rule_grads(net2, rule2, x, y)
    d2 = rule2.describe(net2)["tssl"]
    assert all(r["surrogate"] == 1.0 and r["exact_spike"] == 0.0 for r in d2.values())


def test_forward_equals_reference_scan_exactly():
    torch.manual_seed(3)
    neuron = LIF(6, tau_m=5.0, tau_s=TAU_S).double()
    neuron.leak.data = 0.5 + 0.4 * torch.rand(6, dtype=torch.float64)
    rec = SelfRecurrence(6, 0.8).double()
    cur = 2 * torch.randn(30, 3, 6, dtype=torch.float64)
    a_ref, s_ref = reference_scan(neuron, cur, rec)
    u, s, a, _ = tssl_forward(cur, rec.weight, neuron.leak, TAU_S, neuron.v_th)
    assert torch.equal(a, a_ref) and torch.equal(s, s_ref)
    a2, s2 = TSSLScan.apply(cur, rec.weight, neuron.leak, TAU_S, neuron.v_th, TSSLBP()._opts())
    assert torch.equal(a2, a_ref) and torch.equal(s2, s_ref)
    a_ff, s_ff = reference_scan(neuron, cur)
    a3, _ = TSSLScan.apply(cur, None, neuron.leak, TAU_S, neuron.v_th, TSSLBP()._opts())
    assert torch.equal(a3, a_ff)


def plain_23(g, u, s, du, a, theta_m, tau_s, bound=8.0, warm=0.25, width=0.2):
    """The 2021 form's pseudo-code for one neuron, O(T²) conv, constant θ_m = 1/τm (the TSSL-BP code's convention)."""
    T = len(g)
    G = np.zeros(T)
    c = 0.0
    for t in range(T - 1, -1, -1):
        conv = sum(eps(k - t, tau_s) * g[k] for k in range(t, T))
        phi = min(1 / du[t], bound) if s[t] else 0.0
        R = phi * conv + c * theta_m * u[t] * phi if s[t] else c * (1 - theta_m)
        c = s[t] * R + (1 - s[t]) * (1 - theta_m) * c
        G[t] = R if a[t] >= warm / tau_s else f_sur(u[t], width) * conv
    return G


@pytest.mark.parametrize("warmup", [0.25, 0.0, 1e9], ids=["default", "warmup-all-off", "warmup-all-on"])
def test_reduces_to_plain_tsslbp_without_self_skip_bip(warmup):
    """w_s = 0, constant θ, no skip: the layer backward is exactly the 2021 form (and the warm-up extremes)."""
    torch.manual_seed(1)
    T, B, N, tau_m = 25, 3, 4, 5.0
    cur = 1.5 * torch.rand(T, B, N, dtype=torch.float64)
    leak = torch.full((N,), 1 - 1 / tau_m, dtype=torch.float64)
    ws = torch.zeros(N, dtype=torch.float64, requires_grad=True)
    cur.requires_grad_(True)
    opts = TSSLBP(warmup=warmup, backward="2021")._opts()
    a, s = TSSLScan.apply(cur, ws, leak, TAU_S, VTH, opts)
    g = torch.randn(T, B, N, dtype=torch.float64)
    a.backward(g)
    u, s_, a_, urp = (t.numpy() for t in tssl_forward(cur.detach(), None, leak, TAU_S, VTH))
    warm = a_ < warmup / TAU_S
    assert warm.all() if warmup > 1 else (~warm.any() if warmup == 0 else (warm.any() and (~warm).any()))
    assert s_.sum() > 10
    for b in range(B):
        for i in range(N):
            want = plain_23(g[:, b, i].numpy(), u[:, b, i], s_[:, b, i], (u - urp)[:, b, i], a_[:, b, i], 1 / tau_m,
                            TAU_S, warm=warmup)
            np.testing.assert_allclose(cur.grad[:, b, i].numpy(), want, rtol=1e-11, atol=1e-13)


def test_backward_2020_equals_matrix_form():
    torch.manual_seed(2)
    T, B, N = 20, 2, 3
    cur = (1.2 * torch.rand(T, B, N, dtype=torch.float64)).requires_grad_(True)
    leak = (0.6 + 0.3 * torch.rand(N, dtype=torch.float64)).requires_grad_(True)
    ws = (0.5 * torch.randn(N, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(T, B, N, dtype=torch.float64)
    for rate in (0.1, 0.99):  # layer-level warm-up: exact derivative, then surrogate
        for p in (cur, leak, ws):
            p.grad = None
        a, s = TSSLScan.apply(cur, ws, leak, TAU_S, VTH, TSSLBP(backward="2020", warmup_rate_2020=rate)._opts())
        a.backward(g)
        u, s_, a_, urp = (t.numpy() for t in tssl_forward(cur.detach(), ws.detach(), leak.detach(), TAU_S, VTH))
        assert (s_.mean() > rate) == (rate < 0.5)
        G = o_layer_backward_2020(g.numpy(), u, s_, urp, ws.detach().numpy(), leak.detach().numpy(), rate=rate)
        np.testing.assert_allclose(cur.grad.numpy(), G, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(leak.grad.numpy(), (G * urp).sum((0, 1)), rtol=1e-10, atol=1e-13)
        a_prev = np.concatenate([np.zeros_like(a_[:1]), a_[:-1]])
        np.testing.assert_allclose(ws.grad.numpy(), (G * a_prev).sum((0, 1)), rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------------- losses


def test_desired_train_and_kernel_loss_by_hand():
    assert desired_spikes(20).tolist() == [0, 1] * 10
    assert desired_spikes(5).tolist() == [0, 1, 1, 1, 1]
    assert desired_spikes(5, "01011").tolist() == [0, 1, 0, 1, 1]
    with pytest.raises(IncompatibleError, match="multiple of 10"):
        desired_spikes(25)
    with pytest.raises(IncompatibleError, match="T must be 5"):
        desired_spikes(7)
    rule = TSSLBP(desired_filter="single")
    rule._tau_s = 2.0
    # ε*d with τs = 2: y[t] = y[t-1]/2 + d[t]/2 over d = 0,1,0,1,...
    single = [0, 0.5, 0.25, 0.625, 0.3125, 0.65625, 0.328125, 0.6640625, 0.33203125, 0.666015625]
    a = torch.zeros(10, 1, 2, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1])
    tgt = rule.target(a, y)
    assert tgt[:, 0, 1].tolist() == single and tgt[:, 0, 0].abs().sum() == 0
    out = type("Out", (), {"out": a})()
    loss = rule.loss(out, y)
    assert float(loss.detach()) == pytest.approx(0.5 * sum(v * v for v in single), rel=1e-14)
    loss.backward()
    assert a.grad[:, 0, 1].tolist() == [-v for v in single]  # ∂L/∂a = a - target
    rule2 = TSSLBP()  # double filter (reference code): ε*ε*d
    rule2._tau_s = 2.0
    double = [0.0]
    for v in single[1:]:
        double.append(double[-1] / 2 + v / 2)
    assert rule2.target(a, y)[:, 0, 1].tolist() == pytest.approx(double, abs=0)


def test_count_and_softmax_losses():
    rule = TSSLBP(loss="count", desired_count=4.0, undesired_count=1.0)
    rule._tau_s = 2.0
    a = torch.full((10, 1, 3), 0.3, dtype=torch.float64, requires_grad=True)  # Σ_t a = 3 for every neuron
    y = torch.tensor([0])
    out = type("Out", (), {"out": a})()
    loss = rule.loss(out, y)
    # δ = (3-4)/10 = -0.1 for the target (kept: fires less than desired); (3-1)/10 = 0.2 for the others
    assert float(loss.detach()) == pytest.approx(0.5 * 10 * (0.01 + 0.04 + 0.04))
    loss.backward()
    assert torch.allclose(a.grad[:, 0], torch.tensor([-0.1, 0.2, 0.2], dtype=torch.float64).expand(10, 3))
    a2 = torch.full((10, 1, 3), 0.5, dtype=torch.float64, requires_grad=True)  # Σ = 5 > 4 for target: no penalty
    l2 = rule.loss(type("Out", (), {"out": a2})(), y)
    l2.backward()
    assert a2.grad[:, 0, 0].abs().sum() == 0
    sm = TSSLBP(loss="softmax")
    ls = sm.loss(type("Out", (), {"out": a})(), y)
    assert float(ls.detach()) == pytest.approx(math.log(3))


def test_logits_are_summed_output_psc(case):
    out = case["out"]
    assert torch.equal(case["rule"].logits(out), out.out.sum(0))


# ------------------------------------------------------------------------------------ compatibility


def test_incompatible_combinations_list_what_works():
    from snnkit_core.contract.interfaces import Connectivity, Neuron
    from snnkit_core.contract.plugins import get_registry

    class NoPSC(LIF):
        name = "lif"
        has_psc = False

    rule = TSSLBP()
    problems = rule.check(NoPSC, SrSc)
    assert any("PSC" in p and "has_psc" in p for p in problems)

    class Dense(Connectivity):
        name = "dense"
        recurrence = "dense"

    with pytest.raises(IncompatibleError) as err:
        check_compatible(LIF, Dense, [rule], registry=get_registry())
    msg = str(err.value)
    assert "'dense'" in msg and "ff" in msg and "srsc" in msg and "self" in msg and "skip" in msg

    class Plain(Neuron):
        name = "plain"
        has_psc = False

        def initial_state(self, b, d, dt):
            return ()

        def step(self, c, s):
            return c, c, s

    with pytest.raises(IncompatibleError, match="lif"):
        check_compatible(Plain, SrSc, [rule], registry=get_registry())


def test_linear_readout_is_refused():
    net = Network(4, (5,), 3, lambda n: LIF(n), FeedForward(), readout="linear")
    with pytest.raises(IncompatibleError, match="spiking"):
        TSSLBP().setup(net)


# --------------------------------------------------------------------------------------- recipe


def test_recipe_clip_and_clamp(case):
    net, _ = make_net(seed=4)
    rule = TSSLBP(grad_clip=1.0)
    rule.setup(net)
    net.plan(rules=[rule])  # a rule set up outside assembly joins the plan explicitly
    x, y = data(seed=4)
    out = net(x)
    loss = rule.loss(out, y)
    rule.backward(loss, out, y, net)
    norm = torch.sqrt(sum((p.grad**2).sum() for p in net.parameters() if p.grad is not None))
    assert float(norm) <= 1.0 + 1e-9
    opt = rule.make_optimizer([{"params": list(net.parameters())}], 0.1, 0.01)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    with torch.no_grad():
        net.layers[0].ff.weight.mul_(100)
        net.layers[0].recurrence.weight.fill_(9.0)
    leak_before = net.layers[0].neuron.leak.detach().clone()
    rule.after_step(net)
    assert net.layers[0].ff.weight.abs().max() <= 4.0 and net.layers[0].recurrence.weight.abs().max() <= 4.0
    assert torch.equal(net.layers[0].neuron.leak.detach(), leak_before)
    TSSLBP(weight_clip=0.0).after_step(net)  # switchable


# --------------------------------------------------------------------------------- short training


@pytest.fixture(scope="module")
def _cache(tmp_path_factory):
    import os

    old = os.environ.get("SNNKIT_CACHE")
    os.environ["SNNKIT_CACHE"] = str(tmp_path_factory.mktemp("snnkit-cache"))
    yield
    if old is None:
        os.environ.pop("SNNKIT_CACHE", None)
    else:
        os.environ["SNNKIT_CACHE"] = old


@pytest.mark.slow
@pytest.mark.parametrize("conn, rules", [("ff", ("tssl-bp",)), ("self", ("tssl-bp",)), ("self", ("tssl-bp", "bip")),
                                         ("srsc", ("tssl-bp",)), ("srsc", ("tssl-bp", "bip"))])
def test_short_training_learns_on_shipped_data(conn, rules, _cache):
    """ff and the four ScSr structures (Sr, Sr-BIP, SrSc, SrSc-BIP): the loss falls and accuracy rises."""
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    cfg = TrainConfig(neuron="lif", conn=conn, rules=rules, dataset="espeak-digits", hidden=(32, 32, 32),
                      epochs=3, batch_size=20, limit=500, device="cpu", seed=0, val_fraction=0.0)  # all 500 train
    recs = list(train(cfg))
    assert recs[-1].train_loss < recs[0].train_loss
    assert max(r.test_accuracy for r in recs[1:]) > 0.15  # 10 classes: chance is 0.10
    assert recs[-1].train_accuracy > 0.15


@pytest.mark.slow
@pytest.mark.parametrize("backward", ["surrogate", "2021"])
def test_default_backward_learns_where_the_2021_form_does_not(backward, _cache):
    """Issue 9: the default (surrogate) backward must reach a bar that the old default (2021) misses on the same
    run: espeak-digits, 400 examples, srsc 32x3, 5 epochs, seed 0. Measured (test / train accuracy after epoch
    5, seeds 0, 1, 2): default 0.46 / 0.62, 0.42 / 0.50, 0.55 / 0.65; 2021 0.29 / 0.33, 0.27 / 0.28, 0.30 / 0.27."""
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import train

    cfg = TrainConfig(neuron="lif", conn="srsc", rules=("tssl-bp",), dataset="espeak-digits", hidden=(32, 32, 32),
                      epochs=5, batch_size=20, limit=400, device="cpu", seed=0,
                      params={} if backward == "surrogate" else {"rule.tssl-bp": {"backward": backward}})
    last = list(train(cfg))[-1]
    passes = last.test_accuracy >= 0.38 and last.train_accuracy >= 0.45
    assert passes == (backward == "surrogate"), (last.test_accuracy, last.train_accuracy)


def test_presets_load_and_the_fsdd_one_builds():
    from snnkit_cli import presets
    from snnkit_core.engine.training import build

    names = {n for n in presets.names() if n.startswith("scsr-")}
    assert {"scsr-fsdd", "scsr-ti46-alpha", "scsr-ti46-digits", "scsr-ntidigits"} <= names
    for name in names:
        cfg = presets.get(name).config()
        assert cfg.rules == ("tssl-bp", "bip") and cfg.params["neuron"]["tau_s"] == 8.0
    cfg = presets.get("scsr-fsdd").config().evolve(device="cpu")
    built = build(cfg)
    assert isinstance(built.network.layers[0].neuron.leak, torch.nn.Parameter)
    assert set(built.network.paths()) == {"rule:tssl-bp"}  # every spiking layer runs the rule's scan


def test_unusable_sequence_length_fails_before_the_run_directory_is_written(tmp_path, _cache):
    from snnkit_core.contract.interfaces import ArrayData
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import build, train

    cfg = TrainConfig(neuron="lif", conn="srsc", rules=("tssl-bp",), dataset="espeak-digits", hidden=(8, 8, 8),
                      epochs=1, batch_size=4, device="cpu")
    built = build(cfg)
    x = torch.rand(8, 25, built.dataset.input_size)  # T = 25: the kernel loss cannot tile [0,1]x5
    split = ArrayData(x, torch.arange(8) % 2)
    with pytest.raises(IncompatibleError, match="multiple of 10"):
        next(train(cfg, tmp_path / "run", built=built, data=(split, split)))
    assert not (tmp_path / "run").exists()
    # the count loss has no such constraint
    cfg = cfg.evolve(params={"rule.tssl-bp": {"loss": "count"}})
    rec = next(train(cfg, tmp_path / "run2", built=build(cfg), data=(split, split)))
    assert rec.epoch == 1 and (tmp_path / "run2" / "config.toml").exists()
