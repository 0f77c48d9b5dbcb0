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
    from snnkit_cli.robustness import _hidden_noise

    model = snnkit.load_run(nrr_run).model
    seen = []
    for layer in model.network.layers:  # registered before the noise: sees the clean input of the same call
        layer.ff.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    x = torch.rand(2, *model.splits()[2].x.shape[1:]) + 0.1
    built = model.built
    with _hidden_noise(built, 0.3):
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
