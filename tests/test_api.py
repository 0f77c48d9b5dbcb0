"""The stable Python API (docs/api.md): its examples run as written, a loop of model.step trains exactly what
snnkit.train trains, and bad input fails with the fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import snnkit
from snnkit_core.contract.errors import ConfigError, UnknownComponentError

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def test_the_api_page_runs_as_written(tmp_path):
    """Every ```python block of docs/api.md in order, in one namespace (the first trains a model in a plain loop
    and asserts its weights equal snnkit.train's, bit for bit)."""
    blocks = [body for lang, body in FENCE.findall((REPO / "docs" / "api.md").read_text()) if lang == "python"]
    assert len(blocks) == 3
    namespace = {"tmp": tmp_path}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - the documented example itself
    assert namespace["last"].weights == "last" and namespace["run"].weights == "best"


def test_a_plain_loop_differs_when_the_order_differs(tmp_path):
    """The equality above is not vacuous: one step in another order changes the weights."""
    settings = dict(hidden=(8, 8, 8), epochs=1, batch_size=16, limit=64, seed=2)
    a, b = snnkit.build(**settings), snnkit.build(**settings)
    assert all(torch.equal(v, b.network.state_dict()[k]) for k, v in a.network.state_dict().items())
    train = a.splits()[0]
    for model, epoch in ((a, 0), (b, 1)):  # b sees epoch 1's order
        opt = model.optimizer()
        for batch in model.batches(train, epoch):
            model.step(batch, opt)
    assert not all(torch.equal(v, b.network.state_dict()[k]) for k, v in a.network.state_dict().items())


def test_bad_settings_say_what_would_work(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown keys 'epoch' \(did you mean 'epochs'\?\)"):
        snnkit.build(epoch=3)
    with pytest.raises(UnknownComponentError, match="Did you mean 'lif'"):
        snnkit.build(neuron="lfi")
    with pytest.raises(ConfigError, match="kind must be one of neuron, connectivity, rule, dataset"):
        snnkit.components("neurons")
    with pytest.raises(ConfigError, match="resume=True continues the run exactly"):
        snnkit.train(out=tmp_path / "x", resume=True, epochs=3)


def test_a_run_without_validation_names_its_splits(tmp_path):
    run = snnkit.train(out=tmp_path / "r", hidden=(8, 8, 8), epochs=1, limit=48, val_fraction=0.0)
    assert run.weights == "last"  # no validation, no best.pt
    with pytest.raises(ConfigError, match=r"has splits \['train', 'test'\], not 'val'"):
        run.evaluate("val")
    assert snnkit.component("conn", "srsc").name == "srsc" and "bptt" in snnkit.components("rule")


def test_import_snnkit_loads_no_torch():
    code = "import sys, snnkit; print('torch' in sys.modules, snnkit.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "0.2.0"]


def test_one_version_everywhere():
    from importlib.metadata import version

    import snnkit_core

    dists = ("snnkit", "snnkit-neurons", "snnkit-connectivity", "snnkit-rules", "snnkit-datasets")
    assert {snnkit.__version__, snnkit_core.__version__, *(version(d) for d in dists)} == {snnkit.__version__}
    assert f"## {snnkit.__version__}" in (REPO / "CHANGELOG.md").read_text()


def test_the_api_fills_recipes_like_snnkit_train_and_keeps_what_you_chose():
    model = snnkit.build(rules="st-rsbp")  # a bare command's settings: the rule's recipe fills the rest
    assert (model.config.neuron, model.config.conn) == ("lif-rsbp", "reservoir")
    chosen = snnkit.build(rules="st-rsbp", hidden=(12, 12), params={"neuron": {"v_th": 4.0}})
    assert chosen.config.hidden == (12, 12) and chosen.config.params["neuron"]["v_th"] == 4.0
    assert chosen.config.neuron == "lif-rsbp"  # filled: you did not name one
    bare = snnkit.build(rules="bptt", recipes=False, hidden=(8, 8, 8))
    assert bare.config == snnkit.TrainConfig(rules=("bptt",), hidden=(8, 8, 8))
    whole = snnkit.TrainConfig(rules=("st-rsbp",), neuron="lif-rsbp", conn="dense")
    assert snnkit.build(whole).config == whole  # a TrainConfig given whole is every key chosen
