"""Self-recurrence and skip edges change the forward pass exactly as spec §3.2 says."""

from __future__ import annotations

import pytest
import torch

from snnkit_connectivity.scsr import FeedForward, SelfRecurrent, Skip, SrSc
from snnkit_core.contract.errors import IncompatibleError
from snnkit_core.contract.scan import reference_scan
from snnkit_core.engine.network import Network
from snnkit_neurons.lif import LIF


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_self_recurrence_adds_w_times_previous_psc():
    n = LIF(1, tau_m=2.0, tau_s=2.0)
    rec = SelfRecurrent(init_scale=0.5).make_recurrence(0, 1)
    rec.weight.data.fill_(2.0)
    cur = torch.tensor([1.5, 0.0, 0.0]).view(3, 1, 1)
    y, s = reference_scan(n, cur, rec)
    # t0: u=1.5 spike, a=0.5 | t1: u = 0 + 0 + 2*0.5 = 1.0 -> no spike (strict), a = 0.25
    # t2: u = 0.5*1.0 + 2*0.25 = 1.0 -> no spike; without recurrence nothing after t0
    assert s.flatten().tolist() == [1, 0, 0]
    rec.weight.data.fill_(2.2)
    y, s = reference_scan(n, cur, rec)
    # t1: u = 2.2*0.5 = 1.1 -> spike, a = 0.25 + 0.5 = 0.75 | t2: u = 0 + 2.2*0.75 = 1.65 -> spike
    assert s.flatten().tolist() == [1, 1, 1]
    assert torch.allclose(y.flatten(), torch.tensor([0.5, 0.75, 0.875]))
    y_ff, s_ff = reference_scan(n, cur)
    assert s_ff.flatten().tolist() == [1, 0, 0]


def test_skip_edges_are_l_to_l_plus_2():
    assert Skip().skip_edges(3) == [(0, 2)]
    assert SrSc().skip_edges(4) == [(0, 2), (1, 3)]
    assert FeedForward().skip_edges(3) == []


def test_skip_needs_three_layers():
    with pytest.raises(IncompatibleError, match="at least 3 hidden layers"):
        Network(4, [5, 5], 2, lambda n: LIF(n), Skip())


def _net(conn, seed=0):
    torch.manual_seed(seed)
    return Network(4, [6, 5, 7], 3, lambda n: LIF(n, tau_m=4.0, tau_s=2.0), conn, readout="linear", weight_scale=3.0)


def test_skip_edge_feeds_layer3_at_the_same_step():
    x = torch.rand(12, 2, 4) * 3
    skip, ff = _net(Skip()), _net(FeedForward())
    assert set(skip.layers[2].skip_in) == {"0"}
    # identical shared weights; zero skip weights -> identical to ff
    ff.load_state_dict({k: v for k, v in skip.state_dict().items() if "skip_in" not in k})
    skip.layers[2].skip_in["0"].weight.data.zero_()
    assert torch.equal(skip(x).logits, ff(x).logits)
    # a nonzero skip weight changes layer 3's input by exactly W13 y1[t]
    skip.layers[2].skip_in["0"].weight.data.normal_()
    out = skip(x)
    y1 = out.hidden[0].y
    cur = skip.layers[2].ff(out.hidden[1].y) + skip.layers[2].skip_in["0"](y1)
    y3, _ = reference_scan(skip.layers[2].neuron, cur)
    assert torch.equal(out.hidden[2].y, y3)
    assert not torch.equal(out.logits, ff(x).logits)


def test_srsc_has_both_and_self_weights_are_trainable():
    net = _net(SrSc())
    names = [n for n, _ in net.named_parameters()]
    assert sum("recurrence.weight" in n for n in names) == 3
    assert any("skip_in.0" in n for n in names)
    x = torch.rand(10, 2, 4) * 3
    net(x).logits.sum().backward()
    assert net.layers[0].recurrence.weight.grad is not None


def test_self_weights_start_uniform_in_plus_minus_init_scale():
    torch.manual_seed(0)
    net = Network(4, [4000, 8, 8], 3, lambda k: LIF(k), SrSc(init_scale=0.3))
    w = net.layers[0].recurrence.weight.detach()
    assert w.min() >= -0.3 and w.max() <= 0.3
    assert w.min() < -0.29 and w.max() > 0.29  # the whole interval is used, both signs
    assert abs(w.mean()) < 0.02 and abs(w.var() - 0.3**2 / 3) < 0.003  # U(-a, a): mean 0, variance a^2/3
    # kaiming re-initialisation of the Linear layers leaves the self weights alone
    net2 = Network(4, [4000, 8, 8], 3, lambda k: LIF(k), SrSc(init_scale=0.3), weight_scale=5.0)
    assert net2.layers[0].recurrence.weight.abs().max() <= 0.3


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_skip_weights_are_kaiming_normal_times_weight_scale(scale):
    torch.manual_seed(0)
    n = 400
    net = Network(4, [n, 300, 300], 3, lambda k: LIF(k), Skip(), weight_scale=scale)
    (w,) = [p for name, p in net.named_parameters() if "skip_in.0" in name and name.endswith("weight")]
    assert tuple(w.shape) == (300, n)  # layer 0 (n) -> layer 2 (300)
    expected = scale * (2.0 / n) ** 0.5  # kaiming_normal_, fan_in, gain sqrt(2)
    assert abs(w.std().item() / expected - 1) < 0.02 and abs(w.mean().item()) < 0.05 * expected
