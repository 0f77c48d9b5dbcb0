"""NRR-SNN end to end: `snnkit eval --noise` (seeded, per-sample and per-frame accuracy, ratio, JSON + PNG, clear
errors), reward-prop training through the CLI, and frame-level TIMIT (synthetic files in the real layout)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnkit_cli.main import cli
from snnkit_cli.robustness import add_noise, parse_proportions
from snnkit_core.contract.errors import ConfigError


def test_add_noise_replaces_the_asked_proportion_with_values_in_range():
    x = torch.full((50, 40, 20), 7.0)
    g = torch.Generator().manual_seed(0)
    y = add_noise(x, 0.3, -1.0, 2.0, g)
    changed = y != 7.0
    assert abs(float(changed.float().mean()) - 0.3) < 0.01
    assert float(y[changed].min()) >= -1.0 and float(y[changed].max()) <= 2.0
    assert torch.equal(add_noise(x, 0.3, -1.0, 2.0, torch.Generator().manual_seed(0)), y)  # seeded
    assert add_noise(x, 0.0, -1.0, 2.0, g) is x
    with pytest.raises(ConfigError):
        parse_proportions("0.2,1.5")
    assert parse_proportions("0,0.1") == [0.0, 0.1]


@pytest.fixture(scope="module")
def nrr_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("nrr") / "run"
    res = CliRunner().invoke(
        cli,
        ["train", "--neuron", "nrr", "--conn", "sparse", "--rule", "reward-prop", "--hidden", "16", "--epochs", "1",
         "--limit", "60", "--batch-size", "20", "--lr", "1e-3", "--quiet", "--threads", "1", "--out", str(run)],
    )
    assert res.exit_code == 0, res.output
    return run


def test_eval_noise_writes_json_and_is_reproducible(nrr_run):
    runner = CliRunner()
    res = runner.invoke(cli, ["eval", str(nrr_run), "--noise", "0.2,0.5", "--json", "--threads", "1"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)[0]
    assert [r["p"] for r in rec["rows"]] == [0.0, 0.2, 0.5]
    for r in rec["rows"]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["frame_accuracy"] <= 1 and r["n"] == 60
    assert rec["rows"][0]["ratio"] == 1.0
    saved = json.loads((nrr_run / "noise" / "test.json").read_text())
    assert saved["rows"] == rec["rows"]
    again = json.loads(runner.invoke(cli, ["eval", str(nrr_run), "--noise", "0.2,0.5", "--json", "--no-write"]).output)[
        0
    ]
    assert again["rows"] == rec["rows"]
    other = json.loads(runner.invoke(cli, ["eval", str(nrr_run), "--noise", "0.5", "--noise-seed", "1", "--json",
                                           "--no-write"]).output)[0]
    assert other["rows"][0] == rec["rows"][0]  # P = 0 does not depend on the seed


def test_eval_noise_png_when_matplotlib_is_there(nrr_run):
    pytest.importorskip("matplotlib")
    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--noise", "0.3", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert (nrr_run / "noise" / "test.png").stat().st_size > 1000
    res = CliRunner().invoke(cli, ["plot", str(nrr_run), "--metrics-only"])  # noise records do not confuse `plot`
    assert res.exit_code == 0, res.output


def test_eval_noise_refuses_bad_proportions_without_a_traceback(nrr_run):
    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--noise", "0.2,abc"])
    assert res.exit_code != 0 and "proportions in [0, 1]" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--noise", "0.2", "--split", "all"])
    assert res.exit_code != 0 and "one split at a time" in res.output


def test_reward_prop_trains_frame_level_timit(tmp_path, monkeypatch):
    """TIMIT frames (synthetic SPHERE + .PHN files in the LDC layout): each window is labelled by its centre frame,
    which reward-prop uses as RP_t at every step; one epoch trains and the noise evaluation reports frame accuracy."""
    from snnkit_datasets.sphere import write_sphere

    monkeypatch.setenv("SNNKIT_CACHE", str(tmp_path / "cache"))
    for split, spk in (("TRAIN", "FCJF0"), ("TRAIN", "MDAC0"), ("TEST", "MDAB0")):
        d = tmp_path / "timit" / split / "DR1" / spk
        d.mkdir(parents=True)
        for u in ("SI1027", "SX127"):
            rng = np.random.default_rng(len(u) + len(spk))
            write_sphere(d / f"{u}.WAV", 0.1 * rng.standard_normal(4800), 16000)
            (d / f"{u}.PHN").write_text("0 800 h#\n800 1600 q\n1600 3200 iy\n3200 4000 ix\n4000 4800 h#\n")
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--neuron", "nrr", "--conn", "sparse", "--rule", "reward-prop", "--dataset",
                                   "timit", "--data-dir", str(tmp_path), "--hidden", "12", "--epochs", "1", "--quiet",
                                   "--val-fraction", "0", "--out", str(run)])
    assert res.exit_code == 0, res.output
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(rec["train_loss"]) and 0 <= rec["test_accuracy"] <= 1
    res = CliRunner().invoke(cli, ["eval", str(run), "--noise", "0.1", "--json", "--no-write"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)[0]["rows"]
    assert rows[0]["n"] == 48 and 0 <= rows[0]["frame_accuracy"] <= 1  # MDAB0: 2 utterances x 24 kept frames


def test_multiplicative_noise_is_the_input_noise_rule_on_the_trained_network(nrr_run):
    """--noise-kind multiplicative (the default) evaluates the trained network with the input-noise rule's
    perturbation on every hidden layer's input, drawn from torch's generator seeded with seed * 1000 + index of P."""
    import snnkit
    from snnkit_rules.input_noise import attach

    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--noise", "0.3", "--json", "--no-write", "--threads", "1"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)[0]
    assert rec["kind"] == "multiplicative" and [r["p"] for r in rec["rows"]] == [0.0, 0.3]
    run = snnkit.load_run(nrr_run)
    test = run.model.splits()[2]
    attach(run.model.network, 0.3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 * 1000 + 1)  # P = 0.3 is the second proportion evaluated
        by_hand = float((run.model.predict(test) == test.y).float().mean())
    assert rec["rows"][1]["accuracy"] == pytest.approx(by_hand)
    uniform = CliRunner().invoke(cli, ["eval", str(nrr_run), "--noise", "0.3", "--noise-kind", "uniform", "--json",
                                       "--no-write"])
    assert json.loads(uniform.output)[0]["kind"] == "uniform"


def test_the_multiplicative_kind_perturbs_every_hidden_input_only_inside_the_evaluation(nrr_run):
    """The mechanism itself (the accuracy check above could pass on a network whose predictions the noise does not
    move): inside the evaluation every hidden layer's feedforward input is scaled by 1 +- P, and afterwards the
    network is untouched."""
    import snnkit
    from snnkit_cli.robustness import hidden_noise

    model = snnkit.load_run(nrr_run).model
    seen = []
    for layer in model.network.layers:  # registered before the noise: sees the clean input of the same call
        layer.ff.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    x = torch.rand(2, *model.splits()[2].x.shape[1:]) + 0.1
    built = model.built
    with hidden_noise(built, 0.3):
        noisy = []
        hooks = [layer.ff.register_forward_pre_hook(lambda _m, args: noisy.append(args[0].detach().clone()))
                 for layer in model.network.layers]  # after the noise: sees what the weights multiply
        model(x)
        for h in hooks:
            h.remove()
    assert len(noisy) == len(seen) == len(model.network.layers)
    for clean, scaled in zip(seen, noisy):
        ratio = scaled[clean != 0] / clean[clean != 0]
        near = [(ratio - v).abs() < 1e-4 for v in (0.7, 1.3)]
        assert len(ratio) > 0 and bool((near[0] | near[1]).all()) and bool(near[0].any()) and bool(near[1].any())
    seen.clear()
    model(x)
    assert len(seen) == len(model.network.layers)  # still runs; and no perturbation left behind:
    out_a, out_b = model(x), model(x)
    assert torch.equal(out_a, out_b)


def _tiny_nrr_network(p: float):
    """1 hidden `nrr` layer of 3 neurons with every loop (sparse, density 1), a linear readout of 2 classes, the
    input-noise rule at p; fixed weights."""
    from snnkit_core.contract.plugins import get_registry
    from snnkit_core.engine.assembly import assemble

    reg = get_registry()
    rules = [reg.get("rule", "bptt")(), reg.get("rule", "input-noise")(p=p)]
    net = assemble(reg.get("neuron", "nrr"), reg.get("connectivity", "sparse")(density=1.0), rules, input_size=2,
                   num_classes=2, hidden=[3], readout="linear", backend="torch", seed=0)
    with torch.no_grad():
        net.layers[0].ff.weight.copy_(torch.tensor([[0.6, 0.3], [0.2, 0.5], [-0.4, 0.9]]))
        net.layers[0].recurrence.weight.copy_(torch.tensor([[0.0, 0.7, 0.2], [0.6, 0.0, -0.3], [0.9, 0.8, 0.0]]))
        net.output.weight.copy_(torch.tensor([[1.0, -0.5, 0.25], [-0.75, 0.5, 1.5]]))
        net.output.bias.copy_(torch.tensor([0.1, -0.2]))
    return net


def _nrr_by_hand(x, w_ff, w_rec, w_out, b_out):
    """The `nrr` equations (docs/neurons/nrr.md; defaults κ 0.2, θ 0.5, α 0.9, β 0.1, γ 1, reset 1 - min(S, 1))
    step by step in plain tensor maths, then the linear readout at every step."""
    v = s = a = torch.zeros(x.shape[1], w_ff.shape[0])
    outs = []
    for t in range(x.shape[0]):
        a = 0.9 * a + 0.1 * s
        v_f = 0.2 * v * (1 - s.clamp(max=1)) + x[t] @ w_ff.t() - 1.0 * a
        v_r = s @ w_rec.t()
        s = (v_f > 0.5).float() + (v_r > 0.5).float()
        v = v_f + v_r
        outs.append(s @ w_out.t() + b_out)
    return torch.stack(outs)


def test_the_authors_noise_by_hand_on_a_tiny_network():
    """x * (1 + P sgn(u - 0.5)) on the hidden layer's input, per element and step (u ~ U[0, 1) drawn once for the
    (T, B, C) input from torch's generator), and nowhere else: the network's output under the noise equals the
    equations computed by hand on the perturbed input, and differs from the clean one."""
    p, x = 0.5, torch.tensor([[[1.0, 0.4]], [[0.2, 1.2]], [[0.9, 0.9]]])  # T 3, batch 1, 2 inputs
    net = _tiny_nrr_network(p)
    w_ff, w_rec = net.layers[0].ff.weight.detach(), net.layers[0].recurrence.effective_weight().detach()
    w_out, b_out = net.output.weight.detach(), net.output.bias.detach()
    torch.manual_seed(7)
    u = torch.rand(x.shape)
    noisy_x = x * (1 + p * torch.sign(u - 0.5))
    by_hand = _nrr_by_hand(noisy_x, w_ff, w_rec, w_out, b_out)
    torch.manual_seed(7)
    with torch.no_grad():
        got = net(x).out
    assert torch.allclose(got, by_hand, atol=1e-6), (got, by_hand)
    assert not torch.allclose(by_hand, _nrr_by_hand(x, w_ff, w_rec, w_out, b_out))  # the noise moves the output


@pytest.fixture(scope="module")
def noisy_twin(tmp_path_factory):
    """nrr_run's network and data trained with the authors' noise at p = 0.3 (same seed)."""
    folder = tmp_path_factory.mktemp("noisy")
    res = CliRunner().invoke(
        cli,
        ["train", "--neuron", "nrr", "--conn", "sparse", "--rule", "reward-prop", "--rule", "input-noise", "--set",
         "rule.input-noise.p=0.3", "--hidden", "16", "--epochs", "1", "--limit", "60", "--batch-size", "20", "--lr",
         "1e-3", "--quiet", "--threads", "1", "--out", str(folder / "p=0.3")],
    )
    assert res.exit_code == 0, res.output
    return folder


def test_robust_ratio_is_the_two_accuracies_divided(nrr_run, noisy_twin):
    """`snnkit eval CLEAN --robust-ratio NOISY`: Acc(clean-trained run under noise P) / Acc(the run trained with
    noise P, under its own noise), each recomputed here from the loaded runs with the same seeded draws."""
    import snnkit
    from snnkit_rules.input_noise import attach

    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--robust-ratio", str(noisy_twin), "--json", "--no-write",
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["runs"][0]["rows"]
    assert [r["p"] for r in rows] == [0.0, 0.3] and rows[0]["robust_ratio"] == 1.0

    def accuracy(run_dir, noise):
        run = snnkit.load_run(run_dir)
        test = run.model.splits()[2]
        if noise:
            attach(run.model.network, noise)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 * 1000 + 1)  # noise seed 0, P = 0.3 the first proportion after 0
            return float((run.model.predict(test) == test.y).float().mean())

    clean_noisy = accuracy(nrr_run, 0.3)
    noisy_noisy = accuracy(noisy_twin / "p=0.3", 0.0)  # its own input-noise rule is part of the loaded network
    assert rows[1]["clean_trained"] == pytest.approx(clean_noisy)
    assert rows[1]["noise_trained"] == pytest.approx(noisy_noisy)
    assert rows[1]["robust_ratio"] == pytest.approx(clean_noisy / noisy_noisy)


def test_robust_ratio_refuses_what_it_cannot_pair(nrr_run, noisy_twin):
    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--robust-ratio", str(noisy_twin), "--noise", "0.2"])
    assert res.exit_code != 0 and "no run trained with input noise p = 0.2" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["eval", str(noisy_twin), "--robust-ratio", str(noisy_twin)])
    assert res.exit_code != 0 and "no run trained without input noise" in res.output
    res = CliRunner().invoke(cli, ["eval", str(nrr_run), "--robust-ratio", str(noisy_twin), "--noise-kind", "uniform"])
    assert res.exit_code != 0 and "drop --noise-kind uniform" in res.output


def test_the_nrr_authors_preset_carries_the_authors_defaults():
    """The built run (no data read) has the authors' settings, whatever the components' own defaults become."""
    from snnkit_cli import presets
    from snnkit_core.engine.training import build, make_optimizer

    cfg = presets.get("nrr-authors").config().evolve(device="cpu")
    built = build(cfg)
    assert (cfg.hidden, cfg.epochs, cfg.batch_size, cfg.lr) == ((500,), 1000, 100, 1e-4)
    rule = built.gradient_rule
    assert type(rule).name == "reward-prop" and rule.readout == "linear"
    hp = rule.hparams
    assert (hp["weight_decay"], hp["scheduler"], hp["step_size"], hp["step_gamma"]) == (1e-5, "step", 20, 0.8)
    group = make_optimizer(built).param_groups[0]
    assert group["lr"] == pytest.approx(1e-4) and group["weight_decay"] == pytest.approx(1e-5)
    layer = built.network.layers[0]
    assert (layer.neuron.hparams["decay"], layer.neuron.hparams["v_th"]) == (0.2, 0.5)
    assert layer.recurrence.describe()["density"] == pytest.approx(0.5, abs=0.02)
    assert built.dataset.hparams["steps"] == 100 and built.dataset.hparams["split"] == "speaker"
