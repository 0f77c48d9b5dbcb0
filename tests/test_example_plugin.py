"""The example third-party plugin (examples/snnkit-example-plugin) is found through a real entry point.

No pip: the test writes the ``*.dist-info`` folder pip would write (METADATA + entry_points.txt, taken from
the example's pyproject.toml) into tmp_path and puts it and the example's source folder on sys.path, so
``importlib.metadata`` discovers it exactly as it discovers an installed distribution.
"""

from __future__ import annotations

import json
import sys
import tomllib

import pytest
import torch
from click.testing import CliRunner

from .conftest import REPO

EXAMPLE = REPO / "examples" / "snnkit-example-plugin"


def _install_example(root, monkeypatch) -> dict:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]["snnkit"]
    info = root / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text("[snnkit]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return project


@pytest.fixture
def example(fresh_plugins, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    project = _install_example(site, monkeypatch)
    fresh_plugins.reset_for_tests()
    yield project
    for mod in [m for m in sys.modules if m == "snnkit_example" or m.startswith("snnkit_example.")]:
        del sys.modules[mod]


def test_example_dist_info_matches_its_pyproject(example):
    assert example["name"] == "snnkit-example-plugin"
    assert example["entry-points"]["snnkit"] == {"snnkit-example-plugin": "snnkit_example.plugin"}


def test_example_components_listed_and_attributed(example, fresh_plugins):
    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, ["list-plugins", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    row = rows["snnkit-example-plugin"]
    assert row["error"] is None and row["version"] == example["version"]
    assert {"kind": "neuron", "name": "if"} in row["components"]
    assert {"kind": "dataset", "name": "poisson-bands"} in row["components"]
    assert {"kind": "connectivity", "name": "local"} in row["components"]
    assert {"kind": "rule", "name": "readout-delta"} in row["components"]
    # the first-party plugins still load beside it
    assert rows["snnkit-neurons"]["error"] is None
    reg = fresh_plugins.get_registry()
    assert reg.component("neuron", "if").plugin == "snnkit-example-plugin"
    assert all(c.cls.description for c in reg.by_plugin("snnkit-example-plugin"))


def test_example_connectivity_and_hand_written_rule_train_through_the_cli(example, tmp_path):
    """The example's banded recurrence and its no-autograd readout rule: the rule changes only the readout."""
    from snnkit_cli.main import cli
    from snnkit_core.engine.rundir import RunDir

    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--neuron", "if", "--conn", "local", "--rule", "readout-delta", "--dataset", "poisson-bands",
        "--hidden", "32", "--epochs", "2", "--limit", "128", "--lr", "0.05", "--set", "dataset.steps=25",
        "--out", str(run), "--quiet",
    ])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["test_accuracy"] > 0.4  # chance is 0.25
    model = RunDir(run).load_checkpoint()["model"]
    assert "layers.0.recurrence.mask" in model  # the band mask is saved with the model


def test_example_info_shows_parameters_and_compatibility(example):
    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, ["info", "if"])
    assert res.exit_code == 0, res.output
    assert "plugin snnkit-example-plugin" in res.output and "v_th" in res.output
    assert "bptt" in res.output  # has_surrogate: bptt accepts it


def test_example_neuron_soft_reset_by_hand(example):
    from snnkit_example.neuron import IF

    n = IF(1)
    state = n.initial_state(1, torch.device("cpu"), torch.float64)
    out = []
    for _ in range(6):  # 0.25 per step: v = 0.25 0.5 0.75 1.0 (not > 1) 1.25 (spike, -> 0.25) 0.5
        _, s, state = n.step(torch.full((1, 1), 0.25, dtype=torch.float64), state)
        out.append((int(s), float(state.v)))
    assert out == [(0, 0.25), (0, 0.5), (0, 0.75), (0, 1.0), (1, 0.25), (0, 0.5)]


def test_example_bip_refuses_the_leakless_neuron(example):
    from snnkit_cli.main import cli

    res = CliRunner().invoke(cli, ["train", "--neuron", "if", "--rule", "bptt", "--rule", "bip",
                                   "--dataset", "poisson-bands", "--epochs", "1", "--quiet"])
    assert res.exit_code == 1 and "has_leak" in res.output and "Traceback" not in res.output


def test_example_neuron_trains_through_the_cli(example, tmp_path):
    from snnkit_cli.main import cli

    run = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--neuron", "if", "--conn", "srsc", "--rule", "bptt", "--dataset", "poisson-bands",
        "--hidden", "16,16,16", "--epochs", "2", "--limit", "128", "--lr", "0.01", "--set", "dataset.steps=25",
        "--out", str(run), "--quiet",
    ])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["test_accuracy"] > 0.5  # chance is 0.25
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["plugins"]["snnkit-example-plugin"]["version"] == "0.1.0"
    res = CliRunner().invoke(cli, ["eval", str(run)])
    assert res.exit_code == 0 and "test accuracy" in " ".join(res.output.split())  # rich may wrap a long path


def test_example_rate_rule_trains_the_example_neuron_and_connectivity_through_the_public_path(example, tmp_path):
    """All three third-party components together (if + local + rate-reg), through build() and train(): the rule
    sees the spikes through the neuron's hook, the masked weights stay masked, the network learns."""
    from snnkit_core.contract.rule import Batch
    from snnkit_core.engine.config import TrainConfig
    from snnkit_core.engine.training import build, train

    cfg = TrainConfig(neuron="if", conn="local", rules=("rate-reg",), dataset="poisson-bands", hidden=(32,),
                      epochs=2, batch_size=16, limit=128, lr=0.02, device="cpu", seed=0,
                      params={"dataset": {"steps": 25}, "rule.rate-reg": {"target_rate": 0.05}})
    built = build(cfg)
    net, rule = built.network, built.gradient_rule
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    records = list(train(cfg, tmp_path / "run", built=built))
    assert [r.epoch for r in records] == [1, 2]
    assert records[-1].test_accuracy > 0.4  # chance is 0.25
    after = net.state_dict()
    for key in ("layers.0.ff.weight", "layers.0.recurrence.weight", "output.weight"):
        assert not torch.equal(before[key], after[key]), f"{key} did not change"
    rec = net.layers[0].recurrence
    assert torch.equal(rec.effective_weight(), rec.weight * rec.mask)
    assert float(rec.weight.grad[rec.mask == 0].abs().max()) == 0.0  # outside the band: no gradient
    x = torch.rand(25, 4, net.layers[0].ff.in_features)
    rule.hparams["target_rate"] = -1.0  # any recorded spike rate r gives (r + 1)² >= 1
    rule.loss(net(x), torch.zeros(4, dtype=torch.long))
    assert rule.penalty() == 0.0  # loss() consumed what the hook recorded
    with torch.no_grad():
        net(x)
    assert float(rule.penalty()) >= 1.0  # the neuron called the rule's hook at every step
    with torch.no_grad():
        loss, logits = rule.eval_step(net, Batch(x, torch.zeros(4, dtype=torch.long), torch.arange(4)))
    assert logits.shape == (4, 4) and bool(torch.isfinite(loss))
