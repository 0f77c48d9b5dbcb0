"""bip: trainable per-neuron leak, clamp, per-epoch description, composition with tssl-bp and bptt, CLI."""

from __future__ import annotations

import json
import os

import pytest
import torch

from snnkit_connectivity.scsr import SrSc
from snnkit_core.contract.compat import check_compatible
from snnkit_core.contract.errors import ConfigError
from snnkit_core.engine.network import Network
from snnkit_neurons.lif import LIF
from snnkit_rules.bip import BIP
from snnkit_rules.bptt import BPTT
from snnkit_rules.tssl_bp import TSSLBP


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def _cache(tmp_path_factory):
    old = os.environ.get("SNNKIT_CACHE")
    os.environ["SNNKIT_CACHE"] = str(tmp_path_factory.mktemp("snnkit-cache"))
    yield
    if old is None:
        os.environ.pop("SNNKIT_CACHE", None)
    else:
        os.environ["SNNKIT_CACHE"] = old


def net(readout="spiking", tau_m=8.0):
    torch.manual_seed(0)
    return Network(4, (6, 6, 6), 3, lambda n: LIF(n, tau_m=tau_m, tau_s=3.0), SrSc(init_scale=0.5), readout=readout,
                   weight_scale=2.0)


def test_setup_makes_hidden_leaks_trainable_only():
    n = net()
    BIP().setup(n)
    for layer in n.layers:
        assert isinstance(layer.neuron.leak, torch.nn.Parameter)
        assert torch.allclose(layer.neuron.leak, torch.full((6,), 1 - 1 / 8.0))
    assert not isinstance(n.output.neuron.leak, torch.nn.Parameter)  # default: output layer keeps Table 1's τm
    assert not isinstance(n.input_neuron.leak, torch.nn.Parameter)
    n2 = net()
    BIP(output_layer=True).setup(n2)
    assert isinstance(n2.output.neuron.leak, torch.nn.Parameter)


def test_clamp_after_step_and_bounds():
    n = net()
    bip = BIP()
    bip.setup(n)
    with torch.no_grad():
        n.layers[0].neuron.leak[:3] = 0.1
        n.layers[0].neuron.leak[3:] = 1.3
    bip.after_step(n)
    lk = n.layers[0].neuron.leak.detach()
    assert torch.allclose(lk[:3], torch.tensor(0.5)) and torch.allclose(lk[3:], torch.tensor(0.998))
    custom = BIP(theta_min=0.0, theta_max=0.9)
    with torch.no_grad():
        n.layers[1].neuron.leak.fill_(0.95)
    custom.after_step(n)
    assert torch.allclose(n.layers[1].neuron.leak.detach(), torch.tensor(0.9))
    with pytest.raises(ConfigError):
        BIP(theta_min=0.9, theta_max=0.5)
    with pytest.raises(ConfigError):
        BIP(theta_max=1.0)


def test_describe_reports_leak_distribution():
    n = net()
    bip = BIP()
    bip.setup(n)
    with torch.no_grad():
        n.layers[2].neuron.leak.copy_(torch.tensor([0.5, 0.75, 0.875, 0.9375, 0.5, 0.75]))
    d = bip.describe(n)["bip"]
    assert sorted(d) == ["layer0", "layer1", "layer2"]
    l2 = d["layer2"]
    th = torch.tensor([0.5, 0.75, 0.875, 0.9375, 0.5, 0.75], dtype=torch.float64)
    tau = 1 / (1 - th)  # 2, 4, 8, 16, 2, 4
    assert l2["theta_min"] == pytest.approx(0.5) and l2["theta_max"] == pytest.approx(0.9375)
    assert l2["theta_mean"] == pytest.approx(float(th.mean()))
    assert l2["theta_std"] == pytest.approx(float(th.std()))
    assert l2["tau_m_min"] == pytest.approx(2.0) and l2["tau_m_max"] == pytest.approx(16.0)
    assert l2["tau_m_mean"] == pytest.approx(float(tau.mean()))
    assert l2["tau_m_std"] == pytest.approx(float(tau.std()))
    assert d["layer0"]["tau_m_mean"] == pytest.approx(8.0, rel=1e-6)
    json.dumps(d)
    n2 = net()
    with_out = BIP(output_layer=True)
    with_out.setup(n2)
    assert sorted(with_out.describe(n2)["bip"]) == ["layer0", "layer1", "layer2", "output"]


def test_leak_has_its_own_group_without_weight_decay():
    n = net()
    bip = BIP()
    bip.setup(n)
    groups = bip.param_groups(n, [{"params": [p for p in n.parameters()], "name": "weights"}])
    leak_ids = {id(layer.neuron.leak) for layer in n.layers}
    assert not leak_ids & {id(p) for p in groups[0]["params"]}
    assert {id(p) for p in groups[-1]["params"]} == leak_ids and groups[-1]["weight_decay"] == 0.0


def _rich_input(seed=0):
    g = torch.Generator().manual_seed(seed)
    return 6 * (torch.rand(20, 2, 4, generator=g) < 0.3).float()


@pytest.mark.parametrize("grad_rule", ["tssl-bp", "bptt"])
def test_composes_with_gradient_rules(grad_rule):
    rule = TSSLBP(grad_clip=0.0) if grad_rule == "tssl-bp" else BPTT()
    n = net(readout=rule.readout)
    bip = BIP()
    check_compatible(LIF, SrSc, [rule, bip])
    bip.setup(n)
    rule.setup(n)
    n.plan(rules=[rule])  # a rule set up outside assembly joins the plan explicitly
    x, y = _rich_input(), torch.tensor([0, 2])
    out = n(x)
    loss = rule.loss(out, y)
    rule.backward(loss, out, y, n)
    for layer in n.layers:
        g = layer.neuron.leak.grad
        assert g is not None and torch.isfinite(g).all()
    assert any(float(layer.neuron.leak.grad.abs().max()) > 0 for layer in n.layers)
    before = [layer.neuron.leak.detach().clone() for layer in n.layers]
    opt = rule.make_optimizer(bip.param_groups(n, [{"params": list(n.parameters())}]), 0.05, 0.0)
    opt.step()
    bip.after_step(n)
    assert any(not torch.equal(b, layer.neuron.leak.detach()) for b, layer in zip(before, n.layers))
    for layer in n.layers:
        lk = layer.neuron.leak.detach()
        assert float(lk.min()) >= 0.5 and float(lk.max()) <= 0.998


def test_without_bip_the_leak_gets_no_gradient():
    rule = TSSLBP(grad_clip=0.0)
    n = net()
    rule.setup(n)
    n.plan(rules=[rule])  # a rule set up outside assembly joins the plan explicitly
    out = n(_rich_input())
    rule.backward(rule.loss(out, torch.tensor([0, 1])), out, torch.tensor([0, 1]), n)
    assert all(not isinstance(layer.neuron.leak, torch.nn.Parameter) for layer in n.spiking_layers())


@pytest.mark.slow
def test_cli_train_tssl_bp_with_bip(tmp_path, _cache):
    from click.testing import CliRunner

    from snnkit_cli.main import cli

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--neuron", "lif", "--conn", "srsc", "--rule", "tssl-bp", "--rule", "bip",
                                   "--hidden", "16,16,16", "--epochs", "2", "--limit", "100", "--batch-size", "25",
                                   "--device", "cpu", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for rec in recs:
        assert sorted(rec["bip"]) == ["layer0", "layer1", "layer2"]
        for stats in rec["bip"].values():
            assert 0.5 <= stats["theta_min"] <= stats["theta_max"] <= 0.998
    # the leak moved away from its initial value 1 - 1/16 (the lif default τm = 16)
    assert any(abs(s["theta_mean"] - (1 - 1 / 16)) > 1e-4 or s["theta_std"] > 1e-4 for s in recs[-1]["bip"].values())
