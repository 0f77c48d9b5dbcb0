"""input-noise: the NRR-SNN authors' multiplicative noise on every hidden layer's input."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_rules.input_noise import attach, perturb


def test_perturb_scales_each_element_by_one_plus_or_minus_p():
    x = torch.rand(50, 4, 30) + 0.5
    y = perturb(x, 0.3, torch.Generator().manual_seed(1))
    ratio = y / x
    assert torch.allclose(ratio[ratio > 1], torch.tensor(1.3)) and torch.allclose(ratio[ratio < 1], torch.tensor(0.7))
    assert 0.45 < float((ratio > 1).float().mean()) < 0.55  # each sign half the time, per element
    assert torch.equal(y, perturb(x, 0.3, torch.Generator().manual_seed(1)))  # a seeded generator repeats it
    assert perturb(x, 0.0) is x


def test_every_hidden_layer_sees_a_perturbed_input():
    import snnkit

    model = snnkit.build(conn="self", hidden=(8, 8), seed=0)
    seen = []
    handles = attach(model.network, 0.25, torch.Generator().manual_seed(0))
    for layer in model.network.layers:  # registered after the noise: sees what the weights multiply
        layer.ff.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    x = torch.rand(20, 3, model.network.sizes[0]) + 0.1
    model.network(x)
    assert len(seen) == 2
    ratio = seen[0] / model.network.input_neuron.encode_input(x)
    assert set(torch.unique(torch.round(ratio, decimals=5)).tolist()) == {0.75, 1.25}
    for h in handles:
        h.remove()
    seen.clear()
    model.network(x)
    assert torch.equal(seen[0], model.network.input_neuron.encode_input(x))  # removed: the plain input again


def test_training_with_noise_runs_and_bad_p_is_refused(tmp_path):
    args = ["train", "--rule", "bptt", "--rule", "input-noise", "--hidden", "8,8,8", "--epochs", "1", "--limit",
            "48", "--device", "cpu"]
    res = CliRunner().invoke(cli, [*args, "--set", "rule.input-noise.p=0.2", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "a" / "config.toml").read_text()
    assert text.endswith('[train.params."rule.input-noise"]\np = "0.2"\n')
    res = CliRunner().invoke(cli, [*args, "--set", "rule.input-noise.p=1.5", "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "rule.input-noise.p must be in [0, 1]" in res.output


def test_p_zero_changes_nothing():
    p = 0.0
    import snnkit

    model = snnkit.build(conn="self", hidden=(8, 8), seed=0)
    x = torch.rand(20, 3, model.network.sizes[0])
    before = model.network(x).logits
    attach(model.network, p)
    assert torch.equal(model.network(x).logits, before)
