"""``reward-prop``: the replaced gradients equal the closed form of docs/rules/reward-prop.md (computed here
independently in float64), no gradient reaches layer l from layer l+1, the readout gets autograd's MSE gradient;
the rule contract tests."""

import numpy as np
import pytest
import torch

from snnkit.testing import RuleContract
from snnkit_connectivity.sparse import Sparse
from snnkit_core.contract.interfaces import Batch
from snnkit_core.engine.assembly import assemble
from snnkit_neurons.alif import ALIF
from snnkit_neurons.nrr import NRR
from snnkit_rules.reward_prop import RewardProp


class TestRewardPropContract(RuleContract):
    rule_cls = RewardProp
    neuron_cls = NRR
    conn_cls = Sparse
    hidden = (8, 8)
    weight_scale = 2.0


class TestRewardPropALIFContract(RuleContract):
    rule_cls = RewardProp
    neuron_cls = ALIF
    conn_cls = Sparse
    params = {"minus_h": True}


class _Keep:
    """An optimizer that leaves the gradients in .grad (so the test can read them)."""

    def zero_grad(self, set_to_none=True):
        pass

    def step(self, closure=None):
        pass


def _setup(reset="fix", gamma=1.0, minus_h=False, seed=0):
    rule = RewardProp(minus_h=minus_h)
    net = assemble(NRR, Sparse(), [rule], input_size=3, num_classes=3, hidden=(6, 5), seed=seed,
                   neuron_params={"reset": reset, "gamma": gamma}, weight_scale=1.5).double()
    with torch.no_grad():  # strong enough that both channels of both layers fire (and S = 2 occurs)
        for layer in net.layers:
            layer.recurrence.weight.abs_().mul_(2.0)
        net.layers[1].ff.weight.mul_(3.0)
    g = torch.Generator().manual_seed(seed)
    batch = Batch(
        1.5 * torch.rand(12, 4, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 1]), torch.arange(4)
    )
    return rule, net, batch


def _closed_form(net, rule, batch, reset, gamma, minus_h):
    """The closed form in float64 numpy: forward of each layer, then δ_f[t] = G[t]⊙1[|V_f-θ|<½] + κ r(S[t]) δ_f[t+1],
    δ_r[t] = G[t]⊙1[|V_r-θ|<½] + κ r(S[t]) δ_f[t+1], ∂W_f = Σ_t δ_fᵀ x, ∂W_r = (Σ_t δ_rᵀ S[t-1]) ⊙ M."""
    kappa, th, al, be = 0.2, 0.5, 0.9, 0.1
    x = batch.x.numpy()
    T, Bsz, _ = x.shape
    rp = np.eye(3)[batch.y.numpy()]  # (B, K), the same at every step
    grads, h = [], x
    for l, layer in enumerate(net.layers):
        Wf = layer.ff.weight.detach().numpy()
        rec = layer.recurrence
        Wr = rec.effective_weight().detach().numpy()
        N = Wf.shape[0]
        V, S, a = np.zeros((Bsz, N)), np.zeros((Bsz, N)), np.zeros((Bsz, N))
        Vf_all, Vr_all, S_all, Sprev_all = [], [], [], []
        for t in range(T):
            a = al * a + be * S
            r = (1 - S) if reset == "quirk" else 1 - np.minimum(S, 1)
            Vf = kappa * V * r + h[t] @ Wf.T - gamma * a
            Vr = S @ Wr.T
            Sprev_all.append(S)
            sf, sr = (Vf > th) * 1.0, (Vr > th) * 1.0
            V, S = Vf + Vr, sf + sr
            Vf_all.append(Vf), Vr_all.append(Vr), S_all.append(S)
        B = rule.B[l].numpy()
        dWf, dWr = np.zeros_like(Wf), np.zeros_like(Wr)
        d_next = np.zeros((Bsz, N))
        for t in range(T - 1, -1, -1):
            r = (1 - S_all[t]) if reset == "quirk" else 1 - np.minimum(S_all[t], 1)
            dV = kappa * r * d_next  # ∂L/∂V[t]
            Gf = rp @ B - (np.asarray(Vf_all[t] > th, float) if minus_h else 0)
            Gr = rp @ B - (np.asarray(Vr_all[t] > th, float) if minus_h else 0)
            df = Gf * (np.abs(Vf_all[t] - th) < 0.5) + dV
            dr = Gr * (np.abs(Vr_all[t] - th) < 0.5) + dV
            dWf += df.T @ h[t]
            dWr += dr.T @ Sprev_all[t]
            d_next = df
        grads.append((dWf, dWr * rec.mask.numpy(), np.stack(S_all)))
        h = np.stack(S_all)
    return grads


@pytest.mark.parametrize("reset,gamma,minus_h", [("fix", 1.0, False), ("quirk", 0.0, False), ("fix", 1.0, True)])
def test_hidden_gradients_equal_the_closed_form(reset, gamma, minus_h):
    rule, net, batch = _setup(reset, gamma, minus_h)
    rule.train_step(net, batch, _Keep())
    want = _closed_form(net, rule, batch, reset, gamma, minus_h)
    for l, layer in enumerate(net.layers):
        dWf, dWr, S = want[l]
        assert np.abs(dWf).sum() > 0 and np.abs(dWr).sum() > 0, "the test must exercise both weight matrices"
        np.testing.assert_allclose(layer.ff.weight.grad.numpy(), dWf, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.recurrence.weight.grad.numpy(), dWr, rtol=1e-10, atol=1e-12)
    assert (want[0][2] == 2).any(), "S = 2 must occur in the test"


def test_the_readout_gets_the_autograd_mse_gradient():
    rule, net, batch = _setup()
    rule.train_step(net, batch, _Keep())
    with torch.no_grad():
        S = net(batch.x).hidden[-1].y  # (T, B, N)
    W = net.output.weight.detach().clone().requires_grad_()
    b = net.output.bias.detach().clone().requires_grad_()
    target = torch.nn.functional.one_hot(batch.y, 3).double().expand(S.shape[0], -1, -1)
    torch.nn.functional.mse_loss(S @ W.t() + b, target).backward()
    torch.testing.assert_close(net.output.weight.grad, W.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(net.output.bias.grad, b.grad, rtol=1e-12, atol=1e-14)


def test_no_gradient_reaches_a_layer_from_the_layer_above():
    """Layer 0's gradients do not change when everything above it (layer 1, the readout) changes."""
    rule, net, batch = _setup()
    rule.train_step(net, batch, _Keep())
    g0 = [p.grad.clone() for p in net.layers[0].parameters()]
    for p in net.parameters():
        p.grad = None
    with torch.no_grad():
        net.layers[1].ff.weight.mul_(-3.0)
        net.output.weight.mul_(10.0)
    rule.train_step(net, batch, _Keep())
    for a, p in zip(g0, net.layers[0].parameters()):
        torch.testing.assert_close(p.grad, a, rtol=0, atol=0)


def test_random_matrices_are_fixed_and_scaled():
    rule, net, batch = _setup()
    B0 = [b.clone() for b in rule.B]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rule.train_step(net, batch, opt)
    assert all(torch.equal(a, b) for a, b in zip(B0, rule.B))
    for b, layer in zip(rule.B, net.layers):
        assert b.shape == (3, layer.size) and float(b.abs().max()) <= (6 / layer.size) ** 0.5


def test_it_refuses_a_neuron_without_a_spike_hook():
    from snnkit_neurons.lif import LIF

    assert any("has_spike_hook" in r for r in RewardProp().check(LIF, Sparse))


def test_schedule_is_step_decay():
    rule, net, _ = _setup()
    opt = rule.make_optimizer([{"params": list(net.parameters())}], 1e-4, 1e-5)
    sched = rule.make_scheduler(opt, 100)
    assert opt.defaults["weight_decay"] == 1e-5
    for _ in range(20):
        opt.step()  # no gradients: nothing moves, but the scheduler sees the usual order
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.8e-4)


def test_the_deep_variant_trains_every_stage():
    """Conv over frequency -> sparse recurrent layer -> feedforward layer -> vote readout: every stage gets a
    gradient."""
    rule = RewardProp()
    net = assemble(NRR, Sparse(conv_kernel=3, recurrent_layers="1"), [rule], input_size=4, num_classes=3,
                   hidden=(8, 6, 5), seed=0, weight_scale=2.0)
    assert net.layers[0].recurrence is None and net.layers[2].recurrence is None
    g = torch.Generator().manual_seed(0)
    batch = Batch(2 * torch.rand(10, 3, 4, generator=g), torch.tensor([0, 1, 2]), torch.arange(3))
    rule.train_step(net, batch, _Keep())
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
