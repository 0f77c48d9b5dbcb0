"""Tests a plugin author keeps beside the plugin: dynamics by hand, registration, one short training run.

Run from this folder after ``pip install -e '.[test]'``: ``pytest -q``.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from snnkit_example import plugin
from snnkit_example.bands import PoissonBands
from snnkit_example.neuron import IF

from snnkit_cli.main import cli
from snnkit_core.contract import plugins


@pytest.fixture
def registered():
    """Register the plugin in-process (it may also be installed; re-registering the same classes is a no-op)."""
    already = "snnkit-example-plugin" in {p.name for p in plugins.plugin_infos()}
    if not already:
        plugins.register_plugin(plugin, name="snnkit-example-plugin", version="0.1.0")
    try:
        yield plugins.get_registry()
    finally:
        if not already:
            plugins.unregister_plugin("snnkit-example-plugin")


def test_if_dynamics_by_hand():
    # v_th = 1, constant input 0.25 (exact in binary): v = 0.25, 0.5, 0.75, 1.0 (not > 1: no spike),
    # 1.25 -> spike, soft reset v̂ = 1.25 - 1 = 0.25; then 0.5
    n = IF(1, v_th=1.0)
    state = n.initial_state(1, torch.device("cpu"), torch.float64)
    spikes, vs = [], []
    for _ in range(6):
        y, s, state = n.step(torch.full((1, 1), 0.25, dtype=torch.float64), state)
        assert torch.equal(y, s)
        spikes.append(int(s))
        vs.append(float(state.v))
    assert spikes == [0, 0, 0, 0, 1, 0]
    assert vs == [0.25, 0.5, 0.75, 1.0, 0.25, 0.5]


def test_surrogate_gives_a_gradient():
    n = IF(3)
    cur = torch.tensor([[0.9, 1.1, 3.0]], requires_grad=True)
    _, s, _ = n.step(cur, n.initial_state(1, torch.device("cpu"), torch.float32))
    s.sum().backward()
    assert torch.all(cur.grad > 0)


def test_dataset_shapes_and_determinism():
    ds = PoissonBands(examples=20)
    a, b = ds.load("train"), ds.load("train")
    assert a.x.shape == (20, 50, 16) and torch.equal(a.x, b.x) and set(a.x.unique().tolist()) <= {0.0, 1.0}


def test_registered_with_attribution(registered):
    assert registered.component("neuron", "if").plugin == "snnkit-example-plugin"
    assert registered.component("dataset", "poisson-bands").plugin == "snnkit-example-plugin"


def test_trains_through_the_cli(registered, tmp_path):
    res = CliRunner().invoke(cli, [
        "train", "--neuron", "if", "--conn", "srsc", "--dataset", "poisson-bands", "--hidden", "16,16,16",
        "--epochs", "2", "--limit", "128", "--lr", "0.01", "--set", "dataset.steps=25",
        "--out", str(tmp_path / "run"), "--quiet",
    ])
    assert res.exit_code == 0, res.output
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_accuracy"] > 0.5  # chance is 0.25
